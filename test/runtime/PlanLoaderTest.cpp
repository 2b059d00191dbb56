//===- PlanLoaderTest.cpp - the plan loader refuses every bad plan --------===//
//
// Each case corrupts the valid tiny plan in one way and checks the loader's
// message names the problem (and the step or value); the valid plan runs
// end to end.
//
//===----------------------------------------------------------------------===//

#include "TestBundle.h"

#include "runtime/Program.h"
#include "runtime/Runtime.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>

using namespace vlora;
using namespace vlora::runtime;
using vlora::test::addAttr;
using vlora::test::addStep;
using vlora::test::addValue;

namespace {

struct BadPlan {
  const char *what;
  std::function<void(plan::Plan &)> corrupt;
  const char *message;
};

class PlanLoaderBad : public ::testing::TestWithParam<BadPlan> {};

TEST_P(PlanLoaderBad, IsRefusedWithAClearMessage) {
  plan::Plan p = test::tinyPlan();
  GetParam().corrupt(p);
  Expected<Program> program = validatePlan(p, "bundle/plan.pb");
  ASSERT_FALSE(program.ok()) << GetParam().what;
  EXPECT_NE(program.message().find(GetParam().message), std::string::npos)
      << "message: " << program.message();
  EXPECT_EQ(program.message().rfind("bundle/plan.pb: ", 0), 0u) << program.message();
}

plan::Step &step(plan::Plan &p, int i) { return *p.mutable_steps(i); }

//===----------------------------------------------------------------------===//
// A valid plan with one step of every training kernel
//===----------------------------------------------------------------------===//

/// A new arena value in its own 256-byte slot after the arena's end.
uint32_t arenaValue(plan::Plan &p, std::vector<int64_t> shape, const std::string &name,
                    plan::DType dtype = plan::F32) {
  addValue(p, std::move(shape), name, dtype)->set_arena_offset(p.arena_bytes());
  p.set_arena_bytes(p.arena_bytes() + 256);
  return static_cast<uint32_t>(p.values_size() - 1);
}

/// An arena value bound as a plan input (or output).
uint32_t bound(plan::Plan &p, std::vector<int64_t> shape, const std::string &name,
               plan::DType dtype = plan::F32, bool output = false) {
  uint32_t v = arenaValue(p, std::move(shape), name, dtype);
  plan::Binding *b = output ? p.add_outputs() : p.add_inputs();
  b->set_name(name);
  b->set_value(v);
  return v;
}
uint32_t result(plan::Plan &p, std::vector<int64_t> shape, const std::string &name,
                plan::DType dtype = plan::F32) {
  return bound(p, std::move(shape), name, dtype, true);
}

/// The steps trainingPlan() appends to the tiny plan (steps 0-2), in order.
enum TrainingStep {
  kCrossEntropy = 3, kCrossEntropyGrad, kSoftmaxGrad, kLayerNormGrad, kLoRAMatmul,
  kLoRAMatmulGrad, kMaskedSelect, kGlobalNorm, kAdamW
};

/// The tiny plan (x f32[2, 3], W f32[3, 4], xw = x · W f32[2, 4]) plus:
///   loss = cross_entropy(lm_logits f32[2, 3, 5], labels i64[2, 3])
///   dlogits = cross_entropy_grad(dloss, lm_logits, labels)
///   dsm = softmax_grad(dy f32[2, 5], y f32[2, 5]) axis -1
///   dln = layer_norm_grad(dy, y, gamma f32[5]) axis 1
///   ly = lora_matmul(x, W, A f32[2, 3], B f32[4, 2], rng i64[2]) stream 3
///   gA, gB, gx = lora_matmul_grad(xw, x, W, A, B, rng) input_grad stream 3
///   sel = masked_select(x, mask i1[2, 3]) shape [4]
///   norm = global_norm(gA, gB)
///   A1, m1, v1 = adamw_update(A, gA, m, v, lr, step, wd, norm)
plan::Plan trainingPlan() {
  plan::Plan p = test::tinyPlan();
  uint32_t logits = bound(p, {2, 3, 5}, "lm_logits"),
           labels = bound(p, {2, 3}, "labels", plan::I64),
           dloss = bound(p, {}, "dloss"), dy = bound(p, {2, 5}, "dy"),
           y = bound(p, {2, 5}, "y"), gamma = bound(p, {5}, "gamma"),
           a = bound(p, {2, 3}, "A"), b = bound(p, {4, 2}, "B"),
           rng = bound(p, {2}, "rng", plan::I64), mask = bound(p, {2, 3}, "mask", plan::BOOL),
           m = bound(p, {2, 3}, "m"), v = bound(p, {2, 3}, "v"), lr = bound(p, {}, "lr"),
           stepNo = bound(p, {}, "step", plan::I64), wd = bound(p, {}, "wd");
  uint32_t loss = result(p, {}, "loss"), dlogits = result(p, {2, 3, 5}, "dlogits"),
           dsm = result(p, {2, 5}, "dsm"), dln = result(p, {2, 5}, "dln"),
           ly = result(p, {2, 4}, "ly"), gA = result(p, {2, 3}, "gA"),
           gB = result(p, {4, 2}, "gB"), gx = result(p, {2, 3}, "gx"),
           sel = result(p, {4}, "sel"), norm = result(p, {}, "norm"),
           a1 = result(p, {2, 3}, "A1"), m1 = result(p, {2, 3}, "m1"),
           v1 = result(p, {2, 3}, "v1");
  addAttr(addStep(p, "cross_entropy", {logits, labels}, {loss}, "/loss"), "ignore_index")
      ->set_i(-100);
  addAttr(addStep(p, "cross_entropy_grad", {dloss, logits, labels}, {dlogits}, "/loss_grad"),
          "ignore_index")
      ->set_i(-100);
  addAttr(addStep(p, "softmax_grad", {dy, y}, {dsm}, "/softmax_grad"), "axis")->set_i(-1);
  plan::Step *ln = addStep(p, "layer_norm_grad", {dy, y, gamma}, {dln}, "/ln_grad");
  addAttr(ln, "axis")->set_i(1);
  addAttr(ln, "epsilon")->set_f(1e-5);
  auto lora = [&](plan::Step *s) {
    addAttr(s, "scale")->set_f(2.0);
    addAttr(s, "dropout")->set_f(0.25);
    addAttr(s, "stream")->set_i(3);
    return s;
  };
  lora(addStep(p, "lora_matmul", {0, 1, a, b, rng}, {ly}, "/q_proj"));
  addAttr(lora(addStep(p, "lora_matmul_grad", {3, 0, 1, a, b, rng}, {gA, gB, gx},
                       "/q_proj_grad")),
          "input_grad")
      ->set_i(1);
  auto *shape = addAttr(addStep(p, "masked_select", {0, mask}, {sel}, "/select"), "shape")
                    ->mutable_ints();
  shape->add_values(4);
  addStep(p, "global_norm", {gA, gB}, {norm}, "/norm");
  plan::Step *adam =
      addStep(p, "adamw_update", {a, gA, m, v, lr, stepNo, wd, norm}, {a1, m1, v1}, "/adamw");
  addAttr(adam, "beta1")->set_f(0.9);
  addAttr(adam, "beta2")->set_f(0.999);
  addAttr(adam, "eps")->set_f(1e-8);
  return p;
}

/// The value index of `name` in trainingPlan().
int valueNamed(const plan::Plan &p, const std::string &name) {
  for (int i = 0; i < p.values_size(); ++i)
    if (p.values(i).name() == name)
      return i;
  return -1;
}
void setDType(plan::Plan &p, const std::string &name, plan::DType dtype) {
  p.mutable_values(valueNamed(p, name))->mutable_type()->set_dtype(dtype);
}
plan::Attribute *attrNamed(plan::Step &s, const std::string &name) {
  for (plan::Attribute &a : *s.mutable_attributes())
    if (a.name() == name)
      return &a;
  return nullptr;
}
void removeAttr(plan::Step &s, const std::string &name) {
  for (int i = 0; i < s.attributes_size(); ++i)
    if (s.attributes(i).name() == name) {
      s.mutable_attributes()->DeleteSubrange(i, 1);
      return;
    }
}

/// The tiny plan with its weight W stored in bf16, as vlora-compile's
/// --vlora-mixed-precision writes frozen matmul weights.
void makeWeightBF16(plan::Plan &p) {
  p.mutable_weights(0)->mutable_type()->set_dtype(plan::BF16);
  p.mutable_weights(0)->set_length(24);
  p.mutable_values(1)->mutable_type()->set_dtype(plan::BF16);
}

const BadPlan kBadPlans[] = {
    {"version", [](plan::Plan &p) { p.set_format_version(7); },
     "plan format version 7, this runtime reads 1"},
    // Values.
    {"dtype", [](plan::Plan &p) { p.mutable_values(3)->mutable_type()->set_dtype(plan::DTYPE_INVALID); },
     "value 3 ('xw'): invalid dtype 0"},
    {"negative dim", [](plan::Plan &p) { p.mutable_values(3)->mutable_type()->set_shape(0, -2); },
     "value 3 ('xw'): shape [-2, 4] has a negative dimension"},
    {"overflow", [](plan::Plan &p) {
       auto *t = p.mutable_values(3)->mutable_type();
       t->set_shape(0, int64_t(1) << 40);
       t->set_shape(1, int64_t(1) << 40);
     }, "is too large"},
    {"overflow after zero", [](plan::Plan &p) {
       auto *t = p.mutable_values(3)->mutable_type();
       t->set_shape(0, int64_t(1) << 62);
       t->set_shape(1, int64_t(1) << 62);
       t->add_shape(0);
     }, "is too large"},
    {"arena end", [](plan::Plan &p) { p.mutable_values(5)->set_arena_offset(240); },
     "value 5 ('probs'): arena bytes [240, 272) go past the arena's 256 bytes"},
    {"arena offset overflow", [](plan::Plan &p) { p.mutable_values(5)->set_arena_offset(UINT64_MAX - 8); },
     "go past the arena's 256 bytes"},
    {"alignment", [](plan::Plan &p) { p.mutable_values(5)->set_arena_offset(194); },
     "arena offset 194 is not aligned to its 4-byte elements"},
    {"weight index", [](plan::Plan &p) { p.mutable_values(1)->set_weight(3); },
     "value 1 ('W'): weight index 3 is out of range (the plan has 1 weights)"},
    {"weight type", [](plan::Plan &p) { p.mutable_values(1)->mutable_type()->set_dtype(plan::F64); },
     "differs from weight 'W'"},
    {"constant size", [](plan::Plan &p) { p.mutable_values(2)->set_constant("abc"); },
     "value 2 ('b'): constant has 3 bytes, its type f32[4] needs 16"},
    {"no storage", [](plan::Plan &p) { p.mutable_values(3)->clear_storage(); },
     "value 3 ('xw'): no storage"},
    // Weights.
    {"weight length", [](plan::Plan &p) { p.mutable_weights(0)->set_length(47); },
     "weight 0 ('W'): length 47 differs from the 48 bytes of its type"},
    {"weight path", [](plan::Plan &p) { p.mutable_weights(0)->set_file("../w.bin"); },
     "must be a relative path without '..'"},
    {"weight absolute", [](plan::Plan &p) { p.mutable_weights(0)->set_file("/etc/passwd"); },
     "must be a relative path"},
    {"weight offset overflow", [](plan::Plan &p) { p.mutable_weights(0)->set_offset(UINT64_MAX - 4); },
     "offset + length overflows"},
    // Bindings.
    {"input index", [](plan::Plan &p) { p.mutable_inputs(0)->set_value(99); },
     "input 'x': value index 99 is out of range (the plan has 6 values)"},
    {"output index", [](plan::Plan &p) { p.mutable_outputs(0)->set_value(6); },
     "output 'probs': value index 6 is out of range"},
    {"input not arena", [](plan::Plan &p) { p.mutable_inputs(0)->set_value(1); },
     "input 'x' is bound to value 1 ('W'), which is not in the arena"},
    {"duplicate input", [](plan::Plan &p) { *p.add_inputs() = p.inputs(0); },
     "input 'x' is bound twice"},
    {"no outputs", [](plan::Plan &p) { p.clear_outputs(); },
     "the plan has no outputs (truncated?)"},
    {"output never computed", [](plan::Plan &p) { p.mutable_steps()->RemoveLast(); },
     "output 'probs' (value 5 ('probs')) is never computed by any step"},
    // Steps: indices, names, arity, attributes.
    {"step input index", [](plan::Plan &p) { step(p, 1).set_inputs(1, 42); },
     "step 1 'add' at '/Add' input: value index 42 is out of range"},
    {"step output index", [](plan::Plan &p) { step(p, 1).set_outputs(0, 42); },
     "step 1 'add' at '/Add' output: value index 42 is out of range"},
    {"output not arena", [](plan::Plan &p) { step(p, 1).set_outputs(0, 2); },
     "step 1 'add' at '/Add': output value 2 ('b') is not in the arena"},
    {"unknown kernel", [](plan::Plan &p) { step(p, 1).set_kernel("frobnicate"); },
     "step 1 'frobnicate' at '/Add': unknown kernel 'frobnicate'"},
    {"constant step", [](plan::Plan &p) { step(p, 1).set_kernel("constant"); },
     "'constant' is not a step"},
    {"arity", [](plan::Plan &p) { step(p, 1).add_inputs(0); },
     "step 1 'add' at '/Add': takes 2 inputs, the plan gives 3"},
    {"missing attribute", [](plan::Plan &p) { step(p, 2).clear_attributes(); },
     "step 2 'softmax' at '/Softmax': missing attribute 'axis'"},
    {"attribute kind", [](plan::Plan &p) { step(p, 2).mutable_attributes(0)->set_s("x"); },
     "attribute 'axis' must be an integer"},
    {"axis range", [](plan::Plan &p) { step(p, 2).mutable_attributes(0)->set_i(2); },
     "axis 2 is out of range for rank 2"},
    {"unknown attribute", [](plan::Plan &p) { addAttr(&step(p, 2), "temperature")->set_f(2); },
     "unknown attribute 'temperature'"},
    {"unit attribute", [](plan::Plan &p) { addAttr(&step(p, 0), "transpose_b")->set_i(5); },
     "unit attribute 'transpose_b' must be the integer 0 or 1"},
    // Shapes and types.
    {"matmul contraction", [](plan::Plan &p) { addAttr(&step(p, 0), "transpose_a")->set_i(1); },
     "step 0 'matmul' at '/MatMul': contraction sizes differ"},
    {"output shape", [](plan::Plan &p) { p.mutable_values(3)->mutable_type()->set_shape(1, 5); },
     "step 0 'matmul' at '/MatMul': output 0 value 3 ('xw') is f32[2, 5], the kernel computes f32[2, 4]"},
    {"broadcast", [](plan::Plan &p) {
       addValue(p, {3}, "c")->set_constant(std::string(12, '\0'));
       step(p, 1).set_inputs(1, 6);
     }, "input shapes f32[2, 4] and f32[3] do not broadcast"},
    {"element types", [](plan::Plan &p) {
       addValue(p, {4}, "c", plan::I64)->set_constant(std::string(32, '\0'));
       step(p, 1).set_inputs(1, 6);
     }, "inputs 0 and 1 have different element types: f32[2, 4] and i64[4]"},
    // Only a matmul-family weight may be bf16 next to f32 operands.
    {"bf16 add operand", [](plan::Plan &p) {
       p.mutable_values(2)->mutable_type()->set_dtype(plan::BF16);
       p.mutable_values(2)->set_constant(std::string(8, '\0'));
     }, "step 1 'add' at '/Add': inputs 0 and 1 have different element types: f32[2, 4] and "
        "bf16[4]"},
    {"bf16 weight with f64 activations", [](plan::Plan &p) {
       makeWeightBF16(p);
       p.mutable_values(0)->mutable_type()->set_dtype(plan::F64);
     }, "step 0 'matmul' at '/MatMul': inputs 0 and 1 have different element types: "
        "f64[2, 3] and bf16[3, 4]"},
    {"bf16 weight, bf16 result", [](plan::Plan &p) {
       makeWeightBF16(p);
       p.mutable_values(3)->mutable_type()->set_dtype(plan::BF16);
     }, "step 0 'matmul' at '/MatMul': output 0 value 3 ('xw') is bf16[2, 4], the kernel "
        "computes f32[2, 4]"},
    {"bf16 lora adapter", [](plan::Plan &p) {
       p = trainingPlan();
       setDType(p, "B", plan::BF16);
     }, "step 7 'lora_matmul' at '/q_proj': inputs 2 and 3 have different element types: "
        "f32[2, 3] and bf16[4, 2]"},
    // Data flow and aliasing.
    {"read before write", [](plan::Plan &p) { step(p, 1).set_inputs(0, 5); },
     "step 1 'add' at '/Add': reads value 5 ('probs') before any step computes it"},
    {"partial overlap", [](plan::Plan &p) { p.mutable_values(3)->set_arena_offset(16); },
     "step 0 'matmul' at '/MatMul': output value 3 ('xw') overlaps input value 0 ('x') in the arena"},
    {"matmul in place", [](plan::Plan &p) {
       p.mutable_values(0)->mutable_type()->set_shape(1, 4);
       p.mutable_values(1)->mutable_type()->set_shape(0, 4);
       p.mutable_weights(0)->mutable_type()->set_shape(0, 4);
       p.mutable_weights(0)->set_length(64);
       p.mutable_values(3)->set_arena_offset(0);
     }, "output value 3 ('xw') overlaps input value 0 ('x')"},
    // Training kernels.
    {"cross_entropy arity", [](plan::Plan &p) {
       p = trainingPlan();
       step(p, kCrossEntropy).mutable_inputs()->RemoveLast();
     }, "step 3 'cross_entropy' at '/loss': takes 2 inputs, the plan gives 1"},
    {"cross_entropy labels dtype", [](plan::Plan &p) {
       p = trainingPlan();
       setDType(p, "labels", plan::I32);
     }, "step 3 'cross_entropy' at '/loss': labels i32[2, 3] must be i64[2, 3] ([B, S] of "
        "the logits f32[2, 3, 5])"},
    {"cross_entropy ignore_index", [](plan::Plan &p) {
       p = trainingPlan();
       step(p, kCrossEntropy).clear_attributes();
     }, "step 3 'cross_entropy' at '/loss': missing attribute 'ignore_index'"},
    {"cross_entropy logits rank", [](plan::Plan &p) {
       p = trainingPlan();
       p.mutable_values(valueNamed(p, "lm_logits"))->mutable_type()->add_shape(1);
     }, "logits f32[2, 3, 5, 1] must be [B, S, V]"},
    {"cross_entropy_grad dloss", [](plan::Plan &p) {
       p = trainingPlan();
       p.mutable_values(valueNamed(p, "dloss"))->mutable_type()->add_shape(1);
     }, "step 4 'cross_entropy_grad' at '/loss_grad': input 0 (dloss) must be f32[], got "
        "f32[1]"},
    {"cross_entropy_grad output", [](plan::Plan &p) {
       p = trainingPlan();
       setDType(p, "dlogits", plan::F64);
     }, "output 0 value 22 ('dlogits') is f64[2, 3, 5], the kernel computes f32[2, 3, 5]"},
    {"softmax_grad shapes", [](plan::Plan &p) {
       p = trainingPlan();
       p.mutable_values(valueNamed(p, "y"))->mutable_type()->set_shape(1, 4);
     }, "step 5 'softmax_grad' at '/softmax_grad': the softmax output f32[2, 4] must have "
        "the shape of grad f32[2, 5]"},
    {"softmax_grad dtype", [](plan::Plan &p) {
       p = trainingPlan();
       setDType(p, "dy", plan::I32);
     }, "step 5 'softmax_grad' at '/softmax_grad': input 0 must be a float tensor, got "
        "i32[2, 5]"},
    {"layer_norm_grad scale", [](plan::Plan &p) {
       p = trainingPlan();
       attrNamed(step(p, kLayerNormGrad), "axis")->set_i(0);
     }, "step 6 'layer_norm_grad' at '/ln_grad': scale f32[5] must have shape [2, 5]"},
    {"layer_norm_grad epsilon", [](plan::Plan &p) {
       p = trainingPlan();
       removeAttr(step(p, kLayerNormGrad), "epsilon");
     }, "step 6 'layer_norm_grad' at '/ln_grad': missing attribute 'epsilon'"},
    {"lora_matmul rng dtype", [](plan::Plan &p) {
       p = trainingPlan();
       setDType(p, "rng", plan::F32);
     }, "step 7 'lora_matmul' at '/q_proj': input 4 (rng) must be i64[2] = [seed, "
        "counter], got f32[2]"},
    {"lora_matmul rng without stream", [](plan::Plan &p) {
       p = trainingPlan();
       removeAttr(step(p, kLoRAMatmul), "stream");
     }, "step 7 'lora_matmul' at '/q_proj': missing attribute 'stream'"},
    {"lora_matmul negative stream", [](plan::Plan &p) {
       p = trainingPlan();
       attrNamed(step(p, kLoRAMatmul), "stream")->set_i(-1);
     }, "attribute 'stream' must be >= 0, got -1"},
    {"lora_matmul arity", [](plan::Plan &p) {
       p = trainingPlan();
       step(p, kLoRAMatmul).add_inputs(0);
     }, "step 7 'lora_matmul' at '/q_proj': takes 4 to 5 inputs, the plan gives 6"},
    {"lora_matmul_grad outputs", [](plan::Plan &p) {
       p = trainingPlan();
       step(p, kLoRAMatmulGrad).mutable_outputs()->RemoveLast();
     }, "step 8 'lora_matmul_grad' at '/q_proj_grad': has 3 outputs (grad_a, grad_b, "
        "grad_x), the plan gives 2"},
    {"lora_matmul_grad without input_grad", [](plan::Plan &p) {
       p = trainingPlan();
       removeAttr(step(p, kLoRAMatmulGrad), "input_grad");
     }, "has 2 outputs (grad_a, grad_b; grad_x needs 'input_grad'), the plan gives 3"},
    {"lora_matmul_grad grad shape", [](plan::Plan &p) {
       p = trainingPlan();
       step(p, kLoRAMatmulGrad).set_inputs(0, 0);
     }, "step 8 'lora_matmul_grad' at '/q_proj_grad': grad f32[2, 3] must have the forward "
        "result's type f32[2, 4]"},
    {"lora_matmul_grad adapter shape", [](plan::Plan &p) {
       p = trainingPlan();
       p.mutable_values(valueNamed(p, "B"))->mutable_type()->set_shape(0, 3);
     }, "shapes do not fit: x f32[2, 3], w f32[3, 4], a f32[2, 3] (want [r, 3]), b f32[3, "
        "2] (want [4, r])"},
    {"masked_select shape", [](plan::Plan &p) {
       p = trainingPlan();
       step(p, kMaskedSelect).clear_attributes();
     }, "step 9 'masked_select' at '/select': missing attribute 'shape'"},
    {"masked_select mask", [](plan::Plan &p) {
       p = trainingPlan();
       setDType(p, "mask", plan::U8);
     }, "step 9 'masked_select' at '/select': input 1 must be i1 (bool), got u8[2, 3]"},
    {"global_norm dtype", [](plan::Plan &p) {
       p = trainingPlan();
       step(p, kGlobalNorm).set_inputs(1, static_cast<uint32_t>(valueNamed(p, "labels")));
     }, "step 10 'global_norm' at '/norm': input 1 must be a float tensor, got i64[2, 3]"},
    {"global_norm no inputs", [](plan::Plan &p) {
       p = trainingPlan();
       step(p, kGlobalNorm).clear_inputs();
     }, "step 10 'global_norm' at '/norm': needs at least one input"},
    {"adamw_update step dtype", [](plan::Plan &p) {
       p = trainingPlan();
       setDType(p, "step", plan::F32);
     }, "step 11 'adamw_update' at '/adamw': input 5 (step) must be i64[], got f32[]"},
    {"adamw_update arity", [](plan::Plan &p) {
       p = trainingPlan();
       step(p, kAdamW).mutable_inputs()->Truncate(6);
     }, "step 11 'adamw_update' at '/adamw': takes 7 to 8 inputs, the plan gives 6"},
    {"adamw_update outputs", [](plan::Plan &p) {
       p = trainingPlan();
       step(p, kAdamW).mutable_outputs()->RemoveLast();
     }, "step 11 'adamw_update' at '/adamw': has 3 outputs, the plan gives 2"},
    {"adamw_update beta2", [](plan::Plan &p) {
       p = trainingPlan();
       removeAttr(step(p, kAdamW), "beta2");
     }, "step 11 'adamw_update' at '/adamw': missing attribute 'beta2'"},
    {"adamw_update beta range", [](plan::Plan &p) {
       p = trainingPlan();
       attrNamed(step(p, kAdamW), "beta1")->set_f(1.0);
     }, "attributes 'beta1' and 'beta2' must be in [0, 1), got 1.000000 and 0.999000"},
    {"adamw_update weight_decay attribute", [](plan::Plan &p) {
       p = trainingPlan();
       addAttr(&step(p, kAdamW), "weight_decay")->set_f(0.01);
     }, "step 11 'adamw_update' at '/adamw': unknown attribute 'weight_decay'"},
    {"adamw_update exp_avg shape", [](plan::Plan &p) {
       p = trainingPlan();
       p.mutable_values(valueNamed(p, "m"))->mutable_type()->set_shape(0, 1);
     }, "input 2 (exp_avg) f32[1, 3] must have the parameter's type f32[2, 3]"},
};

INSTANTIATE_TEST_SUITE_P(Cases, PlanLoaderBad, ::testing::ValuesIn(kBadPlans),
                         [](const ::testing::TestParamInfo<BadPlan> &info) {
                           std::string name = info.param.what;
                           for (char &c : name)
                             if (!isalnum(static_cast<unsigned char>(c)))
                               c = '_';
                           return name;
                         });

TEST(PlanLoader, InPlaceElementwiseIsAccepted) {
  plan::Plan p = test::tinyPlan();
  p.mutable_values(4)->set_arena_offset(64); // add writes over its input xw
  EXPECT_TRUE(validatePlan(p, "plan.pb").ok());
}

TEST(PlanLoader, EmptyListAttributeWithoutKind) {
  // transpose of a scalar: perm [] may be written with no kind set.
  plan::Plan p = test::tinyPlan();
  addValue(p, {}, "c")->set_constant(std::string(4, '\0'));
  addValue(p, {}, "t")->set_arena_offset(224);
  plan::Step *t = addStep(p, "transpose", {6}, {7}, "/T");
  addAttr(t, "perm");
  Expected<Program> ok = validatePlan(p, "plan.pb");
  EXPECT_TRUE(ok.ok()) << ok.message();
  t->set_inputs(0, 5); // rank 2 needs two entries
  Expected<Program> bad = validatePlan(p, "plan.pb");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("attribute 'perm' [] is not a permutation of [0, 2)"),
            std::string::npos)
      << bad.message();
}

