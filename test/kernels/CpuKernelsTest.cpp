//===- CpuKernelsTest.cpp - CPU kernels vs naive references ---------------===//
//
// Each kernel runs on small shapes (odd sizes, broadcasting, negative axes
// normalised by the caller, negative indices) and is compared with a naive
// reference computed in double. Float comparisons state their tolerance and
// report the max abs/rel error and the first mismatch.
//
//===----------------------------------------------------------------------===//

#include "vlora/kernels/Cpu.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>

using namespace vlora::kernels;
namespace cpu = vlora::kernels::cpu;

namespace {

/// An owning tensor for tests: values held as doubles for the reference,
/// bytes in `storage` for the kernels.
struct Buf {
  DType dtype;
  Shape shape;
  std::vector<uint64_t> storage;

  Buf(DType d, Shape s) : dtype(d), shape(std::move(s)) {
    storage.assign((numElements(shape) * dtypeSize(dtype) + 7) / 8 + 1, 0);
  }
  int64_t numel() const { return numElements(shape); }
  TensorRef ref() { return {storage.data(), dtype, shape}; }
  double get(int64_t i) const {
    const void *p = storage.data();
    switch (dtype) {
    case DType::F32: return static_cast<const float *>(p)[i];
    case DType::F64: return static_cast<const double *>(p)[i];
    case DType::I64: return static_cast<double>(static_cast<const int64_t *>(p)[i]);
    case DType::I32: return static_cast<const int32_t *>(p)[i];
    case DType::Bool:
    case DType::U8: return static_cast<const uint8_t *>(p)[i];
    case DType::I8: return static_cast<const int8_t *>(p)[i];
    case DType::I16: return static_cast<const int16_t *>(p)[i];
    default: return NAN;
    }
  }
  void set(int64_t i, double v) {
    void *p = storage.data();
    switch (dtype) {
    case DType::F32: static_cast<float *>(p)[i] = static_cast<float>(v); break;
    case DType::F64: static_cast<double *>(p)[i] = v; break;
    case DType::I64: static_cast<int64_t *>(p)[i] = static_cast<int64_t>(v); break;
    case DType::I32: static_cast<int32_t *>(p)[i] = static_cast<int32_t>(v); break;
    case DType::Bool:
    case DType::U8: static_cast<uint8_t *>(p)[i] = static_cast<uint8_t>(v); break;
    case DType::I8: static_cast<int8_t *>(p)[i] = static_cast<int8_t>(v); break;
    case DType::I16: static_cast<int16_t *>(p)[i] = static_cast<int16_t>(v); break;
    default: break;
    }
  }
};

std::mt19937 &rng() {
  static std::mt19937 gen(1234);
  return gen;
}

Buf random(DType d, Shape s, double lo = -2, double hi = 2) {
  Buf b(d, std::move(s));
  std::uniform_real_distribution<double> dist(lo, hi);
  for (int64_t i = 0; i < b.numel(); ++i) {
    double v = dist(rng());
    b.set(i, d == DType::Bool ? (v > (lo + hi) / 2) : isFloat(d) ? v : std::round(v));
  }
  return b;
}

Buf filled(DType d, Shape s, std::vector<double> values) {
  Buf b(d, std::move(s));
  for (size_t i = 0; i < values.size(); ++i)
    b.set(static_cast<int64_t>(i), values[i]);
  return b;
}

/// Compares with a tolerance |got - want| <= atol + rtol * |want|.
::testing::AssertionResult near(const Buf &got, const std::vector<double> &want,
                                double atol = 1e-5, double rtol = 1e-5) {
  if (got.numel() != static_cast<int64_t>(want.size()))
    return ::testing::AssertionFailure()
           << "element count " << got.numel() << " vs reference " << want.size();
  double maxAbs = 0, maxRel = 0;
  int64_t first = -1;
  for (int64_t i = 0; i < got.numel(); ++i) {
    double g = got.get(i), w = want[i];
    if (std::isnan(w) && std::isnan(g))
      continue;
    double abs = std::fabs(g - w), rel = abs / std::max(std::fabs(w), 1e-30);
    if (std::isinf(w) && g == w)
      abs = rel = 0;
    maxAbs = std::max(maxAbs, abs);
    maxRel = std::max(maxRel, std::min(rel, abs));
    if (first < 0 && !(abs <= atol + rtol * std::fabs(w)))
      first = i;
  }
  if (first < 0)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "tolerance atol " << atol << " rtol " << rtol << ": max abs error "
         << maxAbs << ", max rel error " << maxRel << "; first mismatch at " << first
         << ": got " << got.get(first) << ", want " << want[first];
}

std::vector<int64_t> unravel(int64_t i, const Shape &shape) {
  std::vector<int64_t> idx(shape.size());
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    idx[d] = shape[d] ? i % shape[d] : 0;
    i = shape[d] ? i / shape[d] : 0;
  }
  return idx;
}

int64_t ravel(const std::vector<int64_t> &idx, const Shape &shape) {
  int64_t i = 0;
  for (size_t d = 0; d < shape.size(); ++d)
    i = i * shape[d] + idx[d];
  return i;
}

/// Index into `in` broadcast to `out`.
int64_t broadcastIndex(const std::vector<int64_t> &outIdx, const Shape &in) {
  std::vector<int64_t> idx(in.size());
  size_t lead = outIdx.size() - in.size();
  for (size_t d = 0; d < in.size(); ++d)
    idx[d] = in[d] == 1 ? 0 : outIdx[lead + d];
  return ravel(idx, in);
}

//===----------------------------------------------------------------------===//
// Elementwise
//===----------------------------------------------------------------------===//

