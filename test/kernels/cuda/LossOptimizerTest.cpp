//===- LossOptimizerTest.cpp - cross-entropy, AdamW, global norm ----------===//

#include "GpuTest.h"

#include "vlora/kernels/cuda/Loss.h"
#include "vlora/kernels/cuda/Optimizer.h"

namespace vlora::kernels::cuda::test {
namespace {

using LossTest = GpuTest;
using OptimizerTest = GpuTest;

TEST_F(LossTest, CrossEntropyLossAndInPlaceGradient) {
  // Scalar kernel (vocab not whole packs: 1, 10, 1031), rows in registers
  // (1..8 packs per thread: 40, 4096, 12288, 32064 bf16), streamed rows
  // (32064 fp32, 65536).
  const int64_t shapes[][2] = {{1, 1},  {3, 10},   {7, 1031},  {5, 32064},
                               {3, 40}, {4, 4096}, {3, 12288}, {2, 65536}};
  for (DType dtype : {DType::F32, DType::BF16})
    for (auto [rows, vocab] : shapes) {
      SCOPED_TRACE(testing::Message() << "rows=" << rows << " vocab=" << vocab
                                      << " " << dtypeLabel(dtype));
      auto logits = asStored(randomVector(rows * vocab, 1, -8, 8), dtype);
      std::vector<int64_t> labels(rows);
      for (int64_t i = 0; i < rows; ++i)
        labels[i] = i == 1 ? -100 : (i * 7919) % vocab; // row 1 ignored
      const float gradScale = 1.f / 3;
      std::vector<float> losses(rows), grad(rows * vocab);
      ref::crossEntropy<float>(rows, vocab, logits.data(), labels.data(), -100,
                               gradScale, losses.data(), grad.data());
      DeviceBuffer dLogits = toDevice(logits, dtype), dLabels = toDeviceRaw(labels),
                   dLosses = toDevice(std::vector<float>(rows), DType::F32);
      VLORA_ASSERT_OK(crossEntropy(*ctx, rows, vocab, dtype, dLogits.data(),
                                   dLabels.as<int64_t>(), -100,
                                   dLosses.as<float>(), true, gradScale));
      expectClose("cross-entropy loss", fromDevice(dLosses, rows, DType::F32),
                  losses, 1e-5, 1e-5);
      expectMatches("cross-entropy dlogits", dtype,
                    fromDevice(dLogits, rows * vocab, dtype), grad, 1e-7,
                    1e-4);
    }
}

TEST_F(OptimizerTest, AdamWMultiTensorMatchesTorchSemantics) {
  // 30 tensors (more than one launch's list), one of them empty.
  const int ntensors = 30;
  std::vector<std::vector<float>> params, grads, m, v;
  std::vector<DeviceBuffer> dP, dG, dM, dV;
  std::vector<AdamWTensor> list;
  // Tensor 5 spans many chunks; tensor 8 starts one float off 16-byte
  // alignment (its chunks take the scalar path).
  std::vector<ShiftedBuffer> shifted;
  for (int t = 0; t < ntensors; ++t) {
    int64_t n = t == 3 ? 0 : t == 5 ? 100003 : 1 + (t * 977) % 5000;
    params.push_back(randomVector(n, 100 + t));
    grads.push_back(randomVector(n, 200 + t));
    m.push_back(std::vector<float>(n, 0.f));
    v.push_back(std::vector<float>(n, 0.f));
    if (t == 8) {
      for (const auto *values :
           {&params.back(), &grads.back(), &m.back(), &v.back()})
        shifted.push_back(toDeviceShifted(*values, DType::F32));
      dP.emplace_back();
      dG.emplace_back();
      dM.emplace_back();
      dV.emplace_back();
      list.push_back({shifted[0].as<float>(), shifted[1].as<float>(),
                      shifted[2].as<float>(), shifted[3].as<float>(), n});
      continue;
    }
    dP.push_back(toDevice(params.back(), DType::F32));
    dG.push_back(toDevice(grads.back(), DType::F32));
    dM.push_back(toDevice(m.back(), DType::F32));
    dV.push_back(toDevice(v.back(), DType::F32));
    list.push_back({dP.back().as<float>(), dG.back().as<float>(),
                    dM.back().as<float>(), dV.back().as<float>(), n});
  }
  AdamWConfig config{1e-2, 0.9, 0.999, 1e-8, 0.1};
  ref::AdamWConfig refConfig{1e-2, 0.9, 0.999, 1e-8, 0.1};
  const float clip = 0.5f;
  DeviceBuffer dClip = toDevice({clip}, DType::F32);
  for (int step = 1; step <= 3; ++step) {
    VLORA_ASSERT_OK(adamW(*ctx, list, config, step,
                          step == 2 ? dClip.as<float>() : nullptr));
    for (int t = 0; t < ntensors; ++t)
      ref::adamW<float>(static_cast<int64_t>(params[t].size()),
                        params[t].data(), grads[t].data(), m[t].data(),
                        v[t].data(), refConfig, step, step == 2 ? clip : 1.f);
  }
  for (int t = 0; t < ntensors; ++t) {
    size_t n = params[t].size();
    auto got = [&](const DeviceBuffer &buffer, int which) {
      return t == 8 ? fromDevice(shifted[which], n, DType::F32)
                    : fromDevice(buffer, n, DType::F32);
    };
    expectClose("adamW param " + std::to_string(t), got(dP[t], 0), params[t],
                1e-6, 1e-5);
    expectClose("adamW exp_avg " + std::to_string(t), got(dM[t], 2), m[t], 1e-7,
                1e-5);
    expectClose("adamW exp_avg_sq " + std::to_string(t), got(dV[t], 3), v[t],
                1e-9, 1e-5);
  }
}

TEST_F(OptimizerTest, GlobalNormAndClipCoefficient) {
  std::vector<std::vector<float>> tensors;
  std::vector<DeviceBuffer> device;
  std::vector<const float *> pointers;
  std::vector<const float *> hostPointers;
  std::vector<int64_t> sizes;
  // Tensor 9 starts one float off 16-byte alignment (scalar path).
  std::vector<ShiftedBuffer> shifted;
  shifted.reserve(1);
  for (int t = 0; t < 27; ++t) {
    int64_t n = t == 5 ? 0 : 1 + (t * 7001) % 70000;
    tensors.push_back(randomVector(n, 300 + t));
    if (t == 9) {
      shifted.push_back(toDeviceShifted(tensors.back(), DType::F32));
      device.emplace_back();
      pointers.push_back(shifted.back().as<float>());
      hostPointers.push_back(tensors.back().data());
      sizes.push_back(n);
      continue;
    }
    device.push_back(toDevice(tensors.back(), DType::F32));
    pointers.push_back(device.back().as<float>());
    hostPointers.push_back(tensors.back().data());
    sizes.push_back(n);
  }
  DeviceBuffer dSum = toDevice({0.f}, DType::F32),
               dCoef = toDevice({0.f}, DType::F32),
               dNorm = toDevice({0.f}, DType::F32);
  VLORA_ASSERT_OK(sumOfSquares(*ctx, pointers, sizes, dSum.as<float>()));
  VLORA_ASSERT_OK(clipCoefficient(*ctx, dSum.as<float>(), 1.0f,
                                  dCoef.as<float>(), dNorm.as<float>()));
  double want = ref::sumOfSquares<float>(hostPointers, sizes);
  expectClose("sum of squares", fromDevice(dSum, 1, DType::F32),
              {static_cast<float>(want)}, 0, 1e-5);
  float norm = static_cast<float>(std::sqrt(want));
  expectClose("global norm", fromDevice(dNorm, 1, DType::F32), {norm}, 0,
              1e-5);
  expectClose("clip coefficient", fromDevice(dCoef, 1, DType::F32),
              {std::min(1.f, 1.f / (norm + 1e-6f))}, 0, 1e-5);
  // Per-chunk partial sums added in a fixed order: every run the same bits.
  std::vector<float> first = fromDevice(dSum, 1, DType::F32);
  for (int run = 0; run < 3; ++run) {
    VLORA_ASSERT_OK(sumOfSquares(*ctx, pointers, sizes, dSum.as<float>()));
    EXPECT_EQ(fromDevice(dSum, 1, DType::F32)[0], first[0]) << "run " << run;
  }
}

TEST_F(OptimizerTest, RefusesBadInput) {
  expectRefused(adamW(*ctx, {}, AdamWConfig{}, 0), "adamW [tensors=0, step=0",
                "step must be >= 1");
  AdamWTensor bad{nullptr, nullptr, nullptr, nullptr, 10};
  expectRefused(adamW(*ctx, {bad}, AdamWConfig{}, 1), "adamW",
                "tensor 0 has a negative size or a null pointer");
}

} // namespace
} // namespace vlora::kernels::cuda::test