TEST(PlanLoader, DottedAttributesAreIgnored) {
  plan::Plan p = test::tinyPlan();
  addAttr(p.mutable_steps(0), "vlora.module")->set_s("model.layers.0.q_proj");
  EXPECT_TRUE(validatePlan(p, "plan.pb").ok());
}

TEST(PlanLoader, CorruptAndTruncatedFiles) {
  std::string dir = test::makeTempDir("plan");
  std::string path = dir + "/plan.pb";
  std::string bytes = test::tinyPlan().SerializeAsString();
  // Garbage.
  std::ofstream(path, std::ios::binary) << std::string("\xff\xff\xff\xff garbage", 12);
  Expected<Program> garbage = loadPlan(path);
  ASSERT_FALSE(garbage.ok());
  EXPECT_NE(garbage.message().find(path + ": corrupt or truncated plan"), std::string::npos)
      << garbage.message();
  // Every truncation is refused, whether protobuf notices or the checks do.
  for (size_t cut = 1; cut < bytes.size(); ++cut) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes.substr(0, cut);
    Expected<Program> truncated = loadPlan(path);
    EXPECT_FALSE(truncated.ok()) << "truncated at " << cut << " of " << bytes.size();
    if (!truncated.ok()) {
      EXPECT_EQ(truncated.message().rfind(path + ": ", 0), 0u) << truncated.message();
    }
  }
  Expected<Program> missing = loadPlan(dir + "/nope.pb");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("cannot open " + dir + "/nope.pb"), std::string::npos);
}

