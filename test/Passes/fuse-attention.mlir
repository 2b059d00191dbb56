// --vlora-fuse-attention: matmul(q, k) -> [* or / scale] -> [+ mask] ->
// softmax(last axis) -> matmul(p, v) becomes one vlora.attention, the
// scale folded into its attribute (a division as its reciprocal) and the
// transposed-key form kept as transpose_k; blocks whose parts have other
// uses, a softmax over another axis, a scale that is not a one-element
// constant, or q, k, v with different leading dimensions stay as they are.

// RUN: vlora-opt %s --vlora-fuse-attention --split-input-file | FileCheck %s
// RUN: vlora-opt %s --vlora-fuse-attention --split-input-file --verify-roundtrip > /dev/null

// CHECK-LABEL: func.func @masked
// CHECK-NEXT: %[[C:.*]] = vlora.constant
// CHECK-NEXT: %[[O:.*]] = vlora.attention %arg0, %arg1, %arg2 mask %arg3 scale 2.500000e-01 : (tensor<2x4x8x16xf32>, tensor<2x4x16x8xf32>, tensor<2x4x8x16xf32>, tensor<2x1x8x8xf32>) -> tensor<2x4x8x16xf32>
// CHECK-NEXT: return %[[O]]
func.func @masked(%q: tensor<2x4x8x16xf32>, %k: tensor<2x4x16x8xf32>, %v: tensor<2x4x8x16xf32>, %mask: tensor<2x1x8x8xf32>) -> tensor<2x4x8x16xf32> {
  %c = vlora.constant dense<0.25> : tensor<f32>
  %s = vlora.matmul %q, %k : (tensor<2x4x8x16xf32>, tensor<2x4x16x8xf32>) -> tensor<2x4x8x8xf32>
  %t = vlora.mul %s, %c : (tensor<2x4x8x8xf32>, tensor<f32>) -> tensor<2x4x8x8xf32>
  %m = vlora.add %t, %mask : (tensor<2x4x8x8xf32>, tensor<2x1x8x8xf32>) -> tensor<2x4x8x8xf32>
  %p = vlora.softmax %m axis 3 : tensor<2x4x8x8xf32>
  %o = vlora.matmul %p, %v : (tensor<2x4x8x8xf32>, tensor<2x4x8x16xf32>) -> tensor<2x4x8x16xf32>
  return %o : tensor<2x4x8x16xf32>
}

// -----

// A division, the mask as the add's lhs, keys as [..., T, D] (transpose_b),
// softmax axis -1.
// CHECK-LABEL: func.func @divided
// CHECK: vlora.attention %arg0, %arg1, %arg2 mask %arg3 scale 1.250000e-01 transpose_k : (tensor<3x8x16xf32>, tensor<3x10x16xf32>, tensor<3x10x4xf32>, tensor<8x10xf32>) -> tensor<3x8x4xf32>
// CHECK-NOT: vlora.softmax
func.func @divided(%q: tensor<3x8x16xf32>, %k: tensor<3x10x16xf32>, %v: tensor<3x10x4xf32>, %mask: tensor<8x10xf32>) -> tensor<3x8x4xf32> {
  %c = vlora.constant dense<8.0> : tensor<1xf32>
  %s = vlora.matmul %q, %k transpose_b : (tensor<3x8x16xf32>, tensor<3x10x16xf32>) -> tensor<3x8x10xf32>
  %t = vlora.div %s, %c : (tensor<3x8x10xf32>, tensor<1xf32>) -> tensor<3x8x10xf32>
  %m = vlora.add %mask, %t : (tensor<8x10xf32>, tensor<3x8x10xf32>) -> tensor<3x8x10xf32>
  %p = vlora.softmax %m axis -1 : tensor<3x8x10xf32>
  %o = vlora.matmul %p, %v : (tensor<3x8x10xf32>, tensor<3x10x4xf32>) -> tensor<3x8x4xf32>
  return %o : tensor<3x8x4xf32>
}

// -----

