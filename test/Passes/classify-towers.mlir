// RUN: vlora-opt %s --vlora-classify-towers -split-input-file -verify-diagnostics | FileCheck %s

// Names: the TorchScript node name gives the module path of an anonymous
// (pre-transposed) weight; the dynamo initializer name gives it directly.
// CHECK-LABEL: func.func @names
// CHECK: vlora.matmul {{.*}}vlora.block = #vlora<block attention>, vlora.layer = 3 : i64, vlora.module = "model.language_model.layers.3.self_attn.q_proj", vlora.tower = #vlora<tower language>
// CHECK: vlora.matmul {{.*}}vlora.block = #vlora<block mlp>, vlora.layer = 1 : i64, vlora.module = "model.vision_tower.encoder.layers.1.mlp.fc1", vlora.tower = #vlora<tower vision>
// CHECK: vlora.matmul {{.*}}vlora.block = #vlora<block other>, vlora.module = "model.multi_modal_projector.linear_1", vlora.tower = #vlora<tower projector>
// CHECK: vlora.matmul {{.*}}vlora.block = #vlora<block other>, vlora.module = "lm_head", vlora.tower = #vlora<tower other>
// A matmul of two activations is not a candidate.
// CHECK: vlora.matmul %arg0, %arg0 transpose_b : (tensor<4x64xf32>, tensor<4x64xf32>) -> tensor<4x4xf32>
func.func @names(%x: tensor<4x64xf32>) -> (tensor<4x64xf32>, tensor<4x64xf32>, tensor<4x64xf32>, tensor<4x64xf32>, tensor<4x4xf32>) {
  %w0 = vlora.param "onnx::MatMul_101" frozen initializer "model.onnx" [offset 0, length 16384] : tensor<64x64xf32>
  %a = vlora.matmul %x, %w0 : (tensor<4x64xf32>, tensor<64x64xf32>) -> tensor<4x64xf32> loc("/model/language_model/layers.3/self_attn/q_proj/MatMul")
  %w1 = vlora.param "model.vision_tower.encoder.layers.1.mlp.fc1.weight" frozen initializer "model.onnx" [offset 0, length 16384] : tensor<64x64xf32>
  %t1 = vlora.transpose %w1 [1, 0] : (tensor<64x64xf32>) -> tensor<64x64xf32>
  %b = vlora.matmul %x, %t1 : (tensor<4x64xf32>, tensor<64x64xf32>) -> tensor<4x64xf32> loc("node_linear_7")
  %w2 = vlora.param "model.multi_modal_projector.linear_1.weight" frozen initializer "model.onnx" [offset 0, length 16384] : tensor<64x64xf32>
  %c = vlora.matmul %x, %w2 transpose_b : (tensor<4x64xf32>, tensor<64x64xf32>) -> tensor<4x64xf32>
  %w3 = vlora.param "onnx::MatMul_900" frozen initializer "model.onnx" [offset 0, length 16384] : tensor<64x64xf32>
  %d = vlora.matmul %x, %w3 : (tensor<4x64xf32>, tensor<64x64xf32>) -> tensor<4x64xf32> loc("/lm_head/MatMul")
  %e = vlora.matmul %x, %x transpose_b : (tensor<4x64xf32>, tensor<4x64xf32>) -> tensor<4x4xf32>
  return %a, %b, %c, %d, %e : tensor<4x64xf32>, tensor<4x64xf32>, tensor<4x64xf32>, tensor<4x64xf32>, tensor<4x4xf32>
}

// -----

