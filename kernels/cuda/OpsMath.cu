//===- OpsMath.cu - CUDA twins of the linear-algebra and training ops -----===//
//
// matmul, lora_matmul (with dropout, and its backward), softmax, layer and
// RMS norm, the causal-LM cross-entropy family, the softmax and layer-norm
// backward passes, the global norm and AdamW, with the semantics of
// kernels/cpu (Linalg.cpp, Normalization.cpp, Training.cpp). GEMMs go
// through cuBLASLt (Gemm.h) without TF32, so f32 results match the CPU
// backend's to rounding (f64 matmul: a plain kernel; the LoRA and linear
// cross-entropy ops take f32 only); the other kernels are written here because
// the library's row kernels (Normalization.h, Loss.h, Optimizer.h) differ in
// contract: fp32 gamma, saved statistics, host-side step and learning rate,
// no label checks. They accumulate in double where the CPU does, reduce in a
// fixed order (results do not vary from run to run) and round the element
// arithmetic of AdamW and the dropout exactly as the CPU does (no
// multiply-add contraction).
//
// Scratch memory (the LoRA products, the dropped-out input, the logits of a
// linear cross-entropy chunk, per-row losses, partial sums) comes from
// cudaMallocAsync and goes back with cudaFreeAsync on the context's stream:
// stream-ordered, so it is reused as soon as the queued work is done, and
// capturable into a CUDA graph as memory nodes. Scalars that change from
// step to step (the dropout rng, AdamW's lr, step and weight decay, the
// loss gradient) are read by the kernels from device memory, never by the
// host, so a captured graph replays with new values.
//
//===----------------------------------------------------------------------===//

#include "vlora/kernels/Cpu.h"
#include "vlora/kernels/cuda/Gemm.h"
#include "vlora/kernels/cuda/Ops.h"
#include "vlora/kernels/reference/Philox.h"

#include "OpsCommon.cuh"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace vlora::kernels::cuda::ops {
using namespace detail;

namespace {

constexpr int kThreads = 256;

//===----------------------------------------------------------------------===//
// Host helpers: messages, shapes, scratch memory, GEMM
//===----------------------------------------------------------------------===//

std::string tensorText(const TensorRef &t) {
  std::string text = dtypeName(t.dtype);
  text += "[";
  for (size_t i = 0; i < t.shape.size(); ++i)
    text += (i ? ", " : "") + std::to_string(t.shape[i]);
  return text + "]";
}

/// "op [name=f32[2, 3], ...]" for the messages.
ShapeText describe(
    const char *op,
    std::initializer_list<std::pair<const char *, const TensorRef *>> tensors) {
  ShapeText text(op);
  for (const auto &[name, tensor] : tensors)
    if (tensor)
      text(name, tensorText(*tensor));
  return text;
}

bool allOf(DType dtype, std::initializer_list<const TensorRef *> tensors) {
  for (const TensorRef *t : tensors)
    if (t && t->dtype != dtype)
      return false;
  return true;
}

/// Calls f(T{}) with T = float or double; other types are refused.
template <typename F>
Status dispatchF32F64(DType dtype, const ShapeText &shape, F &&f) {
  if (dtype == DType::F32)
    return f(float{});
  if (dtype == DType::F64)
    return f(double{});
  return fail(shape, std::string("unsupported element type ") +
                         dtypeName(dtype) + " (f32 and f64 are supported)");
}

/// Device memory for one op call, allocated and freed in stream order.
class Scratch {
public:
  explicit Scratch(cudaStream_t stream) : stream_(stream) {}
  ~Scratch() {
    for (void *block : blocks_)
      cudaFreeAsync(block, stream_);
  }
  Scratch(const Scratch &) = delete;
  Scratch &operator=(const Scratch &) = delete;

  template <typename T>
  Status allocate(int64_t count, T *&out, const ShapeText &shape) {
    void *block = nullptr;
    size_t bytes = std::max<size_t>(static_cast<size_t>(count) * sizeof(T), 16);
    if (Status s = check(cudaMallocAsync(&block, bytes, stream_), shape,
                         "cudaMallocAsync (scratch)");
        !s)
      return s;
    blocks_.push_back(block);
    out = static_cast<T *>(block);
    return Status::success();
  }

private:
  cudaStream_t stream_;
  std::vector<void *> blocks_;
};

/// bf16 -> f32, exact (bf16 is the upper half of an f32).
__global__ void widenBF16Kernel(int64_t n, const uint16_t *__restrict__ in,
                                float *__restrict__ out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = __uint_as_float(uint32_t(in[i]) << 16);
}

/// `t` itself, or, when it is bf16 (a --vlora-mixed-precision weight or
/// activation), an exact f32 copy of it in `scratch`: the matmul family then
/// runs its f32 path, as the CPU kernels do.
Status widenedWeight(Context &ctx, const ShapeText &shape, Scratch &scratch,
                     const TensorRef &t, TensorRef &out) {
  out = t;
  if (t.dtype != DType::BF16)
    return Status::success();
  int64_t n = numElements(t.shape);
  float *wide = nullptr;
  if (Status s = scratch.allocate(n, wide, shape); !s)
    return s;
  if (n > 0) {
    widenBF16Kernel<<<blocksFor(n, kThreads, 4096), kThreads, 0,
                      streamOf(ctx)>>>(n, t.as<const uint16_t>(), wide);
    if (Status s = checkLaunch(shape); !s)
      return s;
  }
  out.data = wide;
  out.dtype = DType::F32;
  return Status::success();
}

/// x·scale rounded to the nearest bf16 (ties to even): into `out16` as bf16
/// bits, or in place as f32 when `out16` is null. What f32_result's products
/// read (the CPU: a float multiply, then roundToBFloat16).
__global__ void scaleRoundBF16Kernel(int64_t n, float *__restrict__ x,
                                     float scale,
                                     uint16_t *__restrict__ out16) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    float v = scale == 1.0f ? x[i] : __fmul_rn(x[i], scale);
    uint32_t bits = __float_as_uint(v);
    uint16_t r = (bits & 0x7fffffffu) > 0x7f800000u
                     ? static_cast<uint16_t>((bits >> 16) | 0x40u)
                     : static_cast<uint16_t>(
                           (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
    if (out16)
      out16[i] = r;
    else
      x[i] = __uint_as_float(uint32_t(r) << 16);
  }
}

Status scaleRound(Context &ctx, const ShapeText &shape, void *x, int64_t n,
                  float scale, void *out16) {
  if (n == 0)
    return Status::success();
  scaleRoundBF16Kernel<<<blocksFor(n, kThreads, 4096), kThreads, 0,
                         streamOf(ctx)>>>(n, static_cast<float *>(x), scale,
                                          static_cast<uint16_t *>(out16));
  return checkLaunch(shape);
}

/// A bf16 copy of f32 `t` in `scratch`, each value rounded to nearest even.
Status roundedToBF16(Context &ctx, const ShapeText &shape, Scratch &scratch,
                     const TensorRef &t, TensorRef &out) {
  int64_t n = numElements(t.shape);
  uint16_t *narrow = nullptr;
  if (Status s = scratch.allocate(n, narrow, shape); !s)
    return s;
  if (n > 0) {
    // The kernel reads x (not written when it writes out16).
    scaleRoundBF16Kernel<<<blocksFor(n, kThreads, 4096), kThreads, 0,
                           streamOf(ctx)>>>(
        n, const_cast<float *>(t.as<const float>()), 1.0f, narrow);
    if (Status s = checkLaunch(shape); !s)
      return s;
  }
  out = t;
  out.data = narrow;
  out.dtype = DType::BF16;
  return Status::success();
}

/// One GEMM operand as the ops see it.
struct Operand {
  const void *data = nullptr;
  int64_t ld = 0;
  bool transpose = false;
  int64_t batchStride = 0; // elements
};

/// The f64 GEMM (cuBLASLt's path is fp32/bf16 only): one thread per
/// element of d, the products summed in order in double. Simple, not fast:
/// f64 programs are references, not training runs.
__global__ void gemmF64Kernel(int64_t m, int64_t n, int64_t k, const double *a,
                              int64_t lda, bool ta, int64_t strideA,
                              const double *b, int64_t ldb, bool tb,
                              int64_t strideB, double *d, int64_t batch,
                              double alpha, double beta) {
  int64_t total = batch * m * n;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total;
       e += int64_t(gridDim.x) * blockDim.x) {
    int64_t j = e % n, i = (e / n) % m, batchIndex = e / (m * n);
    const double *ab = a + batchIndex * strideA;
    const double *bb = b + batchIndex * strideB;
    double sum = 0;
    for (int64_t p = 0; p < k; ++p) {
      double x = ta ? ab[p * lda + i] : ab[i * lda + p];
      double y = tb ? bb[j * ldb + p] : bb[p * ldb + j];
      sum = __dadd_rn(sum, __dmul_rn(x, y));
    }
    d[e] = beta == 0 ? alpha * sum : alpha * sum + beta * d[e];
  }
}

/// d [batch][m, n] (contiguous, leading dimension n) = alpha·op(a)·op(b) +
/// beta·d, beta 0 or 1. Empty problems are no-ops; k == 0 gives beta·d (as
/// the CPU's gemm).
Status runGemm(Context &ctx, const ShapeText &shape, DType inType,
               DType outType, int64_t m, int64_t n, int64_t k, Operand a,
               Operand b, void *d, int64_t batch, double alpha, double beta) {
  if (m == 0 || n == 0 || batch == 0)
    return Status::success();
  if (k == 0) {
    if (beta != 0)
      return Status::success();
    return check(
        cudaMemsetAsync(d, 0,
                        static_cast<size_t>(batch * m * n) * dtypeSize(outType),
                        streamOf(ctx)),
        shape, "cudaMemsetAsync");
  }
  if (inType == DType::F64) {
    if (outType != DType::F64)
      return fail(shape, "f64 operands need an f64 result");
    gemmF64Kernel<<<blocksFor(batch * m * n, kThreads), kThreads, 0,
                    streamOf(ctx)>>>(
        m, n, k, static_cast<const double *>(a.data), a.ld, a.transpose,
        a.batchStride, static_cast<const double *>(b.data), b.ld, b.transpose,
        b.batchStride, static_cast<double *>(d), batch, alpha, beta);
    return checkLaunch(shape);
  }
  GemmArgs g;
  g.m = m;
  g.n = n;
  g.k = k;
  g.batch = batch;
  g.a.data = a.data;
  g.a.dtype = inType;
  g.a.ld = a.ld;
  g.a.transpose = a.transpose;
  g.a.batchStride = a.batchStride;
  g.b.data = b.data;
  g.b.dtype = inType;
  g.b.ld = b.ld;
  g.b.transpose = b.transpose;
  g.b.batchStride = b.batchStride;
  g.d = d;
  g.dDtype = outType;
  g.ldd = n;
  g.batchStrideD = m * n;
  g.alpha = static_cast<float>(alpha);
  g.beta = static_cast<float>(beta);
  g.allowTF32 = false; // the CPU backend's numbers
  if (Status s = gemm(ctx, g); !s)
    return fail(shape, s.message());
  return Status::success();
}

unsigned rowBlocks(int64_t rows) {
  return static_cast<unsigned>(std::clamp<int64_t>(rows, 1, int64_t(1) << 20));
}

//===----------------------------------------------------------------------===//
// Device helpers
//===----------------------------------------------------------------------===//

