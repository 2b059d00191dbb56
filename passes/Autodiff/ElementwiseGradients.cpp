//===- ElementwiseGradients.cpp - reverse rules of elementwise ops --------===//
//
// Broadcasting binary ops, unary math ops (the pieces the exporters decompose
// GELU, quick-GELU, SiLU and RMSNorm into), where and float casts. All are
// compositions of existing ops; a broadcast operand gets the result gradient
// summed back to its shape.
//
//===----------------------------------------------------------------------===//

#include "passes/Autodiff/GradientInterface.h"

#include "VLoRA/IR/VLoRADialect.h"
#include "VLoRA/IR/VLoRAOps.h"

#include "mlir/IR/Matchers.h"

#include <cmath>

using namespace mlir;
using namespace vlora;

namespace {

using Grads = SmallVectorImpl<Value>;

Type elementOf(Value v) {
  return cast<RankedTensorType>(v.getType()).getElementType();
}

/// Binary rules: `dl` / `dr` build the (unreduced) gradient of each side;
/// each is called only when that side needs a gradient.
template <typename OpT>
LogicalResult binaryGradients(OpT op, GradientBuilder &gb, Value dy,
                              ArrayRef<bool> needs, Grads &grads,
                              llvm::function_ref<Value()> dl,
                              llvm::function_ref<Value()> dr) {
  grads.push_back(needs[0] ? gb.sumToShape(dl(), op.getLhs().getType())
                           : Value());
  grads.push_back(needs[1] ? gb.sumToShape(dr(), op.getRhs().getType())
                           : Value());
  return success();
}

LogicalResult addGradient(AddOp op, GradientBuilder &gb, ArrayRef<Value> dys,
                          ArrayRef<bool> needs, Grads &grads) {
  Value dy = dys[0];
  return binaryGradients(
      op, gb, dy, needs, grads, [&] { return dy; }, [&] { return dy; });
}

LogicalResult subGradient(SubOp op, GradientBuilder &gb, ArrayRef<Value> dys,
                          ArrayRef<bool> needs, Grads &grads) {
  Value dy = dys[0];
  grads.push_back(needs[0] ? gb.sumToShape(dy, op.getLhs().getType())
                           : Value());
  grads.push_back(needs[1] ? gb.neg(gb.sumToShape(dy, op.getRhs().getType()))
                           : Value());
  return success();
}

LogicalResult mulGradient(MulOp op, GradientBuilder &gb, ArrayRef<Value> dys,
                          ArrayRef<bool> needs, Grads &grads) {
  Value dy = dys[0];
  return binaryGradients(
      op, gb, dy, needs, grads, [&] { return gb.mul(dy, op.getRhs()); },
      [&] { return gb.mul(dy, op.getLhs()); });
}

/// y = l / r: dl = dy / r, dr = -dy * y / r.
LogicalResult divGradient(DivOp op, GradientBuilder &gb, ArrayRef<Value> dys,
                          ArrayRef<bool> needs, Grads &grads) {
  Value dy = dys[0];
  return binaryGradients(
      op, gb, dy, needs, grads, [&] { return gb.div(dy, op.getRhs()); },
      [&] { return gb.neg(gb.div(gb.mul(dy, op.getResult()), op.getRhs())); });
}

/// y = l ^ r: dl = dy * r * l^(r-1), dr = dy * y * log(l). A constant
/// splat exponent c (RMSNorm's x^2) folds: c = 2 gives dy * 2l, c = 1 gives
/// dy, otherwise dy * c * l^(c-1) with c-1 a constant.
LogicalResult powGradient(PowOp op, GradientBuilder &gb, ArrayRef<Value> dys,
                          ArrayRef<bool> needs, Grads &grads) {
  Value dy = dys[0];
  std::optional<double> exponent;
  DenseElementsAttr constant;
  if (matchPattern(op.getRhs(), m_Constant(&constant)) && constant.isSplat() &&
      isa<FloatType>(constant.getElementType()))
    exponent = constant.getSplatValue<APFloat>().convertToDouble();
  return binaryGradients(
      op, gb, dy, needs, grads,
      [&] {
        Type e = elementOf(op.getLhs());
        if (exponent && *exponent == 1.0)
          return dy;
        if (exponent && *exponent == 2.0)
          return gb.mul(dy, gb.scale(op.getLhs(), 2.0));
        if (exponent)
          return gb.mul(gb.scale(dy, *exponent),
                        gb.create<PowOp>(op.getLhs(),
                                         gb.scalar(*exponent - 1.0, e))
                            .getResult());
        Value rm1 = gb.sub(op.getRhs(), gb.scalar(1.0, e));
        return gb.mul(dy,
                      gb.mul(op.getRhs(), gb.create<PowOp>(op.getLhs(), rm1)));
      },
      [&] {
        return gb.mul(gb.mul(dy, op.getResult()),
                      gb.create<LogOp>(op.getLhs()).getResult());
      });
}

/// y = max(l, r) / min(l, r): the gradient goes to the chosen side, split
/// evenly on ties (torch.maximum / torch.minimum).
template <typename OpT, typename ChooseLhs>
LogicalResult extremumGradient(OpT op, GradientBuilder &gb, ArrayRef<Value> dys,
                               ArrayRef<bool> needs, Grads &grads) {
  Value dy = dys[0], l = op.getLhs(), r = op.getRhs();
  Value zero = gb.scalar(0.0, elementOf(dy));
  Value half = gb.scale(dy, 0.5);
  Value tie = gb.create<EqualOp>(l, r).getResult();
  auto side = [&](Value first, Value second) {
    Value wins = gb.create<ChooseLhs>(first, second).getResult();
    Value shared = gb.create<WhereOp>(tie, half, zero).getResult();
    return gb.create<WhereOp>(wins, dy, shared).getResult();
  };
  return binaryGradients(
      op, gb, dy, needs, grads, [&] { return side(l, r); },
      [&] { return side(r, l); });
}
LogicalResult maxGradient(MaxOp op, GradientBuilder &gb, ArrayRef<Value> dys,
                          ArrayRef<bool> needs, Grads &grads) {
  return extremumGradient<MaxOp, GreaterOp>(op, gb, dys, needs, grads);
}
LogicalResult minGradient(MinOp op, GradientBuilder &gb, ArrayRef<Value> dys,
                          ArrayRef<bool> needs, Grads &grads) {
  return extremumGradient<MinOp, LessOp>(op, gb, dys, needs, grads);
}

/// Unary rules get the op, its result gradient, and build the input gradient.
template <typename OpT, Value (*Fn)(OpT, GradientBuilder &, Value)>
LogicalResult unaryGradient(OpT op, GradientBuilder &gb, ArrayRef<Value> dys,
                            ArrayRef<bool> needs, Grads &grads) {
  grads.push_back(needs[0] ? Fn(op, gb, dys[0]) : Value());
  return success();
}

Value negRule(NegOp, GradientBuilder &gb, Value dy) { return gb.neg(dy); }
Value expRule(ExpOp op, GradientBuilder &gb, Value dy) {
  return gb.mul(dy, op.getResult());
}
Value logRule(LogOp op, GradientBuilder &gb, Value dy) {
  return gb.div(dy, op.getInput());
}
/// y = sqrt(x): dx = dy * 0.5 / y.
Value sqrtRule(SqrtOp op, GradientBuilder &gb, Value dy) {
  return gb.div(gb.scale(dy, 0.5), op.getResult());
}
/// y = x^-1/2: dx = -0.5 * dy * y^3.
Value rsqrtRule(RsqrtOp op, GradientBuilder &gb, Value dy) {
  Value y = op.getResult();
  return gb.mul(gb.scale(dy, -0.5), gb.mul(y, gb.mul(y, y)));
}
/// y = 1/x: dx = -dy * y^2.
Value reciprocalRule(ReciprocalOp op, GradientBuilder &gb, Value dy) {
  Value y = op.getResult();
  return gb.neg(gb.mul(dy, gb.mul(y, y)));
}
/// dx = dy * (1 - y^2).
Value tanhRule(TanhOp op, GradientBuilder &gb, Value dy) {
  Value y = op.getResult();
  Value one = gb.scalar(1.0, elementOf(y));
  return gb.mul(dy, gb.sub(one, gb.mul(y, y)));
}
/// dx = dy * y * (1 - y).
Value sigmoidRule(SigmoidOp op, GradientBuilder &gb, Value dy) {
  Value y = op.getResult();
  Value one = gb.scalar(1.0, elementOf(y));
  return gb.mul(dy, gb.mul(y, gb.sub(one, y)));
}
/// dx = dy * 2/sqrt(pi) * exp(-x^2).
Value erfRule(ErfOp op, GradientBuilder &gb, Value dy) {
  Value x = op.getInput();
  Value e = gb.create<ExpOp>(gb.neg(gb.mul(x, x))).getResult();
  return gb.mul(gb.scale(dy, 2.0 / std::sqrt(M_PI)), e);
}
/// y = x * s(x): dx = dy * s * (1 + x * (1 - s)).
Value siluRule(SiluOp op, GradientBuilder &gb, Value dy) {
  Value x = op.getInput();
  Value s = gb.create<SigmoidOp>(x).getResult();
  Value one = gb.scalar(1.0, elementOf(x));
  return gb.mul(gb.mul(dy, s), gb.add(one, gb.mul(x, gb.sub(one, s))));
}
/// dx = dy * sign(x) (0 at 0, as torch.abs).
Value absRule(AbsOp op, GradientBuilder &gb, Value dy) {
  Value x = op.getInput();
  Value zero = gb.scalar(0.0, elementOf(x));
  Value negative = gb.create<LessOp>(x, zero).getResult();
  Value positive = gb.create<GreaterOp>(x, zero).getResult();
  Value below = gb.create<WhereOp>(negative, gb.neg(dy), zero).getResult();
  return gb.create<WhereOp>(positive, dy, below).getResult();
}
Value sinRule(SinOp op, GradientBuilder &gb, Value dy) {
  return gb.mul(dy, gb.create<CosOp>(op.getInput()).getResult());
}
Value cosRule(CosOp op, GradientBuilder &gb, Value dy) {
  return gb.neg(gb.mul(dy, gb.create<SinOp>(op.getInput()).getResult()));
}
/// Piecewise constant: zero almost everywhere (torch's floor/ceil).
template <typename OpT> Value zeroRule(OpT op, GradientBuilder &gb, Value) {
  return gb.zeros(cast<RankedTensorType>(op.getInput().getType()));
}
/// dx = where(x > 0, dy, 0).
Value reluRule(ReluOp op, GradientBuilder &gb, Value dy) {
  Value x = op.getInput();
  Value positive =
      gb.create<GreaterOp>(x, gb.scalar(0.0, elementOf(x))).getResult();
  return gb.create<WhereOp>(positive, dy, gb.scalar(0.0, elementOf(x)))
      .getResult();
}

/// Exact GELU: dx = dy * (Phi(x) + x * phi(x)). Tanh approximation
/// (gelu_pytorch_tanh) y = 0.5 x (1 + t), t = tanh(c (x + k x^3)):
/// dx = dy * (0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 k x^2)).
LogicalResult geluGradient(GeluOp op, GradientBuilder &gb, ArrayRef<Value> dys,
                           ArrayRef<bool> needs, Grads &grads) {
  if (!needs[0]) {
    grads.push_back(Value());
    return success();
  }
  Value x = op.getInput(), dy = dys[0];
  Type e = elementOf(x);
  Value one = gb.scalar(1.0, e);
  if (op.getApproximate() == GeluApproximation::tanh) {
    const double c = std::sqrt(2.0 / M_PI), k = 0.044715;
    Value x2 = gb.mul(x, x);
    Value inner = gb.scale(gb.add(x, gb.scale(gb.mul(x2, x), k)), c);
    Value t = gb.create<TanhOp>(inner).getResult();
    Value half1pt = gb.scale(gb.add(one, t), 0.5);
    Value sech2 = gb.sub(one, gb.mul(t, t));
    Value dinner = gb.scale(gb.add(one, gb.scale(x2, 3 * k)), c);
    Value d = gb.add(half1pt, gb.mul(gb.scale(gb.mul(x, sech2), 0.5), dinner));
    grads.push_back(gb.mul(dy, d));
    return success();
  }
  Value cdf = gb.scale(
      gb.add(one,
             gb.create<ErfOp>(gb.scale(x, 1.0 / std::sqrt(2.0))).getResult()),
      0.5);
  Value pdf =
      gb.scale(gb.create<ExpOp>(gb.scale(gb.mul(x, x), -0.5)).getResult(),
               1.0 / std::sqrt(2.0 * M_PI));
  grads.push_back(gb.mul(dy, gb.add(cdf, gb.mul(x, pdf))));
  return success();
}

/// result = c ? l : r; the condition is boolean and never active.
LogicalResult whereGradient(WhereOp op, GradientBuilder &gb,
                            ArrayRef<Value> dys, ArrayRef<bool> needs,
                            Grads &grads) {
  Value dy = dys[0];
  Value zero = gb.scalar(0.0, elementOf(dy));
  grads.push_back(Value());
  grads.push_back(
      needs[1]
          ? gb.sumToShape(
                gb.create<WhereOp>(op.getCondition(), dy, zero).getResult(),
                op.getLhs().getType())
          : Value());
  grads.push_back(
      needs[2]
          ? gb.sumToShape(
                gb.create<WhereOp>(op.getCondition(), zero, dy).getResult(),
                op.getRhs().getType())
          : Value());
  return success();
}

/// A float-to-float cast: the gradient is cast back. (Casts to or from
/// integers have an integer side, which is never active.)
LogicalResult castGradient(CastOp op, GradientBuilder &gb, ArrayRef<Value> dys,
                           ArrayRef<bool> needs, Grads &grads) {
  if (!needs[0]) {
    grads.push_back(Value());
    return success();
  }
  Type from = elementOf(op.getInput());
  grads.push_back(gb.create<CastOp>(dys[0], TypeAttr::get(from)).getResult());
  return success();
}

} // namespace

