//===- CudaBackend.cpp - runs a program with the CUDA kernels -------------===//
//
// The CUDA twin of runtime/cpu/CpuBackend.cpp. prepare() refuses the steps
// the CUDA op kernels lack, checks that the program fits in free device
// memory (and says what to lower when it does not), makes one allocation for
// the arena and one for the weights and constants, and uploads those once.
// Every step dispatches to its twin in vlora/kernels/cuda/Ops.h on the
// backend's own stream, with TensorRefs built as the CPU backend builds them
// but pointing at device memory. The first run() executes the steps eagerly
// (cuBLASLt picks its algorithms then); later runs replay the step list,
// captured once into a CUDA graph, or run eagerly when the capture failed.
// Inputs arrive through write() into the arena, so the graph's pointers stay
// valid from run to run.
//
// Environment (debugging):
//   VLORA_CUDA_CHECK=cpu   runs every step on the GPU and on a CPU backend
//                          (its own host arena) and compares each step's
//                          outputs: fp32/f64 within 1e-4 relative + 1e-5 of
//                          the largest |cpu value|, bf16/f16 within 1e-2 of
//                          both, integers and bools exactly. Every step that
//                          differs is reported on stderr; the GPU then gets
//                          the CPU's outputs so each kernel is checked on
//                          exactly the CPU's inputs; run() fails with the
//                          first one.
//   VLORA_CUDA_CHECK=sync  synchronises after every step, so a kernel fault
//                          or a data error names its step (no graph).
//   VLORA_CUDA_GRAPHS=0    never captures a graph.
//   VLORA_VERBOSE=1        says on stderr whether the graph was captured.
//
//===----------------------------------------------------------------------===//

#include "runtime/Backend.h"
#include "runtime/DeviceMemory.h"
#include "runtime/ValueComparison.h"
#include "vlora/kernels/cuda/Device.h"
#include "vlora/kernels/cuda/Ops.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace vlora::runtime {
using kernels::DType;
namespace cu = kernels::cuda;
namespace ops = kernels::cuda::ops;

namespace {
constexpr uint64_t kAlignment = kCudaAlignment;
/// Room for what is allocated outside our control and outside the model of
/// runtime/DeviceMemory.h: kernel modules loaded on first launch, cuBLASLt's
/// internal state, CUDA graph nodes, cub's temporary storage.
constexpr uint64_t kReserveBytes = 128u << 20;

/// The process's device memory (DeviceMemoryUse): the device's used bytes
/// before the first backend allocated, the most seen since, and the sum of
/// the prepared programs' predictions (resident parts add, scratch is the
/// largest, as in cudaPeakBytes).
struct MemoryLedger {
  bool started = false;
  uint64_t baseline = 0, peak = 0;
  std::vector<CudaMemoryEstimate> programs;

