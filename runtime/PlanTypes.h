//===- PlanTypes.h - checked plan tensor types ------------------*- C++ -*-===//
//
// Internal to the plan loader: turns a plan TensorType into a kernel dtype
// and shape, refusing unknown dtypes, negative dimensions and sizes that
// overflow.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_RUNTIME_PLANTYPES_H
#define VLORA_RUNTIME_PLANTYPES_H

#include "runtime/Error.h"
#include "vlora/kernels/Tensor.h"

namespace vlora::plan {
class TensorType;
} // namespace vlora::plan

namespace vlora::runtime {

struct CheckedType {
  kernels::DType dtype;
  kernels::Shape shape;
  uint64_t bytes;
};

/// Errors say what is wrong (without naming the value).
Expected<CheckedType> checkType(const plan::TensorType &type);

/// "f32[2, 3]".
std::string typeString(kernels::DType dtype, const kernels::Shape &shape);

} // namespace vlora::runtime

#endif // VLORA_RUNTIME_PLANTYPES_H
