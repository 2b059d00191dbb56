//===- ElementwiseTest.cpp - activations, rotary, dropout, embedding ------===//

#include "GpuTest.h"

#include "vlora/kernels/cuda/Elementwise.h"
#include "vlora/kernels/reference/Philox.h"

namespace vlora::kernels::cuda::test {
namespace {

using ElementwiseTest = GpuTest;

// Vectorised (8-element items, 16-byte aligned) with and without a scalar
// tail, several tiles, and sizes below one item.
const int64_t kSizes[] = {1, 7, 1000, 65537, (1 << 20) + 3};

TEST_F(ElementwiseTest, Gelu) {
  for (DType dtype : {DType::F32, DType::BF16})
    for (bool tanh : {false, true})
      for (int64_t n : kSizes) {
        SCOPED_TRACE(testing::Message() << "n=" << n << " tanh=" << tanh << " "
                                        << dtypeLabel(dtype));
        auto x = asStored(randomVector(n, 1, -6, 6), dtype);
        auto dy = asStored(randomVector(n, 2), dtype);
        std::vector<float> y(n), dx(n);
        ref::geluForward<float>(n, x.data(), tanh, y.data());
        ref::geluBackward<float>(n, x.data(), dy.data(), tanh, dx.data());
        DeviceBuffer dX = toDevice(x, dtype), dDy = toDevice(dy, dtype),
                     dY = toDevice(std::vector<float>(n), dtype),
                     dDx = toDevice(std::vector<float>(n), dtype);
        auto approx = tanh ? GeluApproximation::Tanh : GeluApproximation::None;
        VLORA_ASSERT_OK(geluForward(*ctx, n, dtype, dX.data(), approx,
                                    dY.data()));
        VLORA_ASSERT_OK(geluBackward(*ctx, n, dtype, dX.data(), dDy.data(),
                                     approx, dDx.data()));
        expectMatches("gelu y", dtype, fromDevice(dY, n, dtype), y, 1e-6,
                      1e-5);
        expectMatches("gelu dx", dtype, fromDevice(dDx, n, dtype), dx, 1e-6,
                      1e-5);
      }
}

TEST_F(ElementwiseTest, SiluGate) {
  for (DType dtype : {DType::F32, DType::BF16})
    for (int64_t n : kSizes) {
      SCOPED_TRACE(testing::Message() << "n=" << n << " " << dtypeLabel(dtype));
      auto gate = asStored(randomVector(n, 3, -8, 8), dtype);
      auto up = asStored(randomVector(n, 4), dtype);
      auto dy = asStored(randomVector(n, 5), dtype);
      std::vector<float> y(n), dg(n), du(n);
      ref::siluGateForward<float>(n, gate.data(), up.data(), y.data());
      ref::siluGateBackward<float>(n, gate.data(), up.data(), dy.data(),
                                   dg.data(), du.data());
      DeviceBuffer dG = toDevice(gate, dtype), dU = toDevice(up, dtype),
                   dDy = toDevice(dy, dtype),
                   dY = toDevice(std::vector<float>(n), dtype),
                   dDg = toDevice(std::vector<float>(n), dtype),
                   dDu = toDevice(std::vector<float>(n), dtype);
      VLORA_ASSERT_OK(
          siluGateForward(*ctx, n, dtype, dG.data(), dU.data(), dY.data()));
      VLORA_ASSERT_OK(siluGateBackward(*ctx, n, dtype, dG.data(), dU.data(),
                                       dDy.data(), dDg.data(), dDu.data()));
      expectMatches("siluGate y", dtype, fromDevice(dY, n, dtype), y, 1e-6,
                    1e-5);
      expectMatches("siluGate dgate", dtype, fromDevice(dDg, n, dtype), dg,
                    1e-6, 1e-5);
      expectMatches("siluGate dup", dtype, fromDevice(dDu, n, dtype), du, 1e-6,
                    1e-5);
    }
}

TEST_F(ElementwiseTest, Rotary) {
  struct Case {
    int64_t batch, seq, heads, headDim, rotaryDim;
    bool positions;
  };
  const Case cases[] = {{1, 1, 1, 2, 2, false},
                        {2, 13, 3, 64, 64, false},
                        {2, 9, 4, 80, 32, true},
                        {1, 33, 2, 128, 128, true},
                        // rotaryDim/2 = 10: not whole packs, scalar kernel
                        {2, 5, 2, 36, 20, true}};
  for (DType dtype : {DType::F32, DType::BF16})
    for (const Case &c : cases)
      for (bool inverse : {false, true}) {
        SCOPED_TRACE(testing::Message()
                     << "seq=" << c.seq << " headDim=" << c.headDim
                     << " rotaryDim=" << c.rotaryDim << " inverse=" << inverse
                     << " " << dtypeLabel(dtype));
        int64_t n = c.batch * c.seq * c.heads * c.headDim, half = c.rotaryDim / 2;
        int64_t maxPos = c.seq + 5;
        auto x = asStored(randomVector(n, 6), dtype);
        std::vector<float> cos(maxPos * half), sin(maxPos * half);
        for (int64_t p = 0; p < maxPos; ++p)
          for (int64_t j = 0; j < half; ++j) {
            double theta = p * std::pow(10000.0, -2.0 * j / c.rotaryDim);
            cos[p * half + j] = static_cast<float>(std::cos(theta));
            sin[p * half + j] = static_cast<float>(std::sin(theta));
          }
        std::vector<int32_t> positions(c.batch * c.seq);
        for (size_t i = 0; i < positions.size(); ++i)
          positions[i] = static_cast<int32_t>((i * 7 + 3) % maxPos);
        std::vector<float> y(n);
        ref::rotary<float>(c.batch, c.seq, c.heads, c.headDim, c.rotaryDim,
                           x.data(), cos.data(), sin.data(),
                           c.positions ? positions.data() : nullptr, inverse,
                           y.data());
        DeviceBuffer dX = toDevice(x, dtype), dCos = toDevice(cos, DType::F32),
                     dSin = toDevice(sin, DType::F32),
                     dPos = toDeviceRaw(positions),
                     dY = toDevice(std::vector<float>(n), dtype);
        RotaryShape shape{c.batch, c.seq,  c.heads, c.headDim,
                          c.rotaryDim, maxPos, dtype};
        VLORA_ASSERT_OK(rotary(*ctx, shape, dX.data(), dCos.as<float>(),
                               dSin.as<float>(),
                               c.positions ? dPos.as<int32_t>() : nullptr,
                               inverse, dY.data()));
        expectMatches("rotary", dtype, fromDevice(dY, n, dtype), y, 1e-6,
                      1e-5);
      }
}

TEST_F(ElementwiseTest, DropoutMaskMatchesCpu) {
  for (DType dtype : {DType::F32, DType::BF16})
    for (float p : {0.f, 0.1f, 0.5f, 1.f}) {
      SCOPED_TRACE(testing::Message() << "p=" << p << " " << dtypeLabel(dtype));
      const int64_t n = 100003;
      const uint64_t seed = 0x1234abcd5678ull, offset = 77;
      auto x = asStored(randomVector(n, 7, 0.5f, 1.5f), dtype);
      // The reference draws element i from offset i: shift by `offset`.
      std::vector<float> want(n);
      float scale = p < 1 ? 1.f / (1.f - p) : 0.f;
      for (int64_t i = 0; i < n; ++i)
        want[i] = philox::keep(seed, offset + i, p) ? x[i] * scale : 0.f;
      DeviceBuffer dX = toDevice(x, dtype),
                   dY = toDevice(std::vector<float>(n), dtype);
      VLORA_ASSERT_OK(
          dropout(*ctx, n, dtype, dX.data(), p, seed, offset, dY.data()));
      std::vector<float> got = fromDevice(dY, n, dtype);
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(got[i] == 0.f, want[i] == 0.f)
            << "mask differs from the CPU's at element " << i;
      expectMatches("dropout", dtype, got, want, 1e-6, 1e-6);
    }
}

TEST_F(ElementwiseTest, EmbeddingGatherScatter) {
  // dim 64: 16-byte packs; dim 37: elements.
  for (int64_t dim : {int64_t(37), int64_t(64)})
    for (DType dtype : {DType::F32, DType::BF16}) {
      SCOPED_TRACE(testing::Message()
                   << "dim=" << dim << " " << dtypeLabel(dtype));
      const int64_t vocab = 50, tokens = 301;
      auto table = asStored(randomVector(vocab * dim, 8), dtype);
      auto dout = asStored(randomVector(tokens * dim, 9), dtype);
      std::vector<int64_t> ids(tokens);
      for (int64_t t = 0; t < tokens; ++t)
        ids[t] = (t * 13 + 5) % vocab; // repeats: the scatter must add
      ids[7] = -1;                     // out of range: a zero row, no gradient
      ids[8] = vocab;
      // The references take ids in range: token 7 and 8 as id 0 with a zero
      // gradient row, then their output rows zeroed.
      std::vector<int64_t> refIds = ids;
      std::vector<float> refDout = dout;
      for (int64_t t : {7, 8}) {
        refIds[t] = 0;
        std::fill(refDout.begin() + t * dim, refDout.begin() + (t + 1) * dim,
                  0.f);
      }
      std::vector<float> out(tokens * dim), dtable(vocab * dim, 0.f);
      ref::embeddingForward<float>(tokens, dim, table.data(), refIds.data(),
                                   out.data());
      for (int64_t t : {7, 8})
        std::fill(out.begin() + t * dim, out.begin() + (t + 1) * dim, 0.f);
      ref::embeddingBackward<float>(tokens, dim, refDout.data(), refIds.data(),
                                    dtable.data());
      DeviceBuffer dTable = toDevice(table, dtype), dIds = toDeviceRaw(ids),
                   dOut = toDevice(std::vector<float>(tokens * dim), dtype),
                   dDout = toDevice(dout, dtype),
                   dDtable =
                       toDevice(std::vector<float>(vocab * dim), DType::F32);
      VLORA_ASSERT_OK(embeddingForward(*ctx, tokens, dim, vocab, dtype,
                                       dTable.data(), dIds.as<int64_t>(),
                                       dOut.data()));
      VLORA_ASSERT_OK(embeddingBackward(*ctx, tokens, dim, vocab, dtype,
                                        dDout.data(), dIds.as<int64_t>(),
                                        dDtable.as<float>()));
      expectClose("embedding gather", fromDevice(dOut, tokens * dim, dtype),
                  out, 0, 0);
      expectClose("embedding scatter-add",
                  fromDevice(dDtable, vocab * dim, DType::F32), dtable, 1e-5,
                  1e-5);
    }
}

TEST_F(ElementwiseTest, Convert) {
  const int64_t n = 1001;
  auto x = randomVector(n, 10, -100, 100);
  DeviceBuffer dX = toDevice(x, DType::F32),
               dB = toDevice(std::vector<float>(n), DType::BF16),
               dBack = toDevice(std::vector<float>(n), DType::F32);
  VLORA_ASSERT_OK(convert(*ctx, n, DType::F32, dX.data(), DType::BF16,
                          dB.data()));
  VLORA_ASSERT_OK(convert(*ctx, n, DType::BF16, dB.data(), DType::F32,
                          dBack.data()));
  expectClose("convert f32->bf16->f32", fromDevice(dBack, n, DType::F32),
              roundedToBF16(x), 0, 0);
}

// Element-aligned (not 16-byte aligned) tensors take the scalar loop; the
// outputs may also overwrite the inputs.
TEST_F(ElementwiseTest, MisalignedAndInPlace) {
  const int64_t n = 4099;
  for (DType dtype : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(dtypeLabel(dtype));
    auto gate = asStored(randomVector(n, 21, -8, 8), dtype);
    auto up = asStored(randomVector(n, 22), dtype);
    auto dy = asStored(randomVector(n, 23), dtype);
    std::vector<float> y(n), dx(n), dg(n), du(n);
    ref::geluForward<float>(n, gate.data(), true, y.data());
    ref::geluBackward<float>(n, gate.data(), dy.data(), true, dx.data());
    ref::siluGateBackward<float>(n, gate.data(), up.data(), dy.data(),
                                 dg.data(), du.data());
    ShiftedBuffer dG = toDeviceShifted(gate, dtype),
                  dU = toDeviceShifted(up, dtype),
                  dDy = toDeviceShifted(dy, dtype),
                  dY = toDeviceShifted(std::vector<float>(n), dtype),
                  dDx = toDeviceShifted(std::vector<float>(n), dtype);
    VLORA_ASSERT_OK(geluForward(*ctx, n, dtype, dG.data(),
                                GeluApproximation::Tanh, dY.data()));
    VLORA_ASSERT_OK(geluBackward(*ctx, n, dtype, dG.data(), dDy.data(),
                                 GeluApproximation::Tanh, dDx.data()));
    expectMatches("gelu y (misaligned)", dtype, fromDevice(dY, n, dtype), y,
                  1e-6, 1e-5);
    expectMatches("gelu dx (misaligned)", dtype, fromDevice(dDx, n, dtype), dx,
                  1e-6, 1e-5);
    // In place, aligned: dgate over gate, dup over up.
    DeviceBuffer aG = toDevice(gate, dtype), aU = toDevice(up, dtype),
                 aDy = toDevice(dy, dtype);
    VLORA_ASSERT_OK(siluGateBackward(*ctx, n, dtype, aG.data(), aU.data(),
                                     aDy.data(), aG.data(), aU.data()));
    expectMatches("siluGate dgate (in place)", dtype, fromDevice(aG, n, dtype),
                  dg, 1e-6, 1e-5);
    expectMatches("siluGate dup (in place)", dtype, fromDevice(aU, n, dtype),
                  du, 1e-6, 1e-5);
  }
}

// GELU at magnitudes where tanh saturates and v³ overflows fp32.
TEST_F(ElementwiseTest, GeluExtremeInputs) {
  std::vector<float> x = {-3e38f, -1e20f, -100.f, -20.f, -9.f,  -1e-30f, 0.f,
                          1e-30f, 9.f,    20.f,   100.f, 1e20f, 3e38f,   1e-3f};
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<float> dy(n, 1.f), y(n), dx(n);
  for (bool tanh : {false, true}) {
    SCOPED_TRACE(testing::Message() << "tanh=" << tanh);
    ref::geluForward<float>(n, x.data(), tanh, y.data());
    ref::geluBackward<float>(n, x.data(), dy.data(), tanh, dx.data());
    DeviceBuffer dX = toDevice(x, DType::F32), dDy = toDevice(dy, DType::F32),
                 dY = toDevice(std::vector<float>(n), DType::F32),
                 dDx = toDevice(std::vector<float>(n), DType::F32);
    auto approx = tanh ? GeluApproximation::Tanh : GeluApproximation::None;
    VLORA_ASSERT_OK(
        geluForward(*ctx, n, DType::F32, dX.data(), approx, dY.data()));
    VLORA_ASSERT_OK(geluBackward(*ctx, n, DType::F32, dX.data(), dDy.data(),
                                 approx, dDx.data()));
    expectClose("gelu y", fromDevice(dY, n, DType::F32), y, 1e-6, 1e-5);
    expectClose("gelu dx", fromDevice(dDx, n, DType::F32), dx, 1e-6, 1e-5);
  }
}

TEST_F(ElementwiseTest, RefusesBadShapes) {
  DeviceBuffer buffer;
  VLORA_ASSERT_OK(DeviceBuffer::allocate(256, buffer));
  RotaryShape shape{1, 4, 1, 64, 63, 4, DType::BF16};
  expectRefused(rotary(*ctx, shape, buffer.data(), buffer.as<float>(),
                       buffer.as<float>(), nullptr, false, buffer.data()),
                "rotary [batch=1, seq=4", "rotaryDim must be even");
  expectRefused(dropout(*ctx, 8, DType::F32, buffer.data(), 1.5f, 0, 0,
                        buffer.data()),
                "dropout", "p must be in [0, 1]");
}

} // namespace
} // namespace vlora::kernels::cuda::test
