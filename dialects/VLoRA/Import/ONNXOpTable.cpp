//===- ONNXOpTable.cpp - ONNX op handlers ---------------------------------===//
//
// The importer's op table: one entry per ONNX op and opset range, each with a
// handler that emits vlora ops, or folds the node when its inputs are known at
// import time (shape computations). This table is the one place that lists
// the supported ONNX ops.
//
//===----------------------------------------------------------------------===//

#include "GraphImporter.h"

#include "llvm/ADT/STLExtras.h"

#include <cmath>
#include <functional>
#include <numeric>

using namespace mlir;
using namespace vlora;
using namespace vlora::onnx_import;

namespace {

//===----------------------------------------------------------------------===//
// Host evaluation helpers
//===----------------------------------------------------------------------===//

SmallVector<int64_t> stridesOf(ArrayRef<int64_t> shape) {
  SmallVector<int64_t> strides(shape.size(), 1);
  for (int i = int(shape.size()) - 2; i >= 0; --i)
    strides[i] = strides[i + 1] * shape[i + 1];
  return strides;
}

/// Calls `fn(outIndex, srcIndices...)` for every element of the broadcast of
/// `shapes` into `outShape`.
void forEachBroadcast(ArrayRef<int64_t> outShape,
                      ArrayRef<ArrayRef<int64_t>> shapes,
                      llvm::function_ref<void(int64_t, ArrayRef<int64_t>)> fn) {
  int64_t rank = outShape.size();
  SmallVector<SmallVector<int64_t>> strides;
  for (ArrayRef<int64_t> s : shapes) {
    SmallVector<int64_t> st = stridesOf(s), full(rank, 0);
    for (int64_t d = 0; d < int64_t(s.size()); ++d)
      full[rank - s.size() + d] = s[d] == 1 ? 0 : st[d];
    strides.push_back(full);
  }
  int64_t count = 1;
  for (int64_t d : outShape)
    count *= d;
  SmallVector<int64_t> index(rank, 0), src(shapes.size(), 0);
  for (int64_t flat = 0; flat < count; ++flat) {
    for (size_t k = 0; k < shapes.size(); ++k) {
      int64_t off = 0;
      for (int64_t d = 0; d < rank; ++d)
        off += index[d] * strides[k][d];
      src[k] = off;
    }
    fn(flat, src);
    for (int64_t d = rank - 1; d >= 0; --d) {
      if (++index[d] < outShape[d])
        break;
      index[d] = 0;
    }
  }
}

bool foldable(ArrayRef<int64_t> shape) {
  int64_t count = 1;
  for (int64_t d : shape) {
    if (d < 0 || (d && count > kMaxFoldElements / d))
      return false;
    count *= d;
  }
  return true;
}

/// Normalises a possibly negative axis; reports at the node when out of range.
FailureOr<int64_t> normaliseAxis(NodeContext &n, int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= std::max<int64_t>(rank, 1))
    return n.error() << "axis " << axis << " is out of range for rank " << rank,
           failure();
  return axis < 0 ? axis + rank : axis;
}

FailureOr<SmallVector<int64_t>> normaliseAxes(NodeContext &n,
                                              ArrayRef<int64_t> axes,
                                              int64_t rank) {
  SmallVector<int64_t> result;
  for (int64_t a : axes) {
    auto axis = normaliseAxis(n, a, rank);
    if (failed(axis))
      return failure();
    if (llvm::is_contained(result, *axis))
      return n.error() << "axis " << a << " is repeated", failure();
    result.push_back(*axis);
  }
  return result;
}

SmallVector<int64_t> intsOf(const HostTensor &t) {
  SmallVector<int64_t> v;
  for (int64_t i = 0; i < t.numElements(); ++i)
    v.push_back(t.getInt(i));
  return v;
}

/// Reinterprets a host tensor under a new shape (same element count).
HostTensor reshaped(const HostTensor &t, ArrayRef<int64_t> shape) {
  HostTensor r = t;
  r.shape.assign(shape.begin(), shape.end());
  return r;
}

HostTensor castHost(const HostTensor &t, int32_t dtype) {
  HostTensor r = HostTensor::zeros(dtype, t.shape);
  for (int64_t i = 0; i < t.numElements(); ++i) {
    if (!r.isFloat() && t.isFloat())
      r.set(i, std::trunc(t.getDouble(i)));
    else
      r.copyElement(i, t, i);
  }
  return r;
}

/// Emits or folds through `value`: a host tensor becomes the output when it is
/// known; otherwise `emit` builds IR.
LogicalResult passThrough(NodeContext &n, int input) {
  if (const HostTensor *c = n.constInput(input)) {
    n.setOutput(0, *c);
    return success();
  }
  auto v = n.input(input);
  if (failed(v))
    return failure();
  n.setOutput(0, *v);
  return success();
}

/// A value of static shape `shape`, through vlora.reshape unless unchanged.
FailureOr<Value> reshapeTo(NodeContext &n, Value v, ArrayRef<int64_t> shape) {
  if (cast<RankedTensorType>(v.getType()).getShape() == shape)
    return v;
  return n.create<ReshapeOp>(v, {n.namedI64Array("shape", shape)});
}

/// Shared by the ops that only change the shape (Reshape, Flatten,
/// Squeeze, Unsqueeze): folds constants, emits vlora.reshape otherwise.
LogicalResult emitReshape(NodeContext &n, ArrayRef<int64_t> shape) {
  if (const HostTensor *c = n.constInput(0)) {
    n.setOutput(0, reshaped(*c, shape));
    return success();
  }
  auto v = n.input(0);
  if (failed(v))
    return failure();
  auto r = reshapeTo(n, *v, shape);
  if (failed(r))
    return failure();
  n.setOutput(0, *r);
  return success();
}

/// Builds OpTy on `operands` and makes it the node's output 0.
template <typename OpTy>
LogicalResult emitResult(NodeContext &n, ValueRange operands,
                         ArrayRef<NamedAttribute> attrs = {}) {
  auto r = n.create<OpTy>(operands, attrs);
  if (failed(r))
    return failure();
  n.setOutput(0, *r);
  return success();
}

//===----------------------------------------------------------------------===//
// Constants and shapes
//===----------------------------------------------------------------------===//

LogicalResult importConstant(NodeContext &n) {
  if (const auto *a = n.attr("value")) {
    auto host = n.readTensor(a->t());
    if (failed(host))
      return failure();
    n.setOutput(0, std::move(*host));
    return success();
  }
  if (const auto *a = n.attr("value_float")) {
    HostTensor t = HostTensor::zeros(onnx::TensorProto_DataType_FLOAT, {});
    t.floats[0] = a->f();
    n.setOutput(0, t);
    return success();
  }
  if (const auto *a = n.attr("value_floats")) {
    HostTensor t = HostTensor::zeros(onnx::TensorProto_DataType_FLOAT,
                                     {int64_t(a->floats_size())});
    for (int i = 0; i < a->floats_size(); ++i)
      t.floats[i] = a->floats(i);
    n.setOutput(0, t);
    return success();
  }
  if (const auto *a = n.attr("value_int")) {
    HostTensor t = HostTensor::zeros(onnx::TensorProto_DataType_INT64, {});
    t.ints[0] = a->i();
    n.setOutput(0, t);
    return success();
  }
  if (const auto *a = n.attr("value_ints")) {
    n.setOutput(0, HostTensor::fromInts(
                       SmallVector<int64_t>(a->ints().begin(), a->ints().end())));
    return success();
  }
  return n.error() << "needs a 'value', 'value_float(s)' or 'value_int(s)' "
                      "attribute (sparse and string constants are not supported)";
}

LogicalResult importShape(NodeContext &n) {
  if (const MaskSymbol *s = n.symbolicInput(0)) {
    int64_t start = n.attrInt("start", 0), end = n.attrInt("end", 2);
    if (s->kind != MaskSymbol::Indices || (start != 0 && start != -2) ||
        (end != 2 && end < INT32_MAX))
      return n.error() << "unsupported use of a data-dependent shape";
    MaskSymbol shape = *s;
    shape.kind = MaskSymbol::IndexShape;
    n.setOutput(0, shape);
    return success();
  }
  RankedTensorType type = n.inputType(0);
  int64_t rank = type.getRank();
  int64_t start = n.attrInt("start", 0), end = n.attrInt("end", rank);
  if (start < 0)
    start += rank;
  if (end < 0)
    end += rank;
  start = std::clamp<int64_t>(start, 0, rank);
  end = std::clamp<int64_t>(end, start, rank);
  n.setOutput(0, HostTensor::fromInts(type.getShape().slice(start, end - start)));
  return success();
}

LogicalResult importSize(NodeContext &n) {
  HostTensor t = HostTensor::zeros(onnx::TensorProto_DataType_INT64, {});
  t.ints[0] = n.inputType(0).getNumElements();
  n.setOutput(0, t);
  return success();
}

LogicalResult importConstantOfShape(NodeContext &n) {
  auto shapeT = n.requireConstInput(0, "input");
  if (failed(shapeT))
    return failure();
  SmallVector<int64_t> shape = intsOf(**shapeT);
  for (int64_t d : shape)
    if (d < 0)
      return n.error() << "negative dimension " << d << " in the requested shape";
  HostTensor fill = HostTensor::zeros(onnx::TensorProto_DataType_FLOAT, {});
  if (const auto *a = n.attr("value")) {
    auto host = n.readTensor(a->t());
    if (failed(host))
      return failure();
    if (host->numElements() != 1)
      return n.error() << "'value' must hold exactly one element";
    fill = std::move(*host);
  }
  if (foldable(shape)) {
    HostTensor t = HostTensor::zeros(fill.dtype, shape);
    for (int64_t i = 0; i < t.numElements(); ++i)
      t.copyElement(i, fill, 0);
    n.setOutput(0, t);
    return success();
  }
  // Too large to evaluate: a splat constant is still tiny in the IR.
  Value scalar = n.scalar(elementTypeFor(n.getContext(), fill.dtype), fill.getDouble(0));
  return emitResult<ExpandOp>(n, scalar, {n.namedI64Array("shape", shape)});
}

