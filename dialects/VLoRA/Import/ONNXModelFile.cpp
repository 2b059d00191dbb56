//===- ONNXModelFile.cpp - reading ONNX model files and their weights -----===//
//
// Loads a `.onnx` (binary protobuf) or `.onnxtext` (ONNX text format) model,
// finds the byte offsets of initializer payloads inside the file by walking
// the protobuf wire format, and validates external data references (relative
// paths inside the model's folder, in-bounds offsets, exact lengths).
//
//===----------------------------------------------------------------------===//

#include "GraphImporter.h"

#include "mlir/IR/Location.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include "onnx/defs/parser.h"

#include <climits>
#include <cmath>
#include <cstring>
#include <fstream>

using namespace mlir;
using namespace vlora;
using namespace vlora::onnx_import;

//===----------------------------------------------------------------------===//
// Data types and HostTensor
//===----------------------------------------------------------------------===//

bool vlora::onnx_import::isFloatDataType(int32_t dtype) {
  switch (dtype) {
  case onnx::TensorProto_DataType_FLOAT:
  case onnx::TensorProto_DataType_DOUBLE:
  case onnx::TensorProto_DataType_FLOAT16:
  case onnx::TensorProto_DataType_BFLOAT16:
    return true;
  default:
    return false;
  }
}

std::string vlora::onnx_import::dataTypeName(int32_t dtype) {
  if (onnx::TensorProto_DataType_IsValid(dtype))
    return onnx::TensorProto_DataType_Name(
        static_cast<onnx::TensorProto_DataType>(dtype));
  return "data type " + std::to_string(dtype);
}

int64_t vlora::onnx_import::dataTypeSize(int32_t dtype) {
  switch (dtype) {
  case onnx::TensorProto_DataType_FLOAT:
  case onnx::TensorProto_DataType_INT32:
  case onnx::TensorProto_DataType_UINT32:
    return 4;
  case onnx::TensorProto_DataType_DOUBLE:
  case onnx::TensorProto_DataType_INT64:
  case onnx::TensorProto_DataType_UINT64:
    return 8;
  case onnx::TensorProto_DataType_FLOAT16:
  case onnx::TensorProto_DataType_BFLOAT16:
  case onnx::TensorProto_DataType_INT16:
  case onnx::TensorProto_DataType_UINT16:
    return 2;
  case onnx::TensorProto_DataType_INT8:
  case onnx::TensorProto_DataType_UINT8:
  case onnx::TensorProto_DataType_BOOL:
    return 1;
  default:
    return 0;
  }
}

Type vlora::onnx_import::elementTypeFor(MLIRContext *ctx, int32_t dtype) {
  Builder b(ctx);
  switch (dtype) {
  case onnx::TensorProto_DataType_FLOAT:
    return b.getF32Type();
  case onnx::TensorProto_DataType_DOUBLE:
    return b.getF64Type();
  case onnx::TensorProto_DataType_FLOAT16:
    return b.getF16Type();
  case onnx::TensorProto_DataType_BFLOAT16:
    return b.getBF16Type();
  case onnx::TensorProto_DataType_INT64:
    return b.getI64Type();
  case onnx::TensorProto_DataType_INT32:
    return b.getI32Type();
  case onnx::TensorProto_DataType_INT16:
    return b.getI16Type();
  case onnx::TensorProto_DataType_INT8:
    return b.getI8Type();
  case onnx::TensorProto_DataType_UINT8:
    return IntegerType::get(ctx, 8, IntegerType::Unsigned);
  case onnx::TensorProto_DataType_UINT16:
    return IntegerType::get(ctx, 16, IntegerType::Unsigned);
  case onnx::TensorProto_DataType_UINT32:
    return IntegerType::get(ctx, 32, IntegerType::Unsigned);
  case onnx::TensorProto_DataType_UINT64:
    return IntegerType::get(ctx, 64, IntegerType::Unsigned);
  case onnx::TensorProto_DataType_BOOL:
    return b.getI1Type();
  default:
    return Type();
  }
}

