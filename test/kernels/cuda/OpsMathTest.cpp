//===- OpsMathTest.cpp - the CUDA math/training op twins vs kernels::cpu --===//
//
// Every function of kernels/cuda/OpsMath.cu against its CPU twin on random
// inputs: odd shapes, broadcast batch dimensions, axes other than the last,
// in-place calls, dropout masks (bit-exact), label and AdamW scalar errors
// reported through ops::takeDataError. Tolerances: GEMM results (cuBLASLt
// fp32 without TF32 vs OpenBLAS) |d| <= 1e-5 + 1e-5·|want| for short
// contractions, 1e-4 relative for the LoRA gradients (sums over all rows);
// softmax and norms 1e-6..1e-5 (the CPU's fast exp is a few ulp off expf);
// AdamW 1e-6 relative (same rounded formula; only pow may differ); global
// norm 1e-6 relative.
//
//===----------------------------------------------------------------------===//

#include "GpuTest.h"

#include "vlora/kernels/Cpu.h"
#include "vlora/kernels/cuda/Ops.h"

#include <cstring>
#include <limits>

namespace vlora::kernels::cuda::test {
namespace {

namespace cpu = vlora::kernels::cpu;

using OpsMathTest = GpuTest;

template <typename T> DType dtypeOf();
template <> DType dtypeOf<float>() { return DType::F32; }
template <> DType dtypeOf<double>() { return DType::F64; }
template <> DType dtypeOf<int64_t>() { return DType::I64; }

/// A host tensor and its device copy (uploaded at construction).
template <typename T> struct Twin {
  Shape shape;
  std::vector<T> host;
  DeviceBuffer device;

  Twin(Shape s, std::vector<T> values)
      : shape(std::move(s)), host(std::move(values)),
        device(toDeviceRaw(host)) {}
  static Twin random(Shape s, uint32_t seed, float lo = -1, float hi = 1) {
    std::vector<float> values = randomVector(numElements(s), seed, lo, hi);
    return Twin(std::move(s), std::vector<T>(values.begin(), values.end()));
  }
  static Twin zeros(Shape s) {
    int64_t n = numElements(s);
    return Twin(std::move(s), std::vector<T>(n, T(0)));
  }
  TensorRef cpu() { return {host.data(), dtypeOf<T>(), shape}; }
  TensorRef gpu() const { return {device.data(), dtypeOf<T>(), shape}; }
  std::vector<T> download() const {
    std::vector<T> out(host.size());
    if (!out.empty()) {
      Status status = device.download(out.data(), out.size() * sizeof(T));
      EXPECT_TRUE(status.ok()) << status.message();
    }
    return out;
  }
  void upload() {
    if (host.empty())
      return;
    Status status = device.upload(host.data(), host.size() * sizeof(T));
    EXPECT_TRUE(status.ok()) << status.message();
  }
};
using F32 = Twin<float>;
using I64 = Twin<int64_t>;

template <typename T> std::vector<float> asFloat(const std::vector<T> &v) {
  return std::vector<float>(v.begin(), v.end());
}

/// The device result against the host one.
template <typename T>
void expectTwin(const std::string &what, const Twin<T> &t, double atol,
                double rtol) {
  expectClose(what, asFloat(t.download()), asFloat(t.host), atol, rtol);
}

std::string shapeLabel(const Shape &shape) { return shapeString(shape); }

//===----------------------------------------------------------------------===//
// matmul
//===----------------------------------------------------------------------===//

struct MatmulCase {
  Shape lhs, rhs, out;
  bool ta, tb;
};
const MatmulCase kMatmulCases[] = {
    {{3, 5}, {5, 7}, {3, 7}, false, false},
    {{5, 3}, {5, 7}, {3, 7}, true, false},
    {{3, 5}, {7, 5}, {3, 7}, false, true},
    {{5, 3}, {7, 5}, {3, 7}, true, true},
    {{1, 1}, {1, 1}, {1, 1}, false, false},
    {{2, 3, 4, 5}, {5, 6}, {2, 3, 4, 6}, false, false}, // one GEMM
    {{2, 4, 3}, {4, 5}, {2, 3, 5}, true, false},        // rhs stride 0
    {{3, 4}, {2, 4, 5}, {2, 3, 5}, false, false},       // lhs stride 0
    {{2, 3, 4}, {2, 4, 5}, {2, 3, 5}, false, false},
    {{2, 1, 3, 4}, {1, 5, 4, 6}, {2, 5, 3, 6}, false, false}, // both broadcast
    {{4, 2, 3, 5}, {2, 7, 5}, {4, 2, 3, 7}, false, true},
    {{3, 1, 2, 9, 13}, {1, 4, 1, 13, 11}, {3, 4, 2, 9, 11}, false, false},
    {{2, 0}, {0, 3}, {2, 3}, false, false}, // k = 0: zeros
    {{0, 4}, {4, 3}, {0, 3}, false, false}, // empty result
};

TEST_F(OpsMathTest, MatmulF32MatchesCpuWithBroadcastBatches) {
  uint32_t seed = 1;
  for (const MatmulCase &c : kMatmulCases) {
    SCOPED_TRACE(testing::Message()
                 << shapeLabel(c.lhs) << " x " << shapeLabel(c.rhs)
                 << " ta=" << c.ta << " tb=" << c.tb);
    F32 lhs = F32::random(c.lhs, seed++), rhs = F32::random(c.rhs, seed++);
    // Garbage in the result: k = 0 must write zeros.
    F32 out(c.out, std::vector<float>(numElements(c.out), 7.f));
    VLORA_ASSERT_OK(
        ops::matmul(*ctx, lhs.gpu(), rhs.gpu(), out.gpu(), c.ta, c.tb));
    cpu::matmul(lhs.cpu(), rhs.cpu(), out.cpu(), c.ta, c.tb);
    expectTwin("matmul", out, 1e-5, 1e-5);
  }
}

TEST_F(OpsMathTest, MatmulBF16) {
  uint32_t seed = 100;
  for (const MatmulCase &c : kMatmulCases) {
    SCOPED_TRACE(testing::Message()
                 << shapeLabel(c.lhs) << " x " << shapeLabel(c.rhs)
                 << " ta=" << c.ta << " tb=" << c.tb);
    // bf16 operands (the fp32 reference on the rounded values is exact up
    // to summation order), bf16 and f32 results.
    auto lhs = roundedToBF16(randomVector(numElements(c.lhs), seed++));
    auto rhs = roundedToBF16(randomVector(numElements(c.rhs), seed++));
    int64_t n = numElements(c.out);
    std::vector<float> exact(n);
    cpu::matmul({lhs.data(), DType::F32, c.lhs},
                {rhs.data(), DType::F32, c.rhs},
                {exact.data(), DType::F32, c.out}, c.ta, c.tb);
    DeviceBuffer dl = toDevice(lhs, DType::BF16),
                 dr = toDevice(rhs, DType::BF16);
    for (DType outType : {DType::BF16, DType::F32}) {
      DeviceBuffer dOut = toDevice(std::vector<float>(n, 7.f), outType);
      VLORA_ASSERT_OK(ops::matmul(*ctx, {dl.data(), DType::BF16, c.lhs},
                                  {dr.data(), DType::BF16, c.rhs},
                                  {dOut.data(), outType, c.out}, c.ta, c.tb));
      expectMatches(std::string("matmul bf16 -> ") + dtypeLabel(outType),
                    outType, fromDevice(dOut, n, outType), exact, 1e-5, 1e-5);
    }
  }
}

TEST_F(OpsMathTest, MatmulF64) {
  uint32_t seed = 150;
  for (const MatmulCase &c : kMatmulCases) {
    SCOPED_TRACE(testing::Message()
                 << shapeLabel(c.lhs) << " x " << shapeLabel(c.rhs)
                 << " ta=" << c.ta << " tb=" << c.tb);
    Twin<double> lhs = Twin<double>::random(c.lhs, seed++),
                 rhs = Twin<double>::random(c.rhs, seed++);
    Twin<double> out(c.out, std::vector<double>(numElements(c.out), 7.0));
    VLORA_ASSERT_OK(
        ops::matmul(*ctx, lhs.gpu(), rhs.gpu(), out.gpu(), c.ta, c.tb));
    cpu::matmul(lhs.cpu(), rhs.cpu(), out.cpu(), c.ta, c.tb);
    expectTwin("matmul f64", out, 1e-12, 1e-12);
  }
}

TEST_F(OpsMathTest, MatmulRefusesMixedAndIntegerTypes) {
  DeviceBuffer buffer;
  VLORA_ASSERT_OK(DeviceBuffer::allocate(1024, buffer));
  TensorRef i64{buffer.data(), DType::I64, {4, 4}};
  expectRefused(ops::matmul(*ctx, i64, i64, i64, false, false), "matmul",
                "unsupported element type i64");
  TensorRef f32{buffer.data(), DType::F32, {4, 4}};
  TensorRef f64{buffer.data(), DType::F64, {4, 4}};
  expectRefused(ops::matmul(*ctx, f32, f64, f32, false, false), "matmul",
                "unsupported element type");
}

/// A bf16 weight (--vlora-mixed-precision) on the host and the device.
struct BF16Weight {
  Shape shape;
  std::vector<uint16_t> host;
  DeviceBuffer device;
  BF16Weight(Shape s, uint32_t seed) : shape(std::move(s)) {
    for (float v : randomVector(numElements(shape), seed, -0.5f, 0.5f)) {
      uint32_t bits;
      std::memcpy(&bits, &v, 4);
      host.push_back(static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16));
    }
    device = toDeviceRaw(host);
  }
  TensorRef cpu() { return {host.data(), DType::BF16, shape}; }
  TensorRef gpu() const { return {device.data(), DType::BF16, shape}; }
};

// f32 activations with a bf16 weight: the twins widen the weight exactly and
// run their f32 path, as the CPU kernels do.
TEST_F(OpsMathTest, BF16WeightsMatchTheCpu) {
  for (bool weightIsLhs : {false, true})
    for (bool transposed : {false, true}) {
      SCOPED_TRACE(testing::Message() << "weight is lhs " << weightIsLhs
                                      << ", transposed " << transposed);
      Shape wShape = transposed ? Shape{6, 5} : Shape{5, 6};
      BF16Weight w(weightIsLhs ? Shape{wShape[1], wShape[0]} : wShape, 3);
      F32 x = F32::random(weightIsLhs ? Shape{6, 7} : Shape{2, 4, 5}, 4);
      F32 out = F32::zeros(weightIsLhs ? Shape{5, 7} : Shape{2, 4, 6});
      if (weightIsLhs) {
        VLORA_ASSERT_OK(ops::matmul(*ctx, w.gpu(), x.gpu(), out.gpu(), transposed, false));
        cpu::matmul(w.cpu(), x.cpu(), out.cpu(), transposed, false);
      } else {
        VLORA_ASSERT_OK(ops::matmul(*ctx, x.gpu(), w.gpu(), out.gpu(), false, transposed));
        cpu::matmul(x.cpu(), w.cpu(), out.cpu(), false, transposed);
      }
      expectTwin("matmul bf16 weight", out, 1e-5, 1e-5);
    }

  BF16Weight w({8, 6}, 5);
  F32 x = F32::random({2, 3, 8}, 6), a = F32::random({2, 8}, 7),
      b = F32::random({6, 2}, 8), y = F32::zeros({2, 3, 6});
  VLORA_ASSERT_OK(ops::loraMatmul(*ctx, x.gpu(), w.gpu(), a.gpu(), b.gpu(), y.gpu(), 2.0, false));
  cpu::loraMatmul(x.cpu(), w.cpu(), a.cpu(), b.cpu(), y.cpu(), 2.0, false);
  expectTwin("lora_matmul bf16 weight", y, 1e-5, 1e-5);

  F32 dy = F32::random({2, 3, 6}, 9), gradA = F32::zeros({2, 8}),
      gradB = F32::zeros({6, 2}), gradX = F32::zeros({2, 3, 8});
  TensorRef gx = gradX.gpu(), cx = gradX.cpu();
  VLORA_ASSERT_OK(ops::loraMatmulGrad(*ctx, dy.gpu(), x.gpu(), w.gpu(), a.gpu(), b.gpu(),
                                      nullptr, gradA.gpu(), gradB.gpu(), &gx, 2.0, 0.0, 0,
                                      false));
  cpu::loraMatmulGrad(dy.cpu(), x.cpu(), w.cpu(), a.cpu(), b.cpu(), nullptr, gradA.cpu(),
                      gradB.cpu(), &cx, 2.0, 0.0, 0, false);
  expectTwin("lora_matmul_grad dA", gradA, 1e-5, 1e-4);
  expectTwin("lora_matmul_grad dB", gradB, 1e-5, 1e-4);
  expectTwin("lora_matmul_grad dx", gradX, 1e-5, 1e-4);

  BF16Weight head({8, 10}, 10);
  F32 input = F32::random({2, 4, 8}, 11), dloss(Shape{}, {1.f}), loss = F32::zeros({}),
      gradInput = F32::zeros({2, 4, 8});
  I64 labels({2, 4}, {3, 1, -100, 9, 0, 4, 7, 2});
  VLORA_ASSERT_OK(ops::linearCrossEntropy(*ctx, input.gpu(), head.gpu(), labels.gpu(),
                                          dloss.gpu(), loss.gpu(), gradInput.gpu(), -100,
                                          false));
  cpu::linearCrossEntropy(input.cpu(), head.cpu(), labels.cpu(), dloss.cpu(), loss.cpu(),
                          gradInput.cpu(), -100, false);
  expectTwin("linear_cross_entropy loss", loss, 1e-6, 1e-5);
  expectTwin("linear_cross_entropy dinput", gradInput, 1e-6, 1e-5);
}

// bf16 activations with bf16 weights and f32 results (f32_result, the
// activations of --vlora-mixed-precision): matmul runs cuBLASLt's bf16 GEMM
// with fp32 accumulation (the products are exact in fp32, so only the
// summation order differs from the CPU, which widens and runs its f32
// GEMM); the LoRA ops and linear_cross_entropy widen both exactly.
TEST_F(OpsMathTest, BF16ActivationsMatchTheCpu) {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      SCOPED_TRACE(testing::Message() << "ta " << ta << ", tb " << tb);
      BF16Weight lhs(ta ? Shape{3, 9, 5} : Shape{3, 5, 9}, 20);
      BF16Weight rhs(tb ? Shape{7, 9} : Shape{9, 7}, 21);
      F32 out = F32::zeros({3, 5, 7});
      VLORA_ASSERT_OK(ops::matmul(*ctx, lhs.gpu(), rhs.gpu(), out.gpu(), ta, tb));
      cpu::matmul(lhs.cpu(), rhs.cpu(), out.cpu(), ta, tb);
      expectTwin("matmul bf16 x bf16 -> f32", out, 1e-5, 1e-5);
    }

