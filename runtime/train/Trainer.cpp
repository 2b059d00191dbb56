//===- Trainer.cpp - the training loop of vlora-train ---------------------===//

#include "runtime/train/Trainer.h"

#include "runtime/FileHash.h"
#include "runtime/Runtime.h"
#include "runtime/Safetensors.h"
#include "runtime/train/Checkpoint.h"
#include "runtime/train/Dataset.h"
#include "runtime/train/LossPlot.h"
#include "runtime/train/Metrics.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <sys/stat.h>

namespace vlora::train {
using kernels::DType;
using runtime::Error;
using runtime::Expected;
using runtime::Runtime;
using runtime::Status;
using runtime::TensorInfo;

Expected<StepPlan> planSteps(int64_t examples, int64_t batchSize, int64_t accumulation,
                             int64_t maxSteps, double epochs) {
  StepPlan p;
  p.batchesPerEpoch = examples / batchSize;
  if (p.batchesPerEpoch == 0)
    return Error("the dataset has " + std::to_string(examples) +
                 " examples, fewer than one batch of " + std::to_string(batchSize));
  p.stepsPerEpoch = (p.batchesPerEpoch + accumulation - 1) / accumulation;
  if (maxSteps > 0) {
    p.totalSteps = maxSteps;
  } else {
    double total = std::ceil(epochs * double(p.stepsPerEpoch));
    if (!(total >= 1) || total > 1e15)
      return Error("--num-train-epochs " + std::to_string(epochs) + " gives " +
                   std::to_string(total) + " optimizer steps");
    p.totalSteps = static_cast<int64_t>(total);
  }
  return p;
}

namespace {
std::string join(const std::string &dir, const std::string &name) {
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

/// The shortest of %.15g, %.16g, %.17g that reads back as `v`.
std::string number(double v) {
  char buf[40];
  for (int digits = 15; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof(buf), "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v)
      break;
  }
  return buf;
}

std::string duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0)
    return "?";
  long s = std::lround(seconds);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof(buf), "%ldh%02ldm%02lds", s / 3600, s / 60 % 60, s % 60);
  else if (s >= 60)
    std::snprintf(buf, sizeof(buf), "%ldm%02lds", s / 60, s % 60);
  else
    std::snprintf(buf, sizeof(buf), "%lds", s);
  return buf;
}

const TensorInfo *findTensor(const std::vector<TensorInfo> &list, const std::string &name) {
  for (const TensorInfo &t : list)
    if (t.name == name)
      return &t;
  return nullptr;
}

/// The programs' interfaces against docs/training.md.
class InterfaceCheck {
public:
  InterfaceCheck(const std::string &manifest, const std::string &program,
                 const Runtime &rt)
      : manifest_(manifest), program_(program), rt_(rt) {}

  /// `name` must be an input (or output) of this dtype and shape.
  Status need(bool input, const std::string &name, DType dtype, const kernels::Shape &shape) {
    const auto &list = input ? rt_.inputs() : rt_.outputs();
    const TensorInfo *t = findTensor(list, name);
    std::string want = runtime::userTypeString(dtype, shape);
    if (!t)
      return Error(manifest_ + ": program '" + program_ + "' has no " +
                   (input ? "input" : "output") + " '" + name + "' (" + want + ")");
    if (t->dtype != dtype || t->shape != shape)
      return Error(manifest_ + ": program '" + program_ + "' " + (input ? "input" : "output") +
                   " '" + name + "' is " + runtime::userTypeString(t->dtype, t->shape) +
                   ", expected " + want);
    (input ? inputs_ : outputs_).push_back(name);
    return Status::success();
  }
  /// Every input and output was asked for.
  Status complete() const {
    for (const TensorInfo &t : rt_.inputs())
      if (std::find(inputs_.begin(), inputs_.end(), t.name) == inputs_.end())
        return Error(manifest_ + ": program '" + program_ + "' has an unexpected input '" +
                     t.name + "' that vlora-train does not know how to feed");
    return Status::success();
  }

private:
  std::string manifest_, program_;
  const Runtime &rt_;
  std::vector<std::string> inputs_, outputs_;
};

