//===- ContextImpl.h - what a Context holds ---------------------*- CUDA -*-===//

#ifndef VLORA_KERNELS_CUDA_CONTEXTIMPL_H
#define VLORA_KERNELS_CUDA_CONTEXTIMPL_H

#include "vlora/kernels/cuda/Device.h"

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <map>
#include <string>

namespace vlora::kernels::cuda {

struct Context::Impl {
  static constexpr size_t kWorkspaceBytes = 32u << 20;
  cudaStream_t stream = nullptr;
  cublasLtHandle_t lt = nullptr;
  void *workspace = nullptr;
  /// A second stream, with its own cuBLASLt workspace, for work that can
  /// overlap the main stream's (the LoRA backward's skinny gradient GEMMs run
  /// beside the big dx GEMM); forked from and joined to `stream` by events,
  /// so it is also captured into a CUDA graph with it.
  cudaStream_t side = nullptr;
  void *sideWorkspace = nullptr;
  cudaEvent_t fork = nullptr, join = nullptr;
  /// Time the heuristic's candidates on first use of a problem and keep the
  /// fastest (never while the stream is being captured).
  bool autotune = true;
  /// Run the LoRA backward's dA and dB on `side` (else on `stream`).
  bool overlap = true;
  int multiprocessors = 0; // of the current device
  /// Device memory: the first data-dependent failure of an op kernel
  /// (OpsCommon.cuh's DataError), zero when none.
  void *dataError = nullptr;

  /// A GEMM problem's cuBLASLt descriptors and chosen algorithm, built on
  /// its first use and kept: building them and asking the heuristic cost
  /// more host time than a small GEMM takes on the device. `timed` is false
  /// when the first use fell in a stream capture (or autotuning was off), so
  /// the heuristic's first choice was kept; a later uncaptured use times the
  /// candidates.
  struct GemmPlan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t layouts[3] = {nullptr, nullptr, nullptr};
    cublasLtMatmulAlgo_t algo{};
    bool timed = false;
  };
  /// By problem key: shape, types, layout, strides, epilogue, alignments.
  std::map<std::string, GemmPlan> gemmPlans;
};

} // namespace vlora::kernels::cuda

#endif // VLORA_KERNELS_CUDA_CONTEXTIMPL_H
