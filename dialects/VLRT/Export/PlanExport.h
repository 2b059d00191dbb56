//===- PlanExport.h - vlrt program to plan.pb -------------------*- C++ -*-===//

#ifndef VLRT_EXPORT_PLANEXPORT_H
#define VLRT_EXPORT_PLANEXPORT_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

#include <string>

#include "plan.pb.h"

namespace vlora::vlrt {

/// The plan dtype of an MLIR element type (DTYPE_INVALID when it has none).
/// Its name (F32, BF16, I64, BOOL, ...) is also the safetensors dtype name.
vlora::plan::DType getPlanDType(mlir::Type elementType);

/// Serialises a vlrt program of `module` (a function with
/// `vlrt.arena_bytes`) into `plan`: the one named `function`, or, when
/// `function` is empty, the module's only one. Reports problems as
/// diagnostics.
mlir::LogicalResult exportPlan(mlir::ModuleOp module, vlora::plan::Plan &plan,
                               llvm::StringRef compilerVersion,
                               llvm::StringRef function = "");

/// The same, written as binary protobuf to `os`.
mlir::LogicalResult exportPlan(mlir::ModuleOp module, llvm::raw_ostream &os,
                               llvm::StringRef compilerVersion,
                               llvm::StringRef function = "");

} // namespace vlora::vlrt

#endif // VLRT_EXPORT_PLANEXPORT_H
