//===- TrainPartsTest.cpp - vlora-train's parts without a bundle ----------===//
//
// LR schedules against values worked out by hand from transformers'
// formulas, the step plan, the epoch permutation, dataset validation,
// checkpoint round trip and corruption, the PNG plot, option parsing and
// the manifest's "programs"/"training" sections.
//
//===----------------------------------------------------------------------===//

#include "TestBundle.h"

#include "runtime/Manifest.h"
#include "runtime/Safetensors.h"
#include "runtime/train/Checkpoint.h"
#include "runtime/train/Dataset.h"
#include "runtime/train/LRSchedule.h"
#include "runtime/train/LossPlot.h"
#include "runtime/train/Metrics.h"
#include "runtime/train/TrainOptions.h"
#include "runtime/train/Trainer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

using namespace vlora;
using namespace vlora::train;
using kernels::DType;
using runtime::SafetensorsEntry;

namespace {

std::string readAll(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}
void writeAll(const std::string &path, const std::string &bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}
bool contains(const std::string &text, const std::string &part) {
  return text.find(part) != std::string::npos;
}

//===--- LR schedules ------------------------------------------------------===//

// Tolerance 1e-12: the values below are exact or from cos(pi/4).
TEST(TrainLRSchedule, LinearWithWarmup) {
  // W = 2, T = 10: k/W while warming up, then (T - k) / (T - W).
  auto f = [](int64_t k) { return lrMultiplier(LRScheduleKind::Linear, k, 2, 10); };
  EXPECT_DOUBLE_EQ(f(0), 0.0);
  EXPECT_DOUBLE_EQ(f(1), 0.5);
  EXPECT_DOUBLE_EQ(f(2), 1.0);
  EXPECT_DOUBLE_EQ(f(5), 0.625);
  EXPECT_DOUBLE_EQ(f(9), 0.125);
  EXPECT_DOUBLE_EQ(f(10), 0.0);
  EXPECT_DOUBLE_EQ(f(12), 0.0); // clamped at 0
  // No warmup, T = 4: 1, 0.75, 0.5, 0.25.
  EXPECT_DOUBLE_EQ(lrMultiplier(LRScheduleKind::Linear, 0, 0, 4), 1.0);
  EXPECT_DOUBLE_EQ(lrMultiplier(LRScheduleKind::Linear, 1, 0, 4), 0.75);
  EXPECT_DOUBLE_EQ(lrMultiplier(LRScheduleKind::Linear, 3, 0, 4), 0.25);
}

TEST(TrainLRSchedule, CosineWithWarmup) {
  // W = 2, T = 10: p = (k - 2) / 8, 0.5 (1 + cos(pi p)).
  auto f = [](int64_t k) { return lrMultiplier(LRScheduleKind::Cosine, k, 2, 10); };
  EXPECT_DOUBLE_EQ(f(1), 0.5);
  EXPECT_NEAR(f(2), 1.0, 1e-12);
  EXPECT_NEAR(f(4), 0.8535533905932737, 1e-12); // (1 + sqrt(2)/2) / 2
  EXPECT_NEAR(f(6), 0.5, 1e-12);
  EXPECT_NEAR(f(8), 0.1464466094067262, 1e-12); // (1 - sqrt(2)/2) / 2
  EXPECT_NEAR(f(10), 0.0, 1e-12);
}

TEST(TrainLRSchedule, Constant) {
  // transformers' "constant" has no warmup; "constant_with_warmup" has.
  EXPECT_DOUBLE_EQ(lrMultiplier(LRScheduleKind::Constant, 0, 5, 10), 1.0);
  EXPECT_DOUBLE_EQ(lrMultiplier(LRScheduleKind::ConstantWithWarmup, 1, 4, 10), 0.25);
  EXPECT_DOUBLE_EQ(lrMultiplier(LRScheduleKind::ConstantWithWarmup, 4, 4, 10), 1.0);
  EXPECT_DOUBLE_EQ(lrMultiplier(LRScheduleKind::ConstantWithWarmup, 9, 4, 10), 1.0);
  EXPECT_EQ(parseLRScheduleKind("cosine"), LRScheduleKind::Cosine);
  EXPECT_FALSE(parseLRScheduleKind("polynomial"));
}

//===--- step plan and permutation -----------------------------------------===//

TEST(TrainStepPlan, EpochsAndAccumulation) {
  // 10 examples, batch 2: 5 micro-batches; G = 2: steps of 2, 2, 1.
  auto p = planSteps(10, 2, 2, -1, 3.0);
  ASSERT_TRUE(p.ok()) << p.message();
  EXPECT_EQ(p->batchesPerEpoch, 5);
  EXPECT_EQ(p->stepsPerEpoch, 3);
  EXPECT_EQ(p->totalSteps, 9);
  // Drop-last: 11 examples are still 5 batches. 0.5 epochs: ceil(1.5).
  EXPECT_EQ(planSteps(11, 2, 2, -1, 0.5)->totalSteps, 2);
  EXPECT_EQ(planSteps(10, 2, 1, 7, 3.0)->totalSteps, 7);
  auto small = planSteps(1, 2, 1, -1, 1.0);
  ASSERT_FALSE(small.ok());
  EXPECT_TRUE(contains(small.message(), "1 examples, fewer than one batch of 2"));
}

TEST(TrainPermutation, DeterministicPermutation) {
  std::vector<int64_t> a = epochPermutation(100, 42, 0);
  EXPECT_EQ(a, epochPermutation(100, 42, 0));
  EXPECT_NE(a, epochPermutation(100, 42, 1));
  EXPECT_NE(a, epochPermutation(100, 43, 0));
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 100; ++i)
    ASSERT_EQ(sorted[i], i);
  EXPECT_EQ(epochPermutation(1, 7, 3), std::vector<int64_t>{0});
}

