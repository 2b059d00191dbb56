// RUN: vlora-opt %s --lower-vlora-to-vlrt -split-input-file | FileCheck %s
// RUN: vlora-opt %s --lower-vlora-to-vlrt -split-input-file --verify-roundtrip > /dev/null

// Buffers live from definition to last use; the input and the matmul result
// overlap in time, so they get different offsets; exp writes in place over
// the dying matmul result; the reshape is an alias of it; the arena is the
// exact peak (two 256-byte buffers).
// CHECK-LABEL: func.func @main() attributes {vlrt.arena_bytes = 512 : i64}
// CHECK: %[[X:.*]] = vlrt.input "x" 0 : memref<4x16xf32>
// CHECK: %[[W:.*]] = vlrt.weight "w" "model" "m.onnx"{{ ?}}[offset 0, length 1024] : memref<16x16xf32>
// CHECK: %[[A:.*]] = vlrt.slice 256 : memref<4x16xf32>
// CHECK: vlrt.kernel "matmul" ins(%[[X]], %[[W]] : memref<4x16xf32>, memref<16x16xf32>) outs(%[[A]] : memref<4x16xf32>) params {}
// CHECK: %[[B:.*]] = vlrt.slice 256 : memref<4x16xf32>
// CHECK: vlrt.kernel "exp" ins(%[[A]] : memref<4x16xf32>) outs(%[[B]] : memref<4x16xf32>) params {}
// CHECK: %[[C:.*]] = vlrt.slice 256 : memref<64xf32>
// CHECK-NOT: vlrt.kernel "reshape"
// CHECK: vlrt.output "y" %[[C]] : memref<64xf32>
func.func @main(%x: tensor<4x16xf32> {vlora.name = "x"}) -> (tensor<64xf32> {vlora.name = "y"}) {
  %w = vlora.param "w" frozen initializer "m.onnx" [offset 0, length 1024] : tensor<16x16xf32>
  %a = vlora.matmul %x, %w : (tensor<4x16xf32>, tensor<16x16xf32>) -> tensor<4x16xf32>
  %b = vlora.exp %a : tensor<4x16xf32>
  %c = vlora.reshape %b [64] : (tensor<4x16xf32>) -> tensor<64xf32>
  return %c : tensor<64xf32>
}

// -----

// Attributes become kernel params (unit -> 1, types and enums -> strings);
// the tags are dropped; buffers that are dead by then are reused.
// CHECK-LABEL: func.func @main() attributes {vlrt.arena_bytes = 192 : i64}
// CHECK: vlrt.kernel "softmax" {{.*}} params {axis = 1 : i64}
// CHECK: vlrt.kernel "gelu" {{.*}} params {approximate = "tanh"}
// CHECK: vlrt.kernel "cast" {{.*}} params {to = "i64"}
// CHECK: vlrt.kernel "reduce_sum" {{.*}} params {axes = array<i64: 1>, keepdims = 1 : i64}
// CHECK: %[[C:.*]] = vlrt.constant dense<1> : tensor<i64> : memref<i64>
// CHECK: vlrt.kernel "add" ins({{.*}}, %[[C]] : memref<2x1xi64>, memref<i64>)
func.func @main(%x: tensor<2x8xf32> {vlora.name = "x"}) -> (tensor<2x1xi64> {vlora.name = "y"}) {
  %s = vlora.softmax %x axis 1 {vlora.tower = #vlora<tower vision>} : tensor<2x8xf32>
  %g = vlora.gelu %s tanh : tensor<2x8xf32>
  %i = vlora.cast %g to i64 : (tensor<2x8xf32>) -> tensor<2x8xi64>
  %r = vlora.reduce_sum %i axes [1] keepdims : (tensor<2x8xi64>) -> tensor<2x1xi64>
  %one = vlora.constant dense<1> : tensor<i64>
  %y = vlora.add %r, %one : (tensor<2x1xi64>, tensor<i64>) -> tensor<2x1xi64>
  return %y : tensor<2x1xi64>
}

// -----

// Outputs that are a graph input, a weight or a constant (identity graphs,
// constants the importer folded) are copied into arena buffers of their own
// after the last op; the input stays pinned, so the copies do not overlap it.
// The arena: x (256 bytes), its copy (256) and two 64-byte aligned copies.
// CHECK-LABEL: func.func @main() attributes {vlrt.arena_bytes = 640 : i64}
// CHECK: %[[X:.*]] = vlrt.input "x" 0 : memref<4x16xf32>
// CHECK: %[[W:.*]] = vlrt.weight "w"
// CHECK: %[[K:.*]] = vlrt.constant dense<[1, 2]> : tensor<2xi64> : memref<2xi64>
// CHECK: %[[CX:.*]] = vlrt.slice {{[0-9]+}} : memref<4x16xf32>
// CHECK: vlrt.kernel "reshape" ins(%[[X]] : memref<4x16xf32>) outs(%[[CX]] : memref<4x16xf32>) params {shape = array<i64: 4, 16>}
// CHECK: %[[CW:.*]] = vlrt.slice {{[0-9]+}} : memref<2x2xf32>
// CHECK: vlrt.kernel "reshape" ins(%[[W]] : memref<2x2xf32>) outs(%[[CW]] : memref<2x2xf32>) params {shape = array<i64: 2, 2>}
// CHECK: %[[CK:.*]] = vlrt.slice {{[0-9]+}} : memref<2xi64>
// CHECK: vlrt.kernel "reshape" ins(%[[K]] : memref<2xi64>) outs(%[[CK]] : memref<2xi64>) params {shape = array<i64: 2>}
// CHECK: vlrt.output "a" %[[CX]]
// CHECK: vlrt.output "b" %[[CW]]
// CHECK: vlrt.output "c" %[[CK]]
func.func @main(%x: tensor<4x16xf32> {vlora.name = "x"})
    -> (tensor<4x16xf32> {vlora.name = "a"}, tensor<2x2xf32> {vlora.name = "b"},
        tensor<2xi64> {vlora.name = "c"}) {
  %w = vlora.param "w" frozen initializer "m.onnx" [offset 0, length 16] : tensor<2x2xf32>
  %k = vlora.constant dense<[1, 2]> : tensor<2xi64>
  return %x, %w, %k : tensor<4x16xf32>, tensor<2x2xf32>, tensor<2xi64>
}