int32_t vlora::onnx_import::dataTypeFor(Type t) {
  if (t.isF32())
    return onnx::TensorProto_DataType_FLOAT;
  if (t.isF64())
    return onnx::TensorProto_DataType_DOUBLE;
  if (t.isF16())
    return onnx::TensorProto_DataType_FLOAT16;
  if (t.isBF16())
    return onnx::TensorProto_DataType_BFLOAT16;
  if (t.isInteger(1))
    return onnx::TensorProto_DataType_BOOL;
  if (t.isUnsignedInteger(8))
    return onnx::TensorProto_DataType_UINT8;
  if (t.isUnsignedInteger(16))
    return onnx::TensorProto_DataType_UINT16;
  if (t.isUnsignedInteger(32))
    return onnx::TensorProto_DataType_UINT32;
  if (t.isUnsignedInteger(64))
    return onnx::TensorProto_DataType_UINT64;
  if (t.isSignlessInteger(8))
    return onnx::TensorProto_DataType_INT8;
  if (t.isSignlessInteger(16))
    return onnx::TensorProto_DataType_INT16;
  if (t.isSignlessInteger(32))
    return onnx::TensorProto_DataType_INT32;
  if (t.isSignlessInteger(64))
    return onnx::TensorProto_DataType_INT64;
  return 0;
}

bool HostTensor::isFloat() const { return isFloatDataType(dtype); }

int64_t HostTensor::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

HostTensor HostTensor::zeros(int32_t dtype, ArrayRef<int64_t> shape) {
  HostTensor t;
  t.dtype = dtype;
  t.shape.assign(shape.begin(), shape.end());
  if (t.isFloat())
    t.floats.assign(t.numElements(), 0.0);
  else
    t.ints.assign(t.numElements(), 0);
  return t;
}

HostTensor HostTensor::fromInts(ArrayRef<int64_t> values) {
  HostTensor t;
  t.dtype = onnx::TensorProto_DataType_INT64;
  t.shape = {int64_t(values.size())};
  t.ints.assign(values.begin(), values.end());
  return t;
}

void HostTensor::set(int64_t i, double v) {
  if (isFloat()) {
    floats[i] = v;
    return;
  }
  if (dtype == onnx::TensorProto_DataType_BOOL)
    ints[i] = v != 0.0;
  else if (std::isnan(v))
    ints[i] = 0;
  else if (v >= 9.2233720368547758e18)
    ints[i] = INT64_MAX;
  else if (v <= -9.2233720368547758e18)
    ints[i] = INT64_MIN;
  else
    ints[i] = int64_t(v);
}

void HostTensor::copyElement(int64_t i, const HostTensor &src, int64_t j) {
  if (!isFloat() && !src.isFloat() && dtype != onnx::TensorProto_DataType_BOOL)
    ints[i] = src.ints[j];
  else
    set(i, src.getDouble(j));
}

