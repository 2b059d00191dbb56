//===- FusedPlanTest.cpp - fused_elementwise steps in plans ---------------===//
//
// A plan with one fused_elementwise step (f32 and bf16 inputs, one
// broadcast; an f32 and a bf16 result) is accepted and runs on the CPU
// backend with the expected numbers, also in place over an input; each
// corruption of it is refused by the loader, before anything runs, with a
// message naming the step and the problem (runtime/StepVerifier.cpp).
//
//===----------------------------------------------------------------------===//

#include "TestBundle.h"

#include "runtime/Program.h"
#include "runtime/Runtime.h"
#include "vlora/kernels/Fused.h"
#include "vlora/kernels/reference/Reference.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <ostream>
#include <stdexcept>

using namespace vlora;
using namespace vlora::runtime;
using kernels::FusedOp;
using vlora::test::addAttr;
using vlora::test::addStep;
using vlora::test::addValue;

namespace {

constexpr int64_t op(FusedOp o) { return static_cast<int64_t>(o); }

const std::vector<float> kS = {2.0f, -3.0f, 0.3f};
const uint16_t kG[] = {0x3F80, 0xBF00}; // bf16 1.0, -0.5

using vlora::kernels::reference::fromBF16Bits;
using vlora::kernels::reference::toBF16Bits;

/// Values: 0 x f32[2, 3] (input, arena 0), 1 s f32[3] (input, arena 32),
/// 2 g bf16[2, 1] (constant), 3 y f32[2, 3] (output, arena 64), 4 yb
/// bf16[2, 3] (output, arena 96). One step at '/fused':
///   r3 = widen(g); r4 = x * s; r5 = r4 + r3; r6 = relu(r5); r7 = bf16(r6)
/// with y = r6 and yb = r7.
plan::Plan fusedPlan() {
  plan::Plan p;
  p.set_format_version(plan::kFormatVersion);
  p.set_compiler_version("test");
  p.set_arena_bytes(128);
  addValue(p, {2, 3}, "x")->set_arena_offset(0);
  addValue(p, {3}, "s")->set_arena_offset(32);
  addValue(p, {2, 1}, "g", plan::BF16)
      ->set_constant(std::string(reinterpret_cast<const char *>(kG), sizeof kG));
  addValue(p, {2, 3}, "y")->set_arena_offset(64);
  addValue(p, {2, 3}, "yb", plan::BF16)->set_arena_offset(96);
  for (auto [name, v] : {std::pair{"x", 0}, {"s", 1}}) {
    plan::Binding *b = p.add_inputs();
    b->set_name(name);
    b->set_value(v);
  }
  for (auto [name, v] : {std::pair{"y", 3}, {"yb", 4}}) {
    plan::Binding *b = p.add_outputs();
    b->set_name(name);
    b->set_value(v);
  }
  plan::Step *s = addStep(p, "fused_elementwise", {0, 1, 2}, {3, 4}, "/fused");
  auto *program = addAttr(s, "program")->mutable_ints();
  for (int64_t i : {op(FusedOp::WidenBF16), int64_t(2), int64_t(-1), op(FusedOp::Mul),
                    int64_t(0), int64_t(1), op(FusedOp::Add), int64_t(4), int64_t(3),
                    op(FusedOp::Relu), int64_t(5), int64_t(-1), op(FusedOp::RoundBF16),
                    int64_t(6), int64_t(-1)})
    program->add_values(i);
  auto *outputs = addAttr(s, "outputs")->mutable_ints();
  outputs->add_values(6);
  outputs->add_values(7);
  return p;
}

plan::Step &fusedStep(plan::Plan &p) { return *p.mutable_steps(0); }
plan::IntList &attrInts(plan::Plan &p, const std::string &name) {
  for (plan::Attribute &a : *fusedStep(p).mutable_attributes())
    if (a.name() == name)
      return *a.mutable_ints();
  throw std::logic_error("no attribute " + name);
}

/// y and yb as the unfused ops compute them, in f32.
void expected(std::vector<float> &y, std::vector<uint16_t> &yb) {
  y.assign(6, 0);
  yb.assign(6, 0);
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 3; ++c) {
      float v = test::kX[r * 3 + c] * kS[c] + fromBF16Bits(kG[r]);
      v = v > 0 ? v : 0.0f;
      y[r * 3 + c] = v;
      yb[r * 3 + c] = toBF16Bits(v);
    }
}

