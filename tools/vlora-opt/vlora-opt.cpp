//===- vlora-opt.cpp - the vlora optimizer driver -------------------------===//
//
// An `mlir-opt`-style driver that knows only the dialects and passes vlora
// uses: the vlora dialect, `func`, and the upstream passes vlora pipelines run.
//
//===----------------------------------------------------------------------===//

#include "VLoRA/IR/VLoRADialect.h"
#include "VLoRA/IR/VLoRAOps.h"
#include "VLRT/IR/VLRTOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

namespace vlora::test {
void registerTestStripNamesPass();
} // namespace vlora::test

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  registry.insert<vlora::VLoRADialect, vlora::vlrt::VLRTDialect,
                  mlir::func::FuncDialect>();

  vlora::registerVLoRAPasses();
  vlora::test::registerTestStripNamesPass();

  // Upstream passes vlora pipelines use.
  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
  mlir::registerSymbolDCEPass();
  mlir::registerInlinerPass();

  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "vlora optimizer driver\n", registry));
}