LogicalResult importRange(NodeContext &n) {
  auto start = n.requireConstInput(0, "start");
  if (failed(start))
    return failure();
  auto limit = n.requireConstInput(1, "limit");
  if (failed(limit))
    return failure();
  auto delta = n.requireConstInput(2, "delta");
  if (failed(delta))
    return failure();
  double s = (*start)->getDouble(0), l = (*limit)->getDouble(0),
         d = (*delta)->getDouble(0);
  if (d == 0)
    return n.error() << "delta is zero";
  double steps = std::ceil((l - s) / d);
  int64_t count = std::max<int64_t>(0, int64_t(steps));
  if (count > kMaxFoldElements)
    return n.error() << "produces " << count << " elements, more than "
                     << kMaxFoldElements << " supported at import";
  HostTensor t = HostTensor::zeros((*start)->dtype, {count});
  for (int64_t i = 0; i < count; ++i)
    t.set(i, s + double(i) * d);
  n.setOutput(0, t);
  return success();
}

//===----------------------------------------------------------------------===//
// Casts
//===----------------------------------------------------------------------===//

LogicalResult emitCast(NodeContext &n, int32_t to) {
  Type element = elementTypeFor(n.getContext(), to);
  if (!element)
    return n.error() << "cannot cast to unsupported data type " << dataTypeName(to);
  if (const HostTensor *c = n.constInput(0)) {
    n.setOutput(0, castHost(*c, to));
    return success();
  }
  auto v = n.input(0);
  if (failed(v))
    return failure();
  if (cast<RankedTensorType>(v->getType()).getElementType() == element) {
    n.setOutput(0, *v);
    return success();
  }
  return emitResult<CastOp>(n, *v, {n.namedType("to", element)});
}

LogicalResult importCast(NodeContext &n) {
  if (!n.attr("to"))
    return n.error() << "missing attribute 'to'";
  return emitCast(n, int32_t(n.attrInt("to", 0)));
}

LogicalResult importCastLike(NodeContext &n) {
  return emitCast(n, dataTypeFor(n.inputType(1).getElementType()));
}

LogicalResult importIdentity(NodeContext &n) { return passThrough(n, 0); }

