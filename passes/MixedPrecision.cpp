//===- MixedPrecision.cpp - frozen matmul weights in bf16 -----------------===//
//
// --vlora-mixed-precision{compute=bf16} retypes the frozen f32 weights that
// only matmul-family ops read as their weight operand to bf16 parameters of
// the bundle file weights.bf16.bin; vlora-compile writes that file from the
// locations kept in `vlora.converted_from`. See Passes.td.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "VLoRA/IR/VLoRAOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"

#include <map>
#include <string>

namespace vlora {
#define GEN_PASS_DEF_VLORAMIXEDPRECISION
#include "passes/Passes.h.inc"
} // namespace vlora

using namespace mlir;
using namespace vlora;

namespace {

/// The bundle file of the converted weights.
constexpr llvm::StringLiteral kConvertedFile = "weights.bf16.bin";

bool isWeightOperand(OpOperand &use);

/// A transpose whose every result use is a weight operand (the dynamo
/// exporter's `MatMul(x, Transpose(W))`): it moves the bf16 weight as it
/// moved the f32 one.
bool isWeightTranspose(Operation *op) {
  auto transpose = dyn_cast<TransposeOp>(op);
  if (!transpose || transpose.getResult().use_empty())
    return false;
  for (OpOperand &use : transpose.getResult().getUses())
    if (!isWeightOperand(use))
      return false;
  return true;
}

/// Whether `use` is the weight operand of a matmul-family op: either
/// operand of a matmul (the other is the activation), `w` of
/// lora_matmul(_grad), `weight` of linear_cross_entropy; or the input of a
/// transpose that only feeds such operands.
bool isWeightOperand(OpOperand &use) {
  Operation *owner = use.getOwner();
  if (isWeightTranspose(owner))
    return true;
  if (isa<MatmulOp>(owner))
    return true;
  if (auto op = dyn_cast<LoRAMatmulOp>(owner))
    return &use == &op.getWMutable();
  if (auto op = dyn_cast<LoRAMatmulGradOp>(owner))
    return &use == &op.getWMutable();
  if (auto op = dyn_cast<LinearCrossEntropyOp>(owner))
    return &use == &op.getWeightMutable();
  return false;
}

struct VLoRAMixedPrecisionPass
    : vlora::impl::VLoRAMixedPrecisionBase<VLoRAMixedPrecisionPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (compute == "f32")
      return;
    if (compute != "bf16") {
      module.emitError() << "--vlora-mixed-precision: compute must be bf16 or "
                            "f32, got '"
                         << compute << "'";
      return signalPassFailure();
    }

    // A weight is converted when every use of it, in every function, is a
    // weight operand; the functions hold one param op per name each.
    struct Weight {
      bool convertible = true;
      RankedTensorType type;
      SmallVector<ParamOp> ops;
    };
    std::map<std::string, Weight> weights;
    module.walk([&](ParamOp param) {
      if (param.getRole() != ParamRole::frozen)
        return;
      auto type = cast<RankedTensorType>(param.getType());
      Weight &w = weights[param.getName().str()];
      w.ops.push_back(param);
      if (!w.type)
        w.type = type;
      if (!type.getElementType().isF32() || type != w.type ||
          param.getResult().use_empty()) {
        w.convertible = false;
        return;
      }
      for (OpOperand &use : param.getResult().getUses())
        if (!isWeightOperand(use))
          w.convertible = false;
    });

    Builder b(module.getContext());
    int64_t offset = 0;
    for (auto &[name, w] : weights) {
      if (!w.convertible)
        continue;
      auto bf16 = w.type.clone(b.getBF16Type());
      int64_t length = w.type.getNumElements() * 2;
      for (ParamOp param : w.ops) {
        if (!param->hasAttr("vlora.converted_from"))
          param->setAttr(
              "vlora.converted_from",
              b.getDictionaryAttr({
                  b.getNamedAttr("source", b.getStringAttr(stringifyWeightSource(
                                               param.getSource()))),
                  b.getNamedAttr("file", param.getFileAttr()),
                  b.getNamedAttr("offset", param.getOffsetAttr()),
                  b.getNamedAttr("length", param.getLengthAttr()),
              }));
        param.getResult().setType(bf16);
        for (Operation *user : param.getResult().getUsers())
          if (isWeightTranspose(user)) {
            Value moved = user->getResult(0);
            moved.setType(cast<RankedTensorType>(moved.getType())
                              .clone(b.getBF16Type()));
          }
        param.setSourceAttr(
            WeightSourceAttr::get(module.getContext(), WeightSource::bundle));
        param.setFileAttr(b.getStringAttr(kConvertedFile));
        param.setOffsetAttr(b.getI64IntegerAttr(offset));
        param.setLengthAttr(b.getI64IntegerAttr(length));
      }
      offset += length;
      ++numConverted;
      bytesSaved += length;
    }
    // Every op whose result type depends on a converted weight keeps it:
    // matmul-family results take the activation's f32 type, a moved weight
    // (transpose) is bf16. Verify that.
    WalkResult result = module.walk([&](Operation *op) {
      if (isa<MatmulOp, LoRAMatmulOp, LoRAMatmulGradOp, LinearCrossEntropyOp,
              TransposeOp>(op)) {
        SmallVector<Type> inferred;
        auto iface = cast<InferTypeOpInterface>(op);
        if (failed(iface.inferReturnTypes(
                op->getContext(), op->getLoc(), op->getOperands(),
                op->getRawDictionaryAttrs(), op->getPropertiesStorage(),
                op->getRegions(), inferred)) ||
            TypeRange(inferred) != op->getResultTypes()) {
          op->emitError("--vlora-mixed-precision: a bf16 weight would change "
                        "this op's result type");
          return WalkResult::interrupt();
        }
      }
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      signalPassFailure();
  }
};

} // namespace
