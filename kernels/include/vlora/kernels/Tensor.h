//===- Tensor.h - the kernels' view of a tensor -----------------*- C++ -*-===//
//
// Element types and a non-owning, row-major tensor view: all a kernel needs,
// without any runtime or plan types, so the kernels can be called and tested
// on their own.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_KERNELS_TENSOR_H
#define VLORA_KERNELS_TENSOR_H

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace vlora::kernels {

/// Element types. `Bool` is one byte per element, 0 or 1.
enum class DType : uint8_t { F32, F64, F16, BF16, I64, I32, I16, I8, U8, Bool };

/// Bytes per element.
size_t dtypeSize(DType dtype);
/// The MLIR spelling used by the plan's `cast` attribute: "f32", ..., "i1".
const char *dtypeName(DType dtype);
/// Parses dtypeName's spelling.
std::optional<DType> parseDTypeName(std::string_view name);
bool isFloat(DType dtype);   // f32 f64 f16 bf16
bool isInteger(DType dtype); // i64 i32 i16 i8 u8 (not bool)

using Shape = std::vector<int64_t>;

/// Number of elements of `shape` (1 for a scalar).
int64_t numElements(const Shape &shape);
/// "[2, 3, 4]".
std::string shapeString(const Shape &shape);

/// A row-major tensor that some other object owns. Inputs are passed as
/// `const TensorRef &` and only read.
struct TensorRef {
  void *data = nullptr;
  DType dtype = DType::F32;
  Shape shape;

  int64_t numel() const { return numElements(shape); }
  size_t bytes() const { return static_cast<size_t>(numel()) * dtypeSize(dtype); }
  int64_t rank() const { return static_cast<int64_t>(shape.size()); }
  template <typename T> T *as() const { return static_cast<T *>(data); }
};

/// Thrown by a kernel for a data-dependent failure (an index out of range,
/// integer division by zero). Shapes and types are validated before a kernel
/// runs; the runtime catches this and names the step.
class KernelError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

} // namespace vlora::kernels

#endif // VLORA_KERNELS_TENSOR_H
