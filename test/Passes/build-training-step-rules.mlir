// The reverse rules of --vlora-build-training-step, one small graph per op
// family; each checks the backward ops emitted (in reverse program order)
// and that frozen operands get no gradient.

// RUN: vlora-opt %s --split-input-file --vlora-build-training-step | FileCheck %s

// Elementwise: SiLU as the exporters write it (x * sigmoid(x)), erf, tanh,
// and a division by a frozen broadcast vector.
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}) -> (tensor<1x4x8xf32> {vlora.name = "logits"}) {
    %w = vlora.param "w" frozen initializer "model.onnx" [offset 0, length 256] : tensor<8x8xf32>
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %g = vlora.param "g" frozen initializer "model.onnx" [offset 256, length 32] : tensor<8xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %s = vlora.sigmoid %h : tensor<1x4x8xf32>
    %silu = vlora.mul %h, %s : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    %e = vlora.erf %silu : tensor<1x4x8xf32>
    %t = vlora.tanh %e : tensor<1x4x8xf32>
    %d = vlora.div %t, %g : (tensor<1x4x8xf32>, tensor<8xf32>) -> tensor<1x4x8xf32>
    return %d : tensor<1x4x8xf32>
  }
}
// CHECK-LABEL: func.func @train_step
// CHECK: %[[H:.*]] = vlora.lora_matmul
// CHECK: %[[S:.*]] = vlora.sigmoid %[[H]]
// CHECK: %[[SILU:.*]] = vlora.mul %[[H]], %[[S]]
// CHECK: %[[E:.*]] = vlora.erf %[[SILU]]
// CHECK: %[[T:.*]] = vlora.tanh %[[E]]
// CHECK: %[[D:.*]] = vlora.div %[[T]], %[[G:[^ ]*]]
// CHECK: %[[DD:.*]] = vlora.cross_entropy_grad
// div: dy / g only (g is frozen).
// CHECK-NEXT: %[[DT:.*]] = vlora.div %[[DD]], %[[G]]
// tanh: dy * (1 - y^2).
// CHECK-NEXT: %[[ONE:.*]] = vlora.constant dense<1.000000e+00>
// CHECK-NEXT: %[[T2:.*]] = vlora.mul %[[T]], %[[T]]
// CHECK-NEXT: %[[OMT:.*]] = vlora.sub %[[ONE]], %[[T2]]
// CHECK-NEXT: %[[DE:.*]] = vlora.mul %[[DT]], %[[OMT]]
// erf: dy * 2/sqrt(pi) * exp(-x^2).
// CHECK-NEXT: %[[X2:.*]] = vlora.mul %[[SILU]], %[[SILU]]
// CHECK-NEXT: %[[NX2:.*]] = vlora.neg %[[X2]]
// CHECK-NEXT: %[[EX:.*]] = vlora.exp %[[NX2]]
// CHECK-NEXT: %[[C:.*]] = vlora.constant dense<1.12837923>
// CHECK-NEXT: %[[DEC:.*]] = vlora.mul %[[DE]], %[[C]]
// CHECK-NEXT: %[[DSILU:.*]] = vlora.mul %[[DEC]], %[[EX]]
// mul: each side gets dy times the other.
// CHECK-NEXT: %[[DH1:.*]] = vlora.mul %[[DSILU]], %[[S]]
// CHECK-NEXT: %[[DS:.*]] = vlora.mul %[[DSILU]], %[[H]]
// sigmoid: dy * y * (1 - y).
// CHECK-NEXT: %[[ONE2:.*]] = vlora.constant dense<1.000000e+00>
// CHECK-NEXT: %[[OMS:.*]] = vlora.sub %[[ONE2]], %[[S]]
// CHECK-NEXT: %[[SS:.*]] = vlora.mul %[[S]], %[[OMS]]
// CHECK-NEXT: %[[DH2:.*]] = vlora.mul %[[DS]], %[[SS]]
// Fan-out of %h summed.
// CHECK-NEXT: %[[DH:.*]] = vlora.add %[[DH1]], %[[DH2]]
// CHECK-NEXT: vlora.lora_matmul_grad %[[DH]],
// CHECK: return

// -----

