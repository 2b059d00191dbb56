//===- FusedTest.cpp - the CUDA fused elementwise programs ----------------===//
//
// ops::fusedElementwise (kernels/cuda/Fused.cu) on random inputs against
//  - the same program run as unfused CUDA ops (unary, binary, Pow(x, 2),
//    cast, expand), one register at a time: bit for bit, always (a fused
//    opcode computes what the unfused CUDA twin computes);
//  - the CPU reference kernels::cpu::fusedElementwise: bit for bit where the
//    unfused CUDA ops equal the CPU ones (+, -, *, /, max, min, neg, abs,
//    relu, floor, ceil, reciprocal, sqrt, rsqrt, x^2, the bf16 casts), else
//    at the unfused CUDA-vs-CPU tolerance of OpsDataTest (f32
//    transcendental ops: atol 1e-6, rtol 4e-6; a short chain of them
//    1e-5 / 1e-5; a bf16 result one bf16 unit, rtol 2^-7).
// NaNs compare equal whatever their payload. Odd shapes, 1000003 elements,
// rank-4 broadcasts, bf16 inputs and results, the largest programs, and the
// host API's refusals (checked before the device is touched).
//
//===----------------------------------------------------------------------===//

#include "GpuTest.h"

#include "vlora/kernels/Cpu.h"
#include "vlora/kernels/Fused.h"
#include "vlora/kernels/cuda/Ops.h"

#include <cstdint>
#include <iostream>
#include <limits>

namespace vlora::kernels::cuda::test {
namespace {

namespace cpu = vlora::kernels::cpu;

using FusedTest = GpuTest;

constexpr int64_t op(FusedOp o) { return static_cast<int64_t>(o); }

//===----------------------------------------------------------------------===//
// Host and device tensors (f32 or bf16)
//===----------------------------------------------------------------------===//

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
      return ref::fromBF16Bits(bits);
    }
    float f;
    std::memcpy(&f, bytes.data() + 4 * i, 4);
    return f;
  }
};

Host zeros(DType dtype, const Shape &shape) {
  Host h{dtype, shape, {}};
  h.bytes.assign(numElements(shape) * dtypeSize(dtype), 0);
  return h;
}

/// Uniform in [lo, hi] (bf16 rounded to nearest).
Host random(DType dtype, const Shape &shape, uint32_t seed, float lo = -4,
            float hi = 4) {
  Host h = zeros(dtype, shape);
  std::vector<float> values = randomVector(h.numel(), seed, lo, hi);
  for (int64_t i = 0; i < h.numel(); ++i) {
    if (dtype == DType::BF16) {
      uint16_t bits = ref::toBF16Bits(values[i]);
      std::memcpy(h.bytes.data() + 2 * i, &bits, 2);
    } else {
      std::memcpy(h.bytes.data() + 4 * i, &values[i], 4);
    }
  }
  return h;
}

struct Device {
  DeviceBuffer buffer;
  TensorRef ref;
};

Device toGpu(const Host &h) {
  Device d;
  Status s =
      DeviceBuffer::allocate(std::max<size_t>(h.bytes.size(), 16), d.buffer);
  EXPECT_TRUE(s.ok()) << s.message();
  if (s && !h.bytes.empty())
    s = d.buffer.upload(h.bytes.data(), h.bytes.size());
  EXPECT_TRUE(s.ok()) << s.message();
  d.ref = TensorRef{d.buffer.data(), h.dtype, h.shape};
  return d;
}

Host fromGpu(const Device &d) {
  Host h = zeros(d.ref.dtype, d.ref.shape);
  if (!h.bytes.empty()) {
    Status s = d.buffer.download(h.bytes.data(), h.bytes.size());
    EXPECT_TRUE(s.ok()) << s.message();
  }
  return h;
}