TEST(Runtime, RunsTheTinyPlanEndToEnd) {
  std::string dir = test::makeTempDir("e2e");
  test::writeWeights(dir + "/w.bin");
  Expected<Program> program = validatePlan(test::tinyPlan(), "plan.pb");
  ASSERT_TRUE(program.ok()) << program.message();
  auto rt = Runtime::create(std::move(*program), dir, dir);
  ASSERT_TRUE(rt.ok()) << rt.message();
  ASSERT_EQ((*rt)->inputs().size(), 1u);
  EXPECT_FALSE((*rt)->run().ok()); // input not given yet
  Status s = (*rt)->setInput("x", kernels::DType::F32, {2, 3}, test::kX.data(), 24);
  ASSERT_TRUE(s.ok()) << s.message();
  s = (*rt)->run();
  ASSERT_TRUE(s.ok()) << s.message();
  auto out = (*rt)->output("probs");
  ASSERT_TRUE(out.ok()) << out.message();
  ASSERT_EQ(out->size(), 32u);
  const float *probs = reinterpret_cast<const float *>(out->data());
  std::vector<double> want = test::expectedProbs();
  for (int i = 0; i < 8; ++i)
    EXPECT_NEAR(probs[i], want[i], 1e-6) << "element " << i << " (tolerance 1e-6 abs)";
}

