//===- Iteration.h - strided iteration and type dispatch --------*- C++ -*-===//
//
// Internal to the CPU kernels: row-by-row walks over strided operands (the
// basis of broadcasting, transposes and slices), dispatch from a DType to a
// C++ type, and the 16-bit float types.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_KERNELS_CPU_ITERATION_H
#define VLORA_KERNELS_CPU_ITERATION_H

#include "vlora/kernels/Tensor.h"

#include <array>
#include <cstring>
#include <type_traits>

namespace vlora::kernels::cpu::detail {

using Strides = std::vector<int64_t>;

/// Row-major strides (in elements) of `shape`.
Strides contiguousStrides(const Shape &shape);

/// Strides of an operand of shape `in` read as if broadcast to `out`
/// (right-aligned; 0 along broadcast or missing dimensions).
Strides broadcastStrides(const Shape &in, const Shape &out);

/// Walks the row-major index space `shape` one innermost row at a time:
/// calls `f(offsets, n)` where offsets[i] is operand i's element offset at the
/// start of the row (base[i] + sum index[d] * strides[i][d]) and n is the
/// innermost size. Operand i advances by strides[i].back() along the row.
/// Nothing is called for an empty space; a scalar space is one row of 1.
template <size_t N, typename F>
void forEachRow(const Shape &shape, const std::array<const Strides *, N> &strides,
                const std::array<int64_t, N> &base, F &&f) {
  int64_t rank = static_cast<int64_t>(shape.size());
  for (int64_t d : shape)
    if (d == 0)
      return;
  if (rank == 0) {
    f(base, int64_t{1});
    return;
  }
  int64_t inner = shape.back();
  std::vector<int64_t> index(rank - 1, 0);
  std::array<int64_t, N> offsets = base;
  while (true) {
    f(offsets, inner);
    int64_t d = rank - 2;
    for (; d >= 0; --d) {
      for (size_t i = 0; i < N; ++i)
        offsets[i] += (*strides[i])[d];
      if (++index[d] < shape[d])
        break;
      for (size_t i = 0; i < N; ++i)
        offsets[i] -= (*strides[i])[d] * shape[d];
      index[d] = 0;
    }
    if (d < 0)
      return;
  }
}

/// IEEE half and bfloat16 as stored bits, convertible to and from float.
struct Half {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};
float toFloat(Half h);
float toFloat(BFloat16 b);
Half toHalf(float f);
BFloat16 toBFloat16(float f);

/// `t` itself, or, when `t` is bf16, an f32 view of its values widened
/// (exactly) into `storage`: the matmul-family kernels take frozen weights
/// stored in bf16 (vlora-compile's --vlora-mixed-precision) this way, once
/// per call, and then run their f32 path.
TensorRef widenBFloat16(const TensorRef &t, std::vector<float> &storage);

/// An f32 view of f32 `t` with every value rounded to the nearest bf16
/// (ties to even, as a cast to bf16 rounds), held in `storage`.
TensorRef roundToBFloat16(const TensorRef &t, std::vector<float> &storage);

template <typename T> struct Tag {
  using type = T;
};

/// Calls f(Tag<T>{}) with T the C++ type of `dtype` (Half/BFloat16 for the
/// 16-bit floats, uint8_t for Bool).
template <typename F> void visitDType(DType dtype, F &&f) {
  switch (dtype) {
  case DType::F32: return f(Tag<float>{});
  case DType::F64: return f(Tag<double>{});
  case DType::F16: return f(Tag<Half>{});
  case DType::BF16: return f(Tag<BFloat16>{});
  case DType::I64: return f(Tag<int64_t>{});
  case DType::I32: return f(Tag<int32_t>{});
  case DType::I16: return f(Tag<int16_t>{});
  case DType::I8: return f(Tag<int8_t>{});
  case DType::U8: return f(Tag<uint8_t>{});
  case DType::Bool: return f(Tag<uint8_t>{});
  }
}

/// Calls f(Tag<T>{}) for the types arithmetic kernels support: f32, f64,
/// i64, i32. Other types throw (the loader refuses them first).
template <typename F> void visitArithmetic(DType dtype, F &&f) {
  switch (dtype) {
  case DType::F32: return f(Tag<float>{});
  case DType::F64: return f(Tag<double>{});
  case DType::I64: return f(Tag<int64_t>{});
  case DType::I32: return f(Tag<int32_t>{});
  default:
    throw KernelError(std::string("unsupported element type ") + dtypeName(dtype));
  }
}

/// Calls f(Tag<T>{}) with an unsigned type of the element size: moves bytes.
template <typename F> void visitBits(DType dtype, F &&f) {
  switch (dtypeSize(dtype)) {
  case 1: return f(Tag<uint8_t>{});
  case 2: return f(Tag<uint16_t>{});
  case 4: return f(Tag<uint32_t>{});
  default: return f(Tag<uint64_t>{});
  }
}

/// Reads index `i` of an i32 or i64 tensor.
inline int64_t loadIndex(const TensorRef &t, int64_t i) {
  return t.dtype == DType::I64 ? t.as<const int64_t>()[i]
                               : static_cast<int64_t>(t.as<const int32_t>()[i]);
}

/// Normalises index `i` into [0, size) or throws naming `what`.
int64_t normaliseIndex(int64_t i, int64_t size, const char *what);

} // namespace vlora::kernels::cpu::detail

#endif // VLORA_KERNELS_CPU_ITERATION_H