  static MemoryLedger &get() {
    static MemoryLedger ledger;
    return ledger;
  }
  static uint64_t used() {
    size_t freeBytes = 0, totalBytes = 0;
    if (cudaMemGetInfo(&freeBytes, &totalBytes) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return totalBytes - freeBytes;
  }
  void start() {
    if (started)
      return;
    started = true;
    baseline = used();
    // The stream-ordered pool keeps what it reserved: its high-water mark
    // stays visible to cudaMemGetInfo, and steps reuse it without new
    // cudaMallocs.
    int device = 0;
    cudaMemPool_t pool;
    if (cudaGetDevice(&device) == cudaSuccess &&
        cudaDeviceGetDefaultMemPool(&pool, device) == cudaSuccess) {
      uint64_t keep = UINT64_MAX;
      cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
    }
    cudaGetLastError();
  }
  void sample() {
    uint64_t now = used();
    if (now > baseline)
      peak = std::max(peak, now - baseline);
  }
};
/// The pinned staging buffers that weights are copied through.
constexpr size_t kStagingBytes = 32u << 20;

uint64_t alignUp(uint64_t n) {
  return (n + kAlignment - 1) / kAlignment * kAlignment;
}

std::string cudaText(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ")";
}

/// "1.50 GiB", "12.3 MiB".
std::string memoryText(uint64_t bytes) {
  char text[64];
  double mib = static_cast<double>(bytes) / (1 << 20);
  if (mib >= 1024)
    std::snprintf(text, sizeof(text), "%.2f GiB", mib / 1024);
  else
    std::snprintf(text, sizeof(text), "%.1f MiB", mib);
  return text;
}

bool envFlag(const char *name) {
  const char *v = std::getenv(name);
  return v && *v && std::strcmp(v, "0") != 0;
}

/// The element types the CUDA op twins compute in (as the CPU kernels: f32
/// and f64 for the float kernels; matmul also bf16; the LoRA kernels and the
/// fused linear cross-entropy f32 only). The twins still refuse, with a
/// message naming the function, any they lack.
bool isF32OrF64(DType d) { return d == DType::F32 || d == DType::F64; }
bool isDeviceArithmetic(DType d) {
  return d == DType::F32 || d == DType::F64 || d == DType::I64 ||
         d == DType::I32;
}

/// A pinned double buffer that weights are copied through: the host copies
/// one chunk (faulting in the mapped file) while the DMA engine moves the
/// previous one.
class PinnedStaging {
public:
  ~PinnedStaging() {
    for (int i = 0; i < 2; ++i) {
      if (used_[i])
        cudaEventSynchronize(done_[i]); // the DMA may still read the buffer
      if (done_[i])
        cudaEventDestroy(done_[i]);
      if (buffer_[i])
        cudaFreeHost(buffer_[i]);
    }
  }
  /// False when pinned memory is not available (plain copies then).
  bool create() {
    for (int i = 0; i < 2; ++i) {
      if (cudaHostAlloc(&buffer_[i], kStagingBytes, cudaHostAllocDefault) !=
          cudaSuccess) {
        buffer_[i] = nullptr;
        cudaGetLastError();
        return false;
      }
      if (cudaEventCreateWithFlags(&done_[i], cudaEventDisableTiming) !=
          cudaSuccess) {
        done_[i] = nullptr;
        cudaGetLastError();
        return false;
      }
    }
    return true;
  }
  /// Queues the copy of `bytes` from `host` to `device` on `stream`.
  cudaError_t copy(void *device, const void *host, size_t bytes,
                   cudaStream_t stream) {
    const auto *from = static_cast<const uint8_t *>(host);
    auto *to = static_cast<uint8_t *>(device);
    for (size_t offset = 0; offset < bytes; offset += kStagingBytes) {
      size_t n = std::min(kStagingBytes, bytes - offset);
      int slot = next_;
      next_ ^= 1;
      if (used_[slot])
        if (cudaError_t e = cudaEventSynchronize(done_[slot]); e != cudaSuccess)
          return e;
      std::memcpy(buffer_[slot], from + offset, n);
      if (cudaError_t e = cudaMemcpyAsync(to + offset, buffer_[slot], n,
                                          cudaMemcpyHostToDevice, stream);
          e != cudaSuccess)
        return e;
      if (cudaError_t e = cudaEventRecord(done_[slot], stream);
          e != cudaSuccess)
        return e;
      used_[slot] = true;
    }
    return cudaSuccess;
  }

private:
  void *buffer_[2] = {nullptr, nullptr};
  cudaEvent_t done_[2] = {nullptr, nullptr};
  bool used_[2] = {false, false};
  int next_ = 0;
};

class CudaBackend final : public Backend {
public:
  CudaBackend() {
    const char *check = std::getenv("VLORA_CUDA_CHECK");
    std::string mode = check ? check : "";
    checkCpu_ = mode == "cpu";
    checkSync_ = mode == "sync";
    badCheckMode_ = !mode.empty() && !checkCpu_ && !checkSync_;
    const char *graphs = std::getenv("VLORA_CUDA_GRAPHS");
    graphs_ = !(graphs && std::strcmp(graphs, "0") == 0);
    verbose_ = envFlag("VLORA_VERBOSE");
  }

  ~CudaBackend() override {
    if (stream_)
      cudaStreamSynchronize(stream_);
    if (graph_)
      cudaGraphExecDestroy(graph_);
    ctx_.reset();
    arena_ = cu::DeviceBuffer();
    resident_ = cu::DeviceBuffer();
    if (stream_)
      cudaStreamDestroy(stream_);
  }

  const char *name() const override { return "cuda"; }

