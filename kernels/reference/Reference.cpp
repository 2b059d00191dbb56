//===- Reference.cpp - CPU references for the CUDA kernels ----------------===//

#include "vlora/kernels/reference/Reference.h"
#include "vlora/kernels/reference/Philox.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace vlora::kernels::reference {

uint16_t toBF16Bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu))
    return static_cast<uint16_t>((bits >> 16) | 0x0040u); // quiet NaN
  uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

float fromBF16Bits(uint16_t bits) {
  uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &wide, sizeof(value));
  return value;
}

float roundToBF16(float value) { return fromBF16Bits(toBF16Bits(value)); }

template <typename T>
void gemm(int64_t m, int64_t n, int64_t k, const T *a, bool transposeA,
          const T *b, bool transposeB, T *d, T alpha, T beta, const T *bias) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t l = 0; l < k; ++l) {
        double av = transposeA ? a[l * m + i] : a[i * k + l];
        double bv = transposeB ? b[j * k + l] : b[l * n + j];
        acc += av * bv;
      }
      double out = static_cast<double>(alpha) * acc;
      if (beta != T(0))
        out += static_cast<double>(beta) * d[i * n + j];
      if (bias)
        out += bias[j];
      d[i * n + j] = static_cast<T>(out);
    }
  }
}

template <typename T>
void loraLinearForward(int64_t m, int64_t k, int64_t n, int64_t r,
                       bool transposeW, T scale, const T *x, const T *w,
                       const T *a, const T *b, T *y) {
  std::vector<T> u(m * r);
  gemm<T>(m, r, k, x, false, a, true, u.data(), T(1), T(0));
  gemm<T>(m, n, k, x, false, w, transposeW, y, T(1), T(0));
  gemm<T>(m, n, r, u.data(), false, b, true, y, scale, T(1));
}

template <typename T>
void loraLinearBackward(int64_t m, int64_t k, int64_t n, int64_t r,
                        bool transposeW, T scale, const T *x, const T *w,
                        const T *a, const T *b, const T *dy, T *dx, T *dA,
                        T *dB) {
  std::vector<T> u(m * r), g(m * r);
  gemm<T>(m, r, k, x, false, a, true, u.data(), T(1), T(0));
  gemm<T>(m, r, n, dy, false, b, false, g.data(), scale, T(0));
  if (dx) {
    gemm<T>(m, k, n, dy, false, w, !transposeW, dx, T(1), T(0));
    gemm<T>(m, k, r, g.data(), false, a, false, dx, T(1), T(1));
  }
  gemm<T>(r, k, m, g.data(), true, x, false, dA, T(1), T(0));
  gemm<T>(n, r, m, dy, true, u.data(), false, dB, scale, T(0));
}

template <typename T>
void layerNormForward(int64_t rows, int64_t cols, const T *x, const T *gamma,
                      const T *beta, T eps, T *y, T *mean, T *rstd) {
  for (int64_t i = 0; i < rows; ++i) {
    const T *xr = x + i * cols;
    double sum = 0;
    for (int64_t j = 0; j < cols; ++j)
      sum += xr[j];
    double mu = sum / cols, var = 0;
    for (int64_t j = 0; j < cols; ++j)
      var += (xr[j] - mu) * (xr[j] - mu);
    double rs = 1.0 / std::sqrt(var / cols + eps);
    for (int64_t j = 0; j < cols; ++j)
      y[i * cols + j] =
          static_cast<T>((xr[j] - mu) * rs * gamma[j] + (beta ? beta[j] : 0));
    mean[i] = static_cast<T>(mu);
    rstd[i] = static_cast<T>(rs);
  }
}