static float halfToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16, exp = (h >> 10) & 0x1f,
           mant = h & 0x3ff, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else { // subnormal
      exp = 127 - 15 + 1;
      while (!(mant & 0x400)) {
        mant <<= 1;
        --exp;
      }
      bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000 | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

static float bf16ToFloat(uint16_t h) {
  uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

/// Decodes `count` little-endian elements of `dtype` from `bytes`.
static void decodeRaw(const char *bytes, int64_t count, HostTensor &t) {
  auto load = [&](auto tag, int64_t i) {
    decltype(tag) v;
    std::memcpy(&v, bytes + i * sizeof(v), sizeof(v));
    return v;
  };
  for (int64_t i = 0; i < count; ++i) {
    switch (t.dtype) {
    case onnx::TensorProto_DataType_FLOAT:
      t.floats[i] = load(float(), i);
      break;
    case onnx::TensorProto_DataType_DOUBLE:
      t.floats[i] = load(double(), i);
      break;
    case onnx::TensorProto_DataType_FLOAT16:
      t.floats[i] = halfToFloat(load(uint16_t(), i));
      break;
    case onnx::TensorProto_DataType_BFLOAT16:
      t.floats[i] = bf16ToFloat(load(uint16_t(), i));
      break;
    case onnx::TensorProto_DataType_INT64:
      t.ints[i] = load(int64_t(), i);
      break;
    case onnx::TensorProto_DataType_INT32:
      t.ints[i] = load(int32_t(), i);
      break;
    case onnx::TensorProto_DataType_INT16:
      t.ints[i] = load(int16_t(), i);
      break;
    case onnx::TensorProto_DataType_INT8:
      t.ints[i] = load(int8_t(), i);
      break;
    case onnx::TensorProto_DataType_UINT8:
      t.ints[i] = load(uint8_t(), i);
      break;
    case onnx::TensorProto_DataType_UINT16:
      t.ints[i] = load(uint16_t(), i);
      break;
    case onnx::TensorProto_DataType_UINT32:
      t.ints[i] = load(uint32_t(), i);
      break;
    case onnx::TensorProto_DataType_UINT64:
      t.ints[i] = int64_t(load(uint64_t(), i));
      break;
    case onnx::TensorProto_DataType_BOOL:
      t.ints[i] = load(uint8_t(), i) != 0;
      break;
    default:
      break;
    }
  }
}

//===----------------------------------------------------------------------===//
// Wire-format walk: payload offsets of initializers
//===----------------------------------------------------------------------===//

namespace {
/// A bounds-checked reader over a protobuf message's bytes.
struct WireReader {
  const uint8_t *data;
  size_t pos, end;

  bool readVarint(uint64_t &v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos >= end)
        return false;
      uint8_t byte = data[pos++];
      v |= uint64_t(byte & 0x7f) << shift;
      if (!(byte & 0x80))
        return true;
    }
    return false;
  }
  /// Reads one field header and, for length-delimited fields, the payload
  /// span; skips other wire types. Returns false on malformed input.
  bool next(uint32_t &field, size_t &payloadBegin, size_t &payloadEnd,
            bool &isLen) {
    uint64_t key;
    if (!readVarint(key))
      return false;
    field = uint32_t(key >> 3);
    isLen = false;
    switch (key & 7) {
    case 0: {
      uint64_t ignored;
      return readVarint(ignored);
    }
    case 1:
      if (end - pos < 8)
        return false;
      pos += 8;
      return true;
    case 5:
      if (end - pos < 4)
        return false;
      pos += 4;
      return true;
    case 2: {
      uint64_t len;
      if (!readVarint(len) || len > end - pos)
        return false;
      isLen = true;
      payloadBegin = pos;
      payloadEnd = pos + len;
      pos += len;
      return true;
    }
    default:
      return false;
    }
  }
};
} // namespace

/// Field numbers from onnx.proto.
enum : uint32_t {
  kModelGraph = 7,
  kGraphInitializer = 5,
  kTensorFloatData = 4,
  kTensorName = 8,
  kTensorRawData = 9,
  kTensorDoubleData = 10,
};

//===----------------------------------------------------------------------===//
// Loading
//===----------------------------------------------------------------------===//