Status setScalar(Runtime &rt, const std::string &name, float v) {
  return rt.setInput(name, DType::F32, {}, &v, sizeof(v));
}
Status setScalar(Runtime &rt, const std::string &name, int64_t v) {
  return rt.setInput(name, DType::I64, {}, &v, sizeof(v));
}
Status setFloats(Runtime &rt, const std::string &name, const kernels::Shape &shape,
                 const std::vector<float> &v) {
  return rt.setInput(name, DType::F32, shape, v.data(), v.size() * sizeof(float));
}
Status readFloats(const Runtime &rt, const std::string &name, std::vector<float> &out) {
  Expected<std::vector<uint8_t>> bytes = rt.output(name);
  if (!bytes)
    return bytes.error();
  out.resize(bytes->size() / sizeof(float));
  std::memcpy(out.data(), bytes->data(), out.size() * sizeof(float));
  return Status::success();
}
Expected<float> readScalar(const Runtime &rt, const std::string &name) {
  std::vector<float> v;
  if (Status s = readFloats(rt, name, v); !s)
    return s.error();
  if (v.size() != 1)
    return Error("output '" + name + "' is not a scalar");
  return v[0];
}

/// Option names for resume messages.
const std::map<std::string, std::string> &optionFlags() {
  static const std::map<std::string, std::string> flags = {
      {"learning_rate", "--learning-rate"},
      {"per_device_train_batch_size", "--per-device-train-batch-size"},
      {"gradient_accumulation_steps", "--gradient-accumulation-steps"},
      {"total_steps", "--max-steps / --num-train-epochs (total steps)"},
      {"warmup_steps", "--warmup-steps"},
      {"lr_scheduler_type", "--lr-scheduler-type"},
      {"weight_decay", "--weight-decay"},
      {"max_grad_norm", "--max-grad-norm"},
      {"seed", "--seed"},
      {"dataset_examples", "--data (number of examples)"},
      {"dataset_hash", "--data (content hash)"}};
  return flags;
}

class Trainer {
public:
  Trainer(const TrainOptions &o, std::FILE *log, bool terminal)
      : o_(o), log_(log), terminal_(terminal) {}

  Status run();

private:
  Status openBundle();
  Status openData();
  Status initialState();
  Status resume();
  Status step(int64_t t);
  Status save(int64_t t);
  Status finish();
  void progress(int64_t t);
  void warn(const std::string &message) {
    std::fprintf(log_, "vlora-train: warning: %s\n", message.c_str());
  }

  const TrainOptions &o_;
  std::FILE *log_;
  bool terminal_;
  std::string manifestPath_;
  std::unique_ptr<Runtime> trainStep_, optimizerStep_;
  runtime::TrainingInfo info_;
  bool hasDropout_ = false;
  std::string adapterConfig_;
  std::unique_ptr<Dataset> data_;
  std::string dataHash_;
  StepPlan plan_;
  CheckpointState state_;
  /// After the first optimizer step the adapters and both AdamW moments
  /// live in optimizer_step's outputs, on the device: the next step's inputs
  /// are copied from there (gradients from train_step's outputs), never
  /// through the host. state_ is refreshed from them only when the host
  /// needs it (a checkpoint, the final adapters): hostStale_.
  bool deviceState_ = false, hostStale_ = false;
  Status syncHost();
  std::vector<MetricsRecord> metrics_;
  std::unique_ptr<std::FILE, int (*)(std::FILE *)> metricsFile_{nullptr, &std::fclose};
  std::string lastCheckpoint_;

  // Between log records.
  double lossSum_ = 0;
  int64_t lossTokens_ = 0, tokensSinceLog_ = 0;
  double lastGradNorm_ = 0, lastLr_ = 0, lastStepLoss_ = NAN;
  std::chrono::steady_clock::time_point start_, lastLog_;
  double elapsedBefore_ = 0;
  int64_t firstStep_ = 0;
  bool warnedEmpty_ = false;
  /// The current epoch's example order (rebuilt when the epoch changes).
  std::vector<int64_t> order_;
  int64_t orderEpoch_ = -1;
};