template <typename T>
void layerNormBackward(int64_t rows, int64_t cols, const T *dy, const T *x,
                       const T *gamma, const T *mean, const T *rstd, T *dx,
                       T *dgamma, T *dbeta) {
  std::vector<double> dg(cols, 0.0), db(cols, 0.0);
  for (int64_t i = 0; i < rows; ++i) {
    double meanG = 0, meanGX = 0;
    for (int64_t j = 0; j < cols; ++j) {
      double xhat = (x[i * cols + j] - mean[i]) * static_cast<double>(rstd[i]);
      double g = static_cast<double>(dy[i * cols + j]) * gamma[j];
      meanG += g;
      meanGX += g * xhat;
      dg[j] += static_cast<double>(dy[i * cols + j]) * xhat;
      db[j] += dy[i * cols + j];
    }
    meanG /= cols;
    meanGX /= cols;
    for (int64_t j = 0; j < cols; ++j) {
      double xhat = (x[i * cols + j] - mean[i]) * static_cast<double>(rstd[i]);
      double g = static_cast<double>(dy[i * cols + j]) * gamma[j];
      dx[i * cols + j] = static_cast<T>(rstd[i] * (g - meanG - xhat * meanGX));
    }
  }
  for (int64_t j = 0; j < cols; ++j) {
    if (dgamma)
      dgamma[j] = static_cast<T>(dg[j]);
    if (dbeta)
      dbeta[j] = static_cast<T>(db[j]);
  }
}

template <typename T>
void rmsNormForward(int64_t rows, int64_t cols, const T *x, const T *gamma,
                    T eps, T *y, T *rstd) {
  for (int64_t i = 0; i < rows; ++i) {
    double sq = 0;
    for (int64_t j = 0; j < cols; ++j)
      sq += static_cast<double>(x[i * cols + j]) * x[i * cols + j];
    double rs = 1.0 / std::sqrt(sq / cols + eps);
    for (int64_t j = 0; j < cols; ++j)
      y[i * cols + j] = static_cast<T>(x[i * cols + j] * rs * gamma[j]);
    rstd[i] = static_cast<T>(rs);
  }
}

template <typename T>
void rmsNormBackward(int64_t rows, int64_t cols, const T *dy, const T *x,
                     const T *gamma, const T *rstd, T *dx, T *dgamma) {
  std::vector<double> dg(cols, 0.0);
  for (int64_t i = 0; i < rows; ++i) {
    double meanGX = 0;
    for (int64_t j = 0; j < cols; ++j) {
      double xhat = static_cast<double>(x[i * cols + j]) * rstd[i];
      meanGX += static_cast<double>(dy[i * cols + j]) * gamma[j] * xhat;
      dg[j] += static_cast<double>(dy[i * cols + j]) * xhat;
    }
    meanGX /= cols;
    for (int64_t j = 0; j < cols; ++j) {
      double xhat = static_cast<double>(x[i * cols + j]) * rstd[i];
      double g = static_cast<double>(dy[i * cols + j]) * gamma[j];
      dx[i * cols + j] = static_cast<T>(rstd[i] * (g - xhat * meanGX));
    }
  }
  if (dgamma)
    for (int64_t j = 0; j < cols; ++j)
      dgamma[j] = static_cast<T>(dg[j]);
}

template <typename T>
void softmaxForward(int64_t rows, int64_t cols, const T *x, T scale, T *y) {
  for (int64_t i = 0; i < rows; ++i) {
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < cols; ++j)
      mx = std::max(mx, static_cast<double>(scale) * x[i * cols + j]);
    double sum = 0;
    for (int64_t j = 0; j < cols; ++j)
      sum += std::exp(static_cast<double>(scale) * x[i * cols + j] - mx);
    for (int64_t j = 0; j < cols; ++j)
      y[i * cols + j] = static_cast<T>(
          std::exp(static_cast<double>(scale) * x[i * cols + j] - mx) / sum);
  }
}