/// Bit for bit (NaN equals NaN); prints the max abs error.
void expectSame(const std::string &what, const Host &got, const Host &want) {
  ASSERT_EQ(got.dtype, want.dtype) << what;
  ASSERT_EQ(got.numel(), want.numel()) << what;
  size_t es = dtypeSize(got.dtype);
  double maxAbs = 0;
  int64_t first = -1;
  for (int64_t i = 0; i < got.numel(); ++i) {
    if (std::memcmp(got.bytes.data() + i * es, want.bytes.data() + i * es,
                    es) == 0)
      continue;
    float g = got.at(i), w = want.at(i);
    if (std::isnan(g) && std::isnan(w))
      continue;
    double abs = std::fabs(static_cast<double>(g) - w);
    maxAbs = std::max(maxAbs, std::isnan(abs) ? INFINITY : abs);
    if (first < 0)
      first = i;
  }
  std::cout << "  " << what << ": max abs error " << maxAbs
            << (first < 0 ? " (bitwise equal)" : "") << "\n";
  if (first >= 0)
    ADD_FAILURE() << what << ": max abs error " << maxAbs
                  << "; first mismatch at [" << first << "] of " << got.numel()
                  << " (" << dtypeName(got.dtype) << shapeString(got.shape)
                  << "): got " << got.at(first) << ", want " << want.at(first);
}

/// |got - want| <= atol + rtol·|want| (NaN matches NaN, inf itself); prints
/// the max errors.
void expectNear(const std::string &what, const Host &got, const Host &want,
                double atol, double rtol) {
  ASSERT_EQ(got.dtype, want.dtype) << what;
  ASSERT_EQ(got.numel(), want.numel()) << what;
  double maxAbs = 0, maxRel = 0;
  int64_t first = -1;
  for (int64_t i = 0; i < got.numel(); ++i) {
    double g = got.at(i), w = want.at(i);
    if ((std::isnan(g) && std::isnan(w)) || g == w)
      continue;
    double abs = std::fabs(g - w);
    if (std::isnan(abs))
      abs = INFINITY;
    maxAbs = std::max(maxAbs, abs);
    maxRel = std::max(maxRel, abs / std::max(1e-300, std::fabs(w)));
    if (first < 0 && !(abs <= atol + rtol * std::fabs(w)))
      first = i;
  }
  std::cout << "  " << what << ": max abs error " << maxAbs
            << ", max rel error " << maxRel << "\n";
  if (first >= 0)
    ADD_FAILURE() << what << ": max abs error " << maxAbs << ", max rel error "
                  << maxRel << "; first mismatch at [" << first << "]: got "
                  << got.at(first) << ", want " << want.at(first) << " (atol "
                  << atol << ", rtol " << rtol << ")";
}

//===----------------------------------------------------------------------===//
// Running a program three ways
//===----------------------------------------------------------------------===//

struct Case {
  std::string name;
  std::vector<Host> inputs;
  std::vector<int64_t> program, registers;
  Shape shape;          // the results' shape
  bool exact = true;    // bitwise against the CPU too
  double atol = 1e-6, rtol = 4e-6; // else: f32 results vs the CPU
};

