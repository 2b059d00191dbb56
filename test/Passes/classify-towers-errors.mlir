// RUN: not vlora-opt %s --vlora-classify-towers="names=false structure=false" 2>&1 | FileCheck %s --check-prefix=NOSIGNAL
// NOSIGNAL: error: --vlora-classify-towers needs names=true or structure=true

// RUN: not vlora-opt %s --vlora-report-towers 2>&1 | FileCheck %s --check-prefix=UNTAGGED
// UNTAGGED: error: --vlora-report-towers needs the tags of --vlora-classify-towers; run it first

func.func @f(%x: tensor<4x64xf32>) -> tensor<4x64xf32> {
  %w = vlora.param "model.layers.0.mlp.up_proj.weight" frozen initializer "model.onnx" [offset 0, length 16384] : tensor<64x64xf32>
  %y = vlora.matmul %x, %w transpose_b : (tensor<4x64xf32>, tensor<64x64xf32>) -> tensor<4x64xf32>
  return %y : tensor<4x64xf32>
}
