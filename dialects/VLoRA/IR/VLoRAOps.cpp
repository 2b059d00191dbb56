//===- VLoRAOps.cpp - vlora dialect ops -----------------------------------===//
//
// Shape inference, verifiers and folders of the `vlora` ops. Every rule that
// can reject an op does it in `inferReturnTypes`, so the importer, the
// builders and the verifier all report the same error at the op's location.
//
//===----------------------------------------------------------------------===//

#include "VLoRA/IR/VLoRAOps.h"
#include "vlora/kernels/Fused.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/Sequence.h"
#include "llvm/ADT/SmallSet.h"

#include <cmath>

using namespace mlir;
using namespace vlora;

//===----------------------------------------------------------------------===//
// Shared shape rules
//===----------------------------------------------------------------------===//

FailureOr<SmallVector<int64_t>> vlora::broadcastShapes(ArrayRef<int64_t> lhs,
                                                       ArrayRef<int64_t> rhs) {
  size_t rank = std::max(lhs.size(), rhs.size());
  SmallVector<int64_t> result(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t l = i < rank - lhs.size() ? 1 : lhs[i - (rank - lhs.size())];
    int64_t r = i < rank - rhs.size() ? 1 : rhs[i - (rank - rhs.size())];
    if (l != r && l != 1 && r != 1)
      return failure();
    result[i] = l == 1 ? r : l;
  }
  return result;
}

int64_t vlora::getElementByteSize(Type type) {
  if (type.isInteger(1))
    return 1;
  if (type.isIntOrFloat())
    return (type.getIntOrFloatBitWidth() + 7) / 8;
  return 0;
}

namespace {
/// Reports an inference error at `loc` when there is one and returns failure.
struct ShapeError {
  std::optional<Location> loc;
  InFlightDiagnostic emit() {
    if (loc)
      return mlir::emitError(*loc);
    return InFlightDiagnostic();
  }
};

std::string shapeString(ArrayRef<int64_t> shape) {
  std::string s = "[";
  for (auto [i, d] : llvm::enumerate(shape)) {
    if (i)
      s += ", ";
    s += std::to_string(d);
  }
  return s + "]";
}

RankedTensorType tensorOf(Value v) {
  return cast<RankedTensorType>(v.getType());
}

/// Normalises `axis` into [0, rank) or reports that it is out of range.
FailureOr<int64_t> normaliseAxis(ShapeError err, StringRef opName, int64_t axis,
                                 int64_t rank, StringRef what = "axis") {
  if (axis < -rank || axis >= std::max<int64_t>(rank, 1)) {
    err.emit() << "'" << opName << "' " << what << " " << axis
               << " is out of range for rank " << rank;
    return failure();
  }
  return axis < 0 ? axis + rank : axis;
}

LogicalResult inferBroadcast(ShapeError err, StringRef opName, Value lhs,
                             Value rhs, Type resultElement,
                             SmallVectorImpl<Type> &types) {
  RankedTensorType l = tensorOf(lhs), r = tensorOf(rhs);
  if (l.getElementType() != r.getElementType())
    return err.emit() << "'" << opName << "' operands have different element types "
                      << l.getElementType() << " and " << r.getElementType();
  auto shape = broadcastShapes(l.getShape(), r.getShape());
  if (failed(shape))
    return err.emit() << "'" << opName << "' operand shapes "
                      << shapeString(l.getShape()) << " and "
                      << shapeString(r.getShape()) << " do not broadcast";
  types.push_back(RankedTensorType::get(
      *shape, resultElement ? resultElement : l.getElementType()));
  return success();
}

} // namespace

//===----------------------------------------------------------------------===//
// Custom assembly directives
//===----------------------------------------------------------------------===//

/// `custom<EnumKeyword>($attr)`: an enum attribute written as its bare keyword
/// inside an op (`frozen`, `initializer`, `tanh`). The attributes' own
/// standalone form stays `#vlora<role frozen>`; printing them through it
/// inside an op would add a second space before the keyword.
template <typename AttrT>
static ParseResult parseEnumKeyword(OpAsmParser &parser, AttrT &attr) {
  using EnumT = decltype(std::declval<AttrT>().getValue());
  FailureOr<EnumT> value = FieldParser<EnumT>::parse(parser);
  if (failed(value))
    return failure();
  attr = AttrT::get(parser.getContext(), *value);
  return success();
}

template <typename AttrT>
static void printEnumKeyword(OpAsmPrinter &printer, Operation *, AttrT attr) {
  printer << stringifyEnum(attr.getValue());
}

//===----------------------------------------------------------------------===//
// ParamOp
//===----------------------------------------------------------------------===//

LogicalResult ParamOp::verify() {
  auto type = cast<RankedTensorType>(getResult().getType());
  if (getName().empty())
    return emitOpError("needs a non-empty name");
  if (!type.hasStaticShape())
    return emitOpError("needs a static shape");
  int64_t elementBytes = getElementByteSize(type.getElementType());
  if (elementBytes == 0)
    return emitOpError("element type ")
           << type.getElementType() << " has no storage size";
  int64_t offset = getOffsetAttr().getInt(), length = getLengthAttr().getInt();
  if (offset < 0)
    return emitOpError("offset ") << offset << " is negative";
  int64_t expected = type.getNumElements() * elementBytes;
  if (length != expected)
    return emitOpError("length ")
           << length << " does not match " << expected << " bytes of "
           << type;
  if (getFile().empty())
    return emitOpError("needs the file that holds its bytes");
  return success();
}

//===----------------------------------------------------------------------===//
// ConstantOp
//===----------------------------------------------------------------------===//

LogicalResult ConstantOp::inferReturnTypes(MLIRContext *,
                                           std::optional<Location> loc,
                                           Adaptor adaptor,
                                           SmallVectorImpl<Type> &types) {
  auto type = dyn_cast<RankedTensorType>(adaptor.getValue().getType());
  if (!type)
    return ShapeError{loc}.emit() << "'vlora.constant' value must be a ranked tensor";
  types.push_back(type);
  return success();
}

OpFoldResult ConstantOp::fold(FoldAdaptor) { return getValue(); }

//===----------------------------------------------------------------------===//
// Elementwise ops
//===----------------------------------------------------------------------===//


#define VLORA_BROADCAST_INFERENCE(OP, RESULT_ELEMENT)                          \
  LogicalResult OP::inferReturnTypes(MLIRContext *ctx,                        \
                                     std::optional<Location> loc,              \
                                     Adaptor adaptor,                          \
                                     SmallVectorImpl<Type> &types) {           \
    (void)ctx;                                                                 \
    return inferBroadcast(ShapeError{loc}, OP::getOperationName(),             \
                          adaptor.getLhs(), adaptor.getRhs(), RESULT_ELEMENT,  \
                          types);                                              \
  }
VLORA_BROADCAST_INFERENCE(AddOp, Type())
VLORA_BROADCAST_INFERENCE(SubOp, Type())
VLORA_BROADCAST_INFERENCE(MulOp, Type())
VLORA_BROADCAST_INFERENCE(DivOp, Type())
VLORA_BROADCAST_INFERENCE(PowOp, Type())
VLORA_BROADCAST_INFERENCE(MaxOp, Type())
VLORA_BROADCAST_INFERENCE(MinOp, Type())
VLORA_BROADCAST_INFERENCE(AndOp, Type())
VLORA_BROADCAST_INFERENCE(OrOp, Type())
VLORA_BROADCAST_INFERENCE(XorOp, Type())
VLORA_BROADCAST_INFERENCE(EqualOp, IntegerType::get(ctx, 1))
VLORA_BROADCAST_INFERENCE(LessOp, IntegerType::get(ctx, 1))
VLORA_BROADCAST_INFERENCE(LessEqualOp, IntegerType::get(ctx, 1))
VLORA_BROADCAST_INFERENCE(GreaterOp, IntegerType::get(ctx, 1))
VLORA_BROADCAST_INFERENCE(GreaterEqualOp, IntegerType::get(ctx, 1))
#undef VLORA_BROADCAST_INFERENCE