Status Trainer::openBundle() {
  manifestPath_ = join(o_.bundle, "manifest.json");
  Expected<std::unique_ptr<Runtime>> ts = Runtime::open(o_.bundle, o_.device, "train_step");
  if (!ts)
    return ts.error();
  trainStep_ = std::move(*ts);
  if (!trainStep_->manifest().training)
    return Error(manifestPath_ + ": no \"training\" section (compile the bundle with "
                                 "vlora-compile --train)");
  info_ = *trainStep_->manifest().training;
  Expected<std::unique_ptr<Runtime>> os =
      Runtime::open(o_.bundle, o_.device, "optimizer_step");
  if (!os)
    return os.error();
  optimizerStep_ = std::move(*os);

  // train_step
  InterfaceCheck ts2(manifestPath_, "train_step", *trainStep_);
  for (const std::string &name : info_.modelInputs) {
    const TensorInfo *t = findTensor(trainStep_->inputs(), name);
    if (!t)
      return Error(manifestPath_ + ": program 'train_step' has no input '" + name +
                   "' listed in \"training\".model_inputs");
    if (Status s = ts2.need(true, name, t->dtype, t->shape); !s)
      return s;
    if (t->shape.empty() || t->shape[0] % info_.batchSize != 0)
      return Error(manifestPath_ + ": train_step input '" + name + "' is " +
                   runtime::userTypeString(t->dtype, t->shape) + ", its first dimension is "
                   "not a multiple of the batch size " + std::to_string(info_.batchSize));
  }
  if (Status s = ts2.need(true, info_.labels, DType::I64,
                          {info_.batchSize, info_.sequenceLength});
      !s)
    return s;
  if (Status s = ts2.need(true, "loss_scale", DType::F32, {}); !s)
    return s;
  hasDropout_ = findTensor(trainStep_->inputs(), "dropout_rng") != nullptr;
  if (hasDropout_)
    if (Status s = ts2.need(true, "dropout_rng", DType::I64, {2}); !s)
      return s;
  if (Status s = ts2.need(false, "loss", DType::F32, {}); !s)
    return s;
  InterfaceCheck opt(manifestPath_, "optimizer_step", *optimizerStep_);
  for (const TensorInfo &a : info_.adapters) {
    for (const char *suffix : {"", ".grad"})
      if (Status s = ts2.need(true, a.name + suffix, DType::F32, a.shape); !s)
        return s;
    if (Status s = ts2.need(false, a.name + ".grad", DType::F32, a.shape); !s)
      return s;
    for (const char *suffix : {"", ".grad", ".exp_avg", ".exp_avg_sq"})
      if (Status s = opt.need(true, a.name + suffix, DType::F32, a.shape); !s)
        return s;
    for (const char *suffix : {"", ".exp_avg", ".exp_avg_sq"})
      if (Status s = opt.need(false, a.name + suffix, DType::F32, a.shape); !s)
        return s;
  }
  if (Status s = ts2.complete(); !s)
    return s;
  for (const auto &[name, dtype] :
       std::vector<std::pair<std::string, DType>>{{"lr", DType::F32},
                                                  {"step", DType::I64},
                                                  {"max_grad_norm", DType::F32},
                                                  {"weight_decay", DType::F32}})
    if (Status s = opt.need(true, name, dtype, {}); !s)
      return s;
  if (Status s = opt.need(false, "grad_norm", DType::F32, {}); !s)
    return s;
  if (Status s = opt.complete(); !s)
    return s;

  if (o_.batchSize != 0 && o_.batchSize != info_.batchSize)
    return Error("--per-device-train-batch-size " + std::to_string(o_.batchSize) +
                 " differs from the bundle's compiled batch size " +
                 std::to_string(info_.batchSize) +
                 ": recompile the bundle with --input-shape for batch size " +
                 std::to_string(o_.batchSize) + " or pass " +
                 std::to_string(info_.batchSize));

  Expected<std::string> config = readWholeFile(join(o_.bundle, "adapter_config.json"));
  if (!config)
    return Error(config.message() + " (a training bundle carries PEFT's adapter_config.json)");
  adapterConfig_ = *config;
  return Status::success();
}

Status Trainer::openData() {
  DatasetSpec spec;
  for (const std::string &name : info_.modelInputs)
    spec.tensors.push_back(*findTensor(trainStep_->inputs(), name));
  spec.tensors.push_back(*findTensor(trainStep_->inputs(), info_.labels));
  spec.labels = info_.labels;
  spec.batchSize = info_.batchSize;
  spec.vocabSize = info_.vocabSize;
  spec.ignoreIndex = info_.ignoreIndex;
  std::vector<std::string> warnings;
  Expected<Dataset> data = Dataset::open(o_.data, spec, &warnings);
  if (!data)
    return data.error();
  for (const std::string &w : warnings)
    warn(w);
  data_ = std::make_unique<Dataset>(std::move(*data));
  Expected<std::string> hash = runtime::hashFile(o_.data);
  if (!hash)
    return hash.error();
  dataHash_ = *hash;
  Expected<StepPlan> plan = planSteps(data_->size(), info_.batchSize,
                                      o_.gradientAccumulationSteps, o_.maxSteps,
                                      o_.numTrainEpochs);
  if (!plan)
    return Error(o_.data + ": " + plan.message());
  plan_ = *plan;
  if (o_.scheduler == LRScheduleKind::Constant && o_.warmupSteps > 0)
    warn("--lr-scheduler-type constant ignores --warmup-steps (as transformers does); "
         "use constant_with_warmup");
  return Status::success();
}