// Rounded arithmetic that the compiler may not contract into multiply-adds,
// so element formulas round as the CPU's do.
__device__ __forceinline__ float mulRn(float a, float b) {
  return __fmul_rn(a, b);
}
__device__ __forceinline__ double mulRn(double a, double b) {
  return __dmul_rn(a, b);
}
__device__ __forceinline__ float addRn(float a, float b) {
  return __fadd_rn(a, b);
}
__device__ __forceinline__ double addRn(double a, double b) {
  return __dadd_rn(a, b);
}
__device__ __forceinline__ float subRn(float a, float b) {
  return __fsub_rn(a, b);
}
__device__ __forceinline__ double subRn(double a, double b) {
  return __dsub_rn(a, b);
}
__device__ __forceinline__ float divRn(float a, float b) {
  return __fdiv_rn(a, b);
}
__device__ __forceinline__ double divRn(double a, double b) {
  return __ddiv_rn(a, b);
}
__device__ __forceinline__ float sqrtRn(float a) { return __fsqrt_rn(a); }
__device__ __forceinline__ double sqrtRn(double a) { return __dsqrt_rn(a); }
__device__ __forceinline__ float expOf(float a) { return expf(a); }
__device__ __forceinline__ double expOf(double a) { return exp(a); }

template <typename T> __device__ __forceinline__ T negativeInfinity() {
  return -std::numeric_limits<T>::infinity();
}

/// Sum over the block (blockDim.x a multiple of 32); every thread gets the
/// result, combined in a fixed order.
template <typename T> __device__ T blockSumOf(T v) {
  __shared__ T partial[32];
  for (int offset = 16; offset > 0; offset >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  __syncthreads(); // partial may still be read by a previous call
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0)
    partial[warp] = v;
  __syncthreads();
  v = lane < static_cast<int>(blockDim.x / 32) ? partial[lane] : T(0);
  for (int offset = 16; offset > 0; offset >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

/// Maximum over the block (NaN is skipped, as std::max skips it).
template <typename T> __device__ T blockMaxOf(T v) {
  __shared__ T partial[32];
  for (int offset = 16; offset > 0; offset >>= 1) {
    T other = __shfl_xor_sync(0xffffffffu, v, offset);
    v = other > v ? other : v;
  }
  __syncthreads();
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0)
    partial[warp] = v;
  __syncthreads();
  v = lane < static_cast<int>(blockDim.x / 32) ? partial[lane]
                                               : negativeInfinity<T>();
  for (int offset = 16; offset > 0; offset >>= 1) {
    T other = __shfl_xor_sync(0xffffffffu, v, offset);
    v = other > v ? other : v;
  }
  return v;
}

/// The row's max as the CPU takes it: NaN skipped; all -inf gives 0.
template <typename T> __device__ T rowMax(const T *row, int64_t size) {
  T max = negativeInfinity<T>();
  for (int64_t j = threadIdx.x; j < size; j += blockDim.x)
    max = row[j] > max ? row[j] : max;
  max = blockMaxOf(max);
  if (isinf(max) && max < 0)
    max = 0;
  return max;
}

//===----------------------------------------------------------------------===//
// Dropout (the mask of docs/training.md, drawn on the device)
//===----------------------------------------------------------------------===//

/// out = x ⊙ keep · s, keep[i] = philox::keep(streamSeed(rng[0], rng[1],
/// stream), i, p).
template <typename T>
__global__ void dropoutKernel(const T *x, const int64_t *rng, uint64_t stream,
                              float p, T s, int64_t n, T *out) {
  uint64_t key = philox::streamSeed(static_cast<uint64_t>(rng[0]),
                                    static_cast<uint64_t>(rng[1]), stream);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] =
        philox::keep(key, static_cast<uint64_t>(i), p) ? mulRn(x[i], s) : T(0);
}

/// dx[i] += t[i]·s where element i is kept.
template <typename T>
__global__ void dropoutAddKernel(const T *t, const int64_t *rng,
                                 uint64_t stream, float p, T s, int64_t n,
                                 T *dx) {
  uint64_t key = philox::streamSeed(static_cast<uint64_t>(rng[0]),
                                    static_cast<uint64_t>(rng[1]), stream);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    if (philox::keep(key, static_cast<uint64_t>(i), p))
      dx[i] = addRn(dx[i], mulRn(t[i], s));
}

//===----------------------------------------------------------------------===//
// Softmax and its backward
//===----------------------------------------------------------------------===//

/// One block per row of a contiguous [rows, size] tensor.
template <typename T>
__global__ void softmaxRowsKernel(const T *x, T *y, int64_t rows, int64_t size,
                                  bool log) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T *xr = x + row * size;
    T *yr = y + row * size;
    T max = rowMax(xr, size);
    double sum = 0;
    for (int64_t j = threadIdx.x; j < size; j += blockDim.x)
      sum += exp(static_cast<double>(xr[j] - max));
    sum = blockSumOf(sum);
    if (log) {
      T lse = static_cast<T>(::log(sum));
      for (int64_t j = threadIdx.x; j < size; j += blockDim.x)
        yr[j] = xr[j] - max - lse;
    } else {
      T inv = static_cast<T>(1.0 / sum);
      for (int64_t j = threadIdx.x; j < size; j += blockDim.x)
        yr[j] = mulRn(expOf(xr[j] - max), inv);
    }
  }
}

/// One thread per line along a non-last axis: [outer, size, inner].
template <typename T>
__global__ void softmaxLinesKernel(const T *x, T *y, int64_t outer,
                                   int64_t size, int64_t inner, bool log) {
  int64_t lines = outer * inner;
  for (int64_t line = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
       line < lines; line += int64_t(gridDim.x) * blockDim.x) {
    int64_t base = (line / inner) * size * inner + line % inner;
    const T *xs = x + base;
    T *ys = y + base;
    T max = negativeInfinity<T>();
    for (int64_t j = 0; j < size; ++j)
      max = xs[j * inner] > max ? xs[j * inner] : max;
    if (isinf(max) && max < 0)
      max = 0;
    double sum = 0;
    for (int64_t j = 0; j < size; ++j)
      sum += exp(static_cast<double>(xs[j * inner] - max));
    if (log) {
      T lse = static_cast<T>(::log(sum));
      for (int64_t j = 0; j < size; ++j)
        ys[j * inner] = xs[j * inner] - max - lse;
    } else {
      T inv = static_cast<T>(1.0 / sum);
      for (int64_t j = 0; j < size; ++j)
        ys[j * inner] = mulRn(expOf(xs[j * inner] - max), inv);
    }
  }
}

/// dx = y·(dy - Σ dy·y), one block per row.
template <typename T>
__global__ void softmaxGradRowsKernel(const T *dy, const T *y, T *dx,
                                      int64_t rows, int64_t size) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T *dyr = dy + row * size, *yr = y + row * size;
    T *dxr = dx + row * size;
    double dot = 0;
    for (int64_t j = threadIdx.x; j < size; j += blockDim.x)
      dot += static_cast<double>(dyr[j]) * static_cast<double>(yr[j]);
    T s = static_cast<T>(blockSumOf(dot));
    for (int64_t j = threadIdx.x; j < size; j += blockDim.x) {
      T yj = yr[j], dyj = dyr[j]; // read before a possible in-place write
      dxr[j] = mulRn(yj, subRn(dyj, s));
    }
  }
}

template <typename T>
__global__ void softmaxGradLinesKernel(const T *dy, const T *y, T *dx,
                                       int64_t outer, int64_t size,
                                       int64_t inner) {
  int64_t lines = outer * inner;
  for (int64_t line = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
       line < lines; line += int64_t(gridDim.x) * blockDim.x) {
    int64_t base = (line / inner) * size * inner + line % inner;
    double dot = 0;
    for (int64_t j = 0; j < size; ++j) {
      int64_t at = base + j * inner;
      dot += static_cast<double>(dy[at]) * static_cast<double>(y[at]);
    }
    T s = static_cast<T>(dot);
    for (int64_t j = 0; j < size; ++j) {
      int64_t at = base + j * inner;
      T yj = y[at], dyj = dy[at];
      dx[at] = mulRn(yj, subRn(dyj, s));
    }
  }
}

//===----------------------------------------------------------------------===//
// Layer norm, RMS norm and the layer-norm backward (rows over [axis, rank))
//===----------------------------------------------------------------------===//

/// mean and 1/sqrt(var + eps) of one row, in double (two passes).
template <typename T>
__device__ void rowMoments(const T *x, int64_t size, double epsilon,
                           double &mean, double &rstd) {
  double sum = 0;
  for (int64_t j = threadIdx.x; j < size; j += blockDim.x)
    sum += static_cast<double>(x[j]);
  mean = blockSumOf(sum) / static_cast<double>(size);
  double var = 0;
  for (int64_t j = threadIdx.x; j < size; j += blockDim.x) {
    double d = static_cast<double>(x[j]) - mean;
    var = __dadd_rn(var, __dmul_rn(d, d));
  }
  var = blockSumOf(var) / static_cast<double>(size);
  rstd = 1.0 / sqrt(var + epsilon);
}

template <typename T>
__global__ void layerNormKernel(const T *x, const T *gamma, const T *beta, T *y,
                                int64_t rows, int64_t size, double epsilon) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T *xr = x + row * size;
    T *yr = y + row * size;
    double mean, rstd;
    rowMoments(xr, size, epsilon, mean, rstd);
    for (int64_t j = threadIdx.x; j < size; j += blockDim.x) {
      T v = mulRn(static_cast<T>((static_cast<double>(xr[j]) - mean) * rstd),
                  gamma[j]);
      yr[j] = beta ? addRn(v, beta[j]) : v;
    }
  }
}

template <typename T>
__global__ void rmsNormKernel(const T *x, const T *gamma, T *y, int64_t rows,
                              int64_t size, double epsilon) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T *xr = x + row * size;
    T *yr = y + row * size;
    double ss = 0;
    for (int64_t j = threadIdx.x; j < size; j += blockDim.x) {
      double v = static_cast<double>(xr[j]);
      ss = __dadd_rn(ss, __dmul_rn(v, v));
    }
    ss = blockSumOf(ss);
    double r = 1.0 / sqrt(ss / static_cast<double>(size) + epsilon);
    for (int64_t j = threadIdx.x; j < size; j += blockDim.x)
      yr[j] = mulRn(static_cast<T>(static_cast<double>(xr[j]) * r), gamma[j]);
  }
}

/// dx = rstd·(g - mean(g) - xhat·mean(g·xhat)), g = dy·gamma (in double).
template <typename T>
__global__ void layerNormGradKernel(const T *dy, const T *x, const T *gamma,
                                    T *dx, int64_t rows, int64_t size,
                                    double epsilon) {
  double count = static_cast<double>(size);
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T *xr = x + row * size, *dyr = dy + row * size;
    T *dxr = dx + row * size;
    double mean, rstd;
    rowMoments(xr, size, epsilon, mean, rstd);
    double sumG = 0, sumGX = 0;
    for (int64_t j = threadIdx.x; j < size; j += blockDim.x) {
      double g = __dmul_rn(static_cast<double>(dyr[j]), gamma[j]);
      sumG += g;
      sumGX = __dadd_rn(sumGX, __dmul_rn(__dmul_rn(g, xr[j] - mean), rstd));
    }
    double meanG = blockSumOf(sumG) / count;
    double meanGX = blockSumOf(sumGX) / count;
    // Every element of the row was read above the reductions' barriers:
    // dx may be dy's or x's bytes.
    for (int64_t j = threadIdx.x; j < size; j += blockDim.x) {
      double g = __dmul_rn(static_cast<double>(dyr[j]), gamma[j]);
      double xhat = __dmul_rn(static_cast<double>(xr[j]) - mean, rstd);
      dxr[j] = static_cast<T>(
          __dmul_rn(rstd, __dsub_rn(g - meanG, __dmul_rn(xhat, meanGX))));
    }
  }
}

