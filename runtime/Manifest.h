//===- Manifest.h - a bundle's manifest.json --------------------*- C++ -*-===//
//
// Written by vlora-compile next to plan.pb:
//   {"format_version": 1, "compiler_version": "...",
//    "model": {"path": "/abs/model.onnx", "weight_root": "/abs"},
//    "weight_files": [{"root": "model"|"bundle", "file": "model.onnx",
//                      "size": N, "hash": "fnv1a64:<16 hex>"}],
//    "inputs": [{"name": "pixel_values", "dtype": "F32", "shape": [...]}],
//    "outputs": [...], "plan_hash": "fnv1a64:..." (optional), "options": {...}}
// dtypes use the safetensors spelling.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_RUNTIME_MANIFEST_H
#define VLORA_RUNTIME_MANIFEST_H

#include "runtime/Error.h"
#include "runtime/Program.h"

#include <string>
#include <vector>

namespace vlora::runtime {

constexpr int kManifestFormatVersion = 1;

struct TensorInfo {
  std::string name;
  kernels::DType dtype;
  kernels::Shape shape;
};

struct WeightFileRecord {
  WeightRootKind root;
  std::string file; // relative to the root
  uint64_t size;
  std::string hash; // "fnv1a64:..."
};

struct Manifest {
  std::string compilerVersion;
  std::string modelPath;
  std::string weightRoot; // the folder MODEL weights are relative to
  std::vector<WeightFileRecord> weightFiles;
  std::vector<TensorInfo> inputs, outputs;
  /// Optional "plan_hash": hashFile() of plan.pb, checked at load when
  /// present (catches a plan.pb truncated at a protobuf field boundary).
  std::string planHash;
};

/// Reads and checks `path`; errors name the file and the field.
Expected<Manifest> readManifest(const std::string &path);

} // namespace vlora::runtime

#endif // VLORA_RUNTIME_MANIFEST_H
