//===- OpsElementwise.cu - CUDA twins of unary, binary, where, cast -------===//
//
// One thread per output element (grid-stride loops). Broadcast operands are
// read through a StridedSpace (OpsCommon.cuh) whose dimensions are merged
// where the operands allow, with 32-bit index arithmetic when every offset
// fits. The element types are the CPU kernels' (kernels/cpu/Elementwise.cpp);
// 16-bit floats are computed in f32 and rounded once with the CPU's rounding,
// integers wrap, integer division by zero is recorded as a data error (the
// element is not written). f32/f64 transcendental functions are CUDA's libm
// (within 2 ulp; the CPU's f32 exp, sigmoid and silu use its own expFast,
// also within 2 ulp), so those results match the CPU's to a few ulp, not bit
// for bit; +, -, *, /, sqrt, comparisons and casts match exactly.
//
//===----------------------------------------------------------------------===//

#include "vlora/kernels/cuda/Ops.h"

#include "ElementwiseMath.cuh"
#include "OpsCommon.cuh"

#include <type_traits>

namespace vlora::kernels::cuda::ops {
using namespace detail;

namespace {

constexpr int kThreads = 256;

#define VLORA_OPS_GRID_STRIDE(i, n)                                            \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n);    \
       i += int64_t(gridDim.x) * blockDim.x)

/// Arithmetic on an element type: 16-bit floats compute in f32.
template <typename T> struct Arith {
  using Compute = T;
  __device__ static T in(T v) { return v; }
  __device__ static T out(T v) { return v; }
};
template <> struct Arith<Half16> {
  using Compute = float;
  __device__ static float in(Half16 v) { return toFloat(v); }
  __device__ static Half16 out(float v) { return toHalf16(v); }
};
template <> struct Arith<BFloat16Bits> {
  using Compute = float;
  __device__ static float in(BFloat16Bits v) { return toFloat(v); }
  __device__ static BFloat16Bits out(float v) { return toBFloat16Bits(v); }
};

/// Calls f(T{}) with T the storage type of `dtype` (uint8_t for Bool).
template <typename F> Status visitStorage(DType dtype, F &&f) {
  switch (dtype) {
  case DType::F32:
    return f(float{});
  case DType::F64:
    return f(double{});
  case DType::F16:
    return f(Half16{});
  case DType::BF16:
    return f(BFloat16Bits{});
  case DType::I64:
    return f(int64_t{});
  case DType::I32:
    return f(int32_t{});
  case DType::I16:
    return f(int16_t{});
  case DType::I8:
    return f(int8_t{});
  case DType::U8:
  case DType::Bool:
    return f(uint8_t{});
  }
  return f(uint8_t{});
}

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

Status refuseRank(const ShapeText &text) {
  return fail(text, "more than " + std::to_string(kMaxOpRank) +
                        " dimensions after merging; not supported on cuda");
}

//===----------------------------------------------------------------------===//
// Unary
//===----------------------------------------------------------------------===//

// sigmoidOf and applyUnary: ElementwiseMath.cuh.

template <typename T>
__global__ void __launch_bounds__(kThreads)
    unaryKernel(int64_t n, UnaryOp op, const T *x, T *y) {
  VLORA_OPS_GRID_STRIDE(i, n) { y[i] = applyUnary(op, x[i]); }
}

__global__ void __launch_bounds__(kThreads)
    notKernel(int64_t n, const uint8_t *x, uint8_t *y) {
  VLORA_OPS_GRID_STRIDE(i, n) { y[i] = x[i] ? 0 : 1; }
}

//===----------------------------------------------------------------------===//
// Binary
//===----------------------------------------------------------------------===//

// WrapT, integerPow and applyBinary: ElementwiseMath.cuh.

template <typename T> __device__ uint8_t applyCompare(BinaryOp op, T a, T b) {
  switch (op) {
  case BinaryOp::Equal:
    return a == b;
  case BinaryOp::Less:
    return a < b;
  case BinaryOp::LessEqual:
    return a <= b;
  case BinaryOp::Greater:
    return a > b;
  case BinaryOp::GreaterEqual:
    return a >= b;
  default:
    return 0;
  }
}

/// out[i] = lhs op rhs over out's index space (space: lhs, rhs).
template <typename T, typename I>
__global__ void __launch_bounds__(kThreads)
    binaryKernel(int64_t n, StridedSpace<2, I> space, BinaryOp op, const T *a,
                 const T *b, T *y, DataError *error) {
  using A = Arith<T>;
  VLORA_OPS_GRID_STRIDE(i, n) {
    I at[2];
    space.offsets(static_cast<I>(i), at);
    typename A::Compute r;
    if (applyBinary(op, A::in(a[at[0]]), A::in(b[at[1]]), r, error))
      y[i] = A::out(r);
  }
}

template <typename T, typename I>
__global__ void __launch_bounds__(kThreads)
    compareKernel(int64_t n, StridedSpace<2, I> space, BinaryOp op, const T *a,
                  const T *b, uint8_t *y) {
  using A = Arith<T>;
  VLORA_OPS_GRID_STRIDE(i, n) {
    I at[2];
    space.offsets(static_cast<I>(i), at);
    y[i] = applyCompare(op, A::in(a[at[0]]), A::in(b[at[1]]));
  }
}

/// And, Or, Xor, and comparisons of bools (as bools).
template <typename I>
__global__ void __launch_bounds__(kThreads)
    boolKernel(int64_t n, StridedSpace<2, I> space, BinaryOp op,
               const uint8_t *a, const uint8_t *b, uint8_t *y) {
  VLORA_OPS_GRID_STRIDE(i, n) {
    I at[2];
    space.offsets(static_cast<I>(i), at);
    bool x = a[at[0]] != 0, z = b[at[1]] != 0;
    uint8_t r;
    switch (op) {
    case BinaryOp::And:
      r = x && z;
      break;
    case BinaryOp::Or:
      r = x || z;
      break;
    case BinaryOp::Xor:
      r = x != z;
      break;
    default:
      r = applyCompare(op, x, z);
      break;
    }
    y[i] = r;
  }
}

template <typename T, typename I>
__global__ void __launch_bounds__(kThreads)
    whereKernel(int64_t n, StridedSpace<3, I> space, const uint8_t *c,
                const T *a, const T *b, T *y) {
  VLORA_OPS_GRID_STRIDE(i, n) {
    I at[3];
    space.offsets(static_cast<I>(i), at);
    y[i] = c[at[0]] ? a[at[1]] : b[at[2]];
  }
}

/// Calls f(space) with the 32-bit space when every offset fits.
template <int N, typename F>
Status withSpace(const SpaceBuilder<N> &builder, F &&f) {
  if (builder.fits32())
    return f(builder.template build<int32_t>());
  return f(builder.template build<int64_t>());
}

//===----------------------------------------------------------------------===//
// Cast
//===----------------------------------------------------------------------===//

template <typename S>
constexpr bool kFloatSource =
    std::is_floating_point_v<S> || std::is_same_v<S, Half16> ||
    std::is_same_v<S, BFloat16Bits>;

template <typename S> __device__ double widenFloat(S v) {
  if constexpr (std::is_floating_point_v<S>)
    return static_cast<double>(v);
  else
    return static_cast<double>(toFloat(v));
}

template <typename S>
__global__ void __launch_bounds__(kThreads)
    castKernel(int64_t n, const S *x, void *y, DType dst, bool fromBool) {
  VLORA_OPS_GRID_STRIDE(i, n) {
    if constexpr (kFloatSource<S>) {
      storeFromDouble(y, i, dst, widenFloat(x[i]));
    } else {
      int64_t w = static_cast<int64_t>(x[i]);
      storeFromInt(y, i, dst, fromBool ? int64_t(w != 0) : w);
    }
  }
}

} // namespace

