//===- Loss.h - fused cross-entropy on CUDA ---------------------*- C++ -*-===//

#ifndef VLORA_KERNELS_CUDA_LOSS_H
#define VLORA_KERNELS_CUDA_LOSS_H

#include "vlora/kernels/cuda/Device.h"

namespace vlora::kernels::cuda {

/// Cross-entropy over the vocabulary for a chunk of rows of logits
/// [rows, vocab] (F32 or BF16), labels int64 [rows]: losses fp32 [rows] =
/// logsumexp - logit[label] (0 where label == ignoreIndex). With
/// writeGradient the logits are overwritten in place by
/// gradScale·(softmax - onehot), so the full logits gradient never exists
/// next to the logits; callers run it on chunks of rows right after the
/// lm_head GEMM of that chunk.
Status crossEntropy(Context &ctx, int64_t rows, int64_t vocab, DType dtype,
                    void *logits, const int64_t *labels, int64_t ignoreIndex,
                    float *losses, bool writeGradient, float gradScale);

} // namespace vlora::kernels::cuda

#endif // VLORA_KERNELS_CUDA_LOSS_H
