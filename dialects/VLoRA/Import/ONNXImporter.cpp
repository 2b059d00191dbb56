//===- ONNXImporter.cpp - ONNX graph to vlora dialect ---------------------===//
//
// Walks an ONNX graph and emits one `func.func @main` of vlora ops:
// validates the graph (opset, unsupported ops, undefined values, duplicate
// producers, cycles, input shapes), orders the nodes topologically and runs
// each node's handler from the op table. Values known at import time (shape
// computations, small constants) are carried as HostTensors and only become
// `vlora.constant` ops when an emitted op consumes them.
//
//===----------------------------------------------------------------------===//

#include "VLoRA/Import/ONNXImporter.h"
#include "GraphImporter.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/StringSet.h"

#include <deque>
#include <map>

using namespace mlir;
using namespace vlora;
using namespace vlora::onnx_import;

//===----------------------------------------------------------------------===//
// Options
//===----------------------------------------------------------------------===//

std::string vlora::parseInputShapeOption(StringRef text,
                                         ONNXImportOptions &options) {
  auto [name, dims] = text.split('=');
  if (name.empty() || dims.empty())
    return "malformed --input-shape '" + text.str() +
           "': expected NAME=D0xD1x... (e.g. pixel_values=1x3x224x224)";
  SmallVector<int64_t> shape;
  SmallVector<StringRef> parts;
  dims.split(parts, 'x');
  for (StringRef part : parts) {
    int64_t d;
    if (part.getAsInteger(10, d) || d <= 0 || d > (int64_t(1) << 32))
      return "malformed --input-shape '" + text.str() + "': dimension '" +
             part.str() + "' is not a positive integer";
    shape.push_back(d);
  }
  options.inputShapes[name] = shape;
  return "";
}

//===----------------------------------------------------------------------===//
// GraphImporter
//===----------------------------------------------------------------------===//

namespace vlora::onnx_import {

class GraphImporter {
public:
  GraphImporter(MLIRContext *ctx, const ONNXModelFile &file,
                const ONNXImportOptions &options)
      : ctx(ctx), file(file), graph(file.model().graph()), options(options),
        builder(ctx) {}

  OwningOpRef<ModuleOp> run();

  FailureOr<Value> getValue(StringRef name, Location useLoc);
  const HostTensor *getConst(StringRef name, Location useLoc);
  RankedTensorType getType(StringRef name);
  bool isUsed(StringRef name) const { return used.contains(name); }
  void define(StringRef name, Value value) { values[name].value = value; }
  void define(StringRef name, HostTensor value) {
    values[name].constant = std::move(value);
  }
  void define(StringRef name, MaskSymbol value) {
    symbols[name] = std::move(value);
  }
  const MaskSymbol *getSymbol(StringRef name) const {
    auto it = symbols.find(name);
    return it == symbols.end() ? nullptr : &it->second;
  }
  Value materialize(const HostTensor &value, Location loc);

  MLIRContext *ctx;
  const ONNXModelFile &file;
  const onnx::GraphProto &graph;
  const ONNXImportOptions &options;
  OpBuilder builder;

private:
  struct ValueEntry {
    Value value;
    std::optional<HostTensor> constant;
    const onnx::TensorProto *initializer = nullptr;
    std::optional<WeightLocation> weight; ///< addressable bytes of the initializer
    bool triedHost = false;
  };

  LogicalResult checkOpset();
  LogicalResult indexInitializers();
  FailureOr<SmallVector<Type>> importInputs();
  LogicalResult checkSupportedOps();
  FailureOr<std::vector<int>> orderNodes();
  LogicalResult checkRuntimeTypes(func::FuncOp func);
  Location nodeLoc(int index) const;

  int64_t opset = 0;
  llvm::StringMap<ValueEntry> values;
  llvm::StringSet<> used;
  llvm::StringMap<MaskSymbol> symbols;
  std::vector<std::string> argNames;
};

} // namespace vlora::onnx_import

Location GraphImporter::nodeLoc(int index) const {
  const onnx::NodeProto &node = graph.node(index);
  std::string name = node.name().empty()
                         ? node.op_type() + "#" + std::to_string(index)
                         : node.name();
  return NameLoc::get(StringAttr::get(ctx, name));
}

