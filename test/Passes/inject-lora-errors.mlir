// Bad options and inputs of --vlora-inject-lora: one clear error each and
// exit 1 (`not`).

// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="r=0" 2>&1 | FileCheck %s --check-prefix=R0
// R0: error: --vlora-inject-lora: r must be positive, got 0
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="r=-4" 2>&1 | FileCheck %s --check-prefix=RNEG
// RNEG: error: --vlora-inject-lora: r must be positive, got -4
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="alpha=0" 2>&1 | FileCheck %s --check-prefix=ALPHA
// ALPHA: error: --vlora-inject-lora: alpha must be positive, got 0.000000e+00
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="dropout=1" 2>&1 | FileCheck %s --check-prefix=DROPOUT
// DROPOUT: error: --vlora-inject-lora: dropout must be in [0, 1), got 1.000000e+00
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="dropout=-0.5" 2>&1 | FileCheck %s --check-prefix=DROPOUT-NEG
// DROPOUT-NEG: error: --vlora-inject-lora: dropout must be in [0, 1), got -5.000000e-01
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="init=xavier" 2>&1 | FileCheck %s --check-prefix=INIT
// INIT: error: --vlora-inject-lora: init must be 'kaiming' or 'gaussian', got 'xavier'
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="seed=-1" 2>&1 | FileCheck %s --check-prefix=SEED
// SEED: error: --vlora-inject-lora: seed must be non-negative, got -1
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="layers-to-transform=0,-1" 2>&1 | FileCheck %s --check-prefix=LAYER-NEG
// LAYER-NEG: error: --vlora-inject-lora: layers-to-transform has a negative layer -1

// Invalid regexes are named.
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora='target-modules=(q_proj' 2>&1 | FileCheck %s --check-prefix=REGEX
// REGEX: error: --vlora-inject-lora: target-modules regex '(q_proj' is invalid: {{.+}}
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora='exclude-modules=*fc1' 2>&1 | FileCheck %s --check-prefix=EXCL-REGEX
// EXCL-REGEX: error: --vlora-inject-lora: exclude-modules regex '*fc1' is invalid: {{.+}}
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora='rank-pattern=[q:4' 2>&1 | FileCheck %s --check-prefix=RANK-REGEX
// RANK-REGEX: error: --vlora-inject-lora: rank-pattern regex '[q' is invalid: {{.+}}
// A regex must be the only element of a list.
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora='target-modules=q_proj,.*fc1' 2>&1 | FileCheck %s --check-prefix=MIXED
// MIXED: error: --vlora-inject-lora: target-modules element '.*fc1' is not a module name; a regex must be the only element

// rank-pattern / alpha-pattern syntax.
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="rank-pattern=q_proj" 2>&1 | FileCheck %s --check-prefix=PAT-NOCOLON
// PAT-NOCOLON: error: --vlora-inject-lora: rank-pattern element 'q_proj' has no pattern (expected pattern:r)
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="rank-pattern=:4" 2>&1 | FileCheck %s --check-prefix=PAT-EMPTY
// PAT-EMPTY: error: --vlora-inject-lora: rank-pattern element ':4' has no pattern (expected pattern:r)
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="rank-pattern=q_proj:x" 2>&1 | FileCheck %s --check-prefix=PAT-VALUE
// PAT-VALUE: error: --vlora-inject-lora: rank-pattern element 'q_proj:x' has no positive integer rank (expected pattern:r)
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="rank-pattern=q_proj:0" 2>&1 | FileCheck %s --check-prefix=PAT-ZERO
// PAT-ZERO: error: --vlora-inject-lora: rank-pattern element 'q_proj:0' has no positive integer rank (expected pattern:r)
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="alpha-pattern=q_proj:-2" 2>&1 | FileCheck %s --check-prefix=ALPHA-PAT
// ALPHA-PAT: error: --vlora-inject-lora: alpha-pattern element 'q_proj:-2' has no positive alpha (expected pattern:alpha)

// Nothing matched: the candidates are listed (at most 20, then a count).
// RUN: not vlora-opt %S/Inputs/tagged-vlm.mlir --vlora-inject-lora='exclude-modules=.*' 2>&1 | FileCheck %s --check-prefix=NOTHING
// NOTHING: error: --vlora-inject-lora: no module matched (vision=true language=true attention=true mlp=true projector=false, exclude-modules=.*); the 29 candidate modules are: model.vision_tower.vision_model.embeddings.patch_embedding (vision other), model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj (vision attention 0), {{.*}}, model.language_model.layers.0.mlp.gate_proj (language mlp 0), ... (+9 more)
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="target-modules=nothing_here" 2>&1 | FileCheck %s --check-prefix=NOTHING-LIST
// NOTHING-LIST: warning: --vlora-inject-lora: target-modules 'nothing_here' matches no module
// NOTHING-LIST: error: --vlora-inject-lora: no module matched (target-modules=nothing_here); the 6 candidate modules are:
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="layers-to-transform=7" 2>&1 | FileCheck %s --check-prefix=NOTHING-LAYER
// NOTHING-LAYER: error: --vlora-inject-lora: no module matched (vision=true language=true attention=true mlp=true projector=false, layers-to-transform=7); the 6 candidate modules are:
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=false mlp=false layers-to-transform=1" 2>&1 | FileCheck %s --check-prefix=NOTHING-SWITCH
// NOTHING-SWITCH: error: --vlora-inject-lora: no module matched (vision=false language=true attention=true mlp=false projector=false, layers-to-transform=1)

// target-modules naming lm_head: never a target.
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="target-modules=q_proj,lm_head" 2>&1 | FileCheck %s --check-prefix=LMHEAD
// LMHEAD: error: --vlora-inject-lora: target-modules 'lm_head' names no module LoRA can take: 'lm_head' is in tower 'other' (lm_head), never a LoRA target

// Without the tags of --vlora-classify-towers there is nothing to select.
// RUN: not vlora-opt %s --vlora-inject-lora 2>&1 | FileCheck %s --check-prefix=UNTAGGED
// UNTAGGED: error: --vlora-inject-lora: no vlora.matmul carries the tags of --vlora-classify-towers (run it first)

// Injecting twice.
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora --vlora-inject-lora 2>&1 | FileCheck %s --check-prefix=TWICE
// TWICE: error: --vlora-inject-lora: the module already has LoRA adapters ('vlora.lora_config' is set)

func.func @untagged(%x: tensor<1x4x8xf32>) -> tensor<1x4x8xf32> {
  %w = vlora.param "w" frozen initializer "model.onnx" [offset 0, length 256] : tensor<8x8xf32>
  %y = vlora.matmul %x, %w : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
  return %y : tensor<1x4x8xf32>
}
