//===- OpsDataTest.cpp - the CUDA op twins of elementwise and data ops ----===//
//
// Every function of kernels/cuda/OpsElementwise.cu and OpsData.cu against
// its kernels::cpu twin on random inputs: broadcasting, ranks 0 to 6, odd
// sizes, negative indices and steps, every element type the CPU supports.
// Data movement, integer math, comparisons, casts, gathers and scatters must
// match bit for bit (NaNs only as NaNs: the CPU and the GPU give NaNs
// different payloads). Tolerances (|got - want| <= atol + rtol·|want|):
//  - f32 transcendental unary ops and pow: atol 1e-6, rtol 4e-6 (CUDA's libm
//    and the CPU's are each within 2 ulp);
//  - f64 transcendental ops: atol 1e-14, rtol 1e-13;
//  - pow in f16/bf16: one unit of the 16-bit type (rtol 2^-10 / 2^-7);
//  - f32 sums, means, products, cumsums (double accumulation both sides,
//    another order): atol 1e-6, rtol 1e-6; f64: atol 1e-12, rtol 1e-12.
// Data errors are checked through takeDataError's message.
//
//===----------------------------------------------------------------------===//

#include "GpuTest.h"

#include "vlora/kernels/Cpu.h"
#include "vlora/kernels/cuda/Ops.h"

#include <cstdint>
#include <iterator>
#include <limits>

