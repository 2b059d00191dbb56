//===- OpsData.cu - CUDA twins of data movement, scans, reductions, gathers
//===//
//
// The semantics are the CPU kernels' (kernels/cpu/DataMovement.cpp,
// Normalization.cpp, Training.cpp). Data movement moves element-sized (or,
// where sizes and alignment allow, up to 16-byte) words without looking at
// the values, so it takes every element type:
//  - transpose, slice, expand: one thread per output element reading through
//    a StridedSpace (OpsCommon.cuh) with merged dimensions;
//  - concat, split: one row copy per input/output (rows of bytes);
//  - pad, trilu, gather*, scatterND, masked*: one thread per output word.
// Scans and reductions keep the CPU's accumulator types (double for floats,
// wrapping 64-bit integers); only the association order differs (warp
// trees), which can change f64 results in the last bits. gatherGrad and
// scatterND are deterministic: the indices are radix-sorted (stable), then
// each output slice sums its gradients in index order (bit-identical to the
// CPU) or takes the last update (as the CPU's sequential writes do).
// Temporary buffers come from the stream-ordered allocator.
// Data-dependent failures are recorded (recordDataError) and the offending
// elements are skipped.
//
//===----------------------------------------------------------------------===//

#include "vlora/kernels/cuda/Ops.h"

#include "OpsCommon.cuh"

#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include <type_traits>

