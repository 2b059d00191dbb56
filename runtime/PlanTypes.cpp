//===- PlanTypes.cpp - checked plan tensor types --------------------------===//

#include "runtime/PlanTypes.h"

#include "plan.pb.h"

namespace vlora::runtime {
using kernels::DType;

/// The largest tensor the runtime accepts (bytes): far above any real one,
/// low enough that offset arithmetic cannot overflow.
constexpr uint64_t kMaxTensorBytes = uint64_t(1) << 48;

Expected<CheckedType> checkType(const plan::TensorType &type) {
  DType dtype;
  switch (type.dtype()) {
  case plan::F32: dtype = DType::F32; break;
  case plan::F64: dtype = DType::F64; break;
  case plan::F16: dtype = DType::F16; break;
  case plan::BF16: dtype = DType::BF16; break;
  case plan::I64: dtype = DType::I64; break;
  case plan::I32: dtype = DType::I32; break;
  case plan::I16: dtype = DType::I16; break;
  case plan::I8: dtype = DType::I8; break;
  case plan::U8: dtype = DType::U8; break;
  case plan::BOOL: dtype = DType::Bool; break;
  default:
    return Error("invalid dtype " + std::to_string(static_cast<int>(type.dtype())));
  }
  kernels::Shape shape(type.shape().begin(), type.shape().end());
  // Zero dimensions are checked like 1s, so that no partial product of the
  // shape overflows anywhere later.
  uint64_t bytes = kernels::dtypeSize(dtype), bound = bytes;
  for (int64_t d : shape) {
    if (d < 0)
      return Error("shape " + kernels::shapeString(shape) +
                   " has a negative dimension");
    uint64_t u = static_cast<uint64_t>(d);
    if (__builtin_mul_overflow(bound, u ? u : 1, &bound) || bound > kMaxTensorBytes)
      return Error("shape " + kernels::shapeString(shape) + " is too large");
    bytes *= u;
  }
  return CheckedType{dtype, std::move(shape), bytes};
}

std::string typeString(DType dtype, const kernels::Shape &shape) {
  return std::string(kernels::dtypeName(dtype)) + kernels::shapeString(shape);
}

} // namespace vlora::runtime