TEST(CpuKernels, UnaryFloat) {
  struct Case {
    UnaryOp op;
    std::function<double(double)> ref;
    double lo, hi;
  };
  auto sig = [](double x) { return 1 / (1 + std::exp(-x)); };
  std::vector<Case> cases = {
      {UnaryOp::Neg, [](double x) { return -x; }, -3, 3},
      {UnaryOp::Abs, [](double x) { return std::fabs(x); }, -3, 3},
      {UnaryOp::Exp, [](double x) { return std::exp(x); }, -3, 3},
      {UnaryOp::Log, [](double x) { return std::log(x); }, 0.1, 5},
      {UnaryOp::Sqrt, [](double x) { return std::sqrt(x); }, 0, 5},
      {UnaryOp::Rsqrt, [](double x) { return 1 / std::sqrt(x); }, 0.1, 5},
      {UnaryOp::Reciprocal, [](double x) { return 1 / x; }, 0.1, 5},
      {UnaryOp::Tanh, [](double x) { return std::tanh(x); }, -3, 3},
      {UnaryOp::Erf, [](double x) { return std::erf(x); }, -3, 3},
      {UnaryOp::Sigmoid, sig, -30, 30},
      {UnaryOp::Silu, [&](double x) { return x * sig(x); }, -8, 8},
      {UnaryOp::Relu, [](double x) { return x > 0 ? x : 0; }, -3, 3},
      {UnaryOp::Sin, [](double x) { return std::sin(x); }, -3, 3},
      {UnaryOp::Cos, [](double x) { return std::cos(x); }, -3, 3},
      {UnaryOp::Floor, [](double x) { return std::floor(x); }, -3, 3},
      {UnaryOp::Ceil, [](double x) { return std::ceil(x); }, -3, 3},
      {UnaryOp::Gelu, [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }, -4, 4},
      {UnaryOp::GeluTanh,
       [](double x) {
         return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
       },
       -4, 4},
  };
  for (DType d : {DType::F32, DType::F64}) {
    for (const Case &c : cases) {
      SCOPED_TRACE(static_cast<int>(c.op));
      ASSERT_TRUE(cpu::supportsUnary(c.op, d));
      Buf x = random(d, {3, 7}, c.lo, c.hi), y(d, {3, 7});
      cpu::unary(c.op, x.ref(), y.ref());
      std::vector<double> want;
      for (int64_t i = 0; i < x.numel(); ++i)
        want.push_back(c.ref(x.get(i)));
      double tol = d == DType::F32 ? 1e-5 : 1e-12;
      EXPECT_TRUE(near(y, want, tol, tol));
    }
  }
}

TEST(CpuKernels, UnaryIntegerAndBool) {
  Buf x = filled(DType::I64, {4}, {-3, 0, 5, -7}), y(DType::I64, {4});
  cpu::unary(UnaryOp::Neg, x.ref(), y.ref());
  EXPECT_TRUE(near(y, {3, 0, -5, 7}, 0, 0));
  cpu::unary(UnaryOp::Abs, x.ref(), y.ref());
  EXPECT_TRUE(near(y, {3, 0, 5, 7}, 0, 0));
  Buf b = filled(DType::Bool, {3}, {1, 0, 1}), nb(DType::Bool, {3});
  cpu::unary(UnaryOp::Not, b.ref(), nb.ref());
  EXPECT_TRUE(near(nb, {0, 1, 0}, 0, 0));
  EXPECT_FALSE(cpu::supportsUnary(UnaryOp::Exp, DType::I64));
  EXPECT_FALSE(cpu::supportsUnary(UnaryOp::Not, DType::F32));
}

TEST(CpuKernels, UnaryInPlace) {
  Buf x = filled(DType::F32, {3}, {1, 4, 9});
  cpu::unary(UnaryOp::Sqrt, x.ref(), x.ref());
  EXPECT_TRUE(near(x, {1, 2, 3}));
}

double refBinary(BinaryOp op, double a, double b) {
  switch (op) {
  case BinaryOp::Add: return a + b;
  case BinaryOp::Sub: return a - b;
  case BinaryOp::Mul: return a * b;
  case BinaryOp::Div: return a / b;
  case BinaryOp::Pow: return std::pow(a, b);
  case BinaryOp::Max: return std::max(a, b);
  case BinaryOp::Min: return std::min(a, b);
  case BinaryOp::Equal: return a == b;
  case BinaryOp::Less: return a < b;
  case BinaryOp::LessEqual: return a <= b;
  case BinaryOp::Greater: return a > b;
  case BinaryOp::GreaterEqual: return a >= b;
  default: return NAN;
  }
}

TEST(CpuKernels, BinaryBroadcasting) {
  std::vector<std::pair<Shape, Shape>> shapes = {
      {{2, 3, 5}, {3, 1}}, {{1}, {4, 3}}, {{4, 1, 3}, {1, 5, 1}}, {{}, {3}},
      {{3, 5}, {3, 5}},    {{0, 3}, {3}}};
  for (BinaryOp op : {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div,
                      BinaryOp::Pow, BinaryOp::Max, BinaryOp::Min, BinaryOp::Equal,
                      BinaryOp::Less, BinaryOp::LessEqual, BinaryOp::Greater,
                      BinaryOp::GreaterEqual}) {
    for (auto &[sa, sb] : shapes) {
      SCOPED_TRACE(static_cast<int>(op));
      Shape so = *cpu::broadcastShapes(sa, sb);
      bool pos = op == BinaryOp::Pow || op == BinaryOp::Div;
      Buf a = random(DType::F32, sa, pos ? 0.5 : -2, 2);
      Buf b = random(DType::F32, sb, pos ? 0.5 : -2, 2);
      if (isCompare(op) && b.numel() && a.numel())
        b.set(0, a.get(0)); // exercise equality
      Buf y(isCompare(op) ? DType::Bool : DType::F32, so);
      cpu::binary(op, a.ref(), b.ref(), y.ref());
      std::vector<double> want;
      for (int64_t i = 0; i < y.numel(); ++i) {
        auto idx = unravel(i, so);
        want.push_back(refBinary(op, a.get(broadcastIndex(idx, sa)),
                                 b.get(broadcastIndex(idx, sb))));
      }
      EXPECT_TRUE(near(y, want, 1e-5, 1e-5));
    }
  }
}

TEST(CpuKernels, BinaryInteger) {
  Buf a = filled(DType::I64, {4}, {7, -7, 9, 2}), b = filled(DType::I64, {4}, {2, 2, -4, 10});
  Buf y(DType::I64, {4});
  cpu::binary(BinaryOp::Div, a.ref(), b.ref(), y.ref());
  EXPECT_TRUE(near(y, {3, -3, -2, 0}, 0, 0)); // truncation towards zero
  cpu::binary(BinaryOp::Pow, a.ref(), filled(DType::I64, {1}, {3}).ref(), y.ref());
  EXPECT_TRUE(near(y, {343, -343, 729, 8}, 0, 0));
  Buf i32a = filled(DType::I32, {2}, {5, 6}), i32b = filled(DType::I32, {2}, {1, 0});
  Buf i32y(DType::I32, {2});
  EXPECT_THROW(cpu::binary(BinaryOp::Div, i32a.ref(), i32b.ref(), i32y.ref()), KernelError);
}

