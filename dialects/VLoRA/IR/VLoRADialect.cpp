//===- VLoRADialect.cpp - the vlora dialect -------------------------------===//
//
// Registers the ops and attributes of the `vlora` dialect and verifies the
// discardable tag attributes.
//
//===----------------------------------------------------------------------===//

#include "VLoRA/IR/VLoRADialect.h"
#include "VLoRA/IR/VLoRAOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace vlora;

#include "VLoRA/IR/VLoRADialect.cpp.inc"
#include "VLoRA/IR/VLoRAEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "VLoRA/IR/VLoRAAttrs.cpp.inc"

void VLoRADialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "VLoRA/IR/VLoRAOps.cpp.inc"
      >();
  registerAttributes();
}

void VLoRADialect::registerAttributes() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "VLoRA/IR/VLoRAAttrs.cpp.inc"
      >();
}

Operation *VLoRADialect::materializeConstant(OpBuilder &builder,
                                             Attribute value, Type type,
                                             Location loc) {
  auto elements = dyn_cast<ElementsAttr>(value);
  if (!elements || elements.getType() != type)
    return nullptr;
  return ConstantOp::create(builder, loc, elements);
}

LogicalResult VLoRADialect::verifyOperationAttribute(Operation *op,
                                                     NamedAttribute attr) {
  StringRef name = attr.getName().getValue();
  Attribute value = attr.getValue();
  if (name == kTowerAttrName) {
    if (!isa<TowerKindAttr>(value))
      return op->emitError() << "'" << name
                             << "' must be a #vlora<tower ...> attribute";
    return success();
  }
  if (name == kBlockAttrName) {
    if (!isa<BlockKindAttr>(value))
      return op->emitError() << "'" << name
                             << "' must be a #vlora<block ...> attribute";
    return success();
  }
  if (name == kLayerAttrName) {
    auto layer = dyn_cast<IntegerAttr>(value);
    if (!layer || layer.getInt() < 0)
      return op->emitError() << "'" << name
                             << "' must be a non-negative integer attribute";
    return success();
  }
  if (name == kModuleAttrName) {
    auto module = dyn_cast<StringAttr>(value);
    if (!module || module.getValue().empty())
      return op->emitError() << "'" << name
                             << "' must be a non-empty string attribute";
    return success();
  }
  if (name == kSourceAttrName || name == kOpsetAttrName) {
    if (!isa<ModuleOp>(op))
      return op->emitError() << "'" << name << "' is a module attribute";
    if (name == kSourceAttrName ? !isa<StringAttr>(value)
                                : !isa<IntegerAttr>(value))
      return op->emitError() << "'" << name << "' has the wrong kind";
    return success();
  }
  if (name == kLoRAConfigAttrName) {
    if (!isa<ModuleOp>(op))
      return op->emitError() << "'" << name << "' is a module attribute";
    if (!isa<DictionaryAttr>(value))
      return op->emitError() << "'" << name
                             << "' must be a dictionary attribute";
    return success();
  }
  if (name == kNameAttrName) {
    if (!isa<StringAttr>(value))
      return op->emitError() << "'" << name << "' must be a string attribute";
    return success();
  }
  if (name == "vlora.converted_from") {
    // --vlora-mixed-precision: where a bf16 param's f32 bytes come from.
    auto dict = dyn_cast<DictionaryAttr>(value);
    if (!isa<ParamOp>(op) || !dict || !dict.getAs<StringAttr>("source") ||
        !dict.getAs<StringAttr>("file") || !dict.getAs<IntegerAttr>("offset") ||
        !dict.getAs<IntegerAttr>("length"))
      return op->emitError() << "'" << name
                             << "' must be a {source, file, offset, length} "
                                "dictionary on a vlora.param";
    return success();
  }
  return op->emitError() << "unknown vlora attribute '" << name << "'";
}

/// Function arguments and results carry only `vlora.name`, the ONNX value
/// name.
static LogicalResult verifyValueNameAttr(Operation *op, NamedAttribute attr,
                                         StringRef where, unsigned index) {
  StringRef name = attr.getName().getValue();
  if (name != VLoRADialect::kNameAttrName)
    return op->emitError() << "unknown vlora attribute '" << name << "' on "
                           << where << " " << index;
  if (!isa<StringAttr>(attr.getValue()))
    return op->emitError() << "'" << name << "' of " << where << " " << index
                           << " must be a string attribute";
  return success();
}

LogicalResult VLoRADialect::verifyRegionArgAttribute(Operation *op, unsigned,
                                                     unsigned argIndex,
                                                     NamedAttribute attr) {
  return verifyValueNameAttr(op, attr, "argument", argIndex);
}

LogicalResult VLoRADialect::verifyRegionResultAttribute(Operation *op,
                                                        unsigned,
                                                        unsigned resultIndex,
                                                        NamedAttribute attr) {
  return verifyValueNameAttr(op, attr, "result", resultIndex);
}