template <typename T>
void softmaxBackward(int64_t rows, int64_t cols, const T *y, const T *dy,
                     T scale, T *dx) {
  for (int64_t i = 0; i < rows; ++i) {
    double dot = 0;
    for (int64_t j = 0; j < cols; ++j)
      dot += static_cast<double>(dy[i * cols + j]) * y[i * cols + j];
    for (int64_t j = 0; j < cols; ++j)
      dx[i * cols + j] = static_cast<T>(static_cast<double>(scale) *
                                        y[i * cols + j] *
                                        (dy[i * cols + j] - dot));
  }
}

namespace {
constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kInvSqrt2 = 0.7071067811865476;
constexpr double kInvSqrt2Pi = 0.3989422804014327;
} // namespace

template <typename T> void geluForward(int64_t n, const T *x, bool tanh, T *y) {
  for (int64_t i = 0; i < n; ++i) {
    double v = x[i];
    y[i] = static_cast<T>(
        tanh ? 0.5 * v * (1 + std::tanh(kSqrt2OverPi * (v + 0.044715 * v * v * v)))
             : 0.5 * v * (1 + std::erf(v * kInvSqrt2)));
  }
}

template <typename T>
void geluBackward(int64_t n, const T *x, const T *dy, bool tanh, T *dx) {
  for (int64_t i = 0; i < n; ++i) {
    double v = x[i], d;
    if (tanh) {
      double t = std::tanh(kSqrt2OverPi * (v + 0.044715 * v * v * v));
      d = 0.5 * (1 + t) +
          0.5 * v * (1 - t * t) * kSqrt2OverPi * (1 + 3 * 0.044715 * v * v);
    } else {
      d = 0.5 * (1 + std::erf(v * kInvSqrt2)) +
          v * kInvSqrt2Pi * std::exp(-0.5 * v * v);
    }
    dx[i] = static_cast<T>(d * dy[i]);
  }
}

template <typename T>
void siluGateForward(int64_t n, const T *gate, const T *up, T *y) {
  for (int64_t i = 0; i < n; ++i) {
    double g = gate[i], s = 1 / (1 + std::exp(-g));
    y[i] = static_cast<T>(g * s * up[i]);
  }
}

template <typename T>
void siluGateBackward(int64_t n, const T *gate, const T *up, const T *dy,
                      T *dgate, T *dup) {
  for (int64_t i = 0; i < n; ++i) {
    double g = gate[i], s = 1 / (1 + std::exp(-g));
    dgate[i] = static_cast<T>(static_cast<double>(dy[i]) * up[i] * s *
                              (1 + g * (1 - s)));
    dup[i] = static_cast<T>(static_cast<double>(dy[i]) * g * s);
  }
}

template <typename T>
void rotary(int64_t batch, int64_t seq, int64_t heads, int64_t headDim,
            int64_t rotaryDim, const T *x, const T *cos, const T *sin,
            const int32_t *positions, bool inverse, T *y) {
  int64_t half = rotaryDim / 2;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t s = 0; s < seq; ++s) {
      int64_t pos = positions ? positions[b * seq + s] : s;
      for (int64_t h = 0; h < heads; ++h) {
        const T *xr = x + ((b * seq + s) * heads + h) * headDim;
        T *yr = y + ((b * seq + s) * heads + h) * headDim;
        for (int64_t j = 0; j < half; ++j) {
          double c = cos[pos * half + j], sn = sin[pos * half + j];
          if (inverse)
            sn = -sn;
          double x1 = xr[j], x2 = xr[j + half];
          yr[j] = static_cast<T>(x1 * c - x2 * sn);
          yr[j + half] = static_cast<T>(x2 * c + x1 * sn);
        }
        for (int64_t j = rotaryDim; j < headDim; ++j)
          yr[j] = xr[j];
      }
    }
}

template <typename T>
void dropout(int64_t n, const T *x, float p, uint64_t seed, T *y) {
  double scale = p < 1 ? 1.0 / (1.0 - p) : 0.0;
  for (int64_t i = 0; i < n; ++i)
    y[i] = philox::keep(seed, static_cast<uint64_t>(i), p)
               ? static_cast<T>(x[i] * scale)
               : T(0);
}