TEST(Runtime, InputChecksNameTheTensor) {
  std::string dir = test::makeTempDir("inputs");
  test::writeWeights(dir + "/w.bin");
  auto rt = Runtime::create(*validatePlan(test::tinyPlan(), "plan.pb"), dir, dir);
  ASSERT_TRUE(rt.ok()) << rt.message();
  Status s = (*rt)->setInput("x", kernels::DType::F64, {2, 3}, test::kX.data(), 48);
  EXPECT_EQ(s.message(), "input 'x' has dtype F64, the bundle was compiled for F32");
  s = (*rt)->setInput("x", kernels::DType::F32, {3, 2}, test::kX.data(), 24);
  EXPECT_EQ(s.message(), "input 'x' has shape [3, 2], the bundle was compiled for [2, 3]");
  s = (*rt)->setInput("y", kernels::DType::F32, {2, 3}, test::kX.data(), 24);
  EXPECT_EQ(s.message(), "the bundle has no input 'y'");
  EXPECT_EQ((*rt)->run().message(), "input 'x' was not given");
}

TEST(Runtime, WeightsPastTheEndOfTheFile) {
  std::string dir = test::makeTempDir("short");
  std::ofstream(dir + "/w.bin", std::ios::binary) << std::string(20, '\0');
  auto rt = Runtime::create(*validatePlan(test::tinyPlan(), "plan.pb"), dir, dir);
  ASSERT_FALSE(rt.ok());
  EXPECT_NE(rt.message().find("w.bin: weight 'W' bytes [4, 52) go past the end of the file (20 bytes)"),
            std::string::npos)
      << rt.message();
  auto missing = Runtime::create(*validatePlan(test::tinyPlan(), "plan.pb"), dir + "/none", dir);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("missing weight file"), std::string::npos) << missing.message();
}

