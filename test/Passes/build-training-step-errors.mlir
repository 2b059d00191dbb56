// Errors of --vlora-build-training-step: bad options, nothing to train, an
// active op without a gradient rule (reported at the op), a gradient the
// rules cannot form.

// RUN: not vlora-opt %s --split-input-file --vlora-build-training-step="loss=mse" 2>&1 | FileCheck %s --check-prefix=LOSS
// LOSS: error: --vlora-build-training-step: loss must be 'causal-lm', got 'mse'
// RUN: not vlora-opt %s --split-input-file --vlora-build-training-step="optimizer=sgd" 2>&1 | FileCheck %s --check-prefix=OPT
// OPT: error: --vlora-build-training-step: optimizer must be 'adamw', got 'sgd'
// RUN: not vlora-opt %s --split-input-file --vlora-build-training-step="beta2=1" 2>&1 | FileCheck %s --check-prefix=BETA
// BETA: error: --vlora-build-training-step: beta1 and beta2 must be in [0, 1), got 9.000000e-01 and 1.000000e+00
// RUN: not vlora-opt %s --split-input-file --vlora-build-training-step="eps=0" 2>&1 | FileCheck %s --check-prefix=EPS
// EPS: error: --vlora-build-training-step: eps must be positive, got 0

// RUN: vlora-opt %s --split-input-file --vlora-build-training-step -verify-diagnostics

// A forward without adapters.
module {
  // expected-error @below {{--vlora-build-training-step: @main has no trainable parameters (run --vlora-inject-lora first)}}
  func.func @main(%x: tensor<1x4x8xf32>) -> tensor<1x4x8xf32> {
    %w = vlora.param "w" frozen initializer "model.onnx" [offset 0, length 256] : tensor<8x8xf32>
    %y = vlora.matmul %x, %w : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
    return %y : tensor<1x4x8xf32>
  }
}

// -----

// No @main.
// expected-error @below {{--vlora-build-training-step: the module has no forward func.func @main}}
module {
  func.func @forward(%x: tensor<1x4x8xf32>) -> tensor<1x4x8xf32> {
    return %x : tensor<1x4x8xf32>
  }
}

// -----

// Logits that are not [batch, sequence, vocab].
module {
  // expected-error @below {{--vlora-build-training-step: @main must return one float tensor of logits [batch, sequence, vocab]}}
  func.func @main(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
    return %x : tensor<4x8xf32>
  }
}

// -----

// An active op without a rule is reported at the op.
module {
  func.func @main(%x: tensor<1x4x8xf32>) -> tensor<1x4x8xf32> {
    %w = vlora.param "w" frozen initializer "model.onnx" [offset 0, length 256] : tensor<8x8xf32>
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 1.0 dropout 0.0 : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    // expected-error @below {{'vlora.reduce_max' op is active (it depends on a trainable parameter and reaches the loss) but has no gradient rule}}
    %m = vlora.reduce_max %h axes [2] keepdims : (tensor<1x4x8xf32>) -> tensor<1x4x1xf32>
    %c = vlora.add %h, %m : (tensor<1x4x8xf32>, tensor<1x4x1xf32>) -> tensor<1x4x8xf32>
    return %c : tensor<1x4x8xf32>
  }
}

// -----

// The same op when inactive needs no rule: only the adapter's branch is
// differentiated.
module {
  func.func @main(%x: tensor<1x4x8xf32>) -> tensor<1x4x8xf32> {
    %w = vlora.param "w" frozen initializer "model.onnx" [offset 0, length 256] : tensor<8x8xf32>
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %c = vlora.cumsum %x axis 1 : tensor<1x4x8xf32>
    %h = vlora.lora_matmul %c, %w, %a, %b scale 1.0 dropout 0.0 : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    return %h : tensor<1x4x8xf32>
  }
}

// -----

// A rule that cannot handle an instance says why, at the op.
module {
  func.func @main(%x: tensor<1x4x8xf32>) -> tensor<1x2x8xf32> {
    %w = vlora.param "w" frozen initializer "model.onnx" [offset 0, length 256] : tensor<8x8xf32>
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 1.0 dropout 0.0 : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    // expected-error @below {{'vlora.slice' op has no gradient rule for negative strides}}
    %s = vlora.slice %h starts [0, 3, 0] limits [1, -1, 8] strides [1, -2, 1] : (tensor<1x4x8xf32>) -> tensor<1x2x8xf32>
    return %s : tensor<1x2x8xf32>
  }
}

// -----

// An active gather_elements (it would need a scatter-add of elements).
module {
  func.func @main(%x: tensor<1x4x8xf32>, %ids: tensor<1x4x8xi64>) -> tensor<1x4x8xf32> {
    %w = vlora.param "w" frozen initializer "model.onnx" [offset 0, length 256] : tensor<8x8xf32>
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 1.0 dropout 0.0 : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    // expected-error @below {{'vlora.gather_elements' op is active (it depends on a trainable parameter and reaches the loss) but has no gradient rule}}
    %g = vlora.gather_elements %h, %ids axis 2 : (tensor<1x4x8xf32>, tensor<1x4x8xi64>) -> tensor<1x4x8xf32>
    return %g : tensor<1x4x8xf32>
  }
}

// -----

// A forward input with a name the training step reserves.
module {
  // expected-error @below {{--vlora-build-training-step: @main has an input named 'labels', a name the training step reserves}}
  func.func @main(%x: tensor<1x4x8xf32>, %l: tensor<1x4xi64> {vlora.name = "labels"}) -> tensor<1x4x8xf32> {
    %w = vlora.param "w" frozen initializer "model.onnx" [offset 0, length 256] : tensor<8x8xf32>
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 1.0 dropout 0.0 : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    return %h : tensor<1x4x8xf32>
  }
}
