//===- Optimizer.cu - multi-tensor AdamW and global norm ------------------===//
//
// Tensor lists travel as kernel parameters (no host-to-device copy, so the
// launches can be captured in a CUDA graph): up to kMaxTensors tensors per
// launch, cut into fixed chunks; a block takes one chunk (its tensor found
// from the chunk prefix sums), so the grid is balanced whatever the sizes.
// Chunks of 16-byte aligned tensors move float4s, others elements.
//
//===----------------------------------------------------------------------===//

#include "vlora/kernels/cuda/Optimizer.h"

#include "Primitives.cuh"

#include <cmath>

namespace vlora::kernels::cuda {
using namespace detail;

namespace {

constexpr int kMaxTensors = 24;
constexpr int kThreads = 256;
/// Elements per AdamW chunk: two float4s of each tensor per thread.
constexpr int64_t kAdamChunk = int64_t(kThreads) * 8;
/// Elements per sum-of-squares chunk (fewer atomic adds on one address).
constexpr int64_t kNormChunk = int64_t(kThreads) * 64;

struct AdamWList {
  float *param[kMaxTensors];
  const float *grad[kMaxTensors];
  float *expAvg[kMaxTensors];
  float *expAvgSq[kMaxTensors];
  int64_t size[kMaxTensors];
  /// Chunks before tensor t (firstChunk[count] = all chunks).
  uint32_t firstChunk[kMaxTensors + 1];
  int count;
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

/// The tensor whose chunks include `chunk` (count <= kMaxTensors, uniform
/// over the block).
__device__ __forceinline__ int tensorOf(const uint32_t *firstChunk, int count,
                                        uint32_t chunk) {
  int t = 0;
  while (t + 1 < count && chunk >= firstChunk[t + 1])
    ++t;
  return t;
}

/// One AdamW element update (torch's order: decoupled decay, lerp, addcmul,
/// addcdiv).
__device__ __forceinline__ void adamWElement(const AdamWScalars &c, float scale,
                                             float &p, float g, float &m,
                                             float &v) {
  float grad = g * scale;
  float param = p * c.decay;
  m = c.smallWeight ? m + c.oneMinusBeta1 * (grad - m)
                    : grad - (grad - m) * (1.f - c.oneMinusBeta1);
  v = v * c.beta2 + c.oneMinusBeta2 * grad * grad;
  float denom = sqrtf(v) / c.bc2Sqrt + c.eps;
  p = param + c.negStepSize * m / denom;
}

__global__ void __launch_bounds__(kThreads)
    adamWKernel(AdamWList list, AdamWScalars c, const float *gradScale) {
  int t = tensorOf(list.firstChunk, list.count, blockIdx.x);
  int64_t begin = int64_t(blockIdx.x - list.firstChunk[t]) * kAdamChunk;
  int64_t end = min(list.size[t], begin + kAdamChunk);
  float scale = gradScale ? *gradScale : 1.f;
  float *p = list.param[t] + begin, *m = list.expAvg[t] + begin,
        *v = list.expAvgSq[t] + begin;
  const float *g = list.grad[t] + begin;
  int n = static_cast<int>(end - begin);
  bool vector =
      ((reinterpret_cast<uintptr_t>(p) | reinterpret_cast<uintptr_t>(g) |
        reinterpret_cast<uintptr_t>(m) | reinterpret_cast<uintptr_t>(v)) &
       15) == 0;
  if (!vector) {
    for (int i = threadIdx.x; i < n; i += kThreads) {
      float pi = p[i], mi = m[i], vi = v[i];
      adamWElement(c, scale, pi, g[i], mi, vi);
      p[i] = pi;
      m[i] = mi;
      v[i] = vi;
    }
    return;
  }
  constexpr int kVectors = kAdamChunk / (4 * kThreads);
  int vectors = n / 4;
  float4 pv[kVectors], gv[kVectors], mv[kVectors], vv[kVectors];
#pragma unroll
  for (int k = 0; k < kVectors; ++k) {
    int i = threadIdx.x + k * kThreads;
    if (i < vectors) {
      pv[k] = reinterpret_cast<const float4 *>(p)[i];
      gv[k] = reinterpret_cast<const float4 *>(g)[i];
      mv[k] = reinterpret_cast<const float4 *>(m)[i];
      vv[k] = reinterpret_cast<const float4 *>(v)[i];
    }
  }
#pragma unroll
  for (int k = 0; k < kVectors; ++k) {
    int i = threadIdx.x + k * kThreads;
    if (i >= vectors)
      continue;
    adamWElement(c, scale, pv[k].x, gv[k].x, mv[k].x, vv[k].x);
    adamWElement(c, scale, pv[k].y, gv[k].y, mv[k].y, vv[k].y);
    adamWElement(c, scale, pv[k].z, gv[k].z, mv[k].z, vv[k].z);
    adamWElement(c, scale, pv[k].w, gv[k].w, mv[k].w, vv[k].w);
    reinterpret_cast<float4 *>(p)[i] = pv[k];
    reinterpret_cast<float4 *>(m)[i] = mv[k];
    reinterpret_cast<float4 *>(v)[i] = vv[k];
  }
  int i = vectors * 4 + threadIdx.x; // the last n % 4 elements
  if (i < n) {
    float pi = p[i], mi = m[i], vi = v[i];
    adamWElement(c, scale, pi, g[i], mi, vi);
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
  }
}

struct NormList {
  const float *data[kMaxTensors];
  int64_t size[kMaxTensors];
  uint32_t firstChunk[kMaxTensors + 1];
  int count;
};

/// Each block's Σ x² of its chunk into partials[blockIdx.x] (no atomics:
/// sumPartialsKernel adds them in a fixed order).
__global__ void __launch_bounds__(kThreads)
    sumOfSquaresKernel(NormList list, float *partials) {
  __shared__ float scratch[32];
  int t = tensorOf(list.firstChunk, list.count, blockIdx.x);
  int64_t begin = int64_t(blockIdx.x - list.firstChunk[t]) * kNormChunk;
  int n = static_cast<int>(min(list.size[t], begin + kNormChunk) - begin);
  const float *x = list.data[t] + begin;
  float sum[4] = {0.f, 0.f, 0.f, 0.f};
  if ((reinterpret_cast<uintptr_t>(x) & 15) == 0) {
    int vectors = n / 4;
    const float4 *x4 = reinterpret_cast<const float4 *>(x);
    constexpr int kUnroll = 4;
    for (int base = threadIdx.x; base < vectors; base += kUnroll * kThreads) {
      float4 v[kUnroll];
#pragma unroll
      for (int k = 0; k < kUnroll; ++k)
        v[k] = base + k * kThreads < vectors ? x4[base + k * kThreads]
                                             : make_float4(0, 0, 0, 0);
#pragma unroll
      for (int k = 0; k < kUnroll; ++k) {
        sum[0] += v[k].x * v[k].x;
        sum[1] += v[k].y * v[k].y;
        sum[2] += v[k].z * v[k].z;
        sum[3] += v[k].w * v[k].w;
      }
    }
    int i = vectors * 4 + threadIdx.x;
    if (i < n)
      sum[0] += x[i] * x[i];
  } else {
    for (int i = threadIdx.x; i < n; i += kThreads)
      sum[0] += x[i] * x[i];
  }
  float total = blockSum((sum[0] + sum[1]) + (sum[2] + sum[3]), scratch);
  if (threadIdx.x == 0)
    partials[blockIdx.x] = total;
}

/// *out = Σ partials[0, n): thread i adds i, i + kThreads, ... in order, then
/// one block reduction; the same bits on every run.
__global__ void __launch_bounds__(kThreads)
    sumPartialsKernel(const float *partials, int64_t n, float *out) {
  __shared__ float scratch[32];
  float sum = 0.f;
  for (int64_t i = threadIdx.x; i < n; i += kThreads)
    sum += partials[i];
  float total = blockSum(sum, scratch);
  if (threadIdx.x == 0)
    *out = total;
}

__global__ void clipCoefficientKernel(const float *sumSquares, float maxNorm,
                                      float *coefficient, float *norm) {
  float total = sqrtf(*sumSquares);
  if (norm)
    *norm = total;
  *coefficient = fminf(1.f, maxNorm / (total + 1e-6f));
}

/// Appends tensor `size` to a list's chunk prefix; false when the launch's
/// chunk count would pass 2^31 (the grid's limit).
bool addChunks(uint32_t *firstChunk, int count, int64_t size, int64_t chunk) {
  int64_t next = firstChunk[count] + (size + chunk - 1) / chunk;
  if (next >= (int64_t(1) << 31))
    return false;
  firstChunk[count + 1] = static_cast<uint32_t>(next);
  return true;
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
    for (; i < tensors.size() && list.count < kMaxTensors; ++i) {
      const AdamWTensor &t = tensors[i];
      if (t.size == 0)
        continue;
      if (!addChunks(list.firstChunk, list.count, t.size, kAdamChunk)) {
        if (list.count == 0)
          return fail(shape, "tensor " + std::to_string(i) + " is too large");
        break; // the next launch takes it
      }
      list.param[list.count] = t.param;
      list.grad[list.count] = t.grad;
      list.expAvg[list.count] = t.expAvg;
      list.expAvgSq[list.count] = t.expAvgSq;
      list.size[list.count] = t.size;
      ++list.count;
    }
    if (!list.count)
      continue;
    adamWKernel<<<list.firstChunk[list.count], kThreads, 0, streamOf(ctx)>>>(
        list, c, gradScale);
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
  // One partial per chunk of every tensor, summed at the end in chunk order.
  int64_t chunks = 0;
  for (int64_t size : sizes)
    chunks += (size + kNormChunk - 1) / kNormChunk;
  void *block = nullptr;
  if (Status st = check(cudaMallocAsync(&block,
                                        size_t(std::max<int64_t>(chunks, 1)) *
                                            sizeof(float),
                                        streamOf(ctx)),
                        shape, "cudaMallocAsync (partial sums)");
      !st)
    return st;
  float *partials = static_cast<float *>(block);
  int64_t done = 0;
  auto release = [&](Status st) {
    cudaFreeAsync(block, streamOf(ctx));
    return st;
  };
  for (size_t i = 0; i < tensors.size();) {
    NormList list{};
    for (; i < tensors.size() && list.count < kMaxTensors; ++i) {
      if (sizes[i] == 0)
        continue;
      if (!addChunks(list.firstChunk, list.count, sizes[i], kNormChunk)) {
        if (list.count == 0)
          return release(
              fail(shape, "tensor " + std::to_string(i) + " is too large"));
        break;
      }
      list.data[list.count] = tensors[i];
      list.size[list.count] = sizes[i];
      ++list.count;
    }
    if (!list.count)
      continue;
    sumOfSquaresKernel<<<list.firstChunk[list.count], kThreads, 0,
                         streamOf(ctx)>>>(list, partials + done);
    if (Status st = checkLaunch(shape); !st)
      return release(st);
    done += list.firstChunk[list.count];
  }
  sumPartialsKernel<<<1, kThreads, 0, streamOf(ctx)>>>(partials, done,
                                                       sumSquares);
  if (Status st = checkLaunch(shape); !st)
    return release(st);
  return release(Status::success());
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