  Status prepare(const Program &program,
                 const std::vector<const void *> &weights) override {
    program_ = &program;
    if (badCheckMode_)
      return Error("VLORA_CUDA_CHECK must be 'cpu' (compare every step with "
                   "the cpu backend) or 'sync' (synchronise after every step)");
    for (size_t i = 0; i < program.steps.size(); ++i) {
      std::string problem = unsupported(program.steps[i]);
      if (!problem.empty())
        return Error(program.source + ": " + program.steps[i].describe(i) +
                     ": the cuda backend " + problem);
    }

    // Where every weight and constant goes in the resident allocation.
    std::vector<bool> weightUsed(program.weights.size(), false);
    for (const ProgramValue &v : program.values)
      if (v.storage == Storage::Weight)
        weightUsed[v.weight] = true;
    uint64_t weightBytes = 0, constantBytes = 0;
    std::vector<uint64_t> weightOffset(program.weights.size(), 0);
    for (size_t w = 0; w < program.weights.size(); ++w) {
      if (!weightUsed[w])
        continue;
      weightOffset[w] = weightBytes;
      weightBytes += alignUp(program.weights[w].length);
    }
    std::vector<uint64_t> constantOffset(program.values.size(), 0);
    for (size_t i = 0; i < program.values.size(); ++i) {
      const ProgramValue &v = program.values[i];
      if (v.storage != Storage::Constant)
        continue;
      constantOffset[i] = weightBytes + constantBytes;
      constantBytes += alignUp(v.bytes);
    }
    uint64_t arenaBytes = alignUp(std::max<uint64_t>(program.arenaBytes, 1));
    uint64_t residentBytes =
        std::max<uint64_t>(weightBytes + constantBytes, kAlignment);
    estimate_ = estimateCudaMemory(program);

    // Out of memory is reported here, before anything runs (issue 7).
    MemoryLedger &ledger = MemoryLedger::get();
    ledger.start();
    if (Status s = checkFreeMemory(estimate_); !s)
      return s;
    ledger.programs.push_back(estimate_);

    if (cudaError_t e =
            cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking);
        e != cudaSuccess) {
      stream_ = nullptr;
      return Error("cannot create a CUDA stream: " + cudaText(e));
    }
    if (cu::Status s = cu::Context::create(ctx_, stream_); !s)
      return Error("cannot create the CUDA kernel context: " + s.message());
    if (cu::Status s = cu::DeviceBuffer::allocate(arenaBytes, arena_); !s)
      return Error("cannot allocate the arena of " + memoryText(arenaBytes) +
                   " on the GPU: " + s.message());
    if (cu::Status s = cu::DeviceBuffer::allocate(residentBytes, resident_); !s)
      return Error(
          "cannot allocate " + memoryText(residentBytes) +
          " of GPU memory for the weights and constants: " + s.message());
    auto *resident = resident_.as<uint8_t>();
    if (cudaError_t e = cudaMemsetAsync(arena_.data(), 0, arenaBytes, stream_);
        e != cudaSuccess)
      return Error("cannot clear the arena: " + cudaText(e));

    // Upload the weights (through pinned staging when available) and the
    // constants once.
    weightPointers_.assign(program.weights.size(), nullptr);
    PinnedStaging staging;
    bool pinned = weightBytes >= kStagingBytes && staging.create();
    for (size_t w = 0; w < program.weights.size(); ++w) {
      if (!weightUsed[w])
        continue;
      weightPointers_[w] = resident + weightOffset[w];
      uint64_t length = program.weights[w].length;
      if (length == 0)
        continue;
      cudaError_t e =
          pinned ? staging.copy(weightPointers_[w], weights[w], length, stream_)
                 : cudaMemcpyAsync(weightPointers_[w], weights[w], length,
                                   cudaMemcpyHostToDevice, stream_);
      if (e == cudaSuccess && !pinned)
        e = cudaStreamSynchronize(stream_); // the host bytes may go away
      if (e != cudaSuccess)
        return Error("cannot copy weight '" + program.weights[w].name + "' (" +
                     memoryText(length) + ") to the GPU: " + cudaText(e));
    }
    constantPointers_.assign(program.values.size(), nullptr);
    for (size_t i = 0; i < program.values.size(); ++i) {
      const ProgramValue &v = program.values[i];
      if (v.storage != Storage::Constant)
        continue;
      constantPointers_[i] = resident + constantOffset[i];
      if (v.bytes == 0)
        continue;
      if (cudaError_t e =
              cudaMemcpyAsync(constantPointers_[i], v.constant.data(), v.bytes,
                              cudaMemcpyHostToDevice, stream_);
          e != cudaSuccess)
        return Error("cannot copy " + program.describeValue(i) +
                     " (a constant) to the GPU: " + cudaText(e));
    }
    // The device too: Context::create cleared its error word on the legacy
    // stream, which our non-blocking stream does not wait for.
    if (cudaError_t e = cudaDeviceSynchronize(); e != cudaSuccess)
      return Error("cannot copy the weights and constants to the GPU: " +
                   cudaText(e));

    if (checkCpu_) {
      reference_ = createCpuBackend();
      if (Status s = reference_->prepare(program, weights); !s)
        return Error("VLORA_CUDA_CHECK=cpu: " + s.message());
    }
    ledger.sample();
    if (verbose_)
      std::fprintf(stderr, "vlora: cuda: %s: predicted %s (%s)\n",
                   program.source.c_str(), memoryText(estimate_.total()).c_str(),
                   describeCudaMemory(estimate_).c_str());
    return Status::success();
  }

  bool deviceMemory(DeviceMemoryUse &use) const override {
    const MemoryLedger &ledger = MemoryLedger::get();
    use.predicted = cudaPeakBytes(ledger.programs);
    use.measured = ledger.peak;
    return true;
  }

  Status write(uint32_t value, const void *host) override {
    const ProgramValue &v = program_->values[value];
    if (v.storage != Storage::Arena)
      return Error(program_->describeValue(value) + " is not in the arena");
    if (Status s = copyToDevice(pointer(value), host, v.bytes); !s)
      return Error("cannot write " + program_->describeValue(value) +
                   " to the GPU: " + s.message());
    if (reference_)
      return reference_->write(value, host);
    return Status::success();
  }

