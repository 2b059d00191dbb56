//===- BenchKernels.cpp - timings of the CUDA kernels (not a test) --------===//
//
//   vlora-bench-kernels [out.json]
//
// Times, with CUDA events on one stream, the LoRA linear layer against the
// frozen-only GEMMs it replaces, the attention kernels, and the memory-bound
// kernels against a device-to-device copy's bandwidth measured in the same
// run. Writes one JSON object (to the file, or stdout). scripts/gpu-check
// runs it; docs/results.md records the figures.
//
//===----------------------------------------------------------------------===//

#include "vlora/kernels/cuda/Attention.h"
#include "vlora/kernels/cuda/Elementwise.h"
#include "vlora/kernels/cuda/Gemm.h"
#include "vlora/kernels/cuda/Loss.h"
#include "vlora/kernels/cuda/Normalization.h"
#include "vlora/kernels/cuda/Optimizer.h"

#include <cuda_runtime.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

using namespace vlora::kernels;
using namespace vlora::kernels::cuda;

namespace {

bool ok(const Status &status, const char *what) {
  if (!status)
    std::cerr << "vlora-bench-kernels: " << what << ": " << status.message()
              << "\n";
  return status.ok();
}

/// Milliseconds per call of `body` (median-free mean over `iterations` after
/// `warmup` calls), or -1 when a call fails.
double timeMs(Context &ctx, const std::function<Status()> &body,
              int warmup = 3, int iterations = 10) {
  for (int i = 0; i < warmup; ++i)
    if (!ok(body(), "warm-up"))
      return -1;
  cudaStream_t stream = static_cast<cudaStream_t>(ctx.stream());
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  cudaEventRecord(start, stream);
  for (int i = 0; i < iterations; ++i)
    if (!ok(body(), "timed call"))
      return -1;
  cudaEventRecord(stop, stream);
  cudaEventSynchronize(stop);
  float ms = 0;
  cudaEventElapsedTime(&ms, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  if (!ok(ctx.synchronize(), "synchronize"))
    return -1;
  return ms / iterations;
}

DeviceBuffer buffer(size_t bytes) {
  DeviceBuffer b;
  if (ok(DeviceBuffer::allocate(bytes, b), "allocate"))
    (void)b.zero();
  return b;
}

/// Fills a bf16 buffer with small values (0x3c00 ~ 0.0078) so no inf/NaN.
void fillBF16(DeviceBuffer &b) {
  cudaMemset(b.data(), 0x3c, b.bytes());
}

struct Json {
  std::ostringstream out;
  bool first = true;
  void add(const std::string &key, double value) {
    out << (first ? "" : ",\n") << "  \"" << key << "\": " << value;
    first = false;
  }
};

void benchLora(Context &ctx, Json &json, int64_t m, int64_t k, int64_t n,
               int64_t r, const std::string &tag) {
  DeviceBuffer xPad = buffer(m * (k + r) * 2), dyPad = buffer(m * (n + r) * 2),
               wPad = buffer((k + r) * (n + r) * 2), y = buffer(m * n * 2),
               dx = buffer(m * k * 2), a = buffer(r * k * 4),
               b = buffer(n * r * 4), dA = buffer(r * k * 4),
               dB = buffer(n * r * 4);
  fillBF16(xPad);
  fillBF16(dyPad);
  fillBF16(wPad);
  LoraLinearShape shape{m, k, n, r, false, 2.0f};
  // Frozen-only: y = x·W (K = k) and dx = dy·Wᵀ (K = n) on the same buffers.
  auto frozen = [&]() -> Status {
    GemmArgs fwd;
    fwd.m = m;
    fwd.n = n;
    fwd.k = k;
    fwd.a = {xPad.data(), DType::BF16, k + r, 0, false};
    fwd.b = {wPad.data(), DType::BF16, n + r, 0, false};
    fwd.d = y.data();
    fwd.dDtype = DType::BF16;
    fwd.ldd = n;
    if (Status s = gemm(ctx, fwd); !s)
      return s;
    GemmArgs bwd;
    bwd.m = m;
    bwd.n = k;
    bwd.k = n;
    bwd.a = {dyPad.data(), DType::BF16, n + r, 0, false};
    bwd.b = {wPad.data(), DType::BF16, n + r, 0, true};
    bwd.d = dx.data();
    bwd.dDtype = DType::BF16;
    bwd.ldd = k;
    return gemm(ctx, bwd);
  };
  auto lora = [&]() -> Status {
    if (Status s = loraPackAdapters(ctx, shape, a.as<float>(), b.as<float>(),
                                    wPad.data());
        !s)
      return s;
    if (Status s = loraLinearForward(ctx, shape, xPad.data(), wPad.data(),
                                     y.data(), DType::BF16);
        !s)
      return s;
    return loraLinearBackward(ctx, shape, xPad.data(), wPad.data(),
                              dyPad.data(), dx.data(), dA.as<float>(),
                              dB.as<float>());
  };
  double frozenMs = timeMs(ctx, frozen), loraMs = timeMs(ctx, lora);
  json.add(tag + "_frozen_fwd_bwd_ms", frozenMs);
  json.add(tag + "_lora_fwd_bwd_ms", loraMs);
  json.add(tag + "_lora_overhead_ratio", loraMs / frozenMs);
  json.add(tag + "_frozen_tflops", 4.0 * m * n * k / (frozenMs * 1e-3) / 1e12);
}

} // namespace

int main(int argc, char **argv) {
  int count = 0;
  if (Status s = deviceCount(count); !s) {
    std::cerr << "vlora-bench-kernels: " << s.message() << "\n";
    return 2;
  }
  std::unique_ptr<Context> ctx;
  if (!ok(Context::create(ctx), "context"))
    return 1;
  Json json;
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  std::cerr << "device: " << prop.name << "\n";

  // Copy bandwidth: 1 GiB device to device (read + write counted).
  const size_t copyBytes = size_t(1) << 30;
  DeviceBuffer src = buffer(copyBytes), dst = buffer(copyBytes);
  double copyMs = timeMs(*ctx, [&]() -> Status {
    cudaError_t e = cudaMemcpyAsync(dst.data(), src.data(), copyBytes,
                                    cudaMemcpyDeviceToDevice,
                                    static_cast<cudaStream_t>(ctx->stream()));
    return e == cudaSuccess ? Status::success()
                            : Status::failure(cudaGetErrorString(e));
  });
  double copyGBs = 2.0 * copyBytes / (copyMs * 1e-3) / 1e9;
  json.add("copy_GBps", copyGBs);
  src = DeviceBuffer();
  dst = DeviceBuffer();

  benchLora(*ctx, json, 8192, 4096, 4096, 16, "lora_m8192_k4096_n4096_r16");
  benchLora(*ctx, json, 8192, 1280, 1280, 16, "lora_m8192_k1280_n1280_r16");

  { // Attention: batch 1, 16 heads, seq 4096, head dim 128, causal, bf16.
    const int64_t batch = 1, heads = 16, seq = 4096, dim = 128;
    size_t bytes = batch * seq * heads * dim * 2;
    DeviceBuffer q = buffer(bytes), k = buffer(bytes), v = buffer(bytes),
                 o = buffer(bytes), dO = buffer(bytes), dq = buffer(bytes),
                 dk = buffer(bytes), dv = buffer(bytes),
                 lse = buffer(batch * heads * seq * 4);
    fillBF16(q);
    fillBF16(k);
    fillBF16(v);
    fillBF16(dO);
    AttentionShape shape;
    shape.batch = batch;
    shape.seqQ = shape.seqK = seq;
    shape.headsQ = shape.headsKV = heads;
    shape.headDim = dim;
    shape.causal = true;
    DeviceBuffer workspace = buffer(attentionBackwardWorkspace(shape));
    double fwdMs = timeMs(*ctx, [&] {
      return attentionForward(*ctx, shape, q.data(), k.data(), v.data(),
                              o.data(), lse.as<float>());
    }, 1, 3);
    double bwdMs = timeMs(*ctx, [&] {
      return attentionBackward(*ctx, shape, q.data(), k.data(), v.data(),
                               o.data(), lse.as<float>(), dO.data(), dq.data(),
                               dk.data(), dv.data(), workspace.data());
    }, 1, 3);
    double fwdFlops = 4.0 * batch * heads * seq * seq * dim / 2; // causal
    json.add("attention_hd128_s4096_causal_fwd_ms", fwdMs);
    json.add("attention_hd128_s4096_causal_bwd_ms", bwdMs);
    json.add("attention_hd128_s4096_causal_fwd_bwd_tflops",
             3.5 * fwdFlops / ((fwdMs + bwdMs) * 1e-3) / 1e12);
  }

  { // Memory-bound kernels: effective bandwidth = bytes moved / time.
    const int64_t rows = 16384, cols = 4096, n = rows * cols;
    DeviceBuffer x = buffer(n * 2), y = buffer(n * 2), dy = buffer(n * 2),
                 gamma = buffer(cols * 4), stats = buffer(rows * 4),
                 mean = buffer(rows * 4);
    fillBF16(x);
    fillBF16(dy);
    RowsShape shape{rows, cols, DType::BF16};
    auto report = [&](const std::string &name, double ms, double bytes) {
      double gbs = bytes / (ms * 1e-3) / 1e9;
      json.add(name + "_ms", ms);
      json.add(name + "_GBps", gbs);
      json.add(name + "_fraction_of_copy", gbs / copyGBs);
    };
    report("rmsnorm_fwd_bf16_16384x4096", timeMs(*ctx, [&] {
             return rmsNormForward(*ctx, shape, x.data(), gamma.as<float>(),
                                   1e-6f, y.data(), stats.as<float>());
           }), 4.0 * n);
    report("rmsnorm_bwd_bf16_16384x4096", timeMs(*ctx, [&] {
             return rmsNormBackward(*ctx, shape, dy.data(), x.data(),
                                    gamma.as<float>(), stats.as<float>(),
                                    y.data(), nullptr);
           }), 6.0 * n);
    report("layernorm_fwd_bf16_16384x4096", timeMs(*ctx, [&] {
             return layerNormForward(*ctx, shape, x.data(), gamma.as<float>(),
                                     nullptr, 1e-5f, y.data(),
                                     mean.as<float>(), stats.as<float>());
           }), 4.0 * n);
    report("softmax_fwd_bf16_16384x4096", timeMs(*ctx, [&] {
             return softmaxForward(*ctx, shape, x.data(), 1.f, y.data());
           }), 4.0 * n);
    report("gelu_fwd_bf16_64M", timeMs(*ctx, [&] {
             return geluForward(*ctx, n, DType::BF16, x.data(),
                                GeluApproximation::Tanh, y.data());
           }), 4.0 * n);

    const int64_t ceRows = 4096, vocab = 32064;
    DeviceBuffer logits = buffer(ceRows * vocab * 2),
                 labels = buffer(ceRows * 8), losses = buffer(ceRows * 4);
    fillBF16(logits);
    report("cross_entropy_bf16_4096x32064", timeMs(*ctx, [&] {
             return crossEntropy(*ctx, ceRows, vocab, DType::BF16,
                                 logits.data(), labels.as<int64_t>(), -100,
                                 losses.as<float>(), true, 1.f);
           }), 3.0 * ceRows * vocab * 2);

    const int64_t params = 64 << 20;
    DeviceBuffer p = buffer(params * 4), g = buffer(params * 4),
                 m1 = buffer(params * 4), m2 = buffer(params * 4);
    std::vector<AdamWTensor> list{{p.as<float>(), g.as<float>(),
                                   m1.as<float>(), m2.as<float>(), params}};
    report("adamw_fp32_64M", timeMs(*ctx, [&] {
             return adamW(*ctx, list, AdamWConfig{}, 1);
           }), 28.0 * params);
  }

  std::string text = "{\n" + json.out.str() + "\n}\n";
  if (argc > 1) {
    std::ofstream(argv[1]) << text;
  }
  std::cout << text;
  return 0;
}