//===--- dataset ------------------------------------------------------------===//

class TrainDataset : public ::testing::Test {
protected:
  void SetUp() override {
    dir = test::makeTempDir("dataset");
    path = dir + "/train.safetensors";
    spec.tensors = {{"input_ids", DType::I64, {2, 4}},
                    {"pixel_values", DType::F32, {2, 3}},
                    {"labels", DType::I64, {2, 4}}};
    spec.batchSize = 2;
    spec.vocabSize = 10;
    ids = {1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2};
    labels = {-100, 2, 3, -100, -100, -100, 7, 8, 9, 0, 1, 2};
    pixels.assign(9, 0.5f);
    pixels[3] = 1.5f;
  }
  void write(const std::vector<SafetensorsEntry> &entries) {
    ASSERT_TRUE(runtime::writeSafetensors(path, entries).ok());
  }
  std::vector<SafetensorsEntry> good() {
    return {{"input_ids", DType::I64, {3, 4}, ids.data()},
            {"pixel_values", DType::F32, {3, 3}, pixels.data()},
            {"labels", DType::I64, {3, 4}, labels.data()}};
  }
  /// Opening fails with a message that names the file and contains `want`.
  void expectError(const std::string &want) {
    auto d = Dataset::open(path, spec);
    ASSERT_FALSE(d.ok());
    EXPECT_TRUE(contains(d.message(), path)) << d.message();
    EXPECT_TRUE(contains(d.message(), want)) << d.message();
  }
  std::string dir, path;
  DatasetSpec spec;
  std::vector<int64_t> ids, labels;
  std::vector<float> pixels;
};

TEST_F(TrainDataset, ValidAndGather) {
  std::vector<SafetensorsEntry> entries = good();
  std::vector<int32_t> extra = {1, 2, 3};
  entries.push_back({"image_sizes", DType::I32, {3}, extra.data()});
  write(entries);
  std::vector<std::string> warnings;
  auto d = Dataset::open(path, spec, &warnings);
  ASSERT_TRUE(d.ok()) << d.message();
  EXPECT_EQ(d->size(), 3);
  // Labels shifted by one: positions 1..3 count.
  EXPECT_EQ(d->validLabels(0), 2);
  EXPECT_EQ(d->validLabels(1), 2);
  EXPECT_EQ(d->validLabels(2), 3);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_TRUE(contains(warnings[0], "'image_sizes' is not an input of the bundle"));
  std::vector<uint8_t> rows = d->gather(1, {2, 1});
  ASSERT_EQ(rows.size(), 6 * sizeof(float));
  std::vector<float> got(6);
  std::memcpy(got.data(), rows.data(), rows.size());
  EXPECT_EQ(got, (std::vector<float>{0.5f, 0.5f, 0.5f, 1.5f, 0.5f, 0.5f}));
}

