//===- Normalization.h - LayerNorm, RMSNorm, softmax on CUDA ----*- C++ -*-===//
//
// Row-wise kernels over [rows, cols]. Activations (x, y, dy, dx) share one
// element type, F32 or BF16; parameters (gamma, beta), their gradients and
// the saved statistics are fp32; all arithmetic is fp32.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_KERNELS_CUDA_NORMALIZATION_H
#define VLORA_KERNELS_CUDA_NORMALIZATION_H

#include "vlora/kernels/cuda/Device.h"

namespace vlora::kernels::cuda {

struct RowsShape {
  int64_t rows = 0, cols = 0;
  DType dtype = DType::F32;
};

/// y = (x - mean)·rstd·gamma + beta (beta may be null); saves mean, rstd
/// [rows] (either may be null when no backward pass follows).
Status layerNormForward(Context &ctx, const RowsShape &shape, const void *x,
                        const float *gamma, const float *beta, float eps,
                        void *y, float *mean, float *rstd);
/// dx (overwritten); dgamma, dbeta [cols] are accumulated (+=) and may be
/// null (frozen norms).
Status layerNormBackward(Context &ctx, const RowsShape &shape, const void *dy,
                         const void *x, const float *gamma, const float *mean,
                         const float *rstd, void *dx, float *dgamma,
                         float *dbeta);
/// y = x·rstd·gamma, rstd = 1/sqrt(mean(x²) + eps) saved (may be null).
Status rmsNormForward(Context &ctx, const RowsShape &shape, const void *x,
                      const float *gamma, float eps, void *y, float *rstd);
Status rmsNormBackward(Context &ctx, const RowsShape &shape, const void *dy,
                       const void *x, const float *gamma, const float *rstd,
                       void *dx, float *dgamma);
/// y = softmax(scale·x) per row (y may alias x).
Status softmaxForward(Context &ctx, const RowsShape &shape, const void *x,
                      float scale, void *y);
/// dx = scale·y·(dy - Σ dy·y) (dx may alias dy).
Status softmaxBackward(Context &ctx, const RowsShape &shape, const void *y,
                       const void *dy, float scale, void *dx);

} // namespace vlora::kernels::cuda

#endif // VLORA_KERNELS_CUDA_NORMALIZATION_H