/// The program as unfused CUDA ops, one device tensor per register (each
/// at its operands' broadcast shape); the results expanded to `shape`.
void runUnfused(Context &ctx, const Case &c, const std::vector<Device> &in,
                const std::vector<bool> &isBf16, std::vector<Device> &out) {
  std::vector<Device> reg;
  for (const Device &d : in)
    reg.push_back({DeviceBuffer(), d.ref});
  Device two = toGpu([] {
    Host h = zeros(DType::F32, {});
    float v = 2;
    std::memcpy(h.bytes.data(), &v, 4);
    return h;
  }());
  size_t numInputs = in.size();
  for (size_t k = 0; k < c.program.size() / 3; ++k) {
    int64_t code = c.program[3 * k];
    const TensorRef &a = reg[c.program[3 * k + 1]].ref;
    int64_t bIndex = c.program[3 * k + 2];
    Shape shape = a.shape;
    if (bIndex >= 0)
      shape = *cpu::broadcastShapes(a.shape, reg[bIndex].ref.shape);
    Device r = toGpu(zeros(isBf16[numInputs + k] ? DType::BF16 : DType::F32,
                           shape));
    Status s = Status::success();
    if (code >= 1 && code <= 18) { // the UnaryOp of the same name
      static const UnaryOp unaryOf[] = {
          UnaryOp::Neg,  UnaryOp::Neg,     UnaryOp::Abs,   UnaryOp::Exp,
          UnaryOp::Log,  UnaryOp::Sqrt,    UnaryOp::Rsqrt, UnaryOp::Reciprocal,
          UnaryOp::Tanh, UnaryOp::Erf,     UnaryOp::Sigmoid, UnaryOp::Silu,
          UnaryOp::Relu, UnaryOp::Sin,     UnaryOp::Cos,   UnaryOp::Floor,
          UnaryOp::Ceil, UnaryOp::Gelu,    UnaryOp::GeluTanh}; // [0]: unused
      s = ops::unary(ctx, unaryOf[code], a, r.ref);
    } else if (code == op(FusedOp::Square)) {
      s = ops::binary(ctx, BinaryOp::Pow, a, two.ref, r.ref);
    } else if (code >= 32 && code <= 38) {
      static const BinaryOp binaryOf[] = {BinaryOp::Add, BinaryOp::Sub,
                                          BinaryOp::Mul, BinaryOp::Div,
                                          BinaryOp::Max, BinaryOp::Min,
                                          BinaryOp::Pow};
      s = ops::binary(ctx, binaryOf[code - 32], a, reg[bIndex].ref, r.ref);
    } else { // RoundBF16, WidenBF16
      s = ops::cast(ctx, a, r.ref);
    }
    ASSERT_TRUE(s.ok()) << c.name << " instruction " << k << ": "
                        << s.message();
    reg.push_back(std::move(r));
  }
  for (int64_t r : c.registers) {
    Device d = toGpu(zeros(reg[r].ref.dtype, c.shape));
    VLORA_ASSERT_OK(ops::expand(ctx, reg[r].ref, d.ref));
    out.push_back(std::move(d));
  }
}

void runCase(Context &ctx, Case c) {
  SCOPED_TRACE(c.name);
  std::cout << c.name << " " << shapeString(c.shape) << ", "
            << c.program.size() / 3 << " instructions\n";
  std::vector<bool> inputIsBf16, isBf16;
  for (const Host &h : c.inputs)
    inputIsBf16.push_back(h.dtype == DType::BF16);
  std::string why =
      checkFusedProgram(c.program, c.registers, inputIsBf16, isBf16);
  ASSERT_EQ(why, "") << "the test's program is bad";

  // The CPU reference.
  std::vector<Host> want;
  std::vector<TensorRef> cpuIn, cpuOut;
  for (int64_t r : c.registers)
    want.push_back(zeros(isBf16[r] ? DType::BF16 : DType::F32, c.shape));
  for (Host &h : c.inputs)
    cpuIn.push_back(h.ref());
  for (Host &h : want)
    cpuOut.push_back(h.ref());
  cpu::fusedElementwise(cpuIn, cpuOut, c.program, c.registers);

  // Fused on the GPU.
  std::vector<Device> in, out;
  std::vector<TensorRef> gpuIn, gpuOut;
  for (const Host &h : c.inputs)
    in.push_back(toGpu(h));
  for (const Host &h : want)
    out.push_back(toGpu(zeros(h.dtype, h.shape)));
  for (Device &d : in)
    gpuIn.push_back(d.ref);
  for (Device &d : out)
    gpuOut.push_back(d.ref);
  VLORA_ASSERT_OK(
      ops::fusedElementwise(ctx, gpuIn, gpuOut, c.program, c.registers));

  // Unfused on the GPU.
  std::vector<Device> unfused;
  runUnfused(ctx, c, in, isBf16, unfused);
  ASSERT_EQ(unfused.size(), out.size());

  for (size_t j = 0; j < out.size(); ++j) {
    std::string what = c.name + " result " + std::to_string(j) + " (" +
                       dtypeName(want[j].dtype) + ")";
    Host got = fromGpu(out[j]);
    expectSame(what + " vs unfused cuda ops", got, fromGpu(unfused[j]));
    if (c.exact)
      expectSame(what + " vs cpu", got, want[j]);
    else if (want[j].dtype == DType::BF16)
      expectNear(what + " vs cpu", got, want[j], c.atol, 1.0 / 128);
    else
      expectNear(what + " vs cpu", got, want[j], c.atol, c.rtol);
  }
}