// Linalg and normalisation: attention-like scores between two active values
// (both matmul operands get gradients), softmax, layer_norm with a frozen
// scale and bias, reduce_mean with a broadcasting sub.
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}) -> (tensor<1x4x4xf32> {vlora.name = "logits"}) {
    %w = vlora.param "w" frozen initializer "model.onnx" [offset 0, length 256] : tensor<8x8xf32>
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %g = vlora.param "g" frozen initializer "model.onnx" [offset 256, length 32] : tensor<8xf32>
    %bias = vlora.param "bias" frozen initializer "model.onnx" [offset 288, length 32] : tensor<8xf32>
    %q = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %n = vlora.layer_norm %q, %g, %bias axis 2 epsilon 1.0e-05 : (tensor<1x4x8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<1x4x8xf32>
    %m = vlora.reduce_mean %n axes [2] keepdims : (tensor<1x4x8xf32>) -> tensor<1x4x1xf32>
    %c = vlora.sub %n, %m : (tensor<1x4x8xf32>, tensor<1x4x1xf32>) -> tensor<1x4x8xf32>
    %s = vlora.matmul %c, %q transpose_b : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x4xf32>
    %p = vlora.softmax %s axis 2 : tensor<1x4x4xf32>
    return %p : tensor<1x4x4xf32>
  }
}
// CHECK-LABEL: func.func @train_step
// CHECK: %[[G:.*]] = vlora.param "g"
// CHECK: %[[Q:.*]] = vlora.lora_matmul
// CHECK: %[[C:.*]] = vlora.sub
// CHECK: %[[P:.*]] = vlora.softmax
// CHECK: %[[DP:.*]] = vlora.cross_entropy_grad
// CHECK-NEXT: %[[DS:.*]] = vlora.softmax_grad %[[DP]], %[[P]] axis 2 : tensor<1x4x4xf32>
// s = c · qᵀ: dc = ds · q, dq = dsᵀ · c.
// CHECK-NEXT: %[[DC:.*]] = vlora.matmul %[[DS]], %[[Q]] : (tensor<1x4x4xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
// CHECK-NEXT: %[[DQ1:.*]] = vlora.matmul %[[DS]], %[[C]] transpose_a : (tensor<1x4x4xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
// sub: -dy summed over the broadcast axis; reduce_mean: / 8, expanded back.
// CHECK-NEXT: %[[SUM:.*]] = vlora.reduce_sum %[[DC]] axes [2] keepdims : (tensor<1x4x8xf32>) -> tensor<1x4x1xf32>
// CHECK-NEXT: %[[DM:.*]] = vlora.neg %[[SUM]]
// CHECK-NEXT: %[[EIGHTH:.*]] = vlora.constant dense<1.250000e-01>
// CHECK-NEXT: %[[DMS:.*]] = vlora.mul %[[DM]], %[[EIGHTH]]
// CHECK-NEXT: %[[DMX:.*]] = vlora.expand %[[DMS]] [1, 4, 8]
// CHECK-NEXT: %[[DN:.*]] = vlora.add %[[DC]], %[[DMX]]
// layer_norm: dx only (scale and bias are frozen).
// CHECK-NEXT: %[[DQ2:.*]] = vlora.layer_norm_grad %[[DN]], %[[Q]], %[[G]] axis 2 epsilon 1.000000e-05
// CHECK-NEXT: %[[DQ:.*]] = vlora.add %[[DQ1]], %[[DQ2]]
// CHECK-NEXT: vlora.lora_matmul_grad %[[DQ]],
// CHECK-NOT: -> tensor<8xf32>
// CHECK: return

// -----