Status Trainer::initialState() {
  std::string initPath = join(o_.bundle, "adapters.init.safetensors");
  Expected<runtime::SafetensorsFile> init = runtime::SafetensorsFile::open(initPath);
  if (!init)
    return init.error();
  state_ = CheckpointState();
  state_.seed = o_.seed;
  Expected<std::string> planHash = runtime::hashFile(join(
      o_.bundle, trainStep_->manifest().programs.at("train_step").plan));
  if (!planHash)
    return planHash.error();
  state_.trainStepPlanHash = *planHash;
  for (const TensorInfo &a : info_.adapters) {
    const runtime::SafetensorsTensor *t = init->find(a.name);
    if (!t || t->dtype != DType::F32 || t->shape != a.shape)
      return Error(initPath + ": no F32" + kernels::shapeString(a.shape) + " tensor '" +
                   a.name + "' for the adapter");
    AdapterState s;
    s.name = a.name;
    s.shape = a.shape;
    size_t n = static_cast<size_t>(kernels::numElements(a.shape));
    s.value.resize(n);
    if (t->bytes)
      std::memcpy(s.value.data(), t->data, t->bytes);
    s.expAvg.assign(n, 0.0f);
    s.expAvgSq.assign(n, 0.0f);
    state_.adapters.push_back(std::move(s));
  }
  auto &opts = state_.options;
  opts["learning_rate"] = number(o_.learningRate);
  opts["per_device_train_batch_size"] = std::to_string(info_.batchSize);
  opts["gradient_accumulation_steps"] = std::to_string(o_.gradientAccumulationSteps);
  // The decaying schedules depend on the total; with a constant one a
  // resumed run may train longer (or shorter) than the first.
  if (o_.scheduler == LRScheduleKind::Linear || o_.scheduler == LRScheduleKind::Cosine)
    opts["total_steps"] = std::to_string(plan_.totalSteps);
  opts["warmup_steps"] = std::to_string(o_.warmupSteps);
  opts["lr_scheduler_type"] = lrScheduleName(o_.scheduler);
  opts["weight_decay"] = number(o_.weightDecay);
  opts["max_grad_norm"] = number(o_.maxGradNorm);
  opts["seed"] = std::to_string(o_.seed);
  opts["dataset_examples"] = std::to_string(data_->size());
  opts["dataset_hash"] = dataHash_;
  return Status::success();
}

Status Trainer::resume() {
  std::string path = o_.resumeFrom;
  if (path == "latest") {
    auto all = listCheckpoints(o_.outputDir);
    if (all.empty())
      return Error("--resume-from-checkpoint latest: no checkpoint-N folder in " +
                   o_.outputDir);
    path = all.back().second;
  }
  Expected<CheckpointState> loaded = readCheckpoint(path);
  if (!loaded)
    return loaded.error();
  const CheckpointState &c = *loaded;
  std::string prefix = "checkpoint " + path + " ";
  if (c.trainStepPlanHash != state_.trainStepPlanHash)
    return Error(prefix + "was written for another bundle (train_step plan hash " +
                 c.trainStepPlanHash + ", " + o_.bundle + " has " +
                 state_.trainStepPlanHash + ")");
  if (c.adapters.size() != state_.adapters.size())
    return Error(prefix + "was written for another bundle: it has " +
                 std::to_string(c.adapters.size()) + " adapters, the bundle " +
                 std::to_string(state_.adapters.size()));
  for (size_t i = 0; i < c.adapters.size(); ++i)
    if (c.adapters[i].name != state_.adapters[i].name ||
        c.adapters[i].shape != state_.adapters[i].shape)
      return Error(prefix + "was written for another bundle: adapter " + std::to_string(i) +
                   " is '" + c.adapters[i].name + "' " +
                   kernels::shapeString(c.adapters[i].shape) + ", the bundle's is '" +
                   state_.adapters[i].name + "' " +
                   kernels::shapeString(state_.adapters[i].shape));
  for (const auto &[key, value] : state_.options) {
    auto it = c.options.find(key);
    std::string flag = optionFlags().count(key) ? optionFlags().at(key) : key;
    if (it == c.options.end())
      return Error(prefix + "does not record " + flag);
    if (it->second != value)
      return Error(prefix + "was trained with " + flag + " " + it->second + ", this run has " +
                   value + ": a resumed run must keep it");
  }
  if (c.seed != state_.seed)
    return Error(prefix + "was trained with --seed " + std::to_string(c.seed) +
                 ", this run has " + std::to_string(state_.seed));
  if (c.batchInEpoch > plan_.batchesPerEpoch)
    return Error(prefix + "is at micro-batch " + std::to_string(c.batchInEpoch) +
                 " of an epoch of " + std::to_string(plan_.batchesPerEpoch));
  std::map<std::string, std::string> options = state_.options;
  state_ = c;
  state_.options = std::move(options);
  lastCheckpoint_ = path;
  std::fprintf(log_, "vlora-train: resuming from %s (step %lld)\n", path.c_str(),
               static_cast<long long>(state_.globalStep));
  return Status::success();
}

