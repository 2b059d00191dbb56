// One tagged matmul per (tower, block) pair of a VLM, as
// --vlora-classify-towers leaves them: the 16 vision x language x attention x
// mlp combinations and the projector flag are checked on it.
func.func @towers(%xp: tensor<1x4x12xf32>, %xv: tensor<1x4x8xf32>, %xl: tensor<1x4x16xf32>, %xl32: tensor<1x4x32xf32>) {
  %w0 = vlora.param "model.vision_tower.embeddings.patch_embedding.weight" frozen initializer "model.onnx" [offset 0, length 384] : tensor<8x12xf32>
  %y0 = vlora.matmul %xp, %w0 transpose_b {vlora.block = #vlora<block other>, vlora.module = "model.vision_tower.embeddings.patch_embedding", vlora.tower = #vlora<tower vision>} : (tensor<1x4x12xf32>, tensor<8x12xf32>) -> tensor<1x4x8xf32>
  %w1 = vlora.param "model.vision_tower.layers.0.self_attn.q_proj.weight" frozen initializer "model.onnx" [offset 384, length 256] : tensor<8x8xf32>
  %y1 = vlora.matmul %xv, %w1 transpose_b {vlora.block = #vlora<block attention>, vlora.layer = 0 : i64, vlora.module = "model.vision_tower.layers.0.self_attn.q_proj", vlora.tower = #vlora<tower vision>} : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
  %w2 = vlora.param "model.vision_tower.layers.0.mlp.fc1.weight" frozen initializer "model.onnx" [offset 640, length 256] : tensor<8x8xf32>
  %y2 = vlora.matmul %xv, %w2 transpose_b {vlora.block = #vlora<block mlp>, vlora.layer = 0 : i64, vlora.module = "model.vision_tower.layers.0.mlp.fc1", vlora.tower = #vlora<tower vision>} : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
  %w3 = vlora.param "model.multi_modal_projector.linear_1.weight" frozen initializer "model.onnx" [offset 896, length 512] : tensor<16x8xf32>
  %y3 = vlora.matmul %xv, %w3 transpose_b {vlora.block = #vlora<block mlp>, vlora.module = "model.multi_modal_projector.linear_1", vlora.tower = #vlora<tower projector>} : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
  %w4 = vlora.param "model.language_model.layers.0.self_attn.q_proj.weight" frozen initializer "model.onnx" [offset 1408, length 1024] : tensor<16x16xf32>
  %y4 = vlora.matmul %xl, %w4 transpose_b {vlora.block = #vlora<block attention>, vlora.layer = 0 : i64, vlora.module = "model.language_model.layers.0.self_attn.q_proj", vlora.tower = #vlora<tower language>} : (tensor<1x4x16xf32>, tensor<16x16xf32>) -> tensor<1x4x16xf32>
  %w5 = vlora.param "model.language_model.layers.0.mlp.down_proj.weight" frozen initializer "model.onnx" [offset 2432, length 2048] : tensor<16x32xf32>
  %y5 = vlora.matmul %xl32, %w5 transpose_b {vlora.block = #vlora<block mlp>, vlora.layer = 0 : i64, vlora.module = "model.language_model.layers.0.mlp.down_proj", vlora.tower = #vlora<tower language>} : (tensor<1x4x32xf32>, tensor<16x32xf32>) -> tensor<1x4x16xf32>
  %w6 = vlora.param "lm_head.weight" frozen initializer "model.onnx" [offset 4480, length 3200] : tensor<50x16xf32>
  %y6 = vlora.matmul %xl, %w6 transpose_b {vlora.block = #vlora<block other>, vlora.module = "lm_head", vlora.tower = #vlora<tower other>} : (tensor<1x4x16xf32>, tensor<50x16xf32>) -> tensor<1x4x50xf32>
  return
}
