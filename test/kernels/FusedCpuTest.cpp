//===- FusedCpuTest.cpp - the CPU fused elementwise programs --------------===//
//
// kernels::cpu::fusedElementwise (kernels/cpu/Fused.cpp) against the same
// program run as the unfused CPU kernels one register at a time (unary,
// binary, Pow(x, 2) for Square, cast for the bf16 conversions, expand for
// the results), each register at its operands' broadcast shape: bit for bit
// (NaN equals NaN whatever its payload), as vlora/kernels/Fused.h promises.
// Values include NaN, +-inf, -0, denormals and large magnitudes; sizes 1, 7,
// 511, 513 and 1000003 elements (past the 512-element block and the 1 << 15
// thread grain); broadcast inputs, bf16 inputs and results, results written
// over an input, and the largest program. Then checkFusedProgram's refusals.
//
//===----------------------------------------------------------------------===//

#include "vlora/kernels/Cpu.h"
#include "vlora/kernels/Fused.h"
#include "vlora/kernels/reference/Reference.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

using namespace vlora::kernels;
namespace cpu = vlora::kernels::cpu;

namespace {

constexpr int64_t op(FusedOp o) { return static_cast<int64_t>(o); }

//===----------------------------------------------------------------------===//
// Host tensors (f32 or bf16)
//===----------------------------------------------------------------------===//

using reference::fromBF16Bits;
using reference::toBF16Bits; // round to nearest even, NaN stays a quiet NaN

struct Host {
  DType dtype = DType::F32;
  Shape shape;
  std::vector<uint8_t> bytes;
  int64_t numel() const { return numElements(shape); }
  TensorRef ref() { return TensorRef{bytes.data(), dtype, shape}; }
  float at(int64_t i) const {
    if (dtype == DType::BF16) {
      uint16_t bits;
      std::memcpy(&bits, bytes.data() + 2 * i, 2);
      return fromBF16Bits(bits);
    }
    float f;
    std::memcpy(&f, bytes.data() + 4 * i, 4);
    return f;
  }
  void set(int64_t i, float v) {
    if (dtype == DType::BF16) {
      uint16_t bits = toBF16Bits(v);
      std::memcpy(bytes.data() + 2 * i, &bits, 2);
    } else {
      std::memcpy(bytes.data() + 4 * i, &v, 4);
    }
  }
};

Host zeros(DType dtype, const Shape &shape) {
  Host h{dtype, shape, {}};
  h.bytes.assign(static_cast<size_t>(numElements(shape)) * dtypeSize(dtype), 0);
  return h;
}

const float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();

/// The special values mixed into every random tensor.
const float kSpecials[] = {
    kNaN, -kNaN, kInf, -kInf, 0.0f, -0.0f,
    1e-40f, -1e-40f, 1.4e-45f, -1.4e-45f, 1.17549435e-38f, // denormals, FLT_MIN
    3.3895314e38f, -3.3895314e38f, 1e30f, -1e30f, 65504.0f, // large
    88.7f, 88.8f, -86.4f, -86.6f, -100.0f, 100.0f,           // exp's range ends
    1.0039062f, -1.0039062f, 1.0117188f,                     // bf16 ties
    0.5f, -0.5f, 1.5f, -2.5f, 1.0f, -1.0f, 2.0f, 1e-20f, -3.0e-8f};

/// Uniform in [lo, hi], a quarter of the elements from kSpecials and some
/// scaled by a random power of two; bf16 rounded to nearest.
Host random(DType dtype, const Shape &shape, uint32_t seed, float lo = -8,
            float hi = 8, bool specials = true) {
  Host h = zeros(dtype, shape);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::uniform_int_distribution<int> pick(0, 15);
  std::uniform_int_distribution<int> special(0, std::size(kSpecials) - 1);
  std::uniform_int_distribution<int> exponent(-30, 30);
  for (int64_t i = 0; i < h.numel(); ++i) {
    int p = pick(gen);
    float v = dist(gen);
    if (specials && p < 4)
      v = kSpecials[special(gen)];
    else if (specials && p == 4)
      v = std::ldexp(v, exponent(gen));
    h.set(i, v);
  }
  return h;
}

/// Bit for bit (NaN equals NaN).
void expectSame(const std::string &what, const Host &got, const Host &want) {
  ASSERT_EQ(got.dtype, want.dtype) << what;
  ASSERT_EQ(got.shape, want.shape) << what;
  size_t es = dtypeSize(got.dtype);
  int64_t mismatches = 0, first = -1;
  for (int64_t i = 0; i < got.numel(); ++i) {
    if (std::memcmp(got.bytes.data() + i * es, want.bytes.data() + i * es, es) == 0)
      continue;
    if (std::isnan(got.at(i)) && std::isnan(want.at(i)))
      continue;
    if (first < 0)
      first = i;
    ++mismatches;
  }
  if (first >= 0)
    ADD_FAILURE() << what << ": " << mismatches << " of " << got.numel()
                  << " elements differ; first at [" << first << "] ("
                  << dtypeName(got.dtype) << shapeString(got.shape) << "): got "
                  << got.at(first) << ", want " << want.at(first);
}

//===----------------------------------------------------------------------===//
// Running a program fused and unfused
//===----------------------------------------------------------------------===//

struct Case {
  std::string name;
  std::vector<Host> inputs;
  std::vector<int64_t> program, registers;
};

/// The registers' element types (inputs first); the program must be good.
std::vector<bool> registerTypes(const Case &c) {
  std::vector<bool> inputIsBf16, isBf16;
  for (const Host &h : c.inputs)
    inputIsBf16.push_back(h.dtype == DType::BF16);
  std::string why = checkFusedProgram(c.program, c.registers, inputIsBf16, isBf16);
  EXPECT_EQ(why, "") << c.name << ": the test's program is bad";
  return isBf16;
}

Shape outputShape(const Case &c) {
  Shape shape;
  for (const Host &h : c.inputs) {
    std::optional<Shape> s = cpu::broadcastShapes(shape, h.shape);
    EXPECT_TRUE(s) << c.name << ": inputs do not broadcast";
    shape = s ? *s : shape;
  }
  return shape;
}

/// The program as unfused CPU kernels, one tensor per register at its
/// operands' broadcast shape; the results expanded to the output shape.
std::vector<Host> runUnfused(Case c) {
  std::vector<bool> isBf16 = registerTypes(c);
  Shape shape = outputShape(c);
  std::vector<Host> reg = c.inputs;
  reg.reserve(reg.size() + c.program.size() / 3);
  Host two = zeros(DType::F32, {});
  two.set(0, 2.0f);
  size_t numInputs = c.inputs.size();
  static const UnaryOp unaryOf[] = {
      UnaryOp::Neg,  UnaryOp::Neg,   UnaryOp::Abs,     UnaryOp::Exp,  UnaryOp::Log,
      UnaryOp::Sqrt, UnaryOp::Rsqrt, UnaryOp::Reciprocal, UnaryOp::Tanh, UnaryOp::Erf,
      UnaryOp::Sigmoid, UnaryOp::Silu, UnaryOp::Relu, UnaryOp::Sin,   UnaryOp::Cos,
      UnaryOp::Floor, UnaryOp::Ceil, UnaryOp::Gelu,   UnaryOp::GeluTanh}; // [0] unused
  static const BinaryOp binaryOf[] = {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul,
                                      BinaryOp::Div, BinaryOp::Max, BinaryOp::Min,
                                      BinaryOp::Pow};
  for (size_t k = 0; k < c.program.size() / 3; ++k) {
    int64_t code = c.program[3 * k], b = c.program[3 * k + 2];
    TensorRef a = reg[c.program[3 * k + 1]].ref();
    Shape s = a.shape;
    if (b >= 0)
      s = *cpu::broadcastShapes(a.shape, reg[b].shape);
    Host r = zeros(isBf16[numInputs + k] ? DType::BF16 : DType::F32, s);
    if (code >= 1 && code <= 18)
      cpu::unary(unaryOf[code], a, r.ref());
    else if (code == op(FusedOp::Square))
      cpu::binary(BinaryOp::Pow, a, two.ref(), r.ref());
    else if (code >= 32 && code <= 38)
      cpu::binary(binaryOf[code - 32], a, reg[b].ref(), r.ref());
    else // RoundBF16, WidenBF16
      cpu::cast(a, r.ref());
    reg.push_back(std::move(r));
  }
  std::vector<Host> out;
  for (int64_t r : c.registers) {
    Host h = zeros(reg[r].dtype, shape);
    cpu::expand(reg[r].ref(), h.ref());
    out.push_back(std::move(h));
  }
  return out;
}

/// The results of the fused program, in fresh buffers.
std::vector<Host> runFused(Case c) {
  std::vector<bool> isBf16 = registerTypes(c);
  Shape shape = outputShape(c);
  std::vector<Host> out;
  std::vector<TensorRef> in, res;
  for (int64_t r : c.registers)
    out.push_back(zeros(isBf16[r] ? DType::BF16 : DType::F32, shape));
  for (Host &h : c.inputs)
    in.push_back(h.ref());
  for (Host &h : out)
    res.push_back(h.ref());
  cpu::fusedElementwise(in, res, c.program, c.registers);
  return out;
}

void runCase(const Case &c) {
  SCOPED_TRACE(c.name);
  std::vector<bool> inputIsBf16, isBf16;
  for (const Host &h : c.inputs)
    inputIsBf16.push_back(h.dtype == DType::BF16);
  ASSERT_EQ(checkFusedProgram(c.program, c.registers, inputIsBf16, isBf16), "")
      << "the test's program is bad";
  std::vector<Host> want = runUnfused(c), got = runFused(c);
  ASSERT_EQ(got.size(), want.size());
  for (size_t j = 0; j < got.size(); ++j)
    expectSame(c.name + " result " + std::to_string(j) + " (" +
                   dtypeName(want[j].dtype) + ")",
               got[j], want[j]);
}

const int64_t kSizes[] = {1, 7, 511, 513, 1000003};

//===----------------------------------------------------------------------===//
// Every opcode
//===----------------------------------------------------------------------===//

TEST(FusedCpu, EveryUnaryOpcode) {
  for (int64_t code = 1; code <= 19; ++code)
    for (int64_t n : kSizes) {
      Case c;
      c.name = "opcode " + std::to_string(code) + " on " + std::to_string(n);
      c.inputs = {random(DType::F32, {n}, static_cast<uint32_t>(10 * code + n))};
      c.program = {code, 0, -1, op(FusedOp::RoundBF16), 1, -1};
      c.registers = {1, 2};
      runCase(c);
    }
}

TEST(FusedCpu, EveryUnaryOpcodeOnARow) {
  // Uniform values over a wide range without specials, broadcast from a row.
  for (int64_t code = 1; code <= 19; ++code) {
    Case c;
    c.name = "opcode " + std::to_string(code) + " broadcast";
    c.inputs = {random(DType::F32, {1, 1001}, 500 + code, -90, 90, false),
                zeros(DType::F32, {999, 1})};
    c.program = {code, 0, -1, op(FusedOp::Add), 2, 1};
    c.registers = {3, 2};
    runCase(c);
  }
}

TEST(FusedCpu, EveryBinaryOpcode) {
  for (int64_t code = 32; code <= 38; ++code)
    for (int64_t n : kSizes) {
      Case c;
      c.name = "opcode " + std::to_string(code) + " on " + std::to_string(n);
      c.inputs = {random(DType::F32, {n}, 100 + code, -100, 100),
                  random(DType::F32, {n}, 200 + code, -100, 100)};
      c.program = {code, 0, 1, code, 1, 0, op(FusedOp::RoundBF16), 2, -1};
      c.registers = {2, 3, 4};
      runCase(c);
    }
}

TEST(FusedCpu, EveryBinaryOpcodeBroadcast) {
  // [rows, 1] x [cols], a scalar, and rank 4: [2, 1, 3, 1] x [1, 4, 1, 5].
  for (int64_t code = 32; code <= 38; ++code) {
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{3, 5}, {1, 513}, {1009, 991},
                                     {100003, 3}, {3, 333337}}) {
      Case c;
      c.name = "opcode " + std::to_string(code) + " [" + std::to_string(rows) + ", 1] x [" +
               std::to_string(cols) + "]";
      c.inputs = {random(DType::F32, {rows, 1}, 300 + code), random(DType::F32, {cols}, 400 + code),
                  random(DType::F32, {}, 450 + code, -3, 3, false)};
      c.program = {code, 0, 1, code, 1, 0, code, 3, 2, code, 2, 0};
      c.registers = {3, 4, 5, 6};
      runCase(c);
    }
    Case c;
    c.name = "opcode " + std::to_string(code) + " rank 4";
    c.inputs = {random(DType::F32, {2, 1, 3, 1}, 600 + code),
                random(DType::F32, {1, 4, 1, 5}, 700 + code)};
    c.program = {code, 0, 1, code, 1, 0};
    c.registers = {2, 3};
    runCase(c);
  }
}