  const void *address(uint32_t value) const override { return pointer(value); }

  Status copyIn(const std::vector<Copy> &copies) override {
    // Staged through one stream-ordered buffer: every source is read before
    // any value is written.
    uint64_t total = 0;
    std::vector<uint64_t> at;
    for (const Copy &c : copies) {
      const ProgramValue &v = program_->values[c.value];
      if (v.storage != Storage::Arena)
        return Error(program_->describeValue(c.value) + " is not in the arena");
      at.push_back(total);
      total += alignUp(v.bytes);
    }
    if (total == 0)
      return Status::success();
    void *staging = nullptr;
    cudaError_t e = cudaMallocAsync(&staging, total, stream_);
    auto *bytes = static_cast<uint8_t *>(staging);
    for (size_t i = 0; i < copies.size() && e == cudaSuccess; ++i)
      if (uint64_t n = program_->values[copies[i].value].bytes)
        e = cudaMemcpyAsync(bytes + at[i], copies[i].source, n,
                            cudaMemcpyDeviceToDevice, stream_);
    for (size_t i = 0; i < copies.size() && e == cudaSuccess; ++i)
      if (uint64_t n = program_->values[copies[i].value].bytes)
        e = cudaMemcpyAsync(pointer(copies[i].value), bytes + at[i], n,
                            cudaMemcpyDeviceToDevice, stream_);
    if (staging)
      cudaFreeAsync(staging, stream_);
    if (e == cudaSuccess)
      e = cudaStreamSynchronize(stream_);
    if (e != cudaSuccess)
      return Error("cannot copy " + std::to_string(copies.size()) +
                   " values within the GPU: " + cudaText(e));
    for (const Copy &c : copies)
      if (Status s = mirrorToReference(c.value); !s)
        return s;
    return Status::success();
  }

  Status zero(uint32_t value) override {
    const ProgramValue &v = program_->values[value];
    if (v.storage != Storage::Arena)
      return Error(program_->describeValue(value) + " is not in the arena");
    if (v.bytes == 0)
      return Status::success();
    cudaError_t e = cudaMemsetAsync(pointer(value), 0, v.bytes, stream_);
    if (e == cudaSuccess)
      e = cudaStreamSynchronize(stream_);
    if (e != cudaSuccess)
      return Error("cannot clear " + program_->describeValue(value) +
                   " on the GPU: " + cudaText(e));
    return reference_ ? reference_->zero(value) : Status::success();
  }

  Status read(uint32_t value, void *host) override {
    const ProgramValue &v = program_->values[value];
    if (Status s = copyToHost(host, pointer(value), v.bytes); !s)
      return Error("cannot read " + program_->describeValue(value) +
                   " from the GPU: " + s.message());
    return Status::success();
  }

  Status run() override {
    Status s;
    try {
      if (checkCpu_)
        s = runChecked();
      else if (checkSync_)
        s = runEager(true);
      else {
        if (runs_ > 0 && graphs_ && !graph_ && !graphFailed_)
          capture();
        s = graph_ ? runGraph() : runEager(false);
      }
    } catch (const std::bad_alloc &) {
      s = Error("out of host memory while running the steps");
    } catch (const std::exception &e) {
      s = Error(e.what());
    }
    if (s)
      ++runs_;
    // The run's scratch peak stays reserved in the pool: sample it.
    if (s && cudaStreamSynchronize(stream_) == cudaSuccess)
      MemoryLedger::get().sample();
    return s;
  }

  Status runStep(size_t index) override {
    const ProgramStep &step = program_->steps[index];
    if (cu::Status s = launch(step); !s)
      return stepError(index, s.message());
    if (cu::Status s = ops::takeDataError(*ctx_); !s)
      return stepError(index, s.message());
    return Status::success();
  }

private:
  DType dtypeOf(const ProgramStep &s, size_t input) const {
    return program_->values[s.inputs[input]].dtype;
  }
  DType outputDTypeOf(const ProgramStep &s, size_t output) const {
    return program_->values[s.outputs[output]].dtype;
  }

