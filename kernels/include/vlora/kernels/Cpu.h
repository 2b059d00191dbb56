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

//===----------------------------------------------------------------------===//
// Linear algebra (f32 and f64; GEMMs through BLAS)
//===----------------------------------------------------------------------===//

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

} // namespace vlora::kernels::cpu

#endif // VLORA_KERNELS_CPU_H
