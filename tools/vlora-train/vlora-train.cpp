//===- vlora-train.cpp - LoRA training on a compiled training bundle ------===//
//
//   vlora-train BUNDLE/ --data TRAIN.safetensors --output-dir OUT/
//               [--device cpu|cuda] [transformers-style options, see --help]
//
// BUNDLE/ comes from `vlora-compile MODEL.onnx -o BUNDLE/ --train`; the
// dataset and the outputs are described in docs/training.md. Writes
// OUT/adapter_model.safetensors + OUT/adapter_config.json (PEFT),
// OUT/metrics.jsonl, OUT/loss.png and OUT/checkpoint-N/ folders. Any problem
// is one line "vlora-train: error: ..." and exit status 1.
//
//===----------------------------------------------------------------------===//

#include "runtime/train/TrainOptions.h"
#include "runtime/train/Trainer.h"

#include <cstdio>
#include <exception>
#include <string>
#include <unistd.h>
#include <vector>

using namespace vlora;

namespace {
int fail(const std::string &message) {
  std::fprintf(stderr, "vlora-train: error: %s\n", message.c_str());
  return 1;
}

int runMain(int argc, char **argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  runtime::Expected<train::TrainOptions> options = train::parseTrainOptions(args);
  if (!options) {
    std::fprintf(stderr, "vlora-train: error: %s\n%s", options.message().c_str(),
                 train::trainUsage().c_str());
    return 1;
  }
  if (options->help) {
    std::printf("%s", train::trainUsage().c_str());
    return 0;
  }
  if (runtime::Status s = train::runTraining(*options, stderr, ::isatty(STDERR_FILENO) == 1);
      !s)
    return fail(s.message());
  return 0;
}
} // namespace

int main(int argc, char **argv) {
  try {
    return runMain(argc, argv);
  } catch (const std::exception &e) {
    return fail(std::string("internal error: ") + e.what());
  } catch (...) {
    return fail("internal error");
  }
}
