//===- BuildTrainingStep.cpp - loss, reverse sweep and AdamW
//---------------===//
//
// --vlora-build-training-step: clones the forward @main into @train_step,
// turns the trainable parameters into arguments, adds the causal-LM loss,
// differentiates the active ops in reverse program order through
// VLoRAGradientOpInterface, clips by the global norm and applies AdamW. See
// Passes.td for the signature and docs/design.md for the rationale.
//
//===----------------------------------------------------------------------===//

#include "passes/Autodiff/GradientInterface.h"
#include "passes/Passes.h"

#include "VLoRA/IR/VLoRAOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/STLExtras.h"

namespace vlora {
#define GEN_PASS_DEF_VLORABUILDTRAININGSTEP
#include "passes/Passes.h.inc"
} // namespace vlora

using namespace mlir;
using namespace vlora;

namespace {

constexpr StringLiteral kPassFlag = "--vlora-build-training-step";

bool isFloatTensor(Value v) {
  auto type = dyn_cast<RankedTensorType>(v.getType());
  return type && isa<FloatType>(type.getElementType());
}

/// Active = reachable forward from the seeds ∩ reaching `target`, restricted
/// to float tensors.
DenseSet<Value> activeValues(Block &body, ArrayRef<Value> seeds, Value target) {
  DenseSet<Value> forward(seeds.begin(), seeds.end());
  for (Operation &op : body) {
    if (!llvm::any_of(op.getOperands(),
                      [&](Value v) { return forward.contains(v); }))
      continue;
    for (Value r : op.getResults())
      if (isFloatTensor(r))
        forward.insert(r);
  }
  DenseSet<Value> backward{target};
  for (Operation &op : llvm::reverse(body)) {
    if (!llvm::any_of(op.getResults(),
                      [&](Value v) { return backward.contains(v); }))
      continue;
    for (Value v : op.getOperands())
      if (isFloatTensor(v))
        backward.insert(v);
  }
  DenseSet<Value> active;
  for (Value v : forward)
    if (backward.contains(v))
      active.insert(v);
  return active;
}

/// Copies the tower tags of the forward op onto the ops its rule emitted.
void copyTags(Operation *forward, Operation *emitted) {
  for (NamedAttribute attr : forward->getDiscardableAttrs())
    if (attr.getName().getValue().starts_with("vlora."))
      emitted->setAttr(attr.getName(), attr.getValue());
}

struct BuildTrainingStepPass
    : vlora::impl::VLoRABuildTrainingStepBase<BuildTrainingStepPass> {
  using Base::Base;

  void getDependentDialects(DialectRegistry &registry) const override {
    Base::getDependentDialects(registry);
    registerGradientInterfaceModels(registry);
  }

  void runOnOperation() override;

private:
  LogicalResult checkOptions(Location loc);
  LogicalResult reverseSweep(ArrayRef<Operation *> forwardOps,
                             const DenseSet<Value> &active,
                             DenseMap<Value, Value> &adjoints, OpBuilder &b);
};

LogicalResult BuildTrainingStepPass::checkOptions(Location loc) {
  if (loss != "causal-lm")
    return emitError(loc) << kPassFlag << ": loss must be 'causal-lm', got '"
                          << loss << "'";
  if (optimizer != "adamw")
    return emitError(loc) << kPassFlag << ": optimizer must be 'adamw', got '"
                          << optimizer << "'";
  if (!(maxGradNorm >= 0))
    return emitError(loc) << kPassFlag
                          << ": max-grad-norm must be non-negative, got "
                          << maxGradNorm;
  if (!(weightDecay >= 0))
    return emitError(loc) << kPassFlag
                          << ": weight-decay must be non-negative, got "
                          << weightDecay;
  if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1))
    return emitError(loc) << kPassFlag
                          << ": beta1 and beta2 must be in [0, 1), got "
                          << beta1 << " and " << beta2;
  if (!(eps > 0))
    return emitError(loc) << kPassFlag << ": eps must be positive, got " << eps;
  return success();
}

