//===- ReferenceTest.cpp - the CPU references checked on their own --------===//
//
// Runs on every machine: Philox against Random123's known answers, bf16
// rounding, AdamW against a hand-computed torch.optim.AdamW trajectory, and a
// central finite-difference check of every backward reference (in double).
//
//===----------------------------------------------------------------------===//

#include "vlora/kernels/reference/Philox.h"
#include "vlora/kernels/reference/Reference.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

namespace vlora::kernels::reference {
namespace {

TEST(Philox, Random123KnownAnswers) {
  struct Kat {
    philox::Block counter;
    uint32_t key0, key1;
    philox::Block expected;
  };
  const Kat kats[] = {
      {{{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}}},
      {{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}},
       0xffffffff,
       0xffffffff,
       {{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}}},
      {{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}},
       0xa4093822,
       0x299f31d0,
       {{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}}}};
  for (const Kat &kat : kats) {
    philox::Block out = philox::philox4x32(kat.counter, kat.key0, kat.key1);
    for (int i = 0; i < 4; ++i)
      EXPECT_EQ(out.x[i], kat.expected.x[i]) << "word " << i;
  }
}

TEST(Philox, DropoutKeepsAboutOneMinusPAndScales) {
  const int64_t n = 200000;
  std::vector<float> x(n, 1.f), y(n);
  dropout<float>(n, x.data(), 0.25f, 42, y.data());
  int64_t kept = 0;
  for (float v : y) {
    if (v != 0.f) {
      ++kept;
      EXPECT_FLOAT_EQ(v, 1.f / 0.75f);
    }
  }
  // 4 sigma of a binomial(200000, 0.75).
  EXPECT_NEAR(static_cast<double>(kept) / n, 0.75, 4 * std::sqrt(0.1875 / n));
  std::vector<float> again(n), other(n);
  dropout<float>(n, x.data(), 0.25f, 42, again.data());
  dropout<float>(n, x.data(), 0.25f, 43, other.data());
  EXPECT_EQ(y, again) << "the mask is a function of (seed, index)";
  EXPECT_NE(y, other) << "another seed gives another mask";
}

TEST(BF16, RoundsToNearestEven) {
  EXPECT_EQ(roundToBF16(1.0f), 1.0f);
  EXPECT_EQ(roundToBF16(1.0f + 1.0f / 256), 1.0f); // tie -> even
  EXPECT_EQ(roundToBF16(1.0f + 3.0f / 256), 1.0f + 4.0f / 256); // tie -> even
  EXPECT_EQ(roundToBF16(1.0f + 1.5f / 256), 1.0f + 2.0f / 256);
  EXPECT_EQ(toBF16Bits(-2.0f), 0xc000);
  EXPECT_TRUE(std::isnan(roundToBF16(NAN)));
}

TEST(AdamW, MatchesAHandComputedTorchStep) {
  // torch.optim.AdamW([p], lr=0.1, betas=(0.9, 0.999), eps=1e-8,
  // weight_decay=0.01) on p = 1 with gradients 0.5 then -0.25:
  //   step 1: p = 1·(1 - 0.001) - (0.1/0.1)·0.05/(sqrt(2.5e-4/1e-3) + 1e-8)
  //          = 0.899000002
  //   step 2: p = 0.8714672987058463 (m = 0.02, v = 3.1225e-4)
  AdamWConfig config{0.1, 0.9, 0.999, 1e-8, 0.01};
  double p = 1, m = 0, v = 0, g = 0.5;
  adamW<double>(1, &p, &g, &m, &v, config, 1);
  EXPECT_NEAR(p, 0.899000002, 1e-12);
  g = -0.25;
  adamW<double>(1, &p, &g, &m, &v, config, 2);
  EXPECT_NEAR(p, 0.8714672987058463, 1e-12);
  EXPECT_NEAR(m, 0.02, 1e-15);
  EXPECT_NEAR(v, 3.1225e-4, 1e-15);
  // gradScale multiplies the gradient (clipping).
  double p2 = 1, m2 = 0, v2 = 0, g2 = 1.0;
  adamW<double>(1, &p2, &g2, &m2, &v2, config, 1, 0.5);
  EXPECT_NEAR(m2, 0.05, 1e-15);
}