TEST(CpuKernels, BinarySmallIntegers) {
  // i8, i16 and u8 wrap like the wider integers; no promotion to int leaks.
  Buf a8 = filled(DType::I8, {4}, {100, -100, 7, -128}),
      b8 = filled(DType::I8, {4}, {100, 100, -2, -1});
  Buf y8(DType::I8, {4});
  cpu::binary(BinaryOp::Add, a8.ref(), b8.ref(), y8.ref());
  EXPECT_TRUE(near(y8, {-56, 0, 5, 127}, 0, 0));
  cpu::binary(BinaryOp::Div, a8.ref(), b8.ref(), y8.ref());
  EXPECT_TRUE(near(y8, {1, -1, -3, -128}, 0, 0)); // -128 / -1 wraps
  cpu::binary(BinaryOp::Max, a8.ref(), b8.ref(), y8.ref());
  EXPECT_TRUE(near(y8, {100, 100, 7, -1}, 0, 0));
  Buf a16 = filled(DType::I16, {3}, {-30000, 300, 2}),
      b16 = filled(DType::I16, {3}, {-30000, 300, 15});
  Buf y16(DType::I16, {3});
  cpu::binary(BinaryOp::Mul, a16.ref(), b16.ref(), y16.ref());
  EXPECT_TRUE(near(y16, {-5888, 24464, 30}, 0, 0)); // mod 2^16
  cpu::binary(BinaryOp::Min, a16.ref(), b16.ref(), y16.ref());
  EXPECT_TRUE(near(y16, {-30000, 300, 2}, 0, 0));
  cpu::binary(BinaryOp::Pow, a16.ref(), filled(DType::I16, {1}, {2}).ref(), y16.ref());
  EXPECT_TRUE(near(y16, {-5888, 24464, 4}, 0, 0));
  Buf au = filled(DType::U8, {4}, {250, 3, 200, 9}), bu = filled(DType::U8, {4}, {10, 5, 2, 4});
  Buf yu(DType::U8, {4});
  cpu::binary(BinaryOp::Add, au.ref(), bu.ref(), yu.ref());
  EXPECT_TRUE(near(yu, {4, 8, 202, 13}, 0, 0));
  cpu::binary(BinaryOp::Sub, au.ref(), bu.ref(), yu.ref());
  EXPECT_TRUE(near(yu, {240, 254, 198, 5}, 0, 0));
  cpu::binary(BinaryOp::Mul, au.ref(), bu.ref(), yu.ref());
  EXPECT_TRUE(near(yu, {196, 15, 144, 36}, 0, 0));
  cpu::binary(BinaryOp::Div, au.ref(), bu.ref(), yu.ref());
  EXPECT_TRUE(near(yu, {25, 0, 100, 2}, 0, 0));
  cpu::binary(BinaryOp::Max, au.ref(), bu.ref(), yu.ref());
  EXPECT_TRUE(near(yu, {250, 5, 200, 9}, 0, 0));
  Buf yb(DType::Bool, {4});
  cpu::binary(BinaryOp::Greater, au.ref(), bu.ref(), yb.ref());
  EXPECT_TRUE(near(yb, {1, 0, 1, 1}, 0, 0)); // unsigned comparison
  for (DType d : {DType::I8, DType::I16, DType::U8, DType::F16, DType::BF16})
    for (BinaryOp op : {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div,
                        BinaryOp::Pow, BinaryOp::Max, BinaryOp::Min, BinaryOp::Less})
      EXPECT_TRUE(cpu::supportsBinary(op, d)) << dtypeName(d);
  EXPECT_FALSE(cpu::supportsBinary(BinaryOp::Add, DType::Bool));
}

TEST(CpuKernels, Binary16BitFloats) {
  // Computed in float, rounded once: compare through casts to f32.
  for (DType d : {DType::F16, DType::BF16}) {
    SCOPED_TRACE(dtypeName(d));
    Buf a = filled(DType::F32, {2, 3}, {1.5, -2, 0.25, 3, NAN, -0.5}),
        b = filled(DType::F32, {3}, {0.5, -4, 1});
    Buf ah(d, {2, 3}), bh(d, {3}), yh(d, {2, 3}), y(DType::F32, {2, 3});
    cpu::cast(a.ref(), ah.ref());
    cpu::cast(b.ref(), bh.ref());
    cpu::binary(BinaryOp::Max, ah.ref(), bh.ref(), yh.ref());
    cpu::cast(yh.ref(), y.ref());
    EXPECT_TRUE(near(y, {1.5, -2, 1, 3, NAN, 1}, 0, 0));
    cpu::binary(BinaryOp::Min, ah.ref(), bh.ref(), yh.ref());
    cpu::cast(yh.ref(), y.ref());
    EXPECT_TRUE(near(y, {0.5, -4, 0.25, 0.5, NAN, -0.5}, 0, 0));
    cpu::binary(BinaryOp::Mul, ah.ref(), bh.ref(), yh.ref());
    cpu::cast(yh.ref(), y.ref());
    EXPECT_TRUE(near(y, {0.75, 8, 0.25, 1.5, NAN, -0.5}, 0, 0));
    Buf yb(DType::Bool, {2, 3});
    cpu::binary(BinaryOp::Less, ah.ref(), bh.ref(), yb.ref());
    EXPECT_TRUE(near(yb, {0, 0, 1, 0, 0, 1}, 0, 0));
  }
}