LogicalResult WhereOp::inferReturnTypes(MLIRContext *,
                                        std::optional<Location> loc,
                                        Adaptor adaptor,
                                        SmallVectorImpl<Type> &types) {
  SmallVector<Type> valueType;
  if (failed(inferBroadcast(ShapeError{loc}, getOperationName(),
                            adaptor.getLhs(), adaptor.getRhs(), Type(),
                            valueType)))
    return failure();
  auto values = cast<RankedTensorType>(valueType.front());
  auto cond = tensorOf(adaptor.getCondition());
  auto shape = broadcastShapes(cond.getShape(), values.getShape());
  if (failed(shape))
    return ShapeError{loc}.emit()
           << "'vlora.where' condition shape " << shapeString(cond.getShape())
           << " does not broadcast with " << shapeString(values.getShape());
  types.push_back(RankedTensorType::get(*shape, values.getElementType()));
  return success();
}

LogicalResult CastOp::inferReturnTypes(MLIRContext *,
                                       std::optional<Location> loc,
                                       Adaptor adaptor,
                                       SmallVectorImpl<Type> &types) {
  Type to = adaptor.getTo();
  if (!to.isIntOrFloat())
    return ShapeError{loc}.emit()
           << "'vlora.cast' target " << to << " is not an integer or float type";
  types.push_back(tensorOf(adaptor.getInput()).clone(to));
  return success();
}

//===----------------------------------------------------------------------===//
// Linear algebra
//===----------------------------------------------------------------------===//

/// The element type a matmul-family op computes and returns, given its
/// activation type `data`, its weight type `weight` and `f32_result`; null
/// when the two may not meet. Without `f32_result` they share a type, or an
/// f32 activation meets a bf16 weight (the frozen weights of
/// --vlora-mixed-precision{compute=bf16}) and the result is f32. With it,
/// each is bf16 or f32 (the bf16 activations of the same pass) and the
/// result is f32.
static Type productType(Type data, Type weight, bool f32Result) {
  auto bf16OrF32 = [](Type t) { return t.isBF16() || t.isF32(); };
  if (f32Result)
    return bf16OrF32(data) && bf16OrF32(weight)
               ? Float32Type::get(data.getContext())
               : Type();
  if (data == weight || (data.isF32() && weight.isBF16()))
    return data;
  return Type();
}

/// The hint after a productType refusal: which element types may meet.
static std::string mixHint(bool f32Result, StringRef activation) {
  if (f32Result)
    return " (with f32_result each must be bf16 or f32)";
  return (" (only an f32 " + activation + " with a bf16 weight may mix)").str();
}

LogicalResult MatmulOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &types) {
  ShapeError err{loc};
  auto lhs = tensorOf(adaptor.getLhs()), rhs = tensorOf(adaptor.getRhs());
  if (lhs.getRank() < 2 || rhs.getRank() < 2)
    return err.emit() << "'vlora.matmul' operands need rank >= 2, got "
                      << lhs.getRank() << " and " << rhs.getRank();
  Type lt = lhs.getElementType(), rt = rhs.getElementType();
  bool f32Result = adaptor.getF32Result();
  Type product = productType(lt, rt, f32Result);
  if (!product)
    product = productType(rt, lt, f32Result);
  if (!product)
    return err.emit() << "'vlora.matmul' operands have element types " << lt
                      << " and " << rt
                      << mixHint(f32Result, "operand");
  ArrayRef<int64_t> ls = lhs.getShape(), rs = rhs.getShape();
  int64_t m = ls[ls.size() - 2], kl = ls.back();
  if (adaptor.getTransposeA())
    std::swap(m, kl);
  int64_t kr = rs[rs.size() - 2], n = rs.back();
  if (adaptor.getTransposeB())
    std::swap(kr, n);
  if (kl != kr)
    return err.emit() << "'vlora.matmul' contraction sizes differ: lhs "
                      << shapeString(ls) << " has K=" << kl << ", rhs "
                      << shapeString(rs) << " has K=" << kr;
  auto batch = broadcastShapes(ls.drop_back(2), rs.drop_back(2));
  if (failed(batch))
    return err.emit() << "'vlora.matmul' batch dimensions of "
                      << shapeString(ls) << " and " << shapeString(rs)
                      << " do not broadcast";
  SmallVector<int64_t> shape = *batch;
  shape.push_back(m);
  shape.push_back(n);
  types.push_back(RankedTensorType::get(shape, product));
  return success();
}

LogicalResult ConvOp::inferReturnTypes(MLIRContext *,
                                       std::optional<Location> loc,
                                       Adaptor adaptor,
                                       SmallVectorImpl<Type> &types) {
  ShapeError err{loc};
  auto input = tensorOf(adaptor.getInput()), weight = tensorOf(adaptor.getWeight());
  int64_t rank = input.getRank();
  if (rank < 3 || weight.getRank() != rank)
    return err.emit() << "'vlora.conv' needs input and weight of equal rank >= 3, got "
                      << rank << " and " << weight.getRank();
  size_t k = rank - 2;
  ArrayRef<int64_t> strides = adaptor.getStrides(), pads = adaptor.getPads(),
                    dilations = adaptor.getDilations();
  if (strides.size() != k || dilations.size() != k || pads.size() != 2 * k)
    return err.emit() << "'vlora.conv' needs " << k << " strides, " << k
                      << " dilations and " << 2 * k << " pads";
  int64_t group = adaptor.getGroup();
  int64_t channels = input.getDimSize(1), outChannels = weight.getDimSize(0);
  if (group < 1 || channels % group || outChannels % group ||
      weight.getDimSize(1) * group != channels)
    return err.emit() << "'vlora.conv' weight " << shapeString(weight.getShape())
                      << " does not fit input " << shapeString(input.getShape())
                      << " with group " << group;
  if (Value bias = adaptor.getBias()) {
    auto b = tensorOf(bias);
    if (b.getRank() != 1 || b.getDimSize(0) != outChannels)
      return err.emit() << "'vlora.conv' bias must have shape [" << outChannels << "]";
  }
  SmallVector<int64_t> shape{input.getDimSize(0), outChannels};
  for (size_t i = 0; i < k; ++i) {
    if (strides[i] < 1 || dilations[i] < 1 || pads[i] < 0 || pads[i + k] < 0)
      return err.emit() << "'vlora.conv' strides and dilations must be >= 1 and pads >= 0";
    int64_t span = dilations[i] * (weight.getDimSize(i + 2) - 1) + 1;
    int64_t extent = input.getDimSize(i + 2) + pads[i] + pads[i + k];
    if (extent < span)
      return err.emit() << "'vlora.conv' kernel does not fit spatial dimension " << i;
    shape.push_back((extent - span) / strides[i] + 1);
  }
  types.push_back(RankedTensorType::get(shape, input.getElementType()));
  return success();
}

