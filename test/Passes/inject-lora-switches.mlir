// The 16 combinations of vision x language x attention x mlp (Unsloth's
// finetune_*_layers / finetune_*_modules switches), each without and with the
// projector: which modules get an adapter (target_modules of the recorded
// config, sorted), and the error where Unsloth raises. The patch embedding
// (block other) and lm_head (tower other) are never selected by switches.

// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=false language=false attention=false mlp=false projector=false" 2>&1 | FileCheck %s --check-prefix=NOTOWER
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=false language=false attention=false mlp=false projector=true" 2>&1 | FileCheck %s --check-prefix=NOTOWER
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=false language=false attention=false mlp=true projector=false" 2>&1 | FileCheck %s --check-prefix=NOTOWER
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=false language=false attention=false mlp=true projector=true" 2>&1 | FileCheck %s --check-prefix=NOTOWER
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=false language=false attention=true mlp=false projector=false" 2>&1 | FileCheck %s --check-prefix=NOTOWER
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=false language=false attention=true mlp=false projector=true" 2>&1 | FileCheck %s --check-prefix=NOTOWER
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=false language=false attention=true mlp=true projector=false" 2>&1 | FileCheck %s --check-prefix=NOTOWER
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=false language=false attention=true mlp=true projector=true" 2>&1 | FileCheck %s --check-prefix=NOTOWER
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=false language=true attention=false mlp=false projector=false" 2>&1 | FileCheck %s --check-prefix=NOBLOCK
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=false language=true attention=false mlp=false projector=true" 2>&1 | FileCheck %s --check-prefix=NOBLOCK
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=false language=true attention=false mlp=true projector=false" | FileCheck %s --check-prefix=V0L1A0M1P0
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=false language=true attention=false mlp=true projector=true" | FileCheck %s --check-prefix=V0L1A0M1P1
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=false language=true attention=true mlp=false projector=false" | FileCheck %s --check-prefix=V0L1A1M0P0
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=false language=true attention=true mlp=false projector=true" | FileCheck %s --check-prefix=V0L1A1M0P1
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=false language=true attention=true mlp=true projector=false" | FileCheck %s --check-prefix=V0L1A1M1P0
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=false language=true attention=true mlp=true projector=true" | FileCheck %s --check-prefix=V0L1A1M1P1
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=true language=false attention=false mlp=false projector=false" 2>&1 | FileCheck %s --check-prefix=NOBLOCK
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=true language=false attention=false mlp=false projector=true" 2>&1 | FileCheck %s --check-prefix=NOBLOCK
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=true language=false attention=false mlp=true projector=false" | FileCheck %s --check-prefix=V1L0A0M1P0
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=true language=false attention=false mlp=true projector=true" | FileCheck %s --check-prefix=V1L0A0M1P1
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=true language=false attention=true mlp=false projector=false" | FileCheck %s --check-prefix=V1L0A1M0P0
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=true language=false attention=true mlp=false projector=true" | FileCheck %s --check-prefix=V1L0A1M0P1
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=true language=false attention=true mlp=true projector=false" | FileCheck %s --check-prefix=V1L0A1M1P0
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=true language=false attention=true mlp=true projector=true" | FileCheck %s --check-prefix=V1L0A1M1P1
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=true language=true attention=false mlp=false projector=false" 2>&1 | FileCheck %s --check-prefix=NOBLOCK
// RUN: not vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=true language=true attention=false mlp=false projector=true" 2>&1 | FileCheck %s --check-prefix=NOBLOCK
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=true language=true attention=false mlp=true projector=false" | FileCheck %s --check-prefix=V1L1A0M1P0
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=true language=true attention=false mlp=true projector=true" | FileCheck %s --check-prefix=V1L1A0M1P1
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=true language=true attention=true mlp=false projector=false" | FileCheck %s --check-prefix=V1L1A1M0P0
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=true language=true attention=true mlp=false projector=true" | FileCheck %s --check-prefix=V1L1A1M0P1
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=true language=true attention=true mlp=true projector=false" | FileCheck %s --check-prefix=V1L1A1M1P0
// RUN: vlora-opt %S/Inputs/towers.mlir --vlora-inject-lora="vision=true language=true attention=true mlp=true projector=true" | FileCheck %s --check-prefix=V1L1A1M1P1

// NOTOWER: error: --vlora-inject-lora: vision=false and language=false select no layers; enable at least one tower (or give target-modules)
// NOBLOCK: error: --vlora-inject-lora: attention=false and mlp=false select no modules; enable at least one of them (or give target-modules)