TEST(FusedCpu, Conversions) {
  for (int64_t n : kSizes) {
    Case c;
    c.name = "round and widen on " + std::to_string(n);
    c.inputs = {random(DType::F32, {n}, 800), random(DType::BF16, {n}, 801)};
    c.program = {op(FusedOp::RoundBF16), 0, -1,  // r2 bf16
                 op(FusedOp::WidenBF16), 2, -1,  // r3
                 op(FusedOp::WidenBF16), 1, -1,  // r4
                 op(FusedOp::RoundBF16), 4, -1}; // r5 (= input 1)
    c.registers = {2, 3, 4, 5};
    runCase(c);
    std::vector<Host> got = runFused(c);
    expectSame("widen then round is the bf16 input", got[3], c.inputs[1]);
  }
}

TEST(FusedCpu, FloatSpecials) {
  // Every pair of specials, through every opcode.
  int64_t n = static_cast<int64_t>(std::size(kSpecials));
  Host a = zeros(DType::F32, {n, 1}), b = zeros(DType::F32, {1, n});
  for (int64_t i = 0; i < n; ++i) {
    a.set(i, kSpecials[i]);
    b.set(i, kSpecials[i]);
  }
  Case c;
  c.name = "specials";
  c.inputs = {a, b};
  for (int64_t code = 32; code <= 38; ++code)
    c.program.insert(c.program.end(), {code, 0, 1});
  for (int64_t code = 1; code <= 19; ++code)
    c.program.insert(c.program.end(), {code, 0, -1});
  c.program.insert(c.program.end(), {op(FusedOp::RoundBF16), 0, -1}); // r28
  c.program.insert(c.program.end(), {op(FusedOp::WidenBF16), 28, -1}); // r29
  // 28 instructions: results in batches of 8.
  int64_t end = 2 + static_cast<int64_t>(c.program.size() / 3);
  ASSERT_EQ(end, 30);
  for (int64_t first = 2; first < end; first += 8) {
    Case part = c;
    part.registers.clear();
    for (int64_t r = first; r < std::min<int64_t>(first + 8, end); ++r)
      part.registers.push_back(r);
    runCase(part);
  }
}