LogicalResult BuildTrainingStepPass::reverseSweep(
    ArrayRef<Operation *> forwardOps, const DenseSet<Value> &active,
    DenseMap<Value, Value> &adjoints, OpBuilder &b) {
  auto accumulate = [&](Value v, Value grad, Location loc) {
    auto [it, inserted] = adjoints.try_emplace(v, grad);
    if (!inserted)
      it->second = AddOp::create(b, loc, it->second, grad).getResult();
  };
  for (Operation *op : llvm::reverse(forwardOps)) {
    if (!llvm::any_of(op->getResults(),
                      [&](Value r) { return active.contains(r); }))
      continue;
    SmallVector<Value> resultGrads;
    for (Value r : op->getResults())
      resultGrads.push_back(adjoints.lookup(r));
    if (llvm::all_of(resultGrads, [](Value v) { return !v; }))
      continue;
    SmallVector<bool> needs;
    for (Value v : op->getOperands())
      needs.push_back(active.contains(v));
    if (llvm::none_of(needs, [](bool n) { return n; }))
      continue;
    auto rule = dyn_cast<GradientOpInterface>(op);
    if (!rule)
      return op->emitOpError()
             << "is active (it depends on a trainable parameter and reaches "
                "the loss) but has no gradient rule";
    ++numActiveOps;
    // The sweep inserts before the terminator; the rule's ops are the ones
    // between the op before the insertion point and the terminator.
    Operation *end = &*b.getInsertionPoint();
    Operation *before = end->getPrevNode();
    GradientBuilder gb(b, op);
    SmallVector<Value> operandGrads;
    if (failed(rule.buildGradients(gb, resultGrads, needs, operandGrads)))
      return failure();
    if (operandGrads.size() != op->getNumOperands())
      return op->emitOpError()
             << "gradient rule returned " << operandGrads.size()
             << " gradients for " << op->getNumOperands() << " operands";
    for (Operation *it = before ? before->getNextNode()
                                : &b.getInsertionBlock()->front();
         it != end; it = it->getNextNode()) {
      copyTags(op, it);
      ++numBackwardOps;
    }
    for (auto [v, grad, need] :
         llvm::zip(op->getOperands(), operandGrads, needs)) {
      if (!grad)
        continue;
      if (!need)
        return op->emitOpError()
               << "gradient rule emitted a gradient that was not asked for";
      if (grad.getType() != v.getType())
        return op->emitOpError() << "gradient rule produced " << grad.getType()
                                 << " for an operand of type " << v.getType();
      accumulate(v, grad, op->getLoc());
    }
  }
  return success();
}

