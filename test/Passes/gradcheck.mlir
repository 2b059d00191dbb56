// Finite-difference checks of every reverse rule (passes/Autodiff/): for
// each op family a one-layer graph whose LoRA output flows through the op
// into the logits; vlora-gradcheck builds @train_step, runs it on the CPU
// backend and compares each adapter gradient with central differences of
// the loss (see test/tools/vlora-gradcheck).

// Every case ends in a frozen lm_head matmul: the first run checks the
// fused vlora.linear_cross_entropy, the second the unfused loss.
// RUN: vlora-gradcheck %s --split-input-file | FileCheck %s
// RUN: vlora-gradcheck %s --split-input-file --fuse-lm-head=false | FileCheck %s
// CHECK-NOT: MISMATCH
// CHECK-NOT: error

// add (same shape and broadcast), reduce_mean
// CHECK: #0 ok a:
// CHECK: #0 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %r = vlora.reduce_mean %h axes [1] keepdims : (tensor<1x4x8xf32>) -> tensor<1x1x8xf32>
    %s = vlora.add %h, %r : (tensor<1x4x8xf32>, tensor<1x1x8xf32>) -> tensor<1x4x8xf32>
    %y = vlora.add %s, %x : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// sub (broadcast lhs), reduce_sum
// CHECK: #1 ok a:
// CHECK: #1 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %r = vlora.reduce_sum %h axes [2] keepdims : (tensor<1x4x8xf32>) -> tensor<1x4x1xf32>
    %y = vlora.sub %r, %h : (tensor<1x4x1xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// mul (both operands active, and by an input)
// CHECK: #2 ok a:
// CHECK: #2 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %s = vlora.mul %h, %h : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    %y = vlora.mul %s, %x : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// div (both operands active), exp
// CHECK: #3 ok a:
// CHECK: #3 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %e = vlora.exp %h : tensor<1x4x8xf32>
    %y = vlora.div %h, %e : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// pow (constant exponent)
// CHECK: #4 ok a:
// CHECK: #4 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %e = vlora.exp %h : tensor<1x4x8xf32>
    %c = vlora.constant dense<1.5> : tensor<f32>
    %y = vlora.pow %e, %c : (tensor<1x4x8xf32>, tensor<f32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// pow (active base and exponent)
// CHECK: #5 ok a:
// CHECK: #5 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %e = vlora.exp %h : tensor<1x4x8xf32>
    %t = vlora.tanh %h : tensor<1x4x8xf32>
    %y = vlora.pow %e, %t : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// log of a positive value
// CHECK: #6 ok a:
// CHECK: #6 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %s = vlora.mul %h, %h : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    %one = vlora.constant dense<1.0> : tensor<f32>
    %p = vlora.add %s, %one : (tensor<1x4x8xf32>, tensor<f32>) -> tensor<1x4x8xf32>
    %y = vlora.log %p : tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// sqrt of a positive value
// CHECK: #7 ok a:
// CHECK: #7 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %s = vlora.mul %h, %h : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    %one = vlora.constant dense<1.0> : tensor<f32>
    %p = vlora.add %s, %one : (tensor<1x4x8xf32>, tensor<f32>) -> tensor<1x4x8xf32>
    %y = vlora.sqrt %p : tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// rsqrt of a positive value
// CHECK: #8 ok a:
// CHECK: #8 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %s = vlora.mul %h, %h : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    %one = vlora.constant dense<1.0> : tensor<f32>
    %p = vlora.add %s, %one : (tensor<1x4x8xf32>, tensor<f32>) -> tensor<1x4x8xf32>
    %y = vlora.rsqrt %p : tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// reciprocal of a positive value
// CHECK: #9 ok a:
// CHECK: #9 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %s = vlora.mul %h, %h : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    %one = vlora.constant dense<1.0> : tensor<f32>
    %p = vlora.add %s, %one : (tensor<1x4x8xf32>, tensor<f32>) -> tensor<1x4x8xf32>
    %y = vlora.reciprocal %p : tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// neg
// CHECK: #10 ok a:
// CHECK: #10 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %y = vlora.neg %h : tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// tanh
// CHECK: #11 ok a:
// CHECK: #11 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %y = vlora.tanh %h : tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// erf
// CHECK: #12 ok a:
// CHECK: #12 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %y = vlora.erf %h : tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// sigmoid
// CHECK: #13 ok a:
// CHECK: #13 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %y = vlora.sigmoid %h : tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// silu
// CHECK: #14 ok a:
// CHECK: #14 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %y = vlora.silu %h : tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// relu
// CHECK: #15 ok a:
// CHECK: #15 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %y = vlora.relu %h : tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// gelu (exact)
// CHECK: #16 ok a:
// CHECK: #16 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %y = vlora.gelu %h none : tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// gelu (tanh)
// CHECK: #17 ok a:
// CHECK: #17 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %y = vlora.gelu %h tanh : tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// cast to f64 and back
// CHECK: #18 ok a:
// CHECK: #18 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %d = vlora.cast %h to f64 : (tensor<1x4x8xf32>) -> tensor<1x4x8xf64>
    %e = vlora.exp %d : tensor<1x4x8xf64>
    %y = vlora.cast %e to f32 : (tensor<1x4x8xf64>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// where
// CHECK: #19 ok a:
// CHECK: #19 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}, %m: tensor<1x4x8xi1> {vlora.name = "m"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %t = vlora.tanh %h : tensor<1x4x8xf32>
    %y = vlora.where %m, %t, %x : (tensor<1x4x8xi1>, tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// softmax
// CHECK: #20 ok a:
// CHECK: #20 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %y = vlora.softmax %h axis 2 : tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// layer_norm (with and without bias)
// CHECK: #21 ok a:
// CHECK: #21 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}, %g: tensor<8xf32> {vlora.name = "g"}, %beta: tensor<8xf32> {vlora.name = "beta"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %n = vlora.layer_norm %h, %g, %beta axis 2 epsilon 1.0e-05 : (tensor<1x4x8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<1x4x8xf32>
    %t = vlora.tanh %n : tensor<1x4x8xf32>
    %y = vlora.layer_norm %t, %g axis 2 epsilon 1.0e-05 : (tensor<1x4x8xf32>, tensor<8xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// reshape
// CHECK: #22 ok a:
// CHECK: #22 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %r = vlora.reshape %h [1, 8, 4] : (tensor<1x4x8xf32>) -> tensor<1x8x4xf32>
    %s = vlora.mul %r, %r : (tensor<1x8x4xf32>, tensor<1x8x4xf32>) -> tensor<1x8x4xf32>
    %y = vlora.reshape %s [1, 4, 8] : (tensor<1x8x4xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// transpose
// CHECK: #23 ok a:
// CHECK: #23 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %t = vlora.transpose %h [0, 2, 1] : (tensor<1x4x8xf32>) -> tensor<1x8x4xf32>
    %s = vlora.tanh %t : tensor<1x8x4xf32>
    %y = vlora.transpose %s [0, 2, 1] : (tensor<1x8x4xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// slice and pad
// CHECK: #24 ok a:
// CHECK: #24 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %s = vlora.slice %h starts [0, 1, 0] limits [1, 4, 8] strides [1, 1, 1] : (tensor<1x4x8xf32>) -> tensor<1x3x8xf32>
    %t = vlora.tanh %s : tensor<1x3x8xf32>
    %y = vlora.pad %t [0, 0, 0, 0, 1, 0] value 0.0 : (tensor<1x3x8xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// split and concat
// CHECK: #25 ok a:
// CHECK: #25 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %p, %q = vlora.split %h axis 2 sizes [3, 5] : (tensor<1x4x8xf32>) -> (tensor<1x4x3xf32>, tensor<1x4x5xf32>)
    %pt = vlora.tanh %p : tensor<1x4x3xf32>
    %y = vlora.concat %q, %pt axis 2 : (tensor<1x4x5xf32>, tensor<1x4x3xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// expand
// CHECK: #26 ok a:
// CHECK: #26 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %r = vlora.reduce_mean %h axes [1] keepdims : (tensor<1x4x8xf32>) -> tensor<1x1x8xf32>
    %t = vlora.tanh %r : tensor<1x1x8xf32>
    %y = vlora.expand %t [1, 4, 8] : (tensor<1x1x8xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// masked_scatter (active data and source)
// CHECK: #27 ok a:
// CHECK: #27 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}, %m: tensor<1x4x8xi1> {vlora.name = "m"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %t = vlora.tanh %h : tensor<1x4x8xf32>
    %src = vlora.reshape %t [32] : (tensor<1x4x8xf32>) -> tensor<32xf32>
    %y = vlora.masked_scatter %h, %m, %src : (tensor<1x4x8xf32>, tensor<1x4x8xi1>, tensor<32xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// matmul (attention-like: both operands active, transpose_b)
// CHECK: #28 ok a:
// CHECK: #28 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %s = vlora.matmul %h, %h transpose_b : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x4xf32>
    %p = vlora.softmax %s axis 2 : tensor<1x4x4xf32>
    %y = vlora.matmul %p, %h : (tensor<1x4x4xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// matmul (transpose_a, broadcast batch)
// CHECK: #29 ok a:
// CHECK: #29 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %t = vlora.transpose %h [0, 2, 1] : (tensor<1x4x8xf32>) -> tensor<1x8x4xf32>
    %y = vlora.matmul %t, %w transpose_a : (tensor<1x8x4xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// attention (fused; k as [D, T]; a causal mask)
// CHECK: #30 ok a:
// CHECK: #30 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %q = vlora.tanh %h : tensor<1x4x8xf32>
    %k = vlora.transpose %h [0, 2, 1] : (tensor<1x4x8xf32>) -> tensor<1x8x4xf32>
    %mask = vlora.constant dense<[[[0.0, -1.0e9, -1.0e9, -1.0e9], [0.0, 0.0, -1.0e9, -1.0e9], [0.0, 0.0, 0.0, -1.0e9], [0.0, 0.0, 0.0, 0.0]]]> : tensor<1x4x4xf32>
    %y = vlora.attention %q, %k, %h mask %mask scale 0.35 : (tensor<1x4x8xf32>, tensor<1x8x4xf32>, tensor<1x4x8xf32>, tensor<1x4x4xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// attention (fused; transpose_k, no mask)
// CHECK: #31 ok a:
// CHECK: #31 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %k = vlora.tanh %h : tensor<1x4x8xf32>
    %y = vlora.attention %h, %k, %k scale 0.5 transpose_k : (tensor<1x4x8xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// lora_matmul input gradient and dropout (a second adapter on an active input)
// CHECK: #32 ok a:
// CHECK: #32 ok b:
// CHECK: #32 ok a2:
// CHECK: #32 ok b2:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %t = vlora.tanh %h : tensor<1x4x8xf32>
    %a2 = vlora.param "a2" trainable bundle "adapters.init.safetensors" [offset 128, length 96] : tensor<3x8xf32>
    %b2 = vlora.param "b2" trainable bundle "adapters.init.safetensors" [offset 224, length 96] : tensor<8x3xf32>
    %y = vlora.lora_matmul %t, %w, %a2, %b2 scale 0.5 dropout 0.25 : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<3x8xf32>, tensor<8x3xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// max and min (broadcast, both operands active)
// CHECK: #33 ok a:
// CHECK: #33 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %r = vlora.reduce_mean %h axes [2] keepdims : (tensor<1x4x8xf32>) -> tensor<1x4x1xf32>
    %t = vlora.tanh %h : tensor<1x4x8xf32>
    %m = vlora.max %t, %r : (tensor<1x4x8xf32>, tensor<1x4x1xf32>) -> tensor<1x4x8xf32>
    %y = vlora.min %m, %x : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// abs (both signs, away from the kink at 0)
// CHECK: #34 ok a:
// CHECK: #34 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %t = vlora.tanh %h : tensor<1x4x8xf32>
    %two = vlora.constant dense<2.0> : tensor<f32>
    %n = vlora.sub %t, %two : (tensor<1x4x8xf32>, tensor<f32>) -> tensor<1x4x8xf32>
    %p = vlora.add %t, %two : (tensor<1x4x8xf32>, tensor<f32>) -> tensor<1x4x8xf32>
    %an = vlora.abs %n : tensor<1x4x8xf32>
    %ap = vlora.abs %p : tensor<1x4x8xf32>
    %y = vlora.mul %an, %ap : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// sin and cos
// CHECK: #35 ok a:
// CHECK: #35 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %s = vlora.sin %h : tensor<1x4x8xf32>
    %c = vlora.cos %h : tensor<1x4x8xf32>
    %y = vlora.mul %s, %c : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// floor (no gradient through it) next to an active path
// CHECK: #36 ok a:
// CHECK: #36 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %f = vlora.floor %h : tensor<1x4x8xf32>
    %t = vlora.tanh %h : tensor<1x4x8xf32>
    %y = vlora.add %f, %t : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// log_softmax
// CHECK: #37 ok a:
// CHECK: #37 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %y = vlora.log_softmax %h axis 2 : tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// rms_norm (active input and scale)
// CHECK: #38 ok a:
// CHECK: #38 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %g = vlora.reduce_mean %h axes [0, 1] : (tensor<1x4x8xf32>) -> tensor<8xf32>
    %y = vlora.rms_norm %h, %g axis 2 epsilon 1.0e-06 : (tensor<1x4x8xf32>, tensor<8xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// cumsum (inclusive and exclusive, reversed)
// CHECK: #39 ok a:
// CHECK: #39 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %c = vlora.cumsum %h axis 1 : tensor<1x4x8xf32>
    %d = vlora.cumsum %c axis 2 exclusive reverse : tensor<1x4x8xf32>
    %y = vlora.tanh %d : tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// trilu
// CHECK: #40 ok a:
// CHECK: #40 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %s = vlora.matmul %h, %h transpose_b : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x4xf32>
    %l = vlora.trilu %s k 0 : tensor<1x4x4xf32>
    %y = vlora.matmul %l, %h : (tensor<1x4x4xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// pow with constant exponents 2, 1 and 3 (folded rules)
// CHECK: #41 ok a:
// CHECK: #41 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %e = vlora.exp %h : tensor<1x4x8xf32>
    %c2 = vlora.constant dense<2.0> : tensor<f32>
    %c1 = vlora.constant dense<1.0> : tensor<f32>
    %c3 = vlora.constant dense<3.0> : tensor<1x1x8xf32>
    %p2 = vlora.pow %h, %c2 : (tensor<1x4x8xf32>, tensor<f32>) -> tensor<1x4x8xf32>
    %p1 = vlora.pow %p2, %c1 : (tensor<1x4x8xf32>, tensor<f32>) -> tensor<1x4x8xf32>
    %t = vlora.tanh %p1 : tensor<1x4x8xf32>
    %y = vlora.pow %t, %c3 : (tensor<1x4x8xf32>, tensor<1x1x8xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// strided slice (strides 2 and 3, a tail cut) and pad
// CHECK: #42 ok a:
// CHECK: #42 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %s = vlora.slice %h starts [0, 1, 1] limits [1, 4, 8] strides [1, 2, 3] : (tensor<1x4x8xf32>) -> tensor<1x2x3xf32>
    %t = vlora.tanh %s : tensor<1x2x3xf32>
    %y = vlora.pad %t [0, 1, 2, 0, 1, 3] value 0.0 : (tensor<1x2x3xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// scatter_nd (active data and updates; the merge of image features)
// CHECK: #43 ok a:
// CHECK: #43 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %t = vlora.tanh %h : tensor<1x4x8xf32>
    %s = vlora.slice %t starts [0, 0, 0] limits [1, 2, 8] strides [1, 1, 1] : (tensor<1x4x8xf32>) -> tensor<1x2x8xf32>
    %u = vlora.reshape %s [2, 8] : (tensor<1x2x8xf32>) -> tensor<2x8xf32>
    %idx = vlora.constant dense<[[0, 1], [0, 3]]> : tensor<2x2xi64>
    %y = vlora.scatter_nd %h, %idx, %u : (tensor<1x4x8xf32>, tensor<2x2xi64>, tensor<2x8xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// -----

// gather of an active table (repeated and negative indices)
// CHECK: #44 ok a:
// CHECK: #44 ok b:
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %w: tensor<8x8xf32> {vlora.name = "w"}, %head: tensor<16x8xf32> {vlora.name = "head"}) -> tensor<1x4x16xf32> {
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %t = vlora.transpose %h [0, 2, 1] : (tensor<1x4x8xf32>) -> tensor<1x8x4xf32>
    %ids = vlora.constant dense<[3, 0, 1, 1, -2, 3, 0, 2]> : tensor<8xi64>
    %g = vlora.gather %t, %ids axis 2 : (tensor<1x8x4xf32>, tensor<8xi64>) -> tensor<1x8x8xf32>
    %s = vlora.slice %g starts [0, 0, 0] limits [1, 4, 8] strides [1, 1, 1] : (tensor<1x8x8xf32>) -> tensor<1x4x8xf32>
    %e = vlora.reshape %h [32, 1] : (tensor<1x4x8xf32>) -> tensor<32x1xf32>
    %row = vlora.constant dense<[[5, 5, 31, 0], [1, 2, 3, 4]]> : tensor<2x4xi64>
    %g2 = vlora.gather %e, %row axis 0 : (tensor<32x1xf32>, tensor<2x4xi64>) -> tensor<2x4x1xf32>
    %r = vlora.reshape %g2 [1, 8, 1] : (tensor<2x4x1xf32>) -> tensor<1x8x1xf32>
    %r2 = vlora.slice %r starts [0, 0, 0] limits [1, 4, 1] strides [1, 1, 1] : (tensor<1x8x1xf32>) -> tensor<1x4x1xf32>
    %y = vlora.mul %s, %r2 : (tensor<1x4x8xf32>, tensor<1x4x1xf32>) -> tensor<1x4x8xf32>
    %logits = vlora.matmul %y, %head transpose_b : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }
}

// CHECK: gradcheck: 45 functions, 45 checked, 0 failed
