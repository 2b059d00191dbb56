//===- LRSchedule.cpp - learning-rate schedules with warmup ---------------===//

#include "runtime/train/LRSchedule.h"

#include <algorithm>
#include <cmath>

namespace vlora::train {

std::optional<LRScheduleKind> parseLRScheduleKind(std::string_view name) {
  if (name == "linear")
    return LRScheduleKind::Linear;
  if (name == "cosine")
    return LRScheduleKind::Cosine;
  if (name == "constant")
    return LRScheduleKind::Constant;
  if (name == "constant_with_warmup")
    return LRScheduleKind::ConstantWithWarmup;
  return std::nullopt;
}

const char *lrScheduleName(LRScheduleKind kind) {
  switch (kind) {
  case LRScheduleKind::Linear:
    return "linear";
  case LRScheduleKind::Cosine:
    return "cosine";
  case LRScheduleKind::Constant:
    return "constant";
  case LRScheduleKind::ConstantWithWarmup:
    return "constant_with_warmup";
  }
  return "?";
}

double lrMultiplier(LRScheduleKind kind, int64_t step, int64_t warmupSteps,
                    int64_t totalSteps) {
  if (kind == LRScheduleKind::Constant)
    return 1.0;
  if (step < warmupSteps)
    return double(step) / double(std::max<int64_t>(1, warmupSteps));
  switch (kind) {
  case LRScheduleKind::Linear:
    return std::max(0.0, double(totalSteps - step) /
                             double(std::max<int64_t>(1, totalSteps - warmupSteps)));
  case LRScheduleKind::Cosine: {
    double progress = double(step - warmupSteps) /
                      double(std::max<int64_t>(1, totalSteps - warmupSteps));
    const double numCycles = 0.5;
    return std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * numCycles * 2.0 * progress)));
  }
  default:
    return 1.0;
  }
}

} // namespace vlora::train