/// Runs a valid plan on the CPU and checks y and yb bit for bit.
void runAndCheck(const plan::Plan &p) {
  Expected<Program> program = validatePlan(p, "plan.pb");
  ASSERT_TRUE(program.ok()) << program.message();
  ASSERT_EQ(program->steps.size(), 1u);
  EXPECT_EQ(program->steps[0].kernel, Kernel::FusedElementwise);
  EXPECT_EQ(program->steps[0].registers, (kernels::Shape{6, 7}));
  EXPECT_EQ(program->steps[0].program.size(), 15u);
  auto rt = Runtime::create(std::move(*program), ".", ".");
  ASSERT_TRUE(rt.ok()) << rt.message();
  Status s = (*rt)->setInput("x", kernels::DType::F32, {2, 3}, test::kX.data(), 24);
  ASSERT_TRUE(s.ok()) << s.message();
  s = (*rt)->setInput("s", kernels::DType::F32, {3}, kS.data(), 12);
  ASSERT_TRUE(s.ok()) << s.message();
  s = (*rt)->run();
  ASSERT_TRUE(s.ok()) << s.message();
  std::vector<float> wantY;
  std::vector<uint16_t> wantYb;
  expected(wantY, wantYb);
  auto y = (*rt)->output("y");
  ASSERT_TRUE(y.ok()) << y.message();
  ASSERT_EQ(y->size(), 24u);
  auto yb = (*rt)->output("yb");
  ASSERT_TRUE(yb.ok()) << yb.message();
  ASSERT_EQ(yb->size(), 12u);
  for (int i = 0; i < 6; ++i) {
    float gotY;
    uint16_t gotYb;
    std::memcpy(&gotY, y->data() + 4 * i, 4);
    std::memcpy(&gotYb, yb->data() + 2 * i, 2);
    EXPECT_EQ(gotY, wantY[i]) << "y[" << i << "]";
    EXPECT_EQ(gotYb, wantYb[i]) << "yb[" << i << "] (bf16 bits), want "
                                << fromBF16Bits(wantYb[i]) << ", got "
                                << fromBF16Bits(gotYb);
  }
  // Run again: the same numbers (inputs untouched or set again).
  ASSERT_TRUE((*rt)->setInput("x", kernels::DType::F32, {2, 3}, test::kX.data(), 24).ok());
  ASSERT_TRUE((*rt)->run().ok());
  auto again = (*rt)->output("y");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *y);
}

TEST(FusedPlan, RunsOnTheCpu) {
  std::vector<float> y;
  std::vector<uint16_t> yb;
  expected(y, yb);
  // The expected numbers, by hand: relu(x * s + g[row]).
  EXPECT_EQ(y, (std::vector<float>{2.0f, 4.0f, 2.0f * 0.3f + 1.0f, 2.5f, 0.0f, 0.0f}));
  EXPECT_EQ(fromBF16Bits(yb[2]), 1.6015625f); // 1.6 rounded to bf16
  runAndCheck(fusedPlan());
}

TEST(FusedPlan, RunsInPlaceOverAnInput) {
  // y over x: the same bytes, element type and count.
  plan::Plan p = fusedPlan();
  p.mutable_values(3)->set_arena_offset(0);
  runAndCheck(p);
}

//===----------------------------------------------------------------------===//
// Refusals
//===----------------------------------------------------------------------===//

struct BadPlan {
  const char *what;
  std::function<void(plan::Plan &)> corrupt;
  const char *message;
};

void PrintTo(const BadPlan &b, std::ostream *os) { *os << b.what; }

class FusedPlanBad : public ::testing::TestWithParam<BadPlan> {};

TEST_P(FusedPlanBad, IsRefusedWithAClearMessage) {
  plan::Plan p = fusedPlan();
  GetParam().corrupt(p);
  Expected<Program> program = validatePlan(p, "bundle/plan.pb");
  ASSERT_FALSE(program.ok()) << GetParam().what;
  EXPECT_NE(program.message().find(GetParam().message), std::string::npos)
      << "message: " << program.message();
  EXPECT_EQ(program.message().rfind("bundle/plan.pb: step 0 'fused_elementwise' at '/fused': ", 0),
            0u)
      << program.message();
}

