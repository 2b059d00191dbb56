//===- VLRTOps.h - the vlrt dialect -----------------------------*- C++ -*-===//

#ifndef VLRT_IR_VLRTOPS_H
#define VLRT_IR_VLRTOPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"

#include "VLRT/IR/VLRTDialect.h.inc"

namespace vlora::vlrt {
/// Bytes of one element as stored (i1 takes one byte).
int64_t getElementBytes(mlir::Type type);
/// Bytes of a statically shaped buffer.
int64_t getBufferBytes(mlir::MemRefType type);
} // namespace vlora::vlrt

#define GET_OP_CLASSES
#include "VLRT/IR/VLRTOps.h.inc"

#endif // VLRT_IR_VLRTOPS_H
