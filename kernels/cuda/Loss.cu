//===- Loss.cu - fused cross-entropy over the vocabulary ------------------===//
//
// One block per row. Rows of whole 16-byte packs (vocab a multiple of 4 fp32
// / 8 bf16, aligned logits) of at most kRowPacks packs are held in
// registers: the logits are read once and (with writeGradient) overwritten
// from the registers. Longer rows of packs stream: one online max/sum pass,
// one gradient pass. Other rows take the scalar kernel with the same two
// passes. No second vocabulary-sized buffer exists.
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

/// Threads of the vectorised kernels; a thread of the register kernel holds
/// up to kRowPacksPerThread packs.
constexpr int kPackThreads = 512, kRowPacksPerThread = 8;
constexpr int64_t kRowPacks = int64_t(kPackThreads) * kRowPacksPerThread;

/// Writes zeros over an ignored row (16-byte packs).
template <typename T> __device__ __forceinline__ void zeroRow(T *z, int packs) {
  for (int p = threadIdx.x; p < packs; p += blockDim.x)
    storeRaw(z + p * Pack<T>::kSize, zeroRaw<T>());
}

/// crossEntropyKernel with the row in registers (kPacks per thread).
template <typename T, int kPacks>
__global__ void __launch_bounds__(kPackThreads)
    crossEntropyRowKernel(int vocab, T *logits, const int64_t *labels,
                          int64_t ignoreIndex, float *losses,
                          bool writeGradient, float gradScale) {
  constexpr int W = Pack<T>::kSize;
  __shared__ float scratch[32];
  int64_t row = blockIdx.x;
  T *z = logits + row * vocab;
  int packs = vocab / W;
  int64_t label = labels[row];
  if (label == ignoreIndex || label < 0 || label >= vocab) {
    if (threadIdx.x == 0)
      losses[row] = 0.f;
    if (writeGradient)
      zeroRow(z, packs);
    return;
  }
  RawPack<T> raw[kPacks];
#pragma unroll
  for (int k = 0; k < kPacks; ++k) {
    int p = threadIdx.x + k * kPackThreads;
    raw[k] = p < packs ? loadRaw(z + p * W) : zeroRaw<T>();
  }
  float target = load(z + label); // read before any thread overwrites it
  float m = -INFINITY;
#pragma unroll
  for (int k = 0; k < kPacks; ++k)
    if (threadIdx.x + k * kPackThreads < packs)
#pragma unroll
      for (int e = 0; e < W; ++e)
        m = fmaxf(m, element(raw[k], e));
  float rowMax = blockMax(m, scratch);
  float s = 0.f;
#pragma unroll
  for (int k = 0; k < kPacks; ++k)
    if (threadIdx.x + k * kPackThreads < packs)
#pragma unroll
      for (int e = 0; e < W; ++e)
        s += __expf(element(raw[k], e) - rowMax);
  float lse = rowMax + logf(blockSum(s, scratch));
  if (threadIdx.x == 0)
    losses[row] = lse - target;
  if (!writeGradient)
    return;
    // blockSum synchronised the block: every thread has read z[label].
#pragma unroll
  for (int k = 0; k < kPacks; ++k) {
    int p = threadIdx.x + k * kPackThreads;
    if (p >= packs)
      continue;
    float out[W];
#pragma unroll
    for (int e = 0; e < W; ++e)
      out[e] = gradScale * (__expf(element(raw[k], e) - lse) -
                            (p * W + e == label ? 1.f : 0.f));
    storeRaw(z + p * W, toRaw(out));
  }
}

