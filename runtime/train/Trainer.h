//===- Trainer.h - the training loop of vlora-train -------------*- C++ -*-===//
//
// Runs a training bundle's train_step / optimizer_step programs
// (docs/training.md) over a dataset:
//
// - Epochs visit the examples in a seeded permutation (epochPermutation(N,
//   seed, epoch)), in micro-batches of the compiled batch size B; the last
//   N mod B examples of an epoch are dropped (dataloader_drop_last: the
//   batch size is compiled in).
// - An optimizer step accumulates G = --gradient-accumulation-steps
//   micro-batches; the micro-batches left at the end of an epoch
//   (batches mod G) make a last, smaller step, as transformers' Trainer
//   does, so an epoch has ceil(batches / G) steps. Micro-batch i runs with
//   loss_scale = n_i / sum(n) (n = predicted labels); one with n_i = 0 is
//   skipped.
// - Update t (1-based) uses lr = learning_rate * lrMultiplier(t - 1).
// - The host keeps the adapters, their AdamW moments and the gradient
//   accumulators as float vectors and binds them as inputs every run.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_RUNTIME_TRAIN_TRAINER_H
#define VLORA_RUNTIME_TRAIN_TRAINER_H

#include "runtime/Error.h"
#include "runtime/train/TrainOptions.h"

#include <cstdint>
#include <cstdio>

namespace vlora::train {

/// How many micro-batches and optimizer steps a run has.
struct StepPlan {
  int64_t batchesPerEpoch = 0; // floor(N / B)
  int64_t stepsPerEpoch = 0;   // ceil(batchesPerEpoch / G)
  int64_t totalSteps = 0;      // max_steps, or ceil(epochs * stepsPerEpoch)
};

/// Errors when the dataset is smaller than one batch.
runtime::Expected<StepPlan> planSteps(int64_t examples, int64_t batchSize,
                                      int64_t accumulation, int64_t maxSteps,
                                      double epochs);

/// Trains as `options` say, logging to `log` (a `\r` progress bar when
/// `terminal`, plain lines otherwise). Errors name the file, tensor, option
/// or step.
runtime::Status runTraining(const TrainOptions &options, std::FILE *log, bool terminal);

} // namespace vlora::train

#endif // VLORA_RUNTIME_TRAIN_TRAINER_H
