//===- LossPlot.h - the loss curve as a PNG ---------------------*- C++ -*-===//
//
// A line chart of loss against optimizer step: axes with "nice" ticks
// (1, 2, 5 x 10^k), grid lines, tick labels in a built-in 5x7 bitmap font,
// and the axis names. Drawn into an RGB buffer by a small rasteriser and
// encoded with libpng's simplified API; written atomically.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_RUNTIME_TRAIN_LOSSPLOT_H
#define VLORA_RUNTIME_TRAIN_LOSSPLOT_H

#include "runtime/Error.h"

#include <string>
#include <utility>
#include <vector>

namespace vlora::train {

/// (step, loss) points, in step order; non-finite losses are left out.
runtime::Status writeLossPlot(const std::string &path,
                              const std::vector<std::pair<double, double>> &points);

/// Tick positions covering [lo, hi] at a 1/2/5 x 10^k spacing (about
/// `target` of them); exposed for tests.
std::vector<double> niceTicks(double lo, double hi, int target);

} // namespace vlora::train

#endif // VLORA_RUNTIME_TRAIN_LOSSPLOT_H