namespace {
/// Rewrites a patch-embedding convolution into reshape + transpose + matmul.
///
/// With input X [N, C, D1..Dk], weight W [M, C, K1..Kk], strides == K,
/// no padding, dilation 1, group 1 and Di = Pi * Ki, the convolution is
///
///   Y[n, m, p1..pk] = bias[m] + sum_{c, a1..ak}
///                       X[n, c, p1*K1 + a1, .., pk*Kk + ak] * W[m, c, a1..ak]
///
/// i.e. every output position sees its own, non-overlapping patch. So:
///   1. X1 = reshape X  [N, C, P1, K1, .., Pk, Kk]
///        X1[n, c, p1, a1, ..] = X[n, c, p1*K1 + a1, ..]   (row-major split)
///   2. X2 = transpose X1 [0, 2, 4, .., 2k, 1, 3, 5, .., 2k+1]
///        -> [N, P1..Pk, C, K1..Kk]
///   3. X3 = reshape X2  [N, P1*..*Pk, C*K1*..*Kk]
///        X3[n, p, (c, a1..ak)] with p = (p1..pk) and the patch index
///        flattened row-major over (c, a1..ak)
///   4. W2 = reshape W   [M, C*K1*..*Kk]   (the same (c, a1..ak) flattening)
///   5. Y1 = matmul X3, W2 transpose_b -> [N, P, M]
///        Y1[n, p, m] = sum_{c, a} X3[n, p, (c, a)] * W2[m, (c, a)]
///   6. (+ bias [M], broadcast over the last dimension)
///   7. Y2 = transpose Y1 [0, 2, 1] -> [N, M, P]
///   8. Y  = reshape Y2  [N, M, P1..Pk]
/// The matmul takes the convolution's location and discardable attributes
/// (its tags), so it is targeted like the convolution was.
struct PatchEmbeddingConvToMatmul : OpRewritePattern<ConvOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(ConvOp op,
                                PatternRewriter &rewriter) const override {
    auto input = tensorOf(op.getInput()), weight = tensorOf(op.getWeight());
    int64_t k = input.getRank() - 2;
    ArrayRef<int64_t> kernel = weight.getShape().drop_front(2);
    if (op.getGroup() != 1)
      return rewriter.notifyMatchFailure(op, "grouped convolution");
    if (op.getStrides() != kernel)
      return rewriter.notifyMatchFailure(op, "stride differs from kernel");
    if (llvm::any_of(op.getPads(), [](int64_t p) { return p != 0; }) ||
        llvm::any_of(op.getDilations(), [](int64_t d) { return d != 1; }))
      return rewriter.notifyMatchFailure(op, "padded or dilated");
    int64_t n = input.getDimSize(0), c = input.getDimSize(1),
            m = weight.getDimSize(0);
    SmallVector<int64_t> patches;
    for (int64_t i = 0; i < k; ++i) {
      if (input.getDimSize(i + 2) % kernel[i])
        return rewriter.notifyMatchFailure(op, "size not divisible by kernel");
      patches.push_back(input.getDimSize(i + 2) / kernel[i]);
    }
    int64_t numPatches = 1, patchSize = c;
    for (int64_t i = 0; i < k; ++i) {
      numPatches *= patches[i];
      patchSize *= kernel[i];
    }

    Location loc = op.getLoc();
    SmallVector<int64_t> split{n, c}, perm{0};
    for (int64_t i = 0; i < k; ++i) {
      split.push_back(patches[i]);
      split.push_back(kernel[i]);
      perm.push_back(2 + 2 * i);
    }
    perm.push_back(1);
    for (int64_t i = 0; i < k; ++i)
      perm.push_back(3 + 2 * i);
    Value x = ReshapeOp::create(rewriter, loc, op.getInput(), split);
    x = TransposeOp::create(rewriter, loc, x, perm);
    x = ReshapeOp::create(rewriter, loc, x,
                          ArrayRef<int64_t>{n, numPatches, patchSize});
    Value w = ReshapeOp::create(rewriter, loc, op.getWeight(),
                                ArrayRef<int64_t>{m, patchSize});
    auto matmul = MatmulOp::create(rewriter, loc, x, w,
                                   /*transpose_a=*/false,
                                   /*transpose_b=*/true);
    for (NamedAttribute attr : op->getDiscardableAttrs())
      matmul->setAttr(attr.getName(), attr.getValue());
    Value y = matmul;
    if (Value bias = op.getBias())
      y = AddOp::create(rewriter, loc, y, bias);
    y = TransposeOp::create(rewriter, loc, y, ArrayRef<int64_t>{0, 2, 1});
    SmallVector<int64_t> outShape{n, m};
    llvm::append_range(outShape, patches);
    rewriter.replaceOpWithNewOp<ReshapeOp>(op, y, outShape);
    return success();
  }
};
} // namespace

namespace {
/// matmul(x, transpose(W) [1, 0]) -> matmul(x, W) with transpose_b flipped.
struct FoldRhsTranspose : OpRewritePattern<MatmulOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(MatmulOp op, PatternRewriter &rewriter) const override {
    auto transpose = op.getRhs().getDefiningOp<TransposeOp>();
    if (!transpose || tensorOf(transpose.getInput()).getRank() != 2 ||
        transpose.getPerm() != ArrayRef<int64_t>{1, 0})
      return rewriter.notifyMatchFailure(op, "rhs is not a 2-D transpose");
    rewriter.modifyOpInPlace(op, [&] {
      op.getRhsMutable().assign(transpose.getInput());
      op.setTransposeB(!op.getTransposeB());
    });
    return success();
  }
};
} // namespace

void MatmulOp::getCanonicalizationPatterns(RewritePatternSet &patterns,
                                           MLIRContext *context) {
  patterns.add<FoldRhsTranspose>(context);
}

void ConvOp::getCanonicalizationPatterns(RewritePatternSet &patterns,
                                         MLIRContext *context) {
  patterns.add<PatchEmbeddingConvToMatmul>(context);
}

//===----------------------------------------------------------------------===//
// Normalisation and reductions
//===----------------------------------------------------------------------===//

#define VLORA_AXIS_VERIFIER(OP)                                                \
  LogicalResult OP::verify() {                                                 \
    return normaliseAxis(ShapeError{getLoc()}, getOperationName(), getAxis(),  \
                         getType().getRank());                                 \
  }
VLORA_AXIS_VERIFIER(SoftmaxOp)
VLORA_AXIS_VERIFIER(LogSoftmaxOp)
VLORA_AXIS_VERIFIER(CumsumOp)
#undef VLORA_AXIS_VERIFIER

/// Shared by layer_norm and rms_norm: `scale` (and `bias`) have the shape of
/// the normalised trailing dimensions.
static LogicalResult inferNorm(ShapeError err, StringRef opName, Value input,
                               int64_t axis, ArrayRef<Value> affine,
                               SmallVectorImpl<Type> &types) {
  auto type = tensorOf(input);
  auto norm = normaliseAxis(err, opName, axis, type.getRank());
  if (failed(norm))
    return failure();
  ArrayRef<int64_t> normalised = type.getShape().drop_front(*norm);
  for (Value v : affine) {
    if (!v)
      continue;
    auto t = tensorOf(v);
    if (t.getShape() != normalised || t.getElementType() != type.getElementType())
      return err.emit() << "'" << opName << "' scale/bias shape "
                        << shapeString(t.getShape()) << " must be "
                        << shapeString(normalised) << " with element type "
                        << type.getElementType();
  }
  types.push_back(type);
  return success();
}

