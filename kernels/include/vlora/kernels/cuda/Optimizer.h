//===- Optimizer.h - multi-tensor AdamW and global norm on CUDA -*- C++ -*-===//

#ifndef VLORA_KERNELS_CUDA_OPTIMIZER_H
#define VLORA_KERNELS_CUDA_OPTIMIZER_H

#include "vlora/kernels/cuda/Device.h"

#include <vector>

namespace vlora::kernels::cuda {

/// One fp32 parameter with its gradient and AdamW state (all `size`
/// elements, device memory).
struct AdamWTensor {
  float *param = nullptr;
  const float *grad = nullptr;
  float *expAvg = nullptr;
  float *expAvgSq = nullptr;
  int64_t size = 0;
};

/// torch.optim.AdamW semantics (decoupled weight decay, bias correction).
/// The hyper-parameters are doubles, as torch's Python floats are: the
/// kernel's fp32 scalars (1 - beta2, lr / (1 - beta1^t), ...) are computed
/// from them in double and rounded once (1 - (double)0.999f is 1.3e-5 off
/// 1 - 0.999).
struct AdamWConfig {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0.01;
};

/// One AdamW step (`step` = 1 for the first) over all tensors in a few
/// launches. gradScale, when non-null, is a device fp32 scalar every
/// gradient is multiplied by (the clipping coefficient), read on the device
/// so no host synchronisation is needed.
Status adamW(Context &ctx, const std::vector<AdamWTensor> &tensors,
             const AdamWConfig &config, int64_t step,
             const float *gradScale = nullptr);

/// sumSquares (device fp32 scalar, overwritten) = Σ over all tensors of x².
Status sumOfSquares(Context &ctx, const std::vector<const float *> &tensors,
                    const std::vector<int64_t> &sizes, float *sumSquares);
/// coefficient (device fp32) = min(1, maxNorm / (sqrt(sumSquares) + 1e-6)),
/// torch.nn.utils.clip_grad_norm_'s factor; also writes the norm when
/// `norm` is non-null.
Status clipCoefficient(Context &ctx, const float *sumSquares, float maxNorm,
                       float *coefficient, float *norm);

} // namespace vlora::kernels::cuda

#endif // VLORA_KERNELS_CUDA_OPTIMIZER_H