  BF16Weight w({6, 8}, 22), x({2, 3, 8}, 23);
  F32 a = F32::random({2, 8}, 24), b = F32::random({6, 2}, 25),
      y = F32::zeros({2, 3, 6});
  VLORA_ASSERT_OK(ops::loraMatmul(*ctx, x.gpu(), w.gpu(), a.gpu(), b.gpu(), y.gpu(), 2.0, true));
  cpu::loraMatmul(x.cpu(), w.cpu(), a.cpu(), b.cpu(), y.cpu(), 2.0, true);
  expectTwin("lora_matmul bf16 x", y, 1e-5, 1e-5);

  I64 rng({2}, {987654321, 7});
  F32 yd = F32::zeros({2, 3, 6});
  VLORA_ASSERT_OK(ops::loraMatmulDropout(*ctx, x.gpu(), w.gpu(), a.gpu(), b.gpu(), rng.gpu(),
                                         yd.gpu(), 2.0, 0.25, 3, true));
  cpu::loraMatmulDropout(x.cpu(), w.cpu(), a.cpu(), b.cpu(), rng.cpu(), yd.cpu(), 2.0, 0.25, 3,
                         true);
  expectTwin("lora_matmul bf16 x, dropout", yd, 1e-5, 1e-5);

  for (bool withGradX : {false, true}) {
    SCOPED_TRACE(testing::Message() << "grad x " << withGradX);
    F32 dy = F32::random({2, 3, 6}, 26), gradA = F32::zeros({2, 8}),
        gradB = F32::zeros({6, 2}), gradX = F32::zeros({2, 3, 8});
    TensorRef gx = gradX.gpu(), cx = gradX.cpu(), grng = rng.gpu();
    VLORA_ASSERT_OK(ops::loraMatmulGrad(*ctx, dy.gpu(), x.gpu(), w.gpu(), a.gpu(), b.gpu(),
                                        &grng, gradA.gpu(), gradB.gpu(),
                                        withGradX ? &gx : nullptr, 2.0, 0.25, 3, true));
    TensorRef crng = rng.cpu();
    cpu::loraMatmulGrad(dy.cpu(), x.cpu(), w.cpu(), a.cpu(), b.cpu(), &crng, gradA.cpu(),
                        gradB.cpu(), withGradX ? &cx : nullptr, 2.0, 0.25, 3, true);
    expectTwin("lora_matmul_grad bf16 x dA", gradA, 1e-5, 1e-4);
    expectTwin("lora_matmul_grad bf16 x dB", gradB, 1e-5, 1e-4);
    if (withGradX)
      expectTwin("lora_matmul_grad bf16 x dx", gradX, 1e-5, 1e-4);
  }

