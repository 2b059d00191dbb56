//===- FileHash.cpp - content hash of weight files ------------------------===//

#include "runtime/FileHash.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>
#include <vector>

namespace vlora::runtime {

uint64_t fnv1a64(const void *data, size_t size, uint64_t hash) {
  const unsigned char *p = static_cast<const unsigned char *>(data);
  for (size_t i = 0; i < size; ++i) {
    hash ^= p[i];
    hash *= 0x100000001b3ull;
  }
  return hash;
}

Expected<std::string> hashFile(const std::string &path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return Error("cannot open " + path + ": " + std::strerror(errno));
  std::vector<unsigned char> buffer(1 << 20);
  uint64_t hash = 0xcbf29ce484222325ull;
  while (true) {
    ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR)
        continue;
      int err = errno;
      ::close(fd);
      return Error("cannot read " + path + ": " + std::strerror(err));
    }
    if (n == 0)
      break;
    hash = fnv1a64(buffer.data(), static_cast<size_t>(n), hash);
  }
  ::close(fd);
  char text[32];
  std::snprintf(text, sizeof(text), "fnv1a64:%016llx",
                static_cast<unsigned long long>(hash));
  return std::string(text);
}

} // namespace vlora::runtime
