//===- LowerVLoRAToVLRT.cpp - bufferize and plan memory -------------------===//
//
// --lower-vlora-to-vlrt: the vlora function becomes a vlrt program. Every
// tensor value gets a buffer; arena buffers get offsets from a static memory
// plan over their live intervals; every computing op becomes one kernel call.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "VLRT/IR/VLRTOps.h"
#include "VLoRA/IR/VLoRAOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/MapVector.h"

namespace vlora {
#define GEN_PASS_DEF_LOWERVLORATOVLRT
#include "passes/Passes.h.inc"
} // namespace vlora

using namespace mlir;
using namespace vlora;

namespace {

constexpr int64_t kAlign = vlrt::VLRTDialect::kAlignment;

int64_t alignUp(int64_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

int64_t tensorBytes(Type type) {
  auto t = cast<RankedTensorType>(type);
  return t.getNumElements() * vlrt::getElementBytes(t.getElementType());
}

MemRefType bufferType(Type type) {
  auto t = cast<RankedTensorType>(type);
  return MemRefType::get(t.getShape(), t.getElementType());
}

/// The element type's name in kernel params ("f32", "i64", "i1", "u8", ...).
std::string typeName(Type t) {
  std::string s;
  llvm::raw_string_ostream os(s);
  t.print(os);
  return s == "ui8" ? "u8" : s;
}

/// Elementwise ops whose kernels may write their result over an operand of
/// the same type (each element is read before it is written).
bool mayWriteInPlace(Operation *op) {
  return isa<NegOp, AbsOp, ExpOp, LogOp, SqrtOp, RsqrtOp, ReciprocalOp, TanhOp,
             ErfOp, SigmoidOp, SiluOp, ReluOp, SinOp, CosOp, FloorOp, CeilOp,
             GeluOp, AddOp, SubOp, MulOp, DivOp, PowOp, MaxOp, MinOp,
             // Each element's inputs are read before its results are written.
             FusedElementwiseOp>(op);
}

/// A contiguous range of arena bytes shared by one or more values.
struct Buffer {
  int64_t bytes = 0;
  int start = 0; // index of the defining op (-1 for graph inputs)
  int end = 0;   // index of the last op that reads it
  int64_t offset = -1;
};

struct LowerVLoRAToVLRTPass
    : public vlora::impl::LowerVLoRAToVLRTBase<LowerVLoRAToVLRTPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<func::FuncOp> funcs(module.getOps<func::FuncOp>());
    for (func::FuncOp func : funcs) {
      if (func->hasAttr(vlrt::VLRTDialect::kArenaBytesAttrName))
        continue;
      if (failed(lower(func)))
        return signalPassFailure();
    }
  }

