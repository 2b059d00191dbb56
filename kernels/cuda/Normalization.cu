//===- Normalization.cu - LayerNorm, RMSNorm and softmax ------------------===//
//
// Row-wise passes keep the row in registers when it is whole 16-byte packs
// (cols a multiple of 4 fp32 / 8 bf16, 16-byte aligned tensors) of at most
// 4096 packs: a row group of 32..512 threads loads every pack of its row at
// once, reduces, and writes from the registers, so each tensor is read once.
// Short rows share a block (one warp per row). Any other shape takes the
// generic kernels: one row per block, scalar loops that re-read the row
// (from L1/L2). Parameter gradients: a column-parallel reduction over chunks
// of rows with one atomic add per column and chunk.
//
//===----------------------------------------------------------------------===//

#include "vlora/kernels/cuda/Normalization.h"

#include "Primitives.cuh"

#include <algorithm>
#include <type_traits>

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

/// Σ dy·xhat and Σ dy over a chunk of rows per block, written to the
/// chunk's row of partialG / partialB ([chunks, cols]); sumChunksKernel adds
/// them up in chunk order (deterministic: no atomics).
template <typename T>
__global__ void normParamGradKernel(int64_t rows, int64_t cols, const T *dy,
                                    const T *x, const float *meanIn,
                                    const float *rstdIn, float *partialGOut,
                                    float *partialBOut) {
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
    if (partialGOut)
      partialGOut[blockIdx.y * cols + col] = g;
    if (partialBOut)
      partialBOut[blockIdx.y * cols + col] = b;
  }
}

