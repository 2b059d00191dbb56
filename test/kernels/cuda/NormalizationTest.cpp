//===- NormalizationTest.cpp - norms and softmax vs the references --------===//

#include "GpuTest.h"

#include "vlora/kernels/cuda/Normalization.h"

namespace vlora::kernels::cuda::test {
namespace {

using NormalizationTest = GpuTest;

// Whole 16-byte packs take the register kernels: each row-group size
// (1..8 packs per thread over 32..512 threads; bf16 / fp32 packs hold 8 / 4
// elements), partly filled last blocks (300, 130, 2050 rows), rows past the
// backward passes' bf16 limit (24576). Others (1, 7, 4099) take the scalar
// kernels.
const int64_t kShapes[][2] = {{1, 1},     {3, 7},    {5, 64},    {17, 1000},
                              {4, 4099},  {300, 96}, {33, 512},  {130, 2048},
                              {9, 4096},  {3, 8192}, {2, 16384}, {2, 24576},
                              {2050, 128}};

TEST_F(NormalizationTest, LayerNormForwardBackward) {
  for (DType dtype : {DType::F32, DType::BF16})
    for (auto [rows, cols] : kShapes) {
      SCOPED_TRACE(testing::Message() << "rows=" << rows << " cols=" << cols
                                      << " " << dtypeLabel(dtype));
      size_t n = rows * cols;
      auto x = asStored(randomVector(n, 1, -2, 3), dtype);
      auto dy = asStored(randomVector(n, 2), dtype);
      auto gamma = randomVector(cols, 3, 0.5f, 1.5f);
      auto beta = randomVector(cols, 4);
      std::vector<float> y(n), mean(rows), rstd(rows), dx(n), dg(cols),
          db(cols);
      ref::layerNormForward<float>(rows, cols, x.data(), gamma.data(),
                                   beta.data(), 1e-5f, y.data(), mean.data(),
                                   rstd.data());
      ref::layerNormBackward<float>(rows, cols, dy.data(), x.data(),
                                    gamma.data(), mean.data(), rstd.data(),
                                    dx.data(), dg.data(), db.data());
      DeviceBuffer dX = toDevice(x, dtype), dDy = toDevice(dy, dtype),
                   dGamma = toDevice(gamma, DType::F32),
                   dBeta = toDevice(beta, DType::F32),
                   dY = toDevice(std::vector<float>(n), dtype),
                   dMean = toDevice(std::vector<float>(rows), DType::F32),
                   dRstd = toDevice(std::vector<float>(rows), DType::F32),
                   dDx = toDevice(std::vector<float>(n), dtype),
                   dDg = toDevice(std::vector<float>(cols), DType::F32),
                   dDb = toDevice(std::vector<float>(cols), DType::F32);
      RowsShape shape{rows, cols, dtype};
      VLORA_ASSERT_OK(layerNormForward(*ctx, shape, dX.data(),
                                       dGamma.as<float>(), dBeta.as<float>(),
                                       1e-5f, dY.data(), dMean.as<float>(),
                                       dRstd.as<float>()));
      VLORA_ASSERT_OK(layerNormBackward(
          *ctx, shape, dDy.data(), dX.data(), dGamma.as<float>(),
          dMean.as<float>(), dRstd.as<float>(), dDx.data(), dDg.as<float>(),
          dDb.as<float>()));
      VLORA_ASSERT_OK(ctx->synchronize());
      expectMatches("layerNorm y", dtype, fromDevice(dY, n, dtype), y, 1e-5,
                    1e-5);
      expectClose("layerNorm mean", fromDevice(dMean, rows, DType::F32), mean,
                  1e-5, 1e-5);
      expectClose("layerNorm rstd", fromDevice(dRstd, rows, DType::F32), rstd,
                  1e-5, 1e-4);
      expectMatches("layerNorm dx", dtype, fromDevice(dDx, n, dtype), dx,
                    1e-4, 1e-4);
      expectClose("layerNorm dgamma", fromDevice(dDg, cols, DType::F32), dg,
                  1e-4 * rows, 1e-4);
      expectClose("layerNorm dbeta", fromDevice(dDb, cols, DType::F32), db,
                  1e-5 * rows, 1e-5);
    }
}

// dgamma / dbeta are summed per chunk of rows and then in chunk order (no
// atomics): two runs give the same bits, and a second run accumulates
// exactly twice the first's (+=, a sum of two equal floats is exact).
TEST_F(NormalizationTest, ParameterGradientsAreDeterministic) {
  for (DType dtype : {DType::F32, DType::BF16})
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{4099, 96},
                              {2050, 128},
                              {777, 1000}}) {
      SCOPED_TRACE(testing::Message() << "rows=" << rows << " cols=" << cols
                                      << " " << dtypeLabel(dtype));
      size_t n = rows * cols;
      auto x = asStored(randomVector(n, 5, -2, 3), dtype);
      auto dy = asStored(randomVector(n, 6), dtype);
      auto gamma = randomVector(cols, 7, 0.5f, 1.5f);
      DeviceBuffer dX = toDevice(x, dtype), dDy = toDevice(dy, dtype),
                   dGamma = toDevice(gamma, DType::F32),
                   dY = toDevice(std::vector<float>(n), dtype),
                   dMean = toDevice(std::vector<float>(rows), DType::F32),
                   dRstd = toDevice(std::vector<float>(rows), DType::F32),
                   dDx = toDevice(std::vector<float>(n), dtype);
      RowsShape shape{rows, cols, dtype};
      VLORA_ASSERT_OK(layerNormForward(*ctx, shape, dX.data(), dGamma.as<float>(),
                                       nullptr, 1e-5f, dY.data(), dMean.as<float>(),
                                       dRstd.as<float>()));
      std::vector<std::vector<float>> dg, db;
      for (int run = 0; run < 2; ++run) {
        DeviceBuffer dDg = toDevice(std::vector<float>(cols), DType::F32),
                     dDb = toDevice(std::vector<float>(cols), DType::F32);
        VLORA_ASSERT_OK(layerNormBackward(*ctx, shape, dDy.data(), dX.data(),
                                          dGamma.as<float>(), dMean.as<float>(),
                                          dRstd.as<float>(), dDx.data(),
                                          dDg.as<float>(), dDb.as<float>()));
        if (run == 1)
          VLORA_ASSERT_OK(layerNormBackward(*ctx, shape, dDy.data(), dX.data(),
                                            dGamma.as<float>(), dMean.as<float>(),
                                            dRstd.as<float>(), dDx.data(),
                                            dDg.as<float>(), dDb.as<float>()));
        VLORA_ASSERT_OK(ctx->synchronize());
        dg.push_back(fromDevice(dDg, cols, DType::F32));
        db.push_back(fromDevice(dDb, cols, DType::F32));
      }
      for (int64_t c = 0; c < cols; ++c) {
        ASSERT_EQ(dg[1][c], 2 * dg[0][c]) << "dgamma column " << c;
        ASSERT_EQ(db[1][c], 2 * db[0][c]) << "dbeta column " << c;
      }
    }
}

