//===- Rematerialize.cpp - keep fewer activations for the backward --------===//
//
// --vlora-rematerialize: in a training step, chooses by a minimum cut which
// forward values the backward reads are kept and which are recomputed from
// the kept ones by cheap ops, then clones the recomputed ones into the
// backward. See Passes.td.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "VLoRA/IR/VLoRAOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/ADT/SmallVector.h"

#include <deque>
#include <functional>
#include <limits>
#include <vector>

namespace vlora {
#define GEN_PASS_DEF_VLORAREMATERIALIZE
#include "passes/Passes.h.inc"
} // namespace vlora

using namespace mlir;
using namespace vlora;

namespace {

/// Memory-bound ops the backward may redo instead of keeping their results.
bool isCheap(Operation *op) {
  return isa<
      // elementwise
      NegOp, AbsOp, ExpOp, LogOp, SqrtOp, RsqrtOp, ReciprocalOp, TanhOp, ErfOp,
      SigmoidOp, SiluOp, ReluOp, SinOp, CosOp, FloorOp, CeilOp, NotOp, GeluOp,
      AddOp, SubOp, MulOp, DivOp, PowOp, MaxOp, MinOp, AndOp, OrOp, XorOp,
      EqualOp, LessOp, LessEqualOp, GreaterOp, GreaterEqualOp, WhereOp, CastOp,
      // data movement
      ReshapeOp, TransposeOp, SliceOp, ConcatOp, SplitOp, GatherOp,
      GatherElementsOp, GatherNDOp, ScatterNDOp, MaskedScatterOp, ExpandOp,
      PadOp, TriluOp,
      // normalisation and reductions
      SoftmaxOp, LogSoftmaxOp, CumsumOp, LayerNormOp, RmsNormOp, ReduceSumOp,
      ReduceMeanOp, ReduceMaxOp, ReduceMinOp, ReduceProdOp>(op);
}

/// Values that exist whatever the backward keeps: arguments, parameters
/// and constants.
bool isFree(Value v) {
  Operation *def = v.getDefiningOp();
  return !def || isa<ParamOp, ConstantOp>(def);
}

int64_t valueBytes(Value v) {
  auto type = cast<RankedTensorType>(v.getType());
  return type.getNumElements() * vlrt::getElementBytes(type.getElementType());
}

/// Dinic's maximum flow; after run(), reachesSink() tells the nodes on the
/// sink side of the minimum cut nearest the sink.
class MaxFlow {
public:
  static constexpr int64_t kInfinite = std::numeric_limits<int64_t>::max() / 4;

  explicit MaxFlow(int numNodes) : adjacency(numNodes) {}

  void addEdge(int from, int to, int64_t capacity) {
    adjacency[from].push_back(edges.size());
    edges.push_back({to, capacity});
    adjacency[to].push_back(edges.size());
    edges.push_back({from, 0});
  }

  void run(int source, int sink) {
    while (levelGraph(source, sink)) {
      next.assign(adjacency.size(), 0);
      while (push(source, sink, kInfinite) > 0) {
      }
    }
  }

  /// Nodes that still reach the sink through edges with capacity left.
  std::vector<bool> reachesSink(int sink) const {
    std::vector<bool> reaches(adjacency.size(), false);
    std::deque<int> queue{sink};
    reaches[sink] = true;
    while (!queue.empty()) {
      int node = queue.front();
      queue.pop_front();
      // An edge u->node with capacity left is the reverse of node->u.
      for (int e : adjacency[node]) {
        int u = edges[e].to;
        if (!reaches[u] && edges[e ^ 1].capacity > 0) {
          reaches[u] = true;
          queue.push_back(u);
        }
      }
    }
    return reaches;
  }

private:
  struct Edge {
    int to;
    int64_t capacity;
  };

  bool levelGraph(int source, int sink) {
    level.assign(adjacency.size(), -1);
    std::deque<int> queue{source};
    level[source] = 0;
    while (!queue.empty()) {
      int node = queue.front();
      queue.pop_front();
      for (int e : adjacency[node])
        if (edges[e].capacity > 0 && level[edges[e].to] < 0) {
          level[edges[e].to] = level[node] + 1;
          queue.push_back(edges[e].to);
        }
    }
    return level[sink] >= 0;
  }

