//===- GemmTest.cpp - cuBLASLt GEMM and LoRA linear vs the references -----===//

#include "GpuTest.h"

#include "vlora/kernels/cuda/Gemm.h"

namespace vlora::kernels::cuda::test {
namespace {

using GemmTest = GpuTest;

struct GemmCase {
  int64_t m, n, k;
  bool transA, transB;
  bool bias;
  float beta;
};

/// Rounds every element when `bf16`.
std::vector<float> maybeRound(std::vector<float> v, bool bf16) {
  return bf16 ? roundedToBF16(std::move(v)) : v;
}

TEST_F(GemmTest, MatchesReferenceOverShapes) {
  const GemmCase cases[] = {{1, 1, 1, false, false, false, 0},
                            {17, 33, 9, false, false, true, 0},
                            {64, 48, 128, true, false, false, 1},
                            {31, 7, 65, false, true, true, 1},
                            {5, 129, 40, true, true, false, 0.5f},
                            {128, 96, 256, false, true, true, 0}};
  struct Types {
    DType in, out;
  };
  for (Types types : {Types{DType::F32, DType::F32},
                      Types{DType::BF16, DType::F32},
                      Types{DType::BF16, DType::BF16}}) {
    bool bf16In = types.in == DType::BF16, bf16Out = types.out == DType::BF16;
    for (const GemmCase &c : cases) {
      SCOPED_TRACE(testing::Message()
                   << "m=" << c.m << " n=" << c.n << " k=" << c.k
                   << " transA=" << c.transA << " transB=" << c.transB
                   << " in=" << dtypeLabel(types.in)
                   << " out=" << dtypeLabel(types.out));
      auto a = maybeRound(randomVector(c.m * c.k, 1), bf16In);
      auto b = maybeRound(randomVector(c.k * c.n, 2), bf16In);
      auto d0 = maybeRound(randomVector(c.m * c.n, 3), bf16Out);
      auto bias = maybeRound(randomVector(c.n, 4), bf16Out);
      DeviceBuffer da = toDevice(a, types.in), db = toDevice(b, types.in),
                   dd = toDevice(d0, types.out),
                   dbias = toDevice(bias, types.out);
      GemmArgs args;
      args.m = c.m;
      args.n = c.n;
      args.k = c.k;
      args.a = {da.data(), types.in, c.transA ? c.m : c.k, 0, c.transA};
      args.b = {db.data(), types.in, c.transB ? c.k : c.n, 0, c.transB};
      args.d = dd.data();
      args.dDtype = types.out;
      args.ldd = c.n;
      args.alpha = 0.75f;
      args.beta = c.beta;
      args.bias = c.bias ? dbias.data() : nullptr;
      VLORA_ASSERT_OK(gemm(*ctx, args));
      VLORA_ASSERT_OK(ctx->synchronize());
      std::vector<float> got = fromDevice(dd, c.m * c.n, types.out);
      std::vector<float> want = d0;
      ref::gemm<float>(c.m, c.n, c.k, a.data(), c.transA, b.data(), c.transB,
                       want.data(), 0.75f, c.beta,
                       c.bias ? bias.data() : nullptr);
      if (!bf16Out) {
        // fp32 accumulation of k products of |x| <= 1.
        expectClose("gemm", got, want, 1e-5 * c.k, 1e-5);
      } else {
        expectFlashRule("gemm", got, roundedToBF16(want), want);
      }
    }
  }
}

TEST_F(GemmTest, Batched) {
  const int64_t batch = 3, m = 19, n = 23, k = 37;
  auto a = randomVector(batch * m * k, 5), b = randomVector(batch * k * n, 6);
  DeviceBuffer da = toDevice(a, DType::F32), db = toDevice(b, DType::F32),
               dd = toDevice(std::vector<float>(batch * m * n), DType::F32);
  GemmArgs args;
  args.m = m;
  args.n = n;
  args.k = k;
  args.batch = batch;
  args.a = {da.data(), DType::F32, k, m * k, false};
  args.b = {db.data(), DType::F32, n, k * n, false};
  args.d = dd.data();
  args.dDtype = DType::F32;
  args.ldd = n;
  args.batchStrideD = m * n;
  VLORA_ASSERT_OK(gemm(*ctx, args));
  std::vector<float> got = fromDevice(dd, batch * m * n, DType::F32);
  std::vector<float> want(batch * m * n);
  for (int64_t i = 0; i < batch; ++i)
    ref::gemm<float>(m, n, k, a.data() + i * m * k, false,
                     b.data() + i * k * n, false, want.data() + i * m * n, 1.f,
                     0.f);
  expectClose("batched gemm", got, want, 1e-4, 1e-5);
}

TEST_F(GemmTest, RefusesBadShapesWithTheShapeInTheMessage) {
  DeviceBuffer buffer;
  VLORA_ASSERT_OK(DeviceBuffer::allocate(1024, buffer));
  GemmArgs args;
  args.m = 4;
  args.n = 4;
  args.k = 4;
  args.a = {buffer.data(), DType::BF16, 4, 0, false};
  args.b = {buffer.data(), DType::F32, 4, 0, false};
  args.d = buffer.data();
  args.dDtype = DType::F32;
  args.ldd = 4;
  expectRefused(gemm(*ctx, args), "gemm [m=4, n=4, k=4", "supported types");
  args.b.dtype = DType::BF16;
  args.a.ld = 2;
  expectRefused(gemm(*ctx, args), "gemm", "leading dimension");
  args.a.ld = 4;
  args.a.data = static_cast<char *>(buffer.data()) + 1;
  expectRefused(gemm(*ctx, args), "gemm", "aligned");
}

//===----------------------------------------------------------------------===//
// LoRA linear
//===----------------------------------------------------------------------===//

struct LoraCase {
  int64_t m, k, n, r;
  bool transposeW;
};

/// The padded buffers of Gemm.h filled from x, W, dy.
struct LoraBuffers {
  std::vector<float> xPad, wPad, dyPad;
};

LoraBuffers padLora(const LoraCase &c, const std::vector<float> &x,
                    const std::vector<float> &w, const std::vector<float> &dy) {
  LoraBuffers p;
  p.xPad.assign(c.m * (c.k + c.r), 0.f);
  p.dyPad.assign(c.m * (c.n + c.r), 0.f);
  for (int64_t i = 0; i < c.m; ++i) {
    std::copy(x.begin() + i * c.k, x.begin() + (i + 1) * c.k,
              p.xPad.begin() + i * (c.k + c.r));
    std::copy(dy.begin() + i * c.n, dy.begin() + (i + 1) * c.n,
              p.dyPad.begin() + i * (c.n + c.r));
  }
  int64_t rows = c.transposeW ? c.n : c.k, cols = c.transposeW ? c.k : c.n;
  p.wPad.assign((rows + c.r) * (cols + c.r), 0.f);
  for (int64_t i = 0; i < rows; ++i)
    std::copy(w.begin() + i * cols, w.begin() + (i + 1) * cols,
              p.wPad.begin() + i * (cols + c.r));
  return p;
}

/// The LoRA computation done in bf16 the way the GPU does it (inputs and
/// the rank-r intermediates rounded to bf16, fp32 accumulation).
void loraBF16Reference(const LoraCase &c, float scale,
                       const std::vector<float> &x, const std::vector<float> &w,
                       const std::vector<float> &a, const std::vector<float> &b,
                       const std::vector<float> &dy, std::vector<float> &y,
                       std::vector<float> &dx, std::vector<float> &dA,
                       std::vector<float> &dB) {
  std::vector<float> ab = roundedToBF16(a), bb = roundedToBF16(b);
  std::vector<float> u(c.m * c.r), g(c.m * c.r);
  ref::gemm<float>(c.m, c.r, c.k, x.data(), false, ab.data(), true, u.data(),
                   scale, 0.f);
  u = roundedToBF16(u);
  y.assign(c.m * c.n, 0.f);
  ref::gemm<float>(c.m, c.n, c.k, x.data(), false, w.data(), c.transposeW,
                   y.data(), 1.f, 0.f);
  ref::gemm<float>(c.m, c.n, c.r, u.data(), false, bb.data(), true, y.data(),
                   1.f, 1.f);
  y = roundedToBF16(y);
  ref::gemm<float>(c.m, c.r, c.n, dy.data(), false, bb.data(), false, g.data(),
                   scale, 0.f);
  g = roundedToBF16(g);
  dx.assign(c.m * c.k, 0.f);
  ref::gemm<float>(c.m, c.k, c.n, dy.data(), false, w.data(), !c.transposeW,
                   dx.data(), 1.f, 0.f);
  ref::gemm<float>(c.m, c.k, c.r, g.data(), false, ab.data(), false, dx.data(),
                   1.f, 1.f);
  dx = roundedToBF16(dx);
  dA.assign(c.r * c.k, 0.f);
  ref::gemm<float>(c.r, c.k, c.m, g.data(), true, x.data(), false, dA.data(),
                   1.f, 0.f);
  dB.assign(c.n * c.r, 0.f);
  ref::gemm<float>(c.n, c.r, c.m, dy.data(), true, u.data(), false, dB.data(),
                   1.f, 0.f);
}

TEST_F(GemmTest, LoraLinearForwardBackwardMatchesReference) {
  // cuBLASLt for every product (r or a width not a multiple of 8), and the
  // tensor-core skinny kernels (r a multiple of 8 up to 64, widths multiples
  // of 8): row tails, several K tiles and row chunks, every rank tiling.
  const LoraCase cases[] = {
      {1, 8, 8, 1, false},       {37, 70, 52, 5, false},
      {37, 70, 52, 5, true},     {128, 256, 192, 16, false},
      {96, 128, 200, 8, true},   {33, 64, 64, 16, true},
      {1000, 320, 256, 32, false}, {515, 256, 136, 64, true},
      {700, 1024, 512, 16, false}, {64, 128, 64, 24, true},
      {300, 200, 96, 40, false},  {1, 64, 72, 8, false},
      {257, 72, 1160, 16, true},  {129, 1288, 40, 56, false}};
  const float scale = 2.0f;
  for (const LoraCase &c : cases) {
    SCOPED_TRACE(testing::Message() << "m=" << c.m << " k=" << c.k << " n="
                                    << c.n << " r=" << c.r
                                    << " transposeW=" << c.transposeW);
    auto x = roundedToBF16(randomVector(c.m * c.k, 10));
    auto w = roundedToBF16(randomVector(c.k * c.n, 11, -0.1f, 0.1f));
    auto a = randomVector(c.r * c.k, 12, -0.2f, 0.2f);
    auto b = randomVector(c.n * c.r, 13, -0.2f, 0.2f);
    auto dy = roundedToBF16(randomVector(c.m * c.n, 14));
    LoraBuffers pad = padLora(c, x, w, dy);
    DeviceBuffer dxPad = toDevice(pad.xPad, DType::BF16),
                 dwPad = toDevice(pad.wPad, DType::BF16),
                 ddyPad = toDevice(pad.dyPad, DType::BF16),
                 da = toDevice(a, DType::F32), db = toDevice(b, DType::F32),
                 dyOut = toDevice(std::vector<float>(c.m * c.n), DType::BF16),
                 ddx = toDevice(std::vector<float>(c.m * c.k), DType::BF16),
                 ddA = toDevice(std::vector<float>(c.r * c.k), DType::F32),
                 ddB = toDevice(std::vector<float>(c.n * c.r), DType::F32);
    LoraLinearShape shape{c.m, c.k, c.n, c.r, c.transposeW, scale};
    ctx->setLoraOverlap(c.m % 2 == 1); // dA, dB beside dx, or after it
    VLORA_ASSERT_OK(loraPackAdapters(*ctx, shape, da.as<float>(),
                                     db.as<float>(), dwPad.data()));
    VLORA_ASSERT_OK(loraLinearForward(*ctx, shape, dxPad.data(), dwPad.data(),
                                      dyOut.data(), DType::BF16));
    VLORA_ASSERT_OK(loraLinearBackward(*ctx, shape, dxPad.data(),
                                       dwPad.data(), ddyPad.data(), ddx.data(),
                                       ddA.as<float>(), ddB.as<float>()));
    VLORA_ASSERT_OK(ctx->synchronize());

    std::vector<float> y(c.m * c.n), dx(c.m * c.k), dA(c.r * c.k),
        dB(c.n * c.r);
    ref::loraLinearForward<float>(c.m, c.k, c.n, c.r, c.transposeW, scale,
                                  x.data(), w.data(), a.data(), b.data(),
                                  y.data());
    ref::loraLinearBackward<float>(c.m, c.k, c.n, c.r, c.transposeW, scale,
                                   x.data(), w.data(), a.data(), b.data(),
                                   dy.data(), dx.data(), dA.data(), dB.data());
    std::vector<float> yB, dxB, dAB, dBB;
    loraBF16Reference(c, scale, x, w, a, b, dy, yB, dxB, dAB, dBB);
    expectFlashRule("lora y", fromDevice(dyOut, c.m * c.n, DType::BF16), yB,
                    y);
    expectFlashRule("lora dx", fromDevice(ddx, c.m * c.k, DType::BF16), dxB,
                    dx);
    expectFlashRule("lora dA", fromDevice(ddA, c.r * c.k, DType::F32), dAB,
                    dA);
    expectFlashRule("lora dB", fromDevice(ddB, c.n * c.r, DType::F32), dBB,
                    dB);

    // Gradient accumulation: a second backward adds the same dA and dB.
    VLORA_ASSERT_OK(loraLinearBackward(
        *ctx, shape, dxPad.data(), dwPad.data(), ddyPad.data(), nullptr,
        ddA.as<float>(), ddB.as<float>(), false, /*accumulateGrads=*/true));
    VLORA_ASSERT_OK(ctx->synchronize());
    auto twice = [](std::vector<float> v) {
      for (float &e : v)
        e *= 2;
      return v;
    };
    expectFlashRule("lora dA accumulated",
                    fromDevice(ddA, c.r * c.k, DType::F32), twice(dAB),
                    twice(dA));
    expectFlashRule("lora dB accumulated",
                    fromDevice(ddB, c.n * c.r, DType::F32), twice(dBB),
                    twice(dB));
  }
}

TEST_F(GemmTest, LoraRefusesBadShapes) {
  DeviceBuffer buffer;
  VLORA_ASSERT_OK(DeviceBuffer::allocate(1024, buffer));
  LoraLinearShape shape{4, 8, 8, 0, false, 1.f};
  expectRefused(loraLinearForward(*ctx, shape, buffer.data(), buffer.data(),
                                  buffer.data(), DType::BF16),
                "loraLinearForward [m=4, k=8, n=8, r=0", "positive");
}

} // namespace
} // namespace vlora::kernels::cuda::test
