//===- Normalization.cu - LayerNorm, RMSNorm and softmax ------------------===//
//
// One block per row for the row-wise passes (the row stays in L1/L2 between
// the passes); parameter gradients by a column-parallel reduction over chunks
// of rows with one atomic add per column and chunk.
//
//===----------------------------------------------------------------------===//

#include "vlora/kernels/cuda/Normalization.h"

#include "Primitives.cuh"

namespace vlora::kernels::cuda {
using namespace detail;

namespace {

constexpr int kRowThreads = 256;

int rowThreads(int64_t cols) {
  int64_t threads = (cols + 31) / 32 * 32;
  return static_cast<int>(threads < kRowThreads ? threads : kRowThreads);
}

/// LayerNorm (mean != null) or RMSNorm forward over one row per block.
template <typename T>
__global__ void normForwardKernel(int64_t cols, const T *x, const float *gamma,
                                  const float *beta, float eps, bool center,
                                  T *y, float *meanOut, float *rstdOut) {
  __shared__ float scratch[32];
  int64_t row = blockIdx.x;
  const T *xr = x + row * cols;
  T *yr = y + row * cols;
  float mean = 0;
  if (center) {
    float sum = 0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
      sum += load(xr + j);
    mean = blockSum(sum, scratch) / cols;
  }
  float sq = 0;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    float d = load(xr + j) - mean;
    sq += d * d;
  }
  float rstd = rsqrtf(blockSum(sq, scratch) / cols + eps);
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    float v = (load(xr + j) - mean) * rstd * gamma[j];
    if (beta)
      v += beta[j];
    store(yr + j, v);
  }
  if (threadIdx.x == 0) {
    if (meanOut)
      meanOut[row] = mean;
    if (rstdOut)
      rstdOut[row] = rstd;
  }
}

/// dx of LayerNorm (mean != null) or RMSNorm, one row per block.
template <typename T>
__global__ void normBackwardKernel(int64_t cols, const T *dy, const T *x,
                                   const float *gamma, const float *meanIn,
                                   const float *rstdIn, T *dx) {
  __shared__ float scratch[32];
  int64_t row = blockIdx.x;
  const T *dyr = dy + row * cols, *xr = x + row * cols;
  float mean = meanIn ? meanIn[row] : 0.f, rstd = rstdIn[row];
  float sumG = 0, sumGX = 0;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    // Rounded explicitly: the second loop must see the same g (a contracted
    // FMA there would leave dx != 0 where the terms cancel exactly).
    float g = __fmul_rn(load(dyr + j), gamma[j]);
    sumG += g;
    sumGX += g * (load(xr + j) - mean) * rstd;
  }
  float meanG = meanIn ? blockSum(sumG, scratch) / cols : 0.f;
  float meanGX = blockSum(sumGX, scratch) / cols;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    float g = __fmul_rn(load(dyr + j), gamma[j]);
    float xhat = (load(xr + j) - mean) * rstd;
    store(dx + row * cols + j, rstd * (g - meanG - xhat * meanGX));
  }
}

constexpr int kColumnTile = 32, kRowLanes = 8, kRowsPerChunk = 256;

/// dgamma += Σ dy·xhat, dbeta += Σ dy over a chunk of rows per block.
template <typename T>
__global__ void normParamGradKernel(int64_t rows, int64_t cols, const T *dy,
                                    const T *x, const float *meanIn,
                                    const float *rstdIn, float *dgamma,
                                    float *dbeta) {
  __shared__ float partialG[kRowLanes][kColumnTile];
  __shared__ float partialB[kRowLanes][kColumnTile];
  int64_t col = blockIdx.x * int64_t(kColumnTile) + threadIdx.x;
  int64_t begin = blockIdx.y * int64_t(kRowsPerChunk);
  int64_t end = min(rows, begin + kRowsPerChunk);
  float g = 0, b = 0;
  if (col < cols)
    for (int64_t row = begin + threadIdx.y; row < end; row += kRowLanes) {
      float d = load(dy + row * cols + col);
      float mean = meanIn ? meanIn[row] : 0.f;
      g += d * (load(x + row * cols + col) - mean) * rstdIn[row];
      b += d;
    }
  partialG[threadIdx.y][threadIdx.x] = g;
  partialB[threadIdx.y][threadIdx.x] = b;
  __syncthreads();
  if (threadIdx.y == 0 && col < cols) {
    for (int lane = 1; lane < kRowLanes; ++lane) {
      g += partialG[lane][threadIdx.x];
      b += partialB[lane][threadIdx.x];
    }
    if (dgamma)
      atomicAdd(dgamma + col, g);
    if (dbeta)
      atomicAdd(dbeta + col, b);
  }
}

