//===- Fast.h - vectorisable and threaded f32 fast paths --------*- C++ -*-===//
//
// Internal to the CPU kernels. The generic kernels walk strided operands one
// element at a time; the f32 paths here cover the shapes a transformer's
// forward spends its non-GEMM time on (contiguous and row/column-broadcast
// elementwise ops, exp-based activations, last-axis softmax and reductions)
// with loops the compiler vectorises, split over the kernel threads.
//
// Threads: VLORA_NUM_THREADS, else OPENBLAS_NUM_THREADS, else the machine's
// cores (read once). Work below a size threshold runs on the calling thread.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_KERNELS_CPU_FAST_H
#define VLORA_KERNELS_CPU_FAST_H

#include "vlora/kernels/Ops.h"
#include "vlora/kernels/Tensor.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>

namespace vlora::kernels::cpu::detail {

/// Calls f(begin, end) on disjoint ranges covering [0, n), in parallel over
/// the kernel threads when every range gets at least `grain` items. `f` must
/// not throw.
void parallelFor(int64_t n, int64_t grain,
                 const std::function<void(int64_t, int64_t)> &f);

/// The number of kernel threads.
int kernelThreads();

/// exp(x) in f32 without libm calls, so loops of it vectorise: Cephes-style
/// range reduction and degree-6 polynomial, within 2 ulp of expf for
/// x in [-86.5, 88.72]; 0 below -86.5 (expf is < 2.7e-38 there), +inf above,
/// NaN for NaN.
inline float expFast(float x) {
  // Written so that GCC if-converts and vectorises loops of it: every
  // comparison is unconditional, no float-to-int conversion.
  const float lo = -86.5f, hi = 88.7228317f;
  float xc = x < lo ? lo : x;
  xc = xc > hi ? hi : xc;
  // n = round(xc / ln 2) by the 1.5 * 2^23 trick (default rounding mode);
  // t's low mantissa bits then hold n.
  const float shifter = 12582912.0f;
  float t = xc * 1.44269504088896341f + shifter;
  float n = t - shifter;
  float r = xc - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float z = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * z + r + 1.0f;
  // 2^(n-1) * 2: n is in [-125, 128], so 2^(n-1) is a normal float.
  uint32_t tb;
  std::memcpy(&tb, &t, sizeof tb);
  uint32_t bits = (tb - 0x4B400000u + 126u) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  float y = p * scale * 2.0f;
  y = x < lo ? 0.0f : y;
  y = x > hi ? std::numeric_limits<float>::infinity() : y;
  y = x != x ? x : y;
  return y;
}

/// The logistic function on expFast: 1 / (1 + e^-|x|) folded by sign.
inline float sigmoidFast(float x) {
  float e = expFast(-std::fabs(x)); // in (0, 1]: no overflow
  float s = 1.0f / (1.0f + e);
  float es = e * s;
  return x >= 0.0f ? s : es;
}

/// The f32 fast paths; each returns false (doing nothing) where it does not
/// apply, and the caller runs its generic loop.
bool fastUnary(UnaryOp op, const TensorRef &in, const TensorRef &out);
bool fastBinary(BinaryOp op, const TensorRef &lhs, const TensorRef &rhs,
                const TensorRef &out);
/// Softmax over the last axis of f32 rows (log = false).
bool fastSoftmax(const TensorRef &in, const TensorRef &out, int64_t axis,
                 bool log);
/// Sum or mean of f32 over trailing axes [first, rank) (contiguous runs).
bool fastReduce(ReduceOp op, const TensorRef &in, const TensorRef &out,
                const Shape &axes);

} // namespace vlora::kernels::cpu::detail

#endif // VLORA_KERNELS_CPU_FAST_H
