//===- Safetensors.cpp - the safetensors file format ----------------------===//

#include "runtime/Safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace vlora::runtime {
using kernels::DType;

namespace {
struct DTypeName {
  DType dtype;
  const char *name;
  int rank; // the safetensors library's Dtype order
};
constexpr DTypeName kDTypes[] = {
    {DType::Bool, "BOOL", 0}, {DType::U8, "U8", 1},     {DType::I8, "I8", 2},
    {DType::I16, "I16", 3},   {DType::F16, "F16", 4},   {DType::BF16, "BF16", 5},
    {DType::I32, "I32", 6},   {DType::F32, "F32", 7},   {DType::F64, "F64", 8},
    {DType::I64, "I64", 9}};

int dtypeRank(DType d) {
  for (const DTypeName &e : kDTypes)
    if (e.dtype == d)
      return e.rank;
  return 0;
}
} // namespace

const char *safetensorsDTypeName(DType dtype) {
  for (const DTypeName &e : kDTypes)
    if (e.dtype == dtype)
      return e.name;
  return "?";
}

std::optional<DType> parseSafetensorsDType(std::string_view name) {
  for (const DTypeName &e : kDTypes)
    if (name == e.name)
      return e.dtype;
  return std::nullopt;
}

const SafetensorsTensor *SafetensorsFile::find(std::string_view name) const {
  auto it = std::lower_bound(
      tensors_.begin(), tensors_.end(), name,
      [](const SafetensorsTensor &t, std::string_view n) { return t.name < n; });
  return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

Expected<SafetensorsFile> SafetensorsFile::open(const std::string &path) {
  Expected<MappedFile> mapped = MappedFile::open(path);
  if (!mapped)
    return mapped.error();
  SafetensorsFile file(std::move(*mapped));
  auto fail = [&](const std::string &what) {
    return Error(path + ": " + what);
  };
  const uint8_t *base = file.file_.data();
  uint64_t size = file.file_.size();
  if (size < 8)
    return fail("truncated safetensors file: " + std::to_string(size) +
                " bytes, less than the 8-byte header length");
  uint64_t headerLen = 0;
  for (int i = 7; i >= 0; --i)
    headerLen = (headerLen << 8) | base[i];
  if (headerLen > kMaxSafetensorsHeaderBytes)
    return fail("safetensors header length " + std::to_string(headerLen) +
                " exceeds the " + std::to_string(kMaxSafetensorsHeaderBytes) +
                "-byte limit");
  if (headerLen > size - 8)
    return fail("truncated safetensors header: it declares " +
                std::to_string(headerLen) + " bytes but the file has only " +
                std::to_string(size - 8) + " after the length");
  const char *text = reinterpret_cast<const char *>(base + 8);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text, text + headerLen);
  } catch (const nlohmann::json::exception &e) {
    return fail(std::string("invalid safetensors header JSON: ") + e.what());
  }
  if (!header.is_object())
    return fail("safetensors header is not a JSON object");
  const uint8_t *dataStart = base + 8 + headerLen;
  uint64_t dataSize = size - 8 - headerLen;

  struct Range {
    uint64_t begin, end;
    size_t tensor;
  };
  std::vector<Range> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string &name = it.key();
    const nlohmann::json &entry = it.value();
    if (name == "__metadata__") {
      if (!entry.is_object())
        return fail("__metadata__ is not an object of strings");
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        if (!m.value().is_string())
          return fail("__metadata__ value of '" + m.key() + "' is not a string");
        file.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    auto bad = [&](const std::string &what) {
      return fail("tensor '" + name + "': " + what);
    };
    if (!entry.is_object())
      return bad("entry is not an object");
    auto dtypeIt = entry.find("dtype");
    auto shapeIt = entry.find("shape");
    auto offsetsIt = entry.find("data_offsets");
    if (dtypeIt == entry.end() || !dtypeIt->is_string())
      return bad("missing or non-string \"dtype\"");
    std::optional<DType> dtype = parseSafetensorsDType(dtypeIt->get<std::string>());
    if (!dtype)
      return bad("unsupported dtype \"" + dtypeIt->get<std::string>() +
                 "\" (supported: F32 F16 BF16 F64 I64 I32 I16 I8 U8 BOOL)");
    if (shapeIt == entry.end() || !shapeIt->is_array())
      return bad("missing or non-array \"shape\"");
    kernels::Shape shape;
    uint64_t elements = 1;
    for (const nlohmann::json &d : *shapeIt) {
      if (!d.is_number_unsigned())
        return bad("shape " + shapeIt->dump() + " has an entry that is not a non-negative integer");
      uint64_t v = d.get<uint64_t>();
      if (v > static_cast<uint64_t>(INT64_MAX) ||
          __builtin_mul_overflow(elements, v, &elements))
        return bad("shape " + shapeIt->dump() + " overflows");
      shape.push_back(static_cast<int64_t>(v));
    }
    uint64_t bytes;
    if (__builtin_mul_overflow(elements, kernels::dtypeSize(*dtype), &bytes))
      return bad("shape " + shapeIt->dump() + " overflows");
    if (offsetsIt == entry.end() || !offsetsIt->is_array() ||
        offsetsIt->size() != 2 || !(*offsetsIt)[0].is_number_unsigned() ||
        !(*offsetsIt)[1].is_number_unsigned())
      return bad("\"data_offsets\" must be two non-negative integers");
    uint64_t begin = (*offsetsIt)[0].get<uint64_t>();
    uint64_t end = (*offsetsIt)[1].get<uint64_t>();
    if (begin > end)
      return bad("data_offsets [" + std::to_string(begin) + ", " +
                 std::to_string(end) + "] end before they begin");
    if (end > dataSize)
      return bad("data_offsets [" + std::to_string(begin) + ", " +
                 std::to_string(end) + "] go past the end of the data (" +
                 std::to_string(dataSize) + " bytes)");
    if (end - begin != bytes)
      return bad("data_offsets [" + std::to_string(begin) + ", " +
                 std::to_string(end) + "] hold " + std::to_string(end - begin) +
                 " bytes but dtype " + safetensorsDTypeName(*dtype) +
                 " and shape " + shapeIt->dump() + " need " +
                 std::to_string(bytes));
    ranges.push_back({begin, end, file.tensors_.size()});
    file.tensors_.push_back(
        {name, *dtype, std::move(shape), dataStart + begin, static_cast<size_t>(bytes)});
  }
  std::sort(ranges.begin(), ranges.end(), [](const Range &a, const Range &b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 1; i < ranges.size(); ++i) {
    const Range &prev = ranges[i - 1], &cur = ranges[i];
    if (cur.begin < prev.end && cur.end > cur.begin && prev.end > prev.begin)
      return fail("tensors '" + file.tensors_[prev.tensor].name + "' and '" +
                  file.tensors_[cur.tensor].name + "' overlap in the data buffer");
  }
  std::sort(file.tensors_.begin(), file.tensors_.end(),
            [](const SafetensorsTensor &a, const SafetensorsTensor &b) {
              return a.name < b.name;
            });
  return file;
}

