#!/usr/bin/env python3
"""Writes test/Passes/gradcheck.mlir, one `// -----` case per op family:

    python3 test/Passes/Inputs/make-gradcheck.py > test/Passes/gradcheck.mlir

Each case is @main(x, w, head[, extra]) -> logits with a LoRA matmul whose
output flows through the op(s) under test into a frozen lm_head matmul.
Add a case with case(title, body[, extra_args]); the body must define %y
of type T from %h (and the arguments).
"""
T = "tensor<1x4x8xf32>"
cases = []
def case(title, body, extra_args="", comment=None):
    cases.append((title, body.strip("\n"), extra_args))

case("add (same shape and broadcast), reduce_mean", f"""
    %r = vlora.reduce_mean %h axes [1] keepdims : ({T}) -> tensor<1x1x8xf32>
    %s = vlora.add %h, %r : ({T}, tensor<1x1x8xf32>) -> {T}
    %y = vlora.add %s, %x : ({T}, {T}) -> {T}""")
case("sub (broadcast lhs), reduce_sum", f"""
    %r = vlora.reduce_sum %h axes [2] keepdims : ({T}) -> tensor<1x4x1xf32>
    %y = vlora.sub %r, %h : (tensor<1x4x1xf32>, {T}) -> {T}""")
case("mul (both operands active, and by an input)", f"""
    %s = vlora.mul %h, %h : ({T}, {T}) -> {T}
    %y = vlora.mul %s, %x : ({T}, {T}) -> {T}""")
case("div (both operands active), exp", f"""
    %e = vlora.exp %h : {T}
    %y = vlora.div %h, %e : ({T}, {T}) -> {T}""")
case("pow (constant exponent)", f"""
    %e = vlora.exp %h : {T}
    %c = vlora.constant dense<1.5> : tensor<f32>
    %y = vlora.pow %e, %c : ({T}, tensor<f32>) -> {T}""")
case("pow (active base and exponent)", f"""
    %e = vlora.exp %h : {T}
    %t = vlora.tanh %h : {T}
    %y = vlora.pow %e, %t : ({T}, {T}) -> {T}""")
for op in ["log", "sqrt", "rsqrt", "reciprocal"]:
    case(f"{op} of a positive value", f"""
    %s = vlora.mul %h, %h : ({T}, {T}) -> {T}
    %one = vlora.constant dense<1.0> : tensor<f32>
    %p = vlora.add %s, %one : ({T}, tensor<f32>) -> {T}
    %y = vlora.{op} %p : {T}""")
for op in ["neg", "tanh", "erf", "sigmoid", "silu", "relu"]:
    case(op, f"""
    %y = vlora.{op} %h : {T}""")
case("gelu (exact)", f"""
    %y = vlora.gelu %h none : {T}""")
case("gelu (tanh)", f"""
    %y = vlora.gelu %h tanh : {T}""")
case("cast to f64 and back", f"""
    %d = vlora.cast %h to f64 : ({T}) -> tensor<1x4x8xf64>
    %e = vlora.exp %d : tensor<1x4x8xf64>
    %y = vlora.cast %e to f32 : (tensor<1x4x8xf64>) -> {T}""")
case("where", f"""
    %t = vlora.tanh %h : {T}
    %y = vlora.where %m, %t, %x : (tensor<1x4x8xi1>, {T}, {T}) -> {T}""", extra_args=", %m: tensor<1x4x8xi1> {vlora.name = \"m\"}")
case("softmax", f"""
    %y = vlora.softmax %h axis 2 : {T}""")
case("layer_norm (with and without bias)", f"""
    %n = vlora.layer_norm %h, %g, %beta axis 2 epsilon 1.0e-05 : ({T}, tensor<8xf32>, tensor<8xf32>) -> {T}
    %t = vlora.tanh %n : {T}
    %y = vlora.layer_norm %t, %g axis 2 epsilon 1.0e-05 : ({T}, tensor<8xf32>) -> {T}""",
     extra_args=", %g: tensor<8xf32> {vlora.name = \"g\"}, %beta: tensor<8xf32> {vlora.name = \"beta\"}")
