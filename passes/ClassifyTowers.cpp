//===- ClassifyTowers.cpp - tag matmuls with tower/block/layer/module -----===//
//
// --vlora-classify-towers: two independent signals classify every matmul with
// a frozen weight.
//
// Names: the Hugging Face module path comes from the weight's initializer
// name (dynamo exporter: `model.language_model.layers.0.mlp.up_proj.weight`)
// or from the ONNX node name (TorchScript exporter:
// `/model/language_model/layers.0/mlp/up_proj/MatMul`); keywords in the path
// give tower, block and layer.
//
// Structure: ops reachable from `pixel_values` but not from the token
// embedding are the vision side; ops reachable from both (from the merge on)
// are the language side. Residual adds `x + f(x)` on each side delimit blocks:
// a branch with a softmax is attention, one with an activation between
// matmuls is an MLP. Layers are counted along the residual stream. Vision-side
// matmuls outside any residual branch, after the last vision block, are the
// projector; language-side ones outside any branch are the head (`other`).
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/TowerTags.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/StringExtras.h"

namespace vlora {
#define GEN_PASS_DEF_VLORACLASSIFYTOWERS
#include "passes/Passes.h.inc"
} // namespace vlora

using namespace mlir;
using namespace vlora;

//===----------------------------------------------------------------------===//
// The name signal
//===----------------------------------------------------------------------===//

namespace {

bool isIdentifier(StringRef s) {
  return !s.empty() && llvm::all_of(s, [](char c) {
    return llvm::isAlnum(c) || c == '_' || c == '-';
  });
}

/// `model.layers.0.mlp.up_proj.weight` -> `model.layers.0.mlp.up_proj`.
std::optional<std::string> modulePathFromWeightName(StringRef name) {
  if (!name.consume_back(".weight"))
    return std::nullopt;
  SmallVector<StringRef> parts;
  name.split(parts, '.');
  if (!llvm::all_of(parts, isIdentifier))
    return std::nullopt;
  return name.str();
}

/// A parameter's full name that is not an nn.Linear weight
/// (`model.multi_modal_projector.mm_input_projection_weight`, Gemma3): its
/// owning module's path, for the tower tags.
std::optional<std::string> ownerOfBareParameter(StringRef name) {
  if (name.ends_with(".weight") || !name.contains('.'))
    return std::nullopt;
  SmallVector<StringRef> parts;
  name.split(parts, '.');
  if (!llvm::all_of(parts, isIdentifier))
    return std::nullopt;
  return name.rsplit('.').first.str();
}

/// `/model/layers.0/mlp/up_proj/MatMul` -> `model.layers.0.mlp.up_proj`.
std::optional<std::string> modulePathFromNodeName(Location loc) {
  auto name = dyn_cast<NameLoc>(loc);
  if (!name)
    return std::nullopt;
  StringRef text = name.getName().getValue();
  if (!text.starts_with("/"))
    return std::nullopt;
  SmallVector<StringRef> parts;
  text.drop_front().split(parts, '/', -1, /*KeepEmpty=*/false);
  if (parts.size() < 2)
    return std::nullopt; // at least one module and the op
  parts.pop_back();      // the op: MatMul, Gemm, ...
  return llvm::join(parts, ".");
}

template <size_t N>
bool containsAny(StringRef s, const StringLiteral (&keys)[N]) {
  return llvm::any_of(keys, [&](StringRef k) { return s.contains(k); });
}

/// Tower, block and layer of a Hugging Face module path, by keywords.
TowerTags tagsFromModulePath(StringRef path) {
  TowerTags tags;
  tags.module = path.str();
  SmallVector<StringRef> parts;
  path.split(parts, '.');
  StringRef leaf = parts.back();
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if ((parts[i] == "layers" || parts[i] == "layer" || parts[i] == "blocks" ||
         parts[i] == "h" || parts[i] == "block") &&
        !tags.layer) {
      int64_t index;
      if (!parts[i + 1].getAsInteger(10, index))
        tags.layer = index;
    }
  }
  if (leaf == "lm_head" || leaf == "embed_tokens" || leaf == "wte")
    return tags; // other / other
  static constexpr StringLiteral projectorKeys[] = {
      "multi_modal_projector", "mm_projector", "connector", "merger",
      "projector", "modality_projection", "aligner"};
  static constexpr StringLiteral visionKeys[] = {"vision", "visual", "image",
                                                 "vit"};
  static constexpr StringLiteral languageKeys[] = {"language", "text", "llm",
                                                   "decoder"};
  bool projector = false, vision = false, language = false;
  for (StringRef p : parts) {
    projector |= containsAny(p, projectorKeys);
    vision |= containsAny(p, visionKeys);
    language |= containsAny(p, languageKeys);
  }
  if (projector) {
    tags.tower = TowerKind::projector;
    tags.layer.reset();
    return tags;
  }
  if (vision)
    tags.tower = TowerKind::vision;
  else if (language || tags.layer)
    tags.tower = TowerKind::language; // `model.layers.N...` of a plain LM
  else
    return tags;
  static constexpr StringLiteral attentionLeaves[] = {
      "q_proj", "k_proj", "v_proj", "o_proj", "out_proj", "qkv", "qkv_proj",
      "query", "key", "value", "c_attn", "wq", "wk", "wv", "wo"};
  static constexpr StringLiteral mlpLeaves[] = {
      "fc1", "fc2", "gate_proj", "up_proj", "down_proj", "w1", "w2", "w3",
      "c_fc", "gate_up_proj"};
  bool attention = llvm::is_contained(attentionLeaves, leaf);
  bool mlp = llvm::is_contained(mlpLeaves, leaf);
  for (StringRef p : ArrayRef<StringRef>(parts).drop_back()) {
    attention |= p.contains("attn") || p.contains("attention");
    mlp |= p.contains("mlp") || p.contains("feed_forward") || p.contains("ffn");
  }
  if (attention && !mlp)
    tags.block = BlockKind::attention;
  else if (mlp && !attention)
    tags.block = BlockKind::mlp;
  return tags;
}

