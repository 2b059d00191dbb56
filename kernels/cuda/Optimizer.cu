//===- Optimizer.cu - multi-tensor AdamW and global norm ------------------===//
//
// Tensor lists travel as kernel parameters (no host-to-device copy, so the
// launches can be captured in a CUDA graph): up to kMaxTensors tensors per
// launch, blockIdx.y picks the tensor, blockIdx.x strides over it.
//
//===----------------------------------------------------------------------===//

#include "vlora/kernels/cuda/Optimizer.h"

#include "Primitives.cuh"

#include <algorithm>
#include <cmath>

namespace vlora::kernels::cuda {
using namespace detail;

namespace {

constexpr int kMaxTensors = 24;
constexpr int kThreads = 256;
constexpr int64_t kMaxBlocksPerTensor = 1024;

struct AdamWList {
  float *param[kMaxTensors];
  const float *grad[kMaxTensors];
  float *expAvg[kMaxTensors];
  float *expAvgSq[kMaxTensors];
  int64_t size[kMaxTensors];
};

/// torch's scalars: computed in double on the host from the (double)
/// hyper-parameters, then rounded once to fp32.
struct AdamWScalars {
  float decay;         // 1 - lr·weightDecay
  float oneMinusBeta1; // exp_avg.lerp_(grad, 1 - beta1)
  bool smallWeight;    // |1 - beta1| < 0.5: torch's lerp formula choice
  float beta2, oneMinusBeta2, eps;
  float negStepSize; // -lr / (1 - beta1^step)
  float bc2Sqrt;     // sqrt(1 - beta2^step)
};

__global__ void adamWKernel(AdamWList list, AdamWScalars c,
                            const float *gradScale) {
  int t = blockIdx.y;
  float scale = gradScale ? *gradScale : 1.f;
  float *p = list.param[t], *m = list.expAvg[t], *v = list.expAvgSq[t];
  const float *g = list.grad[t];
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
       i < list.size[t]; i += int64_t(gridDim.x) * blockDim.x) {
    float grad = g[i] * scale;
    float param = p[i] * c.decay;
    float mi = m[i];
    mi = c.smallWeight ? mi + c.oneMinusBeta1 * (grad - mi)
                       : grad - (grad - mi) * (1.f - c.oneMinusBeta1);
    float vi = v[i] * c.beta2 + c.oneMinusBeta2 * grad * grad;
    float denom = sqrtf(vi) / c.bc2Sqrt + c.eps;
    p[i] = param + c.negStepSize * mi / denom;
    m[i] = mi;
    v[i] = vi;
  }
}

struct NormList {
  const float *data[kMaxTensors];
  int64_t size[kMaxTensors];
};

__global__ void sumOfSquaresKernel(NormList list, float *out) {
  __shared__ float scratch[32];
  int t = blockIdx.y;
  float sum = 0.f;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
       i < list.size[t]; i += int64_t(gridDim.x) * blockDim.x) {
    float x = list.data[t][i];
    sum += x * x;
  }
  sum = blockSum(sum, scratch);
  if (threadIdx.x == 0 && sum != 0.f)
    atomicAdd(out, sum);
}

__global__ void clipCoefficientKernel(const float *sumSquares, float maxNorm,
                                      float *coefficient, float *norm) {
  float total = sqrtf(*sumSquares);
  if (norm)
    *norm = total;
  *coefficient = fminf(1.f, maxNorm / (total + 1e-6f));
}

unsigned blocksForTensors(const int64_t *sizes, int count) {
  int64_t largest = *std::max_element(sizes, sizes + count);
  return static_cast<unsigned>(
      std::clamp<int64_t>((largest + kThreads - 1) / kThreads, 1,
                          kMaxBlocksPerTensor));
}

} // namespace