bool isExactUnary(int64_t code) {
  switch (static_cast<FusedOp>(code)) {
  case FusedOp::Neg:
  case FusedOp::Abs:
  case FusedOp::Relu:
  case FusedOp::Floor:
  case FusedOp::Ceil:
  case FusedOp::Reciprocal:
  case FusedOp::Sqrt:
  case FusedOp::Rsqrt:
  case FusedOp::Square:
    return true;
  default:
    return false;
  }
}

//===----------------------------------------------------------------------===//
// Programs
//===----------------------------------------------------------------------===//

TEST_F(FusedTest, SiluGateChain) {
  // silu(gate) * up as f32 and as bf16: sigmoid, mul, mul, round.
  for (const Shape &shape : {Shape{3, 5, 7}, Shape{37, 129}, Shape{1000003}}) {
    Case c;
    c.name = "silu gate";
    c.shape = shape;
    c.inputs = {random(DType::F32, shape, 1, -6, 6),
                random(DType::F32, shape, 2)};
    c.program = {op(FusedOp::Sigmoid),   0, -1, // r2
                 op(FusedOp::Mul),       0, 2,  // r3 = silu(gate)
                 op(FusedOp::Mul),       3, 1,  // r4
                 op(FusedOp::RoundBF16), 4, -1}; // r5
    c.registers = {4, 5};
    c.exact = false;
    c.rtol = 1e-5;
    runCase(*ctx, c);
  }
}

TEST_F(FusedTest, SiluGateChainOfBf16Inputs) {
  Shape shape{1000003};
  Case c;
  c.name = "bf16 silu gate";
  c.shape = shape;
  c.inputs = {random(DType::BF16, shape, 3, -6, 6),
              random(DType::BF16, shape, 4)};
  c.program = {op(FusedOp::WidenBF16), 0, -1, // r2
               op(FusedOp::WidenBF16), 1, -1, // r3
               op(FusedOp::Silu),      2, -1, // r4
               op(FusedOp::Mul),       4, 3,  // r5
               op(FusedOp::RoundBF16), 5, -1}; // r6
  c.registers = {6};
  c.exact = false;
  runCase(*ctx, c);
}

TEST_F(FusedTest, RmsNormTail) {
  // x * inv_rms[rows, 1] * weight[cols], rounded to bf16; exact ops only.
  const std::pair<int64_t, int64_t> sizes[] = {{3, 5}, {17, 1000}, {129, 257}};
  for (auto [rows, cols] : sizes) {
    Case c;
    c.name = "rms norm tail";
    c.shape = {rows, cols};
    c.inputs = {random(DType::F32, {rows, cols}, 5),
                random(DType::F32, {rows, 1}, 6, 0.1f, 3),
                random(DType::F32, {cols}, 7)};
    c.program = {op(FusedOp::Mul),       0, 1, // r3
                 op(FusedOp::Mul),       3, 2, // r4
                 op(FusedOp::RoundBF16), 4, -1}; // r5
    c.registers = {5};
    runCase(*ctx, c);

    // A bf16 weight, widened.
    c.name = "rms norm tail, bf16 weight";
    c.inputs[2] = random(DType::BF16, {cols}, 8);
    c.program = {op(FusedOp::WidenBF16), 2, -1, // r3
                 op(FusedOp::Mul),       0, 1,  // r4
                 op(FusedOp::Mul),       4, 3,  // r5
                 op(FusedOp::RoundBF16), 5, -1}; // r6
    c.registers = {6, 5};
    runCase(*ctx, c);
  }
}

TEST_F(FusedTest, EveryUnaryOpcode) {
  for (int64_t code = 1; code <= 19; ++code) {
    bool positive = code == op(FusedOp::Log) || code == op(FusedOp::Sqrt) ||
                    code == op(FusedOp::Rsqrt);
    Case c;
    c.name = "opcode " + std::to_string(code);
    c.shape = {3, 5, 7};
    c.inputs = {random(DType::F32, c.shape, 10 + code, positive ? 0.05f : -6,
                       6)};
    c.program = {code, 0, -1};
    c.registers = {1};
    c.exact = isExactUnary(code);
    runCase(*ctx, c);
  }
}

