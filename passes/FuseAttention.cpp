//===- FuseAttention.cpp - decomposed attention into vlora.attention ------===//
//
// --vlora-fuse-attention: matmul(q, k) [* or / scale] [+ mask] -> softmax
// over the last axis -> matmul(p, v) becomes one vlora.attention. See
// Passes.td.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "VLoRA/IR/VLoRAOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"

#include <cmath>
#include <optional>

namespace vlora {
#define GEN_PASS_DEF_VLORAFUSEATTENTION
#include "passes/Passes.h.inc"
} // namespace vlora

using namespace mlir;
using namespace vlora;

namespace {

/// The value of a one-element float constant.
std::optional<double> scalarConstant(Value v) {
  auto constant = v.getDefiningOp<ConstantOp>();
  if (!constant)
    return std::nullopt;
  auto elements = dyn_cast<DenseElementsAttr>(constant.getValue());
  if (!elements || elements.getNumElements() != 1 ||
      !isa<FloatType>(elements.getElementType()))
    return std::nullopt;
  return (*elements.getValues<APFloat>().begin()).convertToDouble();
}

/// One matched attention block.
struct Match {
  MatmulOp scores, output;
  Operation *scaleOp = nullptr, *maskOp = nullptr;
  SoftmaxOp softmax;
  Value mask;
  double scale = 1.0;
};

/// Whether `op`'s single result has exactly one use.
bool singleUse(Operation *op) {
  return op->getNumResults() == 1 && op->getResult(0).hasOneUse();
}

std::optional<Match> match(SoftmaxOp softmax) {
  Match m;
  m.softmax = softmax;
  auto type = cast<RankedTensorType>(softmax.getType());
  int64_t rank = type.getRank();
  int64_t axis = softmax.getAxis();
  if (rank < 2 || (axis != rank - 1 && axis != -1))
    return std::nullopt;
  if (!softmax.getResult().hasOneUse())
    return std::nullopt;
  m.output = dyn_cast<MatmulOp>(*softmax.getResult().getUsers().begin());
  if (!m.output || m.output.getLhs() != softmax.getResult() ||
      m.output.getTransposeA() || m.output.getTransposeB() ||
      m.output.getF32Result())
    return std::nullopt;

  Value x = softmax.getInput();
  // + mask, either operand; the other continues the chain.
  if (auto add = x.getDefiningOp<AddOp>(); add && singleUse(add)) {
    for (auto [chain, mask] : {std::pair(add.getLhs(), add.getRhs()),
                               std::pair(add.getRhs(), add.getLhs())}) {
      if (chain.getType() != type)
        continue;
      Operation *def = chain.getDefiningOp();
      if (!def || !isa<MulOp, DivOp, MatmulOp>(def))
        continue;
      m.maskOp = add;
      m.mask = mask;
      x = chain;
      break;
    }
    if (!m.maskOp)
      return std::nullopt;
  }
  // * scale or / scale, a one-element constant on either side of a mul.
  if (Operation *def = x.getDefiningOp(); def && isa<MulOp, DivOp>(def)) {
    if (!singleUse(def))
      return std::nullopt;
    Value lhs = def->getOperand(0), rhs = def->getOperand(1);
    std::optional<double> c = scalarConstant(rhs);
    Value chain = lhs;
    if (!c && isa<MulOp>(def)) {
      c = scalarConstant(lhs);
      chain = rhs;
    }
    if (!c || chain.getType() != type)
      return std::nullopt;
    m.scale = isa<DivOp>(def) ? 1.0 / *c : *c;
    if (!std::isfinite(m.scale))
      return std::nullopt;
    m.scaleOp = def;
    x = chain;
  }
  m.scores = x.getDefiningOp<MatmulOp>();
  if (!m.scores || !singleUse(m.scores) || m.scores.getTransposeA() ||
      m.scores.getF32Result() || m.scores.getType() != type)
    return std::nullopt;

  // q, k, v of one rank, element type and leading dimensions (no
  // broadcasting between them); the mask broadcasts to the scores.
  auto q = cast<RankedTensorType>(m.scores.getLhs().getType());
  auto k = cast<RankedTensorType>(m.scores.getRhs().getType());
  auto v = cast<RankedTensorType>(m.output.getRhs().getType());
  Type element = type.getElementType();
  if (q.getRank() != rank || k.getRank() != rank || v.getRank() != rank ||
      q.getElementType() != element || k.getElementType() != element ||
      v.getElementType() != element)
    return std::nullopt;
  ArrayRef<int64_t> batch = type.getShape().drop_back(2);
  if (q.getShape().drop_back(2) != batch || k.getShape().drop_back(2) != batch ||
      v.getShape().drop_back(2) != batch)
    return std::nullopt;
  if (m.mask) {
    auto mask = cast<RankedTensorType>(m.mask.getType());
    if (mask.getElementType() != element || mask.getRank() > rank)
      return std::nullopt;
    for (int64_t i = 0; i < mask.getRank(); ++i) {
      int64_t d = mask.getDimSize(mask.getRank() - 1 - i);
      if (d != 1 && d != type.getDimSize(rank - 1 - i))
        return std::nullopt;
    }
  }
  return m;
}

struct VLoRAFuseAttentionPass
    : vlora::impl::VLoRAFuseAttentionBase<VLoRAFuseAttentionPass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<SoftmaxOp> softmaxes;
    getOperation().walk([&](SoftmaxOp op) { softmaxes.push_back(op); });
    for (SoftmaxOp softmax : softmaxes) {
      std::optional<Match> m = match(softmax);
      if (!m)
        continue;
      OpBuilder b(m->output);
      auto fused = AttentionOp::create(
          b, m->output.getLoc(), m->scores.getLhs(), m->scores.getRhs(),
          m->output.getRhs(), m->mask, b.getF64FloatAttr(m->scale),
          m->scores.getTransposeBAttr(), /*f32_result=*/UnitAttr());
      // The tower tags of the block (its output matmul's) stay with it.
      for (NamedAttribute attr : m->output->getDiscardableAttrs())
        fused->setAttr(attr.getName(), attr.getValue());
      m->output.getResult().replaceAllUsesWith(fused.getResult());
      m->output.erase();
      m->softmax.erase();
      if (m->maskOp)
        m->maskOp->erase();
      if (m->scaleOp)
        m->scaleOp->erase();
      m->scores.erase();
      ++numFused;
    }
  }
};

} // namespace
