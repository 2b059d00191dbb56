//===- Scalar.h - one element of the elementwise ops ------------*- C++ -*-===//
//
// Internal to the CPU kernels: what unary and binary compute for one element
// of each type, shared by their loops and by the fused elementwise programs
// (Fused.cpp), so that both give the same bits.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_KERNELS_CPU_SCALAR_H
#define VLORA_KERNELS_CPU_SCALAR_H

#include "vlora/kernels/Cpu.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

namespace vlora::kernels::cpu::detail {

template <typename T> T sigmoidOf(T x) {
  if (x >= 0)
    return T(1) / (T(1) + std::exp(-x));
  T e = std::exp(x);
  return e / (T(1) + e);
}

template <typename T> T applyUnary(UnaryOp op, T x) {
  using U = std::make_unsigned_t<std::conditional_t<std::is_integral_v<T>, T, int>>;
  if constexpr (std::is_integral_v<T>) {
    switch (op) {
    case UnaryOp::Neg:
      return static_cast<T>(U(0) - static_cast<U>(x)); // wraps, no UB
    case UnaryOp::Abs:
      return x < 0 ? static_cast<T>(U(0) - static_cast<U>(x)) : x;
    case UnaryOp::Relu:
      return x < 0 ? T(0) : x;
    default:
      return x;
    }
  } else {
    (void)sizeof(U);
    switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Abs: return std::fabs(x);
    case UnaryOp::Exp: return std::exp(x);
    case UnaryOp::Log: return std::log(x);
    case UnaryOp::Sqrt: return std::sqrt(x);
    case UnaryOp::Rsqrt: return T(1) / std::sqrt(x);
    case UnaryOp::Reciprocal: return T(1) / x;
    case UnaryOp::Tanh: return std::tanh(x);
    case UnaryOp::Erf: return std::erf(x);
    case UnaryOp::Sigmoid: return sigmoidOf(x);
    case UnaryOp::Silu: return x * sigmoidOf(x);
    case UnaryOp::Relu: return x < T(0) ? T(0) : x; // keeps NaN
    case UnaryOp::Sin: return std::sin(x);
    case UnaryOp::Cos: return std::cos(x);
    case UnaryOp::Floor: return std::floor(x);
    case UnaryOp::Ceil: return std::ceil(x);
    case UnaryOp::Gelu:
      return T(0.5) * x * (T(1) + std::erf(x * T(0.70710678118654752440)));
    case UnaryOp::GeluTanh: {
      const T c = T(0.79788456080286535588); // sqrt(2/pi)
      return T(0.5) * x * (T(1) + std::tanh(c * (x + T(0.044715) * x * x * x)));
    }
    case UnaryOp::Not:
      return x;
    }
    return x;
  }
}

/// Unsigned arithmetic of T's width without integer promotion to int (whose
/// overflow is undefined): at least unsigned int.
template <typename T>
using WrapT = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned,
                                 std::make_unsigned_t<T>>;

template <typename T> T integerPow(T base, T exp) {
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

template <typename T> T applyBinary(BinaryOp op, T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using W = WrapT<T>;
    switch (op) {
    case BinaryOp::Add: return static_cast<T>(static_cast<W>(a) + static_cast<W>(b));
    case BinaryOp::Sub: return static_cast<T>(static_cast<W>(a) - static_cast<W>(b));
    case BinaryOp::Mul: return static_cast<T>(static_cast<W>(a) * static_cast<W>(b));
    case BinaryOp::Div:
      if (b == 0)
        throw KernelError("integer division by zero");
      if constexpr (std::is_signed_v<T>) {
        if (b == -1)
          return static_cast<T>(W(0) - static_cast<W>(a)); // MIN / -1 wraps
      }
      return static_cast<T>(a / b);
    case BinaryOp::Pow: return integerPow(a, b);
    case BinaryOp::Max: return std::max(a, b);
    case BinaryOp::Min: return std::min(a, b);
    default: return a;
    }
  } else {
    switch (op) {
    case BinaryOp::Add: return a + b;
    case BinaryOp::Sub: return a - b;
    case BinaryOp::Mul: return a * b;
    case BinaryOp::Div: return a / b;
    case BinaryOp::Pow: return std::pow(a, b);
    case BinaryOp::Max: return std::isnan(a) || a > b ? a : b; // NaN wins
    case BinaryOp::Min: return std::isnan(a) || a < b ? a : b;
    default: return a;
    }
  }
}

template <typename T> uint8_t applyCompare(BinaryOp op, T a, T b) {
  switch (op) {
  case BinaryOp::Equal: return a == b;
  case BinaryOp::Less: return a < b;
  case BinaryOp::LessEqual: return a <= b;
  case BinaryOp::Greater: return a > b;
  case BinaryOp::GreaterEqual: return a >= b;
  default: return 0;
  }
}


} // namespace vlora::kernels::cpu::detail

#endif // VLORA_KERNELS_CPU_SCALAR_H