Status Trainer::step(int64_t t) {
  const int64_t B = info_.batchSize;
  // The micro-batches of this step: up to G, never across an epoch's end.
  if (state_.batchInEpoch >= plan_.batchesPerEpoch) {
    state_.epoch += 1;
    state_.batchInEpoch = 0;
  }
  int64_t count = std::min<int64_t>(o_.gradientAccumulationSteps,
                                    plan_.batchesPerEpoch - state_.batchInEpoch);
  if (orderEpoch_ != state_.epoch) {
    order_ = epochPermutation(data_->size(), state_.seed, state_.epoch);
    orderEpoch_ = state_.epoch;
  }
  const std::vector<int64_t> &order = order_;
  std::vector<std::vector<int64_t>> batches;
  std::vector<int64_t> valid;
  int64_t totalValid = 0;
  for (int64_t i = 0; i < count; ++i) {
    int64_t first = (state_.batchInEpoch + i) * B;
    std::vector<int64_t> examples(order.begin() + first, order.begin() + first + B);
    int64_t n = 0;
    for (int64_t e : examples)
      n += data_->validLabels(e);
    batches.push_back(std::move(examples));
    valid.push_back(n);
    totalValid += n;
  }

  double stepLoss = 0;
  bool accumulated = false; // a micro-batch has written gradients
  for (int64_t i = 0; i < count; ++i) {
    int64_t micro = state_.microStep++;
    if (valid[i] == 0)
      continue;
    Runtime &ts = *trainStep_;
    // Device copies first (the previous micro-batch's gradients may share
    // arena bytes with the inputs written below): the accumulated
    // gradients, and, after the first optimizer step, the adapters.
    {
      std::vector<std::pair<std::string, std::string>> own, fromOptimizer;
      for (const AdapterState &ad : state_.adapters) {
        if (accumulated)
          own.emplace_back(ad.name + ".grad", ad.name + ".grad");
        if (deviceState_)
          fromOptimizer.emplace_back(ad.name, ad.name);
      }
      if (!own.empty())
        if (Status s = ts.setInputsFrom(own, ts); !s)
          return s;
      if (!fromOptimizer.empty())
        if (Status s = ts.setInputsFrom(fromOptimizer, *optimizerStep_); !s)
          return s;
    }
    const DatasetSpec &spec = data_->spec();
    for (size_t k = 0; k < spec.tensors.size(); ++k) {
      std::vector<uint8_t> bytes = data_->gather(k, batches[i]);
      const TensorInfo &info = spec.tensors[k];
      if (Status s = ts.setInput(info.name, info.dtype, info.shape, bytes.data(), bytes.size());
          !s)
        return s;
    }
    if (Status s = setScalar(ts, "loss_scale", float(double(valid[i]) / double(totalValid)));
        !s)
      return s;
    if (hasDropout_) {
      int64_t rng[2] = {static_cast<int64_t>(state_.seed), micro};
      if (Status s = ts.setInput("dropout_rng", DType::I64, {2}, rng, sizeof(rng)); !s)
        return s;
    }
    // Before the first optimizer step the adapters come from the host; the
    // first micro-batch's gradient input is zeros.
    for (const AdapterState &ad : state_.adapters) {
      if (!deviceState_)
        if (Status s = setFloats(ts, ad.name, ad.shape, ad.value); !s)
          return s;
      if (!accumulated)
        if (Status s = ts.setInputZero(ad.name + ".grad"); !s)
          return s;
    }
    if (Status s = ts.run(); !s)
      return Error("step " + std::to_string(t) + ": train_step: " + s.message());
    Expected<float> loss = readScalar(ts, "loss");
    if (!loss)
      return loss.error();
    if (!std::isfinite(*loss))
      return Error("step " + std::to_string(t) + ": the loss of micro-batch " +
                   std::to_string(i + 1) + " of " + std::to_string(count) + " is " +
                   number(*loss) + "; stopping (" +
                   (lastCheckpoint_.empty() ? std::string("no checkpoint was saved yet")
                                            : "the last checkpoint " + lastCheckpoint_ +
                                                  " is kept") +
                   ")");
    accumulated = true;
    stepLoss += double(*loss) * double(valid[i]);
    tokensSinceLog_ += B * info_.sequenceLength;
  }
  state_.batchInEpoch += count;

  double lr = o_.learningRate *
              lrMultiplier(o_.scheduler, t - 1, o_.warmupSteps, plan_.totalSteps);
  Runtime &os = *optimizerStep_;
  // The adapters and moments: the host's before the first step, then this
  // program's own outputs (device copies, before anything is written); the
  // gradients from train_step's outputs, or zeros when no micro-batch ran.
  {
    std::vector<std::pair<std::string, std::string>> own, grads;
    for (const AdapterState &ad : state_.adapters) {
      for (const std::string &name :
           {ad.name, ad.name + ".exp_avg", ad.name + ".exp_avg_sq"})
        if (deviceState_)
          own.emplace_back(name, name);
      if (accumulated)
        grads.emplace_back(ad.name + ".grad", ad.name + ".grad");
    }
    if (!own.empty())
      if (Status s = os.setInputsFrom(own, os); !s)
        return s;
    if (!grads.empty())
      if (Status s = os.setInputsFrom(grads, *trainStep_); !s)
        return s;
  }
  for (const AdapterState &ad : state_.adapters) {
    if (!deviceState_)
      for (auto [name, host] :
           {std::pair(ad.name, &ad.value), std::pair(ad.name + ".exp_avg", &ad.expAvg),
            std::pair(ad.name + ".exp_avg_sq", &ad.expAvgSq)})
        if (Status s = setFloats(os, name, ad.shape, *host); !s)
          return s;
    if (!accumulated)
      if (Status s = os.setInputZero(ad.name + ".grad"); !s)
        return s;
  }
  float maxNorm = o_.maxGradNorm > 0 ? float(o_.maxGradNorm)
                                     : std::numeric_limits<float>::infinity();
  for (Status s : {setScalar(os, "lr", float(lr)), setScalar(os, "step", int64_t(t)),
                   setScalar(os, "max_grad_norm", maxNorm),
                   setScalar(os, "weight_decay", float(o_.weightDecay))})
    if (!s)
      return s;
  if (Status s = os.run(); !s)
    return Error("step " + std::to_string(t) + ": optimizer_step: " + s.message());
  Expected<float> gradNorm = readScalar(os, "grad_norm");
  if (!gradNorm)
    return gradNorm.error();
  if (!std::isfinite(*gradNorm))
    return Error("step " + std::to_string(t) + ": the gradient norm is " + number(*gradNorm) +
                 "; stopping (" +
                 (lastCheckpoint_.empty() ? std::string("no checkpoint was saved yet")
                                          : "the last checkpoint " + lastCheckpoint_ +
                                                " is kept") +
                 ")");
  deviceState_ = true;
  hostStale_ = true;
  state_.globalStep = t;
  lastGradNorm_ = *gradNorm;
  lastLr_ = lr;
  if (totalValid > 0) {
    lastStepLoss_ = stepLoss / double(totalValid);
    lossSum_ += stepLoss;
    lossTokens_ += totalValid;
  } else if (!warnedEmpty_) {
    warnedEmpty_ = true;
    warn("step " + std::to_string(t) + " has no predicted label in any of its micro-batches; "
         "the optimizer step ran with zero gradients");
  }
  return Status::success();
}