/// What a non-tensor ONNX type is, for messages.
static std::string valueKind(const onnx::TypeProto &type) {
  if (type.has_sequence_type())
    return "a sequence";
  if (type.has_optional_type())
    return "an optional";
  if (type.has_map_type())
    return "a map";
  if (type.has_sparse_tensor_type())
    return "a sparse tensor";
  return "not a tensor";
}

LogicalResult GraphImporter::checkOpset() {
  bool found = false;
  for (const auto &entry : file.model().opset_import()) {
    if (entry.domain().empty() || entry.domain() == "ai.onnx") {
      opset = entry.version();
      found = true;
    }
  }
  // A graph of other domains' ops only: its ops are reported as unsupported.
  bool usesDefault = llvm::any_of(graph.node(), [](const onnx::NodeProto &n) {
    return n.domain().empty() || n.domain() == "ai.onnx";
  });
  if (!found && !usesDefault) {
    opset = kMaxOpset;
    return success();
  }
  if (!found)
    return emitError(file.fileLoc())
           << "model '" << file.fileName()
           << "' does not import the default ONNX domain (no opset_import for '')";
  if (opset < kMinOpset || opset > kMaxOpset)
    return emitError(file.fileLoc())
           << "unsupported opset " << opset << " of the default ONNX domain in '"
           << file.fileName() << "' (supported: " << kMinOpset << " to "
           << kMaxOpset << ")";
  return success();
}

LogicalResult GraphImporter::indexInitializers() {
  for (const auto &init : graph.initializer()) {
    Location loc = NameLoc::get(StringAttr::get(ctx, init.name()), file.fileLoc());
    if (init.name().empty())
      return emitError(loc) << "an initializer has no name";
    ValueEntry &entry = values[init.name()];
    if (entry.initializer)
      return emitError(loc) << "initializer '" << init.name()
                            << "' is defined twice";
    entry.initializer = &init;
    auto where = file.locate(init, loc);
    if (failed(where))
      return failure();
    entry.weight = *where;
    if (!elementTypeFor(ctx, init.data_type()))
      return emitError(loc) << "initializer '" << init.name()
                            << "' has unsupported data type "
                            << dataTypeName(init.data_type());
  }
  return success();
}

FailureOr<SmallVector<Type>> GraphImporter::importInputs() {
  SmallVector<Type> types;
  llvm::StringSet<> seen;
  for (const auto &input : graph.input()) {
    if (values.count(input.name()) && values[input.name()].initializer)
      continue; // IR version < 4 lists initializers as inputs too
    Location loc = NameLoc::get(StringAttr::get(ctx, input.name()), file.fileLoc());
    if (!seen.insert(input.name()).second)
      return emitError(loc) << "graph input '" << input.name()
                            << "' is declared twice";
    if (!input.type().has_tensor_type())
      return emitError(loc) << "graph input '" << input.name() << "' is "
                            << valueKind(input.type())
                            << ", which is not supported (only tensors are)";
    const auto &tensorType = input.type().tensor_type();
    Type element = elementTypeFor(ctx, tensorType.elem_type());
    if (!element)
      return emitError(loc) << "graph input '" << input.name()
                            << "' has unsupported data type "
                            << dataTypeName(tensorType.elem_type());
    if (!tensorType.has_shape())
      return emitError(loc) << "graph input '" << input.name()
                            << "' has no shape; pass --input-shape "
                            << input.name() << "=...";
    auto override = options.inputShapes.find(input.name());
    const auto &dims = tensorType.shape().dim();
    SmallVector<int64_t> shape;
    if (override != options.inputShapes.end() &&
        int64_t(override->second.size()) != dims.size())
      return emitError(loc) << "--input-shape " << input.name() << " has rank "
                            << override->second.size()
                            << " but the model's input has rank " << dims.size();
    for (int i = 0; i < dims.size(); ++i) {
      const auto &dim = dims[i];
      bool known = dim.has_dim_value();
      if (known && dim.dim_value() < 0)
        return emitError(loc) << "graph input '" << input.name()
                              << "' has negative dimension " << dim.dim_value()
                              << " at index " << i;
      if (override != options.inputShapes.end()) {
        int64_t given = override->second[i];
        if (known && dim.dim_value() != given)
          return emitError(loc)
                 << "--input-shape " << input.name() << " gives dimension " << i
                 << " as " << given << " but the model fixes it to "
                 << dim.dim_value();
        shape.push_back(given);
        continue;
      }
      if (!known)
        return emitError(loc)
               << "graph input '" << input.name() << "' has dynamic dimension "
               << i
               << (dim.has_dim_param() ? " ('" + dim.dim_param() + "')"
                                       : std::string())
               << "; pass --input-shape " << input.name() << "=...";
      shape.push_back(dim.dim_value());
    }
    types.push_back(RankedTensorType::get(shape, element));
    argNames.push_back(input.name());
  }
  for (const auto &entry : options.inputShapes)
    if (!seen.contains(entry.getKey()))
      return emitError(file.fileLoc())
             << "--input-shape names '" << entry.getKey()
             << "', which is not an input of the graph";
  return types;
}

