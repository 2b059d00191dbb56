//===- ONNXImporter.h - ONNX model to vlora dialect -------------*- C++ -*-===//
//
// Imports an ONNX model (binary protobuf or ONNX text format) into a module
// holding one `func.func @main` of `vlora` ops. Weights are referenced by file
// and offset, never copied; shape-only subgraphs are folded at import.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_IMPORT_ONNXIMPORTER_H
#define VLORA_IMPORT_ONNXIMPORTER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"

#include <string>

namespace vlora {

struct ONNXImportOptions {
  /// Static shapes for graph inputs, by ONNX input name; they fix the
  /// model's dynamic dimensions.
  llvm::StringMap<llvm::SmallVector<int64_t>> inputShapes;
};

/// Parses `NAME=1x3x224x224` into `options.inputShapes`; returns an error
/// message on malformed text.
std::string parseInputShapeOption(llvm::StringRef text,
                                  ONNXImportOptions &options);

/// Imports the ONNX model at `path` (`.onnx` binary or `.onnxtext`). Every
/// problem is reported as an MLIR diagnostic; returns null on any error.
mlir::OwningOpRef<mlir::ModuleOp>
importONNXModel(mlir::MLIRContext &context, llvm::StringRef path,
                const ONNXImportOptions &options);

/// Registers the `--import-onnx` translation with mlir-translate's registry.
void registerONNXImportTranslation();

} // namespace vlora

#endif // VLORA_IMPORT_ONNXIMPORTER_H