  /// Why the CUDA kernels cannot run `s`, or "".
  std::string unsupported(const ProgramStep &s) const {
    DType d = dtypeOf(s, 0);
    auto no = [&](DType t) {
      return std::string("has no '") + s.kernelName +
             "' kernel for element type " + kernels::dtypeName(t) +
             " (--device cpu has)";
    };
    // bf16 operands of a matmul-family step with an f32 result
    // (--vlora-mixed-precision's weights and activations): the twins run a
    // bf16 GEMM with fp32 accumulation where both are bf16, and otherwise
    // widen exactly and run their f32 path, as the CPU kernels do.
    switch (s.kernel) {
    case Kernel::Unary:
      return ops::supportsUnary(s.unary, d) ? "" : no(d);
    case Kernel::Binary:
      return ops::supportsBinary(s.binary, d) ? "" : no(d);
    case Kernel::Conv:
      return "has no 'conv' kernel (vlora-compile turns patch-embedding "
             "convolutions into matmuls; this one is not one; use --device "
             "cpu)";
    case Kernel::Matmul:
      return isF32OrF64(d) || d == DType::BF16 ? "" : no(d);
    case Kernel::Softmax:
    case Kernel::LogSoftmax:
    case Kernel::LayerNorm:
    case Kernel::RmsNorm:
    case Kernel::GatherGrad:
    case Kernel::CrossEntropy:
    case Kernel::SoftmaxGrad:
    case Kernel::AdamWUpdate:
      return isF32OrF64(d) ? "" : no(d);
    case Kernel::Attention:
    case Kernel::AttentionGrad:
      // The result's type (bf16 q, k, v with f32_result: bf16 GEMMs).
      return isF32OrF64(outputDTypeOf(s, 0)) ? "" : no(outputDTypeOf(s, 0));
    case Kernel::LinearCrossEntropy:
      return outputDTypeOf(s, 1) == DType::F32 ? "" : no(outputDTypeOf(s, 1));
    case Kernel::LoRAMatmul:
    case Kernel::LoRAMatmulGrad: {
      // The result type (lora_matmul's output, lora_matmul_grad's dy) is
      // f32; the adapters are fp32 masters.
      size_t x = s.kernel == Kernel::LoRAMatmul ? 0 : 1;
      DType dx = s.kernel == Kernel::LoRAMatmul ? outputDTypeOf(s, 0)
                                                : dtypeOf(s, 0);
      DType da = dtypeOf(s, x + 2);
      if (dx != DType::F32)
        return no(dx);
      if (da != dx)
        return "has no '" + s.kernelName + "' kernel for " +
               std::string(kernels::dtypeName(dx)) + " activations with " +
               kernels::dtypeName(da) + " adapters";
      return "";
    }
    case Kernel::CrossEntropyGrad:
    case Kernel::LayerNormGrad:
      return isF32OrF64(dtypeOf(s, 1)) ? "" : no(dtypeOf(s, 1));
    case Kernel::GlobalNorm:
      for (size_t i = 0; i < s.inputs.size(); ++i)
        if (!isF32OrF64(dtypeOf(s, i)) && dtypeOf(s, i) != DType::BF16)
          return no(dtypeOf(s, i));
      return "";
    case Kernel::FusedElementwise:
      for (size_t i = 0; i < s.inputs.size(); ++i)
        if (dtypeOf(s, i) != DType::F32 && dtypeOf(s, i) != DType::BF16)
          return no(dtypeOf(s, i));
      return "";
    case Kernel::Cumsum:
    case Kernel::Reduce:
    case Kernel::ArgMax:
      return isDeviceArithmetic(d) ? "" : no(d);
    default:
      return ""; // where, cast and data movement: every element type
    }
  }

  Status checkFreeMemory(const CudaMemoryEstimate &e) const {
    size_t freeBytes = 0, totalBytes = 0;
    if (cudaError_t err = cudaMemGetInfo(&freeBytes, &totalBytes);
        err != cudaSuccess)
      return Error("cannot query the GPU's free memory: " + cudaText(err));
    uint64_t needed = e.total() + kReserveBytes;
    if (needed <= freeBytes)
      return Status::success();
    std::string device = "the GPU";
    int index = 0;
    cudaDeviceProp props;
    if (cudaGetDevice(&index) == cudaSuccess &&
        cudaGetDeviceProperties(&props, index) == cudaSuccess)
      device =
          std::string(props.name) + " (device " + std::to_string(index) + ")";
    else
      cudaGetLastError();
    return Error(
        program_->source + ": not enough GPU memory on " + device +
        ": the program needs " + memoryText(needed) + " (arena " +
        memoryText(e.arena) + ", weights " + memoryText(e.weights) +
        ", constants " + memoryText(e.constants) + ", kernel workspaces " +
        memoryText(e.context) + ", the largest step's scratch " +
        memoryText(e.scratch) + ", reserve " + memoryText(kReserveBytes) +
        ") but " + memoryText(freeBytes) + " of " + memoryText(totalBytes) +
        " are free. The arena shrinks with a smaller micro-batch or sequence "
        "length (vlora-compile --input-shape), fewer LoRA targets "
        "(--target-modules, --finetune-* switches) or a smaller --r; "
        "vlora-compile --report-memory prints it");
  }

  void *pointer(uint32_t value) const {
    const ProgramValue &v = program_->values[value];
    switch (v.storage) {
    case Storage::Arena:
      return arena_.as<uint8_t>() + v.arenaOffset;
    case Storage::Weight:
      return weightPointers_[v.weight];
    case Storage::Constant:
      return constantPointers_[value];
    }
    return nullptr;
  }

  kernels::TensorRef ref(uint32_t value) const {
    const ProgramValue &v = program_->values[value];
    return {pointer(value), v.dtype, v.shape};
  }