LogicalResult GraphImporter::checkSupportedOps() {
  struct Unsupported {
    std::string domain;
    int64_t opset;
    int count = 0;
    std::string firstNode;
  };
  llvm::MapVector<std::string, Unsupported, std::map<std::string, unsigned>>
      unsupported;
  llvm::StringMap<int64_t> domainVersions;
  for (const auto &entry : file.model().opset_import())
    domainVersions[entry.domain()] = entry.version();
  for (int i = 0; i < graph.node_size(); ++i) {
    const auto &node = graph.node(i);
    bool defaultDomain = node.domain().empty() || node.domain() == "ai.onnx";
    if (defaultDomain && lookupOp(node.op_type(), opset))
      continue;
    std::string key = node.domain() + "::" + node.op_type();
    auto &u = unsupported[key];
    if (u.count++ == 0) {
      u.domain = node.domain();
      u.opset = defaultDomain ? opset : domainVersions.lookup(node.domain());
      u.firstNode = node.name().empty()
                        ? node.op_type() + "#" + std::to_string(i)
                        : node.name();
    }
  }
  for (auto &[key, u] : unsupported) {
    StringRef opType = StringRef(key).split("::").second;
    emitError(file.fileLoc())
        << "unsupported ONNX op '" << opType << "' (domain '"
        << (u.domain.empty() ? "ai.onnx" : u.domain) << "', opset " << u.opset
        << "): " << u.count << (u.count == 1 ? " node" : " nodes")
        << ", first '" << u.firstNode << "'";
  }
  return success(unsupported.empty());
}

FailureOr<std::vector<int>> GraphImporter::orderNodes() {
  // Producer of every value; graph inputs and initializers have none.
  llvm::StringMap<int> producer;
  llvm::StringSet<> external;
  for (const std::string &name : argNames)
    external.insert(name);
  for (const auto &init : graph.initializer())
    external.insert(init.name());
  for (int i = 0; i < graph.node_size(); ++i) {
    for (const std::string &out : graph.node(i).output()) {
      if (out.empty())
        continue;
      if (external.contains(out))
        return emitError(nodeLoc(i)) << "node output '" << out
                                     << "' redefines a graph input or initializer",
               failure();
      auto [it, inserted] = producer.try_emplace(out, i);
      if (!inserted)
        return emitError(nodeLoc(i))
                   << "value '" << out << "' has two producers: '"
                   << cast<NameLoc>(nodeLoc(it->second)).getName().getValue()
                   << "' and this node",
               failure();
    }
  }
  // Kahn's algorithm over node dependencies.
  std::vector<int> pending(graph.node_size(), 0);
  std::vector<std::vector<int>> users(graph.node_size());
  for (int i = 0; i < graph.node_size(); ++i) {
    const auto &node = graph.node(i);
    if (node.attribute_size())
      for (const auto &a : node.attribute())
        if (a.has_g() || a.graphs_size())
          return emitError(nodeLoc(i))
                     << "'" << node.op_type()
                     << "' nodes with subgraphs are not supported",
                 failure();
    for (const std::string &in : node.input()) {
      if (in.empty())
        continue;
      used.insert(in);
      if (external.contains(in))
        continue;
      auto it = producer.find(in);
      if (it == producer.end())
        return emitError(nodeLoc(i)) << "input '" << in << "' of '"
                                     << node.op_type()
                                     << "' node is not defined by any node, "
                                        "graph input or initializer",
               failure();
      users[it->second].push_back(i);
      ++pending[i];
    }
  }
  for (const auto &out : graph.output()) {
    used.insert(out.name());
    if (!external.contains(out.name()) && !producer.count(out.name()))
      return emitError(file.fileLoc())
                 << "graph output '" << out.name() << "' is never defined",
             failure();
  }
  std::vector<int> order;
  std::deque<int> ready;
  for (int i = 0; i < graph.node_size(); ++i)
    if (pending[i] == 0)
      ready.push_back(i);
  while (!ready.empty()) {
    int i = ready.front();
    ready.pop_front();
    order.push_back(i);
    for (int user : users[i])
      if (--pending[user] == 0)
        ready.push_back(user);
  }
  if (int(order.size()) != graph.node_size()) {
    for (int i = 0; i < graph.node_size(); ++i)
      if (pending[i] > 0)
        return emitError(nodeLoc(i)) << "the graph has a cycle through this '"
                                     << graph.node(i).op_type() << "' node",
               failure();
  }
  return order;
}