// Structure: a residual MLP block on the language side (reachable from the
// token embedding). The names claim a vision attention module: the pass
// keeps the names and warns with both answers.
// CHECK-LABEL: func.func @disagreement
func.func @disagreement(%ids: tensor<1x8xi64> {vlora.name = "input_ids"}) -> tensor<1x8x16xf32> {
  %table = vlora.param "model.language_model.embed_tokens.weight" frozen initializer "model.onnx" [offset 0, length 2048] : tensor<32x16xf32>
  %h = vlora.gather %table, %ids axis 0 : (tensor<32x16xf32>, tensor<1x8xi64>) -> tensor<1x8x16xf32>
  %w1 = vlora.param "model.vision_tower.encoder.layers.0.self_attn.q_proj.weight" frozen initializer "model.onnx" [offset 0, length 4096] : tensor<64x16xf32>
  // expected-warning @+1 {{tower classification of 'model.vision_tower.encoder.layers.0.self_attn.q_proj' disagrees: names say vision/attention/layer 0, structure says language/mlp/layer 0; using the names}}
  %u = vlora.matmul %h, %w1 transpose_b : (tensor<1x8x16xf32>, tensor<64x16xf32>) -> tensor<1x8x64xf32>
  %g = vlora.gelu %u none : tensor<1x8x64xf32>
  %w2 = vlora.param "model.language_model.layers.0.mlp.down_proj.weight" frozen initializer "model.onnx" [offset 0, length 4096] : tensor<16x64xf32>
  %d = vlora.matmul %g, %w2 transpose_b : (tensor<1x8x64xf32>, tensor<16x64xf32>) -> tensor<1x8x16xf32>
  %r = vlora.add %h, %d : (tensor<1x8x16xf32>, tensor<1x8x16xf32>) -> tensor<1x8x16xf32>
  return %r : tensor<1x8x16xf32>
}

// -----

// Structure alone (names=false) synthesises module paths.
// RUN: vlora-opt %s --vlora-classify-towers="names=false" -split-input-file 2>&1 | FileCheck %s --check-prefix=STRUCT
// STRUCT-LABEL: func.func @structure_only
// STRUCT: vlora.module = "language.layers.0.mlp.0", vlora.tower = #vlora<tower language>
// STRUCT: vlora.module = "language.layers.0.mlp.1", vlora.tower = #vlora<tower language>
// STRUCT: vlora.module = "other.0", vlora.tower = #vlora<tower other>
func.func @structure_only(%ids: tensor<1x8xi64>) -> tensor<1x8x32xf32> {
  %table = vlora.param "e" frozen initializer "model.onnx" [offset 0, length 2048] : tensor<32x16xf32>
  %h = vlora.gather %table, %ids axis 0 : (tensor<32x16xf32>, tensor<1x8xi64>) -> tensor<1x8x16xf32>
  %w1 = vlora.param "a" frozen initializer "model.onnx" [offset 0, length 4096] : tensor<64x16xf32>
  %u = vlora.matmul %h, %w1 transpose_b : (tensor<1x8x16xf32>, tensor<64x16xf32>) -> tensor<1x8x64xf32>
  %g = vlora.silu %u : tensor<1x8x64xf32>
  %w2 = vlora.param "b" frozen initializer "model.onnx" [offset 0, length 4096] : tensor<16x64xf32>
  %d = vlora.matmul %g, %w2 transpose_b : (tensor<1x8x64xf32>, tensor<16x64xf32>) -> tensor<1x8x16xf32>
  %r = vlora.add %h, %d : (tensor<1x8x16xf32>, tensor<1x8x16xf32>) -> tensor<1x8x16xf32>
  %w3 = vlora.param "c" frozen initializer "model.onnx" [offset 0, length 2048] : tensor<32x16xf32>
  %logits = vlora.matmul %r, %w3 transpose_b : (tensor<1x8x16xf32>, tensor<32x16xf32>) -> tensor<1x8x32xf32>
  return %logits : tensor<1x8x32xf32>
}

// -----