TEST_F(TrainDataset, SeveralRowsPerExample) {
  // Compiled pixel_values [B*2, 3] (Qwen2-VL's flattened patches): k = 2.
  spec.tensors[1].shape = {4, 3};
  std::vector<float> rows(18);
  for (size_t i = 0; i < rows.size(); ++i)
    rows[i] = float(i);
  write({{"input_ids", DType::I64, {3, 4}, ids.data()},
         {"pixel_values", DType::F32, {6, 3}, rows.data()},
         {"labels", DType::I64, {3, 4}, labels.data()}});
  auto d = Dataset::open(path, spec);
  ASSERT_TRUE(d.ok()) << d.message();
  EXPECT_EQ(d->size(), 3);
  std::vector<uint8_t> bytes = d->gather(1, {2, 0});
  std::vector<float> got(12);
  ASSERT_EQ(bytes.size(), 48u);
  std::memcpy(got.data(), bytes.data(), 48);
  EXPECT_EQ(got, (std::vector<float>{12, 13, 14, 15, 16, 17, 0, 1, 2, 3, 4, 5}));
  write({{"input_ids", DType::I64, {3, 4}, ids.data()},
         {"pixel_values", DType::F32, {5, 3}, rows.data()},
         {"labels", DType::I64, {3, 4}, labels.data()}});
  expectError("tensor 'pixel_values' is F32[5, 3], the bundle takes F32[N*2, 3]");
}

TEST_F(TrainDataset, MissingTensor) {
  write({{"input_ids", DType::I64, {3, 4}, ids.data()},
         {"labels", DType::I64, {3, 4}, labels.data()}});
  expectError("missing tensor 'pixel_values' (F32[N, 3])");
}

TEST_F(TrainDataset, WrongDType) {
  std::vector<double> p(9, 0.0);
  write({{"input_ids", DType::I64, {3, 4}, ids.data()},
         {"pixel_values", DType::F64, {3, 3}, p.data()},
         {"labels", DType::I64, {3, 4}, labels.data()}});
  expectError("tensor 'pixel_values' is F64[3, 3], the bundle takes F32[N, 3]");
}

TEST_F(TrainDataset, WrongExampleShape) {
  write({{"input_ids", DType::I64, {4, 3}, ids.data()},
         {"pixel_values", DType::F32, {3, 3}, pixels.data()},
         {"labels", DType::I64, {3, 4}, labels.data()}});
  expectError("tensor 'input_ids' is I64[4, 3], the bundle takes I64[N, 4]");
}

TEST_F(TrainDataset, DifferentExampleCounts) {
  write({{"input_ids", DType::I64, {3, 4}, ids.data()},
         {"pixel_values", DType::F32, {2, 3}, pixels.data()},
         {"labels", DType::I64, {3, 4}, labels.data()}});
  expectError("tensor 'pixel_values' has 2 examples, 'input_ids' has 3");
}

TEST_F(TrainDataset, Empty) {
  write({{"input_ids", DType::I64, {0, 4}, ids.data()},
         {"pixel_values", DType::F32, {0, 3}, pixels.data()},
         {"labels", DType::I64, {0, 4}, labels.data()}});
  expectError("the dataset is empty (0 examples)");
}

TEST_F(TrainDataset, TokenIdOutOfRange) {
  ids[6] = 10;
  write(good());
  expectError("tensor 'input_ids' example 1 position 2: token id 10 is outside [0, 10)");
  ids[6] = -1;
  write(good());
  expectError("token id -1 is outside [0, 10)");
}

