//===- CpuTrainingKernelsTest.cpp - training kernels vs their forwards ----===//
//
// Every backward kernel is checked against its forward kernel by central
// finite differences in f64 (objective <probe, forward(x)>, whose gradient
// is the backward kernel applied to dy = probe); the loss, the norm and
// AdamW against straightforward double reimplementations; LoRA dropout
// against the Philox contract of docs/training.md. Comparisons state their
// tolerance and report the max abs/rel error and the first mismatch.
//
//===----------------------------------------------------------------------===//

#include "vlora/kernels/Cpu.h"
#include "vlora/kernels/reference/Philox.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>

using namespace vlora::kernels;
namespace cpu = vlora::kernels::cpu;
namespace philox = vlora::kernels::philox;

namespace {

template <typename T> constexpr DType dtypeOf() {
  if constexpr (std::is_same_v<T, float>)
    return DType::F32;
  else if constexpr (std::is_same_v<T, double>)
    return DType::F64;
  else if constexpr (std::is_same_v<T, int64_t>)
    return DType::I64;
  else
    return DType::Bool; // uint8_t
}

/// An owning row-major tensor.
template <typename T> struct Owned {
  Shape shape;
  std::vector<T> data;

  explicit Owned(Shape s, T fill = T(0))
      : shape(std::move(s)),
        data(static_cast<size_t>(numElements(shape)), fill) {}
  int64_t numel() const { return static_cast<int64_t>(data.size()); }
  TensorRef ref() { return {data.data(), dtypeOf<T>(), shape}; }
  TensorRef ref() const {
    return {const_cast<T *>(data.data()), dtypeOf<T>(), shape};
  }
};

std::mt19937 &gen() {
  static std::mt19937 g(4321);
  return g;
}

template <typename T>
Owned<T> random(Shape shape, double lo = -1, double hi = 1) {
  Owned<T> t(std::move(shape));
  std::uniform_real_distribution<double> dist(lo, hi);
  for (T &v : t.data)
    v = static_cast<T>(dist(gen()));
  return t;
}

template <typename T> Owned<T> converted(const Owned<double> &d) {
  Owned<T> t(d.shape);
  for (size_t i = 0; i < d.data.size(); ++i)
    t.data[i] = static_cast<T>(d.data[i]);
  return t;
}

/// |got - want| <= atol + rtol · |want| everywhere.
template <typename T>
::testing::AssertionResult near(const std::vector<T> &got,
                                const std::vector<double> &want, double atol,
                                double rtol) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure()
           << "element count " << got.size() << " vs reference " << want.size();
  double maxAbs = 0, maxRel = 0;
  int64_t first = -1;
  for (size_t i = 0; i < got.size(); ++i) {
    double g = static_cast<double>(got[i]), w = want[i];
    double abs = std::fabs(g - w), rel = abs / std::max(std::fabs(w), 1e-300);
    maxAbs = std::max(maxAbs, abs);
    maxRel = std::max(maxRel, std::min(rel, abs));
    if (first < 0 && !(abs <= atol + rtol * std::fabs(w)))
      first = static_cast<int64_t>(i);
  }
  if (first < 0)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "tolerance atol " << atol << " rtol " << rtol << ": max abs error "
         << maxAbs << ", max rel error " << maxRel << "; first mismatch at "
         << first << ": got " << static_cast<double>(got[first]) << ", want "
         << want[first];
}

template <typename T>
double dot(const std::vector<T> &a, const std::vector<double> &b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i)
    s += static_cast<double>(a[i]) * b[i];
  return s;
}

/// Central differences of `objective` with respect to every element of
/// `x` (perturbed in place and restored), step h.
std::vector<double> finiteDifferences(std::vector<double> &x,
                                      const std::function<double()> &objective,
                                      double h) {
  std::vector<double> g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    double saved = x[i];
    x[i] = saved + h;
    double up = objective();
    x[i] = saved - h;
    double down = objective();
    x[i] = saved;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

//===----------------------------------------------------------------------===//
// Cross-entropy
//===----------------------------------------------------------------------===//

constexpr int64_t kIgnore = -100;

/// Labels in [0, vocab) with some ignore_index entries (position 0 included,
/// which no logit predicts).
Owned<int64_t> randomLabels(int64_t batch, int64_t seq, int64_t vocab) {
  Owned<int64_t> labels({batch, seq});
  std::uniform_int_distribution<int64_t> dist(0, vocab - 1);
  for (int64_t i = 0; i < labels.numel(); ++i)
    labels.data[i] = i % 4 == 0 ? kIgnore : dist(gen());
  return labels;
}

/// The causal-LM loss in double, and the number of valid labels.
double referenceLoss(const Owned<double> &logits, const Owned<int64_t> &labels,
                     int64_t &valid) {
  int64_t batch = logits.shape[0], seq = logits.shape[1],
          vocab = logits.shape[2];
  double total = 0;
  valid = 0;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t s = 0; s + 1 < seq; ++s) {
      int64_t label = labels.data[b * seq + s + 1];
      if (label == kIgnore)
        continue;
      const double *x = logits.data.data() + (b * seq + s) * vocab;
      double max = *std::max_element(x, x + vocab), sum = 0;
      for (int64_t j = 0; j < vocab; ++j)
        sum += std::exp(x[j] - max);
      total += max + std::log(sum) - x[label];
      ++valid;
    }
  return total / static_cast<double>(valid);
}

