//===- Elementwise.cu - activations, rotary, dropout, embedding -----------===//

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

template <typename T>
__global__ void geluKernel(int64_t n, const T *x, const T *dy, bool tanhApprox,
                           T *out) {
  VLORA_GRID_STRIDE(i, n) {
    float v = load(x + i);
    float result;
    if (tanhApprox) {
      float t = tanhf(kSqrt2OverPi * (v + 0.044715f * v * v * v));
      result = dy ? load(dy + i) *
                        (0.5f * (1.f + t) + 0.5f * v * (1.f - t * t) *
                                                kSqrt2OverPi *
                                                (1.f + 3.f * 0.044715f * v * v))
                  : 0.5f * v * (1.f + t);
    } else {
      float cdf = 0.5f * (1.f + erff(v * kInvSqrt2));
      result = dy ? load(dy + i) * (cdf + v * kInvSqrt2Pi * __expf(-0.5f * v * v))
                  : v * cdf;
    }
    store(out + i, result);
  }
}

template <typename T>
__global__ void siluGateKernel(int64_t n, const T *gate, const T *up,
                               const T *dy, T *out, T *dup) {
  VLORA_GRID_STRIDE(i, n) {
    float g = load(gate + i), u = load(up + i);
    float s = 1.f / (1.f + __expf(-g));
    if (!dy) {
      store(out + i, g * s * u);
    } else {
      float d = load(dy + i);
      store(out + i, d * u * s * (1.f + g * (1.f - s)));
      store(dup + i, d * g * s);
    }
  }
}

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

template <typename T>
__global__ void dropoutKernel(int64_t n, const T *x, float p, uint64_t seed,
                              uint64_t offset, T *y) {
  float scale = p < 1.f ? 1.f / (1.f - p) : 0.f;
  VLORA_GRID_STRIDE(i, n) {
    bool keep = philox::keep(seed, offset + static_cast<uint64_t>(i), p);
    store(y + i, keep ? load(x + i) * scale : 0.f);
  }
}

template <typename T>
__global__ void embeddingForwardKernel(int64_t tokens, int64_t dim,
                                       int64_t vocab, const T *table,
                                       const int64_t *ids, T *out) {
  VLORA_GRID_STRIDE(i, tokens * dim) {
    int64_t t = i / dim, j = i % dim, id = ids[t];
    out[i] = id >= 0 && id < vocab ? table[id * dim + j] : T(0.f);
  }
}

template <typename T>
__global__ void embeddingBackwardKernel(int64_t tokens, int64_t dim,
                                        int64_t vocab, const T *dout,
                                        const int64_t *ids, float *dtable) {
  VLORA_GRID_STRIDE(i, tokens * dim) {
    int64_t t = i / dim, j = i % dim, id = ids[t];
    if (id >= 0 && id < vocab)
      atomicAdd(dtable + id * dim + j, load(dout + i));
  }
}

template <typename From, typename To>
__global__ void convertKernel(int64_t n, const From *x, To *y) {
  VLORA_GRID_STRIDE(i, n) { store(y + i, load(x + i)); }
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
    geluKernel<T><<<blocksFor(n, kThreads), kThreads, 0, streamOf(ctx)>>>(
        n, static_cast<const T *>(x), nullptr,
        approximation == GeluApproximation::Tanh, static_cast<T *>(y));
    return checkLaunch(shape);
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
    geluKernel<T><<<blocksFor(n, kThreads), kThreads, 0, streamOf(ctx)>>>(
        n, static_cast<const T *>(x), static_cast<const T *>(dy),
        approximation == GeluApproximation::Tanh, static_cast<T *>(dx));
    return checkLaunch(shape);
  });
}

Status siluGateForward(Context &ctx, int64_t n, DType dtype, const void *gate,
                       const void *up, void *y) {
  ShapeText shape = flatShape("siluGateForward", n, dtype);
  if (Status st = validateFlat(n, dtype, shape, {gate, up, y}); !st)
    return st;
  return dispatchFloat(dtype, [&](auto tag) {
    using T = decltype(tag);
    siluGateKernel<T><<<blocksFor(n, kThreads), kThreads, 0, streamOf(ctx)>>>(
        n, static_cast<const T *>(gate), static_cast<const T *>(up), nullptr,
        static_cast<T *>(y), nullptr);
    return checkLaunch(shape);
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
    siluGateKernel<T><<<blocksFor(n, kThreads), kThreads, 0, streamOf(ctx)>>>(
        n, static_cast<const T *>(gate), static_cast<const T *>(up),
        static_cast<const T *>(dy), static_cast<T *>(dgate),
        static_cast<T *>(dup));
    return checkLaunch(shape);
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
  int64_t n = s.batch * s.seq * s.heads *
              (s.rotaryDim / 2 + s.headDim - s.rotaryDim);
  return dispatchFloat(s.dtype, [&](auto tag) {
    using T = decltype(tag);
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
  return dispatchFloat(dtype, [&](auto tag) {
    using T = decltype(tag);
    dropoutKernel<T><<<blocksFor(n, kThreads), kThreads, 0, streamOf(ctx)>>>(
        n, static_cast<const T *>(x), p, seed, offset, static_cast<T *>(y));
    return checkLaunch(shape);
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
  return dispatchFloat(dtype, [&](auto tag) {
    using T = decltype(tag);
    embeddingForwardKernel<T>
        <<<blocksFor(tokens * dim, kThreads), kThreads, 0, streamOf(ctx)>>>(
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
        <<<blocksFor(tokens * dim, kThreads), kThreads, 0, streamOf(ctx)>>>(
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
      convertKernel<From, To>
          <<<blocksFor(n, kThreads), kThreads, 0, streamOf(ctx)>>>(
              n, static_cast<const From *>(x), static_cast<To *>(y));
      return checkLaunch(shape);
    });
  });
}

} // namespace vlora::kernels::cuda
