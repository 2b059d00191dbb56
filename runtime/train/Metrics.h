//===- Metrics.h - metrics.jsonl records ------------------------*- C++ -*-===//
//
// One JSON object per logged optimizer step:
//   {"step": 10, "epoch": 0.5, "loss": 2.31, "grad_norm": 0.8,
//    "learning_rate": 4.5e-05, "tokens_per_second": 1234.5, "elapsed": 12.3}
// `loss` is the token-weighted mean loss of the steps since the previous
// record (null when none of them had a predicted label), `grad_norm` and
// `learning_rate` those of the logged step itself.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_RUNTIME_TRAIN_METRICS_H
#define VLORA_RUNTIME_TRAIN_METRICS_H

#include "runtime/Error.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vlora::train {

struct MetricsRecord {
  int64_t step = 0;
  double epoch = 0;
  std::optional<double> loss;
  double gradNorm = 0, learningRate = 0, tokensPerSecond = 0, elapsed = 0;
};

/// The record as one line of JSON (with the newline).
std::string metricsLine(const MetricsRecord &record);

/// Reads a metrics.jsonl; a missing file is no records. Errors name the file
/// and the line.
runtime::Expected<std::vector<MetricsRecord>> readMetrics(const std::string &path);

} // namespace vlora::train

#endif // VLORA_RUNTIME_TRAIN_METRICS_H
