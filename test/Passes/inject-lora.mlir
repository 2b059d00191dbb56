// --vlora-inject-lora: every option on tagged graphs (the tags are those of
// --vlora-classify-towers, written by hand in Inputs/).

// Defaults (Unsloth's): r=16, alpha=16, all four switches, no projector.
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora | FileCheck %s --check-prefix=DEFAULT
// DEFAULT: module attributes {vlora.lora_config = {alpha = 1.600000e+01 : f64, alpha_pattern = {}, dropout = 0.000000e+00 : f64, init = "kaiming", r = 16 : i64, rank_pattern = {}, seed = 3407 : i64, target_modules = ["model.language_model.layers.0.mlp.down_proj", "model.language_model.layers.0.self_attn.q_proj", "model.vision_tower.layers.0.mlp.fc1", "model.vision_tower.layers.0.self_attn.q_proj"], use_rslora = false}}
// DEFAULT-LABEL: func.func @towers
// Adapters in PEFT key order, laid out in that order in the bundle file.
// DEFAULT-NEXT: %[[LDA:.*]] = vlora.param "base_model.model.model.language_model.layers.0.mlp.down_proj.lora_A.weight" trainable bundle "adapters.init.safetensors" [offset 0, length 2048] : tensor<16x32xf32>
// DEFAULT-NEXT: %[[LDB:.*]] = vlora.param "base_model.model.model.language_model.layers.0.mlp.down_proj.lora_B.weight" trainable bundle "adapters.init.safetensors" [offset 2048, length 1024] : tensor<16x16xf32>
// DEFAULT-NEXT: %[[LQA:.*]] = vlora.param "base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight" trainable bundle "adapters.init.safetensors" [offset 3072, length 1024] : tensor<16x16xf32>
// DEFAULT-NEXT: %[[LQB:.*]] = vlora.param "base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_B.weight" trainable bundle "adapters.init.safetensors" [offset 4096, length 1024] : tensor<16x16xf32>
// DEFAULT-NEXT: %[[VFA:.*]] = vlora.param "base_model.model.model.vision_tower.layers.0.mlp.fc1.lora_A.weight" trainable bundle "adapters.init.safetensors" [offset 5120, length 512] : tensor<16x8xf32>
// DEFAULT-NEXT: %[[VFB:.*]] = vlora.param "base_model.model.model.vision_tower.layers.0.mlp.fc1.lora_B.weight" trainable bundle "adapters.init.safetensors" [offset 5632, length 512] : tensor<8x16xf32>
// DEFAULT-NEXT: %[[VQA:.*]] = vlora.param "base_model.model.model.vision_tower.layers.0.self_attn.q_proj.lora_A.weight" trainable bundle "adapters.init.safetensors" [offset 6144, length 512] : tensor<16x8xf32>
// DEFAULT-NEXT: %[[VQB:.*]] = vlora.param "base_model.model.model.vision_tower.layers.0.self_attn.q_proj.lora_B.weight" trainable bundle "adapters.init.safetensors" [offset 6656, length 512] : tensor<8x16xf32>
// DEFAULT: vlora.matmul %{{.*}}, %{{.*}} transpose_b {{.*}}vlora.module = "model.vision_tower.embeddings.patch_embedding"
// The frozen weight stays as the matmul used it; the tags move to the new op.
// DEFAULT: %[[VQW:.*]] = vlora.param "model.vision_tower.layers.0.self_attn.q_proj.weight"
// DEFAULT-NEXT: vlora.lora_matmul %arg1, %[[VQW]], %[[VQA]], %[[VQB]] scale 1.000000e+00 dropout 0.000000e+00 transpose_b {vlora.block = #vlora<block attention>, vlora.layer = 0 : i64, vlora.module = "model.vision_tower.layers.0.self_attn.q_proj", vlora.tower = #vlora<tower vision>} : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<16x8xf32>, tensor<8x16xf32>) -> tensor<1x4x8xf32>
// DEFAULT: vlora.lora_matmul %arg1, %{{.*}}, %[[VFA]], %[[VFB]] {{.*}}"model.vision_tower.layers.0.mlp.fc1"
// DEFAULT: vlora.matmul {{.*}}"model.multi_modal_projector.linear_1"
// DEFAULT: vlora.lora_matmul %arg2, %{{.*}}, %[[LQA]], %[[LQB]] {{.*}}"model.language_model.layers.0.self_attn.q_proj"
// DEFAULT: vlora.lora_matmul %arg3, %{{.*}}, %[[LDA]], %[[LDB]] {{.*}}"model.language_model.layers.0.mlp.down_proj"
// DEFAULT: vlora.matmul {{.*}}"lm_head"
// DEFAULT-NOT: vlora.lora_matmul

