//===- Training.cpp - loss, gradient and optimizer kernels ----------------===//
//
// The kernels only training programs use: LoRA dropout and the LoRA
// backward, the causal-LM loss and its gradient, the softmax and layer-norm
// backward passes, masked_select (masked_scatter's reverse), the global norm
// and AdamW. Per-row work is split over the kernel threads (Fast.h); sums
// are accumulated in double and combined in a fixed order, so results do not
// depend on the thread count.
//
//===----------------------------------------------------------------------===//

#include "vlora/kernels/Cpu.h"
#include "vlora/kernels/reference/Philox.h"

#include "Blas.h"
#include "Fast.h"
#include "Iteration.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <limits>

namespace vlora::kernels::cpu {
using namespace detail;

namespace {
/// Elements per thread below which a loop stays on one thread.
constexpr int64_t kGrain = 1 << 15;

template <typename F> void visitFloat(DType dtype, const char *op, F &&f) {
  if (dtype == DType::F32)
    return f(Tag<float>{});
  if (dtype == DType::F64)
    return f(Tag<double>{});
  throw KernelError(std::string(op) + ": unsupported element type " +
                    dtypeName(dtype));
}

//===----------------------------------------------------------------------===//
// LoRA dropout
//===----------------------------------------------------------------------===//

/// keep[i] for the n elements of x: the contract of docs/training.md.
std::vector<uint8_t> dropoutKeep(const TensorRef &rng, int64_t n, double p,
                                 int64_t stream) {
  const int64_t *r = rng.as<const int64_t>();
  uint64_t key = philox::streamSeed(static_cast<uint64_t>(r[0]),
                                    static_cast<uint64_t>(r[1]),
                                    static_cast<uint64_t>(stream));
  float pf = static_cast<float>(p);
  std::vector<uint8_t> keep(static_cast<size_t>(n));
  parallelFor(n, kGrain / 8, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      keep[i] = philox::keep(key, static_cast<uint64_t>(i), pf) ? 1 : 0;
  });
  return keep;
}

/// x' = x ⊙ keep / (1 - p).
template <typename T>
std::vector<T> dropoutApply(const T *x, const std::vector<uint8_t> &keep,
                            double p) {
  T s = static_cast<T>(1.0 / (1.0 - p));
  std::vector<T> out(keep.size());
  for (size_t i = 0; i < keep.size(); ++i)
    out[i] = keep[i] ? x[i] * s : T(0);
  return out;
}

/// Rows of a [..., features] tensor.
int64_t leadingRows(const Shape &shape) {
  return numElements(Shape(shape.begin(), shape.end() - 1));
}
} // namespace

void loraMatmulDropout(const TensorRef &x, const TensorRef &w,
                       const TensorRef &a, const TensorRef &b,
                       const TensorRef &rng, const TensorRef &out, double scale,
                       double dropout, int64_t stream, bool tb) {
  if (!(dropout > 0))
    return loraMatmul(x, w, a, b, out, scale, tb);
  if (out.dtype == DType::F32 &&
      (x.dtype == DType::BF16 || w.dtype == DType::BF16)) {
    std::vector<float> wideX, wideW;
    return loraMatmulDropout(widenBFloat16(x, wideX), widenBFloat16(w, wideW),
                             a, b, rng, out, scale, dropout, stream, tb);
  }
  int64_t in = x.shape.back(), outDim = out.shape.back(), r = a.shape[0];
  int64_t rows = leadingRows(x.shape);
  visitFloat(out.dtype, "lora_matmul", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T *y = out.as<T>();
    gemm<T>(false, tb, rows, outDim, in, 1.0, x.as<const T>(), in,
            w.as<const T>(), w.shape.back(), 0.0, y, outDim);
    if (rows == 0 || outDim == 0 || r == 0)
      return;
    std::vector<T> xd = dropoutApply(
        x.as<const T>(), dropoutKeep(rng, x.numel(), dropout, stream), dropout);
    std::vector<T> u(static_cast<size_t>(rows * r));
    gemm<T>(false, true, rows, r, in, 1.0, xd.data(), in, a.as<const T>(), in,
            0.0, u.data(), r);
    gemm<T>(false, true, rows, outDim, r, scale, u.data(), r, b.as<const T>(),
            r, 1.0, y, outDim);
  });
}