/// out[col] += Σ over chunks of partials[chunk][col], in chunk order.
__global__ void sumChunksKernel(int64_t chunks, int64_t cols,
                                const float *__restrict__ partials,
                                float *__restrict__ out) {
  for (int64_t col = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
       col < cols; col += int64_t(gridDim.x) * blockDim.x) {
    float sum = 0.f;
    for (int64_t c = 0; c < chunks; ++c)
      sum += partials[c * cols + col];
    out[col] += sum;
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

//===----------------------------------------------------------------------===//
// Rows held in registers
//===----------------------------------------------------------------------===//

/// kThreads threads (a power of two, 32..512) hold a row, kPacks 16-byte
/// packs each: pack k of a thread is pack lane + k·kThreads of the row, so
/// consecutive threads read consecutive 16 bytes. A block of kBlock threads
/// holds kRowsPerBlock rows.
template <int kPacks_, int kThreads_> struct RowTile {
  static constexpr int kPacks = kPacks_, kThreads = kThreads_;
  static constexpr int kBlock = kThreads < 256 ? 256 : kThreads;
  static constexpr int kRowsPerBlock = kBlock / kThreads;
};
/// The largest row (in packs) a tile holds.
constexpr int64_t kMaxTilePacks = 4096;

/// Sum (or max) over the kThreads threads of a row, returned to each of
/// them in the same bits. Every thread of the block calls it (rows of
/// several warps synchronise the block); scratch holds one float per warp.
template <int kThreads, bool kMax>
__device__ __forceinline__ float rowReduce(float v, float *scratch) {
  v = kMax ? warpMax(v) : warpSum(v);
  if constexpr (kThreads > 32) {
    constexpr int kWarps = kThreads / 32;
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads(); // scratch may still be read from a previous call
    if (lane == 0)
      scratch[warp] = v;
    __syncthreads();
    float identity = kMax ? -INFINITY : 0.f;
    v = lane < kWarps ? scratch[(warp & ~(kWarps - 1)) + lane] : identity;
    v = kMax ? warpMax(v) : warpSum(v);
  }
  return v;
}
template <int kThreads>
__device__ __forceinline__ float rowSum(float v, float *scratch) {
  return rowReduce<kThreads, false>(v, scratch);
}
template <int kThreads>
__device__ __forceinline__ float rowMax(float v, float *scratch) {
  return rowReduce<kThreads, true>(v, scratch);
}

/// Where a thread's row and packs are.
template <typename Tile> struct RowPlace {
  int lane;    // the thread's place in its row group
  int64_t row; // may be >= rows in the last block: then inactive
  bool active;
  __device__ __forceinline__ explicit RowPlace(int64_t rows)
      : lane(threadIdx.x % Tile::kThreads),
        row(int64_t(blockIdx.x) * Tile::kRowsPerBlock +
            threadIdx.x / Tile::kThreads),
        active(row < rows) {}
  __device__ __forceinline__ int pack(int k) const {
    return lane + k * Tile::kThreads;
  }
};

/// Loads the thread's packs of row `place.row` of a [rows, cols] tensor
/// (zeros past the row or for an inactive row).
template <typename T, typename Tile>
__device__ __forceinline__ void loadRow(const T *base, int cols, int packs,
                                        const RowPlace<Tile> &place,
                                        RawPack<T> (&raw)[Tile::kPacks]) {
  constexpr int W = Pack<T>::kSize;
  const T *rowBase = base + (place.active ? place.row : 0) * cols;
#pragma unroll
  for (int k = 0; k < Tile::kPacks; ++k) {
    int p = place.pack(k);
    raw[k] =
        place.active && p < packs ? loadRaw(rowBase + p * W) : zeroRaw<T>();
  }
}

/// normForwardKernel with the row in registers (kBeta: beta is non-null).
template <typename T, typename Tile, bool kBeta>
__global__ void __launch_bounds__(Tile::kBlock)
    normForwardTileKernel(int64_t rows, int cols, const T *x,
                          const float *__restrict__ gamma,
                          const float *__restrict__ beta, float eps,
                          bool center, T *y, float *meanOut, float *rstdOut) {
  constexpr int W = Pack<T>::kSize;
  __shared__ float scratch[Tile::kBlock / 32];
  RowPlace<Tile> place(rows);
  int packs = cols / W;
  RawPack<T> raw[Tile::kPacks];
  loadRow<T, Tile>(x, cols, packs, place, raw);
  float mean = 0.f;
  if (center) {
    float sum = 0.f; // the zeros past the row add nothing
#pragma unroll
    for (int k = 0; k < Tile::kPacks; ++k)
#pragma unroll
      for (int e = 0; e < W; ++e)
        sum += element(raw[k], e);
    mean = rowSum<Tile::kThreads>(sum, scratch) / cols;
  }
  float sq = 0.f;
#pragma unroll
  for (int k = 0; k < Tile::kPacks; ++k)
    if (place.pack(k) < packs)
#pragma unroll
      for (int e = 0; e < W; ++e) {
        float d = element(raw[k], e) - mean;
        sq += d * d;
      }
  float rstd = rsqrtf(rowSum<Tile::kThreads>(sq, scratch) / cols + eps);
  if (!place.active) // after the last synchronisation
    return;
  T *yr = y + place.row * cols;
#pragma unroll
  for (int k = 0; k < Tile::kPacks; ++k) {
    // No branch around the loads: the compiler may issue the next packs'
    // parameter loads before this pack's store (gamma and beta are
    // __restrict__).
    int p = place.pack(k);
    Packs<float, W> g, b;
    g.loadIf(p < packs, gamma + p * W);
    if constexpr (kBeta)
      b.loadIf(p < packs, beta + p * W);
    float out[W];
#pragma unroll
    for (int e = 0; e < W; ++e) {
      float v = (element(raw[k], e) - mean) * rstd * g[e];
      if constexpr (kBeta)
        v += b[e];
      out[e] = v;
    }
    if (p < packs)
      storeRaw(yr + p * W, toRaw(out));
  }
  if (place.lane == 0) {
    if (meanOut)
      meanOut[place.row] = mean;
    if (rstdOut)
      rstdOut[place.row] = rstd;
  }
}

/// normBackwardKernel with the row in registers: g = dy·gamma is rounded
/// once and kept, so both passes use the same value.
template <typename T, typename Tile>
__global__ void __launch_bounds__(Tile::kBlock)
    normBackwardTileKernel(int64_t rows, int cols, const T *dy, const T *x,
                           const float *__restrict__ gamma, const float *meanIn,
                           const float *rstdIn, T *dx) {
  constexpr int W = Pack<T>::kSize;
  __shared__ float scratch[Tile::kBlock / 32];
  RowPlace<Tile> place(rows);
  int packs = cols / W;
  RawPack<T> rawDy[Tile::kPacks], rawX[Tile::kPacks];
  loadRow<T, Tile>(dy, cols, packs, place, rawDy);
  loadRow<T, Tile>(x, cols, packs, place, rawX);
  int64_t statRow = place.active ? place.row : 0;
  float mean = meanIn ? meanIn[statRow] : 0.f, rstd = rstdIn[statRow];
  Packs<float, W> gam[Tile::kPacks];
#pragma unroll
  for (int k = 0; k < Tile::kPacks; ++k)
    gam[k].loadIf(place.pack(k) < packs, gamma + place.pack(k) * W);
  float g[Tile::kPacks][W];
  float sumG = 0.f, sumGX = 0.f;
#pragma unroll
  for (int k = 0; k < Tile::kPacks; ++k) {
#pragma unroll
    for (int e = 0; e < W; ++e) {
      // Past the row dy and gamma are zeros, and so is g.
      g[k][e] = __fmul_rn(element(rawDy[k], e), gam[k][e]);
      float xhat = (element(rawX[k], e) - mean) * rstd;
      sumG += g[k][e];
      sumGX += g[k][e] * xhat;
    }
  }
  float meanG = meanIn ? rowSum<Tile::kThreads>(sumG, scratch) / cols : 0.f;
  float meanGX = rowSum<Tile::kThreads>(sumGX, scratch) / cols;
  if (!place.active)
    return;
  T *dxr = dx + place.row * cols;
#pragma unroll
  for (int k = 0; k < Tile::kPacks; ++k) {
    int p = place.pack(k);
    if (p >= packs)
      continue;
    float out[W];
#pragma unroll
    for (int e = 0; e < W; ++e) {
      float xhat = (element(rawX[k], e) - mean) * rstd;
      out[e] = rstd * (g[k][e] - meanG - xhat * meanGX);
    }
    storeRaw(dxr + p * W, toRaw(out));
  }
}

/// softmaxForwardKernel with the row in registers. The exponent is one
/// explicit fma in both passes, so the sum and the outputs agree.
template <typename T, typename Tile>
__global__ void __launch_bounds__(Tile::kBlock)
    softmaxForwardTileKernel(int64_t rows, int cols, const T *x, float scale,
                             T *y) {
  constexpr int W = Pack<T>::kSize;
  __shared__ float scratch[Tile::kBlock / 32];
  RowPlace<Tile> place(rows);
  int packs = cols / W;
  RawPack<T> raw[Tile::kPacks];
  loadRow<T, Tile>(x, cols, packs, place, raw);
  float mx = -INFINITY;
#pragma unroll
  for (int k = 0; k < Tile::kPacks; ++k)
    if (place.pack(k) < packs)
#pragma unroll
      for (int e = 0; e < W; ++e)
        mx = fmaxf(mx, element(raw[k], e) * scale);
  mx = rowMax<Tile::kThreads>(mx, scratch);
  if (mx == -INFINITY)
    mx = 0;
  float sum = 0.f;
#pragma unroll
  for (int k = 0; k < Tile::kPacks; ++k)
    if (place.pack(k) < packs)
#pragma unroll
      for (int e = 0; e < W; ++e)
        sum += __expf(__fmaf_rn(element(raw[k], e), scale, -mx));
  float inv = 1.f / rowSum<Tile::kThreads>(sum, scratch);
  if (!place.active)
    return;
  T *yr = y + place.row * cols;
#pragma unroll
  for (int k = 0; k < Tile::kPacks; ++k) {
    int p = place.pack(k);
    if (p >= packs)
      continue;
    float out[W];
#pragma unroll
    for (int e = 0; e < W; ++e)
      out[e] = __expf(__fmaf_rn(element(raw[k], e), scale, -mx)) * inv;
    storeRaw(yr + p * W, toRaw(out));
  }
}

/// softmaxBackwardKernel with the rows in registers.
template <typename T, typename Tile>
__global__ void __launch_bounds__(Tile::kBlock)
    softmaxBackwardTileKernel(int64_t rows, int cols, const T *y, const T *dy,
                              float scale, T *dx) {
  constexpr int W = Pack<T>::kSize;
  __shared__ float scratch[Tile::kBlock / 32];
  RowPlace<Tile> place(rows);
  int packs = cols / W;
  RawPack<T> rawY[Tile::kPacks], rawDy[Tile::kPacks];
  loadRow<T, Tile>(y, cols, packs, place, rawY);
  loadRow<T, Tile>(dy, cols, packs, place, rawDy);
  float dot = 0.f; // the zeros past the row add nothing
#pragma unroll
  for (int k = 0; k < Tile::kPacks; ++k)
#pragma unroll
    for (int e = 0; e < W; ++e)
      dot += element(rawY[k], e) * element(rawDy[k], e);
  dot = rowSum<Tile::kThreads>(dot, scratch);
  if (!place.active)
    return;
  T *dxr = dx + place.row * cols;
#pragma unroll
  for (int k = 0; k < Tile::kPacks; ++k) {
    int p = place.pack(k);
    if (p >= packs)
      continue;
    float out[W];
#pragma unroll
    for (int e = 0; e < W; ++e)
      out[e] = scale * element(rawY[k], e) * (element(rawDy[k], e) - dot);
    storeRaw(dxr + p * W, toRaw(out));
  }
}

/// Calls f(Tile{}) with the smallest tile holding `packs` packs per row
/// (packs <= kMaxPacks <= kMaxTilePacks).
template <int64_t kMaxPacks = kMaxTilePacks, typename F>
Status withRowTile(int64_t packs, F &&f) {
  if (packs <= 32)
    return f(RowTile<1, 32>{});
  if (packs <= 64)
    return f(RowTile<2, 32>{});
  if (packs <= 128)
    return f(RowTile<4, 32>{});
  if (packs <= 256)
    return f(RowTile<4, 64>{});
  if (packs <= 512)
    return f(RowTile<4, 128>{});
  if (packs <= 1024)
    return f(RowTile<4, 256>{});
  if constexpr (kMaxPacks <= 2048)
    return f(RowTile<4, 512>{});
  else if (packs <= 2048)
    return f(RowTile<4, 512>{});
  else
    return f(RowTile<8, 512>{});
}

/// Whether rows of `cols` elements of `dtype` can be held in registers:
/// whole packs, at most kMaxTilePacks, every tensor 16-byte aligned (row
/// starts then are too).
bool rowsFitTile(int64_t cols, DType dtype,
                 std::initializer_list<const void *> tensors,
                 int64_t maxPacks = kMaxTilePacks) {
  int64_t width = dtype == DType::BF16 ? Pack<bf16>::kSize : Pack<float>::kSize;
  return cols % width == 0 && cols / width <= maxPacks && aligned16(tensors);
}
/// The backward passes hold two tensors: bf16 rows of 8 packs per thread
/// would spill.
template <typename T>
constexpr int64_t kBackwardMaxPacks =
    std::is_same_v<T, bf16> ? kMaxTilePacks / 2 : kMaxTilePacks;
int64_t backwardMaxPacks(DType dtype) {
  return dtype == DType::BF16 ? kBackwardMaxPacks<bf16>
                              : kBackwardMaxPacks<float>;
}

template <typename Tile> unsigned tileBlocks(int64_t rows) {
  return static_cast<unsigned>((rows + Tile::kRowsPerBlock - 1) /
                               Tile::kRowsPerBlock);
}

//===----------------------------------------------------------------------===//
// Parameter gradients over whole packs
//===----------------------------------------------------------------------===//

constexpr int kGradLanes = 8, kGradTargetBlocks = 1024;

/// normParamGradKernel over 16-byte packs: a warp reads 32 consecutive
/// packs of a row, the kGradLanes warps of a block take every kGradLanes-th
/// row of the block's chunk; partial sums stay in registers until one
/// shared-memory reduction and one store per column and chunk (into the
/// chunk's row of partialG / partialB, summed by sumChunksKernel).
template <typename T>
__global__ void __launch_bounds__(32 * kGradLanes)
    normParamGradPackKernel(int64_t rows, int cols, int64_t rowsPerChunk,
                            const T *dy, const T *x, const float *meanIn,
                            const float *rstdIn, float *partialGOut,
                            float *partialBOut) {
  constexpr int W = Pack<T>::kSize;
  __shared__ float partialG[kGradLanes - 1][W][32];
  __shared__ float partialB[kGradLanes - 1][W][32];
  int packs = cols / W;
  int p = blockIdx.x * 32 + threadIdx.x;
  int64_t begin = blockIdx.y * rowsPerChunk;
  int64_t end = min(rows, begin + rowsPerChunk);
  float g[W], b[W];
#pragma unroll
  for (int e = 0; e < W; ++e)
    g[e] = b[e] = 0.f;
  if (p < packs) {
    const T *dyColumn = dy + p * W, *xColumn = x + p * W;
#pragma unroll 4
    for (int64_t row = begin + threadIdx.y; row < end; row += kGradLanes) {
      Packs<T, W> d, v;
      d.load(dyColumn + row * cols);
      v.load(xColumn + row * cols);
      float mean = meanIn ? meanIn[row] : 0.f, rstd = rstdIn[row];
#pragma unroll
      for (int e = 0; e < W; ++e) {
        g[e] += d[e] * (v[e] - mean) * rstd;
        b[e] += d[e];
      }
    }
  }
  if (threadIdx.y > 0)
#pragma unroll
    for (int e = 0; e < W; ++e) {
      partialG[threadIdx.y - 1][e][threadIdx.x] = g[e];
      partialB[threadIdx.y - 1][e][threadIdx.x] = b[e];
    }
  __syncthreads();
  if (threadIdx.y != 0 || p >= packs)
    return;
  for (int lane = 0; lane < kGradLanes - 1; ++lane)
#pragma unroll
    for (int e = 0; e < W; ++e) {
      g[e] += partialG[lane][e][threadIdx.x];
      b[e] += partialB[lane][e][threadIdx.x];
    }
  int64_t at = blockIdx.y * int64_t(cols) + int64_t(p) * W;
#pragma unroll
  for (int e = 0; e < W; ++e) {
    if (partialGOut)
      partialGOut[at + e] = g[e];
    if (partialBOut)
      partialBOut[at + e] = b[e];
  }
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

/// Adds the chunks' partial sums ([chunks, cols] each) into dgamma / dbeta
/// in chunk order and frees them.
Status sumChunks(Context &ctx, const ShapeText &shape, int64_t chunks,
                 int64_t cols, float *partials, float *dgamma, float *dbeta) {
  constexpr int threads = 256;
  int64_t wanted = (cols + threads - 1) / threads;
  unsigned blocks = static_cast<unsigned>(wanted < 4096 ? wanted : 4096);
  if (dgamma)
    sumChunksKernel<<<blocks, threads, 0, streamOf(ctx)>>>(chunks, cols,
                                                          partials, dgamma);
  if (dbeta)
    sumChunksKernel<<<blocks, threads, 0, streamOf(ctx)>>>(
        chunks, cols, partials + chunks * cols, dbeta);
  if (Status st = checkLaunch(shape); !st)
    return st;
  return check(cudaFreeAsync(partials, streamOf(ctx)), shape,
               "cudaFreeAsync (parameter-gradient partials)");
}

/// dgamma += Σ dy·xhat and dbeta += Σ dy over the rows: per chunk of rows
/// into scratch, then summed in chunk order, so the result does not depend
/// on the order blocks finish in.
Status paramGrads(Context &ctx, const RowsShape &s, const ShapeText &shape,
                  const void *dy, const void *x, const float *mean,
                  const float *rstd, float *dgamma, float *dbeta) {
  if (!dgamma && !dbeta)
    return Status::success();
  auto allocate = [&](int64_t chunks, float *&partials) {
    void *p = nullptr;
    Status st = check(cudaMallocAsync(&p, size_t(2 * chunks * s.cols) * sizeof(float),
                                      streamOf(ctx)),
                      shape, "cudaMallocAsync (parameter-gradient partials)");
    partials = static_cast<float *>(p);
    return st;
  };
  if (rowsFitTile(s.cols, s.dtype, {dy, x})) {
    return dispatchFloat(s.dtype, [&](auto tag) {
      using T = decltype(tag);
      int64_t packs = s.cols / Pack<T>::kSize;
      int64_t columnBlocks = (packs + 31) / 32;
      // About kGradTargetBlocks blocks in all: chunks of rows per column block.
      int64_t chunks = std::max<int64_t>(
          1, (kGradTargetBlocks + columnBlocks - 1) / columnBlocks);
      int64_t rowsPerChunk = (s.rows + chunks - 1) / chunks;
      rowsPerChunk = (rowsPerChunk + kGradLanes - 1) / kGradLanes * kGradLanes;
      dim3 grid(
          static_cast<unsigned>(columnBlocks),
          static_cast<unsigned>((s.rows + rowsPerChunk - 1) / rowsPerChunk));
      float *partials = nullptr;
      if (Status st = allocate(grid.y, partials); !st)
        return st;
      normParamGradPackKernel<T>
          <<<grid, dim3(32, kGradLanes), 0, streamOf(ctx)>>>(
              s.rows, static_cast<int>(s.cols), rowsPerChunk,
              static_cast<const T *>(dy), static_cast<const T *>(x), mean, rstd,
              dgamma ? partials : nullptr,
              dbeta ? partials + int64_t(grid.y) * s.cols : nullptr);
      if (Status st = checkLaunch(shape); !st) {
        cudaFreeAsync(partials, streamOf(ctx));
        return st;
      }
      return sumChunks(ctx, shape, grid.y, s.cols, partials, dgamma, dbeta);
    });
  }
  dim3 grid(static_cast<unsigned>((s.cols + kColumnTile - 1) / kColumnTile),
            static_cast<unsigned>((s.rows + kRowsPerChunk - 1) / kRowsPerChunk));
  if (grid.y > 65535)
    return fail(shape, "too many rows for the parameter-gradient reduction");
  float *partials = nullptr;
  if (Status st = allocate(grid.y, partials); !st)
    return st;
  Status launched = dispatchFloat(s.dtype, [&](auto tag) {
    using T = decltype(tag);
    normParamGradKernel<T><<<grid, dim3(kColumnTile, kRowLanes), 0,
                             streamOf(ctx)>>>(
        s.rows, s.cols, static_cast<const T *>(dy), static_cast<const T *>(x),
        mean, rstd, dgamma ? partials : nullptr,
        dbeta ? partials + int64_t(grid.y) * s.cols : nullptr);
    return checkLaunch(shape);
  });
  if (!launched) {
    cudaFreeAsync(partials, streamOf(ctx));
    return launched;
  }
  return sumChunks(ctx, shape, grid.y, s.cols, partials, dgamma, dbeta);
}

/// LayerNorm (center) or RMSNorm forward.
Status normForward(Context &ctx, const RowsShape &s, const ShapeText &shape,
                   const void *x, const float *gamma, const float *beta,
                   float eps, bool center, void *y, float *mean, float *rstd) {
  bool tile = rowsFitTile(s.cols, s.dtype, {x, y, gamma, beta});
  return dispatchFloat(s.dtype, [&](auto tag) {
    using T = decltype(tag);
    auto *xT = static_cast<const T *>(x);
    auto *yT = static_cast<T *>(y);
    if (!tile) {
      normForwardKernel<T><<<static_cast<unsigned>(s.rows), rowThreads(s.cols),
                             0, streamOf(ctx)>>>(s.cols, xT, gamma, beta, eps,
                                                 center, yT, mean, rstd);
      return checkLaunch(shape);
    }
    return withRowTile(s.cols / Pack<T>::kSize, [&](auto tileTag) {
      using Tile = decltype(tileTag);
      auto kernel = beta ? normForwardTileKernel<T, Tile, true>
                         : normForwardTileKernel<T, Tile, false>;
      kernel<<<tileBlocks<Tile>(s.rows), Tile::kBlock, 0, streamOf(ctx)>>>(
          s.rows, static_cast<int>(s.cols), xT, gamma, beta, eps, center, yT,
          mean, rstd);
      return checkLaunch(shape);
    });
  });
}

/// dx of LayerNorm (mean != null) or RMSNorm.
Status normBackward(Context &ctx, const RowsShape &s, const ShapeText &shape,
                    const void *dy, const void *x, const float *gamma,
                    const float *mean, const float *rstd, void *dx) {
  bool tile = rowsFitTile(s.cols, s.dtype, {dy, x, dx, gamma},
                          backwardMaxPacks(s.dtype));
  return dispatchFloat(s.dtype, [&](auto tag) {
    using T = decltype(tag);
    auto *dyT = static_cast<const T *>(dy);
    auto *xT = static_cast<const T *>(x);
    auto *dxT = static_cast<T *>(dx);
    if (!tile) {
      normBackwardKernel<T>
          <<<static_cast<unsigned>(s.rows), rowThreads(s.cols), 0,
             streamOf(ctx)>>>(s.cols, dyT, xT, gamma, mean, rstd, dxT);
      return checkLaunch(shape);
    }
    return withRowTile<kBackwardMaxPacks<T>>(
        s.cols / Pack<T>::kSize, [&](auto tileTag) {
          using Tile = decltype(tileTag);
          normBackwardTileKernel<T, Tile>
              <<<tileBlocks<Tile>(s.rows), Tile::kBlock, 0, streamOf(ctx)>>>(
                  s.rows, static_cast<int>(s.cols), dyT, xT, gamma, mean, rstd,
                  dxT);
          return checkLaunch(shape);
        });
  });
}

} // namespace

Status layerNormForward(Context &ctx, const RowsShape &s, const void *x,
                        const float *gamma, const float *beta, float eps,
                        void *y, float *mean, float *rstd) {
  ShapeText shape = rowsShape("layerNormForward", s);
  if (Status st = validateRows(s, shape, {x, y}, {gamma}); !st)
    return st;
  return normForward(ctx, s, shape, x, gamma, beta, eps, true, y, mean, rstd);
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
  return normBackward(ctx, s, shape, dy, x, gamma, mean, rstd, dx);
}

Status rmsNormForward(Context &ctx, const RowsShape &s, const void *x,
                      const float *gamma, float eps, void *y, float *rstd) {
  ShapeText shape = rowsShape("rmsNormForward", s);
  if (Status st = validateRows(s, shape, {x, y}, {gamma}); !st)
    return st;
  return normForward(ctx, s, shape, x, gamma, nullptr, eps, false, y, nullptr,
                     rstd);
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
  return normBackward(ctx, s, shape, dy, x, gamma, nullptr, rstd, dx);
}

Status softmaxForward(Context &ctx, const RowsShape &s, const void *x,
                      float scale, void *y) {
  ShapeText shape = rowsShape("softmaxForward", s);
  if (Status st = validateRows(s, shape, {x, y}, {}); !st)
    return st;
  bool tile = rowsFitTile(s.cols, s.dtype, {x, y});
  return dispatchFloat(s.dtype, [&](auto tag) {
    using T = decltype(tag);
    auto *xT = static_cast<const T *>(x);
    auto *yT = static_cast<T *>(y);
    if (!tile) {
      softmaxForwardKernel<T>
          <<<static_cast<unsigned>(s.rows), rowThreads(s.cols), 0,
             streamOf(ctx)>>>(s.cols, xT, scale, yT);
      return checkLaunch(shape);
    }
    return withRowTile(s.cols / Pack<T>::kSize, [&](auto tileTag) {
      using Tile = decltype(tileTag);
      softmaxForwardTileKernel<T, Tile>
          <<<tileBlocks<Tile>(s.rows), Tile::kBlock, 0, streamOf(ctx)>>>(
              s.rows, static_cast<int>(s.cols), xT, scale, yT);
      return checkLaunch(shape);
    });
  });
}

Status softmaxBackward(Context &ctx, const RowsShape &s, const void *y,
                       const void *dy, float scale, void *dx) {
  ShapeText shape = rowsShape("softmaxBackward", s);
  if (Status st = validateRows(s, shape, {y, dy, dx}, {}); !st)
    return st;
  bool tile =
      rowsFitTile(s.cols, s.dtype, {y, dy, dx}, backwardMaxPacks(s.dtype));
  return dispatchFloat(s.dtype, [&](auto tag) {
    using T = decltype(tag);
    auto *yT = static_cast<const T *>(y);
    auto *dyT = static_cast<const T *>(dy);
    auto *dxT = static_cast<T *>(dx);
    if (!tile) {
      softmaxBackwardKernel<T>
          <<<static_cast<unsigned>(s.rows), rowThreads(s.cols), 0,
             streamOf(ctx)>>>(s.cols, yT, dyT, scale, dxT);
      return checkLaunch(shape);
    }
    return withRowTile<kBackwardMaxPacks<T>>(
        s.cols / Pack<T>::kSize, [&](auto tileTag) {
          using Tile = decltype(tileTag);
          softmaxBackwardTileKernel<T, Tile>
              <<<tileBlocks<Tile>(s.rows), Tile::kBlock, 0, streamOf(ctx)>>>(
                  s.rows, static_cast<int>(s.cols), yT, dyT, scale, dxT);
          return checkLaunch(shape);
        });
  });
}

} // namespace vlora::kernels::cuda