LogicalResult LayerNormOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &types) {
  return inferNorm(ShapeError{loc}, getOperationName(), adaptor.getInput(),
                   adaptor.getAxis(), {adaptor.getScale(), adaptor.getBias()},
                   types);
}

LogicalResult RmsNormOp::inferReturnTypes(MLIRContext *,
                                          std::optional<Location> loc,
                                          Adaptor adaptor,
                                          SmallVectorImpl<Type> &types) {
  return inferNorm(ShapeError{loc}, getOperationName(), adaptor.getInput(),
                   adaptor.getAxis(), {adaptor.getScale()}, types);
}

/// The shape left after reducing `axes` (validated: in range, no repeats).
static FailureOr<SmallVector<int64_t>>
reducedShape(ShapeError err, StringRef opName, ArrayRef<int64_t> shape,
             ArrayRef<int64_t> axes, bool keepdims) {
  int64_t rank = shape.size();
  llvm::SmallSet<int64_t, 8> seen;
  for (int64_t axis : axes) {
    if (axis < 0 || axis >= rank)
      return err.emit() << "'" << opName << "' axis " << axis
                        << " is out of range for rank " << rank,
             failure();
    if (!seen.insert(axis).second)
      return err.emit() << "'" << opName << "' axis " << axis << " is repeated",
             failure();
  }
  SmallVector<int64_t> result;
  for (int64_t d = 0; d < rank; ++d) {
    if (!seen.contains(d))
      result.push_back(shape[d]);
    else if (keepdims)
      result.push_back(1);
  }
  return result;
}

#define VLORA_REDUCE_INFERENCE(OP)                                             \
  LogicalResult OP::inferReturnTypes(MLIRContext *,                           \
                                     std::optional<Location> loc,              \
                                     Adaptor adaptor,                          \
                                     SmallVectorImpl<Type> &types) {           \
    auto type = tensorOf(adaptor.getInput());                                  \
    auto shape = reducedShape(ShapeError{loc}, getOperationName(),             \
                              type.getShape(), adaptor.getAxes(),              \
                              adaptor.getKeepdims());                          \
    if (failed(shape))                                                         \
      return failure();                                                        \
    types.push_back(type.clone(*shape));                                       \
    return success();                                                          \
  }
VLORA_REDUCE_INFERENCE(ReduceSumOp)
VLORA_REDUCE_INFERENCE(ReduceMeanOp)
VLORA_REDUCE_INFERENCE(ReduceMaxOp)
VLORA_REDUCE_INFERENCE(ReduceMinOp)
VLORA_REDUCE_INFERENCE(ReduceProdOp)
#undef VLORA_REDUCE_INFERENCE

LogicalResult ArgMaxOp::inferReturnTypes(MLIRContext *ctx,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &types) {
  auto type = tensorOf(adaptor.getInput());
  int64_t axis = adaptor.getAxis();
  auto shape = reducedShape(ShapeError{loc}, getOperationName(), type.getShape(),
                            ArrayRef<int64_t>(axis), adaptor.getKeepdims());
  if (failed(shape))
    return failure();
  types.push_back(RankedTensorType::get(*shape, IntegerType::get(ctx, 64)));
  return success();
}

//===----------------------------------------------------------------------===//
// Data movement
//===----------------------------------------------------------------------===//

LogicalResult ReshapeOp::inferReturnTypes(MLIRContext *,
                                          std::optional<Location> loc,
                                          Adaptor adaptor,
                                          SmallVectorImpl<Type> &types) {
  auto type = tensorOf(adaptor.getInput());
  ArrayRef<int64_t> shape = adaptor.getShape();
  int64_t count = 1;
  for (int64_t d : shape) {
    if (d < 0)
      return ShapeError{loc}.emit()
             << "'vlora.reshape' target shape " << shapeString(shape)
             << " has a negative dimension";
    count *= d;
  }
  if (count != type.getNumElements())
    return ShapeError{loc}.emit()
           << "'vlora.reshape' cannot reshape " << shapeString(type.getShape())
           << " (" << type.getNumElements() << " elements) to "
           << shapeString(shape) << " (" << count << " elements)";
  types.push_back(type.clone(shape));
  return success();
}

OpFoldResult ReshapeOp::fold(FoldAdaptor adaptor) {
  if (getInput().getType() == getType())
    return getInput();
  // reshape(reshape(x)) == reshape(x): both are row-major reinterpretations.
  if (auto inner = getInput().getDefiningOp<ReshapeOp>()) {
    getInputMutable().assign(inner.getInput());
    if (getInput().getType() == getType())
      return getInput();
    return getResult();
  }
  if (auto dense = dyn_cast_or_null<DenseElementsAttr>(adaptor.getInput()))
    return dense.reshape(getType());
  return {};
}

LogicalResult TransposeOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &types) {
  auto type = tensorOf(adaptor.getInput());
  ArrayRef<int64_t> perm = adaptor.getPerm();
  int64_t rank = type.getRank();
  SmallVector<bool> used(rank, false);
  if ((int64_t)perm.size() != rank)
    return ShapeError{loc}.emit() << "'vlora.transpose' permutation "
                                  << shapeString(perm) << " does not match rank "
                                  << rank;
  SmallVector<int64_t> shape;
  for (int64_t p : perm) {
    if (p < 0 || p >= rank || used[p])
      return ShapeError{loc}.emit() << "'vlora.transpose' " << shapeString(perm)
                                    << " is not a permutation of [0, " << rank
                                    << ")";
    used[p] = true;
    shape.push_back(type.getDimSize(p));
  }
  types.push_back(type.clone(shape));
  return success();
}

OpFoldResult TransposeOp::fold(FoldAdaptor) {
  ArrayRef<int64_t> perm = getPerm();
  // transpose(transpose(x, inner), outer) == transpose(x, inner[outer[i]]):
  // result[.., i, ..] = mid[.., outer[i], ..] = x[.., inner[outer[i]], ..].
  if (auto inner = getInput().getDefiningOp<TransposeOp>()) {
    ArrayRef<int64_t> innerPerm = inner.getPerm();
    SmallVector<int64_t> composed;
    for (int64_t p : perm)
      composed.push_back(innerPerm[p]);
    getInputMutable().assign(inner.getInput());
    setPerm(composed);
    perm = getPerm();
    if (!llvm::equal(perm, llvm::seq<int64_t>(0, perm.size())))
      return getResult();
  }
  if (llvm::equal(perm, llvm::seq<int64_t>(0, perm.size())))
    return getInput();
  return {};
}

LogicalResult SliceOp::inferReturnTypes(MLIRContext *,
                                        std::optional<Location> loc,
                                        Adaptor adaptor,
                                        SmallVectorImpl<Type> &types) {
  ShapeError err{loc};
  auto type = tensorOf(adaptor.getInput());
  ArrayRef<int64_t> starts = adaptor.getStarts(), limits = adaptor.getLimits(),
                    strides = adaptor.getStrides();
  int64_t rank = type.getRank();
  if ((int64_t)starts.size() != rank || (int64_t)limits.size() != rank ||
      (int64_t)strides.size() != rank)
    return err.emit() << "'vlora.slice' needs " << rank
                      << " starts, limits and strides";
  SmallVector<int64_t> shape;
  for (int64_t d = 0; d < rank; ++d) {
    int64_t dim = type.getDimSize(d), start = starts[d], limit = limits[d],
            step = strides[d];
    bool ok;
    if (step > 0)
      ok = start >= 0 && start <= dim && limit >= start && limit <= dim;
    else if (step < 0)
      ok = start >= -1 && start < std::max<int64_t>(dim, 0) && limit >= -1 &&
           limit <= start;
    else
      ok = false;
    if (!ok)
      return err.emit() << "'vlora.slice' bounds " << start << ":" << limit
                        << ":" << step << " are invalid for dimension " << d
                        << " of size " << dim;
    int64_t size = step > 0 ? (limit - start + step - 1) / step
                            : (start - limit + (-step) - 1) / (-step);
    shape.push_back(std::max<int64_t>(size, 0));
  }
  types.push_back(type.clone(shape));
  return success();
}

