//===- Normalization.cpp - softmax, layer/RMS norm, cumsum, reductions ----===//

#include "vlora/kernels/Cpu.h"

#include "Fast.h"
#include "Iteration.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace vlora::kernels::cpu {
using namespace detail;

namespace {
/// Splits `shape` around `axis`: [outer, size, inner].
std::array<int64_t, 3> aroundAxis(const Shape &shape, int64_t axis) {
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d)
    outer *= shape[d];
  for (size_t d = axis + 1; d < shape.size(); ++d)
    inner *= shape[d];
  return {outer, shape[axis], inner};
}

template <typename F> void visitFloat(DType dtype, F &&f) {
  if (dtype == DType::F32)
    return f(Tag<float>{});
  if (dtype == DType::F64)
    return f(Tag<double>{});
  throw KernelError(std::string("unsupported element type ") + dtypeName(dtype));
}
} // namespace

void softmax(const TensorRef &input, const TensorRef &out, int64_t axis,
             bool log) {
  if (fastSoftmax(input, out, axis, log))
    return;
  auto [outer, size, inner] = aroundAxis(input.shape, axis);
  visitFloat(input.dtype, [&, outer = outer, size = size, inner = inner](auto tag) {
    using T = typename decltype(tag)::type;
    const T *x = input.as<const T>();
    T *y = out.as<T>();
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i = 0; i < inner; ++i) {
        const T *xs = x + o * size * inner + i;
        T *ys = y + o * size * inner + i;
        T max = -std::numeric_limits<T>::infinity();
        for (int64_t j = 0; j < size; ++j)
          max = std::max(max, xs[j * inner]);
        if (std::isinf(max) && max < 0)
          max = 0; // all -inf: avoid -inf - -inf
        double sum = 0;
        for (int64_t j = 0; j < size; ++j)
          sum += std::exp(static_cast<double>(xs[j * inner] - max));
        if (log) {
          T lse = static_cast<T>(std::log(sum));
          for (int64_t j = 0; j < size; ++j)
            ys[j * inner] = xs[j * inner] - max - lse;
        } else {
          T inv = static_cast<T>(1.0 / sum);
          for (int64_t j = 0; j < size; ++j)
            ys[j * inner] = std::exp(xs[j * inner] - max) * inv;
        }
      }
    }
  });
}

void cumsum(const TensorRef &input, const TensorRef &out, int64_t axis,
            bool exclusive, bool reverse) {
  auto [outer, size, inner] = aroundAxis(input.shape, axis);
  visitArithmetic(input.dtype, [&, outer = outer, size = size, inner = inner](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = std::conditional_t<std::is_integral_v<T>, uint64_t, double>;
    const T *x = input.as<const T>();
    T *y = out.as<T>();
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i = 0; i < inner; ++i) {
        Acc acc = 0;
        for (int64_t s = 0; s < size; ++s) {
          int64_t j = reverse ? size - 1 - s : s;
          int64_t at = (o * size + j) * inner + i;
          T v = x[at]; // read before a possible in-place write
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
  });
}

void layerNorm(const TensorRef &input, const TensorRef &scale,
               const TensorRef *bias, const TensorRef &out, int64_t axis,
               double epsilon) {
  int64_t inner = 1;
  for (size_t d = axis; d < input.shape.size(); ++d)
    inner *= input.shape[d];
  int64_t outer = inner ? input.numel() / inner : 0;
  visitFloat(input.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T *x = input.as<const T>(), *g = scale.as<const T>();
    const T *b = bias ? bias->as<const T>() : nullptr;
    T *y = out.as<T>();
    for (int64_t o = 0; o < outer; ++o) {
      const T *xr = x + o * inner;
      T *yr = y + o * inner;
      double mean = 0;
      for (int64_t i = 0; i < inner; ++i)
        mean += xr[i];
      mean /= static_cast<double>(inner);
      double var = 0;
      for (int64_t i = 0; i < inner; ++i) {
        double d = xr[i] - mean;
        var += d * d;
      }
      var /= static_cast<double>(inner);
      double rstd = 1.0 / std::sqrt(var + epsilon);
      for (int64_t i = 0; i < inner; ++i) {
        T v = static_cast<T>((xr[i] - mean) * rstd) * g[i];
        yr[i] = b ? v + b[i] : v;
      }
    }
  });
}

