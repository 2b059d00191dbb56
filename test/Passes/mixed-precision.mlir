// --vlora-mixed-precision{compute=bf16}: the frozen weights read only as a
// matmul-family weight operand become bf16 parameters of the bundle's
// weights.bf16.bin (offsets in name order, one per name, the same in every
// function), remembering where their f32 bytes were; a table read by
// gather and a norm scale keep their f32 bytes; results stay f32; the
// training step's backward matmuls read the same bf16 bytes. With
// activations (the default) every f32 activation a matmul-family op reads
// gets one bf16 copy, made where it is defined and shared by every reader
// (forward and backward), and the ops return f32 (`f32_result`); stored
// values (params, a transposed weight) are not copied, and lora_matmul_grad's
// dY stays f32. compute=f32 changes nothing; another value is refused.

// RUN: vlora-opt %s --vlora-mixed-precision=activations=false | FileCheck %s
// RUN: vlora-opt %s --vlora-build-training-step --vlora-mixed-precision=activations=false | FileCheck %s --check-prefix=TRAIN
// RUN: vlora-opt %s --vlora-mixed-precision | FileCheck %s --check-prefix=ACT
// RUN: vlora-opt %s --vlora-build-training-step --vlora-mixed-precision | FileCheck %s --check-prefix=ACTTRAIN
// RUN: vlora-opt %s --vlora-mixed-precision=compute=f32 | FileCheck %s --check-prefix=F32
// RUN: not vlora-opt %s --vlora-mixed-precision=compute=f16 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: vlora-opt %s --vlora-mixed-precision --verify-roundtrip > /dev/null
// RUN: vlora-opt %s --vlora-build-training-step --vlora-mixed-precision --verify-roundtrip > /dev/null