//===----------------------------------------------------------------------===//
// Causal-LM cross-entropy
//===----------------------------------------------------------------------===//

/// The label row b·S + s predicts (labels[row + 1]), or -1: last position,
/// ignore index, or out of range (recorded by countLabelsKernel).
__device__ __forceinline__ int64_t targetOf(const int64_t *labels, int64_t row,
                                            int64_t seq, int64_t vocab,
                                            int64_t ignoreIndex) {
  if (row % seq == seq - 1)
    return -1;
  int64_t label = labels[row + 1];
  if (label == ignoreIndex || label < 0 || label >= vocab)
    return -1;
  return label;
}

/// valid[0] = the number of shifted labels that are neither ignored nor out
/// of range; the first out-of-range one is recorded. One block.
__global__ void countLabelsKernel(const int64_t *labels, int64_t batch,
                                  int64_t seq, int64_t vocab,
                                  int64_t ignoreIndex, OpId op,
                                  DataError *error, int64_t *valid) {
  unsigned long long count = 0;
  for (int64_t i = threadIdx.x; i < batch * seq; i += blockDim.x) {
    if (i % seq == 0)
      continue; // position 0 is nobody's target
    int64_t label = labels[i];
    if (label == ignoreIndex)
      continue;
    if (label < 0 || label >= vocab) {
      recordDataError(error, DataErrorCode::LabelOutOfRange, op, label, 0,
                      vocab);
      continue;
    }
    ++count;
  }
  count = blockSumOf(count);
  if (threadIdx.x == 0)
    *valid = static_cast<int64_t>(count);
}

/// losses[row] = logsumexp(x[row]) - x[row, label] (0 where no label).
template <typename T>
__global__ void crossEntropyRowsKernel(const T *x, const int64_t *labels,
                                       int64_t rows, int64_t seq, int64_t vocab,
                                       int64_t ignoreIndex, double *losses) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    int64_t label = targetOf(labels, row, seq, vocab, ignoreIndex);
    if (label < 0) { // the same for the whole block
      if (threadIdx.x == 0)
        losses[row] = 0;
      continue;
    }
    const T *xr = x + row * vocab;
    T max = rowMax(xr, vocab);
    double sum = 0;
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x)
      sum += static_cast<double>(expOf(static_cast<T>(xr[j] - max)));
    sum = blockSumOf(sum);
    if (threadIdx.x == 0)
      losses[row] = static_cast<double>(max) + ::log(sum) -
                    static_cast<double>(xr[label]);
  }
}

/// out (f32) = Σ losses / valid, NaN when valid == 0. One block; the sum's
/// order is fixed.
__global__ void meanLossKernel(const double *losses, int64_t rows,
                               const int64_t *valid, float *out) {
  double total = 0;
  for (int64_t i = threadIdx.x; i < rows; i += blockDim.x)
    total += losses[i];
  total = blockSumOf(total);
  if (threadIdx.x == 0) {
    int64_t n = *valid;
    *out = static_cast<float>(n ? total / static_cast<double>(n)
                                : std::numeric_limits<double>::quiet_NaN());
  }
}

/// dloss / valid · (softmax - onehot) at rows with a label, 0 elsewhere.
template <typename T>
__global__ void
crossEntropyGradKernel(const float *dloss, const T *x, const int64_t *labels,
                       const int64_t *valid, T *y, int64_t rows, int64_t seq,
                       int64_t vocab, int64_t ignoreIndex) {
  int64_t n = *valid;
  double coef = n ? static_cast<double>(*dloss) / static_cast<double>(n) : 0.0;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    int64_t label = n ? targetOf(labels, row, seq, vocab, ignoreIndex) : -1;
    const T *xr = x + row * vocab;
    T *yr = y + row * vocab;
    if (label < 0) {
      for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x)
        yr[j] = T(0);
      continue;
    }
    T max = rowMax(xr, vocab);
    double sum = 0;
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x)
      sum += static_cast<double>(expOf(static_cast<T>(xr[j] - max)));
    double inv = 1.0 / blockSumOf(sum);
    // Each element is read (above, and just before its write) by the thread
    // that writes it: y may be x's bytes.
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
      double p = __dmul_rn(
          static_cast<double>(expOf(static_cast<T>(xr[j] - max))), inv);
      yr[j] = static_cast<T>(__dmul_rn(p - (j == label ? 1.0 : 0.0), coef));
    }
  }
}

/// On a chunk of logits rows [c0, c0 + cn) of the linear cross-entropy:
/// losses[row] as crossEntropyRowsKernel, then the row becomes the logits'
/// gradient (0 where the row has no label).
template <typename T>
__global__ void
linearCrossEntropyRowsKernel(T *logits, const int64_t *labels, int64_t c0,
                             int64_t cn, int64_t seq, int64_t vocab,
                             int64_t ignoreIndex, const int64_t *valid,
                             const float *dloss, double *losses) {
  int64_t n = *valid;
  double coef = n ? static_cast<double>(*dloss) / static_cast<double>(n) : 0.0;
  for (int64_t i = blockIdx.x; i < cn; i += gridDim.x) {
    int64_t row = c0 + i;
    T *lr = logits + i * vocab;
    int64_t label = targetOf(labels, row, seq, vocab, ignoreIndex);
    if (label < 0) {
      for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x)
        lr[j] = T(0);
      if (threadIdx.x == 0)
        losses[row] = 0;
      continue;
    }
    T atLabel = lr[label]; // every thread reads it before any write
    T max = rowMax(lr, vocab);
    double sum = 0;
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x)
      sum += static_cast<double>(expOf(static_cast<T>(lr[j] - max)));
    sum = blockSumOf(sum);
    if (threadIdx.x == 0)
      losses[row] =
          static_cast<double>(max) + ::log(sum) - static_cast<double>(atLabel);
    double scale = coef / sum;
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
      T v = static_cast<T>(__dmul_rn(
          static_cast<double>(expOf(static_cast<T>(lr[j] - max))), scale));
      if (j == label)
        v = static_cast<T>(static_cast<double>(v) - coef);
      lr[j] = v;
    }
  }
}

//===----------------------------------------------------------------------===//
// Global norm
//===----------------------------------------------------------------------===//

/// One tensor of a sum-of-squares launch: `blocks` partial sums from
/// partials[offset].
struct NormTensor {
  const void *data;
  int64_t size;
  int64_t offset;
  int32_t blocks;
  int32_t kind; // 0 f32, 1 f64, 2 bf16
};
constexpr int kNormTensorsPerLaunch = 32;
constexpr int64_t kMaxNormBlocks = 128;
struct NormLaunch {
  NormTensor tensors[kNormTensorsPerLaunch];
};

__global__ void sumSquaresKernel(NormLaunch launch, double *partials) {
  const NormTensor &t = launch.tensors[blockIdx.y];
  if (blockIdx.x >= static_cast<unsigned>(t.blocks))
    return; // the whole block
  double sum = 0;
  int64_t stride = int64_t(t.blocks) * blockDim.x;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < t.size;
       i += stride) {
    double v = t.kind == 0
                   ? static_cast<double>(static_cast<const float *>(t.data)[i])
               : t.kind == 1 ? static_cast<const double *>(t.data)[i]
                             : static_cast<double>(__bfloat162float(
                                   static_cast<const bf16 *>(t.data)[i]));
    sum = __dadd_rn(sum, __dmul_rn(v, v));
  }
  sum = blockSumOf(sum);
  if (threadIdx.x == 0)
    partials[t.offset + blockIdx.x] = sum;
}

/// out (f32) = sqrt(Σ partials), one block, fixed order.
__global__ void normFinishKernel(const double *partials, int64_t count,
                                 float *out) {
  double total = 0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x)
    total += partials[i];
  total = blockSumOf(total);
  if (threadIdx.x == 0)
    *out = static_cast<float>(sqrt(total));
}

//===----------------------------------------------------------------------===//
// AdamW
//===----------------------------------------------------------------------===//

/// One torch AdamW step (Training.cpp's adamW); the scalars are read and the
/// step's factors computed in double once per block.
template <typename T>
__global__ void
adamWKernel(const T *param, const T *grad, const T *expAvg, const T *expAvgSq,
            const float *lrPtr, const int64_t *stepPtr, const float *decayPtr,
            const float *gradScalePtr, T *newParam, T *newExpAvg,
            T *newExpAvgSq, int64_t n, double beta1, double beta2, double eps,
            DataError *error) {
  __shared__ T factors[3]; // decay, -step size, sqrt(bias correction 2)
  __shared__ int ok;
  if (threadIdx.x == 0) {
    int64_t step = *stepPtr;
    float lrF = *lrPtr, decayF = *decayPtr;
    double lr = lrF, weightDecay = decayF;
    ok = step >= 1 && lr >= 0 && weightDecay >= 0;
    if (!ok && blockIdx.x == 0) {
      if (step < 1)
        recordDataError(error, DataErrorCode::BadStep, OpId::AdamW, step, 1, 0);
      else
        recordDataError(error, DataErrorCode::NegativeScalar, OpId::AdamW,
                        __float_as_int(lr >= 0 ? decayF : lrF), 0, 0);
    }
    if (ok) {
      double t = static_cast<double>(step);
      double biasCorrection1 = 1 - pow(beta1, t);
      double biasCorrection2 = 1 - pow(beta2, t);
      factors[0] = static_cast<T>(__dsub_rn(1.0, __dmul_rn(lr, weightDecay)));
      factors[1] = static_cast<T>(-__ddiv_rn(lr, biasCorrection1));
      factors[2] = static_cast<T>(__dsqrt_rn(biasCorrection2));
    }
  }
  __syncthreads();
  if (!ok)
    return; // the outputs stay as they are
  const T decay = factors[0], negStep = factors[1], bc2Sqrt = factors[2];
  const bool scaled = gradScalePtr != nullptr;
  const T gradScale = scaled ? static_cast<T>(*gradScalePtr) : T(1);
  const T weight1 = static_cast<T>(1 - beta1), b2 = static_cast<T>(beta2),
          weight2 = static_cast<T>(1 - beta2), epsT = static_cast<T>(eps);
  const bool smallWeight = fabs(1 - beta1) < 0.5; // torch's lerp
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    // Read everything first: the outputs may be the inputs' bytes.
    T g = scaled ? mulRn(grad[i], gradScale) : grad[i];
    T p = mulRn(param[i], decay), m = expAvg[i], v = expAvgSq[i];
    m = smallWeight ? addRn(m, mulRn(weight1, subRn(g, m)))
                    : subRn(g, mulRn(subRn(g, m), subRn(T(1), weight1)));
    v = mulRn(v, b2);
    v = addRn(v, mulRn(mulRn(weight2, g), g));
    T denom = addRn(divRn(sqrtRn(v), bc2Sqrt), epsT);
    newParam[i] = addRn(p, divRn(mulRn(negStep, m), denom));
    newExpAvg[i] = m;
    newExpAvgSq[i] = v;
  }
}