TEST(CpuTraining, CrossEntropyMatchesReference) {
  for (DType dtype : {DType::F32, DType::F64}) {
    Owned<double> logits = random<double>({3, 7, 13}, -4, 4);
    Owned<int64_t> labels = randomLabels(3, 7, 13);
    int64_t valid = 0;
    double want = referenceLoss(logits, labels, valid);
    ASSERT_GT(valid, 0);
    Owned<float> loss({});
    if (dtype == DType::F32) {
      Owned<float> l32 = converted<float>(logits);
      // The f32 reference: the same loss of the rounded logits.
      Owned<double> back(logits.shape);
      for (size_t i = 0; i < l32.data.size(); ++i)
        back.data[i] = l32.data[i];
      want = referenceLoss(back, labels, valid);
      cpu::crossEntropy(l32.ref(), labels.ref(), loss.ref(), kIgnore);
    } else {
      cpu::crossEntropy(logits.ref(), labels.ref(), loss.ref(), kIgnore);
    }
    EXPECT_TRUE(near(loss.data, {want}, 0, 2e-6)) << dtypeName(dtype);
  }
}

TEST(CpuTraining, CrossEntropyGradMatchesFiniteDifferences) {
  // The loss is f32 whatever the logits' type, so the differences use a
  // larger step: h = 1e-2 gives a rounding noise of ~1e-5 and a truncation
  // error of ~h² · |f'''| / 6 < 1e-5 here; tolerance 1e-4 absolute.
  Owned<double> logits = random<double>({2, 6, 5}, -2, 2);
  Owned<int64_t> labels = randomLabels(2, 6, 5);
  const float dloss = 1.7f;
  Owned<float> loss({});
  Owned<double> grad(logits.shape);
  Owned<float> dl({}, dloss);
  cpu::crossEntropyGrad(dl.ref(), logits.ref(), labels.ref(), grad.ref(),
                        kIgnore);
  std::vector<double> fd = finiteDifferences(
      logits.data,
      [&] {
        cpu::crossEntropy(logits.ref(), labels.ref(), loss.ref(), kIgnore);
        return dloss * static_cast<double>(loss.data[0]);
      },
      1e-2);
  EXPECT_TRUE(near(grad.data, fd, 1e-4, 0));
  // The last position and positions whose shifted label is ignored are 0.
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t s = 0; s < 6; ++s) {
      bool predicts = s + 1 < 6 && labels.data[b * 6 + s + 1] != kIgnore;
      for (int64_t j = 0; j < 5 && !predicts; ++j)
        EXPECT_EQ(grad.data[(b * 6 + s) * 5 + j], 0.0)
            << "b " << b << " s " << s;
    }
  // Exact check in f64 against the closed form at one valid row.
  int64_t valid = 0;
  referenceLoss(logits, labels, valid);
  for (int64_t s = 0; s + 1 < 6; ++s) {
    int64_t label = labels.data[s + 1];
    if (label == kIgnore)
      continue;
    const double *x = logits.data.data() + s * 5;
    double max = *std::max_element(x, x + 5), sum = 0;
    for (int j = 0; j < 5; ++j)
      sum += std::exp(x[j] - max);
    std::vector<double> want(5),
        got(grad.data.begin() + s * 5, grad.data.begin() + s * 5 + 5);
    for (int j = 0; j < 5; ++j)
      want[j] = dloss / static_cast<double>(valid) *
                (std::exp(x[j] - max) / sum - (j == label ? 1 : 0));
    EXPECT_TRUE(near(got, want, 1e-15, 1e-12)) << "row " << s;
    break;
  }
}

TEST(CpuTraining, CrossEntropyGradInPlaceAndF32) {
  // A large vocabulary: the rows are split over the kernel threads.
  Owned<double> logits = random<double>({2, 9, 4099}, -3, 3);
  Owned<int64_t> labels = randomLabels(2, 9, 4099);
  Owned<float> dl({}, 0.5f);
  Owned<double> want(logits.shape);
  cpu::crossEntropyGrad(dl.ref(), logits.ref(), labels.ref(), want.ref(),
                        kIgnore);
  Owned<double> inPlace = logits;
  cpu::crossEntropyGrad(dl.ref(), inPlace.ref(), labels.ref(), inPlace.ref(),
                        kIgnore);
  EXPECT_TRUE(near(inPlace.data, want.data, 0, 0)) << "in place (f64, exact)";
  Owned<float> l32 = converted<float>(logits), g32(logits.shape);
  cpu::crossEntropyGrad(dl.ref(), l32.ref(), labels.ref(), g32.ref(), kIgnore);
  EXPECT_TRUE(near(g32.data, want.data, 1e-7, 1e-5)) << "f32 vs f64";
}

TEST(CpuTraining, CrossEntropyWithoutValidLabels) {
  Owned<double> logits = random<double>({2, 3, 4});
  Owned<int64_t> labels({2, 3}, kIgnore);
  labels.data[0] = 2; // position 0 predicts nothing
  Owned<float> loss({});
  cpu::crossEntropy(logits.ref(), labels.ref(), loss.ref(), kIgnore);
  EXPECT_TRUE(std::isnan(loss.data[0])) << "n == 0: NaN, as in PyTorch";
  Owned<double> grad(logits.shape, 7.0);
  Owned<float> dl({}, 1.0f);
  cpu::crossEntropyGrad(dl.ref(), logits.ref(), labels.ref(), grad.ref(),
                        kIgnore);
  for (double g : grad.data)
    ASSERT_EQ(g, 0.0) << "n == 0: the gradient is all zeros";
}