// Data movement: gather with integer indices (inactive), masked_scatter
// (only the source is active here), reshape, transpose, slice, split (one
// piece unused), concat, float casts, expand, where.
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %ids: tensor<1x4xi64> {vlora.name = "input_ids"}, %mask: tensor<1x4x8xi1> {vlora.name = "mask"}) -> (tensor<1x4x8xf32> {vlora.name = "logits"}) {
    %w = vlora.param "w" frozen initializer "model.onnx" [offset 0, length 256] : tensor<8x8xf32>
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %table = vlora.param "embed" frozen initializer "model.onnx" [offset 256, length 512] : tensor<16x8xf32>
    %emb = vlora.gather %table, %ids axis 0 : (tensor<16x8xf32>, tensor<1x4xi64>) -> tensor<1x4x8xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 1.0 dropout 0.0 : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %r = vlora.reshape %h [32] : (tensor<1x4x8xf32>) -> tensor<32xf32>
    %merged = vlora.masked_scatter %emb, %mask, %r : (tensor<1x4x8xf32>, tensor<1x4x8xi1>, tensor<32xf32>) -> tensor<1x4x8xf32>
    %t = vlora.transpose %merged [0, 2, 1] : (tensor<1x4x8xf32>) -> tensor<1x8x4xf32>
    %lo = vlora.slice %t starts [0, 0, 0] limits [1, 4, 4] strides [1, 1, 1] : (tensor<1x8x4xf32>) -> tensor<1x4x4xf32>
    %parts:2 = vlora.split %t axis 1 sizes [4, 4] : (tensor<1x8x4xf32>) -> (tensor<1x4x4xf32>, tensor<1x4x4xf32>)
    %j = vlora.concat %lo, %parts#1 axis 2 : (tensor<1x4x4xf32>, tensor<1x4x4xf32>) -> tensor<1x4x8xf32>
    %c = vlora.cast %j to f16 : (tensor<1x4x8xf32>) -> tensor<1x4x8xf16>
    %c2 = vlora.cast %c to f32 : (tensor<1x4x8xf16>) -> tensor<1x4x8xf32>
    %row = vlora.slice %c2 starts [0, 0, 0] limits [1, 1, 8] strides [1, 1, 1] : (tensor<1x4x8xf32>) -> tensor<1x1x8xf32>
    %e = vlora.expand %row [1, 4, 8] : (tensor<1x1x8xf32>) -> tensor<1x4x8xf32>
    %y = vlora.where %mask, %e, %c2 : (tensor<1x4x8xi1>, tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    return %y : tensor<1x4x8xf32>
  }
}
// CHECK-LABEL: func.func @train_step
// CHECK-SAME: %[[MASK:[^:]*]]: tensor<1x4x8xi1> {vlora.name = "mask"}
// CHECK: %[[DY:.*]] = vlora.cross_entropy_grad
// where: the condition selects which side gets dy.
// CHECK-NEXT: %[[Z:.*]] = vlora.constant dense<0.000000e+00> : tensor<f32>
// CHECK-NEXT: %[[DE:.*]] = vlora.where %[[MASK]], %[[DY]], %[[Z]]
// CHECK-NEXT: %[[DC2A:.*]] = vlora.where %[[MASK]], %[[Z]], %[[DY]]
// expand: summed over the broadcast dimension; slice: padded back.
// CHECK-NEXT: %[[DROW:.*]] = vlora.reduce_sum %[[DE]] axes [1] keepdims : (tensor<1x4x8xf32>) -> tensor<1x1x8xf32>
// CHECK-NEXT: %[[DC2B:.*]] = vlora.pad %[[DROW]] [0, 0, 0, 0, 3, 0] value 0.000000e+00 : (tensor<1x1x8xf32>) -> tensor<1x4x8xf32>
// CHECK-NEXT: %[[DC2:.*]] = vlora.add %[[DC2A]], %[[DC2B]]
// casts: cast back.
// CHECK-NEXT: %[[DC:.*]] = vlora.cast %[[DC2]] to f16
// CHECK-NEXT: %[[DJ:.*]] = vlora.cast %[[DC]] to f32
// concat: a slice per input.
// CHECK-NEXT: %[[DLO:.*]] = vlora.slice %[[DJ]] starts [0, 0, 0] limits [1, 4, 4]
// CHECK-NEXT: %[[DP1:.*]] = vlora.slice %[[DJ]] starts [0, 0, 4] limits [1, 4, 8]
// split: the unused piece contributes zeros.
// CHECK-NEXT: %[[Z4:.*]] = vlora.constant dense<0.000000e+00> : tensor<1x4x4xf32>
// CHECK-NEXT: %[[DT1:.*]] = vlora.concat %[[Z4]], %[[DP1]] axis 1
// CHECK-NEXT: %[[DT2:.*]] = vlora.pad %[[DLO]] [0, 0, 0, 0, 4, 0]
// CHECK-NEXT: %[[DT:.*]] = vlora.add %[[DT1]], %[[DT2]]
// CHECK-NEXT: %[[DM:.*]] = vlora.transpose %[[DT]] [0, 2, 1]
// masked_scatter: the source gets the masked elements in order; the
// embeddings (gather of a frozen table) get nothing.
// CHECK-NEXT: %[[DR:.*]] = vlora.masked_select %[[DM]], %[[MASK]] shape [32] : (tensor<1x4x8xf32>, tensor<1x4x8xi1>) -> tensor<32xf32>
// CHECK-NEXT: %[[DH:.*]] = vlora.reshape %[[DR]] [1, 4, 8]
// CHECK-NEXT: vlora.lora_matmul_grad %[[DH]],
// CHECK-NOT: -> tensor<16x8xf32>
// CHECK: return