// A shared scalar constant (an RMSNorm eps used by two norms) is not a
// residual stream: `add(mean(d^2), eps)` must not make everything computed
// from the earlier use of eps one "residual branch" (Mistral3's and Gemma3's
// projector RMSNorm shares its eps with the language model's).
// STRUCT-LABEL: func.func @eps_is_not_a_residual
// STRUCT-NOT: mlp
// STRUCT: vlora.module = "other.0"
// STRUCT: vlora.module = "other.1"
// STRUCT: vlora.module = "other.2"
func.func @eps_is_not_a_residual(%ids: tensor<1x8xi64>) -> tensor<1x8x32xf32> {
  %eps = vlora.constant dense<1.0e-06> : tensor<f32>
  %table = vlora.param "e" frozen initializer "model.onnx" [offset 0, length 2048] : tensor<32x16xf32>
  %h = vlora.gather %table, %ids axis 0 : (tensor<32x16xf32>, tensor<1x8xi64>) -> tensor<1x8x16xf32>
  %s1 = vlora.add %h, %eps : (tensor<1x8x16xf32>, tensor<f32>) -> tensor<1x8x16xf32>
  %w1 = vlora.param "a" frozen initializer "model.onnx" [offset 0, length 4096] : tensor<64x16xf32>
  %u = vlora.matmul %s1, %w1 transpose_b : (tensor<1x8x16xf32>, tensor<64x16xf32>) -> tensor<1x8x64xf32>
  %g = vlora.silu %u : tensor<1x8x64xf32>
  %w2 = vlora.param "b" frozen initializer "model.onnx" [offset 0, length 4096] : tensor<16x64xf32>
  %d = vlora.matmul %g, %w2 transpose_b : (tensor<1x8x64xf32>, tensor<16x64xf32>) -> tensor<1x8x16xf32>
  %sq = vlora.mul %d, %d : (tensor<1x8x16xf32>, tensor<1x8x16xf32>) -> tensor<1x8x16xf32>
  %ms = vlora.reduce_mean %sq axes [2] keepdims : (tensor<1x8x16xf32>) -> tensor<1x8x1xf32>
  %n = vlora.add %ms, %eps : (tensor<1x8x1xf32>, tensor<f32>) -> tensor<1x8x1xf32>
  %r = vlora.rsqrt %n : tensor<1x8x1xf32>
  %y = vlora.mul %d, %r : (tensor<1x8x16xf32>, tensor<1x8x1xf32>) -> tensor<1x8x16xf32>
  %w3 = vlora.param "c" frozen initializer "model.onnx" [offset 0, length 2048] : tensor<32x16xf32>
  %logits = vlora.matmul %y, %w3 transpose_b : (tensor<1x8x16xf32>, tensor<32x16xf32>) -> tensor<1x8x32xf32>
  return %logits : tensor<1x8x32xf32>
}

// -----

// A matmul by a bare parameter (Gemma3's projector multiplies by
// `mm_input_projection_weight`, not an nn.Linear) gets its owner's tower but
// no module path: PEFT's target_modules cannot reach it, so nothing selects
// it and the report has no row for it.
// RUN: vlora-opt %s --vlora-classify-towers -split-input-file 2>&1 | FileCheck %s --check-prefix=BARE
// RUN: vlora-opt %s --vlora-classify-towers --vlora-report-towers="projector=true" -split-input-file -o /dev/null 2>&1 | FileCheck %s --check-prefix=BAREREPORT
// BARE-LABEL: func.func @bare_parameter
// BARE: vlora.matmul {{.*}}{vlora.block = #vlora<block other>, vlora.tower = #vlora<tower projector>}
// BARE-NOT: vlora.module
// BARE: return
// BAREREPORT-NOT: mm_input_projection
func.func @bare_parameter(%x: tensor<1x4x64xf32>) -> tensor<1x4x32xf32> {
  %w = vlora.param "model.multi_modal_projector.mm_input_projection_weight" frozen initializer "model.onnx" [offset 0, length 8192] : tensor<64x32xf32>
  %y = vlora.matmul %x, %w : (tensor<1x4x64xf32>, tensor<64x32xf32>) -> tensor<1x4x32xf32>
  return %y : tensor<1x4x32xf32>
}