/// linear_cross_entropy equals matmul + cross_entropy (+ its gradient and
/// the matmul back), with and without transpose_b, in f64 and f32, with the
/// row chunking forced by a vocabulary > 2^24 / rows.
TEST(CpuTraining, LinearCrossEntropyMatchesTheUnfusedOps) {
  for (bool transposeB : {false, true})
    for (DType dtype : {DType::F64, DType::F32}) {
      const int64_t B = 2, S = 9, D = 6, V = 11;
      Owned<double> h = random<double>({B, S, D}, -2, 2);
      Owned<double> w = random<double>(transposeB ? Shape{V, D} : Shape{D, V}, -1, 1);
      Owned<int64_t> labels = randomLabels(B, S, V);
      Owned<float> dloss({});
      dloss.data[0] = 0.75f;
      // The unfused reference in double.
      Owned<double> logits({B, S, V}), dlogits({B, S, V});
      cpu::matmul(h.ref(), w.ref(), logits.ref(), false, transposeB);
      Owned<float> wantLoss({});
      cpu::crossEntropy(logits.ref(), labels.ref(), wantLoss.ref(), kIgnore);
      cpu::crossEntropyGrad(dloss.ref(), logits.ref(), labels.ref(), dlogits.ref(),
                            kIgnore);
      Owned<double> wantDh({B, S, D});
      cpu::matmul(dlogits.ref(), w.ref(), wantDh.ref(), false, !transposeB);
      Owned<float> loss({});
      std::vector<double> got;
      if (dtype == DType::F64) {
        Owned<double> dh({B, S, D});
        cpu::linearCrossEntropy(h.ref(), w.ref(), labels.ref(), dloss.ref(), loss.ref(),
                                dh.ref(), kIgnore, transposeB);
        EXPECT_TRUE(near(dh.data, wantDh.data, 1e-12, 1e-9)) << transposeB;
        got = dh.data;
      } else {
        Owned<float> h32 = converted<float>(h), w32 = converted<float>(w), dh({B, S, D});
        cpu::linearCrossEntropy(h32.ref(), w32.ref(), labels.ref(), dloss.ref(),
                                loss.ref(), dh.ref(), kIgnore, transposeB);
        EXPECT_TRUE(near(dh.data, wantDh.data, 1e-6, 1e-4)) << transposeB;
        got.assign(dh.data.begin(), dh.data.end());
      }
      EXPECT_TRUE(near(loss.data, {double(wantLoss.data[0])}, 0, 1e-5)) << transposeB;
      // Unlabelled positions get exactly zero.
      for (int64_t b = 0; b < B; ++b)
        for (int64_t s = 0; s < S; ++s) {
          if (s != S - 1 && labels.data[b * S + s + 1] != kIgnore)
            continue;
          for (int64_t d = 0; d < D; ++d) {
            EXPECT_EQ(got[(b * S + s) * D + d], 0.0);
          }
        }
    }
  // Many chunks: 2^24 / V rows per chunk with V = 2^22 + 1 is 3 rows.
  const int64_t B = 1, S = 8, D = 2, V = (int64_t(1) << 22) + 1;
  Owned<float> h = converted<float>(random<double>({B, S, D}, -1, 1));
  Owned<float> w = converted<float>(random<double>({V, D}, -1, 1));
  Owned<int64_t> labels({B, S});
  for (int64_t s = 0; s < S; ++s)
    labels.data[s] = (s * 977) % V;
  Owned<float> dloss({}), loss({}), dh({B, S, D});
  dloss.data[0] = 1;
  cpu::linearCrossEntropy(h.ref(), w.ref(), labels.ref(), dloss.ref(), loss.ref(),
                          dh.ref(), kIgnore, true);
  EXPECT_TRUE(std::isfinite(loss.data[0]));
  EXPECT_NEAR(loss.data[0], std::log(double(V)), 2.5);
}

TEST(CpuTraining, LinearCrossEntropyWithoutValidLabels) {
  Owned<float> h = converted<float>(random<double>({1, 4, 3}));
  Owned<float> w = converted<float>(random<double>({3, 5}));
  Owned<int64_t> labels({1, 4}, kIgnore);
  Owned<float> dloss({}, 1.0f), loss({}), dh({1, 4, 3}, 7.0f);
  cpu::linearCrossEntropy(h.ref(), w.ref(), labels.ref(), dloss.ref(), loss.ref(),
                          dh.ref(), kIgnore, false);
  EXPECT_TRUE(std::isnan(loss.data[0]));
  for (float v : dh.data)
    EXPECT_EQ(v, 0.0f);
  labels.data[2] = 5; // outside [0, 5)
  EXPECT_THROW(cpu::linearCrossEntropy(h.ref(), w.ref(), labels.ref(), dloss.ref(),
                                       loss.ref(), dh.ref(), kIgnore, false),
               vlora::kernels::KernelError);
}

TEST(CpuTraining, CrossEntropyRefusesLabelsOutOfRange) {
  Owned<float> logits = random<float>({2, 4, 5});
  Owned<int64_t> labels({2, 4}, 1);
  labels.data[0] = 99; // position 0: never predicted, not checked
  Owned<float> loss({});
  cpu::crossEntropy(logits.ref(), labels.ref(), loss.ref(), kIgnore);
  EXPECT_TRUE(std::isfinite(loss.data[0]));
  Owned<float> grad(logits.shape), dl({}, 1.0f);
  for (int64_t bad : {5, -1}) {
    labels.data[1 * 4 + 3] = bad;
    std::string want = "label " + std::to_string(bad) +
                       " at batch 1, position 3 is outside [0, 5)";
    try {
      cpu::crossEntropy(logits.ref(), labels.ref(), loss.ref(), kIgnore);
      ADD_FAILURE() << "cross_entropy accepted label " << bad;
    } catch (const KernelError &e) {
      EXPECT_NE(std::string(e.what()).find("cross_entropy: " + want),
                std::string::npos)
          << e.what();
    }
    try {
      cpu::crossEntropyGrad(dl.ref(), logits.ref(), labels.ref(), grad.ref(),
                            kIgnore);
      ADD_FAILURE() << "cross_entropy_grad accepted label " << bad;
    } catch (const KernelError &e) {
      EXPECT_NE(std::string(e.what()).find("cross_entropy_grad: " + want),
                std::string::npos)
          << e.what();
    }
  }
}

//===----------------------------------------------------------------------===//
// Softmax and layer norm backward
//===----------------------------------------------------------------------===//