  BF16Weight head({10, 8}, 27), input({2, 4, 8}, 28);
  F32 dloss(Shape{}, {1.f}), loss = F32::zeros({}), gradInput = F32::zeros({2, 4, 8});
  I64 labels({2, 4}, {3, 1, -100, 9, 0, 4, 7, 2});
  VLORA_ASSERT_OK(ops::linearCrossEntropy(*ctx, input.gpu(), head.gpu(), labels.gpu(),
                                          dloss.gpu(), loss.gpu(), gradInput.gpu(), -100,
                                          true));
  cpu::linearCrossEntropy(input.cpu(), head.cpu(), labels.cpu(), dloss.cpu(), loss.cpu(),
                          gradInput.cpu(), -100, true);
  expectTwin("linear_cross_entropy bf16 input loss", loss, 1e-6, 1e-5);
  expectTwin("linear_cross_entropy bf16 input dinput", gradInput, 1e-6, 1e-5);
}

//===----------------------------------------------------------------------===//
// Fused attention
//===----------------------------------------------------------------------===//

struct AttentionCase {
  Shape lead;
  int64_t s, t, d, dv;
  bool transposeK;
  Shape mask; // empty: no mask
};
const AttentionCase kAttentionCases[] = {
    {{2, 3}, 5, 7, 4, 6, false, {2, 1, 5, 7}},  // padding-style, per batch
    {{2, 3}, 5, 7, 4, 6, true, {5, 7}},         // one mask for every head
    {{4}, 9, 9, 8, 8, false, {}},               // no mask (a vision tower)
    {{1, 2}, 17, 3, 5, 2, true, {1, 2, 1, 3}},  // per head, broadcast rows
};