//===----------------------------------------------------------------------===//
// Shared host code of the LoRA ops
//===----------------------------------------------------------------------===//

Status checkLoraOperands(const ShapeText &shape, const TensorRef &x,
                         const TensorRef &w, const TensorRef &a,
                         const TensorRef &b,
                         std::initializer_list<const TensorRef *> more) {
  // w is read only by the frozen product, which may be a bf16 GEMM.
  if (x.dtype != DType::F32 || !allOf(DType::F32, {&a, &b}) ||
      !allOf(DType::F32, more) ||
      (w.dtype != DType::F32 && w.dtype != DType::BF16))
    return fail(shape, std::string("unsupported element type ") +
                           dtypeName(x.dtype) +
                           " (f32 only: the adapters are fp32 masters)");
  if (x.rank() < 1 || w.rank() != 2 || a.rank() != 2 || b.rank() != 2)
    return fail(shape, "x needs rank >= 1 and w, a, b rank 2");
  return Status::success();
}

Status checkRng(const ShapeText &shape, const TensorRef &rng) {
  if (rng.dtype != DType::I64 || numElements(rng.shape) != 2 || !rng.data)
    return fail(shape, "rng must be i64[2] [seed, counter] in device memory");
  return Status::success();
}

/// out = x ⊙ keep / (1 - p) into scratch.
Status applyDropout(Context &ctx, const ShapeText &shape, const float *x,
                    const TensorRef &rng, int64_t n, double dropout,
                    int64_t stream, float *out) {
  float s = static_cast<float>(1.0 / (1.0 - dropout));
  dropoutKernel<float><<<blocksFor(n, kThreads), kThreads, 0, streamOf(ctx)>>>(
      x, rng.as<const int64_t>(), static_cast<uint64_t>(stream),
      static_cast<float>(dropout), s, n, out);
  return checkLaunch(shape);
}

/// y = x·W(ᵀ) + scale·(x'·aᵀ)·bᵀ, x' dropped out when rng is non-null. The
/// frozen product reads `frozenX`·`frozenW`: x and w (f32), or the bf16
/// originals of a widened x and w (a bf16 GEMM, fp32 accumulation; the
/// products are exact, only the summation order differs from the f32 one).
Status loraForward(Context &ctx, const ShapeText &shape, const TensorRef &x,
                   const TensorRef &w, const TensorRef &a, const TensorRef &b,
                   const TensorRef *rng, const TensorRef &out, double scale,
                   double dropout, int64_t stream, bool transposeB,
                   const TensorRef &frozenX, const TensorRef &frozenW) {
  int64_t in = x.shape.back(), outDim = out.shape.back(), r = a.shape[0];
  int64_t rows = outDim ? numElements(out.shape) / outDim : 0;
  if (rows == 0 || outDim == 0)
    return Status::success();
  const float *px = x.as<const float>();
  float *y = out.as<float>();
  if (Status s = runGemm(ctx, shape, frozenX.dtype, DType::F32, rows, outDim,
                         in, {frozenX.data, in, false},
                         {frozenW.data, w.shape.back(), transposeB}, y, 1, 1.0,
                         0.0);
      !s)
    return s;
  if (r == 0)
    return Status::success();
  Scratch scratch(streamOf(ctx));
  const float *xp = px;
  if (rng) {
    float *xd = nullptr;
    if (Status s = scratch.allocate(rows * in, xd, shape); !s)
      return s;
    if (Status s =
            applyDropout(ctx, shape, px, *rng, rows * in, dropout, stream, xd);
        !s)
      return s;
    xp = xd;
  }
  float *u = nullptr;
  if (Status s = scratch.allocate(rows * r, u, shape); !s)
    return s;
  if (Status s = runGemm(ctx, shape, DType::F32, DType::F32, rows, r, in,
                         {xp, in, false}, {a.data, in, true}, u, 1, 1.0, 0.0);
      !s)
    return s;
  return runGemm(ctx, shape, DType::F32, DType::F32, rows, outDim, r,
                 {u, r, false}, {b.data, r, true}, y, 1, scale, 1.0);
}

/// Checks a causal-LM label tensor against [B, S].
Status checkLabels(const ShapeText &shape, const TensorRef &labels,
                   int64_t batch, int64_t seq) {
  if (labels.dtype != DType::I64 || labels.rank() != 2 ||
      labels.shape[0] != batch || labels.shape[1] != seq)
    return fail(shape, "labels must be i64 [B, S]");
  return Status::success();
}

/// Splits `shape` around `axis`: outer, size, inner.
void aroundAxis(const Shape &shape, int64_t axis, int64_t &outer, int64_t &size,
                int64_t &inner) {
  outer = 1;
  inner = 1;
  for (int64_t d = 0; d < axis; ++d)
    outer *= shape[d];
  for (size_t d = axis + 1; d < shape.size(); ++d)
    inner *= shape[d];
  size = shape[axis];
}

} // namespace

//===----------------------------------------------------------------------===//
// matmul
//===----------------------------------------------------------------------===//

Status matmul(Context &ctx, const TensorRef &lhs, const TensorRef &rhs,
              const TensorRef &out, bool transposeA, bool transposeB) {
  ShapeText shape =
      describe("matmul", {{"lhs", &lhs}, {"rhs", &rhs}, {"out", &out}});
  // An f32 activation with a bf16 weight (either side): the f32 path on the
  // weight widened exactly.
  if (out.dtype == DType::F32 &&
      ((lhs.dtype == DType::F32 && rhs.dtype == DType::BF16) ||
       (lhs.dtype == DType::BF16 && rhs.dtype == DType::F32))) {
    Scratch scratch(streamOf(ctx));
    TensorRef l, r;
    if (Status s = widenedWeight(ctx, shape, scratch, lhs, l); !s)
      return s;
    if (Status s = widenedWeight(ctx, shape, scratch, rhs, r); !s)
      return s;
    return matmul(ctx, l, r, out, transposeA, transposeB);
  }
  bool f32 = allOf(DType::F32, {&lhs, &rhs, &out});
  bool f64 = allOf(DType::F64, {&lhs, &rhs, &out});
  bool bf16In = allOf(DType::BF16, {&lhs, &rhs}) &&
                (out.dtype == DType::BF16 || out.dtype == DType::F32);
  if (!f32 && !f64 && !bf16In)
    return fail(shape, std::string("unsupported element type ") +
                           dtypeName(lhs.dtype) +
                           " (f32, f64, and bf16 with a bf16 or f32 result)");
  int64_t lr = lhs.rank(), rr = rhs.rank(), orank = out.rank();
  if (lr < 2 || rr < 2 || orank < 2)
    return fail(shape, "operands need rank >= 2");
  int64_t m = out.shape[orank - 2], n = out.shape[orank - 1];
  int64_t k = transposeA ? lhs.shape[lr - 2] : lhs.shape[lr - 1];
  int64_t lda = lhs.shape[lr - 1], ldb = rhs.shape[rr - 1];
  if (numElements(out.shape) == 0)
    return Status::success();
  DType in = lhs.dtype;
  // A plain linear layer: every row of lhs in one GEMM.
  if (rr == 2 && !transposeA)
    return runGemm(ctx, shape, in, out.dtype, numElements(out.shape) / n, n, k,
                   {lhs.data, lda, false}, {rhs.data, ldb, transposeB},
                   out.data, 1, 1.0, 0.0);
  // Batch dimensions (right-aligned, NumPy broadcasting): each operand's
  // stride in matrices, 0 where it is broadcast. Size-1 dimensions are
  // dropped and neighbours whose strides nest are merged; the innermost
  // remaining dimension is one strided-batched GEMM (stride 0 for a
  // broadcast operand), the others are a loop.
  int64_t nb = orank - 2;
  auto stridesOf = [&](const TensorRef &t) {
    int64_t tb = t.rank() - 2;
    std::vector<int64_t> strides(nb, 0);
    int64_t stride = 1;
    for (int64_t j = tb - 1; j >= 0; --j) {
      int64_t i = j + nb - tb;
      if (i >= 0 && t.shape[j] != 1)
        strides[i] = stride;
      stride *= t.shape[j];
    }
    return strides;
  };
  if (lr - 2 > nb || rr - 2 > nb)
    return fail(shape, "an operand has more batch dimensions than the result");
  std::vector<int64_t> sl = stridesOf(lhs), sr = stridesOf(rhs);
  struct Dim {
    int64_t size, l, r;
  };
  std::vector<Dim> dims;
  for (int64_t i = 0; i < nb; ++i) {
    Dim d{out.shape[i], sl[i], sr[i]};
    if (d.size == 1)
      continue;
    if (!dims.empty() && dims.back().l == d.l * d.size &&
        dims.back().r == d.r * d.size)
      dims.back() = {dims.back().size * d.size, d.l, d.r};
    else
      dims.push_back(d);
  }
  Dim innermost = dims.empty() ? Dim{1, 0, 0} : dims.back();
  if (!dims.empty())
    dims.pop_back();
  int64_t lm = lhs.shape[lr - 2] * lhs.shape[lr - 1];
  int64_t rm = rhs.shape[rr - 2] * rhs.shape[rr - 1];
  size_t inBytes = dtypeSize(in), outBytes = dtypeSize(out.dtype);
  int64_t outer = 1;
  for (const Dim &d : dims)
    outer *= d.size;
  std::vector<int64_t> index(dims.size(), 0);
  for (int64_t o = 0; o < outer; ++o) {
    int64_t lOff = 0, rOff = 0;
    for (size_t i = 0; i < dims.size(); ++i) {
      lOff += index[i] * dims[i].l;
      rOff += index[i] * dims[i].r;
    }
    const char *a = static_cast<const char *>(lhs.data) + lOff * lm * inBytes;
    const char *b = static_cast<const char *>(rhs.data) + rOff * rm * inBytes;
    char *d =
        static_cast<char *>(out.data) + o * innermost.size * m * n * outBytes;
    if (Status s = runGemm(ctx, shape, in, out.dtype, m, n, k,
                           {a, lda, transposeA, innermost.l * lm},
                           {b, ldb, transposeB, innermost.r * rm}, d,
                           innermost.size, 1.0, 0.0);
        !s)
      return s;
    for (int64_t i = static_cast<int64_t>(dims.size()) - 1; i >= 0; --i) {
      if (++index[i] < dims[i].size)
        break;
      index[i] = 0;
    }
  }
  return Status::success();
}

//===----------------------------------------------------------------------===//
// LoRA
//===----------------------------------------------------------------------===//