//===----------------------------------------------------------------------===//
// Chains
//===----------------------------------------------------------------------===//

TEST(FusedCpu, SiluGateChain) {
  for (int64_t n : kSizes) {
    Case c;
    c.name = "silu gate on " + std::to_string(n);
    c.inputs = {random(DType::F32, {n}, 900, -6, 6), random(DType::F32, {n}, 901)};
    c.program = {op(FusedOp::Sigmoid),   0, -1,  // r2
                 op(FusedOp::Mul),       0, 2,   // r3 = silu(gate)
                 op(FusedOp::Silu),      0, -1,  // r4
                 op(FusedOp::Mul),       3, 1,   // r5
                 op(FusedOp::RoundBF16), 5, -1}; // r6
    c.registers = {5, 6, 2, 4};
    runCase(c);
  }
}

TEST(FusedCpu, Bf16InputsThroughWiden) {
  for (int64_t n : kSizes) {
    Case c;
    c.name = "bf16 silu gate on " + std::to_string(n);
    c.inputs = {random(DType::BF16, {n}, 902, -6, 6), random(DType::BF16, {n}, 903),
                random(DType::BF16, {}, 904, 0.5f, 2, false)};
    c.program = {op(FusedOp::WidenBF16), 0, -1,  // r3
                 op(FusedOp::WidenBF16), 1, -1,  // r4
                 op(FusedOp::Silu),      3, -1,  // r5
                 op(FusedOp::Mul),       5, 4,   // r6
                 op(FusedOp::WidenBF16), 2, -1,  // r7
                 op(FusedOp::Div),       6, 7,   // r8
                 op(FusedOp::RoundBF16), 8, -1}; // r9
    c.registers = {9, 8, 5};
    runCase(c);
  }
}