//===----------------------------------------------------------------------===//
// The structure signal
//===----------------------------------------------------------------------===//

/// Dataflow facts over one function body, in program (topological) order.
class StructureAnalysis {
public:
  explicit StructureAnalysis(func::FuncOp func);

  /// Structure tags for every frozen matmul of the function.
  DenseMap<Operation *, TowerTags> classify(ArrayRef<FrozenMatmul> matmuls);

private:
  struct Branch {
    Operation *add;
    BlockKind kind;
    DenseSet<Operation *> ops;
  };

  DenseSet<Operation *> forwardFrom(ArrayRef<Value> roots) const;
  /// The residual branch of `add` if it is `x + f(x)` with a frozen matmul in
  /// f; ops of f.
  std::optional<Branch> residualBranch(AddOp add) const;
  Value findPixelValues();
  SmallVector<Value> findTokenEmbeddings() const;

  func::FuncOp func;
  SmallVector<Operation *> order;
  DenseMap<Operation *, unsigned> index;
};

StructureAnalysis::StructureAnalysis(func::FuncOp func) : func(func) {
  func.walk([&](Operation *op) {
    if (op == func.getOperation())
      return;
    index[op] = order.size();
    order.push_back(op);
  });
}

DenseSet<Operation *>
StructureAnalysis::forwardFrom(ArrayRef<Value> roots) const {
  DenseSet<Operation *> reached;
  SmallVector<Value> work(roots.begin(), roots.end());
  while (!work.empty()) {
    Value v = work.pop_back_val();
    for (Operation *user : v.getUsers())
      if (reached.insert(user).second)
        llvm::append_range(work, user->getResults());
  }
  return reached;
}

Value StructureAnalysis::findPixelValues() {
  Value best;
  int64_t bestSize = -1;
  for (BlockArgument arg : func.getArguments()) {
    auto type = cast<RankedTensorType>(arg.getType());
    if (!isa<FloatType>(type.getElementType()))
      continue;
    if (auto name = func.getArgAttrOfType<StringAttr>(arg.getArgNumber(),
                                                      VLoRADialect::kNameAttrName))
      if (name.getValue() == "pixel_values")
        return arg;
    if (type.getNumElements() > bestSize) {
      best = arg;
      bestSize = type.getNumElements();
    }
  }
  return best;
}

SmallVector<Value> StructureAnalysis::findTokenEmbeddings() const {
  SmallVector<Value> embeddings;
  for (Operation *op : order) {
    auto gather = dyn_cast<GatherOp>(op);
    if (!gather || gather.getAxis() != 0)
      continue;
    ParamOp table = traceFrozenParam(gather.getData());
    if (!table || cast<RankedTensorType>(table.getType()).getRank() != 2)
      continue;
    // Token ids come from an integer graph input.
    Value indices = gather.getIndices();
    while (Operation *def = indices.getDefiningOp()) {
      if (!isa<CastOp, ReshapeOp, ExpandOp>(def))
        break;
      indices = def->getOperand(0);
    }
    if (isa<BlockArgument>(indices))
      embeddings.push_back(gather.getResult());
  }
  return embeddings;
}

