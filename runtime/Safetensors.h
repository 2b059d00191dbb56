//===- Safetensors.h - the safetensors file format --------------*- C++ -*-===//
//
// Reader and writer of Hugging Face's safetensors format: an 8-byte
// little-endian header length N, N bytes of JSON
//   {"__metadata__": {"k": "v"}, "name": {"dtype": "F32", "shape": [2, 3],
//    "data_offsets": [begin, end]}, ...}
// then the data buffer. The reader checks every field and offset against the
// file; the writer orders tensors as the safetensors library does and writes
// atomically.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_RUNTIME_SAFETENSORS_H
#define VLORA_RUNTIME_SAFETENSORS_H

#include "runtime/Error.h"
#include "runtime/MappedFile.h"
#include "vlora/kernels/Tensor.h"

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vlora::runtime {

/// "F32", "BF16", "I64", "BOOL", ...
const char *safetensorsDTypeName(kernels::DType dtype);
std::optional<kernels::DType> parseSafetensorsDType(std::string_view name);

/// One tensor of a file. `data` points into the mapping and may be unaligned
/// for the element type: copy it out with memcpy.
struct SafetensorsTensor {
  std::string name;
  kernels::DType dtype;
  kernels::Shape shape;
  const uint8_t *data;
  size_t bytes;
};

/// A validated, memory-mapped safetensors file.
class SafetensorsFile {
public:
  /// Maps and validates `path`; errors name the file and the tensor/field.
  static Expected<SafetensorsFile> open(const std::string &path);

  /// Tensors sorted by name.
  const std::vector<SafetensorsTensor> &tensors() const { return tensors_; }
  /// nullptr when absent.
  const SafetensorsTensor *find(std::string_view name) const;
  const std::map<std::string, std::string> &metadata() const { return metadata_; }
  const std::string &path() const { return file_.path(); }

private:
  explicit SafetensorsFile(MappedFile file) : file_(std::move(file)) {}

  MappedFile file_;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

/// A tensor to write; `data` holds numElements(shape) * dtypeSize(dtype)
/// bytes.
struct SafetensorsEntry {
  std::string name;
  kernels::DType dtype;
  kernels::Shape shape;
  const void *data;
};

/// Writes a safetensors file atomically (temporary file in the same folder,
/// fsync, rename): an existing file is replaced whole or left untouched.
/// Tensors are laid out as the safetensors library does (by descending
/// dtype, then name); the header is padded with spaces to 8 bytes.
Status writeSafetensors(const std::string &path,
                        const std::vector<SafetensorsEntry> &tensors,
                        const std::map<std::string, std::string> &metadata = {});

/// The safetensors library's cap on the header size.
constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

} // namespace vlora::runtime

#endif // VLORA_RUNTIME_SAFETENSORS_H