template <typename T>
__global__ void softmaxForwardKernel(int64_t cols, const T *x, float scale,
                                     T *y) {
  __shared__ float scratch[32];
  int64_t row = blockIdx.x;
  const T *xr = x + row * cols;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
    mx = fmaxf(mx, load(xr + j) * scale);
  mx = blockMax(mx, scratch);
  if (mx == -INFINITY)
    mx = 0;
  float sum = 0;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
    sum += __expf(load(xr + j) * scale - mx);
  float inv = 1.f / blockSum(sum, scratch);
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
    store(y + row * cols + j, __expf(load(xr + j) * scale - mx) * inv);
}

template <typename T>
__global__ void softmaxBackwardKernel(int64_t cols, const T *y, const T *dy,
                                      float scale, T *dx) {
  __shared__ float scratch[32];
  int64_t row = blockIdx.x;
  const T *yr = y + row * cols, *dyr = dy + row * cols;
  float dot = 0;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
    dot += load(yr + j) * load(dyr + j);
  dot = blockSum(dot, scratch);
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
    store(dx + row * cols + j, scale * load(yr + j) * (load(dyr + j) - dot));
}

Status validateRows(const RowsShape &s, const ShapeText &shape,
                    std::initializer_list<const void *> activations,
                    std::initializer_list<const void *> floats) {
  if (s.rows < 1 || s.cols < 1)
    return fail(shape, "rows and cols must be positive");
  if (s.rows > INT32_MAX)
    return fail(shape, "at most 2^31-1 rows");
  if (!isFloatType(s.dtype))
    return fail(shape, "element type must be f32 or bf16");
  for (const void *p : activations)
    if (!p || !aligned(p, elementBytes(s.dtype)))
      return fail(shape, "tensors must be non-null and aligned");
  for (const void *p : floats)
    if (!p || !aligned(p, 4))
      return fail(shape, "fp32 parameters must be non-null and aligned");
  return Status::success();
}

ShapeText rowsShape(const char *kernel, const RowsShape &s) {
  ShapeText shape(kernel);
  shape("rows", s.rows)("cols", s.cols).dtype(s.dtype);
  return shape;
}

Status paramGrads(Context &ctx, const RowsShape &s, const ShapeText &shape,
                  const void *dy, const void *x, const float *mean,
                  const float *rstd, float *dgamma, float *dbeta) {
  if (!dgamma && !dbeta)
    return Status::success();
  dim3 grid(static_cast<unsigned>((s.cols + kColumnTile - 1) / kColumnTile),
            static_cast<unsigned>((s.rows + kRowsPerChunk - 1) / kRowsPerChunk));
  if (grid.y > 65535)
    return fail(shape, "too many rows for the parameter-gradient reduction");
  return dispatchFloat(s.dtype, [&](auto tag) {
    using T = decltype(tag);
    normParamGradKernel<T><<<grid, dim3(kColumnTile, kRowLanes), 0,
                             streamOf(ctx)>>>(
        s.rows, s.cols, static_cast<const T *>(dy), static_cast<const T *>(x),
        mean, rstd, dgamma, dbeta);
    return checkLaunch(shape);
  });
}

} // namespace

Status layerNormForward(Context &ctx, const RowsShape &s, const void *x,
                        const float *gamma, const float *beta, float eps,
                        void *y, float *mean, float *rstd) {
  ShapeText shape = rowsShape("layerNormForward", s);
  if (Status st = validateRows(s, shape, {x, y}, {gamma}); !st)
    return st;
  return dispatchFloat(s.dtype, [&](auto tag) {
    using T = decltype(tag);
    normForwardKernel<T><<<static_cast<unsigned>(s.rows), rowThreads(s.cols),
                           0, streamOf(ctx)>>>(
        s.cols, static_cast<const T *>(x), gamma, beta, eps, true,
        static_cast<T *>(y), mean, rstd);
    return checkLaunch(shape);
  });
}