// The twins against cpu::attention / cpu::attentionGrad, masks with large
// negative entries included.
TEST_F(OpsMathTest, AttentionAndGradMatchTheCpu) {
  uint32_t seed = 600;
  for (const AttentionCase &c : kAttentionCases) {
    SCOPED_TRACE(testing::Message() << "lead=" << shapeLabel(c.lead) << " S=" << c.s
                                    << " T=" << c.t << " tk=" << c.transposeK
                                    << " mask=" << shapeLabel(c.mask));
    auto with = [&](int64_t a, int64_t b) {
      Shape s = c.lead;
      s.push_back(a);
      s.push_back(b);
      return s;
    };
    F32 q = F32::random(with(c.s, c.d), seed++),
        k = F32::random(c.transposeK ? with(c.t, c.d) : with(c.d, c.t), seed++),
        v = F32::random(with(c.t, c.dv), seed++),
        g = F32::random(with(c.s, c.dv), seed++);
    F32 mask = F32::random(c.mask.empty() ? Shape{1} : c.mask, seed++);
    for (size_t i = 0; i < mask.host.size(); i += 3)
      mask.host[i] = -1e9f;
    mask = F32(mask.shape, mask.host);
    TensorRef maskGpu = mask.gpu(), maskCpu = mask.cpu();
    const TensorRef *mg = c.mask.empty() ? nullptr : &maskGpu;
    const TensorRef *mc = c.mask.empty() ? nullptr : &maskCpu;
    F32 out = F32::zeros(with(c.s, c.dv));
    VLORA_ASSERT_OK(ops::attention(*ctx, q.gpu(), k.gpu(), v.gpu(), mg, out.gpu(), 0.4,
                                   c.transposeK));
    cpu::attention(q.cpu(), k.cpu(), v.cpu(), mc, out.cpu(), 0.4, c.transposeK);
    expectTwin("attention", out, 1e-5, 1e-5);

    F32 dq = F32::zeros(q.shape), dk = F32::zeros(k.shape), dv = F32::zeros(v.shape);
    VLORA_ASSERT_OK(ops::attentionGrad(*ctx, g.gpu(), q.gpu(), k.gpu(), v.gpu(), mg,
                                       dq.gpu(), dk.gpu(), dv.gpu(), 0.4, c.transposeK));
    cpu::attentionGrad(g.cpu(), q.cpu(), k.cpu(), v.cpu(), mc, dq.cpu(), dk.cpu(),
                       dv.cpu(), 0.4, c.transposeK);
    expectTwin("attention_grad dq", dq, 1e-5, 1e-4);
    expectTwin("attention_grad dk", dk, 1e-5, 1e-4);
    expectTwin("attention_grad dv", dv, 1e-5, 1e-4);
  }
}

// f32_result attention: bf16 q, k, v (all bf16: bf16 GEMMs; with an f32
// one: widened), an f32 mask and result; P, dO and dS rounded to bf16 for
// the products on both backends. A GEMM's other summation order can move a
// value across a bf16 rounding boundary, hence the looser tolerance.
TEST_F(OpsMathTest, BF16AttentionMatchesTheCpu) {
  for (bool allBf16 : {true, false}) {
    SCOPED_TRACE(testing::Message() << "all bf16 " << allBf16);
    BF16Weight q({2, 3, 6, 8}, 700), k({2, 3, 9, 8}, 701), v({2, 3, 9, 5}, 702);
    F32 qf = F32::random({2, 3, 6, 8}, 703);
    F32 mask = F32::random({2, 1, 6, 9}, 704), g = F32::random({2, 3, 6, 5}, 705);
    TensorRef mg = mask.gpu(), mc = mask.cpu();
    TensorRef qg = allBf16 ? q.gpu() : qf.gpu(), qc = allBf16 ? q.cpu() : qf.cpu();
    F32 out = F32::zeros({2, 3, 6, 5});
    VLORA_ASSERT_OK(ops::attention(*ctx, qg, k.gpu(), v.gpu(), &mg, out.gpu(), 0.3, true));
    cpu::attention(qc, k.cpu(), v.cpu(), &mc, out.cpu(), 0.3, true);
    expectTwin("bf16 attention", out, 2e-3, 2e-3);
    F32 dq = F32::zeros({2, 3, 6, 8}), dk = F32::zeros({2, 3, 9, 8}),
        dv = F32::zeros({2, 3, 9, 5});
    VLORA_ASSERT_OK(ops::attentionGrad(*ctx, g.gpu(), qg, k.gpu(), v.gpu(), &mg, dq.gpu(),
                                       dk.gpu(), dv.gpu(), 0.3, true));
    cpu::attentionGrad(g.cpu(), qc, k.cpu(), v.cpu(), &mc, dq.cpu(), dk.cpu(), dv.cpu(), 0.3,
                       true);
    expectTwin("bf16 attention_grad dq", dq, 2e-3, 2e-3);
    expectTwin("bf16 attention_grad dk", dk, 2e-3, 2e-3);
    expectTwin("bf16 attention_grad dv", dv, 2e-3, 2e-3);
  }
}

//===----------------------------------------------------------------------===//
// LoRA
//===----------------------------------------------------------------------===//

struct LoraCase {
  Shape x;
  int64_t out, rank;
  bool tb;
};
const LoraCase kLoraCases[] = {
    {{2, 3, 16}, 12, 4, false}, {{2, 3, 16}, 12, 4, true},
    {{7, 33}, 9, 3, false},     {{1, 5}, 3, 0, true}, // rank 0
    {{5, 1}, 17, 2, false},
};

Shape weightShape(const LoraCase &c) {
  int64_t in = c.x.back();
  return c.tb ? Shape{c.out, in} : Shape{in, c.out};
}
Shape outShape(const LoraCase &c) {
  Shape out = c.x;
  out.back() = c.out;
  return out;
}