void rmsNorm(const TensorRef &input, const TensorRef &scale,
             const TensorRef &out, int64_t axis, double epsilon) {
  int64_t inner = 1;
  for (size_t d = axis; d < input.shape.size(); ++d)
    inner *= input.shape[d];
  int64_t outer = inner ? input.numel() / inner : 0;
  visitFloat(input.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T *x = input.as<const T>(), *g = scale.as<const T>();
    T *y = out.as<T>();
    for (int64_t o = 0; o < outer; ++o) {
      const T *xr = x + o * inner;
      T *yr = y + o * inner;
      double ss = 0;
      for (int64_t i = 0; i < inner; ++i)
        ss += static_cast<double>(xr[i]) * xr[i];
      double r = 1.0 / std::sqrt(ss / static_cast<double>(inner) + epsilon);
      for (int64_t i = 0; i < inner; ++i)
        yr[i] = static_cast<T>(xr[i] * r) * g[i];
    }
  });
}

//===----------------------------------------------------------------------===//
// Reductions
//===----------------------------------------------------------------------===//


void reduce(ReduceOp op, const TensorRef &input, const TensorRef &out,
            const Shape &axes) {
  if (fastReduce(op, input, out, axes))
    return;
  // The output index of an input element: strides of the kept-dims shape,
  // 0 along reduced axes.
  Shape kept = input.shape;
  for (int64_t a : axes)
    kept[a] = 1;
  Strides so = broadcastStrides(kept, input.shape);
  Strides si = contiguousStrides(input.shape);
  int64_t count = 1;
  for (int64_t a : axes)
    count *= input.shape[a];
  int64_t outN = out.numel();
  visitArithmetic(input.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr bool isInt = std::is_integral_v<T>;
    using Acc = std::conditional_t<isInt, int64_t, double>;
    Acc init = 0;
    if (op == ReduceOp::Prod)
      init = 1;
    if constexpr (isInt) {
      if (op == ReduceOp::Max)
        init = std::numeric_limits<T>::lowest();
      if (op == ReduceOp::Min)
        init = std::numeric_limits<T>::max();
    } else {
      if (op == ReduceOp::Max)
        init = -std::numeric_limits<double>::infinity();
      if (op == ReduceOp::Min)
        init = std::numeric_limits<double>::infinity();
    }
    std::vector<Acc> acc(static_cast<size_t>(outN), init);
    const T *x = input.as<const T>();
    int64_t is = si.empty() ? 1 : si.back(), os = so.empty() ? 0 : so.back();
    forEachRow<2>(input.shape, {&si, &so}, {0, 0},
                  [&](const std::array<int64_t, 2> &o, int64_t n) {
                    for (int64_t i = 0; i < n; ++i) {
                      Acc v = static_cast<Acc>(x[o[0] + i * is]);
                      Acc &a = acc[o[1] + i * os];
                      switch (op) {
                      case ReduceOp::Sum:
                      case ReduceOp::Mean:
                        if constexpr (isInt)
                          a = static_cast<Acc>(static_cast<uint64_t>(a) +
                                               static_cast<uint64_t>(v));
                        else
                          a += v;
                        break;
                      case ReduceOp::Prod:
                        if constexpr (isInt)
                          a = static_cast<Acc>(static_cast<uint64_t>(a) *
                                               static_cast<uint64_t>(v));
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
                  });
    T *y = out.as<T>();
    for (int64_t i = 0; i < outN; ++i) {
      if (op == ReduceOp::Mean) {
        if constexpr (isInt)
          y[i] = count ? static_cast<T>(acc[i] / count) : T(0);
        else
          y[i] = static_cast<T>(acc[i] / static_cast<double>(count));
      } else {
        y[i] = static_cast<T>(acc[i]);
      }
    }
  });
}

void argmax(const TensorRef &input, const TensorRef &out, int64_t axis,
            bool selectLast) {
  auto [outer, size, inner] = aroundAxis(input.shape, axis);
  visitArithmetic(input.dtype, [&, outer = outer, size = size, inner = inner](auto tag) {
    using T = typename decltype(tag)::type;
    const T *x = input.as<const T>();
    int64_t *y = out.as<int64_t>();
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i = 0; i < inner; ++i) {
        const T *xs = x + o * size * inner + i;
        int64_t best = 0;
        for (int64_t j = 1; j < size; ++j) {
          T v = xs[j * inner], b = xs[best * inner];
          bool vNan = v != v, bNan = b != b; // NaN is the maximum
          bool better = bNan ? (vNan && selectLast)
                        : vNan ? true
                        : selectLast ? v >= b : v > b;
          if (better)
            best = j;
        }
        y[o * inner + i] = best;
      }
    }
  });
}

} // namespace vlora::kernels::cpu