//===----------------------------------------------------------------------===//
// Entry points
//===----------------------------------------------------------------------===//

bool supportsUnary(UnaryOp op, DType d) {
  switch (op) {
  case UnaryOp::Not:
    return d == DType::Bool;
  case UnaryOp::Neg:
  case UnaryOp::Abs:
  case UnaryOp::Relu:
    return d == DType::F32 || d == DType::F64 || d == DType::I64 ||
           d == DType::I32;
  default:
    return d == DType::F32 || d == DType::F64;
  }
}

Status unary(Context &ctx, UnaryOp op, const TensorRef &input,
             const TensorRef &out) {
  ShapeText text("unary");
  text("op", static_cast<int>(op));
  describeTensor(text, "input", input);
  describeTensor(text, "out", out);
  if (!supportsUnary(op, input.dtype) || out.dtype != input.dtype)
    return fail(text, "unsupported element type");
  if (out.numel() != input.numel())
    return fail(text, "input and out differ in size");
  int64_t n = out.numel();
  if (n == 0)
    return Status::success();
  unsigned blocks = blocksFor(n, kThreads);
  cudaStream_t stream = streamOf(ctx);
  if (op == UnaryOp::Not) {
    notKernel<<<blocks, kThreads, 0, stream>>>(n, input.as<const uint8_t>(),
                                               out.as<uint8_t>());
    return checkLaunch(text);
  }
  auto run = [&](auto tag) -> Status {
    using T = decltype(tag);
    unaryKernel<T><<<blocks, kThreads, 0, stream>>>(n, op, input.as<const T>(),
                                                    out.as<T>());
    return checkLaunch(text);
  };
  switch (input.dtype) {
  case DType::F32:
    return run(float{});
  case DType::F64:
    return run(double{});
  case DType::I64:
    return run(int64_t{});
  case DType::I32:
    return run(int32_t{});
  default:
    return fail(text, "unsupported element type");
  }
}

bool supportsBinary(BinaryOp op, DType d) {
  switch (op) {
  case BinaryOp::And:
  case BinaryOp::Or:
  case BinaryOp::Xor:
    return d == DType::Bool;
  case BinaryOp::Equal:
    return true;
  default:
    return d != DType::Bool;
  }
}