namespace {

/// lora_matmul with dropout drawn from `rng` when it is non-null.
Status loraMatmulImpl(Context &ctx, const ShapeText &shape, const TensorRef &x,
                      const TensorRef &w, const TensorRef &a,
                      const TensorRef &b, const TensorRef *rng,
                      const TensorRef &out, double scale, double dropout,
                      int64_t stream, bool transposeB) {
  // bf16 x and/or w with an f32 result (--vlora-mixed-precision): widened
  // exactly for the f32 path; when both are bf16 the frozen product is a
  // bf16 GEMM on the originals.
  Scratch scratch(streamOf(ctx));
  TensorRef wideX = x, wideW = w;
  bool bf16Frozen = x.dtype == DType::BF16 && w.dtype == DType::BF16 &&
                    out.dtype == DType::F32;
  if (out.dtype == DType::F32) {
    if (Status s = widenedWeight(ctx, shape, scratch, x, wideX); !s)
      return s;
    if (!bf16Frozen)
      if (Status s = widenedWeight(ctx, shape, scratch, w, wideW); !s)
        return s;
  }
  if (Status s = checkLoraOperands(shape, wideX, wideW, a, b, {&out}); !s)
    return s;
  bool drop = rng && dropout > 0;
  if (drop)
    if (Status s = checkRng(shape, *rng); !s)
      return s;
  return loraForward(ctx, shape, wideX, wideW, a, b, drop ? rng : nullptr, out,
                     scale, dropout, stream, transposeB,
                     bf16Frozen ? x : wideX, wideW);
}

Status loraGrad(Context &ctx, const ShapeText &shape, Scratch &scratch,
                const TensorRef &dy, const TensorRef &x, const TensorRef &w,
                const TensorRef &a, const TensorRef &b, const TensorRef *rng,
                const TensorRef &gradA, const TensorRef &gradB,
                const TensorRef *gradX, double scale, double dropout,
                int64_t stream, bool transposeB, const TensorRef &frozenDy,
                const TensorRef &frozenW);

} // namespace

Status loraMatmul(Context &ctx, const TensorRef &x, const TensorRef &w,
                  const TensorRef &a, const TensorRef &b, const TensorRef &out,
                  double scale, bool transposeB) {
  ShapeText shape =
      describe("lora_matmul",
               {{"x", &x}, {"w", &w}, {"a", &a}, {"b", &b}, {"out", &out}});
  return loraMatmulImpl(ctx, shape, x, w, a, b, nullptr, out, scale, 0.0, 0,
                        transposeB);
}

Status loraMatmulDropout(Context &ctx, const TensorRef &x, const TensorRef &w,
                         const TensorRef &a, const TensorRef &b,
                         const TensorRef &rng, const TensorRef &out,
                         double scale, double dropout, int64_t stream,
                         bool transposeB) {
  ShapeText shape =
      describe("lora_matmul",
               {{"x", &x}, {"w", &w}, {"a", &a}, {"b", &b}, {"out", &out}});
  shape("dropout", dropout)("stream", stream);
  return loraMatmulImpl(ctx, shape, x, w, a, b, &rng, out, scale, dropout,
                        stream, transposeB);
}

Status loraMatmulGrad(Context &ctx, const TensorRef &dy, const TensorRef &x,
                      const TensorRef &w, const TensorRef &a,
                      const TensorRef &b, const TensorRef *rng,
                      const TensorRef &gradA, const TensorRef &gradB,
                      const TensorRef *gradX, double scale, double dropout,
                      int64_t stream, bool transposeB) {
  ShapeText shape =
      describe("lora_matmul_grad",
               {{"dy", &dy}, {"x", &x}, {"w", &w}, {"a", &a}, {"b", &b}});
  shape("dropout", dropout)("stream", stream);
  Scratch scratch(streamOf(ctx));
  // bf16 x and/or w with an f32 dy (--vlora-mixed-precision): x widened
  // exactly for the low-rank products. With bf16 activations (x bf16) the
  // frozen product dy·Wᵀ reads dy rounded to bf16, as on the CPU: a bf16
  // GEMM when w is bf16, else the f32 path on the rounded values.
  TensorRef xIn = x, wIn = w, frozenDy = dy, frozenW = w;
  if (dy.dtype == DType::F32 &&
      (x.dtype == DType::BF16 || (gradX && w.dtype == DType::BF16))) {
    if (Status s = widenedWeight(ctx, shape, scratch, x, xIn); !s)
      return s;
    if (gradX && x.dtype == DType::BF16) {
      // dy rounded; a bf16 GEMM with a bf16 w, else f32 on the rounded dy.
      if (Status s = roundedToBF16(ctx, shape, scratch, dy, frozenDy); !s)
        return s;
      if (w.dtype != DType::BF16)
        if (Status s = widenedWeight(ctx, shape, scratch, frozenDy, frozenDy);
            !s)
          return s;
    } else if (gradX) {
      // f32 x with a bf16 weight: the f32 path on the widened weight.
      if (Status s = widenedWeight(ctx, shape, scratch, w, wIn); !s)
        return s;
      frozenW = wIn;
    }
  }
  return loraGrad(ctx, shape, scratch, dy, xIn, wIn, a, b, rng, gradA, gradB,
                  gradX, scale, dropout, stream, transposeB, frozenDy, frozenW);
}

namespace {
/// lora_matmul_grad on f32 dy, x, w, a, b; the frozen product of dx reads
/// frozenDy·frozenW (dy and w, or both bf16).
Status loraGrad(Context &ctx, const ShapeText &shape, Scratch &scratch,
                const TensorRef &dy, const TensorRef &x, const TensorRef &w,
                const TensorRef &a, const TensorRef &b, const TensorRef *rng,
                const TensorRef &gradA, const TensorRef &gradB,
                const TensorRef *gradX, double scale, double dropout,
                int64_t stream, bool transposeB, const TensorRef &frozenDy,
                const TensorRef &frozenW) {
  if (Status s =
          checkLoraOperands(shape, x, w, a, b, {&dy, &gradA, &gradB, gradX});
      !s)
    return s;
  if (dy.rank() < 1)
    return fail(shape, "dy needs rank >= 1");
  bool drop = rng && dropout > 0;
  if (drop)
    if (Status s = checkRng(shape, *rng); !s)
      return s;
  int64_t in = x.shape.back(), outDim = dy.shape.back(), r = a.shape[0];
  int64_t n =
      in ? numElements(x.shape) / in : numElements(dy.shape) / std::max<int64_t>(outDim, 1);
  const float *pdy = dy.as<const float>();
  const float *xp = x.as<const float>();
  if (drop && n * in > 0) {
    float *xd = nullptr;
    if (Status s = scratch.allocate(n * in, xd, shape); !s)
      return s;
    if (Status s =
            applyDropout(ctx, shape, xp, *rng, n * in, dropout, stream, xd);
        !s)
      return s;
    xp = xd;
  }
  // u = x'·Aᵀ [n, r]; du = scale · dy·B [n, r].
  float *u = nullptr, *du = nullptr;
  if (Status s = scratch.allocate(n * r, u, shape); !s)
    return s;
  if (Status s = scratch.allocate(n * r, du, shape); !s)
    return s;
  const DType f32 = DType::F32;
  if (Status s = runGemm(ctx, shape, f32, f32, n, r, in, {xp, in, false},
                         {a.data, in, true}, u, 1, 1.0, 0.0);
      !s)
    return s;
  if (Status s =
          runGemm(ctx, shape, f32, f32, n, r, outDim, {pdy, outDim, false},
                  {b.data, r, false}, du, 1, scale, 0.0);
      !s)
    return s;
  // dB = scale · dyᵀ·u [out, r]; dA = duᵀ·x' [r, in].
  if (Status s =
          runGemm(ctx, shape, f32, f32, outDim, r, n, {pdy, outDim, true},
                  {u, r, false}, gradB.data, 1, scale, 0.0);
      !s)
    return s;
  if (Status s = runGemm(ctx, shape, f32, f32, r, in, n, {du, r, true},
                         {xp, in, false}, gradA.data, 1, 1.0, 0.0);
      !s)
    return s;
  if (!gradX)
    return Status::success();
  // dx = dy·Wᵀ (w [in, out]) or dy·W (transposed: w [out, in]) ...
  float *dx = gradX->as<float>();
  if (Status s = runGemm(ctx, shape, frozenDy.dtype, f32, n, in, outDim,
                         {frozenDy.data, outDim, false},
                         {frozenW.data, w.shape.back(), !transposeB}, dx, 1,
                         1.0, 0.0);
      !s)
    return s;
  // ... + keep ⊙ (du·A) / (1 - p).
  if (!drop)
    return runGemm(ctx, shape, f32, f32, n, in, r, {du, r, false},
                   {a.data, in, false}, dx, 1, 1.0, 1.0);
  if (n * in == 0)
    return Status::success();
  float *t = nullptr;
  if (Status s = scratch.allocate(n * in, t, shape); !s)
    return s;
  if (Status s = runGemm(ctx, shape, f32, f32, n, in, r, {du, r, false},
                         {a.data, in, false}, t, 1, 1.0, 0.0);
      !s)
    return s;
  dropoutAddKernel<float>
      <<<blocksFor(n * in, kThreads), kThreads, 0, streamOf(ctx)>>>(
          t, rng->as<const int64_t>(), static_cast<uint64_t>(stream),
          static_cast<float>(dropout),
          static_cast<float>(1.0 / (1.0 - dropout)), n * in, dx);
  return checkLaunch(shape);
}
} // namespace

//===----------------------------------------------------------------------===//
// Fused attention
//===----------------------------------------------------------------------===//

