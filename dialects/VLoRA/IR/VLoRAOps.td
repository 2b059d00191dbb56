//===- VLoRAOps.td - vlora dialect ops -----------------------*- tablegen -*-===//
//
// Ops of the `vlora` dialect. Every op infers its result types from its
// operands and attributes (InferTypeOpAdaptor), so the verifier checks that a
// written result type is the inferred one and builders need no result types.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_OPS_TD
#define VLORA_OPS_TD

include "VLoRA/IR/VLoRADialect.td"
include "mlir/IR/BuiltinAttributeInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

class VLoRA_Op<string mnemonic, list<Trait> traits = []>
    : Op<VLoRA_Dialect, mnemonic, !listconcat(traits, [Pure, InferTypeOpAdaptor])>;

/// Ops whose result has the operand's type; ODS generates their inference.
class VLoRA_SameTypeOp<string mnemonic, list<Trait> traits = []>
    : Op<VLoRA_Dialect, mnemonic,
         !listconcat(traits, [Pure, SameOperandsAndResultType,
                              DeclareOpInterfaceMethods<InferTypeOpInterface>])>;

def VLoRA_Tensor : RankedTensorOf<[AnyType]>;
def VLoRA_FloatTensor : RankedTensorOf<[AnyFloat]>;
def VLoRA_BoolTensor : RankedTensorOf<[I1]>;
def VLoRA_IndexTensor : RankedTensorOf<[I32, I64]>;

//===----------------------------------------------------------------------===//
// Parameters and constants
//===----------------------------------------------------------------------===//

def VLoRA_ParamOp : Op<VLoRA_Dialect, "param", [Pure]> {
  let summary = "a named tensor whose bytes live outside the IR";
  let description = [{
    A model parameter, adapter or optimizer state. `name` is the tensor's name
    (the ONNX initializer name, or a PEFT key for adapters), `role` says
    whether it is frozen, trainable or optimizer state, and `source`, `file`,
    `offset` and `length` say where its little-endian bytes live:
    `initializer` (inside the `.onnx` file itself), `external` (an ONNX
    external data file, relative to the model's folder) or `bundle` (a file of
    a compiled bundle). The bytes are never copied into the IR; `length` must
    equal the number of elements times the element size.

    Example:
    ```mlir
    %w = vlora.param "model.layers.0.q_proj.weight" frozen initializer
           "model.onnx" [offset 1024, length 4096] : tensor<32x32xf32>
    ```
  }];
  let arguments = (ins StrAttr:$name, VLoRA_ParamRoleAttr:$role,
                       VLoRA_WeightSourceAttr:$source, StrAttr:$file,
                       I64Attr:$offset, I64Attr:$length);
  let results = (outs VLoRA_Tensor:$result);
  let assemblyFormat = [{
    $name custom<EnumKeyword>($role) custom<EnumKeyword>($source) $file ` `
    `[` `offset` $offset `,` `length` $length `]` attr-dict `:` type($result)
  }];
  let hasVerifier = 1;
}

def VLoRA_ConstantOp : VLoRA_Op<"constant", [ConstantLike]> {
  let summary = "a small constant tensor";
  let description = [{
    A constant whose value is stored in the IR. The importer only creates these
    for small values (folded shape computations, scalars, ONNX `Constant`
    nodes); weights are `vlora.param`.

    Example:
    ```mlir
    %c = vlora.constant dense<[1.0, 2.0]> : tensor<2xf32>
    ```
  }];
  let arguments = (ins ElementsAttr:$value);
  let results = (outs VLoRA_Tensor:$result);
  let assemblyFormat = "attr-dict $value";
  let hasFolder = 1;
}

//===----------------------------------------------------------------------===//
// Elementwise ops
//===----------------------------------------------------------------------===//

class VLoRA_UnaryOp<string mnemonic, string what, Type operandType = VLoRA_FloatTensor,
                    list<Trait> traits = []>
    : VLoRA_SameTypeOp<mnemonic, traits> {
  let summary = "elementwise " # what;
  let description = [{
    Computes }] # what # [{ of every element; the result has the operand's type.

    Example:
    ```mlir
    %y = vlora.}] # mnemonic # [{ %x : tensor<2x8x}] #
    !if(!eq(operandType, VLoRA_BoolTensor), "i1", "f32") # [{>
    ```
  }];
  let arguments = (ins operandType:$input);
  let results = (outs operandType:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
}

def VLoRA_NegOp : VLoRA_UnaryOp<"neg", "negation", VLoRA_Tensor>;
def VLoRA_AbsOp : VLoRA_UnaryOp<"abs", "absolute value", VLoRA_Tensor>;
def VLoRA_ExpOp : VLoRA_UnaryOp<"exp", "the exponential">;
def VLoRA_LogOp : VLoRA_UnaryOp<"log", "the natural logarithm">;
def VLoRA_SqrtOp : VLoRA_UnaryOp<"sqrt", "the square root">;
def VLoRA_RsqrtOp : VLoRA_UnaryOp<"rsqrt", "the reciprocal square root">;
def VLoRA_ReciprocalOp : VLoRA_UnaryOp<"reciprocal", "the reciprocal">;
def VLoRA_TanhOp : VLoRA_UnaryOp<"tanh", "the hyperbolic tangent">;
def VLoRA_ErfOp : VLoRA_UnaryOp<"erf", "the error function">;
def VLoRA_SigmoidOp : VLoRA_UnaryOp<"sigmoid", "the logistic sigmoid 1/(1+exp(-x))">;
def VLoRA_SiluOp : VLoRA_UnaryOp<"silu", "SiLU x*sigmoid(x)">;
def VLoRA_ReluOp : VLoRA_UnaryOp<"relu", "max(x, 0)">;
def VLoRA_SinOp : VLoRA_UnaryOp<"sin", "the sine">;
def VLoRA_CosOp : VLoRA_UnaryOp<"cos", "the cosine">;
def VLoRA_FloorOp : VLoRA_UnaryOp<"floor", "rounding towards minus infinity">;
def VLoRA_CeilOp : VLoRA_UnaryOp<"ceil", "rounding towards plus infinity">;
def VLoRA_NotOp : VLoRA_UnaryOp<"not", "logical negation", VLoRA_BoolTensor>;

def VLoRA_GeluOp : VLoRA_SameTypeOp<"gelu"> {
  let summary = "elementwise GELU, exact or tanh-approximated";
  let description = [{
    `none`: x * 0.5 * (1 + erf(x / sqrt(2))); `tanh`: the tanh approximation
    0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))).

    Example:
    ```mlir
    %y = vlora.gelu %x tanh : tensor<4x64xf32>
    ```
  }];
  let arguments = (ins VLoRA_FloatTensor:$input,
                       VLoRA_GeluApproximationAttr:$approximate);
  let results = (outs VLoRA_FloatTensor:$result);
  let assemblyFormat = [{
    $input custom<EnumKeyword>($approximate) attr-dict `:` type($input)
  }];
}

