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
  /// cuBLASLt heuristic results by problem key (shape, types, layout,
  /// epilogue): the heuristic query costs more than a small GEMM.
  std::map<std::string, cublasLtMatmulAlgo_t> algorithms;
};

} // namespace vlora::kernels::cuda

#endif // VLORA_KERNELS_CUDA_CONTEXTIMPL_H
