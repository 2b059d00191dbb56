//===- TrainLoopTest.cpp - vlora-train on a hand-made training bundle -----===//
//
// A bundle whose programs follow docs/training.md's interface but use only
// forward kernels, so the loop is tested without the compiler:
//   train_step:     y = x a, loss = mean(y^2),
//                   a.grad' = a.grad + loss_scale * x^T y / 4   (= d loss / d a)
//   optimizer_step: grad_norm = |g|, a' = a - lr g,
//                   exp_avg' = exp_avg + g, exp_avg_sq' = exp_avg_sq + g^2
//   plan.pb:        y = x a with `a` read from adapters.init.safetensors
// The test replays the loop on the host (permutation, micro-batches,
// loss_scale, LR schedule) and compares; checks resume gives bit-identical
// adapters; and checks every refused input's message.
//
//===----------------------------------------------------------------------===//

#include "TestBundle.h"

#include "runtime/FileHash.h"
#include "runtime/Runtime.h"
#include "runtime/Safetensors.h"
#include "runtime/train/Dataset.h"
#include "runtime/train/LRSchedule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/wait.h>

using namespace vlora;
using kernels::DType;
using runtime::SafetensorsEntry;

namespace {

constexpr const char *kKey = "base_model.model.proj.lora_A.weight";
constexpr int64_t kBatch = 2, kSeq = 4, kIn = 3, kOut = 4, kVocab = 16;

struct ToolResult {
  int status;
  std::string output;
};

ToolResult runCommand(const std::string &command) {
  FILE *pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe)
    return {-1, "popen failed"};
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0)
    out.append(buf, n);
  int raw = ::pclose(pipe);
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw), out};
}

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

/// Values with arena offsets handed out in order (64-byte aligned).
class PlanBuilder {
public:
  PlanBuilder() {
    plan.set_format_version(plan::kFormatVersion);
    plan.set_compiler_version("test");
  }
  uint32_t arena(std::vector<int64_t> shape, const std::string &name,
                 plan::DType dtype = plan::F32) {
    plan::Value *v = test::addValue(plan, shape, name, dtype);
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    v->set_arena_offset(next);
    next += (uint64_t(n) * 8 + 63) / 64 * 64;
    plan.set_arena_bytes(next);
    return uint32_t(plan.values_size() - 1);
  }
  uint32_t constant(float value) {
    plan::Value *v = test::addValue(plan, {}, "c");
    v->set_constant(std::string(reinterpret_cast<const char *>(&value), 4));
    return uint32_t(plan.values_size() - 1);
  }
  uint32_t input(std::vector<int64_t> shape, const std::string &name,
                 plan::DType dtype = plan::F32) {
    uint32_t v = arena(shape, name, dtype);
    plan::Binding *b = plan.add_inputs();
    b->set_name(name);
    b->set_value(v);
    return v;
  }
  void output(const std::string &name, uint32_t v) {
    plan::Binding *b = plan.add_outputs();
    b->set_name(name);
    b->set_value(v);
  }
  plan::Step *step(const std::string &kernel, std::vector<uint32_t> in,
                   std::vector<uint32_t> out) {
    return test::addStep(plan, kernel, in, out, "/" + kernel);
  }
  void reduce(const std::string &kernel, uint32_t in, uint32_t out) {
    plan::Attribute *axes = test::addAttr(step(kernel, {in}, {out}), "axes");
    axes->mutable_ints()->add_values(0);
    axes->mutable_ints()->add_values(1);
  }
  plan::Plan plan;
  uint64_t next = 0;
};

