// --vlora-build-training-step on a one-layer graph: the @train_step
// signature, the loss, the reverse sweep (the frozen weights get no
// gradient), gradient accumulation; @optimizer_step with global-norm
// clipping and AdamW; LoRA dropout's rng.

// RUN: vlora-opt %s --vlora-build-training-step="fuse-lm-head=false" | FileCheck %s
// RUN: vlora-opt %s --vlora-build-training-step | FileCheck %s --check-prefix=FUSED
// RUN: vlora-opt %s --vlora-build-training-step | FileCheck %s --check-prefix=NODW
// RUN: vlora-opt %s --vlora-build-training-step="fuse-lm-head=false" | FileCheck %s --check-prefix=NODW
// RUN: vlora-opt %s --vlora-build-training-step="beta1=0.8 beta2=0.99 eps=1e-6" | FileCheck %s --check-prefix=BETAS
// RUN: sed 's/dropout 0.0 transpose_b/dropout 0.1 transpose_b/' %s | vlora-opt --vlora-build-training-step | FileCheck %s --check-prefix=DROPOUT
// RUN: vlora-opt %s --vlora-build-training-step --verify-roundtrip | FileCheck %s --check-prefix=ROUNDTRIP

module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "inputs_embeds"}) -> (tensor<1x4x16xf32> {vlora.name = "logits"}) {
    %w = vlora.param "model.layers.0.q_proj.weight" frozen initializer "model.onnx" [offset 0, length 256] : tensor<8x8xf32>
    %a = vlora.param "base_model.model.model.layers.0.q_proj.lora_A.weight" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "base_model.model.model.layers.0.q_proj.lora_B.weight" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %head = vlora.param "lm_head.weight" frozen initializer "model.onnx" [offset 256, length 512] : tensor<16x8xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b {vlora.module = "model.layers.0.q_proj"} : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    // Fan-out: %h feeds the residual add twice.
    %r = vlora.add %h, %h : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %r, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// @main is kept as it was (evaluation; the adapters' initial bytes).
// CHECK-LABEL: func.func @main
// CHECK: vlora.param "base_model.model.model.layers.0.q_proj.lora_A.weight" trainable
// CHECK: return

// The signature: forward inputs, labels, loss_scale, adapters and their
// gradient accumulators; results the loss and the accumulators, all named.
// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %[[X:[^:]*]]: tensor<1x4x8xf32> {vlora.name = "inputs_embeds"},
// CHECK-SAME: %[[LABELS:[^:]*]]: tensor<1x4xi64> {vlora.name = "labels"},
// CHECK-SAME: %[[SCALE:[^:]*]]: tensor<f32> {vlora.name = "loss_scale"},
// CHECK-SAME: %[[A:[^:]*]]: tensor<2x8xf32> {vlora.name = "base_model.model.model.layers.0.q_proj.lora_A.weight"},
// CHECK-SAME: %[[B:[^:]*]]: tensor<8x2xf32> {vlora.name = "base_model.model.model.layers.0.q_proj.lora_B.weight"},
// CHECK-SAME: %[[GA:[^:]*]]: tensor<2x8xf32> {vlora.name = "base_model.model.model.layers.0.q_proj.lora_A.weight.grad"},
// CHECK-SAME: %[[GB:[^:]*]]: tensor<8x2xf32> {vlora.name = "base_model.model.model.layers.0.q_proj.lora_B.weight.grad"})
// CHECK-SAME: -> (tensor<f32> {vlora.name = "loss"},
// CHECK-SAME: tensor<2x8xf32> {vlora.name = "base_model.model.model.layers.0.q_proj.lora_A.weight.grad"}, tensor<8x2xf32> {vlora.name = "base_model.model.model.layers.0.q_proj.lora_B.weight.grad"})
// The adapters are arguments now; the frozen weights stay parameters.
// CHECK-NOT: trainable
// CHECK: %[[W:.*]] = vlora.param "model.layers.0.q_proj.weight" frozen
// CHECK: %[[HEAD:.*]] = vlora.param "lm_head.weight" frozen
// No dropout: no rng.
// CHECK: %[[H:.*]] = vlora.lora_matmul %[[X]], %[[W]], %[[A]], %[[B]] scale 2.000000e+00 dropout 0.000000e+00 transpose_b {
// CHECK: %[[R:.*]] = vlora.add %[[H]], %[[H]]
// CHECK: %[[LOGITS:.*]] = vlora.matmul %[[R]], %[[HEAD]] transpose_b
// Loss and its gradient, seeded with loss_scale.
// CHECK: %[[LOSS:.*]] = vlora.cross_entropy %[[LOGITS]], %[[LABELS]] ignore_index -100 : (tensor<1x4x16xf32>, tensor<1x4xi64>) -> tensor<f32>
// CHECK: %[[DLOGITS:.*]] = vlora.cross_entropy_grad %[[SCALE]], %[[LOGITS]], %[[LABELS]] ignore_index -100
// lm_head: only the input gradient (dy · W, W is [out, in]).
// CHECK: %[[DR:.*]] = vlora.matmul %[[DLOGITS]], %[[HEAD]] : (tensor<1x4x16xf32>, tensor<16x8xf32>) -> tensor<1x4x8xf32>
// Both uses of %h contribute; the fan-out is summed.
// CHECK: %[[DH:.*]] = vlora.add %[[DR]], %[[DR]]
// The input is not active: no input_grad, no dx.
// CHECK: %[[DA:.*]], %[[DB:.*]] = vlora.lora_matmul_grad %[[DH]], %[[X]], %[[W]], %[[A]], %[[B]] scale 2.000000e+00 dropout 0.000000e+00 transpose_b {vlora.module = "model.layers.0.q_proj"} : (tensor<1x4x8xf32>, tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> (tensor<2x8xf32>, tensor<8x2xf32>)
// Accumulation.
// CHECK: %[[GA1:.*]] = vlora.add %[[GA]], %[[DA]]
// CHECK: %[[GB1:.*]] = vlora.add %[[GB]], %[[DB]]
// CHECK: return %[[LOSS]], %[[GA1]], %[[GB1]]

// @optimizer_step: adapters, gradients, exp_avg, exp_avg_sq, lr, step,
// max_grad_norm, weight_decay -> grad_norm and the new state.
// CHECK-LABEL: func.func @optimizer_step(
// CHECK-SAME: %[[OA:[^:]*]]: tensor<2x8xf32> {vlora.name = "base_model.model.model.layers.0.q_proj.lora_A.weight"},
// CHECK-SAME: %[[OB:[^:]*]]: tensor<8x2xf32> {vlora.name = "base_model.model.model.layers.0.q_proj.lora_B.weight"},
// CHECK-SAME: %[[OGA:[^:]*]]: tensor<2x8xf32> {vlora.name = "base_model.model.model.layers.0.q_proj.lora_A.weight.grad"},
// CHECK-SAME: %[[OGB:[^:]*]]: tensor<8x2xf32> {vlora.name = "base_model.model.model.layers.0.q_proj.lora_B.weight.grad"},
// CHECK-SAME: %[[MA:[^:]*]]: tensor<2x8xf32> {vlora.name = "base_model.model.model.layers.0.q_proj.lora_A.weight.exp_avg"},
// CHECK-SAME: %[[MB:[^:]*]]: tensor<8x2xf32> {vlora.name = "base_model.model.model.layers.0.q_proj.lora_B.weight.exp_avg"},
// CHECK-SAME: %[[VA:[^:]*]]: tensor<2x8xf32> {vlora.name = "base_model.model.model.layers.0.q_proj.lora_A.weight.exp_avg_sq"},
// CHECK-SAME: %[[VB:[^:]*]]: tensor<8x2xf32> {vlora.name = "base_model.model.model.layers.0.q_proj.lora_B.weight.exp_avg_sq"},
// CHECK-SAME: %[[LR:[^:]*]]: tensor<f32> {vlora.name = "lr"},
// CHECK-SAME: %[[STEP:[^:]*]]: tensor<i64> {vlora.name = "step"},
// CHECK-SAME: %[[MAXNORM:[^:]*]]: tensor<f32> {vlora.name = "max_grad_norm"},
// CHECK-SAME: %[[WD:[^:]*]]: tensor<f32> {vlora.name = "weight_decay"})
// CHECK-SAME: -> (tensor<f32> {vlora.name = "grad_norm"}, tensor<2x8xf32> {vlora.name = "base_model.model.model.layers.0.q_proj.lora_A.weight"}, tensor<8x2xf32> {vlora.name = "base_model.model.model.layers.0.q_proj.lora_B.weight"},
// CHECK-SAME: tensor<2x8xf32> {vlora.name = "base_model.model.model.layers.0.q_proj.lora_A.weight.exp_avg"}, tensor<8x2xf32> {vlora.name = "base_model.model.model.layers.0.q_proj.lora_B.weight.exp_avg"},
// CHECK-SAME: tensor<2x8xf32> {vlora.name = "base_model.model.model.layers.0.q_proj.lora_A.weight.exp_avg_sq"}, tensor<8x2xf32> {vlora.name = "base_model.model.model.layers.0.q_proj.lora_B.weight.exp_avg_sq"})
// clip_grad_norm_: coefficient min(1, max_norm / (norm + 1e-6)).
// CHECK: %[[NORM:.*]] = vlora.global_norm %[[OGA]], %[[OGB]] : (tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<f32>
// CHECK: %[[TINY:.*]] = vlora.constant dense<9.99999997E-7> : tensor<f32>
// CHECK: %[[DEN:.*]] = vlora.add %[[NORM]], %[[TINY]]
// CHECK: %[[RATIO:.*]] = vlora.div %[[MAXNORM]], %[[DEN]]
// CHECK: %[[CAP:.*]] = vlora.constant dense<1.000000e+00> : tensor<f32>
// CHECK: %[[COEF:.*]] = vlora.min %[[RATIO]], %[[CAP]]
// CHECK: %[[PA:.*]], %[[MA1:.*]], %[[VA1:.*]] = vlora.adamw_update %[[OA]], %[[OGA]], %[[MA]], %[[VA]], %[[LR]], %[[STEP]], %[[WD]] grad_scale %[[COEF]] beta1 9.000000e-01 beta2 0.99899999999999999 eps 1.000000e-08 :
// CHECK: %[[PB:.*]], %[[MB1:.*]], %[[VB1:.*]] = vlora.adamw_update %[[OB]], %[[OGB]], %[[MB]], %[[VB]], %[[LR]], %[[STEP]], %[[WD]] grad_scale %[[COEF]]
// CHECK: return %[[NORM]], %[[PA]], %[[PB]], %[[MA1]], %[[MB1]], %[[VA1]], %[[VB1]]

// By default the frozen lm_head and the loss are one op: no logits, no
// logits gradient; its input gradient seeds the sweep.
// FUSED-LABEL: func.func @train_step(
// FUSED-SAME: %[[X:[^:]*]]: tensor<1x4x8xf32> {vlora.name = "inputs_embeds"},
// FUSED-SAME: %[[LABELS:[^:]*]]: tensor<1x4xi64> {vlora.name = "labels"},
// FUSED-SAME: %[[SCALE:[^:]*]]: tensor<f32> {vlora.name = "loss_scale"},
// FUSED: %[[HEAD:.*]] = vlora.param "lm_head.weight" frozen
// FUSED-NOT: vlora.matmul
// FUSED: %[[R:.*]] = vlora.add
// FUSED-NOT: vlora.matmul
// FUSED: %[[LOSS:.*]], %[[DR:.*]] = vlora.linear_cross_entropy %[[R]], %[[HEAD]], %[[LABELS]], %[[SCALE]] ignore_index -100 transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>, tensor<1x4xi64>, tensor<f32>) -> (tensor<f32>, tensor<1x4x8xf32>)
// FUSED-NOT: cross_entropy
// FUSED: %[[DH:.*]] = vlora.add %[[DR]], %[[DR]]
// FUSED: vlora.lora_matmul_grad %[[DH]]
// FUSED: return %[[LOSS]],

// No gradient of a frozen weight: nothing in @train_step has the type of W
// ([8, 8]) or of lm_head ([16, 8]) as a result.
// NODW-LABEL: func.func @train_step
// NODW-NOT: -> tensor<8x8xf32>
// NODW-NOT: -> tensor<16x8xf32>
// NODW: return

// The AdamW options reach the update.
// BETAS-LABEL: func.func @optimizer_step
// BETAS: vlora.adamw_update {{.*}} beta1 8.000000e-01 beta2 0.98999999999999999 eps 9.9999999999999995E-7 :

// With dropout, @train_step takes the rng, after loss_scale; the forward
// and the backward op get it with the same stream; @main keeps no rng.
// DROPOUT-LABEL: func.func @main
// DROPOUT: vlora.lora_matmul {{.*}} dropout 1.000000e-01 transpose_b {
// DROPOUT-LABEL: func.func @train_step(
// DROPOUT-SAME: {vlora.name = "loss_scale"}, %[[RNG:[^:]*]]: tensor<2xi64> {vlora.name = "dropout_rng"},
// DROPOUT: vlora.lora_matmul {{.*}} dropout 1.000000e-01 transpose_b rng %[[RNG]] stream 0 {
// DROPOUT: vlora.lora_matmul_grad {{.*}} dropout 1.000000e-01 transpose_b rng %[[RNG]] stream 0 {

// ROUNDTRIP-LABEL: func.func @train_step
// ROUNDTRIP-LABEL: func.func @optimizer_step
