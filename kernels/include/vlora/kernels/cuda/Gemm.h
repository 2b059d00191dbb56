//===- Gemm.h - cuBLASLt GEMMs and the LoRA linear layer --------*- C++ -*-===//
//
// Row-major GEMMs through cuBLASLt with fp32 accumulation, and the LoRA
// linear layer y = x·W + s·(x·Aᵀ)·Bᵀ (PEFT layout: A [r, k], B [n, r]) for a
// frozen bf16 W and fp32 master adapters.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_KERNELS_CUDA_GEMM_H
#define VLORA_KERNELS_CUDA_GEMM_H

#include "vlora/kernels/cuda/Device.h"

namespace vlora::kernels::cuda {

/// One GEMM operand: a row-major matrix with leading dimension `ld`
/// (elements), stored transposed when `transpose`, one matrix every
/// `batchStride` elements.
struct GemmOperand {
  const void *data = nullptr;
  DType dtype = DType::BF16;
  int64_t ld = 0;
  int64_t batchStride = 0;
  bool transpose = false;
};

/// d[m,n] = alpha·op(a)·op(b) + beta·d + bias[n], `batch` times.
/// a and b are both bf16 (d bf16 or f32) or both f32 (d f32); accumulation is
/// fp32 (TF32 tensor cores for f32 inputs only when allowTF32). The bias has
/// d's element type. beta = 1 accumulates into d.
struct GemmArgs {
  int64_t m = 0, n = 0, k = 0, batch = 1;
  GemmOperand a, b;
  void *d = nullptr;
  DType dDtype = DType::BF16;
  int64_t ldd = 0;
  int64_t batchStrideD = 0;
  float alpha = 1, beta = 0;
  const void *bias = nullptr;
  bool allowTF32 = false;
  /// > 0: plan for this many multiprocessors, leaving the others to work
  /// running beside the GEMM on another stream (cuBLASLt's SM count target).
  int smCountTarget = 0;
};
Status gemm(Context &ctx, const GemmArgs &args);

/// The LoRA linear layer with the low-rank term folded into the big GEMMs by
/// concatenation along K, so that no extra pass over y or dx is needed:
///   y  = [x | s·x·Aᵀ] · [W ; Bᵀ]            (K' = k + r)
///   dx = [dy | s·dy·B] · [W | Aᵀ]ᵀ           (K' = n + r)
/// The caller lays the buffers out with room for the concatenation:
///  - xPad  bf16 [m, k + r]: columns [0, k) hold x; the forward pass writes
///          s·x·Aᵀ into columns [k, k + r) and the backward pass reads it.
///  - dyPad bf16 [m, n + r]: columns [0, n) hold dy; the backward pass writes
///          s·dy·B into columns [n, n + r).
///  - wPad  bf16, W at the top left: [k + r, n + r] holding W [k, n], or with
///          transposeW (y = x·Wᵀ, nn.Linear's layout) [n + r, k + r] holding
///          W [n, k]. loraPackAdapters writes bf16 copies of A and B into the
///          free slots; the last r×r corner is unused.
struct LoraLinearShape {
  int64_t m = 0, k = 0, n = 0, r = 0;
  bool transposeW = false;
  float scale = 1;
};
/// Rounds the fp32 masters a [r, k] and b [n, r] into wPad's adapter slots.
Status loraPackAdapters(Context &ctx, const LoraLinearShape &shape,
                        const float *a, const float *b, void *wPad);
/// y [m, n] (bf16 or f32, leading dimension n); accumulate adds into y.
Status loraLinearForward(Context &ctx, const LoraLinearShape &shape,
                         void *xPad, const void *wPad, void *y, DType yDtype,
                         bool accumulate = false);
/// dx [m, k] bf16 (may be null: x needs no gradient), dA [r, k] and
/// dB [n, r] fp32. accumulateDx / accumulateGrads add instead of overwrite
/// (gradient accumulation). xPad must hold the forward pass's s·x·Aᵀ.
Status loraLinearBackward(Context &ctx, const LoraLinearShape &shape,
                          const void *xPad, const void *wPad, void *dyPad,
                          void *dx, float *dA, float *dB,
                          bool accumulateDx = false,
                          bool accumulateGrads = false);

} // namespace vlora::kernels::cuda

#endif // VLORA_KERNELS_CUDA_GEMM_H