TEST_F(OpsMathTest, LoraMatmulAndDropoutMatchCpu) {
  uint32_t seed = 200;
  for (const LoraCase &c : kLoraCases) {
    for (double dropout : {0.0, 0.3}) {
      SCOPED_TRACE(testing::Message()
                   << "x=" << shapeLabel(c.x) << " out=" << c.out
                   << " r=" << c.rank << " tb=" << c.tb << " p=" << dropout);
      int64_t in = c.x.back();
      F32 x = F32::random(c.x, seed++), w = F32::random(weightShape(c), seed++),
          a = F32::random({c.rank, in}, seed++),
          b = F32::random({c.out, c.rank}, seed++);
      F32 y = F32::zeros(outShape(c));
      I64 rng({2}, {123456789, 42});
      if (dropout == 0) {
        VLORA_ASSERT_OK(ops::loraMatmul(*ctx, x.gpu(), w.gpu(), a.gpu(),
                                        b.gpu(), y.gpu(), 0.75, c.tb));
        cpu::loraMatmul(x.cpu(), w.cpu(), a.cpu(), b.cpu(), y.cpu(), 0.75,
                        c.tb);
      } else {
        VLORA_ASSERT_OK(ops::loraMatmulDropout(*ctx, x.gpu(), w.gpu(), a.gpu(),
                                               b.gpu(), rng.gpu(), y.gpu(),
                                               0.75, dropout, 5, c.tb));
        cpu::loraMatmulDropout(x.cpu(), w.cpu(), a.cpu(), b.cpu(), rng.cpu(),
                               y.cpu(), 0.75, dropout, 5, c.tb);
      }
      expectTwin("lora_matmul", y, 1e-5, 1e-5);
    }
  }
}

TEST_F(OpsMathTest, LoraDropoutMaskIsTheCpuMaskExactly) {
  // w = 0 and a = b = I: y = x' = x ⊙ keep / (1 - p) exactly (every GEMM
  // sums one product with exact zeros).
  const int64_t rows = 37, in = 24;
  const double p = 0.3;
  F32 x = F32::random({rows, in}, 300, 0.5f, 2.f);
  F32 w = F32::zeros({in, in});
  std::vector<float> eye(in * in, 0.f);
  for (int64_t i = 0; i < in; ++i)
    eye[i * in + i] = 1.f;
  F32 a({in, in}, eye), b({in, in}, eye);
  I64 rng({2}, {987654321, 7});
  std::vector<float> first;
  for (int64_t counter : {7, 8}) {
    SCOPED_TRACE(testing::Message() << "counter=" << counter);
    rng.host[1] = counter; // new values in the same device tensor
    rng.upload();
    F32 y = F32::zeros({rows, in});
    VLORA_ASSERT_OK(ops::loraMatmulDropout(*ctx, x.gpu(), w.gpu(), a.gpu(),
                                           b.gpu(), rng.gpu(), y.gpu(), 1.0, p,
                                           11, false));
    cpu::loraMatmulDropout(x.cpu(), w.cpu(), a.cpu(), b.cpu(), rng.cpu(),
                           y.cpu(), 1.0, p, 11, false);
    expectTwin("dropout mask", y, 0, 0);
    int64_t dropped = 0;
    for (float v : y.host)
      dropped += v == 0.f;
    // 888 draws at p = 0.3: mean 266, sd 14.
    EXPECT_GT(dropped, 200);
    EXPECT_LT(dropped, 330);
    if (first.empty())
      first = y.host;
    else
      EXPECT_NE(first, y.host) << "the counter must change the mask";
  }
}

TEST_F(OpsMathTest, LoraMatmulGradMatchesCpu) {
  uint32_t seed = 400;
  for (const LoraCase &c : kLoraCases) {
    for (double dropout : {0.0, 0.25}) {
      for (bool withGradX : {true, false}) {
        SCOPED_TRACE(testing::Message()
                     << "x=" << shapeLabel(c.x) << " out=" << c.out
                     << " r=" << c.rank << " tb=" << c.tb << " p=" << dropout
                     << " gradX=" << withGradX);
        int64_t in = c.x.back();
        F32 x = F32::random(c.x, seed++),
            w = F32::random(weightShape(c), seed++),
            a = F32::random({c.rank, in}, seed++),
            b = F32::random({c.out, c.rank}, seed++),
            dy = F32::random(outShape(c), seed++);
        F32 gradA = F32::zeros({c.rank, in}),
            gradB = F32::zeros({c.out, c.rank}), gradX = F32::zeros(c.x);
        I64 rng({2}, {5555, 3});
        TensorRef gx = gradX.gpu(), cx = gradX.cpu();
        TensorRef grng = rng.gpu(), crng = rng.cpu();
        VLORA_ASSERT_OK(ops::loraMatmulGrad(
            *ctx, dy.gpu(), x.gpu(), w.gpu(), a.gpu(), b.gpu(),
            dropout > 0 ? &grng : nullptr, gradA.gpu(), gradB.gpu(),
            withGradX ? &gx : nullptr, 1.5, dropout, 9, c.tb));
        cpu::loraMatmulGrad(dy.cpu(), x.cpu(), w.cpu(), a.cpu(), b.cpu(),
                            dropout > 0 ? &crng : nullptr, gradA.cpu(),
                            gradB.cpu(), withGradX ? &cx : nullptr, 1.5,
                            dropout, 9, c.tb);
        expectTwin("lora gradA", gradA, 1e-5, 1e-4);
        expectTwin("lora gradB", gradB, 1e-5, 1e-4);
        if (withGradX)
          expectTwin("lora gradX", gradX, 1e-5, 1e-4);
      }
    }
  }
}

//===----------------------------------------------------------------------===//
// Softmax and normalisation
//===----------------------------------------------------------------------===//

struct AxisCase {
  Shape shape;
  int64_t axis;
};
const AxisCase kAxisCases[] = {
    {{4, 37}, 1},      {{3, 5, 7}, 1}, {{3, 5, 7}, 0},    {{3, 5, 7}, 2},
    {{2, 3, 1000}, 2}, {{6, 1}, 1},    {{2, 3, 1537}, 1}, {{1}, 0},
};

