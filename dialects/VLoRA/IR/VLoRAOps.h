//===- VLoRAOps.h - vlora dialect ops ---------------------------*- C++ -*-===//
//
// Declares the ops of the `vlora` dialect and the shape rules they share.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_IR_VLORAOPS_H
#define VLORA_IR_VLORAOPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "VLoRA/IR/VLoRADialect.h"

namespace vlora {

/// NumPy broadcast of two static shapes; failure when a pair of dimensions
/// is neither equal nor 1.
llvm::FailureOr<llvm::SmallVector<int64_t>>
broadcastShapes(llvm::ArrayRef<int64_t> lhs, llvm::ArrayRef<int64_t> rhs);

/// Size in bytes of one element of `type` as stored in weight files (i1 is
/// one byte); 0 for element types without a storage size.
int64_t getElementByteSize(mlir::Type type);

} // namespace vlora

#define GET_OP_CLASSES
#include "VLoRA/IR/VLoRAOps.h.inc"

#endif // VLORA_IR_VLORAOPS_H
