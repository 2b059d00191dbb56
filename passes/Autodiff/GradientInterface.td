//===- GradientInterface.td - reverse-mode rules of vlora ops -*- tablegen -*-===//
//
// The op interface through which --vlora-build-training-step asks an op for
// the adjoints of its operands. Rules are attached to the vlora ops as
// external models, one file per op family (passes/Autodiff/*Gradients.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_AUTODIFF_GRADIENT_INTERFACE_TD
#define VLORA_AUTODIFF_GRADIENT_INTERFACE_TD

include "mlir/IR/OpBase.td"

def VLoRAGradientOpInterface : OpInterface<"GradientOpInterface"> {
  let cppNamespace = "::vlora";
  let description = [{
    The reverse-mode rule of an op (Enzyme-MLIR's `AutoDiffOpInterface`,
    ONNX Runtime's gradient builder): given the adjoints of the op's results
    and, per operand, whether that operand needs a gradient (it is active:
    it depends on a trainable parameter and reaches the loss), the rule
    emits, through the builder, ops computing the adjoint of every operand
    that needs one, and leaves the others null. A rule never emits a
    gradient that is not needed, so a frozen weight never gets one.
  }];
  let methods = [
    InterfaceMethod<[{
        Appends one value per operand to `operandGrads`: its adjoint (with the
        operand's type) where `needsGradient` is set, null elsewhere.
        `resultGrads` has one entry per result; an entry is null when that
        result has no adjoint (it does not reach the loss), and at least one
        entry is non-null. Emits an error at the op and fails when the rule
        cannot handle this instance.
      }],
      "::llvm::LogicalResult", "buildGradients",
      (ins "::vlora::GradientBuilder &":$builder,
           "::llvm::ArrayRef<::mlir::Value>":$resultGrads,
           "::llvm::ArrayRef<bool>":$needsGradient,
           "::llvm::SmallVectorImpl<::mlir::Value> &":$operandGrads)>
  ];
}

#endif // VLORA_AUTODIFF_GRADIENT_INTERFACE_TD