void vlora::registerElementwiseGradients(DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *ctx, VLoRADialect *) {
    AddOp::attachInterface<GradientRule<AddOp, addGradient>>(*ctx);
    SubOp::attachInterface<GradientRule<SubOp, subGradient>>(*ctx);
    MulOp::attachInterface<GradientRule<MulOp, mulGradient>>(*ctx);
    DivOp::attachInterface<GradientRule<DivOp, divGradient>>(*ctx);
    PowOp::attachInterface<GradientRule<PowOp, powGradient>>(*ctx);
    NegOp::attachInterface<GradientRule<NegOp, unaryGradient<NegOp, negRule>>>(
        *ctx);
    ExpOp::attachInterface<GradientRule<ExpOp, unaryGradient<ExpOp, expRule>>>(
        *ctx);
    LogOp::attachInterface<GradientRule<LogOp, unaryGradient<LogOp, logRule>>>(
        *ctx);
    SqrtOp::attachInterface<
        GradientRule<SqrtOp, unaryGradient<SqrtOp, sqrtRule>>>(*ctx);
    RsqrtOp::attachInterface<
        GradientRule<RsqrtOp, unaryGradient<RsqrtOp, rsqrtRule>>>(*ctx);
    ReciprocalOp::attachInterface<GradientRule<
        ReciprocalOp, unaryGradient<ReciprocalOp, reciprocalRule>>>(*ctx);
    TanhOp::attachInterface<
        GradientRule<TanhOp, unaryGradient<TanhOp, tanhRule>>>(*ctx);
    SigmoidOp::attachInterface<
        GradientRule<SigmoidOp, unaryGradient<SigmoidOp, sigmoidRule>>>(*ctx);
    ErfOp::attachInterface<GradientRule<ErfOp, unaryGradient<ErfOp, erfRule>>>(
        *ctx);
    SiluOp::attachInterface<
        GradientRule<SiluOp, unaryGradient<SiluOp, siluRule>>>(*ctx);
    ReluOp::attachInterface<
        GradientRule<ReluOp, unaryGradient<ReluOp, reluRule>>>(*ctx);
    GeluOp::attachInterface<GradientRule<GeluOp, geluGradient>>(*ctx);
    MaxOp::attachInterface<GradientRule<MaxOp, maxGradient>>(*ctx);
    MinOp::attachInterface<GradientRule<MinOp, minGradient>>(*ctx);
    AbsOp::attachInterface<GradientRule<AbsOp, unaryGradient<AbsOp, absRule>>>(
        *ctx);
    SinOp::attachInterface<GradientRule<SinOp, unaryGradient<SinOp, sinRule>>>(
        *ctx);
    CosOp::attachInterface<GradientRule<CosOp, unaryGradient<CosOp, cosRule>>>(
        *ctx);
    FloorOp::attachInterface<
        GradientRule<FloorOp, unaryGradient<FloorOp, zeroRule<FloorOp>>>>(*ctx);
    CeilOp::attachInterface<
        GradientRule<CeilOp, unaryGradient<CeilOp, zeroRule<CeilOp>>>>(*ctx);
    WhereOp::attachInterface<GradientRule<WhereOp, whereGradient>>(*ctx);
    CastOp::attachInterface<GradientRule<CastOp, castGradient>>(*ctx);
  });
}