TEST_F(FusedTest, EveryBinaryOpcodeBroadcast) {
  for (int64_t code = 32; code <= 38; ++code) {
    Case c;
    c.name = "opcode " + std::to_string(code);
    c.shape = {4, 5, 6};
    c.inputs = {random(DType::F32, {4, 1, 6}, 40 + code, -100, 100),
                random(DType::F32, {5, 1}, 50 + code, -100, 100)};
    c.program = {code, 0, 1, code, 1, 0};
    c.registers = {2, 3};
    // powf on the device and the CPU's libm may differ by an ulp.
    c.exact = code != op(FusedOp::Pow);
    runCase(*ctx, c);
  }
}

TEST_F(FusedTest, FloatSpecials) {
  // NaN wins max / min, inf - inf, x / 0, NaN through the bf16 rounding.
  const float values[] = {NAN, 1, -INFINITY, INFINITY, 0.f, -0.f, 3,
                          NAN, 1e38f, -1e-40f, 3.3895314e38f, 1.0039062f};
  Host a = zeros(DType::F32, {12}), b = zeros(DType::F32, {12});
  std::memcpy(a.bytes.data(), values, sizeof values);
  for (int i = 0; i < 12; ++i) {
    float v = values[(i * 5 + 3) % 12];
    std::memcpy(b.bytes.data() + 4 * i, &v, 4);
  }
  Case c;
  c.name = "specials";
  c.shape = {12};
  c.inputs = {a, b};
  c.program = {op(FusedOp::Max),       0, 1,  // r2
               op(FusedOp::Min),       0, 1,  // r3
               op(FusedOp::Sub),       0, 1,  // r4
               op(FusedOp::Div),       0, 1,  // r5
               op(FusedOp::Square),    0, -1, // r6
               op(FusedOp::RoundBF16), 0, -1, // r7
               op(FusedOp::WidenBF16), 7, -1, // r8
               op(FusedOp::Relu),      8, -1, // r9
               op(FusedOp::Rsqrt),     1, -1}; // r10
  c.registers = {2, 3, 4, 5, 6, 7, 9, 10};
  runCase(*ctx, c);
}

TEST_F(FusedTest, Rank4BroadcastsAndManyResults) {
  // Exact ops only, through bf16 and back; every input broadcast.
  Shape shape{2, 4, 3, 5};
  Case c;
  c.name = "rank 4";
  c.shape = shape;
  c.inputs = {random(DType::F32, {2, 1, 3, 5}, 60),
              random(DType::BF16, {4, 1, 1}, 61),
              random(DType::F32, {}, 62, 0.5f, 2),
              random(DType::F32, {2, 4, 1, 5}, 63),
              random(DType::F32, {5}, 64)};
  c.program = {op(FusedOp::WidenBF16), 1, -1, // r5
               op(FusedOp::Add),       0, 5,  // r6
               op(FusedOp::Mul),       6, 2,  // r7
               op(FusedOp::Sub),       7, 3,  // r8
               op(FusedOp::Abs),       8, -1, // r9
               op(FusedOp::Sqrt),      9, -1, // r10
               op(FusedOp::Div),       10, 4, // r11
               op(FusedOp::RoundBF16), 11, -1, // r12
               op(FusedOp::WidenBF16), 12, -1, // r13
               op(FusedOp::Neg),       13, -1, // r14
               op(FusedOp::Max),       14, 0,  // r15
               op(FusedOp::Min),       15, 3,  // r16
               op(FusedOp::Square),    16, -1, // r17
               op(FusedOp::Reciprocal), 17, -1, // r18
               op(FusedOp::Floor),     7, -1,  // r19
               op(FusedOp::Ceil),      8, -1,  // r20
               op(FusedOp::Relu),      8, -1,  // r21
               op(FusedOp::Rsqrt),     9, -1}; // r22
  c.registers = {18, 12, 19, 20, 21, 22, 7, 17};
  runCase(*ctx, c);
}