RankedTensorType GraphImporter::getType(StringRef name) {
  auto it = values.find(name);
  if (it == values.end())
    return {};
  ValueEntry &entry = it->second;
  if (entry.value)
    return cast<RankedTensorType>(entry.value.getType());
  if (entry.constant)
    return RankedTensorType::get(entry.constant->shape,
                                 elementTypeFor(ctx, entry.constant->dtype));
  if (entry.initializer)
    return RankedTensorType::get(
        SmallVector<int64_t>(entry.initializer->dims().begin(),
                             entry.initializer->dims().end()),
        elementTypeFor(ctx, entry.initializer->data_type()));
  return {};
}

const HostTensor *GraphImporter::getConst(StringRef name, Location useLoc) {
  auto it = values.find(name);
  if (it == values.end())
    return nullptr;
  ValueEntry &entry = it->second;
  if (entry.constant)
    return &*entry.constant;
  if (!entry.initializer || entry.triedHost)
    return nullptr;
  entry.triedHost = true;
  // Only small integer tensors and scalars are read: the weights stay on disk.
  const onnx::TensorProto &init = *entry.initializer;
  int64_t count = 1;
  for (int64_t d : init.dims())
    count *= d;
  bool small = count <= 1 || (!isFloatDataType(init.data_type()) &&
                              count <= kMaxHostInitializerElements);
  if (!small)
    return nullptr;
  auto host = file.read(init, useLoc);
  if (failed(host))
    return nullptr;
  entry.constant = std::move(*host);
  return &*entry.constant;
}

Value GraphImporter::materialize(const HostTensor &value, Location loc) {
  Type element = elementTypeFor(ctx, value.dtype);
  auto type = RankedTensorType::get(value.shape, element);
  int64_t count = value.numElements();
  bool splat = count > 0;
  for (int64_t i = 1; i < count && splat; ++i)
    splat = value.isFloat() ? value.floats[i] == value.floats[0]
                            : value.ints[i] == value.ints[0];
  int64_t stored = splat ? 1 : count;
  DenseElementsAttr attr;
  if (auto floatType = dyn_cast<FloatType>(element)) {
    SmallVector<APFloat> data;
    for (int64_t i = 0; i < stored; ++i) {
      APFloat v(value.floats[i]);
      bool lost;
      v.convert(floatType.getFloatSemantics(), APFloat::rmNearestTiesToEven,
                &lost);
      data.push_back(v);
    }
    attr = DenseElementsAttr::get(type, data);
  } else {
    unsigned width = element.getIntOrFloatBitWidth();
    SmallVector<APInt> data;
    for (int64_t i = 0; i < stored; ++i)
      data.push_back(APInt(width, uint64_t(value.ints[i]), /*isSigned=*/true,
                           /*implicitTrunc=*/true));
    attr = DenseElementsAttr::get(type, data);
  }
  return ConstantOp::create(builder, loc, attr);
}

