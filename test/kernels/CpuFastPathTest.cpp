//===- CpuFastPathTest.cpp - the f32 fast paths on large, threaded shapes -===//
//
// kernels/cpu/Fast.cpp takes over f32 unary/binary/softmax/reduce for the
// shapes a transformer forward uses, split over threads above ~32 k
// elements. CpuKernelsTest covers the small shapes; these run sizes that go
// through the thread pool and the coalesced broadcast layouts, against
// references computed in double (binary ops: exactly, since one f32
// operation is correctly rounded either way).
//
//===----------------------------------------------------------------------===//

#include "vlora/kernels/Cpu.h"

#include "Fast.h" // kernels/cpu (internal)

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

using namespace vlora::kernels;
namespace cpu = vlora::kernels::cpu;

namespace {
std::vector<float> randomFloats(int64_t n, float lo, float hi, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float &x : v)
    x = dist(gen);
  return v;
}

TensorRef ref(std::vector<float> &v, Shape s) { return {v.data(), DType::F32, std::move(s)}; }

int64_t broadcastOffset(int64_t flat, const Shape &out, const Shape &in) {
  int64_t offset = 0, stride = 1;
  for (size_t i = 0; i < out.size(); ++i) {
    size_t d = out.size() - 1 - i;
    int64_t index = flat % out[d];
    flat /= out[d];
    if (i < in.size()) {
      size_t e = in.size() - 1 - i;
      if (in[e] != 1)
        offset += index * stride;
      stride *= in[e];
    }
  }
  return offset;
}
} // namespace

