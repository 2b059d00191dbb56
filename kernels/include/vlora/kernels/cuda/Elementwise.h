//===- Elementwise.h - activations, rotary, dropout, embedding --*- C++ -*-===//
//
// Elementwise and gather kernels. Tensors share one element type, F32 or
// BF16, unless said otherwise; arithmetic is fp32. Outputs may alias the
// inputs they are computed from element by element.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_KERNELS_CUDA_ELEMENTWISE_H
#define VLORA_KERNELS_CUDA_ELEMENTWISE_H

#include "vlora/kernels/cuda/Device.h"

namespace vlora::kernels::cuda {

enum class GeluApproximation { None, Tanh };

Status geluForward(Context &ctx, int64_t n, DType dtype, const void *x,
                   GeluApproximation approximation, void *y);
Status geluBackward(Context &ctx, int64_t n, DType dtype, const void *x,
                    const void *dy, GeluApproximation approximation, void *dx);
/// y = silu(gate)·up.
Status siluGateForward(Context &ctx, int64_t n, DType dtype, const void *gate,
                       const void *up, void *y);
Status siluGateBackward(Context &ctx, int64_t n, DType dtype, const void *gate,
                        const void *up, const void *dy, void *dgate,
                        void *dup);

/// HF rotate_half rotary embedding on x [batch, seq, heads, headDim]: the
/// first rotaryDim features (even) are rotated, the rest copied. cos/sin fp32
/// [maxPositions, rotaryDim/2]; positions int32 [batch, seq] or null (0..seq-1).
/// inverse = the backward pass (rotation by -θ).
struct RotaryShape {
  int64_t batch = 0, seq = 0, heads = 0, headDim = 0, rotaryDim = 0;
  int64_t maxPositions = 0;
  DType dtype = DType::BF16;
};
Status rotary(Context &ctx, const RotaryShape &shape, const void *x,
              const float *cos, const float *sin, const int32_t *positions,
              bool inverse, void *y);

/// y = x·keep/(1 - p), keep = philox::keep(seed, offset + i, p): the CPU
/// reference's mask. The backward pass is the same call on dy.
Status dropout(Context &ctx, int64_t n, DType dtype, const void *x, float p,
               uint64_t seed, uint64_t offset, void *y);

/// out[t, :] = table[ids[t], :]; ids int64 [tokens] in [0, vocab) (rows
/// for ids out of range are written as zeros).
Status embeddingForward(Context &ctx, int64_t tokens, int64_t dim,
                        int64_t vocab, DType dtype, const void *table,
                        const int64_t *ids, void *out);
/// dtable fp32 [vocab, dim] += scatter of dout [tokens, dim] by ids.
Status embeddingBackward(Context &ctx, int64_t tokens, int64_t dim,
                         int64_t vocab, DType dtype, const void *dout,
                         const int64_t *ids, float *dtable);

/// Element type conversion (F32 <-> BF16, or a copy).
Status convert(Context &ctx, int64_t n, DType from, const void *x, DType to,
               void *y);

} // namespace vlora::kernels::cuda

#endif // VLORA_KERNELS_CUDA_ELEMENTWISE_H