// r, alpha, dropout, init, seed; scale = alpha / r.
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="r=8 alpha=32 dropout=0.05 init=gaussian seed=7" | FileCheck %s --check-prefix=HYPER
// HYPER: vlora.lora_config = {alpha = 3.200000e+01 : f64, alpha_pattern = {}, dropout = 5.000000e-02 : f64, init = "gaussian", r = 8 : i64, rank_pattern = {}, seed = 7 : i64,
// HYPER: "base_model.model.model.vision_tower.layers.0.self_attn.q_proj.lora_A.weight" {{.*}} : tensor<8x8xf32>
// HYPER: "base_model.model.model.vision_tower.layers.0.self_attn.q_proj.lora_B.weight" {{.*}} : tensor<8x8xf32>
// HYPER-COUNT-4: scale 4.000000e+00 dropout 5.000000e-02

// rsLoRA: scale = alpha / sqrt(r).
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="r=4 alpha=8 use-rslora=true" | FileCheck %s --check-prefix=RSLORA
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="r=4 alpha=8" | FileCheck %s --check-prefix=NORSLORA
// RSLORA: use_rslora = true
// RSLORA-COUNT-4: scale 4.000000e+00
// NORSLORA: use_rslora = false
// NORSLORA-COUNT-4: scale 2.000000e+00

// target-modules as a list: exact names or '.'-suffixes; the switches are not
// used, so block 'other' (the patch embedding) can be targeted.
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="target-modules=q_proj" | FileCheck %s --check-prefix=LIST-Q
// LIST-Q: target_modules = ["model.language_model.layers.0.self_attn.q_proj", "model.vision_tower.layers.0.self_attn.q_proj"]
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="target-modules=self_attn.q_proj,model.vision_tower.layers.0.mlp.fc1,patch_embedding,linear_1" | FileCheck %s --check-prefix=LIST
// LIST: target_modules = ["model.language_model.layers.0.self_attn.q_proj", "model.multi_modal_projector.linear_1", "model.vision_tower.embeddings.patch_embedding", "model.vision_tower.layers.0.mlp.fc1", "model.vision_tower.layers.0.self_attn.q_proj"]
// LIST-COUNT-5: vlora.lora_matmul
// A suffix must start at a '.': "proj" is not a suffix of "q_proj".
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="target-modules=proj,fc1" 2>&1 | FileCheck %s --check-prefix=SUFFIX
// SUFFIX: warning: --vlora-inject-lora: target-modules 'proj' matches no module
// SUFFIX: target_modules = ["model.vision_tower.layers.0.mlp.fc1"]

// target-modules as one regex (full match, ECMAScript).
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora='target-modules=.*language.*(q_proj|down_proj)' | FileCheck %s --check-prefix=REGEX
// REGEX: target_modules = ["model.language_model.layers.0.mlp.down_proj", "model.language_model.layers.0.self_attn.q_proj"]
// Full match: a regex for part of the path matches nothing.
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora='target-modules=(q_proj)' 2>&1 | FileCheck %s --check-prefix=PARTIAL
// PARTIAL: error: --vlora-inject-lora: no module matched (target-modules=(q_proj)); the 6 candidate modules are: model.vision_tower.embeddings.patch_embedding (vision other), model.vision_tower.layers.0.self_attn.q_proj (vision attention 0), model.vision_tower.layers.0.mlp.fc1 (vision mlp 0), model.multi_modal_projector.linear_1 (projector mlp), model.language_model.layers.0.self_attn.q_proj (language attention 0), model.language_model.layers.0.mlp.down_proj (language mlp 0)
// Unsloth's get_peft_regex output for vision+language, attention+mlp
// (non-capturing groups, lazy quantifiers).
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora='target-modules=(?:.*?(?:vision|image|visual|patch|language|text).*?(?:self_attn|attention|attn|mlp|feed_forward|ffn|dense).*?(?:k_proj|v_proj|q_proj|out_proj|fc1|fc2|o_proj|gate_proj|up_proj|down_proj).*?)' | FileCheck %s --check-prefix=UNSLOTH
// UNSLOTH: target_modules = ["model.language_model.layers.0.mlp.down_proj", "model.language_model.layers.0.self_attn.q_proj", "model.vision_tower.layers.0.mlp.fc1", "model.vision_tower.layers.0.self_attn.q_proj"]
// A regex that also matches lm_head: lm_head is skipped with a warning.
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora='target-modules=.*' 2>&1 | FileCheck %s --check-prefix=ALL
// ALL: warning: --vlora-inject-lora: target-modules regex '.*' also matches modules LoRA cannot take, which are skipped: 'lm_head' is in tower 'other' (lm_head), never a LoRA target
// ALL: target_modules = ["model.language_model.layers.0.mlp.down_proj", "model.language_model.layers.0.self_attn.q_proj", "model.multi_modal_projector.linear_1", "model.vision_tower.embeddings.patch_embedding", "model.vision_tower.layers.0.mlp.fc1", "model.vision_tower.layers.0.self_attn.q_proj"]