case("reshape", f"""
    %r = vlora.reshape %h [1, 8, 4] : ({T}) -> tensor<1x8x4xf32>
    %s = vlora.mul %r, %r : (tensor<1x8x4xf32>, tensor<1x8x4xf32>) -> tensor<1x8x4xf32>
    %y = vlora.reshape %s [1, 4, 8] : (tensor<1x8x4xf32>) -> {T}""")
case("transpose", f"""
    %t = vlora.transpose %h [0, 2, 1] : ({T}) -> tensor<1x8x4xf32>
    %s = vlora.tanh %t : tensor<1x8x4xf32>
    %y = vlora.transpose %s [0, 2, 1] : (tensor<1x8x4xf32>) -> {T}""")
case("slice and pad", f"""
    %s = vlora.slice %h starts [0, 1, 0] limits [1, 4, 8] strides [1, 1, 1] : ({T}) -> tensor<1x3x8xf32>
    %t = vlora.tanh %s : tensor<1x3x8xf32>
    %y = vlora.pad %t [0, 0, 0, 0, 1, 0] value 0.0 : (tensor<1x3x8xf32>) -> {T}""")
case("split and concat", f"""
    %p, %q = vlora.split %h axis 2 sizes [3, 5] : ({T}) -> (tensor<1x4x3xf32>, tensor<1x4x5xf32>)
    %pt = vlora.tanh %p : tensor<1x4x3xf32>
    %y = vlora.concat %q, %pt axis 2 : (tensor<1x4x5xf32>, tensor<1x4x3xf32>) -> {T}""")
case("expand", f"""
    %r = vlora.reduce_mean %h axes [1] keepdims : ({T}) -> tensor<1x1x8xf32>
    %t = vlora.tanh %r : tensor<1x1x8xf32>
    %y = vlora.expand %t [1, 4, 8] : (tensor<1x1x8xf32>) -> {T}""")
case("masked_scatter (active data and source)", f"""
    %t = vlora.tanh %h : {T}
    %src = vlora.reshape %t [32] : ({T}) -> tensor<32xf32>
    %y = vlora.masked_scatter %h, %m, %src : ({T}, tensor<1x4x8xi1>, tensor<32xf32>) -> {T}""", extra_args=", %m: tensor<1x4x8xi1> {vlora.name = \"m\"}")
case("matmul (attention-like: both operands active, transpose_b)", f"""
    %s = vlora.matmul %h, %h transpose_b : ({T}, {T}) -> tensor<1x4x4xf32>
    %p = vlora.softmax %s axis 2 : tensor<1x4x4xf32>
    %y = vlora.matmul %p, %h : (tensor<1x4x4xf32>, {T}) -> {T}""")
case("matmul (transpose_a, broadcast batch)", f"""
    %t = vlora.transpose %h [0, 2, 1] : ({T}) -> tensor<1x8x4xf32>
    %y = vlora.matmul %t, %w transpose_a : (tensor<1x8x4xf32>, tensor<8x8xf32>) -> {T}""")
case("attention (fused; k as [D, T]; a causal mask)", f"""
    %q = vlora.tanh %h : {T}
    %k = vlora.transpose %h [0, 2, 1] : ({T}) -> tensor<1x8x4xf32>
    %mask = vlora.constant dense<[[[0.0, -1.0e9, -1.0e9, -1.0e9], [0.0, 0.0, -1.0e9, -1.0e9], [0.0, 0.0, 0.0, -1.0e9], [0.0, 0.0, 0.0, 0.0]]]> : tensor<1x4x4xf32>
    %y = vlora.attention %q, %k, %h mask %mask scale 0.35 : ({T}, tensor<1x8x4xf32>, {T}, tensor<1x4x4xf32>) -> {T}""")
case("attention (fused; transpose_k, no mask)", f"""
    %k = vlora.tanh %h : {T}
    %y = vlora.attention %h, %k, %k scale 0.5 transpose_k : ({T}, {T}, {T}) -> {T}""")
