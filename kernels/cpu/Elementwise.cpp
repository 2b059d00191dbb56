//===- Elementwise.cpp - unary, binary, where and cast kernels ------------===//

#include "vlora/kernels/Cpu.h"

#include "Fast.h"
#include "Iteration.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace vlora::kernels::cpu {
using namespace detail;

std::optional<Shape> broadcastShapes(const Shape &a, const Shape &b) {
  size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1)
      return std::nullopt;
    out[i] = da == 1 ? db : da;
  }
  return out;
}

//===----------------------------------------------------------------------===//
// Unary
//===----------------------------------------------------------------------===//


bool supportsUnary(UnaryOp op, DType d) {
  switch (op) {
  case UnaryOp::Not:
    return d == DType::Bool;
  case UnaryOp::Neg:
  case UnaryOp::Abs:
  case UnaryOp::Relu:
    return d == DType::F32 || d == DType::F64 || d == DType::I64 || d == DType::I32;
  default:
    return d == DType::F32 || d == DType::F64;
  }
}

namespace {
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
} // namespace

void unary(UnaryOp op, const TensorRef &in, const TensorRef &out) {
  if (fastUnary(op, in, out))
    return;
  int64_t n = in.numel();
  if (op == UnaryOp::Not) {
    const uint8_t *x = in.as<const uint8_t>();
    uint8_t *y = out.as<uint8_t>();
    for (int64_t i = 0; i < n; ++i)
      y[i] = x[i] ? 0 : 1;
    return;
  }
  visitArithmetic(in.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T *x = in.as<const T>();
    T *y = out.as<T>();
    for (int64_t i = 0; i < n; ++i)
      y[i] = applyUnary(op, x[i]);
  });
}

//===----------------------------------------------------------------------===//
// Binary
//===----------------------------------------------------------------------===//



bool supportsBinary(BinaryOp op, DType d) {
  switch (op) {
  case BinaryOp::And:
  case BinaryOp::Or:
  case BinaryOp::Xor:
    return d == DType::Bool;
  case BinaryOp::Equal:
    return true;
  default:
    return d != DType::Bool; // every float (16-bit through float) and integer
  }
}

namespace {
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

template <typename In, typename Out, typename F>
void broadcastLoop(const TensorRef &lhs, const TensorRef &rhs,
                   const TensorRef &out, F &&f) {
  Strides sa = broadcastStrides(lhs.shape, out.shape);
  Strides sb = broadcastStrides(rhs.shape, out.shape);
  Strides so = contiguousStrides(out.shape);
  const In *a = lhs.as<const In>(), *b = rhs.as<const In>();
  Out *y = out.as<Out>();
  int64_t ia = sa.empty() ? 0 : sa.back(), ib = sb.empty() ? 0 : sb.back();
  forEachRow<3>(out.shape, {&sa, &sb, &so}, {0, 0, 0},
                [&](const std::array<int64_t, 3> &o, int64_t n) {
                  const In *pa = a + o[0], *pb = b + o[1];
                  Out *py = y + o[2];
                  for (int64_t i = 0; i < n; ++i)
                    py[i] = f(pa[i * ia], pb[i * ib]);
                });
}
} // namespace

void binary(BinaryOp op, const TensorRef &lhs, const TensorRef &rhs,
            const TensorRef &out) {
  if (fastBinary(op, lhs, rhs, out))
    return;
  if (op == BinaryOp::And || op == BinaryOp::Or || op == BinaryOp::Xor) {
    broadcastLoop<uint8_t, uint8_t>(lhs, rhs, out, [op](uint8_t a, uint8_t b) {
      bool x = a, y = b;
      return static_cast<uint8_t>(op == BinaryOp::And ? (x && y)
                                  : op == BinaryOp::Or ? (x || y)
                                                       : (x != y));
    });
    return;
  }
  if (isCompare(op) && lhs.dtype == DType::Bool) {
    broadcastLoop<uint8_t, uint8_t>(lhs, rhs, out, [op](uint8_t a, uint8_t b) {
      return applyCompare(op, a != 0, b != 0);
    });
    return;
  }
  visitDType(lhs.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) {
      // 16-bit floats: computed in float, rounded once to the result.
      auto narrow = [](float v) {
        if constexpr (std::is_same_v<T, Half>)
          return toHalf(v);
        else
          return toBFloat16(v);
      };
      if (isCompare(op))
        broadcastLoop<T, uint8_t>(lhs, rhs, out, [op](T a, T b) {
          return applyCompare(op, toFloat(a), toFloat(b));
        });
      else
        broadcastLoop<T, T>(lhs, rhs, out, [op, narrow](T a, T b) {
          return narrow(applyBinary(op, toFloat(a), toFloat(b)));
        });
    } else if (isCompare(op)) {
      broadcastLoop<T, uint8_t>(lhs, rhs, out,
                                [op](T a, T b) { return applyCompare(op, a, b); });
    } else {
      broadcastLoop<T, T>(lhs, rhs, out,
                          [op](T a, T b) { return applyBinary(op, a, b); });
    }
  });
}