namespace vlora::kernels::cuda::ops {
using namespace detail;

namespace {

constexpr int kThreads = 256;

#define VLORA_OPS_GRID_STRIDE(i, n)                                            \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n);    \
       i += int64_t(gridDim.x) * blockDim.x)

/// Warp-granular grid stride: `w` is the warp's item, lane its lane.
#define VLORA_OPS_WARP_STRIDE(w, n)                                            \
  for (int64_t w = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;      \
       w < (n); w += int64_t(gridDim.x) * blockDim.x / 32)

constexpr int64_t kInt32Limit = int64_t(1) << 31;

/// Calls f(T{}) with an unsigned type of the element size.
template <typename F> Status visitBits(DType dtype, F &&f) {
  switch (dtypeSize(dtype)) {
  case 1:
    return f(uint8_t{});
  case 2:
    return f(uint16_t{});
  case 4:
    return f(uint32_t{});
  default:
    return f(uint64_t{});
  }
}

/// Calls f(W{}) with the widest word (16, 8, 4, 2 or 1 bytes) that divides
/// every byte count and address in `quantities`.
template <typename F>
Status visitWord(std::initializer_list<uint64_t> quantities, F &&f) {
  uint64_t all = 16;
  for (uint64_t q : quantities)
    all |= q;
  if (all % 16 == 0)
    return f(uint4{});
  if (all % 8 == 0)
    return f(uint64_t{});
  if (all % 4 == 0)
    return f(uint32_t{});
  if (all % 2 == 0)
    return f(uint16_t{});
  return f(uint8_t{});
}
uint64_t addressOf(const void *p) { return reinterpret_cast<uintptr_t>(p); }

/// Calls f(T{}) for the arithmetic types of the scans and reductions.
template <typename F>
Status visitArithmetic(DType dtype, const ShapeText &text, F &&f) {
  switch (dtype) {
  case DType::F32:
    return f(float{});
  case DType::F64:
    return f(double{});
  case DType::I64:
    return f(int64_t{});
  case DType::I32:
    return f(int32_t{});
  default:
    return fail(text, "unsupported element type");
  }
}

/// Calls f(IdxT{}) for an i32 or i64 index tensor.
template <typename F>
Status visitIndex(const TensorRef &indices, const ShapeText &text, F &&f) {
  if (indices.dtype == DType::I64)
    return f(int64_t{});
  if (indices.dtype == DType::I32)
    return f(int32_t{});
  return fail(text, "indices must be i32 or i64");
}

Status refuseRank(const ShapeText &text) {
  return fail(text, "more than " + std::to_string(kMaxOpRank) +
                        " dimensions after merging; not supported on cuda");
}

template <int N, typename F>
Status withSpace(const SpaceBuilder<N> &builder, F &&f) {
  if (builder.fits32())
    return f(builder.template build<int32_t>());
  return f(builder.template build<int64_t>());
}

/// A stream-ordered temporary buffer (cudaMallocAsync), carved into
/// 256-byte-aligned parts; freed on the stream when released or destroyed.
class Scratch {
public:
  explicit Scratch(cudaStream_t stream) : stream_(stream) {}
  ~Scratch() {
    if (data_)
      (void)cudaFreeAsync(data_, stream_);
  }
  Scratch(const Scratch &) = delete;
  Scratch &operator=(const Scratch &) = delete;
  /// Reserves `bytes` (before allocate()); returns the part's offset.
  size_t reserve(size_t bytes) {
    size_t at = bytes_;
    bytes_ += (bytes + 255) / 256 * 256;
    return at;
  }
  Status allocate(const ShapeText &text) {
    return check(cudaMallocAsync(&data_, bytes_ ? bytes_ : 256, stream_), text,
                 "cudaMallocAsync(scratch)");
  }
  template <typename T> T *at(size_t offset) const {
    return reinterpret_cast<T *>(static_cast<char *>(data_) + offset);
  }
  Status release(const ShapeText &text) {
    void *data = data_;
    data_ = nullptr;
    return check(cudaFreeAsync(data, stream_), text, "cudaFreeAsync(scratch)");
  }

private:
  cudaStream_t stream_;
  void *data_ = nullptr;
  size_t bytes_ = 0;
};

/// Index `raw` normalised into [0, size), or -1 after recording the error.
template <typename IdxT>
__device__ __forceinline__ int64_t normalised(IdxT raw, int64_t size,
                                              DataError *error, OpId op) {
  int64_t j = static_cast<int64_t>(raw);
  j = j < 0 ? j + size : j;
  if (j < 0 || j >= size) {
    recordDataError(error, DataErrorCode::IndexOutOfRange, op,
                    static_cast<int64_t>(raw), -size, size);
    return -1;
  }
  return j;
}

//===----------------------------------------------------------------------===//
// Strided copies, row copies, pad, trilu
//===----------------------------------------------------------------------===//

template <typename T, typename I>
__global__ void __launch_bounds__(kThreads)
    stridedCopyKernel(int64_t n, StridedSpace<1, I> space, const T *x, T *y) {
  VLORA_OPS_GRID_STRIDE(i, n) {
    I at[1];
    space.offsets(static_cast<I>(i), at);
    y[i] = x[at[0]];
  }
}

/// out (contiguous, shape builder.size before merging) from `in` read with
/// the builder's strides.
Status stridedCopy(Context &ctx, const ShapeText &text, const TensorRef &in,
                   const TensorRef &out, SpaceBuilder<1> builder) {
  int64_t n = out.numel();
  if (n == 0)
    return Status::success();
  builder.coalesce();
  if (builder.rank() > kMaxOpRank)
    return refuseRank(text);
  unsigned blocks = blocksFor(n, kThreads);
  cudaStream_t stream = streamOf(ctx);
  return withSpace(builder, [&](auto space) -> Status {
    using I = std::remove_reference_t<decltype(space.base[0])>;
    return visitBits(out.dtype, [&](auto tag) -> Status {
      using T = decltype(tag);
      stridedCopyKernel<T, I><<<blocks, kThreads, 0, stream>>>(
          n, space, in.as<const T>(), out.as<T>());
      return checkLaunch(text);
    });
  });
}

/// dst[o * dstPitch + r] = src[o * srcPitch + r] for o < rows, r < row (in
/// words).
template <typename W, typename I>
__global__ void __launch_bounds__(kThreads)
    rowsKernel(int64_t n, I row, const W *src, I srcPitch, W *dst, I dstPitch) {
  VLORA_OPS_GRID_STRIDE(i, n) {
    I o = static_cast<I>(i) / row, r = static_cast<I>(i) - o * row;
    dst[o * dstPitch + r] = src[o * srcPitch + r];
  }
}

Status copyRows(Context &ctx, const ShapeText &text, const void *src,
                size_t srcPitch, void *dst, size_t dstPitch, int64_t rows,
                size_t rowBytes) {
  if (rows == 0 || rowBytes == 0)
    return Status::success();
  cudaStream_t stream = streamOf(ctx);
  return visitWord(
      {addressOf(src), addressOf(dst), srcPitch, dstPitch, rowBytes},
      [&](auto word) -> Status {
        using W = decltype(word);
        int64_t row = rowBytes / sizeof(W);
        int64_t sp = srcPitch / sizeof(W), dp = dstPitch / sizeof(W);
        int64_t n = rows * row;
        unsigned blocks = blocksFor(n, kThreads);
        bool small = n < kInt32Limit && rows * sp < kInt32Limit &&
                     rows * dp < kInt32Limit;
        if (small)
          rowsKernel<W, int32_t><<<blocks, kThreads, 0, stream>>>(
              n, static_cast<int32_t>(row), static_cast<const W *>(src),
              static_cast<int32_t>(sp), static_cast<W *>(dst),
              static_cast<int32_t>(dp));
        else
          rowsKernel<W, int64_t><<<blocks, kThreads, 0, stream>>>(
              n, row, static_cast<const W *>(src), sp, static_cast<W *>(dst),
              dp);
        return checkLaunch(text);
      });
}

struct PadSpace {
  int rank;
  int64_t outSize[kMaxOpRank], inSize[kMaxOpRank], begin[kMaxOpRank],
      inStride[kMaxOpRank];
};

template <typename T>
__global__ void __launch_bounds__(kThreads)
    padKernel(int64_t n, PadSpace s, const T *x, T *y, T value) {
  VLORA_OPS_GRID_STRIDE(i, n) {
    int64_t rest = i, at = 0;
    bool inside = true;
    for (int d = s.rank - 1; d >= 0; --d) {
      int64_t c = rest % s.outSize[d] - s.begin[d];
      rest /= s.outSize[d];
      inside = inside && c >= 0 && c < s.inSize[d];
      at += c * s.inStride[d];
    }
    y[i] = inside ? x[at] : value;
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    triluKernel(int64_t n, int64_t rows, int64_t cols, bool upper, int64_t k,
                const T *x, T *y) {
  VLORA_OPS_GRID_STRIDE(i, n) {
    int64_t j = i % cols, r = (i / cols) % rows;
    bool keep = upper ? j - r >= k : j - r <= k;
    y[i] = keep ? x[i] : T(0);
  }
}

//===----------------------------------------------------------------------===//
// Cumsum, reductions, argmax
//===----------------------------------------------------------------------===//

/// The CPU's accumulators: double for floats, wrapping 64-bit for integers.
template <typename T>
using ScanAcc = std::conditional_t<std::is_integral_v<T>, uint64_t, double>;
template <typename T>
using ReduceAcc = std::conditional_t<std::is_integral_v<T>, int64_t, double>;

__device__ __forceinline__ double shflUp(double v, int d) {
  return __shfl_up_sync(0xffffffffu, v, d);
}
__device__ __forceinline__ uint64_t shflUp(uint64_t v, int d) {
  return static_cast<uint64_t>(
      __shfl_up_sync(0xffffffffu, static_cast<unsigned long long>(v), d));
}
__device__ __forceinline__ double shflIdx(double v, int lane) {
  return __shfl_sync(0xffffffffu, v, lane);
}
__device__ __forceinline__ uint64_t shflIdx(uint64_t v, int lane) {
  return static_cast<uint64_t>(
      __shfl_sync(0xffffffffu, static_cast<unsigned long long>(v), lane));
}
__device__ __forceinline__ double shflXor(double v, int d) {
  return __shfl_xor_sync(0xffffffffu, v, d);
}
__device__ __forceinline__ int64_t shflXor(int64_t v, int d) {
  return static_cast<int64_t>(
      __shfl_xor_sync(0xffffffffu, static_cast<long long>(v), d));
}

/// One thread per (outer, inner) line, sequential over the axis (coalesced
/// across inner).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    cumsumLinesKernel(int64_t lines, int64_t size, int64_t inner, const T *x,
                      T *y, bool exclusive, bool reverse) {
  using Acc = ScanAcc<T>;
  VLORA_OPS_GRID_STRIDE(line, lines) {
    int64_t o = line / inner, i = line - o * inner;
    Acc acc = 0;
    for (int64_t s = 0; s < size; ++s) {
      int64_t j = reverse ? size - 1 - s : s;
      int64_t at = (o * size + j) * inner + i;
      T v = x[at];
      if (exclusive) {
        y[at] = static_cast<T>(acc);
        acc += static_cast<Acc>(v);
      } else {
        acc += static_cast<Acc>(v);
        y[at] = static_cast<T>(acc);
      }
    }
  }
}

/// One warp per contiguous row (inner == 1): 32 elements at a time, a warp
/// scan plus the carry of the previous chunks.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    cumsumRowsKernel(int64_t rows, int64_t size, const T *x, T *y,
                     bool exclusive, bool reverse) {
  using Acc = ScanAcc<T>;
  int lane = threadIdx.x % 32;
  VLORA_OPS_WARP_STRIDE(row, rows) {
    Acc carry = 0;
    for (int64_t chunk = 0; chunk < size; chunk += 32) {
      int64_t s = chunk + lane;
      bool valid = s < size;
      int64_t at = row * size + (reverse ? size - 1 - s : s);
      Acc v = valid ? static_cast<Acc>(x[at]) : Acc(0);
      Acc inclusive = v;
#pragma unroll
      for (int d = 1; d < 32; d <<= 1) {
        Acc t = shflUp(inclusive, d);
        if (lane >= d)
          inclusive += t;
      }
      Acc before = shflUp(inclusive, 1);
      if (lane == 0)
        before = 0;
      if (valid)
        y[at] = static_cast<T>(carry + (exclusive ? before : inclusive));
      carry += shflIdx(inclusive, 31);
    }
  }
}

template <typename T> __device__ ReduceAcc<T> reduceInit(ReduceOp op) {
  using Acc = ReduceAcc<T>;
  switch (op) {
  case ReduceOp::Prod:
    return Acc(1);
  case ReduceOp::Max:
    if constexpr (std::is_integral_v<T>)
      return std::numeric_limits<T>::lowest();
    else
      return -INFINITY;
  case ReduceOp::Min:
    if constexpr (std::is_integral_v<T>)
      return std::numeric_limits<T>::max();
    else
      return INFINITY;
  default:
    return Acc(0);
  }
}

/// a = a op v with the CPU's rules (integers wrap; a NaN wins max and min).
template <typename Acc>
__device__ __forceinline__ void reduceStep(ReduceOp op, Acc &a, Acc v) {
  constexpr bool isInt = std::is_integral_v<Acc>;
  switch (op) {
  case ReduceOp::Sum:
  case ReduceOp::Mean:
    if constexpr (isInt)
      a = static_cast<Acc>(static_cast<uint64_t>(a) + static_cast<uint64_t>(v));
    else
      a += v;
    break;
  case ReduceOp::Prod:
    if constexpr (isInt)
      a = static_cast<Acc>(static_cast<uint64_t>(a) * static_cast<uint64_t>(v));
    else
      a *= v;
    break;
  case ReduceOp::Max:
    if (v > a || (!isInt && v != v))
      a = v;
    break;
  case ReduceOp::Min:
    if (v < a || (!isInt && v != v))
      a = v;
    break;
  }
}

template <typename T>
__device__ T reduceFinal(ReduceOp op, ReduceAcc<T> a, int64_t count) {
  if (op == ReduceOp::Mean) {
    if constexpr (std::is_integral_v<T>)
      return count ? static_cast<T>(a / count) : T(0);
    else
      return static_cast<T>(a / static_cast<double>(count));
  }
  return static_cast<T>(a);
}

/// One warp per output element; lanes stride over the reduced positions.
template <typename T, typename I>
__global__ void __launch_bounds__(kThreads)
    reduceWarpKernel(int64_t outN, int64_t count, StridedSpace<1, I> kept,
                     StridedSpace<1, I> reduced, ReduceOp op, const T *x,
                     T *y) {
  using Acc = ReduceAcc<T>;
  int lane = threadIdx.x % 32;
  VLORA_OPS_WARP_STRIDE(o, outN) {
    I base[1];
    kept.offsets(static_cast<I>(o), base);
    Acc a = reduceInit<T>(op);
    for (int64_t r = lane; r < count; r += 32) {
      I at[1];
      reduced.offsets(static_cast<I>(r), at);
      reduceStep(op, a, static_cast<Acc>(x[base[0] + at[0]]));
    }
#pragma unroll
    for (int d = 16; d > 0; d >>= 1)
      reduceStep(op, a, shflXor(a, d));
    if (lane == 0)
      y[o] = reduceFinal<T>(op, a, count);
  }
}

/// One thread per output element, sequential over the reduced positions
/// (when the innermost input dimension is kept: coalesced across threads).
template <typename T, typename I>
__global__ void __launch_bounds__(kThreads)
    reduceThreadKernel(int64_t outN, int64_t count, StridedSpace<1, I> kept,
                       StridedSpace<1, I> reduced, ReduceOp op, const T *x,
                       T *y) {
  using Acc = ReduceAcc<T>;
  VLORA_OPS_GRID_STRIDE(o, outN) {
    I base[1];
    kept.offsets(static_cast<I>(o), base);
    Acc a = reduceInit<T>(op);
    for (int64_t r = 0; r < count; ++r) {
      I at[1];
      reduced.offsets(static_cast<I>(r), at);
      reduceStep(op, a, static_cast<Acc>(x[base[0] + at[0]]));
    }
    y[o] = reduceFinal<T>(op, a, count);
  }
}

/// Whether (v, j) beats (b, bj) for argmax: NaN is the maximum; equal
/// values (or two NaNs) go to the first index, or the last with selectLast.
/// bj < 0: nothing yet.
template <typename T>
__device__ __forceinline__ bool argBetter(T v, int64_t j, T b, int64_t bj,
                                          bool selectLast) {
  if (j < 0)
    return false;
  if (bj < 0)
    return true;
  bool vNan = v != v, bNan = b != b;
  if (vNan != bNan)
    return vNan;
  if (!vNan && v != b)
    return v > b;
  return selectLast ? j > bj : j < bj;
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    argmaxLinesKernel(int64_t lines, int64_t size, int64_t inner, const T *x,
                      int64_t *y, bool selectLast) {
  VLORA_OPS_GRID_STRIDE(line, lines) {
    int64_t o = line / inner, i = line - o * inner;
    const T *xs = x + o * size * inner + i;
    T best = size ? xs[0] : T(0);
    int64_t bestJ = 0;
    for (int64_t j = 1; j < size; ++j) {
      T v = xs[j * inner];
      if (argBetter(v, j, best, bestJ, selectLast)) {
        best = v;
        bestJ = j;
      }
    }
    y[line] = bestJ;
  }
}

template <typename T> __device__ __forceinline__ T shflXorValue(T v, int d) {
  if constexpr (std::is_same_v<T, double>)
    return __shfl_xor_sync(0xffffffffu, v, d);
  else if constexpr (std::is_same_v<T, int64_t>)
    return static_cast<int64_t>(
        __shfl_xor_sync(0xffffffffu, static_cast<long long>(v), d));
  else
    return __shfl_xor_sync(0xffffffffu, v, d);
}

/// One warp per contiguous row (inner == 1).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    argmaxRowsKernel(int64_t rows, int64_t size, const T *x, int64_t *y,
                     bool selectLast) {
  int lane = threadIdx.x % 32;
  VLORA_OPS_WARP_STRIDE(row, rows) {
    const T *xs = x + row * size;
    T best = T(0);
    int64_t bestJ = -1;
    for (int64_t j = lane; j < size; j += 32) {
      T v = xs[j];
      if (argBetter(v, j, best, bestJ, selectLast)) {
        best = v;
        bestJ = j;
      }
    }
#pragma unroll
    for (int d = 16; d > 0; d >>= 1) {
      T v = shflXorValue(best, d);
      int64_t j = shflXor(bestJ, d);
      if (argBetter(v, j, best, bestJ, selectLast)) {
        best = v;
        bestJ = j;
      }
    }
    if (lane == 0)
      y[row] = bestJ < 0 ? 0 : bestJ;
  }
}

//===----------------------------------------------------------------------===//
// Gathers and scatters
//===----------------------------------------------------------------------===//

/// out [outer, count, inner] words from data [outer, size, inner].
template <typename W, typename IdxT>
__global__ void __launch_bounds__(kThreads)
    gatherKernel(int64_t n, int64_t count, int64_t size, int64_t inner,
                 const W *data, const IdxT *indices, W *out, DataError *error) {
  VLORA_OPS_GRID_STRIDE(e, n) {
    int64_t t = e / inner, k = e - t * inner;
    int64_t o = t / count, i = t - o * count;
    int64_t j = normalised(indices[i], size, error, OpId::Gather);
    if (j >= 0)
      out[e] = data[(o * size + j) * inner + k];
  }
}

/// keys[i] = the normalised index (or `size` when out of range, recorded),
/// values[i] = i.
template <typename IdxT>
__global__ void __launch_bounds__(kThreads)
    gatherGradKeysKernel(int64_t count, int64_t size, const IdxT *indices,
                         uint32_t *keys, uint32_t *values, DataError *error) {
  VLORA_OPS_GRID_STRIDE(i, count) {
    int64_t j = normalised(indices[i], size, error, OpId::GatherGrad);
    keys[i] = static_cast<uint32_t>(j < 0 ? size : j);
    values[i] = static_cast<uint32_t>(i);
  }
}

/// starts[s] = the first sorted position with key >= s, for s <= size.
__global__ void __launch_bounds__(kThreads)
    bucketStartsKernel(int64_t size, int64_t count, const uint32_t *keys,
                       uint32_t *starts) {
  VLORA_OPS_GRID_STRIDE(s, size + 1) {
    int64_t lo = 0, hi = count;
    while (lo < hi) {
      int64_t mid = (lo + hi) / 2;
      if (keys[mid] < s)
        lo = mid + 1;
      else
        hi = mid;
    }
    starts[s] = static_cast<uint32_t>(lo);
  }
}

/// out [outer, size, inner]: each element sums, in index order, the
/// gradients whose index is its position along the axis.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    gatherGradSumKernel(int64_t n, int64_t count, int64_t size, int64_t inner,
                        const uint32_t *starts, const uint32_t *order,
                        const T *grad, T *out) {
  VLORA_OPS_GRID_STRIDE(e, n) {
    int64_t t = e / inner, k = e - t * inner;
    int64_t o = t / size, s = t - o * size;
    T acc = T(0);
    for (uint32_t p = starts[s], end = starts[s + 1]; p < end; ++p)
      acc += grad[(o * count + order[p]) * inner + k];
    out[e] = acc;
  }
}

