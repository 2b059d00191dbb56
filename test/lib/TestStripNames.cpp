//===- TestStripNames.cpp - make a copy of a model without names ----------===//
//
// --test-vlora-strip-names removes every name a model carries: ONNX node
// names (op locations), initializer names (param names become w0, w1, ...)
// and input/output names (`vlora.name`). Tests use it to check that the
// structure signal of --vlora-classify-towers stands on its own.
//
//===----------------------------------------------------------------------===//

#include "VLoRA/IR/VLoRADialect.h"
#include "VLoRA/IR/VLoRAOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassRegistry.h"

using namespace mlir;

namespace {
struct TestStripNamesPass
    : public PassWrapper<TestStripNamesPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(TestStripNamesPass)

  StringRef getArgument() const final { return "test-vlora-strip-names"; }
  StringRef getDescription() const final {
    return "Remove node, initializer and input/output names (test only)";
  }

  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    Location unknown = UnknownLoc::get(ctx);
    unsigned next = 0;
    getOperation().walk([&](Operation *op) {
      op->setLoc(unknown);
      if (auto param = dyn_cast<vlora::ParamOp>(op))
        param.setNameAttr(StringAttr::get(ctx, "w" + std::to_string(next++)));
      if (auto func = dyn_cast<func::FuncOp>(op)) {
        for (unsigned i = 0; i < func.getNumArguments(); ++i) {
          func.removeArgAttr(i, vlora::VLoRADialect::kNameAttrName);
          func.getArgument(i).setLoc(unknown);
        }
        for (unsigned i = 0; i < func.getNumResults(); ++i)
          func.removeResultAttr(i, StringAttr::get(ctx, vlora::VLoRADialect::kNameAttrName));
      }
    });
  }
};
} // namespace

namespace vlora::test {
void registerTestStripNamesPass() { PassRegistration<TestStripNamesPass>(); }
} // namespace vlora::test