/// crossEntropyKernel over 16-byte packs for rows too long for registers:
/// kUnroll packs per thread in flight in each pass.
template <typename T>
__global__ void __launch_bounds__(kPackThreads)
    crossEntropyStreamKernel(int64_t vocab, T *logits, const int64_t *labels,
                             int64_t ignoreIndex, float *losses,
                             bool writeGradient, float gradScale) {
  constexpr int W = Pack<T>::kSize, kUnroll = 4;
  __shared__ float scratch[32];
  int64_t row = blockIdx.x;
  T *z = logits + row * vocab;
  int64_t packs = vocab / W;
  int64_t label = labels[row];
  if (label == ignoreIndex || label < 0 || label >= vocab) {
    if (threadIdx.x == 0)
      losses[row] = 0.f;
    if (writeGradient)
      for (int64_t p = threadIdx.x; p < packs; p += blockDim.x)
        storeRaw(z + p * W, zeroRaw<T>());
    return;
  }
  // Online max/sum: one rescale per pack.
  float m = -INFINITY, s = 0.f;
  for (int64_t base = threadIdx.x; base < packs;
       base += int64_t(kUnroll) * kPackThreads) {
    RawPack<T> raw[kUnroll];
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) {
      int64_t p = base + k * kPackThreads;
      raw[k] = p < packs ? loadRaw(z + p * W) : zeroRaw<T>();
    }
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) {
      if (base + k * kPackThreads >= packs)
        continue;
      float packMax = element(raw[k], 0);
#pragma unroll
      for (int e = 1; e < W; ++e)
        packMax = fmaxf(packMax, element(raw[k], e));
      float mNew = fmaxf(m, packMax);
      if (mNew == -INFINITY)
        continue; // everything so far is -inf: nothing to add
      float sum = 0.f;
#pragma unroll
      for (int e = 0; e < W; ++e)
        sum += __expf(element(raw[k], e) - mNew);
      s = s * __expf(m - mNew) + sum;
      m = mNew;
    }
  }
  float target = load(z + label);
  float rowMax = blockMax(m, scratch);
  float total =
      blockSum(m == -INFINITY ? 0.f : s * __expf(m - rowMax), scratch);
  float lse = rowMax + logf(total);
  if (threadIdx.x == 0)
    losses[row] = lse - target;
  if (!writeGradient)
    return;
  // blockSum synchronised the block: every thread has read z[label].
  for (int64_t base = threadIdx.x; base < packs;
       base += int64_t(kUnroll) * kPackThreads) {
    RawPack<T> raw[kUnroll];
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) {
      int64_t p = base + k * kPackThreads;
      raw[k] = p < packs ? loadRaw(z + p * W) : zeroRaw<T>();
    }
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) {
      int64_t p = base + k * kPackThreads;
      if (p >= packs)
        continue;
      float out[W];
#pragma unroll
      for (int e = 0; e < W; ++e)
        out[e] = gradScale * (__expf(element(raw[k], e) - lse) -
                              (p * W + e == label ? 1.f : 0.f));
      storeRaw(z + p * W, toRaw(out));
    }
  }
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
  int64_t width = dtype == DType::BF16 ? Pack<bf16>::kSize : Pack<float>::kSize;
  bool packed = vocab % width == 0 && aligned(logits, 16);
  int64_t packs = vocab / width;
  return dispatchFloat(dtype, [&](auto tag) {
    using T = decltype(tag);
    auto *z = static_cast<T *>(logits);
    unsigned grid = static_cast<unsigned>(rows);
    cudaStream_t stream = streamOf(ctx);
    if (!packed)
      crossEntropyKernel<T><<<grid, kThreads, 0, stream>>>(
          vocab, z, labels, ignoreIndex, losses, writeGradient, gradScale);
    else if (packs > kRowPacks)
      crossEntropyStreamKernel<T><<<grid, kPackThreads, 0, stream>>>(
          vocab, z, labels, ignoreIndex, losses, writeGradient, gradScale);
    else {
      auto kernel = packs <= kPackThreads       ? crossEntropyRowKernel<T, 1>
                    : packs <= 2 * kPackThreads ? crossEntropyRowKernel<T, 2>
                    : packs <= 4 * kPackThreads ? crossEntropyRowKernel<T, 4>
                                                : crossEntropyRowKernel<T, 8>;
      kernel<<<grid, kPackThreads, 0, stream>>>(static_cast<int>(vocab), z,
                                                labels, ignoreIndex, losses,
                                                writeGradient, gradScale);
    }
    return checkLaunch(shape);
  });
}

} // namespace vlora::kernels::cuda