namespace {
/// loraMatmulGrad on operands of one type; `dyFrozen` (dy, or dy rounded to
/// bf16) is the gradient the frozen product dy·Wᵀ reads.
void loraMatmulGradImpl(const TensorRef &dy, const TensorRef &dyFrozen,
                        const TensorRef &x, const TensorRef &w,
                        const TensorRef &a, const TensorRef &b,
                        const TensorRef *rng, const TensorRef &gradA,
                        const TensorRef &gradB, const TensorRef *gradX,
                        double scale, double dropout, int64_t stream, bool tb) {
  int64_t in = x.shape.back(), outDim = dy.shape.back(), r = a.shape[0];
  int64_t n = leadingRows(x.shape);
  bool drop = rng && dropout > 0;
  visitFloat(x.dtype, "lora_matmul_grad", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T *pdy = dy.as<const T>(), *pa = a.as<const T>(),
            *pb = b.as<const T>();
    std::vector<uint8_t> keep;
    std::vector<T> xd;
    const T *xp = x.as<const T>();
    if (drop) {
      keep = dropoutKeep(*rng, x.numel(), dropout, stream);
      xd = dropoutApply(xp, keep, dropout);
      xp = xd.data();
    }
    // u = x'·Aᵀ [n, r]; du = scale · dy·B [n, r].
    std::vector<T> u(static_cast<size_t>(n * r)),
        du(static_cast<size_t>(n * r));
    gemm<T>(false, true, n, r, in, 1.0, xp, in, pa, in, 0.0, u.data(), r);
    gemm<T>(false, false, n, r, outDim, scale, pdy, outDim, pb, r, 0.0,
            du.data(), r);
    // dB = scale · dyᵀ·u [out, r]; dA = duᵀ·x' [r, in].
    gemm<T>(true, false, outDim, r, n, scale, pdy, outDim, u.data(), r, 0.0,
            gradB.as<T>(), r);
    gemm<T>(true, false, r, in, n, 1.0, du.data(), r, xp, in, 0.0,
            gradA.as<T>(), in);
    if (!gradX)
      return;
    // dx = dy·Wᵀ (w [in, out]) or dy·W (transposed: w [out, in]) ...
    T *dx = gradX->as<T>();
    gemm<T>(false, !tb, n, in, outDim, 1.0, dyFrozen.as<const T>(), outDim,
            w.as<const T>(), w.shape.back(), 0.0, dx, in);
    // ... + keep ⊙ (du·A) / (1 - p).
    if (!drop) {
      gemm<T>(false, false, n, in, r, 1.0, du.data(), r, pa, in, 1.0, dx, in);
      return;
    }
    std::vector<T> t(static_cast<size_t>(n * in));
    gemm<T>(false, false, n, in, r, 1.0, du.data(), r, pa, in, 0.0, t.data(),
            in);
    T s = static_cast<T>(1.0 / (1.0 - dropout));
    for (size_t i = 0; i < t.size(); ++i)
      if (keep[i])
        dx[i] += t[i] * s;
  });
}
} // namespace