  LogicalResult lower(func::FuncOp func) {
    if (!func.getBody().hasOneBlock())
      return func.emitError("a vlora program must be a single block");
    Block &body = func.getBody().front();
    int numOps = 0;
    llvm::DenseMap<Operation *, int> opIndex;
    for (Operation &op : body)
      opIndex[&op] = numOps++;

    // Last use of every value (graph outputs: past the end).
    llvm::DenseMap<Value, int> lastUse;
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    for (Operation &op : body)
      for (Value v : op.getOperands())
        lastUse[v] = std::max(lastUse.lookup(v), opIndex[&op]);
    for (Value v : ret.getOperands())
      lastUse[v] = numOps;

    // Assign buffers in program order.
    std::vector<Buffer> buffers;
    llvm::DenseMap<Value, int> bufferOf;
    llvm::DenseSet<int> pinned; // inputs and outputs: never written in place
    auto newBuffer = [&](Value v, int start) {
      buffers.push_back({tensorBytes(v.getType()), start, lastUse.lookup(v), -1});
      buffers.back().end = std::max(buffers.back().end, start);
      bufferOf[v] = buffers.size() - 1;
      return int(buffers.size() - 1);
    };
    for (BlockArgument arg : func.getArguments())
      pinned.insert(newBuffer(arg, -1));
    for (Operation &op : body) {
      if (isa<ParamOp, ConstantOp, func::ReturnOp>(op))
        continue;
      if (!op.getRegions().empty())
        return op.emitOpError("has regions; a vlora program is straight-line");
      int index = opIndex[&op];
      if (auto reshape = dyn_cast<ReshapeOp>(op)) {
        auto it = bufferOf.find(reshape.getInput());
        if (it != bufferOf.end()) {
          // Same bytes, new shape: an alias, no copy. (Copy the id first:
          // inserting into the map may move its entries.)
          int id = it->second;
          bufferOf[reshape.getResult()] = id;
          Buffer &b = buffers[id];
          b.end = std::max(b.end, lastUse.lookup(reshape.getResult()));
          ++numAliases;
          continue;
        }
      }
      std::optional<int> reused;
      if (mayWriteInPlace(&op)) {
        for (Value operand : op.getOperands()) {
          auto it = bufferOf.find(operand);
          if (it == bufferOf.end() || operand.getType() != op.getResult(0).getType())
            continue;
          Buffer &b = buffers[it->second];
          if (b.end == index && !pinned.contains(it->second)) {
            reused = it->second;
            break;
          }
        }
      }
      for (Value result : op.getResults()) {
        if (reused) {
          bufferOf[result] = *reused;
          buffers[*reused].end = std::max(index, lastUse.lookup(result));
          ++numAliases;
          reused.reset();
          continue;
        }
        newBuffer(result, index);
      }
    }
    for (Value v : ret.getOperands()) {
      auto it = bufferOf.find(v);
      if (it != bufferOf.end()) {
        pinned.insert(it->second);
        buffers[it->second].end = numOps;
      }
    }
    // An output that is a graph input, weight or constant (an identity
    // graph, a constant folded by the importer) gets an arena buffer of its
    // own, filled by a copy after the last op.
    llvm::DenseMap<unsigned, int> outputCopy;
    for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
      if (!isa<BlockArgument>(v) && bufferOf.count(v))
        continue;
      buffers.push_back({tensorBytes(v.getType()), numOps, numOps, -1});
      outputCopy[i] = buffers.size() - 1;
    }

    int64_t arenaBytes = planOffsets(buffers);