TEST(CpuTraining, SoftmaxGradMatchesFiniteDifferences) {
  // f64, h = 1e-6: error ~1e-10; tolerance 1e-8 absolute.
  for (auto [shape, axis] :
       {std::pair<Shape, int64_t>{{3, 7}, 1}, {{2, 5, 3}, 1}, {{4, 2, 3}, 0}}) {
    Owned<double> x = random<double>(shape, -3, 3),
                  probe = random<double>(shape);
    Owned<double> y(shape), dx(shape);
    cpu::softmax(x.ref(), y.ref(), axis, false);
    cpu::softmaxGrad(probe.ref(), y.ref(), dx.ref(), axis);
    std::vector<double> fd = finiteDifferences(
        x.data,
        [&] {
          cpu::softmax(x.ref(), y.ref(), axis, false);
          return dot(y.data, probe.data);
        },
        1e-6);
    EXPECT_TRUE(near(dx.data, fd, 1e-8, 0))
        << shapeString(shape) << " axis " << axis;
    // f32 and in place over the gradient.
    cpu::softmax(x.ref(), y.ref(), axis, false);
    Owned<float> y32 = converted<float>(y), g32 = converted<float>(probe);
    cpu::softmaxGrad(g32.ref(), y32.ref(), g32.ref(), axis);
    EXPECT_TRUE(near(g32.data, dx.data, 1e-6, 1e-5)) << "f32 in place";
  }
}

TEST(CpuTraining, LayerNormGradMatchesFiniteDifferences) {
  // f64, h = 1e-6; tolerance 1e-7 absolute (values ~1).
  for (auto [shape, axis] :
       {std::pair<Shape, int64_t>{{3, 4, 5}, 2}, {{3, 4, 5}, 1}, {{2, 7}, 1}}) {
    Shape normalised(shape.begin() + axis, shape.end());
    Owned<double> x = random<double>(shape, -2, 2),
                  probe = random<double>(shape);
    Owned<double> g = random<double>(normalised, 0.5, 1.5),
                  b = random<double>(normalised);
    Owned<double> y(shape), dx(shape);
    const double eps = 1e-5;
    TensorRef bias = b.ref();
    cpu::layerNormGrad(probe.ref(), x.ref(), g.ref(), dx.ref(), axis, eps);
    std::vector<double> fd = finiteDifferences(
        x.data,
        [&] {
          cpu::layerNorm(x.ref(), g.ref(), &bias, y.ref(), axis, eps);
          return dot(y.data, probe.data);
        },
        1e-6);
    EXPECT_TRUE(near(dx.data, fd, 1e-7, 0))
        << shapeString(shape) << " axis " << axis;
    // f32, in place over the input.
    Owned<float> x32 = converted<float>(x), p32 = converted<float>(probe),
                 g32 = converted<float>(g);
    cpu::layerNormGrad(p32.ref(), x32.ref(), g32.ref(), x32.ref(), axis, eps);
    EXPECT_TRUE(near(x32.data, dx.data, 1e-5, 1e-4)) << "f32 in place";
  }
}

//===----------------------------------------------------------------------===//
// LoRA matmul backward and dropout
//===----------------------------------------------------------------------===//

struct LoRACase {
  bool transposeB;
  double dropout;
};

TEST(CpuTraining, LoRAMatmulGradMatchesFiniteDifferences) {
  // x [2, 3, 5] (N = 6, in = 5), out = 4, r = 3; f64, h = 1e-6, the forward
  // is linear in each argument: tolerance 1e-8 absolute.
  const int64_t in = 5, outDim = 4, r = 3;
  const double scale = 0.7;
  Owned<int64_t> rng({2});
  rng.data = {12345, 7};
  const int64_t stream = 3;
  for (LoRACase c :
       {LoRACase{false, 0.0}, {true, 0.0}, {false, 0.3}, {true, 0.3}}) {
    SCOPED_TRACE(std::string("transpose_b ") + (c.transposeB ? "1" : "0") +
                 " dropout " + std::to_string(c.dropout));
    Owned<double> x = random<double>({2, 3, in});
    Owned<double> w =
        random<double>(c.transposeB ? Shape{outDim, in} : Shape{in, outDim});
    Owned<double> a = random<double>({r, in}), b = random<double>({outDim, r});
    Owned<double> probe = random<double>({2, 3, outDim}), y({2, 3, outDim});
    auto forward = [&] {
      if (c.dropout > 0)
        cpu::loraMatmulDropout(x.ref(), w.ref(), a.ref(), b.ref(), rng.ref(),
                               y.ref(), scale, c.dropout, stream, c.transposeB);
      else
        cpu::loraMatmul(x.ref(), w.ref(), a.ref(), b.ref(), y.ref(), scale,
                        c.transposeB);
      return dot(y.data, probe.data);
    };
    Owned<double> da(a.shape), db(b.shape), dx(x.shape);
    TensorRef dxRef = dx.ref(), rngRef = rng.ref();
    cpu::loraMatmulGrad(probe.ref(), x.ref(), w.ref(), a.ref(), b.ref(),
                        c.dropout > 0 ? &rngRef : nullptr, da.ref(), db.ref(),
                        &dxRef, scale, c.dropout, stream, c.transposeB);
    EXPECT_TRUE(
        near(da.data, finiteDifferences(a.data, forward, 1e-6), 1e-8, 0))
        << "dA";
    EXPECT_TRUE(
        near(db.data, finiteDifferences(b.data, forward, 1e-6), 1e-8, 0))
        << "dB";
    EXPECT_TRUE(
        near(dx.data, finiteDifferences(x.data, forward, 1e-6), 1e-8, 0))
        << "dx";
    // Without grad_x the adapters' gradients are the same; f32 agrees.
    Owned<double> da2(a.shape), db2(b.shape);
    cpu::loraMatmulGrad(probe.ref(), x.ref(), w.ref(), a.ref(), b.ref(),
                        c.dropout > 0 ? &rngRef : nullptr, da2.ref(), db2.ref(),
                        nullptr, scale, c.dropout, stream, c.transposeB);
    EXPECT_TRUE(near(da2.data, da.data, 0, 0));
    EXPECT_TRUE(near(db2.data, db.data, 0, 0));
    Owned<float> x32 = converted<float>(x), w32 = converted<float>(w),
                 a32 = converted<float>(a), b32 = converted<float>(b),
                 p32 = converted<float>(probe);
    Owned<float> da32(a.shape), db32(b.shape), dx32(x.shape);
    TensorRef dx32Ref = dx32.ref();
    cpu::loraMatmulGrad(p32.ref(), x32.ref(), w32.ref(), a32.ref(), b32.ref(),
                        c.dropout > 0 ? &rngRef : nullptr, da32.ref(),
                        db32.ref(), &dx32Ref, scale, c.dropout, stream,
                        c.transposeB);
    EXPECT_TRUE(near(da32.data, da.data, 1e-5, 1e-5)) << "f32 dA";
    EXPECT_TRUE(near(db32.data, db.data, 1e-5, 1e-5)) << "f32 dB";
    EXPECT_TRUE(near(dx32.data, dx.data, 1e-5, 1e-5)) << "f32 dx";
  }
}