void loraMatmulGrad(const TensorRef &dy, const TensorRef &x, const TensorRef &w,
                    const TensorRef &a, const TensorRef &b,
                    const TensorRef *rng, const TensorRef &gradA,
                    const TensorRef &gradB, const TensorRef *gradX,
                    double scale, double dropout, int64_t stream, bool tb) {
  // bf16 x and/or w with an f32 dy (--vlora-mixed-precision): widened
  // exactly, then the f32 path; w is read only for gradX. With bf16
  // activations (x bf16) the frozen product dy·Wᵀ reads dy rounded to bf16,
  // as a bf16 GEMM does (autocast's backward too); dA, dB and the low-rank
  // part of dx read the exact dy.
  if (dy.dtype == DType::F32 &&
      (x.dtype == DType::BF16 || (gradX && w.dtype == DType::BF16))) {
    std::vector<float> wideX, wideW, roundedDy;
    TensorRef dyFrozen =
        x.dtype == DType::BF16 && gradX ? roundToBFloat16(dy, roundedDy) : dy;
    return loraMatmulGradImpl(dy, dyFrozen, widenBFloat16(x, wideX),
                              gradX ? widenBFloat16(w, wideW) : w, a, b, rng,
                              gradA, gradB, gradX, scale, dropout, stream, tb);
  }
  loraMatmulGradImpl(dy, dy, x, w, a, b, rng, gradA, gradB, gradX, scale,
                     dropout, stream, tb);
}

//===----------------------------------------------------------------------===//
// Causal-LM cross-entropy
//===----------------------------------------------------------------------===//

namespace {
inline double expOf(float v) { return expFast(v); }
inline double expOf(double v) { return std::exp(v); }

/// The shifted label of row (b, s) for s < S-1, or ignoreIndex.
struct CausalLM {
  int64_t batch, seq, vocab;
  const int64_t *labels;

  int64_t rows() const { return batch * seq; }
  /// The label row `row` = b·S + s predicts, or -1 when it predicts none
  /// (last position or ignore_index).
  int64_t target(int64_t row, int64_t ignoreIndex) const {
    if (row % seq == seq - 1)
      return -1;
    int64_t label = labels[row + 1];
    return label == ignoreIndex ? -1 : label;
  }
};

/// Checks every shifted label of a [batch, seq] label tensor against a
/// vocabulary and counts the valid ones.
CausalLM checkLabels(int64_t batch, int64_t seq, int64_t vocab,
                     const TensorRef &labels, int64_t ignoreIndex,
                     const char *op, int64_t &valid) {
  CausalLM lm{batch, seq, vocab, labels.as<const int64_t>()};
  valid = 0;
  for (int64_t b = 0; b < lm.batch; ++b)
    for (int64_t s = 1; s < lm.seq; ++s) {
      int64_t label = lm.labels[b * lm.seq + s];
      if (label == ignoreIndex)
        continue;
      if (label < 0 || label >= lm.vocab)
        throw KernelError(
            std::string(op) + ": label " + std::to_string(label) +
            " at batch " + std::to_string(b) + ", position " +
            std::to_string(s) + " is outside [0, " + std::to_string(lm.vocab) +
            ") and is not ignore_index " + std::to_string(ignoreIndex));
      ++valid;
    }
  return lm;
}

CausalLM checkLabels(const TensorRef &logits, const TensorRef &labels,
                     int64_t ignoreIndex, const char *op, int64_t &valid) {
  return checkLabels(logits.shape[0], logits.shape[1], logits.shape[2], labels,
                     ignoreIndex, op, valid);
}

/// max and sum(exp(x - max)) of one row; an all -inf row uses max 0.
template <typename T>
std::pair<T, double> rowExpSum(const T *x, int64_t vocab) {
  T max = -std::numeric_limits<T>::infinity();
  for (int64_t j = 0; j < vocab; ++j)
    max = x[j] > max ? x[j] : max;
  if (std::isinf(max) && max < 0)
    max = 0;
  double sum = 0;
  for (int64_t j = 0; j < vocab; ++j)
    sum += expOf(static_cast<T>(x[j] - max));
  return {max, sum};
}
} // namespace

