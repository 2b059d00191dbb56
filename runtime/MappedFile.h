//===- MappedFile.h - read-only memory-mapped files -------------*- C++ -*-===//

#ifndef VLORA_RUNTIME_MAPPEDFILE_H
#define VLORA_RUNTIME_MAPPEDFILE_H

#include "runtime/Error.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace vlora::runtime {

/// A whole file mapped read-only (an empty file maps to no bytes). Movable,
/// not copyable; unmaps on destruction.
class MappedFile {
public:
  /// Errors name the file.
  static Expected<MappedFile> open(const std::string &path);

  MappedFile(MappedFile &&other) noexcept;
  MappedFile &operator=(MappedFile &&other) noexcept;
  MappedFile(const MappedFile &) = delete;
  MappedFile &operator=(const MappedFile &) = delete;
  ~MappedFile();

  const uint8_t *data() const { return data_; }
  size_t size() const { return size_; }
  const std::string &path() const { return path_; }

private:
  MappedFile(std::string path, const uint8_t *data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  void reset();

  std::string path_;
  const uint8_t *data_ = nullptr;
  size_t size_ = 0;
};

} // namespace vlora::runtime

#endif // VLORA_RUNTIME_MAPPEDFILE_H