TEST(GlobalNorm, SumsSquaresOverTensors) {
  std::vector<float> a{3, 4}, b{12};
  EXPECT_DOUBLE_EQ(sumOfSquares<float>({a.data(), b.data()}, {2, 1}), 169.0);
}

//===----------------------------------------------------------------------===//
// Finite-difference checks
//===----------------------------------------------------------------------===//

std::vector<double> randomDoubles(size_t n, uint32_t seed, double lo = -1,
                                  double hi = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> out(n);
  for (double &x : out)
    x = dist(rng);
  return out;
}

/// Checks `analytic` = d(Σ w·f(input))/d(input) by central differences.
void checkGradient(const std::string &what, std::vector<double> &input,
                   const std::function<double()> &loss,
                   const std::vector<double> &analytic, double tol = 1e-6) {
  ASSERT_EQ(input.size(), analytic.size()) << what;
  const double h = 1e-5;
  double worst = 0;
  for (size_t i = 0; i < input.size(); ++i) {
    double saved = input[i];
    input[i] = saved + h;
    double up = loss();
    input[i] = saved - h;
    double down = loss();
    input[i] = saved;
    double numeric = (up - down) / (2 * h);
    double err = std::fabs(numeric - analytic[i]) /
                 std::max(1.0, std::fabs(numeric));
    worst = std::max(worst, err);
    if (!(err <= tol)) {
      ADD_FAILURE() << what << ": first mismatch at [" << i << "]: analytic "
                    << analytic[i] << ", numeric " << numeric;
      return;
    }
  }
  std::cout << "  " << what << ": max rel error " << worst << "\n";
}

double dot(const std::vector<double> &a, const std::vector<double> &b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i)
    s += a[i] * b[i];
  return s;
}

TEST(FiniteDifferences, LoraLinear) {
  for (bool transposeW : {false, true}) {
    const int64_t m = 3, k = 5, n = 4, r = 2;
    auto x = randomDoubles(m * k, 1), w = randomDoubles(k * n, 2),
         a = randomDoubles(r * k, 3), b = randomDoubles(n * r, 4),
         wy = randomDoubles(m * n, 5);
    const double scale = 1.5;
    auto loss = [&] {
      std::vector<double> y(m * n);
      loraLinearForward<double>(m, k, n, r, transposeW, scale, x.data(),
                                w.data(), a.data(), b.data(), y.data());
      return dot(y, wy);
    };
    std::vector<double> dx(m * k), dA(r * k), dB(n * r);
    loraLinearBackward<double>(m, k, n, r, transposeW, scale, x.data(),
                               w.data(), a.data(), b.data(), wy.data(),
                               dx.data(), dA.data(), dB.data());
    checkGradient("lora dx", x, loss, dx);
    checkGradient("lora dA", a, loss, dA);
    checkGradient("lora dB", b, loss, dB);
  }
}

TEST(FiniteDifferences, LayerNormAndRmsNorm) {
  const int64_t rows = 3, cols = 7;
  auto x = randomDoubles(rows * cols, 1, -2, 2), gamma = randomDoubles(cols, 2),
       beta = randomDoubles(cols, 3), wy = randomDoubles(rows * cols, 4);
  std::vector<double> y(rows * cols), mean(rows), rstd(rows);
  auto lnLoss = [&] {
    layerNormForward<double>(rows, cols, x.data(), gamma.data(), beta.data(),
                             1e-5, y.data(), mean.data(), rstd.data());
    return dot(y, wy);
  };
  lnLoss();
  std::vector<double> dx(rows * cols), dg(cols), db(cols);
  layerNormBackward<double>(rows, cols, wy.data(), x.data(), gamma.data(),
                            mean.data(), rstd.data(), dx.data(), dg.data(),
                            db.data());
  checkGradient("layerNorm dx", x, lnLoss, dx);
  checkGradient("layerNorm dgamma", gamma, lnLoss, dg);
  checkGradient("layerNorm dbeta", beta, lnLoss, db);

  auto rmsLoss = [&] {
    rmsNormForward<double>(rows, cols, x.data(), gamma.data(), 1e-6, y.data(),
                           rstd.data());
    return dot(y, wy);
  };
  rmsLoss();
  rmsNormBackward<double>(rows, cols, wy.data(), x.data(), gamma.data(),
                          rstd.data(), dx.data(), dg.data());
  checkGradient("rmsNorm dx", x, rmsLoss, dx);
  checkGradient("rmsNorm dgamma", gamma, rmsLoss, dg);
}

