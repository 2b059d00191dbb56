//===- GradientBuilder.h - what a reverse rule builds with ------*- C++ -*-===//
//
// The builder a reverse rule (VLoRAGradientOpInterface) emits its ops with:
// an OpBuilder positioned in the backward sweep, the forward op's location,
// and the few compositions every rule family needs (scalar constants, zeros,
// summing a broadcast gradient back to an operand's shape).
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_PASSES_AUTODIFF_GRADIENTBUILDER_H
#define VLORA_PASSES_AUTODIFF_GRADIENTBUILDER_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"

namespace vlora {

class GradientBuilder {
public:
  GradientBuilder(mlir::OpBuilder &builder, mlir::Operation *forward)
      : builder(builder), forward(forward), loc(forward->getLoc()) {}

  mlir::OpBuilder &getBuilder() { return builder; }
  mlir::Location getLoc() const { return loc; }
  /// The forward op whose reverse rule is being built.
  mlir::Operation *getForwardOp() const { return forward; }

  /// Creates `OpT` at the forward op's location.
  template <typename OpT, typename... Args> OpT create(Args &&...args) {
    return OpT::create(builder, loc, std::forward<Args>(args)...);
  }

  /// A rank-0 constant of element type `element`.
  mlir::Value scalar(double value, mlir::Type element);
  /// A splat constant 0 of `type`.
  mlir::Value zeros(mlir::RankedTensorType type);

  mlir::Value add(mlir::Value lhs, mlir::Value rhs);
  mlir::Value sub(mlir::Value lhs, mlir::Value rhs);
  mlir::Value mul(mlir::Value lhs, mlir::Value rhs);
  mlir::Value div(mlir::Value lhs, mlir::Value rhs);
  mlir::Value neg(mlir::Value value);
  /// `value * c` with `c` a scalar of `value`'s element type.
  mlir::Value scale(mlir::Value value, double c);
  mlir::Value reshape(mlir::Value value, llvm::ArrayRef<int64_t> shape);

  /// The gradient of a broadcast: sums `grad` (the broadcast result's shape)
  /// over the dimensions `target` was broadcast along, then reshapes it to
  /// `target`'s shape. Returns `grad` itself when the shapes agree.
  mlir::Value sumToShape(mlir::Value grad, mlir::Type target);

private:
  mlir::OpBuilder &builder;
  mlir::Operation *forward;
  mlir::Location loc;
};

} // namespace vlora

#endif // VLORA_PASSES_AUTODIFF_GRADIENTBUILDER_H