case("lora_matmul input gradient and dropout (a second adapter on an active input)", f"""
    %t = vlora.tanh %h : {T}
    %a2 = vlora.param "a2" trainable bundle "adapters.init.safetensors" [offset 128, length 96] : tensor<3x8xf32>
    %b2 = vlora.param "b2" trainable bundle "adapters.init.safetensors" [offset 224, length 96] : tensor<8x3xf32>
    %y = vlora.lora_matmul %t, %w, %a2, %b2 scale 0.5 dropout 0.25 : ({T}, tensor<8x8xf32>, tensor<3x8xf32>, tensor<8x3xf32>) -> {T}""")

case("max and min (broadcast, both operands active)", f"""
    %r = vlora.reduce_mean %h axes [2] keepdims : ({T}) -> tensor<1x4x1xf32>
    %t = vlora.tanh %h : {T}
    %m = vlora.max %t, %r : ({T}, tensor<1x4x1xf32>) -> {T}
    %y = vlora.min %m, %x : ({T}, {T}) -> {T}""")
case("abs (both signs, away from the kink at 0)", f"""
    %t = vlora.tanh %h : {T}
    %two = vlora.constant dense<2.0> : tensor<f32>
    %n = vlora.sub %t, %two : ({T}, tensor<f32>) -> {T}
    %p = vlora.add %t, %two : ({T}, tensor<f32>) -> {T}
    %an = vlora.abs %n : {T}
    %ap = vlora.abs %p : {T}
    %y = vlora.mul %an, %ap : ({T}, {T}) -> {T}""")
case("sin and cos", f"""
    %s = vlora.sin %h : {T}
    %c = vlora.cos %h : {T}
    %y = vlora.mul %s, %c : ({T}, {T}) -> {T}""")
case("floor (no gradient through it) next to an active path", f"""
    %f = vlora.floor %h : {T}
    %t = vlora.tanh %h : {T}
    %y = vlora.add %f, %t : ({T}, {T}) -> {T}""")
case("log_softmax", f"""
    %y = vlora.log_softmax %h axis 2 : {T}""")
case("rms_norm (active input and scale)", f"""
    %g = vlora.reduce_mean %h axes [0, 1] : ({T}) -> tensor<8xf32>
    %y = vlora.rms_norm %h, %g axis 2 epsilon 1.0e-06 : ({T}, tensor<8xf32>) -> {T}""")
case("cumsum (inclusive and exclusive, reversed)", f"""
    %c = vlora.cumsum %h axis 1 : {T}
    %d = vlora.cumsum %c axis 2 exclusive reverse : {T}
    %y = vlora.tanh %d : {T}""")
case("trilu", f"""
    %s = vlora.matmul %h, %h transpose_b : ({T}, {T}) -> tensor<1x4x4xf32>
    %l = vlora.trilu %s k 0 : tensor<1x4x4xf32>
    %y = vlora.matmul %l, %h : (tensor<1x4x4xf32>, {T}) -> {T}""")

case("pow with constant exponents 2, 1 and 3 (folded rules)", f"""
    %e = vlora.exp %h : {T}
    %c2 = vlora.constant dense<2.0> : tensor<f32>
    %c1 = vlora.constant dense<1.0> : tensor<f32>
    %c3 = vlora.constant dense<3.0> : tensor<1x1x8xf32>
    %p2 = vlora.pow %h, %c2 : ({T}, tensor<f32>) -> {T}
    %p1 = vlora.pow %p2, %c1 : ({T}, tensor<f32>) -> {T}
    %t = vlora.tanh %p1 : {T}
    %y = vlora.pow %t, %c3 : ({T}, tensor<1x1x8xf32>) -> {T}""")

case("strided slice (strides 2 and 3, a tail cut) and pad", f"""
    %s = vlora.slice %h starts [0, 1, 1] limits [1, 4, 8] strides [1, 2, 3] : ({T}) -> tensor<1x2x3xf32>
    %t = vlora.tanh %s : tensor<1x2x3xf32>
    %y = vlora.pad %t [0, 1, 2, 0, 1, 3] value 0.0 : (tensor<1x2x3xf32>) -> {T}""")