LogicalResult importDropout(NodeContext &n) {
  // Inference (and training with ratio 0) is the identity with an all-true
  // mask; training-mode dropout in a forward graph is refused.
  bool training = n.opset < 12 && n.attrInt("is_test", 1) == 0;
  if (n.opset >= 12 && n.hasInput(2)) {
    const HostTensor *mode = n.constInput(2);
    if (!mode)
      return n.error() << "a data-dependent training_mode is not supported";
    training = mode->getInt(0) != 0;
  }
  if (training) {
    double ratio = n.opset < 12 ? n.attrFloat("ratio", 0.5f) : 0.5;
    if (n.opset >= 12 && n.hasInput(1)) {
      const HostTensor *r = n.constInput(1);
      ratio = r ? r->getDouble(0) : -1;
    }
    if (ratio != 0)
      return n.error()
             << "training-mode Dropout is not supported in a forward graph";
  }
  if (failed(passThrough(n, 0)))
    return failure();
  if (n.outputUsed(1)) {
    RankedTensorType type = n.inputType(0);
    Value one = n.scalar(n.builder().getI1Type(), 1);
    auto mask = n.create<ExpandOp>(one, {n.namedI64Array("shape", type.getShape())});
    if (failed(mask))
      return failure();
    n.setOutput(1, *mask);
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Elementwise ops
//===----------------------------------------------------------------------===//

using FloatFn = std::function<double(double, double)>;
using IntFn = std::function<int64_t(int64_t, int64_t)>;

/// Folds a broadcasting binary op over host tensors; nothing when it does
/// not fold (inputs not constant, or too large).
std::optional<HostTensor> foldBinary(const HostTensor *a, const HostTensor *b,
                                     const FloatFn &f, const IntFn &i,
                                     bool boolResult) {
  if (!a || !b)
    return std::nullopt;
  auto shape = broadcastShapes(a->shape, b->shape);
  if (failed(shape) || !foldable(*shape))
    return std::nullopt;
  int32_t dtype = boolResult ? int32_t(onnx::TensorProto_DataType_BOOL) : a->dtype;
  HostTensor r = HostTensor::zeros(dtype, *shape);
  bool useFloat = a->isFloat() || b->isFloat();
  forEachBroadcast(*shape, {a->shape, b->shape},
                   [&](int64_t out, ArrayRef<int64_t> src) {
                     if (useFloat)
                       r.set(out, f(a->getDouble(src[0]), b->getDouble(src[1])));
                     else
                       r.ints[out] = i(a->getInt(src[0]), b->getInt(src[1]));
                   });
  return r;
}

template <typename OpTy>
LogicalResult emitBinary(NodeContext &n, const FloatFn &f, const IntFn &i,
                         bool boolResult = false) {
  if (n.numInputs() != 2)
    return n.error() << "expects 2 inputs, got " << n.numInputs();
  if (auto folded = foldBinary(n.constInput(0), n.constInput(1), f, i, boolResult)) {
    n.setOutput(0, std::move(*folded));
    return success();
  }
  auto lhs = n.input(0), rhs = n.input(1);
  if (failed(lhs) || failed(rhs))
    return failure();
  return emitResult<OpTy>(n, ValueRange{*lhs, *rhs});
}

LogicalResult importAdd(NodeContext &n) {
  return emitBinary<AddOp>(n, std::plus<double>(), std::plus<int64_t>());
}
LogicalResult importSub(NodeContext &n) {
  return emitBinary<SubOp>(n, std::minus<double>(), std::minus<int64_t>());
}
LogicalResult importMul(NodeContext &n) {
  return emitBinary<MulOp>(n, std::multiplies<double>(), std::multiplies<int64_t>());
}
LogicalResult importDiv(NodeContext &n) {
  return emitBinary<DivOp>(n, std::divides<double>(), [](int64_t a, int64_t b) {
    return b == 0 ? int64_t(0) : a / b;
  });
}
LogicalResult importAnd(NodeContext &n) {
  return emitBinary<AndOp>(
      n, [](double a, double b) { return double(a != 0 && b != 0); },
      [](int64_t a, int64_t b) { return int64_t(a && b); }, true);
}
LogicalResult importOr(NodeContext &n) {
  return emitBinary<OrOp>(
      n, [](double a, double b) { return double(a != 0 || b != 0); },
      [](int64_t a, int64_t b) { return int64_t(a || b); }, true);
}
LogicalResult importXor(NodeContext &n) {
  return emitBinary<XorOp>(
      n, [](double a, double b) { return double((a != 0) != (b != 0)); },
      [](int64_t a, int64_t b) { return int64_t((a != 0) != (b != 0)); }, true);
}
LogicalResult importEqual(NodeContext &n) {
  return emitBinary<EqualOp>(
      n, [](double a, double b) { return double(a == b); },
      [](int64_t a, int64_t b) { return int64_t(a == b); }, true);
}
LogicalResult importLess(NodeContext &n) {
  return emitBinary<LessOp>(
      n, [](double a, double b) { return double(a < b); },
      [](int64_t a, int64_t b) { return int64_t(a < b); }, true);
}
LogicalResult importLessOrEqual(NodeContext &n) {
  return emitBinary<LessEqualOp>(
      n, [](double a, double b) { return double(a <= b); },
      [](int64_t a, int64_t b) { return int64_t(a <= b); }, true);
}
LogicalResult importGreater(NodeContext &n) {
  return emitBinary<GreaterOp>(
      n, [](double a, double b) { return double(a > b); },
      [](int64_t a, int64_t b) { return int64_t(a > b); }, true);
}
LogicalResult importGreaterOrEqual(NodeContext &n) {
  return emitBinary<GreaterEqualOp>(
      n, [](double a, double b) { return double(a >= b); },
      [](int64_t a, int64_t b) { return int64_t(a >= b); }, true);
}

LogicalResult importPow(NodeContext &n) {
  FloatFn f = [](double a, double b) { return std::pow(a, b); };
  IntFn i = [](int64_t a, int64_t b) { return int64_t(std::pow(double(a), double(b))); };
  if (auto folded = foldBinary(n.constInput(0), n.constInput(1), f, i, false)) {
    n.setOutput(0, std::move(*folded));
    return success();
  }
  auto base = n.input(0);
  if (failed(base))
    return failure();
  Type element = cast<RankedTensorType>(base->getType()).getElementType();
  Value exponent;
  // ONNX allows an exponent of another type; bring it to the base's type.
  if (const HostTensor *c = n.constInput(1)) {
    exponent = n.materialize(castHost(*c, dataTypeFor(element)));
  } else {
    auto e = n.input(1);
    if (failed(e))
      return failure();
    exponent = *e;
    if (cast<RankedTensorType>(exponent.getType()).getElementType() != element) {
      auto c2 = n.create<CastOp>(exponent, {n.namedType("to", element)});
      if (failed(c2))
        return failure();
      exponent = *c2;
    }
  }
  return emitResult<PowOp>(n, ValueRange{*base, exponent});
}

/// Max and Min are variadic in ONNX: a chain of binary ops.
template <typename OpTy>
LogicalResult emitVariadic(NodeContext &n, const FloatFn &f, const IntFn &i) {
  if (n.numInputs() < 1)
    return n.error() << "needs at least one input";
  if (n.allInputsConst()) {
    std::optional<HostTensor> acc = *n.constInput(0);
    for (int k = 1; k < n.numInputs() && acc; ++k)
      acc = foldBinary(&*acc, n.constInput(k), f, i, false);
    if (acc) {
      n.setOutput(0, std::move(*acc));
      return success();
    }
  }
  auto acc = n.input(0);
  if (failed(acc))
    return failure();
  Value value = *acc;
  for (int k = 1; k < n.numInputs(); ++k) {
    auto next = n.input(k);
    if (failed(next))
      return failure();
    auto r = n.create<OpTy>(ValueRange{value, *next});
    if (failed(r))
      return failure();
    value = *r;
  }
  n.setOutput(0, value);
  return success();
}

LogicalResult importMax(NodeContext &n) {
  return emitVariadic<MaxOp>(
      n, [](double a, double b) { return std::max(a, b); },
      [](int64_t a, int64_t b) { return std::max(a, b); });
}
LogicalResult importMin(NodeContext &n) {
  return emitVariadic<MinOp>(
      n, [](double a, double b) { return std::min(a, b); },
      [](int64_t a, int64_t b) { return std::min(a, b); });
}

template <typename OpTy>
LogicalResult emitUnary(NodeContext &n,
                        std::function<double(double)> fold = nullptr) {
  if (fold) {
    if (const HostTensor *c = n.constInput(0)) {
      HostTensor r = *c;
      for (int64_t i = 0; i < r.numElements(); ++i)
        r.set(i, fold(c->getDouble(i)));
      n.setOutput(0, r);
      return success();
    }
  }
  auto v = n.input(0);
  if (failed(v))
    return failure();
  return emitResult<OpTy>(n, *v);
}

LogicalResult importNeg(NodeContext &n) {
  return emitUnary<NegOp>(n, [](double x) { return -x; });
}
LogicalResult importAbs(NodeContext &n) {
  return emitUnary<AbsOp>(n, [](double x) { return std::fabs(x); });
}
LogicalResult importSqrt(NodeContext &n) {
  return emitUnary<SqrtOp>(n, [](double x) { return std::sqrt(x); });
}
LogicalResult importReciprocal(NodeContext &n) {
  return emitUnary<ReciprocalOp>(n, [](double x) { return 1.0 / x; });
}
LogicalResult importFloor(NodeContext &n) {
  return emitUnary<FloorOp>(n, [](double x) { return std::floor(x); });
}
LogicalResult importCeil(NodeContext &n) {
  return emitUnary<CeilOp>(n, [](double x) { return std::ceil(x); });
}
LogicalResult importNot(NodeContext &n) {
  return emitUnary<NotOp>(n, [](double x) { return double(x == 0); });
}
LogicalResult importExp(NodeContext &n) { return emitUnary<ExpOp>(n); }
LogicalResult importLog(NodeContext &n) { return emitUnary<LogOp>(n); }
LogicalResult importTanh(NodeContext &n) { return emitUnary<TanhOp>(n); }
LogicalResult importErf(NodeContext &n) { return emitUnary<ErfOp>(n); }
LogicalResult importSigmoid(NodeContext &n) { return emitUnary<SigmoidOp>(n); }
LogicalResult importRelu(NodeContext &n) { return emitUnary<ReluOp>(n); }
LogicalResult importSin(NodeContext &n) { return emitUnary<SinOp>(n); }
LogicalResult importCos(NodeContext &n) { return emitUnary<CosOp>(n); }

LogicalResult importGelu(NodeContext &n) {
  std::string approximate = n.attrString("approximate", "none");
  GeluApproximation mode;
  if (approximate == "none")
    mode = GeluApproximation::none;
  else if (approximate == "tanh")
    mode = GeluApproximation::tanh;
  else
    return n.error() << "unknown approximate '" << approximate << "'";
  auto v = n.input(0);
  if (failed(v))
    return failure();
  return emitResult<GeluOp>(n,
      *v, {n.builder().getNamedAttr(
              "approximate", GeluApproximationAttr::get(n.getContext(), mode))});
}

LogicalResult importClip(NodeContext &n) {
  auto x = n.input(0);
  if (failed(x))
    return failure();
  Type element = cast<RankedTensorType>(x->getType()).getElementType();
  Value value = *x;
  auto bound = [&](int input, const char *attrName, bool isMin) -> LogicalResult {
    Value b;
    if (n.opset < 11) {
      if (!n.attr(attrName))
        return success();
      b = n.scalar(element, n.attrFloat(attrName, 0));
    } else {
      if (!n.hasInput(input))
        return success();
      auto v = n.input(input);
      if (failed(v))
        return failure();
      b = *v;
    }
    auto r = isMin ? n.create<MaxOp>(ValueRange{value, b})
                   : n.create<MinOp>(ValueRange{value, b});
    if (failed(r))
      return failure();
    value = *r;
    return success();
  };
  if (failed(bound(1, "min", true)) || failed(bound(2, "max", false)))
    return failure();
  n.setOutput(0, value);
  return success();
}

LogicalResult importWhere(NodeContext &n) {
  const HostTensor *c = n.constInput(0), *a = n.constInput(1), *b = n.constInput(2);
  if (c && a && b) {
    auto ab = broadcastShapes(a->shape, b->shape);
    if (succeeded(ab)) {
      auto shape = broadcastShapes(c->shape, *ab);
      if (succeeded(shape) && foldable(*shape)) {
        HostTensor r = HostTensor::zeros(a->dtype, *shape);
        forEachBroadcast(*shape, {c->shape, a->shape, b->shape},
                         [&](int64_t out, ArrayRef<int64_t> src) {
                           if (c->getInt(src[0]))
                             r.copyElement(out, *a, src[1]);
                           else
                             r.copyElement(out, *b, src[2]);
                         });
        n.setOutput(0, r);
        return success();
      }
    }
  }
  auto cond = n.input(0), lhs = n.input(1), rhs = n.input(2);
  if (failed(cond) || failed(lhs) || failed(rhs))
    return failure();
  return emitResult<WhereOp>(n, ValueRange{*cond, *lhs, *rhs});
}

//===----------------------------------------------------------------------===//
// Linear algebra
//===----------------------------------------------------------------------===//

LogicalResult importMatMul(NodeContext &n) {
  auto lhs = n.input(0), rhs = n.input(1);
  if (failed(lhs) || failed(rhs))
    return failure();
  auto lt = cast<RankedTensorType>(lhs->getType()),
       rt = cast<RankedTensorType>(rhs->getType());
  if (lt.getRank() < 1 || rt.getRank() < 1)
    return n.error() << "operands must have rank >= 1";
  // NumPy rules for 1-D operands: promote, multiply, then drop the added dim.
  Value a = *lhs, b = *rhs;
  if (lt.getRank() == 1) {
    auto r = reshapeTo(n, a, {1, lt.getDimSize(0)});
    if (failed(r))
      return failure();
    a = *r;
  }
  if (rt.getRank() == 1) {
    auto r = reshapeTo(n, b, {rt.getDimSize(0), 1});
    if (failed(r))
      return failure();
    b = *r;
  }
  auto product = n.create<MatmulOp>(ValueRange{a, b});
  if (failed(product))
    return failure();
  Value result = *product;
  if (lt.getRank() == 1 || rt.getRank() == 1) {
    SmallVector<int64_t> shape(
        cast<RankedTensorType>(result.getType()).getShape());
    if (rt.getRank() == 1)
      shape.pop_back();
    if (lt.getRank() == 1)
      shape.erase(shape.end() - (rt.getRank() == 1 ? 1 : 2));
    auto r = reshapeTo(n, result, shape);
    if (failed(r))
      return failure();
    result = *r;
  }
  n.setOutput(0, result);
  return success();
}

LogicalResult importGemm(NodeContext &n) {
  auto a = n.input(0), b = n.input(1);
  if (failed(a) || failed(b))
    return failure();
  if (cast<RankedTensorType>(a->getType()).getRank() != 2 ||
      cast<RankedTensorType>(b->getType()).getRank() != 2)
    return n.error() << "operands A and B must have rank 2";
  SmallVector<NamedAttribute> attrs;
  if (n.attrInt("transA", 0))
    attrs.push_back(n.namedUnit("transpose_a"));
  if (n.attrInt("transB", 0))
    attrs.push_back(n.namedUnit("transpose_b"));
  auto product = n.create<MatmulOp>(ValueRange{*a, *b}, attrs);
  if (failed(product))
    return failure();
  Value result = *product;
  Type element = cast<RankedTensorType>(result.getType()).getElementType();
  float alpha = n.attrFloat("alpha", 1.0f), beta = n.attrFloat("beta", 1.0f);
  if (alpha != 1.0f) {
    auto r = n.create<MulOp>(ValueRange{result, n.scalar(element, alpha)});
    if (failed(r))
      return failure();
    result = *r;
  }
  if (n.hasInput(2) && beta != 0.0f) {
    auto c = n.input(2);
    if (failed(c))
      return failure();
    Value bias = *c;
    if (beta != 1.0f) {
      auto r = n.create<MulOp>(ValueRange{bias, n.scalar(element, beta)});
      if (failed(r))
        return failure();
      bias = *r;
    }
    auto r = n.create<AddOp>(ValueRange{result, bias});
    if (failed(r))
      return failure();
    result = *r;
  }
  n.setOutput(0, result);
  return success();
}

LogicalResult importConv(NodeContext &n) {
  auto x = n.input(0), w = n.input(1);
  if (failed(x) || failed(w))
    return failure();
  auto xt = cast<RankedTensorType>(x->getType()),
       wt = cast<RankedTensorType>(w->getType());
  int64_t k = xt.getRank() - 2;
  if (k < 1 || wt.getRank() != xt.getRank())
    return n.error() << "input and weight must have the same rank >= 3";
  SmallVector<int64_t> kernel(wt.getShape().drop_front(2));
  if (auto ks = n.attrInts("kernel_shape"); ks && *ks != kernel)
    return n.error() << "kernel_shape does not match the weight's shape";
  SmallVector<int64_t> strides = n.attrInts("strides").value_or(SmallVector<int64_t>(k, 1));
  SmallVector<int64_t> dilations =
      n.attrInts("dilations").value_or(SmallVector<int64_t>(k, 1));
  SmallVector<int64_t> pads = n.attrInts("pads").value_or(SmallVector<int64_t>(2 * k, 0));
  if (int64_t(strides.size()) != k || int64_t(dilations.size()) != k ||
      int64_t(pads.size()) != 2 * k)
    return n.error() << "strides/dilations need " << k << " entries and pads " << 2 * k;
  std::string autoPad = n.attrString("auto_pad", "NOTSET");
  if (autoPad == "VALID") {
    pads.assign(2 * k, 0);
  } else if (autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER") {
    for (int64_t i = 0; i < k; ++i) {
      int64_t in = xt.getDimSize(i + 2);
      int64_t out = (in + strides[i] - 1) / strides[i];
      int64_t span = dilations[i] * (kernel[i] - 1) + 1;
      int64_t total = std::max<int64_t>(0, (out - 1) * strides[i] + span - in);
      int64_t small = total / 2, large = total - small;
      pads[i] = autoPad == "SAME_UPPER" ? small : large;
      pads[i + k] = autoPad == "SAME_UPPER" ? large : small;
    }
  } else if (autoPad != "NOTSET") {
    return n.error() << "unknown auto_pad '" << autoPad << "'";
  }
  SmallVector<Value> operands{*x, *w};
  if (n.hasInput(2)) {
    auto b = n.input(2);
    if (failed(b))
      return failure();
    operands.push_back(*b);
  }
  return emitResult<ConvOp>(n, operands, {n.namedI64Array("strides", strides),
                                       n.namedI64Array("pads", pads),
                                       n.namedI64Array("dilations", dilations),
                                       n.namedI64("group", n.attrInt("group", 1))});
}

/// AveragePool over non-overlapping windows (kernel == stride, no padding,
/// no dilation): a reshape that splits every spatial dimension into
/// (windows, kernel) and a mean over the kernel dimensions (as Gemma3's
/// projector pools patches). A remainder that fits no window is dropped, as
/// in floor mode. Overlapping or padded pooling is refused.
LogicalResult importAveragePool(NodeContext &n) {
  auto x = n.input(0);
  if (failed(x))
    return failure();
  auto xt = cast<RankedTensorType>(x->getType());
  int64_t k = xt.getRank() - 2;
  auto kernel = n.attrInts("kernel_shape");
  if (k < 1 || !kernel || int64_t(kernel->size()) != k)
    return n.error() << "needs an input of rank >= 3 and kernel_shape with one entry "
                        "per spatial dimension";
  SmallVector<int64_t> strides = n.attrInts("strides").value_or(SmallVector<int64_t>(k, 1));
  SmallVector<int64_t> pads = n.attrInts("pads").value_or(SmallVector<int64_t>(2 * k, 0));
  SmallVector<int64_t> dilations =
      n.attrInts("dilations").value_or(SmallVector<int64_t>(k, 1));
  std::string autoPad = n.attrString("auto_pad", "NOTSET");
  if (autoPad == "VALID")
    pads.assign(2 * k, 0);
  bool windows = strides == *kernel && llvm::all_of(pads, [](int64_t p) { return p == 0; }) &&
                 llvm::all_of(dilations, [](int64_t d) { return d == 1; }) &&
                 (autoPad == "NOTSET" || autoPad == "VALID") &&
                 llvm::all_of(*kernel, [](int64_t v) { return v >= 1; });
  if (!windows || (n.attrInt("ceil_mode", 0) != 0 &&
                   llvm::any_of(llvm::seq<int64_t>(0, k), [&](int64_t i) {
                     return xt.getDimSize(i + 2) % (*kernel)[i] != 0;
                   })))
    return n.error() << "overlapping, padded, dilated or ceil-mode pooling is not "
                        "supported (only windows with strides == kernel_shape)";
  Value input = *x;
  SmallVector<int64_t> limits(xt.getShape()), split(xt.getShape().take_front(2)), axes;
  bool remainder = false;
  for (int64_t i = 0; i < k; ++i) {
    int64_t windowsAlong = xt.getDimSize(i + 2) / (*kernel)[i];
    if (windowsAlong == 0)
      return n.error() << "kernel_shape " << (*kernel)[i] << " is larger than dimension "
                       << i + 2 << " of size " << xt.getDimSize(i + 2);
    remainder |= windowsAlong * (*kernel)[i] != xt.getDimSize(i + 2);
    limits[i + 2] = windowsAlong * (*kernel)[i];
    split.push_back(windowsAlong);
    split.push_back((*kernel)[i]);
    axes.push_back(2 + 2 * i + 1);
  }
  if (remainder) {
    auto cut = n.create<SliceOp>(input, {n.namedI64Array("starts", SmallVector<int64_t>(k + 2, 0)),
                                         n.namedI64Array("limits", limits),
                                         n.namedI64Array("strides", SmallVector<int64_t>(k + 2, 1))});
    if (failed(cut))
      return failure();
    input = *cut;
  }
  auto windowed = reshapeTo(n, input, split);
  if (failed(windowed))
    return failure();
  return emitResult<ReduceMeanOp>(n, *windowed, {n.namedI64Array("axes", axes)});
}

/// Resize to the input's own size is the identity (InternVL's position table
/// "interpolated" to its own size); anything else is refused.
LogicalResult importResize(NodeContext &n) {
  auto xt = n.inputType(0);
  if (!xt)
    return failure();
  int64_t rank = xt.getRank();
  SmallVector<int64_t> axes;
  if (auto a = n.attrInts("axes")) {
    for (int64_t axis : *a)
      axes.push_back(axis < 0 ? axis + rank : axis);
  } else {
    for (int64_t d = 0; d < rank; ++d)
      axes.push_back(d);
  }
  SmallVector<int64_t> out(xt.getShape());
  int sizesInput = n.opset >= 11 ? 3 : -1, scalesInput = n.opset >= 11 ? 2 : 1;
  if (sizesInput > 0 && n.hasInput(sizesInput)) {
    auto sizes = n.requireConstInput(sizesInput, "sizes");
    if (failed(sizes))
      return failure();
    if ((*sizes)->numElements() != int64_t(axes.size()))
      return n.error() << "sizes has " << (*sizes)->numElements() << " entries for "
                       << axes.size() << " axes";
    for (size_t i = 0; i < axes.size(); ++i)
      out[axes[i]] = (*sizes)->getInt(i);
  } else if (n.hasInput(scalesInput)) {
    auto scales = n.requireConstInput(scalesInput, "scales");
    if (failed(scales))
      return failure();
    if ((*scales)->numElements() != int64_t(axes.size()))
      return n.error() << "scales has " << (*scales)->numElements() << " entries for "
                       << axes.size() << " axes";
    for (size_t i = 0; i < axes.size(); ++i)
      out[axes[i]] = int64_t(std::floor(double(xt.getDimSize(axes[i])) *
                                        (*scales)->getDouble(i)));
  } else {
    return n.error() << "has neither scales nor sizes";
  }
  auto dims = [](ArrayRef<int64_t> shape) {
    std::string text = "[";
    for (size_t i = 0; i < shape.size(); ++i)
      text += (i ? ", " : "") + std::to_string(shape[i]);
    return text + "]";
  };
  if (ArrayRef<int64_t>(out) != xt.getShape())
    return n.error() << "resizing " << dims(xt.getShape()) << " to " << dims(out)
                     << " is not supported (only a resize to the input's own size, "
                        "an identity)";
  return passThrough(n, 0);
}

//===----------------------------------------------------------------------===//
// Normalisation and reductions
//===----------------------------------------------------------------------===//

template <typename OpTy>
LogicalResult emitSoftmax(NodeContext &n) {
  auto x = n.input(0);
  if (failed(x))
    return failure();
  auto type = cast<RankedTensorType>(x->getType());
  int64_t rank = type.getRank();
  auto axis = normaliseAxis(n, n.attrInt("axis", n.opset < 13 ? 1 : -1), rank);
  if (failed(axis))
    return failure();
  Value input = *x;
  // Before opset 13 the input is coerced to 2-D at `axis`.
  bool coerce = n.opset < 13 && *axis != rank - 1;
  if (coerce) {
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < rank; ++d)
      (d < *axis ? outer : inner) *= type.getDimSize(d);
    auto r = reshapeTo(n, input, {outer, inner});
    if (failed(r))
      return failure();
    input = *r;
  }
  int64_t opAxis = coerce ? 1 : *axis;
  auto r = n.create<OpTy>(input, {n.namedI64("axis", opAxis)});
  if (failed(r))
    return failure();
  Value result = *r;
  if (coerce) {
    auto back = reshapeTo(n, result, type.getShape());
    if (failed(back))
      return failure();
    result = *back;
  }
  n.setOutput(0, result);
  return success();
}

LogicalResult importSoftmax(NodeContext &n) { return emitSoftmax<SoftmaxOp>(n); }
LogicalResult importLogSoftmax(NodeContext &n) {
  return emitSoftmax<LogSoftmaxOp>(n);
}

/// The Mean and InvStdDev outputs of LayerNormalization, composed of
/// reductions over the normalised dimensions (kept as size 1).
LogicalResult emitLayerNormStatistics(NodeContext &n, Value x, int64_t axis,
                                      double epsilon) {
  auto type = cast<RankedTensorType>(x.getType());
  SmallVector<int64_t> axes;
  for (int64_t d = axis; d < type.getRank(); ++d)
    axes.push_back(d);
  SmallVector<NamedAttribute> attrs{n.namedI64Array("axes", axes),
                                    n.namedUnit("keepdims")};
  auto mean = n.create<ReduceMeanOp>(x, attrs);
  if (failed(mean))
    return failure();
  Type stash = elementTypeFor(n.getContext(), int32_t(n.attrInt("stash_type", 1)));
  if (!stash || !isa<FloatType>(stash))
    return n.error() << "stash_type " << n.attrInt("stash_type", 1)
                     << " is not supported";
  auto toStash = [&](Value v) -> FailureOr<Value> {
    if (cast<RankedTensorType>(v.getType()).getElementType() == stash)
      return v;
    return n.create<CastOp>(v, {n.namedType("to", stash)});
  };
  if (n.outputUsed(1)) {
    auto m = toStash(*mean);
    if (failed(m))
      return failure();
    n.setOutput(1, *m);
  }
  if (!n.outputUsed(2))
    return success();
  auto centred = n.create<SubOp>(ValueRange{x, *mean});
  if (failed(centred))
    return failure();
  auto square = n.create<MulOp>(ValueRange{*centred, *centred});
  if (failed(square))
    return failure();
  auto variance = n.create<ReduceMeanOp>(*square, attrs);
  if (failed(variance))
    return failure();
  auto shifted = n.create<AddOp>(
      ValueRange{*variance, n.scalar(type.getElementType(), epsilon)});
  if (failed(shifted))
    return failure();
  auto inv = n.create<RsqrtOp>(*shifted);
  if (failed(inv))
    return failure();
  auto r = toStash(*inv);
  if (failed(r))
    return failure();
  n.setOutput(2, *r);
  return success();
}

LogicalResult importLayerNormalization(NodeContext &n) {
  auto x = n.input(0), scale = n.input(1);
  if (failed(x) || failed(scale))
    return failure();
  int64_t rank = cast<RankedTensorType>(x->getType()).getRank();
  auto axis = normaliseAxis(n, n.attrInt("axis", -1), rank);
  if (failed(axis))
    return failure();
  SmallVector<Value> operands{*x, *scale};
  if (n.hasInput(2)) {
    auto b = n.input(2);
    if (failed(b))
      return failure();
    operands.push_back(*b);
  }
  auto r = n.create<LayerNormOp>(
      operands, {n.namedI64("axis", *axis),
                 n.namedF64("epsilon", n.attrFloat("epsilon", 1e-5f))});
  if (failed(r))
    return failure();
  n.setOutput(0, *r);
  if (n.outputUsed(1) || n.outputUsed(2))
    return emitLayerNormStatistics(n, *x, *axis, n.attrFloat("epsilon", 1e-5f));
  return success();
}

LogicalResult importRMSNormalization(NodeContext &n) {
  auto x = n.input(0), scale = n.input(1);
  if (failed(x) || failed(scale))
    return failure();
  int64_t rank = cast<RankedTensorType>(x->getType()).getRank();
  auto axis = normaliseAxis(n, n.attrInt("axis", -1), rank);
  if (failed(axis))
    return failure();
  return emitResult<RmsNormOp>(n,
      ValueRange{*x, *scale},
      {n.namedI64("axis", *axis),
       n.namedF64("epsilon", n.attrFloat("epsilon", 1e-5f))});
}

/// Reduce ops: `axes` is an attribute before `axesInputSince`, an input after.
template <typename OpTy>
LogicalResult emitReduce(NodeContext &n, int axesInputSince,
                         std::function<double(double, double)> fold = nullptr,
                         double init = 0) {
  RankedTensorType type = n.inputType(0);
  int64_t rank = type.getRank();
  SmallVector<int64_t> axes;
  if (n.opset >= axesInputSince) {
    if (n.hasInput(1)) {
      auto c = n.requireConstInput(1, "axes");
      if (failed(c))
        return failure();
      axes = intsOf(**c);
    }
  } else if (auto a = n.attrInts("axes")) {
    axes = *a;
  }
  bool keepdims = n.attrInt("keepdims", 1) != 0;
  if (axes.empty()) {
    if (n.attrInt("noop_with_empty_axes", 0))
      return passThrough(n, 0);
    for (int64_t d = 0; d < rank; ++d)
      axes.push_back(d);
  }
  auto normalised = normaliseAxes(n, axes, rank);
  if (failed(normalised))
    return failure();
  llvm::sort(*normalised);
  const HostTensor *c = n.constInput(0);
  if (fold && c) {
    SmallVector<int64_t> outShape;
    for (int64_t d = 0; d < rank; ++d)
      if (!llvm::is_contained(*normalised, d))
        outShape.push_back(type.getDimSize(d));
      else if (keepdims)
        outShape.push_back(1);
    SmallVector<int64_t> keptShape;
    for (int64_t d = 0; d < rank; ++d)
      keptShape.push_back(llvm::is_contained(*normalised, d) ? 1 : type.getDimSize(d));
    HostTensor r = HostTensor::zeros(c->dtype, keptShape);
    for (int64_t i = 0; i < r.numElements(); ++i)
      r.set(i, init);
    SmallVector<int64_t> outStrides = stridesOf(keptShape), index(rank, 0);
    for (int64_t flat = 0; flat < c->numElements(); ++flat) {
      int64_t out = 0;
      for (int64_t d = 0; d < rank; ++d)
        if (keptShape[d] != 1)
          out += index[d] * outStrides[d];
      r.set(out, fold(r.getDouble(out), c->getDouble(flat)));
      for (int64_t d = rank - 1; d >= 0; --d) {
        if (++index[d] < type.getDimSize(d))
          break;
        index[d] = 0;
      }
    }
    n.setOutput(0, reshaped(r, outShape));
    return success();
  }
  auto x = n.input(0);
  if (failed(x))
    return failure();
  SmallVector<NamedAttribute> attrs{n.namedI64Array("axes", *normalised)};
  if (keepdims)
    attrs.push_back(n.namedUnit("keepdims"));
  return emitResult<OpTy>(n, *x, attrs);
}

LogicalResult importReduceSum(NodeContext &n) {
  return emitReduce<ReduceSumOp>(n, 13, std::plus<double>(), 0.0);
}
LogicalResult importReduceMean(NodeContext &n) {
  return emitReduce<ReduceMeanOp>(n, 18);
}
LogicalResult importReduceMax(NodeContext &n) {
  return emitReduce<ReduceMaxOp>(
      n, 18, [](double a, double b) { return std::max(a, b); }, -INFINITY);
}
LogicalResult importReduceMin(NodeContext &n) {
  return emitReduce<ReduceMinOp>(
      n, 18, [](double a, double b) { return std::min(a, b); }, INFINITY);
}
LogicalResult importReduceProd(NodeContext &n) {
  return emitReduce<ReduceProdOp>(n, 18, std::multiplies<double>(), 1.0);
}

LogicalResult importArgMax(NodeContext &n) {
  auto x = n.input(0);
  if (failed(x))
    return failure();
  int64_t rank = cast<RankedTensorType>(x->getType()).getRank();
  auto axis = normaliseAxis(n, n.attrInt("axis", 0), rank);
  if (failed(axis))
    return failure();
  SmallVector<NamedAttribute> attrs{n.namedI64("axis", *axis)};
  if (n.attrInt("keepdims", 1))
    attrs.push_back(n.namedUnit("keepdims"));
  if (n.attrInt("select_last_index", 0))
    attrs.push_back(n.namedUnit("select_last"));
  return emitResult<ArgMaxOp>(n, *x, attrs);
}

LogicalResult importCumSum(NodeContext &n) {
  auto x = n.input(0);
  auto axisT = n.requireConstInput(1, "axis");
  if (failed(x) || failed(axisT))
    return failure();
  int64_t rank = cast<RankedTensorType>(x->getType()).getRank();
  auto axis = normaliseAxis(n, (*axisT)->getInt(0), rank);
  if (failed(axis))
    return failure();
  SmallVector<NamedAttribute> attrs{n.namedI64("axis", *axis)};
  if (n.attrInt("exclusive", 0))
    attrs.push_back(n.namedUnit("exclusive"));
  if (n.attrInt("reverse", 0))
    attrs.push_back(n.namedUnit("reverse"));
  return emitResult<CumsumOp>(n, *x, attrs);
}

//===----------------------------------------------------------------------===//
// Data movement
//===----------------------------------------------------------------------===//

LogicalResult importReshape(NodeContext &n) {
  RankedTensorType type = n.inputType(0);
  SmallVector<int64_t> target;
  if (n.opset < 5) {
    target = n.attrInts("shape").value_or(SmallVector<int64_t>());
  } else {
    auto c = n.requireConstInput(1, "shape");
    if (failed(c))
      return failure();
    target = intsOf(**c);
  }
  bool allowZero = n.attrInt("allowzero", 0) != 0;
  int64_t known = 1, inferred = -1;
  for (auto [i, d] : llvm::enumerate(target)) {
    if (d == 0 && !allowZero) {
      if (int64_t(i) >= type.getRank())
        return n.error() << "shape entry 0 at index " << i
                         << " has no matching input dimension";
      d = type.getDimSize(i);
    }
    if (d == -1) {
      if (inferred >= 0)
        return n.error() << "shape has more than one -1";
      inferred = i;
      continue;
    }
    if (d < 0)
      return n.error() << "invalid shape entry " << d;
    known *= d;
  }
  if (inferred >= 0) {
    if (known == 0 || type.getNumElements() % known)
      return n.error() << "cannot infer the -1 dimension: "
                       << type.getNumElements() << " elements do not divide by "
                       << known;
    target[inferred] = type.getNumElements() / known;
  } else if (known != type.getNumElements()) {
    std::string dims;
    llvm::raw_string_ostream os(dims);
    llvm::interleave(target, os, "x");
    return n.error() << "cannot reshape " << type.getNumElements()
                     << " elements into shape " << dims << " (" << known
                     << " elements)";
  }
  return emitReshape(n, target);
}

LogicalResult importFlatten(NodeContext &n) {
  RankedTensorType type = n.inputType(0);
  int64_t rank = type.getRank();
  int64_t axis = n.attrInt("axis", 1);
  if (axis < 0)
    axis += rank;
  if (axis < 0 || axis > rank)
    return n.error() << "axis " << n.attrInt("axis", 1) << " is out of range";
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < rank; ++d)
    (d < axis ? outer : inner) *= type.getDimSize(d);
  return emitReshape(n, {outer, inner});
}