FailureOr<Value> GraphImporter::getValue(StringRef name, Location useLoc) {
  if (const MaskSymbol *symbol = getSymbol(name))
    return emitError(useLoc)
           << "value '" << name << "' has a data-dependent shape (from NonZero '"
           << symbol->origin
           << "'), which is not supported; only the masked_scatter form "
              "NonZero -> Transpose -> ScatterND is";
  auto it = values.find(name);
  if (it == values.end())
    return emitError(useLoc) << "value '" << name << "' is not defined";
  ValueEntry &entry = it->second;
  if (entry.value)
    return entry.value;
  // Materialise at the start of the function so every use is dominated.
  OpBuilder::InsertionGuard guard(builder);
  mlir::Block *body = builder.getInsertionBlock();
  builder.setInsertionPointToStart(body);
  Location loc = NameLoc::get(StringAttr::get(ctx, name));
  if (entry.initializer && entry.weight) {
    const onnx::TensorProto &init = *entry.initializer;
    auto type = getType(name);
    entry.value = ParamOp::create(
        builder, loc, type, builder.getStringAttr(init.name()),
        ParamRoleAttr::get(ctx, ParamRole::frozen),
        WeightSourceAttr::get(ctx, entry.weight->source),
        builder.getStringAttr(entry.weight->file),
        builder.getI64IntegerAttr(entry.weight->offset),
        builder.getI64IntegerAttr(entry.weight->length));
    return entry.value;
  }
  if (entry.initializer && !entry.constant) {
    const onnx::TensorProto &init = *entry.initializer;
    int64_t count = 1;
    for (int64_t d : init.dims())
      count *= d;
    if (count > kMaxFoldElements * 16)
      return emitError(loc) << "initializer '" << name
                            << "' stores its " << count
                            << " values in a form that cannot be referenced "
                               "by offset; save it with raw_data";
    auto host = file.read(init, loc);
    if (failed(host))
      return failure();
    entry.constant = std::move(*host);
  }
  if (entry.constant) {
    entry.value = materialize(*entry.constant, loc);
    return entry.value;
  }
  return emitError(useLoc) << "value '" << name << "' is used before it is defined";
}

OwningOpRef<ModuleOp> GraphImporter::run() {
  if (failed(checkOpset()) || failed(checkSupportedOps()) ||
      failed(indexInitializers()))
    return nullptr;
  auto argTypes = importInputs();
  if (failed(argTypes))
    return nullptr;
  auto order = orderNodes();
  if (failed(order))
    return nullptr;
  for (const auto &out : graph.output())
    if (out.has_type() && !out.type().has_tensor_type())
      return emitError(NameLoc::get(StringAttr::get(ctx, out.name()),
                                    file.fileLoc()))
                 << "graph output '" << out.name() << "' is "
                 << valueKind(out.type())
                 << ", which is not supported (only tensors are)",
             nullptr;

  OwningOpRef<ModuleOp> module = ModuleOp::create(file.fileLoc());
  (*module)->setAttr(VLoRADialect::kSourceAttrName, builder.getStringAttr(file.fileName()));
  (*module)->setAttr(VLoRADialect::kOpsetAttrName, builder.getI64IntegerAttr(opset));
  builder.setInsertionPointToEnd(module->getBody());
  auto func = func::FuncOp::create(builder, file.fileLoc(), "main",
                                   builder.getFunctionType(*argTypes, {}));
  mlir::Block *body = func.addEntryBlock();
  for (auto [i, name] : llvm::enumerate(argNames)) {
    body->getArgument(i).setLoc(NameLoc::get(StringAttr::get(ctx, name)));
    func.setArgAttr(i, VLoRADialect::kNameAttrName, builder.getStringAttr(name));
    define(name, body->getArgument(i));
  }
  builder.setInsertionPointToEnd(body);

  for (int index : *order) {
    const onnx::NodeProto &node = graph.node(index);
    NodeContext context(*this, node, nodeLoc(index), opset);
    const OpTableEntry *entry = lookupOp(node.op_type(), opset);
    static constexpr StringLiteral symbolAware[] = {
        "Transpose", "Shape", "Gather", "Unsqueeze", "Slice", "ScatterND"};
    for (const std::string &in : node.input()) {
      const MaskSymbol *symbol = in.empty() ? nullptr : getSymbol(in);
      if (symbol && !llvm::is_contained(symbolAware, node.op_type()))
        return emitError(context.loc)
                   << "'" << node.op_type() << "' consumes '" << in
                   << "', whose shape depends on data (NonZero '"
                   << symbol->origin
                   << "'), which is not supported; only the masked_scatter "
                      "form NonZero -> Transpose -> ScatterND is",
               nullptr;
    }
    if (failed(entry->handler(context)))
      return nullptr;
    for (const std::string &out : node.output()) {
      if (out.empty() || !used.contains(out))
        continue;
      auto it = values.find(out);
      if (getSymbol(out))
        continue;
      if (it == values.end() || (!it->second.value && !it->second.constant))
        return emitError(context.loc)
                   << "'" << node.op_type() << "' output '" << out
                   << "' is used but the importer cannot produce it",
               nullptr;
    }
  }

  SmallVector<Value> results;
  SmallVector<Type> resultTypes;
  for (const auto &out : graph.output()) {
    auto value = getValue(out.name(), file.fileLoc());
    if (failed(value))
      return nullptr;
    // A static shape the model declares for an output must be the one the
    // ops infer: a mismatch means the import went wrong or the model lies.
    auto type = cast<RankedTensorType>(value->getType());
    if (out.type().has_tensor_type() && out.type().tensor_type().has_shape()) {
      const auto &dims = out.type().tensor_type().shape().dim();
      bool mismatch = dims.size() != type.getRank();
      for (int d = 0; !mismatch && d < dims.size(); ++d)
        mismatch = dims[d].has_dim_value() && dims[d].dim_value() != type.getDimSize(d);
      if (mismatch) {
        std::string declared;
        for (int d = 0; d < dims.size(); ++d)
          declared += (d ? "x" : "") + (dims[d].has_dim_value()
                                            ? std::to_string(dims[d].dim_value())
                                            : std::string("?"));
        return emitError(NameLoc::get(StringAttr::get(ctx, out.name())))
                   << "graph output '" << out.name() << "' is declared "
                   << declared << " but computes " << type,
               nullptr;
      }
    }
    results.push_back(*value);
    resultTypes.push_back(type);
  }
  func::ReturnOp::create(builder, file.fileLoc(), results);
  func.setType(builder.getFunctionType(*argTypes, resultTypes));
  for (auto [i, out] : llvm::enumerate(graph.output()))
    func.setResultAttr(i, VLoRADialect::kNameAttrName,
                       builder.getStringAttr(out.name()));
  if (failed(checkRuntimeTypes(func)))
    return nullptr;
  if (failed(verify(*module)))
    return nullptr;
  return module;
}

