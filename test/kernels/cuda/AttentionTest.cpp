//===- AttentionTest.cpp - flash-style attention vs the reference ---------===//
//
// bf16 with 16-byte aligned buffers runs the tensor-core kernels; bf16 at a
// 2-byte offset runs the CUDA-core kernels, like fp32.
//
//===----------------------------------------------------------------------===//

#include "GpuTest.h"

#include "vlora/kernels/cuda/Attention.h"

namespace vlora::kernels::cuda::test {
namespace {

using AttentionTest = GpuTest;

struct Case {
  int64_t batch, seqQ, seqK, headsQ, headsKV, headDim;
  bool causal, padding, prefix;
};

/// A device tensor `offset` elements into its allocation (offset 1 makes a
/// bf16 tensor 2-byte but not 16-byte aligned).
struct Tensor {
  DeviceBuffer buffer;
  size_t offset = 0;
  DType dtype = DType::F32;
  void *data() const {
    return static_cast<char *>(buffer.data()) +
           offset * (dtype == DType::BF16 ? 2 : 4);
  }
};

Tensor toDeviceAt(const std::vector<float> &values, DType dtype,
                  size_t offset) {
  std::vector<float> padded(offset, 0.f);
  padded.insert(padded.end(), values.begin(), values.end());
  return Tensor{toDevice(padded, dtype), offset, dtype};
}

std::vector<float> fromDeviceAt(const Tensor &t, size_t n) {
  std::vector<float> all = fromDevice(t.buffer, n + t.offset, t.dtype);
  return std::vector<float>(all.begin() + t.offset, all.end());
}

void runCase(Context &ctx, const Case &c, DType dtype,
             bool misaligned = false) {
  SCOPED_TRACE(testing::Message()
               << "batch=" << c.batch << " seqQ=" << c.seqQ << " seqK="
               << c.seqK << " heads=" << c.headsQ << "/" << c.headsKV
               << " headDim=" << c.headDim << " causal=" << c.causal
               << " padding=" << c.padding << " prefix=" << c.prefix << " "
               << dtypeLabel(dtype) << (misaligned ? " misaligned" : ""));
  const size_t at = misaligned ? 1 : 0;
  size_t nq = c.batch * c.seqQ * c.headsQ * c.headDim;
  size_t nk = c.batch * c.seqK * c.headsKV * c.headDim;
  size_t nl = c.batch * c.headsQ * c.seqQ;
  auto q = asStored(randomVector(nq, 1, -2, 2), dtype);
  auto k = asStored(randomVector(nk, 2, -2, 2), dtype);
  auto v = asStored(randomVector(nk, 3), dtype);
  auto dout = asStored(randomVector(nq, 4), dtype);
  std::vector<int32_t> kvLengths(c.batch), prefixLengths(c.batch);
  for (int64_t b = 0; b < c.batch; ++b) {
    kvLengths[b] = static_cast<int32_t>(std::max<int64_t>(1, c.seqK - 3 * b - 1));
    prefixLengths[b] = static_cast<int32_t>(std::min<int64_t>(c.seqK, 5 + 7 * b));
  }
  float scale = 1.f / std::sqrt(static_cast<float>(c.headDim));
  ref::AttentionMask mask;
  mask.causal = c.causal;
  mask.kvLengths = c.padding ? kvLengths.data() : nullptr;
  mask.prefixLengths = c.prefix ? prefixLengths.data() : nullptr;
  std::vector<float> o(nq), lse(nl), dq(nq), dk(nk), dv(nk);
  ref::attentionForward<float>(c.batch, c.seqQ, c.seqK, c.headsQ, c.headsKV,
                               c.headDim, scale, mask, q.data(), k.data(),
                               v.data(), o.data(), lse.data());
  ref::attentionBackward<float>(c.batch, c.seqQ, c.seqK, c.headsQ, c.headsKV,
                                c.headDim, scale, mask, q.data(), k.data(),
                                v.data(), dout.data(), dq.data(), dk.data(),
                                dv.data());

  Tensor dQ = toDeviceAt(q, dtype, at), dK = toDeviceAt(k, dtype, at),
         dV = toDeviceAt(v, dtype, at), dDout = toDeviceAt(dout, dtype, at),
         dO = toDeviceAt(std::vector<float>(nq), dtype, at),
         dDq = toDeviceAt(std::vector<float>(nq), dtype, at),
         dDk = toDeviceAt(std::vector<float>(nk), dtype, at),
         dDv = toDeviceAt(std::vector<float>(nk), dtype, at);
  DeviceBuffer dLse = toDevice(std::vector<float>(nl), DType::F32),
               dKvLen = toDeviceRaw(kvLengths),
               dPrefix = toDeviceRaw(prefixLengths);
  AttentionShape shape;
  shape.batch = c.batch;
  shape.seqQ = c.seqQ;
  shape.seqK = c.seqK;
  shape.headsQ = c.headsQ;
  shape.headsKV = c.headsKV;
  shape.headDim = c.headDim;
  shape.dtype = dtype;
  shape.causal = c.causal;
  shape.kvLengths = c.padding ? dKvLen.as<int32_t>() : nullptr;
  shape.prefixLengths = c.prefix ? dPrefix.as<int32_t>() : nullptr;
  DeviceBuffer workspace;
  VLORA_ASSERT_OK(
      DeviceBuffer::allocate(attentionBackwardWorkspace(shape), workspace));
  VLORA_ASSERT_OK(attentionForward(ctx, shape, dQ.data(), dK.data(), dV.data(),
                                   dO.data(), dLse.as<float>()));
  // The backward pass reads the stored o (bf16 when the run is bf16).
  VLORA_ASSERT_OK(attentionBackward(ctx, shape, dQ.data(), dK.data(),
                                    dV.data(), dO.data(), dLse.as<float>(),
                                    dDout.data(), dDq.data(), dDk.data(),
                                    dDv.data(), workspace.data()));
  VLORA_ASSERT_OK(ctx.synchronize());

  std::vector<float> gotLse = fromDevice(dLse, nl, DType::F32);
  for (size_t i = 0; i < nl; ++i) // -inf rows: compare as equal
    if (std::isinf(lse[i]) && std::isinf(gotLse[i]))
      gotLse[i] = lse[i] = 0;
  expectClose("attention lse", gotLse, lse, 1e-4, 1e-5);
  expectMatches("attention o", dtype, fromDeviceAt(dO, nq), o, 1e-5, 1e-4);
  if (dtype == DType::F32) {
    expectClose("attention dq", fromDeviceAt(dDq, nq), dq, 1e-4, 1e-3);
    expectClose("attention dk", fromDeviceAt(dDk, nk), dk, 1e-4, 1e-3);
    expectClose("attention dv", fromDeviceAt(dDv, nk), dv, 1e-4, 1e-3);
  } else {
    // The bf16 reference is the fp32 result rounded once, which is tighter
    // than a bf16 implementation: the GPU also reads the stored bf16 o for
    // delta = rowsum(dO∘O). Allow one bf16 ulp of the largest gradient on
    // top of the flash rule for that.
    auto ulpOfMax = [](const std::vector<float> &x) {
      float mx = 0;
      for (float e : x)
        mx = std::max(mx, std::fabs(e));
      return mx / 256.0;
    };
    expectFlashRule("attention dq", fromDeviceAt(dDq, nq), roundedToBF16(dq),
                    dq, ulpOfMax(dq));
    expectFlashRule("attention dk", fromDeviceAt(dDk, nk), roundedToBF16(dk),
                    dk, ulpOfMax(dk));
    expectFlashRule("attention dv", fromDeviceAt(dDv, nk), roundedToBF16(dv),
                    dv, ulpOfMax(dv));
  }
}

TEST_F(AttentionTest, ForwardBackwardOverShapesAndMasks) {
  const Case cases[] = {
      {1, 1, 1, 1, 1, 64, false, false, false},
      {2, 17, 17, 2, 2, 64, true, false, false},
      {1, 77, 77, 4, 2, 80, true, true, false},   // GQA, padding
      {2, 45, 45, 4, 1, 128, true, false, true},  // MQA, prefix-LM
      {1, 33, 70, 2, 2, 128, true, true, true},   // seqQ < seqK
      {2, 50, 31, 3, 3, 80, false, true, false},  // seqQ > seqK, no causal
  };
  for (DType dtype : {DType::F32, DType::BF16})
    for (const Case &c : cases)
      runCase(*ctx, c, dtype);
}

// Several query and key tiles (64 on the tensor-core path) at every head
// dimension, ragged ends, seqQ != seqK, GQA, and rows that see no key
// (causal with seqQ > seqK: o = 0, lse = -inf).
TEST_F(AttentionTest, TensorCoreTilesOverShapesAndMasks) {
  const Case cases[] = {
      {1, 300, 300, 2, 1, 64, true, true, true},    // GQA, all masks
      {2, 200, 260, 4, 2, 80, true, false, true},   // seqQ < seqK, prefix
      {1, 257, 190, 2, 2, 128, false, true, false}, // seqQ > seqK, padding
      {1, 300, 300, 2, 2, 128, true, false, false},
      {1, 130, 400, 2, 1, 64, false, false, false}, // MQA, long keys
      {1, 100, 40, 2, 1, 80, true, false, false},   // rows with no key
      {2, 100, 40, 2, 2, 64, true, true, true},
      {1, 65, 129, 2, 2, 128, true, true, false}, // one past a tile
  };
  for (DType dtype : {DType::F32, DType::BF16})
    for (const Case &c : cases)
      runCase(*ctx, c, dtype);
}

// bf16 tensors that are not 16-byte aligned take the CUDA-core kernels.
TEST_F(AttentionTest, MisalignedBF16UsesTheGenericPath) {
  const Case cases[] = {
      {1, 77, 77, 4, 2, 80, true, true, false},
      {1, 70, 90, 2, 1, 64, true, true, true},
  };
  for (const Case &c : cases)
    runCase(*ctx, c, DType::BF16, /*misaligned=*/true);
}

TEST_F(AttentionTest, RefusesUnsupportedHeadDim) {
  DeviceBuffer buffer;
  VLORA_ASSERT_OK(DeviceBuffer::allocate(4096, buffer));
  AttentionShape shape;
  shape.batch = shape.seqQ = shape.seqK = shape.headsQ = shape.headsKV = 1;
  shape.headDim = 96;
  expectRefused(attentionForward(*ctx, shape, buffer.data(), buffer.data(),
                                 buffer.data(), buffer.data(),
                                 buffer.as<float>()),
                "attentionForward [batch=1", "head dimension must be 64, 80 or 128");
  shape.headDim = 64;
  shape.headsQ = 3;
  shape.headsKV = 2;
  expectRefused(attentionForward(*ctx, shape, buffer.data(), buffer.data(),
                                 buffer.data(), buffer.data(),
                                 buffer.as<float>()),
                "attentionForward", "multiple of headsKV");
}

} // namespace
} // namespace vlora::kernels::cuda::test