TEST(Runtime, UnsupportedKernelTypeIsALoadError) {
  plan::Plan p = test::tinyPlan();
  // exp on i64 passes the generic checks only as neg/abs; make a matmul on i64.
  for (int v : {0, 1, 3, 4, 5})
    p.mutable_values(v)->mutable_type()->set_dtype(plan::I64);
  p.mutable_weights(0)->mutable_type()->set_dtype(plan::I64);
  p.mutable_weights(0)->set_length(96);
  p.mutable_values(2)->mutable_type()->set_dtype(plan::I64);
  p.mutable_values(2)->set_constant(std::string(32, '\0'));
  p.mutable_steps()->RemoveLast();
  p.mutable_outputs(0)->set_value(4);
  p.set_arena_bytes(512);
  p.mutable_values(3)->set_arena_offset(128);
  p.mutable_values(4)->set_arena_offset(256);
  auto program = validatePlan(p, "plan.pb");
  ASSERT_TRUE(program.ok()) << program.message();
  std::string dir = test::makeTempDir("i64");
  std::ofstream(dir + "/w.bin", std::ios::binary) << std::string(100, '\0');
  auto rt = Runtime::create(std::move(*program), dir, dir);
  ASSERT_FALSE(rt.ok());
  EXPECT_EQ(rt.message(),
            "plan.pb: step 0 'matmul' at '/MatMul': the cpu backend has no 'matmul' kernel "
            "for element type i64");
}