FailureOr<SmallVector<int64_t>> axesOperand(NodeContext &n, int since,
                                            bool required) {
  if (n.opset >= since) {
    if (!n.hasInput(1)) {
      if (required)
        return n.error() << "missing input 'axes'", failure();
      return SmallVector<int64_t>();
    }
    auto c = n.requireConstInput(1, "axes");
    if (failed(c))
      return failure();
    return intsOf(**c);
  }
  auto a = n.attrInts("axes");
  if (!a && required)
    return n.error() << "missing attribute 'axes'", failure();
  return a.value_or(SmallVector<int64_t>());
}

LogicalResult importUnsqueeze(NodeContext &n) {
  auto axes = axesOperand(n, 13, /*required=*/true);
  if (failed(axes))
    return failure();
  if (const MaskSymbol *s = n.symbolicInput(0)) {
    if (s->kind != MaskSymbol::Count || s->countRank != 0 || *axes != SmallVector<int64_t>{0})
      return n.error() << "unsupported use of a data-dependent count";
    MaskSymbol r = *s;
    r.countRank = 1;
    n.setOutput(0, r);
    return success();
  }
  RankedTensorType type = n.inputType(0);
  int64_t rank = type.getRank() + axes->size();
  auto normalised = normaliseAxes(n, *axes, rank);
  if (failed(normalised))
    return failure();
  SmallVector<int64_t> shape;
  ArrayRef<int64_t> in = type.getShape();
  for (int64_t d = 0, k = 0; d < rank; ++d)
    shape.push_back(llvm::is_contained(*normalised, d) ? 1 : in[k++]);
  return emitReshape(n, shape);
}