void crossEntropy(const TensorRef &logits, const TensorRef &labels,
                  const TensorRef &out, int64_t ignoreIndex) {
  int64_t valid = 0;
  CausalLM lm =
      checkLabels(logits, labels, ignoreIndex, "cross_entropy", valid);
  std::vector<double> losses(static_cast<size_t>(lm.rows()), 0.0);
  visitFloat(logits.dtype, "cross_entropy", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T *x = logits.as<const T>();
    int64_t grain =
        std::max<int64_t>(1, kGrain / std::max<int64_t>(lm.vocab, 1));
    parallelFor(lm.rows(), grain, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        int64_t label = lm.target(row, ignoreIndex);
        if (label < 0)
          continue;
        const T *xr = x + row * lm.vocab;
        auto [max, sum] = rowExpSum(xr, lm.vocab);
        losses[row] = static_cast<double>(max) + std::log(sum) -
                      static_cast<double>(xr[label]);
      }
    });
  });
  double total = 0;
  for (double l : losses)
    total += l;
  // 0 / 0 = NaN without a valid label, as in PyTorch.
  *out.as<float>() =
      static_cast<float>(valid ? total / static_cast<double>(valid)
                               : std::numeric_limits<double>::quiet_NaN());
}

namespace {
/// linearCrossEntropy on operands of one type; `roundGrad`: the logits'
/// gradient is rounded to bf16 for its product with the weight.
void linearCrossEntropyImpl(const TensorRef &input, const TensorRef &weight,
                            const TensorRef &labels, const TensorRef &dloss,
                            const TensorRef &loss, const TensorRef &gradInput,
                            int64_t ignoreIndex, bool transposeB,
                            bool roundGrad);
} // namespace

void linearCrossEntropy(const TensorRef &input, const TensorRef &weight,
                        const TensorRef &labels, const TensorRef &dloss,
                        const TensorRef &loss, const TensorRef &gradInput,
                        int64_t ignoreIndex, bool transposeB) {
  // bf16 operands with an f32 gradient (--vlora-mixed-precision): widened
  // exactly. With a bf16 input (bf16 activations) the input gradient's
  // product reads the logits' gradient rounded to bf16, as a bf16 GEMM does.
  if (gradInput.dtype == DType::F32 &&
      (input.dtype == DType::BF16 || weight.dtype == DType::BF16)) {
    std::vector<float> wideInput, wideWeight;
    return linearCrossEntropyImpl(widenBFloat16(input, wideInput),
                                  widenBFloat16(weight, wideWeight), labels,
                                  dloss, loss, gradInput, ignoreIndex,
                                  transposeB, input.dtype == DType::BF16);
  }
  linearCrossEntropyImpl(input, weight, labels, dloss, loss, gradInput,
                         ignoreIndex, transposeB, false);
}

