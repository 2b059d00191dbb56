// --vlora-fuse-elementwise: chains of f32 elementwise ops (and the casts
// between f32 and bf16) of one result shape become vlora.fused_elementwise
// ops placed at the chain's first op; values used outside the chain are its
// results.

// RUN: vlora-opt %s --split-input-file --vlora-fuse-elementwise | FileCheck %s
// RUN: vlora-opt %s --split-input-file --vlora-fuse-elementwise --verify-roundtrip > /dev/null

// SiLU(gate) * up rounded to bf16: one program; the f32 product is also a
// result because the return reads it.
// CHECK-LABEL: func.func @swiglu
// CHECK-NEXT: %[[F:.*]]:2 = vlora.fused_elementwise(%arg0, %arg1) program [10, 0, -1, 34, 0, 2, 34, 3, 1, 48, 4, -1] outputs [4, 5] : (tensor<4x8xf32>, tensor<4x8xf32>) -> (tensor<4x8xf32>, tensor<4x8xbf16>)
// CHECK-NEXT: return %[[F]]#1, %[[F]]#0
func.func @swiglu(%g: tensor<4x8xf32>, %u: tensor<4x8xf32>) -> (tensor<4x8xbf16>, tensor<4x8xf32>) {
  %s = vlora.sigmoid %g : tensor<4x8xf32>
  %a = vlora.mul %g, %s : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  %b = vlora.mul %a, %u : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  %c = vlora.cast %b to bf16 : (tensor<4x8xf32>) -> tensor<4x8xbf16>
  return %c, %b : tensor<4x8xbf16>, tensor<4x8xf32>
}

// -----