struct ElementsSpace {
  int rank, axis;
  int64_t size[kMaxOpRank];       // the indices' (= out's) shape
  int64_t dataStride[kMaxOpRank]; // row-major strides of data
  int64_t axisSize;
};

template <typename T, typename IdxT>
__global__ void __launch_bounds__(kThreads)
    gatherElementsKernel(int64_t n, ElementsSpace s, const T *data,
                         const IdxT *indices, T *out, DataError *error) {
  VLORA_OPS_GRID_STRIDE(e, n) {
    int64_t rest = e, at = 0;
    for (int d = s.rank - 1; d >= 0; --d) {
      int64_t c = rest % s.size[d];
      rest /= s.size[d];
      if (d != s.axis)
        at += c * s.dataStride[d];
    }
    int64_t j = normalised(indices[e], s.axisSize, error, OpId::GatherElements);
    if (j >= 0)
      out[e] = data[at + j * s.dataStride[s.axis]];
  }
}

/// The leading k dimensions of gatherND's / scatterND's data: sizes and
/// strides in slices.
struct TupleSpace {
  int k;
  int64_t size[kMaxOpRank], sliceStride[kMaxOpRank];
};

/// The slice index tuple t addresses, or -1 (recorded).
template <typename IdxT>
__device__ __forceinline__ int64_t tupleSlice(const TupleSpace &s,
                                              const IdxT *indices, int64_t t,
                                              OpId op, DataError *error) {
  int64_t slice = 0;
  for (int q = 0; q < s.k; ++q) {
    int64_t c = normalised(indices[t * s.k + q], s.size[q], error, op);
    if (c < 0)
      return -1;
    slice += c * s.sliceStride[q];
  }
  return slice;
}

