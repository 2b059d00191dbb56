//===- vlora-run.cpp - runs a compiled bundle's forward program -----------===//
//
//   vlora-run BUNDLE/ --inputs IN.safetensors --outputs OUT.safetensors
//             [--device cpu|cuda] [--adapter PATH] [--program NAME]
//             [--warmup N] [--repeat N] [--report-memory]
//
// --program NAME: run one of a training bundle's other programs
// (train_step, optimizer_step; docs/training.md) instead of the forward:
// its inputs and outputs are named as in the manifest's "programs" entry.
//
// --adapter PATH: run with trained adapters instead of the bundle's initial
// ones: a PEFT adapter_model.safetensors (what vlora-train writes) or a
// folder holding one. Its tensors must be exactly the bundle's adapters.
//
// --warmup/--repeat (benchmarking): after loading, run the forward N warmup
// times untimed, then --repeat times timed (the inputs are copied in again
// before each run, outside the timing), and print each run's wall time and
// the median in ms on stdout. The outputs written are the last run's.
//
// Input and output tensors are named as the ONNX graph's inputs and outputs,
// with the dtypes and shapes in the bundle's manifest. Any problem is one
// line naming the file or tensor and exit status 1; the output file is
// written atomically.
//
//===----------------------------------------------------------------------===//

#include "runtime/Runtime.h"
#include "runtime/Safetensors.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/stat.h>
#include <vector>

using namespace vlora::runtime;

