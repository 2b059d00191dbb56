// Every vlora op parses, verifies, prints and parses back to the same IR, in
// text and in bytecode.
// RUN: vlora-opt %s | vlora-opt | FileCheck %s
// RUN: vlora-opt %s --verify-roundtrip | FileCheck %s
// RUN: vlora-opt %s --mlir-print-op-generic | vlora-opt | FileCheck %s
// Enum keywords print with single spaces around them.
// RUN: vlora-opt %s | FileCheck %s --check-prefix=SPACING --strict-whitespace

// SPACING: = vlora.param "w" frozen initializer "model.onnx" [offset 0, length 8192] : tensor<64x32xf32>
// SPACING: = vlora.param "exp_avg.q_proj.lora_A" optimizer_state external "weights/data.bin" [offset 4096, length 2048] : tensor<16x32xf32>
// SPACING: = vlora.gelu %arg0 none : tensor<2x8xf32>

// CHECK-LABEL: func.func @params
// CHECK-SAME: () -> (tensor<64x32xf32> {vlora.name = "w"}, tensor<16x32xbf16>, tensor<16x32xf32>, tensor<4xi1>)
func.func @params() -> (tensor<64x32xf32> {vlora.name = "w"}, tensor<16x32xbf16>, tensor<16x32xf32>, tensor<4xi1>) {
  // CHECK-NEXT: %[[W:.*]] = vlora.param "w" frozen initializer "model.onnx" [offset 0, length 8192] : tensor<64x32xf32>
  %w = vlora.param "w" frozen initializer "model.onnx" [offset 0, length 8192] : tensor<64x32xf32>
  // CHECK-NEXT: %[[A:.*]] = vlora.param "base_model.model.q_proj.lora_A.weight" trainable bundle "adapters.init.safetensors" [offset 128, length 1024] : tensor<16x32xbf16>
  %a = vlora.param "base_model.model.q_proj.lora_A.weight" trainable bundle "adapters.init.safetensors" [offset 128, length 1024] : tensor<16x32xbf16>
  // CHECK-NEXT: %[[M:.*]] = vlora.param "exp_avg.q_proj.lora_A" optimizer_state external "weights/data.bin" [offset 4096, length 2048] : tensor<16x32xf32>
  %m = vlora.param "exp_avg.q_proj.lora_A" optimizer_state external "weights/data.bin" [offset 4096, length 2048] : tensor<16x32xf32>
  // i1 is stored as one byte per element.
  // CHECK-NEXT: %[[B:.*]] = vlora.param "mask" frozen initializer "model.onnx" [offset 9, length 4] {vlora.tower = #vlora<tower other>} : tensor<4xi1>
  %b = vlora.param "mask" frozen initializer "model.onnx" [offset 9, length 4] {vlora.tower = #vlora<tower other>} : tensor<4xi1>
  // CHECK-NEXT: return %[[W]], %[[A]], %[[M]], %[[B]]
  return %w, %a, %m, %b : tensor<64x32xf32>, tensor<16x32xbf16>, tensor<16x32xf32>, tensor<4xi1>
}

// CHECK-LABEL: func.func @constants
func.func @constants() -> (tensor<2xf32>, tensor<i64>, tensor<3xi1>) {
  // CHECK: vlora.constant dense<[1.000000e+00, 2.000000e+00]> : tensor<2xf32>
  %0 = vlora.constant dense<[1.0, 2.0]> : tensor<2xf32>
  // CHECK: vlora.constant dense<-100> : tensor<i64>
  %1 = vlora.constant dense<-100> : tensor<i64>
  // CHECK: vlora.constant dense<[true, false, true]> : tensor<3xi1>
  %2 = vlora.constant dense<[true, false, true]> : tensor<3xi1>
  return %0, %1, %2 : tensor<2xf32>, tensor<i64>, tensor<3xi1>
}

// CHECK-LABEL: func.func @unary
// CHECK-SAME: (%[[X:.*]]: tensor<2x8xf32>, %[[I:.*]]: tensor<2x8xi64>, %[[B:.*]]: tensor<2x8xi1>)
func.func @unary(%x: tensor<2x8xf32>, %i: tensor<2x8xi64>, %b: tensor<2x8xi1>) {
  // CHECK: vlora.neg %[[X]] : tensor<2x8xf32>
  %0 = vlora.neg %x : tensor<2x8xf32>
  // CHECK: vlora.neg %[[I]] : tensor<2x8xi64>
  %1 = vlora.neg %i : tensor<2x8xi64>
  // CHECK: vlora.abs %[[I]] : tensor<2x8xi64>
  %2 = vlora.abs %i : tensor<2x8xi64>
  // CHECK: vlora.exp %[[X]] : tensor<2x8xf32>
  %3 = vlora.exp %x : tensor<2x8xf32>
  // CHECK: vlora.log %[[X]] : tensor<2x8xf32>
  %4 = vlora.log %x : tensor<2x8xf32>
  // CHECK: vlora.sqrt %[[X]] : tensor<2x8xf32>
  %5 = vlora.sqrt %x : tensor<2x8xf32>
  // CHECK: vlora.rsqrt %[[X]] : tensor<2x8xf32>
  %6 = vlora.rsqrt %x : tensor<2x8xf32>
  // CHECK: vlora.reciprocal %[[X]] : tensor<2x8xf32>
  %7 = vlora.reciprocal %x : tensor<2x8xf32>
  // CHECK: vlora.tanh %[[X]] : tensor<2x8xf32>
  %8 = vlora.tanh %x : tensor<2x8xf32>
  // CHECK: vlora.erf %[[X]] : tensor<2x8xf32>
  %9 = vlora.erf %x : tensor<2x8xf32>
  // CHECK: vlora.sigmoid %[[X]] : tensor<2x8xf32>
  %10 = vlora.sigmoid %x : tensor<2x8xf32>
  // CHECK: vlora.silu %[[X]] : tensor<2x8xf32>
  %11 = vlora.silu %x : tensor<2x8xf32>
  // CHECK: vlora.relu %[[X]] : tensor<2x8xf32>
  %12 = vlora.relu %x : tensor<2x8xf32>
  // CHECK: vlora.sin %[[X]] : tensor<2x8xf32>
  %13 = vlora.sin %x : tensor<2x8xf32>
  // CHECK: vlora.cos %[[X]] : tensor<2x8xf32>
  %14 = vlora.cos %x : tensor<2x8xf32>
  // CHECK: vlora.floor %[[X]] : tensor<2x8xf32>
  %15 = vlora.floor %x : tensor<2x8xf32>
  // CHECK: vlora.ceil %[[X]] : tensor<2x8xf32>
  %16 = vlora.ceil %x : tensor<2x8xf32>
  // CHECK: vlora.not %[[B]] : tensor<2x8xi1>
  %17 = vlora.not %b : tensor<2x8xi1>
  // CHECK: vlora.gelu %[[X]] none : tensor<2x8xf32>
  %18 = vlora.gelu %x none : tensor<2x8xf32>
  // CHECK: vlora.gelu %[[X]] tanh : tensor<2x8xf32>
  %19 = vlora.gelu %x tanh : tensor<2x8xf32>
  // CHECK: %[[BF:.*]] = vlora.cast %[[X]] to bf16 : (tensor<2x8xf32>) -> tensor<2x8xbf16>
  // CHECK: vlora.exp %[[BF]] : tensor<2x8xbf16>
  %bf = vlora.cast %x to bf16 : (tensor<2x8xf32>) -> tensor<2x8xbf16>
  %20 = vlora.exp %bf : tensor<2x8xbf16>
  return
}

// CHECK-LABEL: func.func @binary
// CHECK-SAME: (%[[X:.*]]: tensor<2x8xf32>, %[[Y:.*]]: tensor<8xf32>, %[[P:.*]]: tensor<2x1xi1>, %[[Q:.*]]: tensor<1x8xi1>, %[[I:.*]]: tensor<2x8xi64>)
func.func @binary(%x: tensor<2x8xf32>, %y: tensor<8xf32>, %p: tensor<2x1xi1>, %q: tensor<1x8xi1>, %i: tensor<2x8xi64>) {
  // CHECK: vlora.add %[[X]], %[[Y]] : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  %0 = vlora.add %x, %y : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  // CHECK: vlora.sub %[[Y]], %[[X]] : (tensor<8xf32>, tensor<2x8xf32>) -> tensor<2x8xf32>
  %1 = vlora.sub %y, %x : (tensor<8xf32>, tensor<2x8xf32>) -> tensor<2x8xf32>
  // CHECK: vlora.mul %[[X]], %[[X]] : (tensor<2x8xf32>, tensor<2x8xf32>) -> tensor<2x8xf32>
  %2 = vlora.mul %x, %x : (tensor<2x8xf32>, tensor<2x8xf32>) -> tensor<2x8xf32>
  // CHECK: vlora.div %[[I]], %[[I]] : (tensor<2x8xi64>, tensor<2x8xi64>) -> tensor<2x8xi64>
  %3 = vlora.div %i, %i : (tensor<2x8xi64>, tensor<2x8xi64>) -> tensor<2x8xi64>
  // CHECK: vlora.pow %[[X]], %[[Y]] : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  %4 = vlora.pow %x, %y : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  // CHECK: vlora.max %[[X]], %[[Y]] : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  %5 = vlora.max %x, %y : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  // CHECK: vlora.min %[[X]], %[[Y]] : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  %6 = vlora.min %x, %y : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  // Both operands broadcast: [2, 1] and [1, 8] give [2, 8].
  // CHECK: vlora.and %[[P]], %[[Q]] : (tensor<2x1xi1>, tensor<1x8xi1>) -> tensor<2x8xi1>
  %7 = vlora.and %p, %q : (tensor<2x1xi1>, tensor<1x8xi1>) -> tensor<2x8xi1>
  // CHECK: vlora.or %[[P]], %[[Q]] : (tensor<2x1xi1>, tensor<1x8xi1>) -> tensor<2x8xi1>
  %8 = vlora.or %p, %q : (tensor<2x1xi1>, tensor<1x8xi1>) -> tensor<2x8xi1>
  // CHECK: vlora.xor %[[P]], %[[Q]] : (tensor<2x1xi1>, tensor<1x8xi1>) -> tensor<2x8xi1>
  %9 = vlora.xor %p, %q : (tensor<2x1xi1>, tensor<1x8xi1>) -> tensor<2x8xi1>
  // CHECK: vlora.equal %[[I]], %[[I]] : (tensor<2x8xi64>, tensor<2x8xi64>) -> tensor<2x8xi1>
  %10 = vlora.equal %i, %i : (tensor<2x8xi64>, tensor<2x8xi64>) -> tensor<2x8xi1>
  // CHECK: vlora.less %[[X]], %[[Y]] : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xi1>
  %11 = vlora.less %x, %y : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xi1>
  // CHECK: vlora.less_equal %[[X]], %[[Y]] : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xi1>
  %12 = vlora.less_equal %x, %y : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xi1>
  // CHECK: vlora.greater %[[X]], %[[Y]] : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xi1>
  %13 = vlora.greater %x, %y : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xi1>
  // CHECK: vlora.greater_equal %[[X]], %[[Y]] : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xi1>
  %14 = vlora.greater_equal %x, %y : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xi1>
  // CHECK: vlora.where %[[P]], %[[X]], %[[Y]] : (tensor<2x1xi1>, tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  %15 = vlora.where %p, %x, %y : (tensor<2x1xi1>, tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  // CHECK: vlora.cast %[[X]] to i64 : (tensor<2x8xf32>) -> tensor<2x8xi64>
  %16 = vlora.cast %x to i64 : (tensor<2x8xf32>) -> tensor<2x8xi64>
  // CHECK: vlora.cast %[[I]] to i1 : (tensor<2x8xi64>) -> tensor<2x8xi1>
  %17 = vlora.cast %i to i1 : (tensor<2x8xi64>) -> tensor<2x8xi1>
  return
}

// CHECK-LABEL: func.func @matmul
// CHECK-SAME: (%[[X:.*]]: tensor<2x16x32xf32>, %[[W:.*]]: tensor<64x32xf32>, %[[V:.*]]: tensor<32x64xf32>, %[[T:.*]]: tensor<2x32x16xf32>)
func.func @matmul(%x: tensor<2x16x32xf32>, %w: tensor<64x32xf32>, %v: tensor<32x64xf32>, %t: tensor<2x32x16xf32>) {
  // CHECK: vlora.matmul %[[X]], %[[V]] : (tensor<2x16x32xf32>, tensor<32x64xf32>) -> tensor<2x16x64xf32>
  %0 = vlora.matmul %x, %v : (tensor<2x16x32xf32>, tensor<32x64xf32>) -> tensor<2x16x64xf32>
  // CHECK: vlora.matmul %[[X]], %[[W]] transpose_b : (tensor<2x16x32xf32>, tensor<64x32xf32>) -> tensor<2x16x64xf32>
  %1 = vlora.matmul %x, %w transpose_b : (tensor<2x16x32xf32>, tensor<64x32xf32>) -> tensor<2x16x64xf32>
  // CHECK: vlora.matmul %[[T]], %[[V]] transpose_a : (tensor<2x32x16xf32>, tensor<32x64xf32>) -> tensor<2x16x64xf32>
  %2 = vlora.matmul %t, %v transpose_a : (tensor<2x32x16xf32>, tensor<32x64xf32>) -> tensor<2x16x64xf32>
  // CHECK: vlora.matmul %[[T]], %[[W]] transpose_a transpose_b : (tensor<2x32x16xf32>, tensor<64x32xf32>) -> tensor<2x16x64xf32>
  %3 = vlora.matmul %t, %w transpose_a transpose_b : (tensor<2x32x16xf32>, tensor<64x32xf32>) -> tensor<2x16x64xf32>
  // Batched on both sides: [2, 16, 32] x [2, 32, 16].
  // CHECK: vlora.matmul %[[X]], %[[T]] : (tensor<2x16x32xf32>, tensor<2x32x16xf32>) -> tensor<2x16x16xf32>
  %4 = vlora.matmul %x, %t : (tensor<2x16x32xf32>, tensor<2x32x16xf32>) -> tensor<2x16x16xf32>
  return
}

// CHECK-LABEL: func.func @conv
// CHECK-SAME: (%[[X:.*]]: tensor<1x3x28x28xf32>, %[[W:.*]]: tensor<32x3x14x14xf32>, %[[B:.*]]: tensor<32xf32>, %[[G:.*]]: tensor<8x1x3x3xf32>, %[[Y:.*]]: tensor<2x8x10x12xf32>, %[[V:.*]]: tensor<4x3x7xf32>, %[[S:.*]]: tensor<1x3x20xf32>)
func.func @conv(%x: tensor<1x3x28x28xf32>, %w: tensor<32x3x14x14xf32>, %b: tensor<32xf32>, %g: tensor<8x1x3x3xf32>, %y: tensor<2x8x10x12xf32>, %v: tensor<4x3x7xf32>, %s: tensor<1x3x20xf32>) {
  // Patch embedding, with and without bias.
  // CHECK: vlora.conv %[[X]], %[[W]], %[[B]] strides [14, 14] pads [0, 0, 0, 0] dilations [1, 1] group 1 : (tensor<1x3x28x28xf32>, tensor<32x3x14x14xf32>, tensor<32xf32>) -> tensor<1x32x2x2xf32>
  %0 = vlora.conv %x, %w, %b strides [14, 14] pads [0, 0, 0, 0] dilations [1, 1] group 1 : (tensor<1x3x28x28xf32>, tensor<32x3x14x14xf32>, tensor<32xf32>) -> tensor<1x32x2x2xf32>
  // CHECK: vlora.conv %[[X]], %[[W]] strides [14, 14] pads [0, 0, 0, 0] dilations [1, 1] group 1 : (tensor<1x3x28x28xf32>, tensor<32x3x14x14xf32>) -> tensor<1x32x2x2xf32>
  %1 = vlora.conv %x, %w strides [14, 14] pads [0, 0, 0, 0] dilations [1, 1] group 1 : (tensor<1x3x28x28xf32>, tensor<32x3x14x14xf32>) -> tensor<1x32x2x2xf32>
  // Depthwise, padded, strided, dilated: H = (10+1+1 - (2*2+1)) / 2 + 1 = 4,
  // W = (12+0+2 - 5) / 1 + 1 = 10.
  // CHECK: vlora.conv %[[Y]], %[[G]] strides [2, 1] pads [1, 0, 1, 2] dilations [2, 2] group 8 : (tensor<2x8x10x12xf32>, tensor<8x1x3x3xf32>) -> tensor<2x8x4x10xf32>
  %2 = vlora.conv %y, %g strides [2, 1] pads [1, 0, 1, 2] dilations [2, 2] group 8 : (tensor<2x8x10x12xf32>, tensor<8x1x3x3xf32>) -> tensor<2x8x4x10xf32>
  // 1-d convolution.
  // CHECK: vlora.conv %[[S]], %[[V]] strides [1] pads [3, 3] dilations [1] group 1 : (tensor<1x3x20xf32>, tensor<4x3x7xf32>) -> tensor<1x4x20xf32>
  %3 = vlora.conv %s, %v strides [1] pads [3, 3] dilations [1] group 1 : (tensor<1x3x20xf32>, tensor<4x3x7xf32>) -> tensor<1x4x20xf32>
  return
}

// CHECK-LABEL: func.func @normalisation
// CHECK-SAME: (%[[X:.*]]: tensor<1x8x32xf32>, %[[G:.*]]: tensor<32xf32>, %[[B:.*]]: tensor<32xf32>, %[[G2:.*]]: tensor<8x32xf32>, %[[I:.*]]: tensor<2x8xi64>)
func.func @normalisation(%x: tensor<1x8x32xf32>, %g: tensor<32xf32>, %b: tensor<32xf32>, %g2: tensor<8x32xf32>, %i: tensor<2x8xi64>) {
  // CHECK: vlora.softmax %[[X]] axis 2 : tensor<1x8x32xf32>
  %0 = vlora.softmax %x axis 2 : tensor<1x8x32xf32>
  // Negative axes count from the end.
  // CHECK: vlora.softmax %[[X]] axis -1 : tensor<1x8x32xf32>
  %1 = vlora.softmax %x axis -1 : tensor<1x8x32xf32>
  // CHECK: vlora.log_softmax %[[X]] axis 2 : tensor<1x8x32xf32>
  %2 = vlora.log_softmax %x axis 2 : tensor<1x8x32xf32>
  // CHECK: vlora.cumsum %[[I]] axis 1 : tensor<2x8xi64>
  %3 = vlora.cumsum %i axis 1 : tensor<2x8xi64>
  // CHECK: vlora.cumsum %[[I]] axis 1 exclusive : tensor<2x8xi64>
  %4 = vlora.cumsum %i axis 1 exclusive : tensor<2x8xi64>
  // CHECK: vlora.cumsum %[[I]] axis -1 exclusive reverse : tensor<2x8xi64>
  %5 = vlora.cumsum %i axis -1 exclusive reverse : tensor<2x8xi64>
  // CHECK: vlora.layer_norm %[[X]], %[[G]], %[[B]] axis 2 epsilon 1.000000e-05 : (tensor<1x8x32xf32>, tensor<32xf32>, tensor<32xf32>) -> tensor<1x8x32xf32>
  %6 = vlora.layer_norm %x, %g, %b axis 2 epsilon 1.0e-05 : (tensor<1x8x32xf32>, tensor<32xf32>, tensor<32xf32>) -> tensor<1x8x32xf32>
  // CHECK: vlora.layer_norm %[[X]], %[[G]] axis -1 epsilon 1.000000e-05 : (tensor<1x8x32xf32>, tensor<32xf32>) -> tensor<1x8x32xf32>
  %7 = vlora.layer_norm %x, %g axis -1 epsilon 1.0e-05 : (tensor<1x8x32xf32>, tensor<32xf32>) -> tensor<1x8x32xf32>
  // Normalised over the last two dimensions.
  // CHECK: vlora.layer_norm %[[X]], %[[G2]] axis 1 epsilon 1.000000e-05 : (tensor<1x8x32xf32>, tensor<8x32xf32>) -> tensor<1x8x32xf32>
  %8 = vlora.layer_norm %x, %g2 axis 1 epsilon 1.0e-05 : (tensor<1x8x32xf32>, tensor<8x32xf32>) -> tensor<1x8x32xf32>
  // CHECK: vlora.rms_norm %[[X]], %[[G]] axis 2 epsilon 9.9999999999999995E-7 : (tensor<1x8x32xf32>, tensor<32xf32>) -> tensor<1x8x32xf32>
  %9 = vlora.rms_norm %x, %g axis 2 epsilon 1.0e-06 : (tensor<1x8x32xf32>, tensor<32xf32>) -> tensor<1x8x32xf32>
  return
}

// CHECK-LABEL: func.func @reductions
// CHECK-SAME: (%[[X:.*]]: tensor<4x16x8xf32>, %[[I:.*]]: tensor<4x16xi64>)
func.func @reductions(%x: tensor<4x16x8xf32>, %i: tensor<4x16xi64>) {
  // CHECK: vlora.reduce_sum %[[X]] axes [1] keepdims : (tensor<4x16x8xf32>) -> tensor<4x1x8xf32>
  %0 = vlora.reduce_sum %x axes [1] keepdims : (tensor<4x16x8xf32>) -> tensor<4x1x8xf32>
  // CHECK: vlora.reduce_sum %[[X]] axes [2, 0] : (tensor<4x16x8xf32>) -> tensor<16xf32>
  %1 = vlora.reduce_sum %x axes [2, 0] : (tensor<4x16x8xf32>) -> tensor<16xf32>
  // CHECK: vlora.reduce_mean %[[X]] axes [2] keepdims : (tensor<4x16x8xf32>) -> tensor<4x16x1xf32>
  %2 = vlora.reduce_mean %x axes [2] keepdims : (tensor<4x16x8xf32>) -> tensor<4x16x1xf32>
  // CHECK: vlora.reduce_max %[[X]] axes [0, 1, 2] : (tensor<4x16x8xf32>) -> tensor<f32>
  %3 = vlora.reduce_max %x axes [0, 1, 2] : (tensor<4x16x8xf32>) -> tensor<f32>
  // CHECK: vlora.reduce_min %[[I]] axes [1] : (tensor<4x16xi64>) -> tensor<4xi64>
  %4 = vlora.reduce_min %i axes [1] : (tensor<4x16xi64>) -> tensor<4xi64>
  // CHECK: vlora.reduce_prod %[[I]] axes [0] keepdims : (tensor<4x16xi64>) -> tensor<1x16xi64>
  %5 = vlora.reduce_prod %i axes [0] keepdims : (tensor<4x16xi64>) -> tensor<1x16xi64>
  // An empty axis list reduces nothing.
  // CHECK: vlora.reduce_sum %[[I]] axes [] : (tensor<4x16xi64>) -> tensor<4x16xi64>
  %6 = vlora.reduce_sum %i axes [] : (tensor<4x16xi64>) -> tensor<4x16xi64>
  // CHECK: vlora.argmax %[[X]] axis 2 : (tensor<4x16x8xf32>) -> tensor<4x16xi64>
  %7 = vlora.argmax %x axis 2 : (tensor<4x16x8xf32>) -> tensor<4x16xi64>
  // CHECK: vlora.argmax %[[X]] axis 1 keepdims select_last : (tensor<4x16x8xf32>) -> tensor<4x1x8xi64>
  %8 = vlora.argmax %x axis 1 keepdims select_last : (tensor<4x16x8xf32>) -> tensor<4x1x8xi64>
  return
}

// CHECK-LABEL: func.func @data_movement
// CHECK-SAME: (%[[X:.*]]: tensor<2x16xf32>, %[[T:.*]]: tensor<1x8x4x16xf32>)
func.func @data_movement(%x: tensor<2x16xf32>, %t: tensor<1x8x4x16xf32>) {
  // CHECK: vlora.reshape %[[X]] [32] : (tensor<2x16xf32>) -> tensor<32xf32>
  %0 = vlora.reshape %x [32] : (tensor<2x16xf32>) -> tensor<32xf32>
  // CHECK: vlora.reshape %[[X]] [2, 1, 4, 4] : (tensor<2x16xf32>) -> tensor<2x1x4x4xf32>
  %1 = vlora.reshape %x [2, 1, 4, 4] : (tensor<2x16xf32>) -> tensor<2x1x4x4xf32>
  // CHECK: vlora.transpose %[[T]] [0, 2, 1, 3] : (tensor<1x8x4x16xf32>) -> tensor<1x4x8x16xf32>
  %2 = vlora.transpose %t [0, 2, 1, 3] : (tensor<1x8x4x16xf32>) -> tensor<1x4x8x16xf32>
  // CHECK: vlora.transpose %[[X]] [1, 0] : (tensor<2x16xf32>) -> tensor<16x2xf32>
  %3 = vlora.transpose %x [1, 0] : (tensor<2x16xf32>) -> tensor<16x2xf32>
  // CHECK: vlora.slice %[[X]] starts [0, 4] limits [2, 8] strides [1, 1] : (tensor<2x16xf32>) -> tensor<2x4xf32>
  %4 = vlora.slice %x starts [0, 4] limits [2, 8] strides [1, 1] : (tensor<2x16xf32>) -> tensor<2x4xf32>
  // Every other element, then all of a dimension reversed (-1 is the
  // exclusive limit of a negative stride).
  // CHECK: vlora.slice %[[X]] starts [0, 1] limits [2, 16] strides [1, 2] : (tensor<2x16xf32>) -> tensor<2x8xf32>
  %5 = vlora.slice %x starts [0, 1] limits [2, 16] strides [1, 2] : (tensor<2x16xf32>) -> tensor<2x8xf32>
  // CHECK: vlora.slice %[[X]] starts [1, 15] limits [-1, -1] strides [-1, -3] : (tensor<2x16xf32>) -> tensor<2x6xf32>
  %6 = vlora.slice %x starts [1, 15] limits [-1, -1] strides [-1, -3] : (tensor<2x16xf32>) -> tensor<2x6xf32>
  // An empty slice.
  // CHECK: vlora.slice %[[X]] starts [0, 3] limits [2, 3] strides [1, 1] : (tensor<2x16xf32>) -> tensor<2x0xf32>
  %7 = vlora.slice %x starts [0, 3] limits [2, 3] strides [1, 1] : (tensor<2x16xf32>) -> tensor<2x0xf32>
  // CHECK: vlora.expand %[[X]] [3, 1, 1] : (tensor<2x16xf32>) -> tensor<3x2x16xf32>
  %8 = vlora.expand %x [3, 1, 1] : (tensor<2x16xf32>) -> tensor<3x2x16xf32>
  // CHECK: vlora.pad %[[X]] [0, 1, 1, 2] value 0.000000e+00 : (tensor<2x16xf32>) -> tensor<3x19xf32>
  %9 = vlora.pad %x [0, 1, 1, 2] value 0.0 : (tensor<2x16xf32>) -> tensor<3x19xf32>
  // CHECK: vlora.pad %[[X]] [0, 0, 0, 0] value -1.000000e+04 : (tensor<2x16xf32>) -> tensor<2x16xf32>
  %10 = vlora.pad %x [0, 0, 0, 0] value -1.0e4 : (tensor<2x16xf32>) -> tensor<2x16xf32>
  // CHECK: vlora.trilu %[[T]] upper k 1 : tensor<1x8x4x16xf32>
  %11 = vlora.trilu %t upper k 1 : tensor<1x8x4x16xf32>
  // CHECK: vlora.trilu %[[T]] k -2 : tensor<1x8x4x16xf32>
  %12 = vlora.trilu %t k -2 : tensor<1x8x4x16xf32>
  return
}

// CHECK-LABEL: func.func @concat_split
// CHECK-SAME: (%[[A:.*]]: tensor<1x4x32xf32>, %[[B:.*]]: tensor<1x12x32xf32>, %[[C:.*]]: tensor<1x8x96xf32>)
func.func @concat_split(%a: tensor<1x4x32xf32>, %b: tensor<1x12x32xf32>, %c: tensor<1x8x96xf32>) -> (tensor<1x8x32xf32>, tensor<1x8x64xf32>) {
  // CHECK: vlora.concat %[[A]], %[[B]], %[[A]] axis 1 : (tensor<1x4x32xf32>, tensor<1x12x32xf32>, tensor<1x4x32xf32>) -> tensor<1x20x32xf32>
  %0 = vlora.concat %a, %b, %a axis 1 : (tensor<1x4x32xf32>, tensor<1x12x32xf32>, tensor<1x4x32xf32>) -> tensor<1x20x32xf32>
  // CHECK: vlora.concat %[[A]] axis 2 : (tensor<1x4x32xf32>) -> tensor<1x4x32xf32>
  %1 = vlora.concat %a axis 2 : (tensor<1x4x32xf32>) -> tensor<1x4x32xf32>
  // CHECK: %[[S:.*]]:3 = vlora.split %[[C]] axis 2 sizes [32, 32, 32] : (tensor<1x8x96xf32>) -> (tensor<1x8x32xf32>, tensor<1x8x32xf32>, tensor<1x8x32xf32>)
  %q, %k, %v = vlora.split %c axis 2 sizes [32, 32, 32] : (tensor<1x8x96xf32>) -> (tensor<1x8x32xf32>, tensor<1x8x32xf32>, tensor<1x8x32xf32>)
  // CHECK: %[[T:.*]]:2 = vlora.split %[[C]] axis 2 sizes [32, 64] : (tensor<1x8x96xf32>) -> (tensor<1x8x32xf32>, tensor<1x8x64xf32>)
  %t:2 = vlora.split %c axis 2 sizes [32, 64] : (tensor<1x8x96xf32>) -> (tensor<1x8x32xf32>, tensor<1x8x64xf32>)
  // CHECK: return %[[S]]#2, %[[T]]#1
  return %v, %t#1 : tensor<1x8x32xf32>, tensor<1x8x64xf32>
}

// CHECK-LABEL: func.func @gather_scatter
// CHECK-SAME: (%[[E:.*]]: tensor<256x32xf32>, %[[IDS:.*]]: tensor<1x16xi64>, %[[X:.*]]: tensor<2x8xf32>, %[[I:.*]]: tensor<2x3xi32>, %[[D:.*]]: tensor<4x8x32xf32>, %[[N:.*]]: tensor<2x2xi64>, %[[U:.*]]: tensor<2x32xf32>, %[[M:.*]]: tensor<4x8x32xi1>, %[[F:.*]]: tensor<256xf32>)
func.func @gather_scatter(%table: tensor<256x32xf32>, %ids: tensor<1x16xi64>, %x: tensor<2x8xf32>, %i: tensor<2x3xi32>, %data: tensor<4x8x32xf32>, %idx: tensor<2x2xi64>, %upd: tensor<2x32xf32>, %mask: tensor<4x8x32xi1>, %feats: tensor<256xf32>) {
  // CHECK: vlora.gather %[[E]], %[[IDS]] axis 0 : (tensor<256x32xf32>, tensor<1x16xi64>) -> tensor<1x16x32xf32>
  %0 = vlora.gather %table, %ids axis 0 : (tensor<256x32xf32>, tensor<1x16xi64>) -> tensor<1x16x32xf32>
  // CHECK: vlora.gather %[[X]], %[[I]] axis 1 : (tensor<2x8xf32>, tensor<2x3xi32>) -> tensor<2x2x3xf32>
  %1 = vlora.gather %x, %i axis 1 : (tensor<2x8xf32>, tensor<2x3xi32>) -> tensor<2x2x3xf32>
  // CHECK: vlora.gather_elements %[[X]], %[[I]] axis 1 : (tensor<2x8xf32>, tensor<2x3xi32>) -> tensor<2x3xf32>
  %2 = vlora.gather_elements %x, %i axis 1 : (tensor<2x8xf32>, tensor<2x3xi32>) -> tensor<2x3xf32>
  // CHECK: vlora.gather_nd %[[D]], %[[N]] : (tensor<4x8x32xf32>, tensor<2x2xi64>) -> tensor<2x32xf32>
  %3 = vlora.gather_nd %data, %idx : (tensor<4x8x32xf32>, tensor<2x2xi64>) -> tensor<2x32xf32>
  // CHECK: vlora.scatter_nd %[[D]], %[[N]], %[[U]] : (tensor<4x8x32xf32>, tensor<2x2xi64>, tensor<2x32xf32>) -> tensor<4x8x32xf32>
  %4 = vlora.scatter_nd %data, %idx, %upd : (tensor<4x8x32xf32>, tensor<2x2xi64>, tensor<2x32xf32>) -> tensor<4x8x32xf32>
  // CHECK: vlora.masked_scatter %[[D]], %[[M]], %[[F]] : (tensor<4x8x32xf32>, tensor<4x8x32xi1>, tensor<256xf32>) -> tensor<4x8x32xf32>
  %5 = vlora.masked_scatter %data, %mask, %feats : (tensor<4x8x32xf32>, tensor<4x8x32xi1>, tensor<256xf32>) -> tensor<4x8x32xf32>
  return
}

// The discardable tags, on any op, and the ONNX value names on arguments and
// results.
// CHECK-LABEL: func.func @tags
// CHECK-SAME: (%[[X:.*]]: tensor<2x16x32xf32> {vlora.name = "hidden_states"}) -> (tensor<2x16x64xf32> {vlora.name = "q"})
func.func @tags(%x: tensor<2x16x32xf32> {vlora.name = "hidden_states"}) -> (tensor<2x16x64xf32> {vlora.name = "q"}) {
  // CHECK: %[[W:.*]] = vlora.param "model.language_model.layers.3.self_attn.q_proj.weight" frozen initializer "model.onnx" [offset 64, length 8192] {vlora.block = #vlora<block attention>, vlora.layer = 3 : i64, vlora.module = "model.language_model.layers.3.self_attn.q_proj", vlora.tower = #vlora<tower language>} : tensor<64x32xf32>
  %w = vlora.param "model.language_model.layers.3.self_attn.q_proj.weight" frozen initializer "model.onnx" [offset 64, length 8192] {vlora.tower = #vlora<tower language>, vlora.block = #vlora<block attention>, vlora.layer = 3 : i64, vlora.module = "model.language_model.layers.3.self_attn.q_proj"} : tensor<64x32xf32>
  // CHECK: %[[Y:.*]] = vlora.matmul %[[X]], %[[W]] transpose_b {vlora.block = #vlora<block attention>, vlora.layer = 3 : i64, vlora.module = "model.language_model.layers.3.self_attn.q_proj", vlora.tower = #vlora<tower language>} : (tensor<2x16x32xf32>, tensor<64x32xf32>) -> tensor<2x16x64xf32>
  %y = vlora.matmul %x, %w transpose_b {vlora.tower = #vlora<tower language>, vlora.block = #vlora<block attention>, vlora.layer = 3 : i64, vlora.module = "model.language_model.layers.3.self_attn.q_proj"} : (tensor<2x16x32xf32>, tensor<64x32xf32>) -> tensor<2x16x64xf32>
  // CHECK: vlora.gelu %[[Y]] tanh {vlora.block = #vlora<block mlp>, vlora.tower = #vlora<tower vision>} : tensor<2x16x64xf32>
  %g = vlora.gelu %y tanh {vlora.tower = #vlora<tower vision>, vlora.block = #vlora<block mlp>} : tensor<2x16x64xf32>
  // CHECK: vlora.silu %{{.*}} {vlora.block = #vlora<block other>, vlora.tower = #vlora<tower projector>} : tensor<2x16x64xf32>
  %s = vlora.silu %g {vlora.tower = #vlora<tower projector>, vlora.block = #vlora<block other>} : tensor<2x16x64xf32>
  // CHECK: return %[[Y]]
  return %y : tensor<2x16x64xf32>
}

// The module attributes the importer sets.
// CHECK-LABEL: module attributes {vlora.opset = 17 : i64, vlora.source = "model.onnx"}
module attributes {vlora.opset = 17 : i64, vlora.source = "model.onnx"} {
  // CHECK: func.func @nested
  func.func @nested() {
    return
  }
}
