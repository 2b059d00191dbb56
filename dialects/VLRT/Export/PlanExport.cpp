//===- PlanExport.cpp - vlrt program to plan.pb ---------------------------===//
//
// One vlrt op, one plan entry: slices, inputs, weights and constants become
// plan values; kernels become steps with their params as attributes.
//
//===----------------------------------------------------------------------===//

#include "VLRT/Export/PlanExport.h"
#include "VLRT/IR/VLRTOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/ADT/DenseMap.h"

#include "PlanFormat.h"
#include "plan.pb.h"

using namespace mlir;
using namespace vlora;
using namespace vlora::vlrt;

plan::DType vlora::vlrt::getPlanDType(Type t) {
  if (t.isF32())
    return plan::F32;
  if (t.isF64())
    return plan::F64;
  if (t.isF16())
    return plan::F16;
  if (t.isBF16())
    return plan::BF16;
  if (t.isInteger(1))
    return plan::BOOL;
  if (t.isUnsignedInteger(8))
    return plan::U8;
  if (t.isInteger(8))
    return plan::I8;
  if (t.isInteger(16))
    return plan::I16;
  if (t.isInteger(32))
    return plan::I32;
  if (t.isInteger(64))
    return plan::I64;
  return plan::DTYPE_INVALID;
}

static void setType(plan::TensorType *out, MemRefType type) {
  out->set_dtype(getPlanDType(type.getElementType()));
  for (int64_t d : type.getShape())
    out->add_shape(d);
}

/// Little-endian bytes of a dense constant (i1 as one byte per element).
static std::string constantBytes(ElementsAttr value) {
  std::string bytes;
  Type element = value.getElementType();
  int64_t size = getElementBytes(element);
  auto append = [&](uint64_t bits) {
    for (int64_t b = 0; b < size; ++b)
      bytes.push_back(char((bits >> (8 * b)) & 0xff));
  };
  if (isa<FloatType>(element)) {
    for (APFloat v : value.getValues<APFloat>())
      append(v.bitcastToAPInt().getZExtValue());
  } else {
    for (APInt v : value.getValues<APInt>())
      append(element.isInteger(1) ? uint64_t(v.getBoolValue()) : v.getZExtValue());
  }
  return bytes;
}

LogicalResult vlora::vlrt::exportPlan(ModuleOp module, plan::Plan &out,
                                      StringRef compilerVersion,
                                      StringRef function) {
  func::FuncOp program;
  for (auto func : module.getOps<func::FuncOp>())
    if (func->hasAttr(VLRTDialect::kArenaBytesAttrName)) {
      if (!function.empty() && func.getName() != function)
        continue;
      if (program)
        return func.emitError("more than one vlrt program in the module "
                              "(choose one by name)");
      program = func;
    }
  if (!program && !function.empty())
    return module.emitError("no vlrt program named '")
           << function << "' (a function with '"
           << VLRTDialect::kArenaBytesAttrName
           << "'); run --lower-vlora-to-vlrt first";
  if (!program)
    return module.emitError("no vlrt program (a function with '")
           << VLRTDialect::kArenaBytesAttrName
           << "'); run --lower-vlora-to-vlrt first";
  out.set_format_version(plan::kFormatVersion);
  out.set_compiler_version(compilerVersion.str());
  out.set_arena_bytes(
      program->getAttrOfType<IntegerAttr>(VLRTDialect::kArenaBytesAttrName).getInt());

  llvm::DenseMap<Value, uint32_t> index;
  auto newValue = [&](Value v, Location loc) {
    index[v] = out.values_size();
    plan::Value *pv = out.add_values();
    setType(pv->mutable_type(), cast<MemRefType>(v.getType()));
    if (auto name = dyn_cast<NameLoc>(loc))
      pv->set_name(name.getName().str());
    return pv;
  };
  for (Operation &op : program.getBody().front()) {
    if (auto slice = dyn_cast<SliceOp>(op)) {
      newValue(slice, op.getLoc())->set_arena_offset(slice.getOffsetAttr().getInt());
    } else if (auto input = dyn_cast<InputOp>(op)) {
      plan::Value *pv = newValue(input, op.getLoc());
      pv->set_arena_offset(input.getOffsetAttr().getInt());
      pv->set_name(input.getName().str());
      plan::Binding *b = out.add_inputs();
      b->set_name(input.getName().str());
      b->set_value(index[input]);
    } else if (auto weight = dyn_cast<WeightOp>(op)) {
      plan::Weight *w = out.add_weights();
      w->set_name(weight.getName().str());
      w->set_root(weight.getRoot() == "bundle" ? plan::BUNDLE : plan::MODEL);
      w->set_file(weight.getFile().str());
      w->set_offset(weight.getOffsetAttr().getInt());
      w->set_length(weight.getLengthAttr().getInt());
      setType(w->mutable_type(), weight.getType());
      plan::Value *pv = newValue(weight, op.getLoc());
      pv->set_weight(out.weights_size() - 1);
      pv->set_name(weight.getName().str());
    } else if (auto constant = dyn_cast<ConstantOp>(op)) {
      newValue(constant, op.getLoc())->set_constant(constantBytes(constant.getValue()));
    } else if (auto kernel = dyn_cast<KernelOp>(op)) {
      plan::Step *step = out.add_steps();
      step->set_kernel(kernel.getName().str());
      if (auto name = dyn_cast<NameLoc>(op.getLoc()))
        step->set_location(name.getName().str());
      for (Value v : kernel.getIns())
        step->add_inputs(index.lookup(v));
      for (Value v : kernel.getOuts())
        step->add_outputs(index.lookup(v));
      for (NamedAttribute attr : kernel.getParams()) {
        plan::Attribute *a = step->add_attributes();
        a->set_name(attr.getName().str());
        Attribute value = attr.getValue();
        if (auto i = dyn_cast<IntegerAttr>(value))
          a->set_i(i.getInt());
        else if (auto f = dyn_cast<FloatAttr>(value))
          a->set_f(f.getValueAsDouble());
        else if (auto s = dyn_cast<StringAttr>(value))
          a->set_s(s.str());
        else if (auto ints = dyn_cast<DenseI64ArrayAttr>(value)) {
          plan::IntList *list = a->mutable_ints(); // set even when empty
          for (int64_t v : ints.asArrayRef())
            list->add_values(v);
        }
        else
          return kernel.emitOpError("param '")
                 << attr.getName().getValue() << "' has an unsupported kind";
      }
    } else if (auto output = dyn_cast<OutputOp>(op)) {
      plan::Binding *b = out.add_outputs();
      b->set_name(output.getName().str());
      b->set_value(index.lookup(output.getValue()));
    } else if (!isa<func::ReturnOp>(op)) {
      return op.emitOpError("cannot be written to a plan");
    }
  }
  return success();
}

LogicalResult vlora::vlrt::exportPlan(ModuleOp module, llvm::raw_ostream &os,
                                      StringRef compilerVersion,
                                      StringRef function) {
  plan::Plan plan;
  if (failed(exportPlan(module, plan, compilerVersion, function)))
    return failure();
  std::string bytes;
  if (!plan.SerializeToString(&bytes))
    return module.emitError("cannot serialise the plan");
  os << bytes;
  return success();
}