TEST(Runtime, KernelErrorsNameTheStep) {
  // gather with an index out of range: a run-time error naming the step.
  plan::Plan p;
  p.set_format_version(plan::kFormatVersion);
  p.set_arena_bytes(128);
  test::addValue(p, {4, 2}, "table")->set_arena_offset(0);
  test::addValue(p, {1}, "ids", plan::I64)->set_arena_offset(32);
  test::addValue(p, {1, 2}, "rows")->set_arena_offset(64);
  for (auto [name, v] : {std::pair{"table", 0}, {"ids", 1}}) {
    auto *b = p.add_inputs();
    b->set_name(name);
    b->set_value(v);
  }
  auto *o = p.add_outputs();
  o->set_name("rows");
  o->set_value(2);
  addAttr(addStep(p, "gather", {0, 1}, {2}, "/embed/Gather"), "axis")->set_i(0);
  auto rt = Runtime::create(*validatePlan(p, "plan.pb"), ".", ".");
  ASSERT_TRUE(rt.ok()) << rt.message();
  float table[8] = {};
  int64_t ids[1] = {-5};
  ASSERT_TRUE((*rt)->setInput("table", kernels::DType::F32, {4, 2}, table, 32).ok());
  ASSERT_TRUE((*rt)->setInput("ids", kernels::DType::I64, {1}, ids, 8).ok());
  Status s = (*rt)->run();
  EXPECT_EQ(s.message(),
            "step 0 'gather' at '/embed/Gather': gather index -5 is out of range [-4, 4)");
  ids[0] = -4;
  ASSERT_TRUE((*rt)->setInput("ids", kernels::DType::I64, {1}, ids, 8).ok());
  EXPECT_TRUE((*rt)->run().ok());
}