std::unique_ptr<ONNXModelFile> ONNXModelFile::load(MLIRContext *ctx,
                                                   StringRef path) {
  Location loc = FileLineColLoc::get(ctx, path, 0, 0);
  std::unique_ptr<ONNXModelFile> file(new ONNXModelFile(loc));
  file->path_ = path.str();
  file->fileName_ = llvm::sys::path::filename(path).str();
  SmallString<256> dir(path);
  llvm::sys::path::remove_filename(dir);
  if (dir.empty())
    dir = ".";
  file->directory_ = std::string(dir);

  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                            /*RequiresNullTerminator=*/true);
  if (!buffer) {
    emitError(loc) << "cannot read ONNX model '" << path
                   << "': " << buffer.getError().message();
    return nullptr;
  }
  StringRef bytes = (*buffer)->getBuffer();
  if (bytes.empty()) {
    emitError(loc) << "ONNX model '" << path << "' is empty";
    return nullptr;
  }
  file->isText_ = path.ends_with(".onnxtext") || path.ends_with(".onnxtxt");
  if (file->isText_) {
    auto status = onnx::OnnxParser::Parse(file->model_, bytes.data());
    if (!status.IsOK()) {
      emitError(loc) << "cannot parse ONNX text model '" << path
                     << "': " << status.ErrorMessage();
      return nullptr;
    }
    return file;
  }
  if (bytes.size() > size_t(INT_MAX)) {
    emitError(loc) << "ONNX model '" << path
                   << "' is larger than protobuf's 2 GiB limit; save the "
                      "weights as external data";
    return nullptr;
  }
  if (!file->model_.ParseFromArray(bytes.data(), int(bytes.size()))) {
    emitError(loc) << "'" << path
                   << "' is not a valid ONNX model (protobuf parse failed: "
                      "truncated or not an ONNX file)";
    return nullptr;
  }
  if (!file->model_.has_graph()) {
    emitError(loc) << "ONNX model '" << path << "' has no graph";
    return nullptr;
  }

  // Find initializer payloads: ModelProto.graph -> GraphProto.initializer ->
  // TensorProto.{name, raw_data, float_data, double_data}.
  auto *data = reinterpret_cast<const uint8_t *>(bytes.data());
  WireReader model{data, 0, bytes.size()};
  uint32_t field;
  size_t begin = 0, end = 0;
  bool isLen;
  while (model.pos < model.end) {
    if (!model.next(field, begin, end, isLen))
      break; // the protobuf parser accepted it; be lenient here
    if (field != kModelGraph || !isLen)
      continue;
    WireReader graph{data, begin, end};
    size_t tBegin = 0, tEnd = 0;
    while (graph.pos < graph.end) {
      if (!graph.next(field, tBegin, tEnd, isLen))
        break;
      if (field != kGraphInitializer || !isLen)
        continue;
      WireReader tensor{data, tBegin, tEnd};
      std::string name;
      std::optional<PayloadSpan> span;
      size_t fBegin = 0, fEnd = 0;
      while (tensor.pos < tensor.end) {
        if (!tensor.next(field, fBegin, fEnd, isLen))
          break;
        if (!isLen)
          continue;
        if (field == kTensorName)
          name.assign(reinterpret_cast<const char *>(data + fBegin), fEnd - fBegin);
        else if (field == kTensorRawData || field == kTensorFloatData ||
                 field == kTensorDoubleData)
          span = PayloadSpan{int64_t(fBegin), int64_t(fEnd - fBegin)};
      }
      if (span && !name.empty())
        file->payloads_[name] = *span;
    }
  }
  return file;
}

//===----------------------------------------------------------------------===//
// Tensors
//===----------------------------------------------------------------------===//

LogicalResult ONNXModelFile::checkDims(const onnx::TensorProto &tensor,
                                       Location loc) {
  int64_t count = 1;
  for (int64_t d : tensor.dims()) {
    if (d < 0)
      return emitError(loc) << "tensor '" << tensor.name()
                            << "' has a negative dimension " << d;
    if (d != 0 && count > kMaxTensorElements / d)
      return emitError(loc) << "tensor '" << tensor.name()
                            << "' has absurd dimensions (more than 2^40 elements)";
    count *= d;
  }
  if (tensor.dims_size() > 16)
    return emitError(loc) << "tensor '" << tensor.name() << "' has rank "
                          << tensor.dims_size() << " (at most 16 supported)";
  if (dataTypeSize(tensor.data_type()) == 0)
    return emitError(loc) << "tensor '" << tensor.name()
                          << "' has unsupported data type "
                          << dataTypeName(tensor.data_type());
  return success();
}

