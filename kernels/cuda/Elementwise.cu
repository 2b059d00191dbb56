//===- Elementwise.cu - activations, rotary, dropout, embedding -----------===//
//
// Elementwise kernels run one functor through mapKernel: when every tensor
// is 16-byte aligned, each thread moves 64 bytes of every input in 16-byte
// loads (all in flight before use) per tile, the last n % 8 elements are a
// scalar tail; otherwise a grid-stride scalar loop. Rotary, the embedding
// gather and the scatter read rows in packs when the row sizes allow.
//
//===----------------------------------------------------------------------===//

#include "vlora/kernels/cuda/Elementwise.h"
#include "vlora/kernels/reference/Philox.h"

#include "Primitives.cuh"

namespace vlora::kernels::cuda {
using namespace detail;

namespace {

constexpr int kThreads = 256;
constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kInvSqrt2 = 0.7071067811865476f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;

#define VLORA_GRID_STRIDE(i, n)                                                \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n);    \
       i += int64_t(gridDim.x) * blockDim.x)

//===----------------------------------------------------------------------===//
// The elementwise engine
//===----------------------------------------------------------------------===//

/// Elements per item: one bf16 pack or two fp32 packs.
constexpr int kItem = 8;

/// Pointer lists of the engine (kCount may be 0 for no outputs... not used).
template <typename T, int kCount> struct Tensors { T *at[kCount]; };

/// out[j][i] = op(i, in[0][i], ...) for i < n. Op: `void operator()(int64_t
/// i, const float (&in)[kIn], float (&out)[kOut]) const`. kVector: every
/// pointer is 16-byte aligned; a block handles tiles of kItems items per
/// thread, the last n % kItem elements are done by block 0 one by one.
template <typename TIn, typename TOut, int kIn, int kOut, bool kVector,
          typename Op>
__global__ void __launch_bounds__(kThreads)
    mapKernel(int64_t n, Tensors<const TIn, kIn> in, Tensors<TOut, kOut> out,
              Op op) {
  if constexpr (!kVector) {
    VLORA_GRID_STRIDE(i, n) {
      float a[kIn], r[kOut];
#pragma unroll
      for (int j = 0; j < kIn; ++j)
        a[j] = load(in.at[j] + i);
      op(i, a, r);
#pragma unroll
      for (int j = 0; j < kOut; ++j)
        store(out.at[j] + i, r[j]);
    }
  } else {
    // 64 bytes of each (widest) tensor per thread and tile.
    constexpr int kItems =
        64 /
        (kItem * (sizeof(TIn) > sizeof(TOut) ? sizeof(TIn) : sizeof(TOut)));
    constexpr int64_t kTile = int64_t(kItems) * kThreads;
    int64_t items = n / kItem;
    for (int64_t base = int64_t(blockIdx.x) * kTile + threadIdx.x; base < items;
         base += int64_t(gridDim.x) * kTile) {
      Packs<TIn, kItem> v[kIn][kItems];
#pragma unroll
      for (int k = 0; k < kItems; ++k) {
        int64_t item = base + k * kThreads;
#pragma unroll
        for (int j = 0; j < kIn; ++j)
          if (item < items)
            v[j][k].load(in.at[j] + item * kItem);
      }
#pragma unroll
      for (int k = 0; k < kItems; ++k) {
        int64_t item = base + k * kThreads;
        if (item >= items)
          continue;
        float r[kOut][kItem];
#pragma unroll
        for (int e = 0; e < kItem; ++e) {
          float a[kIn], o[kOut];
#pragma unroll
          for (int j = 0; j < kIn; ++j)
            a[j] = v[j][k][e];
          op(item * kItem + e, a, o);
#pragma unroll
          for (int j = 0; j < kOut; ++j)
            r[j][e] = o[j];
        }
#pragma unroll
        for (int j = 0; j < kOut; ++j)
          storePacks(out.at[j] + item * kItem, r[j]);
      }
    }
    int64_t tail = items * kItem + threadIdx.x;
    if (blockIdx.x == 0 && tail < n) {
      float a[kIn], r[kOut];
#pragma unroll
      for (int j = 0; j < kIn; ++j)
        a[j] = load(in.at[j] + tail);
      op(tail, a, r);
#pragma unroll
      for (int j = 0; j < kOut; ++j)
        store(out.at[j] + tail, r[j]);
    }
  }
}

/// Launches mapKernel over n elements: vectorised when every tensor is
/// 16-byte aligned.
template <typename TIn, typename TOut, int kIn, int kOut, typename Op>
Status launchMap(Context &ctx, const ShapeText &shape, int64_t n,
                 const Tensors<const TIn, kIn> &in,
                 const Tensors<TOut, kOut> &out, const Op &op) {
  bool vector = true;
  for (int j = 0; j < kIn; ++j)
    vector = vector && aligned(in.at[j], 16);
  for (int j = 0; j < kOut; ++j)
    vector = vector && aligned(out.at[j], 16);
  cudaStream_t stream = streamOf(ctx);
  if (vector) {
    constexpr int kItems =
        64 /
        (kItem * (sizeof(TIn) > sizeof(TOut) ? sizeof(TIn) : sizeof(TOut)));
    mapKernel<TIn, TOut, kIn, kOut, true, Op>
        <<<blocksFor(n / kItem, kThreads * kItems), kThreads, 0, stream>>>(
            n, in, out, op);
  } else {
    mapKernel<TIn, TOut, kIn, kOut, false, Op>
        <<<blocksFor(n, kThreads), kThreads, 0, stream>>>(n, in, out, op);
  }
  return checkLaunch(shape);
}

/// 1 / (1 + e) rounded correctly (MUFU.RCP and one Newton step, no slow
/// division path); 0 for e = inf.
__device__ __forceinline__ float reciprocalOnePlus(float e) {
  return __frcp_rn(1.f + e);
}

/// GELU, tanh form: 0.5·v·(1 + tanh(u)) = v·σ(2u), u = √(2/π)(v + 0.044715v³),
/// so one exp and one reciprocal instead of tanhf. σ(2u) = 1/(1 + e) with
/// e = exp(-2u) is accurate in relative terms everywhere (no cancellation).
struct GeluTanhForward {
  __device__ void operator()(int64_t, const float (&a)[1],
                             float (&r)[1]) const {
    float v = a[0];
    float e = expf(-2.f * kSqrt2OverPi * (v + 0.044715f * v * v * v));
    r[0] = v * reciprocalOnePlus(e);
  }
};
/// d/dv of the tanh form: with s = σ(2u), 1 + t = 2s, 1 - t² = 4s(1 - s),
/// 1 - s = e·s: s + 2v·s·(1 - s)·√(2/π)(1 + 3·0.044715v²).
struct GeluTanhBackward {
  __device__ void operator()(int64_t, const float (&a)[2],
                             float (&r)[1]) const {
    float v = a[0], dy = a[1];
    float e = expf(-2.f * kSqrt2OverPi * (v + 0.044715f * v * v * v));
    float s = reciprocalOnePlus(e);
    float slope = s == 0.f ? 0.f : s * (e * s); // s·(1 - s); e = inf: 0
    // A zero slope wins over an overflowing polynomial (|v| > 1e19).
    r[0] = dy * (s + (slope == 0.f ? 0.f
                                   : 2.f * v * slope * kSqrt2OverPi *
                                         (1.f + 3.f * 0.044715f * v * v)));
  }
};
struct GeluErfForward {
  __device__ void operator()(int64_t, const float (&a)[1],
                             float (&r)[1]) const {
    float v = a[0];
    r[0] = v * (0.5f * (1.f + erff(v * kInvSqrt2)));
  }
};
struct GeluErfBackward {
  __device__ void operator()(int64_t, const float (&a)[2],
                             float (&r)[1]) const {
    float v = a[0];
    float cdf = 0.5f * (1.f + erff(v * kInvSqrt2));
    r[0] = a[1] * (cdf + v * kInvSqrt2Pi * __expf(-0.5f * v * v));
  }
};

/// silu(g)·u and its gradients; s = 1/(1 + exp(-g)).
struct SiluGateForward {
  __device__ void operator()(int64_t, const float (&a)[2],
                             float (&r)[1]) const {
    float g = a[0], s = reciprocalOnePlus(__expf(-g));
    r[0] = g * s * a[1];
  }
};
struct SiluGateBackward {
  __device__ void operator()(int64_t, const float (&a)[3],
                             float (&r)[2]) const {
    float g = a[0], u = a[1], d = a[2];
    float s = reciprocalOnePlus(__expf(-g));
    r[0] = d * u * s * (1.f + g * (1.f - s));
    r[1] = d * g * s;
  }
};

struct Dropout {
  float p, scale;
  uint64_t seed, offset;
  __device__ void operator()(int64_t i, const float (&a)[1],
                             float (&r)[1]) const {
    bool keep = philox::keep(seed, offset + static_cast<uint64_t>(i), p);
    r[0] = keep ? a[0] * scale : 0.f;
  }
};

struct Identity {
  __device__ void operator()(int64_t, const float (&a)[1],
                             float (&r)[1]) const {
    r[0] = a[0];
  }
};

template <typename T>
__global__ void rotaryKernel(RotaryShape s, const T *x, const float *cos,
                             const float *sin, const int32_t *positions,
                             bool inverse, T *y) {
  int64_t half = s.rotaryDim / 2;
  int64_t vectors = s.batch * s.seq * s.heads;
  int64_t n = vectors * (half + (s.headDim - s.rotaryDim));
  int64_t perVector = half + (s.headDim - s.rotaryDim);
  VLORA_GRID_STRIDE(i, n) {
    int64_t vec = i / perVector, j = i % perVector;
    int64_t token = vec / s.heads; // b * seq + position index
    const T *xr = x + vec * s.headDim;
    T *yr = y + vec * s.headDim;
    if (j >= half) { // features past the rotary part are copied
      int64_t c = s.rotaryDim + (j - half);
      store(yr + c, load(xr + c));
      continue;
    }
    int64_t pos = positions ? positions[token] : token % s.seq;
    if (pos < 0 || pos >= s.maxPositions) {
      store(yr + j, 0.f);
      store(yr + j + half, 0.f);
      continue;
    }
    float c = cos[pos * half + j], sn = sin[pos * half + j];
    if (inverse)
      sn = -sn;
    float x1 = load(xr + j), x2 = load(xr + j + half);
    store(yr + j, x1 * c - x2 * sn);
    store(yr + j + half, x2 * c + x1 * sn);
  }
}

/// 16-byte packs of the rotary: perVector = rotated packs (halfPacks, each
/// W pairs) + copied packs per head vector; total < 2^31 (32-bit index
/// arithmetic).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    rotaryPackKernel(uint32_t total, uint32_t perVector, uint32_t halfPacks,
                     uint32_t heads, uint32_t seq, int headDim, int rotaryDim,
                     int64_t maxPositions, const T *x, const float *cos,
                     const float *sin, const int32_t *positions, bool inverse,
                     T *y) {
  constexpr int W = Pack<T>::kSize;
  int half = rotaryDim / 2;
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += gridDim.x * blockDim.x) {
    uint32_t vec = i / perVector, j = i - vec * perVector;
    const T *xr = x + int64_t(vec) * headDim;
    T *yr = y + int64_t(vec) * headDim;
    if (j >= halfPacks) { // features past the rotary part are copied
      int c = rotaryDim + static_cast<int>(j - halfPacks) * W;
      storeRaw(yr + c, loadRaw(xr + c));
      continue;
    }
    uint32_t token = vec / heads; // b * seq + position index
    int64_t pos = positions ? positions[token] : token % seq;
    int jj = static_cast<int>(j) * W;
    if (pos < 0 || pos >= maxPositions) {
      storeRaw(yr + jj, zeroRaw<T>());
      storeRaw(yr + jj + half, zeroRaw<T>());
      continue;
    }
    Packs<float, W> c, sn;
    Packs<T, W> x1, x2;
    c.load(cos + pos * half + jj);
    sn.load(sin + pos * half + jj);
    x1.load(xr + jj);
    x2.load(xr + jj + half);
    float out1[W], out2[W];
#pragma unroll
    for (int e = 0; e < W; ++e) {
      float s = inverse ? -sn[e] : sn[e];
      out1[e] = x1[e] * c[e] - x2[e] * s;
      out2[e] = x2[e] * c[e] + x1[e] * s;
    }
    storePacks(yr + jj, out1);
    storePacks(yr + jj + half, out2);
  }
}