namespace {
void linearCrossEntropyImpl(const TensorRef &input, const TensorRef &weight,
                            const TensorRef &labels, const TensorRef &dloss,
                            const TensorRef &loss, const TensorRef &gradInput,
                            int64_t ignoreIndex, bool transposeB,
                            bool roundGrad) {
  int64_t batch = input.shape[0], seq = input.shape[1], dim = input.shape[2];
  int64_t vocab = transposeB ? weight.shape[0] : weight.shape[1];
  int64_t valid = 0;
  CausalLM lm = checkLabels(batch, seq, vocab, labels, ignoreIndex,
                            "linear_cross_entropy", valid);
  std::vector<int64_t> rows;
  rows.reserve(static_cast<size_t>(valid));
  for (int64_t row = 0; row < lm.rows(); ++row)
    if (lm.target(row, ignoreIndex) >= 0)
      rows.push_back(row);
  double coef = valid ? static_cast<double>(*dloss.as<const float>()) /
                            static_cast<double>(valid)
                      : 0.0;
  std::vector<double> losses(rows.size(), 0.0);
  visitFloat(input.dtype, "linear_cross_entropy", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T *x = input.as<const T>(), *w = weight.as<const T>();
    T *dx = gradInput.as<T>();
    std::fill(dx, dx + lm.rows() * dim, T(0));
    int64_t n = static_cast<int64_t>(rows.size());
    if (n == 0)
      return;
    // Rows per chunk: at most 2^24 logits (64 MiB in f32) at a time.
    int64_t chunk = std::clamp<int64_t>((int64_t(1) << 24) / std::max<int64_t>(vocab, 1),
                                        1, n);
    std::vector<T> h(static_cast<size_t>(chunk * dim));
    std::vector<T> logits(static_cast<size_t>(chunk * vocab));
    int64_t ldw = transposeB ? dim : vocab;
    for (int64_t c0 = 0; c0 < n; c0 += chunk) {
      int64_t cn = std::min(chunk, n - c0);
      for (int64_t i = 0; i < cn; ++i)
        std::copy_n(x + rows[c0 + i] * dim, dim, h.data() + i * dim);
      gemm<T>(false, transposeB, cn, vocab, dim, 1.0, h.data(), dim, w, ldw, 0.0,
              logits.data(), vocab);
      // Each row's loss, then its logits become the logits' gradient.
      int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(vocab, 1));
      parallelFor(cn, grain, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          T *lr = logits.data() + i * vocab;
          int64_t label = lm.target(rows[c0 + i], ignoreIndex);
          auto [max, sum] = rowExpSum(lr, vocab);
          losses[c0 + i] = static_cast<double>(max) + std::log(sum) -
                           static_cast<double>(lr[label]);
          double scale = coef / sum;
          for (int64_t j = 0; j < vocab; ++j)
            lr[j] = static_cast<T>(expOf(static_cast<T>(lr[j] - max)) * scale);
          lr[label] = static_cast<T>(lr[label] - coef);
          if constexpr (std::is_same_v<T, float>)
            if (roundGrad)
              for (int64_t j = 0; j < vocab; ++j)
                lr[j] = toFloat(toBFloat16(lr[j]));
        }
      });
      gemm<T>(false, !transposeB, cn, dim, vocab, 1.0, logits.data(), vocab, w,
              ldw, 0.0, h.data(), dim);
      for (int64_t i = 0; i < cn; ++i)
        std::copy_n(h.data() + i * dim, dim, dx + rows[c0 + i] * dim);
    }
  });
  double total = 0;
  for (double l : losses)
    total += l;
  *loss.as<float>() =
      static_cast<float>(valid ? total / static_cast<double>(valid)
                               : std::numeric_limits<double>::quiet_NaN());
}
} // namespace

void crossEntropyGrad(const TensorRef &dloss, const TensorRef &logits,
                      const TensorRef &labels, const TensorRef &out,
                      int64_t ignoreIndex) {
  int64_t valid = 0;
  CausalLM lm =
      checkLabels(logits, labels, ignoreIndex, "cross_entropy_grad", valid);
  double coef = valid ? static_cast<double>(*dloss.as<const float>()) /
                            static_cast<double>(valid)
                      : 0.0;
  visitFloat(logits.dtype, "cross_entropy_grad", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T *x = logits.as<const T>();
    T *y = out.as<T>();
    int64_t vocab = lm.vocab;
    int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(vocab, 1));
    parallelFor(lm.rows(), grain, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        int64_t label = valid ? lm.target(row, ignoreIndex) : -1;
        const T *xr = x + row * vocab;
        T *yr = y + row * vocab;
        if (label < 0) {
          std::fill(yr, yr + vocab, T(0));
          continue;
        }
        auto [max, sum] = rowExpSum(xr, vocab);
        double inv = 1.0 / sum;
        // Each element is read before it is written: y may be x's bytes.
        for (int64_t j = 0; j < vocab; ++j) {
          double p = expOf(static_cast<T>(xr[j] - max)) * inv;
          yr[j] = static_cast<T>((p - (j == label ? 1.0 : 0.0)) * coef);
        }
      }
    });
  });
}

//===----------------------------------------------------------------------===//
// Softmax and layer norm backward
//===----------------------------------------------------------------------===//

