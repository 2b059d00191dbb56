//===- Passes.td - vlora transformation passes ---------------*- tablegen -*-===//
//
// Every vlora pass is declared here; the generated registration and base
// classes are used by passes/*.cpp and tools/vlora-opt.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_PASSES_TD
#define VLORA_PASSES_TD

include "mlir/Pass/PassBase.td"

def VLoRAClassifyTowers : Pass<"vlora-classify-towers", "mlir::ModuleOp"> {
  let summary = "Tag every frozen-weight matmul with tower, block, layer and HF module path";
  let description = [{
    Sets `vlora.tower` (vision | projector | language | other), `vlora.block`
    (attention | mlp | other), `vlora.layer` and `vlora.module` on every
    `vlora.matmul` one of whose operands is (a transpose/reshape/cast of) a
    frozen `vlora.param`, from two independent signals:

    * names: the weight's initializer name (dynamo exporter: the parameter's
      fully qualified name) or the op's ONNX node name (TorchScript exporter:
      `/model/vision_tower/.../q_proj/MatMul`) give the Hugging Face module
      path, and the path gives tower, block and layer;
    * structure: the vision tower is what is computed from `pixel_values`
      before it merges with the text embeddings, the projector is the bridge
      between the vision tower's last residual block and the merge, the
      language tower runs from the merge to the logits; residual branches that
      contain a softmax are attention blocks, branches with matmul ->
      activation -> matmul are MLP blocks; layers are counted along each
      tower's residual stream.

    Names win where both exist; every disagreement is a warning naming both
    answers. Without names (a stripped graph) the structure decides and the
    module path is synthesised (`vision.layers.0.attention.0`). The token
    embedding is a gather, never a matmul; `lm_head` is tagged `other`.
  }];
  let statistics = [
    Statistic<"numTagged", "tagged-matmuls", "Number of frozen-weight matmuls tagged">,
    Statistic<"numDisagreements", "disagreements", "Number of name/structure disagreements">
  ];
  let options = [
    Option<"useNames", "names", "bool", /*default=*/"true",
           "Use the name signal (initializer and node names)">,
    Option<"useStructure", "structure", "bool", /*default=*/"true",
           "Use the structure signal (dataflow from pixel_values, residual blocks)">,
  ];
}

def VLoRAReportTowers : Pass<"vlora-report-towers", "mlir::ModuleOp"> {
  let summary = "Print the tagged matmuls and the equivalent PEFT target_modules regex";
  let description = [{
    Prints one row per tagged matmul (module, tower, block, layer, in, out)
    and the PEFT `target_modules` regular expression that selects exactly the
    modules the given switches select, so it can be cross-checked with PEFT
    and Unsloth. Runs after `--vlora-classify-towers`; changes nothing.
  }];
  let options = [
    Option<"vision", "vision", "bool", "true", "finetune_vision_layers">,
    Option<"language", "language", "bool", "true", "finetune_language_layers">,
    Option<"attention", "attention", "bool", "true", "finetune_attention_modules">,
    Option<"mlp", "mlp", "bool", "true", "finetune_mlp_modules">,
    Option<"projector", "projector", "bool", "false", "also adapt the vision-language projector">,
    Option<"output", "output", "std::string", "\"-\"", "Where to write the report ('-' = stdout)">,
  ];
}

#endif // VLORA_PASSES_TD
