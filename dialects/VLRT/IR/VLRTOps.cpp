//===- VLRTOps.cpp - the vlrt dialect -------------------------------------===//

#include "VLRT/IR/VLRTOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace vlora::vlrt;

#include "VLRT/IR/VLRTDialect.cpp.inc"

void VLRTDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "VLRT/IR/VLRTOps.cpp.inc"
      >();
}

int64_t vlora::vlrt::getElementBytes(Type type) {
  if (type.isInteger(1))
    return 1;
  if (type.isIntOrFloat())
    return (type.getIntOrFloatBitWidth() + 7) / 8;
  return 0;
}

int64_t vlora::vlrt::getBufferBytes(MemRefType type) {
  return type.getNumElements() * getElementBytes(type.getElementType());
}

/// Checks a buffer type and, for arena buffers, that [offset, offset+bytes)
/// lies inside the enclosing function's arena.
static LogicalResult verifyBuffer(Operation *op, MemRefType type,
                                  std::optional<int64_t> offset) {
  if (!type.hasStaticShape() || !type.getLayout().isIdentity())
    return op->emitOpError("needs a statically shaped buffer with identity layout");
  if (getElementBytes(type.getElementType()) == 0)
    return op->emitOpError("element type ")
           << type.getElementType() << " has no storage size";
  if (!offset)
    return success();
  if (*offset < 0 || *offset % VLRTDialect::kAlignment)
    return op->emitOpError("offset ")
           << *offset << " is not a non-negative multiple of "
           << VLRTDialect::kAlignment;
  auto func = op->getParentOfType<func::FuncOp>();
  auto arena = func ? func->getAttrOfType<IntegerAttr>(VLRTDialect::kArenaBytesAttrName)
                    : IntegerAttr();
  if (!arena)
    return op->emitOpError("must be in a function with '")
           << VLRTDialect::kArenaBytesAttrName << "'";
  if (*offset + getBufferBytes(type) > arena.getInt())
    return op->emitOpError("buffer [")
           << *offset << ", " << *offset + getBufferBytes(type)
           << ") lies outside the arena of " << arena.getInt() << " bytes";
  return success();
}

LogicalResult SliceOp::verify() {
  return verifyBuffer(*this, getType(), getOffsetAttr().getInt());
}

LogicalResult InputOp::verify() {
  return verifyBuffer(*this, getType(), getOffsetAttr().getInt());
}

LogicalResult WeightOp::verify() {
  if (failed(verifyBuffer(*this, getType(), std::nullopt)))
    return failure();
  if (getRoot() != "model" && getRoot() != "bundle")
    return emitOpError("root must be \"model\" or \"bundle\"");
  if (getOffsetAttr().getInt() < 0)
    return emitOpError("offset is negative");
  if (getLengthAttr().getInt() != getBufferBytes(getType()))
    return emitOpError("length ") << getLengthAttr().getInt() << " does not match "
                                  << getBufferBytes(getType()) << " bytes";
  return success();
}

LogicalResult ConstantOp::verify() {
  if (failed(verifyBuffer(*this, getType(), std::nullopt)))
    return failure();
  auto valueType = cast<ShapedType>(getValue().getType());
  if (valueType.getShape() != getType().getShape() ||
      valueType.getElementType() != getType().getElementType())
    return emitOpError("value type ") << valueType << " does not match " << getType();
  return success();
}

LogicalResult KernelOp::verify() {
  if (getOuts().empty())
    return emitOpError("needs at least one output");
  for (Value out : getOuts())
    if (!out.getDefiningOp<SliceOp>())
      return emitOpError("outputs must be arena slices");
  return success();
}

#define GET_OP_CLASSES
#include "VLRT/IR/VLRTOps.cpp.inc"
