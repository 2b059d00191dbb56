//===- TrainOptions.cpp - vlora-train's command line ----------------------===//

#include "runtime/train/TrainOptions.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>

namespace vlora::train {
using runtime::Error;
using runtime::Expected;
using runtime::Status;

std::string trainUsage() {
  return "usage: vlora-train BUNDLE/ --data TRAIN.safetensors --output-dir OUT/ [options]\n"
         "  --device cpu|cuda                  (cpu)\n"
         "  --learning-rate F                  (5e-5)\n"
         "  --per-device-train-batch-size N    (the bundle's compiled batch size)\n"
         "  --gradient-accumulation-steps N    (1)\n"
         "  --max-steps N                      (-1: use --num-train-epochs)\n"
         "  --num-train-epochs F               (3)\n"
         "  --warmup-steps N                   (0)\n"
         "  --lr-scheduler-type linear|cosine|constant|constant_with_warmup (linear)\n"
         "  --weight-decay F                   (0)\n"
         "  --max-grad-norm F                  (1; 0 = no clipping)\n"
         "  --seed N                           (42)\n"
         "  --logging-steps N                  (10)\n"
         "  --save-steps N                     (500)\n"
         "  --save-total-limit N               (keep every checkpoint)\n"
         "  --resume-from-checkpoint PATH|latest\n";
}

namespace {
Status parseInt(const std::string &option, const std::string &text, int64_t lo, int64_t hi,
                int64_t &out) {
  errno = 0;
  char *end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE)
    return Error(option + " needs an integer, got '" + text + "'");
  if (v < lo || v > hi)
    return Error(option + " is " + text + ", it must be " +
                 (hi == std::numeric_limits<int64_t>::max()
                      ? ">= " + std::to_string(lo)
                      : "in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]"));
  out = v;
  return Status::success();
}

/// A finite number >= lo (> lo when `open`).
Status parseFloat(const std::string &option, const std::string &text, double lo, bool open,
                  double &out) {
  errno = 0;
  char *end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v))
    return Error(option + " needs a finite number, got '" + text + "'");
  if (open ? !(v > lo) : !(v >= lo))
    return Error(option + " is " + text + ", it must be " + (open ? "> " : ">= ") +
                 (lo == 0 ? std::string("0") : std::to_string(lo)));
  out = v;
  return Status::success();
}
} // namespace

Expected<TrainOptions> parseTrainOptions(const std::vector<std::string> &args) {
  TrainOptions o;
  const int64_t kMax = std::numeric_limits<int64_t>::max();
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i], value;
    bool hasValue = false;
    if (arg == "--help" || arg == "-h") {
      o.help = true;
      return o;
    }
    if (arg.rfind("--", 0) == 0) {
      size_t eq = arg.find('=');
      if (eq != std::string::npos) {
        value = arg.substr(eq + 1);
        arg = arg.substr(0, eq);
        hasValue = true;
      }
    } else {
      if (!o.bundle.empty())
        return Error("unexpected argument '" + arg + "' (the bundle is " + o.bundle + ")");
      o.bundle = arg;
      continue;
    }
    static const char *const known[] = {
        "--data", "--output-dir", "--device", "--learning-rate",
        "--per-device-train-batch-size", "--gradient-accumulation-steps", "--max-steps",
        "--num-train-epochs", "--warmup-steps", "--lr-scheduler-type", "--weight-decay",
        "--max-grad-norm", "--seed", "--logging-steps", "--save-steps",
        "--save-total-limit", "--resume-from-checkpoint"};
    bool isKnown = false;
    for (const char *k : known)
      isKnown |= arg == k;
    if (!isKnown)
      return Error("unknown option " + arg);
    if (!hasValue) {
      if (i + 1 >= args.size())
        return Error(arg + " needs a value");
      value = args[++i];
    }
    Status s;
    int64_t n = 0;
    if (arg == "--data") {
      o.data = value;
    } else if (arg == "--output-dir") {
      o.outputDir = value;
    } else if (arg == "--device") {
      o.device = value;
    } else if (arg == "--learning-rate") {
      s = parseFloat(arg, value, 0, true, o.learningRate);
    } else if (arg == "--per-device-train-batch-size") {
      s = parseInt(arg, value, 1, kMax, o.batchSize);
    } else if (arg == "--gradient-accumulation-steps") {
      s = parseInt(arg, value, 1, 1 << 20, o.gradientAccumulationSteps);
    } else if (arg == "--max-steps") {
      s = parseInt(arg, value, -1, kMax, o.maxSteps);
      if (s && o.maxSteps == 0)
        s = Error("--max-steps is 0, it must be -1 (use --num-train-epochs) or >= 1");
    } else if (arg == "--num-train-epochs") {
      s = parseFloat(arg, value, 0, true, o.numTrainEpochs);
    } else if (arg == "--warmup-steps") {
      s = parseInt(arg, value, 0, kMax, o.warmupSteps);
    } else if (arg == "--lr-scheduler-type") {
      auto kind = parseLRScheduleKind(value);
      if (!kind)
        s = Error("--lr-scheduler-type is '" + value +
                  "', it must be linear, cosine, constant or constant_with_warmup");
      else
        o.scheduler = *kind;
    } else if (arg == "--weight-decay") {
      s = parseFloat(arg, value, 0, false, o.weightDecay);
    } else if (arg == "--max-grad-norm") {
      s = parseFloat(arg, value, 0, false, o.maxGradNorm);
    } else if (arg == "--seed") {
      s = parseInt(arg, value, 0, kMax, n);
      o.seed = static_cast<uint64_t>(n);
    } else if (arg == "--logging-steps") {
      s = parseInt(arg, value, 1, kMax, o.loggingSteps);
    } else if (arg == "--save-steps") {
      s = parseInt(arg, value, 1, kMax, o.saveSteps);
    } else if (arg == "--save-total-limit") {
      s = parseInt(arg, value, 1, kMax, o.saveTotalLimit);
    } else if (arg == "--resume-from-checkpoint") {
      if (value.empty())
        s = Error("--resume-from-checkpoint needs a checkpoint folder or 'latest'");
      o.resumeFrom = value;
    }
    if (!s)
      return s.error();
  }
  if (o.bundle.empty())
    return Error("no bundle folder given");
  if (o.data.empty())
    return Error("no --data file given");
  if (o.outputDir.empty())
    return Error("no --output-dir given");
  return o;
}

} // namespace vlora::train
