//===- TrainOptions.h - vlora-train's command line --------------*- C++ -*-===//
//
// The options keep transformers/TRL's names and defaults (TrainingArguments;
// logging_steps 10 as TRL's SFTConfig): --learning-rate 5e-5,
// --gradient-accumulation-steps 1, --max-steps -1 (train
// --num-train-epochs 3 instead), --warmup-steps 0, --lr-scheduler-type
// linear, --weight-decay 0, --max-grad-norm 1 (0 = no clipping), --seed 42,
// --logging-steps 10, --save-steps 500. --per-device-train-batch-size
// defaults to, and must equal, the bundle's compiled batch size.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_RUNTIME_TRAIN_TRAINOPTIONS_H
#define VLORA_RUNTIME_TRAIN_TRAINOPTIONS_H

#include "runtime/Error.h"
#include "runtime/train/LRSchedule.h"

#include <cstdint>
#include <string>
#include <vector>

namespace vlora::train {

struct TrainOptions {
  std::string bundle, data, outputDir, device = "cpu";
  double learningRate = 5e-5;
  int64_t batchSize = 0; // 0: the compiled one
  int64_t gradientAccumulationSteps = 1;
  int64_t maxSteps = -1; // -1: from numTrainEpochs
  double numTrainEpochs = 3.0;
  int64_t warmupSteps = 0;
  LRScheduleKind scheduler = LRScheduleKind::Linear;
  double weightDecay = 0.0;
  double maxGradNorm = 1.0; // 0: no clipping
  uint64_t seed = 42;
  int64_t loggingSteps = 10;
  int64_t saveSteps = 500;
  int64_t saveTotalLimit = 0; // 0: keep all
  std::string resumeFrom;     // "", a folder, or "latest"
  bool help = false;
};

/// The usage text (options and defaults).
std::string trainUsage();

/// Parses `args` (without the program name): `--name value` or
/// `--name=value`. Errors are one line naming the option and what it needs.
runtime::Expected<TrainOptions> parseTrainOptions(const std::vector<std::string> &args);

} // namespace vlora::train

#endif // VLORA_RUNTIME_TRAIN_TRAINOPTIONS_H
