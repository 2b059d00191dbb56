//===- Reference.h - CPU references for the CUDA kernels --------*- C++ -*-===//
//
// Plain loops, accumulation in double, written to be obviously right: the
// ground truth the CUDA kernels are compared with, and the backward passes
// that the CPU forward kernels (Cpu.h) do not provide. Tensors are row-major
// host arrays of T (float or double; both are instantiated so gradient
// checks can run in double). Layout conventions are the CUDA API's (see
// kernels/include/vlora/kernels/cuda/).
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_KERNELS_REFERENCE_REFERENCE_H
#define VLORA_KERNELS_REFERENCE_REFERENCE_H

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vlora::kernels::reference {

/// Rounds to the nearest bfloat16 (ties to even) and back to float; NaN
/// stays NaN.
float roundToBF16(float value);
/// The 16 bits of roundToBF16(value).
uint16_t toBF16Bits(float value);
float fromBF16Bits(uint16_t bits);

//===----------------------------------------------------------------------===//
// GEMM and LoRA linear (PEFT layout: A [r, k], B [n, r])
//===----------------------------------------------------------------------===//

/// d[m,n] = alpha · op(a) · op(b) + beta · d (+ bias[n]); op(a) [m,k],
/// op(b) [k,n]; a stored [m,k] or, transposed, [k,m] (same for b).
template <typename T>
void gemm(int64_t m, int64_t n, int64_t k, const T *a, bool transposeA,
          const T *b, bool transposeB, T *d, T alpha, T beta,
          const T *bias = nullptr);

/// y[m,n] = x·W + scale·(x·Aᵀ)·Bᵀ with W [k,n] (or [n,k] and x·Wᵀ when
/// transposeW).
template <typename T>
void loraLinearForward(int64_t m, int64_t k, int64_t n, int64_t r,
                       bool transposeW, T scale, const T *x, const T *w,
                       const T *a, const T *b, T *y);
/// dx[m,k] = dy·Wᵀ + scale·(dy·B)·A; dA = scale·(dy·B)ᵀ·x;
/// dB = scale·dyᵀ·(x·Aᵀ). dx may be null. Outputs are overwritten.
template <typename T>
void loraLinearBackward(int64_t m, int64_t k, int64_t n, int64_t r,
                        bool transposeW, T scale, const T *x, const T *w,
                        const T *a, const T *b, const T *dy, T *dx, T *dA,
                        T *dB);

//===----------------------------------------------------------------------===//
// Normalisation over the last dimension of [rows, cols]
//===----------------------------------------------------------------------===//

/// y = (x - mean) · rstd · gamma + beta; beta may be null; mean and rstd
/// [rows] are saved for the backward pass.
template <typename T>
void layerNormForward(int64_t rows, int64_t cols, const T *x, const T *gamma,
                      const T *beta, T eps, T *y, T *mean, T *rstd);
/// dgamma and dbeta may be null; they are overwritten.
template <typename T>
void layerNormBackward(int64_t rows, int64_t cols, const T *dy, const T *x,
                       const T *gamma, const T *mean, const T *rstd, T *dx,
                       T *dgamma, T *dbeta);
/// y = x · rstd · gamma, rstd = 1/sqrt(mean(x²) + eps).
template <typename T>
void rmsNormForward(int64_t rows, int64_t cols, const T *x, const T *gamma,
                    T eps, T *y, T *rstd);
template <typename T>
void rmsNormBackward(int64_t rows, int64_t cols, const T *dy, const T *x,
                     const T *gamma, const T *rstd, T *dx, T *dgamma);
/// y = softmax(scale · x) per row.
template <typename T>
void softmaxForward(int64_t rows, int64_t cols, const T *x, T scale, T *y);
/// dx = scale · y · (dy - sum(dy·y)).
template <typename T>
void softmaxBackward(int64_t rows, int64_t cols, const T *y, const T *dy,
                     T scale, T *dx);

//===----------------------------------------------------------------------===//
// Activations, rotary embedding, dropout
//===----------------------------------------------------------------------===//

/// GELU exact (erf) or tanh approximation (PyTorch's approximate="tanh").
template <typename T> void geluForward(int64_t n, const T *x, bool tanh, T *y);
template <typename T>
void geluBackward(int64_t n, const T *x, const T *dy, bool tanh, T *dx);
/// y = silu(gate) · up.
template <typename T>
void siluGateForward(int64_t n, const T *gate, const T *up, T *y);
template <typename T>
void siluGateBackward(int64_t n, const T *gate, const T *up, const T *dy,
                      T *dgate, T *dup);
/// HF rotate_half convention on x [batch, seq, heads, headDim]: the first
/// rotaryDim features are rotated in halves, the rest copied. cos/sin are
/// [maxPosition, rotaryDim/2]; positions [batch, seq] (null: 0..seq-1).
/// inverse applies the transposed rotation (the backward pass).
template <typename T>
void rotary(int64_t batch, int64_t seq, int64_t heads, int64_t headDim,
            int64_t rotaryDim, const T *x, const T *cos, const T *sin,
            const int32_t *positions, bool inverse, T *y);
/// y = x · keep / (1 - p) with keep from philox::keep(seed, i, p); also the
/// backward pass (applied to dy).
template <typename T>
void dropout(int64_t n, const T *x, float p, uint64_t seed, T *y);

//===----------------------------------------------------------------------===//
// Embedding, loss
//===----------------------------------------------------------------------===//

/// out[t,:] = table[ids[t],:]; ids in [0, vocab).
template <typename T>
void embeddingForward(int64_t tokens, int64_t dim, const T *table,
                      const int64_t *ids, T *out);
/// dtable[ids[t],:] += dout[t,:].
template <typename T>
void embeddingBackward(int64_t tokens, int64_t dim, const T *dout,
                       const int64_t *ids, T *dtable);
/// losses[row] = logsumexp(logits[row]) - logits[row, label]; rows whose
/// label is ignoreIndex get 0. When dlogits is non-null it receives
/// gradScale · (softmax - onehot) (0 for ignored rows).
template <typename T>
void crossEntropy(int64_t rows, int64_t vocab, const T *logits,
                  const int64_t *labels, int64_t ignoreIndex, T gradScale,
                  T *losses, T *dlogits);

//===----------------------------------------------------------------------===//
// Attention: q [B, Sq, Hq, D], k/v [B, Sk, Hkv, D], o like q, lse [B, Hq, Sq]
//===----------------------------------------------------------------------===//

struct AttentionMask {
  bool causal = false;     // key j visible to query i iff j <= i + Sk - Sq
  const int32_t *kvLengths = nullptr;     // [B]: keys >= kvLengths[b] hidden
  const int32_t *prefixLengths = nullptr; // [B]: keys < prefix always visible
};

/// Softmax(scale · q·kᵀ + mask)·v. A query with no visible key gets o = 0 and
/// lse = -inf. Query head h reads key/value head h / (Hq / Hkv).
template <typename T>
void attentionForward(int64_t batch, int64_t seqQ, int64_t seqK,
                      int64_t headsQ, int64_t headsKV, int64_t headDim,
                      T scale, const AttentionMask &mask, const T *q,
                      const T *k, const T *v, T *o, T *lse);
/// Gradients dq, dk, dv (overwritten), recomputing the probabilities.
template <typename T>
void attentionBackward(int64_t batch, int64_t seqQ, int64_t seqK,
                       int64_t headsQ, int64_t headsKV, int64_t headDim,
                       T scale, const AttentionMask &mask, const T *q,
                       const T *k, const T *v, const T *dout, T *dq, T *dk,
                       T *dv);

//===----------------------------------------------------------------------===//
// Optimiser
//===----------------------------------------------------------------------===//

/// torch.optim.AdamW's step (decoupled weight decay, bias correction) for
/// step number `step` (1 for the first), on one tensor; grad is multiplied
/// by gradScale first (gradient clipping).
struct AdamWConfig {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0.01;
};
template <typename T>
void adamW(int64_t n, T *param, const T *grad, T *expAvg, T *expAvgSq,
           const AdamWConfig &config, int64_t step, T gradScale = 1);
/// Sum of squares of all elements of all tensors.
template <typename T>
double sumOfSquares(const std::vector<const T *> &tensors,
                    const std::vector<int64_t> &sizes);

} // namespace vlora::kernels::reference

#endif // VLORA_KERNELS_REFERENCE_REFERENCE_H