static int64_t numElementsOf(const onnx::TensorProto &tensor) {
  int64_t count = 1;
  for (int64_t d : tensor.dims())
    count *= d;
  return count;
}

/// Number of values held in the typed (non-raw) field matching the dtype.
static int64_t typedFieldCount(const onnx::TensorProto &t) {
  switch (t.data_type()) {
  case onnx::TensorProto_DataType_FLOAT:
    return t.float_data_size();
  case onnx::TensorProto_DataType_DOUBLE:
    return t.double_data_size();
  case onnx::TensorProto_DataType_INT64:
    return t.int64_data_size();
  case onnx::TensorProto_DataType_UINT64:
  case onnx::TensorProto_DataType_UINT32:
    return t.uint64_data_size();
  default:
    return t.int32_data_size();
  }
}

FailureOr<WeightLocation>
ONNXModelFile::locateExternal(const onnx::TensorProto &tensor,
                              Location loc) const {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto &entry : tensor.external_data()) {
    const std::string &key = entry.key();
    if (key == "location") {
      location = entry.value();
    } else if (key == "offset" || key == "length") {
      int64_t v;
      if (StringRef(entry.value()).getAsInteger(10, v) || v < 0)
        return emitError(loc) << "tensor '" << tensor.name()
                              << "' has an invalid external data " << key
                              << " '" << entry.value() << "'";
      (key == "offset" ? offset : length) = v;
    }
  }
  if (location.empty())
    return emitError(loc) << "tensor '" << tensor.name()
                          << "' has external data without a location";
  if (llvm::sys::path::is_absolute(location))
    return emitError(loc) << "tensor '" << tensor.name()
                          << "' refers to external data by absolute path '"
                          << location << "'; only paths relative to the model's folder are allowed";
  for (auto it = llvm::sys::path::begin(location),
            e = llvm::sys::path::end(location);
       it != e; ++it)
    if (*it == "..")
      return emitError(loc) << "tensor '" << tensor.name()
                            << "' refers to external data '" << location
                            << "' outside the model's folder ('..')";
  SmallString<256> full(directory_);
  llvm::sys::path::append(full, location);
  SmallString<256> realDir, realFile;
  if (llvm::sys::fs::real_path(directory_, realDir))
    return emitError(loc) << "cannot resolve the model's folder '" << directory_ << "'";
  if (std::error_code ec = llvm::sys::fs::real_path(full, realFile))
    return emitError(loc) << "external data file '" << location
                          << "' of tensor '" << tensor.name()
                          << "' is missing: " << ec.message();
  StringRef realDirRef(realDir);
  if (!StringRef(realFile).starts_with(realDirRef) ||
      realFile.size() <= realDir.size() || realFile[realDir.size()] != '/')
    return emitError(loc) << "external data file '" << location
                          << "' of tensor '" << tensor.name()
                          << "' resolves outside the model's folder (symlink)";
  llvm::sys::fs::file_status status;
  if (llvm::sys::fs::status(realFile, status) ||
      status.type() != llvm::sys::fs::file_type::regular_file)
    return emitError(loc) << "external data '" << location << "' of tensor '"
                          << tensor.name() << "' is not a regular file";
  int64_t expected = numElementsOf(tensor) * dataTypeSize(tensor.data_type());
  if (length < 0)
    length = expected;
  if (length != expected)
    return emitError(loc) << "external data of tensor '" << tensor.name()
                          << "' has length " << length << " but its shape needs "
                          << expected << " bytes";
  int64_t fileSize = int64_t(status.getSize());
  if (offset > fileSize || length > fileSize - offset)
    return emitError(loc) << "external data of tensor '" << tensor.name()
                          << "' (offset " << offset << ", length " << length
                          << ") lies past the end of '" << location << "' ("
                          << fileSize << " bytes)";
  return WeightLocation{WeightSource::external, location, offset, length};
}