template <typename W, typename IdxT>
__global__ void __launch_bounds__(kThreads)
    gatherNDKernel(int64_t n, int64_t sliceWords, TupleSpace s, const W *data,
                   const IdxT *indices, W *out, DataError *error) {
  VLORA_OPS_GRID_STRIDE(e, n) {
    int64_t t = e / sliceWords, j = e - t * sliceWords;
    int64_t slice = tupleSlice(s, indices, t, OpId::GatherND, error);
    if (slice >= 0)
      out[e] = data[slice * sliceWords + j];
  }
}

/// keys[t] = the slice tuple t addresses (or `slots` when out of range,
/// recorded), values[t] = t.
template <typename IdxT>
__global__ void __launch_bounds__(kThreads)
    scatterKeysKernel(int64_t tuples, int64_t slots, TupleSpace s,
                      const IdxT *indices, uint64_t *keys, uint32_t *values,
                      DataError *error) {
  VLORA_OPS_GRID_STRIDE(t, tuples) {
    int64_t slice = tupleSlice(s, indices, t, OpId::ScatterND, error);
    keys[t] = static_cast<uint64_t>(slice < 0 ? slots : slice);
    values[t] = static_cast<uint32_t>(t);
  }
}

/// Writes the update of the last tuple (in index order) of every addressed
/// slice; keys sorted stably.
template <typename W>
__global__ void __launch_bounds__(kThreads)
    scatterWriteKernel(int64_t n, int64_t tuples, int64_t sliceWords,
                       uint64_t slots, const uint64_t *keys,
                       const uint32_t *order, const W *updates, W *out) {
  VLORA_OPS_GRID_STRIDE(e, n) {
    int64_t p = e / sliceWords, j = e - p * sliceWords;
    uint64_t key = keys[p];
    if (key >= slots || (p + 1 < tuples && keys[p + 1] == key))
      continue;
    out[key * sliceWords + j] = updates[int64_t(order[p]) * sliceWords + j];
  }
}

__global__ void __launch_bounds__(kThreads)
    maskFlagsKernel(int64_t n, const uint8_t *mask, int64_t *flags) {
  VLORA_OPS_GRID_STRIDE(i, n) { flags[i] = mask[i] != 0; }
}