TEST(CpuFastPath, ExpMatchesLibm) {
  double worst = 0;
  for (int i = 0; i <= 2000000; ++i) {
    float x = -86.5f + (88.72f + 86.5f) * static_cast<float>(i) / 2000000.0f;
    double want = std::exp(static_cast<double>(x));
    double got = cpu::detail::expFast(x);
    worst = std::max(worst, std::fabs(got - want) / want);
  }
  EXPECT_LT(worst, 3e-7); // ~2 ulp
  EXPECT_EQ(cpu::detail::expFast(0.0f), 1.0f);
  EXPECT_EQ(cpu::detail::expFast(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_EQ(cpu::detail::expFast(-3.4e38f), 0.0f);
  EXPECT_LT(cpu::detail::expFast(-87.0f), 3e-38f);
  EXPECT_EQ(cpu::detail::expFast(89.0f), std::numeric_limits<float>::infinity());
  EXPECT_EQ(cpu::detail::expFast(std::numeric_limits<float>::infinity()),
            std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(cpu::detail::expFast(std::nanf(""))));
}

TEST(CpuFastPath, UnaryThreaded) {
  const int64_t n = 300001;
  std::vector<float> x = randomFloats(n, -30, 30, 1), y(n);
  struct Case {
    UnaryOp op;
    double (*f)(double);
  };
  for (Case c : {Case{UnaryOp::Exp, [](double v) { return std::exp(v); }},
                 Case{UnaryOp::Sigmoid, [](double v) { return 1 / (1 + std::exp(-v)); }},
                 Case{UnaryOp::Silu, [](double v) { return v / (1 + std::exp(-v)); }},
                 Case{UnaryOp::Neg, [](double v) { return -v; }}}) {
    SCOPED_TRACE(static_cast<int>(c.op));
    cpu::unary(c.op, ref(x, {n}), ref(y, {n}));
    for (int64_t i = 0; i < n; ++i) {
      double want = c.f(x[i]);
      ASSERT_LE(std::fabs(y[i] - want), 1e-30 + 5e-7 * std::fabs(want)) << "at " << i;
    }
  }
  std::vector<float> z = x; // in place
  cpu::unary(UnaryOp::Sigmoid, ref(z, {n}), ref(z, {n}));
  for (int64_t i = 0; i < n; i += 997)
    ASSERT_LE(std::fabs(z[i] - 1 / (1 + std::exp(-double(x[i])))), 5e-7);
}

TEST(CpuFastPath, BinaryBroadcastLayouts) {
  std::vector<std::pair<Shape, Shape>> shapes = {
      {{1, 256, 640}, {1, 256, 640}}, {{640}, {1, 256, 640}},
      {{1, 256, 640}, {1, 256, 1}},   {{1, 10, 256, 256}, {1, 1, 256, 256}},
      {{1, 10, 256, 256}, {}},        {{}, {3, 70000}},
      {{4, 1, 300, 57}, {1, 7, 1, 57}}, {{2, 3, 40000}, {3, 1}},
      {{5, 1, 9000}, {5, 7, 1}},      {{1, 1}, {1}}};
  unsigned seed = 10;
  for (BinaryOp op : {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div}) {
    for (auto &[sa, sb] : shapes) {
      Shape so = *cpu::broadcastShapes(sa, sb);
      SCOPED_TRACE(shapeString(sa) + " " + shapeString(sb));
      std::vector<float> a = randomFloats(numElements(sa), 0.5f, 2, seed++);
      std::vector<float> b = randomFloats(numElements(sb), 0.5f, 2, seed++);
      std::vector<float> y(numElements(so));
      cpu::binary(op, ref(a, sa), ref(b, sb), ref(y, so));
      for (int64_t i = 0; i < numElements(so); ++i) {
        float u = a[broadcastOffset(i, so, sa)], v = b[broadcastOffset(i, so, sb)];
        float want = op == BinaryOp::Add   ? u + v
                     : op == BinaryOp::Sub ? u - v
                     : op == BinaryOp::Mul ? u * v
                                           : u / v;
        ASSERT_EQ(y[i], want) << "at " << i;
      }
    }
  }
  // In place over the full-size operand, and x^2.
  Shape s = {3, 50000};
  std::vector<float> x = randomFloats(150000, -2, 2, 99), x0 = x, two = {2.0f};
  std::vector<float> row = randomFloats(50000, -2, 2, 98);
  cpu::binary(BinaryOp::Add, ref(x, s), ref(row, {50000}), ref(x, s));
  for (int64_t i = 0; i < 150000; ++i)
    ASSERT_EQ(x[i], x0[i] + row[i % 50000]);
  cpu::binary(BinaryOp::Pow, ref(x0, s), ref(two, {}), ref(x, s));
  for (int64_t i = 0; i < 150000; ++i)
    ASSERT_EQ(x[i], x0[i] * x0[i]);
}

TEST(CpuFastPath, SoftmaxLastAxis) {
  Shape s = {2, 10, 256, 256};
  int64_t n = numElements(s), size = 256;
  std::vector<float> x = randomFloats(n, -8, 8, 5), y(n);
  // A causal mask as the exporters write it (finfo.min), and one all -inf row.
  for (int64_t r = 0; r < n / size; ++r)
    for (int64_t j = r % size + 1; j < size; ++j)
      x[r * size + j] += -3.4028234663852886e38f;
  for (int64_t j = 0; j < size; ++j)
    x[7 * size + j] = -std::numeric_limits<float>::infinity();
  cpu::softmax(ref(x, s), ref(y, s), 3, false);
  for (int64_t r = 0; r < n / size; ++r) {
    if (r == 7) {
      for (int64_t j = 0; j < size; ++j)
        ASSERT_TRUE(std::isnan(y[r * size + j])); // as the generic kernel: 0/0
      continue;
    }
    double mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < size; ++j)
      mx = std::max(mx, double(x[r * size + j]));
    for (int64_t j = 0; j < size; ++j)
      sum += std::exp(double(x[r * size + j]) - mx);
    for (int64_t j = 0; j < size; ++j) {
      double want = std::exp(double(x[r * size + j]) - mx) / sum;
      ASSERT_LE(std::fabs(y[r * size + j] - want), 1e-7 + 1e-6 * want)
          << "row " << r << " col " << j;
    }
  }
}

TEST(CpuFastPath, ReduceTrailingAxes) {
  Shape s = {4, 300, 5, 13};
  int64_t n = numElements(s);
  std::vector<float> x = randomFloats(n, -2, 2, 7);
  for (auto [axes, outShape] : std::vector<std::pair<Shape, Shape>>{
           {{3}, {4, 300, 5, 1}}, {{2, 3}, {4, 300, 1, 1}}, {{3, 2}, {4, 300}},
           {{1, 2, 3}, {4, 1, 1, 1}}}) {
    int64_t rows = numElements(outShape), size = n / rows;
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Mean}) {
      std::vector<float> y(rows);
      cpu::reduce(op, ref(x, s), ref(y, outShape), axes);
      for (int64_t r = 0; r < rows; ++r) {
        double sum = 0;
        for (int64_t i = 0; i < size; ++i)
          sum += x[r * size + i];
        if (op == ReduceOp::Mean)
          sum /= double(size);
        ASSERT_LE(std::fabs(y[r] - sum), 1e-6 + 1e-6 * std::fabs(sum));
      }
    }
  }
}
