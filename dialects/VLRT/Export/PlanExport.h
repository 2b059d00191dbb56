//===- PlanExport.h - vlrt program to plan.pb -------------------*- C++ -*-===//

#ifndef VLRT_EXPORT_PLANEXPORT_H
#define VLRT_EXPORT_PLANEXPORT_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

#include <string>

namespace vlora::plan {
class Plan;
} // namespace vlora::plan

namespace vlora::vlrt {

/// Serialises the vlrt program of `module` (one function with
/// `vlrt.arena_bytes`) into `plan`; reports problems as diagnostics.
mlir::LogicalResult exportPlan(mlir::ModuleOp module, vlora::plan::Plan &plan,
                               llvm::StringRef compilerVersion);

/// The same, written as binary protobuf to `os`.
mlir::LogicalResult exportPlan(mlir::ModuleOp module, llvm::raw_ostream &os,
                               llvm::StringRef compilerVersion);

} // namespace vlora::vlrt

#endif // VLRT_EXPORT_PLANEXPORT_H