void BuildTrainingStepPass::runOnOperation() {
  ModuleOp module = getOperation();
  Location loc = module.getLoc();
  if (failed(checkOptions(loc)))
    return signalPassFailure();
  auto main = module.lookupSymbol<func::FuncOp>("main");
  if (!main || main.isExternal()) {
    emitError(loc) << kPassFlag
                   << ": the module has no forward func.func @main";
    return signalPassFailure();
  }
  if (module.lookupSymbol("train_step")) {
    emitError(loc) << kPassFlag << ": the module already has @train_step";
    return signalPassFailure();
  }
  FunctionType mainType = main.getFunctionType();
  auto logitsType = mainType.getNumResults() == 1
                        ? dyn_cast<RankedTensorType>(mainType.getResult(0))
                        : RankedTensorType();
  if (!logitsType || logitsType.getRank() != 3 ||
      !isa<FloatType>(logitsType.getElementType())) {
    main.emitError() << kPassFlag
                     << ": @main must return one float tensor of logits "
                        "[batch, sequence, vocab]";
    return signalPassFailure();
  }

  // Clone the forward into @train_step and make the adapters arguments.
  auto step = cast<func::FuncOp>(main->clone());
  step.setName("train_step");
  module.insert(std::next(Block::iterator(main)), step);
  Block &body = step.getBody().front();
  MLIRContext *ctx = &getContext();
  OpBuilder b(ctx);
  auto nameAttr = [&](StringRef name) {
    return b.getDictionaryAttr(
        b.getNamedAttr(VLoRADialect::kNameAttrName, b.getStringAttr(name)));
  };

  SmallVector<ParamOp> trainable;
  for (auto param : body.getOps<ParamOp>())
    if (param.getRole() == ParamRole::trainable)
      trainable.push_back(param);
  if (trainable.empty()) {
    step.erase();
    main.emitError() << kPassFlag
                     << ": @main has no trainable parameters (run "
                        "--vlora-inject-lora first)";
    return signalPassFailure();
  }
  for (ParamOp param : trainable)
    if (!isFloatTensor(param.getResult())) {
      param.emitOpError() << "trainable parameter must be a float tensor";
      return signalPassFailure();
    }
  numAdapters = trainable.size();

  Type i64 = b.getI64Type(), f32 = b.getF32Type();
  auto scalarF32 = RankedTensorType::get({}, f32);
  auto labelsType =
      RankedTensorType::get(logitsType.getShape().drop_back(), i64);
  unsigned nextArg = step.getNumArguments();
  auto addArg = [&](Type type, StringRef name, Location argLoc) -> Value {
    if (failed(step.insertArgument(nextArg, type, nameAttr(name), argLoc)))
      return Value();
    return step.getArgument(nextArg++);
  };
  Value labels = addArg(labelsType, "labels", loc);
  Value lr = addArg(scalarF32, "lr", loc);
  Value stepCount = addArg(RankedTensorType::get({}, i64), "step", loc);
  SmallVector<Value> adapters, expAvg, expAvgSq;
  SmallVector<std::string> names;
  for (ParamOp param : trainable) {
    names.push_back(param.getName().str());
    Value arg = addArg(param.getType(), param.getName(), param.getLoc());
    param.getResult().replaceAllUsesWith(arg);
    adapters.push_back(arg);
  }
  for (auto [param, name] : llvm::zip(trainable, names))
    expAvg.push_back(
        addArg(param.getType(), name + ".exp_avg", param.getLoc()));
  for (auto [param, name] : llvm::zip(trainable, names))
    expAvgSq.push_back(
        addArg(param.getType(), name + ".exp_avg_sq", param.getLoc()));
  for (ParamOp param : trainable)
    param.erase();
  if (llvm::any_of(adapters, [](Value v) { return !v; }) || !labels || !lr ||
      !stepCount) {
    step.emitError() << kPassFlag << ": could not add the arguments";
    return signalPassFailure();
  }

  auto ret = cast<func::ReturnOp>(body.getTerminator());
  Value logits = ret.getOperand(0);
  SmallVector<Operation *> forwardOps;
  for (Operation &op : body.without_terminator())
    forwardOps.push_back(&op);
  DenseSet<Value> active = activeValues(body, adapters, logits);

  // Loss and the seed of the reverse sweep.
  b.setInsertionPoint(ret);
  Location lossLoc = NameLoc::get(b.getStringAttr("loss"), ret.getLoc());
  IntegerAttr ignore = b.getI64IntegerAttr(ignoreIndex);
  Value lossValue =
      CrossEntropyOp::create(b, lossLoc, logits, labels, ignore).getResult();
  DenseMap<Value, Value> adjoints;
  if (active.contains(logits)) {
    Value one = ConstantOp::create(
        b, lossLoc, DenseElementsAttr::get(scalarF32, b.getF32FloatAttr(1.0)));
    adjoints[logits] =
        CrossEntropyGradOp::create(b, lossLoc, one, logits, labels, ignore)
            .getResult();
  }
  if (failed(reverseSweep(forwardOps, active, adjoints, b)))
    return signalPassFailure();

  // No gradient of a frozen parameter may exist.
  for (auto &[value, grad] : adjoints) {
    auto param = value.getDefiningOp<ParamOp>();
    if (param && param.getRole() != ParamRole::trainable) {
      param.emitOpError() << "frozen parameter '" << param.getName()
                          << "' got a gradient";
      return signalPassFailure();
    }
  }

  // Gradients (zero for an adapter that does not reach the loss), global
  // norm, clipping coefficient, AdamW.
  SmallVector<Value> grads;
  for (Value adapter : adapters) {
    Value grad = adjoints.lookup(adapter);
    if (!grad)
      grad = ConstantOp::create(
          b, loc,
          DenseElementsAttr::get(
              cast<ShapedType>(adapter.getType()),
              b.getFloatAttr(getElementTypeOrSelf(adapter), 0.0)));
    grads.push_back(grad);
  }
  Location optLoc = NameLoc::get(b.getStringAttr("optimizer"), ret.getLoc());
  Value norm = GlobalNormOp::create(b, optLoc, scalarF32, grads).getResult();
  Value gradScale;
  if (maxGradNorm > 0) {
    auto scalar = [&](double v) {
      return ConstantOp::create(
          b, optLoc, DenseElementsAttr::get(scalarF32, b.getF32FloatAttr(v)));
    };
    // torch.nn.utils.clip_grad_norm_: min(1, max_norm / (norm + 1e-6)).
    Value denom = AddOp::create(b, optLoc, norm, scalar(1e-6));
    Value coef = DivOp::create(b, optLoc, scalar(maxGradNorm), denom);
    gradScale = MinOp::create(b, optLoc, coef, scalar(1.0));
  }
  SmallVector<Value> results{lossValue, norm};
  SmallVector<Value> newParams, newM, newV;
  for (auto [p, g, m, v] : llvm::zip(adapters, grads, expAvg, expAvgSq)) {
    auto update = AdamWUpdateOp::create(
        b, optLoc, p, g, m, v, lr, stepCount, gradScale,
        b.getF64FloatAttr(beta1), b.getF64FloatAttr(beta2),
        b.getF64FloatAttr(eps), b.getF64FloatAttr(weightDecay));
    newParams.push_back(update.getNewParam());
    newM.push_back(update.getNewExpAvg());
    newV.push_back(update.getNewExpAvgSq());
  }
  llvm::append_range(results, newParams);
  llvm::append_range(results, newM);
  llvm::append_range(results, newV);
  func::ReturnOp::create(b, ret.getLoc(), results);
  ret.erase();

  SmallVector<Type> resultTypes;
  SmallVector<Attribute> resultAttrs;
  for (Value r : results)
    resultTypes.push_back(r.getType());
  resultAttrs.push_back(nameAttr("loss"));
  resultAttrs.push_back(nameAttr("grad_norm"));
  for (StringRef suffix : {"", ".exp_avg", ".exp_avg_sq"})
    for (const std::string &name : names)
      resultAttrs.push_back(nameAttr(name + suffix.str()));
  step.setType(FunctionType::get(ctx, step.getArgumentTypes(), resultTypes));
  step.setAllResultAttrs(resultAttrs);

  // Drop what no result needs (e.g. forward ops of an unused branch).
  for (Operation &op : llvm::make_early_inc_range(llvm::reverse(body)))
    if (isOpTriviallyDead(&op))
      op.erase();
}

} // namespace