// V0L1A0M1P0: target_modules = ["model.language_model.layers.0.mlp.down_proj"]
// V0L1A0M1P0-COUNT-1: vlora.lora_matmul
// V0L1A0M1P0-NOT: vlora.lora_matmul
// V0L1A0M1P1: target_modules = ["model.language_model.layers.0.mlp.down_proj", "model.multi_modal_projector.linear_1"]
// V0L1A0M1P1-COUNT-2: vlora.lora_matmul
// V0L1A0M1P1-NOT: vlora.lora_matmul
// V0L1A1M0P0: target_modules = ["model.language_model.layers.0.self_attn.q_proj"]
// V0L1A1M0P0-COUNT-1: vlora.lora_matmul
// V0L1A1M0P0-NOT: vlora.lora_matmul
// V0L1A1M0P1: target_modules = ["model.language_model.layers.0.self_attn.q_proj", "model.multi_modal_projector.linear_1"]
// V0L1A1M0P1-COUNT-2: vlora.lora_matmul
// V0L1A1M0P1-NOT: vlora.lora_matmul
// V0L1A1M1P0: target_modules = ["model.language_model.layers.0.mlp.down_proj", "model.language_model.layers.0.self_attn.q_proj"]
// V0L1A1M1P0-COUNT-2: vlora.lora_matmul
// V0L1A1M1P0-NOT: vlora.lora_matmul
// V0L1A1M1P1: target_modules = ["model.language_model.layers.0.mlp.down_proj", "model.language_model.layers.0.self_attn.q_proj", "model.multi_modal_projector.linear_1"]
// V0L1A1M1P1-COUNT-3: vlora.lora_matmul
// V0L1A1M1P1-NOT: vlora.lora_matmul
// V1L0A0M1P0: target_modules = ["model.vision_tower.layers.0.mlp.fc1"]
// V1L0A0M1P0-COUNT-1: vlora.lora_matmul
// V1L0A0M1P0-NOT: vlora.lora_matmul
// V1L0A0M1P1: target_modules = ["model.multi_modal_projector.linear_1", "model.vision_tower.layers.0.mlp.fc1"]
// V1L0A0M1P1-COUNT-2: vlora.lora_matmul
// V1L0A0M1P1-NOT: vlora.lora_matmul
// V1L0A1M0P0: target_modules = ["model.vision_tower.layers.0.self_attn.q_proj"]
// V1L0A1M0P0-COUNT-1: vlora.lora_matmul
// V1L0A1M0P0-NOT: vlora.lora_matmul
// V1L0A1M0P1: target_modules = ["model.multi_modal_projector.linear_1", "model.vision_tower.layers.0.self_attn.q_proj"]
// V1L0A1M0P1-COUNT-2: vlora.lora_matmul
// V1L0A1M0P1-NOT: vlora.lora_matmul
// V1L0A1M1P0: target_modules = ["model.vision_tower.layers.0.mlp.fc1", "model.vision_tower.layers.0.self_attn.q_proj"]
// V1L0A1M1P0-COUNT-2: vlora.lora_matmul
// V1L0A1M1P0-NOT: vlora.lora_matmul
// V1L0A1M1P1: target_modules = ["model.multi_modal_projector.linear_1", "model.vision_tower.layers.0.mlp.fc1", "model.vision_tower.layers.0.self_attn.q_proj"]
// V1L0A1M1P1-COUNT-3: vlora.lora_matmul
// V1L0A1M1P1-NOT: vlora.lora_matmul
// V1L1A0M1P0: target_modules = ["model.language_model.layers.0.mlp.down_proj", "model.vision_tower.layers.0.mlp.fc1"]
// V1L1A0M1P0-COUNT-2: vlora.lora_matmul
// V1L1A0M1P0-NOT: vlora.lora_matmul
// V1L1A0M1P1: target_modules = ["model.language_model.layers.0.mlp.down_proj", "model.multi_modal_projector.linear_1", "model.vision_tower.layers.0.mlp.fc1"]
// V1L1A0M1P1-COUNT-3: vlora.lora_matmul
// V1L1A0M1P1-NOT: vlora.lora_matmul
// V1L1A1M0P0: target_modules = ["model.language_model.layers.0.self_attn.q_proj", "model.vision_tower.layers.0.self_attn.q_proj"]
// V1L1A1M0P0-COUNT-2: vlora.lora_matmul
// V1L1A1M0P0-NOT: vlora.lora_matmul
// V1L1A1M0P1: target_modules = ["model.language_model.layers.0.self_attn.q_proj", "model.multi_modal_projector.linear_1", "model.vision_tower.layers.0.self_attn.q_proj"]
// V1L1A1M0P1-COUNT-3: vlora.lora_matmul
// V1L1A1M0P1-NOT: vlora.lora_matmul
// V1L1A1M1P0: target_modules = ["model.language_model.layers.0.mlp.down_proj", "model.language_model.layers.0.self_attn.q_proj", "model.vision_tower.layers.0.mlp.fc1", "model.vision_tower.layers.0.self_attn.q_proj"]
// V1L1A1M1P0-COUNT-4: vlora.lora_matmul
// V1L1A1M1P0-NOT: vlora.lora_matmul
// V1L1A1M1P1: target_modules = ["model.language_model.layers.0.mlp.down_proj", "model.language_model.layers.0.self_attn.q_proj", "model.multi_modal_projector.linear_1", "model.vision_tower.layers.0.mlp.fc1", "model.vision_tower.layers.0.self_attn.q_proj"]
// V1L1A1M1P1-COUNT-5: vlora.lora_matmul
// V1L1A1M1P1-NOT: vlora.lora_matmul
