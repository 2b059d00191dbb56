// RUN: vlora-opt %s -canonicalize -split-input-file | FileCheck %s

// The rewrite of a patch embedding keeps the numbers of the convolution: the
// index math is written out at PatchEmbeddingConvToMatmul in VLoRAOps.cpp
// (checked against a direct convolution when it was written); here the exact
// shapes and permutations of each step are checked.

// A ViT patch embedding (stride == kernel == 14, no padding): the convolution
// becomes patch extraction (reshape + transpose + reshape), a matmul against
// the flattened kernel, and the inverse layout change.
// CHECK-LABEL: func.func @patch_embedding
// CHECK-SAME: (%[[X:.*]]: tensor<2x3x28x42xf32>, %[[W:.*]]: tensor<32x3x14x14xf32>, %[[B:.*]]: tensor<32xf32>)
// CHECK-NOT: vlora.conv
// CHECK-DAG: %[[X1:.*]] = vlora.reshape %[[X]] [2, 3, 2, 14, 3, 14] : (tensor<2x3x28x42xf32>) -> tensor<2x3x2x14x3x14xf32>
// CHECK-DAG: %[[X2:.*]] = vlora.transpose %[[X1]] [0, 2, 4, 1, 3, 5] : (tensor<2x3x2x14x3x14xf32>) -> tensor<2x2x3x3x14x14xf32>
// CHECK-DAG: %[[X3:.*]] = vlora.reshape %[[X2]] [2, 6, 588] : (tensor<2x2x3x3x14x14xf32>) -> tensor<2x6x588xf32>
// CHECK-DAG: %[[W2:.*]] = vlora.reshape %[[W]] [32, 588] : (tensor<32x3x14x14xf32>) -> tensor<32x588xf32>
// CHECK: %[[Y1:.*]] = vlora.matmul %[[X3]], %[[W2]] transpose_b {vlora.tower = #vlora<tower vision>} : (tensor<2x6x588xf32>, tensor<32x588xf32>) -> tensor<2x6x32xf32>
// CHECK: %[[Y2:.*]] = vlora.add %[[Y1]], %[[B]] : (tensor<2x6x32xf32>, tensor<32xf32>) -> tensor<2x6x32xf32>
// CHECK: %[[Y3:.*]] = vlora.transpose %[[Y2]] [0, 2, 1] : (tensor<2x6x32xf32>) -> tensor<2x32x6xf32>
// CHECK: %[[Y:.*]] = vlora.reshape %[[Y3]] [2, 32, 2, 3] : (tensor<2x32x6xf32>) -> tensor<2x32x2x3xf32>
// CHECK-NOT: vlora.conv
// CHECK: return %[[Y]]
func.func @patch_embedding(%x: tensor<2x3x28x42xf32>, %w: tensor<32x3x14x14xf32>, %b: tensor<32xf32>) -> tensor<2x32x2x3xf32> {
  %0 = vlora.conv %x, %w, %b strides [14, 14] pads [0, 0, 0, 0] dilations [1, 1] group 1 {vlora.tower = #vlora<tower vision>} : (tensor<2x3x28x42xf32>, tensor<32x3x14x14xf32>, tensor<32xf32>) -> tensor<2x32x2x3xf32>
  return %0 : tensor<2x32x2x3xf32>
}

// -----

// Without bias, and with a 3-d (video / temporal patch) kernel as Qwen2-VL
// uses: [T, H, W] = [2, 4, 4] patches of size [2, 2, 2].
// CHECK-LABEL: func.func @patch_embedding_3d
// CHECK-SAME: (%[[X:.*]]: tensor<1x3x2x4x4xf32>, %[[W:.*]]: tensor<8x3x2x2x2xf32>)
// CHECK-DAG: %[[X1:.*]] = vlora.reshape %[[X]] [1, 3, 1, 2, 2, 2, 2, 2] : (tensor<1x3x2x4x4xf32>) -> tensor<1x3x1x2x2x2x2x2xf32>
// CHECK-DAG: %[[X2:.*]] = vlora.transpose %[[X1]] [0, 2, 4, 6, 1, 3, 5, 7] : (tensor<1x3x1x2x2x2x2x2xf32>) -> tensor<1x1x2x2x3x2x2x2xf32>
// CHECK-DAG: %[[X3:.*]] = vlora.reshape %[[X2]] [1, 4, 24] : (tensor<1x1x2x2x3x2x2x2xf32>) -> tensor<1x4x24xf32>
// CHECK-DAG: %[[W2:.*]] = vlora.reshape %[[W]] [8, 24] : (tensor<8x3x2x2x2xf32>) -> tensor<8x24xf32>
// CHECK: %[[Y1:.*]] = vlora.matmul %[[X3]], %[[W2]] transpose_b : (tensor<1x4x24xf32>, tensor<8x24xf32>) -> tensor<1x4x8xf32>
// CHECK-NOT: vlora.add
// CHECK: %[[Y2:.*]] = vlora.transpose %[[Y1]] [0, 2, 1] : (tensor<1x4x8xf32>) -> tensor<1x8x4xf32>
// CHECK: %[[Y:.*]] = vlora.reshape %[[Y2]] [1, 8, 1, 2, 2] : (tensor<1x8x4xf32>) -> tensor<1x8x1x2x2xf32>
// CHECK: return %[[Y]]
func.func @patch_embedding_3d(%x: tensor<1x3x2x4x4xf32>, %w: tensor<8x3x2x2x2xf32>) -> tensor<1x8x1x2x2xf32> {
  %0 = vlora.conv %x, %w strides [2, 2, 2] pads [0, 0, 0, 0, 0, 0] dilations [1, 1, 1] group 1 : (tensor<1x3x2x4x4xf32>, tensor<8x3x2x2x2xf32>) -> tensor<1x8x1x2x2xf32>
  return %0 : tensor<1x8x1x2x2xf32>
}

// -----

// Convolutions that are not patch embeddings stay.
// CHECK-LABEL: func.func @not_patch_embeddings
// CHECK-COUNT-5: vlora.conv
// CHECK-NOT: vlora.matmul
func.func @not_patch_embeddings(%x: tensor<1x4x28x28xf32>, %w: tensor<8x4x14x14xf32>, %g: tensor<8x2x14x14xf32>, %y: tensor<1x4x30x30xf32>) -> (tensor<1x8x3x3xf32>, tensor<1x8x2x2xf32>, tensor<1x8x1x2xf32>, tensor<1x8x2x2xf32>, tensor<1x8x2x2xf32>) {
  // stride != kernel
  %0 = vlora.conv %x, %w strides [7, 7] pads [0, 0, 0, 0] dilations [1, 1] group 1 : (tensor<1x4x28x28xf32>, tensor<8x4x14x14xf32>) -> tensor<1x8x3x3xf32>
  // padded
  %1 = vlora.conv %x, %w strides [14, 14] pads [1, 1, 1, 1] dilations [1, 1] group 1 : (tensor<1x4x28x28xf32>, tensor<8x4x14x14xf32>) -> tensor<1x8x2x2xf32>
  // dilated
  %2 = vlora.conv %x, %w strides [14, 14] pads [0, 0, 0, 0] dilations [2, 1] group 1 : (tensor<1x4x28x28xf32>, tensor<8x4x14x14xf32>) -> tensor<1x8x1x2xf32>
  // grouped
  %3 = vlora.conv %x, %g strides [14, 14] pads [0, 0, 0, 0] dilations [1, 1] group 2 : (tensor<1x4x28x28xf32>, tensor<8x2x14x14xf32>) -> tensor<1x8x2x2xf32>
  // 30 is not a multiple of 14: the last two rows/columns are dropped
  %4 = vlora.conv %y, %w strides [14, 14] pads [0, 0, 0, 0] dilations [1, 1] group 1 : (tensor<1x4x30x30xf32>, tensor<8x4x14x14xf32>) -> tensor<1x8x2x2xf32>
  return %0, %1, %2, %3, %4 : tensor<1x8x3x3xf32>, tensor<1x8x2x2xf32>, tensor<1x8x1x2xf32>, tensor<1x8x2x2xf32>, tensor<1x8x2x2xf32>
}

// -----

// CHECK-LABEL: func.func @reshape_folds
// CHECK-SAME: (%[[X:.*]]: tensor<2x16xf32>)
func.func @reshape_folds(%x: tensor<2x16xf32>) -> (tensor<4x8xf32>, tensor<2x16xf32>, tensor<2x16xf32>) {
  // reshape of reshape is one reshape of the original value.
  // CHECK: %[[R:.*]] = vlora.reshape %[[X]] [4, 8] : (tensor<2x16xf32>) -> tensor<4x8xf32>
  %0 = vlora.reshape %x [32] : (tensor<2x16xf32>) -> tensor<32xf32>
  %1 = vlora.reshape %0 [4, 8] : (tensor<32xf32>) -> tensor<4x8xf32>
  // A reshape to the same shape, and a chain back to it, are the input.
  %2 = vlora.reshape %x [2, 16] : (tensor<2x16xf32>) -> tensor<2x16xf32>
  %3 = vlora.reshape %1 [2, 16] : (tensor<4x8xf32>) -> tensor<2x16xf32>
  // CHECK-NOT: vlora.reshape
  // CHECK: return %[[R]], %[[X]], %[[X]]
  return %1, %2, %3 : tensor<4x8xf32>, tensor<2x16xf32>, tensor<2x16xf32>
}

// -----

// CHECK-LABEL: func.func @reshape_constant
func.func @reshape_constant() -> tensor<2x2xi64> {
  // CHECK: %[[C:.*]] = vlora.constant dense<{{\[}}[1, 2], [3, 4]]> : tensor<2x2xi64>
  // CHECK-NEXT: return %[[C]]
  %0 = vlora.constant dense<[1, 2, 3, 4]> : tensor<4xi64>
  %1 = vlora.reshape %0 [2, 2] : (tensor<4xi64>) -> tensor<2x2xi64>
  return %1 : tensor<2x2xi64>
}

// -----

// CHECK-LABEL: func.func @transpose_folds
// CHECK-SAME: (%[[X:.*]]: tensor<1x8x4x16xf32>)
func.func @transpose_folds(%x: tensor<1x8x4x16xf32>) -> (tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<16x1x8x4xf32>) {
  // The identity permutation is the input.
  %0 = vlora.transpose %x [0, 1, 2, 3] : (tensor<1x8x4x16xf32>) -> tensor<1x8x4x16xf32>
  // A transpose undone by its inverse is the input.
  %1 = vlora.transpose %x [0, 2, 1, 3] : (tensor<1x8x4x16xf32>) -> tensor<1x4x8x16xf32>
  %2 = vlora.transpose %1 [0, 2, 1, 3] : (tensor<1x4x8x16xf32>) -> tensor<1x8x4x16xf32>
  // Two transposes compose: [0, 2, 1, 3] then [3, 0, 2, 1] is [3, 0, 1, 2]
  // (result dim i is x's dim inner[outer[i]]).
  // CHECK: %[[T:.*]] = vlora.transpose %[[X]] [3, 0, 1, 2] : (tensor<1x8x4x16xf32>) -> tensor<16x1x8x4xf32>
  %3 = vlora.transpose %1 [3, 0, 2, 1] : (tensor<1x4x8x16xf32>) -> tensor<16x1x8x4xf32>
  // CHECK-NOT: vlora.transpose
  // CHECK: return %[[X]], %[[X]], %[[T]]
  return %0, %2, %3 : tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<16x1x8x4xf32>
}

// -----

// matmul(x, transpose(W) [1, 0]) reads W where it lies, with transpose_b
// flipped (the dynamo exporter's MatMul(x, Transpose(W))); a batched or
// other transpose stays.
// CHECK-LABEL: func.func @matmul_rhs_transpose
// CHECK-NEXT: %[[A:.*]] = vlora.matmul %arg0, %arg1 transpose_b : (tensor<2x3x8xf32>, tensor<4x8xf32>) -> tensor<2x3x4xf32>
// CHECK-NEXT: %[[B:.*]] = vlora.matmul %arg0, %arg2 : (tensor<2x3x8xf32>, tensor<8x4xf32>) -> tensor<2x3x4xf32>
// CHECK-NEXT: %[[T:.*]] = vlora.transpose %arg3 [0, 2, 1]
// CHECK-NEXT: vlora.matmul %arg0, %[[T]]
func.func @matmul_rhs_transpose(%x: tensor<2x3x8xf32>, %w: tensor<4x8xf32>, %v: tensor<8x4xf32>, %u: tensor<2x4x8xf32>) -> (tensor<2x3x4xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>) {
  %wt = vlora.transpose %w [1, 0] : (tensor<4x8xf32>) -> tensor<8x4xf32>
  %a = vlora.matmul %x, %wt : (tensor<2x3x8xf32>, tensor<8x4xf32>) -> tensor<2x3x4xf32>
  %vt = vlora.transpose %v [1, 0] : (tensor<8x4xf32>) -> tensor<4x8xf32>
  %b = vlora.matmul %x, %vt transpose_b : (tensor<2x3x8xf32>, tensor<4x8xf32>) -> tensor<2x3x4xf32>
  %ut = vlora.transpose %u [0, 2, 1] : (tensor<2x4x8xf32>) -> tensor<2x8x4xf32>
  %c = vlora.matmul %x, %ut : (tensor<2x3x8xf32>, tensor<2x8x4xf32>) -> tensor<2x3x4xf32>
  return %a, %b, %c : tensor<2x3x4xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>
}