TEST_F(OpsMathTest, SoftmaxAnyAxis) {
  uint32_t seed = 500;
  for (const AxisCase &c : kAxisCases)
    for (bool log : {false, true}) {
      SCOPED_TRACE(testing::Message() << shapeLabel(c.shape)
                                      << " axis=" << c.axis << " log=" << log);
      F32 x = F32::random(c.shape, seed++, -6, 6), y = F32::zeros(c.shape);
      VLORA_ASSERT_OK(ops::softmax(*ctx, x.gpu(), y.gpu(), c.axis, log));
      cpu::softmax(x.cpu(), y.cpu(), c.axis, log);
      expectTwin(log ? "log_softmax" : "softmax", y, log ? 1e-5 : 1e-6, 1e-5);
    }
  // f64
  Twin<double> x = Twin<double>::random({3, 5, 7}, 550, -6, 6),
               y = Twin<double>::zeros({3, 5, 7});
  VLORA_ASSERT_OK(ops::softmax(*ctx, x.gpu(), y.gpu(), 1, false));
  cpu::softmax(x.cpu(), y.cpu(), 1, false);
  expectTwin("softmax f64", y, 1e-7, 1e-6);
}

TEST_F(OpsMathTest, SoftmaxGradAnyAxisAndInPlace) {
  uint32_t seed = 600;
  for (const AxisCase &c : kAxisCases)
    for (bool inPlace : {false, true}) {
      SCOPED_TRACE(testing::Message() << shapeLabel(c.shape) << " axis="
                                      << c.axis << " inPlace=" << inPlace);
      F32 x = F32::random(c.shape, seed++, -3, 3), y = F32::zeros(c.shape);
      cpu::softmax(x.cpu(), y.cpu(), c.axis, false);
      y.upload();
      F32 dy = F32::random(c.shape, seed++), dx = F32::zeros(c.shape);
      std::vector<float> want(dy.host.size());
      cpu::softmaxGrad(dy.cpu(), y.cpu(), {want.data(), DType::F32, c.shape},
                       c.axis);
      const F32 &target = inPlace ? dy : dx;
      VLORA_ASSERT_OK(
          ops::softmaxGrad(*ctx, dy.gpu(), y.gpu(), target.gpu(), c.axis));
      expectClose("softmax_grad", asFloat(target.download()), want, 1e-6, 1e-4);
    }
}

TEST_F(OpsMathTest, LayerNormAndRmsNormOverTrailingDims) {
  uint32_t seed = 700;
  const AxisCase cases[] = {{{4, 6, 10}, 2}, {{4, 6, 10}, 1}, {{4, 6, 10}, 0},
                            {{3, 1537}, 1},  {{5, 1}, 1},     {{2, 3}, 0}};
  for (const AxisCase &c : cases) {
    SCOPED_TRACE(testing::Message()
                 << shapeLabel(c.shape) << " axis=" << c.axis);
    Shape norm(c.shape.begin() + c.axis, c.shape.end());
    F32 x = F32::random(c.shape, seed++, -2, 3), g = F32::random(norm, seed++),
        bias = F32::random(norm, seed++);
    for (bool withBias : {false, true}) {
      F32 y = F32::zeros(c.shape);
      TensorRef gb = bias.gpu(), cb = bias.cpu();
      VLORA_ASSERT_OK(ops::layerNorm(*ctx, x.gpu(), g.gpu(),
                                     withBias ? &gb : nullptr, y.gpu(), c.axis,
                                     1e-5));
      cpu::layerNorm(x.cpu(), g.cpu(), withBias ? &cb : nullptr, y.cpu(),
                     c.axis, 1e-5);
      expectTwin(withBias ? "layer_norm (bias)" : "layer_norm", y, 1e-5, 1e-5);
    }
    F32 y = F32::zeros(c.shape);
    VLORA_ASSERT_OK(
        ops::rmsNorm(*ctx, x.gpu(), g.gpu(), y.gpu(), c.axis, 1e-6));
    cpu::rmsNorm(x.cpu(), g.cpu(), y.cpu(), c.axis, 1e-6);
    expectTwin("rms_norm", y, 1e-5, 1e-5);
  }
  // f64
  Twin<double> x = Twin<double>::random({4, 6, 10}, 750),
               g = Twin<double>::random({6, 10}, 751),
               y = Twin<double>::zeros({4, 6, 10});
  VLORA_ASSERT_OK(ops::rmsNorm(*ctx, x.gpu(), g.gpu(), y.gpu(), 1, 1e-6));
  cpu::rmsNorm(x.cpu(), g.cpu(), y.cpu(), 1, 1e-6);
  expectTwin("rms_norm f64", y, 1e-7, 1e-6);
}

TEST_F(OpsMathTest, LayerNormGradAndInPlace) {
  uint32_t seed = 800;
  const AxisCase cases[] = {
      {{4, 6, 10}, 2}, {{4, 6, 10}, 1}, {{3, 1537}, 1}, {{5, 2}, 1}};
  for (const AxisCase &c : cases)
    for (int where : {0, 1, 2}) { // out separate, on grad, on input
      SCOPED_TRACE(testing::Message() << shapeLabel(c.shape) << " axis="
                                      << c.axis << " where=" << where);
      Shape norm(c.shape.begin() + c.axis, c.shape.end());
      F32 x = F32::random(c.shape, seed++, -2, 3),
          g = F32::random(norm, seed++), dy = F32::random(c.shape, seed++),
          dx = F32::zeros(c.shape);
      std::vector<float> want(dx.host.size());
      cpu::layerNormGrad(dy.cpu(), x.cpu(), g.cpu(),
                         {want.data(), DType::F32, c.shape}, c.axis, 1e-5);
      const F32 &target = where == 0 ? dx : where == 1 ? dy : x;
      VLORA_ASSERT_OK(ops::layerNormGrad(*ctx, dy.gpu(), x.gpu(), g.gpu(),
                                         target.gpu(), c.axis, 1e-5));
      expectClose("layer_norm_grad", asFloat(target.download()), want, 1e-5,
                  1e-4);
    }
}

//===----------------------------------------------------------------------===//
// Cross-entropy
//===----------------------------------------------------------------------===//

/// Labels [B, S] in [0, vocab) with every third ignored; position 0 holds
/// an out-of-range value (never a target: not an error).
std::vector<int64_t> makeLabels(int64_t batch, int64_t seq, int64_t vocab,
                                uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<int64_t> labels(batch * seq);
  for (int64_t i = 0; i < batch * seq; ++i)
    labels[i] = i % 3 == 2 ? -100 : static_cast<int64_t>(gen() % vocab);
  labels[0] = vocab + 1000;
  return labels;
}