plan::Plan trainStepPlan(float gradScale) {
  PlanBuilder b;
  uint32_t x = b.input({kBatch, kIn}, "x");
  b.input({kBatch, kSeq}, "labels", plan::I64);
  uint32_t scale = b.input({}, "loss_scale");
  uint32_t a = b.input({kIn, kOut}, kKey);
  uint32_t g = b.input({kIn, kOut}, std::string(kKey) + ".grad");
  uint32_t y = b.arena({kBatch, kOut}, "y"), y2 = b.arena({kBatch, kOut}, "y2");
  uint32_t loss = b.arena({}, "loss");
  uint32_t g0 = b.arena({kIn, kOut}, "g0"), g1 = b.arena({kIn, kOut}, "g1"),
           g2 = b.arena({kIn, kOut}, "g2"), gOut = b.arena({kIn, kOut}, "gout");
  uint32_t c = b.constant(gradScale);
  b.step("matmul", {x, a}, {y});
  b.step("mul", {y, y}, {y2});
  b.reduce("reduce_mean", y2, loss);
  test::addAttr(b.step("matmul", {x, y}, {g0}), "transpose_a")->set_i(1);
  b.step("mul", {g0, c}, {g1});
  b.step("mul", {g1, scale}, {g2});
  b.step("add", {g2, g}, {gOut});
  b.output("loss", loss);
  b.output(std::string(kKey) + ".grad", gOut);
  return b.plan;
}

plan::Plan optimizerStepPlan() {
  PlanBuilder b;
  std::string k = kKey;
  uint32_t a = b.input({kIn, kOut}, k), g = b.input({kIn, kOut}, k + ".grad"),
           m = b.input({kIn, kOut}, k + ".exp_avg"), v = b.input({kIn, kOut}, k + ".exp_avg_sq");
  uint32_t lr = b.input({}, "lr");
  b.input({}, "step", plan::I64);
  b.input({}, "max_grad_norm");
  b.input({}, "weight_decay");
  uint32_t gg = b.arena({kIn, kOut}, "gg"), ss = b.arena({}, "ss"), gn = b.arena({}, "gn"),
           lg = b.arena({kIn, kOut}, "lg"), a2 = b.arena({kIn, kOut}, "a2"),
           m2 = b.arena({kIn, kOut}, "m2"), v2 = b.arena({kIn, kOut}, "v2");
  b.step("mul", {g, g}, {gg});
  b.reduce("reduce_sum", gg, ss);
  b.step("sqrt", {ss}, {gn});
  b.step("mul", {g, lr}, {lg});
  b.step("sub", {a, lg}, {a2});
  b.step("add", {m, g}, {m2});
  b.step("add", {v, gg}, {v2});
  b.output("grad_norm", gn);
  b.output(k, a2);
  b.output(k + ".exp_avg", m2);
  b.output(k + ".exp_avg_sq", v2);
  return b.plan;
}

/// The forward: y = x a, `a` from BUNDLE/adapters.init.safetensors at `offset`.
plan::Plan forwardPlan(uint64_t offset) {
  PlanBuilder b;
  uint32_t x = b.input({kBatch, kIn}, "x");
  plan::Weight *w = b.plan.add_weights();
  w->set_name(kKey);
  w->set_root(plan::BUNDLE);
  w->set_file("adapters.init.safetensors");
  w->set_offset(offset);
  w->set_length(kIn * kOut * 4);
  test::setType(w->mutable_type(), plan::F32, {kIn, kOut});
  test::addValue(b.plan, {kIn, kOut}, kKey)->set_weight(0);
  uint32_t a = uint32_t(b.plan.values_size() - 1);
  uint32_t y = b.arena({kBatch, kOut}, "y");
  b.step("matmul", {x, a}, {y});
  b.output("y", y);
  return b.plan;
}

std::string tensorJson(const std::string &name, const char *dtype,
                       std::vector<int64_t> shape) {
  std::string s = "{\"name\": \"" + name + "\", \"dtype\": \"" + dtype + "\", \"shape\": [";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]}";
}

std::string listJson(const plan::Plan &p, bool inputs) {
  std::string s = "[";
  const auto &list = inputs ? p.inputs() : p.outputs();
  for (int i = 0; i < list.size(); ++i) {
    const plan::Value &v = p.values(list[i].value());
    std::vector<int64_t> shape(v.type().shape().begin(), v.type().shape().end());
    s += (i ? ", " : "") +
         tensorJson(list[i].name(), v.type().dtype() == plan::I64 ? "I64" : "F32", shape);
  }
  return s + "]";
}

const std::vector<float> kInitA = {0.1f, -0.2f, 0.3f, 0.05f, 0.4f,  0.1f,
                                   -0.3f, 0.2f, 0.0f, 0.15f, -0.1f, 0.25f};

