//===- GraphImporter.h - internals of the ONNX importer ---------*- C++ -*-===//
//
// Shared by the graph walker (ONNXImporter.cpp), the model file reader
// (ONNXModelFile.cpp) and the op table (ONNXOpTable.cpp). Not installed.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_IMPORT_GRAPHIMPORTER_H
#define VLORA_IMPORT_GRAPHIMPORTER_H

#include "VLoRA/IR/VLoRADialect.h"
#include "VLoRA/IR/VLoRAOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"
#include "llvm/ADT/StringMap.h"

#include "onnx/onnx_pb.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace vlora::onnx_import {

/// Largest number of elements a value may have to be evaluated at import
/// time (shape computations, small constants).
constexpr int64_t kMaxFoldElements = 1 << 16;
/// Largest initializer read into host memory for folding; larger ones (the
/// weights) are only ever referenced.
constexpr int64_t kMaxHostInitializerElements = 4096;
/// Largest number of elements any tensor of an imported model may have.
constexpr int64_t kMaxTensorElements = int64_t(1) << 40;

/// A small tensor known at import time. Floats are held as double, integers
/// and booleans as int64.
struct HostTensor {
  int32_t dtype = onnx::TensorProto_DataType_INT64; ///< ONNX data type
  llvm::SmallVector<int64_t> shape;
  std::vector<double> floats;
  std::vector<int64_t> ints;

  bool isFloat() const;
  int64_t numElements() const;
  double getDouble(int64_t i) const {
    return isFloat() ? floats[i] : double(ints[i]);
  }
  int64_t getInt(int64_t i) const {
    return isFloat() ? int64_t(floats[i]) : ints[i];
  }
  /// A tensor of `dtype` and `shape` with zero-initialised storage.
  static HostTensor zeros(int32_t dtype, llvm::ArrayRef<int64_t> shape);
  /// A 1-D int64 tensor.
  static HostTensor fromInts(llvm::ArrayRef<int64_t> values);
  void set(int64_t i, double v);
  /// Copies element `j` of `src` into element `i`, exactly for integers.
  void copyElement(int64_t i, const HostTensor &src, int64_t j);
};

bool isFloatDataType(int32_t dtype);
/// Name of an ONNX data type for messages ("FLOAT", "INT64", ...).
std::string dataTypeName(int32_t dtype);
/// Bytes per element of an ONNX data type; 0 when unsupported.
int64_t dataTypeSize(int32_t dtype);
/// MLIR element type of an ONNX data type; null when unsupported.
mlir::Type elementTypeFor(mlir::MLIRContext *ctx, int32_t dtype);
/// ONNX data type of an MLIR element type; 0 when it has none.
int32_t dataTypeFor(mlir::Type elementType);

/// Where the bytes of an initializer live, validated.
struct WeightLocation {
  WeightSource source;
  std::string file; ///< relative to the model's folder
  int64_t offset;
  int64_t length;
};

/// A loaded ONNX model file: the parsed protobuf plus what the parser does
/// not keep (byte offsets of initializer payloads inside the file).
class ONNXModelFile {
public:
  /// Loads and parses `path`; reports problems at a location naming the file.
  static std::unique_ptr<ONNXModelFile> load(mlir::MLIRContext *ctx,
                                             llvm::StringRef path);

  const onnx::ModelProto &model() const { return model_; }
  const std::string &path() const { return path_; }
  const std::string &fileName() const { return fileName_; }
  mlir::Location fileLoc() const { return fileLoc_; }

  /// Validates the shape and data of `tensor` (an initializer or constant
  /// attribute) and says where its bytes are. Returns std::nullopt with no
  /// diagnostic when the bytes are inline but not addressable in the file
  /// (ONNX text format, varint-encoded fields); failure on a bad tensor.
  mlir::FailureOr<std::optional<WeightLocation>>
  locate(const onnx::TensorProto &tensor, mlir::Location loc) const;

  /// Reads `tensor`'s values (inline or external) into a HostTensor.
  mlir::FailureOr<HostTensor> read(const onnx::TensorProto &tensor,
                                   mlir::Location loc) const;

  /// Checks dims of `tensor`: non-negative, not absurdly large.
  static mlir::LogicalResult checkDims(const onnx::TensorProto &tensor,
                                       mlir::Location loc);

private:
  struct PayloadSpan {
    int64_t offset;
    int64_t length;
  };
  mlir::FailureOr<WeightLocation>
  locateExternal(const onnx::TensorProto &tensor, mlir::Location loc) const;

  onnx::ModelProto model_;
  std::string path_, fileName_, directory_;
  bool isText_ = false;
  mlir::Location fileLoc_;
  /// Offsets of raw_data / packed float_data / packed double_data payloads
  /// of graph initializers, by initializer name.
  llvm::StringMap<PayloadSpan> payloads_;

  explicit ONNXModelFile(mlir::Location loc) : fileLoc_(loc) {}
};

class GraphImporter;

/// A value whose shape depends on data, tracked symbolically through the form
/// in which exporters write PyTorch's `masked_scatter` (how VLMs merge image
/// features into text embeddings):
///   idx = Transpose(NonZero(mask)); n = Gather(Shape(idx), 0);
///   upd = Slice(Reshape(src, [-1]), 0, Unsqueeze(n)); ScatterND(data, idx, upd)
/// which becomes one `vlora.masked_scatter(data, mask, src)`.
struct MaskSymbol {
  enum Kind { Indices, IndexShape, Count, Prefix } kind;
  mlir::Value mask;        ///< i1 mask whose true positions are enumerated
  bool transposed = false; ///< Indices/IndexShape: [N, rank] not [rank, N]
  int64_t countRank = 0;   ///< Count: 0 for a scalar, 1 for shape [1]
  mlir::Value source;      ///< Prefix: the 1-D tensor whose first N are taken
  std::string origin;      ///< the NonZero node, for messages
};