Status Trainer::syncHost() {
  if (!hostStale_)
    return Status::success();
  Runtime &os = *optimizerStep_;
  for (AdapterState &ad : state_.adapters) {
    if (Status s = readFloats(os, ad.name, ad.value); !s)
      return s;
    if (Status s = readFloats(os, ad.name + ".exp_avg", ad.expAvg); !s)
      return s;
    if (Status s = readFloats(os, ad.name + ".exp_avg_sq", ad.expAvgSq); !s)
      return s;
  }
  hostStale_ = false;
  return Status::success();
}

Status Trainer::save(int64_t t) {
  (void)t;
  if (Status s = syncHost(); !s)
    return s;
  Expected<std::string> dir = writeCheckpoint(o_.outputDir, state_, adapterConfig_);
  if (!dir)
    return dir.error();
  lastCheckpoint_ = *dir;
  return pruneCheckpoints(o_.outputDir, o_.saveTotalLimit, *dir);
}

void Trainer::progress(int64_t t) {
  auto now = std::chrono::steady_clock::now();
  double sinceStart = std::chrono::duration<double>(now - start_).count();
  double sinceLog = std::chrono::duration<double>(now - lastLog_).count();
  double perStep = t > firstStep_ ? sinceStart / double(t - firstStep_) : 0;
  double eta = perStep * double(plan_.totalSteps - t);
  bool logNow = t % o_.loggingSteps == 0 || t == plan_.totalSteps;
  if (logNow) {
    MetricsRecord r;
    r.step = t;
    r.epoch = double(state_.epoch) + double(state_.batchInEpoch) / double(plan_.batchesPerEpoch);
    if (lossTokens_ > 0)
      r.loss = lossSum_ / double(lossTokens_);
    r.gradNorm = lastGradNorm_;
    r.learningRate = lastLr_;
    r.tokensPerSecond = sinceLog > 0 ? double(tokensSinceLog_) / sinceLog : 0;
    r.elapsed = elapsedBefore_ + sinceStart;
    metrics_.push_back(r);
    if (metricsFile_) {
      std::string line = metricsLine(r);
      std::fwrite(line.data(), 1, line.size(), metricsFile_.get());
      std::fflush(metricsFile_.get());
    }
    if (!terminal_) {
      char lossBuf[32] = "n/a";
      if (r.loss)
        std::snprintf(lossBuf, sizeof(lossBuf), "%.4g", *r.loss);
      std::string lossText = lossBuf;
      std::fprintf(log_,
                   "step %lld/%lld  epoch %.2f  loss %s  grad_norm %.4g  lr %.4g  "
                   "%.0f tokens/s  elapsed %s  eta %s\n",
                   static_cast<long long>(t), static_cast<long long>(plan_.totalSteps),
                   r.epoch, lossText.c_str(),
                   r.gradNorm, r.learningRate, r.tokensPerSecond,
                   duration(r.elapsed).c_str(), duration(eta).c_str());
      std::fflush(log_);
    }
    lossSum_ = 0;
    lossTokens_ = 0;
    tokensSinceLog_ = 0;
    lastLog_ = now;
  }
  if (terminal_) {
    const int width = 30;
    int filled = int(double(width) * double(t) / double(plan_.totalSteps));
    std::string bar(size_t(filled), '#');
    bar.resize(width, '-');
    double tps = sinceLog > 0 && !logNow ? double(tokensSinceLog_) / sinceLog
                 : metrics_.empty()     ? 0
                                        : metrics_.back().tokensPerSecond;
    std::fprintf(log_, "\r[%s] %lld/%lld  loss %.4f  %.0f tok/s  ETA %s   ", bar.c_str(),
                 static_cast<long long>(t), static_cast<long long>(plan_.totalSteps),
                 lastStepLoss_, tps, duration(eta).c_str());
    std::fflush(log_);
  }
}

