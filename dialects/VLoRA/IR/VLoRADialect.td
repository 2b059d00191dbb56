//===- VLoRADialect.td - the vlora tensor-level dialect ------*- tablegen -*-===//
//
// The `vlora` dialect: value-semantics tensor ops at the granularity of
// kernels, on ranked tensors with static shapes, plus parameters whose bytes
// live outside the IR.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_DIALECT_TD
#define VLORA_DIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def VLoRA_Dialect : Dialect {
  let name = "vlora";
  let cppNamespace = "::vlora";
  let summary = "Tensor-level ops for LoRA fine-tuning of vision-language models";
  let description = [{
    The `vlora` dialect holds a VLM's forward (and later training) program as
    value-semantics ops on statically shaped ranked tensors. Dynamic ONNX
    dimensions are fixed at import; shape-only subgraphs are folded away.

    Weights are `vlora.param` ops that reference where their bytes live (an
    initializer inside the `.onnx` file or an external data file, by offset
    and length). Weight bytes never enter the IR.

    Four discardable attributes tag ops for LoRA targeting:
    `vlora.tower` (`#vlora<tower vision>` ...), `vlora.block`
    (`#vlora<block attention>` ...), `vlora.layer` (an `i64` index) and
    `vlora.module` (the Hugging Face module path as a string, e.g.
    `model.language_model.layers.3.self_attn.q_proj`). The dialect verifier
    checks their kinds wherever they appear.
  }];
  let usePropertiesForAttributes = 0;
  let useDefaultAttributePrinterParser = 1;
  let hasConstantMaterializer = 1;
  let hasOperationAttrVerify = 1;
  let hasRegionArgAttrVerify = 1;
  let hasRegionResultAttrVerify = 1;
  let extraClassDeclaration = [{
    /// Names of the discardable tag attributes.
    static constexpr ::llvm::StringLiteral kTowerAttrName = "vlora.tower";
    static constexpr ::llvm::StringLiteral kBlockAttrName = "vlora.block";
    static constexpr ::llvm::StringLiteral kLayerAttrName = "vlora.layer";
    static constexpr ::llvm::StringLiteral kModuleAttrName = "vlora.module";
    /// Name of the argument/result attribute that keeps the ONNX value name.
    static constexpr ::llvm::StringLiteral kNameAttrName = "vlora.name";
    /// Module attributes set by the importer: the source model's file name
    /// and its default-domain opset.
    static constexpr ::llvm::StringLiteral kSourceAttrName = "vlora.source";
    static constexpr ::llvm::StringLiteral kOpsetAttrName = "vlora.opset";
    /// Module attribute set by --vlora-inject-lora: the LoRA configuration
    /// (PEFT's LoraConfig fields) that the bundle's adapter_config.json is
    /// written from.
    static constexpr ::llvm::StringLiteral kLoRAConfigAttrName = "vlora.lora_config";

    void registerAttributes();
  }];
}

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def VLoRA_Tower : I32EnumAttr<"TowerKind", "which tower of a VLM an op belongs to", [
    I32EnumAttrCase<"vision", 0>, I32EnumAttrCase<"projector", 1>,
    I32EnumAttrCase<"language", 2>, I32EnumAttrCase<"other", 3>]> {
  let cppNamespace = "::vlora";
  let genSpecializedAttr = 0;
}
def VLoRA_TowerAttr : EnumAttr<VLoRA_Dialect, VLoRA_Tower, "tower"> {
  let description = [{
    The value of the `vlora.tower` tag, written `#vlora<tower vision>`
    (`vision`, `projector`, `language` or `other`).
  }];
  let assemblyFormat = "$value";
}

def VLoRA_Block : I32EnumAttr<"BlockKind", "which kind of block an op belongs to", [
    I32EnumAttrCase<"attention", 0>, I32EnumAttrCase<"mlp", 1>,
    I32EnumAttrCase<"other", 2>]> {
  let cppNamespace = "::vlora";
  let genSpecializedAttr = 0;
}
def VLoRA_BlockAttr : EnumAttr<VLoRA_Dialect, VLoRA_Block, "block"> {
  let description = [{
    The value of the `vlora.block` tag, written `#vlora<block attention>`
    (`attention`, `mlp` or `other`).
  }];
  let assemblyFormat = "$value";
}

def VLoRA_ParamRole : I32EnumAttr<"ParamRole", "what a parameter is for", [
    I32EnumAttrCase<"frozen", 0>, I32EnumAttrCase<"trainable", 1>,
    I32EnumAttrCase<"optimizer_state", 2>]> {
  let cppNamespace = "::vlora";
  let genSpecializedAttr = 0;
}
def VLoRA_ParamRoleAttr : EnumAttr<VLoRA_Dialect, VLoRA_ParamRole, "role"> {
  let description = [{
    The `role` of a `vlora.param`, written `#vlora<role frozen>` on its own
    and as the bare keyword (`frozen`, `trainable`, `optimizer_state`) in the
    op.
  }];
  let assemblyFormat = "$value";
}

def VLoRA_WeightSource : I32EnumAttr<"WeightSource",
    "where the bytes of a parameter live", [
    I32EnumAttrCase<"initializer", 0>, I32EnumAttrCase<"external", 1>,
    I32EnumAttrCase<"bundle", 2>]> {
  let cppNamespace = "::vlora";
  let genSpecializedAttr = 0;
}
def VLoRA_WeightSourceAttr : EnumAttr<VLoRA_Dialect, VLoRA_WeightSource, "source"> {
  let description = [{
    The `source` of a `vlora.param`, written `#vlora<source external>` on its
    own and as the bare keyword (`initializer`, `external`, `bundle`) in the
    op.
  }];
  let assemblyFormat = "$value";
}

def VLoRA_GeluApproximation : I32EnumAttr<"GeluApproximation",
    "how GELU is computed", [
    I32EnumAttrCase<"none", 0>, I32EnumAttrCase<"tanh", 1>]> {
  let cppNamespace = "::vlora";
  let genSpecializedAttr = 0;
}
def VLoRA_GeluApproximationAttr
    : EnumAttr<VLoRA_Dialect, VLoRA_GeluApproximation, "gelu_approximation"> {
  let description = [{
    The `approximate` mode of `vlora.gelu`, written
    `#vlora<gelu_approximation tanh>` on its own and as the bare keyword
    (`none`, `tanh`) in the op.
  }];
  let assemblyFormat = "$value";
}

#endif // VLORA_DIALECT_TD