/// Writes the training bundle into `dir`.
void writeTrainingBundle(const std::string &dir, float gradScale = 0.25f,
                         bool withTraining = true) {
  ::mkdir(dir.c_str(), 0755);
  std::string init = dir + "/adapters.init.safetensors";
  ASSERT_TRUE(runtime::writeSafetensors(
                  init, {{kKey, DType::F32, {kIn, kOut}, kInitA.data()}}, {{"format", "pt"}})
                  .ok());
  std::string initBytes = readAll(init);
  uint64_t headerLength;
  std::memcpy(&headerLength, initBytes.data(), 8);
  plan::Plan forward = forwardPlan(8 + headerLength);
  plan::Plan ts = trainStepPlan(gradScale), os = optimizerStepPlan();
  writeAll(dir + "/plan.pb", forward.SerializeAsString());
  writeAll(dir + "/train_step.pb", ts.SerializeAsString());
  writeAll(dir + "/optimizer_step.pb", os.SerializeAsString());
  writeAll(dir + "/adapter_config.json", "{\"peft_type\": \"LORA\", \"r\": 4}\n");
  auto program = [&](const char *file, const plan::Plan &p) {
    return std::string("{\"plan\": \"") + file + "\", \"plan_hash\": \"" +
           *runtime::hashFile(dir + "/" + file) +
           "\", \"arena_bytes\": " + std::to_string(p.arena_bytes()) +
           ", \"inputs\": " + listJson(p, true) + ", \"outputs\": " + listJson(p, false) + "}";
  };
  std::string manifest =
      "{\"format_version\": 1, \"compiler_version\": \"test\", \"model\": {\"path\": \"" + dir +
      "/model.onnx\"}, \"weight_files\": [{\"root\": \"bundle\", \"file\": "
      "\"adapters.init.safetensors\", \"size\": " +
      std::to_string(initBytes.size()) + ", \"hash\": \"" + *runtime::hashFile(init) +
      "\"}], \"inputs\": " + listJson(forward, true) + ", \"outputs\": " +
      listJson(forward, false) + ", \"programs\": {\"train_step\": " +
      program("train_step.pb", ts) + ", \"optimizer_step\": " +
      program("optimizer_step.pb", os) + "}";
  if (withTraining)
    manifest += ", \"training\": {\"model_inputs\": [\"x\"], \"labels\": \"labels\", "
                "\"batch_size\": 2, \"sequence_length\": 4, \"vocab_size\": 16, "
                "\"ignore_index\": -100, \"lora_dropout\": 0.0, \"adam_beta1\": 0.9, "
                "\"adam_beta2\": 0.999, \"adam_epsilon\": 1e-08, \"adapters\": [" +
                tensorJson(kKey, "F32", {kIn, kOut}) + "]}";
  writeAll(dir + "/manifest.json", manifest + "}");
}

struct Examples {
  std::vector<float> x;
  std::vector<int64_t> labels;
};

/// N examples; example e has (e % 4) predicted labels (0 for e % 4 == 0).
Examples makeExamples(int64_t n) {
  Examples ex;
  for (int64_t e = 0; e < n; ++e) {
    for (int64_t i = 0; i < kIn; ++i)
      ex.x.push_back(0.1f * float((e * 7 + i * 3) % 11) - 0.5f);
    for (int64_t s = 0; s < kSeq; ++s)
      ex.labels.push_back(s == 0 || s > e % 4 ? -100 : (e + s) % kVocab);
  }
  return ex;
}

void writeDataset(const std::string &path, const Examples &ex) {
  int64_t n = int64_t(ex.labels.size()) / kSeq;
  ASSERT_TRUE(runtime::writeSafetensors(path, {{"x", DType::F32, {n, kIn}, ex.x.data()},
                                               {"labels", DType::I64, {n, kSeq},
                                                ex.labels.data()}})
                  .ok());
}

std::vector<float> adapterOf(const std::string &file) {
  auto f = runtime::SafetensorsFile::open(file);
  EXPECT_TRUE(f.ok()) << f.message();
  if (!f.ok())
    return {};
  const runtime::SafetensorsTensor *t = f->find(kKey);
  EXPECT_TRUE(t);
  std::vector<float> out(kIn * kOut);
  if (t)
    std::memcpy(out.data(), t->data, t->bytes);
  return out;
}