/// The runtime has no uint16, uint32 or uint64 tensors (they would run as
/// the signed type of the same width: wrong comparisons, division, max/min
/// and casts), so a program that keeps such a tensor is refused here.
/// Values the importer folds on the host are not affected.
LogicalResult GraphImporter::checkRuntimeTypes(func::FuncOp func) {
  auto unsupported = [](Type type) -> int32_t {
    auto tensor = dyn_cast<RankedTensorType>(type);
    auto element = tensor ? dyn_cast<IntegerType>(tensor.getElementType()) : nullptr;
    if (!element || !element.isUnsigned() || element.getWidth() == 8)
      return 0;
    return dataTypeFor(element);
  };
  for (BlockArgument arg : func.getArguments())
    if (int32_t dtype = unsupported(arg.getType()))
      return emitError(arg.getLoc())
             << "graph input '" << argNames[arg.getArgNumber()]
             << "' has data type " << dataTypeName(dtype)
             << ", which is not supported (no uint16, uint32 or uint64 "
                "tensors at run time)";
  WalkResult result = func.walk([&](Operation *op) {
    for (Value v : op->getResults())
      if (int32_t dtype = unsupported(v.getType())) {
        emitError(op->getLoc())
            << "'" << op->getName() << "' yields a tensor of data type "
            << dataTypeName(dtype)
            << ", which is not supported (no uint16, uint32 or uint64 "
               "tensors at run time)";
        return WalkResult::interrupt();
      }
    return WalkResult::advance();
  });
  return failure(result.wasInterrupted());
}

OwningOpRef<ModuleOp> vlora::importONNXModel(MLIRContext &context,
                                             StringRef path,
                                             const ONNXImportOptions &options) {
  context.loadDialect<VLoRADialect, func::FuncDialect>();
  auto file = ONNXModelFile::load(&context, path);
  if (!file)
    return nullptr;
  GraphImporter importer(&context, *file, options);
  return importer.run();
}

//===----------------------------------------------------------------------===//
// NodeContext
//===----------------------------------------------------------------------===//