namespace {

/// The most scratch one attention call holds for its f32 blocks of scores.
constexpr int64_t kAttentionScratchBytes = int64_t(256) << 20;

/// The attention problem (see cpu::attention): sizes, the mask's block and
/// its offset for each batch index, and the precision: `rounded` for
/// f32_result (an f32 result with bf16 operands: P, dO and dS rounded to
/// bf16 for the products), `bf16` when q, k and v are all bf16 (the
/// products are bf16 GEMMs; otherwise bf16 operands are widened).
struct AttentionProblem {
  int64_t batch = 1, s = 0, d = 0, t = 0, dv = 0;
  Shape maskBlock;
  std::vector<int64_t> maskOffset;
  bool rounded = false, bf16 = false;
  DType result = DType::F32;
};

Status attentionProblem(const ShapeText &shape, const TensorRef &q,
                        const TensorRef &k, const TensorRef &v,
                        const TensorRef *mask, bool transposeK, DType result,
                        AttentionProblem &p) {
  int64_t rank = q.rank();
  if (rank < 2 || k.rank() != rank || v.rank() != rank)
    return fail(shape, "q, k and v need one rank >= 2");
  p.result = result;
  p.rounded = result == DType::F32 &&
              (q.dtype == DType::BF16 || k.dtype == DType::BF16 ||
               v.dtype == DType::BF16);
  p.bf16 = p.rounded && q.dtype == DType::BF16 && k.dtype == DType::BF16 &&
           v.dtype == DType::BF16;
  auto fits = [&](DType t) {
    return t == result || (p.rounded && (t == DType::BF16 || t == DType::F32));
  };
  if (!(result == DType::F32 || result == DType::F64) || !fits(q.dtype) ||
      !fits(k.dtype) || !fits(v.dtype) || (mask && mask->dtype != result))
    return fail(shape, std::string("unsupported element types ") +
                           dtypeName(q.dtype) + " -> " + dtypeName(result) +
                           " (f32 or f64 throughout; bf16 q, k, v with an f32 "
                           "result and mask)");
  Shape lead(q.shape.begin(), q.shape.end() - 2);
  for (const TensorRef *t : {&k, &v})
    if (!std::equal(lead.begin(), lead.end(), t->shape.begin()))
      return fail(shape, "q, k and v must share their leading dimensions");
  p.s = q.shape[rank - 2];
  p.d = q.shape[rank - 1];
  p.t = transposeK ? k.shape[rank - 2] : k.shape[rank - 1];
  int64_t kd = transposeK ? k.shape[rank - 1] : k.shape[rank - 2];
  p.dv = v.shape[rank - 1];
  if (kd != p.d || v.shape[rank - 2] != p.t)
    return fail(shape, "k and v do not fit q");
  p.batch = numElements(lead);
  p.maskOffset.assign(p.batch, 0);
  if (!mask)
    return Status::success();
  Shape scores = lead;
  scores.push_back(p.s);
  scores.push_back(p.t);
  cpu::AttentionMaskBlocks blocks;
  if (!cpu::attentionMaskBlocks(scores, mask->shape, blocks))
    return fail(shape, "the mask does not broadcast to the scores");
  p.maskBlock = blocks.block;
  p.maskOffset = std::move(blocks.offsets);
  return Status::success();
}

/// q, k, v as the products read them: themselves, or (bf16 next to f32)
/// widened exactly into `scratch`.
Status attentionOperands(Context &ctx, const ShapeText &shape,
                         Scratch &scratch, const AttentionProblem &p,
                         const TensorRef &q, const TensorRef &k,
                         const TensorRef &v, TensorRef &qo, TensorRef &ko,
                         TensorRef &vo) {
  qo = q;
  ko = k;
  vo = v;
  if (!p.rounded || p.bf16)
    return Status::success();
  if (Status st = widenedWeight(ctx, shape, scratch, q, qo); !st)
    return st;
  if (Status st = widenedWeight(ctx, shape, scratch, k, ko); !st)
    return st;
  return widenedWeight(ctx, shape, scratch, v, vo);
}

/// The problem and, in `scratch`, the operands the products read; `empty`
/// when there is nothing to compute.
Status prepareAttention(Context &ctx, const ShapeText &shape, Scratch &scratch,
                        const TensorRef &qIn, const TensorRef &kIn,
                        const TensorRef &vIn, const TensorRef *mask,
                        bool transposeK, DType result, AttentionProblem &p,
                        TensorRef &q, TensorRef &k, TensorRef &v, bool &empty) {
  if (Status st = attentionProblem(shape, qIn, kIn, vIn, mask, transposeK,
                                   result, p);
      !st)
    return st;
  empty = p.batch == 0 || p.s == 0 || p.t == 0 || p.dv == 0;
  if (empty)
    return Status::success();
  return attentionOperands(ctx, shape, scratch, p, qIn, kIn, vIn, q, k, v);
}

/// Calls f(first, count) for runs of batch indices that share a mask block,
/// each at most `cap` long.
template <typename F>
Status forEachRun(const AttentionProblem &p, int64_t cap, F &&f) {
  for (int64_t b = 0; b < p.batch;) {
    int64_t e = b + 1;
    while (e < p.batch && e - b < cap && p.maskOffset[e] == p.maskOffset[b])
      ++e;
    if (Status s = f(b, e - b); !s)
      return s;
    b = e;
  }
  return Status::success();
}

/// The probabilities (p.result) of batch indices [first, first + n) into
/// `probs` ([n, S, T]); `work` is scratch of the same size.
Status attentionProbabilities(Context &ctx, const ShapeText &shape,
                              const AttentionProblem &p, const TensorRef &q,
                              const TensorRef &k, const TensorRef *mask,
                              double scale, bool transposeK, int64_t first,
                              int64_t n, void *probs, void *work) {
  size_t inBytes = dtypeSize(q.dtype), bytes = dtypeSize(p.result);
  int64_t s = p.s, t = p.t, d = p.d;
  const char *qb = static_cast<const char *>(q.data) + first * s * d * inBytes;
  const char *kb = static_cast<const char *>(k.data) + first * d * t * inBytes;
  // scores = (q·k)·scale (alpha: the product rounded once, then scaled).
  void *scores = mask ? work : probs;
  if (Status st = runGemm(ctx, shape, q.dtype, p.result, s, t, d,
                          {qb, d, false, s * d},
                          {kb, transposeK ? d : t, transposeK, d * t}, scores,
                          n, scale, 0.0);
      !st)
    return st;
  TensorRef probsRef{probs, p.result, {n, s, t}};
  TensorRef workRef{work, p.result, {n, s, t}};
  if (mask) {
    TensorRef block{static_cast<char *>(mask->data) +
                        p.maskOffset[first] * bytes,
                    p.result, {1, p.maskBlock[0], p.maskBlock[1]}};
    if (Status st = binary(ctx, BinaryOp::Add, workRef, block, probsRef); !st)
      return st;
  }
  // softmax(probs) -> work -> probs.
  if (Status st = softmax(ctx, probsRef, workRef, 2, false); !st)
    return st;
  return check(cudaMemcpyAsync(probs, work, n * s * t * bytes,
                               cudaMemcpyDeviceToDevice, streamOf(ctx)),
               shape, "cudaMemcpyAsync");
}

int64_t attentionRunCap(const AttentionProblem &p, int buffers) {
  int64_t block = std::max<int64_t>(p.s * p.t * dtypeSize(p.result), 1);
  return std::max<int64_t>(1, kAttentionScratchBytes / (block * buffers));
}

} // namespace

Status attention(Context &ctx, const TensorRef &qIn, const TensorRef &kIn,
                 const TensorRef &vIn, const TensorRef *mask,
                 const TensorRef &out, double scale, bool transposeK) {
  ShapeText shape = describe(
      "attention", {{"q", &qIn}, {"k", &kIn}, {"v", &vIn}, {"out", &out}});
  shape("scale", scale);
  AttentionProblem p;
  Scratch scratch(streamOf(ctx));
  TensorRef q, k, v;
  bool empty = false;
  if (Status st = prepareAttention(ctx, shape, scratch, qIn, kIn, vIn, mask,
                                   transposeK, out.dtype, p, q, k, v, empty);
      !st)
    return st;
  if (empty) {
    // T == 0 (no keys): softmax over nothing, as the CPU gives, is zeros.
    if (p.batch * p.s * p.dv > 0)
      return check(cudaMemsetAsync(out.data, 0,
                                   p.batch * p.s * p.dv * dtypeSize(p.result),
                                   streamOf(ctx)),
                   shape, "cudaMemsetAsync");
    return Status::success();
  }
  int64_t cap = attentionRunCap(p, 2);
  int64_t elements = std::min(cap, p.batch) * p.s * p.t;
  size_t bytes = dtypeSize(p.result), inBytes = dtypeSize(q.dtype);
  char *probs = nullptr, *work = nullptr, *probs16 = nullptr;
  if (Status st = scratch.allocate(elements * int64_t(bytes), probs, shape); !st)
    return st;
  if (Status st = scratch.allocate(elements * int64_t(bytes), work, shape); !st)
    return st;
  if (p.bf16)
    if (Status st = scratch.allocate(elements * 2, probs16, shape); !st)
      return st;
  return forEachRun(p, cap, [&](int64_t first, int64_t n) -> Status {
    if (Status st = attentionProbabilities(ctx, shape, p, q, k, mask, scale,
                                           transposeK, first, n, probs, work);
        !st)
      return st;
    // f32_result: P rounded to bf16 for its product with v.
    void *pv = probs;
    if (p.rounded) {
      if (Status st = scaleRound(ctx, shape, probs, n * p.s * p.t, 1.0f, probs16);
          !st)
        return st;
      if (p.bf16)
        pv = probs16;
    }
    const char *vb = static_cast<const char *>(v.data) + first * p.t * p.dv * inBytes;
    char *ob = static_cast<char *>(out.data) + first * p.s * p.dv * bytes;
    return runGemm(ctx, shape, q.dtype, p.result, p.s, p.dv, p.t,
                   {pv, p.t, false, p.s * p.t}, {vb, p.dv, false, p.t * p.dv},
                   ob, n, 1.0, 0.0);
  });
}

Status attentionGrad(Context &ctx, const TensorRef &gradIn, const TensorRef &qIn,
                     const TensorRef &kIn, const TensorRef &vIn,
                     const TensorRef *mask, const TensorRef &gradQ,
                     const TensorRef &gradK, const TensorRef &gradV,
                     double scale, bool transposeK) {
  ShapeText shape = describe("attention_grad",
                             {{"grad", &gradIn}, {"q", &qIn}, {"k", &kIn}, {"v", &vIn}});
  shape("scale", scale);
  AttentionProblem p;
  Scratch scratch(streamOf(ctx));
  TensorRef q, k, v;
  bool empty = false;
  if (Status st = prepareAttention(ctx, shape, scratch, qIn, kIn, vIn, mask,
                                   transposeK, gradIn.dtype, p, q, k, v, empty);
      !st)
    return st;
  if (gradQ.dtype != p.result || gradK.dtype != p.result ||
      gradV.dtype != p.result)
    return fail(shape, "the gradients must have grad's element type");
  size_t bytes = dtypeSize(p.result);
  for (const TensorRef *g : {&gradQ, &gradK, &gradV})
    if (Status st = check(cudaMemsetAsync(g->data, 0, numElements(g->shape) * bytes,
                                          streamOf(ctx)),
                          shape, "cudaMemsetAsync");
        !st)
      return st;
  if (empty)
    return Status::success();
  // f32_result: dO rounded to bf16 once (bf16 bits, or bf16-exact f32).
  TensorRef grad = gradIn;
  if (p.rounded) {
    int64_t ng = numElements(gradIn.shape);
    char *g = nullptr;
    if (Status st = scratch.allocate(ng * (p.bf16 ? 2 : 4), g, shape); !st)
      return st;
    if (!p.bf16 && ng > 0)
      if (Status st = check(cudaMemcpyAsync(g, gradIn.data, ng * 4,
                                            cudaMemcpyDeviceToDevice, streamOf(ctx)),
                            shape, "cudaMemcpyAsync");
          !st)
        return st;
    if (Status st = scaleRound(ctx, shape, p.bf16 ? gradIn.data : g, ng, 1.0f,
                               p.bf16 ? g : nullptr);
        !st)
      return st;
    grad.data = g;
    grad.dtype = p.bf16 ? DType::BF16 : DType::F32;
  }
  int64_t cap = attentionRunCap(p, 3);
  int64_t elements = std::min(cap, p.batch) * p.s * p.t;
  char *probs = nullptr, *work = nullptr, *dp = nullptr, *half = nullptr;
  for (char **buffer : {&probs, &work, &dp})
    if (Status st = scratch.allocate(elements * int64_t(bytes), *buffer, shape); !st)
      return st;
  if (p.bf16)
    if (Status st = scratch.allocate(elements * 2, half, shape); !st)
      return st;
  int64_t s = p.s, t = p.t, d = p.d, dv = p.dv;
  size_t inBytes = dtypeSize(q.dtype), gBytes = dtypeSize(grad.dtype);
  DType in = q.dtype, rt = p.result;
  return forEachRun(p, cap, [&](int64_t first, int64_t n) -> Status {
    if (Status st = attentionProbabilities(ctx, shape, p, q, k, mask, scale,
                                           transposeK, first, n, probs, work);
        !st)
      return st;
    int64_t blockN = n * s * t;
    const char *g = static_cast<const char *>(grad.data) + first * s * dv * gBytes;
    const char *vb = static_cast<const char *>(v.data) + first * t * dv * inBytes;
    const char *qb = static_cast<const char *>(q.data) + first * s * d * inBytes;
    const char *kb = static_cast<const char *>(k.data) + first * d * t * inBytes;
    char *dvb = static_cast<char *>(gradV.data) + first * t * dv * bytes;
    char *dqb = static_cast<char *>(gradQ.data) + first * s * d * bytes;
    char *dkb = static_cast<char *>(gradK.data) + first * d * t * bytes;
    // dv = Pᵀ·dO (P rounded for it with f32_result; the exact P stays for
    // softmax_grad); dP = dO·vᵀ.
    const void *pT = probs;
    if (p.rounded) {
      if (!p.bf16 && blockN > 0)
        if (Status st = check(cudaMemcpyAsync(dp, probs, blockN * bytes,
                                              cudaMemcpyDeviceToDevice, streamOf(ctx)),
                              shape, "cudaMemcpyAsync");
            !st)
          return st;
      if (Status st = scaleRound(ctx, shape, p.bf16 ? probs : dp, blockN, 1.0f,
                                 p.bf16 ? half : nullptr);
          !st)
        return st;
      pT = p.bf16 ? static_cast<const void *>(half) : dp;
    }
    if (Status st = runGemm(ctx, shape, in, rt, t, dv, s, {pT, t, true, s * t},
                            {g, dv, false, s * dv}, dvb, n, 1.0, 0.0);
        !st)
      return st;
    if (Status st = runGemm(ctx, shape, in, rt, s, t, dv, {g, dv, false, s * dv},
                            {vb, dv, true, t * dv}, dp, n, 1.0, 0.0);
        !st)
      return st;
    // dS = softmax_grad(dP, P); the scale goes into the GEMMs' alpha, or,
    // with f32_result, into dS before it is rounded.
    TensorRef dpRef{dp, rt, {n, s, t}}, probsRef{probs, rt, {n, s, t}},
        workRef{work, rt, {n, s, t}};
    if (Status st = softmaxGrad(ctx, dpRef, probsRef, workRef, 2); !st)
      return st;
    const void *ds = work;
    double alpha = scale;
    if (p.rounded) {
      if (Status st = scaleRound(ctx, shape, work, blockN, static_cast<float>(scale),
                                 p.bf16 ? half : nullptr);
          !st)
        return st;
      ds = p.bf16 ? static_cast<const void *>(half) : work;
      alpha = 1.0;
    }
    if (transposeK) {
      // k [T, D]: dq = dS·k, dk = dSᵀ·q.
      if (Status st = runGemm(ctx, shape, in, rt, s, d, t, {ds, t, false, s * t},
                              {kb, d, false, t * d}, dqb, n, alpha, 0.0);
          !st)
        return st;
      return runGemm(ctx, shape, in, rt, t, d, s, {ds, t, true, s * t},
                     {qb, d, false, s * d}, dkb, n, alpha, 0.0);
    }
    // k [D, T]: dq = dS·kᵀ, dk = qᵀ·dS.
    if (Status st = runGemm(ctx, shape, in, rt, s, d, t, {ds, t, false, s * t},
                            {kb, t, true, d * t}, dqb, n, alpha, 0.0);
        !st)
      return st;
    return runGemm(ctx, shape, in, rt, d, t, s, {qb, d, true, s * d},
                   {ds, t, false, s * t}, dkb, n, alpha, 0.0);
  });
}