Status Trainer::finish() {
  if (Status s = syncHost(); !s)
    return s;
  std::string adapterPath = join(o_.outputDir, "adapter_model.safetensors");
  std::string configPath = join(o_.outputDir, "adapter_config.json");
  std::vector<runtime::SafetensorsEntry> entries;
  for (const AdapterState &a : state_.adapters)
    entries.push_back({a.name, DType::F32, a.shape, a.value.data()});
  if (Status s = runtime::writeSafetensors(adapterPath, entries, {{"format", "pt"}}); !s)
    return s;
  if (Status s = writeFileAtomic(configPath, adapterConfig_); !s)
    return s;
  std::vector<std::pair<double, double>> points;
  for (const MetricsRecord &r : metrics_)
    if (r.loss)
      points.push_back({double(r.step), *r.loss});
  std::string plotPath = join(o_.outputDir, "loss.png");
  if (Status s = writeLossPlot(plotPath, points); !s)
    return s;
  double elapsed = elapsedBefore_ + std::chrono::duration<double>(
                                        std::chrono::steady_clock::now() - start_)
                                        .count();
  std::string finalLoss = "n/a";
  for (auto it = metrics_.rbegin(); it != metrics_.rend(); ++it)
    if (it->loss) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.4f", *it->loss);
      finalLoss = buf;
      break;
    }
  if (terminal_)
    std::fprintf(log_, "\n");
  // On a GPU: the device memory the run took, and what vlora-compile's
  // --report-memory predicted for it (runtime/DeviceMemory.h).
  runtime::DeviceMemoryUse memory;
  if (trainStep_ && trainStep_->deviceMemory(memory)) {
    auto mib = [](uint64_t b) { return double(b) / (1024.0 * 1024.0); };
    double off = memory.measured
                     ? 100.0 * (double(memory.predicted) - double(memory.measured)) /
                           double(memory.measured)
                     : 0.0;
    std::fprintf(log_,
                 "vlora-train: device memory: %llu bytes (%.2f MiB) at the peak, "
                 "predicted %llu bytes (%.2f MiB, %+.1f %%)\n",
                 static_cast<unsigned long long>(memory.measured), mib(memory.measured),
                 static_cast<unsigned long long>(memory.predicted), mib(memory.predicted),
                 off);
    char json[256];
    std::snprintf(json, sizeof(json),
                  "{\"measured_bytes\": %llu, \"predicted_bytes\": %llu}\n",
                  static_cast<unsigned long long>(memory.measured),
                  static_cast<unsigned long long>(memory.predicted));
    if (Status s = writeFileAtomic(join(o_.outputDir, "device_memory.json"), json); !s)
      return s;
  }
  std::fprintf(log_,
               "vlora-train: %lld steps, final loss %s, %s; adapters %s, %s; metrics %s; "
               "plot %s; checkpoint %s\n",
               static_cast<long long>(state_.globalStep), finalLoss.c_str(),
               duration(elapsed).c_str(), adapterPath.c_str(), configPath.c_str(),
               join(o_.outputDir, "metrics.jsonl").c_str(), plotPath.c_str(),
               lastCheckpoint_.c_str());
  return Status::success();
}