OpBuilder &NodeContext::builder() { return importer.builder; }

InFlightDiagnostic NodeContext::error() const {
  return emitError(loc) << "'" << node.op_type() << "': ";
}

FailureOr<Value> NodeContext::input(int i) {
  if (!hasInput(i))
    return error() << "missing input " << i, failure();
  return importer.getValue(node.input(i), loc);
}

RankedTensorType NodeContext::inputType(int i) {
  return importer.getType(node.input(i));
}

const HostTensor *NodeContext::constInput(int i) {
  if (!hasInput(i))
    return nullptr;
  return importer.getConst(node.input(i), loc);
}

FailureOr<const HostTensor *> NodeContext::requireConstInput(int i,
                                                             StringRef what) {
  if (!hasInput(i))
    return error() << "missing input '" << what << "'", failure();
  const HostTensor *value = constInput(i);
  if (!value)
    return error() << "input '" << what << "' ('" << node.input(i)
                   << "') must be known at import time (a constant or a "
                      "shape computation); data-dependent shapes are not supported",
           failure();
  return value;
}

bool NodeContext::allInputsConst() {
  for (int i = 0; i < numInputs(); ++i)
    if (hasInput(i) && !constInput(i))
      return false;
  return true;
}

void NodeContext::setOutput(int i, Value value) {
  if (i < node.output_size() && !node.output(i).empty())
    importer.define(node.output(i), value);
}

const MaskSymbol *NodeContext::symbolicInput(int i) {
  return hasInput(i) ? importer.getSymbol(node.input(i)) : nullptr;
}

void NodeContext::setOutput(int i, MaskSymbol value) {
  if (i < node.output_size() && !node.output(i).empty())
    importer.define(node.output(i), std::move(value));
}

void NodeContext::setOutput(int i, HostTensor value) {
  if (i < node.output_size() && !node.output(i).empty())
    importer.define(node.output(i), std::move(value));
}

bool NodeContext::outputUsed(int i) const {
  return i < node.output_size() && !node.output(i).empty() &&
         importer.isUsed(node.output(i));
}

const onnx::AttributeProto *NodeContext::attr(StringRef name) const {
  for (const auto &a : node.attribute())
    if (a.name() == name)
      return &a;
  return nullptr;
}

int64_t NodeContext::attrInt(StringRef name, int64_t defaultValue) const {
  const auto *a = attr(name);
  return a ? a->i() : defaultValue;
}

float NodeContext::attrFloat(StringRef name, float defaultValue) const {
  const auto *a = attr(name);
  return a ? a->f() : defaultValue;
}

std::string NodeContext::attrString(StringRef name,
                                    StringRef defaultValue) const {
  const auto *a = attr(name);
  return a ? a->s() : defaultValue.str();
}

std::optional<SmallVector<int64_t>> NodeContext::attrInts(StringRef name) const {
  const auto *a = attr(name);
  if (!a)
    return std::nullopt;
  return SmallVector<int64_t>(a->ints().begin(), a->ints().end());
}

NamedAttribute NodeContext::namedI64(StringRef name, int64_t value) {
  return builder().getNamedAttr(name, builder().getI64IntegerAttr(value));
}
NamedAttribute NodeContext::namedI64Array(StringRef name,
                                          ArrayRef<int64_t> values) {
  return builder().getNamedAttr(name, builder().getDenseI64ArrayAttr(values));
}
NamedAttribute NodeContext::namedF64(StringRef name, double value) {
  return builder().getNamedAttr(name, builder().getF64FloatAttr(value));
}
NamedAttribute NodeContext::namedUnit(StringRef name) {
  return builder().getNamedAttr(name, builder().getUnitAttr());
}
NamedAttribute NodeContext::namedType(StringRef name, Type type) {
  return builder().getNamedAttr(name, TypeAttr::get(type));
}

FailureOr<HostTensor> NodeContext::readTensor(const onnx::TensorProto &tensor) {
  return importer.file.read(tensor, loc);
}

Value NodeContext::materialize(const HostTensor &value) {
  return importer.materialize(value, loc);
}

Value NodeContext::scalar(Type elementType, double value) {
  HostTensor t = HostTensor::zeros(dataTypeFor(elementType), {});
  t.set(0, value);
  return materialize(t);
}
