// Every invariant of vlora.lora_matmul, with the message a user sees.
// RUN: vlora-opt %s -split-input-file -verify-diagnostics

func.func @input_rank(%x: tensor<32xf32>, %w: tensor<64x32xf32>, %a: tensor<8x32xf32>, %b: tensor<64x8xf32>) {
  // expected-error @+2 {{'vlora.lora_matmul' input needs rank >= 2, got 1}}
  // expected-error @+1 {{failed to infer returned types}}
  %y = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<32xf32>, tensor<64x32xf32>, tensor<8x32xf32>, tensor<64x8xf32>) -> tensor<64xf32>
  return
}

// -----

func.func @weight_rank(%x: tensor<2x32xf32>, %w: tensor<1x64x32xf32>, %a: tensor<8x32xf32>, %b: tensor<64x8xf32>) {
  // expected-error @+2 {{'vlora.lora_matmul' weight, A and B need rank 2, got 3, 2 and 2}}
  // expected-error @+1 {{failed to infer returned types}}
  %y = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<2x32xf32>, tensor<1x64x32xf32>, tensor<8x32xf32>, tensor<64x8xf32>) -> tensor<2x64xf32>
  return
}

// -----

func.func @input_weight_types(%x: tensor<2x32xf16>, %w: tensor<64x32xf32>, %a: tensor<8x32xf32>, %b: tensor<64x8xf32>) {
  // expected-error @+2 {{'vlora.lora_matmul' input and weight have element types 'f16' and 'f32'}}
  // expected-error @+1 {{failed to infer returned types}}
  %y = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<2x32xf16>, tensor<64x32xf32>, tensor<8x32xf32>, tensor<64x8xf32>) -> tensor<2x64xf16>
  return
}

// -----

func.func @adapter_types(%x: tensor<2x32xf32>, %w: tensor<64x32xf32>, %a: tensor<8x32xf32>, %b: tensor<64x8xbf16>) {
  // expected-error @+2 {{'vlora.lora_matmul' A and B have different element types 'f32' and 'bf16'}}
  // expected-error @+1 {{failed to infer returned types}}
  %y = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<2x32xf32>, tensor<64x32xf32>, tensor<8x32xf32>, tensor<64x8xbf16>) -> tensor<2x64xf32>
  return
}

// -----

func.func @integer_adapters(%x: tensor<2x32xf32>, %w: tensor<64x32xf32>, %a: tensor<8x32xi32>, %b: tensor<64x8xi32>) {
  // expected-error @+1 {{operand #2 must be ranked tensor of floating-point values}}
  %y = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<2x32xf32>, tensor<64x32xf32>, tensor<8x32xi32>, tensor<64x8xi32>) -> tensor<2x64xf32>
  return
}

// -----

func.func @input_features(%x: tensor<2x32xf32>, %w: tensor<32x64xf32>, %a: tensor<8x32xf32>, %b: tensor<64x8xf32>) {
  // expected-error @+2 {{'vlora.lora_matmul' input [2, 32] has 32 features but the weight [32, 64] (transposed) takes 64}}
  // expected-error @+1 {{failed to infer returned types}}
  %y = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<2x32xf32>, tensor<32x64xf32>, tensor<8x32xf32>, tensor<64x8xf32>) -> tensor<2x32xf32>
  return
}

// -----

func.func @zero_rank(%x: tensor<2x32xf32>, %w: tensor<64x32xf32>, %a: tensor<0x32xf32>, %b: tensor<64x0xf32>) {
  // expected-error @+2 {{'vlora.lora_matmul' rank r = 0 (rows of A) must be positive}}
  // expected-error @+1 {{failed to infer returned types}}
  %y = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<2x32xf32>, tensor<64x32xf32>, tensor<0x32xf32>, tensor<64x0xf32>) -> tensor<2x64xf32>
  return
}

// -----

func.func @a_shape(%x: tensor<2x32xf32>, %w: tensor<64x32xf32>, %a: tensor<8x64xf32>, %b: tensor<64x8xf32>) {
  // expected-error @+2 {{'vlora.lora_matmul' A [8, 64] must be [r, in] = [8, 32]}}
  // expected-error @+1 {{failed to infer returned types}}
  %y = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<2x32xf32>, tensor<64x32xf32>, tensor<8x64xf32>, tensor<64x8xf32>) -> tensor<2x64xf32>
  return
}

// -----

func.func @b_out(%x: tensor<2x32xf32>, %w: tensor<64x32xf32>, %a: tensor<8x32xf32>, %b: tensor<32x8xf32>) {
  // expected-error @+2 {{'vlora.lora_matmul' B [32, 8] must be [out, r] = [64, 8]}}
  // expected-error @+1 {{failed to infer returned types}}
  %y = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<2x32xf32>, tensor<64x32xf32>, tensor<8x32xf32>, tensor<32x8xf32>) -> tensor<2x64xf32>
  return
}

// -----