TEST_F(OpsMathTest, CrossEntropyLossAndGradient) {
  const int64_t shapes[][3] = {{2, 9, 33}, {1, 2, 5}, {3, 4, 1031}, {2, 1, 7}};
  uint32_t seed = 900;
  for (auto [batch, seq, vocab] : shapes)
    for (bool inPlace : {false, true}) {
      SCOPED_TRACE(testing::Message() << "B=" << batch << " S=" << seq << " V="
                                      << vocab << " inPlace=" << inPlace);
      F32 logits = F32::random({batch, seq, vocab}, seed++, -4, 4);
      I64 labels({batch, seq}, makeLabels(batch, seq, vocab, seed++));
      F32 loss = F32::zeros({}), dloss({}, {0.7f});
      VLORA_ASSERT_OK(ops::crossEntropy(*ctx, logits.gpu(), labels.gpu(),
                                        loss.gpu(), -100));
      cpu::crossEntropy(logits.cpu(), labels.cpu(), loss.cpu(), -100);
      std::vector<float> got = loss.download();
      if (std::isnan(loss.host[0]))
        EXPECT_TRUE(std::isnan(got[0])) << "want NaN, got " << got[0];
      else
        expectClose("cross_entropy", got, loss.host, 1e-6, 1e-5);
      F32 grad = F32::zeros({batch, seq, vocab});
      std::vector<float> want(grad.host.size());
      cpu::crossEntropyGrad(dloss.cpu(), logits.cpu(), labels.cpu(),
                            {want.data(), DType::F32, grad.shape}, -100);
      const F32 &target = inPlace ? logits : grad;
      VLORA_ASSERT_OK(ops::crossEntropyGrad(*ctx, dloss.gpu(), logits.gpu(),
                                            labels.gpu(), target.gpu(), -100));
      expectClose("cross_entropy_grad", asFloat(target.download()), want, 1e-7,
                  1e-4);
      VLORA_ASSERT_OK(ops::takeDataError(*ctx));
    }
  // f64
  Twin<double> logits = Twin<double>::random({2, 5, 17}, 950, -4, 4);
  I64 labels({2, 5}, makeLabels(2, 5, 17, 951));
  F32 loss = F32::zeros({});
  VLORA_ASSERT_OK(
      ops::crossEntropy(*ctx, logits.gpu(), labels.gpu(), loss.gpu(), -100));
  cpu::crossEntropy(logits.cpu(), labels.cpu(), loss.cpu(), -100);
  expectTwin("cross_entropy f64", loss, 1e-6, 1e-6);
}

TEST_F(OpsMathTest, CrossEntropyWithoutValidLabelsIsNaNWithZeroGradient) {
  F32 logits = F32::random({2, 4, 9}, 960);
  I64 labels({2, 4}, std::vector<int64_t>(8, -100));
  F32 loss = F32::zeros({}), dloss({}, {1.f}),
      grad({2, 4, 9}, std::vector<float>(72, 5.f));
  VLORA_ASSERT_OK(
      ops::crossEntropy(*ctx, logits.gpu(), labels.gpu(), loss.gpu(), -100));
  VLORA_ASSERT_OK(ops::crossEntropyGrad(*ctx, dloss.gpu(), logits.gpu(),
                                        labels.gpu(), grad.gpu(), -100));
  VLORA_ASSERT_OK(ops::takeDataError(*ctx));
  EXPECT_TRUE(std::isnan(loss.download()[0]));
  expectClose("cross_entropy_grad (no labels)", grad.download(),
              std::vector<float>(72, 0.f), 0, 0);
}

TEST_F(OpsMathTest, OutOfRangeLabelsAreReported) {
  F32 logits = F32::random({2, 4, 9}, 970), loss = F32::zeros({}),
      dloss({}, {1.f}), grad = F32::zeros({2, 4, 9});
  std::vector<int64_t> values = makeLabels(2, 4, 9, 971);
  values[5] = 40;
  I64 labels({2, 4}, values);
  VLORA_ASSERT_OK(
      ops::crossEntropy(*ctx, logits.gpu(), labels.gpu(), loss.gpu(), -100));
  expectRefused(ops::takeDataError(*ctx), "cross_entropy", "label 40");
  VLORA_ASSERT_OK(ops::takeDataError(*ctx)); // cleared
  VLORA_ASSERT_OK(ops::crossEntropyGrad(*ctx, dloss.gpu(), logits.gpu(),
                                        labels.gpu(), grad.gpu(), -100));
  expectRefused(ops::takeDataError(*ctx), "cross_entropy_grad", "label 40");
  F32 input = F32::random({2, 4, 6}, 972), weight = F32::random({6, 9}, 973),
      gradInput = F32::zeros({2, 4, 6});
  values[5] = -3;
  labels.host = values;
  labels.upload();
  VLORA_ASSERT_OK(ops::linearCrossEntropy(*ctx, input.gpu(), weight.gpu(),
                                          labels.gpu(), dloss.gpu(), loss.gpu(),
                                          gradInput.gpu(), -100, false));
  expectRefused(ops::takeDataError(*ctx), "linear_cross_entropy", "label -3");
  VLORA_ASSERT_OK(ops::takeDataError(*ctx));
}

TEST_F(OpsMathTest, LinearCrossEntropyMatchesCpu) {
  const int64_t shapes[][4] = {// B, S, D, V
                               {2, 7, 16, 29},
                               {1, 3, 5, 1031},
                               {3, 2, 33, 7}};
  uint32_t seed = 1000;
  for (auto [batch, seq, dim, vocab] : shapes)
    for (bool tb : {false, true}) {
      SCOPED_TRACE(testing::Message() << "B=" << batch << " S=" << seq << " D="
                                      << dim << " V=" << vocab << " tb=" << tb);
      F32 input = F32::random({batch, seq, dim}, seed++),
          weight =
              F32::random(tb ? Shape{vocab, dim} : Shape{dim, vocab}, seed++);
      I64 labels({batch, seq}, makeLabels(batch, seq, vocab, seed++));
      F32 dloss({}, {1.3f}),
          loss = F32::zeros({}),
          gradInput({batch, seq, dim},
                    std::vector<float>(batch * seq * dim, 9.f));
      VLORA_ASSERT_OK(ops::linearCrossEntropy(
          *ctx, input.gpu(), weight.gpu(), labels.gpu(), dloss.gpu(),
          loss.gpu(), gradInput.gpu(), -100, tb));
      cpu::linearCrossEntropy(input.cpu(), weight.cpu(), labels.cpu(),
                              dloss.cpu(), loss.cpu(), gradInput.cpu(), -100,
                              tb);
      VLORA_ASSERT_OK(ops::takeDataError(*ctx));
      expectTwin("linear_cross_entropy loss", loss, 1e-6, 1e-5);
      expectTwin("linear_cross_entropy gradInput", gradInput, 1e-6, 1e-4);
    }
}