template <typename T>
void embeddingForward(int64_t tokens, int64_t dim, const T *table,
                      const int64_t *ids, T *out) {
  for (int64_t t = 0; t < tokens; ++t)
    std::copy(table + ids[t] * dim, table + (ids[t] + 1) * dim, out + t * dim);
}

template <typename T>
void embeddingBackward(int64_t tokens, int64_t dim, const T *dout,
                       const int64_t *ids, T *dtable) {
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t j = 0; j < dim; ++j)
      dtable[ids[t] * dim + j] += dout[t * dim + j];
}

template <typename T>
void crossEntropy(int64_t rows, int64_t vocab, const T *logits,
                  const int64_t *labels, int64_t ignoreIndex, T gradScale,
                  T *losses, T *dlogits) {
  for (int64_t i = 0; i < rows; ++i) {
    const T *z = logits + i * vocab;
    if (labels[i] == ignoreIndex) {
      losses[i] = 0;
      if (dlogits)
        std::fill(dlogits + i * vocab, dlogits + (i + 1) * vocab, T(0));
      continue;
    }
    double mx = -std::numeric_limits<double>::infinity(), sum = 0;
    for (int64_t j = 0; j < vocab; ++j)
      mx = std::max(mx, static_cast<double>(z[j]));
    for (int64_t j = 0; j < vocab; ++j)
      sum += std::exp(z[j] - mx);
    double lse = mx + std::log(sum);
    losses[i] = static_cast<T>(lse - z[labels[i]]);
    if (dlogits)
      for (int64_t j = 0; j < vocab; ++j)
        dlogits[i * vocab + j] = static_cast<T>(
            gradScale * (std::exp(z[j] - lse) - (j == labels[i] ? 1.0 : 0.0)));
  }
}

namespace {
bool visible(const AttentionMask &mask, int64_t b, int64_t i, int64_t j,
             int64_t seqQ, int64_t seqK) {
  if (mask.kvLengths && j >= mask.kvLengths[b])
    return false;
  if (!mask.causal || j <= i + seqK - seqQ)
    return true;
  return mask.prefixLengths && j < mask.prefixLengths[b];
}

/// The probabilities of query row (b, h, i) over the keys; false when no key
/// is visible.
template <typename T>
bool attentionRow(int64_t b, int64_t h, int64_t i, int64_t seqQ, int64_t seqK,
                  int64_t headsQ, int64_t headsKV, int64_t headDim, T scale,
                  const AttentionMask &mask, const T *q, const T *k,
                  std::vector<double> &p, double &lse) {
  int64_t hk = h / (headsQ / headsKV);
  const T *qr = q + ((b * seqQ + i) * headsQ + h) * headDim;
  double mx = -std::numeric_limits<double>::infinity();
  p.assign(seqK, -std::numeric_limits<double>::infinity());
  for (int64_t j = 0; j < seqK; ++j) {
    if (!visible(mask, b, i, j, seqQ, seqK))
      continue;
    const T *kr = k + ((b * seqK + j) * headsKV + hk) * headDim;
    double s = 0;
    for (int64_t d = 0; d < headDim; ++d)
      s += static_cast<double>(qr[d]) * kr[d];
    p[j] = s * scale;
    mx = std::max(mx, p[j]);
  }
  if (std::isinf(mx)) {
    std::fill(p.begin(), p.end(), 0.0);
    lse = -std::numeric_limits<double>::infinity();
    return false;
  }
  double sum = 0;
  for (double &s : p)
    sum += (s = std::exp(s - mx));
  for (double &s : p)
    s /= sum;
  lse = mx + std::log(sum);
  return true;
}
} // namespace

