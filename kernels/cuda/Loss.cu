//===- Loss.cu - fused cross-entropy over the vocabulary ------------------===//
//
// One block per row: one online max/sum pass, then (with writeGradient) one
// pass that overwrites the logits with the gradient. The logits are read
// twice and written once; no second vocabulary-sized buffer exists.
//
//===----------------------------------------------------------------------===//

#include "vlora/kernels/cuda/Loss.h"

#include "Primitives.cuh"

namespace vlora::kernels::cuda {
using namespace detail;

namespace {

constexpr int kThreads = 1024;

template <typename T>
__global__ void crossEntropyKernel(int64_t vocab, T *logits,
                                   const int64_t *labels, int64_t ignoreIndex,
                                   float *losses, bool writeGradient,
                                   float gradScale) {
  __shared__ float scratch[32];
  int64_t row = blockIdx.x;
  T *z = logits + row * vocab;
  int64_t label = labels[row];
  bool ignored = label == ignoreIndex || label < 0 || label >= vocab;
  if (ignored) {
    if (threadIdx.x == 0)
      losses[row] = 0.f;
    if (writeGradient)
      for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x)
        store(z + j, 0.f);
    return;
  }
  float m = -INFINITY, s = 0.f;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
    float v = load(z + j);
    if (v > m) {
      s = s * __expf(m - v) + 1.f;
      m = v;
    } else {
      s += __expf(v - m);
    }
  }
  float rowMax = blockMax(m, scratch);
  float sum = blockSum(m == -INFINITY ? 0.f : s * __expf(m - rowMax), scratch);
  float lse = rowMax + logf(sum);
  float target = load(z + label);
  __syncthreads(); // everyone has read z[label] before it is overwritten
  if (threadIdx.x == 0)
    losses[row] = lse - target;
  if (writeGradient)
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x)
      store(z + j,
            gradScale * (__expf(load(z + j) - lse) - (j == label ? 1.f : 0.f)));
}

} // namespace

Status crossEntropy(Context &ctx, int64_t rows, int64_t vocab, DType dtype,
                    void *logits, const int64_t *labels, int64_t ignoreIndex,
                    float *losses, bool writeGradient, float gradScale) {
  ShapeText shape("crossEntropy");
  shape("rows", rows)("vocab", vocab).dtype(dtype);
  if (rows < 1 || vocab < 1 || rows > INT32_MAX)
    return fail(shape, "rows and vocab must be positive");
  if (!isFloatType(dtype))
    return fail(shape, "element type must be f32 or bf16");
  if (!logits || !aligned(logits, elementBytes(dtype)) || !labels ||
      !aligned(labels, 8) || !losses || !aligned(losses, 4))
    return fail(shape, "logits, labels (int64) and losses (fp32) must be "
                       "non-null and aligned");
  return dispatchFloat(dtype, [&](auto tag) {
    using T = decltype(tag);
    crossEntropyKernel<T><<<static_cast<unsigned>(rows), kThreads, 0,
                            streamOf(ctx)>>>(vocab, static_cast<T *>(logits),
                                             labels, ignoreIndex, losses,
                                             writeGradient, gradScale);
    return checkLaunch(shape);
  });
}

} // namespace vlora::kernels::cuda