std::optional<StructureAnalysis::Branch>
StructureAnalysis::residualBranch(AddOp add) const {
  for (auto [xv, yv] : {std::pair(add.getLhs(), add.getRhs()),
                        std::pair(add.getRhs(), add.getLhs())}) {
    Value x = xv, y = yv;
    Operation *yDef = y.getDefiningOp();
    if (!yDef)
      continue;
    // A residual adds two values of the result's type; a broadcast
    // operand (RMSNorm's eps, a bias) or a constant is not the stream.
    if (x.getType() != add.getType() || y.getType() != add.getType() ||
        x.getDefiningOp<ConstantOp>() || x.getDefiningOp<ParamOp>())
      continue;
    unsigned lowest = 0;
    if (Operation *xDef = x.getDefiningOp())
      lowest = index.lookup(xDef) + 1;
    // Ancestors of y that come after x in program order.
    SmallVector<Operation *> ancestors;
    DenseSet<Operation *> seen;
    SmallVector<Operation *> work{yDef};
    seen.insert(yDef);
    while (!work.empty()) {
      Operation *op = work.pop_back_val();
      ancestors.push_back(op);
      for (Value operand : op->getOperands())
        if (Operation *def = operand.getDefiningOp())
          if (index.lookup(def) >= lowest && seen.insert(def).second)
            work.push_back(def);
    }
    llvm::sort(ancestors, [&](Operation *a, Operation *b) {
      return index.lookup(a) < index.lookup(b);
    });
    // Those that also descend from x form the branch f(x).
    Branch branch{add.getOperation(), BlockKind::other, {}};
    for (Operation *op : ancestors)
      for (Value operand : op->getOperands())
        if (operand == x || (operand.getDefiningOp() &&
                             branch.ops.contains(operand.getDefiningOp()))) {
          branch.ops.insert(op);
          break;
        }
    if (!branch.ops.contains(yDef))
      continue;
    bool hasMatmul = false, hasSoftmax = false, hasActivation = false;
    for (Operation *op : branch.ops) {
      if (auto mm = dyn_cast<MatmulOp>(op))
        hasMatmul |= getFrozenMatmul(mm).has_value();
      hasSoftmax |= isa<SoftmaxOp>(op);
      hasActivation |= isa<SigmoidOp, SiluOp, GeluOp, ErfOp, TanhOp, ReluOp>(op);
    }
    if (!hasMatmul)
      continue;
    branch.kind = hasSoftmax      ? BlockKind::attention
                  : hasActivation ? BlockKind::mlp
                                  : BlockKind::other;
    return branch;
  }
  return std::nullopt;
}

DenseMap<Operation *, TowerTags>
StructureAnalysis::classify(ArrayRef<FrozenMatmul> matmuls) {
  DenseMap<Operation *, TowerTags> result;
  Value pixels = findPixelValues();
  SmallVector<Value> embeddings = findTokenEmbeddings();
  // Without a token embedding there is no language side to anchor on: the
  // structure signal has no opinion.
  if (embeddings.empty())
    return result;
  DenseSet<Operation *> fromPixels =
      pixels ? forwardFrom({pixels}) : DenseSet<Operation *>();
  DenseSet<Operation *> fromText = forwardFrom(embeddings);
  for (Value e : embeddings)
    fromText.insert(e.getDefiningOp());

  auto side = [&](Operation *op) -> TowerKind {
    bool p = fromPixels.contains(op), t = fromText.contains(op);
    if (p && !t)
      return TowerKind::vision;
    if (t || (!p && embeddings.empty()))
      return TowerKind::language;
    return TowerKind::other;
  };

  // Residual branches per side, in program order.
  struct TowerBlocks {
    SmallVector<Branch> branches;
  };
  DenseMap<unsigned, TowerBlocks> towers;
  DenseSet<Operation *> residualAdds;
  for (Operation *op : order) {
    auto add = dyn_cast<AddOp>(op);
    if (!add || !isa<FloatType>(cast<RankedTensorType>(add.getType()).getElementType()))
      continue;
    TowerKind s = side(op);
    if (s == TowerKind::other)
      continue;
    // A branch that runs through an earlier residual add is not f(x) of
    // one block: it is e.g. an attention mask added to scores of a later
    // layer, which depend on that mask through the earlier layers.
    auto branch = residualBranch(add);
    if (!branch || llvm::any_of(branch->ops, [&](Operation *o) {
          return residualAdds.contains(o);
        }))
      continue;
    residualAdds.insert(op);
    towers[unsigned(s)].branches.push_back(std::move(*branch));
  }

  // Matmul -> (block kind, layer) from the branches, layers counted along the
  // stream: each attention block opens a layer; an MLP block belongs to the
  // layer of the attention before it.
  DenseMap<Operation *, std::pair<BlockKind, int64_t>> inBlock;
  DenseMap<unsigned, Operation *> lastResidual;
  for (auto &[tower, blocks] : towers) {
    int64_t layer = -1;
    bool sawAttention = false;
    for (Branch &b : blocks.branches) {
      if (b.kind == BlockKind::attention || !sawAttention || layer < 0) {
        if (b.kind == BlockKind::attention || layer < 0)
          ++layer;
        sawAttention |= b.kind == BlockKind::attention;
      }
      for (Operation *op : b.ops)
        if (isa<MatmulOp>(op) && !inBlock.count(op))
          inBlock[op] = {b.kind, layer};
      lastResidual[tower] = b.add;
    }
  }

  DenseMap<std::pair<unsigned, unsigned>, unsigned> counters;
  for (FrozenMatmul fm : matmuls) {
    Operation *op = fm.op.getOperation();
    TowerTags tags;
    TowerKind s = side(op);
    auto it = inBlock.find(op);
    if (it != inBlock.end() && s != TowerKind::other) {
      tags.tower = s;
      tags.block = it->second.first;
      tags.layer = it->second.second;
    } else if (s == TowerKind::vision) {
      Operation *last = lastResidual.lookup(unsigned(TowerKind::vision));
      bool afterTower = !last || index.lookup(op) > index.lookup(last);
      tags.tower = afterTower ? TowerKind::projector : TowerKind::vision;
    } else {
      tags.tower = TowerKind::other; // the head
    }
    // A synthetic module path for graphs without names.
    unsigned &k = counters[{unsigned(tags.tower), unsigned(tags.layer.value_or(-1))}];
    std::string path = stringifyTower(tags.tower).str();
    if (tags.layer)
      path += ".layers." + std::to_string(*tags.layer) + "." +
              stringifyBlock(tags.block).str();
    path += "." + std::to_string(k++);
    tags.module = path;
    result[op] = tags;
  }
  return result;
}