TEST_F(TrainDataset, LabelOutOfRange) {
  labels[9] = 11;
  write(good());
  expectError("tensor 'labels' example 2 position 1: label 11 is outside [0, 10) and is "
              "not ignore_index (-100)");
  labels[9] = -5;
  write(good());
  expectError("label -5 is outside");
}

TEST_F(TrainDataset, AllLabelsIgnored) {
  // Position 0 is never predicted (the shift), so a label there is no help.
  labels.assign(12, -100);
  labels[0] = labels[4] = labels[8] = 3;
  write(good());
  expectError("is ignore_index (-100): nothing to train on");
}

//===--- checkpoints --------------------------------------------------------===//

class TrainCheckpoint : public ::testing::Test {
protected:
  void SetUp() override {
    dir = test::makeTempDir("ckpt");
    state.globalStep = 6;
    state.epoch = 1;
    state.batchInEpoch = 2;
    state.microStep = 12;
    state.seed = 1234567890123ull;
    state.options = {{"learning_rate", "0.0001"}, {"lr_scheduler_type", "cosine"}};
    state.trainStepPlanHash = "fnv1a64:0123456789abcdef";
    for (int i = 0; i < 2; ++i) {
      AdapterState a;
      a.name = "base_model.model.layer" + std::to_string(i) + ".lora_A.weight";
      a.shape = {2, 3};
      for (int k = 0; k < 6; ++k) {
        a.value.push_back(0.1f * float(k + i));
        a.expAvg.push_back(-0.01f * float(k));
        a.expAvgSq.push_back(1e-6f * float(k + 1));
      }
      state.adapters.push_back(a);
    }
  }
  std::string written() {
    auto path = writeCheckpoint(dir, state, "{\"peft_type\": \"LORA\"}\n");
    EXPECT_TRUE(path.ok()) << path.message();
    return path.ok() ? *path : "";
  }
  void expectCorrupt(const std::string &file, const std::string &want) {
    auto c = readCheckpoint(dir + "/checkpoint-6");
    ASSERT_FALSE(c.ok()) << "accepted a corrupt " << file;
    EXPECT_TRUE(contains(c.message(), dir + "/checkpoint-6/" + file)) << c.message();
    EXPECT_TRUE(contains(c.message(), want)) << c.message();
  }
  std::string dir;
  CheckpointState state;
};

TEST_F(TrainCheckpoint, RoundTrip) {
  std::string path = written();
  EXPECT_EQ(path, dir + "/checkpoint-6");
  auto c = readCheckpoint(path);
  ASSERT_TRUE(c.ok()) << c.message();
  EXPECT_EQ(c->globalStep, 6);
  EXPECT_EQ(c->epoch, 1);
  EXPECT_EQ(c->batchInEpoch, 2);
  EXPECT_EQ(c->microStep, 12);
  EXPECT_EQ(c->seed, 1234567890123ull);
  EXPECT_EQ(c->options, state.options);
  EXPECT_EQ(c->trainStepPlanHash, state.trainStepPlanHash);
  ASSERT_EQ(c->adapters.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(c->adapters[i].name, state.adapters[i].name);
    EXPECT_EQ(c->adapters[i].shape, state.adapters[i].shape);
    EXPECT_EQ(c->adapters[i].value, state.adapters[i].value);
    EXPECT_EQ(c->adapters[i].expAvg, state.adapters[i].expAvg);
    EXPECT_EQ(c->adapters[i].expAvgSq, state.adapters[i].expAvgSq);
  }
  // PEFT's files: keys as given, F32, {"format": "pt"}.
  auto adapters = runtime::SafetensorsFile::open(path + "/adapter_model.safetensors");
  ASSERT_TRUE(adapters.ok());
  EXPECT_EQ(adapters->metadata().at("format"), "pt");
  EXPECT_EQ(readAll(path + "/adapter_config.json"), "{\"peft_type\": \"LORA\"}\n");
  // Saving the same step again replaces the folder whole.
  state.adapters[0].value[0] = 42.0f;
  written();
  EXPECT_EQ(readCheckpoint(path)->adapters[0].value[0], 42.0f);
  EXPECT_EQ(listCheckpoints(dir).size(), 1u);
}