// -----

// masked_scatter with both data and source active, and a lora_matmul whose
// input is active (input_grad: dx flows to the earlier adapter).
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}, %mask: tensor<1x4x8xi1> {vlora.name = "mask"}) -> (tensor<1x4x8xf32> {vlora.name = "logits"}) {
    %w = vlora.param "w" frozen initializer "model.onnx" [offset 0, length 256] : tensor<8x8xf32>
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %a2 = vlora.param "a2" trainable bundle "adapters.init.safetensors" [offset 128, length 64] : tensor<2x8xf32>
    %b2 = vlora.param "b2" trainable bundle "adapters.init.safetensors" [offset 192, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 1.0 dropout 0.0 : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %r = vlora.reshape %h [32] : (tensor<1x4x8xf32>) -> tensor<32xf32>
    %merged = vlora.masked_scatter %h, %mask, %r : (tensor<1x4x8xf32>, tensor<1x4x8xi1>, tensor<32xf32>) -> tensor<1x4x8xf32>
    %y = vlora.lora_matmul %merged, %w, %a2, %b2 scale 1.0 dropout 0.0 : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    return %y : tensor<1x4x8xf32>
  }
}
// CHECK-LABEL: func.func @train_step
// CHECK-SAME: %[[MASK:[^:]*]]: tensor<1x4x8xi1> {vlora.name = "mask"}
// CHECK: %[[DY:.*]] = vlora.cross_entropy_grad
// CHECK-NEXT: %{{.*}}, %{{.*}}, %[[DMERGED:.*]] = vlora.lora_matmul_grad %[[DY]], {{.*}} input_grad : {{.*}} -> (tensor<2x8xf32>, tensor<8x2xf32>, tensor<1x4x8xf32>)
// CHECK-NEXT: %[[Z:.*]] = vlora.constant dense<0.000000e+00> : tensor<f32>
// CHECK-NEXT: %[[DDATA:.*]] = vlora.where %[[MASK]], %[[Z]], %[[DMERGED]]
// CHECK-NEXT: %[[DSRC:.*]] = vlora.masked_select %[[DMERGED]], %[[MASK]] shape [32]
// CHECK-NEXT: %[[DSRCR:.*]] = vlora.reshape %[[DSRC]] [1, 4, 8]
// CHECK-NEXT: %[[DH:.*]] = vlora.add %[[DDATA]], %[[DSRCR]]
// CHECK-NEXT: %{{.*}}, %{{.*}} = vlora.lora_matmul_grad %[[DH]], {{.*}} : {{.*}} -> (tensor<2x8xf32>, tensor<8x2xf32>)
// CHECK: return

// -----

