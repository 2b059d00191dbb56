//===- NormalizationGradients.cpp - reverse rules of norms and reductions -===//
//
// softmax and layer_norm use the dedicated softmax_grad / layer_norm_grad ops
// (a composition would keep several full-size intermediates); log_softmax
// and rms_norm are compositions; reductions broadcast the gradient back; a
// cumulative sum's gradient is the cumulative sum the other way.
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

/// The axes [axis, rank) of `v`'s type.
DenseI64ArrayAttr trailingAxes(GradientBuilder &gb, Value v, int64_t axis) {
  int64_t rank = cast<RankedTensorType>(v.getType()).getRank();
  SmallVector<int64_t> axes;
  for (int64_t i = axis < 0 ? axis + rank : axis; i < rank; ++i)
    axes.push_back(i);
  return gb.getBuilder().getDenseI64ArrayAttr(axes);
}

/// y = x - logsumexp(x): dx = dy - exp(y) * sum(dy, axis).
LogicalResult logSoftmaxGradient(LogSoftmaxOp op, GradientBuilder &gb,
                                 ArrayRef<Value> dys, ArrayRef<bool> needs,
                                 Grads &grads) {
  if (!needs[0]) {
    grads.push_back(Value());
    return success();
  }
  Value dy = dys[0];
  int64_t rank = cast<RankedTensorType>(dy.getType()).getRank();
  int64_t axis = op.getAxisAttr().getInt();
  if (axis < 0)
    axis += rank;
  Value sum = gb.create<ReduceSumOp>(
                    dy, gb.getBuilder().getDenseI64ArrayAttr({axis}),
                    gb.getBuilder().getUnitAttr())
                  .getResult();
  Value p = gb.create<ExpOp>(op.getResult()).getResult();
  grads.push_back(gb.sub(dy, gb.mul(p, sum)));
  return success();
}

/// y = x * r * g with r = (mean(x^2) + eps)^-1/2 over [axis, rank):
/// dx = r * (g*dy - xhat * mean(g*dy * xhat)), xhat = x * r;
/// dscale = Σ dy * xhat over the leading dimensions.
LogicalResult rmsNormGradient(RmsNormOp op, GradientBuilder &gb,
                              ArrayRef<Value> dys, ArrayRef<bool> needs,
                              Grads &grads) {
  Value dy = dys[0], x = op.getInput();
  auto axes = trailingAxes(gb, x, op.getAxisAttr().getInt());
  UnitAttr keep = gb.getBuilder().getUnitAttr();
  Type e = cast<RankedTensorType>(x.getType()).getElementType();
  Value meanSquare =
      gb.create<ReduceMeanOp>(gb.mul(x, x), axes, keep).getResult();
  Value r = gb.create<RsqrtOp>(
                  gb.add(meanSquare, gb.scalar(op.getEpsilon().convertToDouble(), e)))
                .getResult();
  Value xhat = gb.mul(x, r);
  if (needs[0]) {
    Value gdy = gb.mul(dy, op.getScale());
    Value m = gb.create<ReduceMeanOp>(gb.mul(gdy, xhat), axes, keep).getResult();
    grads.push_back(gb.mul(r, gb.sub(gdy, gb.mul(xhat, m))));
  } else {
    grads.push_back(Value());
  }
  grads.push_back(needs[1] ? gb.sumToShape(gb.mul(dy, xhat), op.getScale().getType())
                           : Value());
  return success();
}

/// y = cumsum(x) along axis: dx = the cumulative sum of dy the other way
/// (the same exclusivity).
LogicalResult cumsumGradient(CumsumOp op, GradientBuilder &gb,
                             ArrayRef<Value> dys, ArrayRef<bool> needs,
                             Grads &grads) {
  OpBuilder &b = gb.getBuilder();
  grads.push_back(needs[0] ? gb.create<CumsumOp>(dys[0], op.getAxisAttr(),
                                                 op.getExclusiveAttr(),
                                                 op.getReverse() ? UnitAttr()
                                                                 : b.getUnitAttr())
                                 .getResult()
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
    LogSoftmaxOp::attachInterface<
        GradientRule<LogSoftmaxOp, logSoftmaxGradient>>(*ctx);
    RmsNormOp::attachInterface<GradientRule<RmsNormOp, rmsNormGradient>>(*ctx);
    CumsumOp::attachInterface<GradientRule<CumsumOp, cumsumGradient>>(*ctx);
  });
}
