//===- GpuTest.h - the fixture and comparisons of the GPU tests -*- C++ -*-===//
//
// GpuTest skips (GTEST_SKIP, reported by ctest as skipped) when there is no
// usable CUDA device. Comparisons print the max abs/rel error and the first
// mismatch: fp32 results at fixed tolerances; bf16 results by the
// flash-attention rule (error <= 2x the error of the same math done in bf16
// by the reference, both measured against the fp32 reference).
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_TEST_KERNELS_CUDA_GPUTEST_H
#define VLORA_TEST_KERNELS_CUDA_GPUTEST_H

#include "vlora/kernels/cuda/Device.h"
#include "vlora/kernels/reference/Reference.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace vlora::kernels::cuda::test {

namespace ref = vlora::kernels::reference;

class GpuTest : public ::testing::Test {
protected:
  void SetUp() override {
    int count = 0;
    if (Status status = deviceCount(count); !status)
      GTEST_SKIP() << "GPU test skipped: " << status.message();
    Status created = Context::create(ctx);
    ASSERT_TRUE(created.ok()) << created.message();
  }
  std::unique_ptr<Context> ctx;
};

#define VLORA_ASSERT_OK(expr)                                                  \
  do {                                                                         \
    ::vlora::kernels::cuda::Status vlora_status = (expr);                      \
    ASSERT_TRUE(vlora_status.ok()) << vlora_status.message();                  \
  } while (0)

inline std::vector<float> randomVector(size_t n, uint32_t seed, float lo = -1,
                                       float hi = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> out(n);
  for (float &x : out)
    x = dist(rng);
  return out;
}

inline std::vector<float> roundedToBF16(std::vector<float> values) {
  for (float &x : values)
    x = ref::roundToBF16(x);
  return values;
}

/// A device copy of `values` stored as `dtype` (bf16 rounds to nearest).
inline DeviceBuffer toDevice(const std::vector<float> &values, DType dtype) {
  DeviceBuffer buffer;
  size_t bytes = values.size() * (dtype == DType::BF16 ? 2 : 4);
  Status status = DeviceBuffer::allocate(std::max<size_t>(bytes, 4), buffer);
  EXPECT_TRUE(status.ok()) << status.message();
  if (!status)
    return buffer;
  if (dtype == DType::BF16) {
    std::vector<uint16_t> bits(values.size());
    for (size_t i = 0; i < values.size(); ++i)
      bits[i] = ref::toBF16Bits(values[i]);
    status = buffer.upload(bits.data(), bytes);
  } else {
    status = buffer.upload(values.data(), bytes);
  }
  EXPECT_TRUE(status.ok()) << status.message();
  return buffer;
}

template <typename T>
inline DeviceBuffer toDeviceRaw(const std::vector<T> &values) {
  DeviceBuffer buffer;
  Status status = DeviceBuffer::allocate(
      std::max<size_t>(values.size() * sizeof(T), 4), buffer);
  EXPECT_TRUE(status.ok()) << status.message();
  if (status && !values.empty())
    status = buffer.upload(values.data(), values.size() * sizeof(T));
  EXPECT_TRUE(status.ok()) << status.message();
  return buffer;
}

inline std::vector<float> fromDevice(const DeviceBuffer &buffer, size_t n,
                                     DType dtype) {
  std::vector<float> out(n);
  if (dtype == DType::BF16) {
    std::vector<uint16_t> bits(n);
    Status status = buffer.download(bits.data(), n * 2);
    EXPECT_TRUE(status.ok()) << status.message();
    for (size_t i = 0; i < n; ++i)
      out[i] = ref::fromBF16Bits(bits[i]);
  } else {
    Status status = buffer.download(out.data(), n * 4);
    EXPECT_TRUE(status.ok()) << status.message();
  }
  return out;
}

struct ErrorStats {
  double maxAbs = 0, maxRel = 0;
  size_t worst = 0;
};

inline ErrorStats errorOf(const std::vector<float> &got,
                          const std::vector<float> &want) {
  ErrorStats stats;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    double abs = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (std::isnan(got[i]) != std::isnan(want[i]))
      abs = INFINITY;
    if (std::isnan(got[i]) && std::isnan(want[i]))
      abs = 0;
    double rel = abs / std::max(1e-30, std::fabs(static_cast<double>(want[i])));
    if (abs > stats.maxAbs) {
      stats.maxAbs = abs;
      stats.worst = i;
    }
    if (abs > 0)
      stats.maxRel = std::max(stats.maxRel, rel);
  }
  return stats;
}

inline std::string describe(const std::string &what, const ErrorStats &stats,
                            const std::vector<float> &got,
                            const std::vector<float> &want) {
  std::ostringstream out;
  out << what << ": max abs error " << stats.maxAbs << ", max rel error "
      << stats.maxRel;
  if (!got.empty() && stats.worst < got.size())
    out << ", worst at [" << stats.worst << "] got " << got[stats.worst]
        << " want " << want[stats.worst];
  return out.str();
}

