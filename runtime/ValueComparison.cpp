//===- ValueComparison.cpp - how far two copies of a value differ ---------===//

#include "runtime/ValueComparison.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace vlora::runtime {
using kernels::DType;

namespace {
/// IEEE half to double.
double halfToDouble(uint16_t h) {
  int exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  double sign = (h & 0x8000) ? -1.0 : 1.0;
  if (exponent == 0)
    return sign * std::ldexp(mantissa, -24);
  if (exponent == 31)
    return mantissa ? NAN : sign * INFINITY;
  return sign * std::ldexp(mantissa + 1024, exponent - 25);
}

/// Element `i` of `bytes` (of type `dtype`) as a double.
double elementAt(const uint8_t *bytes, DType dtype, size_t i) {
  auto load = [&](auto zero) {
    decltype(zero) v;
    std::memcpy(&v, bytes + i * sizeof(v), sizeof(v));
    return v;
  };
  switch (dtype) {
  case DType::F32:
    return load(float());
  case DType::F64:
    return load(double());
  case DType::F16:
    return halfToDouble(load(uint16_t()));
  case DType::BF16: {
    uint32_t bits = static_cast<uint32_t>(load(uint16_t())) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof(f));
    return f;
  }
  case DType::I64:
    return static_cast<double>(load(int64_t()));
  case DType::I32:
    return load(int32_t());
  case DType::I16:
    return load(int16_t());
  case DType::I8:
    return load(int8_t());
  case DType::U8:
    return load(uint8_t());
  case DType::Bool:
    return load(uint8_t()) != 0;
  }
  return 0;
}

} // namespace

ValueDifference compareValues(const void *actualBytes,
                              const void *expectedBytes, DType dtype,
                              uint64_t bytes) {
  const auto *got = static_cast<const uint8_t *>(actualBytes);
  const auto *want = static_cast<const uint8_t *>(expectedBytes);
  ValueDifference d;
  d.elements = bytes / kernels::dtypeSize(dtype);
  if (!kernels::isFloat(dtype)) {
    // Integers and bools: exactly (bools by truth value).
    for (size_t i = 0; i < d.elements; ++i) {
      double g = elementAt(got, dtype, i), c = elementAt(want, dtype, i);
      bool same = dtype == DType::I64
                      ? std::memcmp(got + 8 * i, want + 8 * i, 8) == 0
                      : g == c;
      if (!same) {
        if (d.differing++ == 0) {
          d.first = i;
          d.firstActual = g;
          d.firstExpected = c;
        }
        d.maxError = std::max(d.maxError, std::fabs(g - c));
      }
    }
    return d;
  }
  bool wide = dtype == DType::F32 || dtype == DType::F64;
  d.rtol = wide ? 1e-4 : 1e-2;
  for (size_t i = 0; i < d.elements; ++i) {
    double c = elementAt(want, dtype, i);
    if (std::isfinite(c))
      d.maxExpected = std::max(d.maxExpected, std::fabs(c));
  }
  d.atol = (wide ? 1e-5 : 1e-2) * d.maxExpected;
  for (size_t i = 0; i < d.elements; ++i) {
    double g = elementAt(got, dtype, i), c = elementAt(want, dtype, i);
    bool same;
    if (std::isnan(c) || std::isnan(g))
      same = std::isnan(c) && std::isnan(g);
    else if (std::isinf(c) || std::isinf(g))
      same = g == c;
    else
      same = std::fabs(g - c) <= d.atol + d.rtol * std::fabs(c);
    double error = std::fabs(g - c);
    if (!std::isnan(error))
      d.maxError = std::max(d.maxError, error);
    if (!same && d.differing++ == 0) {
      d.first = i;
      d.firstActual = g;
      d.firstExpected = c;
    }
  }
  return d;
}

} // namespace vlora::runtime