class VLoRA_BroadcastBinaryOp<string mnemonic, string what,
                              Type operandType = VLoRA_Tensor,
                              Type resultType = VLoRA_Tensor>
    : VLoRA_Op<mnemonic> {
  /// Element type of the operands in the example.
  string operandElement = !if(!eq(operandType, VLoRA_BoolTensor), "i1", "f32");
  let summary = "elementwise " # what # " with NumPy broadcasting";
  let description = [{
    Computes }] # what # [{ of the two operands after broadcasting them to a
    common shape (NumPy rules, trailing dimensions aligned). Both operands have
    the same element type.

    Example:
    ```mlir
    %z = vlora.}] # mnemonic # [{ %x, %y : (tensor<2x8x}] # operandElement #
    [{>, tensor<8x}] # operandElement # [{>) -> tensor<2x8x}] #
    !if(!eq(resultType, VLoRA_BoolTensor), "i1", operandElement) # [{>
    ```
  }];
  let arguments = (ins operandType:$lhs, operandType:$rhs);
  let results = (outs resultType:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` functional-type(operands, results)";
}

def VLoRA_AddOp : VLoRA_BroadcastBinaryOp<"add", "the sum">;
def VLoRA_SubOp : VLoRA_BroadcastBinaryOp<"sub", "the difference">;
def VLoRA_MulOp : VLoRA_BroadcastBinaryOp<"mul", "the product">;
def VLoRA_DivOp : VLoRA_BroadcastBinaryOp<"div", "the quotient (integers truncate towards zero)">;
def VLoRA_PowOp : VLoRA_BroadcastBinaryOp<"pow", "lhs raised to the power rhs">;
def VLoRA_MaxOp : VLoRA_BroadcastBinaryOp<"max", "the maximum">;
def VLoRA_MinOp : VLoRA_BroadcastBinaryOp<"min", "the minimum">;
def VLoRA_AndOp : VLoRA_BroadcastBinaryOp<"and", "the logical and",
                                          VLoRA_BoolTensor, VLoRA_BoolTensor>;
def VLoRA_OrOp : VLoRA_BroadcastBinaryOp<"or", "the logical or",
                                         VLoRA_BoolTensor, VLoRA_BoolTensor>;
def VLoRA_XorOp : VLoRA_BroadcastBinaryOp<"xor", "the logical exclusive or",
                                          VLoRA_BoolTensor, VLoRA_BoolTensor>;
def VLoRA_EqualOp : VLoRA_BroadcastBinaryOp<"equal", "lhs == rhs",
                                            VLoRA_Tensor, VLoRA_BoolTensor>;
def VLoRA_LessOp : VLoRA_BroadcastBinaryOp<"less", "lhs < rhs",
                                           VLoRA_Tensor, VLoRA_BoolTensor>;
def VLoRA_LessEqualOp : VLoRA_BroadcastBinaryOp<"less_equal", "lhs <= rhs",
                                                VLoRA_Tensor, VLoRA_BoolTensor>;
def VLoRA_GreaterOp : VLoRA_BroadcastBinaryOp<"greater", "lhs > rhs",
                                              VLoRA_Tensor, VLoRA_BoolTensor>;
def VLoRA_GreaterEqualOp : VLoRA_BroadcastBinaryOp<"greater_equal", "lhs >= rhs",
                                                   VLoRA_Tensor, VLoRA_BoolTensor>;

def VLoRA_WhereOp : VLoRA_Op<"where"> {
  let summary = "elementwise select with broadcasting";
  let description = [{
    `result[i] = condition[i] ? lhs[i] : rhs[i]` after broadcasting all three
    operands to a common shape. Also how image features are merged into the
    text embeddings at image-token positions.

    Example:
    ```mlir
    %r = vlora.where %c, %a, %b : (tensor<1x8x1xi1>, tensor<1x8x32xf32>, tensor<1x8x32xf32>) -> tensor<1x8x32xf32>
    ```
  }];
  let arguments = (ins VLoRA_BoolTensor:$condition, VLoRA_Tensor:$lhs,
                       VLoRA_Tensor:$rhs);
  let results = (outs VLoRA_Tensor:$result);
  let assemblyFormat = [{
    $condition `,` $lhs `,` $rhs attr-dict `:` functional-type(operands, results)
  }];
}

def VLoRA_CastOp : VLoRA_Op<"cast"> {
  let summary = "elementwise conversion to another element type";
  let description = [{
    Converts every element to `to`. Float to integer truncates towards zero;
    any non-zero value converts to `true` for `i1`.

    Example:
    ```mlir
    %y = vlora.cast %x to i64 : (tensor<4xf32>) -> tensor<4xi64>
    ```
  }];
  let arguments = (ins VLoRA_Tensor:$input, TypeAttr:$to);
  let results = (outs VLoRA_Tensor:$result);
  let assemblyFormat = "$input `to` $to attr-dict `:` functional-type(operands, results)";
}

//===----------------------------------------------------------------------===//
// Linear algebra
//===----------------------------------------------------------------------===//

def VLoRA_MatmulOp : VLoRA_Op<"matmul"> {
  let summary = "batched matrix product with broadcasting and transpose flags";
  let description = [{
    Multiplies the last two dimensions of `lhs` and `rhs` (each optionally
    transposed first); leading dimensions broadcast as in NumPy. Both operands
    have rank >= 2 and the same element type, or one is f32 and the other a
    bf16 weight (the result is then f32). With `f32_result` each operand is
    bf16 or f32 and the result is f32: bf16 operands multiplied with fp32
    accumulation, as `--vlora-mixed-precision{compute=bf16}` writes them. A
    `matmul` whose `rhs` is a frozen `vlora.param` is what LoRA targets.

    Example:
    ```mlir
    %y = vlora.matmul %x, %w transpose_b : (tensor<2x16x32xf32>, tensor<64x32xf32>) -> tensor<2x16x64xf32>
    ```
  }];
  let arguments = (ins VLoRA_Tensor:$lhs, VLoRA_Tensor:$rhs,
                       UnitAttr:$transpose_a, UnitAttr:$transpose_b,
                       UnitAttr:$f32_result);
  let results = (outs VLoRA_Tensor:$result);
  let assemblyFormat = [{
    $lhs `,` $rhs (`transpose_a` $transpose_a^)? (`transpose_b` $transpose_b^)?
    (`f32_result` $f32_result^)? attr-dict `:` functional-type(operands, results)
  }];
  // matmul(x, transpose(W) [1, 0]) with a 2-D W is matmul(x, W) with
  // transpose_b flipped: the exporters' MatMul(x, Transpose(W)) then reads
  // the weight where it lies instead of transposing it on every run.
  let hasCanonicalizer = 1;
}

def VLoRA_ConvOp : VLoRA_Op<"conv"> {
  let summary = "N-d convolution (patch embeddings)";
  let description = [{
    Cross-correlation of `input` `[N, C, D1..Dk]` with `weight`
    `[M, C/group, K1..Kk]`, plus an optional `bias` `[M]`. `strides`,
    `dilations` have k entries; `pads` has 2k (all begins, then all ends).
    A convolution with stride == kernel and no padding is a patch embedding.

    Example:
    ```mlir
    %y = vlora.conv %x, %w, %b strides [14, 14] pads [0, 0, 0, 0] dilations [1, 1] group 1
           : (tensor<1x3x28x28xf32>, tensor<32x3x14x14xf32>, tensor<32xf32>) -> tensor<1x32x2x2xf32>
    ```
  }];
  let arguments = (ins VLoRA_FloatTensor:$input, VLoRA_FloatTensor:$weight,
                       Optional<VLoRA_FloatTensor>:$bias,
                       DenseI64ArrayAttr:$strides, DenseI64ArrayAttr:$pads,
                       DenseI64ArrayAttr:$dilations, I64Attr:$group);
  let results = (outs VLoRA_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight (`,` $bias^)? `strides` $strides `pads` $pads
    `dilations` $dilations `group` $group attr-dict `:` functional-type(operands, results)
  }];
  // A patch embedding (stride == kernel, no padding, dilation 1, group 1,
  // spatial sizes divisible by the kernel) canonicalises to
  // reshape + transpose + matmul, so LoRA can target it like a linear layer.
  let hasCanonicalizer = 1;
}

//===----------------------------------------------------------------------===//
// Normalisation and reductions
//===----------------------------------------------------------------------===//

class VLoRA_AxisOp<string mnemonic, string what> : VLoRA_SameTypeOp<mnemonic> {
  let hasVerifier = 1;
  let summary = what # " along one axis";
  let description = [{
    Computes }] # what # [{ along `axis` (normalised to `[0, rank)`).

    Example:
    ```mlir
    %y = vlora.}] # mnemonic # [{ %x axis 1 : tensor<4x16xf32>
    ```
  }];
  let arguments = (ins VLoRA_FloatTensor:$input, I64Attr:$axis);
  let results = (outs VLoRA_FloatTensor:$result);
  let assemblyFormat = "$input `axis` $axis attr-dict `:` type($input)";
}

def VLoRA_SoftmaxOp : VLoRA_AxisOp<"softmax", "the softmax">;
def VLoRA_LogSoftmaxOp : VLoRA_AxisOp<"log_softmax", "the log-softmax">;

def VLoRA_CumsumOp : VLoRA_SameTypeOp<"cumsum"> {
  let hasVerifier = 1;
  let summary = "cumulative sum along one axis";
  let description = [{
    Running sum along `axis`; `exclusive` leaves out the current element and
    `reverse` sums from the end.

    Example:
    ```mlir
    %y = vlora.cumsum %x axis 1 : tensor<2x8xi64>
    ```
  }];
  let arguments = (ins VLoRA_Tensor:$input, I64Attr:$axis, UnitAttr:$exclusive,
                       UnitAttr:$reverse);
  let results = (outs VLoRA_Tensor:$result);
  let assemblyFormat = [{
    $input `axis` $axis (`exclusive` $exclusive^)? (`reverse` $reverse^)?
    attr-dict `:` type($input)
  }];
}

def VLoRA_LayerNormOp : VLoRA_Op<"layer_norm"> {
  let summary = "layer normalisation over the trailing dimensions from `axis`";
  let description = [{
    Normalises `input` over dimensions `[axis, rank)` to zero mean and unit
    variance (biased variance, `epsilon` added), then multiplies by `scale`
    and adds the optional `bias`; both have the shape of those dimensions.

    Example:
    ```mlir
    %y = vlora.layer_norm %x, %g, %b axis 2 epsilon 1.0e-05 : (tensor<1x8x32xf32>, tensor<32xf32>, tensor<32xf32>) -> tensor<1x8x32xf32>
    ```
  }];
  let arguments = (ins VLoRA_FloatTensor:$input, VLoRA_FloatTensor:$scale,
                       Optional<VLoRA_FloatTensor>:$bias, I64Attr:$axis,
                       F64Attr:$epsilon);
  let results = (outs VLoRA_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $scale (`,` $bias^)? `axis` $axis `epsilon` $epsilon attr-dict
    `:` functional-type(operands, results)
  }];
}

def VLoRA_RmsNormOp : VLoRA_Op<"rms_norm"> {
  let summary = "RMS normalisation over the trailing dimensions from `axis`";
  let description = [{
    `input / sqrt(mean(input^2 over [axis, rank)) + epsilon) * scale`, as in
    Llama's `LlamaRMSNorm`.

    Example:
    ```mlir
    %y = vlora.rms_norm %x, %g axis 2 epsilon 1.0e-06 : (tensor<1x8x32xf32>, tensor<32xf32>) -> tensor<1x8x32xf32>
    ```
  }];
  let arguments = (ins VLoRA_FloatTensor:$input, VLoRA_FloatTensor:$scale,
                       I64Attr:$axis, F64Attr:$epsilon);
  let results = (outs VLoRA_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $scale `axis` $axis `epsilon` $epsilon attr-dict
    `:` functional-type(operands, results)
  }];
}

class VLoRA_ReduceOp<string mnemonic, string what> : VLoRA_Op<mnemonic> {
  let summary = "the " # what # " over a set of axes";
  let description = [{
    Reduces `input` by }] # what # [{ over `axes` (each in `[0, rank)`, no
    repeats); `keepdims` keeps the reduced dimensions with size 1.

    Example:
    ```mlir
    %y = vlora.}] # mnemonic # [{ %x axes [1] keepdims : (tensor<4x16xf32>) -> tensor<4x1xf32>
    ```
  }];
  let arguments = (ins VLoRA_Tensor:$input, DenseI64ArrayAttr:$axes,
                       UnitAttr:$keepdims);
  let results = (outs VLoRA_Tensor:$result);
  let assemblyFormat = [{
    $input `axes` $axes (`keepdims` $keepdims^)? attr-dict `:` functional-type(operands, results)
  }];
}

def VLoRA_ReduceSumOp : VLoRA_ReduceOp<"reduce_sum", "sum">;
def VLoRA_ReduceMeanOp : VLoRA_ReduceOp<"reduce_mean", "mean">;
def VLoRA_ReduceMaxOp : VLoRA_ReduceOp<"reduce_max", "maximum">;
def VLoRA_ReduceMinOp : VLoRA_ReduceOp<"reduce_min", "minimum">;
def VLoRA_ReduceProdOp : VLoRA_ReduceOp<"reduce_prod", "product">;

def VLoRA_ArgMaxOp : VLoRA_Op<"argmax"> {
  let summary = "index of the maximum along one axis";
  let description = [{
    The `i64` index of the first (or, with `select_last`, last) maximum along
    `axis`; `keepdims` keeps that axis with size 1.

    Example:
    ```mlir
    %i = vlora.argmax %x axis 1 keepdims : (tensor<4x16xf32>) -> tensor<4x1xi64>
    ```
  }];
  let arguments = (ins VLoRA_Tensor:$input, I64Attr:$axis, UnitAttr:$keepdims,
                       UnitAttr:$select_last);
  let results = (outs RankedTensorOf<[I64]>:$result);
  let assemblyFormat = [{
    $input `axis` $axis (`keepdims` $keepdims^)? (`select_last` $select_last^)?
    attr-dict `:` functional-type(operands, results)
  }];
}

//===----------------------------------------------------------------------===//
// Data movement
//===----------------------------------------------------------------------===//

def VLoRA_ReshapeOp : VLoRA_Op<"reshape"> {
  let summary = "the same elements under a new static shape";
  let description = [{
    Row-major reinterpretation of `input` with shape `shape` (same number of
    elements).

    Example:
    ```mlir
    %y = vlora.reshape %x [2, 16] : (tensor<32xf32>) -> tensor<2x16xf32>
    ```
  }];
  let arguments = (ins VLoRA_Tensor:$input, DenseI64ArrayAttr:$shape);
  let results = (outs VLoRA_Tensor:$result);
  let assemblyFormat = "$input $shape attr-dict `:` functional-type(operands, results)";
  let hasFolder = 1;
}

def VLoRA_TransposeOp : VLoRA_Op<"transpose"> {
  let summary = "permutes dimensions";
  let description = [{
    `result.shape[i] = input.shape[perm[i]]`; `perm` is a permutation of
    `[0, rank)`.

    Example:
    ```mlir
    %y = vlora.transpose %x [0, 2, 1, 3] : (tensor<1x8x4x16xf32>) -> tensor<1x4x8x16xf32>
    ```
  }];
  let arguments = (ins VLoRA_Tensor:$input, DenseI64ArrayAttr:$perm);
  let results = (outs VLoRA_Tensor:$result);
  let assemblyFormat = "$input $perm attr-dict `:` functional-type(operands, results)";
  let hasFolder = 1;
}

def VLoRA_SliceOp : VLoRA_Op<"slice"> {
  let summary = "strided slice with static bounds on every dimension";
  let description = [{
    Takes `input[starts[d] : limits[d] : strides[d]]` on every dimension d.
    Bounds are normalised (no negative indices except -1 as the exclusive
    limit of a negative stride); strides are non-zero.

    Example:
    ```mlir
    %y = vlora.slice %x starts [0, 4] limits [2, 8] strides [1, 1] : (tensor<2x16xf32>) -> tensor<2x4xf32>
    ```
  }];
  let arguments = (ins VLoRA_Tensor:$input, DenseI64ArrayAttr:$starts,
                       DenseI64ArrayAttr:$limits, DenseI64ArrayAttr:$strides);
  let results = (outs VLoRA_Tensor:$result);
  let assemblyFormat = [{
    $input `starts` $starts `limits` $limits `strides` $strides attr-dict
    `:` functional-type(operands, results)
  }];
}

def VLoRA_ConcatOp : VLoRA_Op<"concat"> {
  let summary = "joins tensors along one axis";
  let description = [{
    All operands have the same rank and element type and agree on every
    dimension except `axis`.

    Example:
    ```mlir
    %y = vlora.concat %a, %b axis 1 : (tensor<1x4x32xf32>, tensor<1x12x32xf32>) -> tensor<1x16x32xf32>
    ```
  }];
  let arguments = (ins Variadic<VLoRA_Tensor>:$inputs, I64Attr:$axis);
  let results = (outs VLoRA_Tensor:$result);
  let assemblyFormat = "$inputs `axis` $axis attr-dict `:` functional-type(operands, results)";
}

def VLoRA_SplitOp : VLoRA_Op<"split"> {
  let summary = "cuts a tensor into pieces along one axis";
  let description = [{
    Result i has size `sizes[i]` along `axis`; the sizes add up to the input's
    dimension. Fused qkv projections are split with it.

    Example:
    ```mlir
    %q, %k, %v = vlora.split %x axis 2 sizes [32, 32, 32] : (tensor<1x8x96xf32>) -> (tensor<1x8x32xf32>, tensor<1x8x32xf32>, tensor<1x8x32xf32>)
    ```
  }];
  let arguments = (ins VLoRA_Tensor:$input, I64Attr:$axis,
                       DenseI64ArrayAttr:$sizes);
  let results = (outs Variadic<VLoRA_Tensor>:$results);
  let assemblyFormat = [{
    $input `axis` $axis `sizes` $sizes attr-dict `:` functional-type(operands, results)
  }];
}

def VLoRA_FusedElementwiseOp : VLoRA_Op<"fused_elementwise"> {
  let summary = "a chain of elementwise ops computed in one pass";
  let description = [{
    Made by `--vlora-fuse-elementwise` (which runs last, after the training
    step is built): the results of a group of f32 elementwise ops (and their
    casts to and from bf16) that share one output shape, computed in one
    pass over that shape. Each input is read once, broadcast (NumPy rules)
    to the shape; the intermediates never reach memory.

    `program` is a flat list of instructions of three integers
    `(opcode, a, b)`. Registers `0 .. n-1` are the `n` inputs, instruction
    `k` writes register `n + k`; `a` and `b` are earlier registers, `b` is
    `-1` for a one-operand opcode. `outputs` lists the register of each
    result. Opcodes (`vlora/kernels/Fused.h`, part of the plan format):
    1 neg, 2 abs, 3 exp, 4 log, 5 sqrt, 6 rsqrt, 7 reciprocal, 8 tanh,
    9 erf, 10 sigmoid, 11 silu, 12 relu, 13 sin, 14 cos, 15 floor, 16 ceil,
    17 gelu, 18 gelu (tanh), 19 square (`pow(x, 2)`); 32 add, 33 sub,
    34 mul, 35 div, 36 max, 37 min, 38 pow; 48 round to bf16 (`cast` to bf16),
    49 widen bf16 (`cast` to f32). Opcode 48 makes a bf16 register, 49 reads
    one; every other opcode reads and makes f32 registers. Inputs are f32 or
    bf16; a result has its register's element type. Each opcode computes
    bitwise what the op of the same name computes, so the results are those
    of the ops it replaces. At most 16 inputs, 64 instructions, 8 results.

    Example (SiLU(gate) · up, in f32 and rounded to bf16):
    ```mlir
    %y, %yb = vlora.fused_elementwise (%gate, %up) program [10, 0, -1, 34, 0, 2, 34, 3, 1, 48, 4, -1] outputs [4, 5] : (tensor<2x8xf32>, tensor<2x8xf32>) -> (tensor<2x8xf32>, tensor<2x8xbf16>)
    ```
  }];
  let arguments = (ins Variadic<VLoRA_Tensor>:$inputs,
                       DenseI64ArrayAttr:$program, DenseI64ArrayAttr:$outputs);
  let results = (outs Variadic<VLoRA_Tensor>:$results);
  let assemblyFormat = [{
    `(` $inputs `)` `program` $program `outputs` $outputs attr-dict `:`
    functional-type(operands, results)
  }];
}

def VLoRA_GatherOp : VLoRA_Op<"gather"> {
  let summary = "takes slices of `data` at `indices` along one axis";
  let description = [{
    ONNX `Gather` semantics: the result shape is
    `data.shape[:axis] + indices.shape + data.shape[axis+1:]`. Negative
    indices count from the end. Embedding lookups are gathers on axis 0.

    Example:
    ```mlir
    %e = vlora.gather %table, %ids axis 0 : (tensor<256x32xf32>, tensor<1x16xi64>) -> tensor<1x16x32xf32>
    ```
  }];
  let arguments = (ins VLoRA_Tensor:$data, VLoRA_IndexTensor:$indices,
                       I64Attr:$axis);
  let results = (outs VLoRA_Tensor:$result);
  let assemblyFormat = [{
    $data `,` $indices `axis` $axis attr-dict `:` functional-type(operands, results)
  }];
}

def VLoRA_GatherElementsOp : VLoRA_Op<"gather_elements"> {
  let summary = "takes elements of `data` at per-element `indices` along one axis";
  let description = [{
    ONNX `GatherElements`: `result[i][j]... = data[..indices[i][j]..]` with the
    index replacing coordinate `axis`; the result has the shape of `indices`.

    Example:
    ```mlir
    %y = vlora.gather_elements %x, %i axis 1 : (tensor<2x8xf32>, tensor<2x3xi64>) -> tensor<2x3xf32>
    ```
  }];
  let arguments = (ins VLoRA_Tensor:$data, VLoRA_IndexTensor:$indices,
                       I64Attr:$axis);
  let results = (outs VLoRA_Tensor:$result);
  let assemblyFormat = [{
    $data `,` $indices `axis` $axis attr-dict `:` functional-type(operands, results)
  }];
}

def VLoRA_ScatterNDOp : VLoRA_Op<"scatter_nd"> {
  let summary = "writes `updates` into a copy of `data` at index tuples";
  let description = [{
    ONNX `ScatterND` (reduction `none`): `indices` has shape `[..., k]`; each
    index tuple addresses a slice of `data`'s first k dimensions, replaced by
    the matching slice of `updates`. Used by exporters to merge image features
    into the text embeddings.

    Example:
    ```mlir
    %y = vlora.scatter_nd %data, %idx, %upd : (tensor<16x32xf32>, tensor<4x1xi64>, tensor<4x32xf32>) -> tensor<16x32xf32>
    ```
  }];
  let arguments = (ins VLoRA_Tensor:$data, VLoRA_IndexTensor:$indices,
                       VLoRA_Tensor:$updates);
  let results = (outs VLoRA_Tensor:$result);
  let assemblyFormat = [{
    $data `,` $indices `,` $updates attr-dict `:` functional-type(operands, results)
  }];
}

def VLoRA_GatherNDOp : VLoRA_Op<"gather_nd"> {
  let summary = "takes slices of `data` addressed by index tuples";
  let description = [{
    ONNX `GatherND` with `batch_dims = 0`: `indices` has shape `[..., k]`;
    each index tuple addresses a slice of `data`'s first k dimensions. The
    result shape is `indices.shape[:-1] + data.shape[k:]`.

    Example:
    ```mlir
    %y = vlora.gather_nd %data, %idx : (tensor<4x8x32xf32>, tensor<2x2xi64>) -> tensor<2x32xf32>
    ```
  }];
  let arguments = (ins VLoRA_Tensor:$data, VLoRA_IndexTensor:$indices);
  let results = (outs VLoRA_Tensor:$result);
  let assemblyFormat = [{
    $data `,` $indices attr-dict `:` functional-type(operands, results)
  }];
}

def VLoRA_MaskedScatterOp : VLoRA_Op<"masked_scatter"> {
  let summary = "fills the masked positions of `data` from `source`, in order";
  let description = [{
    PyTorch's `Tensor.masked_scatter`: walking `data` in row-major order, the
    i-th position where `mask` is true takes the i-th element of `source`
    (read in row-major order); other positions keep `data`'s value. `mask`
    has `data`'s shape; `source` must hold at least as many elements as
    `mask` has true values (checked at run time). This is how VLMs merge
    image features into the text embeddings at the image-token positions;
    the importer recognises it in the exporters' NonZero/ScatterND form.

    Example:
    ```mlir
    %m = vlora.masked_scatter %embeds, %mask, %feats : (tensor<1x16x64xf32>, tensor<1x16x64xi1>, tensor<256xf32>) -> tensor<1x16x64xf32>
    ```
  }];
  let arguments = (ins VLoRA_Tensor:$data, VLoRA_BoolTensor:$mask,
                       VLoRA_Tensor:$source);
  let results = (outs VLoRA_Tensor:$result);
  let assemblyFormat = [{
    $data `,` $mask `,` $source attr-dict `:` functional-type(operands, results)
  }];
}

def VLoRA_ExpandOp : VLoRA_Op<"expand"> {
  let summary = "broadcasts a tensor to a larger shape";
  let description = [{
    ONNX `Expand`: the result shape is the NumPy broadcast of the input shape
    and `shape`.

    Example:
    ```mlir
    %y = vlora.expand %x [4, 8] : (tensor<1x8xf32>) -> tensor<4x8xf32>
    ```
  }];
  let arguments = (ins VLoRA_Tensor:$input, DenseI64ArrayAttr:$shape);
  let results = (outs VLoRA_Tensor:$result);
  let assemblyFormat = "$input $shape attr-dict `:` functional-type(operands, results)";
}

def VLoRA_PadOp : VLoRA_Op<"pad"> {
  let summary = "pads with a constant value";
  let description = [{
    Adds `pads[d]` elements before and `pads[rank + d]` after dimension d
    (non-negative), filled with `value`.

    Example:
    ```mlir
    %y = vlora.pad %x [0, 1, 0, 1] value 0.0 : (tensor<2x3xf32>) -> tensor<2x5xf32>
    ```
  }];
  let arguments = (ins VLoRA_Tensor:$input, DenseI64ArrayAttr:$pads, F64Attr:$value);
  let results = (outs VLoRA_Tensor:$result);
  let assemblyFormat = [{
    $input $pads `value` $value attr-dict `:` functional-type(operands, results)
  }];
}

def VLoRA_TriluOp : VLoRA_SameTypeOp<"trilu"> {
  let hasVerifier = 1;
  let summary = "keeps the upper or lower triangle of the last two dimensions";
  let description = [{
    Zeroes the elements outside the triangle: `upper` keeps `j - i >= k`,
    otherwise `j - i <= k` is kept.

    Example:
    ```mlir
    %y = vlora.trilu %x upper k 1 : tensor<8x8xf32>
    ```
  }];
  let arguments = (ins VLoRA_Tensor:$input, UnitAttr:$upper, I64Attr:$k);
  let results = (outs VLoRA_Tensor:$result);
  let assemblyFormat = "$input (`upper` $upper^)? `k` $k attr-dict `:` type($input)";
}

//===----------------------------------------------------------------------===//
// LoRA
//===----------------------------------------------------------------------===//

def VLoRA_LoRAMatmulOp : VLoRA_Op<"lora_matmul"> {
  let summary = "a frozen linear layer plus its low-rank LoRA update";
  let description = [{
    Computes PEFT's LoRA forward for a linear layer with a frozen weight:

    ```
    y = matmul(x, w [transpose_b]) + scale * ((dropout(x) · Aᵀ) · Bᵀ)
    ```

    `x` is `[..., in]` (rank >= 2), `w` is the frozen weight exactly as the
    replaced `vlora.matmul` used it (`[in, out]`, or `[out, in]` with
    `transpose_b`), `a` is `lora_A` `[r, in]` and `b` is `lora_B` `[out, r]`
    (PEFT's layout: `nn.Linear(in, r)` and `nn.Linear(r, out)` weights).
    The result is `[..., out]` in `x`'s element type. `scale` is
    `lora_alpha / r` (or `lora_alpha / sqrt(r)` with rsLoRA); `dropout` is the
    probability of PEFT's `lora_dropout`, applied to the input of the
    low-rank path only, in training (in `[0, 1)`).

    `x` and `w` have one element type, or `x` is f32 and `w` a bf16 weight
    (the result is then f32); `a` and `b` have one float element type, which
    may differ from `x`'s (fp32 adapters on a bf16 model): as in PEFT, the
    low-rank path converts `x` to the adapters' type and its result back to
    `x`'s type before the addition. With `f32_result` (bf16 activations of
    `--vlora-mixed-precision{compute=bf16}`), `x` and `w` are each bf16 or
    f32, the adapters f32, and the result f32: both paths read the bf16
    values exactly and accumulate in fp32.

    Dropout is drawn only in training, when the op has the optional `rng`
    operand (`tensor<2xi64>`: a seed and a step counter) and its `stream`
    attribute (the op's index among the adapted matmuls): element `i` of `x`
    (row-major) is kept when
    `philox::uniform(philox::streamSeed(seed, counter, stream), i) >= dropout`
    and kept values are scaled by `1 / (1 - dropout)`, so every backend and
    the backward op draw the same mask. Without `rng` (inference) there is
    no dropout.

    Example:
    ```mlir
    %y = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.05 transpose_b
           : (tensor<2x16x32xf32>, tensor<64x32xf32>, tensor<8x32xf32>, tensor<64x8xf32>) -> tensor<2x16x64xf32>
    %t = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.05 transpose_b rng %rng stream 3
           : (tensor<2x16x32xf32>, tensor<64x32xf32>, tensor<8x32xf32>, tensor<64x8xf32>, tensor<2xi64>) -> tensor<2x16x64xf32>
    ```
  }];
  let arguments = (ins VLoRA_FloatTensor:$x, VLoRA_FloatTensor:$w,
                       VLoRA_FloatTensor:$a, VLoRA_FloatTensor:$b,
                       Optional<RankedTensorOf<[I64]>>:$rng,
                       F64Attr:$scale, F64Attr:$dropout, UnitAttr:$transpose_b,
                       OptionalAttr<I64Attr>:$stream, UnitAttr:$f32_result);
  let results = (outs VLoRA_FloatTensor:$result);
  let hasVerifier = 1;
  let assemblyFormat = [{
    $x `,` $w `,` $a `,` $b `scale` $scale `dropout` $dropout
    (`transpose_b` $transpose_b^)? (`rng` $rng^ `stream` $stream)?
    (`f32_result` $f32_result^)? attr-dict `:` functional-type(operands, results)
  }];
  let extraClassDeclaration = [{
    /// The LoRA rank r (rows of `a`).
    int64_t getRank() { return getA().getType().getDimSize(0); }
  }];
}

//===----------------------------------------------------------------------===//
// Training: loss, gradient ops, optimizer
//===----------------------------------------------------------------------===//

def VLoRA_CrossEntropyOp : VLoRA_Op<"cross_entropy"> {
  let summary = "causal-LM cross-entropy (shift by one, ignore_index, mean)";
  let description = [{
    Hugging Face transformers' causal-LM loss: the logits at position `s`
    predict the label at position `s + 1`, so with `logits` `[B, S, V]` and
    `labels` `[B, S]` (`i64`) the loss is

    ```
    sum over b, s < S-1 with labels[b, s+1] != ignore_index of
        logsumexp(logits[b, s, :]) - logits[b, s, labels[b, s+1]]
    divided by the number of such (b, s)
    ```

    computed in f32 whatever the logits' element type. With no valid label
    the result is NaN, as in PyTorch (the runtime rejects such batches).

    Example:
    ```mlir
    %loss = vlora.cross_entropy %logits, %labels ignore_index -100 : (tensor<2x8x64xf32>, tensor<2x8xi64>) -> tensor<f32>
    ```
  }];
  let arguments = (ins VLoRA_FloatTensor:$logits, RankedTensorOf<[I64]>:$labels,
                       I64Attr:$ignore_index);
  let results = (outs RankedTensorOf<[F32]>:$loss);
  let assemblyFormat = [{
    $logits `,` $labels `ignore_index` $ignore_index attr-dict
    `:` functional-type(operands, results)
  }];
}

def VLoRA_CrossEntropyGradOp : VLoRA_Op<"cross_entropy_grad"> {
  let summary = "gradient of `vlora.cross_entropy` with respect to the logits";
  let description = [{
    With `n` the number of valid (shifted) labels:
    `result[b, s, :] = dloss / n * (softmax(logits[b, s, :]) - onehot(labels[b, s+1]))`
    for the positions `s < S-1` whose shifted label is not `ignore_index`,
    and 0 at every other position (including the last one). The result has
    the logits' type. A kernel may write it over the logits (the fused
    cross-entropy of the CUDA library does).

    Example:
    ```mlir
    %dlogits = vlora.cross_entropy_grad %dloss, %logits, %labels ignore_index -100 : (tensor<f32>, tensor<2x8x64xf32>, tensor<2x8xi64>) -> tensor<2x8x64xf32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[F32]>:$dloss, VLoRA_FloatTensor:$logits,
                       RankedTensorOf<[I64]>:$labels, I64Attr:$ignore_index);
  let results = (outs VLoRA_FloatTensor:$result);
  let assemblyFormat = [{
    $dloss `,` $logits `,` $labels `ignore_index` $ignore_index attr-dict
    `:` functional-type(operands, results)
  }];
}