LogicalResult importSqueeze(NodeContext &n) {
  auto axes = axesOperand(n, 13, /*required=*/false);
  if (failed(axes))
    return failure();
  RankedTensorType type = n.inputType(0);
  auto normalised = normaliseAxes(n, *axes, type.getRank());
  if (failed(normalised))
    return failure();
  SmallVector<int64_t> shape;
  for (int64_t d = 0; d < type.getRank(); ++d) {
    bool squeeze = normalised->empty() ? type.getDimSize(d) == 1
                                       : llvm::is_contained(*normalised, d);
    if (squeeze && type.getDimSize(d) != 1)
      return n.error() << "cannot squeeze dimension " << d << " of size "
                       << type.getDimSize(d);
    if (!squeeze)
      shape.push_back(type.getDimSize(d));
  }
  return emitReshape(n, shape);
}

LogicalResult importTranspose(NodeContext &n) {
  if (const MaskSymbol *s = n.symbolicInput(0)) {
    auto perm = n.attrInts("perm");
    if (s->kind != MaskSymbol::Indices || (perm && *perm != SmallVector<int64_t>{1, 0}))
      return n.error() << "unsupported use of a data-dependent shape";
    MaskSymbol r = *s;
    r.transposed = !r.transposed;
    n.setOutput(0, r);
    return success();
  }
  RankedTensorType type = n.inputType(0);
  int64_t rank = type.getRank();
  SmallVector<int64_t> perm;
  if (auto p = n.attrInts("perm"))
    perm = *p;
  else
    for (int64_t d = rank - 1; d >= 0; --d)
      perm.push_back(d);
  if (const HostTensor *c = n.constInput(0)) {
    if (int64_t(perm.size()) == rank) {
      SmallVector<int64_t> shape;
      for (int64_t p : perm)
        shape.push_back(p >= 0 && p < rank ? type.getDimSize(p) : 0);
      HostTensor r = HostTensor::zeros(c->dtype, shape);
      SmallVector<int64_t> inStrides = stridesOf(type.getShape()), index(rank, 0);
      for (int64_t flat = 0; flat < r.numElements(); ++flat) {
        int64_t src = 0;
        for (int64_t d = 0; d < rank; ++d)
          src += index[d] * inStrides[perm[d]];
        r.copyElement(flat, *c, src);
        for (int64_t d = rank - 1; d >= 0; --d) {
          if (++index[d] < shape[d])
            break;
          index[d] = 0;
        }
      }
      n.setOutput(0, r);
      return success();
    }
  }
  auto x = n.input(0);
  if (failed(x))
    return failure();
  return emitResult<TransposeOp>(n, *x, {n.namedI64Array("perm", perm)});
}