TEST_F(TrainCheckpoint, TruncatedAdapters) {
  std::string path = written();
  std::string bytes = readAll(path + "/adapter_model.safetensors");
  writeAll(path + "/adapter_model.safetensors", bytes.substr(0, bytes.size() - 5));
  expectCorrupt("adapter_model.safetensors", "corrupt or truncated checkpoint file");
}

TEST_F(TrainCheckpoint, GarbledOptimizerState) {
  std::string path = written();
  std::string bytes = readAll(path + "/optimizer.safetensors");
  bytes[bytes.size() - 3] ^= 0x40;
  writeAll(path + "/optimizer.safetensors", bytes);
  expectCorrupt("optimizer.safetensors", "corrupt or truncated checkpoint file");
}

TEST_F(TrainCheckpoint, GarbledState) {
  std::string path = written();
  std::string text = readAll(path + "/trainer_state.json");
  size_t at = text.find("\"micro_step\": 12");
  ASSERT_NE(at, std::string::npos) << text;
  text.replace(at, 16, "\"micro_step\": 13");
  writeAll(path + "/trainer_state.json", text);
  expectCorrupt("trainer_state.json", "checksum mismatch");
  writeAll(path + "/trainer_state.json", text.substr(0, text.size() / 2));
  expectCorrupt("trainer_state.json", "invalid JSON");
}

TEST_F(TrainCheckpoint, MissingFile) {
  std::string path = written();
  ASSERT_EQ(std::remove((path + "/adapter_config.json").c_str()), 0);
  expectCorrupt("adapter_config.json", "cannot open");
}

TEST_F(TrainCheckpoint, ListPruneAndStaleTemporaries) {
  for (int64_t step : {3, 6, 9, 12}) {
    state.globalStep = step;
    written();
  }
  ::mkdir((dir + "/.tmp-checkpoint-15-999").c_str(), 0755);
  ::mkdir((dir + "/checkpoint-x").c_str(), 0755);
  auto all = listCheckpoints(dir);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all.front().first, 3);
  EXPECT_EQ(all.back().first, 12);
  ASSERT_TRUE(pruneCheckpoints(dir, 2, dir + "/checkpoint-12").ok());
  all = listCheckpoints(dir);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].first, 9);
  removeStaleTemporaries(dir);
  struct stat st;
  EXPECT_NE(::stat((dir + "/.tmp-checkpoint-15-999").c_str(), &st), 0);
}

TEST(TrainFiles, AtomicWriteReplaces) {
  std::string dir = test::makeTempDir("atomic");
  ASSERT_TRUE(writeFileAtomic(dir + "/f", "one").ok());
  ASSERT_TRUE(writeFileAtomic(dir + "/f", "two").ok());
  EXPECT_EQ(readAll(dir + "/f"), "two");
  auto bad = writeFileAtomic(dir + "/missing/f", "x");
  EXPECT_FALSE(bad.ok());
  EXPECT_TRUE(contains(bad.message(), dir + "/missing/f")) << bad.message();
}

//===--- metrics and the plot -------------------------------------------------===//

TEST(TrainMetrics, LineRoundTrip) {
  std::string dir = test::makeTempDir("metrics");
  MetricsRecord r;
  r.step = 10;
  r.epoch = 0.5;
  r.loss = 2.25;
  r.gradNorm = 0.75;
  r.learningRate = 4.5e-5;
  r.tokensPerSecond = 1000;
  r.elapsed = 3.5;
  MetricsRecord none = r;
  none.step = 20;
  none.loss.reset();
  std::string text = metricsLine(r) + metricsLine(none);
  EXPECT_EQ(metricsLine(r).rfind("{\"step\":10,\"epoch\":0.5,\"loss\":2.25,", 0), 0u)
      << metricsLine(r);
  writeAll(dir + "/m.jsonl", text + "{\"step\":3");
  auto back = readMetrics(dir + "/m.jsonl"); // a cut last line is dropped
  ASSERT_TRUE(back.ok()) << back.message();
  ASSERT_EQ(back->size(), 2u);
  EXPECT_EQ((*back)[0].loss, 2.25);
  EXPECT_FALSE((*back)[1].loss);
  writeAll(dir + "/bad.jsonl", "{\"step\":3}\n" + text);
  auto bad = readMetrics(dir + "/bad.jsonl");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(contains(bad.message(), dir + "/bad.jsonl:1")) << bad.message();
}