TEST(CpuKernels, BinaryInPlaceOverEitherOperand) {
  // The lowering may give an elementwise op's output the buffer of either
  // same-typed operand while the other one broadcasts: each element must be
  // read before it is written, whichever side the output aliases.
  for (BinaryOp op : {BinaryOp::Sub, BinaryOp::Div, BinaryOp::Pow, BinaryOp::Max}) {
    SCOPED_TRACE(static_cast<int>(op));
    Shape same = {3, 4}, row = {1, 4};
    for (bool aliasRhs : {false, true}) {
      SCOPED_TRACE(aliasRhs ? "output over rhs" : "output over lhs");
      Buf big = random(DType::F32, same, 0.5, 2), bcast = random(DType::F32, row, 0.5, 2);
      Buf original = big;
      std::vector<double> want;
      for (int64_t i = 0; i < 12; ++i) {
        double x = original.get(i), r = bcast.get(i % 4);
        want.push_back(aliasRhs ? refBinary(op, r, x) : refBinary(op, x, r));
      }
      if (aliasRhs)
        cpu::binary(op, bcast.ref(), big.ref(), big.ref());
      else
        cpu::binary(op, big.ref(), bcast.ref(), big.ref());
      EXPECT_TRUE(near(big, want, 1e-6, 1e-6));
    }
    // Both operands the same buffer as the output (x op x).
    Buf x = random(DType::I32, {5}, 1, 9), copy = x;
    std::vector<double> want;
    for (int64_t i = 0; i < 5; ++i)
      want.push_back(op == BinaryOp::Div ? 1
                     : op == BinaryOp::Sub ? 0
                     : op == BinaryOp::Max ? copy.get(i)
                                           : std::pow(copy.get(i), copy.get(i)));
    cpu::binary(op, x.ref(), x.ref(), x.ref());
    EXPECT_TRUE(near(x, want, 0, 0));
  }
}

TEST(CpuKernels, LogicalAndBoolEqual) {
  Buf a = filled(DType::Bool, {4}, {0, 0, 1, 1}), b = filled(DType::Bool, {4}, {0, 1, 0, 1});
  Buf y(DType::Bool, {4});
  cpu::binary(BinaryOp::And, a.ref(), b.ref(), y.ref());
  EXPECT_TRUE(near(y, {0, 0, 0, 1}, 0, 0));
  cpu::binary(BinaryOp::Or, a.ref(), b.ref(), y.ref());
  EXPECT_TRUE(near(y, {0, 1, 1, 1}, 0, 0));
  cpu::binary(BinaryOp::Xor, a.ref(), b.ref(), y.ref());
  EXPECT_TRUE(near(y, {0, 1, 1, 0}, 0, 0));
  cpu::binary(BinaryOp::Equal, a.ref(), b.ref(), y.ref());
  EXPECT_TRUE(near(y, {1, 0, 0, 1}, 0, 0));
}

TEST(CpuKernels, MaxMinPropagateNaN) {
  Buf a = filled(DType::F32, {2}, {NAN, 1}), b = filled(DType::F32, {2}, {1, NAN});
  Buf y(DType::F32, {2});
  cpu::binary(BinaryOp::Max, a.ref(), b.ref(), y.ref());
  EXPECT_TRUE(std::isnan(y.get(0)) && std::isnan(y.get(1)));
}

TEST(CpuKernels, WhereBroadcasting) {
  Buf c = random(DType::Bool, {3, 1}), a = random(DType::I64, {1, 4}, -9, 9),
      b = random(DType::I64, {3, 4}, -9, 9);
  Buf y(DType::I64, {3, 4});
  cpu::where(c.ref(), a.ref(), b.ref(), y.ref());
  std::vector<double> want;
  for (int64_t i = 0; i < 12; ++i) {
    auto idx = unravel(i, {3, 4});
    want.push_back(c.get(broadcastIndex(idx, {3, 1})) ? a.get(broadcastIndex(idx, {1, 4}))
                                                       : b.get(i));
  }
  EXPECT_TRUE(near(y, want, 0, 0));
}

TEST(CpuKernels, Cast) {
  Buf x = filled(DType::F32, {6}, {1.7f, -1.7f, 0, NAN, 3e10f, -0.2f});
  Buf i(DType::I64, {6});
  cpu::cast(x.ref(), i.ref());
  EXPECT_TRUE(near(i, {1, -1, 0, 0, 30000001024.0, 0}, 0, 0)); // 3e10f
  Buf b(DType::Bool, {6});
  cpu::cast(x.ref(), b.ref());
  EXPECT_TRUE(near(b, {1, 1, 0, 1, 1, 1}, 0, 0));
  Buf i8(DType::I8, {6});
  cpu::cast(filled(DType::I64, {6}, {1, 127, 128, -129, 0, 5}).ref(), i8.ref());
  EXPECT_TRUE(near(i8, {1, 127, -128, 127, 0, 5}, 0, 0)); // wraps like C
  // Through the 16-bit floats and back: exact for representable values,
  // round-to-nearest-even otherwise.
  Buf f = filled(DType::F32, {6}, {1.0, -2.5, 65504, 1.0 / 1024, 1e-7, 1.00048828125});
  for (DType half : {DType::F16, DType::BF16}) {
    Buf h(half, {6}), back(DType::F32, {6});
    cpu::cast(f.ref(), h.ref());
    cpu::cast(h.ref(), back.ref());
    if (half == DType::F16)
      EXPECT_TRUE(near(back, {1.0, -2.5, 65504, 1.0 / 1024, 1.1920928955078125e-07, 1.0}, 0, 0));
    else
      EXPECT_TRUE(near(back, {1.0, -2.5, 65536, 1.0 / 1024, 1e-7, 1.0}, 0, 4e-3));
  }
  Buf big = filled(DType::F32, {1}, {1e6}), h(DType::F16, {1}), back(DType::F32, {1});
  cpu::cast(big.ref(), h.ref());
  cpu::cast(h.ref(), back.ref());
  EXPECT_TRUE(std::isinf(back.get(0)));
}

//===----------------------------------------------------------------------===//
// Linear algebra
//===----------------------------------------------------------------------===//