TEST_F(NormalizationTest, RmsNormForwardBackward) {
  for (DType dtype : {DType::F32, DType::BF16})
    for (auto [rows, cols] : kShapes) {
      SCOPED_TRACE(testing::Message() << "rows=" << rows << " cols=" << cols
                                      << " " << dtypeLabel(dtype));
      size_t n = rows * cols;
      auto x = asStored(randomVector(n, 5, -2, 3), dtype);
      auto dy = asStored(randomVector(n, 6), dtype);
      auto gamma = randomVector(cols, 7, 0.5f, 1.5f);
      std::vector<float> y(n), rstd(rows), dx(n), dg(cols);
      ref::rmsNormForward<float>(rows, cols, x.data(), gamma.data(), 1e-6f,
                                 y.data(), rstd.data());
      ref::rmsNormBackward<float>(rows, cols, dy.data(), x.data(),
                                  gamma.data(), rstd.data(), dx.data(),
                                  dg.data());
      DeviceBuffer dX = toDevice(x, dtype), dDy = toDevice(dy, dtype),
                   dGamma = toDevice(gamma, DType::F32),
                   dY = toDevice(std::vector<float>(n), dtype),
                   dRstd = toDevice(std::vector<float>(rows), DType::F32),
                   dDx = toDevice(std::vector<float>(n), dtype),
                   dDg = toDevice(std::vector<float>(cols), DType::F32);
      RowsShape shape{rows, cols, dtype};
      VLORA_ASSERT_OK(rmsNormForward(*ctx, shape, dX.data(),
                                     dGamma.as<float>(), 1e-6f, dY.data(),
                                     dRstd.as<float>()));
      VLORA_ASSERT_OK(rmsNormBackward(*ctx, shape, dDy.data(), dX.data(),
                                      dGamma.as<float>(), dRstd.as<float>(),
                                      dDx.data(), dDg.as<float>()));
      VLORA_ASSERT_OK(ctx->synchronize());
      expectMatches("rmsNorm y", dtype, fromDevice(dY, n, dtype), y, 1e-5,
                    1e-5);
      expectMatches("rmsNorm dx", dtype, fromDevice(dDx, n, dtype), dx, 1e-4,
                    1e-4);
      expectClose("rmsNorm dgamma", fromDevice(dDg, cols, DType::F32), dg,
                  1e-4 * rows, 1e-4);
    }
}