uint32_t bigEndian(const std::string &s, size_t at) {
  return uint32_t(uint8_t(s[at])) << 24 | uint32_t(uint8_t(s[at + 1])) << 16 |
         uint32_t(uint8_t(s[at + 2])) << 8 | uint32_t(uint8_t(s[at + 3]));
}

TEST(TrainLossPlot, ValidPng) {
  std::string dir = test::makeTempDir("plot");
  std::vector<std::pair<double, double>> points;
  for (int i = 1; i <= 50; ++i)
    points.push_back({double(i), 3.0 * std::exp(-i / 20.0) + (i == 7 ? NAN : 0.0)});
  for (const auto &pts : {points, std::vector<std::pair<double, double>>{},
                          std::vector<std::pair<double, double>>{{5, 1.0}}}) {
    ASSERT_TRUE(writeLossPlot(dir + "/loss.png", pts).ok());
    std::string png = readAll(dir + "/loss.png");
    ASSERT_GT(png.size(), 33u);
    EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
    EXPECT_EQ(bigEndian(png, 8), 13u); // IHDR length
    EXPECT_EQ(png.substr(12, 4), "IHDR");
    EXPECT_EQ(bigEndian(png, 16), 800u); // width
    EXPECT_EQ(bigEndian(png, 20), 480u); // height
    EXPECT_EQ(uint8_t(png[24]), 8);      // bit depth
    EXPECT_EQ(uint8_t(png[25]), 2);      // RGB
    EXPECT_EQ(png.substr(png.size() - 8, 4), "IEND");
  }
}

TEST(TrainLossPlot, NiceTicks) {
  EXPECT_EQ(niceTicks(0, 10, 5), (std::vector<double>{0, 2, 4, 6, 8, 10}));
  std::vector<double> t = niceTicks(1.13, 2.87, 6);
  ASSERT_FALSE(t.empty());
  // 1.74 / 6 = 0.29 rounds up to a spacing of 0.5.
  EXPECT_NEAR(t.front(), 1.5, 1e-12);
  EXPECT_NEAR(t[1] - t[0], 0.5, 1e-12);
  EXPECT_NEAR(niceTicks(0, 0.9, 5)[1], 0.2, 1e-12);
}

//===--- options ------------------------------------------------------------===//

runtime::Expected<TrainOptions> parse(std::vector<std::string> extra) {
  std::vector<std::string> args = {"B/", "--data", "d.safetensors", "--output-dir", "out"};
  args.insert(args.end(), extra.begin(), extra.end());
  return parseTrainOptions(args);
}

TEST(TrainOptionsTest, DefaultsAndValues) {
  auto o = parse({});
  ASSERT_TRUE(o.ok()) << o.message();
  EXPECT_EQ(o->learningRate, 5e-5);
  EXPECT_EQ(o->gradientAccumulationSteps, 1);
  EXPECT_EQ(o->maxSteps, -1);
  EXPECT_EQ(o->numTrainEpochs, 3.0);
  EXPECT_EQ(o->scheduler, LRScheduleKind::Linear);
  EXPECT_EQ(o->maxGradNorm, 1.0);
  EXPECT_EQ(o->seed, 42u);
  EXPECT_EQ(o->loggingSteps, 10);
  EXPECT_EQ(o->saveSteps, 500);
  o = parse({"--learning-rate=1e-3", "--lr-scheduler-type", "cosine", "--max-steps", "6",
             "--max-grad-norm", "0", "--resume-from-checkpoint", "latest"});
  ASSERT_TRUE(o.ok()) << o.message();
  EXPECT_EQ(o->learningRate, 1e-3);
  EXPECT_EQ(o->scheduler, LRScheduleKind::Cosine);
  EXPECT_EQ(o->maxSteps, 6);
  EXPECT_EQ(o->maxGradNorm, 0.0);
  EXPECT_EQ(o->resumeFrom, "latest");
}

