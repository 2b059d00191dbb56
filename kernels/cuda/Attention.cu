//===- Attention.cu - flash-style attention forward and backward ----------===//
//
// Forward: a block owns 16 queries of one (batch, head) and streams 32-key
// tiles of K and V through shared memory with an online softmax; lane j of a
// warp scores key j, probabilities are broadcast by warp shuffles. Only o and
// the log-sum-exp are written. Backward (FlashAttention's two-kernel form,
// no atomics, deterministic): delta = rowsum(dO∘O); dq by the same
// query-parallel sweep recomputing P from the saved log-sum-exp; dk and dv by
// a key-parallel sweep where each lane owns one key and a quarter of the
// head dimension, looping over every query head of its KV group (GQA).
// Arithmetic is fp32 on CUDA cores: correctness first; tensor-core MMA tiles
// are the next step (see docs/results.md).
//
//===----------------------------------------------------------------------===//

#include "vlora/kernels/cuda/Attention.h"

#include "Primitives.cuh"

#include <cmath>

namespace vlora::kernels::cuda {
using namespace detail;

namespace {

constexpr int kThreads = 128;
constexpr int kQueryTile = 16; // queries per block in the query sweeps
constexpr int kKeyTile = 32;   // keys per tile (one per lane)

struct Params {
  int64_t seqQ, seqK, headsQ, headsKV;
  float scale;
  bool causal;
  const int32_t *kvLengths;
  const int32_t *prefixLengths;
};

__device__ __forceinline__ int64_t kvLengthOf(const Params &p, int64_t b) {
  if (!p.kvLengths)
    return p.seqK;
  int64_t n = p.kvLengths[b];
  return n < 0 ? 0 : (n > p.seqK ? p.seqK : n);
}
__device__ __forceinline__ int64_t prefixOf(const Params &p, int64_t b) {
  return p.prefixLengths ? p.prefixLengths[b] : 0;
}
__device__ __forceinline__ bool visible(const Params &p, int64_t i, int64_t j,
                                        int64_t kvLength, int64_t prefix) {
  if (j >= kvLength)
    return false;
  return !p.causal || j <= i + p.seqK - p.seqQ || j < prefix;
}

/// Forward (Grad = false: o, lse) or dq (Grad = true) over 16 queries.
template <typename T, int D, bool Grad>
__global__ void __launch_bounds__(kThreads)
    queryKernel(Params p, const T *q, const T *k, const T *v, T *o,
                float *lseOut, const T *dout, const float *lseIn,
                const float *delta, T *dq) {
  constexpr int kChunks = (D + 31) / 32;
  constexpr int kPitch = D + 1; // K/V rows padded: lane j reads row j
  constexpr int kPerWarp = kQueryTile / (kThreads / 32);
  extern __shared__ float smem[];
  float *qs = smem;
  float *dos = qs + kQueryTile * D;
  float *ks = dos + (Grad ? kQueryTile * D : 0);
  float *vs = ks + kKeyTile * kPitch;

  const int64_t b = blockIdx.z, h = blockIdx.y;
  const int64_t hk = h / (p.headsQ / p.headsKV);
  const int64_t q0 = int64_t(blockIdx.x) * kQueryTile;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  for (int idx = threadIdx.x; idx < kQueryTile * D; idx += kThreads) {
    int r = idx / D, d = idx % D;
    int64_t qi = q0 + r;
    int64_t at = ((b * p.seqQ + qi) * p.headsQ + h) * D + d;
    qs[idx] = qi < p.seqQ ? load(q + at) * p.scale : 0.f;
    if (Grad)
      dos[idx] = qi < p.seqQ ? load(dout + at) : 0.f;
  }

  float m[kPerWarp], l[kPerWarp], rowDelta[kPerWarp], acc[kPerWarp][kChunks];
#pragma unroll
  for (int t = 0; t < kPerWarp; ++t) {
    int64_t qi = q0 + warp * kPerWarp + t;
    int64_t row = (b * p.headsQ + h) * p.seqQ + qi;
    m[t] = Grad && qi < p.seqQ ? lseIn[row] : -INFINITY;
    rowDelta[t] = Grad && qi < p.seqQ ? delta[row] : 0.f;
    l[t] = 0.f;
#pragma unroll
    for (int c = 0; c < kChunks; ++c)
      acc[t][c] = 0.f;
  }

  const int64_t kvLength = kvLengthOf(p, b), prefix = prefixOf(p, b);
  int64_t lastQuery = min(q0 + kQueryTile - 1, p.seqQ - 1);
  int64_t keyEnd = kvLength;
  if (p.causal)
    keyEnd = min(kvLength, max(lastQuery + p.seqK - p.seqQ + 1, prefix));

  for (int64_t kt = 0; kt < keyEnd; kt += kKeyTile) {
    __syncthreads();
    for (int idx = threadIdx.x; idx < kKeyTile * D; idx += kThreads) {
      int r = idx / D, d = idx % D;
      int64_t j = kt + r;
      int64_t at = ((b * p.seqK + j) * p.headsKV + hk) * D + d;
      ks[r * kPitch + d] = j < p.seqK ? load(k + at) : 0.f;
      vs[r * kPitch + d] = j < p.seqK ? load(v + at) : 0.f;
    }
    __syncthreads();
    const int64_t j = kt + lane;
#pragma unroll
    for (int t = 0; t < kPerWarp; ++t) {
      const int r = warp * kPerWarp + t;
      const int64_t qi = q0 + r;
      if (qi >= p.seqQ)
        continue; // uniform across the warp
      float s = 0.f;
#pragma unroll 8
      for (int d = 0; d < D; ++d)
        s += qs[r * D + d] * ks[lane * kPitch + d];
      const bool vis = visible(p, qi, j, kvLength, prefix);
      if (!Grad) {
        s = vis ? s : -INFINITY;
        float tileMax = warpMax(s);
        if (tileMax == -INFINITY)
          continue;
        float mNew = fmaxf(m[t], tileMax);
        float pj = vis ? __expf(s - mNew) : 0.f;
        float correction = __expf(m[t] - mNew);
        l[t] = l[t] * correction + warpSum(pj);
#pragma unroll
        for (int c = 0; c < kChunks; ++c)
          acc[t][c] *= correction;
        for (int jj = 0; jj < kKeyTile; ++jj) {
          float pjj = __shfl_sync(0xffffffffu, pj, jj);
#pragma unroll
          for (int c = 0; c < kChunks; ++c) {
            int d = lane + 32 * c;
            if (d < D)
              acc[t][c] += pjj * vs[jj * kPitch + d];
          }
        }
        m[t] = mNew;
      } else {
        float pj = vis ? __expf(s - m[t]) : 0.f;
        float dp = 0.f;
#pragma unroll 8
        for (int d = 0; d < D; ++d)
          dp += dos[r * D + d] * vs[lane * kPitch + d];
        float ds = pj * (dp - rowDelta[t]);
        for (int jj = 0; jj < kKeyTile; ++jj) {
          float dsj = __shfl_sync(0xffffffffu, ds, jj);
#pragma unroll
          for (int c = 0; c < kChunks; ++c) {
            int d = lane + 32 * c;
            if (d < D)
              acc[t][c] += dsj * ks[jj * kPitch + d];
          }
        }
      }
    }
  }

#pragma unroll
  for (int t = 0; t < kPerWarp; ++t) {
    const int64_t qi = q0 + warp * kPerWarp + t;
    if (qi >= p.seqQ)
      continue;
    const int64_t at = ((b * p.seqQ + qi) * p.headsQ + h) * D;
    float factor = Grad ? p.scale : (l[t] > 0.f ? 1.f / l[t] : 0.f);
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      int d = lane + 32 * c;
      if (d < D)
        store((Grad ? dq : o) + at + d, acc[t][c] * factor);
    }
    if (!Grad && lane == 0)
      lseOut[(b * p.headsQ + h) * p.seqQ + qi] =
          l[t] > 0.f ? m[t] + logf(l[t]) : -INFINITY;
  }
}

/// delta[b, h, i] = Σ_d dO·O, one warp per row.
template <typename T>
__global__ void deltaKernel(int64_t batch, int64_t seqQ, int64_t headsQ,
                            int64_t headDim, const T *o, const T *dout,
                            float *delta) {
  int64_t rows = batch * seqQ * headsQ;
  int64_t warpId = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  int lane = threadIdx.x % 32;
  for (int64_t row = warpId; row < rows;
       row += int64_t(gridDim.x) * blockDim.x / 32) {
    // row enumerates [b, i, h] (the memory order of o).
    float sum = 0.f;
    for (int64_t d = lane; d < headDim; d += 32)
      sum += load(o + row * headDim + d) * load(dout + row * headDim + d);
    sum = warpSum(sum);
    if (lane == 0) {
      int64_t h = row % headsQ, i = (row / headsQ) % seqQ,
              b = row / (headsQ * seqQ);
      delta[(b * headsQ + h) * seqQ + i] = sum;
    }
  }
}

/// dk, dv for 32 keys of one (batch, KV head): lane owns key lane/4 of its
/// warp's 8 and dimensions d ≡ lane mod 4.
template <typename T, int D>
__global__ void __launch_bounds__(kThreads)
    keyKernel(Params p, const T *q, const T *k, const T *v, const T *dout,
              const float *lseIn, const float *delta, T *dk, T *dv) {
  constexpr int kQuarter = D / 4;
  __shared__ float qs[kKeyTile * D];
  __shared__ float dos[kKeyTile * D];
  __shared__ float lses[kKeyTile], deltas[kKeyTile];

  const int64_t b = blockIdx.z, hk = blockIdx.y;
  const int64_t k0 = int64_t(blockIdx.x) * kKeyTile;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t key = k0 + warp * 8 + lane / 4;
  const int sub = lane % 4;
  const int64_t keyAt = ((b * p.seqK + key) * p.headsKV + hk) * D;

  float kr[kQuarter], vr[kQuarter], dkAcc[kQuarter], dvAcc[kQuarter];
#pragma unroll
  for (int c = 0; c < kQuarter; ++c) {
    kr[c] = key < p.seqK ? load(k + keyAt + sub + 4 * c) : 0.f;
    vr[c] = key < p.seqK ? load(v + keyAt + sub + 4 * c) : 0.f;
    dkAcc[c] = dvAcc[c] = 0.f;
  }

  const int64_t kvLength = kvLengthOf(p, b), prefix = prefixOf(p, b);
  const int64_t group = p.headsQ / p.headsKV;
  int64_t qStart = 0;
  if (p.causal && k0 >= prefix)
    qStart = max(int64_t(0), k0 - (p.seqK - p.seqQ));
  if (k0 >= kvLength)
    qStart = p.seqQ; // no query sees these keys

  for (int64_t h = hk * group; h < (hk + 1) * group; ++h) {
    for (int64_t q0 = qStart; q0 < p.seqQ; q0 += kKeyTile) {
      __syncthreads();
      for (int idx = threadIdx.x; idx < kKeyTile * D; idx += kThreads) {
        int r = idx / D, d = idx % D;
        int64_t qi = q0 + r;
        int64_t at = ((b * p.seqQ + qi) * p.headsQ + h) * D + d;
        qs[idx] = qi < p.seqQ ? load(q + at) * p.scale : 0.f;
        dos[idx] = qi < p.seqQ ? load(dout + at) : 0.f;
      }
      if (threadIdx.x < kKeyTile) {
        int64_t qi = q0 + threadIdx.x;
        int64_t row = (b * p.headsQ + h) * p.seqQ + qi;
        lses[threadIdx.x] = qi < p.seqQ ? lseIn[row] : 0.f;
        deltas[threadIdx.x] = qi < p.seqQ ? delta[row] : 0.f;
      }
      __syncthreads();
      int64_t rows = min(int64_t(kKeyTile), p.seqQ - q0);
      for (int r = 0; r < rows; ++r) {
        float s = 0.f, dp = 0.f;
#pragma unroll
        for (int c = 0; c < kQuarter; ++c) {
          s += qs[r * D + sub + 4 * c] * kr[c];
          dp += dos[r * D + sub + 4 * c] * vr[c];
        }
        s += __shfl_xor_sync(0xffffffffu, s, 1);
        s += __shfl_xor_sync(0xffffffffu, s, 2);
        dp += __shfl_xor_sync(0xffffffffu, dp, 1);
        dp += __shfl_xor_sync(0xffffffffu, dp, 2);
        bool vis = key < p.seqK && visible(p, q0 + r, key, kvLength, prefix);
        float pj = vis ? __expf(s - lses[r]) : 0.f;
        float ds = pj * (dp - deltas[r]);
#pragma unroll
        for (int c = 0; c < kQuarter; ++c) {
          dvAcc[c] += pj * dos[r * D + sub + 4 * c];
          dkAcc[c] += ds * qs[r * D + sub + 4 * c];
        }
      }
    }
  }
  if (key < p.seqK) {
#pragma unroll
    for (int c = 0; c < kQuarter; ++c) {
      store(dk + keyAt + sub + 4 * c, dkAcc[c]);
      store(dv + keyAt + sub + 4 * c, dvAcc[c]);
    }
  }
}

ShapeText attentionShape(const char *kernel, const AttentionShape &s) {
  ShapeText shape(kernel);
  shape("batch", s.batch)("seqQ", s.seqQ)("seqK", s.seqK)("headsQ", s.headsQ)(
      "headsKV", s.headsKV)("headDim", s.headDim)("causal", s.causal)
      .dtype(s.dtype);
  return shape;
}

Status validateAttention(const AttentionShape &s, const ShapeText &shape,
                         std::initializer_list<const void *> tensors,
                         std::initializer_list<const void *> floats) {
  if (s.batch < 1 || s.seqQ < 1 || s.seqK < 1 || s.headsQ < 1 ||
      s.headsKV < 1)
    return fail(shape, "dimensions must be positive");
  if (s.headDim != 64 && s.headDim != 80 && s.headDim != 128)
    return fail(shape, "head dimension must be 64, 80 or 128");
  if (s.headsQ % s.headsKV)
    return fail(shape, "headsQ must be a multiple of headsKV");
  if (s.batch > 65535 || s.headsQ > 65535 ||
      (s.seqQ + kQueryTile - 1) / kQueryTile > INT32_MAX)
    return fail(shape, "grid too large");
  if (!isFloatType(s.dtype))
    return fail(shape, "element type must be f32 or bf16");
  for (const void *p : tensors)
    if (!p || !aligned(p, elementBytes(s.dtype)))
      return fail(shape, "tensors must be non-null and aligned");
  for (const void *p : floats)
    if (!p || !aligned(p, 4))
      return fail(shape, "fp32 buffers must be non-null and aligned");
  return Status::success();
}

Params paramsOf(const AttentionShape &s) {
  return Params{s.seqQ,
                s.seqK,
                s.headsQ,
                s.headsKV,
                s.scale != 0.f ? s.scale
                               : 1.f / std::sqrt(static_cast<float>(s.headDim)),
                s.causal,
                s.kvLengths,
                s.prefixLengths};
}

template <typename T, int D, bool Grad>
Status launchQueryKernel(Context &ctx, const AttentionShape &s,
                         const ShapeText &shape, const void *q, const void *k,
                         const void *v, void *o, float *lse, const void *dout,
                         const float *delta, void *dq) {
  size_t smem = sizeof(float) * ((Grad ? 2 : 1) * kQueryTile * D +
                                 2 * kKeyTile * (D + 1));
  auto kernel = queryKernel<T, D, Grad>;
  if (Status st = check(cudaFuncSetAttribute(
                            kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                            static_cast<int>(smem)),
                        shape, "cudaFuncSetAttribute");
      !st)
    return st;
  dim3 grid(static_cast<unsigned>((s.seqQ + kQueryTile - 1) / kQueryTile),
            static_cast<unsigned>(s.headsQ), static_cast<unsigned>(s.batch));
  kernel<<<grid, kThreads, smem, streamOf(ctx)>>>(
      paramsOf(s), static_cast<const T *>(q), static_cast<const T *>(k),
      static_cast<const T *>(v), static_cast<T *>(o), lse,
      static_cast<const T *>(dout), lse, delta, static_cast<T *>(dq));
  return checkLaunch(shape);
}

template <typename F> Status dispatchHeadDim(int64_t headDim, F &&f) {
  switch (headDim) {
  case 64: return f(std::integral_constant<int, 64>{});
  case 80: return f(std::integral_constant<int, 80>{});
  default: return f(std::integral_constant<int, 128>{});
  }
}

} // namespace