Status binary(Context &ctx, BinaryOp op, const TensorRef &lhs,
              const TensorRef &rhs, const TensorRef &out) {
  ShapeText text("binary");
  text("op", static_cast<int>(op));
  describeTensor(text, "lhs", lhs);
  describeTensor(text, "rhs", rhs);
  describeTensor(text, "out", out);
  bool logic = op == BinaryOp::And || op == BinaryOp::Or || op == BinaryOp::Xor;
  DType want = isCompare(op) ? DType::Bool : lhs.dtype;
  if (!supportsBinary(op, lhs.dtype) || rhs.dtype != lhs.dtype ||
      out.dtype != want)
    return fail(text, "unsupported element types");
  if (lhs.rank() > out.rank() || rhs.rank() > out.rank())
    return fail(text, "an operand has more dimensions than out");
  int64_t n = out.numel();
  if (n == 0)
    return Status::success();
  SpaceBuilder<2> builder;
  builder.size = out.shape;
  builder.stride[0] = broadcastStridesTo(lhs.shape, out.shape);
  builder.stride[1] = broadcastStridesTo(rhs.shape, out.shape);
  builder.coalesce();
  if (builder.rank() > kMaxOpRank)
    return refuseRank(text);
  unsigned blocks = blocksFor(n, kThreads);
  cudaStream_t stream = streamOf(ctx);
  DataError *error = dataErrorOf(ctx);
  return withSpace(builder, [&](auto space) -> Status {
    using I = std::remove_reference_t<decltype(space.base[0])>;
    if (logic || lhs.dtype == DType::Bool) {
      boolKernel<I><<<blocks, kThreads, 0, stream>>>(
          n, space, op, lhs.as<const uint8_t>(), rhs.as<const uint8_t>(),
          out.as<uint8_t>());
      return checkLaunch(text);
    }
    return visitStorage(lhs.dtype, [&](auto tag) -> Status {
      using T = decltype(tag);
      if (isCompare(op))
        compareKernel<T, I><<<blocks, kThreads, 0, stream>>>(
            n, space, op, lhs.as<const T>(), rhs.as<const T>(),
            out.as<uint8_t>());
      else
        binaryKernel<T, I><<<blocks, kThreads, 0, stream>>>(
            n, space, op, lhs.as<const T>(), rhs.as<const T>(), out.as<T>(),
            error);
      return checkLaunch(text);
    });
  });
}

Status where(Context &ctx, const TensorRef &condition, const TensorRef &lhs,
             const TensorRef &rhs, const TensorRef &out) {
  ShapeText text("where");
  describeTensor(text, "condition", condition);
  describeTensor(text, "lhs", lhs);
  describeTensor(text, "rhs", rhs);
  describeTensor(text, "out", out);
  if (condition.dtype != DType::Bool || lhs.dtype != out.dtype ||
      rhs.dtype != out.dtype)
    return fail(text, "unsupported element types");
  if (condition.rank() > out.rank() || lhs.rank() > out.rank() ||
      rhs.rank() > out.rank())
    return fail(text, "an operand has more dimensions than out");
  int64_t n = out.numel();
  if (n == 0)
    return Status::success();
  SpaceBuilder<3> builder;
  builder.size = out.shape;
  builder.stride[0] = broadcastStridesTo(condition.shape, out.shape);
  builder.stride[1] = broadcastStridesTo(lhs.shape, out.shape);
  builder.stride[2] = broadcastStridesTo(rhs.shape, out.shape);
  builder.coalesce();
  if (builder.rank() > kMaxOpRank)
    return refuseRank(text);
  unsigned blocks = blocksFor(n, kThreads);
  cudaStream_t stream = streamOf(ctx);
  return withSpace(builder, [&](auto space) -> Status {
    using I = std::remove_reference_t<decltype(space.base[0])>;
    return visitBits(out.dtype, [&](auto tag) -> Status {
      using T = decltype(tag);
      whereKernel<T, I><<<blocks, kThreads, 0, stream>>>(
          n, space, condition.as<const uint8_t>(), lhs.as<const T>(),
          rhs.as<const T>(), out.as<T>());
      return checkLaunch(text);
    });
  });
}

Status cast(Context &ctx, const TensorRef &input, const TensorRef &out) {
  ShapeText text("cast");
  describeTensor(text, "input", input);
  describeTensor(text, "out", out);
  if (input.numel() != out.numel())
    return fail(text, "input and out differ in size");
  int64_t n = out.numel();
  if (n == 0)
    return Status::success();
  unsigned blocks = blocksFor(n, kThreads);
  cudaStream_t stream = streamOf(ctx);
  bool fromBool = input.dtype == DType::Bool;
  return visitStorage(input.dtype, [&](auto tag) -> Status {
    using S = decltype(tag);
    castKernel<S><<<blocks, kThreads, 0, stream>>>(
        n, input.as<const S>(), out.data, out.dtype, fromBool);
    return checkLaunch(text);
  });
}

} // namespace vlora::kernels::cuda::ops
