//===- Attention.cpp - fused attention and its gradient -------------------===//
//
// vlora.attention / vlora.attention_grad on the CPU: one [S, T] block of
// scores at a time (one batch-and-head index), through the same GEMM,
// elementwise and softmax kernels the decomposed ops use, so the forward is
// bitwise what matmul -> mul -> add -> softmax -> matmul computes while only
// one block of scores exists.
//
//===----------------------------------------------------------------------===//

#include "vlora/kernels/Cpu.h"

#include "Blas.h"
#include "Iteration.h"

#include <vector>

namespace vlora::kernels::cpu {
using namespace detail;

namespace {

/// The attention problem: sizes and where each batch index's blocks start.
struct Problem {
  int64_t batch = 1, s = 0, d = 0, t = 0, dv = 0;
  bool transposeK = false;
  /// The mask's block for each batch index, broadcast like the add did.
  Shape maskBlock;
  std::vector<int64_t> maskOffset;

  Problem(const TensorRef &q, const TensorRef &k, const TensorRef &v,
          const TensorRef *mask, bool tk)
      : transposeK(tk) {
    int64_t rank = q.rank();
    s = q.shape[rank - 2];
    d = q.shape[rank - 1];
    t = tk ? k.shape[rank - 2] : k.shape[rank - 1];
    dv = v.shape[rank - 1];
    Shape scores(q.shape.begin(), q.shape.end() - 2);
    batch = numElements(scores);
    if (!mask)
      return;
    scores.push_back(s);
    scores.push_back(t);
    AttentionMaskBlocks blocks;
    if (!attentionMaskBlocks(scores, mask->shape, blocks))
      throw KernelError("attention: the mask " + shapeString(mask->shape) +
                        " does not broadcast to the scores " +
                        shapeString(scores));
    maskBlock = blocks.block;
    maskOffset = std::move(blocks.offsets);
  }
};

template <typename T>
void probabilities(const Problem &p, DType dtype, int64_t b, const T *q,
                   const T *k, const TensorRef *mask, const TensorRef &scale,
                   std::vector<T> &scores, std::vector<T> &probs) {
  int64_t s = p.s, t = p.t, d = p.d;
  gemm<T>(false, p.transposeK, s, t, d, 1.0, q + b * s * d, d,
          k + b * d * t, p.transposeK ? d : t, 0.0, scores.data(), t);
  TensorRef scoresRef{scores.data(), dtype, {s, t}};
  TensorRef probsRef{probs.data(), dtype, {s, t}};
  binary(BinaryOp::Mul, scoresRef, scale, probsRef);
  if (mask) {
    TensorRef block{static_cast<char *>(mask->data) +
                        p.maskOffset[b] * dtypeSize(dtype),
                    dtype, p.maskBlock};
    binary(BinaryOp::Add, probsRef, block, scoresRef);
  } else {
    std::copy(probs.begin(), probs.end(), scores.begin());
  }
  softmax(scoresRef, probsRef, 1, /*log=*/false);
}

/// Rounds every value to the nearest bf16 (ties to even) in place: what a
/// bf16 GEMM operand holds (f32_result's products).
void roundBlock(float *data, size_t n) {
  for (size_t i = 0; i < n; ++i)
    data[i] = toFloat(toBFloat16(data[i]));
}
void roundBlock(double *, size_t) {}

/// Whether the call is f32_result's: bf16 operands, an f32 result.
bool bf16Operands(const TensorRef &q, const TensorRef &k, const TensorRef &v,
                  DType result) {
  return result == DType::F32 &&
         (q.dtype == DType::BF16 || k.dtype == DType::BF16 ||
          v.dtype == DType::BF16);
}

template <typename F> void visitAttentionFloat(DType dtype, F &&f) {
  if (dtype == DType::F32)
    return f(Tag<float>{});
  if (dtype == DType::F64)
    return f(Tag<double>{});
  throw KernelError(std::string("attention: unsupported element type ") +
                    dtypeName(dtype) + " (f32 and f64)");
}

} // namespace

bool attentionMaskBlocks(const Shape &scores, const Shape &mask,
                         AttentionMaskBlocks &out) {
  int64_t rank = static_cast<int64_t>(scores.size());
  int64_t mrank = static_cast<int64_t>(mask.size());
  if (rank < 2 || mrank > rank)
    return false;
  // Right-align the mask to [..., S, T]; its block is the last two dims.
  Shape full(rank, 1);
  for (int64_t i = 0; i < mrank; ++i)
    full[rank - mrank + i] = mask[i];
  for (int64_t i = 0; i < rank; ++i)
    if (full[i] != 1 && full[i] != scores[i])
      return false;
  out.block = {full[rank - 2], full[rank - 1]};
  // Strides of the mask's leading dims in elements (0 where broadcast).
  std::vector<int64_t> stride(rank - 2, 0);
  int64_t step = out.block[0] * out.block[1];
  for (int64_t i = rank - 3; i >= 0; --i) {
    if (full[i] != 1)
      stride[i] = step;
    step *= full[i];
  }
  int64_t batch = 1;
  for (int64_t i = 0; i < rank - 2; ++i)
    batch *= scores[i];
  out.offsets.assign(batch, 0);
  for (int64_t b = 0; b < batch; ++b) {
    int64_t rest = b, offset = 0;
    for (int64_t i = rank - 3; i >= 0; --i) {
      offset += (rest % scores[i]) * stride[i];
      rest /= scores[i];
    }
    out.offsets[b] = offset;
  }
  return true;
}

void attention(const TensorRef &q, const TensorRef &k, const TensorRef &v,
               const TensorRef *mask, const TensorRef &out, double scale,
               bool transposeK) {
  // f32_result: the operands widened exactly, the probabilities rounded to
  // bf16 for their product with v.
  bool rounded = bf16Operands(q, k, v, out.dtype);
  std::vector<float> wq, wk, wv;
  const TensorRef qf = widenBFloat16(q, wq), kf = widenBFloat16(k, wk),
                  vf = widenBFloat16(v, wv);
  Problem p(qf, kf, vf, mask, transposeK);
  if (p.batch == 0 || p.s == 0 || p.dv == 0)
    return;
  visitAttentionFloat(qf.dtype, [&, &q = qf, &k = kf, &v = vf](auto tag) {
    using T = typename decltype(tag)::type;
    T scaleValue = static_cast<T>(scale);
    TensorRef scaleRef{&scaleValue, q.dtype, {}};
    std::vector<T> scores(p.s * p.t), probs(p.s * p.t);
    const T *pv = v.as<const T>();
    T *po = out.as<T>();
    for (int64_t b = 0; b < p.batch; ++b) {
      probabilities<T>(p, q.dtype, b, q.as<const T>(), k.as<const T>(), mask,
                       scaleRef, scores, probs);
      if (rounded)
        roundBlock(probs.data(), probs.size());
      gemm<T>(false, false, p.s, p.dv, p.t, 1.0, probs.data(), p.t,
              pv + b * p.t * p.dv, p.dv, 0.0, po + b * p.s * p.dv, p.dv);
    }
  });
}

void attentionGrad(const TensorRef &grad, const TensorRef &q,
                   const TensorRef &k, const TensorRef &v,
                   const TensorRef *mask, const TensorRef &gradQ,
                   const TensorRef &gradK, const TensorRef &gradV,
                   double scale, bool transposeK) {
  // f32_result: the operands widened exactly; P, grad and dS (after the
  // scale) rounded to bf16 for the products they enter.
  bool rounded = bf16Operands(q, k, v, grad.dtype);
  std::vector<float> wq, wk, wv, rg;
  const TensorRef qf = widenBFloat16(q, wq), kf = widenBFloat16(k, wk),
                  vf = widenBFloat16(v, wv);
  const TensorRef gradIn = rounded ? roundToBFloat16(grad, rg) : grad;
  Problem p(qf, kf, vf, mask, transposeK);
  visitAttentionFloat(qf.dtype, [&, &q = qf, &k = kf, &v = vf,
                                 &grad = gradIn](auto tag) {
    using T = typename decltype(tag)::type;
    int64_t s = p.s, t = p.t, d = p.d, dv = p.dv;
    std::fill_n(gradQ.as<T>(), gradQ.numel(), T(0));
    std::fill_n(gradK.as<T>(), gradK.numel(), T(0));
    std::fill_n(gradV.as<T>(), gradV.numel(), T(0));
    if (p.batch == 0 || s == 0 || t == 0)
      return;
    T scaleValue = static_cast<T>(scale);
    TensorRef scaleRef{&scaleValue, q.dtype, {}};
    std::vector<T> scores(s * t), probs(s * t), dp(s * t);
    const T *pq = q.as<const T>(), *pk = k.as<const T>(),
            *pv = v.as<const T>(), *pg = grad.as<const T>();
    T *dq = gradQ.as<T>(), *dk = gradK.as<T>(), *dvOut = gradV.as<T>();
    TensorRef dpRef{dp.data(), q.dtype, {s, t}};
    TensorRef probsRef{probs.data(), q.dtype, {s, t}};
    TensorRef scoresRef{scores.data(), q.dtype, {s, t}};
    for (int64_t b = 0; b < p.batch; ++b) {
      probabilities<T>(p, q.dtype, b, pq, pk, mask, scaleRef, scores, probs);
      const T *g = pg + b * s * dv;
      // dv = Pᵀ·dO (P rounded for it, then exact again for softmax_grad);
      // dP = dO·vᵀ.
      if (rounded) {
        std::copy(probs.begin(), probs.end(), dp.begin());
        roundBlock(dp.data(), dp.size());
      }
      gemm<T>(true, false, t, dv, s, 1.0, rounded ? dp.data() : probs.data(),
              t, g, dv, 0.0, dvOut + b * t * dv, dv);
      gemm<T>(false, true, s, t, dv, 1.0, g, dv, pv + b * t * dv, dv, 0.0,
              dp.data(), t);
      // dS = softmax_grad(dP, P) * scale.
      softmaxGrad(dpRef, probsRef, scoresRef, 1);
      binary(BinaryOp::Mul, scoresRef, scaleRef, dpRef);
      if (rounded)
        roundBlock(dp.data(), dp.size());
      const T *kb = pk + b * d * t, *qb = pq + b * s * d;
      if (transposeK) {
        // k [T, D]: dq = dS·k, dk = dSᵀ·q.
        gemm<T>(false, false, s, d, t, 1.0, dp.data(), t, kb, d, 0.0,
                dq + b * s * d, d);
        gemm<T>(true, false, t, d, s, 1.0, dp.data(), t, qb, d, 0.0,
                dk + b * t * d, d);
      } else {
        // k [D, T]: dq = dS·kᵀ, dk = qᵀ·dS.
        gemm<T>(false, true, s, d, t, 1.0, dp.data(), t, kb, t, 0.0,
                dq + b * s * d, d);
        gemm<T>(true, false, d, t, s, 1.0, qb, d, dp.data(), t, 0.0,
                dk + b * d * t, t);
      }
    }
  });
}

} // namespace vlora::kernels::cpu
