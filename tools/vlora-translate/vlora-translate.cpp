//===- vlora-translate.cpp - translations into and out of vlora -----------===//
//
// `vlora-translate --import-onnx MODEL.onnx [--input-shape NAME=AxBxC ...]
//  [-o OUT.mlir] [--emit-bytecode] [--summary]` imports an ONNX model (binary
// or ONNX text format) into the vlora dialect. Errors are printed one per
// line, naming the file, node or tensor; the exit code is 1 on any error.
//
//===----------------------------------------------------------------------===//

#include "VLoRA/IR/VLoRADialect.h"
#include "VLoRA/IR/VLoRAOps.h"
#include "VLRT/Export/PlanExport.h"
#include "VLRT/IR/VLRTOps.h"
#include "VLoRA/Import/ONNXImporter.h"
#include "vlora/Version.h"

#include "mlir/Bytecode/BytecodeWriter.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>

using namespace mlir;
namespace cl = llvm::cl;

static cl::OptionCategory category("vlora-translate options");

static cl::opt<bool> importOnnx("import-onnx",
                                cl::desc("Import an ONNX model (.onnx or .onnxtext)"),
                                cl::cat(category));
static cl::opt<bool> emitPlan("emit-plan",
                              cl::desc("Write the plan (plan.pb) of a lowered vlrt program (.mlir)"),
                              cl::cat(category));
static cl::opt<std::string>
    planFunction("plan-function",
                 cl::desc("With --emit-plan: the program to write when the module has several "
                          "(main, train_step, optimizer_step)"),
                 cl::value_desc("NAME"), cl::cat(category));
static cl::opt<std::string> inputFile(cl::Positional, cl::desc("<input file>"),
                                      cl::cat(category));
static cl::opt<std::string> outputFile("o", cl::desc("Output file ('-' for stdout)"),
                                       cl::value_desc("filename"), cl::init("-"),
                                       cl::cat(category));
static cl::list<std::string>
    inputShapes("input-shape",
                cl::desc("Static shape of a graph input: NAME=D0xD1x..."),
                cl::value_desc("NAME=SHAPE"), cl::cat(category));
static cl::opt<bool> emitBytecode("emit-bytecode",
                                  cl::desc("Write MLIR bytecode instead of text"),
                                  cl::cat(category));
static cl::opt<bool> stripLocations(
    "strip-locations",
    cl::desc("Print the IR without the ONNX node-name locations"),
    cl::cat(category));
static cl::opt<bool> summary("summary",
                             cl::desc("Print a summary of the imported model "
                                      "instead of its IR"),
                             cl::cat(category));

/// Describes a location the way a user thinks of it: the ONNX node or tensor
/// name, or the file.
static std::string describe(Location loc) {
  if (auto name = dyn_cast<NameLoc>(loc))
    return "'" + name.getName().str() + "'";
  if (auto file = dyn_cast<FileLineColLoc>(loc))
    return file.getFilename().str();
  if (auto fused = dyn_cast<FusedLoc>(loc))
    if (!fused.getLocations().empty())
      return describe(fused.getLocations().front());
  return "<unknown>";
}