TEST(FusedCpu, RmsNormTail) {
  // x * inv_rms[rows, 1] * weight[cols], f32 and bf16 weight.
  const std::pair<int64_t, int64_t> sizes[] = {{1, 1}, {3, 5}, {17, 1000}, {129, 257}, {977, 1024}};
  for (auto [rows, cols] : sizes) {
    Case c;
    c.name = "rms norm tail " + std::to_string(rows) + "x" + std::to_string(cols);
    c.inputs = {random(DType::F32, {rows, cols}, 1000), random(DType::F32, {rows, 1}, 1001, 0.1f, 3),
                random(DType::F32, {cols}, 1002)};
    c.program = {op(FusedOp::Mul), 0, 1, op(FusedOp::Mul), 3, 2, op(FusedOp::RoundBF16), 4, -1};
    c.registers = {5, 3};
    runCase(c);

    c.name += ", bf16 weight";
    c.inputs[2] = random(DType::BF16, {cols}, 1003);
    c.program = {op(FusedOp::WidenBF16), 2, -1,  // r3
                 op(FusedOp::Mul),       0, 1,   // r4
                 op(FusedOp::Mul),       4, 3,   // r5
                 op(FusedOp::RoundBF16), 5, -1}; // r6
    c.registers = {6, 5, 4};
    runCase(c);
  }
}