Status layerNormBackward(Context &ctx, const RowsShape &s, const void *dy,
                         const void *x, const float *gamma, const float *mean,
                         const float *rstd, void *dx, float *dgamma,
                         float *dbeta) {
  ShapeText shape = rowsShape("layerNormBackward", s);
  if (Status st = validateRows(s, shape, {dy, x, dx}, {gamma, mean, rstd});
      !st)
    return st;
  if (Status st = paramGrads(ctx, s, shape, dy, x, mean, rstd, dgamma, dbeta);
      !st)
    return st;
  return dispatchFloat(s.dtype, [&](auto tag) {
    using T = decltype(tag);
    normBackwardKernel<T><<<static_cast<unsigned>(s.rows), rowThreads(s.cols),
                            0, streamOf(ctx)>>>(
        s.cols, static_cast<const T *>(dy), static_cast<const T *>(x), gamma,
        mean, rstd, static_cast<T *>(dx));
    return checkLaunch(shape);
  });
}

Status rmsNormForward(Context &ctx, const RowsShape &s, const void *x,
                      const float *gamma, float eps, void *y, float *rstd) {
  ShapeText shape = rowsShape("rmsNormForward", s);
  if (Status st = validateRows(s, shape, {x, y}, {gamma}); !st)
    return st;
  return dispatchFloat(s.dtype, [&](auto tag) {
    using T = decltype(tag);
    normForwardKernel<T><<<static_cast<unsigned>(s.rows), rowThreads(s.cols),
                           0, streamOf(ctx)>>>(
        s.cols, static_cast<const T *>(x), gamma, nullptr, eps, false,
        static_cast<T *>(y), nullptr, rstd);
    return checkLaunch(shape);
  });
}

Status rmsNormBackward(Context &ctx, const RowsShape &s, const void *dy,
                       const void *x, const float *gamma, const float *rstd,
                       void *dx, float *dgamma) {
  ShapeText shape = rowsShape("rmsNormBackward", s);
  if (Status st = validateRows(s, shape, {dy, x, dx}, {gamma, rstd}); !st)
    return st;
  // dx may alias dy: the parameter gradients read dy first.
  if (Status st =
          paramGrads(ctx, s, shape, dy, x, nullptr, rstd, dgamma, nullptr);
      !st)
    return st;
  return dispatchFloat(s.dtype, [&](auto tag) {
    using T = decltype(tag);
    normBackwardKernel<T><<<static_cast<unsigned>(s.rows), rowThreads(s.cols),
                            0, streamOf(ctx)>>>(
        s.cols, static_cast<const T *>(dy), static_cast<const T *>(x), gamma,
        nullptr, rstd, static_cast<T *>(dx));
    return checkLaunch(shape);
  });
}

Status softmaxForward(Context &ctx, const RowsShape &s, const void *x,
                      float scale, void *y) {
  ShapeText shape = rowsShape("softmaxForward", s);
  if (Status st = validateRows(s, shape, {x, y}, {}); !st)
    return st;
  return dispatchFloat(s.dtype, [&](auto tag) {
    using T = decltype(tag);
    softmaxForwardKernel<T><<<static_cast<unsigned>(s.rows),
                              rowThreads(s.cols), 0, streamOf(ctx)>>>(
        s.cols, static_cast<const T *>(x), scale, static_cast<T *>(y));
    return checkLaunch(shape);
  });
}

Status softmaxBackward(Context &ctx, const RowsShape &s, const void *y,
                       const void *dy, float scale, void *dx) {
  ShapeText shape = rowsShape("softmaxBackward", s);
  if (Status st = validateRows(s, shape, {y, dy, dx}, {}); !st)
    return st;
  return dispatchFloat(s.dtype, [&](auto tag) {
    using T = decltype(tag);
    softmaxBackwardKernel<T><<<static_cast<unsigned>(s.rows),
                               rowThreads(s.cols), 0, streamOf(ctx)>>>(
        s.cols, static_cast<const T *>(y), static_cast<const T *>(dy), scale,
        static_cast<T *>(dx));
    return checkLaunch(shape);
  });
}

} // namespace vlora::kernels::cuda
