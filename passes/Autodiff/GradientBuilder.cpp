//===- GradientBuilder.cpp - what a reverse rule builds with --------------===//
//
// The compositions shared by the reverse rules, and the generated interface
// definitions.
//
//===----------------------------------------------------------------------===//

#include "passes/Autodiff/GradientBuilder.h"
#include "passes/Autodiff/GradientInterface.h"

#include "VLoRA/IR/VLoRAOps.h"

#include "mlir/IR/BuiltinAttributes.h"

using namespace mlir;
using namespace vlora;

#include "passes/Autodiff/GradientInterface.cpp.inc"

static Attribute floatOrIntAttr(Type element, double value) {
  if (isa<FloatType>(element))
    return FloatAttr::get(element, value);
  return IntegerAttr::get(element, static_cast<int64_t>(value));
}

Value GradientBuilder::scalar(double value, Type element) {
  auto type = RankedTensorType::get({}, element);
  return create<ConstantOp>(
      DenseElementsAttr::get(type, floatOrIntAttr(element, value)));
}

Value GradientBuilder::zeros(RankedTensorType type) {
  return create<ConstantOp>(
      DenseElementsAttr::get(type, floatOrIntAttr(type.getElementType(), 0)));
}

Value GradientBuilder::add(Value lhs, Value rhs) {
  return create<AddOp>(lhs, rhs);
}
Value GradientBuilder::sub(Value lhs, Value rhs) {
  return create<SubOp>(lhs, rhs);
}
Value GradientBuilder::mul(Value lhs, Value rhs) {
  return create<MulOp>(lhs, rhs);
}
Value GradientBuilder::div(Value lhs, Value rhs) {
  return create<DivOp>(lhs, rhs);
}
Value GradientBuilder::neg(Value value) { return create<NegOp>(value); }

Value GradientBuilder::scale(Value value, double c) {
  return mul(
      value,
      scalar(c, cast<RankedTensorType>(value.getType()).getElementType()));
}

Value GradientBuilder::reshape(Value value, ArrayRef<int64_t> shape) {
  if (cast<RankedTensorType>(value.getType()).getShape() == shape)
    return value;
  return create<ReshapeOp>(value, builder.getDenseI64ArrayAttr(shape));
}

Value GradientBuilder::sumToShape(Value grad, Type target) {
  auto type = cast<RankedTensorType>(grad.getType());
  ArrayRef<int64_t> from = type.getShape(),
                    to = cast<RankedTensorType>(target).getShape();
  if (from == to)
    return grad;
  int64_t lead =
      static_cast<int64_t>(from.size()) - static_cast<int64_t>(to.size());
  SmallVector<int64_t> axes;
  for (int64_t i = 0, e = from.size(); i < e; ++i)
    if (i < lead || (to[i - lead] == 1 && from[i] != 1))
      axes.push_back(i);
  Value summed = grad;
  if (!axes.empty())
    summed = create<ReduceSumOp>(grad, builder.getDenseI64ArrayAttr(axes),
                                 builder.getUnitAttr());
  return reshape(summed, to);
}

void vlora::registerGradientInterfaceModels(DialectRegistry &registry) {
  registerElementwiseGradients(registry);
  registerLinalgGradients(registry);
  registerNormalizationGradients(registry);
  registerDataMovementGradients(registry);
}
