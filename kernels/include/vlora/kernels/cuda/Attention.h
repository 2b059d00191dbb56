//===- Attention.h - flash-style attention on CUDA --------------*- C++ -*-===//
//
// Tiled attention with an online softmax: no [Sq, Sk] matrix is stored. The
// backward pass recomputes the probabilities from the saved log-sum-exp.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_KERNELS_CUDA_ATTENTION_H
#define VLORA_KERNELS_CUDA_ATTENTION_H

#include "vlora/kernels/cuda/Device.h"

namespace vlora::kernels::cuda {

/// q, o [batch, seqQ, headsQ, headDim]; k, v [batch, seqK, headsKV,
/// headDim] (headsQ a multiple of headsKV: GQA/MQA); lse fp32
/// [batch, headsQ, seqQ]. headDim 64, 80 or 128; F32 or BF16.
/// Masks: key j is visible to query i when j < kvLengths[b] (padding, null =
/// all) and, when causal, j <= i + seqK - seqQ or j < prefixLengths[b]
/// (prefix-LM: image + prompt tokens see each other; null = none). Length
/// arrays are int32 device memory. A query with no visible key gets o = 0.
struct AttentionShape {
  int64_t batch = 0, seqQ = 0, seqK = 0, headsQ = 0, headsKV = 0, headDim = 0;
  DType dtype = DType::BF16;
  float scale = 0; // 0: 1/sqrt(headDim)
  bool causal = false;
  const int32_t *kvLengths = nullptr;
  const int32_t *prefixLengths = nullptr;
};

Status attentionForward(Context &ctx, const AttentionShape &shape,
                        const void *q, const void *k, const void *v, void *o,
                        float *lse);
/// dq, dk, dv like q, k, v (overwritten). `workspace` is fp32 device memory
/// of attentionBackwardWorkspace(shape) bytes.
size_t attentionBackwardWorkspace(const AttentionShape &shape);
Status attentionBackward(Context &ctx, const AttentionShape &shape,
                         const void *q, const void *k, const void *v,
                         const void *o, const float *lse, const void *dout,
                         void *dq, void *dk, void *dv, void *workspace);

} // namespace vlora::kernels::cuda

#endif // VLORA_KERNELS_CUDA_ATTENTION_H