TEST(FusedCpu, TranscendentalChain) {
  for (int64_t cols : {int64_t(1), int64_t(65), int64_t(1031)}) {
    Case c;
    c.name = "transcendental chain 977x" + std::to_string(cols);
    c.inputs = {random(DType::F32, {977, cols}, 1100, -3, 3), random(DType::F32, {cols}, 1101, -3, 3)};
    c.program = {op(FusedOp::Square),   0, -1,   // r2
                 op(FusedOp::Neg),      2, -1,   // r3
                 op(FusedOp::Exp),      3, -1,   // r4 = exp(-x^2)
                 op(FusedOp::Tanh),     1, -1,   // r5
                 op(FusedOp::Mul),      4, 5,    // r6
                 op(FusedOp::Erf),      0, -1,   // r7
                 op(FusedOp::Add),      6, 7,    // r8
                 op(FusedOp::Gelu),     8, -1,   // r9
                 op(FusedOp::GeluTanh), 8, -1,   // r10
                 op(FusedOp::Sin),      0, -1,   // r11
                 op(FusedOp::Cos),      1, -1,   // r12
                 op(FusedOp::Mul),      11, 12,  // r13
                 op(FusedOp::Abs),      0, -1,   // r14
                 op(FusedOp::Log),      14, -1,  // r15
                 op(FusedOp::Sigmoid),  15, -1,  // r16
                 op(FusedOp::RoundBF16), 16, -1, // r17
                 op(FusedOp::Rsqrt),    14, -1,  // r18
                 op(FusedOp::Reciprocal), 18, -1, // r19
                 op(FusedOp::Sqrt),     19, -1}; // r20
    c.registers = {9, 10, 13, 16, 17, 4, 20, 15};
    runCase(c);
  }
}

TEST(FusedCpu, Rank4BroadcastsAndManyResults) {
  Case c;
  c.name = "rank 4";
  c.inputs = {random(DType::F32, {2, 1, 3, 1}, 1200), random(DType::BF16, {1, 4, 1, 5}, 1201),
              random(DType::F32, {}, 1202, 0.5f, 2, false), random(DType::F32, {2, 4, 1, 5}, 1203),
              random(DType::F32, {5}, 1204), random(DType::BF16, {3, 1}, 1205)};
  c.program = {op(FusedOp::WidenBF16), 1, -1,   // r6
               op(FusedOp::Add),       0, 6,    // r7
               op(FusedOp::Mul),       7, 2,    // r8
               op(FusedOp::Sub),       8, 3,    // r9
               op(FusedOp::Abs),       9, -1,   // r10
               op(FusedOp::Sqrt),      10, -1,  // r11
               op(FusedOp::Div),       11, 4,   // r12
               op(FusedOp::RoundBF16), 12, -1,  // r13
               op(FusedOp::WidenBF16), 13, -1,  // r14
               op(FusedOp::Neg),       14, -1,  // r15
               op(FusedOp::Max),       15, 0,   // r16
               op(FusedOp::WidenBF16), 5, -1,   // r17
               op(FusedOp::Min),       16, 17,  // r18
               op(FusedOp::Square),    18, -1,  // r19
               op(FusedOp::Exp),       19, -1,  // r20
               op(FusedOp::Floor),     8, -1};  // r21
  c.registers = {20, 13, 21, 7, 6, 17, 19, 12};
  runCase(c);
}

TEST(FusedCpu, UnitDimensionsEverywhere) {
  // Size-1 output dimensions inside and innermost: every row of the
  // broadcast walk is one element long, and carries run through them.
  for (const Shape &shape : {Shape{5, 1, 7, 1}, Shape{1000, 1, 1001, 1}, Shape{1, 3, 1, 513, 1}}) {
    Case c;
    c.name = "unit dimensions " + shapeString(shape);
    Shape first = shape, second = shape;
    std::fill(first.begin() + 1, first.end(), 1);   // [d0, 1, ...]
    second[0] = 1;                                   // [1, d1, ...]
    Shape tail(shape.begin() + 2, shape.end());      // rank - 2, no leading dims
    c.inputs = {random(DType::F32, first, 1700), random(DType::BF16, second, 1701),
                random(DType::F32, tail, 1702), random(DType::F32, shape, 1703)};
    c.program = {op(FusedOp::WidenBF16), 1, -1,  // r4
                 op(FusedOp::Mul),       0, 4,   // r5
                 op(FusedOp::Sub),       5, 2,   // r6
                 op(FusedOp::Max),       6, 3,   // r7
                 op(FusedOp::RoundBF16), 7, -1}; // r8
    c.registers = {8, 6, 7};
    runCase(c);
  }
}