std::vector<double> refMatmul(const Buf &a, const Buf &b, const Shape &out, bool ta,
                              bool tb) {
  int64_t r = out.size(), m = out[r - 2], n = out[r - 1];
  int64_t k = ta ? a.shape[a.shape.size() - 2] : a.shape.back();
  std::vector<double> y(numElements(out));
  for (int64_t i = 0; i < static_cast<int64_t>(y.size()); ++i) {
    auto idx = unravel(i, out);
    int64_t row = idx[r - 2], col = idx[r - 1];
    double s = 0;
    for (int64_t p = 0; p < k; ++p) {
      auto ai = idx, bi = idx;
      ai[r - 2] = ta ? p : row;
      ai[r - 1] = ta ? row : p;
      bi[r - 2] = tb ? col : p;
      bi[r - 1] = tb ? p : col;
      // Drop broadcast batch dims.
      std::vector<int64_t> aIdx(ai.end() - a.shape.size(), ai.end()),
          bIdx(bi.end() - b.shape.size(), bi.end());
      for (size_t d = 0; d + 2 < a.shape.size(); ++d)
        if (a.shape[d] == 1)
          aIdx[d] = 0;
      for (size_t d = 0; d + 2 < b.shape.size(); ++d)
        if (b.shape[d] == 1)
          bIdx[d] = 0;
      s += a.get(ravel(aIdx, a.shape)) * b.get(ravel(bIdx, b.shape));
    }
    y[i] = s;
  }
  (void)m;
  (void)n;
  return y;
}

TEST(CpuKernels, MatmulBatchedBroadcastTransposed) {
  struct Case {
    Shape a, b, out;
    bool ta, tb;
  };
  std::vector<Case> cases = {
      {{3, 5}, {5, 4}, {3, 4}, false, false},
      {{2, 3, 5}, {5, 7}, {2, 3, 7}, false, false},      // linear layer
      {{2, 3, 5}, {7, 5}, {2, 3, 7}, false, true},       // transpose_b weight
      {{2, 1, 5, 3}, {4, 5, 2}, {2, 4, 3, 2}, true, false}, // broadcast batch
      {{1, 3, 5}, {2, 4, 5}, {2, 3, 4}, false, true},
      {{3, 0}, {0, 4}, {3, 4}, false, false},            // K = 0
  };
  for (DType d : {DType::F32, DType::F64}) {
    for (const Case &c : cases) {
      Buf a = random(d, c.a), b = random(d, c.b), y(d, c.out);
      cpu::matmul(a.ref(), b.ref(), y.ref(), c.ta, c.tb);
      EXPECT_TRUE(near(y, refMatmul(a, b, c.out, c.ta, c.tb), 1e-4, 1e-4));
    }
  }
}

TEST(CpuKernels, LoRAMatmul) {
  for (bool tb : {false, true}) {
    Buf x = random(DType::F32, {2, 3, 6}), w = random(DType::F32, tb ? Shape{5, 6} : Shape{6, 5});
    Buf a = random(DType::F32, {4, 6}), b = random(DType::F32, {5, 4});
    Buf y(DType::F32, {2, 3, 5});
    cpu::loraMatmul(x.ref(), w.ref(), a.ref(), b.ref(), y.ref(), 0.5, tb);
    std::vector<double> base = refMatmul(x, w, {2, 3, 5}, false, tb);
    std::vector<double> xa = refMatmul(x, a, {2, 3, 4}, false, true);
    Buf xab(DType::F64, {2, 3, 4});
    for (int64_t i = 0; i < 24; ++i)
      xab.set(i, xa[i]);
    std::vector<double> low = refMatmul(xab, b, {2, 3, 5}, false, true);
    for (size_t i = 0; i < base.size(); ++i)
      base[i] += 0.5 * low[i];
    EXPECT_TRUE(near(y, base, 1e-4, 1e-4));
  }
}

/// A mixed-precision plan's frozen weight: `f32` rounded to bf16 (what the
/// plan stores) and that widened back to f32 (what the f32 kernel sees).
struct BF16Weight {
  Buf half, wide;
  explicit BF16Weight(Buf &f32)
      : half(DType::BF16, f32.shape), wide(DType::F32, f32.shape) {
    cpu::cast(f32.ref(), half.ref());
    cpu::cast(half.ref(), wide.ref());
  }
};

/// Bitwise equality of two f32 tensors.
::testing::AssertionResult sameBits(const Buf &got, const Buf &want) {
  for (int64_t i = 0; i < want.numel(); ++i)
    if (std::memcmp(reinterpret_cast<const float *>(got.storage.data()) + i,
                    reinterpret_cast<const float *>(want.storage.data()) + i,
                    4))
      return ::testing::AssertionFailure()
             << "not bitwise equal: first mismatch at " << i << ": got "
             << got.get(i) << ", want " << want.get(i);
  return ::testing::AssertionSuccess();
}

TEST(CpuKernels, MatmulBF16WeightIsTheF32KernelOnTheWidenedWeight) {
  struct Case {
    Shape a, b, out;
    bool ta, tb, weightIsLhs;
  };
  std::vector<Case> cases = {
      {{2, 3, 5}, {5, 7}, {2, 3, 7}, false, false, false}, // linear layer
      {{2, 3, 5}, {7, 5}, {2, 3, 7}, false, true, false},  // transpose_b weight
      {{2, 1, 5, 3}, {4, 5, 2}, {2, 4, 3, 2}, true, false, false}, // batched
      {{4, 6}, {2, 4, 5}, {2, 6, 5}, true, false, true}, // weight as lhs
      {{6, 4}, {3, 4}, {6, 3}, false, true, true},
  };
  for (const Case &c : cases) {
    Buf a = random(DType::F32, c.a), b = random(DType::F32, c.b);
    BF16Weight w(c.weightIsLhs ? a : b);
    Buf got(DType::F32, c.out), want(DType::F32, c.out);
    if (c.weightIsLhs) {
      cpu::matmul(w.half.ref(), b.ref(), got.ref(), c.ta, c.tb);
      cpu::matmul(w.wide.ref(), b.ref(), want.ref(), c.ta, c.tb);
    } else {
      cpu::matmul(a.ref(), w.half.ref(), got.ref(), c.ta, c.tb);
      cpu::matmul(a.ref(), w.wide.ref(), want.ref(), c.ta, c.tb);
    }
    EXPECT_TRUE(sameBits(got, want)) << "case " << (&c - cases.data());
    // ... and that is the matmul of the rounded weight (tolerance 1e-4).
    EXPECT_TRUE(near(got,
                     c.weightIsLhs ? refMatmul(w.wide, b, c.out, c.ta, c.tb)
                                   : refMatmul(a, w.wide, c.out, c.ta, c.tb),
                     1e-4, 1e-4));
  }
}