/// A mixed-precision plan's frozen weight: `f32` rounded to bf16 (what the
/// plan stores; ref() views it) and that widened back to f32 (`wide`, what
/// the f32 kernels see).
struct BF16Weight {
  std::vector<uint16_t> bits;
  Owned<float> wide;
  explicit BF16Weight(const Owned<float> &f32)
      : bits(f32.data.size()), wide(f32.shape) {
    cpu::cast(f32.ref(), ref());
    cpu::cast(ref(), wide.ref());
  }
  TensorRef ref() const {
    return {const_cast<uint16_t *>(bits.data()), DType::BF16, wide.shape};
  }
};

/// Bitwise equality of two f32 tensors.
::testing::AssertionResult sameBits(const std::vector<float> &got,
                                    const std::vector<float> &want) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure()
           << "element count " << got.size() << " vs " << want.size();
  for (size_t i = 0; i < got.size(); ++i)
    if (std::memcmp(&got[i], &want[i], 4))
      return ::testing::AssertionFailure()
             << "not bitwise equal: first mismatch at " << i << ": got "
             << got[i] << ", want " << want[i];
  return ::testing::AssertionSuccess();
}

TEST(CpuTraining, LoRABF16WeightIsTheF32KernelOnTheWidenedWeight) {
  const int64_t in = 6, outDim = 5, r = 3;
  const double scale = 0.7;
  Owned<int64_t> rng({2});
  rng.data = {12345, 7};
  TensorRef rngRef = rng.ref();
  for (LoRACase c :
       {LoRACase{false, 0.0}, {true, 0.0}, {false, 0.3}, {true, 0.3}}) {
    SCOPED_TRACE(std::string("transpose_b ") + (c.transposeB ? "1" : "0") +
                 " dropout " + std::to_string(c.dropout));
    Owned<float> x = random<float>({2, 3, in});
    BF16Weight w(
        random<float>(c.transposeB ? Shape{outDim, in} : Shape{in, outDim}));
    Owned<float> a = random<float>({r, in}), b = random<float>({outDim, r});
    Owned<float> dy = random<float>({2, 3, outDim});
    // Forward (with dropout through the rng).
    Owned<float> y({2, 3, outDim}), wantY({2, 3, outDim});
    cpu::loraMatmulDropout(x.ref(), w.ref(), a.ref(), b.ref(), rngRef, y.ref(),
                           scale, c.dropout, 3, c.transposeB);
    cpu::loraMatmulDropout(x.ref(), w.wide.ref(), a.ref(), b.ref(), rngRef,
                           wantY.ref(), scale, c.dropout, 3, c.transposeB);
    EXPECT_TRUE(sameBits(y.data, wantY.data)) << "y";
    // Backward, with and without grad_x.
    for (bool inputGrad : {true, false}) {
      Owned<float> da(a.shape), db(b.shape), dx(x.shape);
      Owned<float> wantDa(a.shape), wantDb(b.shape), wantDx(x.shape);
      TensorRef dxRef = dx.ref(), wantDxRef = wantDx.ref();
      cpu::loraMatmulGrad(dy.ref(), x.ref(), w.ref(), a.ref(), b.ref(), &rngRef,
                          da.ref(), db.ref(), inputGrad ? &dxRef : nullptr,
                          scale, c.dropout, 3, c.transposeB);
      cpu::loraMatmulGrad(dy.ref(), x.ref(), w.wide.ref(), a.ref(), b.ref(),
                          &rngRef, wantDa.ref(), wantDb.ref(),
                          inputGrad ? &wantDxRef : nullptr, scale, c.dropout, 3,
                          c.transposeB);
      EXPECT_TRUE(sameBits(da.data, wantDa.data)) << "dA";
      EXPECT_TRUE(sameBits(db.data, wantDb.data)) << "dB";
      EXPECT_TRUE(sameBits(dx.data, wantDx.data)) << "dx";
    }
  }
}