template <typename T>
void attentionForward(int64_t batch, int64_t seqQ, int64_t seqK,
                      int64_t headsQ, int64_t headsKV, int64_t headDim,
                      T scale, const AttentionMask &mask, const T *q,
                      const T *k, const T *v, T *o, T *lse) {
  std::vector<double> p;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < headsQ; ++h)
      for (int64_t i = 0; i < seqQ; ++i) {
        double l;
        attentionRow(b, h, i, seqQ, seqK, headsQ, headsKV, headDim, scale,
                     mask, q, k, p, l);
        lse[(b * headsQ + h) * seqQ + i] = static_cast<T>(l);
        int64_t hk = h / (headsQ / headsKV);
        T *orow = o + ((b * seqQ + i) * headsQ + h) * headDim;
        for (int64_t d = 0; d < headDim; ++d) {
          double acc = 0;
          for (int64_t j = 0; j < seqK; ++j)
            if (p[j] != 0)
              acc += p[j] * v[((b * seqK + j) * headsKV + hk) * headDim + d];
          orow[d] = static_cast<T>(acc);
        }
      }
}

template <typename T>
void attentionBackward(int64_t batch, int64_t seqQ, int64_t seqK,
                       int64_t headsQ, int64_t headsKV, int64_t headDim,
                       T scale, const AttentionMask &mask, const T *q,
                       const T *k, const T *v, const T *dout, T *dq, T *dk,
                       T *dv) {
  std::vector<double> dkAcc(batch * seqK * headsKV * headDim, 0.0);
  std::vector<double> dvAcc(dkAcc.size(), 0.0), p, dp(seqK);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < headsQ; ++h)
      for (int64_t i = 0; i < seqQ; ++i) {
        double l;
        int64_t hk = h / (headsQ / headsKV);
        int64_t qi = ((b * seqQ + i) * headsQ + h) * headDim;
        bool any = attentionRow(b, h, i, seqQ, seqK, headsQ, headsKV, headDim,
                                scale, mask, q, k, p, l);
        std::vector<double> dqAcc(headDim, 0.0);
        if (any) {
          double rowDot = 0;
          for (int64_t j = 0; j < seqK; ++j) {
            int64_t kj = ((b * seqK + j) * headsKV + hk) * headDim;
            dp[j] = 0;
            for (int64_t d = 0; d < headDim; ++d)
              dp[j] += static_cast<double>(dout[qi + d]) * v[kj + d];
            rowDot += p[j] * dp[j];
          }
          for (int64_t j = 0; j < seqK; ++j) {
            if (p[j] == 0)
              continue;
            int64_t kj = ((b * seqK + j) * headsKV + hk) * headDim;
            double ds = p[j] * (dp[j] - rowDot) * scale;
            for (int64_t d = 0; d < headDim; ++d) {
              dqAcc[d] += ds * k[kj + d];
              dkAcc[kj + d] += ds * q[qi + d];
              dvAcc[kj + d] += p[j] * dout[qi + d];
            }
          }
        }
        for (int64_t d = 0; d < headDim; ++d)
          dq[qi + d] = static_cast<T>(dqAcc[d]);
      }
  for (size_t i = 0; i < dkAcc.size(); ++i) {
    dk[i] = static_cast<T>(dkAcc[i]);
    dv[i] = static_cast<T>(dvAcc[i]);
  }
}

template <typename T>
void adamW(int64_t n, T *param, const T *grad, T *expAvg, T *expAvgSq,
           const AdamWConfig &c, int64_t step, T gradScale) {
  double bc1 = 1 - std::pow(c.beta1, static_cast<double>(step));
  double bc2 = 1 - std::pow(c.beta2, static_cast<double>(step));
  for (int64_t i = 0; i < n; ++i) {
    double g = static_cast<double>(grad[i]) * gradScale;
    double p = param[i] * (1 - c.lr * c.weightDecay);
    double m = c.beta1 * expAvg[i] + (1 - c.beta1) * g;
    double v = c.beta2 * expAvgSq[i] + (1 - c.beta2) * g * g;
    double denom = std::sqrt(v) / std::sqrt(bc2) + c.eps;
    param[i] = static_cast<T>(p - c.lr / bc1 * m / denom);
    expAvg[i] = static_cast<T>(m);
    expAvgSq[i] = static_cast<T>(v);
  }
}

