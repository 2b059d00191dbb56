// Every invariant of the vlora ops and tag attributes is checked, with the
// message a user sees.
// RUN: vlora-opt %s -split-input-file -verify-diagnostics

//===----------------------------------------------------------------------===//
// Elementwise
//===----------------------------------------------------------------------===//

func.func @add_broadcast(%x: tensor<2x8xf32>, %y: tensor<3xf32>) {
  // expected-error @+2 {{'vlora.add' operand shapes [2, 8] and [3] do not broadcast}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.add %x, %y : (tensor<2x8xf32>, tensor<3xf32>) -> tensor<2x8xf32>
  return
}

// -----

func.func @mul_element_types(%x: tensor<2x8xf32>, %y: tensor<8xf16>) {
  // expected-error @+2 {{'vlora.mul' operands have different element types 'f32' and 'f16'}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.mul %x, %y : (tensor<2x8xf32>, tensor<8xf16>) -> tensor<2x8xf32>
  return
}

// -----

func.func @compare_result_not_bool(%x: tensor<8xf32>) {
  // expected-error @+1 {{result #0 must be ranked tensor of 1-bit signless integer values}}
  %0 = vlora.less %x, %x : (tensor<8xf32>, tensor<8xf32>) -> tensor<8xf32>
  return
}

// -----

func.func @and_not_bool(%x: tensor<8xf32>) {
  // expected-error @+1 {{operand #0 must be ranked tensor of 1-bit signless integer values}}
  %0 = vlora.and %x, %x : (tensor<8xf32>, tensor<8xf32>) -> tensor<8xi1>
  return
}

// -----

func.func @exp_of_integers(%x: tensor<8xi64>) {
  // expected-error @+1 {{operand #0 must be ranked tensor of floating-point values}}
  %0 = vlora.exp %x : tensor<8xi64>
  return
}

// -----

func.func @unary_result_type(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{requires the same type for all operands and results}}
  %0 = "vlora.exp"(%x) : (tensor<2x8xf32>) -> tensor<2x9xf32>
  return
}

// -----

func.func @gelu_keyword(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{expected one of [none, tanh] for how GELU is computed, got: erf}}
  %0 = vlora.gelu %x erf : tensor<2x8xf32>
  return
}

// -----

func.func @where_condition(%c: tensor<3xi1>, %x: tensor<2x8xf32>) {
  // expected-error @+2 {{'vlora.where' condition shape [3] does not broadcast with [2, 8]}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.where %c, %x, %x : (tensor<3xi1>, tensor<2x8xf32>, tensor<2x8xf32>) -> tensor<2x8xf32>
  return
}

// -----

func.func @where_values(%c: tensor<8xi1>, %x: tensor<8xf32>, %y: tensor<8xi64>) {
  // expected-error @+2 {{'vlora.where' operands have different element types 'f32' and 'i64'}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.where %c, %x, %y : (tensor<8xi1>, tensor<8xf32>, tensor<8xi64>) -> tensor<8xf32>
  return
}

// -----

func.func @cast_to_index(%x: tensor<4xf32>) {
  // expected-error @+2 {{'vlora.cast' target 'index' is not an integer or float type}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.cast %x to index : (tensor<4xf32>) -> tensor<4xindex>
  return
}

// -----