/// Records `code` when the mask's true count exceeds `room`.
__global__ void maskTotalKernel(int64_t n, const int64_t *positions,
                                const uint8_t *mask, int64_t room,
                                DataErrorCode code, OpId op, DataError *error) {
  int64_t total = positions[n - 1] + (mask[n - 1] != 0);
  if (total > room)
    recordDataError(error, code, op, total, 0, room);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    maskedScatterKernel(int64_t n, const uint8_t *mask,
                        const int64_t *positions, const T *source,
                        int64_t sourceN, T *out) {
  VLORA_OPS_GRID_STRIDE(i, n) {
    if (mask[i] && positions[i] < sourceN)
      out[i] = source[positions[i]];
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    maskedSelectKernel(int64_t n, const uint8_t *mask, const int64_t *positions,
                       const T *input, int64_t outN, T *out) {
  VLORA_OPS_GRID_STRIDE(i, n) {
    if (mask[i] && positions[i] < outN)
      out[positions[i]] = input[i];
  }
}

/// The exclusive prefix count of a mask's true values into scratch; checks
/// the total against `room` on the device. Returns the positions.
Status maskPositions(Context &ctx, const ShapeText &text, Scratch &scratch,
                     const TensorRef &mask, int64_t room, DataErrorCode code,
                     OpId op, int64_t *&positions) {
  cudaStream_t stream = streamOf(ctx);
  int64_t n = mask.numel();
  if (n >= kInt32Limit)
    return fail(text, "masks of 2^31 or more elements are not supported");
  size_t tempBytes = 0;
  if (Status s = check(cub::DeviceScan::ExclusiveSum(
                           nullptr, tempBytes, static_cast<int64_t *>(nullptr),
                           static_cast<int64_t *>(nullptr), static_cast<int>(n),
                           stream),
                       text, "cub::DeviceScan::ExclusiveSum(size)");
      !s)
    return s;
  size_t flagsAt = scratch.reserve(n * sizeof(int64_t));
  size_t positionsAt = scratch.reserve(n * sizeof(int64_t));
  size_t tempAt = scratch.reserve(tempBytes);
  if (Status s = scratch.allocate(text); !s)
    return s;
  int64_t *flags = scratch.at<int64_t>(flagsAt);
  positions = scratch.at<int64_t>(positionsAt);
  maskFlagsKernel<<<blocksFor(n, kThreads), kThreads, 0, stream>>>(
      n, mask.as<const uint8_t>(), flags);
  if (Status s = checkLaunch(text); !s)
    return s;
  if (Status s = check(cub::DeviceScan::ExclusiveSum(
                           scratch.at<void>(tempAt), tempBytes, flags,
                           positions, static_cast<int>(n), stream),
                       text, "cub::DeviceScan::ExclusiveSum");
      !s)
    return s;
  maskTotalKernel<<<1, 1, 0, stream>>>(n, positions, mask.as<const uint8_t>(),
                                       room, code, op, dataErrorOf(ctx));
  return checkLaunch(text);
}

/// Leading-dimension tuple description for gatherND / scatterND.
Status tupleSpaceOf(const ShapeText &text, const TensorRef &data,
                    const TensorRef &indices, TupleSpace &space,
                    int64_t &tuples, int64_t &sliceElems, int64_t &slots) {
  if (indices.rank() < 1)
    return fail(text, "indices must have rank >= 1");
  int64_t k = indices.shape.back();
  if (k < 0 || k > data.rank() || k > kMaxOpRank)
    return fail(text, "index tuples longer than the data's rank or " +
                          std::to_string(kMaxOpRank));
  space.k = static_cast<int>(k);
  tuples = numElements(Shape(indices.shape.begin(), indices.shape.end() - 1));
  sliceElems = numElements(Shape(data.shape.begin() + k, data.shape.end()));
  slots = 1;
  for (int64_t q = k - 1; q >= 0; --q) {
    space.size[q] = data.shape[q];
    space.sliceStride[q] = slots;
    slots *= data.shape[q];
  }
  return Status::success();
}

Status sameSize(const ShapeText &text, const TensorRef &a, const TensorRef &b) {
  if (a.numel() != b.numel() ||
      dtypeSize(a.dtype) != dtypeSize(b.dtype))
    return fail(text, "input and out differ in size or element size");
  return Status::success();
}

} // namespace

//===----------------------------------------------------------------------===//
// Data movement
//===----------------------------------------------------------------------===//

Status copy(Context &ctx, const TensorRef &input, const TensorRef &out) {
  ShapeText text("copy");
  describeTensor(text, "input", input);
  describeTensor(text, "out", out);
  if (input.bytes() != out.bytes())
    return fail(text, "input and out differ in bytes");
  size_t bytes = input.bytes();
  if (bytes == 0 || input.data == out.data)
    return Status::success();
  uint64_t a = addressOf(input.data), b = addressOf(out.data);
  if (a < b + bytes && b < a + bytes)
    return fail(text, "input and out overlap without being the same bytes");
  return check(cudaMemcpyAsync(out.data, input.data, bytes,
                               cudaMemcpyDeviceToDevice, streamOf(ctx)),
               text, "cudaMemcpyAsync");
}

Status transpose(Context &ctx, const TensorRef &input, const TensorRef &out,
                 const Shape &perm) {
  ShapeText text("transpose");
  describeTensor(text, "input", input);
  describeTensor(text, "out", out);
  text("perm", shapeString(perm));
  if (Status s = sameSize(text, input, out); !s)
    return s;
  if (perm.size() != input.shape.size() || out.rank() != input.rank())
    return fail(text, "perm, input and out differ in rank");
  std::vector<int64_t> si = rowMajorStrides(input.shape);
  SpaceBuilder<1> builder;
  builder.size = out.shape;
  builder.stride[0].resize(perm.size());
  for (size_t d = 0; d < perm.size(); ++d) {
    if (perm[d] < 0 || perm[d] >= input.rank())
      return fail(text, "perm entry out of range");
    builder.stride[0][d] = si[perm[d]];
  }
  return stridedCopy(ctx, text, input, out, std::move(builder));
}

Status slice(Context &ctx, const TensorRef &input, const TensorRef &out,
             const Shape &starts, const Shape &strides) {
  ShapeText text("slice");
  describeTensor(text, "input", input);
  describeTensor(text, "out", out);
  text("starts", shapeString(starts))("steps", shapeString(strides));
  if (dtypeSize(input.dtype) != dtypeSize(out.dtype))
    return fail(text, "input and out differ in element size");
  size_t rank = input.shape.size();
  if (starts.size() != rank || strides.size() != rank ||
      out.shape.size() != rank)
    return fail(text, "starts, steps, input and out differ in rank");
  std::vector<int64_t> si = rowMajorStrides(input.shape);
  SpaceBuilder<1> builder;
  builder.size = out.shape;
  builder.stride[0].resize(rank);
  for (size_t d = 0; d < rank; ++d) {
    builder.stride[0][d] = si[d] * strides[d];
    builder.base[0] += starts[d] * si[d];
  }
  return stridedCopy(ctx, text, input, out, std::move(builder));
}

Status concat(Context &ctx, const std::vector<TensorRef> &inputs,
              const TensorRef &out, int64_t axis) {
  ShapeText text("concat");
  describeTensor(text, "out", out);
  text("inputs", inputs.size())("axis", axis);
  if (axis < 0 || axis >= out.rank())
    return fail(text, "axis out of range");
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d)
    outer *= out.shape[d];
  if (out.numel() == 0 || outer == 0)
    return Status::success();
  size_t outRow = out.bytes() / outer, at = 0;
  for (const TensorRef &in : inputs) {
    if (dtypeSize(in.dtype) != dtypeSize(out.dtype))
      return fail(text, "an input's element size differs from out's");
    size_t row = in.numel() ? in.bytes() / outer : 0;
    if (at + row > outRow)
      return fail(text, "the inputs hold more than out");
    if (Status s =
            copyRows(ctx, text, in.data, row,
                     static_cast<char *>(out.data) + at, outRow, outer, row);
        !s)
      return s;
    at += row;
  }
  return Status::success();
}

Status split(Context &ctx, const TensorRef &input,
             const std::vector<TensorRef> &outs, int64_t axis) {
  ShapeText text("split");
  describeTensor(text, "input", input);
  text("outs", outs.size())("axis", axis);
  if (axis < 0 || axis >= input.rank())
    return fail(text, "axis out of range");
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d)
    outer *= input.shape[d];
  if (input.numel() == 0 || outer == 0)
    return Status::success();
  size_t inRow = input.bytes() / outer, at = 0;
  for (const TensorRef &out : outs) {
    if (dtypeSize(out.dtype) != dtypeSize(input.dtype))
      return fail(text, "an output's element size differs from input's");
    size_t row = out.numel() ? out.bytes() / outer : 0;
    if (at + row > inRow)
      return fail(text, "the outputs hold more than the input");
    if (Status s =
            copyRows(ctx, text, static_cast<const char *>(input.data) + at,
                     inRow, out.data, row, outer, row);
        !s)
      return s;
    at += row;
  }
  return Status::success();
}

Status expand(Context &ctx, const TensorRef &input, const TensorRef &out) {
  ShapeText text("expand");
  describeTensor(text, "input", input);
  describeTensor(text, "out", out);
  if (dtypeSize(input.dtype) != dtypeSize(out.dtype))
    return fail(text, "input and out differ in element size");
  if (input.rank() > out.rank())
    return fail(text, "input has more dimensions than out");
  SpaceBuilder<1> builder;
  builder.size = out.shape;
  builder.stride[0] = broadcastStridesTo(input.shape, out.shape);
  return stridedCopy(ctx, text, input, out, std::move(builder));
}

Status pad(Context &ctx, const TensorRef &input, const TensorRef &out,
           const Shape &pads, double value) {
  ShapeText text("pad");
  describeTensor(text, "input", input);
  describeTensor(text, "out", out);
  text("pads", shapeString(pads))("value", value);
  if (input.dtype != out.dtype)
    return fail(text, "input and out differ in element type");
  int64_t rank = input.rank();
  if (out.rank() != rank || static_cast<int64_t>(pads.size()) != 2 * rank)
    return fail(text, "pads, input and out differ in rank");
  if (rank > kMaxOpRank)
    return refuseRank(text);
  int64_t n = out.numel();
  if (n == 0)
    return Status::success();
  PadSpace space{};
  space.rank = static_cast<int>(rank);
  std::vector<int64_t> si = rowMajorStrides(input.shape);
  for (int64_t d = 0; d < rank; ++d) {
    space.outSize[d] = out.shape[d];
    space.inSize[d] = input.shape[d];
    space.begin[d] = pads[d];
    space.inStride[d] = si[d];
  }
  if (rank == 0) { // a scalar: one element, no padding
    space.rank = 1;
    space.outSize[0] = space.inSize[0] = space.inStride[0] = 1;
  }
  uint64_t word = 0;
  storeFromDouble(&word, 0, out.dtype, value);
  cudaStream_t stream = streamOf(ctx);
  return visitBits(out.dtype, [&](auto tag) -> Status {
    using T = decltype(tag);
    T v;
    std::memcpy(&v, &word, sizeof(T));
    padKernel<T><<<blocksFor(n, kThreads), kThreads, 0, stream>>>(
        n, space, input.as<const T>(), out.as<T>(), v);
    return checkLaunch(text);
  });
}