TEST(FiniteDifferences, SoftmaxGeluSiluGate) {
  const int64_t rows = 2, cols = 6, n = rows * cols;
  auto x = randomDoubles(n, 1, -3, 3), up = randomDoubles(n, 2),
       wy = randomDoubles(n, 3);
  std::vector<double> y(n), dx(n), dup(n);
  auto smLoss = [&] {
    softmaxForward<double>(rows, cols, x.data(), 0.7, y.data());
    return dot(y, wy);
  };
  smLoss();
  softmaxBackward<double>(rows, cols, y.data(), wy.data(), 0.7, dx.data());
  checkGradient("softmax dx", x, smLoss, dx);
  for (bool tanh : {false, true}) {
    auto geluLoss = [&] {
      geluForward<double>(n, x.data(), tanh, y.data());
      return dot(y, wy);
    };
    geluBackward<double>(n, x.data(), wy.data(), tanh, dx.data());
    checkGradient(tanh ? "gelu(tanh) dx" : "gelu dx", x, geluLoss, dx);
  }
  auto siluLoss = [&] {
    siluGateForward<double>(n, x.data(), up.data(), y.data());
    return dot(y, wy);
  };
  siluGateBackward<double>(n, x.data(), up.data(), wy.data(), dx.data(),
                           dup.data());
  checkGradient("siluGate dgate", x, siluLoss, dx);
  checkGradient("siluGate dup", up, siluLoss, dup);
}

TEST(FiniteDifferences, RotaryDropoutEmbedding) {
  const int64_t batch = 2, seq = 3, heads = 2, headDim = 6, rotaryDim = 4;
  const int64_t n = batch * seq * heads * headDim, half = rotaryDim / 2;
  auto x = randomDoubles(n, 1), wy = randomDoubles(n, 2);
  auto cos = randomDoubles(5 * half, 3), sin = randomDoubles(5 * half, 4);
  std::vector<int32_t> positions{4, 0, 2, 1, 3, 3};
  std::vector<double> y(n), dx(n);
  auto rotLoss = [&] {
    rotary<double>(batch, seq, heads, headDim, rotaryDim, x.data(), cos.data(),
                   sin.data(), positions.data(), false, y.data());
    return dot(y, wy);
  };
  rotary<double>(batch, seq, heads, headDim, rotaryDim, wy.data(), cos.data(),
                 sin.data(), positions.data(), true, dx.data());
  checkGradient("rotary dx (inverse rotation)", x, rotLoss, dx);

  auto dropLoss = [&] {
    dropout<double>(n, x.data(), 0.3f, 9, y.data());
    return dot(y, wy);
  };
  dropout<double>(n, wy.data(), 0.3f, 9, dx.data());
  checkGradient("dropout dx (same mask)", x, dropLoss, dx);

  const int64_t vocab = 4, dim = 3, tokens = 5;
  auto table = randomDoubles(vocab * dim, 5), wo = randomDoubles(tokens * dim, 6);
  std::vector<int64_t> ids{1, 3, 1, 0, 1};
  std::vector<double> out(tokens * dim), dtable(vocab * dim, 0.0);
  auto embLoss = [&] {
    embeddingForward<double>(tokens, dim, table.data(), ids.data(), out.data());
    return dot(out, wo);
  };
  embeddingBackward<double>(tokens, dim, wo.data(), ids.data(), dtable.data());
  checkGradient("embedding dtable", table, embLoss, dtable);
}