// A result type written out must be the inferred one.
func.func @add_wrong_result(%x: tensor<2x8xf32>, %y: tensor<8xf32>) {
  // expected-error @+2 {{'vlora.add' op inferred type(s) 'tensor<2x8xf32>' are incompatible with return type(s) of operation 'tensor<8xf32>'}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.add %x, %y : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<8xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// Linear algebra
//===----------------------------------------------------------------------===//

func.func @matmul_contraction(%x: tensor<2x16x32xf32>, %w: tensor<64x32xf32>) {
  // expected-error @+2 {{'vlora.matmul' contraction sizes differ: lhs [2, 16, 32] has K=32, rhs [64, 32] has K=64}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.matmul %x, %w : (tensor<2x16x32xf32>, tensor<64x32xf32>) -> tensor<2x16x32xf32>
  return
}

// -----

func.func @matmul_transpose_a(%x: tensor<16x32xf32>, %w: tensor<32x64xf32>) {
  // expected-error @+2 {{'vlora.matmul' contraction sizes differ: lhs [16, 32] has K=16, rhs [32, 64] has K=32}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.matmul %x, %w transpose_a : (tensor<16x32xf32>, tensor<32x64xf32>) -> tensor<32x64xf32>
  return
}

// -----

func.func @matmul_rank(%x: tensor<32xf32>, %w: tensor<32x64xf32>) {
  // expected-error @+2 {{'vlora.matmul' operands need rank >= 2, got 1 and 2}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.matmul %x, %w : (tensor<32xf32>, tensor<32x64xf32>) -> tensor<64xf32>
  return
}

// -----

func.func @matmul_element_types(%x: tensor<16x32xf16>, %w: tensor<32x64xf32>) {
  // expected-error @+2 {{'vlora.matmul' operands have element types 'f16' and 'f32' (only an f32 operand with a bf16 weight may mix)}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.matmul %x, %w : (tensor<16x32xf16>, tensor<32x64xf32>) -> tensor<16x64xf16>
  return
}

// -----

// An f32 activation with a bf16 weight (--vlora-mixed-precision) gives f32;
// the result type must say so.
func.func @matmul_bf16_weight(%x: tensor<16x32xf32>, %w: tensor<32x64xbf16>) {
  // expected-error @+2 {{inferred type(s) 'tensor<16x64xf32>' are incompatible with return type(s) of operation 'tensor<16x64xbf16>'}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.matmul %x, %w : (tensor<16x32xf32>, tensor<32x64xbf16>) -> tensor<16x64xbf16>
  return
}

// -----

func.func @lora_matmul_bf16_input(%x: tensor<4x8xbf16>, %w: tensor<8x8xf32>, %a: tensor<2x8xf32>, %b: tensor<8x2xf32>) {
  // expected-error @+2 {{'vlora.lora_matmul' input and weight have element types 'bf16' and 'f32' (only an f32 input with a bf16 weight may mix)}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.lora_matmul %x, %w, %a, %b scale 1.0 dropout 0.0 : (tensor<4x8xbf16>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<4x8xbf16>
  return
}

// -----

// f32_result (--vlora-mixed-precision's bf16 activations): bf16 or f32
// operands, an f32 result.
func.func @matmul_f32_result_f16(%x: tensor<16x32xf16>, %w: tensor<32x64xbf16>) {
  // expected-error @+2 {{'vlora.matmul' operands have element types 'f16' and 'bf16' (with f32_result each must be bf16 or f32)}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.matmul %x, %w f32_result : (tensor<16x32xf16>, tensor<32x64xbf16>) -> tensor<16x64xf32>
  return
}

// -----

func.func @matmul_f32_result_type(%x: tensor<16x32xbf16>, %w: tensor<32x64xbf16>) {
  // expected-error @+2 {{inferred type(s) 'tensor<16x64xf32>' are incompatible with return type(s) of operation 'tensor<16x64xbf16>'}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.matmul %x, %w f32_result : (tensor<16x32xbf16>, tensor<32x64xbf16>) -> tensor<16x64xbf16>
  return
}

// -----

func.func @lora_matmul_f32_result_adapters(%x: tensor<4x8xbf16>, %w: tensor<8x8xbf16>, %a: tensor<2x8xbf16>, %b: tensor<8x2xbf16>) {
  // expected-error @+2 {{'vlora.lora_matmul' with f32_result needs f32 adapters, got 'bf16'}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.lora_matmul %x, %w, %a, %b scale 1.0 dropout 0.0 f32_result : (tensor<4x8xbf16>, tensor<8x8xbf16>, tensor<2x8xbf16>, tensor<8x2xbf16>) -> tensor<4x8xf32>
  return
}

// -----

// The backward of an f32_result lora_matmul: dY and dX are f32, x bf16.
func.func @lora_matmul_grad_f32_result(%dy: tensor<4x8xbf16>, %x: tensor<4x8xbf16>, %w: tensor<8x8xbf16>, %a: tensor<2x8xf32>, %b: tensor<8x2xf32>) {
  // expected-error @+2 {{'vlora.lora_matmul_grad' gradient type 'tensor<4x8xbf16>' must be the forward result type 'tensor<4x8xf32>'}}
  // expected-error @+1 {{failed to infer returned types}}
  %0:3 = vlora.lora_matmul_grad %dy, %x, %w, %a, %b scale 1.0 dropout 0.0 input_grad f32_result : (tensor<4x8xbf16>, tensor<4x8xbf16>, tensor<8x8xbf16>, tensor<2x8xf32>, tensor<8x2xf32>) -> (tensor<2x8xf32>, tensor<8x2xf32>, tensor<4x8xf32>)
  return
}

// -----

func.func @linear_cross_entropy_f32_result(%h: tensor<1x4x8xbf16>, %w: tensor<16x8xbf16>, %l: tensor<1x4xi64>, %d: tensor<f32>) {
  // expected-error @+2 {{inferred type(s) 'tensor<f32>', 'tensor<1x4x8xf32>' are incompatible with return type(s) of operation 'tensor<f32>', 'tensor<1x4x8xbf16>'}}
  // expected-error @+1 {{failed to infer returned types}}
  %0:2 = vlora.linear_cross_entropy %h, %w, %l, %d ignore_index -100 transpose_b f32_result : (tensor<1x4x8xbf16>, tensor<16x8xbf16>, tensor<1x4xi64>, tensor<f32>) -> (tensor<f32>, tensor<1x4x8xbf16>)
  return
}

// -----

func.func @matmul_batch(%x: tensor<2x16x32xf32>, %w: tensor<3x32x64xf32>) {
  // expected-error @+2 {{'vlora.matmul' batch dimensions of [2, 16, 32] and [3, 32, 64] do not broadcast}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.matmul %x, %w : (tensor<2x16x32xf32>, tensor<3x32x64xf32>) -> tensor<2x16x64xf32>
  return
}

// -----

func.func @matmul_wrong_result(%x: tensor<2x16x32xf32>, %w: tensor<64x32xf32>) {
  // expected-error @+2 {{inferred type(s) 'tensor<2x16x64xf32>' are incompatible with return type(s) of operation 'tensor<2x16x32xf32>'}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.matmul %x, %w transpose_b : (tensor<2x16x32xf32>, tensor<64x32xf32>) -> tensor<2x16x32xf32>
  return
}

// -----

func.func @conv_channels(%x: tensor<1x3x28x28xf32>, %w: tensor<32x4x14x14xf32>) {
  // expected-error @+2 {{'vlora.conv' weight [32, 4, 14, 14] does not fit input [1, 3, 28, 28] with group 1}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.conv %x, %w strides [14, 14] pads [0, 0, 0, 0] dilations [1, 1] group 1 : (tensor<1x3x28x28xf32>, tensor<32x4x14x14xf32>) -> tensor<1x32x2x2xf32>
  return
}

// -----

func.func @conv_group(%x: tensor<1x6x8x8xf32>, %w: tensor<4x3x3x3xf32>) {
  // expected-error @+2 {{'vlora.conv' weight [4, 3, 3, 3] does not fit input [1, 6, 8, 8] with group 3}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.conv %x, %w strides [1, 1] pads [0, 0, 0, 0] dilations [1, 1] group 3 : (tensor<1x6x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x6x6xf32>
  return
}

// -----

func.func @conv_rank(%x: tensor<1x3x28x28xf32>, %w: tensor<32x3x14xf32>) {
  // expected-error @+2 {{'vlora.conv' needs input and weight of equal rank >= 3, got 4 and 3}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.conv %x, %w strides [14] pads [0, 0] dilations [1] group 1 : (tensor<1x3x28x28xf32>, tensor<32x3x14xf32>) -> tensor<1x32x2xf32>
  return
}

// -----

func.func @conv_attribute_lengths(%x: tensor<1x3x28x28xf32>, %w: tensor<32x3x14x14xf32>) {
  // expected-error @+2 {{'vlora.conv' needs 2 strides, 2 dilations and 4 pads}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.conv %x, %w strides [14, 14] pads [0, 0] dilations [1, 1] group 1 : (tensor<1x3x28x28xf32>, tensor<32x3x14x14xf32>) -> tensor<1x32x2x2xf32>
  return
}

// -----

func.func @conv_bias(%x: tensor<1x3x28x28xf32>, %w: tensor<32x3x14x14xf32>, %b: tensor<3xf32>) {
  // expected-error @+2 {{'vlora.conv' bias must have shape [32]}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.conv %x, %w, %b strides [14, 14] pads [0, 0, 0, 0] dilations [1, 1] group 1 : (tensor<1x3x28x28xf32>, tensor<32x3x14x14xf32>, tensor<3xf32>) -> tensor<1x32x2x2xf32>
  return
}

// -----

func.func @conv_stride(%x: tensor<1x3x28x28xf32>, %w: tensor<32x3x14x14xf32>) {
  // expected-error @+2 {{'vlora.conv' strides and dilations must be >= 1 and pads >= 0}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.conv %x, %w strides [0, 14] pads [0, 0, 0, 0] dilations [1, 1] group 1 : (tensor<1x3x28x28xf32>, tensor<32x3x14x14xf32>) -> tensor<1x32x2x2xf32>
  return
}

// -----

func.func @conv_kernel_too_large(%x: tensor<1x3x8x8xf32>, %w: tensor<32x3x14x14xf32>) {
  // expected-error @+2 {{'vlora.conv' kernel does not fit spatial dimension 0}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.conv %x, %w strides [14, 14] pads [0, 0, 0, 0] dilations [1, 1] group 1 : (tensor<1x3x8x8xf32>, tensor<32x3x14x14xf32>) -> tensor<1x32x1x1xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// Normalisation and reductions
//===----------------------------------------------------------------------===//

func.func @softmax_axis(%x: tensor<4x16xf32>) {
  // expected-error @+1 {{'vlora.softmax' axis 2 is out of range for rank 2}}
  %0 = vlora.softmax %x axis 2 : tensor<4x16xf32>
  return
}

// -----

func.func @log_softmax_axis(%x: tensor<4x16xf32>) {
  // expected-error @+1 {{'vlora.log_softmax' axis -3 is out of range for rank 2}}
  %0 = vlora.log_softmax %x axis -3 : tensor<4x16xf32>
  return
}

// -----

func.func @cumsum_axis(%x: tensor<2x8xi64>) {
  // expected-error @+1 {{'vlora.cumsum' axis 5 is out of range for rank 2}}
  %0 = vlora.cumsum %x axis 5 : tensor<2x8xi64>
  return
}

// -----

func.func @layer_norm_scale(%x: tensor<1x8x32xf32>, %g: tensor<8x32xf32>) {
  // expected-error @+2 {{'vlora.layer_norm' scale/bias shape [8, 32] must be [32] with element type 'f32'}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.layer_norm %x, %g axis 2 epsilon 1.0e-05 : (tensor<1x8x32xf32>, tensor<8x32xf32>) -> tensor<1x8x32xf32>
  return
}

// -----

func.func @layer_norm_bias(%x: tensor<1x8x32xf32>, %g: tensor<32xf32>, %b: tensor<32xf16>) {
  // expected-error @+2 {{'vlora.layer_norm' scale/bias shape [32] must be [32] with element type 'f32'}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.layer_norm %x, %g, %b axis 2 epsilon 1.0e-05 : (tensor<1x8x32xf32>, tensor<32xf32>, tensor<32xf16>) -> tensor<1x8x32xf32>
  return
}

// -----

func.func @layer_norm_axis(%x: tensor<1x8x32xf32>, %g: tensor<32xf32>) {
  // expected-error @+2 {{'vlora.layer_norm' axis 3 is out of range for rank 3}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.layer_norm %x, %g axis 3 epsilon 1.0e-05 : (tensor<1x8x32xf32>, tensor<32xf32>) -> tensor<1x8x32xf32>
  return
}

// -----

func.func @rms_norm_scale(%x: tensor<1x8x32xf32>, %g: tensor<64xf32>) {
  // expected-error @+2 {{'vlora.rms_norm' scale/bias shape [64] must be [32] with element type 'f32'}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.rms_norm %x, %g axis 2 epsilon 1.0e-06 : (tensor<1x8x32xf32>, tensor<64xf32>) -> tensor<1x8x32xf32>
  return
}

// -----

func.func @reduce_axis_range(%x: tensor<4x16xf32>) {
  // expected-error @+2 {{'vlora.reduce_sum' axis 2 is out of range for rank 2}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.reduce_sum %x axes [2] : (tensor<4x16xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @reduce_negative_axis(%x: tensor<4x16xf32>) {
  // expected-error @+2 {{'vlora.reduce_max' axis -1 is out of range for rank 2}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.reduce_max %x axes [-1] : (tensor<4x16xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @reduce_repeated(%x: tensor<4x16xf32>) {
  // expected-error @+2 {{'vlora.reduce_mean' axis 1 is repeated}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.reduce_mean %x axes [1, 1] : (tensor<4x16xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @reduce_keepdims_result(%x: tensor<4x16xf32>) {
  // expected-error @+2 {{inferred type(s) 'tensor<4x1xf32>' are incompatible with return type(s) of operation 'tensor<4xf32>'}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.reduce_sum %x axes [1] keepdims : (tensor<4x16xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @argmax_axis(%x: tensor<4x16xf32>) {
  // expected-error @+2 {{'vlora.argmax' axis 2 is out of range for rank 2}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.argmax %x axis 2 : (tensor<4x16xf32>) -> tensor<4xi64>
  return
}

// -----

//===----------------------------------------------------------------------===//
// Data movement
//===----------------------------------------------------------------------===//

func.func @reshape_count(%x: tensor<2x8xf32>) {
  // expected-error @+2 {{'vlora.reshape' cannot reshape [2, 8] (16 elements) to [3, 5] (15 elements)}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.reshape %x [3, 5] : (tensor<2x8xf32>) -> tensor<3x5xf32>
  return
}

// -----

func.func @reshape_negative(%x: tensor<2x8xf32>) {
  // expected-error @+2 {{'vlora.reshape' target shape [-1, 8] has a negative dimension}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.reshape %x [-1, 8] : (tensor<2x8xf32>) -> tensor<2x8xf32>
  return
}

// -----

func.func @transpose_repeated(%x: tensor<2x8x4xf32>) {
  // expected-error @+2 {{'vlora.transpose' [0, 1, 1] is not a permutation of [0, 3)}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.transpose %x [0, 1, 1] : (tensor<2x8x4xf32>) -> tensor<2x8x8xf32>
  return
}

// -----

func.func @transpose_range(%x: tensor<2x8xf32>) {
  // expected-error @+2 {{'vlora.transpose' [0, 2] is not a permutation of [0, 2)}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.transpose %x [0, 2] : (tensor<2x8xf32>) -> tensor<2x8xf32>
  return
}

// -----

func.func @transpose_rank(%x: tensor<2x8xf32>) {
  // expected-error @+2 {{'vlora.transpose' permutation [0, 1, 2] does not match rank 2}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.transpose %x [0, 1, 2] : (tensor<2x8xf32>) -> tensor<2x8xf32>
  return
}

// -----

func.func @slice_limit(%x: tensor<2x16xf32>) {
  // expected-error @+2 {{'vlora.slice' bounds 4:17:1 are invalid for dimension 1 of size 16}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.slice %x starts [0, 4] limits [2, 17] strides [1, 1] : (tensor<2x16xf32>) -> tensor<2x13xf32>
  return
}

// -----

func.func @slice_negative_start(%x: tensor<2x16xf32>) {
  // expected-error @+2 {{'vlora.slice' bounds -2:2:1 are invalid for dimension 0 of size 2}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.slice %x starts [-2, 0] limits [2, 16] strides [1, 1] : (tensor<2x16xf32>) -> tensor<2x16xf32>
  return
}

// -----

func.func @slice_zero_stride(%x: tensor<2x16xf32>) {
  // expected-error @+2 {{'vlora.slice' bounds 0:16:0 are invalid for dimension 1 of size 16}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.slice %x starts [0, 0] limits [2, 16] strides [1, 0] : (tensor<2x16xf32>) -> tensor<2x16xf32>
  return
}

// -----

func.func @slice_lengths(%x: tensor<2x16xf32>) {
  // expected-error @+2 {{'vlora.slice' needs 2 starts, limits and strides}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.slice %x starts [0] limits [2] strides [1] : (tensor<2x16xf32>) -> tensor<2x16xf32>
  return
}

// -----

func.func @concat_shapes(%a: tensor<1x4x32xf32>, %b: tensor<1x4x16xf32>) {
  // expected-error @+2 {{'vlora.concat' operand shapes [1, 4, 32] and [1, 4, 16] differ off axis 1}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.concat %a, %b axis 1 : (tensor<1x4x32xf32>, tensor<1x4x16xf32>) -> tensor<1x8x32xf32>
  return
}

// -----

func.func @concat_element_types(%a: tensor<1x4xf32>, %b: tensor<1x4xf16>) {
  // expected-error @+2 {{'vlora.concat' operands differ in rank or element type}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.concat %a, %b axis 1 : (tensor<1x4xf32>, tensor<1x4xf16>) -> tensor<1x8xf32>
  return
}

// -----

func.func @concat_ranks(%a: tensor<1x4xf32>, %b: tensor<4xf32>) {
  // expected-error @+2 {{'vlora.concat' operands differ in rank or element type}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.concat %a, %b axis 1 : (tensor<1x4xf32>, tensor<4xf32>) -> tensor<1x8xf32>
  return
}

// -----

func.func @concat_axis(%a: tensor<1x4xf32>) {
  // expected-error @+2 {{'vlora.concat' axis 2 is out of range for rank 2}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.concat %a, %a axis 2 : (tensor<1x4xf32>, tensor<1x4xf32>) -> tensor<1x4xf32>
  return
}

// -----

func.func @concat_axis_not_normalised(%a: tensor<1x4xf32>) {
  // expected-error @+2 {{'vlora.concat' axis must be normalised to [0, rank)}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.concat %a, %a axis -1 : (tensor<1x4xf32>, tensor<1x4xf32>) -> tensor<1x8xf32>
  return
}

// -----

func.func @concat_empty() {
  // expected-error @+2 {{'vlora.concat' needs at least one operand}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.concat axis 0 : () -> tensor<1xf32>
  return
}

// -----

func.func @split_sizes(%x: tensor<1x8x96xf32>) {
  // expected-error @+2 {{'vlora.split' sizes [32, 32] do not add up to dimension 2 of size 96}}
  // expected-error @+1 {{failed to infer returned types}}
  %0:2 = vlora.split %x axis 2 sizes [32, 32] : (tensor<1x8x96xf32>) -> (tensor<1x8x32xf32>, tensor<1x8x32xf32>)
  return
}

// -----

func.func @split_negative_size(%x: tensor<1x8x96xf32>) {
  // expected-error @+2 {{'vlora.split' sizes must be non-negative}}
  // expected-error @+1 {{failed to infer returned types}}
  %0:2 = vlora.split %x axis 2 sizes [128, -32] : (tensor<1x8x96xf32>) -> (tensor<1x8x128xf32>, tensor<1x8x32xf32>)
  return
}

// -----

func.func @split_axis(%x: tensor<1x8x96xf32>) {
  // expected-error @+2 {{'vlora.split' axis 3 is out of range for rank 3}}
  // expected-error @+1 {{failed to infer returned types}}
  %0:2 = vlora.split %x axis 3 sizes [48, 48] : (tensor<1x8x96xf32>) -> (tensor<1x8x48xf32>, tensor<1x8x48xf32>)
  return
}

// -----

func.func @split_result_count(%x: tensor<1x8x96xf32>) {
  // expected-error @+2 {{inferred type(s) 'tensor<1x8x32xf32>', 'tensor<1x8x32xf32>', 'tensor<1x8x32xf32>' are incompatible with return type(s) of operation 'tensor<1x8x32xf32>', 'tensor<1x8x64xf32>'}}
  // expected-error @+1 {{failed to infer returned types}}
  %0:2 = vlora.split %x axis 2 sizes [32, 32, 32] : (tensor<1x8x96xf32>) -> (tensor<1x8x32xf32>, tensor<1x8x64xf32>)
  return
}

// -----

func.func @gather_axis(%t: tensor<256x32xf32>, %ids: tensor<1x16xi64>) {
  // expected-error @+2 {{'vlora.gather' axis 2 is out of range for rank 2}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.gather %t, %ids axis 2 : (tensor<256x32xf32>, tensor<1x16xi64>) -> tensor<1x16x32xf32>
  return
}

// -----

func.func @gather_float_indices(%t: tensor<256x32xf32>, %ids: tensor<1x16xf32>) {
  // expected-error @+1 {{operand #1 must be ranked tensor of 32-bit signless integer or 64-bit signless integer values}}
  %0 = vlora.gather %t, %ids axis 0 : (tensor<256x32xf32>, tensor<1x16xf32>) -> tensor<1x16x32xf32>
  return
}

// -----

func.func @gather_elements_rank(%x: tensor<2x8xf32>, %i: tensor<3xi64>) {
  // expected-error @+2 {{'vlora.gather_elements' needs indices of the data's rank and an axis in [0, rank)}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.gather_elements %x, %i axis 1 : (tensor<2x8xf32>, tensor<3xi64>) -> tensor<3xf32>
  return
}

// -----

func.func @gather_elements_shape(%x: tensor<2x8xf32>, %i: tensor<3x3xi64>) {
  // expected-error @+2 {{'vlora.gather_elements' indices shape [3, 3] exceeds data shape [2, 8]}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.gather_elements %x, %i axis 1 : (tensor<2x8xf32>, tensor<3x3xi64>) -> tensor<3x3xf32>
  return
}

// -----

func.func @gather_nd_depth(%d: tensor<4x8xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+2 {{'vlora.gather_nd' index depth 3 must be in [1, 2]}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.gather_nd %d, %i : (tensor<4x8xf32>, tensor<2x3xi64>) -> tensor<2xf32>
  return
}

// -----

func.func @gather_nd_scalar_indices(%d: tensor<4x8xf32>, %i: tensor<i64>) {
  // expected-error @+2 {{'vlora.gather_nd' indices need rank >= 1}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.gather_nd %d, %i : (tensor<4x8xf32>, tensor<i64>) -> tensor<8xf32>
  return
}

// -----

func.func @scatter_nd_depth(%d: tensor<16x32xf32>, %i: tensor<4x0xi64>, %u: tensor<4x16x32xf32>) {
  // expected-error @+2 {{'vlora.scatter_nd' index depth 0 must be in [1, 2]}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.scatter_nd %d, %i, %u : (tensor<16x32xf32>, tensor<4x0xi64>, tensor<4x16x32xf32>) -> tensor<16x32xf32>
  return
}

// -----

func.func @scatter_nd_updates(%d: tensor<16x32xf32>, %i: tensor<4x1xi64>, %u: tensor<4x16xf32>) {
  // expected-error @+2 {{'vlora.scatter_nd' updates shape [4, 16] must be [4, 32]}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.scatter_nd %d, %i, %u : (tensor<16x32xf32>, tensor<4x1xi64>, tensor<4x16xf32>) -> tensor<16x32xf32>
  return
}

// -----

func.func @masked_scatter_mask(%d: tensor<1x16x64xf32>, %m: tensor<1x16x1xi1>, %s: tensor<256xf32>) {
  // expected-error @+2 {{'vlora.masked_scatter' mask shape [1, 16, 1] must equal data shape [1, 16, 64]}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.masked_scatter %d, %m, %s : (tensor<1x16x64xf32>, tensor<1x16x1xi1>, tensor<256xf32>) -> tensor<1x16x64xf32>
  return
}

// -----

func.func @masked_scatter_source(%d: tensor<1x16x64xf32>, %m: tensor<1x16x64xi1>, %s: tensor<256xbf16>) {
  // expected-error @+2 {{'vlora.masked_scatter' source element type 'bf16' differs from data's 'f32'}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.masked_scatter %d, %m, %s : (tensor<1x16x64xf32>, tensor<1x16x64xi1>, tensor<256xbf16>) -> tensor<1x16x64xf32>
  return
}

// -----

func.func @expand_shape(%x: tensor<3x8xf32>) {
  // expected-error @+2 {{'vlora.expand' cannot broadcast [3, 8] to [4, 8]}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.expand %x [4, 8] : (tensor<3x8xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @expand_negative(%x: tensor<1x8xf32>) {
  // expected-error @+2 {{'vlora.expand' cannot broadcast [1, 8] to [-1, 8]}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.expand %x [-1, 8] : (tensor<1x8xf32>) -> tensor<1x8xf32>
  return
}

// -----

func.func @pad_count(%x: tensor<2x3xf32>) {
  // expected-error @+2 {{'vlora.pad' needs 4 non-negative pads}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.pad %x [0, 1] value 0.0 : (tensor<2x3xf32>) -> tensor<2x4xf32>
  return
}

// -----

func.func @pad_negative(%x: tensor<2x3xf32>) {
  // expected-error @+2 {{'vlora.pad' needs 4 non-negative pads}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.pad %x [0, -1, 0, 0] value 0.0 : (tensor<2x3xf32>) -> tensor<2x2xf32>
  return
}

// -----

func.func @trilu_rank(%x: tensor<8xf32>) {
  // expected-error @+1 {{'vlora.trilu' op needs rank >= 2}}
  %0 = vlora.trilu %x upper k 0 : tensor<8xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// Parameters and constants
//===----------------------------------------------------------------------===//

func.func @param_length() {
  // expected-error @+1 {{'vlora.param' op length 4096 does not match 8192 bytes of 'tensor<64x32xf32>'}}
  %w = vlora.param "w" frozen initializer "model.onnx" [offset 0, length 4096] : tensor<64x32xf32>
  return
}

// -----

func.func @param_offset() {
  // expected-error @+1 {{'vlora.param' op offset -8 is negative}}
  %w = vlora.param "w" frozen initializer "model.onnx" [offset -8, length 8192] : tensor<64x32xf32>
  return
}

// -----

func.func @param_name() {
  // expected-error @+1 {{'vlora.param' op needs a non-empty name}}
  %w = vlora.param "" frozen initializer "model.onnx" [offset 0, length 8192] : tensor<64x32xf32>
  return
}

// -----

func.func @param_file() {
  // expected-error @+1 {{'vlora.param' op needs the file that holds its bytes}}
  %w = vlora.param "w" trainable bundle "" [offset 0, length 8192] : tensor<64x32xf32>
  return
}

// -----

func.func @param_dynamic() {
  // expected-error @+1 {{'vlora.param' op needs a static shape}}
  %w = vlora.param "w" frozen initializer "model.onnx" [offset 0, length 8192] : tensor<?x32xf32>
  return
}

// -----

func.func @param_element_type() {
  // expected-error @+1 {{'vlora.param' op element type 'index' has no storage size}}
  %w = vlora.param "w" frozen initializer "model.onnx" [offset 0, length 8] : tensor<1xindex>
  return
}

// -----

func.func @param_role() {
  // expected-error @+1 {{expected one of [frozen, trainable, optimizer_state] for what a parameter is for, got: adapter}}
  %w = vlora.param "w" adapter initializer "model.onnx" [offset 0, length 8192] : tensor<64x32xf32>
  return
}

// -----

func.func @param_source() {
  // expected-error @+1 {{expected one of [initializer, external, bundle] for where the bytes of a parameter live, got: inline}}
  %w = vlora.param "w" frozen inline "model.onnx" [offset 0, length 8192] : tensor<64x32xf32>
  return
}

// -----

func.func @constant_type() {
  // expected-error @+2 {{inferred type(s) 'tensor<2xf32>' are incompatible with return type(s) of operation 'tensor<2xf16>'}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = "vlora.constant"() {value = dense<[1.0, 2.0]> : tensor<2xf32>} : () -> tensor<2xf16>
  return
}

// -----

//===----------------------------------------------------------------------===//
// Tag attributes
//===----------------------------------------------------------------------===//

func.func @tower_string(%x: tensor<8xf32>) {
  // expected-error @+1 {{'vlora.tower' must be a #vlora<tower ...> attribute}}
  %0 = vlora.neg %x {vlora.tower = "x"} : tensor<8xf32>
  return
}

// -----

func.func @tower_keyword(%x: tensor<8xf32>) {
  // expected-error @+2 {{expected ::vlora::TowerKind to be one of: vision, projector, language, other}}
  // expected-error @+1 {{failed to parse VLoRA_TowerAttr parameter 'value'}}
  %0 = vlora.neg %x {vlora.tower = #vlora<tower text>} : tensor<8xf32>
  return
}

// -----

func.func @block_wrong_kind(%x: tensor<8xf32>) {
  // expected-error @+1 {{'vlora.block' must be a #vlora<block ...> attribute}}
  %0 = vlora.neg %x {vlora.block = #vlora<tower vision>} : tensor<8xf32>
  return
}

// -----

func.func @layer_negative(%x: tensor<8xf32>) {
  // expected-error @+1 {{'vlora.layer' must be a non-negative integer attribute}}
  %0 = vlora.neg %x {vlora.layer = -1} : tensor<8xf32>
  return
}

// -----

func.func @layer_string(%x: tensor<8xf32>) {
  // expected-error @+1 {{'vlora.layer' must be a non-negative integer attribute}}
  %0 = vlora.neg %x {vlora.layer = "3"} : tensor<8xf32>
  return
}

// -----

func.func @module_empty(%x: tensor<8xf32>) {
  // expected-error @+1 {{'vlora.module' must be a non-empty string attribute}}
  %0 = vlora.neg %x {vlora.module = ""} : tensor<8xf32>
  return
}

// -----

func.func @unknown_tag(%x: tensor<8xf32>) {
  // expected-error @+1 {{unknown vlora attribute 'vlora.foo'}}
  %0 = vlora.neg %x {vlora.foo = 1} : tensor<8xf32>
  return
}

// -----

// expected-error @+1 {{'vlora.source' is a module attribute}}
func.func @source_on_function() attributes {vlora.source = "model.onnx"} {
  return
}

// -----

// expected-error @+1 {{'vlora.opset' has the wrong kind}}
module attributes {vlora.opset = "17"} {
}

// -----

// expected-error @+1 {{'vlora.name' of argument 0 must be a string attribute}}
func.func @name_not_string(%x: tensor<8xf32> {vlora.name = 3}) {
  return
}

// -----

// expected-error @+1 {{'vlora.name' of result 0 must be a string attribute}}
func.func @result_name_not_string(%x: tensor<8xf32>) -> (tensor<8xf32> {vlora.name = 3}) {
  return %x : tensor<8xf32>
}

// -----

// expected-error @+1 {{unknown vlora attribute 'vlora.layer' on argument 0}}
func.func @tag_on_argument(%x: tensor<8xf32> {vlora.layer = 3}) {
  return
}

// -----

func.func @attention_leading(%q: tensor<2x4x8x16xf32>, %k: tensor<2x1x16x8xf32>, %v: tensor<2x4x8x16xf32>) {
  // expected-error @+2 {{'vlora.attention' q, k and v must share their leading dimensions, got [2, 4, 8, 16], [2, 1, 16, 8] and [2, 4, 8, 16]}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.attention %q, %k, %v scale 0.25 : (tensor<2x4x8x16xf32>, tensor<2x1x16x8xf32>, tensor<2x4x8x16xf32>) -> tensor<2x4x8x16xf32>
  return
}

// -----

func.func @attention_features(%q: tensor<2x8x16xf32>, %k: tensor<2x8x16xf32>, %v: tensor<2x8x4xf32>) {
  // expected-error @+2 {{'vlora.attention' k [2, 8, 16] ([..., D, T]) does not take q's 16 features}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.attention %q, %k, %v scale 0.25 : (tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return
}

// -----

func.func @attention_mask(%q: tensor<2x8x16xf32>, %k: tensor<2x10x16xf32>, %v: tensor<2x10x4xf32>, %m: tensor<8x8xf32>) {
  // expected-error @+2 {{'vlora.attention' mask 'tensor<8x8xf32>' must broadcast to the scores [2, 8, 10] of the result's element type}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.attention %q, %k, %v mask %m scale 0.25 transpose_k : (tensor<2x8x16xf32>, tensor<2x10x16xf32>, tensor<2x10x4xf32>, tensor<8x8xf32>) -> tensor<2x8x4xf32>
  return
}

// -----

func.func @attention_grad_type(%g: tensor<2x8x16xf32>, %q: tensor<2x8x16xf32>, %k: tensor<2x10x16xf32>, %v: tensor<2x10x4xf32>) {
  // expected-error @+2 {{'vlora.attention_grad' gradient type 'tensor<2x8x16xf32>' must be the forward result type 'tensor<2x8x4xf32>'}}
  // expected-error @+1 {{failed to infer returned types}}
  %0:3 = vlora.attention_grad %g, %q, %k, %v scale 0.25 transpose_k : (tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x10x16xf32>, tensor<2x10x4xf32>) -> (tensor<2x8x16xf32>, tensor<2x10x16xf32>, tensor<2x10x4xf32>)
  return
}

// -----

// f32_result: bf16 (or f32) q, k, v; an f32 mask and result.
func.func @attention_f32_result_mask(%q: tensor<2x8x16xbf16>, %k: tensor<2x16x8xbf16>, %v: tensor<2x8x4xbf16>, %m: tensor<8x8xbf16>) {
  // expected-error @+2 {{'vlora.attention' mask 'tensor<8x8xbf16>' must broadcast to the scores [2, 8, 8] of the result's element type}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.attention %q, %k, %v mask %m scale 0.25 f32_result : (tensor<2x8x16xbf16>, tensor<2x16x8xbf16>, tensor<2x8x4xbf16>, tensor<8x8xbf16>) -> tensor<2x8x4xf32>
  return
}

// -----

func.func @attention_f32_result_f16(%q: tensor<2x8x16xf16>, %k: tensor<2x16x8xbf16>, %v: tensor<2x8x4xbf16>) {
  // expected-error @+2 {{'vlora.attention' q, k and v have element types 'f16', 'bf16' and 'bf16' (with f32_result each must be bf16 or f32)}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.attention %q, %k, %v scale 0.25 f32_result : (tensor<2x8x16xf16>, tensor<2x16x8xbf16>, tensor<2x8x4xbf16>) -> tensor<2x8x4xf32>
  return
}

//===----------------------------------------------------------------------===//
// fused_elementwise
//===----------------------------------------------------------------------===//

// -----

func.func @fused_unknown_opcode(%x: tensor<4xf32>) {
  // expected-error @+2 {{'vlora.fused_elementwise' instruction 0 (opcode 20): unknown opcode}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.fused_elementwise(%x) program [20, 0, -1] outputs [1] : (tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @fused_later_register(%x: tensor<4xf32>) {
  // expected-error @+2 {{'vlora.fused_elementwise' instruction 1 (opcode 32): operand register 2 is not an earlier register}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.fused_elementwise(%x) program [1, 0, -1, 32, 2, 0] outputs [2] : (tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @fused_unary_second_operand(%x: tensor<4xf32>) {
  // expected-error @+2 {{'vlora.fused_elementwise' instruction 0 (opcode 3): second operand 0 must be -1}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.fused_elementwise(%x) program [3, 0, 0] outputs [1] : (tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @fused_bf16_register(%x: tensor<4xbf16>) {
  // expected-error @+2 {{'vlora.fused_elementwise' instruction 0 (opcode 3): reads a bf16 register where it takes f32}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.fused_elementwise(%x) program [3, 0, -1] outputs [1] : (tensor<4xbf16>) -> tensor<4xf32>
  return
}

// -----

func.func @fused_input_result(%x: tensor<4xf32>) {
  // expected-error @+2 {{'vlora.fused_elementwise' result register 0 is not an instruction's}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.fused_elementwise(%x) program [3, 0, -1] outputs [0] : (tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @fused_input_type(%x: tensor<4xi64>) {
  // expected-error @+2 {{'vlora.fused_elementwise' input 0 is 'tensor<4xi64>'; f32 or bf16 expected}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.fused_elementwise(%x) program [3, 0, -1] outputs [1] : (tensor<4xi64>) -> tensor<4xf32>
  return
}

// -----

func.func @fused_broadcast(%x: tensor<4xf32>, %y: tensor<3xf32>) {
  // expected-error @+2 {{'vlora.fused_elementwise' input 1 shape [3] does not broadcast with [4]}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.fused_elementwise(%x, %y) program [32, 0, 1] outputs [2] : (tensor<4xf32>, tensor<3xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @fused_result_type(%x: tensor<4xf32>) {
  // expected-error @+2 {{'vlora.fused_elementwise' op inferred type(s) 'tensor<4xbf16>' are incompatible with return type(s) of operation 'tensor<4xf32>'}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = vlora.fused_elementwise(%x) program [48, 0, -1] outputs [1] : (tensor<4xf32>) -> tensor<4xf32>
  return
}