Status attentionForward(Context &ctx, const AttentionShape &s, const void *q,
                        const void *k, const void *v, void *o, float *lse) {
  ShapeText shape = attentionShape("attentionForward", s);
  if (Status st = validateAttention(s, shape, {q, k, v, o}, {lse}); !st)
    return st;
  return dispatchFloat(s.dtype, [&](auto tag) {
    using T = decltype(tag);
    return dispatchHeadDim(s.headDim, [&](auto dim) {
      return launchQueryKernel<T, decltype(dim)::value, false>(
          ctx, s, shape, q, k, v, o, lse, nullptr, nullptr, nullptr);
    });
  });
}

size_t attentionBackwardWorkspace(const AttentionShape &s) {
  return static_cast<size_t>(s.batch * s.headsQ * s.seqQ) * sizeof(float);
}

Status attentionBackward(Context &ctx, const AttentionShape &s, const void *q,
                         const void *k, const void *v, const void *o,
                         const float *lse, const void *dout, void *dq,
                         void *dk, void *dv, void *workspace) {
  ShapeText shape = attentionShape("attentionBackward", s);
  if (Status st = validateAttention(s, shape, {q, k, v, o, dout, dq, dk, dv},
                                    {lse, workspace});
      !st)
    return st;
  float *delta = static_cast<float *>(workspace);
  Params params = paramsOf(s);
  return dispatchFloat(s.dtype, [&](auto tag) {
    using T = decltype(tag);
    int64_t rows = s.batch * s.seqQ * s.headsQ;
    deltaKernel<T><<<blocksFor(rows * 32, 256, 65535), 256, 0, streamOf(ctx)>>>(
        s.batch, s.seqQ, s.headsQ, s.headDim, static_cast<const T *>(o),
        static_cast<const T *>(dout), delta);
    if (Status st = checkLaunch(shape); !st)
      return st;
    return dispatchHeadDim(s.headDim, [&](auto dim) {
      constexpr int D = decltype(dim)::value;
      // lse is read through the query kernel's lse argument.
      if (Status st = launchQueryKernel<T, D, true>(
              ctx, s, shape, q, k, v, nullptr, const_cast<float *>(lse), dout,
              delta, dq);
          !st)
        return st;
      dim3 grid(static_cast<unsigned>((s.seqK + kKeyTile - 1) / kKeyTile),
                static_cast<unsigned>(s.headsKV),
                static_cast<unsigned>(s.batch));
      keyKernel<T, D><<<grid, kThreads, 0, streamOf(ctx)>>>(
          params, static_cast<const T *>(q), static_cast<const T *>(k),
          static_cast<const T *>(v), static_cast<const T *>(dout), lse, delta,
          static_cast<T *>(dk), static_cast<T *>(dv));
      return checkLaunch(shape);
    });
  });
}

} // namespace vlora::kernels::cuda