LogicalResult ConcatOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &types) {
  ShapeError err{loc};
  ValueRange inputs = adaptor.getInputs();
  if (inputs.empty())
    return err.emit() << "'vlora.concat' needs at least one operand";
  auto first = tensorOf(inputs.front());
  auto axis = normaliseAxis(err, getOperationName(), adaptor.getAxis(),
                            first.getRank());
  if (failed(axis))
    return failure();
  if (*axis != static_cast<int64_t>(adaptor.getAxis()))
    return err.emit() << "'vlora.concat' axis must be normalised to [0, rank)";
  SmallVector<int64_t> shape(first.getShape());
  for (Value v : inputs.drop_front()) {
    auto t = tensorOf(v);
    if (t.getRank() != first.getRank() ||
        t.getElementType() != first.getElementType())
      return err.emit() << "'vlora.concat' operands differ in rank or element type";
    for (int64_t d = 0; d < t.getRank(); ++d) {
      if (d == *axis)
        continue;
      if (t.getDimSize(d) != first.getDimSize(d))
        return err.emit() << "'vlora.concat' operand shapes "
                          << shapeString(first.getShape()) << " and "
                          << shapeString(t.getShape()) << " differ off axis "
                          << *axis;
    }
    shape[*axis] += t.getDimSize(*axis);
  }
  types.push_back(first.clone(shape));
  return success();
}

LogicalResult FusedElementwiseOp::inferReturnTypes(MLIRContext *ctx,
                                                   std::optional<Location> loc,
                                                   Adaptor adaptor,
                                                   SmallVectorImpl<Type> &types) {
  ShapeError err{loc};
  SmallVector<int64_t> shape;
  std::vector<bool> inputIsBf16;
  for (auto [i, input] : llvm::enumerate(adaptor.getInputs())) {
    auto type = tensorOf(input);
    Type element = type.getElementType();
    if (!element.isF32() && !element.isBF16())
      return err.emit() << "'vlora.fused_elementwise' input " << i << " is " << type
                        << "; f32 or bf16 expected";
    inputIsBf16.push_back(element.isBF16());
    auto joined = broadcastShapes(shape, type.getShape());
    if (failed(joined))
      return err.emit() << "'vlora.fused_elementwise' input " << i << " shape "
                        << shapeString(type.getShape()) << " does not broadcast with "
                        << shapeString(shape);
    shape = *joined;
  }
  std::vector<int64_t> program(adaptor.getProgram().begin(), adaptor.getProgram().end());
  std::vector<int64_t> outputs(adaptor.getOutputs().begin(), adaptor.getOutputs().end());
  std::vector<bool> registerIsBf16;
  std::string bad =
      kernels::checkFusedProgram(program, outputs, inputIsBf16, registerIsBf16);
  if (!bad.empty())
    return err.emit() << "'vlora.fused_elementwise' " << bad;
  Type f32 = Float32Type::get(ctx), bf16 = BFloat16Type::get(ctx);
  for (int64_t r : outputs)
    types.push_back(RankedTensorType::get(shape, registerIsBf16[r] ? bf16 : f32));
  return success();
}

LogicalResult SplitOp::inferReturnTypes(MLIRContext *,
                                        std::optional<Location> loc,
                                        Adaptor adaptor,
                                        SmallVectorImpl<Type> &types) {
  ShapeError err{loc};
  auto type = tensorOf(adaptor.getInput());
  int64_t axis = adaptor.getAxis();
  if (axis < 0 || axis >= type.getRank())
    return err.emit() << "'vlora.split' axis " << axis
                      << " is out of range for rank " << type.getRank();
  int64_t total = 0;
  for (int64_t size : adaptor.getSizes()) {
    if (size < 0)
      return err.emit() << "'vlora.split' sizes must be non-negative";
    total += size;
  }
  if (total != type.getDimSize(axis) || adaptor.getSizes().empty())
    return err.emit() << "'vlora.split' sizes " << shapeString(adaptor.getSizes())
                      << " do not add up to dimension " << axis << " of size "
                      << type.getDimSize(axis);
  for (int64_t size : adaptor.getSizes()) {
    SmallVector<int64_t> shape(type.getShape());
    shape[axis] = size;
    types.push_back(type.clone(shape));
  }
  return success();
}

LogicalResult GatherOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &types) {
  auto data = tensorOf(adaptor.getData()), indices = tensorOf(adaptor.getIndices());
  int64_t axis = adaptor.getAxis();
  if (axis < 0 || axis >= data.getRank())
    return ShapeError{loc}.emit() << "'vlora.gather' axis " << axis
                                  << " is out of range for rank " << data.getRank();
  SmallVector<int64_t> shape(data.getShape().take_front(axis));
  llvm::append_range(shape, indices.getShape());
  llvm::append_range(shape, data.getShape().drop_front(axis + 1));
  types.push_back(data.clone(shape));
  return success();
}

LogicalResult GatherGradOp::inferReturnTypes(MLIRContext *,
                                             std::optional<Location> loc,
                                             Adaptor adaptor,
                                             SmallVectorImpl<Type> &types) {
  auto grad = tensorOf(adaptor.getGrad()), indices = tensorOf(adaptor.getIndices());
  ArrayRef<int64_t> shape = adaptor.getShape();
  int64_t axis = adaptor.getAxis(), rank = shape.size();
  if (axis < 0 || axis >= rank)
    return ShapeError{loc}.emit() << "'vlora.gather_grad' axis " << axis
                                  << " is out of range for the data rank " << rank;
  if (llvm::any_of(shape, [](int64_t d) { return d < 0; }))
    return ShapeError{loc}.emit() << "'vlora.gather_grad' shape has a negative dimension";
  SmallVector<int64_t> gathered(shape.take_front(axis));
  llvm::append_range(gathered, indices.getShape());
  llvm::append_range(gathered, shape.drop_front(axis + 1));
  if (grad.getShape() != ArrayRef<int64_t>(gathered))
    return ShapeError{loc}.emit()
           << "'vlora.gather_grad' grad " << shapeString(grad.getShape())
           << " must be the gather's result shape " << shapeString(gathered);
  types.push_back(grad.clone(shape));
  return success();
}

LogicalResult GatherElementsOp::inferReturnTypes(MLIRContext *,
                                                 std::optional<Location> loc,
                                                 Adaptor adaptor,
                                                 SmallVectorImpl<Type> &types) {
  auto data = tensorOf(adaptor.getData()), indices = tensorOf(adaptor.getIndices());
  int64_t axis = adaptor.getAxis();
  if (axis < 0 || axis >= data.getRank() || indices.getRank() != data.getRank())
    return ShapeError{loc}.emit()
           << "'vlora.gather_elements' needs indices of the data's rank and an "
              "axis in [0, rank)";
  for (int64_t d = 0; d < data.getRank(); ++d)
    if (d != axis && indices.getDimSize(d) > data.getDimSize(d))
      return ShapeError{loc}.emit() << "'vlora.gather_elements' indices shape "
                                    << shapeString(indices.getShape())
                                    << " exceeds data shape "
                                    << shapeString(data.getShape());
  types.push_back(data.clone(indices.getShape()));
  return success();
}