TEST(FusedCpu, ScalarAndEmptyShapes) {
  Case c;
  c.name = "scalars";
  c.inputs = {random(DType::F32, {}, 1300), random(DType::BF16, {}, 1301, -2, 2, false)};
  c.program = {op(FusedOp::WidenBF16), 1, -1, op(FusedOp::Mul), 0, 2, op(FusedOp::RoundBF16), 3, -1};
  c.registers = {3, 4};
  runCase(c);
  // Rank 3 of scalars and [1, 1, 1].
  c.name = "ones";
  c.inputs.push_back(random(DType::F32, {1, 1, 1}, 1302));
  c.program = {op(FusedOp::WidenBF16), 1, -1,  // r3
               op(FusedOp::Mul),       0, 3,   // r4
               op(FusedOp::Add),       4, 2,   // r5
               op(FusedOp::RoundBF16), 5, -1}; // r6
  c.registers = {5, 6};
  runCase(c);

  // Nothing to do, nothing written (and no crash on the empty buffers).
  Host x = zeros(DType::F32, {0, 3}), y = zeros(DType::F32, {0, 3});
  cpu::fusedElementwise({x.ref()}, {y.ref()}, {op(FusedOp::Exp), 0, -1}, {1});
}

TEST(FusedCpu, LargestProgram) {
  // 16 inputs (f32 and bf16, full and broadcast), 64 instructions of every
  // kind of opcode, 8 results (4 bf16).
  for (const Shape &shape : {Shape{7, 33}, Shape{129, 1031}}) {
    Case c;
    c.name = "largest " + shapeString(shape);
    for (int k = 0; k < kMaxFusedInputs; ++k) {
      Shape s = k % 4 == 1 ? Shape{shape[1]} : k % 4 == 3 ? Shape{shape[0], 1} : shape;
      c.inputs.push_back(random(k % 3 == 2 ? DType::BF16 : DType::F32, s, 1400 + k));
    }
    std::vector<bool> isBf16;
    for (const Host &h : c.inputs)
      isBf16.push_back(h.dtype == DType::BF16);
    auto emit = [&](int64_t code, int64_t a, int64_t b) {
      c.program.insert(c.program.end(), {code, a, b});
      isBf16.push_back(code == op(FusedOp::RoundBF16));
      return static_cast<int64_t>(isBf16.size()) - 1;
    };
    auto asF32 = [&](int64_t r) { return isBf16[r] ? emit(op(FusedOp::WidenBF16), r, -1) : r; };
    auto count = [&] { return static_cast<int64_t>(c.program.size() / 3); };
    const int64_t binaries[] = {op(FusedOp::Add), op(FusedOp::Mul), op(FusedOp::Sub),
                                op(FusedOp::Max), op(FusedOp::Min), op(FusedOp::Div)};
    const int64_t unaries[] = {op(FusedOp::Tanh), op(FusedOp::Neg), op(FusedOp::Sigmoid),
                               op(FusedOp::Abs), op(FusedOp::GeluTanh), op(FusedOp::Floor),
                               op(FusedOp::Sin), op(FusedOp::Square)};
    int64_t acc = -1;
    int next = 0;
    while (count() + 4 <= kMaxFusedInstructions) {
      int64_t in = asF32(next % kMaxFusedInputs);
      acc = acc < 0 ? in : emit(binaries[next % 6], acc, in);
      ++next;
      if (next % 4 == 0)
        acc = emit(op(FusedOp::RoundBF16), acc, -1);
      else
        acc = emit(unaries[next % 8], acc, -1);
      acc = asF32(acc);
    }
    while (count() < kMaxFusedInstructions)
      acc = emit(op(FusedOp::Abs), acc, -1);
    int bf16Results = 0, f32Results = 0; // the last 4 of each type
    for (int64_t r = static_cast<int64_t>(isBf16.size()) - 1; r >= kMaxFusedInputs; --r)
      if ((isBf16[r] ? bf16Results : f32Results)++ < 4)
        c.registers.push_back(r);
    ASSERT_EQ(static_cast<int64_t>(c.registers.size()), kMaxFusedOutputs);
    ASSERT_EQ(count(), kMaxFusedInstructions);
    ASSERT_EQ(static_cast<int64_t>(c.inputs.size()), kMaxFusedInputs);
    runCase(c);
  }
}