/// One warp per token (no division by dim): kVector copies 16-byte packs
/// (dim a multiple of the pack, aligned tensors), else elements.
template <typename T, bool kVector>
__global__ void __launch_bounds__(kThreads)
    embeddingForwardKernel(int64_t tokens, int64_t dim, int64_t vocab,
                           const T *table, const int64_t *ids, T *out) {
  constexpr int W = kVector ? Pack<T>::kSize : 1;
  int lane = threadIdx.x % 32;
  int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  int64_t units = dim / W;
  for (int64_t t = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
       t < tokens; t += warps) {
    int64_t id = ids[t];
    bool valid = id >= 0 && id < vocab;
    const T *src = table + (valid ? id : 0) * dim;
    T *dst = out + t * dim;
#pragma unroll 4
    for (int64_t u = lane; u < units; u += 32) {
      if constexpr (kVector)
        storeRaw(dst + u * W, valid ? loadRaw(src + u * W) : zeroRaw<T>());
      else
        dst[u] = valid ? src[u] : T(0.f);
    }
  }
}

/// One warp per token: dtable[id, :] += dout[t, :] by atomic adds.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    embeddingBackwardKernel(int64_t tokens, int64_t dim, int64_t vocab,
                            const T *dout, const int64_t *ids, float *dtable) {
  int lane = threadIdx.x % 32;
  int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  for (int64_t t = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
       t < tokens; t += warps) {
    int64_t id = ids[t];
    if (id < 0 || id >= vocab)
      continue;
    const T *src = dout + t * dim;
    float *dst = dtable + id * dim;
#pragma unroll 4
    for (int64_t j = lane; j < dim; j += 32)
      atomicAdd(dst + j, load(src + j));
  }
}