/// What an op handler sees of one ONNX node.
class NodeContext {
public:
  NodeContext(GraphImporter &importer, const onnx::NodeProto &node,
              mlir::Location loc, int64_t opset)
      : importer(importer), node(node), loc(loc), opset(opset) {}

  GraphImporter &importer;
  const onnx::NodeProto &node;
  mlir::Location loc;
  int64_t opset;

  mlir::MLIRContext *getContext() const { return loc.getContext(); }
  mlir::OpBuilder &builder();

  /// Diagnostics at the node.
  mlir::InFlightDiagnostic error() const;

  int numInputs() const { return node.input_size(); }
  bool hasInput(int i) const {
    return i < node.input_size() && !node.input(i).empty();
  }
  /// The input as an IR value (materialising a constant when needed).
  mlir::FailureOr<mlir::Value> input(int i);
  /// The input's static tensor type.
  mlir::RankedTensorType inputType(int i);
  /// The input's value when known at import time, else null.
  const HostTensor *constInput(int i);
  /// Like constInput, but an error naming the input when it is not constant.
  mlir::FailureOr<const HostTensor *> requireConstInput(int i,
                                                        llvm::StringRef what);
  /// Whether every present input is known at import time.
  bool allInputsConst();

  /// The input's symbolic data-dependent value, or null.
  const MaskSymbol *symbolicInput(int i);

  void setOutput(int i, mlir::Value value);
  void setOutput(int i, HostTensor value);
  void setOutput(int i, MaskSymbol value);
  bool outputUsed(int i) const;

  // Attributes.
  const onnx::AttributeProto *attr(llvm::StringRef name) const;
  int64_t attrInt(llvm::StringRef name, int64_t defaultValue) const;
  float attrFloat(llvm::StringRef name, float defaultValue) const;
  std::string attrString(llvm::StringRef name, llvm::StringRef defaultValue) const;
  std::optional<llvm::SmallVector<int64_t>> attrInts(llvm::StringRef name) const;

  /// Builds a vlora op, inferring its result types; on an inference error
  /// the diagnostic is reported at the node and failure returned.
  template <typename OpTy>
  mlir::FailureOr<mlir::Operation *>
  createOp(mlir::ValueRange operands,
           llvm::ArrayRef<mlir::NamedAttribute> attrs = {}) {
    llvm::SmallVector<mlir::Type> types;
    auto dict = mlir::DictionaryAttr::get(getContext(), attrs);
    if (mlir::failed(OpTy::inferReturnTypes(getContext(), loc, operands, dict,
                                            mlir::OpaqueProperties(nullptr),
                                            {}, types)))
      return mlir::failure();
    mlir::OperationState state(loc, OpTy::getOperationName());
    state.addOperands(operands);
    state.addAttributes(attrs);
    state.addTypes(types);
    return builder().create(state);
  }
  template <typename OpTy>
  mlir::FailureOr<mlir::Value>
  create(mlir::ValueRange operands,
         llvm::ArrayRef<mlir::NamedAttribute> attrs = {}) {
    auto op = createOp<OpTy>(operands, attrs);
    if (mlir::failed(op))
      return mlir::failure();
    return (*op)->getResult(0);
  }

  mlir::NamedAttribute namedI64(llvm::StringRef name, int64_t value);
  mlir::NamedAttribute namedI64Array(llvm::StringRef name,
                                     llvm::ArrayRef<int64_t> values);
  mlir::NamedAttribute namedF64(llvm::StringRef name, double value);
  mlir::NamedAttribute namedUnit(llvm::StringRef name);
  mlir::NamedAttribute namedType(llvm::StringRef name, mlir::Type type);

  /// Reads a tensor held by an attribute of the node.
  mlir::FailureOr<HostTensor> readTensor(const onnx::TensorProto &tensor);

  /// A `vlora.constant` holding `value`.
  mlir::Value materialize(const HostTensor &value);
  /// A scalar constant of `elementType` broadcastable against anything.
  mlir::Value scalar(mlir::Type elementType, double value);
};

/// An op handler. Handlers fold when their inputs are constant and the op is
/// a shape computation, and otherwise emit vlora ops.
using OpHandler = mlir::LogicalResult (*)(NodeContext &);

struct OpTableEntry {
  const char *opType;
  int sinceVersion; ///< first opset this entry covers
  int untilVersion; ///< last opset this entry covers
  OpHandler handler;
};

/// The op table: one entry per ONNX op and opset range (ONNXOpTable.cpp).
llvm::ArrayRef<OpTableEntry> getOpTable();
/// The entry for (opType, opset) of the default domain, or null.
const OpTableEntry *lookupOp(llvm::StringRef opType, int64_t opset);

/// Oldest and newest default-domain opset the importer accepts.
constexpr int64_t kMinOpset = 7;
constexpr int64_t kMaxOpset = 23;

} // namespace vlora::onnx_import

#endif // VLORA_IMPORT_GRAPHIMPORTER_H