TEST_F(FusedTest, TranscendentalChain) {
  Shape shape{33, 65};
  Case c;
  c.name = "transcendental chain";
  c.shape = shape;
  c.inputs = {random(DType::F32, shape, 70, -2, 2),
              random(DType::F32, {65}, 71, -2, 2)};
  c.program = {op(FusedOp::Square),   0, -1, // r2
               op(FusedOp::Neg),      2, -1, // r3
               op(FusedOp::Exp),      3, -1, // r4 = exp(-x^2)
               op(FusedOp::Tanh),     1, -1, // r5
               op(FusedOp::Mul),      4, 5,  // r6
               op(FusedOp::Erf),      0, -1, // r7
               op(FusedOp::Add),      6, 7,  // r8
               op(FusedOp::Gelu),     8, -1, // r9
               op(FusedOp::GeluTanh), 8, -1, // r10
               op(FusedOp::Sin),      0, -1, // r11
               op(FusedOp::Cos),      1, -1, // r12
               op(FusedOp::Mul),      11, 12, // r13
               op(FusedOp::Abs),      0, -1, // r14
               op(FusedOp::Log),      14, -1, // r15
               op(FusedOp::Sigmoid),  15, -1, // r16
               op(FusedOp::RoundBF16), 16, -1}; // r17
  c.registers = {9, 10, 13, 16, 17};
  c.exact = false;
  c.atol = 1e-5;
  c.rtol = 1e-5;
  runCase(*ctx, c);
}

TEST_F(FusedTest, LargestProgram) {
  // 16 inputs, 64 instructions, 8 results (4 bf16); exact ops.
  Case c;
  c.name = "largest";
  c.shape = {7, 33};
  for (int k = 0; k < kMaxFusedInputs; ++k)
    c.inputs.push_back(random(k % 3 == 2 ? DType::BF16 : DType::F32,
                              k % 2 ? Shape{33} : Shape{7, 33}, 80 + k));
  std::vector<bool> isBf16;
  for (const Host &h : c.inputs)
    isBf16.push_back(h.dtype == DType::BF16);
  int64_t acc = -1;
  auto emit = [&](int64_t code, int64_t a, int64_t b) {
    c.program.insert(c.program.end(), {code, a, b});
    isBf16.push_back(code == op(FusedOp::RoundBF16));
    return static_cast<int64_t>(isBf16.size()) - 1;
  };
  auto asF32 = [&](int64_t r) {
    return isBf16[r] ? emit(op(FusedOp::WidenBF16), r, -1) : r;
  };
  const int64_t binaries[] = {op(FusedOp::Add), op(FusedOp::Mul),
                              op(FusedOp::Sub), op(FusedOp::Max),
                              op(FusedOp::Min)};
  int next = 0;
  auto count = [&] { return static_cast<int64_t>(c.program.size() / 3); };
  while (count() + 4 <= kMaxFusedInstructions) {
    int64_t in = asF32(next % kMaxFusedInputs);
    acc = acc < 0 ? in : emit(binaries[next % 5], acc, in);
    ++next;
    if (next % 4 == 0)
      acc = emit(op(FusedOp::RoundBF16), acc, -1);
    else if (next % 4 == 2)
      acc = emit(op(FusedOp::Neg), acc, -1);
    acc = asF32(acc);
  }
  while (count() < kMaxFusedInstructions)
    acc = emit(op(FusedOp::Abs), acc, -1);
  int64_t numInputs = kMaxFusedInputs;
  int bf16Results = 0, f32Results = 0; // the last 4 of each type
  for (int64_t r = static_cast<int64_t>(isBf16.size()) - 1; r >= numInputs;
       --r)
    if ((isBf16[r] ? bf16Results : f32Results)++ < 4)
      c.registers.push_back(r);
  ASSERT_EQ(static_cast<int64_t>(c.registers.size()), kMaxFusedOutputs);
  ASSERT_EQ(count(), kMaxFusedInstructions);
  runCase(*ctx, c);
}

//===----------------------------------------------------------------------===//
// Refusals (found before anything reaches the device)
//===----------------------------------------------------------------------===//

