//===- GradientInterface.h - reverse-mode rules of vlora ops ----*- C++ -*-===//
//
// VLoRAGradientOpInterface (generated from GradientInterface.td) and the
// registration of the rules, attached to the vlora ops as external models.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_PASSES_AUTODIFF_GRADIENTINTERFACE_H
#define VLORA_PASSES_AUTODIFF_GRADIENTINTERFACE_H

#include "passes/Autodiff/GradientBuilder.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/OpDefinition.h"

#include "passes/Autodiff/GradientInterface.h.inc"

namespace vlora {

/// The signature of one op's reverse rule (see buildGradients in
/// GradientInterface.td).
template <typename OpT>
using GradientRuleFn = llvm::LogicalResult (*)(
    OpT op, GradientBuilder &builder, llvm::ArrayRef<mlir::Value> resultGrads,
    llvm::ArrayRef<bool> needsGradient,
    llvm::SmallVectorImpl<mlir::Value> &operandGrads);

/// Attaches `Rule` to `OpT` as its VLoRAGradientOpInterface model.
template <typename OpT, GradientRuleFn<OpT> Rule>
struct GradientRule
    : GradientOpInterface::ExternalModel<GradientRule<OpT, Rule>, OpT> {
  llvm::LogicalResult
  buildGradients(mlir::Operation *op, GradientBuilder &builder,
                 llvm::ArrayRef<mlir::Value> resultGrads,
                 llvm::ArrayRef<bool> needsGradient,
                 llvm::SmallVectorImpl<mlir::Value> &operandGrads) const {
    return Rule(llvm::cast<OpT>(op), builder, resultGrads, needsGradient,
                operandGrads);
  }
};

/// Registers every reverse rule (all families) with `registry`.
void registerGradientInterfaceModels(mlir::DialectRegistry &registry);

// One per op family, each in passes/Autodiff/<Family>Gradients.cpp.
void registerElementwiseGradients(mlir::DialectRegistry &registry);
void registerLinalgGradients(mlir::DialectRegistry &registry);
void registerNormalizationGradients(mlir::DialectRegistry &registry);
void registerDataMovementGradients(mlir::DialectRegistry &registry);

} // namespace vlora

#endif // VLORA_PASSES_AUTODIFF_GRADIENTINTERFACE_H