Status validateFlat(int64_t n, DType dtype, const ShapeText &shape,
                    std::initializer_list<const void *> tensors) {
  if (n < 1)
    return fail(shape, "the element count must be positive");
  if (!isFloatType(dtype))
    return fail(shape, "element type must be f32 or bf16");
  for (const void *p : tensors)
    if (!p || !aligned(p, elementBytes(dtype)))
      return fail(shape, "tensors must be non-null and aligned");
  return Status::success();
}

ShapeText flatShape(const char *kernel, int64_t n, DType dtype) {
  ShapeText shape(kernel);
  shape("n", n).dtype(dtype);
  return shape;
}

} // namespace

Status geluForward(Context &ctx, int64_t n, DType dtype, const void *x,
                   GeluApproximation approximation, void *y) {
  ShapeText shape = flatShape("geluForward", n, dtype);
  if (Status st = validateFlat(n, dtype, shape, {x, y}); !st)
    return st;
  return dispatchFloat(dtype, [&](auto tag) {
    using T = decltype(tag);
    Tensors<const T, 1> in{{static_cast<const T *>(x)}};
    Tensors<T, 1> out{{static_cast<T *>(y)}};
    if (approximation == GeluApproximation::Tanh)
      return launchMap(ctx, shape, n, in, out, GeluTanhForward{});
    return launchMap(ctx, shape, n, in, out, GeluErfForward{});
  });
}