Status trilu(Context &ctx, const TensorRef &input, const TensorRef &out,
             bool upper, int64_t k) {
  ShapeText text("trilu");
  describeTensor(text, "input", input);
  describeTensor(text, "out", out);
  text("upper", upper)("k", k);
  if (Status s = sameSize(text, input, out); !s)
    return s;
  if (input.rank() < 2)
    return fail(text, "input needs at least two dimensions");
  int64_t n = out.numel();
  if (n == 0)
    return Status::success();
  int64_t rows = input.shape[input.rank() - 2], cols = input.shape.back();
  cudaStream_t stream = streamOf(ctx);
  return visitBits(out.dtype, [&](auto tag) -> Status {
    using T = decltype(tag);
    triluKernel<T><<<blocksFor(n, kThreads), kThreads, 0, stream>>>(
        n, rows, cols, upper, k, input.as<const T>(), out.as<T>());
    return checkLaunch(text);
  });
}

//===----------------------------------------------------------------------===//
// Scans and reductions
//===----------------------------------------------------------------------===//

Status cumsum(Context &ctx, const TensorRef &input, const TensorRef &out,
              int64_t axis, bool exclusive, bool reverse) {
  ShapeText text("cumsum");
  describeTensor(text, "input", input);
  describeTensor(text, "out", out);
  text("axis", axis)("exclusive", exclusive)("reverse", reverse);
  if (input.dtype != out.dtype || input.numel() != out.numel())
    return fail(text, "input and out differ in type or size");
  if (axis < 0 || axis >= input.rank())
    return fail(text, "axis out of range");
  int64_t n = input.numel();
  if (n == 0)
    return Status::success();
  int64_t outer = 1, inner = 1, size = input.shape[axis];
  for (int64_t d = 0; d < axis; ++d)
    outer *= input.shape[d];
  for (int64_t d = axis + 1; d < input.rank(); ++d)
    inner *= input.shape[d];
  cudaStream_t stream = streamOf(ctx);
  return visitArithmetic(input.dtype, text, [&](auto tag) -> Status {
    using T = decltype(tag);
    if (inner == 1) {
      cumsumRowsKernel<T>
          <<<blocksFor(outer * 32, kThreads), kThreads, 0, stream>>>(
              outer, size, input.as<const T>(), out.as<T>(), exclusive,
              reverse);
    } else {
      int64_t lines = outer * inner;
      cumsumLinesKernel<T><<<blocksFor(lines, kThreads), kThreads, 0, stream>>>(
          lines, size, inner, input.as<const T>(), out.as<T>(), exclusive,
          reverse);
    }
    return checkLaunch(text);
  });
}

Status reduce(Context &ctx, ReduceOp op, const TensorRef &input,
              const TensorRef &out, const Shape &axes) {
  ShapeText text("reduce");
  text("op", static_cast<int>(op));
  describeTensor(text, "input", input);
  describeTensor(text, "out", out);
  text("axes", shapeString(axes));
  if (input.dtype != out.dtype)
    return fail(text, "input and out differ in element type");
  int64_t rank = input.rank();
  std::vector<bool> isReduced(rank, false);
  for (int64_t a : axes) {
    if (a < 0 || a >= rank || isReduced[a])
      return fail(text, "an axis is out of range or repeated");
    isReduced[a] = true;
  }
  int64_t outN = out.numel(), count = 1;
  for (int64_t a : axes)
    count *= input.shape[a];
  if (outN == 0)
    return Status::success();
  if (count != 0 && outN * count != input.numel())
    return fail(text, "out's size does not match the reduced input");
  std::vector<int64_t> si = rowMajorStrides(input.shape);
  SpaceBuilder<1> kept, reduced;
  for (int64_t d = 0; d < rank; ++d) {
    SpaceBuilder<1> &b = isReduced[d] ? reduced : kept;
    b.size.push_back(input.shape[d]);
    b.stride[0].push_back(si[d]);
  }
  kept.coalesce();
  reduced.coalesce();
  if (kept.rank() > kMaxOpRank || reduced.rank() > kMaxOpRank)
    return refuseRank(text);
  // Threads per output when the innermost (non-unit) input dimension is kept
  // and there are outputs enough to fill the device; else a warp each.
  int64_t innermost = rank - 1;
  while (innermost > 0 && input.shape[innermost] == 1)
    --innermost;
  bool threadEach = rank > 0 && !isReduced[innermost] && outN >= 2048;
  bool small = input.numel() < kInt32Limit && outN < kInt32Limit;
  cudaStream_t stream = streamOf(ctx);
  return visitArithmetic(input.dtype, text, [&](auto tag) -> Status {
    using T = decltype(tag);
    auto launch = [&](auto index) {
      using I = decltype(index);
      StridedSpace<1, I> k = kept.build<I>(), r = reduced.build<I>();
      if (threadEach)
        reduceThreadKernel<T, I>
            <<<blocksFor(outN, kThreads), kThreads, 0, stream>>>(
                outN, count, k, r, op, input.as<const T>(), out.as<T>());
      else
        reduceWarpKernel<T, I>
            <<<blocksFor(outN * 32, kThreads), kThreads, 0, stream>>>(
                outN, count, k, r, op, input.as<const T>(), out.as<T>());
    };
    if (small)
      launch(int32_t{});
    else
      launch(int64_t{});
    return checkLaunch(text);
  });
}

Status argmax(Context &ctx, const TensorRef &input, const TensorRef &out,
              int64_t axis, bool selectLast) {
  ShapeText text("argmax");
  describeTensor(text, "input", input);
  describeTensor(text, "out", out);
  text("axis", axis)("selectLast", selectLast);
  if (out.dtype != DType::I64)
    return fail(text, "out must be i64");
  if (axis < 0 || axis >= input.rank())
    return fail(text, "axis out of range");
  int64_t outer = 1, inner = 1, size = input.shape[axis];
  for (int64_t d = 0; d < axis; ++d)
    outer *= input.shape[d];
  for (int64_t d = axis + 1; d < input.rank(); ++d)
    inner *= input.shape[d];
  int64_t lines = outer * inner;
  if (lines == 0)
    return Status::success();
  if (out.numel() != lines)
    return fail(text, "out's size does not match the reduced input");
  cudaStream_t stream = streamOf(ctx);
  return visitArithmetic(input.dtype, text, [&](auto tag) -> Status {
    using T = decltype(tag);
    if (inner == 1)
      argmaxRowsKernel<T>
          <<<blocksFor(outer * 32, kThreads), kThreads, 0, stream>>>(
              outer, size, input.as<const T>(), out.as<int64_t>(), selectLast);
    else
      argmaxLinesKernel<T><<<blocksFor(lines, kThreads), kThreads, 0, stream>>>(
          lines, size, inner, input.as<const T>(), out.as<int64_t>(),
          selectLast);
    return checkLaunch(text);
  });
}

//===----------------------------------------------------------------------===//
// Gathers and scatters
//===----------------------------------------------------------------------===//

