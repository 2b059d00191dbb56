//===- ValueComparison.h - how far two copies of a value differ -*- C++ -*-===//
//
// Element-by-element comparison of a value computed by a backend under test
// with the same value computed by a reference backend (VLORA_CUDA_CHECK=cpu
// compares every step's outputs of the CUDA backend with the CPU backend's).
// Tolerances: f32/f64 within 1e-4 relative + 1e-5 of the largest finite
// |reference| element; bf16/f16 1e-2 for both; NaN equals NaN, infinities
// must match; integers exactly, bools by truth value.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_RUNTIME_VALUECOMPARISON_H
#define VLORA_RUNTIME_VALUECOMPARISON_H

#include "vlora/kernels/Tensor.h"

#include <cstddef>
#include <cstdint>

namespace vlora::runtime {

struct ValueDifference {
  size_t elements = 0;  // compared
  size_t differing = 0; // outside the tolerance
  size_t first = 0;     // the first differing element (when differing > 0)
  double firstActual = 0, firstExpected = 0;
  double maxError = 0;    // max |actual - expected| (NaNs left out)
  double maxExpected = 0; // max finite |expected|
  double atol = 0, rtol = 0;
};

/// Compares `bytes` bytes of `actual` with `expected` as elements of
/// `dtype`. Neither needs any alignment.
ValueDifference compareValues(const void *actual, const void *expected,
                              kernels::DType dtype, uint64_t bytes);

} // namespace vlora::runtime

#endif // VLORA_RUNTIME_VALUECOMPARISON_H