TEST(PlanLoader, TrainingStepsAreAcceptedAndDecoded) {
  Expected<Program> program = validatePlan(trainingPlan(), "plan.pb");
  ASSERT_TRUE(program.ok()) << program.message();
  const std::vector<ProgramStep> &steps = program->steps;
  EXPECT_EQ(steps[kCrossEntropy].kernel, Kernel::CrossEntropy);
  EXPECT_EQ(steps[kCrossEntropy].ignoreIndex, -100);
  EXPECT_EQ(steps[kSoftmaxGrad].axis, 1);
  EXPECT_EQ(steps[kLoRAMatmul].stream, 3);
  EXPECT_EQ(steps[kLoRAMatmul].dropout, 0.25);
  EXPECT_TRUE(steps[kLoRAMatmulGrad].inputGrad);
  EXPECT_EQ(steps[kLoRAMatmulGrad].stream, 3);
  EXPECT_EQ(steps[kAdamW].kernel, Kernel::AdamWUpdate);
  EXPECT_EQ(steps[kAdamW].beta2, 0.999);
  EXPECT_EQ(steps[kAdamW].eps, 1e-8);
  // An inference lora_matmul (no rng) may keep its stream attribute.
  plan::Plan p = trainingPlan();
  step(p, kLoRAMatmul).mutable_inputs()->RemoveLast();
  Expected<Program> inference = validatePlan(p, "plan.pb");
  EXPECT_TRUE(inference.ok()) << inference.message();
}

TEST(Runtime, RunsTheTrainingKernelsOnTheCpu) {
  std::string dir = test::makeTempDir("train");
  test::writeWeights(dir + "/w.bin");
  auto rt = Runtime::create(*validatePlan(trainingPlan(), "plan.pb"), dir, dir);
  ASSERT_TRUE(rt.ok()) << rt.message();
  using kernels::DType;
  auto set = [&](const std::string &name, DType dtype, const kernels::Shape &shape,
                 const void *data) {
    size_t bytes = kernels::numElements(shape) * kernels::dtypeSize(dtype);
    Status s = (*rt)->setInput(name, dtype, shape, data, bytes);
    ASSERT_TRUE(s.ok()) << s.message();
  };
  // Zero logits: each valid label costs log(5).
  std::vector<float> logits(30, 0.0f), dy(10, 0.5f), y(10, 0.1f), gamma(5, 1.0f),
      a(6, 0.25f), b(8, -0.5f), m(6, 0.0f), v(6, 0.0f);
  std::vector<int64_t> labels = {-100, 1, 2, 3, -100, 4}, rng = {7, 0}, step = {1};
  std::vector<uint8_t> mask = {1, 0, 1, 1, 0, 0};
  float dloss = 1, lr = 0.01f, wd = 0;
  set("x", DType::F32, {2, 3}, test::kX.data());
  set("lm_logits", DType::F32, {2, 3, 5}, logits.data());
  set("labels", DType::I64, {2, 3}, labels.data());
  set("dloss", DType::F32, {}, &dloss);
  set("dy", DType::F32, {2, 5}, dy.data());
  set("y", DType::F32, {2, 5}, y.data());
  set("gamma", DType::F32, {5}, gamma.data());
  set("A", DType::F32, {2, 3}, a.data());
  set("B", DType::F32, {4, 2}, b.data());
  set("rng", DType::I64, {2}, rng.data());
  set("mask", DType::Bool, {2, 3}, mask.data());
  set("m", DType::F32, {2, 3}, m.data());
  set("v", DType::F32, {2, 3}, v.data());
  set("lr", DType::F32, {}, &lr);
  set("step", DType::I64, {}, step.data());
  set("wd", DType::F32, {}, &wd);
  Status s = (*rt)->run();
  ASSERT_TRUE(s.ok()) << s.message();
  auto scalar = [&](const std::string &name) {
    auto out = (*rt)->output(name);
    EXPECT_TRUE(out.ok()) << out.message();
    float f = 0;
    if (out.ok())
      std::memcpy(&f, out->data(), 4);
    return f;
  };
  // labels[b, s+1]: batch 0 predicts 1 and 2, batch 1 predicts 4 (3 valid).
  EXPECT_NEAR(scalar("loss"), std::log(5.0), 1e-6) << "tolerance 1e-6 abs";
  auto sel = (*rt)->output("sel");
  ASSERT_TRUE(sel.ok());
  const float *picked = reinterpret_cast<const float *>(sel->data());
  EXPECT_EQ(std::vector<float>(picked, picked + 4),
            (std::vector<float>{test::kX[0], test::kX[2], test::kX[3], 0.0f}));
  EXPECT_GT(scalar("norm"), 0.0f);
  // A run-time kernel error names the step.
  step[0] = 0;
  set("step", DType::I64, {}, step.data());
  EXPECT_EQ((*rt)->run().message(),
            "step 11 'adamw_update' at '/adamw': adamw_update: step 0 must be >= 1 (1 for "
            "the first update)");
}