namespace vlora::kernels::cuda::test {
namespace {

namespace cpu = vlora::kernels::cpu;

using OpsDataTest = GpuTest;

const DType kAllTypes[] = {DType::F32, DType::F64, DType::F16, DType::BF16,
                           DType::I64, DType::I32, DType::I16, DType::I8,
                           DType::U8,  DType::Bool};

//===----------------------------------------------------------------------===//
// Host tensors
//===----------------------------------------------------------------------===//

struct Host {
  DType dtype = DType::F32;
  Shape shape;
  std::vector<uint8_t> bytes;
  int64_t numel() const { return numElements(shape); }
  TensorRef ref() { return TensorRef{bytes.data(), dtype, shape}; }
  template <typename T> T *as() { return reinterpret_cast<T *>(bytes.data()); }
  template <typename T> const T *as() const {
    return reinterpret_cast<const T *>(bytes.data());
  }
};

Host zeros(DType dtype, const Shape &shape) {
  Host h{dtype, shape, {}};
  h.bytes.assign(numElements(shape) * dtypeSize(dtype), 0);
  return h;
}

float halfToFloat(uint16_t h) {
  int exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  float v = exp == 0 ? std::ldexp(static_cast<float>(mant), -24)
            : exp == 0x1f
                ? (mant ? NAN : INFINITY)
                : std::ldexp(static_cast<float>(mant | 0x400), exp - 25);
  return (h & 0x8000) ? -v : v;
}
float bf16ToFloat(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

double valueAt(const Host &t, int64_t i) {
  switch (t.dtype) {
  case DType::F32:
    return t.as<float>()[i];
  case DType::F64:
    return t.as<double>()[i];
  case DType::F16:
    return halfToFloat(t.as<uint16_t>()[i]);
  case DType::BF16:
    return bf16ToFloat(t.as<uint16_t>()[i]);
  case DType::I64:
    return static_cast<double>(t.as<int64_t>()[i]);
  case DType::I32:
    return t.as<int32_t>()[i];
  case DType::I16:
    return t.as<int16_t>()[i];
  case DType::I8:
    return t.as<int8_t>()[i];
  case DType::U8:
  case DType::Bool:
    return t.as<uint8_t>()[i];
  }
  return 0;
}

/// Random values: floats uniform in [lo, hi] (16-bit floats rounded down
/// to the type), integers uniform in [lo, hi] (clamped to the type), bools
/// 0/1.
Host random(DType dtype, const Shape &shape, uint32_t seed, double lo = -4,
            double hi = 4) {
  Host h = zeros(dtype, shape);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> real(lo, hi);
  int64_t n = h.numel();
  auto integer = [&](int64_t min, int64_t max) {
    int64_t a = std::max<int64_t>(static_cast<int64_t>(lo), min),
            b = std::min<int64_t>(static_cast<int64_t>(hi), max);
    return std::uniform_int_distribution<int64_t>(a, b)(rng);
  };
  for (int64_t i = 0; i < n; ++i) {
    switch (dtype) {
    case DType::F32:
      h.as<float>()[i] = static_cast<float>(real(rng));
      break;
    case DType::F64:
      h.as<double>()[i] = real(rng);
      break;
    case DType::BF16: {
      float f = static_cast<float>(real(rng));
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      h.as<uint16_t>()[i] = static_cast<uint16_t>(bits >> 16);
      break;
    }
    case DType::F16: {
      // Round towards zero to the nearest half (values in range, normal).
      float f = static_cast<float>(real(rng));
      float a = std::fabs(f);
      uint16_t bits = 0;
      if (a >= 6.2e-5f) {
        int e;
        float m = std::frexp(a, &e); // a = m·2^e, m in [0.5, 1)
        bits = static_cast<uint16_t>(((e + 14) << 10) |
                                     (static_cast<int>(m * 2048) & 0x3ff));
      }
      h.as<uint16_t>()[i] = static_cast<uint16_t>(bits | (f < 0 ? 0x8000 : 0));
      break;
    }
    case DType::I64:
      h.as<int64_t>()[i] = integer(INT64_MIN, INT64_MAX);
      break;
    case DType::I32:
      h.as<int32_t>()[i] = integer(INT32_MIN, INT32_MAX);
      break;
    case DType::I16:
      h.as<int16_t>()[i] = static_cast<int16_t>(integer(INT16_MIN, INT16_MAX));
      break;
    case DType::I8:
      h.as<int8_t>()[i] = static_cast<int8_t>(integer(INT8_MIN, INT8_MAX));
      break;
    case DType::U8:
      h.as<uint8_t>()[i] = static_cast<uint8_t>(integer(0, 255));
      break;
    case DType::Bool:
      h.as<uint8_t>()[i] = rng() % 2;
      break;
    }
  }
  return h;
}

Host indicesOf(const std::vector<int64_t> &values, const Shape &shape,
               DType dtype) {
  Host h = zeros(dtype, shape);
  for (size_t i = 0; i < values.size(); ++i) {
    if (dtype == DType::I64)
      h.as<int64_t>()[i] = values[i];
    else
      h.as<int32_t>()[i] = static_cast<int32_t>(values[i]);
  }
  return h;
}

/// Random indices in [-size, size).
Host randomIndices(const Shape &shape, int64_t size, uint32_t seed,
                   DType dtype = DType::I64) {
  std::mt19937 rng(seed);
  std::vector<int64_t> values(numElements(shape));
  for (int64_t &v : values)
    v = std::uniform_int_distribution<int64_t>(-size, size - 1)(rng);
  return indicesOf(values, shape, dtype);
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

/// Bit for bit; two NaNs of a float type are equal whatever their payload.
void expectSame(const std::string &what, const Host &got, const Host &want) {
  ASSERT_EQ(got.dtype, want.dtype) << what;
  ASSERT_EQ(got.numel(), want.numel()) << what;
  size_t es = dtypeSize(got.dtype);
  for (int64_t i = 0; i < got.numel(); ++i) {
    if (std::memcmp(got.bytes.data() + i * es, want.bytes.data() + i * es,
                    es) == 0)
      continue;
    if (isFloat(got.dtype) && std::isnan(valueAt(got, i)) &&
        std::isnan(valueAt(want, i)))
      continue;
    ADD_FAILURE() << what << ": first mismatch at [" << i << "] of "
                  << got.numel() << " (" << dtypeName(got.dtype) << " "
                  << shapeString(got.shape) << "): got " << valueAt(got, i)
                  << ", want " << valueAt(want, i);
    return;
  }
}

/// |got - want| <= atol + rtol·|want| (NaN matches NaN, inf matches itself);
/// prints the max errors.
void expectNear(const std::string &what, const Host &got, const Host &want,
                double atol, double rtol) {
  ASSERT_EQ(got.dtype, want.dtype) << what;
  ASSERT_EQ(got.numel(), want.numel()) << what;
  double maxAbs = 0, maxRel = 0;
  int64_t first = -1;
  for (int64_t i = 0; i < got.numel(); ++i) {
    double g = valueAt(got, i), w = valueAt(want, i);
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
  if (first >= 0)
    ADD_FAILURE() << what << ": max abs error " << maxAbs << ", max rel error "
                  << maxRel << "; first mismatch at [" << first << "]: got "
                  << valueAt(got, first) << ", want " << valueAt(want, first)
                  << " (atol " << atol << ", rtol " << rtol << ")";
}

std::string label(const char *op, DType dtype, const Shape &shape) {
  return std::string(op) + " " + dtypeName(dtype) + shapeString(shape);
}

/// Expects takeDataError to fail with a message holding every needle.
void expectDataError(Context &ctx, std::initializer_list<std::string> needles) {
  Status s = ops::takeDataError(ctx);
  ASSERT_FALSE(s.ok()) << "no data error recorded";
  for (const std::string &needle : needles)
    EXPECT_NE(s.message().find(needle), std::string::npos)
        << "'" << needle << "' not in: " << s.message();
  Status again = ops::takeDataError(ctx);
  EXPECT_TRUE(again.ok()) << "not cleared: " << again.message();
}

void expectNoDataError(Context &ctx) {
  Status s = ops::takeDataError(ctx);
  EXPECT_TRUE(s.ok()) << s.message();
}

//===----------------------------------------------------------------------===//
// Elementwise
//===----------------------------------------------------------------------===//

TEST_F(OpsDataTest, Unary) {
  const UnaryOp all[] = {
      UnaryOp::Neg,  UnaryOp::Abs,     UnaryOp::Exp,        UnaryOp::Log,
      UnaryOp::Sqrt, UnaryOp::Rsqrt,   UnaryOp::Reciprocal, UnaryOp::Tanh,
      UnaryOp::Erf,  UnaryOp::Sigmoid, UnaryOp::Silu,       UnaryOp::Relu,
      UnaryOp::Sin,  UnaryOp::Cos,     UnaryOp::Floor,      UnaryOp::Ceil,
      UnaryOp::Not,  UnaryOp::Gelu,    UnaryOp::GeluTanh};
  const Shape shapes[] = {{}, {7}, {3, 5, 17}, {2, 1, 3, 1, 2, 5}};
  int checked = 0;
  for (UnaryOp op : all)
    for (DType dtype : kAllTypes) {
      if (!ops::supportsUnary(op, dtype)) {
        EXPECT_FALSE(cpu::supportsUnary(op, dtype));
        continue;
      }
      EXPECT_TRUE(cpu::supportsUnary(op, dtype));
      for (const Shape &shape : shapes) {
        std::string what = label("unary", dtype, shape) + " op " +
                           std::to_string(static_cast<int>(op));
        bool positive =
            op == UnaryOp::Log || op == UnaryOp::Sqrt || op == UnaryOp::Rsqrt;
        Host x = isInteger(dtype)
                     ? random(dtype, shape, 11, -1000, 1000)
                     : random(dtype, shape, 11, positive ? 0.05 : -6, 6);
        Host want = zeros(dtype, shape);
        cpu::unary(op, x.ref(), want.ref());
        Device dx = toGpu(x), dy = toGpu(zeros(dtype, shape));
        VLORA_ASSERT_OK(ops::unary(*ctx, op, dx.ref, dy.ref));
        Host got = fromGpu(dy);
        bool exact = op == UnaryOp::Neg || op == UnaryOp::Abs ||
                     op == UnaryOp::Relu || op == UnaryOp::Floor ||
                     op == UnaryOp::Ceil || op == UnaryOp::Not ||
                     op == UnaryOp::Reciprocal || op == UnaryOp::Sqrt ||
                     op == UnaryOp::Rsqrt;
        if (exact)
          expectSame(what, got, want);
        else if (dtype == DType::F32)
          expectNear(what, got, want, 1e-6, 4e-6);
        else
          expectNear(what, got, want, 1e-14, 1e-13);
        ++checked;
      }
    }
  EXPECT_GT(checked, 100);
  // In place (out aliases input).
  Host x = random(DType::F32, {1001}, 3);
  Host want = zeros(DType::F32, {1001});
  cpu::unary(UnaryOp::Neg, x.ref(), want.ref());
  Device dx = toGpu(x);
  VLORA_ASSERT_OK(ops::unary(*ctx, UnaryOp::Neg, dx.ref, dx.ref));
  expectSame("unary in place", fromGpu(dx), want);
}

TEST_F(OpsDataTest, UnaryRefusesUnsupportedTypes) {
  Device x = toGpu(zeros(DType::I32, {4})), y = toGpu(zeros(DType::I32, {4}));
  expectRefused(ops::unary(*ctx, UnaryOp::Exp, x.ref, y.ref), "unary", "i32");
}

TEST_F(OpsDataTest, Binary) {
  const BinaryOp all[] = {
      BinaryOp::Add,       BinaryOp::Sub,     BinaryOp::Mul,
      BinaryOp::Div,       BinaryOp::Pow,     BinaryOp::Max,
      BinaryOp::Min,       BinaryOp::And,     BinaryOp::Or,
      BinaryOp::Xor,       BinaryOp::Equal,   BinaryOp::Less,
      BinaryOp::LessEqual, BinaryOp::Greater, BinaryOp::GreaterEqual};
  const std::pair<Shape, Shape> shapes[] = {
      {{33}, {33}},
      {{}, {3, 7}},
      {{4, 1, 6}, {5, 1}},
      {{2, 3, 1, 5, 1, 3}, {3, 4, 1, 1}},
      {{}, {}},
  };
  for (BinaryOp op : all)
    for (DType dtype : kAllTypes) {
      if (!ops::supportsBinary(op, dtype)) {
        EXPECT_FALSE(cpu::supportsBinary(op, dtype));
        continue;
      }
      EXPECT_TRUE(cpu::supportsBinary(op, dtype));
      for (const auto &[sa, sb] : shapes) {
        Shape so = *cpu::broadcastShapes(sa, sb);
        std::string what = label("binary", dtype, so) + " op " +
                           std::to_string(static_cast<int>(op));
        bool pow = op == BinaryOp::Pow;
        Host a = random(dtype, sa, 21, pow ? -3 : -100, pow ? 3 : 100);
        Host b = random(dtype, sb, 22, pow ? -3 : -100, pow ? 3 : 100);
        if (op == BinaryOp::Div && isInteger(dtype))
          for (int64_t i = 0; i < b.numel(); ++i)
            if (valueAt(b, i) == 0)
              b.bytes[i * dtypeSize(dtype)] = 3; // no division by zero
        DType outType = isCompare(op) ? DType::Bool : dtype;
        Host want = zeros(outType, so);
        cpu::binary(op, a.ref(), b.ref(), want.ref());
        Device da = toGpu(a), db = toGpu(b), dy = toGpu(zeros(outType, so));
        VLORA_ASSERT_OK(ops::binary(*ctx, op, da.ref, db.ref, dy.ref));
        Host got = fromGpu(dy);
        if (pow && dtype == DType::F32)
          expectNear(what, got, want, 1e-6, 4e-6);
        else if (pow && dtype == DType::F64)
          expectNear(what, got, want, 1e-14, 1e-13);
        else if (pow && dtype == DType::F16)
          expectNear(what, got, want, 0, 1.0 / 1024);
        else if (pow && dtype == DType::BF16)
          expectNear(what, got, want, 0, 1.0 / 128);
        else
          expectSame(what, got, want);
      }
    }
  expectNoDataError(*ctx);
}

TEST_F(OpsDataTest, BinaryFloatSpecials) {
  // NaN wins max/min; inf - inf; x^2 exactly.
  std::vector<float> a = {NAN, 1, -INFINITY, 2, 0.f, -0.f, 3, NAN};
  std::vector<float> b = {1, NAN, -INFINITY, 2, -0.f, 0.f, NAN, NAN};
  Host ha = zeros(DType::F32, {8}), hb = zeros(DType::F32, {8});
  std::memcpy(ha.bytes.data(), a.data(), 32);
  std::memcpy(hb.bytes.data(), b.data(), 32);
  for (BinaryOp op : {BinaryOp::Max, BinaryOp::Min, BinaryOp::Sub,
                      BinaryOp::Pow, BinaryOp::Equal, BinaryOp::Less}) {
    DType outType = isCompare(op) ? DType::Bool : DType::F32;
    Host want = zeros(outType, {8});
    cpu::binary(op, ha.ref(), hb.ref(), want.ref());
    Device da = toGpu(ha), db = toGpu(hb), dy = toGpu(zeros(outType, {8}));
    VLORA_ASSERT_OK(ops::binary(*ctx, op, da.ref, db.ref, dy.ref));
    expectSame("binary specials op " + std::to_string(static_cast<int>(op)),
               fromGpu(dy), want);
  }
}

TEST_F(OpsDataTest, IntegerDivisionByZeroIsADataError) {
  Host a = indicesOf({7, 8, 9}, {3}, DType::I32);
  Host b = indicesOf({1, 0, 2}, {3}, DType::I32);
  Device da = toGpu(a), db = toGpu(b), dy = toGpu(zeros(DType::I32, {3}));
  VLORA_ASSERT_OK(ops::binary(*ctx, BinaryOp::Div, da.ref, db.ref, dy.ref));
  expectDataError(*ctx, {"binary", "division by zero"});
}

TEST_F(OpsDataTest, Where) {
  for (DType dtype :
       {DType::F32, DType::I64, DType::BF16, DType::Bool, DType::I8})
    for (auto shapes :
         std::vector<std::vector<Shape>>{{{3, 1, 5}, {4, 1}, {}, {3, 4, 5}},
                                         {{17}, {17}, {17}, {17}},
                                         {{}, {}, {}, {}},
                                         {{2, 1, 1, 3, 1, 2},
                                          {1, 2, 1, 1, 3, 1},
                                          {3, 1, 1},
                                          {2, 2, 1, 3, 3, 2}}}) {
      Host c = random(DType::Bool, shapes[0], 31);
      Host a = random(dtype, shapes[1], 32), b = random(dtype, shapes[2], 33);
      Host want = zeros(dtype, shapes[3]);
      cpu::where(c.ref(), a.ref(), b.ref(), want.ref());
      Device dc = toGpu(c), da = toGpu(a), db = toGpu(b),
             dy = toGpu(zeros(dtype, shapes[3]));
      VLORA_ASSERT_OK(ops::where(*ctx, dc.ref, da.ref, db.ref, dy.ref));
      expectSame(label("where", dtype, shapes[3]), fromGpu(dy), want);
    }
}

TEST_F(OpsDataTest, CastEveryPair) {
  const int64_t n = 64;
  for (DType from : kAllTypes) {
    Host x = random(from, {n}, 41, -300, 300);
    if (from == DType::I64) // wide values: wrap on narrowing, round to f32
      for (int64_t i = 0; i < n; i += 3)
        x.as<int64_t>()[i] = (int64_t(1) << 40) * (i - 30) + 12345;
    if (from == DType::F32 || from == DType::F64) {
      const double specials[] = {
          NAN, INFINITY, -INFINITY, 1e10,    -1e10,   0.5,  -0.5,  -0.0,
          2.5, -2.5,     1e300,     65519.0, 65520.0, 1e-6, 255.9, -128.5};
      for (size_t i = 0; i < std::size(specials); ++i) {
        if (from == DType::F32)
          x.as<float>()[i] = static_cast<float>(specials[i]);
        else
          x.as<double>()[i] = specials[i];
      }
    }
    if (from == DType::F16) {
      const uint16_t specials[] = {0x7c00, 0xfc00, 0x7e00,
                                   0x0001, 0x8000, 0x7bff};
      for (size_t i = 0; i < std::size(specials); ++i)
        x.as<uint16_t>()[i] = specials[i];
    }
    if (from == DType::Bool)
      x.as<uint8_t>()[0] = 2; // any non-zero byte is true
    for (DType to : kAllTypes) {
      Host want = zeros(to, {n});
      cpu::cast(x.ref(), want.ref());
      Device dx = toGpu(x), dy = toGpu(zeros(to, {n}));
      VLORA_ASSERT_OK(ops::cast(*ctx, dx.ref, dy.ref));
      expectSame(std::string("cast ") + dtypeName(from) + " to " +
                     dtypeName(to),
                 fromGpu(dy), want);
    }
  }
}

//===----------------------------------------------------------------------===//
// Data movement
//===----------------------------------------------------------------------===//

/// One type per element size, floats and integers.
const DType kMoveTypes[] = {DType::F32, DType::F64,  DType::BF16,
                            DType::I8,  DType::Bool, DType::I64};

TEST_F(OpsDataTest, CopyAndExpand) {
  for (DType dtype : kMoveTypes) {
    Host x = random(dtype, {3, 5, 7}, 51);
    Device dx = toGpu(x), dy = toGpu(zeros(dtype, {105}));
    VLORA_ASSERT_OK(ops::copy(*ctx, dx.ref, dy.ref));
    Host got = fromGpu(dy);
    got.shape = x.shape;
    expectSame(label("copy", dtype, x.shape), got, x);
    VLORA_ASSERT_OK(ops::copy(*ctx, dx.ref, dx.ref)); // aliased: no-op
    for (auto [in, out] : std::vector<std::pair<Shape, Shape>>{
             {{}, {3, 4}},
             {{3, 1, 5}, {2, 3, 4, 5}},
             {{1}, {1}},
             {{1, 6, 1, 1}, {2, 2, 6, 3, 1, 2}}}) {
      Host e = random(dtype, in, 52);
      Host want = zeros(dtype, out);
      cpu::expand(e.ref(), want.ref());
      Device de = toGpu(e), dout = toGpu(zeros(dtype, out));
      VLORA_ASSERT_OK(ops::expand(*ctx, de.ref, dout.ref));
      expectSame(label("expand", dtype, out), fromGpu(dout), want);
    }
  }
}

TEST_F(OpsDataTest, Transpose) {
  const std::pair<Shape, Shape> cases[] = {
      {{7}, {0}},
      {{3, 5}, {1, 0}},
      {{2, 3, 4, 5}, {0, 2, 1, 3}},
      {{2, 3, 4, 5}, {3, 1, 0, 2}},
      {{2, 1, 3, 2, 5, 3}, {5, 3, 1, 0, 4, 2}},
      {{33, 65}, {1, 0}},
  };
  for (DType dtype : kMoveTypes)
    for (const auto &[shape, perm] : cases) {
      Host x = random(dtype, shape, 61);
      Shape out(shape.size());
      for (size_t d = 0; d < perm.size(); ++d)
        out[d] = shape[perm[d]];
      Host want = zeros(dtype, out);
      cpu::transpose(x.ref(), want.ref(), perm);
      Device dx = toGpu(x), dy = toGpu(zeros(dtype, out));
      VLORA_ASSERT_OK(ops::transpose(*ctx, dx.ref, dy.ref, perm));
      expectSame(label("transpose", dtype, out) + " perm " + shapeString(perm),
                 fromGpu(dy), want);
    }
}

TEST_F(OpsDataTest, Slice) {
  struct Case {
    Shape in, starts, steps, out;
  };
  const Case cases[] = {
      {{10}, {1}, {3}, {3}},
      {{10}, {9}, {-2}, {5}},
      {{4, 6, 5, 3}, {1, 0, 4, 0}, {2, 2, -1, 1}, {2, 3, 5, 3}},
      {{2, 3, 4, 5, 6, 7},
       {1, 2, 0, 4, 1, 6},
       {1, -1, 2, -2, 2, -3},
       {1, 3, 2, 3, 3, 3}},
      {{5, 4}, {0, 0}, {1, 1}, {0, 4}},
  };
  for (DType dtype : kMoveTypes)
    for (const Case &c : cases) {
      Host x = random(dtype, c.in, 71);
      Host want = zeros(dtype, c.out);
      cpu::slice(x.ref(), want.ref(), c.starts, c.steps);
      Device dx = toGpu(x), dy = toGpu(zeros(dtype, c.out));
      VLORA_ASSERT_OK(ops::slice(*ctx, dx.ref, dy.ref, c.starts, c.steps));
      expectSame(label("slice", dtype, c.out), fromGpu(dy), want);
    }
}

TEST_F(OpsDataTest, ConcatAndSplit) {
  struct Case {
    std::vector<Shape> parts;
    int64_t axis;
  };
  const Case cases[] = {
      {{{2, 3}, {5, 3}, {0, 3}}, 0},
      {{{2, 1, 4}, {2, 3, 4}, {2, 2, 4}}, 1},
      {{{3, 4, 1}, {3, 4, 7}, {3, 4, 8}}, 2},
      {{{7}, {9}}, 0},
      {{{2, 2, 2, 3, 1, 4}, {2, 2, 2, 3, 1, 4}}, 4},
  };
  for (DType dtype : kMoveTypes)
    for (const Case &c : cases) {
      std::vector<Host> parts;
      Shape out = c.parts[0];
      out[c.axis] = 0;
      for (size_t i = 0; i < c.parts.size(); ++i) {
        parts.push_back(random(dtype, c.parts[i], 81 + i));
        out[c.axis] += c.parts[i][c.axis];
      }
      std::vector<TensorRef> refs;
      std::vector<Device> devices;
      for (Host &p : parts) {
        refs.push_back(p.ref());
        devices.push_back(toGpu(p));
      }
      std::vector<TensorRef> deviceRefs;
      for (Device &d : devices)
        deviceRefs.push_back(d.ref);
      Host want = zeros(dtype, out);
      cpu::concat(refs, want.ref(), c.axis);
      Device dy = toGpu(zeros(dtype, out));
      VLORA_ASSERT_OK(ops::concat(*ctx, deviceRefs, dy.ref, c.axis));
      expectSame(label("concat", dtype, out), fromGpu(dy), want);
      // Split the concatenation back into fresh outputs.
      std::vector<Device> pieces;
      std::vector<TensorRef> pieceRefs;
      for (const Shape &s : c.parts)
        pieces.push_back(toGpu(zeros(dtype, s)));
      for (Device &d : pieces)
        pieceRefs.push_back(d.ref);
      VLORA_ASSERT_OK(ops::split(*ctx, dy.ref, pieceRefs, c.axis));
      for (size_t i = 0; i < parts.size(); ++i)
        expectSame(label("split", dtype, c.parts[i]), fromGpu(pieces[i]),
                   parts[i]);
    }
}

TEST_F(OpsDataTest, Pad) {
  struct Case {
    Shape in, pads;
    double value;
  };
  const Case cases[] = {
      {{5}, {2, 3}, 1.5},
      {{3, 4, 2}, {0, 1, 2, 1, 0, 3}, -7},
      {{2, 0, 3}, {1, 1, 0, 0, 2, 0}, 2},
      {{}, {}, 9},
      {{2, 1, 2, 1, 2, 3}, {1, 0, 0, 1, 0, 0, 0, 2, 1, 0, 0, 1}, NAN},
  };
  for (DType dtype : {DType::F32, DType::I32, DType::BF16, DType::Bool,
                      DType::F64, DType::U8})
    for (const Case &c : cases) {
      Shape out = c.in;
      for (size_t d = 0; d < out.size(); ++d)
        out[d] += c.pads[d] + c.pads[d + out.size()];
      Host x = random(dtype, c.in, 91);
      Host want = zeros(dtype, out);
      cpu::pad(x.ref(), want.ref(), c.pads, c.value);
      Device dx = toGpu(x), dy = toGpu(zeros(dtype, out));
      VLORA_ASSERT_OK(ops::pad(*ctx, dx.ref, dy.ref, c.pads, c.value));
      expectSame(label("pad", dtype, out), fromGpu(dy), want);
    }
}

TEST_F(OpsDataTest, Trilu) {
  for (DType dtype : {DType::F32, DType::I64, DType::Bool, DType::BF16})
    for (Shape shape : {Shape{5, 7}, Shape{2, 3, 6, 4}, Shape{1, 1}})
      for (bool upper : {false, true})
        for (int64_t k : {-2, 0, 3}) {
          Host x = random(dtype, shape, 101);
          Host want = zeros(dtype, shape);
          cpu::trilu(x.ref(), want.ref(), upper, k);
          Device dx = toGpu(x), dy = toGpu(zeros(dtype, shape));
          VLORA_ASSERT_OK(ops::trilu(*ctx, dx.ref, dy.ref, upper, k));
          expectSame(label("trilu", dtype, shape) + " k " + std::to_string(k),
                     fromGpu(dy), want);
        }
}

//===----------------------------------------------------------------------===//
// Scans and reductions
//===----------------------------------------------------------------------===//

const DType kArithmetic[] = {DType::F32, DType::F64, DType::I64, DType::I32};

void expectArithmetic(const std::string &what, const Host &got,
                      const Host &want) {
  if (got.dtype == DType::F32)
    expectNear(what, got, want, 1e-6, 1e-6);
  else if (got.dtype == DType::F64)
    expectNear(what, got, want, 1e-12, 1e-12);
  else
    expectSame(what, got, want);
}

TEST_F(OpsDataTest, Cumsum) {
  const std::pair<Shape, int64_t> cases[] = {
      {{1000}, 0}, {{3, 5, 7}, 1}, {{4, 70}, 1},
      {{6, 3}, 0}, {{1}, 0},       {{2, 1, 3, 1, 2, 33}, 5}};
  for (DType dtype : kArithmetic)
    for (const auto &[shape, axis] : cases)
      for (bool exclusive : {false, true})
        for (bool reverse : {false, true}) {
          Host x = random(dtype, shape, 111, -50, 50);
          Host want = zeros(dtype, shape);
          cpu::cumsum(x.ref(), want.ref(), axis, exclusive, reverse);
          Device dx = toGpu(x), dy = toGpu(zeros(dtype, shape));
          VLORA_ASSERT_OK(
              ops::cumsum(*ctx, dx.ref, dy.ref, axis, exclusive, reverse));
          expectArithmetic(label("cumsum", dtype, shape) + " axis " +
                               std::to_string(axis) + " ex " +
                               std::to_string(exclusive) + " rev " +
                               std::to_string(reverse),
                           fromGpu(dy), want);
        }
}

TEST_F(OpsDataTest, Reduce) {
  const std::pair<Shape, Shape> cases[] = {{{3, 4, 5, 6}, {}},
                                           {{3, 4, 5, 6}, {3}},
                                           {{3, 4, 5, 6}, {0}},
                                           {{3, 4, 5, 6}, {1, 3}},
                                           {{3, 4, 5, 6}, {0, 1, 2, 3}},
                                           {{3, 4, 5, 6}, {2, 0}},
                                           {{2, 3000}, {0}},
                                           {{3, 0, 4}, {1}},
                                           {{}, {}},
                                           {{2, 3, 1, 2, 5, 3}, {0, 4}},
                                           {{5, 1000}, {1}}};
  const ReduceOp opsList[] = {ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max,
                              ReduceOp::Min, ReduceOp::Prod};
  for (DType dtype : kArithmetic)
    for (ReduceOp op : opsList)
      for (const auto &[shape, axes] : cases) {
        bool prod = op == ReduceOp::Prod;
        Host x =
            isInteger(dtype)
                ? random(dtype, shape, 121, prod ? -3 : -1000, prod ? 3 : 1000)
                : random(dtype, shape, 121, prod ? 0.9 : -4, prod ? 1.1 : 4);
        if (isFloat(dtype) && x.numel() > 40 &&
            (op == ReduceOp::Max || op == ReduceOp::Min)) {
          if (dtype == DType::F32)
            x.as<float>()[17] = NAN;
          else
            x.as<double>()[17] = NAN;
        }
        Shape out = shape;
        for (int64_t a : axes)
          out[a] = 1;
        Host want = zeros(dtype, out);
        cpu::reduce(op, x.ref(), want.ref(), axes);
        Device dx = toGpu(x), dy = toGpu(zeros(dtype, out));
        VLORA_ASSERT_OK(ops::reduce(*ctx, op, dx.ref, dy.ref, axes));
        expectArithmetic(label("reduce", dtype, shape) + " op " +
                             std::to_string(static_cast<int>(op)) + " axes " +
                             shapeString(axes),
                         fromGpu(dy), want);
      }
}

TEST_F(OpsDataTest, Argmax) {
  const std::pair<Shape, int64_t> cases[] = {
      {{5, 37}, 1}, {{4, 37, 3}, 1}, {{1000}, 0}, {{3, 1}, 1}, {{7, 2}, 0}};
  for (DType dtype : kArithmetic)
    for (const auto &[shape, axis] : cases)
      for (bool last : {false, true}) {
        // Few distinct values: many ties; NaNs in the floats.
        Host x = random(dtype, shape, 131, 0, 3);
        if (isFloat(dtype))
          for (int64_t i = 0; i < x.numel(); ++i) {
            double v = std::floor(valueAt(x, i));
            if (i % 23 == 5)
              v = NAN;
            if (dtype == DType::F32)
              x.as<float>()[i] = static_cast<float>(v);
            else
              x.as<double>()[i] = v;
          }
        Shape out = shape;
        out.erase(out.begin() + axis);
        Host want = zeros(DType::I64, out);
        cpu::argmax(x.ref(), want.ref(), axis, last);
        Device dx = toGpu(x), dy = toGpu(zeros(DType::I64, out));
        VLORA_ASSERT_OK(ops::argmax(*ctx, dx.ref, dy.ref, axis, last));
        expectSame(label("argmax", dtype, shape) + " last " +
                       std::to_string(last),
                   fromGpu(dy), want);
      }
}

//===----------------------------------------------------------------------===//
// Gathers and scatters
//===----------------------------------------------------------------------===//

TEST_F(OpsDataTest, Gather) {
  struct Case {
    Shape data, indices;
    int64_t axis;
  };
  const Case cases[] = {{{5, 7, 3}, {2, 3}, 1},
                        {{6, 8}, {4}, 0},
                        {{4, 5, 6}, {3, 1}, 2},
                        {{9}, {}, 0},
                        {{2, 1, 3, 4, 1, 8}, {5}, 3}};
  for (DType dtype : {DType::F32, DType::BF16, DType::I8, DType::F64})
    for (DType idx : {DType::I64, DType::I32})
      for (const Case &c : cases) {
        Host data = random(dtype, c.data, 141);
        Host indices = randomIndices(c.indices, c.data[c.axis], 142, idx);
        Shape out(c.data.begin(), c.data.begin() + c.axis);
        out.insert(out.end(), c.indices.begin(), c.indices.end());
        out.insert(out.end(), c.data.begin() + c.axis + 1, c.data.end());
        Host want = zeros(dtype, out);
        cpu::gather(data.ref(), indices.ref(), want.ref(), c.axis);
        Device dd = toGpu(data), di = toGpu(indices),
               dy = toGpu(zeros(dtype, out));
        VLORA_ASSERT_OK(ops::gather(*ctx, dd.ref, di.ref, dy.ref, c.axis));
        expectSame(label("gather", dtype, out), fromGpu(dy), want);
      }
  expectNoDataError(*ctx);
}

TEST_F(OpsDataTest, GatherGrad) {
  struct Case {
    Shape out, indices;
    int64_t axis;
  };
  const Case cases[] = {{{5, 7, 3}, {4, 3}, 1},
                        {{11, 16}, {300}, 0},
                        {{3, 4, 5}, {2, 2}, 2},
                        {{6}, {}, 0}};
  for (DType dtype : {DType::F32, DType::F64})
    for (DType idx : {DType::I64, DType::I32})
      for (const Case &c : cases) {
        Host indices = randomIndices(c.indices, c.out[c.axis], 151, idx);
        Shape gradShape(c.out.begin(), c.out.begin() + c.axis);
        gradShape.insert(gradShape.end(), c.indices.begin(), c.indices.end());
        gradShape.insert(gradShape.end(), c.out.begin() + c.axis + 1,
                         c.out.end());
        Host grad = random(dtype, gradShape, 152);
        Host want = zeros(dtype, c.out);
        cpu::gatherGrad(grad.ref(), indices.ref(), want.ref(), c.axis);
        Host junk = random(dtype, c.out, 153); // every element is written
        Device dg = toGpu(grad), di = toGpu(indices), dy = toGpu(junk);
        VLORA_ASSERT_OK(ops::gatherGrad(*ctx, dg.ref, di.ref, dy.ref, c.axis));
        // Sums in index order, as the CPU: bit for bit.
        expectSame(label("gatherGrad", dtype, c.out), fromGpu(dy), want);
      }
  expectNoDataError(*ctx);
}

TEST_F(OpsDataTest, GatherElements) {
  struct Case {
    Shape data, indices;
    int64_t axis;
  };
  const Case cases[] = {{{4, 5, 6}, {3, 3, 6}, 1},
                        {{7}, {12}, 0},
                        {{3, 4}, {3, 2}, 1},
                        {{2, 3, 2, 2, 3, 4}, {2, 3, 2, 1, 3, 5}, 5}};
  for (DType dtype : {DType::F32, DType::I64, DType::Bool})
    for (DType idx : {DType::I64, DType::I32})
      for (const Case &c : cases) {
        Host data = random(dtype, c.data, 161);
        Host indices = randomIndices(c.indices, c.data[c.axis], 162, idx);
        Host want = zeros(dtype, c.indices);
        cpu::gatherElements(data.ref(), indices.ref(), want.ref(), c.axis);
        Device dd = toGpu(data), di = toGpu(indices),
               dy = toGpu(zeros(dtype, c.indices));
        VLORA_ASSERT_OK(
            ops::gatherElements(*ctx, dd.ref, di.ref, dy.ref, c.axis));
        expectSame(label("gatherElements", dtype, c.indices), fromGpu(dy),
                   want);
      }
  expectNoDataError(*ctx);
}

/// Random index tuples [..., k] into data's leading dimensions.
Host randomTuples(const Shape &data, const Shape &indices, uint32_t seed,
                  DType dtype) {
  std::mt19937 rng(seed);
  int64_t k = indices.back();
  std::vector<int64_t> values(numElements(indices));
  for (size_t i = 0; i < values.size(); ++i) {
    int64_t size = data[i % k];
    values[i] = std::uniform_int_distribution<int64_t>(-size, size - 1)(rng);
  }
  return indicesOf(values, indices, dtype);
}

TEST_F(OpsDataTest, GatherNDAndScatterND) {
  struct Case {
    Shape data, indices;
  };
  const Case cases[] = {{{4, 5, 6}, {2, 3, 2}},
                        {{4, 5, 6}, {7, 3}},
                        {{4, 5, 6}, {5, 1}},
                        {{9}, {4, 1}},
                        {{3, 2}, {40, 2}}}; // many duplicates
  for (DType dtype : {DType::F32, DType::BF16, DType::I64, DType::U8})
    for (DType idx : {DType::I64, DType::I32})
      for (const Case &c : cases) {
        int64_t k = c.indices.back();
        Host data = random(dtype, c.data, 171);
        Host indices = randomTuples(c.data, c.indices, 172, idx);
        Shape out(c.indices.begin(), c.indices.end() - 1);
        out.insert(out.end(), c.data.begin() + k, c.data.end());
        Host want = zeros(dtype, out);
        cpu::gatherND(data.ref(), indices.ref(), want.ref());
        Device dd = toGpu(data), di = toGpu(indices),
               dy = toGpu(zeros(dtype, out));
        VLORA_ASSERT_OK(ops::gatherND(*ctx, dd.ref, di.ref, dy.ref));
        expectSame(label("gatherND", dtype, out), fromGpu(dy), want);

        Host updates = random(dtype, out, 173);
        Host scattered = zeros(dtype, c.data);
        cpu::scatterND(data.ref(), indices.ref(), updates.ref(),
                       scattered.ref());
        Device du = toGpu(updates), ds = toGpu(zeros(dtype, c.data));
        VLORA_ASSERT_OK(ops::scatterND(*ctx, dd.ref, di.ref, du.ref, ds.ref));
        // Duplicates: the last update wins, as on the CPU.
        expectSame(label("scatterND", dtype, c.data), fromGpu(ds), scattered);
      }
  expectNoDataError(*ctx);
}

TEST_F(OpsDataTest, MaskedScatterAndSelect) {
  for (DType dtype : {DType::F32, DType::I8, DType::F64, DType::BF16})
    for (Shape shape :
         {Shape{3, 7}, Shape{1}, Shape{2, 3, 1, 2, 4, 5}, Shape{5000}}) {
      Host data = random(dtype, shape, 181);
      Host mask = random(DType::Bool, shape, 182);
      int64_t trues = 0;
      for (int64_t i = 0; i < mask.numel(); ++i)
        trues += mask.as<uint8_t>()[i] != 0;
      Host source = random(dtype, {trues + 2}, 183);
      Host want = zeros(dtype, shape);
      cpu::maskedScatter(data.ref(), mask.ref(), source.ref(), want.ref());
      Device dd = toGpu(data), dm = toGpu(mask), dsrc = toGpu(source),
             dy = toGpu(zeros(dtype, shape));
      VLORA_ASSERT_OK(
          ops::maskedScatter(*ctx, dd.ref, dm.ref, dsrc.ref, dy.ref));
      expectSame(label("maskedScatter", dtype, shape), fromGpu(dy), want);

      Host selected = zeros(dtype, {trues + 3});
      cpu::maskedSelect(data.ref(), mask.ref(), selected.ref());
      Device dsel = toGpu(random(dtype, {trues + 3}, 184));
      VLORA_ASSERT_OK(ops::maskedSelect(*ctx, dd.ref, dm.ref, dsel.ref));
      expectSame(label("maskedSelect", dtype, shape), fromGpu(dsel), selected);
    }
  expectNoDataError(*ctx);
}

//===----------------------------------------------------------------------===//
// Data errors
//===----------------------------------------------------------------------===//

TEST_F(OpsDataTest, OutOfRangeIndicesAreReported) {
  Device data = toGpu(random(DType::F32, {3, 7}, 191));
  Device bad = toGpu(indicesOf({1, 40, -2}, {3}, DType::I64));
  Device out = toGpu(zeros(DType::F32, {3, 3}));
  VLORA_ASSERT_OK(ops::gather(*ctx, data.ref, bad.ref, out.ref, 1));
  expectDataError(*ctx, {"gather", "40", "[-7, 7)"});

  Device badLow = toGpu(indicesOf({-8}, {1}, DType::I32));
  Device out1 = toGpu(zeros(DType::F32, {3, 1}));
  VLORA_ASSERT_OK(ops::gather(*ctx, data.ref, badLow.ref, out1.ref, 1));
  expectDataError(*ctx, {"gather", "-8"});

  Device grad = toGpu(random(DType::F32, {3, 3}, 192));
  Device gradOut = toGpu(zeros(DType::F32, {3, 7}));
  VLORA_ASSERT_OK(ops::gatherGrad(*ctx, grad.ref, bad.ref, gradOut.ref, 1));
  expectDataError(*ctx, {"gather_grad", "40"});

  Device elemIdx = toGpu(indicesOf(
      {0, 1, 2, 3, 4, 5, 6, 70, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, {3, 7},
      DType::I64));
  Device elemOut = toGpu(zeros(DType::F32, {3, 7}));
  VLORA_ASSERT_OK(
      ops::gatherElements(*ctx, data.ref, elemIdx.ref, elemOut.ref, 1));
  expectDataError(*ctx, {"gather_elements", "70"});

  Device tuples = toGpu(indicesOf({0, 1, 2, 9}, {2, 2}, DType::I64));
  Device ndOut = toGpu(zeros(DType::F32, {2}));
  VLORA_ASSERT_OK(ops::gatherND(*ctx, data.ref, tuples.ref, ndOut.ref));
  expectDataError(*ctx, {"gather_nd", "9", "[-7, 7)"});

  Device updates = toGpu(random(DType::F32, {2}, 193));
  Device scatterOut = toGpu(zeros(DType::F32, {3, 7}));
  VLORA_ASSERT_OK(
      ops::scatterND(*ctx, data.ref, tuples.ref, updates.ref, scatterOut.ref));
  expectDataError(*ctx, {"scatter_nd", "9"});
}

TEST_F(OpsDataTest, MaskCountsAreReported) {
  Host maskHost = zeros(DType::Bool, {6});
  for (int i : {0, 2, 3, 5})
    maskHost.as<uint8_t>()[i] = 1;
  Device data = toGpu(random(DType::F32, {6}, 201)), mask = toGpu(maskHost);
  Device source = toGpu(random(DType::F32, {3}, 202)),
         out = toGpu(zeros(DType::F32, {6}));
  VLORA_ASSERT_OK(
      ops::maskedScatter(*ctx, data.ref, mask.ref, source.ref, out.ref));
  expectDataError(*ctx, {"masked_scatter", "4", "3"});

  Device small = toGpu(zeros(DType::F32, {2}));
  VLORA_ASSERT_OK(ops::maskedSelect(*ctx, data.ref, mask.ref, small.ref));
  expectDataError(*ctx, {"masked_select", "4", "2"});
}

} // namespace
} // namespace vlora::kernels::cuda::test
