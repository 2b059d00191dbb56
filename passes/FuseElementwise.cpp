//===- FuseElementwise.cpp - chains of elementwise ops as one kernel ------===//
//
// --vlora-fuse-elementwise: groups f32 elementwise ops (and their casts to
// and from bf16) that share an output shape into vlora.fused_elementwise
// ops, so that a chain reads its inputs once and writes only the values
// used outside it. See Passes.td.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "VLoRA/IR/VLoRAOps.h"
#include "vlora/kernels/Fused.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/TypeSwitch.h"

#include <optional>

namespace vlora {
#define GEN_PASS_DEF_VLORAFUSEELEMENTWISE
#include "passes/Passes.h.inc"
} // namespace vlora

using namespace mlir;
using namespace vlora;
using kernels::FusedOp;

namespace {

bool isF32Tensor(Value v) {
  auto t = dyn_cast<RankedTensorType>(v.getType());
  return t && t.hasStaticShape() && t.getElementType().isF32();
}

bool isBf16Tensor(Value v) {
  auto t = dyn_cast<RankedTensorType>(v.getType());
  return t && t.hasStaticShape() && t.getElementType().isBF16();
}

/// A splat f32 constant's value.
std::optional<float> splatConstant(Value v) {
  auto constant = v.getDefiningOp<ConstantOp>();
  if (!constant)
    return std::nullopt;
  auto dense = dyn_cast<DenseElementsAttr>(constant.getValue());
  if (!dense || !dense.isSplat() || !dense.getElementType().isF32())
    return std::nullopt;
  return dense.getSplatValue<float>();
}

/// The opcode of `op` and the operands it reads, when the op can join a
/// fused program: f32 in and out (the casts: f32 <-> bf16). Pow by a
/// one-element constant 2 with x of the result's shape is square (the CPU
/// kernel's x * x path); any other pow is the general one.
std::optional<std::pair<FusedOp, SmallVector<Value, 2>>> fusable(Operation *op) {
  if (op->getNumResults() != 1)
    return std::nullopt;
  Value result = op->getResult(0);
  if (auto cast = dyn_cast<CastOp>(op)) {
    if (isF32Tensor(cast.getInput()) && isBf16Tensor(result))
      return std::make_pair(FusedOp::RoundBF16, SmallVector<Value, 2>{cast.getInput()});
    if (isBf16Tensor(cast.getInput()) && isF32Tensor(result))
      return std::make_pair(FusedOp::WidenBF16, SmallVector<Value, 2>{cast.getInput()});
    return std::nullopt;
  }
  if (!isF32Tensor(result) || !llvm::all_of(op->getOperands(), isF32Tensor))
    return std::nullopt;
  auto unary = [&](FusedOp code) {
    return std::make_pair(code, SmallVector<Value, 2>{op->getOperand(0)});
  };
  auto binary = [&](FusedOp code) {
    return std::make_pair(code, SmallVector<Value, 2>{op->getOperand(0), op->getOperand(1)});
  };
  if (auto pow = dyn_cast<PowOp>(op)) {
    if (splatConstant(pow.getRhs()) == 2.0f &&
        cast<RankedTensorType>(pow.getRhs().getType()).getNumElements() == 1 &&
        pow.getLhs().getType() == result.getType())
      return std::make_pair(FusedOp::Square, SmallVector<Value, 2>{pow.getLhs()});
    return binary(FusedOp::Pow);
  }
  if (auto gelu = dyn_cast<GeluOp>(op))
    return unary(gelu.getApproximate() == GeluApproximation::tanh ? FusedOp::GeluTanh
                                                                     : FusedOp::Gelu);
  return llvm::TypeSwitch<Operation *,
                          std::optional<std::pair<FusedOp, SmallVector<Value, 2>>>>(op)
      .Case([&](NegOp) { return unary(FusedOp::Neg); })
      .Case([&](AbsOp) { return unary(FusedOp::Abs); })
      .Case([&](ExpOp) { return unary(FusedOp::Exp); })
      .Case([&](LogOp) { return unary(FusedOp::Log); })
      .Case([&](SqrtOp) { return unary(FusedOp::Sqrt); })
      .Case([&](RsqrtOp) { return unary(FusedOp::Rsqrt); })
      .Case([&](ReciprocalOp) { return unary(FusedOp::Reciprocal); })
      .Case([&](TanhOp) { return unary(FusedOp::Tanh); })
      .Case([&](ErfOp) { return unary(FusedOp::Erf); })
      .Case([&](SigmoidOp) { return unary(FusedOp::Sigmoid); })
      .Case([&](SiluOp) { return unary(FusedOp::Silu); })
      .Case([&](ReluOp) { return unary(FusedOp::Relu); })
      .Case([&](SinOp) { return unary(FusedOp::Sin); })
      .Case([&](CosOp) { return unary(FusedOp::Cos); })
      .Case([&](FloorOp) { return unary(FusedOp::Floor); })
      .Case([&](CeilOp) { return unary(FusedOp::Ceil); })
      .Case([&](AddOp) { return binary(FusedOp::Add); })
      .Case([&](SubOp) { return binary(FusedOp::Sub); })
      .Case([&](MulOp) { return binary(FusedOp::Mul); })
      .Case([&](DivOp) { return binary(FusedOp::Div); })
      .Case([&](MaxOp) { return binary(FusedOp::Max); })
      .Case([&](MinOp) { return binary(FusedOp::Min); })
      .Default([](Operation *) { return std::nullopt; });
}

struct Group {
  ArrayRef<int64_t> shape;
  int64_t first = 0, last = 0; // op positions
  SmallVector<Operation *> ops;
  llvm::SetVector<Value> inputs;
};

struct FuseElementwisePass
    : vlora::impl::VLoRAFuseElementwiseBase<FuseElementwisePass> {
  using Base::Base;

  void runOnOperation() override {
    for (auto func : getOperation().getOps<func::FuncOp>())
      if (!func.isExternal())
        fuse(func.getBody().front());
  }

  /// Moves each cast to bf16 above the data movement it follows
  /// (reshape, transpose, expand, slice whose only reader it is): the same
  /// values, but the data movement then moves bf16, and the cast can join
  /// the elementwise chain that made the f32 value.
  void hoistNarrowingCasts(Block &body) {
    SmallVector<CastOp> worklist(body.getOps<CastOp>());
    OpBuilder builder(&getContext());
    while (!worklist.empty()) {
      CastOp narrowing = worklist.pop_back_val();
      Operation *move = narrowing.getInput().getDefiningOp();
      if (!move || !isa<ReshapeOp, TransposeOp, ExpandOp, SliceOp>(move) ||
          !move->getResult(0).hasOneUse() || !isF32Tensor(narrowing.getInput()) ||
          !isBf16Tensor(narrowing.getResult()))
        continue;
      Value source = move->getOperand(0);
      if (!isF32Tensor(source))
        continue;
      builder.setInsertionPoint(move);
      auto sourceType = cast<RankedTensorType>(source.getType());
      auto narrow = CastOp::create(builder, narrowing.getLoc(),
                                   sourceType.clone(builder.getBF16Type()), source,
                                   narrowing.getToAttr());
      Operation *moved = builder.clone(*move);
      moved->setOperand(0, narrow.getResult());
      moved->getResult(0).setType(narrowing.getResult().getType());
      narrowing.getResult().replaceAllUsesWith(moved->getResult(0));
      narrowing.erase();
      move->erase();
      ++numHoisted;
      worklist.push_back(narrow);
    }
  }

  void fuse(Block &body) {
    hoistNarrowingCasts(body);
    llvm::DenseMap<Operation *, int64_t> position;
    for (Operation &op : body)
      position[&op] = position.size();
    auto definedBefore = [&](Value v, int64_t at) {
      Operation *def = v.getDefiningOp();
      return !def || position.lookup(def) < at;
    };

    std::vector<Group> groups;
    llvm::DenseMap<Operation *, size_t> groupOf;
    llvm::DenseMap<Operation *, std::pair<FusedOp, SmallVector<Value, 2>>> codes;
    for (Operation &op : body) {
      auto code = fusable(&op);
      if (!code)
        continue;
      codes[&op] = *code;
      int64_t at = position[&op];
      ArrayRef<int64_t> shape = cast<RankedTensorType>(op.getResult(0).getType()).getShape();
      // Join the latest group an operand comes from, when every other
      // operand exists where that group will run (its first op), the op is
      // near the group's end and the limits hold.
      std::optional<size_t> join;
      for (Value operand : code->second) {
        auto it = groupOf.find(operand.getDefiningOp());
        if (it == groupOf.end())
          continue;
        Group &g = groups[it->second];
        if (g.shape != shape || at - g.last > kWindow)
          continue;
        bool ready = llvm::all_of(code->second, [&](Value v) {
          auto other = groupOf.find(v.getDefiningOp());
          return (other != groupOf.end() && other->second == it->second) ||
                 definedBefore(v, g.first);
        });
        size_t newInputs = llvm::count_if(code->second, [&](Value v) {
          auto other = groupOf.find(v.getDefiningOp());
          bool inside = other != groupOf.end() && other->second == it->second;
          return !inside && !g.inputs.contains(v);
        });
        if (!ready ||
            int64_t(g.ops.size()) + 1 > kernels::kMaxFusedInstructions ||
            int64_t(g.inputs.size() + newInputs) > kernels::kMaxFusedInputs)
          continue;
        if (!join || groups[*join].first < g.first)
          join = it->second;
      }
      if (!join) {
        groups.push_back({shape, at, at, {}, {}});
        join = groups.size() - 1;
      }
      Group &g = groups[*join];
      for (Value v : code->second) {
        auto other = groupOf.find(v.getDefiningOp());
        if (other == groupOf.end() || other->second != *join)
          g.inputs.insert(v);
      }
      g.ops.push_back(&op);
      g.last = at;
      groupOf[&op] = *join;
    }

    OpBuilder builder(&getContext());
    // The results of groups already fused, by the value they replace (a
    // group's inputs come from groups that start before it).
    llvm::DenseMap<Value, Value> replaced;
    for (size_t id = 0; id < groups.size(); ++id) {
      Group &g = groups[id];
      if (g.ops.size() < 2)
        continue;
      // Registers: the inputs, then one per op in program order.
      llvm::DenseMap<Value, int64_t> reg;
      SmallVector<Value> inputs;
      for (Value v : g.inputs) {
        reg[v] = reg.size();
        inputs.push_back(replaced.lookup(v) ? replaced.lookup(v) : v);
      }
      SmallVector<int64_t> program, outputs;
      SmallVector<Value> results;
      SmallVector<Type> types;
      for (Operation *op : g.ops) {
        auto &[code, operands] = codes[op];
        program.push_back(static_cast<int64_t>(code));
        program.push_back(reg.lookup(operands[0]));
        program.push_back(operands.size() > 1 ? reg.lookup(operands[1]) : -1);
        Value result = op->getResult(0);
        reg[result] = reg.size();
        bool usedOutside = llvm::any_of(result.getUsers(), [&](Operation *user) {
          auto it = groupOf.find(user);
          return it == groupOf.end() || it->second != id;
        });
        if (usedOutside) {
          outputs.push_back(reg[result]);
          results.push_back(result);
          types.push_back(result.getType());
        }
      }
      // A chain nothing reads (dead code) is left as it is, as is one with
      // more results than a program may have.
      if (outputs.empty() || int64_t(outputs.size()) > kernels::kMaxFusedOutputs)
        continue;
      builder.setInsertionPoint(g.ops.front());
      SmallVector<Location> locs;
      for (Operation *op : g.ops)
        locs.push_back(op->getLoc());
      auto fused = FusedElementwiseOp::create(
          builder, builder.getFusedLoc(locs), types, inputs,
          builder.getDenseI64ArrayAttr(program), builder.getDenseI64ArrayAttr(outputs));
      for (NamedAttribute attr : g.ops.back()->getDiscardableAttrs())
        fused->setAttr(attr.getName(), attr.getValue());
      for (auto [old, replacement] : llvm::zip(results, fused.getResults())) {
        old.replaceAllUsesWith(replacement);
        replaced[old] = replacement;
      }
      for (Operation *op : llvm::reverse(g.ops))
        op->erase();
      ++numFused;
      numFusedOps += g.ops.size();
    }
  }

  /// How many ops after a group's last op one may still join it: fusing
  /// moves work to the group's first op, so far-apart ops (a backward use
  /// of a forward value) stay apart and keep their values' lifetimes.
  static constexpr int64_t kWindow = 16;
};

} // namespace
