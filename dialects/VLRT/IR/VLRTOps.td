//===- VLRTOps.td - the vlrt runtime-level dialect -----------*- tablegen -*-===//
//
// `vlrt`: a straight-line program of kernel calls on buffers of one arena.
// It serialises 1:1 into the plan (runtime/plan/plan.proto).
//
//===----------------------------------------------------------------------===//

#ifndef VLRT_OPS_TD
#define VLRT_OPS_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/BuiltinAttributeInterfaces.td"
include "mlir/IR/BuiltinTypes.td"

def VLRT_Dialect : Dialect {
  let name = "vlrt";
  let cppNamespace = "::vlora::vlrt";
  let summary = "Runtime-level program: kernel calls on slices of one arena";
  let description = [{
    A `vlrt` program is a `func.func` without arguments or results whose body
    is a straight line of buffer definitions and kernel calls; the function
    carries `vlrt.arena_bytes`, the exact peak size of its arena. Buffers are
    statically shaped memrefs: slices of the arena (`vlrt.slice`,
    `vlrt.input`), weights in files (`vlrt.weight`) or small constants
    (`vlrt.constant`). `vlrt.kernel` invokes one kernel of the runtime with
    input and output buffers; outputs are always arena slices. The training
    loop lives in the runtime, so there is no control flow.
  }];
  let extraClassDeclaration = [{
    /// Function attribute: the arena's size in bytes.
    static constexpr ::llvm::StringLiteral kArenaBytesAttrName = "vlrt.arena_bytes";
    /// Alignment of every arena slice.
    static constexpr int64_t kAlignment = 64;
  }];
}

class VLRT_Op<string mnemonic, list<Trait> traits = []>
    : Op<VLRT_Dialect, mnemonic, traits>;

def VLRT_Buffer : MemRefOf<[AnyType]>;

def VLRT_SliceOp : VLRT_Op<"slice"> {
  let summary = "a buffer at a byte offset of the arena";
  let description = [{
    Example:
    ```mlir
    %b = vlrt.slice 128 : memref<2x16xf32>
    ```
  }];
  let arguments = (ins I64Attr:$offset);
  let results = (outs VLRT_Buffer:$result);
  let assemblyFormat = "$offset attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def VLRT_InputOp : VLRT_Op<"input"> {
  let summary = "an arena buffer the caller fills with a graph input";
  let description = [{
    Example:
    ```mlir
    %x = vlrt.input "pixel_values" 0 : memref<1x3x32x32xf32>
    ```
  }];
  let arguments = (ins StrAttr:$name, I64Attr:$offset);
  let results = (outs VLRT_Buffer:$result);
  let assemblyFormat = "$name $offset attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def VLRT_WeightOp : VLRT_Op<"weight"> {
  let summary = "a read-only buffer mapped from a weight file";
  let description = [{
    `root` is `model` (the source model's folder) or `bundle` (the compiled
    bundle's folder); `file` is relative to it.

    Example:
    ```mlir
    %w = vlrt.weight "model.layers.0.q_proj.weight" "model" "model.onnx" [offset 1024, length 4096] : memref<32x32xf32>
    ```
  }];
  let arguments = (ins StrAttr:$name, StrAttr:$root, StrAttr:$file,
                       I64Attr:$offset, I64Attr:$length);
  let results = (outs VLRT_Buffer:$result);
  let assemblyFormat = [{
    $name $root $file `[` `offset` $offset `,` `length` $length `]` attr-dict `:` type($result)
  }];
  let hasVerifier = 1;
}

def VLRT_ConstantOp : VLRT_Op<"constant"> {
  let summary = "a small constant buffer stored in the plan";
  let description = [{
    Example:
    ```mlir
    %c = vlrt.constant dense<[1.0, 2.0]> : tensor<2xf32> : memref<2xf32>
    ```
  }];
  let arguments = (ins ElementsAttr:$value);
  let results = (outs VLRT_Buffer:$result);
  let assemblyFormat = "$value attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def VLRT_KernelOp : VLRT_Op<"kernel", [AttrSizedOperandSegments]> {
  let summary = "one kernel invocation";
  let description = [{
    Calls the runtime kernel `name` (a vlora op name without the prefix) on
    `ins`, writing `outs` (arena slices). `params` holds the op's attributes
    under the same names.

    Example:
    ```mlir
    vlrt.kernel "softmax" ins(%a : memref<4x8xf32>) outs(%b : memref<4x8xf32>) params {axis = 1 : i64}
    ```
  }];
  let arguments = (ins StrAttr:$name, Variadic<VLRT_Buffer>:$ins,
                       Variadic<VLRT_Buffer>:$outs, DictionaryAttr:$params);
  let assemblyFormat = [{
    $name (`ins` `(` $ins^ `:` type($ins) `)`)? `outs` `(` $outs `:` type($outs) `)`
    `params` $params attr-dict
  }];
  let hasVerifier = 1;
}

def VLRT_OutputOp : VLRT_Op<"output"> {
  let summary = "binds a buffer to a graph output";
  let description = [{
    Example:
    ```mlir
    vlrt.output "logits" %l : memref<1x16x320xf32>
    ```
  }];
  let arguments = (ins StrAttr:$name, VLRT_Buffer:$value);
  let assemblyFormat = "$name $value attr-dict `:` type($value)";
}

#endif // VLRT_OPS_TD
