//===- StepVerifier.cpp - per-kernel checks of plan steps -----------------===//
//
// The runtime's counterpart of the vlora ops' verifiers and shape inference:
// arity, attributes (names as in VLoRAOps.td), element types and the output
// shapes a kernel will write. A plan that passes cannot make a kernel read or
// write outside its tensors.
//
//===----------------------------------------------------------------------===//

#include "runtime/PlanTypes.h"
#include "runtime/Program.h"
#include "vlora/kernels/Cpu.h"
#include "vlora/kernels/Fused.h"
#include "plan.pb.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace vlora::runtime {
using kernels::DType;
using kernels::Shape;

namespace {
[[noreturn]] void fail(const std::string &what) { throw RuntimeError(what); }

/// Reads a step's attributes by name and refuses unknown ones.
class Attributes {
public:
  explicit Attributes(const plan::Step &step) : step_(step) {}

  const plan::Attribute *find(const std::string &name) {
    used_.insert(name);
    for (const plan::Attribute &a : step_.attributes())
      if (a.name() == name)
        return &a;
    return nullptr;
  }
  const plan::Attribute &get(const std::string &name) {
    const plan::Attribute *a = find(name);
    if (!a)
      fail("missing attribute '" + name + "'");
    return *a;
  }
  int64_t integer(const std::string &name) {
    const plan::Attribute &a = get(name);
    if (a.kind_case() != plan::Attribute::kI)
      fail("attribute '" + name + "' must be an integer");
    return a.i();
  }
  /// Unit attributes: absent = false, present as i = 0 or 1.
  bool unit(const std::string &name) {
    const plan::Attribute *a = find(name);
    if (!a)
      return false;
    if (a->kind_case() != plan::Attribute::kI || (a->i() != 0 && a->i() != 1))
      fail("unit attribute '" + name + "' must be the integer 0 or 1");
    return a->i() == 1;
  }
  double real(const std::string &name) {
    const plan::Attribute &a = get(name);
    if (a.kind_case() == plan::Attribute::kF)
      return a.f();
    if (a.kind_case() == plan::Attribute::kI)
      return static_cast<double>(a.i());
    fail("attribute '" + name + "' must be a number");
  }
  std::string string(const std::string &name) {
    const plan::Attribute &a = get(name);
    if (a.kind_case() != plan::Attribute::kS)
      fail("attribute '" + name + "' must be a string");
    return a.s();
  }
  Shape ints(const std::string &name) {
    const plan::Attribute &a = get(name);
    // An empty list may arrive with no kind set (nothing was added to it).
    if (a.kind_case() == plan::Attribute::KIND_NOT_SET)
      return {};
    if (a.kind_case() != plan::Attribute::kInts)
      fail("attribute '" + name + "' must be a list of integers");
    return Shape(a.ints().values().begin(), a.ints().values().end());
  }
  /// Refuses attributes the kernel does not have. Namespaced (dotted)
  /// attributes such as tags, and MLIR's segment sizes, are ignored.
  void finish() {
    for (const plan::Attribute &a : step_.attributes()) {
      if (a.name().find('.') != std::string::npos ||
          a.name() == "operandSegmentSizes" || a.name() == "resultSegmentSizes")
        continue; // tags; MLIR's structural attributes
      if (!used_.count(a.name()))
        fail("unknown attribute '" + a.name() + "'");
    }
  }

private:
  const plan::Step &step_;
  std::set<std::string> used_;
};

struct Kinfo {
  const char *name;
  Kernel kernel;
};
constexpr Kinfo kKernels[] = {
    {"where", Kernel::Where},         {"cast", Kernel::Cast},
    {"matmul", Kernel::Matmul},       {"lora_matmul", Kernel::LoRAMatmul},
    {"conv", Kernel::Conv},           {"softmax", Kernel::Softmax},
    {"log_softmax", Kernel::LogSoftmax}, {"cumsum", Kernel::Cumsum},
    {"layer_norm", Kernel::LayerNorm}, {"rms_norm", Kernel::RmsNorm},
    {"argmax", Kernel::ArgMax},       {"reshape", Kernel::Reshape},
    {"transpose", Kernel::Transpose}, {"slice", Kernel::Slice},
    {"concat", Kernel::Concat},       {"split", Kernel::Split},
    {"gather", Kernel::Gather},       {"gather_elements", Kernel::GatherElements},
    {"gather_nd", Kernel::GatherND},  {"scatter_nd", Kernel::ScatterND},
    {"masked_scatter", Kernel::MaskedScatter}, {"expand", Kernel::Expand},
    {"pad", Kernel::Pad},             {"trilu", Kernel::Trilu},
    {"gelu", Kernel::Unary},
    {"gather_grad", Kernel::GatherGrad},
    {"cross_entropy", Kernel::CrossEntropy},
    {"cross_entropy_grad", Kernel::CrossEntropyGrad},
    {"linear_cross_entropy", Kernel::LinearCrossEntropy},
    {"softmax_grad", Kernel::SoftmaxGrad},
    {"layer_norm_grad", Kernel::LayerNormGrad},
    {"lora_matmul_grad", Kernel::LoRAMatmulGrad},
    {"masked_select", Kernel::MaskedSelect},
    {"global_norm", Kernel::GlobalNorm},
    {"adamw_update", Kernel::AdamWUpdate},
    {"attention", Kernel::Attention},
    {"attention_grad", Kernel::AttentionGrad},
    {"fused_elementwise", Kernel::FusedElementwise}};

int64_t normaliseAxis(int64_t axis, int64_t rank, const char *attr = "axis") {
  if (axis < -rank || axis >= rank)
    fail(std::string(attr) + " " + std::to_string(axis) +
         " is out of range for rank " + std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

/// A gather's result shape: data[:axis] + indices + data[axis+1:].
Shape gatheredShape(const Shape &data, int64_t axis, const Shape &indices) {
  Shape shape(data.begin(), data.begin() + axis);
  shape.insert(shape.end(), indices.begin(), indices.end());
  shape.insert(shape.end(), data.begin() + axis + 1, data.end());
  return shape;
}

/// The NumPy broadcast rule, shared with the kernels that apply it.
std::optional<Shape> broadcast(const Shape &a, const Shape &b) {
  return kernels::cpu::broadcastShapes(a, b);
}
} // namespace

void verifyStep(const plan::Plan &plan, size_t index, const Program &program,
                ProgramStep &step) {
  const plan::Step &s = plan.steps(static_cast<int>(index));
  Attributes attrs(s);
  const std::string &name = step.kernelName;

  // Which kernel.
  bool known = false;
  if (auto u = kernels::parseUnaryOp(name)) {
    step.kernel = Kernel::Unary;
    step.unary = *u;
    known = true;
  } else if (auto b = kernels::parseBinaryOp(name)) {
    step.kernel = Kernel::Binary;
    step.binary = *b;
    known = true;
  } else if (auto r = kernels::parseReduceOp(name)) {
    step.kernel = Kernel::Reduce;
    step.reduce = *r;
    known = true;
  } else {
    for (const Kinfo &k : kKernels)
      if (name == k.name) {
        step.kernel = k.kernel;
        known = true;
      }
  }
  if (!known) {
    if (name == "constant" || name == "param")
      fail("'" + name + "' is not a step: constants and parameters are values");
    fail("unknown kernel '" + name + "'");
  }

  auto value = [&](uint32_t i) -> const ProgramValue & { return program.values[i]; };
  auto in = [&](size_t i) -> const ProgramValue & { return value(step.inputs[i]); };
  auto out = [&](size_t i) -> const ProgramValue & { return value(step.outputs[i]); };
  auto arity = [&](size_t minIn, size_t maxIn, size_t outs) {
    if (step.inputs.size() < minIn || step.inputs.size() > maxIn)
      fail("takes " +
           (minIn == maxIn ? std::to_string(minIn)
                           : std::to_string(minIn) + " to " + std::to_string(maxIn)) +
           " inputs, the plan gives " + std::to_string(step.inputs.size()));
    if (outs != 0 && step.outputs.size() != outs)
      fail("has " + std::to_string(outs) + " output" + (outs == 1 ? "" : "s") +
           ", the plan gives " + std::to_string(step.outputs.size()));
  };
  auto type = [](const ProgramValue &v) { return typeString(v.dtype, v.shape); };
  auto expectOutput = [&](size_t i, DType dtype, const Shape &shape) {
    const ProgramValue &o = out(i);
    if (o.dtype != dtype || o.shape != shape)
      fail("output " + std::to_string(i) + " " + program.describeValue(step.outputs[i]) +
           " is " + type(o) + ", the kernel computes " + typeString(dtype, shape));
  };
  auto sameDType = [&](size_t a, size_t b) {
    if (in(a).dtype != in(b).dtype)
      fail("inputs " + std::to_string(a) + " and " + std::to_string(b) +
           " have different element types: " + type(in(a)) + " and " + type(in(b)));
  };
  // The element type a matmul-family step computes in and returns, from its
  // activation input `data` and weight input `weight`. The weight may be a
  // frozen weight that vlora-compile's --vlora-mixed-precision stored in
  // bf16 while the activations stay f32 (an f32 result); with 'f32_result'
  // (the same pass's bf16 activations) each is bf16 or f32 and the result
  // f32; otherwise the two share an element type.
  auto productDType = [&](size_t data, size_t weight) {
    DType d = in(data).dtype, w = in(weight).dtype;
    if (step.f32Result) {
      for (size_t i : {data, weight})
        if (in(i).dtype != DType::BF16 && in(i).dtype != DType::F32)
          fail("input " + std::to_string(i) + " must be bf16 or f32 with "
               "'f32_result', got " + type(in(i)));
      return DType::F32;
    }
    if (w == DType::BF16 && d == DType::F32)
      return DType::F32;
    sameDType(data, weight);
    return d;
  };
  auto isIndex = [&](size_t i) {
    if (in(i).dtype != DType::I64 && in(i).dtype != DType::I32)
      fail("input " + std::to_string(i) + " (indices) must be i64 or i32, got " +
           type(in(i)));
  };
  auto isBool = [&](size_t i) {
    if (in(i).dtype != DType::Bool)
      fail("input " + std::to_string(i) + " must be i1 (bool), got " + type(in(i)));
  };
  auto isFloat = [&](size_t i) {
    if (!kernels::isFloat(in(i).dtype))
      fail("input " + std::to_string(i) + " must be a float tensor, got " + type(in(i)));
  };
  auto rankOf = [&](size_t i) { return static_cast<int64_t>(in(i).shape.size()); };
  auto isScalar = [&](size_t i, DType dtype, const char *what) {
    if (in(i).dtype != dtype || !in(i).shape.empty())
      fail("input " + std::to_string(i) + " (" + what + ") must be " +
           typeString(dtype, {}) + ", got " + type(in(i)));
  };
  // lora_matmul's x, w, a, b at inputs first..first+3 (step.dropout and
  // step.transposeB decoded): checks them and returns the result's shape.
  DType loraResult = DType::F32;
  auto loraShape = [&](size_t first) {
    size_t x = first, w = first + 1, a = first + 2, b = first + 3;
    for (size_t i = x; i <= b; ++i)
      isFloat(i);
    loraResult = productDType(x, w);
    sameDType(a, b);
    if (step.f32Result && in(a).dtype != DType::F32)
      fail("needs f32 adapters with 'f32_result', got " + type(in(a)));
    if (!(step.dropout >= 0 && step.dropout < 1))
      fail("attribute 'dropout' must be in [0, 1)");
    if (rankOf(x) < 2 || rankOf(w) != 2 || rankOf(a) != 2 || rankOf(b) != 2)
      fail("needs x of rank >= 2 and 2-d w, a, b; got " + type(in(x)) + ", " +
           type(in(w)) + ", " + type(in(a)) + ", " + type(in(b)));
    int64_t inDim = in(x).shape.back();
    int64_t wIn = in(w).shape[step.transposeB ? 1 : 0];
    int64_t outDim = in(w).shape[step.transposeB ? 0 : 1];
    int64_t r = in(a).shape[0];
    if (wIn != inDim || in(a).shape[1] != inDim || in(b).shape[0] != outDim ||
        in(b).shape[1] != r)
      fail("shapes do not fit: x " + type(in(x)) + ", w " + type(in(w)) + ", a " +
           type(in(a)) + " (want [r, " + std::to_string(inDim) + "]), b " +
           type(in(b)) + " (want [" + std::to_string(outDim) + ", r])");
    Shape shape = in(x).shape;
    shape.back() = outDim;
    return shape;
  };
  // lora_matmul(_grad)'s optional input `rng` = i64[2] [seed, counter] at
  // `position`, which needs the attribute `stream`. A plan without rng (the
  // inference @main) may keep `stream`: no dropout is drawn there.
  auto loraRng = [&](size_t position) {
    bool hasRng = step.inputs.size() > position;
    if (hasRng && (in(position).dtype != DType::I64 || in(position).shape != Shape{2}))
      fail("input " + std::to_string(position) +
           " (rng) must be i64[2] = [seed, counter], got " + type(in(position)));
    if (hasRng || attrs.find("stream"))
      step.stream = attrs.integer("stream");
    if (step.stream < 0)
      fail("attribute 'stream' must be >= 0, got " + std::to_string(step.stream));
  };

  switch (step.kernel) {
  case Kernel::Unary: {
    arity(1, 1, 1);
    if (name == "gelu") {
      std::string approx = attrs.string("approximate");
      if (approx == "none")
        step.unary = kernels::UnaryOp::Gelu;
      else if (approx == "tanh")
        step.unary = kernels::UnaryOp::GeluTanh;
      else
        fail("attribute 'approximate' must be \"none\" or \"tanh\", got \"" + approx + "\"");
    }
    if (step.unary == kernels::UnaryOp::Not)
      isBool(0);
    else if (step.unary != kernels::UnaryOp::Neg && step.unary != kernels::UnaryOp::Abs)
      isFloat(0);
    expectOutput(0, in(0).dtype, in(0).shape);
    break;
  }
  case Kernel::Binary: {
    arity(2, 2, 1);
    sameDType(0, 1);
    auto shape = broadcast(in(0).shape, in(1).shape);
    if (!shape)
      fail("input shapes " + type(in(0)) + " and " + type(in(1)) + " do not broadcast");
    if (step.binary == kernels::BinaryOp::And || step.binary == kernels::BinaryOp::Or ||
        step.binary == kernels::BinaryOp::Xor)
      isBool(0);
    expectOutput(0, kernels::isCompare(step.binary) ? DType::Bool : in(0).dtype, *shape);
    break;
  }
  case Kernel::Where: {
    arity(3, 3, 1);
    isBool(0);
    sameDType(1, 2);
    auto shape = broadcast(in(1).shape, in(2).shape);
    if (shape)
      shape = broadcast(in(0).shape, *shape);
    if (!shape)
      fail("input shapes " + type(in(0)) + ", " + type(in(1)) + " and " +
           type(in(2)) + " do not broadcast");
    expectOutput(0, in(1).dtype, *shape);
    break;
  }
  case Kernel::Cast: {
    arity(1, 1, 1);
    std::string to = attrs.string("to");
    auto dtype = kernels::parseDTypeName(to);
    if (!dtype)
      fail("attribute 'to' names an unknown element type \"" + to + "\"");
    step.castTo = *dtype;
    expectOutput(0, *dtype, in(0).shape);
    break;
  }
  case Kernel::FusedElementwise: {
    arity(1, size_t(kernels::kMaxFusedInputs), 0);
    step.program = attrs.ints("program");
    step.registers = attrs.ints("outputs");
    std::vector<bool> inputIsBf16;
    std::optional<Shape> shape = Shape{};
    for (size_t i = 0; i < step.inputs.size(); ++i) {
      if (in(i).dtype != DType::F32 && in(i).dtype != DType::BF16)
        fail("input " + std::to_string(i) + " is " + type(in(i)) + "; f32 or bf16 expected");
      inputIsBf16.push_back(in(i).dtype == DType::BF16);
      shape = broadcast(*shape, in(i).shape);
      if (!shape)
        fail("input " + std::to_string(i) + " " + type(in(i)) +
             " does not broadcast with the inputs before it");
    }
    std::vector<bool> registerIsBf16;
    std::string bad = kernels::checkFusedProgram(step.program, step.registers, inputIsBf16,
                                                 registerIsBf16);
    if (!bad.empty())
      fail(bad);
    if (step.outputs.size() != step.registers.size())
      fail("has " + std::to_string(step.registers.size()) +
           " result registers, the plan gives " + std::to_string(step.outputs.size()) +
           " outputs");
    for (size_t r = 0; r < step.registers.size(); ++r)
      expectOutput(r, registerIsBf16[step.registers[r]] ? DType::BF16 : DType::F32, *shape);
    break;
  }
  case Kernel::Matmul: {
    arity(2, 2, 1);
    step.transposeA = attrs.unit("transpose_a");
    step.transposeB = attrs.unit("transpose_b");
    step.f32Result = attrs.unit("f32_result");
    // Either operand may be the bf16 weight; the result is then f32.
    DType result = in(0).dtype == DType::BF16 ? productDType(1, 0)
                                              : productDType(0, 1);
    if (rankOf(0) < 2 || rankOf(1) < 2)
      fail("operands need rank >= 2, got " + type(in(0)) + " and " + type(in(1)));
    const Shape &ls = in(0).shape, &rs = in(1).shape;
    int64_t m = ls[ls.size() - 2], kl = ls.back();
    if (step.transposeA)
      std::swap(m, kl);
    int64_t kr = rs[rs.size() - 2], n = rs.back();
    if (step.transposeB)
      std::swap(kr, n);
    if (kl != kr)
      fail("contraction sizes differ: " + type(in(0)) + " and " + type(in(1)));
    auto batch = broadcast(Shape(ls.begin(), ls.end() - 2), Shape(rs.begin(), rs.end() - 2));
    if (!batch)
      fail("batch dimensions of " + type(in(0)) + " and " + type(in(1)) +
           " do not broadcast");
    batch->push_back(m);
    batch->push_back(n);
    expectOutput(0, result, *batch);
    break;
  }
  case Kernel::LoRAMatmul: {
    arity(4, 5, 1);
    step.scale = attrs.real("scale");
    step.dropout = attrs.real("dropout");
    step.transposeB = attrs.unit("transpose_b");
    step.f32Result = attrs.unit("f32_result");
    Shape shape = loraShape(0);
    loraRng(4);
    expectOutput(0, loraResult, shape);
    break;
  }
  case Kernel::LoRAMatmulGrad: {
    arity(5, 6, 0);
    step.scale = attrs.real("scale");
    step.dropout = attrs.real("dropout");
    step.transposeB = attrs.unit("transpose_b");
    step.inputGrad = attrs.unit("input_grad");
    step.f32Result = attrs.unit("f32_result");
    Shape shape = loraShape(1);
    loraRng(5);
    if (in(0).dtype != loraResult || in(0).shape != shape)
      fail("grad " + type(in(0)) + " must have the forward result's type " +
           typeString(loraResult, shape));
    size_t outs = step.inputGrad ? 3 : 2;
    if (step.outputs.size() != outs)
      fail(std::string("has ") +
           (step.inputGrad ? "3 outputs (grad_a, grad_b, grad_x)"
                           : "2 outputs (grad_a, grad_b; grad_x needs 'input_grad')") +
           ", the plan gives " + std::to_string(step.outputs.size()));
    expectOutput(0, in(3).dtype, in(3).shape);
    expectOutput(1, in(4).dtype, in(4).shape);
    if (step.inputGrad)
      expectOutput(2, loraResult, in(1).shape);
    break;
  }
  case Kernel::Conv: {
    arity(2, 3, 1);
    step.strides = attrs.ints("strides");
    step.pads = attrs.ints("pads");
    step.dilations = attrs.ints("dilations");
    step.group = attrs.integer("group");
    isFloat(0);
    sameDType(0, 1);
    int64_t rank = rankOf(0);
    if (rank < 3 || rankOf(1) != rank)
      fail("needs input and weight of equal rank >= 3, got " + type(in(0)) + " and " +
           type(in(1)));
    size_t k = rank - 2;
    if (step.strides.size() != k || step.dilations.size() != k || step.pads.size() != 2 * k)
      fail("needs " + std::to_string(k) + " strides, " + std::to_string(k) +
           " dilations and " + std::to_string(2 * k) + " pads");
    int64_t channels = in(0).shape[1], outChannels = in(1).shape[0], g = step.group;
    if (g < 1 || channels % g || outChannels % g || in(1).shape[1] * g != channels)
      fail("weight " + type(in(1)) + " does not fit input " + type(in(0)) +
           " with group " + std::to_string(g));
    if (step.inputs.size() == 3) {
      sameDType(0, 2);
      if (in(2).shape != Shape{outChannels})
        fail("bias " + type(in(2)) + " must have shape [" + std::to_string(outChannels) + "]");
    }
    Shape shape{in(0).shape[0], outChannels};
    for (size_t i = 0; i < k; ++i) {
      if (step.strides[i] < 1 || step.dilations[i] < 1 || step.pads[i] < 0 ||
          step.pads[i + k] < 0 || step.strides[i] > (int64_t(1) << 40) ||
          step.dilations[i] > (int64_t(1) << 40) || step.pads[i] > (int64_t(1) << 40) ||
          step.pads[i + k] > (int64_t(1) << 40))
        fail("strides and dilations must be >= 1 and pads >= 0 (and not huge)");
      int64_t span = step.dilations[i] * (in(1).shape[i + 2] - 1) + 1;
      int64_t extent = in(0).shape[i + 2] + step.pads[i] + step.pads[i + k];
      if (extent < span)
        fail("kernel does not fit spatial dimension " + std::to_string(i));
      shape.push_back((extent - span) / step.strides[i] + 1);
    }
    expectOutput(0, in(0).dtype, shape);
    break;
  }
  case Kernel::Softmax:
  case Kernel::LogSoftmax:
  case Kernel::Cumsum: {
    arity(1, 1, 1);
    step.axis = normaliseAxis(attrs.integer("axis"), rankOf(0));
    if (step.kernel == Kernel::Cumsum) {
      step.exclusive = attrs.unit("exclusive");
      step.reverse = attrs.unit("reverse");
      if (in(0).dtype == DType::Bool)
        fail("input must be numeric, got " + type(in(0)));
    } else {
      isFloat(0);
    }
    expectOutput(0, in(0).dtype, in(0).shape);
    break;
  }
  case Kernel::LayerNorm:
  case Kernel::RmsNorm: {
    bool layer = step.kernel == Kernel::LayerNorm;
    arity(2, layer ? 3 : 2, 1);
    step.axis = normaliseAxis(attrs.integer("axis"), rankOf(0));
    step.epsilon = attrs.real("epsilon");
    isFloat(0);
    Shape normalised(in(0).shape.begin() + step.axis, in(0).shape.end());
    for (size_t i = 1; i < step.inputs.size(); ++i) {
      sameDType(0, i);
      if (in(i).shape != normalised)
        fail(std::string(i == 1 ? "scale " : "bias ") + type(in(i)) +
             " must have shape " + kernels::shapeString(normalised));
    }
    expectOutput(0, in(0).dtype, in(0).shape);
    break;
  }
  case Kernel::Reduce:
  case Kernel::ArgMax: {
    arity(1, 1, 1);
    step.keepdims = attrs.unit("keepdims");
    int64_t rank = rankOf(0);
    Shape axes;
    if (step.kernel == Kernel::Reduce) {
      axes = attrs.ints("axes");
    } else {
      axes = {attrs.integer("axis")};
      step.selectLast = attrs.unit("select_last");
    }
    std::vector<bool> reduced(rank, false);
    for (int64_t &a : axes) {
      a = normaliseAxis(a, rank, "axis");
      if (reduced[a])
        fail("axis " + std::to_string(a) + " is repeated");
      reduced[a] = true;
    }
    if (in(0).dtype == DType::Bool || !(kernels::isFloat(in(0).dtype) || kernels::isInteger(in(0).dtype)))
      fail("input must be numeric, got " + type(in(0)));
    Shape shape;
    for (int64_t d = 0; d < rank; ++d) {
      if (!reduced[d])
        shape.push_back(in(0).shape[d]);
      else if (step.keepdims)
        shape.push_back(1);
    }
    if (step.kernel == Kernel::ArgMax) {
      step.axis = axes[0];
      if (in(0).shape[step.axis] == 0)
        fail("argmax over an empty axis");
      expectOutput(0, DType::I64, shape);
    } else {
      step.axes = axes;
      expectOutput(0, in(0).dtype, shape);
    }
    break;
  }
  case Kernel::Reshape: {
    arity(1, 1, 1);
    step.shape = attrs.ints("shape");
    for (int64_t d : step.shape)
      if (d < 0)
        fail("attribute 'shape' " + kernels::shapeString(step.shape) +
             " has a negative dimension");
    if (step.shape != out(0).shape)
      fail("attribute 'shape' " + kernels::shapeString(step.shape) +
           " differs from the output " + type(out(0)));
    if (in(0).bytes != out(0).bytes || in(0).dtype != out(0).dtype)
      fail("cannot reshape " + type(in(0)) + " to " + type(out(0)));
    expectOutput(0, in(0).dtype, step.shape);
    break;
  }
  case Kernel::Transpose: {
    arity(1, 1, 1);
    step.perm = attrs.ints("perm");
    int64_t rank = rankOf(0);
    std::vector<bool> seen(rank, false);
    if (static_cast<int64_t>(step.perm.size()) != rank)
      fail("attribute 'perm' " + kernels::shapeString(step.perm) +
           " is not a permutation of [0, " + std::to_string(rank) + ")");
    Shape shape;
    for (int64_t p : step.perm) {
      if (p < 0 || p >= rank || seen[p])
        fail("attribute 'perm' " + kernels::shapeString(step.perm) +
             " is not a permutation of [0, " + std::to_string(rank) + ")");
      seen[p] = true;
      shape.push_back(in(0).shape[p]);
    }
    expectOutput(0, in(0).dtype, shape);
    break;
  }
  case Kernel::Slice: {
    arity(1, 1, 1);
    step.starts = attrs.ints("starts");
    step.limits = attrs.ints("limits");
    step.strides = attrs.ints("strides");
    size_t rank = in(0).shape.size();
    if (step.starts.size() != rank || step.limits.size() != rank ||
        step.strides.size() != rank)
      fail("needs " + std::to_string(rank) + " starts, limits and strides");
    Shape shape;
    for (size_t d = 0; d < rank; ++d) {
      int64_t start = step.starts[d], limit = step.limits[d], stride = step.strides[d];
      int64_t dim = in(0).shape[d];
      std::string where = "dimension " + std::to_string(d) + " [" +
                          std::to_string(start) + ":" + std::to_string(limit) +
                          ":" + std::to_string(stride) + "] of " + type(in(0));
      if (stride == 0)
        fail("stride of " + where + " is zero");
      if (start < -1 || start > dim || limit < -1 || limit > dim)
        fail("bounds of " + where + " are out of range");
      int64_t count = 0;
      if (stride > 0 && limit > start)
        count = (limit - start + stride - 1) / stride;
      else if (stride < 0 && start > limit)
        count = (start - limit + (-stride) - 1) / (-stride);
      if (count > 0) {
        int64_t last = start + (count - 1) * stride;
        if (start < 0 || start >= dim || last < 0 || last >= dim)
          fail("bounds of " + where + " are out of range");
      }
      shape.push_back(count);
    }
    expectOutput(0, in(0).dtype, shape);
    break;
  }
  case Kernel::Concat: {
    if (step.inputs.empty())
      fail("needs at least one input");
    arity(1, step.inputs.size(), 1);
    int64_t rank = rankOf(0);
    step.axis = normaliseAxis(attrs.integer("axis"), rank);
    Shape shape = in(0).shape;
    shape[step.axis] = 0;
    for (size_t i = 0; i < step.inputs.size(); ++i) {
      sameDType(0, i);
      bool fits = rankOf(i) == rank;
      for (int64_t d = 0; fits && d < rank; ++d)
        fits = d == step.axis || in(i).shape[d] == in(0).shape[d];
      if (!fits)
        fail("input " + std::to_string(i) + " " + type(in(i)) + " does not fit " +
             type(in(0)) + " along axis " + std::to_string(step.axis));
      shape[step.axis] += in(i).shape[step.axis];
    }
    expectOutput(0, in(0).dtype, shape);
    break;
  }
  case Kernel::Split: {
    arity(1, 1, 0);
    step.axis = normaliseAxis(attrs.integer("axis"), rankOf(0));
    step.sizes = attrs.ints("sizes");
    if (step.sizes.size() != step.outputs.size())
      fail("attribute 'sizes' has " + std::to_string(step.sizes.size()) +
           " entries for " + std::to_string(step.outputs.size()) + " outputs");
    int64_t total = 0;
    for (size_t i = 0; i < step.sizes.size(); ++i) {
      if (step.sizes[i] < 0 || step.sizes[i] > in(0).shape[step.axis])
        fail("attribute 'sizes' " + kernels::shapeString(step.sizes) + " is invalid");
      total += step.sizes[i];
      Shape shape = in(0).shape;
      shape[step.axis] = step.sizes[i];
      expectOutput(i, in(0).dtype, shape);
    }
    if (total != in(0).shape[step.axis])
      fail("attribute 'sizes' " + kernels::shapeString(step.sizes) + " does not add up to " +
           std::to_string(in(0).shape[step.axis]));
    break;
  }
  case Kernel::Gather: {
    arity(2, 2, 1);
    isIndex(1);
    step.axis = normaliseAxis(attrs.integer("axis"), rankOf(0));
    const Shape &ds = in(0).shape;
    if (ds[step.axis] == 0 && in(1).bytes)
      fail("gathers from an empty axis");
    expectOutput(0, in(0).dtype, gatheredShape(ds, step.axis, in(1).shape));
    break;
  }
  case Kernel::GatherGrad: {
    arity(2, 2, 1);
    isFloat(0);
    isIndex(1);
    Shape shape = attrs.ints("shape");
    for (int64_t d : shape)
      if (d < 0)
        fail("shape " + kernels::shapeString(shape) + " has a negative dimension");
    step.axis = normaliseAxis(attrs.integer("axis"), static_cast<int64_t>(shape.size()));
    if (shape[step.axis] == 0 && in(1).bytes)
      fail("scatters into an empty axis");
    Shape gathered = gatheredShape(shape, step.axis, in(1).shape);
    if (in(0).shape != gathered)
      fail("grad " + type(in(0)) + " must be the gather's result shape " +
           kernels::shapeString(gathered));
    step.shape = shape;
    expectOutput(0, in(0).dtype, shape);
    break;
  }
  case Kernel::GatherElements: {
    arity(2, 2, 1);
    isIndex(1);
    int64_t rank = rankOf(0);
    step.axis = normaliseAxis(attrs.integer("axis"), rank);
    if (rankOf(1) != rank)
      fail("indices " + type(in(1)) + " must have the rank of data " + type(in(0)));
    for (int64_t d = 0; d < rank; ++d)
      if (d != step.axis && in(1).shape[d] > in(0).shape[d])
        fail("indices " + type(in(1)) + " are larger than data " + type(in(0)) +
             " along dimension " + std::to_string(d));
    expectOutput(0, in(0).dtype, in(1).shape);
    break;
  }
  case Kernel::GatherND:
  case Kernel::ScatterND: {
    bool scatter = step.kernel == Kernel::ScatterND;
    arity(scatter ? 3 : 2, scatter ? 3 : 2, 1);
    isIndex(1);
    const Shape &ds = in(0).shape, &is = in(1).shape;
    if (is.empty() || is.back() > static_cast<int64_t>(ds.size()))
      fail("indices " + type(in(1)) + " must have rank >= 1 and a last dimension <= " +
           std::to_string(ds.size()));
    Shape shape(is.begin(), is.end() - 1);
    shape.insert(shape.end(), ds.begin() + is.back(), ds.end());
    if (scatter) {
      sameDType(0, 2);
      if (in(2).shape != shape)
        fail("updates " + type(in(2)) + " must have shape " + kernels::shapeString(shape));
      expectOutput(0, in(0).dtype, ds);
    } else {
      expectOutput(0, in(0).dtype, shape);
    }
    break;
  }
  case Kernel::MaskedScatter: {
    arity(3, 3, 1);
    isBool(1);
    sameDType(0, 2);
    if (in(1).shape != in(0).shape)
      fail("mask " + type(in(1)) + " must have the shape of data " + type(in(0)));
    expectOutput(0, in(0).dtype, in(0).shape);
    break;
  }
  case Kernel::Expand: {
    arity(1, 1, 1);
    step.shape = attrs.ints("shape");
    for (int64_t d : step.shape)
      if (d < 0)
        fail("attribute 'shape' " + kernels::shapeString(step.shape) +
             " has a negative dimension");
    auto shape = broadcast(in(0).shape, step.shape);
    if (!shape)
      fail(type(in(0)) + " does not broadcast to " + kernels::shapeString(step.shape));
    expectOutput(0, in(0).dtype, *shape);
    break;
  }
  case Kernel::Pad: {
    arity(1, 1, 1);
    step.pads = attrs.ints("pads");
    step.value = attrs.real("value");
    size_t rank = in(0).shape.size();
    if (step.pads.size() != 2 * rank)
      fail("attribute 'pads' needs " + std::to_string(2 * rank) + " entries");
    Shape shape = in(0).shape;
    for (size_t d = 0; d < rank; ++d) {
      if (step.pads[d] < 0 || step.pads[d + rank] < 0 ||
          step.pads[d] > (int64_t(1) << 40) || step.pads[d + rank] > (int64_t(1) << 40))
        fail("attribute 'pads' " + kernels::shapeString(step.pads) +
             " must be non-negative");
      shape[d] += step.pads[d] + step.pads[d + rank];
    }
    expectOutput(0, in(0).dtype, shape);
    break;
  }
  case Kernel::Trilu: {
    arity(1, 1, 1);
    step.upper = attrs.unit("upper");
    step.k = attrs.integer("k");
    if (rankOf(0) < 2)
      fail("input must have rank >= 2, got " + type(in(0)));
    expectOutput(0, in(0).dtype, in(0).shape);
    break;
  }
  case Kernel::CrossEntropy:
  case Kernel::CrossEntropyGrad: {
    bool grad = step.kernel == Kernel::CrossEntropyGrad;
    arity(grad ? 3 : 2, grad ? 3 : 2, 1);
    step.ignoreIndex = attrs.integer("ignore_index");
    size_t logits = grad ? 1 : 0, labels = logits + 1;
    if (grad)
      isScalar(0, DType::F32, "dloss");
    isFloat(logits);
    if (rankOf(logits) != 3)
      fail("logits " + type(in(logits)) + " must be [B, S, V]");
    Shape bs(in(logits).shape.begin(), in(logits).shape.end() - 1);
    if (in(labels).dtype != DType::I64 || in(labels).shape != bs)
      fail("labels " + type(in(labels)) + " must be " + typeString(DType::I64, bs) +
           " ([B, S] of the logits " + type(in(logits)) + ")");
    if (grad)
      expectOutput(0, in(logits).dtype, in(logits).shape);
    else
      expectOutput(0, DType::F32, {});
    break;
  }
  case Kernel::LinearCrossEntropy: {
    arity(4, 4, 2);
    step.ignoreIndex = attrs.integer("ignore_index");
    step.transposeB = attrs.unit("transpose_b");
    step.f32Result = attrs.unit("f32_result");
    isFloat(0);
    DType result = productDType(0, 1);
    if (rankOf(0) != 3 || rankOf(1) != 2)
      fail("input " + type(in(0)) + " must be [B, S, D] and weight " + type(in(1)) +
           " rank 2");
    int64_t features = in(1).shape[step.transposeB ? 1 : 0];
    if (features != in(0).shape[2])
      fail("weight " + type(in(1)) + (step.transposeB ? " (transposed)" : "") +
           " does not take the " + std::to_string(in(0).shape[2]) +
           " features of input " + type(in(0)));
    Shape bs(in(0).shape.begin(), in(0).shape.end() - 1);
    if (in(2).dtype != DType::I64 || in(2).shape != bs)
      fail("labels " + type(in(2)) + " must be " + typeString(DType::I64, bs));
    isScalar(3, DType::F32, "dloss");
    expectOutput(0, DType::F32, {});
    expectOutput(1, result, in(0).shape);
    break;
  }
  case Kernel::Attention:
  case Kernel::AttentionGrad: {
    bool grad = step.kernel == Kernel::AttentionGrad;
    size_t first = grad ? 1 : 0; // q, k, v, [mask]
    arity(first + 3, first + 4, grad ? 3 : 1);
    step.scale = attrs.real("scale");
    step.transposeK = attrs.unit("transpose_k");
    step.f32Result = attrs.unit("f32_result");
    if (!std::isfinite(step.scale))
      fail("attribute 'scale' must be finite");
    size_t q = first, k = first + 1, v = first + 2;
    // The result's type: q's, or f32 with 'f32_result' (bf16 or f32 q, k,
    // v; an f32 mask).
    DType result = step.f32Result ? DType::F32 : in(q).dtype;
    isFloat(q);
    for (size_t i = first; i < step.inputs.size(); ++i) {
      bool operand = i < first + 3;
      if (step.f32Result && operand) {
        if (in(i).dtype != DType::BF16 && in(i).dtype != DType::F32)
          fail("input " + std::to_string(i) + " must be bf16 or f32 with "
               "'f32_result', got " + type(in(i)));
      } else if (in(i).dtype != result) {
        fail("input " + std::to_string(i) + " must be " +
             kernels::dtypeName(result) + ", got " + type(in(i)));
      }
    }
    int64_t rank = rankOf(q);
    if (rank < 2 || rankOf(k) != rank || rankOf(v) != rank)
      fail("q, k and v need one rank >= 2, got " + type(in(q)) + ", " +
           type(in(k)) + " and " + type(in(v)));
    Shape batch(in(q).shape.begin(), in(q).shape.end() - 2);
    for (size_t i : {k, v})
      if (!std::equal(batch.begin(), batch.end(), in(i).shape.begin()))
        fail("q, k and v must share their leading dimensions, got " +
             type(in(q)) + ", " + type(in(k)) + " and " + type(in(v)));
    const Shape &ks = in(k).shape;
    int64_t s = in(q).shape[rank - 2], d = in(q).shape[rank - 1];
    int64_t kd = step.transposeK ? ks[rank - 1] : ks[rank - 2];
    int64_t t = step.transposeK ? ks[rank - 2] : ks[rank - 1];
    if (kd != d || in(v).shape[rank - 2] != t)
      fail("k " + type(in(k)) + " and v " + type(in(v)) +
           " do not fit q " + type(in(q)));
    Shape scores = batch;
    scores.push_back(s);
    scores.push_back(t);
    if (step.inputs.size() == first + 4) {
      std::optional<Shape> b = broadcast(in(first + 3).shape, scores);
      if (!b || *b != scores)
        fail("mask " + type(in(first + 3)) + " does not broadcast to the scores " +
             typeString(result, scores));
    }
    Shape out = batch;
    out.push_back(s);
    out.push_back(in(v).shape[rank - 1]);
    if (grad) {
      if (in(0).dtype != result || in(0).shape != out)
        fail("grad " + type(in(0)) + " must be the forward result " +
             typeString(result, out));
      expectOutput(0, result, in(q).shape);
      expectOutput(1, result, in(k).shape);
      expectOutput(2, result, in(v).shape);
    } else {
      expectOutput(0, result, out);
    }
    break;
  }
  case Kernel::SoftmaxGrad: {
    arity(2, 2, 1);
    step.axis = normaliseAxis(attrs.integer("axis"), rankOf(0));
    isFloat(0);
    sameDType(0, 1);
    if (in(1).shape != in(0).shape)
      fail("the softmax output " + type(in(1)) + " must have the shape of grad " +
           type(in(0)));
    expectOutput(0, in(0).dtype, in(0).shape);
    break;
  }
  case Kernel::LayerNormGrad: {
    arity(3, 3, 1);
    step.axis = normaliseAxis(attrs.integer("axis"), rankOf(1));
    step.epsilon = attrs.real("epsilon");
    isFloat(1);
    sameDType(0, 1);
    sameDType(1, 2);
    if (in(0).shape != in(1).shape)
      fail("grad " + type(in(0)) + " must have the shape of input " + type(in(1)));
    Shape normalised(in(1).shape.begin() + step.axis, in(1).shape.end());
    if (in(2).shape != normalised)
      fail("scale " + type(in(2)) + " must have shape " +
           kernels::shapeString(normalised));
    expectOutput(0, in(1).dtype, in(1).shape);
    break;
  }
  case Kernel::MaskedSelect: {
    arity(2, 2, 1);
    isBool(1);
    step.shape = attrs.ints("shape");
    for (int64_t d : step.shape)
      if (d < 0)
        fail("attribute 'shape' " + kernels::shapeString(step.shape) +
             " has a negative dimension");
    if (in(1).shape != in(0).shape)
      fail("mask " + type(in(1)) + " must have the shape of input " + type(in(0)));
    expectOutput(0, in(0).dtype, step.shape);
    break;
  }
  case Kernel::GlobalNorm: {
    if (step.inputs.empty())
      fail("needs at least one input");
    arity(1, step.inputs.size(), 1);
    for (size_t i = 0; i < step.inputs.size(); ++i)
      isFloat(i);
    expectOutput(0, DType::F32, {});
    break;
  }
  case Kernel::AdamWUpdate: {
    // param, grad, exp_avg, exp_avg_sq, lr, step, weight_decay[, grad_scale]
    arity(7, 8, 3);
    step.beta1 = attrs.real("beta1");
    step.beta2 = attrs.real("beta2");
    step.eps = attrs.real("eps");
    if (!(step.beta1 >= 0 && step.beta1 < 1) || !(step.beta2 >= 0 && step.beta2 < 1))
      fail("attributes 'beta1' and 'beta2' must be in [0, 1), got " +
           std::to_string(step.beta1) + " and " + std::to_string(step.beta2));
    if (!(step.eps > 0))
      fail("attribute 'eps' must be > 0, got " + std::to_string(step.eps));
    isFloat(0);
    const char *names[] = {"param", "grad", "exp_avg", "exp_avg_sq"};
    for (size_t i = 1; i < 4; ++i)
      if (in(i).dtype != in(0).dtype || in(i).shape != in(0).shape)
        fail("input " + std::to_string(i) + " (" + names[i] + ") " + type(in(i)) +
             " must have the parameter's type " + type(in(0)));
    isScalar(4, DType::F32, "lr");
    isScalar(5, DType::I64, "step");
    isScalar(6, DType::F32, "weight_decay");
    if (step.inputs.size() == 8)
      isScalar(7, DType::F32, "grad_scale");
    for (size_t o = 0; o < 3; ++o)
      expectOutput(o, in(0).dtype, in(0).shape);
    break;
  }
  }
  attrs.finish();
}

} // namespace vlora::runtime
