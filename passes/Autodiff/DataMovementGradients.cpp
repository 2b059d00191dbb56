//===- DataMovementGradients.cpp - reverse rules of data movement ---------===//
//
// reshape, transpose, slice, pad, concat, split, expand, trilu, gather and
// masked_scatter. Index and mask operands are integer or boolean and never
// get a gradient.
//
//===----------------------------------------------------------------------===//

#include "passes/Autodiff/GradientInterface.h"

#include "VLoRA/IR/VLoRADialect.h"
#include "VLoRA/IR/VLoRAOps.h"

using namespace mlir;
using namespace vlora;

namespace {

using Grads = SmallVectorImpl<Value>;

ArrayRef<int64_t> shapeOf(Value v) {
  return cast<RankedTensorType>(v.getType()).getShape();
}

LogicalResult reshapeGradient(ReshapeOp op, GradientBuilder &gb,
                              ArrayRef<Value> dys, ArrayRef<bool> needs,
                              Grads &grads) {
  grads.push_back(needs[0] ? gb.reshape(dys[0], shapeOf(op.getInput()))
                           : Value());
  return success();
}

LogicalResult transposeGradient(TransposeOp op, GradientBuilder &gb,
                                ArrayRef<Value> dys, ArrayRef<bool> needs,
                                Grads &grads) {
  if (!needs[0]) {
    grads.push_back(Value());
    return success();
  }
  ArrayRef<int64_t> perm = op.getPerm();
  SmallVector<int64_t> inverse(perm.size());
  for (auto [i, p] : llvm::enumerate(perm))
    inverse[p] = i;
  grads.push_back(gb.create<TransposeOp>(
                        dys[0], gb.getBuilder().getDenseI64ArrayAttr(inverse))
                      .getResult());
  return success();
}

/// A unit-stride slice's gradient is the result gradient padded with zeros
/// back to the input's shape.
LogicalResult sliceGradient(SliceOp op, GradientBuilder &gb,
                            ArrayRef<Value> dys, ArrayRef<bool> needs,
                            Grads &grads) {
  if (!needs[0]) {
    grads.push_back(Value());
    return success();
  }
  if (llvm::any_of(op.getStrides(), [](int64_t s) { return s < 1; }))
    return op.emitOpError("has no gradient rule for negative strides");
  ArrayRef<int64_t> in = shapeOf(op.getInput());
  int64_t rank = in.size();
  OpBuilder &b = gb.getBuilder();
  Value g = dys[0];
  SmallVector<int64_t> shape(shapeOf(g));
  // A strided dimension: every gradient element gets stride - 1 zeros after
  // it (a new axis padded to the stride, folded back), then the tail past
  // the input is cut.
  SmallVector<int64_t> covered(rank);
  for (int64_t d = 0; d < rank; ++d) {
    int64_t stride = op.getStrides()[d], n = shape[d];
    covered[d] = n;
    if (stride == 1)
      continue;
    SmallVector<int64_t> split(shape);
    split.insert(split.begin() + d + 1, 1);
    g = gb.reshape(g, split);
    SmallVector<int64_t> pads(2 * (rank + 1), 0);
    pads[rank + 1 + d + 1] = stride - 1;
    g = gb.create<PadOp>(g, b.getDenseI64ArrayAttr(pads), b.getF64FloatAttr(0.0))
            .getResult();
    shape[d] = n * stride;
    g = gb.reshape(g, shape);
    int64_t keep = std::min(n * stride, in[d] - op.getStarts()[d]);
    if (keep < shape[d]) {
      SmallVector<int64_t> starts(rank, 0), limits(shape), strides(rank, 1);
      limits[d] = keep;
      g = gb.create<SliceOp>(g, b.getDenseI64ArrayAttr(starts),
                             b.getDenseI64ArrayAttr(limits),
                             b.getDenseI64ArrayAttr(strides))
              .getResult();
      shape[d] = keep;
    }
    covered[d] = shape[d];
  }
  SmallVector<int64_t> pads(2 * rank);
  for (int64_t d = 0; d < rank; ++d) {
    pads[d] = op.getStarts()[d];
    pads[rank + d] = in[d] - op.getStarts()[d] - covered[d];
  }
  grads.push_back(gb.create<PadOp>(g, b.getDenseI64ArrayAttr(pads),
                                   b.getF64FloatAttr(0.0))
                      .getResult());
  return success();
}

LogicalResult padGradient(PadOp op, GradientBuilder &gb, ArrayRef<Value> dys,
                          ArrayRef<bool> needs, Grads &grads) {
  if (!needs[0]) {
    grads.push_back(Value());
    return success();
  }
  ArrayRef<int64_t> in = shapeOf(op.getInput());
  int64_t rank = in.size();
  SmallVector<int64_t> starts(rank), limits(rank), strides(rank, 1);
  for (int64_t d = 0; d < rank; ++d) {
    starts[d] = op.getPads()[d];
    limits[d] = starts[d] + in[d];
  }
  OpBuilder &b = gb.getBuilder();
  grads.push_back(gb.create<SliceOp>(dys[0], b.getDenseI64ArrayAttr(starts),
                                     b.getDenseI64ArrayAttr(limits),
                                     b.getDenseI64ArrayAttr(strides))
                      .getResult());
  return success();
}

/// Each input's gradient is its slice of the result gradient.
LogicalResult concatGradient(ConcatOp op, GradientBuilder &gb,
                             ArrayRef<Value> dys, ArrayRef<bool> needs,
                             Grads &grads) {
  ArrayRef<int64_t> out = shapeOf(op.getResult());
  int64_t rank = out.size();
  int64_t axis = op.getAxisAttr().getInt();
  if (axis < 0)
    axis += rank;
  OpBuilder &b = gb.getBuilder();
  int64_t offset = 0;
  for (auto [i, input] : llvm::enumerate(op.getInputs())) {
    int64_t size = shapeOf(input)[axis];
    if (!needs[i]) {
      grads.push_back(Value());
      offset += size;
      continue;
    }
    SmallVector<int64_t> starts(rank, 0), limits(out), strides(rank, 1);
    starts[axis] = offset;
    limits[axis] = offset + size;
    grads.push_back(gb.create<SliceOp>(dys[0], b.getDenseI64ArrayAttr(starts),
                                       b.getDenseI64ArrayAttr(limits),
                                       b.getDenseI64ArrayAttr(strides))
                        .getResult());
    offset += size;
  }
  return success();
}

/// The input gradient is the pieces' gradients joined (zeros for pieces that
/// do not reach the loss).
LogicalResult splitGradient(SplitOp op, GradientBuilder &gb,
                            ArrayRef<Value> dys, ArrayRef<bool> needs,
                            Grads &grads) {
  if (!needs[0]) {
    grads.push_back(Value());
    return success();
  }
  SmallVector<Value> pieces;
  for (auto [dy, result] : llvm::zip(dys, op.getResults()))
    pieces.push_back(dy ? dy
                        : gb.zeros(cast<RankedTensorType>(result.getType())));
  grads.push_back(gb.create<ConcatOp>(pieces, op.getAxisAttr()).getResult());
  return success();
}

LogicalResult expandGradient(ExpandOp op, GradientBuilder &gb,
                             ArrayRef<Value> dys, ArrayRef<bool> needs,
                             Grads &grads) {
  grads.push_back(needs[0] ? gb.sumToShape(dys[0], op.getInput().getType())
                           : Value());
  return success();
}

/// Only the indices may be inactive here: a gather of an active table would
/// need a scatter-add, which no LoRA graph needs (embeddings are frozen).
LogicalResult gatherGradient(GatherOp op, GradientBuilder &gb,
                             ArrayRef<Value> dys, ArrayRef<bool> needs,
                             Grads &grads) {
  // d data: the slices of dy added back at their indices.
  OpBuilder &b = gb.getBuilder();
  grads.push_back(needs[0] ? gb.create<GatherGradOp>(
                                   dys[0], op.getIndices(), op.getAxisAttr(),
                                   b.getDenseI64ArrayAttr(shapeOf(op.getData())))
                                 .getResult()
                           : Value());
  grads.push_back(Value());
  return success();
}

/// result = data with the slices at `indices` replaced by `updates`
/// (ONNX ScatterND, reduction none; exporters merge image features into the
/// text embeddings this way): d data = dy with those slices zeroed,
/// d updates = the slices of dy at `indices` (gather_nd).
LogicalResult scatterNDGradient(ScatterNDOp op, GradientBuilder &gb,
                                ArrayRef<Value> dys, ArrayRef<bool> needs,
                                Grads &grads) {
  Value dy = dys[0];
  grads.push_back(
      needs[0]
          ? gb.create<ScatterNDOp>(
                  dy, op.getIndices(),
                  gb.zeros(cast<RankedTensorType>(op.getUpdates().getType())))
                .getResult()
          : Value());
  grads.push_back(Value());
  grads.push_back(needs[2] ? gb.create<GatherNDOp>(dy, op.getIndices()).getResult()
                           : Value());
  return success();
}

/// trilu keeps a triangle: the gradient keeps the same one.
LogicalResult triluGradient(TriluOp op, GradientBuilder &gb,
                            ArrayRef<Value> dys, ArrayRef<bool> needs,
                            Grads &grads) {
  grads.push_back(needs[0] ? gb.create<TriluOp>(dys[0], op.getUpperAttr(),
                                                op.getKAttr())
                                 .getResult()
                           : Value());
  return success();
}

/// result = data with masked positions taken from source in order:
/// d data = where(mask, 0, dy), d source = masked_select(dy, mask).
LogicalResult maskedScatterGradient(MaskedScatterOp op, GradientBuilder &gb,
                                    ArrayRef<Value> dys, ArrayRef<bool> needs,
                                    Grads &grads) {
  Value dy = dys[0];
  auto type = cast<RankedTensorType>(dy.getType());
  grads.push_back(
      needs[0] ? gb.create<WhereOp>(op.getMask(),
                                    gb.scalar(0.0, type.getElementType()), dy)
                     .getResult()
               : Value());
  grads.push_back(Value());
  grads.push_back(
      needs[2] ? gb.create<MaskedSelectOp>(dy, op.getMask(),
                                           gb.getBuilder().getDenseI64ArrayAttr(
                                               shapeOf(op.getSource())))
                     .getResult()
               : Value());
  return success();
}

} // namespace

void vlora::registerDataMovementGradients(DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *ctx, VLoRADialect *) {
    ReshapeOp::attachInterface<GradientRule<ReshapeOp, reshapeGradient>>(*ctx);
    TriluOp::attachInterface<GradientRule<TriluOp, triluGradient>>(*ctx);
    ScatterNDOp::attachInterface<GradientRule<ScatterNDOp, scatterNDGradient>>(
        *ctx);
    TransposeOp::attachInterface<GradientRule<TransposeOp, transposeGradient>>(
        *ctx);
    SliceOp::attachInterface<GradientRule<SliceOp, sliceGradient>>(*ctx);
    PadOp::attachInterface<GradientRule<PadOp, padGradient>>(*ctx);
    ConcatOp::attachInterface<GradientRule<ConcatOp, concatGradient>>(*ctx);
    SplitOp::attachInterface<GradientRule<SplitOp, splitGradient>>(*ctx);
    ExpandOp::attachInterface<GradientRule<ExpandOp, expandGradient>>(*ctx);
    GatherOp::attachInterface<GradientRule<GatherOp, gatherGradient>>(*ctx);
    MaskedScatterOp::attachInterface<
        GradientRule<MaskedScatterOp, maskedScatterGradient>>(*ctx);
  });
}