// RMSNorm as the exporters decompose it (pow, reduce_mean, add eps, sqrt,
// reciprocal, mul), then neg and exp: the constants get no gradient.
module {
  func.func @main(%x: tensor<1x4x8xf32> {vlora.name = "x"}) -> (tensor<1x4x8xf32> {vlora.name = "logits"}) {
    %w = vlora.param "w" frozen initializer "model.onnx" [offset 0, length 256] : tensor<8x8xf32>
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %two = vlora.constant dense<2.0> : tensor<f32>
    %eps = vlora.constant dense<1.0e-06> : tensor<f32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 1.0 dropout 0.0 : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %sq = vlora.pow %h, %two : (tensor<1x4x8xf32>, tensor<f32>) -> tensor<1x4x8xf32>
    %ms = vlora.reduce_mean %sq axes [2] keepdims : (tensor<1x4x8xf32>) -> tensor<1x4x1xf32>
    %add = vlora.add %ms, %eps : (tensor<1x4x1xf32>, tensor<f32>) -> tensor<1x4x1xf32>
    %rt = vlora.sqrt %add : tensor<1x4x1xf32>
    %inv = vlora.reciprocal %rt : tensor<1x4x1xf32>
    %n = vlora.mul %h, %inv : (tensor<1x4x8xf32>, tensor<1x4x1xf32>) -> tensor<1x4x8xf32>
    %neg = vlora.neg %n : tensor<1x4x8xf32>
    %y = vlora.exp %neg : tensor<1x4x8xf32>
    return %y : tensor<1x4x8xf32>
  }
}
// CHECK-LABEL: func.func @train_step
// CHECK: %[[TWO:.*]] = vlora.constant dense<2.000000e+00>
// CHECK: %[[H:.*]] = vlora.lora_matmul
// CHECK: %[[RT:.*]] = vlora.sqrt
// CHECK: %[[INV:.*]] = vlora.reciprocal %[[RT]]
// CHECK: %[[Y:.*]] = vlora.exp
// CHECK: %[[DY:.*]] = vlora.cross_entropy_grad
// exp: dy * y; neg: -dy.
// CHECK-NEXT: %[[DNEG:.*]] = vlora.mul %[[DY]], %[[Y]]
// CHECK-NEXT: %[[DN:.*]] = vlora.neg %[[DNEG]]
// mul with a broadcast operand: dh = dy * inv, dinv = Σ dy * h.
// CHECK-NEXT: %[[DH1:.*]] = vlora.mul %[[DN]], %[[INV]]
// CHECK-NEXT: %[[DNH:.*]] = vlora.mul %[[DN]], %[[H]]
// CHECK-NEXT: %[[DINV:.*]] = vlora.reduce_sum %[[DNH]] axes [2] keepdims : (tensor<1x4x8xf32>) -> tensor<1x4x1xf32>
// reciprocal: -dy * y^2.
// CHECK-NEXT: %[[INV2:.*]] = vlora.mul %[[INV]], %[[INV]]
// CHECK-NEXT: %[[T:.*]] = vlora.mul %[[DINV]], %[[INV2]]
// CHECK-NEXT: %[[DRT:.*]] = vlora.neg %[[T]]
// sqrt: dy * 0.5 / y; add: dy passes to the active side only.
// CHECK-NEXT: %[[HALF:.*]] = vlora.constant dense<5.000000e-01>
// CHECK-NEXT: %[[DRTH:.*]] = vlora.mul %[[DRT]], %[[HALF]]
// CHECK-NEXT: %[[DMS:.*]] = vlora.div %[[DRTH]], %[[RT]]
// reduce_mean: / 8, expanded back.
// CHECK-NEXT: %[[EIGHTH:.*]] = vlora.constant dense<1.250000e-01>
// CHECK-NEXT: %[[DMSS:.*]] = vlora.mul %[[DMS]], %[[EIGHTH]]
// CHECK-NEXT: %[[DSQ:.*]] = vlora.expand %[[DMSS]] [1, 4, 8]
// pow by the constant 2: dy * 2h (folded); no gradient for the exponent.
// CHECK-NEXT: %[[C2:.*]] = vlora.constant dense<2.000000e+00>
// CHECK-NEXT: %[[H2:.*]] = vlora.mul %[[H]], %[[C2]]
// CHECK-NEXT: %[[DH2:.*]] = vlora.mul %[[DSQ]], %[[H2]]
// CHECK-NEXT: %[[DH:.*]] = vlora.add %[[DH1]], %[[DH2]]
// CHECK-NEXT: vlora.lora_matmul_grad %[[DH]],
// CHECK-NOT: -> tensor<f32>
// CHECK: vlora.global_norm
