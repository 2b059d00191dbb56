//===- Passes.h - vlora transformation passes -------------------*- C++ -*-===//
//
// Declares the vlora passes (generated from Passes.td) and their registration.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_PASSES_PASSES_H
#define VLORA_PASSES_PASSES_H

#include "VLRT/IR/VLRTOps.h"
#include "VLoRA/IR/VLoRADialect.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace vlora {

#define GEN_PASS_DECL
#include "passes/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/Passes.h.inc"

} // namespace vlora

#endif // VLORA_PASSES_PASSES_H
