//===- OpsCommon.cuh - what the CUDA op twins share -------------*- CUDA -*-===//
//
// The data-error record of a Context: a kernel that meets a data-dependent
// failure (an index out of range, a label outside the vocabulary) records
// the first one with recordDataError; ops::takeDataError (Device.cu) reads
// it after synchronising and turns it into a Status.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_KERNELS_CUDA_OPSCOMMON_CUH
#define VLORA_KERNELS_CUDA_OPSCOMMON_CUH

#include "Primitives.cuh"
#include "vlora/kernels/Ops.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace vlora::kernels::cuda::detail {

/// What went wrong; takeDataError words the message from it.
enum class DataErrorCode : int32_t {
  None = 0,
  IndexOutOfRange = 1,    // value outside [lo, hi)
  LabelOutOfRange = 2,    // a label outside [0, hi) that is not ignored
  TooManyTrueValues = 3,  // mask has `value` true values, room for `hi`
  TooFewSourceValues = 4, // source has `hi` elements, mask needs `value`
  BadStep = 5,            // adamW step < 1
  NegativeScalar = 6,     // adamW lr or weight decay < 0 (value: bits)
  DivisionByZero = 7,     // integer division by zero
};

/// The record: written once (first failure wins) by device code.
struct DataError {
  int32_t code;     // DataErrorCode
  int32_t op;       // which function: an OpId
  int64_t value, lo, hi;
};

/// The functions that can record a data error (for the message).
enum class OpId : int32_t {
  Gather = 1, GatherGrad, GatherElements, GatherND, ScatterND, MaskedScatter,
  MaskedSelect, CrossEntropy, CrossEntropyGrad, LinearCrossEntropy, AdamW,
  Binary, Embedding
};
const char *opIdName(OpId op);

/// The context's device record (Context::Impl::dataError).
DataError *dataErrorOf(Context &ctx);

#ifdef __CUDACC__
/// Records the first data error; later ones are dropped.
__device__ inline void recordDataError(DataError *record, DataErrorCode code,
                                       OpId op, int64_t value, int64_t lo,
                                       int64_t hi) {
  if (atomicCAS(reinterpret_cast<int *>(&record->code), 0,
                static_cast<int>(code)) == 0) {
    record->op = static_cast<int32_t>(op);
    record->value = value;
    record->lo = lo;
    record->hi = hi;
  }
}
#endif

//===----------------------------------------------------------------------===//
// Strided index spaces and element conversions (OpsElementwise.cu and
// OpsData.cu)
//===----------------------------------------------------------------------===//

/// The most dimensions a strided op kernel walks (after merging).
constexpr int kMaxOpRank = 8;

/// A row-major index space and, for each of N operands, a base offset and an
/// element stride per dimension (0 along broadcast dimensions, negative for
/// a reversed slice). I is int32_t when every offset fits, else int64_t.
/// Passed to kernels by value.
template <int N, typename I> struct StridedSpace {
  int rank;
  I size[kMaxOpRank];
  I stride[N][kMaxOpRank];
  I base[N];

#ifdef __CUDACC__
  /// The operands' element offsets at row-major position `linear`.
  __device__ __forceinline__ void offsets(I linear, I (&at)[N]) const {
#pragma unroll
    for (int k = 0; k < N; ++k)
      at[k] = base[k];
#pragma unroll
    for (int j = 0; j < kMaxOpRank; ++j) {
      int d = rank - 1 - j;
      if (d < 0)
        break;
      I q = d ? linear / size[d] : I(0);
      I r = linear - q * size[d];
#pragma unroll
      for (int k = 0; k < N; ++k)
        at[k] += r * stride[k][d];
      linear = q;
    }
  }
#endif
};

/// Row-major strides (in elements) of `shape`.
inline std::vector<int64_t> rowMajorStrides(const Shape &shape) {
  std::vector<int64_t> s(shape.size(), 1);
  for (int64_t d = static_cast<int64_t>(shape.size()) - 2; d >= 0; --d)
    s[d] = s[d + 1] * shape[d + 1];
  return s;
}

/// Strides of a tensor of shape `in` read as if broadcast to `out`
/// (right-aligned; 0 along broadcast or missing dimensions).
inline std::vector<int64_t> broadcastStridesTo(const Shape &in,
                                               const Shape &out) {
  std::vector<int64_t> inStrides = rowMajorStrides(in), s(out.size(), 0);
  size_t lead = out.size() - in.size();
  for (size_t d = 0; d < in.size(); ++d)
    s[lead + d] = (in[d] == 1 && out[lead + d] != 1) ? 0 : inStrides[d];
  return s;
}