template <typename T>
double sumOfSquares(const std::vector<const T *> &tensors,
                    const std::vector<int64_t> &sizes) {
  double sum = 0;
  for (size_t t = 0; t < tensors.size(); ++t)
    for (int64_t i = 0; i < sizes[t]; ++i)
      sum += static_cast<double>(tensors[t][i]) * tensors[t][i];
  return sum;
}

#define VLORA_INSTANTIATE(T)                                                   \
  template void gemm<T>(int64_t, int64_t, int64_t, const T *, bool, const T *, \
                        bool, T *, T, T, const T *);                           \
  template void loraLinearForward<T>(int64_t, int64_t, int64_t, int64_t, bool, \
                                     T, const T *, const T *, const T *,       \
                                     const T *, T *);                          \
  template void loraLinearBackward<T>(int64_t, int64_t, int64_t, int64_t,      \
                                      bool, T, const T *, const T *,           \
                                      const T *, const T *, const T *, T *,    \
                                      T *, T *);                               \
  template void layerNormForward<T>(int64_t, int64_t, const T *, const T *,    \
                                    const T *, T, T *, T *, T *);              \
  template void layerNormBackward<T>(int64_t, int64_t, const T *, const T *,   \
                                     const T *, const T *, const T *, T *,     \
                                     T *, T *);                                \
  template void rmsNormForward<T>(int64_t, int64_t, const T *, const T *, T,   \
                                  T *, T *);                                   \
  template void rmsNormBackward<T>(int64_t, int64_t, const T *, const T *,     \
                                   const T *, const T *, T *, T *);            \
  template void softmaxForward<T>(int64_t, int64_t, const T *, T, T *);        \
  template void softmaxBackward<T>(int64_t, int64_t, const T *, const T *, T,  \
                                   T *);                                       \
  template void geluForward<T>(int64_t, const T *, bool, T *);                 \
  template void geluBackward<T>(int64_t, const T *, const T *, bool, T *);     \
  template void siluGateForward<T>(int64_t, const T *, const T *, T *);        \
  template void siluGateBackward<T>(int64_t, const T *, const T *, const T *,  \
                                    T *, T *);                                 \
  template void rotary<T>(int64_t, int64_t, int64_t, int64_t, int64_t,         \
                          const T *, const T *, const T *, const int32_t *,    \
                          bool, T *);                                          \
  template void dropout<T>(int64_t, const T *, float, uint64_t, T *);          \
  template void embeddingForward<T>(int64_t, int64_t, const T *,               \
                                    const int64_t *, T *);                     \
  template void embeddingBackward<T>(int64_t, int64_t, const T *,              \
                                     const int64_t *, T *);                    \
  template void crossEntropy<T>(int64_t, int64_t, const T *, const int64_t *,  \
                                int64_t, T, T *, T *);                         \
  template void attentionForward<T>(int64_t, int64_t, int64_t, int64_t,        \
                                    int64_t, int64_t, T, const AttentionMask &, \
                                    const T *, const T *, const T *, T *,      \
                                    T *);                                      \
  template void attentionBackward<T>(                                          \
      int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, T,                 \
      const AttentionMask &, const T *, const T *, const T *, const T *, T *,  \
      T *, T *);                                                               \
  template void adamW<T>(int64_t, T *, const T *, T *, T *,                    \
                         const AdamWConfig &, int64_t, T);                     \
  template double sumOfSquares<T>(const std::vector<const T *> &,             \
                                  const std::vector<int64_t> &);

VLORA_INSTANTIATE(float)
VLORA_INSTANTIATE(double)
#undef VLORA_INSTANTIATE

} // namespace vlora::kernels::reference