Status gather(Context &ctx, const TensorRef &data, const TensorRef &indices,
              const TensorRef &out, int64_t axis) {
  ShapeText text("gather");
  describeTensor(text, "data", data);
  describeTensor(text, "indices", indices);
  describeTensor(text, "out", out);
  text("axis", axis);
  if (dtypeSize(data.dtype) != dtypeSize(out.dtype))
    return fail(text, "data and out differ in element size");
  if (axis < 0 || axis >= data.rank())
    return fail(text, "axis out of range");
  int64_t outer = 1, inner = 1, size = data.shape[axis],
          count = indices.numel();
  for (int64_t d = 0; d < axis; ++d)
    outer *= data.shape[d];
  for (int64_t d = axis + 1; d < data.rank(); ++d)
    inner *= data.shape[d];
  if (out.numel() != outer * count * inner)
    return fail(text, "out's size does not match");
  if (out.numel() == 0)
    return Status::success();
  size_t chunk = inner * dtypeSize(data.dtype);
  cudaStream_t stream = streamOf(ctx);
  DataError *error = dataErrorOf(ctx);
  return visitIndex(indices, text, [&](auto idx) -> Status {
    using IdxT = decltype(idx);
    return visitWord({addressOf(data.data), addressOf(out.data), chunk},
                     [&](auto word) -> Status {
                       using W = decltype(word);
                       int64_t words = chunk / sizeof(W);
                       int64_t n = outer * count * words;
                       gatherKernel<W, IdxT>
                           <<<blocksFor(n, kThreads), kThreads, 0, stream>>>(
                               n, count, size, words, data.as<const W>(),
                               indices.as<const IdxT>(), out.as<W>(), error);
                       return checkLaunch(text);
                     });
  });
}

Status gatherGrad(Context &ctx, const TensorRef &grad, const TensorRef &indices,
                  const TensorRef &out, int64_t axis) {
  ShapeText text("gatherGrad");
  describeTensor(text, "grad", grad);
  describeTensor(text, "indices", indices);
  describeTensor(text, "out", out);
  text("axis", axis);
  if ((grad.dtype != DType::F32 && grad.dtype != DType::F64) ||
      out.dtype != grad.dtype)
    return fail(text, "unsupported element type (f32 or f64)");
  if (axis < 0 || axis >= out.rank())
    return fail(text, "axis out of range");
  int64_t outer = 1, inner = 1, size = out.shape[axis],
          count = indices.numel();
  for (int64_t d = 0; d < axis; ++d)
    outer *= out.shape[d];
  for (int64_t d = axis + 1; d < out.rank(); ++d)
    inner *= out.shape[d];
  if (grad.numel() != outer * count * inner)
    return fail(text, "grad's size does not match");
  int64_t n = out.numel();
  if (n == 0)
    return Status::success();
  cudaStream_t stream = streamOf(ctx);
  if (count == 0)
    return check(cudaMemsetAsync(out.data, 0, out.bytes(), stream), text,
                 "cudaMemsetAsync");
  if (count >= kInt32Limit || size >= kInt32Limit - 1)
    return fail(text, "2^31 or more indices or positions are not supported");
  DataError *error = dataErrorOf(ctx);
  int endBit = 1;
  while (endBit < 32 && (int64_t(1) << endBit) <= size)
    ++endBit; // keys are in [0, size]
  size_t tempBytes = 0;
  if (Status s = check(cub::DeviceRadixSort::SortPairs(
                           nullptr, tempBytes, static_cast<uint32_t *>(nullptr),
                           static_cast<uint32_t *>(nullptr),
                           static_cast<uint32_t *>(nullptr),
                           static_cast<uint32_t *>(nullptr),
                           static_cast<int>(count), 0, endBit, stream),
                       text, "cub::DeviceRadixSort::SortPairs(size)");
      !s)
    return s;
  Scratch scratch(stream);
  size_t keysAt = scratch.reserve(count * 4),
         valuesAt = scratch.reserve(count * 4),
         sortedAt = scratch.reserve(count * 4),
         orderAt = scratch.reserve(count * 4),
         startsAt = scratch.reserve((size + 1) * 4),
         tempAt = scratch.reserve(tempBytes);
  if (Status s = scratch.allocate(text); !s)
    return s;
  uint32_t *keys = scratch.at<uint32_t>(keysAt),
           *values = scratch.at<uint32_t>(valuesAt),
           *sorted = scratch.at<uint32_t>(sortedAt),
           *order = scratch.at<uint32_t>(orderAt),
           *starts = scratch.at<uint32_t>(startsAt);
  if (Status s = visitIndex(
          indices, text,
          [&](auto idx) -> Status {
            using IdxT = decltype(idx);
            gatherGradKeysKernel<IdxT>
                <<<blocksFor(count, kThreads), kThreads, 0, stream>>>(
                    count, size, indices.as<const IdxT>(), keys, values, error);
            return checkLaunch(text);
          });
      !s)
    return s;
  if (Status s =
          check(cub::DeviceRadixSort::SortPairs(
                    scratch.at<void>(tempAt), tempBytes, keys, sorted, values,
                    order, static_cast<int>(count), 0, endBit, stream),
                text, "cub::DeviceRadixSort::SortPairs");
      !s)
    return s;
  bucketStartsKernel<<<blocksFor(size + 1, kThreads), kThreads, 0, stream>>>(
      size, count, sorted, starts);
  if (Status s = checkLaunch(text); !s)
    return s;
  auto sum = [&](auto tag) -> Status {
    using T = decltype(tag);
    gatherGradSumKernel<T><<<blocksFor(n, kThreads), kThreads, 0, stream>>>(
        n, count, size, inner, starts, order, grad.as<const T>(), out.as<T>());
    return checkLaunch(text);
  };
  if (Status s = grad.dtype == DType::F32 ? sum(float{}) : sum(double{}); !s)
    return s;
  return scratch.release(text);
}

Status gatherElements(Context &ctx, const TensorRef &data,
                      const TensorRef &indices, const TensorRef &out,
                      int64_t axis) {
  ShapeText text("gatherElements");
  describeTensor(text, "data", data);
  describeTensor(text, "indices", indices);
  describeTensor(text, "out", out);
  text("axis", axis);
  if (dtypeSize(data.dtype) != dtypeSize(out.dtype))
    return fail(text, "data and out differ in element size");
  int64_t rank = data.rank();
  if (axis < 0 || axis >= rank || indices.rank() != rank ||
      out.numel() != indices.numel())
    return fail(text, "axis, data, indices and out do not match");
  if (rank > kMaxOpRank)
    return refuseRank(text);
  int64_t n = indices.numel();
  if (n == 0)
    return Status::success();
  ElementsSpace space{};
  space.rank = static_cast<int>(rank);
  space.axis = static_cast<int>(axis);
  space.axisSize = data.shape[axis];
  std::vector<int64_t> sd = rowMajorStrides(data.shape);
  for (int64_t d = 0; d < rank; ++d) {
    space.size[d] = indices.shape[d];
    space.dataStride[d] = sd[d];
  }
  cudaStream_t stream = streamOf(ctx);
  DataError *error = dataErrorOf(ctx);
  return visitIndex(indices, text, [&](auto idx) -> Status {
    using IdxT = decltype(idx);
    return visitBits(data.dtype, [&](auto tag) -> Status {
      using T = decltype(tag);
      gatherElementsKernel<T, IdxT>
          <<<blocksFor(n, kThreads), kThreads, 0, stream>>>(
              n, space, data.as<const T>(), indices.as<const IdxT>(),
              out.as<T>(), error);
      return checkLaunch(text);
    });
  });
}

Status gatherND(Context &ctx, const TensorRef &data, const TensorRef &indices,
                const TensorRef &out) {
  ShapeText text("gatherND");
  describeTensor(text, "data", data);
  describeTensor(text, "indices", indices);
  describeTensor(text, "out", out);
  if (dtypeSize(data.dtype) != dtypeSize(out.dtype))
    return fail(text, "data and out differ in element size");
  TupleSpace space{};
  int64_t tuples = 0, sliceElems = 0, slots = 0;
  if (Status s =
          tupleSpaceOf(text, data, indices, space, tuples, sliceElems, slots);
      !s)
    return s;
  if (out.numel() != tuples * sliceElems)
    return fail(text, "out's size does not match");
  if (out.numel() == 0)
    return Status::success();
  size_t chunk = sliceElems * dtypeSize(data.dtype);
  cudaStream_t stream = streamOf(ctx);
  DataError *error = dataErrorOf(ctx);
  return visitIndex(indices, text, [&](auto idx) -> Status {
    using IdxT = decltype(idx);
    return visitWord({addressOf(data.data), addressOf(out.data), chunk},
                     [&](auto word) -> Status {
                       using W = decltype(word);
                       int64_t words = chunk / sizeof(W), n = tuples * words;
                       gatherNDKernel<W, IdxT>
                           <<<blocksFor(n, kThreads), kThreads, 0, stream>>>(
                               n, words, space, data.as<const W>(),
                               indices.as<const IdxT>(), out.as<W>(), error);
                       return checkLaunch(text);
                     });
  });
}