TEST(TrainOptionsTest, Errors) {
  struct Case {
    std::vector<std::string> args;
    std::string want;
  } cases[] = {
      {{"--learning-rate", "0"}, "--learning-rate is 0, it must be > 0"},
      {{"--learning-rate", "abc"}, "--learning-rate needs a finite number, got 'abc'"},
      {{"--learning-rate", "nan"}, "--learning-rate needs a finite number"},
      {{"--gradient-accumulation-steps", "0"}, "--gradient-accumulation-steps is 0"},
      {{"--max-steps", "0"}, "--max-steps is 0, it must be -1"},
      {{"--max-steps", "2.5"}, "--max-steps needs an integer, got '2.5'"},
      {{"--num-train-epochs", "-1"}, "--num-train-epochs is -1, it must be > 0"},
      {{"--warmup-steps", "-3"}, "--warmup-steps is -3, it must be >= 0"},
      {{"--lr-scheduler-type", "poly"}, "--lr-scheduler-type is 'poly'"},
      {{"--weight-decay", "-0.1"}, "--weight-decay is -0.1, it must be >= 0"},
      {{"--seed", "99999999999999999999"}, "--seed needs an integer"},
      {{"--logging-steps", "0"}, "--logging-steps is 0"},
      {{"--save-total-limit", "0"}, "--save-total-limit is 0"},
      {{"--per-device-train-batch-size", "0"}, "--per-device-train-batch-size is 0"},
      {{"--bogus", "1"}, "unknown option --bogus"},
      {{"--seed"}, "--seed needs a value"},
      {{"extra"}, "unexpected argument 'extra'"},
  };
  for (const Case &c : cases) {
    auto o = parse(c.args);
    ASSERT_FALSE(o.ok()) << c.want;
    EXPECT_TRUE(contains(o.message(), c.want)) << o.message();
  }
  auto noData = parseTrainOptions({"B/", "--output-dir", "o"});
  ASSERT_FALSE(noData.ok());
  EXPECT_EQ(noData.message(), "no --data file given");
}

//===--- manifest "programs" and "training" --------------------------------===//

std::string manifestWith(const std::string &extra) {
  return R"({"format_version": 1, "inputs": [], "outputs": [])" + extra + "}";
}
const char *kGoodPrograms =
    R"("programs": {"train_step": {"plan": "train_step.pb", "plan_hash": "fnv1a64:00",
        "arena_bytes": 64, "inputs": [{"name": "x", "dtype": "F32", "shape": [2]}],
        "outputs": [{"name": "loss", "dtype": "F32", "shape": []}]}})";
const char *kGoodTraining =
    R"("training": {"model_inputs": ["input_ids"], "labels": "labels", "batch_size": 2,
        "sequence_length": 8, "vocab_size": 128, "ignore_index": -100, "lora_dropout": 0.1,
        "adam_beta1": 0.9, "adam_beta2": 0.98, "adam_epsilon": 1e-6,
        "adapters": [{"name": "k.lora_A.weight", "dtype": "F32", "shape": [4, 8]}]})";

