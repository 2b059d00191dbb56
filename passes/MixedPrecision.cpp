//===- MixedPrecision.cpp - matmul weights and activations in bf16 --------===//
//
// --vlora-mixed-precision{compute=bf16} retypes the frozen f32 weights that
// only matmul-family ops read as their weight operand to bf16 parameters of
// the bundle file weights.bf16.bin; vlora-compile writes that file from the
// locations kept in `vlora.converted_from`. With `activations` it also
// converts the f32 activations those ops read, once per value, and marks the
// ops `f32_result`. See Passes.td.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "VLoRA/IR/VLoRAOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/TypeUtilities.h"
#include "llvm/ADT/DenseMap.h"

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

/// A parameter or constant, directly or through transposes/reshapes: not an
/// activation (a frozen weight left f32 stays so; it is read, not copied).
bool isStored(Value v) {
  Operation *def = v.getDefiningOp();
  while (def && isa<TransposeOp, ReshapeOp>(def))
    def = def->getOperand(0).getDefiningOp();
  return def && isa<ParamOp, ConstantOp>(def);
}

/// The activation operands of a matmul-family op that --vlora-mixed-precision
/// converts to bf16: those that are f32 and not stored values. Empty when the
/// op does not compute in f32 (an f64 or bf16 model).
SmallVector<OpOperand *> activationOperands(Operation *op) {
  SmallVector<OpOperand *> operands;
  auto add = [&](OpOperand &use) {
    if (getElementTypeOrSelf(use.get()).isF32() && !isStored(use.get()))
      operands.push_back(&use);
  };
  if (auto matmul = dyn_cast<MatmulOp>(op)) {
    if (!getElementTypeOrSelf(matmul.getResult()).isF32())
      return {};
    add(matmul.getLhsMutable());
    add(matmul.getRhsMutable());
  } else if (auto lora = dyn_cast<LoRAMatmulOp>(op)) {
    if (!getElementTypeOrSelf(lora.getResult()).isF32() ||
        !getElementTypeOrSelf(lora.getA()).isF32())
      return {};
    add(lora.getXMutable());
  } else if (auto grad = dyn_cast<LoRAMatmulGradOp>(op)) {
    if (!getElementTypeOrSelf(grad.getGrad()).isF32() ||
        !getElementTypeOrSelf(grad.getA()).isF32())
      return {};
    add(grad.getXMutable());
  } else if (auto ce = dyn_cast<LinearCrossEntropyOp>(op)) {
    if (!getElementTypeOrSelf(ce.getGradInput()).isF32())
      return {};
    add(ce.getInputMutable());
  } else if (auto att = dyn_cast<AttentionOp>(op)) {
    if (!getElementTypeOrSelf(att.getResult()).isF32())
      return {};
    add(att.getQMutable());
    add(att.getKMutable());
    add(att.getVMutable());
  } else if (auto grad = dyn_cast<AttentionGradOp>(op)) {
    if (!getElementTypeOrSelf(grad.getGrad()).isF32())
      return {};
    add(grad.getQMutable());
    add(grad.getKMutable());
    add(grad.getVMutable());
  }
  return operands;
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
    if (activations)
      convertActivations(module);

    // Every op whose result type depends on a converted weight keeps it:
    // matmul-family results take the activation's f32 type, a moved weight
    // (transpose) is bf16. Verify that.
    WalkResult result = module.walk([&](Operation *op) {
      if (isa<MatmulOp, LoRAMatmulOp, LoRAMatmulGradOp, LinearCrossEntropyOp,
              AttentionOp, AttentionGradOp, TransposeOp>(op)) {
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

  /// One bf16 copy of each f32 activation a matmul-family op reads, made
  /// right after the value is defined; the ops read it with `f32_result`.
  void convertActivations(ModuleOp module) {
    SmallVector<Operation *> ops;
    module.walk([&](Operation *op) {
      if (isa<MatmulOp, LoRAMatmulOp, LoRAMatmulGradOp, LinearCrossEntropyOp,
              AttentionOp, AttentionGradOp>(op))
        ops.push_back(op);
    });
    Builder b(module.getContext());
    Type bf16 = b.getBF16Type();
    llvm::DenseMap<Value, Value> copies;
    for (Operation *op : ops) {
      SmallVector<OpOperand *> operands = activationOperands(op);
      if (operands.empty())
        continue;
      op->setAttr("f32_result", b.getUnitAttr());
      for (OpOperand *use : operands) {
        Value value = use->get();
        Value &copy = copies[value];
        if (!copy) {
          OpBuilder ob(module.getContext());
          ob.setInsertionPointAfterValue(value);
          auto type = cast<RankedTensorType>(value.getType());
          copy = CastOp::create(ob, value.getLoc(), type.clone(bf16), value,
                                TypeAttr::get(bf16));
          ++numCasts;
        }
        use->set(copy);
      }
    }
  }
};

} // namespace