void where(const TensorRef &cond, const TensorRef &lhs, const TensorRef &rhs,
           const TensorRef &out) {
  Strides sc = broadcastStrides(cond.shape, out.shape);
  Strides sa = broadcastStrides(lhs.shape, out.shape);
  Strides sb = broadcastStrides(rhs.shape, out.shape);
  Strides so = contiguousStrides(out.shape);
  int64_t ic = sc.empty() ? 0 : sc.back(), ia = sa.empty() ? 0 : sa.back(),
          ib = sb.empty() ? 0 : sb.back();
  const uint8_t *c = cond.as<const uint8_t>();
  visitBits(out.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T *a = lhs.as<const T>(), *b = rhs.as<const T>();
    T *y = out.as<T>();
    forEachRow<4>(out.shape, {&sc, &sa, &sb, &so}, {0, 0, 0, 0},
                  [&](const std::array<int64_t, 4> &o, int64_t n) {
                    for (int64_t i = 0; i < n; ++i)
                      y[o[3] + i] = c[o[0] + i * ic] ? a[o[1] + i * ia]
                                                     : b[o[2] + i * ib];
                  });
  });
}

//===----------------------------------------------------------------------===//
// Cast
//===----------------------------------------------------------------------===//

namespace {
/// Values pass through double (floats) or int64 (integers and bool).
template <typename T> auto widen(T v) {
  if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>)
    return static_cast<double>(toFloat(v));
  else if constexpr (std::is_floating_point_v<T>)
    return static_cast<double>(v);
  else
    return static_cast<int64_t>(v);
}

template <typename Dst> Dst narrowFloat(double v, bool toBool) {
  if constexpr (std::is_arithmetic_v<Dst>)
    if (toBool)
      return static_cast<Dst>(v != 0.0 || std::isnan(v));
  if constexpr (std::is_same_v<Dst, Half>)
    return toHalf(static_cast<float>(v));
  else if constexpr (std::is_same_v<Dst, BFloat16>)
    return toBFloat16(static_cast<float>(v));
  else if constexpr (std::is_floating_point_v<Dst>)
    return static_cast<Dst>(v);
  else {
    if (std::isnan(v))
      return Dst(0);
    double t = std::trunc(v);
    if (t <= static_cast<double>(std::numeric_limits<Dst>::lowest()))
      return std::numeric_limits<Dst>::lowest();
    if (t >= static_cast<double>(std::numeric_limits<Dst>::max()))
      return std::numeric_limits<Dst>::max();
    return static_cast<Dst>(t);
  }
}

template <typename Dst> Dst narrowInt(int64_t v, bool toBool) {
  if constexpr (std::is_arithmetic_v<Dst>)
    if (toBool)
      return static_cast<Dst>(v != 0);
  if constexpr (std::is_same_v<Dst, Half>)
    return toHalf(static_cast<float>(v));
  else if constexpr (std::is_same_v<Dst, BFloat16>)
    return toBFloat16(static_cast<float>(v));
  else
    return static_cast<Dst>(v); // integers wrap (two's complement), as in C
}
} // namespace

void cast(const TensorRef &in, const TensorRef &out) {
  int64_t n = in.numel();
  bool toBool = out.dtype == DType::Bool;
  visitDType(in.dtype, [&](auto srcTag) {
    using S = typename decltype(srcTag)::type;
    visitDType(out.dtype, [&](auto dstTag) {
      using D = typename decltype(dstTag)::type;
      const S *x = in.as<const S>();
      D *y = out.as<D>();
      bool fromBool = in.dtype == DType::Bool;
      for (int64_t i = 0; i < n; ++i) {
        auto w = widen(x[i]);
        if constexpr (std::is_same_v<decltype(w), double>)
          y[i] = narrowFloat<D>(w, toBool);
        else
          y[i] = narrowInt<D>(fromBool ? (w != 0) : w, toBool);
      }
    });
  });
}

} // namespace vlora::kernels::cpu
