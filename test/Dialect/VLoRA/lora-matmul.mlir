// vlora.lora_matmul parses, verifies, infers its result type and round-trips.
// RUN: vlora-opt %s -split-input-file | FileCheck %s
// RUN: vlora-opt %s -split-input-file --verify-roundtrip

// CHECK-LABEL: func.func @transposed_weight
// CHECK: vlora.lora_matmul %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} scale 2.000000e+00 dropout 5.000000e-02 transpose_b {vlora.module = "model.layers.0.self_attn.q_proj"} : (tensor<2x16x32xf32>, tensor<64x32xf32>, tensor<8x32xf32>, tensor<64x8xf32>) -> tensor<2x16x64xf32>
func.func @transposed_weight(%x: tensor<2x16x32xf32>, %w: tensor<64x32xf32>, %a: tensor<8x32xf32>, %b: tensor<64x8xf32>) -> tensor<2x16x64xf32> {
  %y = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.05 transpose_b {vlora.module = "model.layers.0.self_attn.q_proj"} : (tensor<2x16x32xf32>, tensor<64x32xf32>, tensor<8x32xf32>, tensor<64x8xf32>) -> tensor<2x16x64xf32>
  return %y : tensor<2x16x64xf32>
}

// -----

// A weight stored [in, out]; rank 1; a rank-2 input.
// CHECK-LABEL: func.func @plain_weight
// CHECK: vlora.lora_matmul %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} scale 1.000000e+00 dropout 0.000000e+00 : (tensor<4x32xf32>, tensor<32x48xf32>, tensor<1x32xf32>, tensor<48x1xf32>) -> tensor<4x48xf32>
// CHECK-NOT: transpose_b
func.func @plain_weight(%x: tensor<4x32xf32>, %w: tensor<32x48xf32>, %a: tensor<1x32xf32>, %b: tensor<48x1xf32>) -> tensor<4x48xf32> {
  %y = vlora.lora_matmul %x, %w, %a, %b scale 1.0 dropout 0.0 : (tensor<4x32xf32>, tensor<32x48xf32>, tensor<1x32xf32>, tensor<48x1xf32>) -> tensor<4x48xf32>
  return %y : tensor<4x48xf32>
}

// -----

// fp32 adapters on a bf16 layer (PEFT's default adapter dtype): the result
// has the input's element type.
// CHECK-LABEL: func.func @fp32_adapters_on_bf16
// CHECK: vlora.lora_matmul {{.*}} : (tensor<1x8x16xbf16>, tensor<24x16xbf16>, tensor<4x16xf32>, tensor<24x4xf32>) -> tensor<1x8x24xbf16>
func.func @fp32_adapters_on_bf16(%x: tensor<1x8x16xbf16>, %w: tensor<24x16xbf16>, %a: tensor<4x16xf32>, %b: tensor<24x4xf32>) -> tensor<1x8x24xbf16> {
  %y = vlora.lora_matmul %x, %w, %a, %b scale 0.5 dropout 0.1 transpose_b : (tensor<1x8x16xbf16>, tensor<24x16xbf16>, tensor<4x16xf32>, tensor<24x4xf32>) -> tensor<1x8x24xbf16>
  return %y : tensor<1x8x24xbf16>
}

// -----

// The generic form has the same attributes.
// CHECK-LABEL: func.func @generic
// CHECK: vlora.lora_matmul %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} scale 4.000000e+00 dropout 0.000000e+00 transpose_b :
func.func @generic(%x: tensor<2x8xf32>, %w: tensor<8x8xf32>, %a: tensor<2x8xf32>, %b: tensor<8x2xf32>) -> tensor<2x8xf32> {
  %y = "vlora.lora_matmul"(%x, %w, %a, %b) {scale = 4.0 : f64, dropout = 0.0 : f64, transpose_b} : (tensor<2x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<2x8xf32>
  return %y : tensor<2x8xf32>
}