class TrainLoop : public ::testing::Test {
protected:
  void SetUp() override {
    dir = test::makeTempDir("train");
    bundle = dir + "/bundle";
    writeTrainingBundle(bundle);
    data = dir + "/train.safetensors";
    examples = makeExamples(10);
    writeDataset(data, examples);
  }
  ToolResult train(const std::string &out, const std::string &args) {
    return runCommand(std::string(VLORA_TRAIN_PATH) + " '" + bundle + "' --data '" + data +
                      "' --output-dir '" + out + "' " + args);
  }
  /// Exit 1 and one "vlora-train: error: " line that contains `want`.
  void expectError(const ToolResult &r, const std::string &want) {
    EXPECT_EQ(r.status, 1) << r.output;
    std::string last = r.output;
    size_t at = last.rfind("vlora-train: error: ");
    ASSERT_NE(at, std::string::npos) << r.output;
    EXPECT_TRUE(contains(last.substr(at), want)) << r.output;
  }
  std::string dir, bundle, data;
  Examples examples;
};

/// The loop on the host in double: same permutation, micro-batches,
/// loss_scale and schedule as docs/training.md says.
std::vector<double> replay(const Examples &ex, int64_t accumulation, int64_t steps,
                           double lr0, int64_t warmup, train::LRScheduleKind kind,
                           uint64_t seed) {
  std::vector<double> a(kInitA.begin(), kInitA.end());
  int64_t n = int64_t(ex.labels.size()) / kSeq, batches = n / kBatch;
  int64_t epoch = 0, pos = 0;
  for (int64_t t = 1; t <= steps; ++t) {
    if (pos >= batches)
      ++epoch, pos = 0;
    std::vector<int64_t> order = train::epochPermutation(n, seed, epoch);
    int64_t count = std::min(accumulation, batches - pos);
    std::vector<int64_t> valid(count, 0);
    int64_t total = 0;
    for (int64_t i = 0; i < count; ++i) {
      for (int64_t j = 0; j < kBatch; ++j) {
        int64_t e = order[(pos + i) * kBatch + j];
        for (int64_t s = 1; s < kSeq; ++s)
          valid[i] += ex.labels[e * kSeq + s] != -100;
      }
      total += valid[i];
    }
    std::vector<double> g(kIn * kOut, 0.0);
    for (int64_t i = 0; i < count; ++i) {
      if (valid[i] == 0)
        continue;
      double scale = double(valid[i]) / double(total);
      for (int64_t j = 0; j < kBatch; ++j) {
        int64_t e = order[(pos + i) * kBatch + j];
        for (int64_t o = 0; o < kOut; ++o) {
          double y = 0;
          for (int64_t k = 0; k < kIn; ++k)
            y += ex.x[e * kIn + k] * a[k * kOut + o];
          for (int64_t k = 0; k < kIn; ++k)
            g[k * kOut + o] += scale * 0.25 * ex.x[e * kIn + k] * y;
        }
      }
    }
    pos += count;
    double lr = lr0 * train::lrMultiplier(kind, t - 1, warmup, steps);
    for (size_t k = 0; k < a.size(); ++k)
      a[k] -= lr * g[k];
  }
  return a;
}