void softmaxGrad(const TensorRef &grad, const TensorRef &output,
                 const TensorRef &out, int64_t axis) {
  int64_t outer = 1, inner = 1, size = grad.shape[axis];
  for (int64_t d = 0; d < axis; ++d)
    outer *= grad.shape[d];
  for (size_t d = axis + 1; d < grad.shape.size(); ++d)
    inner *= grad.shape[d];
  visitFloat(grad.dtype, "softmax_grad", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T *dy = grad.as<const T>(), *y = output.as<const T>();
    T *dx = out.as<T>();
    int64_t lines = outer * inner;
    int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(size, 1));
    parallelFor(lines, grain, [&](int64_t begin, int64_t end) {
      for (int64_t line = begin; line < end; ++line) {
        int64_t base = (line / inner) * size * inner + line % inner;
        double dot = 0;
        for (int64_t j = 0; j < size; ++j) {
          int64_t at = base + j * inner;
          dot += static_cast<double>(dy[at]) * y[at];
        }
        T s = static_cast<T>(dot);
        for (int64_t j = 0; j < size; ++j) {
          int64_t at = base + j * inner;
          dx[at] = y[at] * (dy[at] - s);
        }
      }
    });
  });
}

void layerNormGrad(const TensorRef &grad, const TensorRef &input,
                   const TensorRef &scale, const TensorRef &out, int64_t axis,
                   double epsilon) {
  int64_t inner = 1;
  for (size_t d = axis; d < input.shape.size(); ++d)
    inner *= input.shape[d];
  int64_t outer = inner ? input.numel() / inner : 0;
  visitFloat(input.dtype, "layer_norm_grad", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T *dy = grad.as<const T>(), *x = input.as<const T>(),
            *g = scale.as<const T>();
    T *dx = out.as<T>();
    double count = static_cast<double>(inner);
    parallelFor(
        outer, std::max<int64_t>(1, kGrain / std::max<int64_t>(inner, 1)),
        [&](int64_t begin, int64_t end) {
          for (int64_t o = begin; o < end; ++o) {
            const T *xr = x + o * inner, *dyr = dy + o * inner;
            T *dxr = dx + o * inner;
            double mean = 0;
            for (int64_t i = 0; i < inner; ++i)
              mean += xr[i];
            mean /= count;
            double var = 0;
            for (int64_t i = 0; i < inner; ++i) {
              double d = xr[i] - mean;
              var += d * d;
            }
            var /= count;
            double rstd = 1.0 / std::sqrt(var + epsilon);
            double meanG = 0, meanGX = 0;
            for (int64_t i = 0; i < inner; ++i) {
              double gi = static_cast<double>(dyr[i]) * g[i];
              meanG += gi;
              meanGX += gi * (xr[i] - mean) * rstd;
            }
            meanG /= count;
            meanGX /= count;
            // Each element is read before it is written: dx may be dy's or x's
            // bytes.
            for (int64_t i = 0; i < inner; ++i) {
              double gi = static_cast<double>(dyr[i]) * g[i];
              double xhat = (xr[i] - mean) * rstd;
              dxr[i] = static_cast<T>(rstd * (gi - meanG - xhat * meanGX));
            }
          }
        });
  });
}

//===----------------------------------------------------------------------===//
// masked_select, global_norm
//===----------------------------------------------------------------------===//

void maskedSelect(const TensorRef &input, const TensorRef &mask,
                  const TensorRef &out) {
  const uint8_t *m = mask.as<const uint8_t>();
  int64_t n = input.numel(), trues = 0;
  for (int64_t i = 0; i < n; ++i)
    trues += m[i] != 0;
  if (trues > out.numel())
    throw KernelError("masked_select: the mask selects " +
                      std::to_string(trues) +
                      " positions but the result has only " +
                      std::to_string(out.numel()) + " elements");
  if (out.bytes())
    std::memset(out.data, 0, out.bytes());
  visitBits(input.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T *x = input.as<const T>();
    T *y = out.as<T>();
    int64_t next = 0;
    for (int64_t i = 0; i < n; ++i)
      if (m[i])
        y[next++] = x[i];
  });
}