/// The host-side form of a StridedSpace: any rank, int64.
template <int N> struct SpaceBuilder {
  Shape size;
  std::vector<int64_t> stride[N]; // each size.size() long
  int64_t base[N] = {};

  /// Drops size-1 dimensions and merges neighbours that every operand walks
  /// as one (the implicit row-major output always does). Leaves rank >= 1.
  void coalesce() {
    Shape s;
    std::vector<int64_t> st[N];
    for (size_t d = 0; d < size.size(); ++d) {
      if (size[d] == 1)
        continue;
      bool merge = !s.empty();
      for (int k = 0; k < N && merge; ++k)
        merge = st[k].back() == stride[k][d] * size[d];
      if (merge) {
        s.back() *= size[d];
        for (int k = 0; k < N; ++k)
          st[k].back() = stride[k][d];
        continue;
      }
      s.push_back(size[d]);
      for (int k = 0; k < N; ++k)
        st[k].push_back(stride[k][d]);
    }
    if (s.empty()) {
      s.push_back(1);
      for (int k = 0; k < N; ++k)
        st[k].push_back(0);
    }
    size = s;
    for (int k = 0; k < N; ++k)
      stride[k] = st[k];
  }
  int rank() const { return static_cast<int>(size.size()); }
  /// Whether every position and every offset fits in int32_t.
  bool fits32() const {
    const int64_t limit = int64_t(1) << 31;
    int64_t n = 1;
    for (int64_t d : size)
      n *= d;
    if (n >= limit)
      return false;
    for (int k = 0; k < N; ++k) {
      int64_t lo = base[k], hi = base[k];
      for (size_t d = 0; d < size.size(); ++d) {
        int64_t reach = (size[d] - 1) * stride[k][d];
        (reach < 0 ? lo : hi) += reach;
      }
      if (lo <= -limit || hi >= limit)
        return false;
    }
    return true;
  }
  /// Only for rank() <= kMaxOpRank.
  template <typename I> StridedSpace<N, I> build() const {
    StridedSpace<N, I> space{};
    space.rank = rank();
    for (int d = 0; d < space.rank; ++d) {
      space.size[d] = static_cast<I>(size[d]);
      for (int k = 0; k < N; ++k)
        space.stride[k][d] = static_cast<I>(stride[k][d]);
    }
    for (int k = 0; k < N; ++k)
      space.base[k] = static_cast<I>(base[k]);
    return space;
  }
};

/// IEEE half and bfloat16, stored as bits, converted as the CPU kernels do
/// (kernels/cpu/Tensor.cpp): round to nearest even, NaN kept quiet with its
/// sign, so results match the CPU backend bit for bit.
struct Half16 {
  uint16_t bits;
};
struct BFloat16Bits {
  uint16_t bits;
};

__host__ __device__ inline float floatFromBits(uint32_t bits) {
  float f;
  memcpy(&f, &bits, 4);
  return f;
}
__host__ __device__ inline uint32_t bitsOfFloat(float f) {
  uint32_t bits;
  memcpy(&bits, &f, 4);
  return bits;
}
__host__ __device__ inline float toFloat(Half16 h) {
  uint32_t sign = (h.bits & 0x8000u) << 16;
  uint32_t exp = (h.bits >> 10) & 0x1f, mant = h.bits & 0x3ff;
  if (exp == 0x1f)
    return floatFromBits(sign | 0x7f800000u | (mant << 13));
  if (exp == 0) {
    if (mant == 0)
      return floatFromBits(sign);
    float v = static_cast<float>(mant) * 0x1p-24f; // subnormal
    return sign ? -v : v;
  }
  return floatFromBits(sign | ((exp + 112) << 23) | (mant << 13));
}
__host__ __device__ inline Half16 toHalf16(float f) {
  uint32_t x = bitsOfFloat(f);
  uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) // inf or NaN
    return {static_cast<uint16_t>(sign | 0x7c00u |
                                  (absx > 0x7f800000u ? 0x200u : 0))};
  if (absx >= 0x477ff000u) // rounds to >= 65520: inf
    return {static_cast<uint16_t>(sign | 0x7c00u)};
  if (absx < 0x38800000u) { // subnormal half
    float scaled = floatFromBits(absx) * 16777216.0f;
    return {static_cast<uint16_t>(sign | static_cast<uint32_t>(rintf(scaled)))};
  }
  uint32_t mant = absx & 0x7fffffu, exp = (absx >> 23) - 112;
  uint32_t h = (exp << 10) | (mant >> 13), rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1)))
    ++h;
  return {static_cast<uint16_t>(sign | h)};
}
__host__ __device__ inline float toFloat(BFloat16Bits b) {
  return floatFromBits(static_cast<uint32_t>(b.bits) << 16);
}
__host__ __device__ inline BFloat16Bits toBFloat16Bits(float f) {
  uint32_t x = bitsOfFloat(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) // NaN stays a quiet NaN
    return {static_cast<uint16_t>((x >> 16) | 0x40u)};
  uint32_t rounding = 0x7fffu + ((x >> 16) & 1u);
  return {static_cast<uint16_t>((x + rounding) >> 16)};
}