TEST_F(TrainLoop, TrainsLikeTheHostReplay) {
  std::string out = dir + "/out";
  ToolResult r = train(out, "--learning-rate 0.5 --gradient-accumulation-steps 2 "
                            "--num-train-epochs 2 --warmup-steps 1 --logging-steps 2 "
                            "--save-steps 4 --seed 7");
  ASSERT_EQ(r.status, 0) << r.output;
  // 10 examples, batch 2: 5 micro-batches, steps of 2, 2, 1: 3 per epoch.
  EXPECT_TRUE(contains(r.output, "10 examples, batch 2 x 2 accumulation, 5 micro-batches "
                                 "and 3 steps per epoch, 6 steps"))
      << r.output;
  EXPECT_TRUE(contains(r.output, "step 2/6")) << r.output;
  EXPECT_TRUE(contains(r.output, "vlora-train: 6 steps, final loss ")) << r.output;
  std::vector<double> want =
      replay(examples, 2, 6, 0.5, 1, train::LRScheduleKind::Linear, 7);
  std::vector<float> got = adapterOf(out + "/adapter_model.safetensors");
  ASSERT_EQ(got.size(), want.size());
  // Tolerance: float32 arithmetic of the programs vs the double replay.
  double maxErr = 0;
  for (size_t i = 0; i < got.size(); ++i)
    maxErr = std::max(maxErr, std::fabs(double(got[i]) - want[i]));
  EXPECT_LT(maxErr, 1e-5) << "max abs error " << maxErr;
  double moved = 0;
  for (size_t i = 0; i < got.size(); ++i)
    moved = std::max(moved, std::fabs(double(got[i]) - kInitA[i]));
  EXPECT_GT(moved, 1e-3) << "the adapters did not change";

  EXPECT_EQ(readAll(out + "/adapter_config.json"), "{\"peft_type\": \"LORA\", \"r\": 4}\n");
  auto st = runtime::SafetensorsFile::open(out + "/adapter_model.safetensors");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->metadata().at("format"), "pt");
  std::string metrics = readAll(out + "/metrics.jsonl");
  EXPECT_EQ(std::count(metrics.begin(), metrics.end(), '\n'), 3) << metrics;
  EXPECT_EQ(metrics.rfind("{\"step\":2,\"epoch\":", 0), 0u) << metrics;
  EXPECT_TRUE(contains(metrics, "\"tokens_per_second\":")) << metrics;
  EXPECT_EQ(readAll(out + "/loss.png").substr(1, 3), "PNG");
  for (const char *ckpt : {"/checkpoint-4", "/checkpoint-6"})
    for (const char *f : {"/adapter_model.safetensors", "/optimizer.safetensors",
                          "/adapter_config.json", "/trainer_state.json"})
      EXPECT_TRUE(std::filesystem::exists(out + ckpt + f)) << ckpt << f;
  EXPECT_EQ(readAll(out + "/checkpoint-6/adapter_model.safetensors"),
            readAll(out + "/adapter_model.safetensors"));

  // vlora-run with the trained adapters (folder or file) vs the initial ones.
  std::string in = dir + "/in.safetensors";
  ASSERT_TRUE(runtime::writeSafetensors(
                  in, {{"x", DType::F32, {kBatch, kIn}, examples.x.data()}})
                  .ok());
  auto forward = [&](const std::string &extra) {
    ToolResult f = runCommand(std::string(VLORA_RUN_PATH) + " '" + bundle + "' --inputs '" +
                              in + "' --outputs '" + dir + "/y.safetensors' " + extra);
    EXPECT_EQ(f.status, 0) << f.output;
    auto y = runtime::SafetensorsFile::open(dir + "/y.safetensors");
    std::vector<float> v(kBatch * kOut);
    if (y.ok())
      std::memcpy(v.data(), y->find("y")->data, v.size() * 4);
    return v;
  };
  std::vector<float> base = forward(""), tuned = forward("--adapter '" + out + "'");
  EXPECT_EQ(forward("--adapter '" + out + "/adapter_model.safetensors'"), tuned);
  for (int64_t r2 = 0; r2 < kBatch; ++r2)
    for (int64_t o = 0; o < kOut; ++o) {
      double y = 0, y0 = 0;
      for (int64_t k = 0; k < kIn; ++k) {
        y += double(examples.x[r2 * kIn + k]) * got[k * kOut + o];
        y0 += double(examples.x[r2 * kIn + k]) * kInitA[k * kOut + o];
      }
      EXPECT_NEAR(tuned[r2 * kOut + o], y, 1e-5);
      EXPECT_NEAR(base[r2 * kOut + o], y0, 1e-5);
    }
}