//===----------------------------------------------------------------------===//
// In place: a result written over an input (the lowering allows a result
// the exact bytes of an input of the same element type and count)
//===----------------------------------------------------------------------===//

TEST(FusedCpu, ResultOverAFullInput) {
  for (int64_t n : kSizes) {
    Case c;
    c.name = "in place on " + std::to_string(n);
    c.inputs = {random(DType::F32, {n}, 1500), random(DType::F32, {n}, 1501),
                random(DType::F32, {1}, 1502, 0.5f, 2, false)};
    c.program = {op(FusedOp::Mul),       0, 1,   // r3
                 op(FusedOp::Add),       3, 0,   // r4
                 op(FusedOp::Exp),       0, -1,  // r5
                 op(FusedOp::Sub),       4, 5,   // r6
                 op(FusedOp::Div),       6, 2,   // r7
                 op(FusedOp::RoundBF16), 5, -1}; // r8
    c.registers = {7, 8, 3};
    SCOPED_TRACE(c.name);
    std::vector<Host> want = runUnfused(c);
    std::vector<bool> isBf16 = registerTypes(c);
    // Result 0 over input 0, result 2 over input 1; result 1 fresh.
    Host r1 = zeros(DType::BF16, {n});
    std::vector<TensorRef> in, res;
    for (Host &h : c.inputs)
      in.push_back(h.ref());
    res = {c.inputs[0].ref(), r1.ref(), c.inputs[1].ref()};
    cpu::fusedElementwise(in, res, c.program, c.registers);
    expectSame("result 0 over input 0", c.inputs[0], want[0]);
    expectSame("result 1", r1, want[1]);
    expectSame("result 2 over input 1", c.inputs[1], want[2]);
  }
}

TEST(FusedCpu, ResultOverABf16AndAReshapedInput) {
  // A bf16 result over a bf16 input; an f32 result over an f32 input of
  // shape [n] when the output shape is [1, n] (read through the broadcast
  // path, not in place).
  for (int64_t n : kSizes) {
    Case c;
    c.name = "in place bf16 on " + std::to_string(n);
    c.inputs = {random(DType::BF16, {1, n}, 1600), random(DType::F32, {n}, 1601),
                random(DType::F32, {1, 1}, 1602)};
    c.program = {op(FusedOp::WidenBF16), 0, -1,  // r3
                 op(FusedOp::Mul),       3, 1,   // r4
                 op(FusedOp::Add),       4, 2,   // r5
                 op(FusedOp::RoundBF16), 5, -1}; // r6
    c.registers = {6, 5};
    SCOPED_TRACE(c.name);
    std::vector<Host> want = runUnfused(c);
    std::vector<TensorRef> in;
    for (Host &h : c.inputs)
      in.push_back(h.ref());
    TensorRef over1 = c.inputs[1].ref();
    over1.shape = {1, n};
    cpu::fusedElementwise(in, {c.inputs[0].ref(), over1}, c.program, c.registers);
    expectSame("result 0 over input 0", c.inputs[0], want[0]);
    Host r1 = c.inputs[1];
    r1.shape = {1, n};
    expectSame("result 1 over input 1", r1, want[1]);
  }
}

//===----------------------------------------------------------------------===//
// checkFusedProgram's refusals
//===----------------------------------------------------------------------===//

void expectRefused(const std::vector<int64_t> &program, const std::vector<int64_t> &outputs,
                   const std::vector<bool> &inputIsBf16, const std::string &message) {
  std::vector<bool> isBf16;
  std::string why = checkFusedProgram(program, outputs, inputIsBf16, isBf16);
  EXPECT_NE(why.find(message), std::string::npos)
      << "message: '" << why << "', expected to contain '" << message << "'";
}

TEST(FusedCpu, CheckFusedProgramAccepts) {
  std::vector<bool> isBf16;
  int64_t neg = op(FusedOp::Neg), add = op(FusedOp::Add);
  EXPECT_EQ(checkFusedProgram({neg, 0, -1, op(FusedOp::WidenBF16), 1, -1, add, 2, 3,
                               op(FusedOp::RoundBF16), 4, -1},
                              {5, 4}, {false, true}, isBf16),
            "");
  EXPECT_EQ(isBf16, (std::vector<bool>{false, true, false, false, false, true}));
}

