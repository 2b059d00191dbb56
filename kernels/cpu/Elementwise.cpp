//===- Elementwise.cpp - unary, binary, where and cast kernels ------------===//

#include "vlora/kernels/Cpu.h"

#include "Fast.h"
#include "Iteration.h"
#include "Scalar.h"

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