TEST_F(NormalizationTest, SoftmaxForwardBackward) {
  for (DType dtype : {DType::F32, DType::BF16})
    for (auto [rows, cols] : kShapes) {
      SCOPED_TRACE(testing::Message() << "rows=" << rows << " cols=" << cols
                                      << " " << dtypeLabel(dtype));
      size_t n = rows * cols;
      auto x = asStored(randomVector(n, 8, -5, 5), dtype);
      auto dy = asStored(randomVector(n, 9), dtype);
      std::vector<float> y(n), dx(n);
      ref::softmaxForward<float>(rows, cols, x.data(), 0.5f, y.data());
      // The backward pass reads the stored y.
      std::vector<float> yStored = asStored(y, dtype);
      ref::softmaxBackward<float>(rows, cols, yStored.data(), dy.data(), 0.5f,
                                  dx.data());
      DeviceBuffer dX = toDevice(x, dtype), dDy = toDevice(dy, dtype),
                   dYs = toDevice(yStored, dtype),
                   dY = toDevice(std::vector<float>(n), dtype),
                   dDx = toDevice(std::vector<float>(n), dtype);
      RowsShape shape{rows, cols, dtype};
      VLORA_ASSERT_OK(softmaxForward(*ctx, shape, dX.data(), 0.5f, dY.data()));
      VLORA_ASSERT_OK(softmaxBackward(*ctx, shape, dYs.data(), dDy.data(),
                                      0.5f, dDx.data()));
      VLORA_ASSERT_OK(ctx->synchronize());
      expectMatches("softmax y", dtype, fromDevice(dY, n, dtype), y, 1e-6,
                    1e-5);
      expectMatches("softmax dx", dtype, fromDevice(dDx, n, dtype), dx, 1e-6,
                    1e-4);
    }
}

// Tensors one element off 16-byte alignment (and gamma one float off) take
// the scalar kernels at a size that would otherwise be held in registers.
TEST_F(NormalizationTest, MisalignedTensorsTakeScalarKernels) {
  const int64_t rows = 6, cols = 4096;
  for (DType dtype : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(dtypeLabel(dtype));
    size_t n = rows * cols;
    auto x = asStored(randomVector(n, 11, -2, 3), dtype);
    auto dy = asStored(randomVector(n, 12), dtype);
    auto gamma = randomVector(cols, 13, 0.5f, 1.5f);
    auto beta = randomVector(cols, 14);
    std::vector<float> y(n), mean(rows), rstd(rows), dx(n), dg(cols), db(cols),
        sm(n);
    ref::layerNormForward<float>(rows, cols, x.data(), gamma.data(),
                                 beta.data(), 1e-5f, y.data(), mean.data(),
                                 rstd.data());
    ref::layerNormBackward<float>(rows, cols, dy.data(), x.data(), gamma.data(),
                                  mean.data(), rstd.data(), dx.data(),
                                  dg.data(), db.data());
    ref::softmaxForward<float>(rows, cols, x.data(), 0.5f, sm.data());
    ShiftedBuffer dX = toDeviceShifted(x, dtype),
                  dDy = toDeviceShifted(dy, dtype),
                  dGamma = toDeviceShifted(gamma, DType::F32),
                  dY = toDeviceShifted(std::vector<float>(n), dtype),
                  dDx = toDeviceShifted(std::vector<float>(n), dtype),
                  dSm = toDeviceShifted(std::vector<float>(n), dtype);
    DeviceBuffer dBeta = toDevice(beta, DType::F32),
                 dMean = toDevice(std::vector<float>(rows), DType::F32),
                 dRstd = toDevice(std::vector<float>(rows), DType::F32),
                 dDg = toDevice(std::vector<float>(cols), DType::F32),
                 dDb = toDevice(std::vector<float>(cols), DType::F32);
    RowsShape shape{rows, cols, dtype};
    VLORA_ASSERT_OK(layerNormForward(*ctx, shape, dX.data(), dGamma.as<float>(),
                                     dBeta.as<float>(), 1e-5f, dY.data(),
                                     dMean.as<float>(), dRstd.as<float>()));
    VLORA_ASSERT_OK(layerNormBackward(*ctx, shape, dDy.data(), dX.data(),
                                      dGamma.as<float>(), dMean.as<float>(),
                                      dRstd.as<float>(), dDx.data(),
                                      dDg.as<float>(), dDb.as<float>()));
    VLORA_ASSERT_OK(softmaxForward(*ctx, shape, dX.data(), 0.5f, dSm.data()));
    VLORA_ASSERT_OK(ctx->synchronize());
    expectMatches("layerNorm y", dtype, fromDevice(dY, n, dtype), y, 1e-5,
                  1e-5);
    expectMatches("layerNorm dx", dtype, fromDevice(dDx, n, dtype), dx, 1e-4,
                  1e-4);
    expectClose("layerNorm dgamma", fromDevice(dDg, cols, DType::F32), dg,
                1e-4 * rows, 1e-4);
    expectClose("layerNorm dbeta", fromDevice(dDb, cols, DType::F32), db,
                1e-5 * rows, 1e-5);
    expectMatches("softmax y", dtype, fromDevice(dSm, n, dtype), sm, 1e-6,
                  1e-5);
  }
}