Status Trainer::run() {
  if (Status s = openBundle(); !s)
    return s;
  if (Status s = openData(); !s)
    return s;
  if (Status s = initialState(); !s)
    return s;
  std::error_code ec;
  std::filesystem::create_directories(o_.outputDir, ec);
  struct stat st;
  if (::stat(o_.outputDir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return Error("cannot create the output folder " + o_.outputDir +
                 (ec ? ": " + ec.message() : ""));
  removeStaleTemporaries(o_.outputDir);
  if (!o_.resumeFrom.empty())
    if (Status s = resume(); !s)
      return s;

  // metrics.jsonl: a resumed run keeps the records up to its checkpoint.
  std::string metricsPath = join(o_.outputDir, "metrics.jsonl");
  if (!o_.resumeFrom.empty()) {
    Expected<std::vector<MetricsRecord>> old = readMetrics(metricsPath);
    if (!old)
      return old.error();
    for (const MetricsRecord &r : *old)
      if (r.step <= state_.globalStep)
        metrics_.push_back(r);
    if (!metrics_.empty())
      elapsedBefore_ = metrics_.back().elapsed;
  }
  std::string kept;
  for (const MetricsRecord &r : metrics_)
    kept += metricsLine(r);
  if (Status s = writeFileAtomic(metricsPath, kept); !s)
    return s;
  metricsFile_.reset(std::fopen(metricsPath.c_str(), "a"));
  if (!metricsFile_)
    return Error("cannot open " + metricsPath + ": " + std::strerror(errno));

  if (!terminal_)
    std::fprintf(log_,
                 "vlora-train: %lld examples, batch %lld x %lld accumulation, %lld "
                 "micro-batches and %lld steps per epoch, %lld steps\n",
                 static_cast<long long>(data_->size()),
                 static_cast<long long>(info_.batchSize),
                 static_cast<long long>(o_.gradientAccumulationSteps),
                 static_cast<long long>(plan_.batchesPerEpoch),
                 static_cast<long long>(plan_.stepsPerEpoch),
                 static_cast<long long>(plan_.totalSteps));
  start_ = lastLog_ = std::chrono::steady_clock::now();
  firstStep_ = state_.globalStep;
  bool savedLast = !lastCheckpoint_.empty();
  for (int64_t t = state_.globalStep + 1; t <= plan_.totalSteps; ++t) {
    if (Status s = step(t); !s) {
      if (terminal_)
        std::fprintf(log_, "\n");
      return s;
    }
    progress(t);
    savedLast = false;
    if (t % o_.saveSteps == 0 || t == plan_.totalSteps) {
      if (Status s = save(t); !s)
        return s;
      savedLast = true;
    }
  }
  if (!savedLast)
    if (Status s = save(state_.globalStep); !s)
      return s;
  metricsFile_.reset();
  return finish();
}
} // namespace

Status runTraining(const TrainOptions &options, std::FILE *log, bool terminal) {
  return runtime::catchErrors<bool>([&]() -> Expected<bool> {
           Trainer trainer(options, log, terminal);
           if (Status s = trainer.run(); !s)
             return s.error();
           return true;
         })
      .status();
}

} // namespace vlora::train
