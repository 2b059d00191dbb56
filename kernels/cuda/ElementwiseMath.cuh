//===- ElementwiseMath.cuh - unary and binary element math -----*- CUDA -*-===//
//
// The per-element math of the CUDA unary and binary twins
// (OpsElementwise.cu), shared with the fused elementwise programs (Fused.cu)
// so that a fused opcode computes bit for bit what the unfused op computes.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_KERNELS_CUDA_ELEMENTWISEMATH_CUH
#define VLORA_KERNELS_CUDA_ELEMENTWISEMATH_CUH

#include "OpsCommon.cuh"

#include <type_traits>

namespace vlora::kernels::cuda::detail {

template <typename T> __device__ T sigmoidOf(T x) {
  if (x >= T(0))
    return T(1) / (T(1) + exp(-x));
  T e = exp(x);
  return e / (T(1) + e);
}

template <typename T> __device__ T applyUnary(UnaryOp op, T x) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    switch (op) {
    case UnaryOp::Neg:
      return static_cast<T>(U(0) - static_cast<U>(x));
    case UnaryOp::Abs:
      return x < 0 ? static_cast<T>(U(0) - static_cast<U>(x)) : x;
    case UnaryOp::Relu:
      return x < 0 ? T(0) : x;
    default:
      return x;
    }
  } else {
    switch (op) {
    case UnaryOp::Neg:
      return -x;
    case UnaryOp::Abs:
      return fabs(x);
    case UnaryOp::Exp:
      return exp(x);
    case UnaryOp::Log:
      return log(x);
    case UnaryOp::Sqrt:
      return sqrt(x);
    case UnaryOp::Rsqrt:
      return T(1) / sqrt(x);
    case UnaryOp::Reciprocal:
      return T(1) / x;
    case UnaryOp::Tanh:
      return tanh(x);
    case UnaryOp::Erf:
      return erf(x);
    case UnaryOp::Sigmoid:
      return sigmoidOf(x);
    case UnaryOp::Silu:
      return x * sigmoidOf(x);
    case UnaryOp::Relu:
      return x < T(0) ? T(0) : x; // keeps NaN
    case UnaryOp::Sin:
      return sin(x);
    case UnaryOp::Cos:
      return cos(x);
    case UnaryOp::Floor:
      return floor(x);
    case UnaryOp::Ceil:
      return ceil(x);
    case UnaryOp::Gelu:
      return T(0.5) * x * (T(1) + erf(x * T(0.70710678118654752440)));
    case UnaryOp::GeluTanh: {
      const T c = T(0.79788456080286535588); // sqrt(2/pi)
      return T(0.5) * x * (T(1) + tanh(c * (x + T(0.044715) * x * x * x)));
    }
    case UnaryOp::Not:
      return x;
    }
    return x;
  }
}

/// Unsigned arithmetic of T's width without promotion to int.
template <typename T>
using WrapT = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned,
                                 std::make_unsigned_t<T>>;

template <typename T> __device__ T integerPow(T base, T exp) {
  using W = WrapT<T>;
  if constexpr (std::is_signed_v<T>) {
    if (exp < 0)
      return base == 1 ? T(1) : base == -1 ? (exp % 2 ? T(-1) : T(1)) : T(0);
  }
  W result = 1, b = static_cast<W>(base);
  for (T e = exp; e > 0; e >>= 1) {
    if (e & 1)
      result *= b;
    b *= b;
  }
  return static_cast<T>(result);
}

/// a op b; false (nothing to store) for an integer division by zero, which
/// is recorded.
template <typename T>
__device__ bool applyBinary(BinaryOp op, T a, T b, T &r, DataError *error) {
  if constexpr (std::is_integral_v<T>) {
    using W = WrapT<T>;
    switch (op) {
    case BinaryOp::Add:
      r = static_cast<T>(static_cast<W>(a) + static_cast<W>(b));
      return true;
    case BinaryOp::Sub:
      r = static_cast<T>(static_cast<W>(a) - static_cast<W>(b));
      return true;
    case BinaryOp::Mul:
      r = static_cast<T>(static_cast<W>(a) * static_cast<W>(b));
      return true;
    case BinaryOp::Div:
      if (b == 0) {
        recordDataError(error, DataErrorCode::DivisionByZero, OpId::Binary,
                        static_cast<int64_t>(a), 0, 0);
        return false;
      }
      if constexpr (std::is_signed_v<T>) {
        if (b == -1) { // MIN / -1 wraps
          r = static_cast<T>(W(0) - static_cast<W>(a));
          return true;
        }
      }
      r = static_cast<T>(a / b);
      return true;
    case BinaryOp::Pow:
      r = integerPow(a, b);
      return true;
    case BinaryOp::Max:
      r = a < b ? b : a;
      return true;
    case BinaryOp::Min:
      r = b < a ? b : a;
      return true;
    default:
      r = a;
      return true;
    }
  } else {
    switch (op) {
    case BinaryOp::Add:
      r = a + b;
      return true;
    case BinaryOp::Sub:
      r = a - b;
      return true;
    case BinaryOp::Mul:
      r = a * b;
      return true;
    case BinaryOp::Div:
      r = a / b;
      return true;
    case BinaryOp::Pow:
      // x^2 exactly as the CPU's fast path (x * x, correctly rounded).
      r = b == T(2) ? a * a : pow(a, b);
      return true;
    case BinaryOp::Max:
      r = (a != a || a > b) ? a : b;
      return true; // NaN wins
    case BinaryOp::Min:
      r = (a != a || a < b) ? a : b;
      return true;
    default:
      r = a;
      return true;
    }
  }
}

} // namespace vlora::kernels::cuda::detail

#endif // VLORA_KERNELS_CUDA_ELEMENTWISEMATH_CUH