namespace {
int usage(const char *message) {
  std::fprintf(stderr,
               "vlora-run: error: %s\n"
               "usage: vlora-run BUNDLE/ --inputs IN.safetensors --outputs "
               "OUT.safetensors [--device cpu|cuda] [--adapter PATH] [--program NAME] [--warmup N] "
               "[--repeat N] [--report-memory]\n",
               message);
  return 1;
}

int fail(const std::string &message) {
  std::fprintf(stderr, "vlora-run: error: %s\n", message.c_str());
  return 1;
}

int runMain(int argc, char **argv) {
  std::string bundle, inputs, outputs, adapter, program, device = "cpu";
  std::string warmupText, repeatText;
  bool reportMemory = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](std::string &out) {
      if (i + 1 >= argc)
        return false;
      out = argv[++i];
      return true;
    };
    if (arg == "--help" || arg == "-h") {
      std::printf("usage: vlora-run BUNDLE/ --inputs IN.safetensors --outputs "
                  "OUT.safetensors [--device cpu|cuda] [--adapter PATH] [--program NAME] "
                  "[--warmup N] [--repeat N] [--report-memory]\n");
      return 0;
    }
    if (arg == "--inputs") {
      if (!value(inputs))
        return usage("--inputs needs a file");
    } else if (arg == "--outputs") {
      if (!value(outputs))
        return usage("--outputs needs a file");
    } else if (arg == "--device") {
      if (!value(device))
        return usage("--device needs a name");
    } else if (arg == "--adapter") {
      if (!value(adapter))
        return usage("--adapter needs a file or folder");
    } else if (arg == "--program") {
      if (!value(program))
        return usage("--program needs a name");
    } else if (arg.rfind("--program=", 0) == 0) {
      program = arg.substr(10);
    } else if (arg.rfind("--adapter=", 0) == 0) {
      adapter = arg.substr(10);
    } else if (arg == "--report-memory") {
      reportMemory = true;
    } else if (arg == "--warmup") {
      if (!value(warmupText))
        return usage("--warmup needs a count");
    } else if (arg == "--repeat") {
      if (!value(repeatText))
        return usage("--repeat needs a count");
    } else if (arg.rfind("--inputs=", 0) == 0) {
      inputs = arg.substr(9);
    } else if (arg.rfind("--outputs=", 0) == 0) {
      outputs = arg.substr(10);
    } else if (arg.rfind("--device=", 0) == 0) {
      device = arg.substr(9);
    } else if (!arg.empty() && arg[0] == '-') {
      return usage(("unknown option " + arg).c_str());
    } else if (bundle.empty()) {
      bundle = arg;
    } else {
      return usage(("unexpected argument " + arg).c_str());
    }
  }
  if (bundle.empty())
    return usage("no bundle folder given");
  if (inputs.empty())
    return usage("no --inputs file given");
  if (outputs.empty())
    return usage("no --outputs file given");
  auto count = [](const std::string &text, long &out) {
    if (text.empty())
      return true;
    char *end = nullptr;
    out = std::strtol(text.c_str(), &end, 10);
    return *end == '\0' && out >= 0 && out <= 1000000;
  };
  long warmup = 0, repeat = 0;
  if (!count(warmupText, warmup))
    return usage(("bad --warmup count '" + warmupText + "'").c_str());
  if (!count(repeatText, repeat))
    return usage(("bad --repeat count '" + repeatText + "'").c_str());

  Expected<std::unique_ptr<Runtime>> rt = Runtime::open(bundle, device, program);
  if (!rt)
    return fail(rt.message());
  if (!adapter.empty()) {
    struct stat st;
    if (::stat(adapter.c_str(), &st) != 0)
      return fail("--adapter " + adapter + ": " + std::strerror(errno));
    if (S_ISDIR(st.st_mode))
      adapter += (adapter.back() == '/' ? "" : "/") + std::string("adapter_model.safetensors");
    if (Status s = (*rt)->replaceBundleWeights(adapter); !s)
      return fail(s.message());
  }
  Expected<SafetensorsFile> in = SafetensorsFile::open(inputs);
  if (!in)
    return fail(in.message());
  auto bindInputs = [&]() -> Status {
    for (const TensorInfo &t : (*rt)->inputs()) {
      const SafetensorsTensor *given = in->find(t.name);
      if (!given)
        return Error(inputs + ": missing input tensor '" + t.name + "' (" +
                     userTypeString(t.dtype, t.shape) + ")");
      // The mapping may be unaligned; setInput copies with memcpy.
      Status s = (*rt)->setInput(t.name, given->dtype, given->shape,
                                 given->data, given->bytes);
      if (!s)
        return Error(inputs + ": " + s.message());
    }
    return Status::success();
  };
  // The plan may reuse an input's arena bytes in place, so the inputs are
  // bound again before every run.
  std::vector<double> times;
  for (long i = 0, runs = std::max(1L, warmup + repeat); i < runs; ++i) {
    if (Status s = bindInputs(); !s)
      return fail(s.message());
    auto start = std::chrono::steady_clock::now();
    if (Status s = (*rt)->run(); !s)
      return fail(s.message());
    std::chrono::duration<double, std::milli> ms =
        std::chrono::steady_clock::now() - start;
    if (i >= warmup)
      times.push_back(ms.count());
  }
  if (repeat > 0) {
    for (size_t i = 0; i < times.size(); ++i)
      std::printf("run %zu: %.3f ms\n", i + 1, times[i]);
    std::vector<double> sorted = times;
    std::sort(sorted.begin(), sorted.end());
    size_t n = sorted.size();
    double median = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    std::printf("median: %.3f ms (min %.3f, max %.3f, %zu runs, %ld warmup)\n",
                median, sorted.front(), sorted.back(), n, warmup);
  }

  std::vector<std::vector<uint8_t>> buffers;
  std::vector<SafetensorsEntry> entries;
  for (const TensorInfo &t : (*rt)->outputs()) {
    Expected<std::vector<uint8_t>> bytes = (*rt)->output(t.name);
    if (!bytes)
      return fail(bytes.message());
    buffers.push_back(std::move(*bytes));
    entries.push_back({t.name, t.dtype, t.shape, buffers.back().data()});
  }
  if (Status s = writeSafetensors(outputs, entries); !s)
    return fail(s.message());
  // The device memory the run took against vlora-compile --report-memory's
  // prediction (runtime/DeviceMemory.h); the CPU has no such figure.
  if (reportMemory) {
    DeviceMemoryUse memory;
    if ((*rt)->deviceMemory(memory))
      std::printf("device memory: %llu bytes at the peak, predicted %llu bytes\n",
                  static_cast<unsigned long long>(memory.measured),
                  static_cast<unsigned long long>(memory.predicted));
    else
      std::printf("device memory: none (device %s)\n", device.c_str());
  }
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