LogicalResult ScatterNDOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &types) {
  auto data = tensorOf(adaptor.getData()), indices = tensorOf(adaptor.getIndices()),
       updates = tensorOf(adaptor.getUpdates());
  ShapeError err{loc};
  if (indices.getRank() < 1)
    return err.emit() << "'vlora.scatter_nd' indices need rank >= 1";
  int64_t k = indices.getShape().back();
  if (k < 1 || k > data.getRank())
    return err.emit() << "'vlora.scatter_nd' index depth " << k
                      << " must be in [1, " << data.getRank() << "]";
  SmallVector<int64_t> expected(indices.getShape().drop_back());
  llvm::append_range(expected, data.getShape().drop_front(k));
  if (updates.getShape() != ArrayRef<int64_t>(expected) ||
      updates.getElementType() != data.getElementType())
    return err.emit() << "'vlora.scatter_nd' updates shape "
                      << shapeString(updates.getShape()) << " must be "
                      << shapeString(expected);
  types.push_back(data);
  return success();
}

LogicalResult GatherNDOp::inferReturnTypes(MLIRContext *,
                                           std::optional<Location> loc,
                                           Adaptor adaptor,
                                           SmallVectorImpl<Type> &types) {
  auto data = tensorOf(adaptor.getData()), indices = tensorOf(adaptor.getIndices());
  if (indices.getRank() < 1)
    return ShapeError{loc}.emit() << "'vlora.gather_nd' indices need rank >= 1";
  int64_t k = indices.getShape().back();
  if (k < 1 || k > data.getRank())
    return ShapeError{loc}.emit() << "'vlora.gather_nd' index depth " << k
                                  << " must be in [1, " << data.getRank() << "]";
  SmallVector<int64_t> shape(indices.getShape().drop_back());
  llvm::append_range(shape, data.getShape().drop_front(k));
  types.push_back(data.clone(shape));
  return success();
}

LogicalResult MaskedScatterOp::inferReturnTypes(MLIRContext *,
                                                std::optional<Location> loc,
                                                Adaptor adaptor,
                                                SmallVectorImpl<Type> &types) {
  auto data = tensorOf(adaptor.getData()), mask = tensorOf(adaptor.getMask()),
       source = tensorOf(adaptor.getSource());
  if (mask.getShape() != data.getShape())
    return ShapeError{loc}.emit() << "'vlora.masked_scatter' mask shape "
                                  << shapeString(mask.getShape())
                                  << " must equal data shape "
                                  << shapeString(data.getShape());
  if (source.getElementType() != data.getElementType())
    return ShapeError{loc}.emit()
           << "'vlora.masked_scatter' source element type "
           << source.getElementType() << " differs from data's "
           << data.getElementType();
  types.push_back(data);
  return success();
}

LogicalResult ExpandOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &types) {
  auto type = tensorOf(adaptor.getInput());
  auto shape = broadcastShapes(type.getShape(), adaptor.getShape());
  if (failed(shape) || llvm::any_of(adaptor.getShape(), [](int64_t d) { return d < 0; }))
    return ShapeError{loc}.emit()
           << "'vlora.expand' cannot broadcast " << shapeString(type.getShape())
           << " to " << shapeString(adaptor.getShape());
  types.push_back(type.clone(*shape));
  return success();
}

LogicalResult PadOp::inferReturnTypes(MLIRContext *,
                                      std::optional<Location> loc,
                                      Adaptor adaptor,
                                      SmallVectorImpl<Type> &types) {
  auto type = tensorOf(adaptor.getInput());
  ArrayRef<int64_t> pads = adaptor.getPads();
  int64_t rank = type.getRank();
  if ((int64_t)pads.size() != 2 * rank ||
      llvm::any_of(pads, [](int64_t p) { return p < 0; }))
    return ShapeError{loc}.emit() << "'vlora.pad' needs " << 2 * rank
                                  << " non-negative pads";
  SmallVector<int64_t> shape(type.getShape());
  for (int64_t d = 0; d < rank; ++d)
    shape[d] += pads[d] + pads[rank + d];
  types.push_back(type.clone(shape));
  return success();
}

LogicalResult TriluOp::verify() {
  if (getType().getRank() < 2)
    return emitOpError("needs rank >= 2");
  return success();
}

//===----------------------------------------------------------------------===//
// LoRAMatmulOp
//===----------------------------------------------------------------------===//

LogicalResult LoRAMatmulOp::inferReturnTypes(MLIRContext *,
                                             std::optional<Location> loc,
                                             Adaptor adaptor,
                                             SmallVectorImpl<Type> &types) {
  ShapeError err{loc};
  auto x = tensorOf(adaptor.getX()), w = tensorOf(adaptor.getW());
  auto a = tensorOf(adaptor.getA()), b = tensorOf(adaptor.getB());
  if (x.getRank() < 2)
    return err.emit() << "'vlora.lora_matmul' input needs rank >= 2, got "
                      << x.getRank();
  if (w.getRank() != 2 || a.getRank() != 2 || b.getRank() != 2)
    return err.emit() << "'vlora.lora_matmul' weight, A and B need rank 2, got "
                      << w.getRank() << ", " << a.getRank() << " and "
                      << b.getRank();
  bool f32Result = adaptor.getF32Result();
  Type product =
      productType(x.getElementType(), w.getElementType(), f32Result);
  if (!product)
    return err.emit() << "'vlora.lora_matmul' input and weight have element "
                         "types "
                      << x.getElementType() << " and " << w.getElementType()
                      << mixHint(f32Result, "input");
  if (a.getElementType() != b.getElementType())
    return err.emit() << "'vlora.lora_matmul' A and B have different element "
                         "types "
                      << a.getElementType() << " and " << b.getElementType();
  if (f32Result && !a.getElementType().isF32())
    return err.emit() << "'vlora.lora_matmul' with f32_result needs f32 "
                         "adapters, got "
                      << a.getElementType();
  int64_t in = w.getDimSize(0), out = w.getDimSize(1);
  if (adaptor.getTransposeB())
    std::swap(in, out);
  if (x.getShape().back() != in)
    return err.emit() << "'vlora.lora_matmul' input "
                      << shapeString(x.getShape()) << " has " << x.getShape().back()
                      << " features but the weight " << shapeString(w.getShape())
                      << (adaptor.getTransposeB() ? " (transposed)" : "")
                      << " takes " << in;
  int64_t r = a.getDimSize(0);
  if (r < 1)
    return err.emit() << "'vlora.lora_matmul' rank r = " << r
                      << " (rows of A) must be positive";
  if (a.getDimSize(1) != in)
    return err.emit() << "'vlora.lora_matmul' A " << shapeString(a.getShape())
                      << " must be [r, in] = [" << r << ", " << in << "]";
  if (b.getDimSize(0) != out || b.getDimSize(1) != r)
    return err.emit() << "'vlora.lora_matmul' B " << shapeString(b.getShape())
                      << " must be [out, r] = [" << out << ", " << r << "]";
  double scale = adaptor.getScale().convertToDouble();
  if (!std::isfinite(scale))
    return err.emit() << "'vlora.lora_matmul' scale must be finite";
  double dropout = adaptor.getDropout().convertToDouble();
  if (!(dropout >= 0.0 && dropout < 1.0))
    return err.emit() << "'vlora.lora_matmul' dropout " << dropout
                      << " is not in [0, 1)";
  SmallVector<int64_t> shape(x.getShape());
  shape.back() = out;
  types.push_back(RankedTensorType::get(shape, product));
  return success();
}

