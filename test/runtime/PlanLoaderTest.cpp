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

} // namespace
