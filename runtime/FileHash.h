//===- FileHash.h - content hash of weight files ----------------*- C++ -*-===//
//
// The bundle records each weight file's size and hash at compile time; the
// runtime recomputes them at load to refuse weights changed since compile.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_RUNTIME_FILEHASH_H
#define VLORA_RUNTIME_FILEHASH_H

#include "runtime/Error.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace vlora::runtime {

/// FNV-1a 64-bit over `size` bytes, continuing from `hash`.
uint64_t fnv1a64(const void *data, size_t size,
                 uint64_t hash = 0xcbf29ce484222325ull);

/// FNV-1a 64 of the whole file, read in a streaming fashion, formatted as
/// "fnv1a64:<16 lower-case hex digits>". Errors name the file.
Expected<std::string> hashFile(const std::string &path);

} // namespace vlora::runtime

#endif // VLORA_RUNTIME_FILEHASH_H
