//===- LRSchedule.h - learning-rate schedules with warmup -------*- C++ -*-===//
//
// transformers' schedules (optimization.py), as multipliers of the base
// learning rate. `step` is the number of optimizer updates already done: the
// Trainer calls scheduler.step() after optimizer.step(), so update k
// (0-based) uses multiplier(k).
//
//   constant:             1
//   constant_with_warmup: k / max(1, W) while k < W, then 1
//   linear:               k / max(1, W) while k < W, then
//                         max(0, (T - k) / max(1, T - W))
//   cosine:               k / max(1, W) while k < W, then with
//                         p = (k - W) / max(1, T - W):
//                         max(0, 0.5 (1 + cos(pi p)))      (num_cycles 0.5)
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_RUNTIME_TRAIN_LRSCHEDULE_H
#define VLORA_RUNTIME_TRAIN_LRSCHEDULE_H

#include <cstdint>
#include <optional>
#include <string_view>

namespace vlora::train {

enum class LRScheduleKind { Linear, Cosine, Constant, ConstantWithWarmup };

/// "linear", "cosine", "constant", "constant_with_warmup".
std::optional<LRScheduleKind> parseLRScheduleKind(std::string_view name);
const char *lrScheduleName(LRScheduleKind kind);

/// The multiplier of update `step` (0-based) with `warmupSteps` W and
/// `totalSteps` T optimizer updates; exactly transformers' lr_lambda.
double lrMultiplier(LRScheduleKind kind, int64_t step, int64_t warmupSteps,
                    int64_t totalSteps);

} // namespace vlora::train

#endif // VLORA_RUNTIME_TRAIN_LRSCHEDULE_H
