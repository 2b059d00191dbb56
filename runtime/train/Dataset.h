//===- Dataset.h - a training set in one safetensors file -------*- C++ -*-===//
//
// docs/training.md "Datasets": one tensor per model input and one for the
// labels, examples stacked along dimension 0. A compiled input [d0, d1, ...]
// with batch size B gives each example k = d0 / B consecutive rows, so the
// dataset tensor is [N*k, d1, ...] (k = 1 for input_ids [N, S] and
// pixel_values [N, 3, H, W]; Qwen2-VL's flattened patches have k = P). A
// batch is the concatenation of its examples' rows.
// Opening checks everything once (names, dtypes, shapes, equal N, token ids
// in [0, vocab), labels in [0, vocab) or ignore_index, at least one
// predicted label); a batch is then a gather of example rows.
//
// Tensors the bundle does not take are a warning (the file may carry
// extra columns such as `image_sizes`) and are ignored.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_RUNTIME_TRAIN_DATASET_H
#define VLORA_RUNTIME_TRAIN_DATASET_H

#include "runtime/Error.h"
#include "runtime/Manifest.h"
#include "runtime/Safetensors.h"

#include <cstdint>
#include <string>
#include <vector>

namespace vlora::train {

/// What the bundle takes: every tensor with its compiled (batched) type.
struct DatasetSpec {
  /// Model inputs and the labels, dtype and compiled shape [B*k, ...].
  std::vector<runtime::TensorInfo> tensors;
  int64_t batchSize = 1; // B
  std::string labels = "labels";
  /// Checked against the tensor of this name when present.
  std::string tokenIds = "input_ids";
  int64_t vocabSize = 0;
  int64_t ignoreIndex = -100;
};

class Dataset {
public:
  /// Maps and validates `path`; errors name the file, the tensor and, for
  /// bad values, the example. Warnings (extra tensors) are appended.
  static runtime::Expected<Dataset> open(const std::string &path, const DatasetSpec &spec,
                                         std::vector<std::string> *warnings = nullptr);

  int64_t size() const { return examples_; }
  const std::string &path() const { return file_.path(); }
  const DatasetSpec &spec() const { return spec_; }

  /// Predicted labels of one example: positions s >= 1 of its labels row
  /// that are not ignore_index (the loss shifts labels by one).
  int64_t validLabels(int64_t example) const { return validLabels_[example]; }

  /// The rows `examples` of tensor `index` (of spec().tensors), packed.
  std::vector<uint8_t> gather(size_t index, const std::vector<int64_t> &examples) const;

private:
  explicit Dataset(runtime::SafetensorsFile file) : file_(std::move(file)) {}

  runtime::SafetensorsFile file_;
  DatasetSpec spec_;
  int64_t examples_ = 0;
  std::vector<const runtime::SafetensorsTensor *> tensors_; // per spec tensor
  std::vector<size_t> rowBytes_;
  std::vector<int64_t> validLabels_;
};

/// The order of epoch `epoch`'s examples: a Fisher-Yates shuffle of
/// [0, n) driven by splitmix64 seeded from (seed, epoch). The same on every
/// machine and run.
std::vector<int64_t> epochPermutation(int64_t n, uint64_t seed, int64_t epoch);

} // namespace vlora::train

#endif // VLORA_RUNTIME_TRAIN_DATASET_H