Status geluBackward(Context &ctx, int64_t n, DType dtype, const void *x,
                    const void *dy, GeluApproximation approximation,
                    void *dx) {
  ShapeText shape = flatShape("geluBackward", n, dtype);
  if (Status st = validateFlat(n, dtype, shape, {x, dy, dx}); !st)
    return st;
  return dispatchFloat(dtype, [&](auto tag) {
    using T = decltype(tag);
    Tensors<const T, 2> in{
        {static_cast<const T *>(x), static_cast<const T *>(dy)}};
    Tensors<T, 1> out{{static_cast<T *>(dx)}};
    if (approximation == GeluApproximation::Tanh)
      return launchMap(ctx, shape, n, in, out, GeluTanhBackward{});
    return launchMap(ctx, shape, n, in, out, GeluErfBackward{});
  });
}

Status siluGateForward(Context &ctx, int64_t n, DType dtype, const void *gate,
                       const void *up, void *y) {
  ShapeText shape = flatShape("siluGateForward", n, dtype);
  if (Status st = validateFlat(n, dtype, shape, {gate, up, y}); !st)
    return st;
  return dispatchFloat(dtype, [&](auto tag) {
    using T = decltype(tag);
    Tensors<const T, 2> in{
        {static_cast<const T *>(gate), static_cast<const T *>(up)}};
    Tensors<T, 1> out{{static_cast<T *>(y)}};
    return launchMap(ctx, shape, n, in, out, SiluGateForward{});
  });
}