//===----------------------------------------------------------------------===//
// Softmax and normalisation
//===----------------------------------------------------------------------===//

Status softmax(Context &ctx, const TensorRef &input, const TensorRef &out,
               int64_t axis, bool log) {
  ShapeText shape = describe(log ? "log_softmax" : "softmax",
                             {{"input", &input}, {"out", &out}});
  shape("axis", axis);
  if (axis < 0 || axis >= input.rank())
    return fail(shape, "axis out of range");
  if (out.dtype != input.dtype)
    return fail(shape, "input and out must have one element type");
  int64_t outer, size, inner;
  aroundAxis(input.shape, axis, outer, size, inner);
  return dispatchF32F64(input.dtype, shape, [&](auto tag) {
    using T = decltype(tag);
    if (outer * size * inner == 0)
      return Status::success();
    const T *x = input.as<const T>();
    T *y = out.as<T>();
    if (inner == 1)
      softmaxRowsKernel<T><<<rowBlocks(outer), kThreads, 0, streamOf(ctx)>>>(
          x, y, outer, size, log);
    else
      softmaxLinesKernel<T>
          <<<blocksFor(outer * inner, kThreads), kThreads, 0, streamOf(ctx)>>>(
              x, y, outer, size, inner, log);
    return checkLaunch(shape);
  });
}

Status softmaxGrad(Context &ctx, const TensorRef &grad, const TensorRef &output,
                   const TensorRef &out, int64_t axis) {
  ShapeText shape = describe(
      "softmax_grad", {{"grad", &grad}, {"output", &output}, {"out", &out}});
  shape("axis", axis);
  if (axis < 0 || axis >= grad.rank())
    return fail(shape, "axis out of range");
  if (!allOf(grad.dtype, {&output, &out}))
    return fail(shape, "grad, output and out must have one element type");
  int64_t outer, size, inner;
  aroundAxis(grad.shape, axis, outer, size, inner);
  return dispatchF32F64(grad.dtype, shape, [&](auto tag) {
    using T = decltype(tag);
    if (outer * size * inner == 0)
      return Status::success();
    const T *dy = grad.as<const T>(), *y = output.as<const T>();
    T *dx = out.as<T>();
    if (inner == 1)
      softmaxGradRowsKernel<T>
          <<<rowBlocks(outer), kThreads, 0, streamOf(ctx)>>>(dy, y, dx, outer,
                                                             size);
    else
      softmaxGradLinesKernel<T>
          <<<blocksFor(outer * inner, kThreads), kThreads, 0, streamOf(ctx)>>>(
              dy, y, dx, outer, size, inner);
    return checkLaunch(shape);
  });
}

namespace {
/// Rows and row length of a normalisation over [axis, rank).
Status normRows(const ShapeText &shape, const TensorRef &input, int64_t axis,
                int64_t &rows, int64_t &size) {
  if (axis < 0 || axis >= input.rank())
    return fail(shape, "axis out of range");
  size = 1;
  for (int64_t d = axis; d < input.rank(); ++d)
    size *= input.shape[d];
  rows = size ? numElements(input.shape) / size : 0;
  return Status::success();
}
} // namespace

Status layerNorm(Context &ctx, const TensorRef &input, const TensorRef &scale,
                 const TensorRef *bias, const TensorRef &out, int64_t axis,
                 double epsilon) {
  ShapeText shape = describe(
      "layer_norm",
      {{"input", &input}, {"scale", &scale}, {"bias", bias}, {"out", &out}});
  shape("axis", axis);
  int64_t rows, size;
  if (Status s = normRows(shape, input, axis, rows, size); !s)
    return s;
  if (!allOf(input.dtype, {&scale, bias, &out}))
    return fail(shape, "input, scale, bias and out must have one element type");
  return dispatchF32F64(input.dtype, shape, [&](auto tag) {
    using T = decltype(tag);
    if (rows == 0)
      return Status::success();
    layerNormKernel<T><<<rowBlocks(rows), kThreads, 0, streamOf(ctx)>>>(
        input.as<const T>(), scale.as<const T>(),
        bias ? bias->as<const T>() : nullptr, out.as<T>(), rows, size, epsilon);
    return checkLaunch(shape);
  });
}

Status rmsNorm(Context &ctx, const TensorRef &input, const TensorRef &scale,
               const TensorRef &out, int64_t axis, double epsilon) {
  ShapeText shape = describe(
      "rms_norm", {{"input", &input}, {"scale", &scale}, {"out", &out}});
  shape("axis", axis);
  int64_t rows, size;
  if (Status s = normRows(shape, input, axis, rows, size); !s)
    return s;
  if (!allOf(input.dtype, {&scale, &out}))
    return fail(shape, "input, scale and out must have one element type");
  return dispatchF32F64(input.dtype, shape, [&](auto tag) {
    using T = decltype(tag);
    if (rows == 0)
      return Status::success();
    rmsNormKernel<T><<<rowBlocks(rows), kThreads, 0, streamOf(ctx)>>>(
        input.as<const T>(), scale.as<const T>(), out.as<T>(), rows, size,
        epsilon);
    return checkLaunch(shape);
  });
}

Status layerNormGrad(Context &ctx, const TensorRef &grad,
                     const TensorRef &input, const TensorRef &scale,
                     const TensorRef &out, int64_t axis, double epsilon) {
  ShapeText shape = describe(
      "layer_norm_grad",
      {{"grad", &grad}, {"input", &input}, {"scale", &scale}, {"out", &out}});
  shape("axis", axis);
  int64_t rows, size;
  if (Status s = normRows(shape, input, axis, rows, size); !s)
    return s;
  if (!allOf(input.dtype, {&grad, &scale, &out}))
    return fail(shape, "grad, input, scale and out must have one element type");
  return dispatchF32F64(input.dtype, shape, [&](auto tag) {
    using T = decltype(tag);
    if (rows == 0)
      return Status::success();
    layerNormGradKernel<T><<<rowBlocks(rows), kThreads, 0, streamOf(ctx)>>>(
        grad.as<const T>(), input.as<const T>(), scale.as<const T>(),
        out.as<T>(), rows, size, epsilon);
    return checkLaunch(shape);
  });
}

//===----------------------------------------------------------------------===//
// Cross-entropy
//===----------------------------------------------------------------------===//

namespace {
Status countLabels(Context &ctx, const ShapeText &shape,
                   const TensorRef &labels, int64_t batch, int64_t seq,
                   int64_t vocab, int64_t ignoreIndex, OpId op,
                   int64_t *valid) {
  countLabelsKernel<<<1, 1024, 0, streamOf(ctx)>>>(
      labels.as<const int64_t>(), batch, seq, vocab, ignoreIndex, op,
      dataErrorOf(ctx), valid);
  return checkLaunch(shape);
}
} // namespace

Status crossEntropy(Context &ctx, const TensorRef &logits,
                    const TensorRef &labels, const TensorRef &out,
                    int64_t ignoreIndex) {
  ShapeText shape =
      describe("cross_entropy",
               {{"logits", &logits}, {"labels", &labels}, {"out", &out}});
  if (logits.rank() != 3)
    return fail(shape, "logits must be [B, S, V]");
  int64_t batch = logits.shape[0], seq = logits.shape[1],
          vocab = logits.shape[2];
  if (Status s = checkLabels(shape, labels, batch, seq); !s)
    return s;
  if (out.dtype != DType::F32 || numElements(out.shape) != 1)
    return fail(shape, "out must be f32 []");
  return dispatchF32F64(logits.dtype, shape, [&](auto tag) {
    using T = decltype(tag);
    int64_t rows = batch * seq;
    Scratch scratch(streamOf(ctx));
    int64_t *valid = nullptr;
    double *losses = nullptr;
    if (Status s = scratch.allocate(1, valid, shape); !s)
      return s;
    if (Status s = scratch.allocate(rows, losses, shape); !s)
      return s;
    if (Status s = countLabels(ctx, shape, labels, batch, seq, vocab,
                               ignoreIndex, OpId::CrossEntropy, valid);
        !s)
      return s;
    if (rows > 0) {
      crossEntropyRowsKernel<T>
          <<<rowBlocks(rows), kThreads, 0, streamOf(ctx)>>>(
              logits.as<const T>(), labels.as<const int64_t>(), rows, seq,
              vocab, ignoreIndex, losses);
      if (Status s = checkLaunch(shape); !s)
        return s;
    }
    meanLossKernel<<<1, 1024, 0, streamOf(ctx)>>>(losses, rows, valid,
                                                  out.as<float>());
    return checkLaunch(shape);
  });
}