    // Emit the vlrt program.
    OpBuilder builder(func);
    MLIRContext *ctx = &getContext();
    auto program = func::FuncOp::create(builder, func.getLoc(), func.getName(),
                                        builder.getFunctionType({}, {}));
    program->setAttr(vlrt::VLRTDialect::kArenaBytesAttrName,
                     builder.getI64IntegerAttr(arenaBytes));
    Block *entry = program.addEntryBlock();
    builder.setInsertionPointToEnd(entry);
    IRMapping map;
    for (BlockArgument arg : func.getArguments()) {
      auto name = func.getArgAttrOfType<StringAttr>(arg.getArgNumber(),
                                                    VLoRADialect::kNameAttrName);
      std::string inputName =
          name ? name.str() : "input" + std::to_string(arg.getArgNumber());
      auto input = vlrt::InputOp::create(
          builder, arg.getLoc(), bufferType(arg.getType()),
          builder.getStringAttr(inputName),
          builder.getI64IntegerAttr(buffers[bufferOf[arg]].offset));
      map.map(arg, input.getResult());
    }
    auto slice = [&](Value v, Location loc) -> Value {
      return vlrt::SliceOp::create(
          builder, loc, bufferType(v.getType()),
          builder.getI64IntegerAttr(buffers[bufferOf[v]].offset));
    };
    for (Operation &op : body) {
      Location loc = op.getLoc();
      if (auto param = dyn_cast<ParamOp>(op)) {
        StringRef root =
            param.getSource() == WeightSource::bundle ? "bundle" : "model";
        map.map(param.getResult(),
                vlrt::WeightOp::create(builder, loc, bufferType(param.getType()),
                                       param.getNameAttr(), builder.getStringAttr(root),
                                       param.getFileAttr(), param.getOffsetAttr(),
                                       param.getLengthAttr())
                    .getResult());
        continue;
      }
      if (auto constant = dyn_cast<ConstantOp>(op)) {
        map.map(constant.getResult(),
                vlrt::ConstantOp::create(builder, loc, bufferType(constant.getType()),
                                         constant.getValue())
                    .getResult());
        continue;
      }
      if (isa<func::ReturnOp>(op))
        continue;
      SmallVector<Value> outs;
      for (Value result : op.getResults()) {
        Value buffer = slice(result, loc);
        map.map(result, buffer);
        outs.push_back(buffer);
      }
      if (auto reshape = dyn_cast<ReshapeOp>(op);
          reshape && bufferOf.count(reshape.getInput()))
        continue; // an alias: the slice is all it takes
      SmallVector<Value> ins;
      for (Value operand : op.getOperands())
        ins.push_back(map.lookup(operand));
      SmallVector<NamedAttribute> params;
      for (NamedAttribute attr : op.getAttrs()) {
        if (attr.getName().getValue().starts_with("vlora."))
          continue; // discardable tags
        Attribute value = attr.getValue();
        if (isa<UnitAttr>(value))
          value = builder.getI64IntegerAttr(1);
        else if (auto type = dyn_cast<TypeAttr>(value))
          value = builder.getStringAttr(typeName(type.getValue()));
        else if (auto gelu = dyn_cast<GeluApproximationAttr>(value))
          value = builder.getStringAttr(stringifyGeluApproximation(gelu.getValue()));
        else if (!isa<IntegerAttr, FloatAttr, StringAttr, DenseI64ArrayAttr>(value))
          return op.emitOpError("attribute '")
                 << attr.getName().getValue() << "' cannot be passed to a kernel";
        params.push_back(builder.getNamedAttr(attr.getName(), value));
      }
      StringRef kernel = op.getName().getStringRef();
      kernel.consume_front("vlora.");
      vlrt::KernelOp::create(builder, loc, builder.getStringAttr(kernel), ins, outs,
                             DictionaryAttr::get(ctx, params));
      ++numKernels;
    }
    // Outputs; a weight, constant or input returned directly is copied into
    // the arena first so every output is an arena buffer of its own.
    SmallVector<Value> outputBuffers;
    for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
      Value buffer = map.lookup(v);
      auto copy = outputCopy.find(i);
      if (copy != outputCopy.end()) {
        auto type = cast<RankedTensorType>(v.getType());
        Value dst = vlrt::SliceOp::create(
            builder, ret.getLoc(), bufferType(type),
            builder.getI64IntegerAttr(buffers[copy->second].offset));
        vlrt::KernelOp::create(
            builder, ret.getLoc(), builder.getStringAttr("reshape"), ValueRange{buffer},
            ValueRange{dst},
            builder.getDictionaryAttr(builder.getNamedAttr(
                "shape", builder.getDenseI64ArrayAttr(type.getShape()))));
        ++numKernels;
        buffer = dst;
      }
      outputBuffers.push_back(buffer);
    }
    for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
      auto name = func.getResultAttrOfType<StringAttr>(i, VLoRADialect::kNameAttrName);
      std::string outputName = name ? name.str() : "output" + std::to_string(i);
      Value buffer = outputBuffers[i];
      if (!buffer.getDefiningOp<vlrt::SliceOp>()) {
        return ret.emitOpError("output '")
               << outputName
               << "' is a weight, constant or input; the program computes nothing for it";
      }
      vlrt::OutputOp::create(builder, ret.getLoc(), builder.getStringAttr(outputName),
                             buffer);
    }
    func::ReturnOp::create(builder, ret.getLoc());
    func.erase();
    return success();
  }

  /// Greedy by size: each buffer, largest first, takes the lowest offset not
  /// used by an already placed buffer whose lifetime overlaps its own.
  /// Returns the peak (the arena size).
  static int64_t planOffsets(std::vector<Buffer> &buffers) {
    std::vector<int> order(buffers.size());
    for (size_t i = 0; i < order.size(); ++i)
      order[i] = i;
    llvm::stable_sort(order, [&](int a, int b) {
      if (buffers[a].bytes != buffers[b].bytes)
        return buffers[a].bytes > buffers[b].bytes;
      return buffers[a].start < buffers[b].start;
    });
    std::vector<int> placed;
    int64_t peak = 0;
    for (int id : order) {
      Buffer &b = buffers[id];
      int64_t size = alignUp(std::max<int64_t>(b.bytes, 1));
      SmallVector<std::pair<int64_t, int64_t>> busy;
      for (int other : placed) {
        const Buffer &o = buffers[other];
        if (o.start <= b.end && b.start <= o.end)
          busy.push_back({o.offset, o.offset + alignUp(std::max<int64_t>(o.bytes, 1))});
      }
      llvm::sort(busy);
      int64_t offset = 0;
      for (auto [lo, hi] : busy) {
        if (offset + size <= lo)
          break;
        offset = std::max(offset, hi);
      }
      b.offset = offset;
      peak = std::max(peak, offset + size);
      placed.push_back(id);
    }
    return peak;
  }
};

} // namespace
