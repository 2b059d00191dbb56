// A hand-written VLM graph with the tags of --vlora-classify-towers:
// a vision tower (patch embedding + 2 layers), a projector, a language
// tower (2 layers) and lm_head. Weights are [out, in] (transpose_b) except
// fc2 and up_proj, which are [in, out].
func.func @vlm(%xp: tensor<1x4x12xf32>, %xv: tensor<1x4x8xf32>, %xv32: tensor<1x4x32xf32>, %xl: tensor<1x4x16xf32>, %xl32: tensor<1x4x32xf32>) {
  %w0 = vlora.param "model.vision_tower.vision_model.embeddings.patch_embedding.weight" frozen initializer "model.onnx" [offset 0, length 384] : tensor<8x12xf32>
  %y0 = vlora.matmul %xp, %w0 transpose_b {vlora.block = #vlora<block other>, vlora.module = "model.vision_tower.vision_model.embeddings.patch_embedding", vlora.tower = #vlora<tower vision>} : (tensor<1x4x12xf32>, tensor<8x12xf32>) -> tensor<1x4x8xf32>
  %w1 = vlora.param "model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight" frozen initializer "model.onnx" [offset 384, length 256] : tensor<8x8xf32>
  %y1 = vlora.matmul %xv, %w1 transpose_b {vlora.block = #vlora<block attention>, vlora.layer = 0 : i64, vlora.module = "model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj", vlora.tower = #vlora<tower vision>} : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
  %w2 = vlora.param "model.vision_tower.vision_model.encoder.layers.0.self_attn.k_proj.weight" frozen initializer "model.onnx" [offset 640, length 256] : tensor<8x8xf32>
  %y2 = vlora.matmul %xv, %w2 transpose_b {vlora.block = #vlora<block attention>, vlora.layer = 0 : i64, vlora.module = "model.vision_tower.vision_model.encoder.layers.0.self_attn.k_proj", vlora.tower = #vlora<tower vision>} : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
  %w3 = vlora.param "model.vision_tower.vision_model.encoder.layers.0.self_attn.v_proj.weight" frozen initializer "model.onnx" [offset 896, length 256] : tensor<8x8xf32>
  %y3 = vlora.matmul %xv, %w3 transpose_b {vlora.block = #vlora<block attention>, vlora.layer = 0 : i64, vlora.module = "model.vision_tower.vision_model.encoder.layers.0.self_attn.v_proj", vlora.tower = #vlora<tower vision>} : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
  %w4 = vlora.param "model.vision_tower.vision_model.encoder.layers.0.self_attn.out_proj.weight" frozen initializer "model.onnx" [offset 1152, length 256] : tensor<8x8xf32>
  %y4 = vlora.matmul %xv, %w4 transpose_b {vlora.block = #vlora<block attention>, vlora.layer = 0 : i64, vlora.module = "model.vision_tower.vision_model.encoder.layers.0.self_attn.out_proj", vlora.tower = #vlora<tower vision>} : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
  %w5 = vlora.param "model.vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight" frozen initializer "model.onnx" [offset 1408, length 1024] : tensor<32x8xf32>
  %y5 = vlora.matmul %xv, %w5 transpose_b {vlora.block = #vlora<block mlp>, vlora.layer = 0 : i64, vlora.module = "model.vision_tower.vision_model.encoder.layers.0.mlp.fc1", vlora.tower = #vlora<tower vision>} : (tensor<1x4x8xf32>, tensor<32x8xf32>) -> tensor<1x4x32xf32>
  %w6 = vlora.param "model.vision_tower.vision_model.encoder.layers.0.mlp.fc2.weight" frozen initializer "model.onnx" [offset 2432, length 1024] : tensor<32x8xf32>
  %y6 = vlora.matmul %xv32, %w6 {vlora.block = #vlora<block mlp>, vlora.layer = 0 : i64, vlora.module = "model.vision_tower.vision_model.encoder.layers.0.mlp.fc2", vlora.tower = #vlora<tower vision>} : (tensor<1x4x32xf32>, tensor<32x8xf32>) -> tensor<1x4x8xf32>
  %w7 = vlora.param "model.vision_tower.vision_model.encoder.layers.1.self_attn.q_proj.weight" frozen initializer "model.onnx" [offset 3456, length 256] : tensor<8x8xf32>
  %y7 = vlora.matmul %xv, %w7 transpose_b {vlora.block = #vlora<block attention>, vlora.layer = 1 : i64, vlora.module = "model.vision_tower.vision_model.encoder.layers.1.self_attn.q_proj", vlora.tower = #vlora<tower vision>} : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
  %w8 = vlora.param "model.vision_tower.vision_model.encoder.layers.1.self_attn.k_proj.weight" frozen initializer "model.onnx" [offset 3712, length 256] : tensor<8x8xf32>
  %y8 = vlora.matmul %xv, %w8 transpose_b {vlora.block = #vlora<block attention>, vlora.layer = 1 : i64, vlora.module = "model.vision_tower.vision_model.encoder.layers.1.self_attn.k_proj", vlora.tower = #vlora<tower vision>} : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
  %w9 = vlora.param "model.vision_tower.vision_model.encoder.layers.1.self_attn.v_proj.weight" frozen initializer "model.onnx" [offset 3968, length 256] : tensor<8x8xf32>
  %y9 = vlora.matmul %xv, %w9 transpose_b {vlora.block = #vlora<block attention>, vlora.layer = 1 : i64, vlora.module = "model.vision_tower.vision_model.encoder.layers.1.self_attn.v_proj", vlora.tower = #vlora<tower vision>} : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
  %w10 = vlora.param "model.vision_tower.vision_model.encoder.layers.1.self_attn.out_proj.weight" frozen initializer "model.onnx" [offset 4224, length 256] : tensor<8x8xf32>
  %y10 = vlora.matmul %xv, %w10 transpose_b {vlora.block = #vlora<block attention>, vlora.layer = 1 : i64, vlora.module = "model.vision_tower.vision_model.encoder.layers.1.self_attn.out_proj", vlora.tower = #vlora<tower vision>} : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
  %w11 = vlora.param "model.vision_tower.vision_model.encoder.layers.1.mlp.fc1.weight" frozen initializer "model.onnx" [offset 4480, length 1024] : tensor<32x8xf32>
  %y11 = vlora.matmul %xv, %w11 transpose_b {vlora.block = #vlora<block mlp>, vlora.layer = 1 : i64, vlora.module = "model.vision_tower.vision_model.encoder.layers.1.mlp.fc1", vlora.tower = #vlora<tower vision>} : (tensor<1x4x8xf32>, tensor<32x8xf32>) -> tensor<1x4x32xf32>
  %w12 = vlora.param "model.vision_tower.vision_model.encoder.layers.1.mlp.fc2.weight" frozen initializer "model.onnx" [offset 5504, length 1024] : tensor<32x8xf32>
  %y12 = vlora.matmul %xv32, %w12 {vlora.block = #vlora<block mlp>, vlora.layer = 1 : i64, vlora.module = "model.vision_tower.vision_model.encoder.layers.1.mlp.fc2", vlora.tower = #vlora<tower vision>} : (tensor<1x4x32xf32>, tensor<32x8xf32>) -> tensor<1x4x8xf32>
  %w13 = vlora.param "model.multi_modal_projector.linear_1.weight" frozen initializer "model.onnx" [offset 6528, length 512] : tensor<16x8xf32>
  %y13 = vlora.matmul %xv, %w13 transpose_b {vlora.block = #vlora<block mlp>, vlora.module = "model.multi_modal_projector.linear_1", vlora.tower = #vlora<tower projector>} : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
  %w14 = vlora.param "model.multi_modal_projector.linear_2.weight" frozen initializer "model.onnx" [offset 7040, length 1024] : tensor<16x16xf32>
  %y14 = vlora.matmul %xl, %w14 transpose_b {vlora.block = #vlora<block other>, vlora.module = "model.multi_modal_projector.linear_2", vlora.tower = #vlora<tower projector>} : (tensor<1x4x16xf32>, tensor<16x16xf32>) -> tensor<1x4x16xf32>
  %w15 = vlora.param "model.language_model.layers.0.self_attn.q_proj.weight" frozen initializer "model.onnx" [offset 8064, length 1024] : tensor<16x16xf32>
  %y15 = vlora.matmul %xl, %w15 transpose_b {vlora.block = #vlora<block attention>, vlora.layer = 0 : i64, vlora.module = "model.language_model.layers.0.self_attn.q_proj", vlora.tower = #vlora<tower language>} : (tensor<1x4x16xf32>, tensor<16x16xf32>) -> tensor<1x4x16xf32>
  %w16 = vlora.param "model.language_model.layers.0.self_attn.k_proj.weight" frozen initializer "model.onnx" [offset 9088, length 1024] : tensor<16x16xf32>
  %y16 = vlora.matmul %xl, %w16 transpose_b {vlora.block = #vlora<block attention>, vlora.layer = 0 : i64, vlora.module = "model.language_model.layers.0.self_attn.k_proj", vlora.tower = #vlora<tower language>} : (tensor<1x4x16xf32>, tensor<16x16xf32>) -> tensor<1x4x16xf32>
  %w17 = vlora.param "model.language_model.layers.0.self_attn.v_proj.weight" frozen initializer "model.onnx" [offset 10112, length 1024] : tensor<16x16xf32>
  %y17 = vlora.matmul %xl, %w17 transpose_b {vlora.block = #vlora<block attention>, vlora.layer = 0 : i64, vlora.module = "model.language_model.layers.0.self_attn.v_proj", vlora.tower = #vlora<tower language>} : (tensor<1x4x16xf32>, tensor<16x16xf32>) -> tensor<1x4x16xf32>
  %w18 = vlora.param "model.language_model.layers.0.self_attn.o_proj.weight" frozen initializer "model.onnx" [offset 11136, length 1024] : tensor<16x16xf32>
  %y18 = vlora.matmul %xl, %w18 transpose_b {vlora.block = #vlora<block attention>, vlora.layer = 0 : i64, vlora.module = "model.language_model.layers.0.self_attn.o_proj", vlora.tower = #vlora<tower language>} : (tensor<1x4x16xf32>, tensor<16x16xf32>) -> tensor<1x4x16xf32>
  %w19 = vlora.param "model.language_model.layers.0.mlp.gate_proj.weight" frozen initializer "model.onnx" [offset 12160, length 2048] : tensor<32x16xf32>
  %y19 = vlora.matmul %xl, %w19 transpose_b {vlora.block = #vlora<block mlp>, vlora.layer = 0 : i64, vlora.module = "model.language_model.layers.0.mlp.gate_proj", vlora.tower = #vlora<tower language>} : (tensor<1x4x16xf32>, tensor<32x16xf32>) -> tensor<1x4x32xf32>
  %w20 = vlora.param "model.language_model.layers.0.mlp.up_proj.weight" frozen initializer "model.onnx" [offset 14208, length 2048] : tensor<16x32xf32>
  %y20 = vlora.matmul %xl, %w20 {vlora.block = #vlora<block mlp>, vlora.layer = 0 : i64, vlora.module = "model.language_model.layers.0.mlp.up_proj", vlora.tower = #vlora<tower language>} : (tensor<1x4x16xf32>, tensor<16x32xf32>) -> tensor<1x4x32xf32>
  %w21 = vlora.param "model.language_model.layers.0.mlp.down_proj.weight" frozen initializer "model.onnx" [offset 16256, length 2048] : tensor<16x32xf32>
  %y21 = vlora.matmul %xl32, %w21 transpose_b {vlora.block = #vlora<block mlp>, vlora.layer = 0 : i64, vlora.module = "model.language_model.layers.0.mlp.down_proj", vlora.tower = #vlora<tower language>} : (tensor<1x4x32xf32>, tensor<16x32xf32>) -> tensor<1x4x16xf32>
  %w22 = vlora.param "model.language_model.layers.1.self_attn.q_proj.weight" frozen initializer "model.onnx" [offset 18304, length 1024] : tensor<16x16xf32>
  %y22 = vlora.matmul %xl, %w22 transpose_b {vlora.block = #vlora<block attention>, vlora.layer = 1 : i64, vlora.module = "model.language_model.layers.1.self_attn.q_proj", vlora.tower = #vlora<tower language>} : (tensor<1x4x16xf32>, tensor<16x16xf32>) -> tensor<1x4x16xf32>
  %w23 = vlora.param "model.language_model.layers.1.self_attn.k_proj.weight" frozen initializer "model.onnx" [offset 19328, length 1024] : tensor<16x16xf32>
  %y23 = vlora.matmul %xl, %w23 transpose_b {vlora.block = #vlora<block attention>, vlora.layer = 1 : i64, vlora.module = "model.language_model.layers.1.self_attn.k_proj", vlora.tower = #vlora<tower language>} : (tensor<1x4x16xf32>, tensor<16x16xf32>) -> tensor<1x4x16xf32>
  %w24 = vlora.param "model.language_model.layers.1.self_attn.v_proj.weight" frozen initializer "model.onnx" [offset 20352, length 1024] : tensor<16x16xf32>
  %y24 = vlora.matmul %xl, %w24 transpose_b {vlora.block = #vlora<block attention>, vlora.layer = 1 : i64, vlora.module = "model.language_model.layers.1.self_attn.v_proj", vlora.tower = #vlora<tower language>} : (tensor<1x4x16xf32>, tensor<16x16xf32>) -> tensor<1x4x16xf32>
  %w25 = vlora.param "model.language_model.layers.1.self_attn.o_proj.weight" frozen initializer "model.onnx" [offset 21376, length 1024] : tensor<16x16xf32>
  %y25 = vlora.matmul %xl, %w25 transpose_b {vlora.block = #vlora<block attention>, vlora.layer = 1 : i64, vlora.module = "model.language_model.layers.1.self_attn.o_proj", vlora.tower = #vlora<tower language>} : (tensor<1x4x16xf32>, tensor<16x16xf32>) -> tensor<1x4x16xf32>
  %w26 = vlora.param "model.language_model.layers.1.mlp.gate_proj.weight" frozen initializer "model.onnx" [offset 22400, length 2048] : tensor<32x16xf32>
  %y26 = vlora.matmul %xl, %w26 transpose_b {vlora.block = #vlora<block mlp>, vlora.layer = 1 : i64, vlora.module = "model.language_model.layers.1.mlp.gate_proj", vlora.tower = #vlora<tower language>} : (tensor<1x4x16xf32>, tensor<32x16xf32>) -> tensor<1x4x32xf32>
  %w27 = vlora.param "model.language_model.layers.1.mlp.up_proj.weight" frozen initializer "model.onnx" [offset 24448, length 2048] : tensor<16x32xf32>
  %y27 = vlora.matmul %xl, %w27 {vlora.block = #vlora<block mlp>, vlora.layer = 1 : i64, vlora.module = "model.language_model.layers.1.mlp.up_proj", vlora.tower = #vlora<tower language>} : (tensor<1x4x16xf32>, tensor<16x32xf32>) -> tensor<1x4x32xf32>
  %w28 = vlora.param "model.language_model.layers.1.mlp.down_proj.weight" frozen initializer "model.onnx" [offset 26496, length 2048] : tensor<16x32xf32>
  %y28 = vlora.matmul %xl32, %w28 transpose_b {vlora.block = #vlora<block mlp>, vlora.layer = 1 : i64, vlora.module = "model.language_model.layers.1.mlp.down_proj", vlora.tower = #vlora<tower language>} : (tensor<1x4x32xf32>, tensor<16x32xf32>) -> tensor<1x4x16xf32>
  %w29 = vlora.param "lm_head.weight" frozen initializer "model.onnx" [offset 28544, length 3200] : tensor<50x16xf32>
  %y29 = vlora.matmul %xl, %w29 transpose_b {vlora.block = #vlora<block other>, vlora.module = "lm_head", vlora.tower = #vlora<tower other>} : (tensor<1x4x16xf32>, tensor<50x16xf32>) -> tensor<1x4x50xf32>
  return
}