func.func @b_rank(%x: tensor<2x32xf32>, %w: tensor<64x32xf32>, %a: tensor<8x32xf32>, %b: tensor<64x4xf32>) {
  // expected-error @+2 {{'vlora.lora_matmul' B [64, 4] must be [out, r] = [64, 8]}}
  // expected-error @+1 {{failed to infer returned types}}
  %y = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<2x32xf32>, tensor<64x32xf32>, tensor<8x32xf32>, tensor<64x4xf32>) -> tensor<2x64xf32>
  return
}

// -----

func.func @dropout_one(%x: tensor<2x32xf32>, %w: tensor<64x32xf32>, %a: tensor<8x32xf32>, %b: tensor<64x8xf32>) {
  // expected-error @+2 {{'vlora.lora_matmul' dropout 1.000000e+00 is not in [0, 1)}}
  // expected-error @+1 {{failed to infer returned types}}
  %y = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 1.0 transpose_b : (tensor<2x32xf32>, tensor<64x32xf32>, tensor<8x32xf32>, tensor<64x8xf32>) -> tensor<2x64xf32>
  return
}

// -----

func.func @dropout_negative(%x: tensor<2x32xf32>, %w: tensor<64x32xf32>, %a: tensor<8x32xf32>, %b: tensor<64x8xf32>) {
  // expected-error @+2 {{'vlora.lora_matmul' dropout -1.000000e-01 is not in [0, 1)}}
  // expected-error @+1 {{failed to infer returned types}}
  %y = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout -0.1 transpose_b : (tensor<2x32xf32>, tensor<64x32xf32>, tensor<8x32xf32>, tensor<64x8xf32>) -> tensor<2x64xf32>
  return
}

// -----

func.func @scale_inf(%x: tensor<2x32xf32>, %w: tensor<64x32xf32>, %a: tensor<8x32xf32>, %b: tensor<64x8xf32>) {
  // expected-error @+2 {{'vlora.lora_matmul' scale must be finite}}
  // expected-error @+1 {{failed to infer returned types}}
  %y = "vlora.lora_matmul"(%x, %w, %a, %b) {scale = 0x7FF0000000000000 : f64, dropout = 0.0 : f64, transpose_b} : (tensor<2x32xf32>, tensor<64x32xf32>, tensor<8x32xf32>, tensor<64x8xf32>) -> tensor<2x64xf32>
  return
}

// -----

func.func @wrong_result(%x: tensor<2x32xf32>, %w: tensor<64x32xf32>, %a: tensor<8x32xf32>, %b: tensor<64x8xf32>) {
  // expected-error @+2 {{'vlora.lora_matmul' op inferred type(s) 'tensor<2x64xf32>' are incompatible with return type(s) of operation 'tensor<2x32xf32>'}}
  // expected-error @+1 {{failed to infer returned types}}
  %y = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<2x32xf32>, tensor<64x32xf32>, tensor<8x32xf32>, tensor<64x8xf32>) -> tensor<2x32xf32>
  return
}

// -----

func.func @rng_without_stream(%x: tensor<2x32xf32>, %w: tensor<64x32xf32>, %a: tensor<8x32xf32>, %b: tensor<64x8xf32>, %rng: tensor<2xi64>) {
  // expected-error @+1 {{'vlora.lora_matmul' op 'rng' and 'stream' must be given together}}
  %y = "vlora.lora_matmul"(%x, %w, %a, %b, %rng) {scale = 2.0 : f64, dropout = 0.1 : f64, transpose_b} : (tensor<2x32xf32>, tensor<64x32xf32>, tensor<8x32xf32>, tensor<64x8xf32>, tensor<2xi64>) -> tensor<2x64xf32>
  return
}

// -----

func.func @rng_shape(%x: tensor<2x32xf32>, %w: tensor<64x32xf32>, %a: tensor<8x32xf32>, %b: tensor<64x8xf32>, %rng: tensor<3xi64>) {
  // expected-error @+1 {{'vlora.lora_matmul' op 'rng' must be tensor<2xi64> ([seed, counter]), got 'tensor<3xi64>'}}
  %y = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.1 transpose_b rng %rng stream 0 : (tensor<2x32xf32>, tensor<64x32xf32>, tensor<8x32xf32>, tensor<64x8xf32>, tensor<3xi64>) -> tensor<2x64xf32>
  return
}

// -----

func.func @stream_negative(%dy: tensor<2x64xf32>, %x: tensor<2x32xf32>, %w: tensor<64x32xf32>, %a: tensor<8x32xf32>, %b: tensor<64x8xf32>, %rng: tensor<2xi64>) {
  // expected-error @+1 {{'vlora.lora_matmul_grad' op 'stream' must be non-negative, got -1}}
  %da, %db = vlora.lora_matmul_grad %dy, %x, %w, %a, %b scale 2.0 dropout 0.1 transpose_b rng %rng stream -1 : (tensor<2x64xf32>, tensor<2x32xf32>, tensor<64x32xf32>, tensor<8x32xf32>, tensor<64x8xf32>, tensor<2xi64>) -> (tensor<8x32xf32>, tensor<64x8xf32>)
  return
}