TEST(CpuKernels, LoRAMatmulBF16WeightIsTheF32KernelOnTheWidenedWeight) {
  for (bool tb : {false, true}) {
    Buf x = random(DType::F32, {2, 3, 6}),
        wf = random(DType::F32, tb ? Shape{5, 6} : Shape{6, 5});
    Buf a = random(DType::F32, {4, 6}), b = random(DType::F32, {5, 4});
    BF16Weight w(wf);
    Buf got(DType::F32, {2, 3, 5}), want(DType::F32, {2, 3, 5});
    cpu::loraMatmul(x.ref(), w.half.ref(), a.ref(), b.ref(), got.ref(), 0.5,
                    tb);
    cpu::loraMatmul(x.ref(), w.wide.ref(), a.ref(), b.ref(), want.ref(), 0.5,
                    tb);
    EXPECT_TRUE(sameBits(got, want)) << "transpose_b " << tb;
  }
}

TEST(CpuKernels, Conv) {
  struct Case {
    Shape x, w, strides, pads, dilations;
    int64_t group;
    bool bias;
  };
  std::vector<Case> cases = {
      {{2, 3, 7, 6}, {4, 3, 3, 2}, {1, 1}, {0, 0, 0, 0}, {1, 1}, 1, true},
      {{1, 4, 9, 8}, {6, 2, 3, 3}, {2, 3}, {1, 2, 0, 1}, {2, 1}, 2, false},
      {{2, 2, 10}, {3, 2, 4}, {3}, {2, 1}, {1}, 1, true},        // 1-d
      {{1, 3, 8, 8}, {5, 3, 4, 4}, {4, 4}, {0, 0, 0, 0}, {1, 1}, 1, true}, // patches
  };
  for (const Case &c : cases) {
    size_t k = c.x.size() - 2;
    Shape out{c.x[0], c.w[0]};
    for (size_t i = 0; i < k; ++i) {
      int64_t span = c.dilations[i] * (c.w[i + 2] - 1) + 1;
      out.push_back((c.x[i + 2] + c.pads[i] + c.pads[i + k] - span) / c.strides[i] + 1);
    }
    Buf x = random(DType::F32, c.x), w = random(DType::F32, c.w),
        b = random(DType::F32, {c.w[0]}), y(DType::F32, out);
    cpu::conv(x.ref(), w.ref(), c.bias ? &static_cast<const TensorRef &>(b.ref()) : nullptr,
              y.ref(), c.strides, c.pads, c.dilations, c.group);
    std::vector<double> want(y.numel());
    int64_t cg = c.x[1] / c.group, mg = c.w[0] / c.group;
    for (int64_t i = 0; i < y.numel(); ++i) {
      auto oi = unravel(i, out);
      int64_t n = oi[0], m = oi[1], g = m / mg;
      double s = c.bias ? b.get(m) : 0;
      Shape ks(c.w.begin() + 2, c.w.end());
      for (int64_t ci = 0; ci < cg; ++ci)
        for (int64_t kp = 0; kp < numElements(ks); ++kp) {
          auto kk = unravel(kp, ks);
          std::vector<int64_t> xi{n, g * cg + ci};
          bool inside = true;
          for (size_t d = 0; d < k; ++d) {
            int64_t pos = oi[2 + d] * c.strides[d] - c.pads[d] + kk[d] * c.dilations[d];
            inside &= pos >= 0 && pos < c.x[2 + d];
            xi.push_back(pos);
          }
          if (!inside)
            continue;
          std::vector<int64_t> wi{m, ci};
          wi.insert(wi.end(), kk.begin(), kk.end());
          s += x.get(ravel(xi, c.x)) * w.get(ravel(wi, c.w));
        }
      want[i] = s;
    }
    EXPECT_TRUE(near(y, want, 1e-4, 1e-4));
  }
}

//===----------------------------------------------------------------------===//
// Normalisation and reductions
//===----------------------------------------------------------------------===//

TEST(CpuKernels, SoftmaxAndLogSoftmax) {
  Shape s{3, 5, 4};
  for (int64_t axis : {0, 1, 2}) {
    for (bool log : {false, true}) {
      Buf x = random(DType::F32, s, -5, 5), y(DType::F32, s);
      cpu::softmax(x.ref(), y.ref(), axis, log);
      std::vector<double> want(x.numel());
      for (int64_t i = 0; i < x.numel(); ++i) {
        auto idx = unravel(i, s);
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < s[axis]; ++j) {
          auto o = idx;
          o[axis] = j;
          mx = std::max(mx, x.get(ravel(o, s)));
        }
        for (int64_t j = 0; j < s[axis]; ++j) {
          auto o = idx;
          o[axis] = j;
          sum += std::exp(x.get(ravel(o, s)) - mx);
        }
        want[i] = log ? x.get(i) - mx - std::log(sum) : std::exp(x.get(i) - mx) / sum;
      }
      EXPECT_TRUE(near(y, want, 1e-5, 1e-5));
    }
  }
}

TEST(CpuKernels, Cumsum) {
  Buf x = filled(DType::I64, {2, 3}, {1, 2, 3, 4, 5, 6}), y(DType::I64, {2, 3});
  cpu::cumsum(x.ref(), y.ref(), 1, false, false);
  EXPECT_TRUE(near(y, {1, 3, 6, 4, 9, 15}, 0, 0));
  cpu::cumsum(x.ref(), y.ref(), 1, true, false);
  EXPECT_TRUE(near(y, {0, 1, 3, 0, 4, 9}, 0, 0));
  cpu::cumsum(x.ref(), y.ref(), 1, false, true);
  EXPECT_TRUE(near(y, {6, 5, 3, 15, 11, 6}, 0, 0));
  cpu::cumsum(x.ref(), y.ref(), 0, true, true);
  EXPECT_TRUE(near(y, {4, 5, 6, 0, 0, 0}, 0, 0));
  Buf f = filled(DType::F32, {3}, {0.5, 0.25, 1}), g(DType::F32, {3});
  cpu::cumsum(f.ref(), g.ref(), 0, false, false);
  EXPECT_TRUE(near(g, {0.5, 0.75, 1.75}));
}