case("scatter_nd (active data and updates; the merge of image features)", f"""
    %t = vlora.tanh %h : {T}
    %s = vlora.slice %t starts [0, 0, 0] limits [1, 2, 8] strides [1, 1, 1] : ({T}) -> tensor<1x2x8xf32>
    %u = vlora.reshape %s [2, 8] : (tensor<1x2x8xf32>) -> tensor<2x8xf32>
    %idx = vlora.constant dense<[[0, 1], [0, 3]]> : tensor<2x2xi64>
    %y = vlora.scatter_nd %h, %idx, %u : ({T}, tensor<2x2xi64>, tensor<2x8xf32>) -> {T}""")

case("gather of an active table (repeated and negative indices)", f"""
    %t = vlora.transpose %h [0, 2, 1] : ({T}) -> tensor<1x8x4xf32>
    %ids = vlora.constant dense<[3, 0, 1, 1, -2, 3, 0, 2]> : tensor<8xi64>
    %g = vlora.gather %t, %ids axis 2 : (tensor<1x8x4xf32>, tensor<8xi64>) -> tensor<1x8x8xf32>
    %s = vlora.slice %g starts [0, 0, 0] limits [1, 4, 8] strides [1, 1, 1] : (tensor<1x8x8xf32>) -> {T}
    %e = vlora.reshape %h [32, 1] : ({T}) -> tensor<32x1xf32>
    %row = vlora.constant dense<[[5, 5, 31, 0], [1, 2, 3, 4]]> : tensor<2x4xi64>
    %g2 = vlora.gather %e, %row axis 0 : (tensor<32x1xf32>, tensor<2x4xi64>) -> tensor<2x4x1xf32>
    %r = vlora.reshape %g2 [1, 8, 1] : (tensor<2x4x1xf32>) -> tensor<1x8x1xf32>
    %r2 = vlora.slice %r starts [0, 0, 0] limits [1, 4, 1] strides [1, 1, 1] : (tensor<1x8x1xf32>) -> tensor<1x4x1xf32>
    %y = vlora.mul %s, %r2 : ({T}, tensor<1x4x1xf32>) -> {T}""")

out = ["""// Finite-difference checks of every reverse rule (passes/Autodiff/): for
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
"""]
for i, (title, body, extra) in enumerate(cases):
    out.append(f"""// {title}
// CHECK: #{i} ok a:
// CHECK: #{i} ok b:
module {{
  func.func @main(%x: {T} {{vlora.name = "x"}}, %w: tensor<8x8xf32> {{vlora.name = "w"}}, %head: tensor<16x8xf32> {{vlora.name = "head"}}{extra}) -> tensor<1x4x16xf32> {{
    %a = vlora.param "a" trainable bundle "adapters.init.safetensors" [offset 0, length 64] : tensor<2x8xf32>
    %b = vlora.param "b" trainable bundle "adapters.init.safetensors" [offset 64, length 64] : tensor<8x2xf32>
    %h = vlora.lora_matmul %x, %w, %a, %b scale 2.0 dropout 0.0 transpose_b : ({T}, tensor<8x8xf32>, tensor<2x8xf32>, tensor<8x2xf32>) -> {T}
{body}
    %logits = vlora.matmul %y, %head transpose_b : ({T}, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    return %logits : tensor<1x4x16xf32>
  }}
}}
""")
for k in range(1, len(out)):
    if '"a2"' in out[k]:
        i = k - 1
        out[k] = out[k].replace("// CHECK: #%d ok b:\n" % i, "// CHECK: #%d ok b:\n// CHECK: #%d ok a2:\n// CHECK: #%d ok b2:\n" % (i, i, i))
out.append(f"// CHECK: gradcheck: {len(cases)} functions, {len(cases)} checked, 0 failed\n")
print("\n// -----\n\n".join(out[1:]).join([out[0] + "\n", ""]) if False else out[0] + "\n" + "\n// -----\n\n".join(out[1:-1]) + "\n" + out[-1], end="")
