//===- DeviceMemory.h - what the CUDA backend allocates ---------*- C++ -*-===//
//
// The device memory model of runtime/cuda, without CUDA: vlora-compile's
// --report-memory predicts the GPU peak of vlora-run / vlora-train from it,
// and the CUDA backend checks free memory with it and measures itself
// against it.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_RUNTIME_DEVICEMEMORY_H
#define VLORA_RUNTIME_DEVICEMEMORY_H

#include "runtime/Program.h"

#include <cstdint>
#include <string>
#include <vector>

namespace vlora::runtime {

/// Every device allocation of the CUDA backend is rounded up to this.
constexpr uint64_t kCudaAlignment = 256;
/// kernels::cuda::Context::create's two cuBLASLt workspaces (2 x 32 MiB) and
/// its small buffers, per backend.
constexpr uint64_t kCudaContextBytes = (64u << 20) + (1u << 20);

inline uint64_t cudaAlignUp(uint64_t n) {
  return (n + kCudaAlignment - 1) / kCudaAlignment * kCudaAlignment;
}

/// One program on the CUDA backend (bytes).
struct CudaMemoryEstimate {
  uint64_t arena = 0;     // one allocation
  uint64_t weights = 0;   // the weights the steps read, each aligned
  uint64_t constants = 0; // each aligned
  uint64_t context = 0;   // kCudaContextBytes
  /// The largest stream-ordered scratch one step takes (the op twins'
  /// cudaMallocAsync blocks: widened bf16 operands, LoRA's low-rank
  /// intermediates, attention's score blocks, the loss's logits chunk, the
  /// mask ops' positions); steps run one at a time, so the pool's peak.
  uint64_t scratch = 0;
  uint64_t resident() const { return arena + weights + constants + context; }
  uint64_t total() const { return resident() + scratch; }
};

CudaMemoryEstimate estimateCudaMemory(const Program &program);

/// The scratch the CUDA op twins allocate for step `step` of `program`.
uint64_t cudaScratchBytes(const Program &program, const ProgramStep &step);

/// Several programs resident at once (vlora-train: train_step and
/// optimizer_step): their resident bytes add up, the scratch is the largest.
uint64_t cudaPeakBytes(const std::vector<CudaMemoryEstimate> &programs);

/// "arena A, weights W, constants C, kernel context K, scratch S" in MiB.
std::string describeCudaMemory(const CudaMemoryEstimate &e);

} // namespace vlora::runtime

#endif // VLORA_RUNTIME_DEVICEMEMORY_H