Status adamW(Context &ctx, const std::vector<AdamWTensor> &tensors,
             const AdamWConfig &config, int64_t step, const float *gradScale) {
  ShapeText shape("adamW");
  shape("tensors", tensors.size())("step", step);
  if (step < 1)
    return fail(shape, "step must be >= 1");
  for (size_t i = 0; i < tensors.size(); ++i) {
    const AdamWTensor &t = tensors[i];
    if (t.size < 0 || (t.size > 0 && (!t.param || !t.grad || !t.expAvg ||
                                      !t.expAvgSq)))
      return fail(shape, "tensor " + std::to_string(i) +
                             " has a negative size or a null pointer");
    if (!aligned(t.param, 4) || !aligned(t.grad, 4) || !aligned(t.expAvg, 4) ||
        !aligned(t.expAvgSq, 4))
      return fail(shape, "tensor " + std::to_string(i) + " is misaligned");
  }
  double bc1 = 1 - std::pow(config.beta1, static_cast<double>(step));
  double bc2 = 1 - std::pow(config.beta2, static_cast<double>(step));
  AdamWScalars c{static_cast<float>(1 - config.lr * config.weightDecay),
                 static_cast<float>(1 - config.beta1),
                 std::fabs(1 - config.beta1) < 0.5,
                 static_cast<float>(config.beta2),
                 static_cast<float>(1 - config.beta2),
                 static_cast<float>(config.eps),
                 static_cast<float>(-config.lr / bc1),
                 static_cast<float>(std::sqrt(bc2))};
  for (size_t i = 0; i < tensors.size();) {
    AdamWList list{};
    int count = 0;
    for (; i < tensors.size() && count < kMaxTensors; ++i) {
      if (tensors[i].size == 0)
        continue;
      list.param[count] = tensors[i].param;
      list.grad[count] = tensors[i].grad;
      list.expAvg[count] = tensors[i].expAvg;
      list.expAvgSq[count] = tensors[i].expAvgSq;
      list.size[count] = tensors[i].size;
      ++count;
    }
    if (!count)
      continue;
    dim3 grid(blocksForTensors(list.size, count), count);
    adamWKernel<<<grid, kThreads, 0, streamOf(ctx)>>>(list, c, gradScale);
    if (Status st = checkLaunch(shape); !st)
      return st;
  }
  return Status::success();
}

Status sumOfSquares(Context &ctx, const std::vector<const float *> &tensors,
                    const std::vector<int64_t> &sizes, float *sumSquares) {
  ShapeText shape("sumOfSquares");
  shape("tensors", tensors.size());
  if (tensors.size() != sizes.size())
    return fail(shape, "one size per tensor");
  if (!sumSquares || !aligned(sumSquares, 4))
    return fail(shape, "the output must be a non-null fp32 scalar");
  for (size_t i = 0; i < tensors.size(); ++i)
    if (sizes[i] < 0 || (sizes[i] > 0 && !tensors[i]) ||
        !aligned(tensors[i], 4))
      return fail(shape, "tensor " + std::to_string(i) +
                             " has a negative size or a bad pointer");
  if (Status st = check(cudaMemsetAsync(sumSquares, 0, sizeof(float),
                                        streamOf(ctx)),
                        shape, "cudaMemsetAsync");
      !st)
    return st;
  for (size_t i = 0; i < tensors.size();) {
    NormList list{};
    int count = 0;
    for (; i < tensors.size() && count < kMaxTensors; ++i) {
      if (sizes[i] == 0)
        continue;
      list.data[count] = tensors[i];
      list.size[count] = sizes[i];
      ++count;
    }
    if (!count)
      continue;
    dim3 grid(blocksForTensors(list.size, count), count);
    sumOfSquaresKernel<<<grid, kThreads, 0, streamOf(ctx)>>>(list, sumSquares);
    if (Status st = checkLaunch(shape); !st)
      return st;
  }
  return Status::success();
}

Status clipCoefficient(Context &ctx, const float *sumSquares, float maxNorm,
                       float *coefficient, float *norm) {
  ShapeText shape("clipCoefficient");
  shape("maxNorm", maxNorm);
  if (!sumSquares || !coefficient)
    return fail(shape, "null scalar");
  if (!(maxNorm > 0.f))
    return fail(shape, "maxNorm must be positive");
  clipCoefficientKernel<<<1, 1, 0, streamOf(ctx)>>>(sumSquares, maxNorm,
                                                    coefficient, norm);
  return checkLaunch(shape);
}

} // namespace vlora::kernels::cuda