// bf16 activations (f32_result): x and w bf16, dy and the results f32. The
// forward and dA, dB are the f32 kernel on the widened operands (bitwise);
// dx's frozen product reads dy rounded to bf16 (a bf16 GEMM's operand), its
// low-rank part the exact dy: dx = round(dy)·Wᵀ + mask(du·A).
TEST(CpuTraining, LoRABF16ActivationsRoundDyForTheFrozenProductOnly) {
  const int64_t in = 6, outDim = 5, r = 3;
  const double scale = 0.7;
  Owned<int64_t> rng({2});
  rng.data = {12345, 7};
  TensorRef rngRef = rng.ref();
  for (LoRACase c :
       {LoRACase{false, 0.0}, {true, 0.0}, {false, 0.3}, {true, 0.3}}) {
    SCOPED_TRACE(std::string("transpose_b ") + (c.transposeB ? "1" : "0") +
                 " dropout " + std::to_string(c.dropout));
    Shape wShape = c.transposeB ? Shape{outDim, in} : Shape{in, outDim};
    BF16Weight x(random<float>({2, 3, in})), w(random<float>(wShape));
    Owned<float> a = random<float>({r, in}), b = random<float>({outDim, r});
    Owned<float> dy = random<float>({2, 3, outDim});
    BF16Weight dyRounded(dy);
    Owned<float> y({2, 3, outDim}), wantY({2, 3, outDim});
    cpu::loraMatmulDropout(x.ref(), w.ref(), a.ref(), b.ref(), rngRef, y.ref(),
                           scale, c.dropout, 3, c.transposeB);
    cpu::loraMatmulDropout(x.wide.ref(), w.wide.ref(), a.ref(), b.ref(), rngRef,
                           wantY.ref(), scale, c.dropout, 3, c.transposeB);
    EXPECT_TRUE(sameBits(y.data, wantY.data)) << "y";

    Owned<float> da(a.shape), db(b.shape), dx({2, 3, in});
    Owned<float> wantDa(a.shape), wantDb(b.shape), lowRank({2, 3, in});
    Owned<float> zeroW(wShape), frozen({2, 3, in});
    TensorRef dxRef = dx.ref(), lowRankRef = lowRank.ref();
    cpu::loraMatmulGrad(dy.ref(), x.ref(), w.ref(), a.ref(), b.ref(), &rngRef,
                        da.ref(), db.ref(), &dxRef, scale, c.dropout, 3,
                        c.transposeB);
    // The exact dy through a zero weight: dA, dB and the low-rank part.
    cpu::loraMatmulGrad(dy.ref(), x.wide.ref(), zeroW.ref(), a.ref(), b.ref(),
                        &rngRef, wantDa.ref(), wantDb.ref(), &lowRankRef, scale,
                        c.dropout, 3, c.transposeB);
    cpu::matmul(dyRounded.wide.ref(), w.wide.ref(), frozen.ref(), false,
                !c.transposeB);
    EXPECT_TRUE(sameBits(da.data, wantDa.data)) << "dA";
    EXPECT_TRUE(sameBits(db.data, wantDb.data)) << "dB";
    std::vector<double> wantDx(dx.data.size());
    for (size_t i = 0; i < wantDx.size(); ++i)
      wantDx[i] = double(frozen.data[i]) + double(lowRank.data[i]);
    EXPECT_TRUE(near(dx.data, wantDx, 1e-6, 1e-6)) << "dx";
    // Not the exact dy: the frozen product with it differs.
    Owned<float> exact({2, 3, in});
    cpu::matmul(dy.ref(), w.wide.ref(), exact.ref(), false, !c.transposeB);
    EXPECT_FALSE(near(exact.data,
                      std::vector<double>(frozen.data.begin(), frozen.data.end()),
                      1e-6, 1e-6));
  }
}

TEST(CpuTraining,
     LinearCrossEntropyBF16WeightIsTheF32KernelOnTheWidenedWeight) {
  for (bool transposeB : {false, true}) {
    SCOPED_TRACE(std::string("transpose_b ") + (transposeB ? "1" : "0"));
    const int64_t B = 2, S = 9, D = 6, V = 11;
    Owned<float> h = random<float>({B, S, D}, -2, 2);
    BF16Weight w(random<float>(transposeB ? Shape{V, D} : Shape{D, V}));
    Owned<int64_t> labels = randomLabels(B, S, V);
    Owned<float> dloss({});
    dloss.data[0] = 0.75f;
    Owned<float> loss({}), wantLoss({}), dh({B, S, D}), wantDh({B, S, D});
    cpu::linearCrossEntropy(h.ref(), w.ref(), labels.ref(), dloss.ref(),
                            loss.ref(), dh.ref(), kIgnore, transposeB);
    cpu::linearCrossEntropy(h.ref(), w.wide.ref(), labels.ref(), dloss.ref(),
                            wantLoss.ref(), wantDh.ref(), kIgnore, transposeB);
    EXPECT_TRUE(sameBits(loss.data, wantLoss.data)) << "loss";
    EXPECT_TRUE(sameBits(dh.data, wantDh.data)) << "grad input";
    EXPECT_TRUE(std::isfinite(loss.data[0]));
  }
}

TEST(CpuTraining, LoRAMatmulGradWithoutRows) {
  // N = 0: the adapters' gradients are zeros.
  Owned<float> x({0, 5}), w = random<float>({5, 4}), a = random<float>({3, 5}),
                          b = random<float>({4, 3}), dy({0, 4});
  Owned<float> da(a.shape, 9.0f), db(b.shape, 9.0f);
  cpu::loraMatmulGrad(dy.ref(), x.ref(), w.ref(), a.ref(), b.ref(), nullptr,
                      da.ref(), db.ref(), nullptr, 1.0, 0.0, 0, false);
  for (float v : da.data)
    ASSERT_EQ(v, 0.0f);
  for (float v : db.data)
    ASSERT_EQ(v, 0.0f);
}

/// With w = 0, A = B = I and scale 1 the layer is y = dropout(x): the mask
/// shows through. x is [rows, n].
struct DropoutProbe {
  int64_t rows, n;
  Owned<float> w, eye;
  DropoutProbe(int64_t rows, int64_t n)
      : rows(rows), n(n), w({n, n}), eye({n, n}) {
    for (int64_t i = 0; i < n; ++i)
      eye.data[i * n + i] = 1;
  }
  Owned<float> forward(Owned<float> &x, Owned<int64_t> &rng, double p,
                       int64_t stream) {
    Owned<float> y({rows, n});
    cpu::loraMatmulDropout(x.ref(), w.ref(), eye.ref(), eye.ref(), rng.ref(),
                           y.ref(), 1.0, p, stream, false);
    return y;
  }
  Owned<float> backward(Owned<float> &x, Owned<float> &dy, Owned<int64_t> &rng,
                        double p, int64_t stream) {
    Owned<float> da({n, n}), db({n, n}), dx({rows, n});
    TensorRef dxRef = dx.ref(), rngRef = rng.ref();
    cpu::loraMatmulGrad(dy.ref(), x.ref(), w.ref(), eye.ref(), eye.ref(),
                        &rngRef, da.ref(), db.ref(), &dxRef, 1.0, p, stream,
                        false);
    return dx;
  }
};

