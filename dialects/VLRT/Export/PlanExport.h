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

/// Serialises the vlrt program of `module` (one function with
/// `vlrt.arena_bytes`) into `plan`; reports problems as diagnostics.
mlir::LogicalResult exportPlan(mlir::ModuleOp module, vlora::plan::Plan &plan,
                               llvm::StringRef compilerVersion);

/// The same, written as binary protobuf to `os`.
mlir::LogicalResult exportPlan(mlir::ModuleOp module, llvm::raw_ostream &os,
                               llvm::StringRef compilerVersion);

} // namespace vlora::vlrt

#endif // VLRT_EXPORT_PLANEXPORT_H
