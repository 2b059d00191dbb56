// --vlora-rematerialize: of the forward values the backward reads (the ops
// after the first one that reads loss_scale), keep the fewest bytes and
// recompute the rest by cheap ops, cloned right before their first backward
// reader.

// RUN: vlora-opt %s --split-input-file --vlora-rematerialize | FileCheck %s
// RUN: vlora-opt %s --split-input-file --vlora-rematerialize --verify-roundtrip > /dev/null

// A SiLU gate: the backward reads the sigmoid, the gated product and its
// bf16 copy. Keeping the lora_matmul's output (which the backward reads
// anyway) and recomputing the three from it keeps 2 KiB instead of 7.
// CHECK-LABEL: func.func @train_step
// CHECK:      %[[H:.*]] = vlora.lora_matmul
// CHECK-NEXT: %[[S:.*]] = vlora.sigmoid %[[H]]
// CHECK-NEXT: %[[G:.*]] = vlora.mul %[[H]], %[[S]]
// CHECK-NEXT: %[[GB:.*]] = vlora.cast %[[G]] to bf16
// CHECK-NEXT: %[[SEED:.*]] = vlora.mul %[[G]], %[[LS:.*]] :
// CHECK-NEXT: %[[S2:.*]] = vlora.sigmoid %[[H]]
// CHECK-NEXT: %[[D1:.*]] = vlora.mul %[[SEED]], %[[S2]]
// CHECK-NEXT: %[[D2:.*]] = vlora.mul %[[D1]], %[[H]]
// CHECK-NEXT: %[[G2:.*]] = vlora.mul %[[H]], %[[S2]]
// CHECK-NEXT: %[[GB2:.*]] = vlora.cast %[[G2]] to bf16
// CHECK-NEXT: vlora.lora_matmul %[[GB2]]
// CHECK-NEXT: vlora.add %[[D2]], %[[G2]]
// CHECK-NEXT: return
func.func @train_step(%x: tensor<16x8xf32> {vlora.name = "x"}, %w: tensor<8x32xf32> {vlora.name = "w"}, %a: tensor<2x8xf32> {vlora.name = "a"}, %b: tensor<32x2xf32> {vlora.name = "b"}, %w2: tensor<32x32xbf16> {vlora.name = "w2"}, %a2: tensor<2x32xf32> {vlora.name = "a2"}, %b2: tensor<32x2xf32> {vlora.name = "b2"}, %ls: tensor<f32> {vlora.name = "loss_scale"}) -> (tensor<16x32xf32>, tensor<16x32xf32>, tensor<16x32xf32>) {
  %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 : (tensor<16x8xf32>, tensor<8x32xf32>, tensor<2x8xf32>, tensor<32x2xf32>) -> tensor<16x32xf32>
  %s = vlora.sigmoid %h : tensor<16x32xf32>
  %g = vlora.mul %h, %s : (tensor<16x32xf32>, tensor<16x32xf32>) -> tensor<16x32xf32>
  %gb = vlora.cast %g to bf16 : (tensor<16x32xf32>) -> tensor<16x32xbf16>
  %seed = vlora.mul %g, %ls : (tensor<16x32xf32>, tensor<f32>) -> tensor<16x32xf32>
  %d1 = vlora.mul %seed, %s : (tensor<16x32xf32>, tensor<16x32xf32>) -> tensor<16x32xf32>
  %d2 = vlora.mul %d1, %h : (tensor<16x32xf32>, tensor<16x32xf32>) -> tensor<16x32xf32>
  %y = vlora.lora_matmul %gb, %w2, %a2, %b2 scale 1.0 dropout 0.0 f32_result : (tensor<16x32xbf16>, tensor<32x32xbf16>, tensor<2x32xf32>, tensor<32x2xf32>) -> tensor<16x32xf32>
  %e = vlora.add %d2, %g : (tensor<16x32xf32>, tensor<16x32xf32>) -> tensor<16x32xf32>
  return %d2, %y, %e : tensor<16x32xf32>, tensor<16x32xf32>, tensor<16x32xf32>
}

// -----

// A small value computed from a large one: keeping the 64 bytes of the
// row means beats keeping the 1 KiB input to recompute them. A value of a
// matmul is never recomputed.
// CHECK-LABEL: func.func @train_step
// CHECK:      %[[H:.*]] = vlora.matmul
// CHECK-NEXT: %[[R:.*]] = vlora.reduce_mean %[[H]]
// CHECK-NEXT: %[[SEED:.*]] = vlora.mul %[[R]]
// CHECK-NEXT: vlora.mul %[[SEED]], %[[R]]
// CHECK-NEXT: return
func.func @train_step(%x: tensor<16x8xf32> {vlora.name = "x"}, %w: tensor<8x16xf32> {vlora.name = "w"}, %ls: tensor<f32> {vlora.name = "loss_scale"}) -> tensor<16x1xf32> {
  %h = vlora.matmul %x, %w : (tensor<16x8xf32>, tensor<8x16xf32>) -> tensor<16x16xf32>
  %r = vlora.reduce_mean %h axes [1] keepdims : (tensor<16x16xf32>) -> tensor<16x1xf32>
  %seed = vlora.mul %r, %ls : (tensor<16x1xf32>, tensor<f32>) -> tensor<16x1xf32>
  %d = vlora.mul %seed, %r : (tensor<16x1xf32>, tensor<16x1xf32>) -> tensor<16x1xf32>
  return %d : tensor<16x1xf32>
}

// -----

// What is computed from arguments and constants alone costs nothing to
// recompute: a mask is rebuilt next to its backward reader. The op that
// reads loss_scale reads the forward's own value.
// CHECK-LABEL: func.func @train_step
// CHECK:      %[[M:.*]] = vlora.where %[[C:.*]], %[[ONE:.*]], %[[ZERO:.*]] :
// CHECK-NEXT: %[[SEED:.*]] = vlora.mul %[[M]], %[[LS:.*]] :
// CHECK-NEXT: %[[M2:.*]] = vlora.where %[[C]], %[[ONE]], %[[ZERO]] :
// CHECK-NEXT: vlora.mul %[[SEED]], %[[M2]]
func.func @train_step(%c: tensor<4x4xi1> {vlora.name = "cond"}, %ls: tensor<f32> {vlora.name = "loss_scale"}) -> tensor<4x4xf32> {
  %one = vlora.constant dense<1.0> : tensor<f32>
  %zero = vlora.constant dense<0.0> : tensor<f32>
  %m = vlora.where %c, %one, %zero : (tensor<4x4xi1>, tensor<f32>, tensor<f32>) -> tensor<4x4xf32>
  %seed = vlora.mul %m, %ls : (tensor<4x4xf32>, tensor<f32>) -> tensor<4x4xf32>
  %d = vlora.mul %seed, %m : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  return %d : tensor<4x4xf32>
}

// -----

// A function without loss_scale (the forward @main, @optimizer_step) is
// left alone.
// CHECK-LABEL: func.func @main
// CHECK-COUNT-1: vlora.sigmoid
// CHECK-NOT: vlora.sigmoid
func.func @main(%x: tensor<4x4xf32> {vlora.name = "x"}) -> (tensor<4x4xf32>, tensor<4x4xf32>) {
  %s = vlora.sigmoid %x : tensor<4x4xf32>
  %t = vlora.tanh %s : tensor<4x4xf32>
  %u = vlora.mul %t, %s : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  return %t, %u : tensor<4x4xf32>, tensor<4x4xf32>
}