Status crossEntropyGrad(Context &ctx, const TensorRef &dloss,
                        const TensorRef &logits, const TensorRef &labels,
                        const TensorRef &out, int64_t ignoreIndex) {
  ShapeText shape = describe("cross_entropy_grad", {{"dloss", &dloss},
                                                    {"logits", &logits},
                                                    {"labels", &labels},
                                                    {"out", &out}});
  if (logits.rank() != 3)
    return fail(shape, "logits must be [B, S, V]");
  int64_t batch = logits.shape[0], seq = logits.shape[1],
          vocab = logits.shape[2];
  if (Status s = checkLabels(shape, labels, batch, seq); !s)
    return s;
  if (dloss.dtype != DType::F32 || numElements(dloss.shape) != 1)
    return fail(shape, "dloss must be f32 []");
  if (out.dtype != logits.dtype)
    return fail(shape, "out must have the logits' element type");
  return dispatchF32F64(logits.dtype, shape, [&](auto tag) {
    using T = decltype(tag);
    int64_t rows = batch * seq;
    Scratch scratch(streamOf(ctx));
    int64_t *valid = nullptr;
    if (Status s = scratch.allocate(1, valid, shape); !s)
      return s;
    if (Status s = countLabels(ctx, shape, labels, batch, seq, vocab,
                               ignoreIndex, OpId::CrossEntropyGrad, valid);
        !s)
      return s;
    if (rows == 0 || vocab == 0)
      return Status::success();
    crossEntropyGradKernel<T><<<rowBlocks(rows), kThreads, 0, streamOf(ctx)>>>(
        dloss.as<const float>(), logits.as<const T>(),
        labels.as<const int64_t>(), valid, out.as<T>(), rows, seq, vocab,
        ignoreIndex);
    return checkLaunch(shape);
  });
}

Status linearCrossEntropy(Context &ctx, const TensorRef &input,
                          const TensorRef &weight, const TensorRef &labels,
                          const TensorRef &dloss, const TensorRef &loss,
                          const TensorRef &gradInput, int64_t ignoreIndex,
                          bool transposeB) {
  ShapeText shape =
      describe("linear_cross_entropy", {{"input", &input},
                                        {"weight", &weight},
                                        {"labels", &labels},
                                        {"gradInput", &gradInput}});
  // bf16 operands with an f32 gradient (--vlora-mixed-precision): both
  // bf16, bf16 GEMMs; one of them, widened exactly. With a bf16 input (bf16
  // activations) the input gradient's product reads the logits' gradient
  // rounded to bf16, as on the CPU.
  Scratch outer(streamOf(ctx));
  TensorRef x = input, w = weight;
  bool roundGrad = gradInput.dtype == DType::F32 && input.dtype == DType::BF16;
  bool bf16 = roundGrad && weight.dtype == DType::BF16;
  if (gradInput.dtype == DType::F32 && !bf16 &&
      (input.dtype == DType::BF16 || weight.dtype == DType::BF16)) {
    if (Status s = widenedWeight(ctx, shape, outer, input, x); !s)
      return s;
    if (Status s = widenedWeight(ctx, shape, outer, weight, w); !s)
      return s;
  }
  if (gradInput.dtype != DType::F32 || x.dtype != w.dtype ||
      (x.dtype != DType::F32 && x.dtype != DType::BF16))
    return fail(shape, std::string("unsupported element type ") +
                           dtypeName(input.dtype) +
                           " (f32, or bf16 with an f32 gradient)");
  if (input.rank() != 3 || weight.rank() != 2)
    return fail(shape, "input must be [B, S, D] and weight rank 2");
  int64_t batch = input.shape[0], seq = input.shape[1], dim = input.shape[2];
  int64_t vocab = transposeB ? weight.shape[0] : weight.shape[1];
  if (Status s = checkLabels(shape, labels, batch, seq); !s)
    return s;
  if (dloss.dtype != DType::F32 || numElements(dloss.shape) != 1 ||
      loss.dtype != DType::F32 || numElements(loss.shape) != 1)
    return fail(shape, "dloss and loss must be f32 []");
  int64_t rows = batch * seq;
  Scratch scratch(streamOf(ctx));
  int64_t *valid = nullptr;
  double *losses = nullptr;
  if (Status s = scratch.allocate(1, valid, shape); !s)
    return s;
  if (Status s = scratch.allocate(rows, losses, shape); !s)
    return s;
  if (Status s = countLabels(ctx, shape, labels, batch, seq, vocab, ignoreIndex,
                             OpId::LinearCrossEntropy, valid);
      !s)
    return s;
  // Every row is multiplied out (which rows have a label is only known on
  // the device); the rows without one get a zero logits gradient, so a zero
  // input gradient. At most 2^24 logits at a time, as on the CPU.
  if (rows > 0) {
    int64_t chunk = std::clamp<int64_t>(
        (int64_t(1) << 24) / std::max<int64_t>(vocab, 1), 1, rows);
    float *logits = nullptr;
    if (Status s = scratch.allocate(chunk * vocab, logits, shape); !s)
      return s;
    int64_t ldw = weight.shape.back();
    const char *xb = static_cast<const char *>(x.data);
    size_t xBytes = dtypeSize(x.dtype);
    float *dx = gradInput.as<float>();
    uint16_t *logits16 = nullptr;
    if (bf16)
      if (Status s = scratch.allocate(chunk * vocab, logits16, shape); !s)
        return s;
    for (int64_t c0 = 0; c0 < rows; c0 += chunk) {
      int64_t cn = std::min(chunk, rows - c0);
      if (Status s =
              runGemm(ctx, shape, x.dtype, DType::F32, cn, vocab, dim,
                      {xb + c0 * dim * xBytes, dim, false},
                      {w.data, ldw, transposeB}, logits, 1, 1.0, 0.0);
          !s)
        return s;
      if (vocab > 0) {
        linearCrossEntropyRowsKernel<float>
            <<<rowBlocks(cn), kThreads, 0, streamOf(ctx)>>>(
                logits, labels.as<const int64_t>(), c0, cn, seq, vocab,
                ignoreIndex, valid, dloss.as<const float>(), losses);
        if (Status s = checkLaunch(shape); !s)
          return s;
      } else {
        if (Status s =
                check(cudaMemsetAsync(losses + c0, 0, cn * sizeof(double),
                                      streamOf(ctx)),
                      shape, "cudaMemsetAsync");
            !s)
          return s;
      }
      const void *grad = logits;
      if (roundGrad) {
        if (Status s = scaleRound(ctx, shape, logits, cn * vocab, 1.0f,
                                  bf16 ? logits16 : nullptr);
            !s)
          return s;
        if (bf16)
          grad = logits16;
      }
      if (Status s =
              runGemm(ctx, shape, x.dtype, DType::F32, cn, dim, vocab,
                      {grad, vocab, false}, {w.data, ldw, !transposeB},
                      dx + c0 * dim, 1, 1.0, 0.0);
          !s)
        return s;
    }
  }
  meanLossKernel<<<1, 1024, 0, streamOf(ctx)>>>(losses, rows, valid,
                                                loss.as<float>());
  return checkLaunch(shape);
}

//===----------------------------------------------------------------------===//
// Global norm and AdamW
//===----------------------------------------------------------------------===//

Status globalNorm(Context &ctx, const std::vector<TensorRef> &inputs,
                  const TensorRef &out) {
  ShapeText shape = describe("global_norm", {{"out", &out}});
  shape("inputs", inputs.size());
  if (out.dtype != DType::F32 || numElements(out.shape) != 1)
    return fail(shape, "out must be f32 []");
  std::vector<NormTensor> tensors;
  int64_t partials = 0;
  for (const TensorRef &t : inputs) {
    int32_t kind = t.dtype == DType::F32    ? 0
                   : t.dtype == DType::F64  ? 1
                   : t.dtype == DType::BF16 ? 2
                                            : -1;
    if (kind < 0)
      return fail(shape, std::string("unsupported element type ") +
                             dtypeName(t.dtype) + " of input " + tensorText(t) +
                             " (f32, f64 and bf16)");
    int64_t n = numElements(t.shape);
    int32_t blocks = static_cast<int32_t>(std::clamp<int64_t>(
        (n + 8 * kThreads - 1) / (8 * kThreads), 1, kMaxNormBlocks));
    tensors.push_back({t.data, n, partials, blocks, kind});
    partials += blocks;
  }
  Scratch scratch(streamOf(ctx));
  double *sums = nullptr;
  if (Status s = scratch.allocate(partials, sums, shape); !s)
    return s;
  for (size_t first = 0; first < tensors.size();
       first += kNormTensorsPerLaunch) {
    size_t count =
        std::min<size_t>(kNormTensorsPerLaunch, tensors.size() - first);
    NormLaunch launch{};
    int32_t maxBlocks = 1;
    for (size_t i = 0; i < count; ++i) {
      launch.tensors[i] = tensors[first + i];
      maxBlocks = std::max(maxBlocks, tensors[first + i].blocks);
    }
    sumSquaresKernel<<<dim3(maxBlocks, static_cast<unsigned>(count)), kThreads,
                       0, streamOf(ctx)>>>(launch, sums);
    if (Status s = checkLaunch(shape); !s)
      return s;
  }
  normFinishKernel<<<1, 1024, 0, streamOf(ctx)>>>(sums, partials,
                                                  out.as<float>());
  return checkLaunch(shape);
}

Status adamW(Context &ctx, const TensorRef &param, const TensorRef &grad,
             const TensorRef &expAvg, const TensorRef &expAvgSq,
             const TensorRef &lr, const TensorRef &step,
             const TensorRef &weightDecay, const TensorRef *gradScale,
             const TensorRef &newParam, const TensorRef &newExpAvg,
             const TensorRef &newExpAvgSq, double beta1, double beta2,
             double eps) {
  ShapeText shape = describe("adamw_update", {{"param", &param},
                                              {"grad", &grad},
                                              {"expAvg", &expAvg},
                                              {"expAvgSq", &expAvgSq}});
  if (!allOf(param.dtype,
             {&grad, &expAvg, &expAvgSq, &newParam, &newExpAvg, &newExpAvgSq}))
    return fail(shape, "param, grad, the moments and the results must have "
                       "one element type");
  auto isScalar = [](const TensorRef &t, DType dtype) {
    return t.dtype == dtype && numElements(t.shape) == 1 && t.data;
  };
  if (!isScalar(lr, DType::F32) || !isScalar(weightDecay, DType::F32) ||
      !isScalar(step, DType::I64) ||
      (gradScale && !isScalar(*gradScale, DType::F32)))
    return fail(shape, "lr, weight_decay and grad_scale must be f32 [] and "
                       "step i64 [] in device memory");
  int64_t n = numElements(param.shape);
  return dispatchF32F64(param.dtype, shape, [&](auto tag) {
    using T = decltype(tag);
    // At least one block, so a bad step is reported even for an empty
    // parameter.
    adamWKernel<T><<<blocksFor(n, kThreads), kThreads, 0, streamOf(ctx)>>>(
        param.as<const T>(), grad.as<const T>(), expAvg.as<const T>(),
        expAvgSq.as<const T>(), lr.as<const float>(), step.as<const int64_t>(),
        weightDecay.as<const float>(),
        gradScale ? gradScale->as<const float>() : nullptr, newParam.as<T>(),
        newExpAvg.as<T>(), newExpAvgSq.as<T>(), n, beta1, beta2, eps,
        dataErrorOf(ctx));
    return checkLaunch(shape);
  });
}

} // namespace vlora::kernels::cuda::ops