Status scatterND(Context &ctx, const TensorRef &data, const TensorRef &indices,
                 const TensorRef &updates, const TensorRef &out) {
  ShapeText text("scatterND");
  describeTensor(text, "data", data);
  describeTensor(text, "indices", indices);
  describeTensor(text, "updates", updates);
  describeTensor(text, "out", out);
  if (Status s = sameSize(text, data, out); !s)
    return s;
  if (dtypeSize(updates.dtype) != dtypeSize(data.dtype))
    return fail(text, "updates and data differ in element size");
  TupleSpace space{};
  int64_t tuples = 0, sliceElems = 0, slots = 0;
  if (Status s =
          tupleSpaceOf(text, data, indices, space, tuples, sliceElems, slots);
      !s)
    return s;
  if (updates.numel() != tuples * sliceElems)
    return fail(text, "updates' size does not match");
  if (Status s = copy(ctx, data, out); !s)
    return s;
  if (tuples == 0 || sliceElems == 0)
    return Status::success();
  if (tuples >= kInt32Limit)
    return fail(text, "2^31 or more index tuples are not supported");
  cudaStream_t stream = streamOf(ctx);
  DataError *error = dataErrorOf(ctx);
  int endBit = 1;
  while (endBit < 64 && (int64_t(1) << endBit) <= slots)
    ++endBit; // keys are in [0, slots]
  size_t tempBytes = 0;
  if (Status s = check(cub::DeviceRadixSort::SortPairs(
                           nullptr, tempBytes, static_cast<uint64_t *>(nullptr),
                           static_cast<uint64_t *>(nullptr),
                           static_cast<uint32_t *>(nullptr),
                           static_cast<uint32_t *>(nullptr),
                           static_cast<int>(tuples), 0, endBit, stream),
                       text, "cub::DeviceRadixSort::SortPairs(size)");
      !s)
    return s;
  Scratch scratch(stream);
  size_t keysAt = scratch.reserve(tuples * 8),
         sortedAt = scratch.reserve(tuples * 8),
         valuesAt = scratch.reserve(tuples * 4),
         orderAt = scratch.reserve(tuples * 4),
         tempAt = scratch.reserve(tempBytes);
  if (Status s = scratch.allocate(text); !s)
    return s;
  uint64_t *keys = scratch.at<uint64_t>(keysAt),
           *sorted = scratch.at<uint64_t>(sortedAt);
  uint32_t *values = scratch.at<uint32_t>(valuesAt),
           *order = scratch.at<uint32_t>(orderAt);
  if (Status s = visitIndex(
          indices, text,
          [&](auto idx) -> Status {
            using IdxT = decltype(idx);
            scatterKeysKernel<IdxT>
                <<<blocksFor(tuples, kThreads), kThreads, 0, stream>>>(
                    tuples, slots, space, indices.as<const IdxT>(), keys,
                    values, error);
            return checkLaunch(text);
          });
      !s)
    return s;
  if (Status s =
          check(cub::DeviceRadixSort::SortPairs(
                    scratch.at<void>(tempAt), tempBytes, keys, sorted, values,
                    order, static_cast<int>(tuples), 0, endBit, stream),
                text, "cub::DeviceRadixSort::SortPairs");
      !s)
    return s;
  size_t chunk = sliceElems * dtypeSize(data.dtype);
  if (Status s = visitWord(
          {addressOf(updates.data), addressOf(out.data), chunk},
          [&](auto word) -> Status {
            using W = decltype(word);
            int64_t words = chunk / sizeof(W), n = tuples * words;
            scatterWriteKernel<W>
                <<<blocksFor(n, kThreads), kThreads, 0, stream>>>(
                    n, tuples, words, static_cast<uint64_t>(slots), sorted,
                    order, updates.as<const W>(), out.as<W>());
            return checkLaunch(text);
          });
      !s)
    return s;
  return scratch.release(text);
}

Status maskedScatter(Context &ctx, const TensorRef &data, const TensorRef &mask,
                     const TensorRef &source, const TensorRef &out) {
  ShapeText text("maskedScatter");
  describeTensor(text, "data", data);
  describeTensor(text, "mask", mask);
  describeTensor(text, "source", source);
  describeTensor(text, "out", out);
  if (Status s = sameSize(text, data, out); !s)
    return s;
  if (dtypeSize(mask.dtype) != 1 || mask.numel() != data.numel())
    return fail(text, "mask must be i1 with data's shape");
  if (dtypeSize(source.dtype) != dtypeSize(data.dtype))
    return fail(text, "source and data differ in element size");
  if (Status s = copy(ctx, data, out); !s)
    return s;
  int64_t n = data.numel();
  if (n == 0)
    return Status::success();
  cudaStream_t stream = streamOf(ctx);
  Scratch scratch(stream);
  int64_t *positions = nullptr;
  if (Status s = maskPositions(ctx, text, scratch, mask, source.numel(),
                               DataErrorCode::TooFewSourceValues,
                               OpId::MaskedScatter, positions);
      !s)
    return s;
  if (Status s = visitBits(
          data.dtype,
          [&](auto tag) -> Status {
            using T = decltype(tag);
            maskedScatterKernel<T>
                <<<blocksFor(n, kThreads), kThreads, 0, stream>>>(
                    n, mask.as<const uint8_t>(), positions,
                    source.as<const T>(), source.numel(), out.as<T>());
            return checkLaunch(text);
          });
      !s)
    return s;
  return scratch.release(text);
}

Status maskedSelect(Context &ctx, const TensorRef &input, const TensorRef &mask,
                    const TensorRef &out) {
  ShapeText text("maskedSelect");
  describeTensor(text, "input", input);
  describeTensor(text, "mask", mask);
  describeTensor(text, "out", out);
  if (dtypeSize(mask.dtype) != 1 || mask.numel() != input.numel())
    return fail(text, "mask must be i1 with input's shape");
  if (dtypeSize(out.dtype) != dtypeSize(input.dtype))
    return fail(text, "input and out differ in element size");
  cudaStream_t stream = streamOf(ctx);
  if (out.bytes())
    if (Status s = check(cudaMemsetAsync(out.data, 0, out.bytes(), stream),
                         text, "cudaMemsetAsync");
        !s)
      return s;
  int64_t n = input.numel();
  if (n == 0)
    return Status::success();
  Scratch scratch(stream);
  int64_t *positions = nullptr;
  if (Status s = maskPositions(ctx, text, scratch, mask, out.numel(),
                               DataErrorCode::TooManyTrueValues,
                               OpId::MaskedSelect, positions);
      !s)
    return s;
  if (Status s =
          visitBits(input.dtype,
                    [&](auto tag) -> Status {
                      using T = decltype(tag);
                      maskedSelectKernel<T>
                          <<<blocksFor(n, kThreads), kThreads, 0, stream>>>(
                              n, mask.as<const uint8_t>(), positions,
                              input.as<const T>(), out.numel(), out.as<T>());
                      return checkLaunch(text);
                    });
      !s)
    return s;
  return scratch.release(text);
}

} // namespace vlora::kernels::cuda::ops