static void printSummary(ModuleOp module, llvm::raw_ostream &os) {
  auto func = *module.getOps<func::FuncOp>().begin();
  os << "model: " << inputFile << "\n";
  if (auto opset = module->getAttrOfType<IntegerAttr>(vlora::VLoRADialect::kOpsetAttrName))
    os << "opset: " << opset.getInt() << "\n";
  auto printType = [&](Type t) {
    auto type = cast<RankedTensorType>(t);
    llvm::interleave(type.getShape(), os, "x");
    os << " " << type.getElementType();
  };
  for (auto [i, type] : llvm::enumerate(func.getArgumentTypes())) {
    os << "input  "
       << func.getArgAttrOfType<StringAttr>(i, vlora::VLoRADialect::kNameAttrName)
              .getValue()
       << ": ";
    printType(type);
    os << "\n";
  }
  for (auto [i, type] : llvm::enumerate(func.getResultTypes())) {
    os << "output "
       << func.getResultAttrOfType<StringAttr>(i, vlora::VLoRADialect::kNameAttrName)
              .getValue()
       << ": ";
    printType(type);
    os << "\n";
  }
  int64_t params = 0, paramElements = 0, paramBytes = 0, ops = 0;
  llvm::MapVector<StringRef, int64_t> counts;
  func.walk([&](Operation *op) {
    if (isa<func::FuncOp, func::ReturnOp>(op))
      return;
    ++ops;
    ++counts[op->getName().getStringRef()];
    if (auto param = dyn_cast<vlora::ParamOp>(op)) {
      ++params;
      paramElements += cast<RankedTensorType>(param.getType()).getNumElements();
      paramBytes += param.getLengthAttr().getInt();
    }
  });
  os << "ops: " << ops << "\n";
  os << "parameters: " << params << " tensors, " << paramElements
     << " elements, " << paramBytes << " bytes (referenced, not copied)\n";
  for (auto &[name, count] : counts)
    os << "  " << name << ": " << count << "\n";
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  registerAsmPrinterCLOptions();
  registerMLIRContextCLOptions();
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(argc, argv, "vlora translation tool\n");

  if (importOnnx == emitPlan) {
    llvm::errs() << "vlora-translate: error: choose one translation (--import-onnx or --emit-plan)\n";
    return 1;
  }
  if (inputFile.empty()) {
    llvm::errs() << "vlora-translate: error: no input file\n";
    return 1;
  }

  vlora::ONNXImportOptions options;
  for (const std::string &shape : inputShapes) {
    std::string error = vlora::parseInputShapeOption(shape, options);
    if (!error.empty()) {
      llvm::errs() << "vlora-translate: error: " << error << "\n";
      return 1;
    }
  }

  MLIRContext context;
  int errors = 0;
  ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
    if (diag.getSeverity() == DiagnosticSeverity::Error)
      ++errors;
    llvm::errs() << inputFile << ": ";
    switch (diag.getSeverity()) {
    case DiagnosticSeverity::Error:
      llvm::errs() << "error: ";
      break;
    case DiagnosticSeverity::Warning:
      llvm::errs() << "warning: ";
      break;
    default:
      llvm::errs() << "note: ";
      break;
    }
    if (!isa<FileLineColLoc>(diag.getLocation()))
      llvm::errs() << "at " << describe(diag.getLocation()) << ": ";
    llvm::errs() << diag.str() << "\n";
    return success();
  });

  if (emitPlan) {
    context.loadDialect<vlora::VLoRADialect, vlora::vlrt::VLRTDialect,
                        func::FuncDialect>();
    OwningOpRef<ModuleOp> program = parseSourceFile<ModuleOp>(inputFile, &context);
    if (!program || errors)
      return 1;
    std::string bytes;
    llvm::raw_string_ostream planStream(bytes);
    if (failed(vlora::vlrt::exportPlan(*program, planStream, VLORA_COMPILER_VERSION,
                                           planFunction)))
      return 1;
    std::string errorMessage;
    auto output = openOutputFile(outputFile, &errorMessage);
    if (!output) {
      llvm::errs() << "vlora-translate: error: " << errorMessage << "\n";
      return 1;
    }
    output->os() << bytes;
    output->keep();
    return 0;
  }

  OwningOpRef<ModuleOp> module =
      vlora::importONNXModel(context, inputFile, options);
  if (!module || errors)
    return 1;

  std::string errorMessage;
  auto output = openOutputFile(outputFile, &errorMessage);
  if (!output) {
    llvm::errs() << "vlora-translate: error: " << errorMessage << "\n";
    return 1;
  }
  if (summary) {
    printSummary(*module, output->os());
  } else if (emitBytecode) {
    if (failed(writeBytecodeToFile(*module, output->os()))) {
      llvm::errs() << "vlora-translate: error: cannot write bytecode\n";
      return 1;
    }
  } else {
    // Locations carry the ONNX node names that later passes read
    // (--vlora-classify-towers), so the text keeps them unless asked not to.
    OpPrintingFlags flags;
    if (!stripLocations)
      flags.enableDebugInfo(/*enable=*/true, /*prettyForm=*/false);
    module->print(output->os(), flags);
  }
  output->keep();
  return 0;
}