TEST(CpuKernels, LayerNormAndRmsNorm) {
  Shape s{2, 3, 5};
  for (int64_t axis : {1, 2}) {
    Shape ns(s.begin() + axis, s.end());
    Buf x = random(DType::F32, s), g = random(DType::F32, ns), b = random(DType::F32, ns);
    Buf y(DType::F32, s), r(DType::F32, s);
    int64_t inner = numElements(ns);
    for (bool withBias : {false, true}) {
      cpu::layerNorm(x.ref(), g.ref(), withBias ? &static_cast<const TensorRef &>(b.ref()) : nullptr,
                     y.ref(), axis, 1e-5);
      std::vector<double> want(x.numel());
      for (int64_t o = 0; o < x.numel() / inner; ++o) {
        double mean = 0, var = 0;
        for (int64_t i = 0; i < inner; ++i)
          mean += x.get(o * inner + i) / inner;
        for (int64_t i = 0; i < inner; ++i)
          var += std::pow(x.get(o * inner + i) - mean, 2) / inner;
        for (int64_t i = 0; i < inner; ++i)
          want[o * inner + i] = (x.get(o * inner + i) - mean) / std::sqrt(var + 1e-5) * g.get(i) +
                                (withBias ? b.get(i) : 0);
      }
      EXPECT_TRUE(near(y, want, 1e-5, 1e-4));
    }
    cpu::rmsNorm(x.ref(), g.ref(), r.ref(), axis, 1e-6);
    std::vector<double> want(x.numel());
    for (int64_t o = 0; o < x.numel() / inner; ++o) {
      double ms = 0;
      for (int64_t i = 0; i < inner; ++i)
        ms += std::pow(x.get(o * inner + i), 2) / inner;
      for (int64_t i = 0; i < inner; ++i)
        want[o * inner + i] = x.get(o * inner + i) / std::sqrt(ms + 1e-6) * g.get(i);
    }
    EXPECT_TRUE(near(r, want, 1e-5, 1e-4));
  }
}

TEST(CpuKernels, Reductions) {
  Shape s{3, 4, 5};
  std::vector<Shape> axesList = {{0}, {1}, {2}, {0, 2}, {2, 0}, {0, 1, 2}, {}};
  for (DType d : {DType::F32, DType::I64}) {
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min,
                        ReduceOp::Prod}) {
      for (const Shape &axes : axesList) {
        Buf x = random(d, s, op == ReduceOp::Prod ? 0.5 : -5, op == ReduceOp::Prod ? 1.5 : 5);
        Shape kept = s;
        for (int64_t a : axes)
          kept[a] = 1;
        Buf y(d, kept);
        cpu::reduce(op, x.ref(), y.ref(), axes);
        std::vector<double> want(y.numel(), op == ReduceOp::Prod ? 1
                                            : op == ReduceOp::Max ? -INFINITY
                                            : op == ReduceOp::Min ? INFINITY : 0);
        std::vector<int> count(y.numel(), 0);
        for (int64_t i = 0; i < x.numel(); ++i) {
          int64_t o = broadcastIndex(unravel(i, s), kept);
          double v = x.get(i);
          count[o]++;
          switch (op) {
          case ReduceOp::Sum: case ReduceOp::Mean: want[o] += v; break;
          case ReduceOp::Prod: want[o] *= v; break;
          case ReduceOp::Max: want[o] = std::max(want[o], v); break;
          case ReduceOp::Min: want[o] = std::min(want[o], v); break;
          }
        }
        if (op == ReduceOp::Mean)
          for (int64_t o = 0; o < y.numel(); ++o)
            want[o] = d == DType::I64 ? std::trunc(want[o] / count[o]) : want[o] / count[o];
        EXPECT_TRUE(near(y, want, 1e-4, 1e-5)) << "op " << static_cast<int>(op)
                                               << " axes " << shapeString(axes);
      }
    }
  }
}

TEST(CpuKernels, ArgMax) {
  Buf x = filled(DType::F32, {2, 4}, {1, 3, 3, 0, 5, -1, 5, 5}), y(DType::I64, {2});
  cpu::argmax(x.ref(), y.ref(), 1, false);
  EXPECT_TRUE(near(y, {1, 0}, 0, 0));
  cpu::argmax(x.ref(), y.ref(), 1, true);
  EXPECT_TRUE(near(y, {2, 3}, 0, 0));
  Buf z(DType::I64, {4});
  cpu::argmax(x.ref(), z.ref(), 0, false);
  EXPECT_TRUE(near(z, {1, 0, 1, 1}, 0, 0));
}

//===----------------------------------------------------------------------===//
// Data movement
//===----------------------------------------------------------------------===//

TEST(CpuKernels, Transpose) {
  Shape s{2, 3, 4, 5};
  Shape perm{2, 0, 3, 1}, out{4, 2, 5, 3};
  for (DType d : {DType::F32, DType::I64, DType::Bool, DType::I16}) {
    Buf x = random(d, s, -9, 9), y(d, out);
    cpu::transpose(x.ref(), y.ref(), perm);
    std::vector<double> want(y.numel());
    for (int64_t i = 0; i < y.numel(); ++i) {
      auto oi = unravel(i, out);
      std::vector<int64_t> ii(4);
      for (int p = 0; p < 4; ++p)
        ii[perm[p]] = oi[p];
      want[i] = x.get(ravel(ii, s));
    }
    EXPECT_TRUE(near(y, want, 0, 0));
  }
}

TEST(CpuKernels, SliceWithNegativeStrides) {
  Shape s{5, 7};
  Buf x = random(DType::I32, s, -99, 99);
  // rows 4,2,0 (start 4, limit -1, stride -2); columns 1..6 step 2
  Buf y(DType::I32, {3, 3});
  cpu::slice(x.ref(), y.ref(), {4, 1}, {-2, 2});
  std::vector<double> want;
  for (int64_t r : {4, 2, 0})
    for (int64_t c : {1, 3, 5})
      want.push_back(x.get(r * 7 + c));
  EXPECT_TRUE(near(y, want, 0, 0));
}