const BadPlan kBadPlans[] = {
    // The program.
    {"unknown opcode", [](plan::Plan &p) { attrInts(p, "program").set_values(6, 99); },
     "instruction 2 (opcode 99): unknown opcode"},
    {"opcode between families", [](plan::Plan &p) { attrInts(p, "program").set_values(0, 20); },
     "instruction 0 (opcode 20): unknown opcode"},
    {"forward register", [](plan::Plan &p) { attrInts(p, "program").set_values(7, 6); },
     "instruction 2 (opcode 32): operand register 6 is not an earlier register"},
    {"second operand of a unary", [](plan::Plan &p) { attrInts(p, "program").set_values(11, 0); },
     "instruction 3 (opcode 12): second operand 0 must be -1"},
    {"bf16 register into mul", [](plan::Plan &p) { attrInts(p, "program").set_values(5, 2); },
     "instruction 1 (opcode 34): reads a bf16 register where it takes f32"},
    {"f32 register into widen", [](plan::Plan &p) { attrInts(p, "program").set_values(1, 0); },
     "instruction 0 (opcode 49): reads a f32 register where it takes bf16"},
    {"program length", [](plan::Plan &p) { attrInts(p, "program").mutable_values()->RemoveLast(); },
     "program has 14 integers, not a positive multiple of 3"},
    {"empty program", [](plan::Plan &p) { attrInts(p, "program").clear_values(); },
     "program has 0 integers"},
    {"result register is an input", [](plan::Plan &p) { attrInts(p, "outputs").set_values(0, 1); },
     "result register 1 is not an instruction's"},
    {"missing program", [](plan::Plan &p) {
       fusedStep(p).mutable_attributes()->DeleteSubrange(0, 1);
     }, "missing attribute 'program'"},
    {"program kind", [](plan::Plan &p) { fusedStep(p).mutable_attributes(0)->set_i(3); },
     "attribute 'program' must be a list of integers"},
    {"unknown attribute", [](plan::Plan &p) { addAttr(&fusedStep(p), "axis")->set_i(0); },
     "unknown attribute 'axis'"},
    // Results against their registers.
    {"f32 result of a bf16 register", [](plan::Plan &p) {
       p.mutable_values(4)->mutable_type()->set_dtype(plan::F32);
     }, "output 1 value 4 ('yb') is f32[2, 3], the kernel computes bf16[2, 3]"},
    {"bf16 result of an f32 register", [](plan::Plan &p) {
       p.mutable_values(3)->mutable_type()->set_dtype(plan::BF16);
     }, "output 0 value 3 ('y') is bf16[2, 3], the kernel computes f32[2, 3]"},
    {"result not the broadcast shape", [](plan::Plan &p) {
       auto *t = p.mutable_values(3)->mutable_type();
       t->clear_shape();
       t->add_shape(3);
     }, "output 0 value 3 ('y') is f32[3], the kernel computes f32[2, 3]"},
    {"result with an extra dimension", [](plan::Plan &p) {
       auto *t = p.mutable_values(4)->mutable_type();
       t->clear_shape();
       for (int64_t d : {1, 2, 3})
         t->add_shape(d);
     }, "output 1 value 4 ('yb') is bf16[1, 2, 3], the kernel computes bf16[2, 3]"},
    {"fewer result registers than outputs", [](plan::Plan &p) {
       attrInts(p, "outputs").mutable_values()->RemoveLast();
     }, "has 1 result registers, the plan gives 2 outputs"},
    {"more result registers than outputs", [](plan::Plan &p) {
       attrInts(p, "outputs").add_values(5);
     }, "has 3 result registers, the plan gives 2 outputs"},
    {"no result registers", [](plan::Plan &p) { attrInts(p, "outputs").clear_values(); },
     "has 0 results (1 to 8)"},
    // Inputs.
    {"i64 input", [](plan::Plan &p) { p.mutable_values(1)->mutable_type()->set_dtype(plan::I64); },
     "input 1 is i64[3]; f32 or bf16 expected"},
    {"f64 input", [](plan::Plan &p) { p.mutable_values(0)->mutable_type()->set_dtype(plan::F64); },
     "input 0 is f64[2, 3]; f32 or bf16 expected"},
    {"inputs do not broadcast", [](plan::Plan &p) {
       p.mutable_values(1)->mutable_type()->set_shape(0, 4);
     }, "input 1 f32[4] does not broadcast with the inputs before it"},
    {"too many inputs", [](plan::Plan &p) {
       for (int i = 0; i < 14; ++i)
         fusedStep(p).add_inputs(1);
     }, "takes 1 to 16 inputs, the plan gives 17"},
    {"no inputs", [](plan::Plan &p) { fusedStep(p).clear_inputs(); },
     "takes 1 to 16 inputs, the plan gives 0"},
    // In place only over exactly the same bytes of the same element size.
    {"bf16 result over an f32 input", [](plan::Plan &p) {
       p.mutable_values(4)->set_arena_offset(32); // yb (12 bytes) over s (12 bytes)
     }, "output value 4 ('yb') overlaps input value 1 ('s') in the arena"},
    {"partial overlap", [](plan::Plan &p) { p.mutable_values(3)->set_arena_offset(16); },
     "output value 3 ('y') overlaps input value 0 ('x') in the arena"},
};

INSTANTIATE_TEST_SUITE_P(Cases, FusedPlanBad, ::testing::ValuesIn(kBadPlans),
                         [](const ::testing::TestParamInfo<BadPlan> &info) {
                           std::string name = info.param.what;
                           for (char &c : name)
                             if (!isalnum(static_cast<unsigned char>(c)))
                               c = '_';
                           return name;
                         });

} // namespace