TEST(FusedCpu, CheckFusedProgramRefusals) {
  int64_t neg = op(FusedOp::Neg), add = op(FusedOp::Add), exp = op(FusedOp::Exp);
  int64_t widen = op(FusedOp::WidenBF16), round = op(FusedOp::RoundBF16);
  const std::vector<bool> f32 = {false}, two = {false, false};
  // Unknown opcodes, at instruction 1.
  for (int64_t code : {int64_t(0), int64_t(20), int64_t(31), int64_t(39), int64_t(47),
                       int64_t(50), int64_t(-1), int64_t(99)})
    expectRefused({neg, 0, -1, code, 1, -1}, {2}, f32,
                  "instruction 1 (opcode " + std::to_string(code) + "): unknown opcode");
  // Forward, self and negative references.
  expectRefused({neg, 0, -1, exp, 3, -1, neg, 1, -1}, {4}, two,
                "instruction 1 (opcode 3): operand register 3 is not an earlier register");
  expectRefused({neg, 0, -1, exp, 3, -1}, {3}, two,
                "instruction 1 (opcode 3): operand register 3 is not an earlier register");
  expectRefused({neg, -1, -1}, {1}, f32,
                "instruction 0 (opcode 1): operand register -1 is not an earlier register");
  expectRefused({neg, 0, -1, add, 0, 4}, {3}, two,
                "instruction 1 (opcode 32): second operand 4 is not an earlier register");
  expectRefused({neg, 0, -1, add, 0, 3}, {3}, two,
                "instruction 1 (opcode 32): second operand 3 is not an earlier register");
  expectRefused({add, 0, -1}, {2}, two,
                "instruction 0 (opcode 32): second operand -1 is not an earlier register");
  // b != -1 for a one-operand opcode (0 is a register, still refused).
  expectRefused({neg, 0, -1, exp, 2, 0}, {3}, two,
                "instruction 1 (opcode 3): second operand 0 must be -1");
  expectRefused({round, 0, 1}, {2}, two, "instruction 0 (opcode 48): second operand 1 must be -1");
  // bf16 into f32 opcodes, f32 into WidenBF16.
  expectRefused({neg, 0, -1, round, 2, -1, exp, 3, -1}, {4}, two,
                "instruction 2 (opcode 3): reads a bf16 register where it takes f32");
  expectRefused({neg, 0, -1, add, 0, 1}, {3}, {false, true},
                "instruction 1 (opcode 32): reads a bf16 register where it takes f32");
  expectRefused({neg, 0, -1, add, 1, 0}, {3}, {false, true},
                "instruction 1 (opcode 32): reads a bf16 register where it takes f32");
  expectRefused({neg, 0, -1, round, 1, -1}, {3}, {false, true},
                "instruction 1 (opcode 48): reads a bf16 register where it takes f32");
  expectRefused({neg, 0, -1, widen, 2, -1}, {3}, two,
                "instruction 1 (opcode 49): reads a f32 register where it takes bf16");
  expectRefused({widen, 0, -1}, {1}, f32,
                "instruction 0 (opcode 49): reads a f32 register where it takes bf16");
  // Result registers.
  expectRefused({neg, 0, -1}, {0}, f32, "result register 0 is not an instruction's");
  expectRefused({neg, 0, -1}, {2}, f32, "result register 2 is not an instruction's");
  expectRefused({neg, 0, -1}, {-1}, f32, "result register -1 is not an instruction's");
  expectRefused({neg, 0, -1}, {}, f32, "has 0 results (1 to 8)");
  expectRefused({neg, 0, -1}, std::vector<int64_t>(9, 1), f32, "has 9 results (1 to 8)");
  // Program and input counts.
  expectRefused({}, {1}, f32, "program has 0 integers, not a positive multiple of 3");
  expectRefused({neg, 0}, {1}, f32, "program has 2 integers, not a positive multiple of 3");
  std::vector<int64_t> longest;
  for (int64_t k = 0; k < kMaxFusedInstructions + 1; ++k)
    longest.insert(longest.end(), {neg, k, -1});
  expectRefused(longest, {1}, f32, "program has 65 instructions (at most 64)");
  longest.resize(3 * kMaxFusedInstructions);
  std::vector<bool> isBf16;
  EXPECT_EQ(checkFusedProgram(longest, {kMaxFusedInstructions}, f32, isBf16), "");
  expectRefused({neg, 0, -1}, {17}, std::vector<bool>(17, false), "takes 17 inputs (1 to 16)");
  expectRefused({neg, 0, -1}, {1}, {}, "takes 0 inputs (1 to 16)");
  EXPECT_EQ(checkFusedProgram({neg, 15, -1}, {16}, std::vector<bool>(16, false), isBf16), "");
}

} // namespace
