//===- Manifest.h - a bundle's manifest.json --------------------*- C++ -*-===//
//
// Written by vlora-compile next to plan.pb:
//   {"format_version": 1, "compiler_version": "...",
//    "model": {"path": "/abs/model.onnx", "weight_root": "/abs"},
//    "weight_files": [{"root": "model"|"bundle", "file": "model.onnx",
//                      "size": N, "hash": "fnv1a64:<16 hex>"}],
//    "inputs": [{"name": "pixel_values", "dtype": "F32", "shape": [...]}],
//    "outputs": [...], "plan_hash": "fnv1a64:..." (optional), "options": {...},
//    "programs": {...} (optional), "training": {...} (optional)}
// dtypes use the safetensors spelling. "programs" and "training" are written
// by `vlora-compile --train` (docs/training.md).
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_RUNTIME_MANIFEST_H
#define VLORA_RUNTIME_MANIFEST_H

#include "runtime/Error.h"
#include "runtime/Program.h"

#include <map>
#include <optional>
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

/// One entry of "programs": a plan other than the forward plan.pb.
struct ProgramRecord {
  std::string plan;     // file name relative to the bundle, no '/'
  std::string planHash; // "fnv1a64:...", required
  uint64_t arenaBytes = 0;
  std::vector<TensorInfo> inputs, outputs;
};

/// The "training" section: what vlora-train needs besides the programs.
struct TrainingInfo {
  std::vector<std::string> modelInputs; // the forward's data inputs
  std::string labels;                   // the labels input of train_step
  int64_t batchSize = 0, sequenceLength = 0, vocabSize = 0;
  int64_t ignoreIndex = -100;
  double loraDropout = 0, adamBeta1 = 0.9, adamBeta2 = 0.999, adamEpsilon = 1e-8;
  std::vector<TensorInfo> adapters; // PEFT keys, in @main's order
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
  /// "programs": name -> record (empty without --train).
  std::map<std::string, ProgramRecord> programs;
  /// "training" (absent without --train).
  std::optional<TrainingInfo> training;
};

/// Reads and checks `path`; errors name the file and the field.
Expected<Manifest> readManifest(const std::string &path);

} // namespace vlora::runtime

#endif // VLORA_RUNTIME_MANIFEST_H