TEST(TrainManifest, ParsesProgramsAndTraining) {
  std::string dir = test::makeTempDir("manifest");
  writeAll(dir + "/manifest.json",
           manifestWith(std::string(", ") + kGoodPrograms + ", " + kGoodTraining));
  auto m = runtime::readManifest(dir + "/manifest.json");
  ASSERT_TRUE(m.ok()) << m.message();
  ASSERT_EQ(m->programs.count("train_step"), 1u);
  const runtime::ProgramRecord &r = m->programs.at("train_step");
  EXPECT_EQ(r.plan, "train_step.pb");
  EXPECT_EQ(r.arenaBytes, 64u);
  ASSERT_EQ(r.inputs.size(), 1u);
  EXPECT_EQ(r.outputs[0].shape, kernels::Shape{});
  ASSERT_TRUE(m->training);
  EXPECT_EQ(m->training->batchSize, 2);
  EXPECT_EQ(m->training->vocabSize, 128);
  EXPECT_EQ(m->training->adamBeta2, 0.98);
  EXPECT_EQ(m->training->adamEpsilon, 1e-6);
  EXPECT_EQ(m->training->loraDropout, 0.1);
  ASSERT_EQ(m->training->adapters.size(), 1u);
  EXPECT_EQ(m->training->adapters[0].shape, (kernels::Shape{4, 8}));
  // Without --train: neither section.
  writeAll(dir + "/manifest.json", manifestWith(""));
  m = runtime::readManifest(dir + "/manifest.json");
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->programs.empty());
  EXPECT_FALSE(m->training);
}

TEST(TrainManifest, Errors) {
  std::string dir = test::makeTempDir("manifest-bad");
  auto replaced = [](std::string text, const std::string &from, const std::string &to) {
    size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return text.replace(at, from.size(), to);
  };
  std::string p = kGoodPrograms, t = kGoodTraining;
  struct Case {
    std::string section, want;
  } cases[] = {
      {R"("programs": [])", "\"programs\" is not an object"},
      {replaced(p, "\"train_step.pb\"", "\"../x.pb\""),
       "\"programs\".train_step.plan must be a file name inside the bundle"},
      {replaced(p, "\"fnv1a64:00\"", "\"md5:00\""), "\"programs\".train_step.plan_hash"},
      {replaced(p, "\"arena_bytes\": 64", "\"arena_bytes\": -1"),
       "\"programs\".train_step.arena_bytes must be a non-negative integer"},
      {replaced(p, "\"inputs\"", "\"ins\""), "missing array \"programs\".train_step.inputs"},
      {replaced(p, "\"F32\", \"shape\": [2]", "\"F99\", \"shape\": [2]"),
       "\"programs\".train_step.inputs: tensor 'x' has unknown dtype \"F99\""},
      {R"("training": 3)", "\"training\" is not an object"},
      {replaced(t, "[\"input_ids\"]", "[]"), "\"training\".model_inputs must be a non-empty"},
      {replaced(t, "\"labels\": \"labels\"", "\"labels\": 1"), "\"training\".labels must be"},
      {replaced(t, "\"batch_size\": 2", "\"batch_size\": 0"),
       "\"training\".batch_size must be a positive integer"},
      {replaced(t, "\"vocab_size\": 128", "\"vocab_size\": \"128\""),
       "\"training\".vocab_size must be a positive integer"},
      {replaced(t, "\"lora_dropout\": 0.1", "\"lora_dropout\": 1.5"),
       "\"training\".lora_dropout is 1.5, outside [0"},
      {replaced(t, "\"adam_epsilon\": 1e-6", "\"adam_epsilon\": 0"),
       "\"training\".adam_epsilon is 0, outside (0"},
      {replaced(t, "\"dtype\": \"F32\", \"shape\": [4, 8]", "\"dtype\": \"BF16\", \"shape\": [4, 8]"),
       "adapter 'k.lora_A.weight' is BF16, only F32 adapters are trained"},
      {replaced(t, "{\"name\": \"k.lora_A.weight\", \"dtype\": \"F32\", \"shape\": [4, 8]}", ""),
       "\"training\".adapters is empty"},
  };
  for (const Case &c : cases) {
    writeAll(dir + "/manifest.json", manifestWith(", " + c.section));
    auto m = runtime::readManifest(dir + "/manifest.json");
    ASSERT_FALSE(m.ok()) << c.want;
    EXPECT_TRUE(contains(m.message(), dir + "/manifest.json: ")) << m.message();
    EXPECT_TRUE(contains(m.message(), c.want)) << m.message();
  }
}

} // namespace