//===----------------------------------------------------------------------===//
// Writer
//===----------------------------------------------------------------------===//

namespace {
std::string errnoText() { return std::strerror(errno); }

bool writeAll(int fd, const void *data, size_t size) {
  const char *p = static_cast<const char *>(data);
  while (size) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return false;
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

std::string folderOf(const std::string &path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos)
    return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}
} // namespace

Status writeSafetensors(const std::string &path,
                        const std::vector<SafetensorsEntry> &tensors,
                        const std::map<std::string, std::string> &metadata) {
  std::vector<const SafetensorsEntry *> order;
  for (const SafetensorsEntry &t : tensors) {
    if (t.name == "__metadata__")
      return Error(path + ": a tensor may not be called __metadata__");
    order.push_back(&t);
  }
  std::sort(order.begin(), order.end(),
            [](const SafetensorsEntry *a, const SafetensorsEntry *b) {
              int ra = dtypeRank(a->dtype), rb = dtypeRank(b->dtype);
              return ra != rb ? ra > rb : a->name < b->name;
            });
  for (size_t i = 1; i < order.size(); ++i)
    if (order[i]->name == order[i - 1]->name)
      return Error(path + ": tensor '" + order[i]->name + "' is given twice");

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto &[k, v] : metadata)
      meta[k] = v;
    header["__metadata__"] = std::move(meta);
  }
  uint64_t offset = 0;
  for (const SafetensorsEntry *t : order) {
    for (int64_t d : t->shape)
      if (d < 0)
        return Error(path + ": tensor '" + t->name + "' has a negative dimension");
    uint64_t bytes = static_cast<uint64_t>(kernels::numElements(t->shape)) *
                     kernels::dtypeSize(t->dtype);
    nlohmann::ordered_json entry = nlohmann::ordered_json::object();
    entry["dtype"] = safetensorsDTypeName(t->dtype);
    entry["shape"] = t->shape;
    entry["data_offsets"] = {offset, offset + bytes};
    header[t->name] = std::move(entry);
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t length[8];
  for (int i = 0; i < 8; ++i)
    length[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));

  std::string folder = folderOf(path);
  std::string temp = path + ".tmp.XXXXXX";
  std::vector<char> tempName(temp.begin(), temp.end());
  tempName.push_back('\0');
  int fd = ::mkstemp(tempName.data());
  if (fd < 0)
    return Error("cannot create a temporary file next to " + path + ": " + errnoText());
  auto abandon = [&](const std::string &what) {
    std::string message = "cannot write " + path + ": " + what;
    ::close(fd);
    ::unlink(tempName.data());
    return Error(message);
  };
  if (!writeAll(fd, length, 8) || !writeAll(fd, text.data(), text.size()))
    return abandon(errnoText());
  for (const SafetensorsEntry *t : order) {
    size_t bytes = static_cast<size_t>(kernels::numElements(t->shape)) *
                   kernels::dtypeSize(t->dtype);
    if (bytes && !writeAll(fd, t->data, bytes))
      return abandon(errnoText());
  }
  if (::fchmod(fd, 0644) != 0 || ::fsync(fd) != 0)
    return abandon(errnoText());
  if (::close(fd) != 0) {
    std::string message = "cannot write " + path + ": " + errnoText();
    ::unlink(tempName.data());
    return Error(message);
  }
  if (::rename(tempName.data(), path.c_str()) != 0) {
    std::string message = "cannot replace " + path + ": " + errnoText();
    ::unlink(tempName.data());
    return Error(message);
  }
  int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return Status::success();
}

} // namespace vlora::runtime