TEST(CpuKernels, ConcatAndSplit) {
  Buf a = random(DType::F32, {2, 1, 3}), b = random(DType::F32, {2, 4, 3}), y(DType::F32, {2, 5, 3});
  cpu::concat({a.ref(), b.ref()}, y.ref(), 1);
  std::vector<double> want;
  for (int64_t n = 0; n < 2; ++n) {
    for (int64_t i = 0; i < 3; ++i)
      want.push_back(a.get(n * 3 + i));
    for (int64_t i = 0; i < 12; ++i)
      want.push_back(b.get(n * 12 + i));
  }
  EXPECT_TRUE(near(y, want, 0, 0));
  Buf p(DType::F32, {2, 1, 3}), q(DType::F32, {2, 4, 3});
  cpu::split(y.ref(), {p.ref(), q.ref()}, 1);
  EXPECT_TRUE(near(p, std::vector<double>(reinterpret_cast<float *>(a.storage.data()),
                                          reinterpret_cast<float *>(a.storage.data()) + 6),
                   0, 0));
  std::vector<double> wb;
  for (int64_t i = 0; i < b.numel(); ++i)
    wb.push_back(b.get(i));
  EXPECT_TRUE(near(q, wb, 0, 0));
}

TEST(CpuKernels, GatherNegativeAndOutOfRange) {
  Buf data = random(DType::F32, {3, 4, 2});
  Buf idx = filled(DType::I64, {2, 2}, {0, -1, 3, -4}), y(DType::F32, {3, 2, 2, 2});
  cpu::gather(data.ref(), idx.ref(), y.ref(), 1);
  std::vector<double> want;
  for (int64_t o = 0; o < 3; ++o)
    for (int64_t j : {0, 3, 3, 0})
      for (int64_t i = 0; i < 2; ++i)
        want.push_back(data.get((o * 4 + j) * 2 + i));
  EXPECT_TRUE(near(y, want, 0, 0));
  Buf bad = filled(DType::I32, {1}, {4}), by(DType::F32, {3, 1, 2});
  try {
    cpu::gather(data.ref(), bad.ref(), by.ref(), 1);
    FAIL() << "no error";
  } catch (const KernelError &e) {
    EXPECT_NE(std::string(e.what()).find("index 4 is out of range [-4, 4)"), std::string::npos)
        << e.what();
  }
}

TEST(CpuKernels, GatherElements) {
  Buf data = filled(DType::F32, {2, 3}, {1, 2, 3, 4, 5, 6});
  Buf idx = filled(DType::I64, {2, 2}, {2, 0, -1, 1}), y(DType::F32, {2, 2});
  cpu::gatherElements(data.ref(), idx.ref(), y.ref(), 1);
  EXPECT_TRUE(near(y, {3, 1, 6, 5}, 0, 0));
  Buf idx0 = filled(DType::I64, {1, 3}, {1, 0, 1}), y0(DType::F32, {1, 3});
  cpu::gatherElements(data.ref(), idx0.ref(), y0.ref(), 0);
  EXPECT_TRUE(near(y0, {4, 2, 6}, 0, 0));
}

TEST(CpuKernels, GatherNDAndScatterND) {
  Buf data = filled(DType::I64, {2, 2, 2}, {0, 1, 2, 3, 4, 5, 6, 7});
  Buf idx = filled(DType::I64, {2, 2}, {0, 1, 1, -2}), y(DType::I64, {2, 2});
  cpu::gatherND(data.ref(), idx.ref(), y.ref());
  EXPECT_TRUE(near(y, {2, 3, 4, 5}, 0, 0));
  Buf upd = filled(DType::I64, {2, 2}, {10, 11, 12, 13}), s(DType::I64, {2, 2, 2});
  cpu::scatterND(data.ref(), idx.ref(), upd.ref(), s.ref());
  EXPECT_TRUE(near(s, {0, 1, 10, 11, 12, 13, 6, 7}, 0, 0));
  Buf bad = filled(DType::I64, {1, 1}, {2}), by(DType::I64, {1, 2, 2});
  EXPECT_THROW(cpu::gatherND(data.ref(), bad.ref(), by.ref()), KernelError);
}

TEST(CpuKernels, MaskedScatter) {
  Buf data = filled(DType::F32, {2, 3}, {0, 0, 0, 0, 0, 0});
  Buf mask = filled(DType::Bool, {2, 3}, {1, 0, 1, 0, 1, 0});
  Buf src = filled(DType::F32, {4}, {7, 8, 9, 10}), y(DType::F32, {2, 3});
  cpu::maskedScatter(data.ref(), mask.ref(), src.ref(), y.ref());
  EXPECT_TRUE(near(y, {7, 0, 8, 0, 9, 0}, 0, 0));
  Buf small = filled(DType::F32, {2}, {1, 2});
  try {
    cpu::maskedScatter(data.ref(), mask.ref(), small.ref(), y.ref());
    FAIL() << "no error";
  } catch (const KernelError &e) {
    EXPECT_NE(std::string(e.what()).find("selects 3 positions but source has only 2"),
              std::string::npos)
        << e.what();
  }
}

TEST(CpuKernels, ExpandPadTrilu) {
  Buf x = filled(DType::F32, {3, 1}, {1, 2, 3}), y(DType::F32, {2, 3, 2});
  cpu::expand(x.ref(), y.ref());
  EXPECT_TRUE(near(y, {1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3}, 0, 0));
  Buf p(DType::F32, {4, 3});
  cpu::pad(x.ref(), p.ref(), {1, 0, 0, 2}, -1.5);
  EXPECT_TRUE(near(p, {-1.5, -1.5, -1.5, 1, -1.5, -1.5, 2, -1.5, -1.5, 3, -1.5, -1.5}, 0, 0));
  Buf m = filled(DType::I64, {3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9}), t(DType::I64, {3, 3});
  cpu::trilu(m.ref(), t.ref(), true, 1);
  EXPECT_TRUE(near(t, {0, 2, 3, 0, 0, 6, 0, 0, 0}, 0, 0));
  cpu::trilu(m.ref(), t.ref(), false, -1);
  EXPECT_TRUE(near(t, {0, 0, 0, 4, 0, 0, 7, 8, 0}, 0, 0));
}

TEST(CpuKernels, CopyAliases) {
  Buf x = filled(DType::F32, {3}, {1, 2, 3}), y(DType::F32, {3});
  cpu::copy(x.ref(), y.ref());
  EXPECT_TRUE(near(y, {1, 2, 3}, 0, 0));
  cpu::copy(x.ref(), x.ref());
  EXPECT_TRUE(near(x, {1, 2, 3}, 0, 0));
}

} // namespace