Status siluGateBackward(Context &ctx, int64_t n, DType dtype, const void *gate,
                        const void *up, const void *dy, void *dgate,
                        void *dup) {
  ShapeText shape = flatShape("siluGateBackward", n, dtype);
  if (Status st = validateFlat(n, dtype, shape, {gate, up, dy, dgate, dup});
      !st)
    return st;
  return dispatchFloat(dtype, [&](auto tag) {
    using T = decltype(tag);
    Tensors<const T, 3> in{{static_cast<const T *>(gate),
                            static_cast<const T *>(up),
                            static_cast<const T *>(dy)}};
    Tensors<T, 2> out{{static_cast<T *>(dgate), static_cast<T *>(dup)}};
    return launchMap(ctx, shape, n, in, out, SiluGateBackward{});
  });
}

Status rotary(Context &ctx, const RotaryShape &s, const void *x,
              const float *cos, const float *sin, const int32_t *positions,
              bool inverse, void *y) {
  ShapeText shape("rotary");
  shape("batch", s.batch)("seq", s.seq)("heads", s.heads)("headDim", s.headDim)(
      "rotaryDim", s.rotaryDim)("maxPositions", s.maxPositions)
      .dtype(s.dtype);
  if (s.batch < 1 || s.seq < 1 || s.heads < 1 || s.headDim < 1)
    return fail(shape, "dimensions must be positive");
  if (s.rotaryDim < 2 || s.rotaryDim % 2 || s.rotaryDim > s.headDim)
    return fail(shape, "rotaryDim must be even, >= 2 and <= headDim");
  if (s.maxPositions < 1 || (!positions && s.maxPositions < s.seq))
    return fail(shape, "the cos/sin tables must cover every position");
  if (!cos || !sin || !aligned(cos, 4) || !aligned(sin, 4))
    return fail(shape, "cos and sin must be non-null fp32");
  if (Status st = validateFlat(1, s.dtype, shape, {x, y}); !st)
    return st;
  int64_t vectors = s.batch * s.seq * s.heads;
  int64_t width =
      s.dtype == DType::BF16 ? Pack<bf16>::kSize : Pack<float>::kSize;
  int64_t half = s.rotaryDim / 2;
  int64_t perVector = half / width + (s.headDim - s.rotaryDim) / width;
  bool packed = half % width == 0 && (s.headDim - s.rotaryDim) % width == 0 &&
                aligned16({x, y, cos, sin}) &&
                vectors * perVector < (int64_t(1) << 31) &&
                s.heads < (int64_t(1) << 31) && s.seq < (int64_t(1) << 31);
  int64_t n = vectors * (half + s.headDim - s.rotaryDim);
  return dispatchFloat(s.dtype, [&](auto tag) {
    using T = decltype(tag);
    if (packed) {
      int64_t total = vectors * perVector;
      rotaryPackKernel<T>
          <<<blocksFor(total, kThreads), kThreads, 0, streamOf(ctx)>>>(
              static_cast<uint32_t>(total), static_cast<uint32_t>(perVector),
              static_cast<uint32_t>(half / width),
              static_cast<uint32_t>(s.heads), static_cast<uint32_t>(s.seq),
              static_cast<int>(s.headDim), static_cast<int>(s.rotaryDim),
              s.maxPositions, static_cast<const T *>(x), cos, sin, positions,
              inverse, static_cast<T *>(y));
      return checkLaunch(shape);
    }
    rotaryKernel<T><<<blocksFor(n, kThreads), kThreads, 0, streamOf(ctx)>>>(
        s, static_cast<const T *>(x), cos, sin, positions, inverse,
        static_cast<T *>(y));
    return checkLaunch(shape);
  });
}