FailureOr<std::optional<WeightLocation>>
ONNXModelFile::locate(const onnx::TensorProto &tensor, Location loc) const {
  if (failed(checkDims(tensor, loc)))
    return failure();
  if (tensor.data_location() == onnx::TensorProto_DataLocation_EXTERNAL) {
    auto external = locateExternal(tensor, loc);
    if (failed(external))
      return failure();
    return std::optional<WeightLocation>(*external);
  }
  int64_t count = numElementsOf(tensor);
  int64_t expected = count * dataTypeSize(tensor.data_type());
  if (tensor.has_raw_data()) {
    if (int64_t(tensor.raw_data().size()) != expected)
      return emitError(loc) << "tensor '" << tensor.name() << "' holds "
                            << tensor.raw_data().size()
                            << " bytes of data but its dims need " << expected;
  } else if (typedFieldCount(tensor) != count) {
    return emitError(loc) << "tensor '" << tensor.name() << "' holds "
                          << typedFieldCount(tensor)
                          << " values but its dims need " << count;
  }
  auto it = payloads_.find(tensor.name());
  bool packedRaw = tensor.has_raw_data() ||
                   tensor.data_type() == onnx::TensorProto_DataType_FLOAT ||
                   tensor.data_type() == onnx::TensorProto_DataType_DOUBLE;
  if (isText_ || it == payloads_.end() || !packedRaw ||
      it->second.length != expected)
    return std::optional<WeightLocation>();
  return std::optional<WeightLocation>(WeightLocation{
      WeightSource::initializer, fileName_, it->second.offset, expected});
}

FailureOr<HostTensor> ONNXModelFile::read(const onnx::TensorProto &tensor,
                                          Location loc) const {
  auto where = locate(tensor, loc);
  if (failed(where))
    return failure();
  HostTensor t = HostTensor::zeros(tensor.data_type(),
                                   SmallVector<int64_t>(tensor.dims().begin(),
                                                        tensor.dims().end()));
  int64_t count = t.numElements();
  if (tensor.data_location() == onnx::TensorProto_DataLocation_EXTERNAL) {
    const WeightLocation &w = **where;
    SmallString<256> full(directory_);
    llvm::sys::path::append(full, w.file);
    std::ifstream in(std::string(full), std::ios::binary);
    std::vector<char> bytes(w.length);
    in.seekg(w.offset);
    if (!in.read(bytes.data(), w.length))
      return emitError(loc) << "cannot read external data of tensor '"
                            << tensor.name() << "' from '" << w.file << "'";
    decodeRaw(bytes.data(), count, t);
    return t;
  }
  if (tensor.has_raw_data()) {
    decodeRaw(tensor.raw_data().data(), count, t);
    return t;
  }
  for (int64_t i = 0; i < count; ++i) {
    switch (tensor.data_type()) {
    case onnx::TensorProto_DataType_FLOAT:
      t.floats[i] = tensor.float_data(i);
      break;
    case onnx::TensorProto_DataType_DOUBLE:
      t.floats[i] = tensor.double_data(i);
      break;
    case onnx::TensorProto_DataType_INT64:
      t.ints[i] = tensor.int64_data(i);
      break;
    case onnx::TensorProto_DataType_UINT32:
    case onnx::TensorProto_DataType_UINT64:
      t.ints[i] = int64_t(tensor.uint64_data(i));
      break;
    case onnx::TensorProto_DataType_FLOAT16:
      t.floats[i] = halfToFloat(uint16_t(tensor.int32_data(i)));
      break;
    case onnx::TensorProto_DataType_BFLOAT16:
      t.floats[i] = bf16ToFloat(uint16_t(tensor.int32_data(i)));
      break;
    case onnx::TensorProto_DataType_BOOL:
      t.ints[i] = tensor.int32_data(i) != 0;
      break;
    default:
      t.ints[i] = tensor.int32_data(i);
      break;
    }
  }
  return t;
}