TEST_F(TrainLoop, ResumeIsBitIdentical) {
  std::string whole = dir + "/whole", part = dir + "/part";
  const std::string opts = "--learning-rate 0.3 --lr-scheduler-type cosine --max-steps 6 "
                           "--save-steps 3 --warmup-steps 2 --gradient-accumulation-steps 2";
  ToolResult r = train(whole, opts);
  ASSERT_EQ(r.status, 0) << r.output;
  // An interrupted run: only its checkpoint-3 (and metrics) survived.
  std::filesystem::create_directories(part);
  std::filesystem::copy(whole + "/checkpoint-3", part + "/checkpoint-3",
                        std::filesystem::copy_options::recursive);
  std::filesystem::copy(whole + "/metrics.jsonl", part + "/metrics.jsonl");
  ::mkdir((part + "/.tmp-checkpoint-6-1").c_str(), 0755); // killed mid-save
  r = train(part, opts + " --resume-from-checkpoint latest --logging-steps 1");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "resuming from " + part + "/checkpoint-3 (step 3)"))
      << r.output;
  EXPECT_FALSE(std::filesystem::exists(part + "/.tmp-checkpoint-6-1"));
  for (const char *f : {"/adapter_model.safetensors", "/checkpoint-6/adapter_model.safetensors",
                        "/checkpoint-6/optimizer.safetensors"})
    EXPECT_EQ(readAll(whole + f), readAll(part + f)) << f << " differs";

  // A constant schedule may train longer on resume: 3 steps, then 3 more.
  std::string c1 = dir + "/c1", c2 = dir + "/c2";
  const std::string constant = "--learning-rate 0.3 --lr-scheduler-type constant "
                               "--gradient-accumulation-steps 2 --save-steps 3";
  ASSERT_EQ(train(c1, constant + " --max-steps 6").status, 0);
  ASSERT_EQ(train(c2, constant + " --max-steps 3").status, 0);
  r = train(c2, constant + " --max-steps 6 --resume-from-checkpoint " + c2 + "/checkpoint-3");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(readAll(c1 + "/adapter_model.safetensors"),
            readAll(c2 + "/adapter_model.safetensors"));
}

TEST_F(TrainLoop, ResumeRefusals) {
  std::string out = dir + "/out";
  ASSERT_EQ(train(out, "--max-steps 2 --save-steps 1 --learning-rate 0.1").status, 0);
  std::string ckpt = out + "/checkpoint-2";
  expectError(train(out, "--max-steps 4 --learning-rate 0.2 --resume-from-checkpoint latest"),
              "checkpoint " + ckpt + " was trained with --learning-rate 0.1, this run has 0.2: "
              "a resumed run must keep it");
  expectError(train(out, "--max-steps 4 --learning-rate 0.1 --resume-from-checkpoint latest"),
              "was trained with --max-steps / --num-train-epochs (total steps) 2, this run "
              "has 4");
  expectError(train(dir + "/none", "--resume-from-checkpoint latest"),
              "--resume-from-checkpoint latest: no checkpoint-N folder in " + dir + "/none");
  // Another bundle: a different train_step.
  writeTrainingBundle(bundle, 0.5f);
  expectError(train(out, "--max-steps 2 --learning-rate 0.1 --resume-from-checkpoint " + ckpt),
              "checkpoint " + ckpt + " was written for another bundle (train_step plan hash");
  writeTrainingBundle(bundle);
  // A corrupt checkpoint.
  std::string opt = readAll(ckpt + "/optimizer.safetensors");
  writeAll(ckpt + "/optimizer.safetensors", opt.substr(0, opt.size() - 1));
  expectError(train(out, "--max-steps 2 --learning-rate 0.1 --resume-from-checkpoint " + ckpt),
              ckpt + "/optimizer.safetensors: corrupt or truncated checkpoint file");
}