TEST(CpuTraining, LoRADropoutMaskFollowsTheContract) {
  const int64_t rows = 128, n = 64;
  const double p = 0.3;
  DropoutProbe probe(rows, n);
  Owned<float> x({rows, n}, 1.0f), ones({rows, n}, 1.0f);
  Owned<int64_t> rng({2});
  rng.data = {20240601, 5};
  Owned<float> y = probe.forward(x, rng, p, 2);
  uint64_t key = philox::streamSeed(20240601, 5, 2);
  const float kept = static_cast<float>(1.0 / (1.0 - p));
  int64_t keptCount = 0, mismatches = 0;
  for (int64_t i = 0; i < rows * n; ++i) {
    bool want =
        philox::uniform(key, static_cast<uint64_t>(i)) >= static_cast<float>(p);
    keptCount += y.data[i] != 0;
    if (y.data[i] != (want ? kept : 0.0f))
      ++mismatches;
  }
  EXPECT_EQ(mismatches, 0)
      << "mask element i = philox::uniform(streamSeed(seed, "
         "counter, stream), i) >= p, kept values x / (1 - p)";
  // Kept fraction 1 - p: sigma = sqrt(p (1-p) / 8192) = 0.005; allow 5 sigma.
  double fraction = static_cast<double>(keptCount) / (rows * n);
  EXPECT_NEAR(fraction, 1 - p, 0.025) << "kept fraction";
  // The backward draws the same mask: dx = keep ⊙ dy / (1 - p) here.
  Owned<float> dx = probe.backward(x, ones, rng, p, 2);
  EXPECT_TRUE(
      near(dx.data, std::vector<double>(y.data.begin(), y.data.end()), 0, 1e-6))
      << "backward mask vs forward mask";
  // Same inputs, same mask; another stream or counter, another mask
  // (agreement ~ p² + (1-p)² = 0.58, far from 1).
  Owned<float> again = probe.forward(x, rng, p, 2);
  EXPECT_EQ(again.data, y.data);
  auto agreement = [&](const Owned<float> &other) {
    int64_t same = 0;
    for (int64_t i = 0; i < rows * n; ++i)
      same += (other.data[i] != 0) == (y.data[i] != 0);
    return static_cast<double>(same) / (rows * n);
  };
  EXPECT_LT(agreement(probe.forward(x, rng, p, 3)), 0.7) << "stream 3 vs 2";
  rng.data[1] = 6;
  EXPECT_LT(agreement(probe.forward(x, rng, p, 2)), 0.7) << "counter 6 vs 5";
  // p = 0 draws nothing: the plain forward.
  Owned<float> plain = probe.forward(x, rng, 0.0, 2);
  EXPECT_EQ(plain.data, x.data);
}

//===----------------------------------------------------------------------===//
// masked_select, global_norm
//===----------------------------------------------------------------------===//

TEST(CpuTraining, MaskedSelectIsTheAdjointOfMaskedScatter) {
  // <maskedScatter(0, m, s), y> == <s, maskedSelect(y, m)>.
  Shape shape{3, 5, 4};
  Owned<uint8_t> mask(shape);
  std::bernoulli_distribution coin(0.4);
  int64_t trues = 0;
  for (uint8_t &m : mask.data)
    trues += (m = coin(gen()) ? 1 : 0);
  ASSERT_GT(trues, 0);
  int64_t count = trues + 3; // elements past the true count stay 0
  Owned<double> zero(shape), s = random<double>({count}),
                             y = random<double>(shape);
  Owned<double> scattered(shape), selected({count}, 5.0);
  cpu::maskedScatter(zero.ref(), mask.ref(), s.ref(), scattered.ref());
  cpu::maskedSelect(y.ref(), mask.ref(), selected.ref());
  EXPECT_NEAR(dot(scattered.data, y.data), dot(selected.data, s.data), 1e-12);
  for (int64_t i = trues; i < count; ++i)
    EXPECT_EQ(selected.data[i], 0.0)
        << "element " << i << " past the true count";
  // Any element type; row-major order.
  Owned<int64_t> ints({2, 3}), picked({2, 2});
  Owned<uint8_t> m2({2, 3});
  ints.data = {10, 11, 12, 13, 14, 15};
  m2.data = {0, 1, 1, 0, 0, 1};
  cpu::maskedSelect(ints.ref(), m2.ref(), picked.ref());
  EXPECT_EQ(picked.data, (std::vector<int64_t>{11, 12, 15, 0}));
  // More true values than result elements.
  Owned<int64_t> small({2});
  try {
    cpu::maskedSelect(ints.ref(), m2.ref(), small.ref());
    ADD_FAILURE() << "masked_select wrote 3 values into 2 elements";
  } catch (const KernelError &e) {
    EXPECT_NE(std::string(e.what()).find("masked_select: the mask selects 3 "
                                         "positions but the result has only 2"),
              std::string::npos)
        << e.what();
  }
}