  int64_t push(int node, int sink, int64_t limit) {
    if (node == sink)
      return limit;
    for (size_t &i = next[node]; i < adjacency[node].size(); ++i) {
      Edge &edge = edges[adjacency[node][i]];
      if (edge.capacity <= 0 || level[edge.to] != level[node] + 1)
        continue;
      int64_t pushed = push(edge.to, sink, std::min(limit, edge.capacity));
      if (pushed > 0) {
        edge.capacity -= pushed;
        edges[adjacency[node][i] ^ 1].capacity += pushed;
        return pushed;
      }
    }
    return 0;
  }

  std::vector<Edge> edges;
  std::vector<std::vector<int>> adjacency;
  std::vector<int> level;
  std::vector<size_t> next;
};

struct RematerializePass
    : vlora::impl::VLoRARematerializeBase<RematerializePass> {
  using Base::Base;

  void runOnOperation() override {
    for (auto func : getOperation().getOps<func::FuncOp>())
      if (!func.isExternal())
        rematerialize(func);
  }

  /// Whether keep-bf16 keeps `v` as a bf16 copy: an f32 activation, one
  /// computed from the trainable parameters. Position tables and masks keep
  /// their f32 bytes, as autocast keeps them.
  bool narrowed(Value v) {
    return keepBf16 && active.contains(v) &&
           cast<RankedTensorType>(v.getType()).getElementType().isF32();
  }

  /// The forward values computed from a trainable argument: an argument
  /// `<name>` next to its gradient accumulator `<name>.grad`, as
  /// --vlora-build-training-step names them.
  void findActive(func::FuncOp func, Operation *boundary) {
    active.clear();
    llvm::StringSet<> names;
    for (unsigned i = 0; i < func.getNumArguments(); ++i)
      if (auto name = func.getArgAttrOfType<StringAttr>(i, VLoRADialect::kNameAttrName))
        names.insert(name.getValue());
    for (unsigned i = 0; i < func.getNumArguments(); ++i)
      if (auto name = func.getArgAttrOfType<StringAttr>(i, VLoRADialect::kNameAttrName);
          name && names.contains((name.getValue() + ".grad").str()))
        active.insert(func.getArgument(i));
    for (Operation &op : func.getBody().front()) {
      if (&op == boundary)
        break;
      if (llvm::any_of(op.getOperands(), [&](Value v) { return active.contains(v); }))
        active.insert(op.result_begin(), op.result_end());
    }
  }

  llvm::DenseSet<Value> active;

  /// The bytes keeping `v` for the backward costs.
  int64_t keptBytes(Value v) {
    return narrowed(v) ? valueBytes(v) / 2 : valueBytes(v);
  }

  void rematerialize(func::FuncOp func) {
    Value lossScale;
    for (unsigned i = 0; i < func.getNumArguments(); ++i)
      if (auto name = func.getArgAttrOfType<StringAttr>(i, VLoRADialect::kNameAttrName);
          name && name.getValue() == "loss_scale")
        lossScale = func.getArgument(i);
    if (!lossScale)
      return;
    Block &body = func.getBody().front();
    // The backward starts at the first op that reads the seed.
    Operation *boundary = nullptr;
    for (Operation &op : body)
      if (llvm::is_contained(op.getOperands(), lossScale)) {
        boundary = &op;
        break;
      }
    if (!boundary)
      return;
    findActive(func, boundary);

    // Nodes: each forward value v is v_in -> v_out (capacity: its bytes).
    llvm::DenseMap<Value, int> index;
    SmallVector<Value> values;
    for (Operation &op : body) {
      if (&op == boundary)
        break;
      for (Value r : op.getResults())
        if (!isFree(r) && isa<RankedTensorType>(r.getType())) {
          index[r] = values.size();
          values.push_back(r);
        }
    }
    // The forward values the backward reads. The boundary op itself runs
    // right after the forward (the fused loss computes the loss and its
    // input's gradient at once): what it reads is fresh, not kept.
    llvm::SetVector<Value> needed;
    for (Operation *op = boundary->getNextNode(); op; op = op->getNextNode())
      for (Value v : op->getOperands())
        if (index.count(v))
          needed.insert(v);
    if (needed.empty())
      return;

    int source = 2 * values.size(), sink = source + 1;
    auto in = [&](int i) { return 2 * i; };
    auto out = [&](int i) { return 2 * i + 1; };
    MaxFlow flow(sink + 1);
    for (auto [i, v] : llvm::enumerate(values)) {
      Operation *def = v.getDefiningOp();
      flow.addEdge(in(i), out(i), keptBytes(v));
      if (!isCheap(def))
        flow.addEdge(source, in(i), MaxFlow::kInfinite);
      for (Value operand : def->getOperands()) {
        auto it = index.find(operand);
        if (it != index.end())
          flow.addEdge(out(it->second), in(i), MaxFlow::kInfinite);
      }
    }
    for (Value v : needed) {
      flow.addEdge(out(index[v]), sink, MaxFlow::kInfinite);
      bytesBefore += valueBytes(v);
    }
    flow.run(source, sink);
    std::vector<bool> sinkSide = flow.reachesSink(sink);

    // Kept: the cut edges v_in -> v_out. Recomputed: v_in on the sink side.
    auto recomputed = [&](Value v) {
      auto it = index.find(v);
      return it != index.end() && sinkSide[in(it->second)];
    };
    IRMapping clones;
    OpBuilder builder(&getContext());
    // With keep-bf16 a kept f32 value is kept as its bf16 copy (made right
    // after it, or the forward's own copy); the backward widens it.
    llvm::DenseMap<Value, Value> narrow;
    for (auto [i, v] : llvm::enumerate(values)) {
      if (sinkSide[in(i)] || !sinkSide[out(i)])
        continue;
      bytesAfter += keptBytes(v);
      if (!narrowed(v))
        continue;
      Type bf16 = builder.getBF16Type();
      for (Operation *user : v.getUsers())
        if (auto cast = dyn_cast<CastOp>(user);
            cast && cast.getTo() == bf16 && cast->isBeforeInBlock(boundary))
          narrow[v] = cast.getResult();
      if (!narrow.count(v)) {
        builder.setInsertionPointAfterValue(v);
        narrow[v] = CastOp::create(builder, v.getLoc(),
                                   cast<RankedTensorType>(v.getType()).clone(bf16), v,
                                   TypeAttr::get(bf16));
      }
    }

    // Clone each recomputed value before its first backward reader.
    llvm::DenseSet<Value> keptCopies;
    for (auto &entry : narrow)
      keptCopies.insert(entry.second);
    std::function<Value(Value)> materialize = [&](Value v) -> Value {
      if (Value done = clones.lookupOrNull(v))
        return done;
      if (keptCopies.contains(v))
        return v; // the forward's bf16 copy, kept as it is
      if (auto it = narrow.find(v); it != narrow.end()) {
        Type f32 = builder.getF32Type();
        Value wide = CastOp::create(builder, v.getLoc(), v.getType(), it->second,
                                    TypeAttr::get(f32));
        clones.map(v, wide);
        return wide;
      }
      if (!recomputed(v))
        return v;
      Operation *def = v.getDefiningOp();
      for (Value operand : def->getOperands())
        clones.map(operand, materialize(operand));
      builder.clone(*def, clones);
      ++numRecomputed;
      return clones.lookup(v);
    };
    for (Operation *op = boundary->getNextNode(); op; op = op->getNextNode())
      for (OpOperand &use : op->getOpOperands()) {
        if (!recomputed(use.get()) && !narrow.count(use.get()))
          continue;
        if (keptCopies.contains(use.get()))
          continue;
        builder.setInsertionPoint(op);
        use.set(materialize(use.get()));
      }
  }
};

} // namespace