TEST(FiniteDifferences, CrossEntropy) {
  const int64_t rows = 3, vocab = 7;
  auto logits = randomDoubles(rows * vocab, 1, -3, 3);
  std::vector<int64_t> labels{2, -100, 6};
  std::vector<double> losses(rows), grad(rows * vocab);
  auto loss = [&] {
    crossEntropy<double>(rows, vocab, logits.data(), labels.data(), -100, 1.0,
                         losses.data(), nullptr);
    return 0.5 * (losses[0] + losses[1] + losses[2]);
  };
  crossEntropy<double>(rows, vocab, logits.data(), labels.data(), -100, 0.5,
                       losses.data(), grad.data());
  EXPECT_EQ(losses[1], 0.0);
  checkGradient("crossEntropy dlogits", logits, loss, grad);
}

TEST(FiniteDifferences, Attention) {
  struct Case {
    int64_t seqQ, seqK, headsQ, headsKV;
    bool causal, padding, prefix;
  };
  for (Case c : {Case{4, 4, 2, 2, false, false, false},
                 Case{5, 5, 4, 2, true, false, false},
                 Case{3, 6, 2, 1, true, true, true},
                 Case{6, 4, 2, 2, true, true, false}}) {
    const int64_t batch = 2, headDim = 3;
    size_t nq = batch * c.seqQ * c.headsQ * headDim;
    size_t nk = batch * c.seqK * c.headsKV * headDim;
    auto q = randomDoubles(nq, 1), k = randomDoubles(nk, 2),
         v = randomDoubles(nk, 3), wo = randomDoubles(nq, 4);
    std::vector<int32_t> kvLengths{static_cast<int32_t>(c.seqK - 1),
                                   static_cast<int32_t>(c.seqK)};
    std::vector<int32_t> prefixLengths{2, 0};
    AttentionMask mask;
    mask.causal = c.causal;
    mask.kvLengths = c.padding ? kvLengths.data() : nullptr;
    mask.prefixLengths = c.prefix ? prefixLengths.data() : nullptr;
    std::vector<double> o(nq), lse(batch * c.headsQ * c.seqQ);
    auto loss = [&] {
      attentionForward<double>(batch, c.seqQ, c.seqK, c.headsQ, c.headsKV,
                               headDim, 0.8, mask, q.data(), k.data(), v.data(),
                               o.data(), lse.data());
      return dot(o, wo);
    };
    std::vector<double> dq(nq), dk(nk), dv(nk);
    attentionBackward<double>(batch, c.seqQ, c.seqK, c.headsQ, c.headsKV,
                              headDim, 0.8, mask, q.data(), k.data(), v.data(),
                              wo.data(), dq.data(), dk.data(), dv.data());
    checkGradient("attention dq", q, loss, dq);
    checkGradient("attention dk", k, loss, dk);
    checkGradient("attention dv", v, loss, dv);
  }
}

TEST(Attention, ForwardSpecialCases) {
  // q = 0: uniform weights over the visible keys, so o is their mean.
  const int64_t seq = 4, headDim = 2;
  std::vector<float> q(seq * headDim, 0.f), k(seq * headDim, 1.f);
  std::vector<float> v{1, 10, 2, 20, 3, 30, 4, 40};
  std::vector<float> o(seq * headDim), lse(seq);
  AttentionMask mask;
  mask.causal = true;
  attentionForward<float>(1, seq, seq, 1, 1, headDim, 1.f, mask, q.data(),
                          k.data(), v.data(), o.data(), lse.data());
  EXPECT_FLOAT_EQ(o[0], 1.f);
  EXPECT_FLOAT_EQ(o[2 * headDim + 0], 2.f);
  EXPECT_FLOAT_EQ(o[3 * headDim + 1], 25.f);
  EXPECT_FLOAT_EQ(lse[3], std::log(4.f));
  // A query that sees no key gets o = 0 and lse = -inf.
  int32_t none = 0;
  mask.kvLengths = &none;
  attentionForward<float>(1, seq, seq, 1, 1, headDim, 1.f, mask, q.data(),
                          k.data(), v.data(), o.data(), lse.data());
  EXPECT_EQ(o[0], 0.f);
  EXPECT_TRUE(std::isinf(lse[0]) && lse[0] < 0);
}

} // namespace
} // namespace vlora::kernels::reference