/// Float to integer as the CPU cast does: NaN to 0, truncated, saturated.
template <typename D> __host__ __device__ inline D saturatingTrunc(double v) {
  if (v != v)
    return D(0);
  double t = trunc(v);
  if (t <= static_cast<double>(std::numeric_limits<D>::lowest()))
    return std::numeric_limits<D>::lowest();
  if (t >= static_cast<double>(std::numeric_limits<D>::max()))
    return std::numeric_limits<D>::max();
  return static_cast<D>(t);
}

/// Stores element i of `y` (of type `dst`) from a float value (widened to
/// double), with the CPU cast's rules.
__host__ __device__ inline void storeFromDouble(void *y, int64_t i, DType dst,
                                                double v) {
  switch (dst) {
  case DType::F32:
    static_cast<float *>(y)[i] = static_cast<float>(v);
    return;
  case DType::F64:
    static_cast<double *>(y)[i] = v;
    return;
  case DType::F16:
    static_cast<Half16 *>(y)[i] = toHalf16(static_cast<float>(v));
    return;
  case DType::BF16:
    static_cast<BFloat16Bits *>(y)[i] = toBFloat16Bits(static_cast<float>(v));
    return;
  case DType::I64:
    static_cast<int64_t *>(y)[i] = saturatingTrunc<int64_t>(v);
    return;
  case DType::I32:
    static_cast<int32_t *>(y)[i] = saturatingTrunc<int32_t>(v);
    return;
  case DType::I16:
    static_cast<int16_t *>(y)[i] = saturatingTrunc<int16_t>(v);
    return;
  case DType::I8:
    static_cast<int8_t *>(y)[i] = saturatingTrunc<int8_t>(v);
    return;
  case DType::U8:
    static_cast<uint8_t *>(y)[i] = saturatingTrunc<uint8_t>(v);
    return;
  case DType::Bool:
    static_cast<uint8_t *>(y)[i] = v != 0.0 || v != v;
    return;
  }
}

/// Stores element i of `y` from an integer or bool value (widened to int64):
/// integers wrap, floats round to nearest.
__host__ __device__ inline void storeFromInt(void *y, int64_t i, DType dst,
                                             int64_t v) {
  switch (dst) {
  case DType::F32:
    static_cast<float *>(y)[i] = static_cast<float>(v);
    return;
  case DType::F64:
    static_cast<double *>(y)[i] = static_cast<double>(v);
    return;
  case DType::F16:
    static_cast<Half16 *>(y)[i] = toHalf16(static_cast<float>(v));
    return;
  case DType::BF16:
    static_cast<BFloat16Bits *>(y)[i] = toBFloat16Bits(static_cast<float>(v));
    return;
  case DType::I64:
    static_cast<int64_t *>(y)[i] = v;
    return;
  case DType::I32:
    static_cast<int32_t *>(y)[i] = static_cast<int32_t>(v);
    return;
  case DType::I16:
    static_cast<int16_t *>(y)[i] = static_cast<int16_t>(v);
    return;
  case DType::I8:
    static_cast<int8_t *>(y)[i] = static_cast<int8_t>(v);
    return;
  case DType::U8:
    static_cast<uint8_t *>(y)[i] = static_cast<uint8_t>(v);
    return;
  case DType::Bool:
    static_cast<uint8_t *>(y)[i] = v != 0;
    return;
  }
}

/// "dtype=f32, shape=[2, 3]" parts of an op's error message.
inline ShapeText &describeTensor(ShapeText &text, const char *name,
                                 const TensorRef &t) {
  return text(name,
              std::string(dtypeName(t.dtype)) + shapeString(t.shape));
}

} // namespace vlora::kernels::cuda::detail

#endif // VLORA_KERNELS_CUDA_OPSCOMMON_CUH
