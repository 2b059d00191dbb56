// --vlora-rematerialize=keep-bf16: a kept f32 activation (computed from a
// trainable argument, one with a `<name>.grad` accumulator next to it) is
// kept as a bf16 copy, half the bytes in the cut, and the backward widens
// it. Values computed without the adapters (position tables, masks) stay
// f32. Without the option the same program keeps f32 bytes.

// RUN: vlora-opt %s --split-input-file --vlora-rematerialize=keep-bf16=true | FileCheck %s
// RUN: vlora-opt %s --split-input-file --vlora-rematerialize | FileCheck %s --check-prefix=F32
// RUN: vlora-opt %s --split-input-file --vlora-rematerialize=keep-bf16=true --verify-roundtrip > /dev/null

// The lora_matmul's output is kept as bf16; the SiLU is recomputed from the
// widened copy. The cos table, a matmul of arguments that are not
// trainable, is kept as it is.
// CHECK-LABEL: func.func @train_step
// CHECK:      %[[H:.*]] = vlora.lora_matmul
// CHECK-NEXT: %[[HB:.*]] = vlora.cast %[[H]] to bf16
// CHECK-NEXT: %[[COS:.*]] = vlora.matmul
// CHECK-NEXT: %[[S:.*]] = vlora.silu %[[H]]
// CHECK-NEXT: %[[Y:.*]] = vlora.mul %[[S]], %[[COS]]
// CHECK-NEXT: %[[SEED:.*]] = vlora.mul %[[Y]], %{{.*}} :
// CHECK-NEXT: %[[HW:.*]] = vlora.cast %[[HB]] to f32
// CHECK-NEXT: %[[S2:.*]] = vlora.silu %[[HW]]
// CHECK-NEXT: %[[D:.*]] = vlora.mul %[[SEED]], %[[S2]]
// CHECK-NEXT: %[[E:.*]] = vlora.mul %[[D]], %[[COS]]
// CHECK-NEXT: vlora.mul %[[E]], %[[HW]]
// CHECK-NEXT: return
// F32-LABEL: func.func @train_step
// F32:      %[[H:.*]] = vlora.lora_matmul
// F32-NOT:  to bf16
// F32:      vlora.mul %{{.*}}, %arg6 :
// F32-NEXT: vlora.silu %[[H]]
func.func @train_step(%x: tensor<16x8xf32> {vlora.name = "x"}, %w: tensor<8x32xf32> {vlora.name = "w"}, %a: tensor<2x8xf32> {vlora.name = "a"}, %b: tensor<32x2xf32> {vlora.name = "b"}, %pos: tensor<16x1xf32> {vlora.name = "pos"}, %freq: tensor<1x32xf32> {vlora.name = "freq"}, %ls: tensor<f32> {vlora.name = "loss_scale"}, %ga: tensor<2x8xf32> {vlora.name = "a.grad"}, %gb: tensor<32x2xf32> {vlora.name = "b.grad"}) -> tensor<16x32xf32> {
  %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 : (tensor<16x8xf32>, tensor<8x32xf32>, tensor<2x8xf32>, tensor<32x2xf32>) -> tensor<16x32xf32>
  %cos = vlora.matmul %pos, %freq : (tensor<16x1xf32>, tensor<1x32xf32>) -> tensor<16x32xf32>
  %s = vlora.silu %h : tensor<16x32xf32>
  %y = vlora.mul %s, %cos : (tensor<16x32xf32>, tensor<16x32xf32>) -> tensor<16x32xf32>
  %seed = vlora.mul %y, %ls : (tensor<16x32xf32>, tensor<f32>) -> tensor<16x32xf32>
  %d = vlora.mul %seed, %s : (tensor<16x32xf32>, tensor<16x32xf32>) -> tensor<16x32xf32>
  %e = vlora.mul %d, %cos : (tensor<16x32xf32>, tensor<16x32xf32>) -> tensor<16x32xf32>
  %f = vlora.mul %e, %h : (tensor<16x32xf32>, tensor<16x32xf32>) -> tensor<16x32xf32>
  return %f : tensor<16x32xf32>
}

// -----

// A kept value the forward already has a bf16 copy of keeps that copy.
// CHECK-LABEL: func.func @train_step
// CHECK:      %[[H:.*]] = vlora.lora_matmul
// CHECK-NEXT: %[[HB:.*]] = vlora.cast %[[H]] to bf16
// CHECK-NEXT: %[[Y:.*]] = vlora.lora_matmul %[[HB]]
// CHECK-NEXT: %[[SEED:.*]] = vlora.mul %[[Y]], %{{.*}} :
// CHECK-NEXT: %[[HW:.*]] = vlora.cast %[[HB]] to f32
// CHECK-NEXT: vlora.mul %[[SEED]], %[[HW]]
// CHECK-NEXT: vlora.lora_matmul %[[HB]]
// CHECK-NOT: vlora.cast
func.func @train_step(%x: tensor<16x8xf32> {vlora.name = "x"}, %w: tensor<8x32xf32> {vlora.name = "w"}, %a: tensor<2x8xf32> {vlora.name = "a"}, %b: tensor<32x2xf32> {vlora.name = "b"}, %w2: tensor<32x32xbf16> {vlora.name = "w2"}, %a2: tensor<2x32xf32> {vlora.name = "a2"}, %b2: tensor<32x2xf32> {vlora.name = "b2"}, %ls: tensor<f32> {vlora.name = "loss_scale"}, %ga: tensor<2x8xf32> {vlora.name = "a.grad"}, %gb: tensor<32x2xf32> {vlora.name = "b.grad"}) -> (tensor<16x32xf32>, tensor<16x32xf32>) {
  %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 : (tensor<16x8xf32>, tensor<8x32xf32>, tensor<2x8xf32>, tensor<32x2xf32>) -> tensor<16x32xf32>
  %hb = vlora.cast %h to bf16 : (tensor<16x32xf32>) -> tensor<16x32xbf16>
  %y = vlora.lora_matmul %hb, %w2, %a2, %b2 scale 1.0 dropout 0.0 f32_result : (tensor<16x32xbf16>, tensor<32x32xbf16>, tensor<2x32xf32>, tensor<32x2xf32>) -> tensor<16x32xf32>
  %seed = vlora.mul %y, %ls : (tensor<16x32xf32>, tensor<f32>) -> tensor<16x32xf32>
  %d = vlora.mul %seed, %h : (tensor<16x32xf32>, tensor<16x32xf32>) -> tensor<16x32xf32>
  %z = vlora.lora_matmul %hb, %w2, %a2, %b2 scale 1.0 dropout 0.0 f32_result : (tensor<16x32xbf16>, tensor<32x32xbf16>, tensor<2x32xf32>, tensor<32x2xf32>) -> tensor<16x32xf32>
  return %d, %z : tensor<16x32xf32>, tensor<16x32xf32>
}