std::string describe(const TowerTags &t) {
  std::string s = stringifyTower(t.tower).str() + "/" + stringifyBlock(t.block).str();
  if (t.layer)
    s += "/layer " + std::to_string(*t.layer);
  return s;
}

//===----------------------------------------------------------------------===//
// The pass
//===----------------------------------------------------------------------===//

struct ClassifyTowersPass
    : public vlora::impl::VLoRAClassifyTowersBase<ClassifyTowersPass> {
  using Base::Base;

  void runOnOperation() override {
    if (!useNames && !useStructure) {
      getOperation().emitError("--vlora-classify-towers needs names=true or "
                               "structure=true");
      return signalPassFailure();
    }
    for (auto func : getOperation().getOps<func::FuncOp>())
      classifyFunction(func);
  }

  void classifyFunction(func::FuncOp func) {
    SmallVector<FrozenMatmul> matmuls;
    func.walk([&](MatmulOp op) {
      if (auto fm = getFrozenMatmul(op))
        matmuls.push_back(*fm);
    });
    if (matmuls.empty())
      return;
    DenseMap<Operation *, TowerTags> structural;
    if (useStructure)
      structural = StructureAnalysis(func).classify(matmuls);

    for (FrozenMatmul fm : matmuls) {
      Operation *op = fm.op.getOperation();
      std::optional<TowerTags> byName;
      bool bareParameter = false;
      if (useNames) {
        auto path = modulePathFromWeightName(fm.weight.getName());
        if (!path) {
          path = ownerOfBareParameter(fm.weight.getName());
          bareParameter = path.has_value();
        }
        if (!path)
          path = modulePathFromNodeName(op->getLoc());
        if (path)
          byName = tagsFromModulePath(*path);
      }
      auto byStructure = structural.find(op);
      TowerTags tags;
      if (byName && byStructure != structural.end()) {
        const TowerTags &s = byStructure->second;
        bool agree = byName->tower == s.tower &&
                     (byName->tower == TowerKind::other ||
                      byName->tower == TowerKind::projector ||
                      (byName->block == s.block && byName->layer == s.layer));
        if (!agree) {
          ++numDisagreements;
          op->emitWarning() << "tower classification of '" << byName->module
                            << "' disagrees: names say " << describe(*byName)
                            << ", structure says " << describe(s)
                            << "; using the names";
        }
        tags = *byName;
      } else if (byName) {
        tags = *byName;
      } else if (byStructure != structural.end()) {
        tags = byStructure->second;
      } else {
        tags.module = "unnamed." + std::to_string(numTagged);
      }
      if (tags.tower == TowerKind::projector || tags.tower == TowerKind::other)
        tags.block = BlockKind::other;
      if (tags.tower == TowerKind::projector || tags.tower == TowerKind::other)
        tags.layer.reset();
      if (bareParameter)
        tags.module.clear();
      setTowerTags(op, tags);
      ++numTagged;
    }
  }
};

} // namespace
