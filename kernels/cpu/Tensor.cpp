//===- Tensor.cpp - element types and shapes ------------------------------===//

#include "vlora/kernels/Tensor.h"

#include "Fast.h"
#include "Iteration.h"

#include <cmath>

namespace vlora::kernels {

size_t dtypeSize(DType dtype) {
  switch (dtype) {
  case DType::F64:
  case DType::I64:
    return 8;
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::F16:
  case DType::BF16:
  case DType::I16:
    return 2;
  case DType::I8:
  case DType::U8:
  case DType::Bool:
    return 1;
  }
  return 1;
}

const char *dtypeName(DType dtype) {
  switch (dtype) {
  case DType::F32: return "f32";
  case DType::F64: return "f64";
  case DType::F16: return "f16";
  case DType::BF16: return "bf16";
  case DType::I64: return "i64";
  case DType::I32: return "i32";
  case DType::I16: return "i16";
  case DType::I8: return "i8";
  case DType::U8: return "u8";
  case DType::Bool: return "i1";
  }
  return "?";
}

std::optional<DType> parseDTypeName(std::string_view name) {
  for (DType d : {DType::F32, DType::F64, DType::F16, DType::BF16, DType::I64,
                  DType::I32, DType::I16, DType::I8, DType::U8, DType::Bool})
    if (name == dtypeName(d))
      return d;
  if (name == "ui8")
    return DType::U8;
  return std::nullopt;
}

bool isFloat(DType d) {
  return d == DType::F32 || d == DType::F64 || d == DType::F16 || d == DType::BF16;
}

bool isInteger(DType d) { return !isFloat(d) && d != DType::Bool; }

int64_t numElements(const Shape &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

std::string shapeString(const Shape &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i)
      s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

namespace cpu::detail {

Strides contiguousStrides(const Shape &shape) {
  Strides s(shape.size(), 1);
  for (int64_t d = static_cast<int64_t>(shape.size()) - 2; d >= 0; --d)
    s[d] = s[d + 1] * shape[d + 1];
  return s;
}

Strides broadcastStrides(const Shape &in, const Shape &out) {
  Strides inStrides = contiguousStrides(in);
  Strides s(out.size(), 0);
  size_t lead = out.size() - in.size();
  for (size_t d = 0; d < in.size(); ++d)
    s[lead + d] = (in[d] == 1 && out[lead + d] != 1) ? 0 : inStrides[d];
  return s;
}

int64_t normaliseIndex(int64_t i, int64_t size, const char *what) {
  int64_t j = i < 0 ? i + size : i;
  if (j < 0 || j >= size)
    throw KernelError(std::string(what) + " index " + std::to_string(i) +
                      " is out of range [" + std::to_string(-size) + ", " +
                      std::to_string(size) + ")");
  return j;
}

float toFloat(Half h) {
  uint32_t sign = (h.bits & 0x8000u) << 16;
  uint32_t exp = (h.bits >> 10) & 0x1f;
  uint32_t mant = h.bits & 0x3ff;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else { // subnormal: value = mant * 2^-24
      float v = std::ldexp(static_cast<float>(mant), -24);
      return sign ? -v : v;
    }
  } else {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

Half toHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) // inf or NaN
    return {static_cast<uint16_t>(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0))};
  if (absx >= 0x477ff000u) // rounds to >= 65520: overflow to inf
    return {static_cast<uint16_t>(sign | 0x7c00u)};
  if (absx < 0x38800000u) { // below the smallest normal half: subnormal
    float a;
    std::memcpy(&a, &absx, 4);
    float scaled = a * 16777216.0f; // / 2^-24
    uint32_t m = static_cast<uint32_t>(std::nearbyint(scaled));
    return {static_cast<uint16_t>(sign | m)};
  }
  uint32_t mant = absx & 0x7fffffu;
  uint32_t exp = (absx >> 23) - 112;
  uint32_t h = (exp << 10) | (mant >> 13);
  uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1)))
    ++h; // carries into the exponent correctly
  return {static_cast<uint16_t>(sign | h)};
}

float toFloat(BFloat16 b) {
  uint32_t bits = static_cast<uint32_t>(b.bits) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

BFloat16 toBFloat16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) // NaN stays a quiet NaN
    return {static_cast<uint16_t>((x >> 16) | 0x40u)};
  uint32_t rounding = 0x7fffu + ((x >> 16) & 1u);
  return {static_cast<uint16_t>((x + rounding) >> 16)};
}

TensorRef widenBFloat16(const TensorRef &t, std::vector<float> &storage) {
  if (t.dtype != DType::BF16)
    return t;
  int64_t n = t.numel();
  storage.resize(static_cast<size_t>(n));
  const uint16_t *src = t.as<const uint16_t>();
  float *dst = storage.data();
  // bf16 is the upper half of an f32: the shift is exact (NaNs included).
  parallelFor(n, int64_t(1) << 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      uint32_t bits = static_cast<uint32_t>(src[i]) << 16;
      std::memcpy(dst + i, &bits, 4);
    }
  });
  return {storage.data(), DType::F32, t.shape};
}

TensorRef roundToBFloat16(const TensorRef &t, std::vector<float> &storage) {
  int64_t n = t.numel();
  storage.resize(static_cast<size_t>(n));
  const float *src = t.as<const float>();
  float *dst = storage.data();
  parallelFor(n, int64_t(1) << 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      dst[i] = toFloat(toBFloat16(src[i]));
  });
  return {storage.data(), DType::F32, t.shape};
}

} // namespace cpu::detail
} // namespace vlora::kernels