/// Normalised per-dimension slice bounds, as ONNX Slice clamps them.
struct SliceBounds {
  SmallVector<int64_t> starts, limits, strides, shape;
};

FailureOr<SliceBounds> sliceBounds(NodeContext &n, ArrayRef<int64_t> inShape,
                                   ArrayRef<int64_t> starts,
                                   ArrayRef<int64_t> ends,
                                   ArrayRef<int64_t> axes,
                                   ArrayRef<int64_t> steps) {
  int64_t rank = inShape.size();
  SliceBounds b;
  for (int64_t d = 0; d < rank; ++d) {
    b.starts.push_back(0);
    b.limits.push_back(inShape[d]);
    b.strides.push_back(1);
  }
  if (starts.size() != ends.size() || starts.size() != axes.size() ||
      starts.size() != steps.size())
    return n.error() << "starts, ends, axes and steps must have the same length",
           failure();
  auto normalised = normaliseAxes(n, axes, rank);
  if (failed(normalised))
    return failure();
  for (size_t i = 0; i < starts.size(); ++i) {
    int64_t d = (*normalised)[i], dim = inShape[d], step = steps[i];
    if (step == 0)
      return n.error() << "step is zero", failure();
    int64_t s = starts[i], e = ends[i];
    if (s < 0)
      s += dim;
    if (e < 0 && e > INT64_MIN / 2)
      e += dim;
    if (step > 0) {
      s = std::clamp<int64_t>(s, 0, dim);
      e = std::clamp<int64_t>(e, 0, dim);
      e = std::max(e, s);
    } else {
      s = std::clamp<int64_t>(s, -1, dim - 1);
      e = std::clamp<int64_t>(e, -1, dim - 1);
      e = std::min(e, s);
    }
    b.starts[d] = s;
    b.limits[d] = e;
    b.strides[d] = step;
  }
  for (int64_t d = 0; d < rank; ++d) {
    int64_t step = b.strides[d];
    int64_t size = step > 0 ? (b.limits[d] - b.starts[d] + step - 1) / step
                            : (b.starts[d] - b.limits[d] - step - 1) / -step;
    b.shape.push_back(std::max<int64_t>(0, size));
  }
  return b;
}

LogicalResult importSlice(NodeContext &n) {
  SmallVector<int64_t> starts, ends, axes, steps;
  // The masked_scatter form slices the flattened source with a count.
  if (n.opset >= 10 && n.symbolicInput(2)) {
    const MaskSymbol *s = n.symbolicInput(2);
    const HostTensor *st = n.constInput(1);
    const HostTensor *ax = n.hasInput(3) ? n.constInput(3) : nullptr;
    RankedTensorType type = n.inputType(0);
    if (s->kind != MaskSymbol::Count || s->countRank != 1 || !type ||
        type.getRank() != 1 || !st || st->getInt(0) != 0 ||
        (n.hasInput(3) && (!ax || ax->getInt(0) != 0)) ||
        (n.hasInput(4) && (!n.constInput(4) || n.constInput(4)->getInt(0) != 1)))
      return n.error() << "unsupported use of a data-dependent count";
    auto src = n.input(0);
    if (failed(src))
      return failure();
    MaskSymbol r = *s;
    r.kind = MaskSymbol::Prefix;
    r.source = *src;
    n.setOutput(0, r);
    return success();
  }
  RankedTensorType type = n.inputType(0);
  if (n.opset < 10) {
    starts = n.attrInts("starts").value_or(SmallVector<int64_t>());
    ends = n.attrInts("ends").value_or(SmallVector<int64_t>());
    axes = n.attrInts("axes").value_or(SmallVector<int64_t>());
  } else {
    auto s = n.requireConstInput(1, "starts");
    if (failed(s))
      return failure();
    auto e = n.requireConstInput(2, "ends");
    if (failed(e))
      return failure();
    starts = intsOf(**s);
    ends = intsOf(**e);
    if (n.hasInput(3)) {
      auto a = n.requireConstInput(3, "axes");
      if (failed(a))
        return failure();
      axes = intsOf(**a);
    }
    if (n.hasInput(4)) {
      auto st = n.requireConstInput(4, "steps");
      if (failed(st))
        return failure();
      steps = intsOf(**st);
    }
  }
  if (axes.empty())
    for (size_t i = 0; i < starts.size(); ++i)
      axes.push_back(i);
  if (steps.empty())
    steps.assign(starts.size(), 1);
  auto bounds = sliceBounds(n, type.getShape(), starts, ends, axes, steps);
  if (failed(bounds))
    return failure();
  if (const HostTensor *c = n.constInput(0)) {
    HostTensor r = HostTensor::zeros(c->dtype, bounds->shape);
    SmallVector<int64_t> inStrides = stridesOf(type.getShape());
    int64_t rank = type.getRank();
    SmallVector<int64_t> index(rank, 0);
    for (int64_t flat = 0; flat < r.numElements(); ++flat) {
      int64_t src = 0;
      for (int64_t d = 0; d < rank; ++d)
        src += (bounds->starts[d] + index[d] * bounds->strides[d]) * inStrides[d];
      r.copyElement(flat, *c, src);
      for (int64_t d = rank - 1; d >= 0; --d) {
        if (++index[d] < bounds->shape[d])
          break;
        index[d] = 0;
      }
    }
    n.setOutput(0, r);
    return success();
  }
  auto x = n.input(0);
  if (failed(x))
    return failure();
  if (ArrayRef<int64_t>(bounds->shape) == type.getShape() &&
      llvm::all_of(bounds->strides, [](int64_t s) { return s == 1; })) {
    n.setOutput(0, *x);
    return success();
  }
  return emitResult<SliceOp>(n, *x, {n.namedI64Array("starts", bounds->starts),
                                  n.namedI64Array("limits", bounds->limits),
                                  n.namedI64Array("strides", bounds->strides)});
}

