//===- BuildTrainingStep.cpp - loss, reverse sweep and AdamW
//---------------===//
//
// --vlora-build-training-step: clones the forward @main into @train_step,
// turns the trainable parameters into arguments, adds the causal-LM loss,
// differentiates the active ops in reverse program order through
// VLoRAGradientOpInterface and accumulates the adapters' gradients; adds
// @optimizer_step (global norm, clipping, AdamW). See Passes.td for the
// signatures and docs/training.md for the runtime contract.
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
  for (StringRef name : {"train_step", "optimizer_step"})
    if (module.lookupSymbol(name)) {
      emitError(loc) << kPassFlag << ": the module already has @" << name;
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
  for (StringRef reserved :
       {"labels", "loss_scale", "dropout_rng", "lr", "step", "max_grad_norm",
        "weight_decay", "loss", "grad_norm"})
    for (unsigned i = 0; i < main.getNumArguments(); ++i)
      if (auto name = main.getArgAttrOfType<StringAttr>(
              i, VLoRADialect::kNameAttrName);
          name && name.getValue() == reserved) {
        main.emitError() << kPassFlag << ": @main has an input named '"
                         << reserved
                         << "', a name the training step reserves";
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
  bool withDropout = llvm::any_of(body.getOps<LoRAMatmulOp>(), [](auto op) {
    return op.getDropout().convertToDouble() > 0;
  });

  Type i64 = b.getI64Type(), f32 = b.getF32Type();
  auto scalarF32 = RankedTensorType::get({}, f32);
  auto scalarI64 = RankedTensorType::get({}, i64);
  auto labelsType =
      RankedTensorType::get(logitsType.getShape().drop_back(), i64);
  unsigned nextArg = step.getNumArguments();
  auto addArg = [&](Type type, StringRef name, Location argLoc) -> Value {
    if (failed(step.insertArgument(nextArg, type, nameAttr(name), argLoc)))
      return Value();
    return step.getArgument(nextArg++);
  };
  Value labels = addArg(labelsType, "labels", loc);
  Value lossScale = addArg(scalarF32, "loss_scale", loc);
  Value rng;
  if (withDropout)
    rng = addArg(RankedTensorType::get({2}, i64), "dropout_rng", loc);
  SmallVector<Value> adapters, accumulators;
  SmallVector<std::string> names;
  SmallVector<Type> adapterTypes;
  SmallVector<Location> adapterLocs;
  for (ParamOp param : trainable) {
    names.push_back(param.getName().str());
    adapterTypes.push_back(param.getType());
    adapterLocs.push_back(param.getLoc());
    Value arg = addArg(param.getType(), param.getName(), param.getLoc());
    param.getResult().replaceAllUsesWith(arg);
    adapters.push_back(arg);
  }
  for (auto [param, name] : llvm::zip(trainable, names))
    accumulators.push_back(
        addArg(param.getType(), name + ".grad", param.getLoc()));
  for (ParamOp param : trainable)
    param.erase();
  if (llvm::any_of(adapters, [](Value v) { return !v; }) || !labels ||
      !lossScale || (withDropout && !rng)) {
    step.emitError() << kPassFlag << ": could not add the arguments";
    return signalPassFailure();
  }
  // Training draws LoRA dropout: every adapted matmul gets the step's rng
  // and its own stream (its index among the adapted matmuls).
  if (withDropout) {
    int64_t stream = 0;
    for (auto op : body.getOps<LoRAMatmulOp>()) {
      op.getRngMutable().assign(rng);
      op.setStreamAttr(b.getI64IntegerAttr(stream++));
    }
  }

  auto ret = cast<func::ReturnOp>(body.getTerminator());
  Value logits = ret.getOperand(0);
  SmallVector<Operation *> forwardOps;
  for (Operation &op : body.without_terminator())
    forwardOps.push_back(&op);
  DenseSet<Value> active = activeValues(body, adapters, logits);

  // Loss and the seed of the reverse sweep: d(loss_scale * loss).
  b.setInsertionPoint(ret);
  Location lossLoc = NameLoc::get(b.getStringAttr("loss"), ret.getLoc());
  IntegerAttr ignore = b.getI64IntegerAttr(ignoreIndex);
  DenseMap<Value, Value> adjoints;
  // The frozen lm_head and the loss fused: only predicted positions are
  // multiplied out, and neither the logits nor their gradient are kept.
  auto head = logits.getDefiningOp<MatmulOp>();
  Value lossValue;
  if (fuseLmHead && head && !head.getTransposeA() &&
      cast<RankedTensorType>(head.getLhs().getType()).getRank() == 3 &&
      cast<RankedTensorType>(head.getRhs().getType()).getRank() == 2 &&
      !active.contains(head.getRhs()) &&
      getElementTypeOrSelf(head.getLhs()) == getElementTypeOrSelf(head.getRhs())) {
    auto fused = LinearCrossEntropyOp::create(
        b, head.getLoc(), head.getLhs(), head.getRhs(), labels, lossScale,
        ignore, head.getTransposeBAttr(), head.getF32ResultAttr());
    copyTags(head, fused);
    lossValue = fused.getLoss();
    if (active.contains(head.getLhs()))
      adjoints[head.getLhs()] = fused.getGradInput();
    ++numFusedLosses;
  } else {
    lossValue =
        CrossEntropyOp::create(b, lossLoc, logits, labels, ignore).getResult();
    if (active.contains(logits))
      adjoints[logits] = CrossEntropyGradOp::create(b, lossLoc, lossScale,
                                                    logits, labels, ignore)
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

  // Accumulate: an adapter that does not reach the loss keeps its
  // accumulator unchanged.
  Location accLoc = NameLoc::get(b.getStringAttr("accumulate"), ret.getLoc());
  SmallVector<Value> results{lossValue};
  for (auto [adapter, acc] : llvm::zip(adapters, accumulators)) {
    Value grad = adjoints.lookup(adapter);
    results.push_back(grad ? AddOp::create(b, accLoc, acc, grad).getResult()
                           : acc);
  }
  func::ReturnOp::create(b, ret.getLoc(), results);
  ret.erase();
  SmallVector<Type> resultTypes;
  SmallVector<Attribute> resultAttrs{nameAttr("loss")};
  for (Value r : results)
    resultTypes.push_back(r.getType());
  for (const std::string &name : names)
    resultAttrs.push_back(nameAttr(name + ".grad"));
  step.setType(FunctionType::get(ctx, step.getArgumentTypes(), resultTypes));
  step.setAllResultAttrs(resultAttrs);

  // Drop what no result needs (e.g. forward ops of an unused branch).
  for (Operation &op : llvm::make_early_inc_range(llvm::reverse(body)))
    if (isOpTriviallyDead(&op))
      op.erase();

  // @optimizer_step: global norm, clipping coefficient, AdamW.
  Location optLoc = NameLoc::get(b.getStringAttr("optimizer"), loc);
  SmallVector<Type> argTypes;
  SmallVector<Attribute> argAttrs;
  SmallVector<Location> argLocs;
  auto addOptArg = [&](Type type, StringRef name, Location argLoc) {
    argTypes.push_back(type);
    argAttrs.push_back(nameAttr(name));
    argLocs.push_back(argLoc);
  };
  for (StringRef suffix : {"", ".grad", ".exp_avg", ".exp_avg_sq"})
    for (auto [name, type, argLoc] : llvm::zip(names, adapterTypes, adapterLocs))
      addOptArg(type, name + suffix.str(), argLoc);
  addOptArg(scalarF32, "lr", loc);
  addOptArg(scalarI64, "step", loc);
  addOptArg(scalarF32, "max_grad_norm", loc);
  addOptArg(scalarF32, "weight_decay", loc);
  size_t n = names.size();
  SmallVector<Type> optResultTypes{scalarF32};
  SmallVector<Attribute> optResultAttrs{nameAttr("grad_norm")};
  for (StringRef suffix : {"", ".exp_avg", ".exp_avg_sq"})
    for (auto [name, type] : llvm::zip(names, adapterTypes)) {
      optResultTypes.push_back(type);
      optResultAttrs.push_back(nameAttr(name + suffix.str()));
    }
  b.setInsertionPointAfter(step);
  auto opt = func::FuncOp::create(b, optLoc, "optimizer_step",
                                  FunctionType::get(ctx, argTypes, optResultTypes));
  opt.setAllArgAttrs(argAttrs);
  opt.setAllResultAttrs(optResultAttrs);
  Block *entry = opt.addEntryBlock();
  for (auto [arg, argLoc] : llvm::zip(entry->getArguments(), argLocs))
    arg.setLoc(argLoc);
  b.setInsertionPointToStart(entry);
  auto args = entry->getArguments();
  auto params = args.take_front(n), grads = args.slice(n, n),
       expAvg = args.slice(2 * n, n), expAvgSq = args.slice(3 * n, n);
  Value lr = args[4 * n], stepCount = args[4 * n + 1],
        maxNorm = args[4 * n + 2], weightDecayArg = args[4 * n + 3];
  Value norm = GlobalNormOp::create(b, optLoc, scalarF32, ValueRange(grads))
                   .getResult();
  auto scalar = [&](double v) {
    return ConstantOp::create(
        b, optLoc, DenseElementsAttr::get(scalarF32, b.getF32FloatAttr(v)));
  };
  // torch.nn.utils.clip_grad_norm_: min(1, max_norm / (norm + 1e-6)); the
  // runtime passes max_grad_norm = +inf for no clipping.
  Value denom = AddOp::create(b, optLoc, norm, scalar(1e-6));
  Value coef = DivOp::create(b, optLoc, maxNorm, denom);
  Value gradScale = MinOp::create(b, optLoc, coef, scalar(1.0));
  SmallVector<Value> optResults{norm};
  SmallVector<Value> newParams, newM, newV;
  for (auto [p, g, m, v] : llvm::zip(params, grads, expAvg, expAvgSq)) {
    auto update = AdamWUpdateOp::create(
        b, optLoc, p, g, m, v, lr, stepCount, weightDecayArg, gradScale,
        b.getF64FloatAttr(beta1), b.getF64FloatAttr(beta2),
        b.getF64FloatAttr(eps));
    newParams.push_back(update.getNewParam());
    newM.push_back(update.getNewExpAvg());
    newV.push_back(update.getNewExpAvgSq());
  }
  llvm::append_range(optResults, newParams);
  llvm::append_range(optResults, newM);
  llvm::append_range(optResults, newV);
  func::ReturnOp::create(b, optLoc, optResults);
}

} // namespace
