//===- BenchKernels.cpp - timings of the CUDA kernels (not a test) --------===//
//
//   vlora-bench-kernels [out.json] [lora|attention|memory ...]
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
#include "vlora/kernels/cuda/Ops.h"
#include "vlora/kernels/Fused.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <random>
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

/// Milliseconds per call of `body`, after `warmup` eager calls (which also
/// let the GEMMs pick their algorithms). With `graph` (the default) the
/// `iterations` calls are captured once into a CUDA graph and the replays are
/// timed: this is device time, free of the host's launch gaps that a short
/// kernel's eager timing would measure instead (the runtime replays graphs
/// too). Median of 5 replays. -1 when a call fails.
double timeMs(Context &ctx, const std::function<Status()> &body,
              int warmup = 3, int iterations = 10, bool graph = true) {
  for (int i = 0; i < warmup; ++i)
    if (!ok(body(), "warm-up"))
      return -1;
  if (!ok(ctx.synchronize(), "synchronize"))
    return -1;
  cudaStream_t stream = static_cast<cudaStream_t>(ctx.stream());
  cudaGraphExec_t exec = nullptr;
  if (graph) {
    cudaGraph_t captured = nullptr;
    if (cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) !=
        cudaSuccess) {
      std::cerr << "vlora-bench-kernels: cannot capture: "
                << cudaGetErrorString(cudaGetLastError()) << "\n";
      return -1;
    }
    bool good = true;
    for (int i = 0; i < iterations && good; ++i)
      good = ok(body(), "captured call");
    cudaError_t ended = cudaStreamEndCapture(stream, &captured);
    if (!good || ended != cudaSuccess ||
        cudaGraphInstantiate(&exec, captured, 0) != cudaSuccess) {
      std::cerr << "vlora-bench-kernels: capture failed: "
                << cudaGetErrorString(cudaGetLastError()) << "\n";
      if (captured)
        cudaGraphDestroy(captured);
      return -1;
    }
    cudaGraphDestroy(captured);
    cudaGraphLaunch(exec, stream); // upload + warm
  }
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  std::vector<float> times;
  for (int rep = 0; rep < (graph ? 5 : 1); ++rep) {
    cudaEventRecord(start, stream);
    if (graph) {
      cudaGraphLaunch(exec, stream);
    } else {
      for (int i = 0; i < iterations; ++i)
        if (!ok(body(), "timed call"))
          return -1;
    }
    cudaEventRecord(stop, stream);
    cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    times.push_back(ms / iterations);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  if (exec)
    cudaGraphExecDestroy(exec);
  if (!ok(ctx.synchronize(), "synchronize"))
    return -1;
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

DeviceBuffer buffer(size_t bytes) {
  DeviceBuffer b;
  if (ok(DeviceBuffer::allocate(bytes, b), "allocate"))
    (void)b.zero();
  return b;
}

/// Fills a buffer with uniform random values in [-scale, scale] (bf16 or
/// fp32): timing on constants or zeros flatters the tensor cores. A 1 Mi
/// element random block is generated once and tiled over the buffer.
void fillRandom(DeviceBuffer &b, DType dtype, float scale = 1.f,
                unsigned seed = 1) {
  const size_t block = size_t(1) << 20;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-scale, scale);
  std::vector<uint16_t> half(dtype == DType::BF16 ? block : 0);
  std::vector<float> full(dtype == DType::BF16 ? 0 : block);
  for (size_t i = 0; i < block; ++i) {
    float v = uniform(rng);
    if (dtype == DType::BF16) {
      uint32_t bits;
      std::memcpy(&bits, &v, 4);
      half[i] = static_cast<uint16_t>((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
    } else {
      full[i] = v;
    }
  }
  const char *host = dtype == DType::BF16
                         ? reinterpret_cast<const char *>(half.data())
                         : reinterpret_cast<const char *>(full.data());
  size_t chunk = block * (dtype == DType::BF16 ? 2 : 4);
  for (size_t at = 0; at < b.bytes(); at += chunk)
    cudaMemcpy(static_cast<char *>(b.data()) + at, host,
               std::min(chunk, b.bytes() - at), cudaMemcpyHostToDevice);
}
void fillBF16(DeviceBuffer &b) { fillRandom(b, DType::BF16); }

struct Json {
  std::ostringstream out;
  bool first = true;
  void add(const std::string &key, double value) {
    out << (first ? "" : ",\n") << "  \"" << key << "\": " << value;
    first = false;
  }
};

GemmOperand bf16(const void *data, int64_t ld, bool transpose) {
  return {data, DType::BF16, ld, 0, transpose};
}

/// LoRA linear forward + backward (x needs its gradient; W as [k, n]) against
/// the frozen-only GEMMs it replaces (y = x·W, dx = dy·Wᵀ) on the same
/// buffers, with each of the LoRA path's GEMMs also timed alone.
void benchLora(Context &ctx, Json &json, int64_t m, int64_t k, int64_t n,
               int64_t r, const std::string &tag) {
  DeviceBuffer xPad = buffer(m * (k + r) * 2), dyPad = buffer(m * (n + r) * 2),
               wPad = buffer((k + r) * (n + r) * 2), y = buffer(m * n * 2),
               dx = buffer(m * k * 2), a = buffer(r * k * 4),
               b = buffer(n * r * 4), dA = buffer(r * k * 4),
               dB = buffer(n * r * 4), g32 = buffer(m * r * 4);
  fillRandom(xPad, DType::BF16, 1.f, 1);
  fillRandom(dyPad, DType::BF16, 1.f, 2);
  fillRandom(wPad, DType::BF16, 0.02f, 3);
  fillRandom(a, DType::F32, 0.02f, 4);
  fillRandom(b, DType::F32, 0.02f, 5);
  LoraLinearShape shape{m, k, n, r, false, 2.0f};
  const uint16_t *w = wPad.as<uint16_t>();
  uint16_t *x = xPad.as<uint16_t>(), *dy = dyPad.as<uint16_t>();
  auto run = [&](GemmArgs args) { return gemm(ctx, args); };
  auto args = [&](int64_t gm, int64_t gn, int64_t gk, GemmOperand ga,
                  GemmOperand gb, void *d, DType dt, int64_t ldd) {
    GemmArgs g;
    g.m = gm;
    g.n = gn;
    g.k = gk;
    g.a = ga;
    g.b = gb;
    g.d = d;
    g.dDtype = dt;
    g.ldd = ldd;
    return g;
  };
  const int64_t ldx = k + r, ldy = n + r, ldw = n + r;
  GemmArgs fwd = args(m, n, k, bf16(x, ldx, false), bf16(w, ldw, false),
                      y.data(), DType::BF16, n);
  GemmArgs bwd = args(m, k, n, bf16(dy, ldy, false), bf16(w, ldw, true),
                      dx.data(), DType::BF16, k);
  // The LoRA path's pieces, each alone (same operands as loraLinear*).
  GemmArgs u = args(m, r, k, bf16(x, ldx, false), bf16(w + n, ldw, false),
                    x + k, DType::BF16, ldx);
  GemmArgs fwdK = args(m, n, k + r, bf16(x, ldx, false), bf16(w, ldw, false),
                       y.data(), DType::BF16, n);
  GemmArgs g = args(m, r, n, bf16(dy, ldy, false),
                    bf16(w + k * ldw, ldw, true), dy + n, DType::BF16, ldy);
  GemmArgs bwdK = args(m, k, n + r, bf16(dy, ldy, false), bf16(w, ldw, true),
                       dx.data(), DType::BF16, k);
  GemmArgs gradA = args(r, k, m, bf16(dy + n, ldy, true), bf16(x, ldx, false),
                        dA.data(), DType::F32, k);
  GemmArgs gradB = args(n, r, m, bf16(dy, ldy, true), bf16(x + k, ldx, false),
                        dB.data(), DType::F32, r);

  auto frozen = [&]() -> Status {
    if (Status s = run(fwd); !s)
      return s;
    return run(bwd);
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
  // Frozen and LoRA alternate, three rounds, best of each: clocks settle.
  double frozenMs = 1e30, loraMs = 1e30;
  for (int round = 0; round < 3; ++round) {
    frozenMs = std::min(frozenMs, timeMs(ctx, frozen, 3, 20));
    loraMs = std::min(loraMs, timeMs(ctx, lora, 3, 20));
  }
  json.add(tag + "_eager_frozen_fwd_bwd_ms", timeMs(ctx, frozen, 1, 20, false));
  json.add(tag + "_eager_lora_fwd_bwd_ms", timeMs(ctx, lora, 1, 20, false));
  json.add(tag + "_frozen_fwd_bwd_ms", frozenMs);
  json.add(tag + "_lora_fwd_bwd_ms", loraMs);
  json.add(tag + "_lora_overhead_ratio", loraMs / frozenMs);
  json.add(tag + "_frozen_tflops", 4.0 * m * n * k / (frozenMs * 1e-3) / 1e12);
  const std::pair<const char *, GemmArgs *> parts[] = {
      {"fwd_xW", &fwd},      {"bwd_dyWt", &bwd},  {"part_u_xAt", &u},
      {"part_fwd_k_plus_r", &fwdK}, {"part_g_dyB", &g},
      {"part_bwd_n_plus_r", &bwdK}, {"part_dA", &gradA}, {"part_dB", &gradB}};
  for (const auto &[name, part] : parts)
    json.add(tag + "_" + name + "_ms",
             timeMs(ctx, [&] { return run(*part); }, 3, 20));
  ctx.setLoraOverlap(false);
  double serialMs = 1e30;
  for (int round = 0; round < 3; ++round)
    serialMs = std::min(serialMs, timeMs(ctx, lora, 3, 20));
  ctx.setLoraOverlap(true);
  json.add(tag + "_serial_lora_overhead_ratio", serialMs / frozenMs);
  json.add(tag + "_part_pack_ms", timeMs(ctx, [&] {
             return loraPackAdapters(ctx, shape, a.as<float>(), b.as<float>(),
                                     wPad.data());
           }, 3, 20));
  (void)g32;
}

} // namespace

int main(int argc, char **argv) {
  // vlora-bench-kernels [out.json] [section...]: sections lora, attention,
  // memory, fused (default: all; the copy bandwidth is always measured).
  std::vector<std::string> sections(argv + std::min(argc, 2), argv + argc);
  auto wanted = [&](const std::string &name) {
    return sections.empty() ||
           std::find(sections.begin(), sections.end(), name) != sections.end();
  };
  int count = 0;
  if (Status s = deviceCount(count); !s) {
    std::cerr << "vlora-bench-kernels: " << s.message() << "\n";
    return 2;
  }
  // A stream of our own: the legacy default stream cannot be captured.
  cudaStream_t stream = nullptr;
  if (cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) != cudaSuccess) {
    std::cerr << "vlora-bench-kernels: cannot create a stream\n";
    return 1;
  }
  std::unique_ptr<Context> ctx;
  if (!ok(Context::create(ctx, stream), "context"))
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
  }, 3, 10, /*graph=*/false); // a graph's memcpy node may take the copy engine
  double copyGBs = 2.0 * copyBytes / (copyMs * 1e-3) / 1e9;
  json.add("copy_GBps", copyGBs);
  src = DeviceBuffer();
  dst = DeviceBuffer();

  if (wanted("lora")) {
    benchLora(*ctx, json, 8192, 4096, 4096, 16, "lora_m8192_k4096_n4096_r16");
    benchLora(*ctx, json, 8192, 1280, 1280, 16, "lora_m8192_k1280_n1280_r16");
  }
  if (wanted("lora")) { // The same with cuBLASLt's first heuristic choice (no autotuning).
    std::unique_ptr<Context> plain;
    if (ok(Context::create(plain, stream), "context")) {
      plain->setGemmAutotuning(false);
      benchLora(*plain, json, 8192, 4096, 4096, 16,
                "untuned_lora_m8192_k4096_n4096_r16");
      benchLora(*plain, json, 8192, 1280, 1280, 16,
                "untuned_lora_m8192_k1280_n1280_r16");
    }
  }

  if (wanted("attention")) { // Attention: batch 1, 16 heads, seq 4096, head dim 128, causal, bf16.
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

  if (wanted("memory")) { // Memory-bound kernels: effective bandwidth = bytes moved / time.
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
    fillRandom(p, DType::F32, 1.f, 6);
    fillRandom(g, DType::F32, 1e-3f, 7);
    std::vector<AdamWTensor> list{{p.as<float>(), g.as<float>(),
                                   m1.as<float>(), m2.as<float>(), params}};
    report("adamw_fp32_64M", timeMs(*ctx, [&] {
             return adamW(*ctx, list, AdamWConfig{}, 1);
           }), 28.0 * params);
  }

  if (wanted("fused")) {
    // The backend's elementwise ops (runtime/cuda dispatches to
    // kernels/cuda/Ops.h) one kernel per op against one fused program
    // (--vlora-fuse-elementwise), on a SwiGLU of the benchmark model's
    // language MLP: silu(gate) * up in f32, rounded to bf16, 8192 x 5632.
    const int64_t rows = 8192, cols = 5632, n = rows * cols;
    const Shape shape{rows, cols};
    DeviceBuffer gate = buffer(n * 4), up = buffer(n * 4), t1 = buffer(n * 4),
                 t2 = buffer(n * 4), t3 = buffer(n * 4), out = buffer(n * 2);
    fillRandom(gate, DType::F32, 1.f, 8);
    fillRandom(up, DType::F32, 1.f, 9);
    TensorRef g{gate.data(), DType::F32, shape}, u{up.data(), DType::F32, shape},
        a{t1.data(), DType::F32, shape}, b{t2.data(), DType::F32, shape},
        c{t3.data(), DType::F32, shape}, y{out.data(), DType::BF16, shape};
    double opsMs = timeMs(*ctx, [&]() -> Status {
      if (Status st = ops::unary(*ctx, UnaryOp::Sigmoid, g, a); !st)
        return st;
      if (Status st = ops::binary(*ctx, BinaryOp::Mul, g, a, b); !st)
        return st;
      if (Status st = ops::binary(*ctx, BinaryOp::Mul, b, u, c); !st)
        return st;
      return ops::cast(*ctx, c, y);
    });
    const std::vector<int64_t> program{
        int64_t(FusedOp::Sigmoid), 0, -1, int64_t(FusedOp::Mul), 0, 2,
        int64_t(FusedOp::Mul), 3, 1, int64_t(FusedOp::RoundBF16), 4, -1};
    double fusedMs = timeMs(*ctx, [&] {
      return ops::fusedElementwise(*ctx, {g, u}, {y}, program, {5});
    });
    double bytes = 10.0 * n; // two f32 reads, one bf16 write
    json.add("swiglu_8192x5632_ops_ms", opsMs);
    json.add("swiglu_8192x5632_fused_ms", fusedMs);
    json.add("swiglu_8192x5632_fused_speedup", opsMs / fusedMs);
    json.add("swiglu_8192x5632_fused_GBps", bytes / (fusedMs * 1e-3) / 1e9);
    json.add("swiglu_8192x5632_fused_fraction_of_copy",
             bytes / (fusedMs * 1e-3) / 1e9 / copyGBs);
  }

  std::string text = "{\n" + json.out.str() + "\n}\n";
  if (argc > 1) {
    std::ofstream(argv[1]) << text;
  }
  std::cout << text;
  return 0;
}