LogicalResult importConcat(NodeContext &n) {
  if (n.numInputs() < 1)
    return n.error() << "needs at least one input";
  RankedTensorType first = n.inputType(0);
  if (!n.attr("axis"))
    return n.error() << "missing attribute 'axis'";
  auto axis = normaliseAxis(n, n.attrInt("axis", 0), first.getRank());
  if (failed(axis))
    return failure();
  if (n.allInputsConst()) {
    SmallVector<const HostTensor *> parts;
    SmallVector<int64_t> shape(first.getShape());
    shape[*axis] = 0;
    bool ok = true;
    for (int i = 0; i < n.numInputs(); ++i) {
      const HostTensor *c = n.constInput(i);
      if (c->shape.size() != first.getShape().size())
        ok = false;
      else
        shape[*axis] += c->shape[*axis];
      parts.push_back(c);
    }
    if (ok && foldable(shape)) {
      HostTensor r = HostTensor::zeros(parts.front()->dtype, shape);
      int64_t outer = 1;
      for (int64_t d = 0; d < *axis; ++d)
        outer *= shape[d];
      int64_t pos = 0;
      int64_t rowOut = r.numElements() / std::max<int64_t>(outer, 1);
      for (int64_t o = 0; o < outer; ++o) {
        pos = o * rowOut;
        for (const HostTensor *p : parts) {
          int64_t row = p->numElements() / std::max<int64_t>(outer, 1);
          for (int64_t k = 0; k < row; ++k)
            r.copyElement(pos++, *p, o * row + k);
        }
      }
      n.setOutput(0, r);
      return success();
    }
  }
  SmallVector<Value> inputs;
  for (int i = 0; i < n.numInputs(); ++i) {
    auto v = n.input(i);
    if (failed(v))
      return failure();
    // Zero-sized operands contribute nothing (exporters emit them).
    if (cast<RankedTensorType>(v->getType()).getNumElements() == 0 &&
        n.numInputs() > 1)
      continue;
    inputs.push_back(*v);
  }
  if (inputs.empty()) {
    auto v = n.input(0);
    if (failed(v))
      return failure();
    inputs.push_back(*v);
  }
  if (inputs.size() == 1) {
    n.setOutput(0, inputs.front());
    return success();
  }
  return emitResult<ConcatOp>(n, inputs, {n.namedI64("axis", *axis)});
}

LogicalResult importSplit(NodeContext &n) {
  RankedTensorType type = n.inputType(0);
  auto axis = normaliseAxis(n, n.attrInt("axis", 0), type.getRank());
  if (failed(axis))
    return failure();
  int64_t dim = type.getDimSize(*axis);
  SmallVector<int64_t> sizes;
  if (n.opset >= 13 && n.hasInput(1)) {
    auto c = n.requireConstInput(1, "split");
    if (failed(c))
      return failure();
    sizes = intsOf(**c);
  } else if (n.opset < 13) {
    sizes = n.attrInts("split").value_or(SmallVector<int64_t>());
  }
  if (sizes.empty()) {
    int64_t parts = n.opset >= 18 && n.attr("num_outputs")
                        ? n.attrInt("num_outputs", 1)
                        : n.node.output_size();
    if (parts < 1)
      return n.error() << "num_outputs must be positive";
    int64_t chunk = (dim + parts - 1) / parts;
    for (int64_t i = 0; i < parts; ++i)
      sizes.push_back(std::max<int64_t>(0, std::min(chunk, dim - i * chunk)));
  }
  if (int64_t(sizes.size()) != n.node.output_size())
    return n.error() << "has " << n.node.output_size() << " outputs but "
                     << sizes.size() << " split sizes";
  auto x = n.input(0);
  if (failed(x))
    return failure();
  if (sizes.size() == 1) {
    n.setOutput(0, *x);
    return success();
  }
  auto op = n.createOp<SplitOp>(*x, {n.namedI64("axis", *axis),
                                     n.namedI64Array("sizes", sizes)});
  if (failed(op))
    return failure();
  for (unsigned i = 0; i < (*op)->getNumResults(); ++i)
    n.setOutput(i, (*op)->getResult(i));
  return success();
}

LogicalResult importGather(NodeContext &n) {
  if (const MaskSymbol *s = n.symbolicInput(0)) {
    const HostTensor *idx = n.constInput(1);
    if (s->kind != MaskSymbol::IndexShape || !idx || idx->numElements() != 1 ||
        idx->shape.size() > 1 || n.attrInt("axis", 0) != 0)
      return n.error() << "unsupported use of a data-dependent shape";
    int64_t position = idx->getInt(0);
    int64_t countPosition = s->transposed ? 0 : 1;
    if (position < 0)
      position += 2;
    if (position == countPosition) {
      MaskSymbol r = *s;
      r.kind = MaskSymbol::Count;
      r.countRank = idx->shape.size();
      n.setOutput(0, r);
    } else {
      HostTensor t = HostTensor::zeros(onnx::TensorProto_DataType_INT64, idx->shape);
      t.ints[0] = cast<RankedTensorType>(s->mask.getType()).getRank();
      n.setOutput(0, t);
    }
    return success();
  }
  RankedTensorType dataType = n.inputType(0);
  auto axis = normaliseAxis(n, n.attrInt("axis", 0), dataType.getRank());
  if (failed(axis))
    return failure();
  const HostTensor *data = n.constInput(0), *indices = n.constInput(1);
  int64_t dim = dataType.getDimSize(*axis);
  if (indices) {
    for (int64_t i = 0; i < indices->numElements(); ++i) {
      int64_t v = indices->getInt(i);
      if (v < -dim || v >= dim)
        return n.error() << "index " << v << " is out of range for dimension "
                         << *axis << " of size " << dim;
    }
  }
  if (data && indices) {
    SmallVector<int64_t> shape(dataType.getShape().take_front(*axis));
    llvm::append_range(shape, indices->shape);
    llvm::append_range(shape, dataType.getShape().drop_front(*axis + 1));
    if (foldable(shape)) {
      HostTensor r = HostTensor::zeros(data->dtype, shape);
      int64_t outer = 1, inner = 1;
      for (int64_t d = 0; d < *axis; ++d)
        outer *= dataType.getDimSize(d);
      for (int64_t d = *axis + 1; d < dataType.getRank(); ++d)
        inner *= dataType.getDimSize(d);
      int64_t pos = 0;
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t i = 0; i < indices->numElements(); ++i) {
          int64_t v = indices->getInt(i);
          if (v < 0)
            v += dim;
          for (int64_t k = 0; k < inner; ++k)
            r.copyElement(pos++, *data, (o * dim + v) * inner + k);
        }
      n.setOutput(0, r);
      return success();
    }
  }
  auto d = n.input(0);
  if (failed(d))
    return failure();
  Value idx;
  if (indices) {
    // Constant indices are normalised here, so kernels see no negatives.
    HostTensor normalised = *indices;
    for (int64_t i = 0; i < normalised.numElements(); ++i)
      if (normalised.ints[i] < 0)
        normalised.ints[i] += dim;
    idx = n.materialize(normalised);
  } else {
    auto v = n.input(1);
    if (failed(v))
      return failure();
    idx = *v;
  }
  return emitResult<GatherOp>(n, ValueRange{*d, idx}, {n.namedI64("axis", *axis)});
}

LogicalResult importGatherElements(NodeContext &n) {
  auto d = n.input(0), idx = n.input(1);
  if (failed(d) || failed(idx))
    return failure();
  auto axis = normaliseAxis(n, n.attrInt("axis", 0),
                            cast<RankedTensorType>(d->getType()).getRank());
  if (failed(axis))
    return failure();
  return emitResult<GatherElementsOp>(n, ValueRange{*d, *idx},
                                      {n.namedI64("axis", *axis)});
}

LogicalResult importGatherND(NodeContext &n) {
  if (n.attrInt("batch_dims", 0) != 0)
    return n.error() << "batch_dims != 0 is not supported";
  auto d = n.input(0), idx = n.input(1);
  if (failed(d) || failed(idx))
    return failure();
  return emitResult<GatherNDOp>(n, ValueRange{*d, *idx});
}

LogicalResult importScatterND(NodeContext &n) {
  if (n.attrString("reduction", "none") != "none")
    return n.error() << "reduction '" << n.attrString("reduction", "none")
                     << "' is not supported";
  const MaskSymbol *indices = n.symbolicInput(1);
  const MaskSymbol *updates = n.symbolicInput(2);
  if (indices || updates) {
    if (!indices || !updates || indices->kind != MaskSymbol::Indices ||
        !indices->transposed || updates->kind != MaskSymbol::Prefix ||
        indices->mask != updates->mask)
      return n.error() << "unsupported use of a data-dependent shape (expected "
                          "the masked_scatter form)";
    auto data = n.input(0);
    if (failed(data))
      return failure();
    return emitResult<MaskedScatterOp>(
        n, ValueRange{*data, indices->mask, updates->source});
  }
  auto data = n.input(0), idx = n.input(1), upd = n.input(2);
  if (failed(data) || failed(idx) || failed(upd))
    return failure();
  return emitResult<ScatterNDOp>(n, ValueRange{*data, *idx, *upd});
}

LogicalResult importNonZero(NodeContext &n) {
  if (const HostTensor *c = n.constInput(0)) {
    int64_t rank = c->shape.size();
    SmallVector<SmallVector<int64_t>> coords;
    SmallVector<int64_t> index(rank, 0);
    for (int64_t flat = 0; flat < c->numElements(); ++flat) {
      if (c->getDouble(flat) != 0)
        coords.push_back(index);
      for (int64_t d = rank - 1; d >= 0; --d) {
        if (++index[d] < c->shape[d])
          break;
        index[d] = 0;
      }
    }
    HostTensor r = HostTensor::zeros(onnx::TensorProto_DataType_INT64,
                                     {rank, int64_t(coords.size())});
    for (size_t k = 0; k < coords.size(); ++k)
      for (int64_t d = 0; d < rank; ++d)
        r.ints[d * coords.size() + k] = coords[k][d];
    n.setOutput(0, r);
    return success();
  }
  auto x = n.input(0);
  if (failed(x))
    return failure();
  Value mask = *x;
  auto type = cast<RankedTensorType>(mask.getType());
  if (!type.getElementType().isInteger(1)) {
    auto r = n.create<CastOp>(mask, {n.namedType("to", n.builder().getI1Type())});
    if (failed(r))
      return failure();
    mask = *r;
  }
  MaskSymbol s;
  s.kind = MaskSymbol::Indices;
  s.mask = mask;
  s.origin = std::string(cast<NameLoc>(n.loc).getName().getValue());
  n.setOutput(0, s);
  return success();
}

