//===- NormalizationGradients.cpp - reverse rules of norms and reductions -===//
//
// softmax and layer_norm use the dedicated softmax_grad / layer_norm_grad ops
// (a composition would keep several full-size intermediates); reductions
// broadcast the gradient back.
//
//===----------------------------------------------------------------------===//

#include "passes/Autodiff/GradientInterface.h"

#include "VLoRA/IR/VLoRADialect.h"
#include "VLoRA/IR/VLoRAOps.h"

using namespace mlir;
using namespace vlora;

namespace {

using Grads = SmallVectorImpl<Value>;

LogicalResult softmaxGradient(SoftmaxOp op, GradientBuilder &gb,
                              ArrayRef<Value> dys, ArrayRef<bool> needs,
                              Grads &grads) {
  grads.push_back(needs[0] ? gb.create<SoftmaxGradOp>(dys[0], op.getResult(),
                                                      op.getAxisAttr())
                                 .getResult()
                           : Value());
  return success();
}

/// dx by layer_norm_grad; dscale = Σ dy * xhat and dbias = Σ dy over the
/// leading dimensions (xhat recomputed as layer_norm(x) with unit scale).
LogicalResult layerNormGradient(LayerNormOp op, GradientBuilder &gb,
                                ArrayRef<Value> dys, ArrayRef<bool> needs,
                                Grads &grads) {
  Value dy = dys[0];
  grads.push_back(needs[0] ? gb.create<LayerNormGradOp>(
                                   dy, op.getInput(), op.getScale(),
                                   op.getAxisAttr(), op.getEpsilonAttr())
                                 .getResult()
                           : Value());
  if (needs[1]) {
    auto scaleType = cast<RankedTensorType>(op.getScale().getType());
    Value ones = gb.create<ConstantOp>(DenseElementsAttr::get(
        scaleType, FloatAttr::get(scaleType.getElementType(), 1.0)));
    Value xhat = gb.create<LayerNormOp>(op.getInput(), ones, Value(),
                                        op.getAxisAttr(), op.getEpsilonAttr())
                     .getResult();
    grads.push_back(gb.sumToShape(gb.mul(dy, xhat), scaleType));
  } else {
    grads.push_back(Value());
  }
  if (op.getBias())
    grads.push_back(needs[2] ? gb.sumToShape(dy, op.getBias().getType())
                             : Value());
  return success();
}

/// The gradient of a reduction over `axes`, broadcast back to the input:
/// dy (with the reduced dimensions restored as 1) expanded, times `factor`.
template <typename OpT>
Value broadcastBack(OpT op, GradientBuilder &gb, Value dy, double factor) {
  auto in = cast<RankedTensorType>(op.getInput().getType());
  SmallVector<int64_t> kept(in.getShape());
  for (int64_t axis : op.getAxes())
    kept[axis] = 1;
  Value g = gb.reshape(dy, kept);
  if (factor != 1.0)
    g = gb.scale(g, factor);
  if (in.getShape() != ArrayRef<int64_t>(kept))
    g = gb.create<ExpandOp>(g,
                            gb.getBuilder().getDenseI64ArrayAttr(in.getShape()))
            .getResult();
  return g;
}

LogicalResult reduceSumGradient(ReduceSumOp op, GradientBuilder &gb,
                                ArrayRef<Value> dys, ArrayRef<bool> needs,
                                Grads &grads) {
  grads.push_back(needs[0] ? broadcastBack(op, gb, dys[0], 1.0) : Value());
  return success();
}

LogicalResult reduceMeanGradient(ReduceMeanOp op, GradientBuilder &gb,
                                 ArrayRef<Value> dys, ArrayRef<bool> needs,
                                 Grads &grads) {
  auto in = cast<RankedTensorType>(op.getInput().getType());
  int64_t n = 1;
  for (int64_t axis : op.getAxes())
    n *= in.getDimSize(axis);
  grads.push_back(needs[0] ? broadcastBack(op, gb, dys[0], 1.0 / n) : Value());
  return success();
}

} // namespace

void vlora::registerNormalizationGradients(DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *ctx, VLoRADialect *) {
    SoftmaxOp::attachInterface<GradientRule<SoftmaxOp, softmaxGradient>>(*ctx);
    LayerNormOp::attachInterface<GradientRule<LayerNormOp, layerNormGradient>>(
        *ctx);
    ReduceSumOp::attachInterface<GradientRule<ReduceSumOp, reduceSumGradient>>(
        *ctx);
    ReduceMeanOp::attachInterface<
        GradientRule<ReduceMeanOp, reduceMeanGradient>>(*ctx);
  });
}
