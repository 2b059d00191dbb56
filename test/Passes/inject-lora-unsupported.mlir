// Matmuls a vlora.lora_matmul cannot take: a weight on the left (W @ x) is
// skipped with a remark at the op when the switches select it, and is an
// error when target-modules names it; so is a module that is not a matmul.
// A module applied twice shares one adapter.

// RUN: vlora-opt %s --vlora-inject-lora -verify-diagnostics | FileCheck %s
// RUN: not vlora-opt %s --vlora-inject-lora="target-modules=lhs_proj" 2>&1 | FileCheck %s --check-prefix=LHS
// RUN: not vlora-opt %s --vlora-inject-lora="target-modules=patch_conv" 2>&1 | FileCheck %s --check-prefix=CONV
// LHS: error: --vlora-inject-lora: target-modules 'lhs_proj' names no module LoRA can take: 'model.language_model.layers.0.mlp.lhs_proj': its weight is the left operand (W @ x); vlora.lora_matmul takes x @ W only
// CONV: error: --vlora-inject-lora: target-modules 'patch_conv' names no module LoRA can take: 'model.vision_tower.embeddings.patch_conv' is a 'vlora.conv', not a matmul

// CHECK-LABEL: func.func @unsupported
// One adapter pair for the shared module, used by both of its matmuls.
// CHECK: %[[A:.*]] = vlora.param "base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight" trainable bundle "adapters.init.safetensors" [offset 0, length 1024] : tensor<16x16xf32>
// CHECK-NEXT: %[[B:.*]] = vlora.param "base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_B.weight" trainable bundle "adapters.init.safetensors" [offset 1024, length 1024] : tensor<16x16xf32>
// CHECK-NOT: vlora.param "base_model
// CHECK: vlora.conv
// CHECK: vlora.matmul %{{.*}}, %arg1 {{.*}}lhs_proj
// CHECK: vlora.lora_matmul %arg1, %{{.*}}, %[[A]], %[[B]]
// CHECK: vlora.lora_matmul %arg2, %{{.*}}, %[[A]], %[[B]]
func.func @unsupported(%img: tensor<1x3x8x8xf32>, %x: tensor<16x16xf32>, %x2: tensor<2x16xf32>) {
  %wc = vlora.param "model.vision_tower.embeddings.patch_conv.weight" frozen initializer "model.onnx" [offset 0, length 768] : tensor<4x3x4x4xf32>
  %c = vlora.conv %img, %wc strides [4, 4] pads [0, 0, 0, 0] dilations [1, 1] group 1 {vlora.block = #vlora<block other>, vlora.module = "model.vision_tower.embeddings.patch_conv", vlora.tower = #vlora<tower vision>} : (tensor<1x3x8x8xf32>, tensor<4x3x4x4xf32>) -> tensor<1x4x2x2xf32>
  %w = vlora.param "model.language_model.layers.0.mlp.lhs_proj.weight" frozen initializer "model.onnx" [offset 768, length 1024] : tensor<16x16xf32>
  // expected-remark @+1 {{--vlora-inject-lora: skipping 'model.language_model.layers.0.mlp.lhs_proj': its weight is the left operand (W @ x); vlora.lora_matmul takes x @ W only}}
  %y = vlora.matmul %w, %x {vlora.block = #vlora<block mlp>, vlora.layer = 0 : i64, vlora.module = "model.language_model.layers.0.mlp.lhs_proj", vlora.tower = #vlora<tower language>} : (tensor<16x16xf32>, tensor<16x16xf32>) -> tensor<16x16xf32>
  %q = vlora.param "model.language_model.layers.0.self_attn.q_proj.weight" frozen initializer "model.onnx" [offset 1792, length 1024] : tensor<16x16xf32>
  %q1 = vlora.matmul %x, %q transpose_b {vlora.block = #vlora<block attention>, vlora.layer = 0 : i64, vlora.module = "model.language_model.layers.0.self_attn.q_proj", vlora.tower = #vlora<tower language>} : (tensor<16x16xf32>, tensor<16x16xf32>) -> tensor<16x16xf32>
  %q2 = vlora.matmul %x2, %q transpose_b {vlora.block = #vlora<block attention>, vlora.layer = 0 : i64, vlora.module = "model.language_model.layers.0.self_attn.q_proj", vlora.tower = #vlora<tower language>} : (tensor<2x16xf32>, tensor<16x16xf32>) -> tensor<2x16xf32>
  return
}