TEST(Runtime, RunsAMatmulWithABF16Weight) {
  // W rounded to bf16 and stored so: the result is bitwise that of the f32
  // plan on W widened back to f32.
  std::vector<uint16_t> half(test::kW.size());
  std::vector<float> wide(test::kW.size());
  for (size_t i = 0; i < half.size(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, &test::kW[i], 4);
    half[i] = static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
    bits = static_cast<uint32_t>(half[i]) << 16;
    std::memcpy(&wide[i], &bits, 4);
  }
  ASSERT_NE(wide, test::kW); // the rounding shows
  auto probs = [](plan::Plan p, const void *w, size_t bytes, const std::string &tag) {
    std::string dir = test::makeTempDir(tag);
    std::ofstream f(dir + "/w.bin", std::ios::binary);
    f.write("HDR!", 4);
    f.write(static_cast<const char *>(w), static_cast<std::streamsize>(bytes));
    f.close();
    Expected<Program> program = validatePlan(p, "plan.pb");
    EXPECT_TRUE(program.ok()) << program.message();
    std::vector<float> out(8, NAN);
    if (!program.ok())
      return out;
    auto rt = Runtime::create(std::move(*program), dir, dir);
    EXPECT_TRUE(rt.ok()) << rt.message();
    if (!rt.ok())
      return out;
    Status s = (*rt)->setInput("x", kernels::DType::F32, {2, 3}, test::kX.data(), 24);
    EXPECT_TRUE(s.ok()) << s.message();
    s = (*rt)->run();
    EXPECT_TRUE(s.ok()) << s.message();
    auto result = (*rt)->output("probs");
    EXPECT_TRUE(result.ok()) << result.message();
    if (result.ok())
      std::memcpy(out.data(), result->data(), 32);
    return out;
  };
  plan::Plan p = test::tinyPlan();
  makeWeightBF16(p);
  std::vector<float> got = probs(p, half.data(), half.size() * 2, "bf16-weight");
  std::vector<float> want = probs(test::tinyPlan(), wide.data(), wide.size() * 4, "widened");
  ASSERT_EQ(std::memcmp(got.data(), want.data(), 32), 0)
      << "bf16 weight: " << got[0] << " " << got[1] << " ..., widened f32 weight: " << want[0]
      << " " << want[1] << " ...";
  for (float v : got)
    EXPECT_TRUE(v > 0 && v < 1) << v;
}

TEST(PlanLoader, BF16WeightsOfTheMatmulFamilyAreAccepted) {
  // W feeds matmul, lora_matmul and lora_matmul_grad in the training plan.
  plan::Plan p = trainingPlan();
  makeWeightBF16(p);
  Expected<Program> program = validatePlan(p, "plan.pb");
  ASSERT_TRUE(program.ok()) << program.message();
  // The weight as the matmul's lhs: xw' = Wᵀ · xᵀ, f32 [4, 2].
  p = test::tinyPlan();
  makeWeightBF16(p);
  p.mutable_steps()->RemoveLast();
  p.mutable_steps()->RemoveLast();
  step(p, 0).set_inputs(0, 1);
  step(p, 0).set_inputs(1, 0);
  addAttr(&step(p, 0), "transpose_a")->set_i(1);
  addAttr(&step(p, 0), "transpose_b")->set_i(1);
  p.mutable_values(3)->mutable_type()->set_shape(0, 4);
  p.mutable_values(3)->mutable_type()->set_shape(1, 2);
  p.mutable_outputs(0)->set_value(3);
  Expected<Program> lhs = validatePlan(p, "plan.pb");
  ASSERT_TRUE(lhs.ok()) << lhs.message();
  EXPECT_TRUE(lhs->steps[0].transposeA && lhs->steps[0].transposeB);
}

TEST(Runtime, MatmulWithTwoBF16OperandsIsRefusedByTheCpu) {
  plan::Plan p = test::tinyPlan();
  makeWeightBF16(p);
  for (int v : {0, 2, 3, 4, 5})
    p.mutable_values(v)->mutable_type()->set_dtype(plan::BF16);
  p.mutable_values(2)->set_constant(std::string(8, '\0'));
  auto program = validatePlan(p, "plan.pb");
  ASSERT_TRUE(program.ok()) << program.message();
  std::string dir = test::makeTempDir("bf16-both");
  std::ofstream(dir + "/w.bin", std::ios::binary) << std::string(28, '\0');
  auto rt = Runtime::create(std::move(*program), dir, dir);
  ASSERT_FALSE(rt.ok());
  EXPECT_EQ(rt.message(), "plan.pb: step 0 'matmul' at '/MatMul': the cpu backend has no "
                          "'matmul' kernel for element type bf16");
}

TEST(Runtime, TrainingKernelTypesTheCpuLacks) {
  plan::Plan p = trainingPlan();
  setDType(p, "lm_logits", plan::F16);
  setDType(p, "dlogits", plan::F16);
  auto program = validatePlan(p, "plan.pb");
  ASSERT_TRUE(program.ok()) << program.message();
  std::string dir = test::makeTempDir("train-f16");
  test::writeWeights(dir + "/w.bin");
  auto rt = Runtime::create(std::move(*program), dir, dir);
  ASSERT_FALSE(rt.ok());
  EXPECT_EQ(rt.message(), "plan.pb: step 3 'cross_entropy' at '/loss': the cpu backend has "
                          "no 'cross_entropy' kernel for element type f16");
}

} // namespace