//===----------------------------------------------------------------------===//
// Global norm and AdamW
//===----------------------------------------------------------------------===//

TEST_F(OpsMathTest, GlobalNormOverManyTensors) {
  // 41 tensors (two launches of 32), one empty, one f64, one large.
  std::vector<F32> f32s;
  f32s.reserve(40);
  for (int t = 0; t < 40; ++t) {
    int64_t n = t == 4 ? 0 : t == 9 ? 300007 : 1 + (t * 977) % 3000;
    f32s.push_back(F32::random({n}, 1100 + t));
  }
  Twin<double> f64 = Twin<double>::random({3, 333}, 1200);
  std::vector<TensorRef> gpu, host;
  for (size_t t = 0; t < f32s.size(); ++t) {
    if (t == 20) {
      gpu.push_back(f64.gpu());
      host.push_back(f64.cpu());
    }
    gpu.push_back(f32s[t].gpu());
    host.push_back(f32s[t].cpu());
  }
  F32 norm = F32::zeros({});
  VLORA_ASSERT_OK(ops::globalNorm(*ctx, gpu, norm.gpu()));
  cpu::globalNorm(host, norm.cpu());
  expectTwin("global_norm", norm, 0, 1e-6);
  // The same result twice (a fixed reduction order).
  std::vector<float> first = norm.download();
  VLORA_ASSERT_OK(ops::globalNorm(*ctx, gpu, norm.gpu()));
  EXPECT_EQ(first, norm.download());
  // No inputs: 0.
  VLORA_ASSERT_OK(ops::globalNorm(*ctx, {}, norm.gpu()));
  EXPECT_EQ(norm.download()[0], 0.f);
}

template <typename T>
void runAdamW(Context &ctx, int64_t n, uint32_t seed, double atol,
              double rtol) {
  Twin<T> param = Twin<T>::random({n}, seed), m = Twin<T>::zeros({n}),
          v = Twin<T>::zeros({n}), grad = Twin<T>::zeros({n});
  F32 lr({}, {1e-2f}), decay({}, {0.1f}), scale({}, {0.5f});
  I64 step({}, {0});
  for (int64_t t = 1; t <= 4; ++t) {
    SCOPED_TRACE(testing::Message() << "step " << t);
    std::vector<float> g = randomVector(n, seed + 10 * t);
    grad.host.assign(g.begin(), g.end());
    grad.upload();
    step.host[0] = t;
    step.upload();
    if (t == 3) {
      lr.host[0] = 3e-3f;
      lr.upload();
    }
    bool scaled = t % 2 == 0;
    TensorRef gs = scale.gpu(), cs = scale.cpu();
    // In place, as the runtime calls it.
    VLORA_ASSERT_OK(ops::adamW(ctx, param.gpu(), grad.gpu(), m.gpu(), v.gpu(),
                               lr.gpu(), step.gpu(), decay.gpu(),
                               scaled ? &gs : nullptr, param.gpu(), m.gpu(),
                               v.gpu(), 0.9, 0.999, 1e-8));
    cpu::adamW(param.cpu(), grad.cpu(), m.cpu(), v.cpu(), lr.cpu(), step.cpu(),
               decay.cpu(), scaled ? &cs : nullptr, param.cpu(), m.cpu(),
               v.cpu(), 0.9, 0.999, 1e-8);
    expectTwin("adamW param", param, atol, rtol);
    expectTwin("adamW exp_avg", m, atol, rtol);
    expectTwin("adamW exp_avg_sq", v, atol * 1e-2, rtol);
  }
  VLORA_ASSERT_OK(ops::takeDataError(ctx));
}

TEST_F(OpsMathTest, AdamWInPlaceOverSeveralSteps) {
  runAdamW<float>(*ctx, 1003, 1300, 1e-7, 1e-6);
  runAdamW<float>(*ctx, 1, 1310, 1e-7, 1e-6);
  runAdamW<double>(*ctx, 517, 1320, 1e-12, 1e-10);
}

TEST_F(OpsMathTest, AdamWBadScalarsAreReportedAndChangeNothing) {
  F32 param = F32::random({100}, 1400), grad = F32::random({100}, 1401),
      m = F32::random({100}, 1402, 0, 1), v = F32::random({100}, 1403, 0, 1);
  F32 lr({}, {1e-2f}), decay({}, {0.1f});
  I64 step({}, {0});
  auto call = [&]() {
    return ops::adamW(*ctx, param.gpu(), grad.gpu(), m.gpu(), v.gpu(), lr.gpu(),
                      step.gpu(), decay.gpu(), nullptr, param.gpu(), m.gpu(),
                      v.gpu(), 0.9, 0.999, 1e-8);
  };
  VLORA_ASSERT_OK(call());
  expectRefused(ops::takeDataError(*ctx), "adamw_update", "step 0");
  step.host[0] = 1;
  step.upload();
  lr.host[0] = -1e-3f;
  lr.upload();
  VLORA_ASSERT_OK(call());
  expectRefused(ops::takeDataError(*ctx), "adamw_update", "negative");
  lr.host[0] = 1e-3f;
  lr.upload();
  decay.host[0] = -0.5f;
  decay.upload();
  VLORA_ASSERT_OK(call());
  expectRefused(ops::takeDataError(*ctx), "adamw_update", "negative");
  expectTwin("param untouched", param, 0, 0);
  expectTwin("exp_avg untouched", m, 0, 0);
  expectTwin("exp_avg_sq untouched", v, 0, 0);
}

} // namespace
} // namespace vlora::kernels::cuda::test