  /// Synchronous copies, ordered with the steps on our stream.
  Status copyToDevice(void *device, const void *host, uint64_t bytes) const {
    if (bytes == 0)
      return Status::success();
    cudaError_t e =
        cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, stream_);
    if (e == cudaSuccess)
      e = cudaStreamSynchronize(stream_);
    return e == cudaSuccess ? Status::success() : Status(Error(cudaText(e)));
  }
  Status copyToHost(void *host, const void *device, uint64_t bytes) const {
    if (bytes == 0)
      return Status::success();
    cudaError_t e =
        cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, stream_);
    if (e == cudaSuccess)
      e = cudaStreamSynchronize(stream_);
    return e == cudaSuccess ? Status::success() : Status(Error(cudaText(e)));
  }

  /// VLORA_CUDA_CHECK=cpu: the CPU reference gets the bytes a device copy
  /// wrote (through the host: its memory is not the device's).
  Status mirrorToReference(uint32_t value) {
    if (!reference_)
      return Status::success();
    std::vector<uint8_t> host(program_->values[value].bytes);
    if (Status s = copyToHost(host.data(), pointer(value), host.size()); !s)
      return s;
    return reference_->write(value, host.data());
  }

  Error stepError(size_t index, const std::string &message) const {
    return Error(program_->source + ": " +
                 program_->steps[index].describe(index) + ": " + message);
  }

  /// Queues step `s` on the stream (kernels::cpu's dispatch, on the device).
  cu::Status launch(const ProgramStep &s) {
    std::vector<kernels::TensorRef> in, out;
    for (uint32_t v : s.inputs)
      in.push_back(ref(v));
    for (uint32_t v : s.outputs)
      out.push_back(ref(v));
    cu::Context &c = *ctx_;
    switch (s.kernel) {
    case Kernel::Unary:
      return ops::unary(c, s.unary, in[0], out[0]);
    case Kernel::Binary:
      return ops::binary(c, s.binary, in[0], in[1], out[0]);
    case Kernel::Where:
      return ops::where(c, in[0], in[1], in[2], out[0]);
    case Kernel::Cast:
      return ops::cast(c, in[0], out[0]);
    case Kernel::FusedElementwise:
      return ops::fusedElementwise(c, in, out, s.program, s.registers);
    case Kernel::Matmul:
      return ops::matmul(c, in[0], in[1], out[0], s.transposeA, s.transposeB);
    case Kernel::LoRAMatmul:
      if (in.size() > 4)
        return ops::loraMatmulDropout(c, in[0], in[1], in[2], in[3], in[4],
                                      out[0], s.scale, s.dropout, s.stream,
                                      s.transposeB);
      return ops::loraMatmul(c, in[0], in[1], in[2], in[3], out[0], s.scale,
                             s.transposeB);
    case Kernel::LoRAMatmulGrad:
      return ops::loraMatmulGrad(c, in[0], in[1], in[2], in[3], in[4],
                                 in.size() > 5 ? &in[5] : nullptr, out[0],
                                 out[1], out.size() > 2 ? &out[2] : nullptr,
                                 s.scale, s.dropout, s.stream, s.transposeB);
    case Kernel::CrossEntropy:
      return ops::crossEntropy(c, in[0], in[1], out[0], s.ignoreIndex);
    case Kernel::CrossEntropyGrad:
      return ops::crossEntropyGrad(c, in[0], in[1], in[2], out[0],
                                   s.ignoreIndex);
    case Kernel::LinearCrossEntropy:
      return ops::linearCrossEntropy(c, in[0], in[1], in[2], in[3], out[0],
                                     out[1], s.ignoreIndex, s.transposeB);
    case Kernel::SoftmaxGrad:
      return ops::softmaxGrad(c, in[0], in[1], out[0], s.axis);
    case Kernel::Attention:
      return ops::attention(c, in[0], in[1], in[2],
                            in.size() > 3 ? &in[3] : nullptr, out[0], s.scale,
                            s.transposeK);
    case Kernel::AttentionGrad:
      return ops::attentionGrad(c, in[0], in[1], in[2], in[3],
                                in.size() > 4 ? &in[4] : nullptr, out[0],
                                out[1], out[2], s.scale, s.transposeK);
    case Kernel::LayerNormGrad:
      return ops::layerNormGrad(c, in[0], in[1], in[2], out[0], s.axis,
                                s.epsilon);
    case Kernel::MaskedSelect:
      return ops::maskedSelect(c, in[0], in[1], out[0]);
    case Kernel::GlobalNorm:
      return ops::globalNorm(c, in, out[0]);
    case Kernel::AdamWUpdate:
      return ops::adamW(c, in[0], in[1], in[2], in[3], in[4], in[5], in[6],
                        in.size() > 7 ? &in[7] : nullptr, out[0], out[1],
                        out[2], s.beta1, s.beta2, s.eps);
    case Kernel::Conv:
      return cu::Status::failure("conv: no CUDA kernel");
    case Kernel::Softmax:
      return ops::softmax(c, in[0], out[0], s.axis, false);
    case Kernel::LogSoftmax:
      return ops::softmax(c, in[0], out[0], s.axis, true);
    case Kernel::Cumsum:
      return ops::cumsum(c, in[0], out[0], s.axis, s.exclusive, s.reverse);
    case Kernel::LayerNorm:
      return ops::layerNorm(c, in[0], in[1], in.size() > 2 ? &in[2] : nullptr,
                            out[0], s.axis, s.epsilon);
    case Kernel::RmsNorm:
      return ops::rmsNorm(c, in[0], in[1], out[0], s.axis, s.epsilon);
    case Kernel::Reduce:
      return ops::reduce(c, s.reduce, in[0], out[0], s.axes);
    case Kernel::ArgMax:
      return ops::argmax(c, in[0], out[0], s.axis, s.selectLast);
    case Kernel::Reshape:
      return ops::copy(c, in[0], out[0]);
    case Kernel::Transpose:
      return ops::transpose(c, in[0], out[0], s.perm);
    case Kernel::Slice:
      return ops::slice(c, in[0], out[0], s.starts, s.strides);
    case Kernel::Concat:
      return ops::concat(c, in, out[0], s.axis);
    case Kernel::Split:
      return ops::split(c, in[0], out, s.axis);
    case Kernel::Gather:
      return ops::gather(c, in[0], in[1], out[0], s.axis);
    case Kernel::GatherGrad:
      return ops::gatherGrad(c, in[0], in[1], out[0], s.axis);
    case Kernel::GatherElements:
      return ops::gatherElements(c, in[0], in[1], out[0], s.axis);
    case Kernel::GatherND:
      return ops::gatherND(c, in[0], in[1], out[0]);
    case Kernel::ScatterND:
      return ops::scatterND(c, in[0], in[1], in[2], out[0]);
    case Kernel::MaskedScatter:
      return ops::maskedScatter(c, in[0], in[1], in[2], out[0]);
    case Kernel::Expand:
      return ops::expand(c, in[0], out[0]);
    case Kernel::Pad:
      return ops::pad(c, in[0], out[0], s.pads, s.value);
    case Kernel::Trilu:
      return ops::trilu(c, in[0], out[0], s.upper, s.k);
    }
    return cu::Status::failure("unknown kernel");
  }

  /// After a failed launch: wait for what was queued and drop any data
  /// error it recorded, so the next run starts clean.
  void drain() {
    (void)ctx_->synchronize();
    (void)ops::takeDataError(*ctx_);
  }

  /// Reports a data error (or an asynchronous kernel fault) found after all
  /// steps ran: names the step when only one step has that kernel.
  Status finish() {
    cu::Status s = ops::takeDataError(*ctx_);
    if (s)
      return Status::success();
    const std::string &message = s.message();
    std::string op = message.substr(0, message.find(':'));
    std::vector<size_t> candidates;
    for (size_t i = 0; i < program_->steps.size(); ++i)
      if (program_->steps[i].kernelName == op)
        candidates.push_back(i);
    if (candidates.size() == 1)
      return stepError(candidates[0], message);
    std::string where =
        candidates.empty() ? "a step failed on the GPU"
                           : "one of the " + std::to_string(candidates.size()) +
                                 " '" + op + "' steps failed";
    return Error(program_->source + ": " + where + ": " + message +
                 " (VLORA_CUDA_CHECK=sync names the step)");
  }

  Status runEager(bool syncEachStep) {
    for (size_t i = 0; i < program_->steps.size(); ++i) {
      if (cu::Status s = launch(program_->steps[i]); !s) {
        drain();
        return stepError(i, s.message());
      }
      if (syncEachStep)
        if (cu::Status s = ops::takeDataError(*ctx_); !s)
          return stepError(i, s.message());
    }
    return finish();
  }

  /// Captures the whole step list into a CUDA graph on our stream; on any
  /// failure leaves graph_ null and never tries again.
  void capture() {
    std::string why;
    cudaError_t e =
        cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
      why = "cudaStreamBeginCapture: " + cudaText(e);
    } else {
      for (size_t i = 0; i < program_->steps.size() && why.empty(); ++i) {
        try {
          if (cu::Status s = launch(program_->steps[i]); !s)
            why = program_->steps[i].describe(i) + ": " + s.message();
        } catch (const std::exception &x) {
          why = program_->steps[i].describe(i) + ": " + x.what();
        }
      }
      cudaGraph_t graph = nullptr;
      e = cudaStreamEndCapture(stream_, &graph);
      if (why.empty() && e != cudaSuccess)
        why = "cudaStreamEndCapture: " + cudaText(e);
      if (why.empty() && !graph)
        why = "cudaStreamEndCapture returned no graph";
      if (why.empty()) {
        e = cudaGraphInstantiate(&graph_, graph, 0);
        if (e != cudaSuccess) {
          graph_ = nullptr;
          why = "cudaGraphInstantiate: " + cudaText(e);
        }
      }
      if (graph)
        cudaGraphDestroy(graph);
    }
    if (why.empty()) {
      if (verbose_)
        std::fprintf(
            stderr, "vlora: cuda: %zu steps of %s captured into a CUDA graph\n",
            program_->steps.size(), program_->source.c_str());
      return;
    }
    cudaGetLastError(); // a failed capture leaves no sticky error
    graphFailed_ = true;
    if (verbose_)
      std::fprintf(
          stderr,
          "vlora: cuda: %s: capturing the steps into a CUDA graph failed "
          "(%s); running them eagerly\n",
          program_->source.c_str(), why.c_str());
  }

  Status runGraph() {
    if (cudaError_t e = cudaGraphLaunch(graph_, stream_); e != cudaSuccess) {
      drain();
      return Error(
          program_->source +
          ": cannot launch the CUDA graph of the steps: " + cudaText(e));
    }
    return finish();
  }

  /// VLORA_CUDA_CHECK=cpu: every step on both backends, outputs compared.
  Status runChecked() {
    std::vector<uint64_t> gpu, cpu;
    size_t differing = 0;
    std::string first;
    for (size_t i = 0; i < program_->steps.size(); ++i) {
      const ProgramStep &step = program_->steps[i];
      if (Status s = runStep(i); !s)
        return s;
      if (Status s = reference_->runStep(i); !s)
        return Error("VLORA_CUDA_CHECK=cpu: the cpu backend failed: " +
                     s.message());
      for (size_t o = 0; o < step.outputs.size(); ++o) {
        uint32_t value = step.outputs[o];
        const ProgramValue &v = program_->values[value];
        gpu.assign((v.bytes + 7) / 8, 0);
        cpu.assign((v.bytes + 7) / 8, 0);
        if (Status s = read(value, gpu.data()); !s)
          return s;
        if (Status s = reference_->read(value, cpu.data()); !s)
          return s;
        ValueDifference d = compareValues(
            reinterpret_cast<const uint8_t *>(gpu.data()),
            reinterpret_cast<const uint8_t *>(cpu.data()), v.dtype, v.bytes);
        if (d.differing == 0)
          continue;
        char figures[512];
        std::snprintf(figures, sizeof(figures),
                      "%zu of %zu elements differ, max |gpu - cpu| %.6g "
                      "(tolerance %.3g + %.3g |cpu|, max |cpu| %.6g); first at "
                      "element %zu: gpu %.9g, cpu %.9g",
                      d.differing, d.elements, d.maxError, d.atol, d.rtol,
                      d.maxExpected, d.first, d.firstActual, d.firstExpected);
        std::string message =
            program_->source + ": " + step.describe(i) + ": output " +
            std::to_string(o) + " (" + program_->describeValue(value) + ", " +
            kernels::dtypeName(v.dtype) + kernels::shapeString(v.shape) +
            ") differs from the cpu backend: " + figures;
        std::fprintf(stderr, "vlora: VLORA_CUDA_CHECK=cpu: %s\n",
                     message.c_str());
        if (differing++ == 0)
          first = message;
        // Check the next kernels on exactly the CPU's numbers.
        if (Status s = copyToDevice(pointer(value), cpu.data(), v.bytes); !s)
          return Error("VLORA_CUDA_CHECK=cpu: " + s.message());
      }
    }
    std::fprintf(stderr,
                 "vlora: VLORA_CUDA_CHECK=cpu: %s: %zu steps, %zu outputs "
                 "differ from the cpu backend\n",
                 program_->source.c_str(), program_->steps.size(), differing);
    if (differing)
      return Error(first + (differing > 1
                                ? " (and " + std::to_string(differing - 1) +
                                      " more outputs, listed above)"
                                : std::string()));
    return Status::success();
  }

  const Program *program_ = nullptr;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<cu::Context> ctx_;
  cu::DeviceBuffer arena_, resident_;
  std::vector<void *> weightPointers_;   // by plan weight
  std::vector<void *> constantPointers_; // by value
  cudaGraphExec_t graph_ = nullptr;
  bool graphFailed_ = false;
  long runs_ = 0;
  bool checkCpu_ = false, checkSync_ = false, badCheckMode_ = false;
  bool graphs_ = true, verbose_ = false;
  std::unique_ptr<Backend> reference_; // VLORA_CUDA_CHECK=cpu
  CudaMemoryEstimate estimate_;
};
} // namespace

Expected<std::unique_ptr<Backend>> createCudaBackend() {
  int count = 0;
  if (cu::Status s = cu::deviceCount(count); !s)
    return Error("device 'cuda': " + s.message());
  return std::unique_ptr<Backend>(std::make_unique<CudaBackend>());
}

} // namespace vlora::runtime