/// The dropout RNG of lora_matmul(_grad): `rng` (a `tensor<2xi64>`) and the
/// `stream` attribute come together.
static LogicalResult verifyDropoutRng(Operation *op, Value rng,
                                      std::optional<int64_t> stream) {
  if (bool(rng) != stream.has_value())
    return op->emitOpError("'rng' and 'stream' must be given together");
  if (!rng)
    return success();
  if (cast<RankedTensorType>(rng.getType()).getShape() != ArrayRef<int64_t>{2})
    return op->emitOpError("'rng' must be tensor<2xi64> ([seed, counter]), got ")
           << rng.getType();
  if (*stream < 0)
    return op->emitOpError("'stream' must be non-negative, got ") << *stream;
  return success();
}

LogicalResult LoRAMatmulOp::verify() {
  return verifyDropoutRng(*this, getRng(), getStream());
}

LogicalResult LoRAMatmulGradOp::verify() {
  return verifyDropoutRng(*this, getRng(), getStream());
}

//===----------------------------------------------------------------------===//
// Training ops
//===----------------------------------------------------------------------===//

/// Checks the `[B, S, V]` logits / `[B, S]` labels pair of the cross-entropy
/// ops.
static LogicalResult checkCausalLM(ShapeError err, StringRef opName,
                                   Value logits, Value labels) {
  auto l = tensorOf(logits), t = tensorOf(labels);
  if (l.getRank() != 3)
    return err.emit() << "'" << opName << "' logits must be [B, S, V], got "
                      << shapeString(l.getShape());
  if (t.getShape() != l.getShape().drop_back())
    return err.emit() << "'" << opName << "' labels "
                      << shapeString(t.getShape()) << " must be [B, S] = "
                      << shapeString(l.getShape().drop_back());
  return success();
}

LogicalResult CrossEntropyOp::inferReturnTypes(MLIRContext *ctx,
                                               std::optional<Location> loc,
                                               Adaptor adaptor,
                                               SmallVectorImpl<Type> &types) {
  if (failed(checkCausalLM(ShapeError{loc}, getOperationName(),
                           adaptor.getLogits(), adaptor.getLabels())))
    return failure();
  types.push_back(RankedTensorType::get({}, Float32Type::get(ctx)));
  return success();
}

LogicalResult CrossEntropyGradOp::inferReturnTypes(
    MLIRContext *, std::optional<Location> loc, Adaptor adaptor,
    SmallVectorImpl<Type> &types) {
  if (failed(checkCausalLM(ShapeError{loc}, getOperationName(),
                           adaptor.getLogits(), adaptor.getLabels())))
    return failure();
  if (tensorOf(adaptor.getDloss()).getRank() != 0)
    return ShapeError{loc}.emit()
           << "'vlora.cross_entropy_grad' dloss must be a scalar tensor";
  types.push_back(adaptor.getLogits().getType());
  return success();
}

LogicalResult LinearCrossEntropyOp::inferReturnTypes(
    MLIRContext *ctx, std::optional<Location> loc, Adaptor adaptor,
    SmallVectorImpl<Type> &types) {
  ShapeError err{loc};
  auto input = tensorOf(adaptor.getInput()), weight = tensorOf(adaptor.getWeight());
  auto labels = tensorOf(adaptor.getLabels());
  if (input.getRank() != 3 || weight.getRank() != 2)
    return err.emit() << "'vlora.linear_cross_entropy' needs input [B, S, D] and "
                         "a rank-2 weight, got "
                      << shapeString(input.getShape()) << " and "
                      << shapeString(weight.getShape());
  bool f32Result = adaptor.getF32Result();
  Type product = productType(input.getElementType(), weight.getElementType(),
                             f32Result);
  if (!product)
    return err.emit() << "'vlora.linear_cross_entropy' input and weight have "
                         "element types "
                      << input.getElementType() << " and " << weight.getElementType()
                      << mixHint(f32Result, "input");
  int64_t d = adaptor.getTransposeB() ? weight.getDimSize(1) : weight.getDimSize(0);
  if (d != input.getDimSize(2))
    return err.emit() << "'vlora.linear_cross_entropy' weight "
                      << shapeString(weight.getShape())
                      << (adaptor.getTransposeB() ? " (transposed)" : "")
                      << " does not take " << input.getDimSize(2) << " features";
  if (labels.getShape() != input.getShape().drop_back())
    return err.emit() << "'vlora.linear_cross_entropy' labels "
                      << shapeString(labels.getShape()) << " must be [B, S] = "
                      << shapeString(input.getShape().drop_back());
  if (tensorOf(adaptor.getDloss()).getRank() != 0)
    return err.emit() << "'vlora.linear_cross_entropy' dloss must be a scalar tensor";
  types.push_back(RankedTensorType::get({}, Float32Type::get(ctx)));
  types.push_back(input.clone(product));
  return success();
}

/// Checks q, k, v and mask of the attention ops (see VLoRAOps.td) and
/// returns the result type.
static FailureOr<RankedTensorType>
inferAttention(ShapeError err, StringRef opName, Value qv, Value kv, Value vv,
               Value maskv, bool transposeK, double scale, bool f32Result) {
  auto q = tensorOf(qv), k = tensorOf(kv), v = tensorOf(vv);
  int64_t rank = q.getRank();
  if (rank < 2 || k.getRank() != rank || v.getRank() != rank)
    return err.emit() << "'" << opName
                      << "' q, k and v need one rank >= 2, got "
                      << shapeString(q.getShape()) << ", "
                      << shapeString(k.getShape()) << " and "
                      << shapeString(v.getShape());
  auto bf16OrF32 = [](Type t) { return t.isBF16() || t.isF32(); };
  if (f32Result ? !(bf16OrF32(q.getElementType()) &&
                    bf16OrF32(k.getElementType()) &&
                    bf16OrF32(v.getElementType()))
                : (q.getElementType() != k.getElementType() ||
                   q.getElementType() != v.getElementType()))
    return err.emit() << "'" << opName << "' q, k and v have element types "
                      << q.getElementType() << ", " << k.getElementType()
                      << " and " << v.getElementType()
                      << (f32Result ? " (with f32_result each must be bf16 or f32)"
                                    : "");
  Type resultType =
      f32Result ? Float32Type::get(q.getContext()) : q.getElementType();
  ArrayRef<int64_t> batch = q.getShape().drop_back(2);
  if (k.getShape().drop_back(2) != batch || v.getShape().drop_back(2) != batch)
    return err.emit() << "'" << opName
                      << "' q, k and v must share their leading dimensions, got "
                      << shapeString(q.getShape()) << ", "
                      << shapeString(k.getShape()) << " and "
                      << shapeString(v.getShape());
  int64_t s = q.getDimSize(rank - 2), d = q.getDimSize(rank - 1);
  int64_t kd = transposeK ? k.getDimSize(rank - 1) : k.getDimSize(rank - 2);
  int64_t t = transposeK ? k.getDimSize(rank - 2) : k.getDimSize(rank - 1);
  if (kd != d)
    return err.emit() << "'" << opName << "' k " << shapeString(k.getShape())
                      << (transposeK ? " ([..., T, D])" : " ([..., D, T])")
                      << " does not take q's " << d << " features";
  if (v.getDimSize(rank - 2) != t)
    return err.emit() << "'" << opName << "' v " << shapeString(v.getShape())
                      << " must have T = " << t << " rows";
  if (!std::isfinite(scale))
    return err.emit() << "'" << opName << "' scale must be finite";
  if (maskv) {
    auto mask = tensorOf(maskv);
    SmallVector<int64_t> scores(batch);
    scores.push_back(s);
    scores.push_back(t);
    auto shape = broadcastShapes(mask.getShape(), scores);
    if (mask.getElementType() != resultType || failed(shape) ||
        ArrayRef<int64_t>(*shape) != ArrayRef<int64_t>(scores))
      return err.emit() << "'" << opName << "' mask " << maskv.getType()
                        << " must broadcast to the scores "
                        << shapeString(scores) << " of the result's element type";
  }
  SmallVector<int64_t> out(batch);
  out.push_back(s);
  out.push_back(v.getDimSize(rank - 1));
  return RankedTensorType::get(out, resultType);
}

