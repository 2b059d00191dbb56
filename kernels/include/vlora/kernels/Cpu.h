//===- Cpu.h - CPU forward kernels of the vlora ops -------------*- C++ -*-===//
//
// One function per vlora op (or op family), with the op's semantics as in
// dialects/VLoRA/IR/VLoRAOps.td. Callers pass outputs with the shapes the op
// infers and supported element types (see the `supports*` predicates); the
// kernels do not re-validate shapes. Data-dependent failures throw
// KernelError. An output may alias an input only for the elementwise kernels
// (same offset and size), and for `copy`.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_KERNELS_CPU_H
#define VLORA_KERNELS_CPU_H

#include "vlora/kernels/Ops.h"
#include "vlora/kernels/Tensor.h"

#include <string_view>
#include <vector>

namespace vlora::kernels::cpu {
using kernels::UnaryOp;
using kernels::BinaryOp;
using kernels::ReduceOp;

//===----------------------------------------------------------------------===//
// Elementwise
//===----------------------------------------------------------------------===//

bool supportsUnary(UnaryOp op, DType dtype);
void unary(UnaryOp op, const TensorRef &input, const TensorRef &out);

bool supportsBinary(BinaryOp op, DType dtype);
/// NumPy broadcasting of lhs and rhs to out's shape.
void binary(BinaryOp op, const TensorRef &lhs, const TensorRef &rhs,
            const TensorRef &out);

/// out = condition ? lhs : rhs, all broadcast to out's shape.
void where(const TensorRef &condition, const TensorRef &lhs,
           const TensorRef &rhs, const TensorRef &out);

/// Converts every element to out's dtype: float to integer truncates towards
/// zero (NaN to 0, saturating), anything non-zero is true.
void cast(const TensorRef &input, const TensorRef &out);

/// NumPy broadcast of two shapes, or nullopt.
std::optional<Shape> broadcastShapes(const Shape &a, const Shape &b);

/// A fused elementwise program (vlora/kernels/Fused.h): every input
/// broadcast to the results' shape; `registers` are the result registers.
/// The program must have passed checkFusedProgram. Each opcode computes
/// bitwise what unary / binary / cast compute for the same op.
void fusedElementwise(const std::vector<TensorRef> &inputs,
                      const std::vector<TensorRef> &results,
                      const std::vector<int64_t> &program,
                      const std::vector<int64_t> &registers);

//===----------------------------------------------------------------------===//
// Linear algebra (f32 and f64; GEMMs through BLAS)
//===----------------------------------------------------------------------===//

// --vlora-mixed-precision's bf16 operands with an f32 result: matmul (either
// or both operands), loraMatmul(Dropout) and loraMatmulGrad (x and/or w; the
// adapters, dy and the results f32) and linearCrossEntropy (input and/or
// weight; gradInput f32) take them. Each is widened (exactly) to an f32 copy
// once per call and the f32 path runs on the copies, so the result is
// bitwise that of the f32 kernel on the widened operands. One exception:
// with a bf16 x, loraMatmulGrad's frozen product dy·Wᵀ reads dy rounded to
// bf16 (what a bf16 GEMM reads); dA, dB and the low-rank part of dx do not.
// Likewise, with a bf16 input, linearCrossEntropy's input gradient reads the
// logits' gradient rounded to bf16.

/// Batched lhs · rhs over the last two dimensions, batch dims broadcast.
void matmul(const TensorRef &lhs, const TensorRef &rhs, const TensorRef &out,
            bool transposeA, bool transposeB);

/// y = x · w (wᵀ with transposeB) + scale · (x · aᵀ) · bᵀ; x [..., in],
/// a [r, in], b [out, r]. Forward inference: no dropout.
void loraMatmul(const TensorRef &x, const TensorRef &w, const TensorRef &a,
                const TensorRef &b, const TensorRef &out, double scale,
                bool transposeB);

/// N-d cross-correlation (im2col + GEMM); bias may be null.
void conv(const TensorRef &input, const TensorRef &weight,
          const TensorRef *bias, const TensorRef &out, const Shape &strides,
          const Shape &pads, const Shape &dilations, int64_t group);

//===----------------------------------------------------------------------===//
// Normalisation, scans and reductions (axes already normalised to [0, rank))
//===----------------------------------------------------------------------===//

void softmax(const TensorRef &input, const TensorRef &out, int64_t axis,
             bool log);
void cumsum(const TensorRef &input, const TensorRef &out, int64_t axis,
            bool exclusive, bool reverse);
/// Normalises over [axis, rank); bias may be null.
void layerNorm(const TensorRef &input, const TensorRef &scale,
               const TensorRef *bias, const TensorRef &out, int64_t axis,
               double epsilon);
void rmsNorm(const TensorRef &input, const TensorRef &scale,
             const TensorRef &out, int64_t axis, double epsilon);

/// Reduces over `axes` (sorted or not, no repeats); out has the reduced shape
/// with or without the kept size-1 dimensions (the same element count).
void reduce(ReduceOp op, const TensorRef &input, const TensorRef &out,
            const Shape &axes);
/// out is i64.
void argmax(const TensorRef &input, const TensorRef &out, int64_t axis,
            bool selectLast);

//===----------------------------------------------------------------------===//
// Data movement (any element type)
//===----------------------------------------------------------------------===//

/// Copies the bytes (reshape); a no-op when out aliases input.
void copy(const TensorRef &input, const TensorRef &out);
void transpose(const TensorRef &input, const TensorRef &out, const Shape &perm);
void slice(const TensorRef &input, const TensorRef &out, const Shape &starts,
           const Shape &strides);
void concat(const std::vector<TensorRef> &inputs, const TensorRef &out,
            int64_t axis);
void split(const TensorRef &input, const std::vector<TensorRef> &outs,
           int64_t axis);
/// Indices i32/i64; negative ones count from the end.
void gather(const TensorRef &data, const TensorRef &indices,
            const TensorRef &out, int64_t axis);
/// The reverse of gather (float grad): out (the data's shape, grad's type)
/// = 0, then every slice of grad added at its index along axis.
void gatherGrad(const TensorRef &grad, const TensorRef &indices,
                const TensorRef &out, int64_t axis);
void gatherElements(const TensorRef &data, const TensorRef &indices,
                    const TensorRef &out, int64_t axis);
void gatherND(const TensorRef &data, const TensorRef &indices,
              const TensorRef &out);
void scatterND(const TensorRef &data, const TensorRef &indices,
               const TensorRef &updates, const TensorRef &out);
void maskedScatter(const TensorRef &data, const TensorRef &mask,
                   const TensorRef &source, const TensorRef &out);
/// Broadcasts input to out's shape.
void expand(const TensorRef &input, const TensorRef &out);
/// pads: rank begins then rank ends, all >= 0.
void pad(const TensorRef &input, const TensorRef &out, const Shape &pads,
         double value);
void trilu(const TensorRef &input, const TensorRef &out, bool upper, int64_t k);

//===----------------------------------------------------------------------===//
// Training: loss, gradients, optimizer (kernels/cpu/Training.cpp)
//
// Float kernels take f32 and f64 (adamW: the parameter's type); outputs do
// not alias inputs unless stated.
//===----------------------------------------------------------------------===//

/// lora_matmul in training: as loraMatmul, but the low-rank path reads
/// x' = x ⊙ keep / (1 - dropout), where element i of x (row-major) is kept
/// when philox::keep(philox::streamSeed(seed, counter, stream), i,
/// float(dropout)), i.e. philox::uniform(...) >= dropout in f32, with
/// rng = i64[2] [seed, counter] (docs/training.md). dropout == 0 is
/// loraMatmul. x, w, a and b have one element type.
void loraMatmulDropout(const TensorRef &x, const TensorRef &w,
                       const TensorRef &a, const TensorRef &b,
                       const TensorRef &rng, const TensorRef &out, double scale,
                       double dropout, int64_t stream, bool transposeB);

/// The reverse of loraMatmul / loraMatmulDropout (same x, w, a, b, scale,
/// and, with rng non-null and dropout > 0, the same mask) given dy, the
/// gradient of its result. With x' the masked input flattened to [N, in]:
/// gradA = scale · (dy·B)ᵀ · x', gradB = scale · dyᵀ · (x'·Aᵀ), and, when
/// gradX is non-null, gradX = dy · W(ᵀ) + keep ⊙ (scale · dy·B·A) / (1 - p).
/// GEMMs through BLAS; the full-rank dW is never formed.
void loraMatmulGrad(const TensorRef &dy, const TensorRef &x, const TensorRef &w,
                    const TensorRef &a, const TensorRef &b, const TensorRef *rng,
                    const TensorRef &gradA, const TensorRef &gradB,
                    const TensorRef *gradX, double scale, double dropout,
                    int64_t stream, bool transposeB);

/// Hugging Face's causal-LM loss into out (f32 []): logits [B, S, V] at
/// position s predict labels[b, s+1] (i64 [B, S]); positions whose shifted
/// label is ignoreIndex are skipped; the mean over the n valid ones (NaN
/// when n == 0, as in PyTorch). Throws KernelError naming the value, batch
/// and position of a shifted label outside [0, V) that is not ignoreIndex.
void crossEntropy(const TensorRef &logits, const TensorRef &labels,
                  const TensorRef &out, int64_t ignoreIndex);

/// d(crossEntropy)/d(logits) into out (logits' type and shape):
/// dloss / n · (softmax(logits[b, s]) - onehot(labels[b, s+1])) at the valid
/// positions, 0 elsewhere (the last position included). With n == 0 the
/// result is all zeros (the loss is NaN and has no gradient to give). dloss
/// is f32 []. out may be exactly the logits' bytes. Labels are checked as in
/// crossEntropy.
void crossEntropyGrad(const TensorRef &dloss, const TensorRef &logits,
                      const TensorRef &labels, const TensorRef &out,
                      int64_t ignoreIndex);

/// The lm_head matmul fused with crossEntropy and its input gradient: with
/// logits = input [B, S, D] · weight ([D, V], or [V, D] transposed with
/// transposeB), loss (f32 []) = crossEntropy(logits, labels) and gradInput
/// (input's type and shape) = crossEntropyGrad(dloss, logits, labels) ·
/// weight(ᵀ)ᵀ; only the rows with a predicted label are multiplied out, in
/// chunks of at most 2^24 logits. Labels are checked as in crossEntropy.
void linearCrossEntropy(const TensorRef &input, const TensorRef &weight,
                        const TensorRef &labels, const TensorRef &dloss,
                        const TensorRef &loss, const TensorRef &gradInput,
                        int64_t ignoreIndex, bool transposeB);

/// out = softmax((q · k) * scale + mask, last axis) · v over the last two
/// dimensions: q [..., S, D], k [..., D, T] ([..., T, D] with transposeK),
/// v [..., T, Dv], out [..., S, Dv], one leading shape; mask (may be null)
/// broadcasts to [..., S, T]. One [S, T] block of scores at a time: the
/// matmul, scaling, masking and softmax kernels on it, so the result is
/// bitwise that of those ops on the whole tensors.
void attention(const TensorRef &q, const TensorRef &k, const TensorRef &v,
               const TensorRef *mask, const TensorRef &out, double scale,
               bool transposeK);
/// An attention mask read one [S, T] block of scores at a time: the mask's
/// block ([rows, cols], each 1 or S / T) and, for each leading index of the
/// scores [..., S, T], the element offset of its block (0 along broadcast
/// dimensions). False when the mask does not broadcast to the scores.
struct AttentionMaskBlocks {
  Shape block;
  std::vector<int64_t> offsets;
};
bool attentionMaskBlocks(const Shape &scores, const Shape &mask,
                         AttentionMaskBlocks &out);
/// The gradients of attention for q, k and v (k's layout), the
/// probabilities recomputed one [S, T] block at a time.
void attentionGrad(const TensorRef &grad, const TensorRef &q,
                   const TensorRef &k, const TensorRef &v,
                   const TensorRef *mask, const TensorRef &gradQ,
                   const TensorRef &gradK, const TensorRef &gradV,
                   double scale, bool transposeK);

/// dx = y · (dy - sum(dy · y, axis)) with y = softmax(x) the forward's
/// output; grad, output and out have one type and shape. out may be exactly
/// either input's bytes.
void softmaxGrad(const TensorRef &grad, const TensorRef &output,
                 const TensorRef &out, int64_t axis);

/// d(layerNorm)/d(input), normalising over [axis, rank) like layerNorm
/// (scale has the shape of those dimensions): with xhat = (x - mean) · rstd
/// and g = dy · scale, dx = rstd · (g - mean(g) - xhat · mean(g · xhat)).
/// out may be exactly grad's or input's bytes.
void layerNormGrad(const TensorRef &grad, const TensorRef &input,
                   const TensorRef &scale, const TensorRef &out, int64_t axis,
                   double epsilon);

/// The reverse of maskedScatter for its source: the i-th true position of
/// mask (input's shape, row-major) gives out element i; out elements past
/// the number of true values are 0. Any element type; throws KernelError
/// when the mask has more true values than out has elements.
void maskedSelect(const TensorRef &input, const TensorRef &mask,
                  const TensorRef &out);

/// out (f32 []) = sqrt(sum of x² over every element of every input),
/// accumulated in double: clip_grad_norm_'s total norm.
void globalNorm(const std::vector<TensorRef> &inputs, const TensorRef &out);

/// One torch.optim.AdamW step (decoupled weight decay) on one parameter,
/// computed in the parameter's type like torch's single-tensor path:
///   g = grad · gradScale;  p *= 1 - lr · weightDecay
///   m' = lerp(m, g, 1 - beta1);  v' = v · beta2 + (1 - beta2) · g · g
///   p' = p - lr / (1 - beta1^t) · m' / (sqrt(v') / sqrt(1 - beta2^t) + eps)
/// with the scalar factors computed in double. lr, weightDecay and gradScale
/// are f32 [] (gradScale may be null: 1), step i64 [] (t, 1 for the first
/// update). Throws KernelError for step < 1, lr < 0 or weightDecay < 0.
/// Each output may be exactly the bytes of its own input (param, expAvg,
/// expAvgSq: in place).
void adamW(const TensorRef &param, const TensorRef &grad,
           const TensorRef &expAvg, const TensorRef &expAvgSq,
           const TensorRef &lr, const TensorRef &step,
           const TensorRef &weightDecay, const TensorRef *gradScale,
           const TensorRef &newParam, const TensorRef &newExpAvg,
           const TensorRef &newExpAvgSq, double beta1, double beta2,
           double eps);

} // namespace vlora::kernels::cpu

#endif // VLORA_KERNELS_CPU_H
