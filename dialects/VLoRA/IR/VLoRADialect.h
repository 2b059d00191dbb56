//===- VLoRADialect.h - the vlora dialect -----------------------*- C++ -*-===//
//
// Declares the `vlora` dialect, its enums and attributes.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_IR_VLORADIALECT_H
#define VLORA_IR_VLORADIALECT_H

#include "mlir/IR/Dialect.h"
#include "mlir/IR/DialectImplementation.h"

#include "VLoRA/IR/VLoRADialect.h.inc"
#include "VLoRA/IR/VLoRAEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "VLoRA/IR/VLoRAAttrs.h.inc"

#endif // VLORA_IR_VLORADIALECT_H