/// inferAttention on an attention op's adaptor.
template <typename AdaptorT>
static FailureOr<RankedTensorType>
inferAttentionOf(std::optional<Location> loc, StringRef opName,
                 AdaptorT &adaptor) {
  return inferAttention(ShapeError{loc}, opName, adaptor.getQ(),
                        adaptor.getK(), adaptor.getV(), adaptor.getMask(),
                        adaptor.getTransposeK(),
                        adaptor.getScale().convertToDouble(),
                        adaptor.getF32Result());
}

LogicalResult AttentionOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &types) {
  auto type = inferAttentionOf(loc, getOperationName(), adaptor);
  if (failed(type))
    return failure();
  types.push_back(*type);
  return success();
}

LogicalResult AttentionGradOp::inferReturnTypes(MLIRContext *,
                                                std::optional<Location> loc,
                                                Adaptor adaptor,
                                                SmallVectorImpl<Type> &types) {
  auto type = inferAttentionOf(loc, getOperationName(), adaptor);
  if (failed(type))
    return failure();
  if (adaptor.getGrad().getType() != *type)
    return ShapeError{loc}.emit()
           << "'vlora.attention_grad' gradient type "
           << adaptor.getGrad().getType() << " must be the forward result type "
           << *type;
  // The gradients have q's, k's and v's shapes, in the result's type.
  Type element = type->getElementType();
  types.push_back(tensorOf(adaptor.getQ()).clone(element));
  types.push_back(tensorOf(adaptor.getK()).clone(element));
  types.push_back(tensorOf(adaptor.getV()).clone(element));
  return success();
}

LogicalResult SoftmaxGradOp::verify() {
  int64_t rank = getType().getRank(), axis = getAxisAttr().getInt();
  if (axis < -rank || axis >= std::max<int64_t>(rank, 1))
    return emitOpError() << "axis " << axis << " is out of range for rank "
                         << rank;
  return success();
}

LogicalResult LayerNormGradOp::inferReturnTypes(MLIRContext *,
                                                std::optional<Location> loc,
                                                Adaptor adaptor,
                                                SmallVectorImpl<Type> &types) {
  auto x = tensorOf(adaptor.getInput());
  if (adaptor.getGrad().getType() != x)
    return ShapeError{loc}.emit()
           << "'vlora.layer_norm_grad' gradient type "
           << adaptor.getGrad().getType() << " differs from input type " << x;
  return inferNorm(ShapeError{loc}, getOperationName(), adaptor.getInput(),
                   adaptor.getAxis(), {adaptor.getScale()}, types);
}

LogicalResult LoRAMatmulGradOp::inferReturnTypes(
    MLIRContext *ctx, std::optional<Location> loc, Adaptor adaptor,
    SmallVectorImpl<Type> &types) {
  SmallVector<Type> forward;
  LoRAMatmulOp::Adaptor fwd(
      ValueRange{adaptor.getX(), adaptor.getW(), adaptor.getA(), adaptor.getB()},
      adaptor.getAttributes());
  if (failed(LoRAMatmulOp::inferReturnTypes(ctx, loc, fwd, forward)))
    return failure();
  if (adaptor.getGrad().getType() != forward.front())
    return ShapeError{loc}.emit()
           << "'vlora.lora_matmul_grad' gradient type "
           << adaptor.getGrad().getType() << " must be the forward result type "
           << forward.front();
  types.push_back(adaptor.getA().getType());
  types.push_back(adaptor.getB().getType());
  if (adaptor.getInputGrad())
    types.push_back(tensorOf(adaptor.getX()).clone(
        cast<RankedTensorType>(forward.front()).getElementType()));
  return success();
}

LogicalResult MaskedSelectOp::inferReturnTypes(MLIRContext *,
                                               std::optional<Location> loc,
                                               Adaptor adaptor,
                                               SmallVectorImpl<Type> &types) {
  auto input = tensorOf(adaptor.getInput()), mask = tensorOf(adaptor.getMask());
  if (mask.getShape() != input.getShape())
    return ShapeError{loc}.emit() << "'vlora.masked_select' mask shape "
                                  << shapeString(mask.getShape())
                                  << " must equal input shape "
                                  << shapeString(input.getShape());
  if (llvm::any_of(adaptor.getShape(), [](int64_t d) { return d < 0; }))
    return ShapeError{loc}.emit()
           << "'vlora.masked_select' shape has a negative dimension";
  types.push_back(input.clone(adaptor.getShape()));
  return success();
}

LogicalResult GlobalNormOp::inferReturnTypes(MLIRContext *ctx,
                                             std::optional<Location> loc,
                                             Adaptor adaptor,
                                             SmallVectorImpl<Type> &types) {
  if (adaptor.getInputs().empty())
    return ShapeError{loc}.emit() << "'vlora.global_norm' needs an operand";
  types.push_back(RankedTensorType::get({}, Float32Type::get(ctx)));
  return success();
}

LogicalResult AdamWUpdateOp::inferReturnTypes(MLIRContext *,
                                              std::optional<Location> loc,
                                              Adaptor adaptor,
                                              SmallVectorImpl<Type> &types) {
  Type param = adaptor.getParam().getType();
  for (auto [what, v] :
       {std::pair<StringRef, Value>{"gradient", adaptor.getGrad()},
        {"exp_avg", adaptor.getExpAvg()},
        {"exp_avg_sq", adaptor.getExpAvgSq()}})
    if (v.getType() != param)
      return ShapeError{loc}.emit()
             << "'vlora.adamw_update' " << what << " type " << v.getType()
             << " differs from the parameter type " << param;
  for (Value scalar : {adaptor.getLr(), adaptor.getStep(),
                       adaptor.getWeightDecay(), adaptor.getGradScale()})
    if (scalar && tensorOf(scalar).getRank() != 0)
      return ShapeError{loc}.emit()
             << "'vlora.adamw_update' lr, step, weight_decay and grad_scale "
                "are scalar tensors";
  double b1 = adaptor.getBeta1().convertToDouble(),
         b2 = adaptor.getBeta2().convertToDouble(),
         eps = adaptor.getEps().convertToDouble();
  if (!(b1 >= 0 && b1 < 1) || !(b2 >= 0 && b2 < 1))
    return ShapeError{loc}.emit()
           << "'vlora.adamw_update' betas must be in [0, 1), got " << b1
           << " and " << b2;
  if (!(eps > 0))
    return ShapeError{loc}.emit() << "'vlora.adamw_update' eps must be positive";
  types.append(3, param);
  return success();
}

#define GET_OP_CLASSES
#include "VLoRA/IR/VLoRAOps.cpp.inc"