TEST_F(TrainLoop, BadInputs) {
  std::string out = dir + "/out";
  expectError(train(out, "--per-device-train-batch-size 4"),
              "--per-device-train-batch-size 4 differs from the bundle's compiled batch size "
              "2: recompile the bundle with --input-shape");
  expectError(train(out, "--lr-scheduler-type poly"), "--lr-scheduler-type is 'poly'");
  // Not a training bundle.
  writeTrainingBundle(bundle, 0.25f, false);
  expectError(train(out, ""), bundle + "/manifest.json: no \"training\" section");
  writeTrainingBundle(bundle);
  // The dataset.
  Examples ex = makeExamples(2); // keep example 1, which has labels
  ex.x.erase(ex.x.begin(), ex.x.begin() + kIn);
  ex.labels.erase(ex.labels.begin(), ex.labels.begin() + kSeq);
  writeDataset(data, ex);
  expectError(train(out, ""), data + ": the dataset has 1 examples, fewer than one batch of 2");
  ex = makeExamples(4);
  ex.labels[5] = 99;
  writeDataset(data, ex);
  expectError(train(out, ""), data + ": tensor 'labels' example 1 position 1: label 99");
  // A loss that overflows: the step is named, nothing is saved after it.
  ex = makeExamples(4);
  for (float &v : ex.x)
    v = 1e25f;
  writeDataset(data, ex);
  ToolResult r = train(out, "--save-steps 1");
  expectError(r, "step 1: the loss of micro-batch 1 of 1 is inf; stopping (no checkpoint "
                 "was saved yet)");
  EXPECT_FALSE(std::filesystem::exists(out + "/adapter_model.safetensors"));
}

TEST_F(TrainLoop, RuntimeOpensPrograms) {
  auto ts = runtime::Runtime::open(bundle, "cpu", "train_step");
  ASSERT_TRUE(ts.ok()) << ts.message();
  EXPECT_EQ((*ts)->inputs().size(), 5u);
  ASSERT_TRUE((*ts)->manifest().training);
  auto missing = runtime::Runtime::open(bundle, "cpu", "eval_step");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.message(), bundle + "/manifest.json: no program 'eval_step' in "
                                        "\"programs\" (it has optimizer_step, train_step)");
  // A plan that is not the one the manifest records.
  writeAll(bundle + "/optimizer_step.pb", trainStepPlan(0.25f).SerializeAsString());
  auto corrupt = runtime::Runtime::open(bundle, "cpu", "optimizer_step");
  ASSERT_FALSE(corrupt.ok());
  EXPECT_TRUE(contains(corrupt.message(), bundle + "/optimizer_step.pb: corrupt or truncated"))
      << corrupt.message();

  // Replacing the adapters: dtype/shape, unknown and missing tensors.
  auto fwd = runtime::Runtime::open(bundle);
  ASSERT_TRUE(fwd.ok()) << fwd.message();
  std::string file = dir + "/adapter.safetensors";
  std::vector<float> a(kIn * kOut, 1.0f), small(4, 1.0f);
  ASSERT_TRUE(runtime::writeSafetensors(file, {{kKey, DType::F32, {2, 2}, small.data()}}).ok());
  auto s = (*fwd)->replaceBundleWeights(file);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), file + ": tensor '" + std::string(kKey) +
                             "' is F32[2, 2], the bundle's adapter is F32[3, 4]");
  ASSERT_TRUE(runtime::writeSafetensors(file, {{kKey, DType::F32, {kIn, kOut}, a.data()},
                                               {"other.lora_B.weight", DType::F32, {2, 2},
                                                small.data()}})
                  .ok());
  s = (*fwd)->replaceBundleWeights(file);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.message(), "tensor 'other.lora_B.weight' is not an adapter of the "
                                    "bundle"))
      << s.message();
  ASSERT_TRUE(runtime::writeSafetensors(file, {{"x.lora_B.weight", DType::F32, {2, 2},
                                                small.data()}})
                  .ok());
  s = (*fwd)->replaceBundleWeights(file);
  ASSERT_FALSE(s.ok());
  ASSERT_TRUE(runtime::writeSafetensors(file, {{kKey, DType::F32, {kIn, kOut}, a.data()}}).ok());
  ASSERT_TRUE((*fwd)->replaceBundleWeights(file).ok());
  std::vector<float> x = {1, 2, 3, 4, 5, 6};
  ASSERT_TRUE((*fwd)->setInput("x", DType::F32, {kBatch, kIn}, x.data(), 24).ok());
  ASSERT_TRUE((*fwd)->run().ok());
  auto y = (*fwd)->output("y");
  ASSERT_TRUE(y.ok());
  std::vector<float> yv(kBatch * kOut);
  std::memcpy(yv.data(), y->data(), y->size());
  EXPECT_EQ(yv, (std::vector<float>{6, 6, 6, 6, 15, 15, 15, 15}));
}

} // namespace