// An RMSNorm as exported: the ops on the [4, 1] statistics are a group of
// their own shape; the normalisation, the scale and the bf16 copy read
// them, broadcast. The square (pow by the constant 2, opcode 19 when it
// fuses) is alone before the reduction and stays as it is.
// CHECK-LABEL: func.func @rms_norm
// CHECK:      %[[SQ:.*]] = vlora.pow %arg0
// CHECK-NEXT: %[[M:.*]] = vlora.reduce_mean %[[SQ]]
// CHECK-NEXT: %[[R:.*]] = vlora.fused_elementwise(%[[M]], %{{.*}}) program [32, 0, 1, 5, 2, -1, 7, 3, -1] outputs [4]
// CHECK-NEXT: %[[Y:.*]] = vlora.fused_elementwise(%arg0, %[[R]], %arg1) program [34, 0, 1, 34, 3, 2, 48, 4, -1] outputs [5] : (tensor<4x8xf32>, tensor<4x1xf32>, tensor<8xf32>) -> tensor<4x8xbf16>
// CHECK-NEXT: return %[[Y]]
func.func @rms_norm(%x: tensor<4x8xf32>, %w: tensor<8xf32>) -> tensor<4x8xbf16> {
  %two = vlora.constant dense<2.0> : tensor<f32>
  %eps = vlora.constant dense<1.0e-6> : tensor<f32>
  %p = vlora.pow %x, %two : (tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xf32>
  %m = vlora.reduce_mean %p axes [1] keepdims : (tensor<4x8xf32>) -> tensor<4x1xf32>
  %e = vlora.add %m, %eps : (tensor<4x1xf32>, tensor<f32>) -> tensor<4x1xf32>
  %s = vlora.sqrt %e : tensor<4x1xf32>
  %r = vlora.reciprocal %s : tensor<4x1xf32>
  %n = vlora.mul %x, %r : (tensor<4x8xf32>, tensor<4x1xf32>) -> tensor<4x8xf32>
  %y = vlora.mul %n, %w : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
  %c = vlora.cast %y to bf16 : (tensor<4x8xf32>) -> tensor<4x8xbf16>
  return %c : tensor<4x8xbf16>
}

// -----

// What does not fuse: an op alone, ops on integers, and an op whose other
// operand is made after the group's first op (the fused op runs there).
// Pow by 3 is the general pow (38).
// CHECK-LABEL: func.func @apart
// CHECK:      vlora.fused_elementwise(%arg0, %{{.*}}) program [38, 0, 1, 8, 2, -1] outputs [3]
// CHECK-NEXT: %[[T:.*]] = vlora.tanh
// CHECK-NEXT: %[[L:.*]] = vlora.matmul
// CHECK-NEXT: vlora.add %[[T]], %[[L]]
// CHECK-NEXT: vlora.add %arg2, %arg2
// CHECK-NOT: fused_elementwise
func.func @apart(%x: tensor<4x4xf32>, %y: tensor<4x4xf32>, %i: tensor<4x4xi64>) -> (tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xi64>) {
  %three = vlora.constant dense<3.0> : tensor<f32>
  %p = vlora.pow %x, %three : (tensor<4x4xf32>, tensor<f32>) -> tensor<4x4xf32>
  %q = vlora.tanh %p : tensor<4x4xf32>
  %t = vlora.tanh %x : tensor<4x4xf32>
  %l = vlora.matmul %y, %y : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %s = vlora.add %t, %l : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %j = vlora.add %i, %i : (tensor<4x4xi64>, tensor<4x4xi64>) -> tensor<4x4xi64>
  return %q, %s, %j : tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xi64>
}

// -----

// An op far after the group (a backward reader of a forward value, here 17
// ops later) starts its own group instead of pulling the computation, and
// the lifetime of what it reads, back to the forward.
// CHECK-LABEL: func.func @far
// CHECK:      vlora.fused_elementwise(%arg0) program [8, 0, -1, 10, 1, -1]
// CHECK-COUNT-17: vlora.matmul
// CHECK-NEXT: vlora.fused_elementwise(%{{.*}}) program [3, 0, -1, 2, 1, -1]
func.func @far(%x: tensor<4x4xf32>, %w: tensor<4x4xf32>) -> (tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>) {
  %a = vlora.tanh %x : tensor<4x4xf32>
  %b = vlora.sigmoid %a : tensor<4x4xf32>
  %m0 = vlora.matmul %w, %w : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %m1 = vlora.matmul %m0, %w : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %m2 = vlora.matmul %m1, %w : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %m3 = vlora.matmul %m2, %w : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %m4 = vlora.matmul %m3, %w : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %m5 = vlora.matmul %m4, %w : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %m6 = vlora.matmul %m5, %w : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %m7 = vlora.matmul %m6, %w : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %m8 = vlora.matmul %m7, %w : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %m9 = vlora.matmul %m8, %w : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %m10 = vlora.matmul %m9, %w : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %m11 = vlora.matmul %m10, %w : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %m12 = vlora.matmul %m11, %w : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %m13 = vlora.matmul %m12, %w : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %m14 = vlora.matmul %m13, %w : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %m15 = vlora.matmul %m14, %w : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %m16 = vlora.matmul %m15, %w : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %c = vlora.exp %b : tensor<4x4xf32>
  %d = vlora.abs %c : tensor<4x4xf32>
  return %b, %d, %m16 : tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>
}

// -----

// Pow by the constant 2 fuses as square (19) when x has the result's shape;
// a pow whose constant adds a dimension is the general pow (38), as the
// kernels compute it.
// CHECK-LABEL: func.func @square
// CHECK:      vlora.fused_elementwise(%arg0) program [19, 0, -1, 3, 1, -1] outputs [2]
// CHECK-NEXT: vlora.fused_elementwise(%arg1, %{{.*}}) program [38, 0, 1, 3, 2, -1] outputs [3]
func.func @square(%x: tensor<4x4xf32>, %r: tensor<4x1xf32>) -> (tensor<4x4xf32>, tensor<1x4x1xf32>) {
  %two = vlora.constant dense<2.0> : tensor<f32>
  %two3 = vlora.constant dense<2.0> : tensor<1x1x1xf32>
  %p = vlora.pow %x, %two : (tensor<4x4xf32>, tensor<f32>) -> tensor<4x4xf32>
  %e = vlora.exp %p : tensor<4x4xf32>
  %q = vlora.pow %r, %two3 : (tensor<4x1xf32>, tensor<1x1x1xf32>) -> tensor<1x4x1xf32>
  %f = vlora.exp %q : tensor<1x4x1xf32>
  return %e, %f : tensor<4x4xf32>, tensor<1x4x1xf32>
}

// -----

// A cast to bf16 after data movement that only it reads moves above it, so
// the transpose and the expand move bf16 and the cast joins the chain that
// made the value (here rotary's mul and add).
// CHECK-LABEL: func.func @hoist
// CHECK-NEXT: %[[Q:.*]] = vlora.fused_elementwise(%arg0, %arg1, %arg2) program [34, 0, 1, 32, 3, 2, 48, 4, -1] outputs [5] : (tensor<2x3x4xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>) -> tensor<2x3x4xbf16>
// CHECK-NEXT: %[[R:.*]] = vlora.reshape %[[Q]] [2, 1, 3, 4] : (tensor<2x3x4xbf16>) -> tensor<2x1x3x4xbf16>
// CHECK-NEXT: %[[E:.*]] = vlora.expand %[[R]] [2, 2, 3, 4] : (tensor<2x1x3x4xbf16>) -> tensor<2x2x3x4xbf16>
// CHECK-NEXT: %[[T:.*]] = vlora.transpose %[[E]] [0, 1, 3, 2] : (tensor<2x2x3x4xbf16>) -> tensor<2x2x4x3xbf16>
// CHECK-NEXT: return %[[T]]
func.func @hoist(%k: tensor<2x3x4xf32>, %cos: tensor<2x3x4xf32>, %rot: tensor<2x3x4xf32>) -> tensor<2x2x4x3xbf16> {
  %a = vlora.mul %k, %cos : (tensor<2x3x4xf32>, tensor<2x3x4xf32>) -> tensor<2x3x4xf32>
  %b = vlora.add %a, %rot : (tensor<2x3x4xf32>, tensor<2x3x4xf32>) -> tensor<2x3x4xf32>
  %r = vlora.reshape %b [2, 1, 3, 4] : (tensor<2x3x4xf32>) -> tensor<2x1x3x4xf32>
  %e = vlora.expand %r [2, 2, 3, 4] : (tensor<2x1x3x4xf32>) -> tensor<2x2x3x4xf32>
  %t = vlora.transpose %e [0, 1, 3, 2] : (tensor<2x2x3x4xf32>) -> tensor<2x2x4x3xf32>
  %c = vlora.cast %t to bf16 : (tensor<2x2x4x3xf32>) -> tensor<2x2x4x3xbf16>
  return %c : tensor<2x2x4x3xbf16>
}

// -----

// The f32 transpose is read by something else too: the cast stays after it.
// CHECK-LABEL: func.func @keep
// CHECK-NEXT: %[[T:.*]] = vlora.transpose %arg0
// CHECK-NEXT: vlora.cast %[[T]] to bf16
func.func @keep(%x: tensor<2x3xf32>) -> (tensor<3x2xbf16>, tensor<3x2xf32>) {
  %t = vlora.transpose %x [1, 0] : (tensor<2x3xf32>) -> tensor<3x2xf32>
  %c = vlora.cast %t to bf16 : (tensor<3x2xf32>) -> tensor<3x2xbf16>
  return %c, %t : tensor<3x2xbf16>, tensor<3x2xf32>
}

// -----

// A chain nothing reads is left as it is.
// CHECK-LABEL: func.func @dead
// CHECK-NEXT: vlora.neg
// CHECK-NEXT: vlora.exp
func.func @dead(%x: tensor<4xf32>) -> tensor<4xf32> {
  %a = vlora.neg %x : tensor<4xf32>
  %b = vlora.exp %a : tensor<4xf32>
  return %x : tensor<4xf32>
}