// Neither scale nor mask; the constant on the mul's lhs elsewhere.
// CHECK-LABEL: func.func @plain
// CHECK: vlora.attention %arg0, %arg1, %arg2 scale 1.000000e+00 :
// CHECK-LABEL: func.func @scale_lhs
// CHECK: vlora.attention %arg0, %arg1, %arg2 scale 5.000000e-01 :
func.func @plain(%q: tensor<2x8x4xf32>, %k: tensor<2x4x8xf32>, %v: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  %s = vlora.matmul %q, %k : (tensor<2x8x4xf32>, tensor<2x4x8xf32>) -> tensor<2x8x8xf32>
  %p = vlora.softmax %s axis 2 : tensor<2x8x8xf32>
  %o = vlora.matmul %p, %v : (tensor<2x8x8xf32>, tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}
func.func @scale_lhs(%q: tensor<2x8x4xf32>, %k: tensor<2x4x8xf32>, %v: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  %c = vlora.constant dense<0.5> : tensor<f32>
  %s = vlora.matmul %q, %k : (tensor<2x8x4xf32>, tensor<2x4x8xf32>) -> tensor<2x8x8xf32>
  %t = vlora.mul %c, %s : (tensor<f32>, tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %p = vlora.softmax %t axis 2 : tensor<2x8x8xf32>
  %o = vlora.matmul %p, %v : (tensor<2x8x8xf32>, tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

// Left alone: the probabilities are also returned; a softmax over another
// axis; a scale that is an input; keys broadcast over the heads.
// CHECK-LABEL: func.func @probabilities_used
// CHECK-NOT: vlora.attention
// CHECK: vlora.softmax
// CHECK-LABEL: func.func @other_axis
// CHECK-NOT: vlora.attention
// CHECK: vlora.softmax
// CHECK-LABEL: func.func @scale_input
// CHECK-NOT: vlora.attention
// CHECK: vlora.softmax
// CHECK-LABEL: func.func @broadcast_keys
// CHECK-NOT: vlora.attention
// CHECK: vlora.softmax
func.func @probabilities_used(%q: tensor<2x8x4xf32>, %k: tensor<2x4x8xf32>, %v: tensor<2x8x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x8x8xf32>) {
  %s = vlora.matmul %q, %k : (tensor<2x8x4xf32>, tensor<2x4x8xf32>) -> tensor<2x8x8xf32>
  %p = vlora.softmax %s axis 2 : tensor<2x8x8xf32>
  %o = vlora.matmul %p, %v : (tensor<2x8x8xf32>, tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o, %p : tensor<2x8x4xf32>, tensor<2x8x8xf32>
}
func.func @other_axis(%q: tensor<2x8x4xf32>, %k: tensor<2x4x8xf32>, %v: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  %s = vlora.matmul %q, %k : (tensor<2x8x4xf32>, tensor<2x4x8xf32>) -> tensor<2x8x8xf32>
  %p = vlora.softmax %s axis 1 : tensor<2x8x8xf32>
  %o = vlora.matmul %p, %v : (tensor<2x8x8xf32>, tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}
func.func @scale_input(%q: tensor<2x8x4xf32>, %k: tensor<2x4x8xf32>, %v: tensor<2x8x4xf32>, %c: tensor<f32>) -> tensor<2x8x4xf32> {
  %s = vlora.matmul %q, %k : (tensor<2x8x4xf32>, tensor<2x4x8xf32>) -> tensor<2x8x8xf32>
  %t = vlora.mul %s, %c : (tensor<2x8x8xf32>, tensor<f32>) -> tensor<2x8x8xf32>
  %p = vlora.softmax %t axis 2 : tensor<2x8x8xf32>
  %o = vlora.matmul %p, %v : (tensor<2x8x8xf32>, tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}
func.func @broadcast_keys(%q: tensor<2x4x8x16xf32>, %k: tensor<2x1x16x8xf32>, %v: tensor<2x1x8x16xf32>) -> tensor<2x4x8x16xf32> {
  %s = vlora.matmul %q, %k : (tensor<2x4x8x16xf32>, tensor<2x1x16x8xf32>) -> tensor<2x4x8x8xf32>
  %p = vlora.softmax %s axis 3 : tensor<2x4x8x8xf32>
  %o = vlora.matmul %p, %v : (tensor<2x4x8x8xf32>, tensor<2x1x8x16xf32>) -> tensor<2x4x8x16xf32>
  return %o : tensor<2x4x8x16xf32>
}