void globalNorm(const std::vector<TensorRef> &inputs, const TensorRef &out) {
  double total = 0;
  for (const TensorRef &t : inputs) {
    visitFloat(t.dtype, "global_norm", [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T *x = t.as<const T>();
      int64_t n = t.numel();
      constexpr int L = 8; // independent lanes: a vectorisable sum
      double part[L] = {};
      int64_t i = 0;
      for (; i + L <= n; i += L)
        for (int j = 0; j < L; ++j)
          part[j] += static_cast<double>(x[i + j]) * x[i + j];
      for (; i < n; ++i)
        total += static_cast<double>(x[i]) * x[i];
      for (int j = 0; j < L; ++j)
        total += part[j];
    });
  }
  *out.as<float>() = static_cast<float>(std::sqrt(total));
}

//===----------------------------------------------------------------------===//
// AdamW
//===----------------------------------------------------------------------===//

void adamW(const TensorRef &param, const TensorRef &grad,
           const TensorRef &expAvg, const TensorRef &expAvgSq,
           const TensorRef &lrRef, const TensorRef &stepRef,
           const TensorRef &weightDecayRef, const TensorRef *gradScaleRef,
           const TensorRef &newParam, const TensorRef &newExpAvg,
           const TensorRef &newExpAvgSq, double beta1, double beta2,
           double eps) {
  int64_t step = *stepRef.as<const int64_t>();
  double lr = *lrRef.as<const float>();
  double weightDecay = *weightDecayRef.as<const float>();
  if (step < 1)
    throw KernelError("adamw_update: step " + std::to_string(step) +
                      " must be >= 1 (1 for the first update)");
  if (!(lr >= 0))
    throw KernelError("adamw_update: learning rate " + std::to_string(lr) +
                      " must be >= 0");
  if (!(weightDecay >= 0))
    throw KernelError("adamw_update: weight_decay " +
                      std::to_string(weightDecay) + " must be >= 0");
  // torch's scalars: Python floats (double) from the hyper-parameters.
  double t = static_cast<double>(step);
  double biasCorrection1 = 1 - std::pow(beta1, t);
  double biasCorrection2 = 1 - std::pow(beta2, t);
  double stepSize = lr / biasCorrection1;
  double biasCorrection2Sqrt = std::sqrt(biasCorrection2);
  visitFloat(param.dtype, "adamw_update", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T *p = param.as<const T>(), *g = grad.as<const T>(),
            *m = expAvg.as<const T>(), *v = expAvgSq.as<const T>();
    T *p1 = newParam.as<T>(), *m1 = newExpAvg.as<T>(),
      *v1 = newExpAvgSq.as<T>();
    const bool scaled = gradScaleRef != nullptr;
    const T gradScale =
        scaled ? static_cast<T>(*gradScaleRef->as<const float>()) : T(1);
    const T decay = static_cast<T>(1 - lr * weightDecay);
    const T weight1 = static_cast<T>(1 - beta1), b2 = static_cast<T>(beta2),
            weight2 = static_cast<T>(1 - beta2);
    const bool smallWeight = std::fabs(1 - beta1) < 0.5; // torch's lerp
    const T bc2Sqrt = static_cast<T>(biasCorrection2Sqrt),
            epsT = static_cast<T>(eps), negStep = static_cast<T>(-stepSize);
    parallelFor(param.numel(), kGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        // Read everything first: the outputs may be the inputs' bytes.
        T gi = scaled ? g[i] * gradScale : g[i];
        T pi = p[i] * decay, mi = m[i], vi = v[i];
        // exp_avg.lerp_(grad, 1 - beta1)
        mi = smallWeight ? mi + weight1 * (gi - mi)
                         : gi - (gi - mi) * (T(1) - weight1);
        // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        vi = vi * b2;
        vi = vi + weight2 * gi * gi;
        // denom = exp_avg_sq.sqrt() / bias_correction2_sqrt + eps;
        // param.addcdiv_(exp_avg, denom, value=-step_size)
        T denom = std::sqrt(vi) / bc2Sqrt + epsT;
        p1[i] = pi + negStep * mi / denom;
        m1[i] = mi;
        v1[i] = vi;
      }
    });
  });
}

} // namespace vlora::kernels::cpu
