//===- ValueComparisonTest.cpp - the differential check's comparison ------===//
//
// compareValues decides whether VLORA_CUDA_CHECK=cpu reports a step: fp32
// within 1e-4 relative + 1e-5 of the largest |expected|, bf16 1e-2, NaN
// equal to NaN, infinities exact, integers and bools exact.
//
//===----------------------------------------------------------------------===//

#include "runtime/ValueComparison.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

using namespace vlora::runtime;
using vlora::kernels::DType;

namespace {
template <typename T>
ValueDifference compare(const std::vector<T> &actual,
                        const std::vector<T> &expected, DType dtype) {
  return compareValues(actual.data(), expected.data(), dtype,
                       expected.size() * sizeof(T));
}
} // namespace

TEST(ValueComparison, F32WithinTolerance) {
  // atol = 1e-5 * 100 = 1e-3; element 0 may differ by 1e-3 + 1e-4 * 1.
  std::vector<float> expected = {1.0f, -100.0f, 0.0f};
  std::vector<float> actual = {1.0009f, -100.009f, 0.0009f};
  ValueDifference d = compare(actual, expected, DType::F32);
  EXPECT_EQ(d.elements, 3u);
  EXPECT_EQ(d.differing, 0u);
  EXPECT_NEAR(d.maxExpected, 100.0, 0);
  EXPECT_NEAR(d.atol, 1e-3, 1e-12);
  EXPECT_NEAR(d.maxError, 0.009, 1e-5);
}

TEST(ValueComparison, F32OutsideTolerance) {
  std::vector<float> expected = {1.0f, 2.0f, 3.0f, 4.0f};
  std::vector<float> actual = {1.0f, 2.01f, 3.0f, 4.5f};
  ValueDifference d = compare(actual, expected, DType::F32);
  EXPECT_EQ(d.differing, 2u);
  EXPECT_EQ(d.first, 1u);
  EXPECT_FLOAT_EQ(static_cast<float>(d.firstActual), 2.01f);
  EXPECT_FLOAT_EQ(static_cast<float>(d.firstExpected), 2.0f);
  EXPECT_NEAR(d.maxError, 0.5, 1e-6);
}

TEST(ValueComparison, NaNAndInfinity) {
  float nan = std::nanf(""), inf = INFINITY;
  ValueDifference same =
      compare<float>({nan, inf, -inf, 1}, {nan, inf, -inf, 1}, DType::F32);
  EXPECT_EQ(same.differing, 0u);
  EXPECT_NEAR(same.maxExpected, 1.0, 0); // infinities left out of the scale
  ValueDifference d = compare<float>({1, inf, 0}, {nan, -inf, nan}, DType::F32);
  EXPECT_EQ(d.differing, 3u);
  EXPECT_EQ(d.first, 0u);
}

TEST(ValueComparison, BF16) {
  // bf16 bits: 0x3f80 = 1.0, 0x3f81 = 1.0078125, 0x3f90 = 1.125.
  std::vector<uint16_t> expected = {0x3f80, 0x3f80};
  EXPECT_EQ(
      compare<uint16_t>({0x3f81, 0x3f80}, expected, DType::BF16).differing, 0u);
  ValueDifference d =
      compare<uint16_t>({0x3f80, 0x3f90}, expected, DType::BF16);
  EXPECT_EQ(d.differing, 1u);
  EXPECT_EQ(d.first, 1u);
  EXPECT_DOUBLE_EQ(d.firstActual, 1.125);
}

TEST(ValueComparison, F16) {
  // f16 bits: 0x3c00 = 1.0, 0xc000 = -2.0, 0x3800 = 0.5.
  ValueDifference d = compare<uint16_t>({0x3c00, 0xc000, 0x3c00},
                                        {0x3c00, 0xc000, 0x3800}, DType::F16);
  EXPECT_EQ(d.differing, 1u);
  EXPECT_DOUBLE_EQ(d.maxExpected, 2.0);
  EXPECT_DOUBLE_EQ(d.firstActual, 1.0);
  EXPECT_DOUBLE_EQ(d.firstExpected, 0.5);
}

TEST(ValueComparison, IntegersExactly) {
  // Large i64 values that are equal as doubles still differ.
  int64_t big = (int64_t(1) << 60);
  ValueDifference d = compare<int64_t>({big + 1, 7}, {big, 7}, DType::I64);
  EXPECT_EQ(d.differing, 1u);
  EXPECT_EQ(d.first, 0u);
  EXPECT_EQ(compare<int32_t>({-3, 4}, {-3, 4}, DType::I32).differing, 0u);
  EXPECT_EQ(compare<int32_t>({-3, 5}, {-3, 4}, DType::I32).differing, 1u);
}

TEST(ValueComparison, BoolsByTruthValue) {
  EXPECT_EQ(compare<uint8_t>({1, 0, 2}, {1, 0, 1}, DType::Bool).differing, 0u);
  EXPECT_EQ(compare<uint8_t>({1, 1}, {1, 0}, DType::Bool).differing, 1u);
}

TEST(ValueComparison, Unaligned) {
  // Values are read byte-wise: any address works.
  std::vector<uint8_t> a(1 + 2 * sizeof(float)), b(a.size());
  float x[2] = {1.5f, -2.5f};
  std::memcpy(a.data() + 1, x, sizeof(x));
  std::memcpy(b.data() + 1, x, sizeof(x));
  EXPECT_EQ(compareValues(a.data() + 1, b.data() + 1, DType::F32, sizeof(x))
                .differing,
            0u);
}
