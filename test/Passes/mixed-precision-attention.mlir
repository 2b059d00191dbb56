// --vlora-mixed-precision with activations: a fused attention's q, k and v
// get their bf16 copies (shared with the backward's attention_grad, whose
// dO stays f32) and both ops get f32_result; the mask stays f32.

// RUN: vlora-opt %s --vlora-build-training-step --vlora-mixed-precision | FileCheck %s
// RUN: vlora-opt %s --vlora-build-training-step --vlora-mixed-precision --verify-roundtrip > /dev/null

module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}, %mask: tensor<1x4x4xf32> {vlora.name = "mask"}) -> (tensor<1x4x16xf32> {vlora.name = "logits"}) {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %k = vlora.tanh %h : tensor<1x4x8xf32>
    %o = vlora.attention %h, %k, %h mask %mask scale 0.35 transpose_k : (tensor<1x4x8xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>, tensor<1x4x4xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %o, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// CHECK-LABEL: func.func @train_step
// CHECK: %[[H:.*]] = vlora.lora_matmul
// CHECK-NEXT: %[[HB:.*]] = vlora.cast %[[H]] to bf16
// CHECK-NEXT: %[[K:.*]] = vlora.tanh %[[H]]
// CHECK-NEXT: %[[KB:.*]] = vlora.cast %[[K]] to bf16
// CHECK-NEXT: vlora.attention %[[HB]], %[[KB]], %[[HB]] mask %{{.*}} scale 3.500000e-01 transpose_k f32_result : (tensor<1x4x8xbf16>, tensor<1x4x8xbf16>, tensor<1x4x8xbf16>, tensor<1x4x4xf32>) -> tensor<1x4x8xf32>
// CHECK: vlora.attention_grad %{{.*}}, %[[HB]], %[[KB]], %[[HB]] mask %{{.*}} transpose_k f32_result : (tensor<1x4x8xf32>, tensor<1x4x8xbf16>, tensor<1x4x8xbf16>, tensor<1x4x8xbf16>, tensor<1x4x4xf32>) -> (tensor<1x4x8xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>)