// exclude-modules, as a list and as a regex.
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="exclude-modules=fc1,down_proj" | FileCheck %s --check-prefix=EXCL
// EXCL: target_modules = ["model.language_model.layers.0.self_attn.q_proj", "model.vision_tower.layers.0.self_attn.q_proj"]
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora='exclude-modules=.*vision.*' | FileCheck %s --check-prefix=EXCL-RE
// EXCL-RE: target_modules = ["model.language_model.layers.0.mlp.down_proj", "model.language_model.layers.0.self_attn.q_proj"]
// EXCL-RE-NOT: model.vision_tower.layers.0.self_attn.q_proj.lora_A

// layers-to-transform: the layer index of both towers; modules without one
// (the projector) are dropped, as in PEFT.
// RUN: vlora-opt %S/Inputs/tagged-vlm.mlir --vlora-inject-lora="layers-to-transform=1 projector=true" | FileCheck %s --check-prefix=LAYERS
// LAYERS: target_modules = ["model.language_model.layers.1.mlp.down_proj", "model.language_model.layers.1.mlp.gate_proj", "model.language_model.layers.1.mlp.up_proj", "model.language_model.layers.1.self_attn.k_proj", "model.language_model.layers.1.self_attn.o_proj", "model.language_model.layers.1.self_attn.q_proj", "model.language_model.layers.1.self_attn.v_proj", "model.vision_tower.vision_model.encoder.layers.1.mlp.fc1", "model.vision_tower.vision_model.encoder.layers.1.mlp.fc2", "model.vision_tower.vision_model.encoder.layers.1.self_attn.k_proj", "model.vision_tower.vision_model.encoder.layers.1.self_attn.out_proj", "model.vision_tower.vision_model.encoder.layers.1.self_attn.q_proj", "model.vision_tower.vision_model.encoder.layers.1.self_attn.v_proj"]
// LAYERS-NOT: layers.0.{{.*}}lora_A

// rank-pattern and alpha-pattern: PEFT's (.*\.)?(pattern) match, first wins.
// RUN: vlora-opt %S/Inputs/tagged-vlm.mlir --vlora-inject-lora='rank-pattern=language_model.layers.1.self_attn.q_proj:2,q_proj:8,down_proj:4 alpha-pattern=q_proj:32,layers\.1\..*:3.5' 2>&1 | FileCheck %s --check-prefix=PATTERN
// PATTERN: alpha_pattern = {"layers\\.1\\..*" = 3.500000e+00 : f64, q_proj = 3.200000e+01 : f64}
// PATTERN-SAME: rank_pattern = {down_proj = 4 : i64, language_model.layers.1.self_attn.q_proj = 2 : i64, q_proj = 8 : i64}
// PATTERN-DAG: "base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight" {{.*}} : tensor<8x16xf32>
// PATTERN-DAG: "base_model.model.model.language_model.layers.1.self_attn.q_proj.lora_A.weight" {{.*}} : tensor<2x16xf32>
// PATTERN-DAG: "base_model.model.model.language_model.layers.1.mlp.down_proj.lora_B.weight" {{.*}} : tensor<16x4xf32>
// PATTERN-DAG: "base_model.model.model.vision_tower.vision_model.encoder.layers.0.mlp.fc1.lora_A.weight" {{.*}} : tensor<16x8xf32>
// q_proj layer 0: 32 / 8; q_proj layer 1: 32 / 2 (alpha: q_proj comes first);
// down_proj layer 1: 3.5 / 4; fc1 layer 0: 16 / 16.
// PATTERN-DAG: scale 4.000000e+00 {{.*}}"model.language_model.layers.0.self_attn.q_proj"
// PATTERN-DAG: scale 1.600000e+01 {{.*}}"model.language_model.layers.1.self_attn.q_proj"
// PATTERN-DAG: scale 8.750000e-01 {{.*}}"model.language_model.layers.1.mlp.down_proj"
// PATTERN-DAG: scale 1.000000e+00 {{.*}}"model.vision_tower.vision_model.encoder.layers.0.mlp.fc1"
// A pattern that selects nothing is reported.
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="rank-pattern=gate_proj:4" 2>&1 | FileCheck %s --check-prefix=UNUSED
// UNUSED: warning: --vlora-inject-lora: rank-pattern 'gate_proj' matches no selected module
