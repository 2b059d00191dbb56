//===- Ops.h - the CUDA twins of the CPU op kernels --------------*- C++ -*-===//
//
// One function per function of vlora/kernels/Cpu.h, with the same semantics,
// argument order and TensorRef views, but every TensorRef's data is device
// memory and the work is queued on the context's stream. The CUDA backend of
// the runtime (runtime/cuda) dispatches each plan step to one of these, as
// the CPU backend dispatches to kernels::cpu. Shapes and element types are
// validated by the plan loader before a kernel runs; these functions still
// refuse element types they lack, with a Status naming the function, the
// dtype and the shape.
//
// Data-dependent failures (an index out of range, a label outside the
// vocabulary, step < 1) cannot throw on the device: the kernel records the
// first one in the context's error word and takeDataError() reports it after
// the stream is synchronised, naming the function and the offending value.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_KERNELS_CUDA_OPS_H
#define VLORA_KERNELS_CUDA_OPS_H

#include "vlora/kernels/Ops.h"
#include "vlora/kernels/Tensor.h"
#include "vlora/kernels/cuda/Device.h"

#include <vector>

namespace vlora::kernels::cuda::ops {
using kernels::BinaryOp;
using kernels::ReduceOp;
using kernels::UnaryOp;

/// Synchronises the context's stream and returns the first data-dependent
/// failure any op kernel recorded since the last call (then clears it), or
/// success. The message names the function and the value, e.g.
/// "gather: index 40000 is outside [-32064, 32064)".
Status takeDataError(Context &ctx);

//===----------------------------------------------------------------------===//
// Elementwise (kernels/cuda/OpsElementwise.cu)
//===----------------------------------------------------------------------===//

bool supportsUnary(UnaryOp op, DType dtype);
Status unary(Context &ctx, UnaryOp op, const TensorRef &input,
             const TensorRef &out);
bool supportsBinary(BinaryOp op, DType dtype);
/// NumPy broadcasting of lhs and rhs to out's shape.
Status binary(Context &ctx, BinaryOp op, const TensorRef &lhs,
              const TensorRef &rhs, const TensorRef &out);
Status where(Context &ctx, const TensorRef &condition, const TensorRef &lhs,
             const TensorRef &rhs, const TensorRef &out);
Status cast(Context &ctx, const TensorRef &input, const TensorRef &out);
/// A fused elementwise program (vlora/kernels/Fused.h; kernels/cuda/Fused.cu).
Status fusedElementwise(Context &ctx, const std::vector<TensorRef> &inputs,
                        const std::vector<TensorRef> &results,
                        const std::vector<int64_t> &program,
                        const std::vector<int64_t> &registers);

//===----------------------------------------------------------------------===//
// Data movement, scans, reductions, gathers (kernels/cuda/OpsData.cu)
//===----------------------------------------------------------------------===//

Status copy(Context &ctx, const TensorRef &input, const TensorRef &out);
Status transpose(Context &ctx, const TensorRef &input, const TensorRef &out,
                 const Shape &perm);
Status slice(Context &ctx, const TensorRef &input, const TensorRef &out,
             const Shape &starts, const Shape &strides);
Status concat(Context &ctx, const std::vector<TensorRef> &inputs,
              const TensorRef &out, int64_t axis);
Status split(Context &ctx, const TensorRef &input,
             const std::vector<TensorRef> &outs, int64_t axis);
Status expand(Context &ctx, const TensorRef &input, const TensorRef &out);
Status pad(Context &ctx, const TensorRef &input, const TensorRef &out,
           const Shape &pads, double value);
Status trilu(Context &ctx, const TensorRef &input, const TensorRef &out,
             bool upper, int64_t k);
Status cumsum(Context &ctx, const TensorRef &input, const TensorRef &out,
              int64_t axis, bool exclusive, bool reverse);
Status reduce(Context &ctx, ReduceOp op, const TensorRef &input,
              const TensorRef &out, const Shape &axes);
Status argmax(Context &ctx, const TensorRef &input, const TensorRef &out,
              int64_t axis, bool selectLast);
Status gather(Context &ctx, const TensorRef &data, const TensorRef &indices,
              const TensorRef &out, int64_t axis);
/// Deterministic (no floating-point atomics).
Status gatherGrad(Context &ctx, const TensorRef &grad,
                  const TensorRef &indices, const TensorRef &out, int64_t axis);
Status gatherElements(Context &ctx, const TensorRef &data,
                      const TensorRef &indices, const TensorRef &out,
                      int64_t axis);
Status gatherND(Context &ctx, const TensorRef &data, const TensorRef &indices,
                const TensorRef &out);
Status scatterND(Context &ctx, const TensorRef &data, const TensorRef &indices,
                 const TensorRef &updates, const TensorRef &out);
Status maskedScatter(Context &ctx, const TensorRef &data,
                     const TensorRef &mask, const TensorRef &source,
                     const TensorRef &out);
Status maskedSelect(Context &ctx, const TensorRef &input,
                    const TensorRef &mask, const TensorRef &out);

//===----------------------------------------------------------------------===//
// Linear algebra, normalisation, training (kernels/cuda/OpsMath.cu)
//===----------------------------------------------------------------------===//

/// f32 (cuBLASLt, no TF32: the CPU backend's numbers) and bf16 (with a bf16
/// or f32 result, fp32 accumulation). As on the CPU, the matmul family takes
/// --vlora-mixed-precision's bf16 operands with an f32 result; a bf16 operand
/// next to an f32 one, and the bf16 x/w of the LoRA ops and of
/// linearCrossEntropy, are widened exactly into scratch and the f32 path runs.
Status matmul(Context &ctx, const TensorRef &lhs, const TensorRef &rhs,
              const TensorRef &out, bool transposeA, bool transposeB);
Status loraMatmul(Context &ctx, const TensorRef &x, const TensorRef &w,
                  const TensorRef &a, const TensorRef &b, const TensorRef &out,
                  double scale, bool transposeB);
/// rng: i64[2] [seed, counter] in device memory (read by the kernels, so a
/// captured CUDA graph replays with new values).
Status loraMatmulDropout(Context &ctx, const TensorRef &x, const TensorRef &w,
                         const TensorRef &a, const TensorRef &b,
                         const TensorRef &rng, const TensorRef &out,
                         double scale, double dropout, int64_t stream,
                         bool transposeB);
Status loraMatmulGrad(Context &ctx, const TensorRef &dy, const TensorRef &x,
                      const TensorRef &w, const TensorRef &a,
                      const TensorRef &b, const TensorRef *rng,
                      const TensorRef &gradA, const TensorRef &gradB,
                      const TensorRef *gradX, double scale, double dropout,
                      int64_t stream, bool transposeB);
Status softmax(Context &ctx, const TensorRef &input, const TensorRef &out,
               int64_t axis, bool log);
Status layerNorm(Context &ctx, const TensorRef &input, const TensorRef &scale,
                 const TensorRef *bias, const TensorRef &out, int64_t axis,
                 double epsilon);
Status rmsNorm(Context &ctx, const TensorRef &input, const TensorRef &scale,
               const TensorRef &out, int64_t axis, double epsilon);
Status crossEntropy(Context &ctx, const TensorRef &logits,
                    const TensorRef &labels, const TensorRef &out,
                    int64_t ignoreIndex);
Status crossEntropyGrad(Context &ctx, const TensorRef &dloss,
                        const TensorRef &logits, const TensorRef &labels,
                        const TensorRef &out, int64_t ignoreIndex);
Status linearCrossEntropy(Context &ctx, const TensorRef &input,
                          const TensorRef &weight, const TensorRef &labels,
                          const TensorRef &dloss, const TensorRef &loss,
                          const TensorRef &gradInput, int64_t ignoreIndex,
                          bool transposeB);
Status softmaxGrad(Context &ctx, const TensorRef &grad,
                   const TensorRef &output, const TensorRef &out,
                   int64_t axis);
/// cpu::attention / cpu::attentionGrad (f32 and f64; mask may be null): the
/// scores of a run of batch indices that share a mask block at a time (at
/// most kAttentionScratchBytes of them in scratch), GEMMs through runGemm.
Status attention(Context &ctx, const TensorRef &q, const TensorRef &k,
                 const TensorRef &v, const TensorRef *mask,
                 const TensorRef &out, double scale, bool transposeK);
Status attentionGrad(Context &ctx, const TensorRef &grad, const TensorRef &q,
                     const TensorRef &k, const TensorRef &v,
                     const TensorRef *mask, const TensorRef &gradQ,
                     const TensorRef &gradK, const TensorRef &gradV,
                     double scale, bool transposeK);
Status layerNormGrad(Context &ctx, const TensorRef &grad,
                     const TensorRef &input, const TensorRef &scale,
                     const TensorRef &out, int64_t axis, double epsilon);
Status globalNorm(Context &ctx, const std::vector<TensorRef> &inputs,
                  const TensorRef &out);
Status adamW(Context &ctx, const TensorRef &param, const TensorRef &grad,
             const TensorRef &expAvg, const TensorRef &expAvgSq,
             const TensorRef &lr, const TensorRef &step,
             const TensorRef &weightDecay, const TensorRef *gradScale,
             const TensorRef &newParam, const TensorRef &newExpAvg,
             const TensorRef &newExpAvgSq, double beta1, double beta2,
             double eps);

} // namespace vlora::kernels::cuda::ops

#endif // VLORA_KERNELS_CUDA_OPS_H