TEST(CpuTraining, GlobalNormMatchesReference) {
  Owned<float> a = random<float>({8, 33});
  Owned<double> b = random<double>({17});
  Owned<float> empty({0, 4}), out({});
  double sum = 0;
  for (float v : a.data)
    sum += static_cast<double>(v) * v;
  for (double v : b.data)
    sum += v * v;
  cpu::globalNorm({a.ref(), b.ref(), empty.ref()}, out.ref());
  EXPECT_TRUE(near(out.data, {std::sqrt(sum)}, 0, 1e-7)) << "rounded to f32";
  cpu::globalNorm({empty.ref()}, out.ref());
  EXPECT_EQ(out.data[0], 0.0f);
}

//===----------------------------------------------------------------------===//
// AdamW
//===----------------------------------------------------------------------===//

/// The ODS formula, one element, in double.
struct ScalarAdamW {
  double p, m = 0, v = 0;
  void step(double g, int64_t t, double lr, double wd, double beta1,
            double beta2, double eps) {
    p *= 1 - lr * wd;
    m = beta1 * m + (1 - beta1) * g;
    v = beta2 * v + (1 - beta2) * g * g;
    double bc1 = 1 - std::pow(beta1, t), bc2 = 1 - std::pow(beta2, t);
    p -= lr / bc1 * m / (std::sqrt(v) / std::sqrt(bc2) + eps);
  }
};

template <typename T> void checkAdamW(double atol, double rtol) {
  const Shape shape{7, 5};
  const double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  Owned<T> param = converted<T>(random<double>(shape));
  Owned<T> m(shape), v(shape);
  std::vector<ScalarAdamW> want;
  for (T p : param.data)
    want.push_back({static_cast<double>(p)});
  Owned<float> lr({}, 1e-2f), wd({}, 0.1f), gs({}, 0.5f);
  Owned<int64_t> step({});
  for (int64_t t = 1; t <= 3; ++t) {
    Owned<T> grad = converted<T>(random<double>(shape, -2, 2));
    step.data[0] = t;
    // In place: each output is its input's bytes.
    TensorRef gsRef = gs.ref();
    cpu::adamW(param.ref(), grad.ref(), m.ref(), v.ref(), lr.ref(), step.ref(),
               wd.ref(), &gsRef, param.ref(), m.ref(), v.ref(), beta1, beta2,
               eps);
    std::vector<double> wp, wm, wv;
    for (size_t i = 0; i < want.size(); ++i) {
      want[i].step(static_cast<double>(grad.data[i]) * gs.data[0], t,
                   lr.data[0], wd.data[0], beta1, beta2, eps);
      wp.push_back(want[i].p);
      wm.push_back(want[i].m);
      wv.push_back(want[i].v);
    }
    EXPECT_TRUE(near(param.data, wp, atol, rtol)) << "param after step " << t;
    EXPECT_TRUE(near(m.data, wm, atol, rtol)) << "exp_avg after step " << t;
    EXPECT_TRUE(near(v.data, wv, atol * 1e-2, rtol))
        << "exp_avg_sq after step " << t;
  }
}

TEST(CpuTraining, AdamWMatchesScalarReimplementation) {
  // Three steps with weight decay and grad_scale, in place. f32 computes in
  // float like torch: tolerance 1e-6 abs + 1e-5 rel; f64: 1e-14 + 1e-12.
  checkAdamW<float>(1e-6, 1e-5);
  checkAdamW<double>(1e-14, 1e-12);
}

TEST(CpuTraining, AdamWWithoutGradScaleAndOutOfPlace) {
  Owned<float> param = random<float>({9}), grad = random<float>({9}),
               m = random<float>({9}), v = random<float>({9}, 0, 1);
  Owned<float> lr({}, 3e-3f), wd({}, 0.0f), one({}, 1.0f);
  Owned<int64_t> step({}, 4);
  Owned<float> p1(param.shape), m1(param.shape), v1(param.shape);
  Owned<float> p2(param.shape), m2(param.shape), v2(param.shape);
  cpu::adamW(param.ref(), grad.ref(), m.ref(), v.ref(), lr.ref(), step.ref(),
             wd.ref(), nullptr, p1.ref(), m1.ref(), v1.ref(), 0.9, 0.95, 1e-6);
  TensorRef oneRef = one.ref();
  cpu::adamW(param.ref(), grad.ref(), m.ref(), v.ref(), lr.ref(), step.ref(),
             wd.ref(), &oneRef, p2.ref(), m2.ref(), v2.ref(), 0.9, 0.95, 1e-6);
  EXPECT_EQ(p1.data, p2.data) << "no grad_scale = grad_scale 1";
  EXPECT_EQ(m1.data, m2.data);
  EXPECT_EQ(v1.data, v2.data);
  std::vector<double> wp;
  for (size_t i = 0; i < 9; ++i) {
    ScalarAdamW s{param.data[i], m.data[i], v.data[i]};
    s.step(grad.data[i], 4, lr.data[0], 0.0, 0.9, 0.95, 1e-6);
    wp.push_back(s.p);
  }
  EXPECT_TRUE(near(p1.data, wp, 1e-6, 1e-5));
}

TEST(CpuTraining, AdamWRefusesBadScalars) {
  Owned<float> t = random<float>({3}), lr({}, 1e-3f), wd({}, 0.0f);
  Owned<int64_t> step({}, 0);
  auto run = [&] {
    cpu::adamW(t.ref(), t.ref(), t.ref(), t.ref(), lr.ref(), step.ref(),
               wd.ref(), nullptr, t.ref(), t.ref(), t.ref(), 0.9, 0.999, 1e-8);
  };
  auto expectError = [&](const std::string &want) {
    try {
      run();
      ADD_FAILURE() << "accepted: " << want;
    } catch (const KernelError &e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos)
          << e.what();
    }
  };
  expectError("adamw_update: step 0 must be >= 1");
  step.data[0] = 1;
  wd.data[0] = -0.5f;
  expectError("adamw_update: weight_decay -0.5");
  wd.data[0] = 0;
  lr.data[0] = std::numeric_limits<float>::quiet_NaN();
  expectError("adamw_update: learning rate nan must be >= 0");
}

} // namespace