def VLoRA_LinearCrossEntropyOp : VLoRA_Op<"linear_cross_entropy"> {
  let summary = "the lm_head matmul, the causal-LM loss and its input gradient, fused";
  let description = [{
    With `logits = matmul(input, weight [transpose_b])` (`input` `[B, S, D]`,
    `weight` `[D, V]`, or `[V, D]` with `transpose_b`), computes what
    `vlora.cross_entropy(logits, labels)` and
    `matmul(vlora.cross_entropy_grad(dloss, logits, labels), weight)ᵀ`
    compute, without the logits: only the positions whose shifted label is
    predicted (not `ignore_index`) are multiplied out, in chunks of rows, so
    neither the `[B, S, V]` logits nor their gradient exist in memory and
    unlabelled positions (image tokens, prompts, padding) cost nothing.
    Results: the loss (f32, NaN with no predicted label) and the gradient
    of `input` (zero at unlabelled positions; all zero with no predicted
    label). `--vlora-build-training-step` uses it when the logits are a
    matmul by a weight that gets no gradient (the frozen lm_head). `input`
    and `weight` share an element type, or `input` is f32 and `weight` a
    bf16 weight; with `f32_result` each is bf16 or f32 and the input
    gradient is f32 (bf16 activations, fp32 accumulation); with a bf16
    `input` the product giving its gradient reads the logits' gradient
    rounded to bf16, as a bf16 GEMM does.

    Example:
    ```mlir
    %loss, %dh = vlora.linear_cross_entropy %h, %w, %labels, %dloss ignore_index -100
           : (tensor<2x8x32xf32>, tensor<32x64xf32>, tensor<2x8xi64>, tensor<f32>) -> (tensor<f32>, tensor<2x8x32xf32>)
    ```
  }];
  let arguments = (ins VLoRA_FloatTensor:$input, VLoRA_FloatTensor:$weight,
                       RankedTensorOf<[I64]>:$labels, RankedTensorOf<[F32]>:$dloss,
                       I64Attr:$ignore_index, UnitAttr:$transpose_b,
                       UnitAttr:$f32_result);
  let results = (outs RankedTensorOf<[F32]>:$loss, VLoRA_FloatTensor:$grad_input);
  let assemblyFormat = [{
    $input `,` $weight `,` $labels `,` $dloss `ignore_index` $ignore_index
    (`transpose_b` $transpose_b^)? (`f32_result` $f32_result^)? attr-dict
    `:` functional-type(operands, results)
  }];
}