module {
  func.func @main(%ids: tensor<1x4xi64> {vlora.name = "input_ids"}) -> (tensor<1x4x16xf32> {vlora.name = "logits"}) {
    %table = vlora.param "model.embed_tokens.weight" frozen initializer "model.onnx" [offset 0, length 512] : tensor<16x8xf32>
    %g = vlora.param "model.norm.weight" frozen initializer "model.onnx" [offset 512, length 32] : tensor<8xf32>
    %w = vlora.param "model.layers.0.q_proj.weight" frozen external "model.onnx.data" [offset 1024, length 256] : tensor<8x8xf32>
    %a = vlora.param "base_model.model.model.layers.0.q_proj.lora_A.weight" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "base_model.model.model.layers.0.q_proj.lora_B.weight" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %head = vlora.param "lm_head.weight" frozen initializer "model.onnx" [offset 544, length 512] : tensor<16x8xf32>
    %x = vlora.gather %table, %ids axis 0 : (tensor<16x8xf32>, tensor<1x4xi64>) -> tensor<1x4x8xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b {vlora.module = "model.layers.0.q_proj"} : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    // The dynamo exporter's MatMul(x, Transpose(W)).
    %o = vlora.param "model.layers.0.o_proj.weight" frozen initializer "model.onnx" [offset 1056, length 256] : tensor<8x8xf32>
    %ot = vlora.transpose %o [1, 0] : (tensor<8x8xf32>) -> tensor<8x8xf32>
    %h2 = vlora.matmul %h, %ot : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
    %n = vlora.rms_norm %h2, %g axis 2 epsilon 1.0e-06 : (tensor<1x4x8xf32>, tensor<8xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %n, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// CHECK-LABEL: func.func @main
// CHECK: %[[TABLE:.*]] = vlora.param "model.embed_tokens.weight" frozen initializer "model.onnx" [offset 0, length 512] : tensor<16x8xf32>
// CHECK: vlora.param "model.norm.weight" frozen initializer "model.onnx" [offset 512, length 32] : tensor<8xf32>
// CHECK: %[[W:.*]] = vlora.param "model.layers.0.q_proj.weight" frozen bundle "weights.bf16.bin" [offset 384, length 128] {vlora.converted_from = {file = "model.onnx.data", length = 256 : i64, offset = 1024 : i64, source = "external"}} : tensor<8x8xbf16>
// CHECK: %[[HEAD:.*]] = vlora.param "lm_head.weight" frozen bundle "weights.bf16.bin" [offset 0, length 256] {vlora.converted_from = {file = "model.onnx", length = 512 : i64, offset = 544 : i64, source = "initializer"}} : tensor<16x8xbf16>
// CHECK: vlora.gather %[[TABLE]]
// CHECK: vlora.lora_matmul %{{.*}}, %[[W]], {{.*}} : (tensor<1x4x8xf32>, tensor<8x8xbf16>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
// CHECK: %[[O:.*]] = vlora.param "model.layers.0.o_proj.weight" frozen bundle "weights.bf16.bin" [offset 256, length 128] {vlora.converted_from = {file = "model.onnx", length = 256 : i64, offset = 1056 : i64, source = "initializer"}} : tensor<8x8xbf16>
// CHECK: %[[OT:.*]] = vlora.transpose %[[O]] [1, 0] : (tensor<8x8xbf16>) -> tensor<8x8xbf16>
// CHECK: vlora.matmul %{{.*}}, %[[OT]] : (tensor<1x4x8xf32>, tensor<8x8xbf16>) -> tensor<1x4x8xf32>
// CHECK: vlora.matmul %{{.*}}, %[[HEAD]] transpose_b : (tensor<1x4x8xf32>, tensor<16x8xbf16>) -> tensor<1x4x16xf32>

// TRAIN-LABEL: func.func @train_step
// TRAIN-DAG: %[[W:.*]] = vlora.param "model.layers.0.q_proj.weight" frozen bundle "weights.bf16.bin" [offset 384, length 128]
// TRAIN-DAG: %[[HEAD:.*]] = vlora.param "lm_head.weight" frozen bundle "weights.bf16.bin" [offset 0, length 256]
// TRAIN: vlora.lora_matmul_grad {{.*}}, %[[W]], {{.*}}tensor<8x8xbf16>
// TRAIN-NOT: vlora.param "model.layers.0.q_proj.weight" frozen external

// ACT-LABEL: func.func @main
// ACT-DAG: %[[W:.*]] = vlora.param "model.layers.0.q_proj.weight" {{.*}} : tensor<8x8xbf16>
// ACT-DAG: %[[HEAD:.*]] = vlora.param "lm_head.weight" {{.*}} : tensor<16x8xbf16>
// ACT: %[[X:.*]] = vlora.gather
// ACT-NEXT: %[[XB:.*]] = vlora.cast %[[X]] to bf16 : (tensor<1x4x8xf32>) -> tensor<1x4x8xbf16>
// ACT-NEXT: %[[H:.*]] = vlora.lora_matmul %[[XB]], %[[W]], {{.*}} transpose_b f32_result {{.*}}: (tensor<1x4x8xbf16>, tensor<8x8xbf16>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
// ACT-NEXT: %[[HB:.*]] = vlora.cast %[[H]] to bf16
// ACT: %[[OT:.*]] = vlora.transpose %{{.*}} [1, 0] : (tensor<8x8xbf16>) -> tensor<8x8xbf16>
// ACT-NEXT: %[[H2:.*]] = vlora.matmul %[[HB]], %[[OT]] f32_result : (tensor<1x4x8xbf16>, tensor<8x8xbf16>) -> tensor<1x4x8xf32>
// ACT-NEXT: %[[N:.*]] = vlora.rms_norm %[[H2]], {{.*}} : (tensor<1x4x8xf32>, tensor<8xf32>) -> tensor<1x4x8xf32>
// ACT-NEXT: %[[NB:.*]] = vlora.cast %[[N]] to bf16
// ACT-NEXT: vlora.matmul %[[NB]], %[[HEAD]] transpose_b f32_result : (tensor<1x4x8xbf16>, tensor<16x8xbf16>) -> tensor<1x4x16xf32>
// ACT-NOT: vlora.cast

// The backward reads the forward's bf16 copy of x; dY is f32; the fused
// loss takes the bf16 hidden state and returns an f32 gradient.
// ACTTRAIN-LABEL: func.func @train_step
// ACTTRAIN: %[[XB:.*]] = vlora.cast %{{.*}} to bf16
// ACTTRAIN-NEXT: vlora.lora_matmul %[[XB]], {{.*}} f32_result
// ACTTRAIN: vlora.linear_cross_entropy %{{.*}} transpose_b f32_result : (tensor<1x4x8xbf16>, tensor<16x8xbf16>, tensor<1x4xi64>, tensor<f32>) -> (tensor<f32>, tensor<1x4x8xf32>)
// ACTTRAIN: %[[DYB:.*]] = vlora.cast %{{.*}} to bf16
// ACTTRAIN-NEXT: %[[DY:.*]] = vlora.matmul %[[DYB]], %{{.*}} transpose_b f32_result
// ACTTRAIN-NEXT: vlora.lora_matmul_grad %[[DY]], %[[XB]], {{.*}} f32_result {{.*}}: (tensor<1x4x8xf32>, tensor<1x4x8xbf16>, tensor<8x8xbf16>, tensor<2x8xf32>, tensor<8x2xf32>) -> (tensor<2x8xf32>, tensor<8x2xf32>)

// F32-NOT: bf16
// F32-NOT: converted_from

// BAD: --vlora-mixed-precision: compute must be bf16 or f32, got 'f16'