LogicalResult importExpand(NodeContext &n) {
  auto shapeT = n.requireConstInput(1, "shape");
  if (failed(shapeT))
    return failure();
  SmallVector<int64_t> target = intsOf(**shapeT);
  RankedTensorType type = n.inputType(0);
  auto shape = broadcastShapes(type.getShape(), target);
  if (failed(shape))
    return n.error() << "cannot broadcast the input to the requested shape";
  if (const HostTensor *c = n.constInput(0); c && foldable(*shape)) {
    HostTensor r = HostTensor::zeros(c->dtype, *shape);
    forEachBroadcast(*shape, {c->shape}, [&](int64_t out, ArrayRef<int64_t> src) {
      r.copyElement(out, *c, src[0]);
    });
    n.setOutput(0, r);
    return success();
  }
  auto x = n.input(0);
  if (failed(x))
    return failure();
  if (ArrayRef<int64_t>(*shape) == type.getShape()) {
    n.setOutput(0, *x);
    return success();
  }
  return emitResult<ExpandOp>(n, *x, {n.namedI64Array("shape", target)});
}

LogicalResult importTile(NodeContext &n) {
  auto repeatsT = n.requireConstInput(1, "repeats");
  if (failed(repeatsT))
    return failure();
  SmallVector<int64_t> repeats = intsOf(**repeatsT);
  RankedTensorType type = n.inputType(0);
  if (int64_t(repeats.size()) != type.getRank())
    return n.error() << "repeats must have one entry per input dimension";
  // tile = reshape(expand(reshape(x, [1, d0, 1, d1, ...]), [r0, d0, r1, d1, ...]))
  SmallVector<int64_t> interleaved, expanded, result;
  for (int64_t d = 0; d < type.getRank(); ++d) {
    if (repeats[d] < 0)
      return n.error() << "negative repeat " << repeats[d];
    interleaved.append({1, type.getDimSize(d)});
    expanded.append({repeats[d], type.getDimSize(d)});
    result.push_back(repeats[d] * type.getDimSize(d));
  }
  auto x = n.input(0);
  if (failed(x))
    return failure();
  auto a = reshapeTo(n, *x, interleaved);
  if (failed(a))
    return failure();
  auto b = n.create<ExpandOp>(*a, {n.namedI64Array("shape", expanded)});
  if (failed(b))
    return failure();
  auto c = reshapeTo(n, *b, result);
  if (failed(c))
    return failure();
  n.setOutput(0, *c);
  return success();
}

LogicalResult importPad(NodeContext &n) {
  std::string mode = n.attrString("mode", "constant");
  if (mode != "constant")
    return n.error() << "pad mode '" << mode << "' is not supported";
  RankedTensorType type = n.inputType(0);
  int64_t rank = type.getRank();
  SmallVector<int64_t> pads;
  double value = 0;
  if (n.opset < 11) {
    pads = n.attrInts("pads").value_or(SmallVector<int64_t>());
    value = n.attrFloat("value", 0);
  } else {
    auto p = n.requireConstInput(1, "pads");
    if (failed(p))
      return failure();
    pads = intsOf(**p);
    if (n.hasInput(2)) {
      auto v = n.requireConstInput(2, "constant_value");
      if (failed(v))
        return failure();
      value = (*v)->getDouble(0);
    }
    if (n.hasInput(3)) {
      auto a = n.requireConstInput(3, "axes");
      if (failed(a))
        return failure();
      auto axes = normaliseAxes(n, intsOf(**a), rank);
      if (failed(axes))
        return failure();
      if (pads.size() != 2 * axes->size())
        return n.error() << "pads must have twice as many entries as axes";
      SmallVector<int64_t> full(2 * rank, 0);
      for (size_t i = 0; i < axes->size(); ++i) {
        full[(*axes)[i]] = pads[i];
        full[rank + (*axes)[i]] = pads[axes->size() + i];
      }
      pads = full;
    }
  }
  if (int64_t(pads.size()) != 2 * rank)
    return n.error() << "pads must have " << 2 * rank << " entries";
  if (llvm::any_of(pads, [](int64_t p) { return p < 0; }))
    return n.error() << "negative pads (cropping) are not supported";
  auto x = n.input(0);
  if (failed(x))
    return failure();
  return emitResult<PadOp>(n, *x, {n.namedI64Array("pads", pads),
                                n.namedF64("value", value)});
}

LogicalResult importTrilu(NodeContext &n) {
  int64_t k = 0;
  if (n.hasInput(1)) {
    auto c = n.requireConstInput(1, "k");
    if (failed(c))
      return failure();
    k = (*c)->getInt(0);
  }
  auto x = n.input(0);
  if (failed(x))
    return failure();
  SmallVector<NamedAttribute> attrs{n.namedI64("k", k)};
  if (n.attrInt("upper", 1))
    attrs.push_back(n.namedUnit("upper"));
  return emitResult<TriluOp>(n, *x, attrs);
}

constexpr int kMax = kMaxOpset;

const OpTableEntry kOpTable[] = {
    // Constants and shapes
    {"Constant", 7, kMax, importConstant},
    {"ConstantOfShape", 9, kMax, importConstantOfShape},
    {"Shape", 7, kMax, importShape},
    {"Size", 7, kMax, importSize},
    {"Range", 11, kMax, importRange},
    {"Identity", 7, kMax, importIdentity},
    {"Dropout", 7, kMax, importDropout},
    {"Cast", 7, kMax, importCast},
    {"CastLike", 15, kMax, importCastLike},
    // Elementwise
    {"Add", 7, kMax, importAdd},
    {"Sub", 7, kMax, importSub},
    {"Mul", 7, kMax, importMul},
    {"Div", 7, kMax, importDiv},
    {"Pow", 7, kMax, importPow},
    {"Max", 8, kMax, importMax},
    {"Min", 8, kMax, importMin},
    {"And", 7, kMax, importAnd},
    {"Or", 7, kMax, importOr},
    {"Xor", 7, kMax, importXor},
    {"Not", 7, kMax, importNot},
    {"Equal", 7, kMax, importEqual},
    {"Less", 7, kMax, importLess},
    {"LessOrEqual", 12, kMax, importLessOrEqual},
    {"Greater", 7, kMax, importGreater},
    {"GreaterOrEqual", 12, kMax, importGreaterOrEqual},
    {"Where", 9, kMax, importWhere},
    {"Neg", 7, kMax, importNeg},
    {"Abs", 7, kMax, importAbs},
    {"Exp", 7, kMax, importExp},
    {"Log", 7, kMax, importLog},
    {"Sqrt", 7, kMax, importSqrt},
    {"Reciprocal", 7, kMax, importReciprocal},
    {"Tanh", 7, kMax, importTanh},
    {"Erf", 9, kMax, importErf},
    {"Sigmoid", 7, kMax, importSigmoid},
    {"Relu", 7, kMax, importRelu},
    {"Sin", 7, kMax, importSin},
    {"Cos", 7, kMax, importCos},
    {"Floor", 7, kMax, importFloor},
    {"Ceil", 7, kMax, importCeil},
    {"Gelu", 20, kMax, importGelu},
    {"Clip", 7, 10, importClip},
    {"Clip", 11, kMax, importClip},
    // Linear algebra
    {"MatMul", 7, kMax, importMatMul},
    {"Gemm", 7, kMax, importGemm},
    {"Conv", 7, kMax, importConv},
    {"AveragePool", 7, kMax, importAveragePool},
    {"Resize", 10, kMax, importResize},
    // Normalisation and reductions
    {"Softmax", 7, 12, importSoftmax},
    {"Softmax", 13, kMax, importSoftmax},
    {"LogSoftmax", 7, 12, importLogSoftmax},
    {"LogSoftmax", 13, kMax, importLogSoftmax},
    {"LayerNormalization", 17, kMax, importLayerNormalization},
    {"RMSNormalization", 23, kMax, importRMSNormalization},
    {"ReduceSum", 7, 12, importReduceSum},
    {"ReduceSum", 13, kMax, importReduceSum},
    {"ReduceMean", 7, 17, importReduceMean},
    {"ReduceMean", 18, kMax, importReduceMean},
    {"ReduceMax", 7, 17, importReduceMax},
    {"ReduceMax", 18, kMax, importReduceMax},
    {"ReduceMin", 7, 17, importReduceMin},
    {"ReduceMin", 18, kMax, importReduceMin},
    {"ReduceProd", 7, 17, importReduceProd},
    {"ReduceProd", 18, kMax, importReduceProd},
    {"ArgMax", 7, kMax, importArgMax},
    {"CumSum", 11, kMax, importCumSum},
    // Data movement
    {"Reshape", 7, kMax, importReshape},
    {"Flatten", 7, kMax, importFlatten},
    {"Unsqueeze", 7, 12, importUnsqueeze},
    {"Unsqueeze", 13, kMax, importUnsqueeze},
    {"Squeeze", 7, 12, importSqueeze},
    {"Squeeze", 13, kMax, importSqueeze},
    {"Transpose", 7, kMax, importTranspose},
    {"Slice", 7, 9, importSlice},
    {"Slice", 10, kMax, importSlice},
    {"Concat", 7, kMax, importConcat},
    {"Split", 7, 12, importSplit},
    {"Split", 13, 17, importSplit},
    {"Split", 18, kMax, importSplit},
    {"Gather", 7, kMax, importGather},
    {"GatherElements", 11, kMax, importGatherElements},
    {"GatherND", 11, kMax, importGatherND},
    {"ScatterND", 11, kMax, importScatterND},
    {"NonZero", 9, kMax, importNonZero},
    {"Expand", 8, kMax, importExpand},
    {"Tile", 7, kMax, importTile},
    {"Pad", 7, 10, importPad},
    {"Pad", 11, kMax, importPad},
    {"Trilu", 14, kMax, importTrilu},
};

} // namespace

ArrayRef<OpTableEntry> vlora::onnx_import::getOpTable() { return kOpTable; }

const OpTableEntry *vlora::onnx_import::lookupOp(StringRef opType,
                                                 int64_t opset) {
  for (const OpTableEntry &entry : kOpTable)
    if (opType == entry.opType && opset >= entry.sinceVersion &&
        opset <= entry.untilVersion)
      return &entry;
  return nullptr;
}