def VLoRA_AttentionOp : VLoRA_Op<"attention"> {
  let summary = "scaled dot-product attention, fused";
  let description = [{
    Computes, over the last two dimensions,

    ```
    out = softmax((q · kᵀ) * scale + mask, axis = -1) · v
    ```

    with `q` `[..., S, D]`, `k` `[..., D, T]` (the transposed keys, as the
    exporters' `MatMul(q, Transpose(k))` reads them; `[..., T, D]` with
    `transpose_k`), `v` `[..., T, Dv]` and the result `[..., S, Dv]`. `q`, `k`
    and `v` have the same leading dimensions and element type. `mask`
    (optional) is added to the scaled scores and broadcasts to
    `[..., S, T]` (causal and padding masks: 0 or a large negative value).
    `--vlora-fuse-attention` writes it for the exporters' decomposed
    attention; the `[..., S, T]` scores and probabilities are never stored
    as a whole (a backend keeps one head's at a time), and
    `vlora.attention_grad` recomputes them.

    With `f32_result` (the bf16 activations of
    `--vlora-mixed-precision{compute=bf16}`), `q`, `k` and `v` are each bf16
    or f32, `mask` and the result f32: the scores are a bf16 product with
    fp32 accumulation, scaling, masking and softmax run in f32, and the
    probabilities are rounded to bf16 for the product with `v` (what
    autocast does).

    Example:
    ```mlir
    %o = vlora.attention %q, %k, %v mask %m scale 0.25 : (tensor<2x4x8x16xf32>, tensor<2x4x16x8xf32>, tensor<2x4x8x16xf32>, tensor<2x1x8x8xf32>) -> tensor<2x4x8x16xf32>
    ```
  }];
  let arguments = (ins VLoRA_FloatTensor:$q, VLoRA_FloatTensor:$k,
                       VLoRA_FloatTensor:$v,
                       Optional<VLoRA_FloatTensor>:$mask, F64Attr:$scale,
                       UnitAttr:$transpose_k, UnitAttr:$f32_result);
  let results = (outs VLoRA_FloatTensor:$result);
  let assemblyFormat = [{
    $q `,` $k `,` $v (`mask` $mask^)? `scale` $scale
    (`transpose_k` $transpose_k^)? (`f32_result` $f32_result^)? attr-dict
    `:` functional-type(operands, results)
  }];
}

def VLoRA_AttentionGradOp : VLoRA_Op<"attention_grad"> {
  let summary = "gradients of `vlora.attention` for q, k and v";
  let description = [{
    The reverse of `vlora.attention` with the same `q`, `k`, `v`, `mask`,
    `scale` and `transpose_k`, given `grad` (the gradient of its result).
    With `P` the forward's probabilities (recomputed, one head at a time):

    ```
    dv = Pᵀ · grad
    dS = P ⊙ (grad · vᵀ − rowsum(P ⊙ (grad · vᵀ))) * scale
    dq = dS · k(ᵀ)      dk = qᵀ · dS  (dk in k's layout)
    ```

    The results have the types of `q`, `k` and `v`; the mask gets no
    gradient. With `f32_result` (the forward's) they are f32, `grad` is f32,
    and every product takes bf16 operands with fp32 accumulation: `P`,
    `grad` and `dS` (after the scale) are rounded to bf16 for them.

    Example:
    ```mlir
    %dq, %dk, %dv = vlora.attention_grad %g, %q, %k, %v mask %m scale 0.25 : (tensor<2x4x8x16xf32>, tensor<2x4x8x16xf32>, tensor<2x4x16x8xf32>, tensor<2x4x8x16xf32>, tensor<2x1x8x8xf32>) -> (tensor<2x4x8x16xf32>, tensor<2x4x16x8xf32>, tensor<2x4x8x16xf32>)
    ```
  }];
  let arguments = (ins VLoRA_FloatTensor:$grad, VLoRA_FloatTensor:$q,
                       VLoRA_FloatTensor:$k, VLoRA_FloatTensor:$v,
                       Optional<VLoRA_FloatTensor>:$mask, F64Attr:$scale,
                       UnitAttr:$transpose_k, UnitAttr:$f32_result);
  let results = (outs VLoRA_FloatTensor:$grad_q, VLoRA_FloatTensor:$grad_k,
                      VLoRA_FloatTensor:$grad_v);
  let assemblyFormat = [{
    $grad `,` $q `,` $k `,` $v (`mask` $mask^)? `scale` $scale
    (`transpose_k` $transpose_k^)? (`f32_result` $f32_result^)? attr-dict
    `:` functional-type(operands, results)
  }];
}

def VLoRA_SoftmaxGradOp : VLoRA_SameTypeOp<"softmax_grad"> {
  let hasVerifier = 1;
  let summary = "gradient of `vlora.softmax` from its output";
  let description = [{
    With `y = softmax(x)` along `axis` and `dy` the gradient of `y`:
    `dx = y * (dy - sum(dy * y, axis, keepdims))`. Reads only the softmax's
    output, so the input need not be kept for backward.

    Example:
    ```mlir
    %dx = vlora.softmax_grad %dy, %y axis 3 : tensor<1x2x8x8xf32>
    ```
  }];
  let arguments = (ins VLoRA_FloatTensor:$grad, VLoRA_FloatTensor:$output,
                       I64Attr:$axis);
  let results = (outs VLoRA_FloatTensor:$result);
  let assemblyFormat = "$grad `,` $output `axis` $axis attr-dict `:` type($result)";
}

def VLoRA_LayerNormGradOp : VLoRA_Op<"layer_norm_grad"> {
  let summary = "gradient of `vlora.layer_norm` with respect to its input";
  let description = [{
    With `xhat = (x - mean) * rstd` over the dimensions `[axis, rank)` of `x`
    (biased variance plus `epsilon`, as in the forward op) and
    `g = dy * scale`:
    `dx = rstd * (g - mean(g) - xhat * mean(g * xhat))`, the means taken over
    the same dimensions. The gradients of `scale` and `bias` (rarely needed
    for LoRA: both are frozen) are compositions of existing ops.

    Example:
    ```mlir
    %dx = vlora.layer_norm_grad %dy, %x, %g axis 2 epsilon 1.0e-05 : (tensor<1x8x32xf32>, tensor<1x8x32xf32>, tensor<32xf32>) -> tensor<1x8x32xf32>
    ```
  }];
  let arguments = (ins VLoRA_FloatTensor:$grad, VLoRA_FloatTensor:$input,
                       VLoRA_FloatTensor:$scale, I64Attr:$axis, F64Attr:$epsilon);
  let results = (outs VLoRA_FloatTensor:$result);
  let assemblyFormat = [{
    $grad `,` $input `,` $scale `axis` $axis `epsilon` $epsilon attr-dict
    `:` functional-type(operands, results)
  }];
}

def VLoRA_LoRAMatmulGradOp : VLoRA_Op<"lora_matmul_grad"> {
  let summary = "gradients of `vlora.lora_matmul` for the adapters (and input)";
  let description = [{
    The reverse of `vlora.lora_matmul` with the same `x`, `w`, `a`, `b`,
    `scale`, `dropout` and `transpose_b`, given `dy` (the gradient of its
    result). With `x'` = `x` after the forward's dropout mask (the same
    counter-based mask; identity when `dropout` is 0), flattened to
    `[N, in]`, and `dy` flattened to `[N, out]`:

    ```
    u  = x' · Aᵀ              [N, r]   (recomputed, or kept by the kernel)
    dB = scale · dyᵀ · u       [out, r]
    du = scale · dy · B        [N, r]
    dA = duᵀ · x'              [r, in]
    dx = dy · W(ᵀ) + mask(du · A)   (only with `input_grad`)
    ```

    `dx` is a result only when `input_grad` is set (the input depends on a
    trainable parameter); the frozen `w` never gets a gradient. `dA` and `dB`
    have the adapters' type, `dy` and `dx` the forward result's type. `rng`,
    `stream` and `f32_result` are the forward op's (the same dropout mask;
    with `f32_result` a bf16 `x` is read exactly and `dx` is f32). With a
    bf16 `x` the frozen product `dy · W(ᵀ)` reads `dy` rounded to bf16 (a
    bf16 GEMM with fp32 accumulation, as autocast's backward does); `dA`,
    `dB` and the low-rank part of `dx` read the exact `dy`.

    Example:
    ```mlir
    %da, %db, %dx = vlora.lora_matmul_grad %dy, %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b input_grad
           : (tensor<2x16x64xf32>, tensor<2x16x32xf32>, tensor<64x32xf32>, tensor<8x32xf32>, tensor<64x8xf32>) -> (tensor<8x32xf32>, tensor<64x8xf32>, tensor<2x16x32xf32>)
    ```
  }];
  let arguments = (ins VLoRA_FloatTensor:$grad, VLoRA_FloatTensor:$x,
                       VLoRA_FloatTensor:$w, VLoRA_FloatTensor:$a,
                       VLoRA_FloatTensor:$b, Optional<RankedTensorOf<[I64]>>:$rng,
                       F64Attr:$scale, F64Attr:$dropout,
                       UnitAttr:$transpose_b, UnitAttr:$input_grad,
                       OptionalAttr<I64Attr>:$stream, UnitAttr:$f32_result);
  let results = (outs VLoRA_FloatTensor:$grad_a, VLoRA_FloatTensor:$grad_b,
                      Optional<VLoRA_FloatTensor>:$grad_x);
  let hasVerifier = 1;
  let assemblyFormat = [{
    $grad `,` $x `,` $w `,` $a `,` $b `scale` $scale `dropout` $dropout
    (`transpose_b` $transpose_b^)? (`input_grad` $input_grad^)?
    (`rng` $rng^ `stream` $stream)? (`f32_result` $f32_result^)? attr-dict
    `:` functional-type(operands, results)
  }];
}

def VLoRA_GatherGradOp : VLoRA_Op<"gather_grad"> {
  let summary = "gradient of `vlora.gather` with respect to its data (a scatter-add)";
  let description = [{
    The reverse of `vlora.gather %data, %indices axis A` whose data has shape
    `shape`: a zero tensor of `shape` into which every slice of `grad` is
    added at its index along `axis` (repeated indices accumulate; negative
    indices count from the end, as in the gather). `grad` has the gather's
    result shape, `shape[:axis] + indices.shape + shape[axis+1:]`.

    Example:
    ```mlir
    %dt = vlora.gather_grad %dy, %ids axis 0 shape [256, 32] : (tensor<1x16x32xf32>, tensor<1x16xi64>) -> tensor<256x32xf32>
    ```
  }];
  let arguments = (ins VLoRA_FloatTensor:$grad, VLoRA_IndexTensor:$indices,
                       I64Attr:$axis, DenseI64ArrayAttr:$shape);
  let results = (outs VLoRA_FloatTensor:$result);
  let assemblyFormat = [{
    $grad `,` $indices `axis` $axis `shape` $shape attr-dict `:` functional-type(operands, results)
  }];
}

def VLoRA_MaskedSelectOp : VLoRA_Op<"masked_select"> {
  let summary = "gathers the masked elements in order (reverse of masked_scatter)";
  let description = [{
    Walking `input` in row-major order, the i-th position where `mask` is
    true gives element i of the result (row-major, shape `shape`); result
    elements past the number of true values are 0. This is the gradient of
    `vlora.masked_scatter` with respect to its `source`.

    Example:
    ```mlir
    %s = vlora.masked_select %dy, %mask shape [256] : (tensor<1x16x64xf32>, tensor<1x16x64xi1>) -> tensor<256xf32>
    ```
  }];
  let arguments = (ins VLoRA_Tensor:$input, VLoRA_BoolTensor:$mask,
                       DenseI64ArrayAttr:$shape);
  let results = (outs VLoRA_Tensor:$result);
  let assemblyFormat = [{
    $input `,` $mask `shape` $shape attr-dict `:` functional-type(operands, results)
  }];
}

def VLoRA_GlobalNormOp : VLoRA_Op<"global_norm"> {
  let summary = "the L2 norm of all elements of all operands";
  let description = [{
    `sqrt(sum over every operand and element of x^2)` in f32, the total norm
    of `torch.nn.utils.clip_grad_norm_`.

    Example:
    ```mlir
    %n = vlora.global_norm %ga, %gb : (tensor<8x32xf32>, tensor<64x8xf32>) -> tensor<f32>
    ```
  }];
  let arguments = (ins Variadic<VLoRA_FloatTensor>:$inputs);
  let results = (outs RankedTensorOf<[F32]>:$result);
  let assemblyFormat = "$inputs attr-dict `:` functional-type(operands, results)";
}

def VLoRA_AdamWUpdateOp : VLoRA_Op<"adamw_update"> {
  let summary = "one AdamW step for one parameter (torch.optim.AdamW semantics)";
  let description = [{
    With `g = grad * grad_scale` (the clipping coefficient; 1 without
    `grad_scale`), `t = step` (1 for the first step), and `lr` and
    `weight_decay` scalars (inputs, so the runtime's options set them):

    ```
    param  = param * (1 - lr * weight_decay)          (decoupled weight decay)
    m'     = beta1 * m + (1 - beta1) * g
    v'     = beta2 * v + (1 - beta2) * g^2
    param' = param - lr / (1 - beta1^t) * m' / (sqrt(v') / sqrt(1 - beta2^t) + eps)
    ```

    Results: the new parameter, `m'` (`exp_avg`) and `v'` (`exp_avg_sq`),
    each with the parameter's type; `grad`, `m` and `v` have that type too.
    A kernel may update the three in place (multi-tensor AdamW).

    Example:
    ```mlir
    %p1, %m1, %v1 = vlora.adamw_update %p, %g, %m, %v, %lr, %step, %wd grad_scale %c beta1 0.9 beta2 0.999 eps 1.0e-08
           : (tensor<8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>, tensor<f32>, tensor<i64>, tensor<f32>, tensor<f32>) -> (tensor<8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>)
    ```
  }];
  let arguments = (ins VLoRA_FloatTensor:$param, VLoRA_FloatTensor:$grad,
                       VLoRA_FloatTensor:$exp_avg, VLoRA_FloatTensor:$exp_avg_sq,
                       RankedTensorOf<[F32]>:$lr, RankedTensorOf<[I64]>:$step,
                       RankedTensorOf<[F32]>:$weight_decay,
                       Optional<RankedTensorOf<[F32]>>:$grad_scale,
                       F64Attr:$beta1, F64Attr:$beta2, F64Attr:$eps);
  let results = (outs VLoRA_FloatTensor:$new_param, VLoRA_FloatTensor:$new_exp_avg,
                      VLoRA_FloatTensor:$new_exp_avg_sq);
  let assemblyFormat = [{
    $param `,` $grad `,` $exp_avg `,` $exp_avg_sq `,` $lr `,` $step `,` $weight_decay
    (`grad_scale` $grad_scale^)? `beta1` $beta1 `beta2` $beta2 `eps` $eps
    attr-dict `:` functional-type(operands, results)
  }];
}

#endif // VLORA_OPS_TD