/// fp32: |got - want| <= atol + rtol·|want| everywhere.
inline void expectClose(const std::string &what, const std::vector<float> &got,
                        const std::vector<float> &want, double atol,
                        double rtol) {
  ASSERT_EQ(got.size(), want.size()) << what;
  ErrorStats stats = errorOf(got, want);
  std::string summary = describe(what, stats, got, want);
  std::cout << "  " << summary << "\n";
  for (size_t i = 0; i < got.size(); ++i) {
    double tol = atol + rtol * std::fabs(static_cast<double>(want[i]));
    if (!(std::fabs(static_cast<double>(got[i]) - want[i]) <= tol)) {
      ADD_FAILURE() << summary << "; first mismatch at [" << i << "]: got "
                    << got[i] << ", want " << want[i] << " (atol " << atol
                    << ", rtol " << rtol << ")";
      return;
    }
  }
}

/// bf16: maxAbs(got - exact) <= 2·maxAbs(bf16Reference - exact) + floor.
/// `floor` absorbs results the bf16 reference reproduces exactly.
inline void expectFlashRule(const std::string &what,
                            const std::vector<float> &got,
                            const std::vector<float> &bf16Reference,
                            const std::vector<float> &exact,
                            double floor = 1e-6) {
  ASSERT_EQ(got.size(), exact.size()) << what;
  ErrorStats gpu = errorOf(got, exact), cpu = errorOf(bf16Reference, exact);
  std::string summary = describe(what + " (gpu vs fp32)", gpu, got, exact) +
                        "; bf16 reference: max abs error " +
                        std::to_string(cpu.maxAbs);
  std::cout << "  " << summary << "\n";
  double bound = 2 * cpu.maxAbs + floor;
  if (!(gpu.maxAbs <= bound)) {
    size_t first = 0;
    for (; first < got.size(); ++first)
      if (!(std::fabs(static_cast<double>(got[first]) - exact[first]) <= bound))
        break;
    ADD_FAILURE() << summary << "; bound " << bound << "; first mismatch at ["
                  << first << "]: got " << got[first] << ", want "
                  << exact[first];
  }
}

/// A result stored as `dtype` after fp32 math with one final rounding:
/// fixed tolerances for f32, the flash rule for bf16 (the bf16 reference is
/// the fp32 reference rounded once).
inline void expectMatches(const std::string &what, DType dtype,
                          const std::vector<float> &got,
                          const std::vector<float> &exact, double atol,
                          double rtol) {
  if (dtype == DType::F32)
    expectClose(what, got, exact, atol, rtol);
  else
    expectFlashRule(what, got, roundedToBF16(exact), exact);
}

/// A tensor `shift` elements into a device buffer: its pointer is only
/// element-aligned (for shift not a multiple of 16 bytes), which sends the
/// kernels down their scalar paths.
struct ShiftedBuffer {
  DeviceBuffer buffer;
  size_t shiftBytes = 0;
  void *data() const { return buffer.as<char>() + shiftBytes; }
  template <typename T> T *as() const { return static_cast<T *>(data()); }
};
inline ShiftedBuffer toDeviceShifted(const std::vector<float> &values,
                                     DType dtype, size_t shift = 1) {
  std::vector<float> padded(shift, 0.f);
  padded.insert(padded.end(), values.begin(), values.end());
  return {toDevice(padded, dtype), shift * (dtype == DType::BF16 ? 2 : 4)};
}
inline std::vector<float> fromDevice(const ShiftedBuffer &shifted, size_t n,
                                     DType dtype) {
  size_t shift = shifted.shiftBytes / (dtype == DType::BF16 ? 2 : 4);
  std::vector<float> all = fromDevice(shifted.buffer, n + shift, dtype);
  return std::vector<float>(all.begin() + shift, all.end());
}

/// Rounds when `dtype` is bf16 (inputs of a bf16 test).
inline std::vector<float> asStored(std::vector<float> values, DType dtype) {
  return dtype == DType::BF16 ? roundedToBF16(std::move(values)) : values;
}

/// A message check for the host API's refusals.
inline void expectRefused(const Status &status, const std::string &kernel,
                          const std::string &needle) {
  ASSERT_FALSE(status.ok()) << kernel << " accepted a bad input";
  EXPECT_NE(status.message().find(kernel), std::string::npos)
      << status.message();
  EXPECT_NE(status.message().find(needle), std::string::npos)
      << status.message();
}

inline const char *dtypeLabel(DType dtype) {
  return dtype == DType::BF16 ? "bf16" : "f32";
}

} // namespace vlora::kernels::cuda::test

#endif // VLORA_TEST_KERNELS_CUDA_GPUTEST_H