TEST_F(FusedTest, RefusesBadProgramsAndTensors) {
  Device x = toGpu(zeros(DType::F32, {2, 3}));
  Device xb = toGpu(zeros(DType::BF16, {2, 3}));
  Device y = toGpu(zeros(DType::F32, {2, 3}));
  Device yb = toGpu(zeros(DType::BF16, {2, 3}));
  Device wide = toGpu(zeros(DType::F32, {4, 3}));
  Device ints = toGpu(zeros(DType::I32, {2, 3}));
  auto call = [&](std::vector<TensorRef> in, std::vector<TensorRef> out,
                  std::vector<int64_t> program,
                  std::vector<int64_t> registers) {
    return ops::fusedElementwise(*ctx, in, out, program, registers);
  };
  int64_t neg = op(FusedOp::Neg), add = op(FusedOp::Add);
  expectRefused(call({x.ref}, {y.ref}, {99, 0, -1}, {1}), "fused_elementwise",
                "unknown opcode");
  expectRefused(call({x.ref}, {y.ref}, {add, 0, 1}, {1}), "fused_elementwise",
                "not an earlier register");
  expectRefused(call({x.ref}, {y.ref}, {neg, 0, 0}, {1}), "fused_elementwise",
                "must be -1");
  expectRefused(call({xb.ref}, {y.ref}, {neg, 0, -1}, {1}),
                "fused_elementwise", "reads a bf16 register");
  expectRefused(call({x.ref}, {y.ref}, {op(FusedOp::WidenBF16), 0, -1}, {1}),
                "fused_elementwise", "reads a f32 register");
  expectRefused(call({x.ref}, {y.ref}, {neg, 0, -1}, {0}), "fused_elementwise",
                "not an instruction's");
  expectRefused(call({x.ref}, {y.ref}, {neg, 0}, {1}), "fused_elementwise",
                "multiple of 3");
  // The result's type against its register's.
  expectRefused(call({x.ref}, {y.ref}, {op(FusedOp::RoundBF16), 0, -1}, {1}),
                "fused_elementwise",
                "result 0 is f32 but its register 1 is bf16");
  expectRefused(call({x.ref}, {yb.ref}, {neg, 0, -1}, {1}),
                "fused_elementwise",
                "result 0 is bf16 but its register 1 is f32");
  // Tensors.
  expectRefused(call({ints.ref}, {y.ref}, {neg, 0, -1}, {1}),
                "fused_elementwise", "f32 or bf16");
  expectRefused(call({x.ref}, {y.ref, y.ref}, {neg, 0, -1}, {1}),
                "fused_elementwise", "2 results for 1 result registers");
  expectRefused(call({x.ref}, {y.ref, wide.ref}, {neg, 0, -1, neg, 1, -1},
                     {1, 2}),
                "fused_elementwise", "one shape");
  expectRefused(call({wide.ref}, {y.ref}, {neg, 0, -1}, {1}),
                "fused_elementwise", "does not broadcast");
  // Nine dimensions that do not merge.
  Device p = toGpu(zeros(DType::F32, {2, 1, 2, 1, 2, 1, 2, 1, 2}));
  Device q = toGpu(zeros(DType::F32, {1, 3, 1, 3, 1, 3, 1, 3, 1}));
  Device r = toGpu(zeros(DType::F32, {2, 3, 2, 3, 2, 3, 2, 3, 2}));
  expectRefused(call({p.ref, q.ref}, {r.ref}, {add, 0, 1}, {2}),
                "fused_elementwise", "more than 8 dimensions");
  // Nothing was queued: the stream is clean.
  VLORA_ASSERT_OK(ctx->synchronize());
}

TEST_F(FusedTest, EmptyShapeWritesNothing) {
  Device x = toGpu(zeros(DType::F32, {0, 3}));
  Device y = toGpu(zeros(DType::F32, {0, 3}));
  VLORA_ASSERT_OK(ops::fusedElementwise(
      *ctx, {x.ref}, {y.ref}, {op(FusedOp::Exp), 0, -1}, {1}));
  VLORA_ASSERT_OK(ctx->synchronize());
}

} // namespace
} // namespace vlora::kernels::cuda::test