// dx may alias dy (rmsNormBackward) and y may alias x (softmaxForward).
TEST_F(NormalizationTest, InPlaceRowKernels) {
  for (int64_t cols : {int64_t(4096), int64_t(1000), int64_t(33)})
    for (DType dtype : {DType::F32, DType::BF16}) {
      SCOPED_TRACE(testing::Message()
                   << "cols=" << cols << " " << dtypeLabel(dtype));
      const int64_t rows = 5;
      size_t n = rows * cols;
      auto x = asStored(randomVector(n, 15, -2, 3), dtype);
      auto dy = asStored(randomVector(n, 16), dtype);
      auto gamma = randomVector(cols, 17, 0.5f, 1.5f);
      std::vector<float> y(n), rstd(rows), dx(n), dg(cols), sm(n);
      ref::rmsNormForward<float>(rows, cols, x.data(), gamma.data(), 1e-6f,
                                 y.data(), rstd.data());
      ref::rmsNormBackward<float>(rows, cols, dy.data(), x.data(), gamma.data(),
                                  rstd.data(), dx.data(), dg.data());
      ref::softmaxForward<float>(rows, cols, x.data(), 1.f, sm.data());
      DeviceBuffer dX = toDevice(x, dtype), dDy = toDevice(dy, dtype),
                   dSm = toDevice(x, dtype),
                   dGamma = toDevice(gamma, DType::F32),
                   dY = toDevice(std::vector<float>(n), dtype),
                   dRstd = toDevice(std::vector<float>(rows), DType::F32);
      RowsShape shape{rows, cols, dtype};
      VLORA_ASSERT_OK(rmsNormForward(*ctx, shape, dX.data(), dGamma.as<float>(),
                                     1e-6f, dY.data(), dRstd.as<float>()));
      VLORA_ASSERT_OK(rmsNormBackward(*ctx, shape, dDy.data(), dX.data(),
                                      dGamma.as<float>(), dRstd.as<float>(),
                                      dDy.data(), nullptr));
      VLORA_ASSERT_OK(softmaxForward(*ctx, shape, dSm.data(), 1.f, dSm.data()));
      VLORA_ASSERT_OK(ctx->synchronize());
      expectMatches("rmsNorm dx in place", dtype, fromDevice(dDy, n, dtype), dx,
                    1e-4, 1e-4);
      expectMatches("softmax in place", dtype, fromDevice(dSm, n, dtype), sm,
                    1e-6, 1e-5);
    }
}

TEST_F(NormalizationTest, RefusesBadShapes) {
  RowsShape shape{0, 8, DType::F32};
  DeviceBuffer buffer;
  VLORA_ASSERT_OK(DeviceBuffer::allocate(256, buffer));
  expectRefused(rmsNormForward(*ctx, shape, buffer.data(), buffer.as<float>(),
                               1e-6f, buffer.data(), nullptr),
                "rmsNormForward [rows=0, cols=8", "positive");
  shape = RowsShape{2, 8, DType::I32};
  expectRefused(softmaxForward(*ctx, shape, buffer.data(), 1.f, buffer.data()),
                "softmaxForward", "f32 or bf16");
}

} // namespace
} // namespace vlora::kernels::cuda::test