Status dropout(Context &ctx, int64_t n, DType dtype, const void *x, float p,
               uint64_t seed, uint64_t offset, void *y) {
  ShapeText shape = flatShape("dropout", n, dtype);
  shape("p", p);
  if (Status st = validateFlat(n, dtype, shape, {x, y}); !st)
    return st;
  if (!(p >= 0.f && p <= 1.f))
    return fail(shape, "p must be in [0, 1]");
  Dropout op{p, p < 1.f ? 1.f / (1.f - p) : 0.f, seed, offset};
  return dispatchFloat(dtype, [&](auto tag) {
    using T = decltype(tag);
    return launchMap(ctx, shape, n,
                     Tensors<const T, 1>{{static_cast<const T *>(x)}},
                     Tensors<T, 1>{{static_cast<T *>(y)}}, op);
  });
}

Status embeddingForward(Context &ctx, int64_t tokens, int64_t dim,
                        int64_t vocab, DType dtype, const void *table,
                        const int64_t *ids, void *out) {
  ShapeText shape("embeddingForward");
  shape("tokens", tokens)("dim", dim)("vocab", vocab).dtype(dtype);
  if (tokens < 1 || dim < 1 || vocab < 1)
    return fail(shape, "dimensions must be positive");
  if (!ids || !aligned(ids, 8))
    return fail(shape, "ids must be non-null int64");
  if (Status st = validateFlat(tokens * dim, dtype, shape, {table, out}); !st)
    return st;
  int64_t width = dtype == DType::BF16 ? Pack<bf16>::kSize : Pack<float>::kSize;
  bool packed = dim % width == 0 && aligned16({table, out});
  unsigned blocks = blocksFor(tokens, kThreads / 32);
  return dispatchFloat(dtype, [&](auto tag) {
    using T = decltype(tag);
    auto kernel = packed ? embeddingForwardKernel<T, true>
                         : embeddingForwardKernel<T, false>;
    kernel<<<blocks, kThreads, 0, streamOf(ctx)>>>(
        tokens, dim, vocab, static_cast<const T *>(table), ids,
        static_cast<T *>(out));
    return checkLaunch(shape);
  });
}

Status embeddingBackward(Context &ctx, int64_t tokens, int64_t dim,
                         int64_t vocab, DType dtype, const void *dout,
                         const int64_t *ids, float *dtable) {
  ShapeText shape("embeddingBackward");
  shape("tokens", tokens)("dim", dim)("vocab", vocab).dtype(dtype);
  if (tokens < 1 || dim < 1 || vocab < 1)
    return fail(shape, "dimensions must be positive");
  if (!ids || !aligned(ids, 8) || !dtable || !aligned(dtable, 4))
    return fail(shape, "ids (int64) and dtable (fp32) must be non-null");
  if (Status st = validateFlat(tokens * dim, dtype, shape, {dout}); !st)
    return st;
  return dispatchFloat(dtype, [&](auto tag) {
    using T = decltype(tag);
    embeddingBackwardKernel<T>
        <<<blocksFor(tokens, kThreads / 32), kThreads, 0, streamOf(ctx)>>>(
            tokens, dim, vocab, static_cast<const T *>(dout), ids, dtable);
    return checkLaunch(shape);
  });
}

Status convert(Context &ctx, int64_t n, DType from, const void *x, DType to,
               void *y) {
  ShapeText shape = flatShape("convert", n, from);
  shape("to", ShapeText::dtypeText(to));
  if (Status st = validateFlat(n, from, shape, {x}); !st)
    return st;
  if (Status st = validateFlat(n, to, shape, {y}); !st)
    return st;
  return dispatchFloat(from, [&](auto fromTag) {
    return dispatchFloat(to, [&](auto toTag) {
      using From = decltype(fromTag);
      using To = decltype(toTag);
      return launchMap(ctx, shape, n,
                       Tensors<const From, 1>{{static_cast<const From *>(x)}},
                       Tensors<To, 1>{{static_cast<To *>(y)}}, Identity{});
    });
  });
}

} // namespace vlora::kernels::cuda
