//===- LinalgGradients.cpp - reverse rules of matmul and lora_matmul ------===//
//
// matmul's rule is two matmuls with flipped transpose flags (summed back over
// broadcast batch dimensions); lora_matmul's is the dedicated
// vlora.lora_matmul_grad, which never forms a gradient of the frozen weight.
//
//===----------------------------------------------------------------------===//

#include "passes/Autodiff/GradientInterface.h"

#include "VLoRA/IR/VLoRADialect.h"
#include "VLoRA/IR/VLoRAOps.h"

using namespace mlir;
using namespace vlora;

namespace {

using Grads = SmallVectorImpl<Value>;

/// A gradient product; `f32Result` is the forward op's (bf16 operands with
/// an f32 result stay so in the backward).
Value matmul(GradientBuilder &gb, Value lhs, Value rhs, bool ta, bool tb,
             UnitAttr f32Result) {
  OpBuilder &b = gb.getBuilder();
  return gb
      .create<MatmulOp>(lhs, rhs, ta ? b.getUnitAttr() : UnitAttr(),
                        tb ? b.getUnitAttr() : UnitAttr(), f32Result)
      .getResult();
}

/// y = op_a(A) · op_b(B), op_x = transpose of the last two dims when the flag
/// is set.
LogicalResult matmulGradient(MatmulOp op, GradientBuilder &gb,
                             ArrayRef<Value> dys, ArrayRef<bool> needs,
                             Grads &grads) {
  Value dy = dys[0], a = op.getLhs(), b = op.getRhs();
  bool ta = op.getTransposeA(), tb = op.getTransposeB();
  UnitAttr f32 = op.getF32ResultAttr();
  Value da, db;
  if (needs[0]) {
    // d op_a(A) = dy · op_b(B)ᵀ; with transpose_a, dA = op_b(B) · dyᵀ.
    da = ta ? matmul(gb, b, dy, tb, true, f32)
            : matmul(gb, dy, b, false, !tb, f32);
    da = gb.sumToShape(da, a.getType());
  }
  if (needs[1]) {
    // d op_b(B) = op_a(A)ᵀ · dy; with transpose_b, dB = dyᵀ · op_a(A).
    db = tb ? matmul(gb, dy, a, true, ta, f32)
            : matmul(gb, a, dy, !ta, false, f32);
    db = gb.sumToShape(db, b.getType());
  }
  grads.push_back(da);
  grads.push_back(db);
  return success();
}

LogicalResult loraMatmulGradient(LoRAMatmulOp op, GradientBuilder &gb,
                                 ArrayRef<Value> dys, ArrayRef<bool> needs,
                                 Grads &grads) {
  if (needs[1])
    return op.emitOpError("frozen weight depends on a trainable parameter; "
                          "lora_matmul has no gradient for its weight");
  OpBuilder &b = gb.getBuilder();
  if (op.getRng() && needs[4])
    return op.emitOpError("the dropout rng cannot depend on a trainable "
                          "parameter");
  // The forward's rng and stream: the backward draws the same dropout mask.
  auto grad = gb.create<LoRAMatmulGradOp>(
      dys[0], op.getX(), op.getW(), op.getA(), op.getB(), op.getRng(),
      op.getScaleAttr(), op.getDropoutAttr(), op.getTransposeBAttr(),
      needs[0] ? b.getUnitAttr() : UnitAttr(), op.getStreamAttr(),
      op.getF32ResultAttr());
  grads.push_back(needs[0] ? grad.getGradX() : Value());
  grads.push_back(Value());
  grads.push_back(needs[2] ? grad.getGradA() : Value());
  grads.push_back(needs[3] ? grad.getGradB() : Value());
  if (op.getRng())
    grads.push_back(Value());
  return success();
}

/// dq, dk, dv by one attention_grad (the probabilities recomputed there);
/// the mask (an input, e.g. the padding mask) gets no gradient.
LogicalResult attentionGradient(AttentionOp op, GradientBuilder &gb,
                                ArrayRef<Value> dys, ArrayRef<bool> needs,
                                Grads &grads) {
  if (op.getMask() && needs[3])
    return op.emitOpError("the attention mask depends on a trainable "
                          "parameter; vlora.attention has no gradient for it");
  if (!needs[0] && !needs[1] && !needs[2]) {
    grads.append(op->getNumOperands(), Value());
    return success();
  }
  auto grad = gb.create<AttentionGradOp>(dys[0], op.getQ(), op.getK(),
                                         op.getV(), op.getMask(),
                                         op.getScaleAttr(),
                                         op.getTransposeKAttr(),
                                         op.getF32ResultAttr());
  grads.push_back(needs[0] ? grad.getGradQ() : Value());
  grads.push_back(needs[1] ? grad.getGradK() : Value());
  grads.push_back(needs[2] ? grad.getGradV() : Value());
  if (op.getMask())
    grads.push_back(Value());
  return success();
}

} // namespace

void vlora::registerLinalgGradients(DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *ctx, VLoRADialect *) {
    MatmulOp::attachInterface<GradientRule<MatmulOp, matmulGradient>>(*ctx);
    LoRAMatmulOp::attachInterface<
        GradientRule<LoRAMatmulOp, loraMatmulGradient>>(*ctx);
    AttentionOp::attachInterface<
        GradientRule<AttentionOp, attentionGradient>>(*ctx);
  });
}
