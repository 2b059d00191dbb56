//===- Runtime.h - open a bundle, bind inputs, run, read outputs -*- C++ -*-===//
//
//   auto rt = Runtime::open("bundle/", "cpu");            // the forward plan.pb
//   auto ts = Runtime::open("bundle/", "cpu", "train_step"); // a "programs" entry
//   if (!rt) report(rt.message());
//   (*rt)->setInput("pixel_values", DType::F32, {2, 3, 32, 32}, data, bytes);
//   (*rt)->run();
//   auto logits = (*rt)->output("logits");
//
// Every failure is an Error naming the file, tensor or step; nothing here
// aborts on bad input.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_RUNTIME_RUNTIME_H
#define VLORA_RUNTIME_RUNTIME_H

#include "runtime/Backend.h"
#include "runtime/Error.h"
#include "runtime/Manifest.h"
#include "runtime/MappedFile.h"
#include "runtime/Program.h"

#include <memory>
#include <string>
#include <vector>

namespace vlora::runtime {

class Runtime {
public:
  /// Opens a bundle folder (manifest.json + plans): checks the manifest,
  /// the plan, that every weight file exists with the size and hash recorded
  /// at compile time, maps the weights and prepares the backend. `program`
  /// "" is the forward plan.pb; any other name is an entry of the manifest's
  /// "programs" (its own plan file, plan_hash, inputs/outputs, arena_bytes).
  /// A weight file's hash is computed once per process for the same (path,
  /// size, mtime), so opening several programs of a bundle hashes once.
  static Expected<std::unique_ptr<Runtime>> open(const std::string &bundleDir,
                                                 const std::string &device = "cpu",
                                                 const std::string &program = "");

  /// Runs an already validated program without a manifest (tests, embedding):
  /// MODEL weights are relative to `modelRoot`, BUNDLE ones to `bundleRoot`.
  static Expected<std::unique_ptr<Runtime>> create(Program program,
                                                   const std::string &modelRoot,
                                                   const std::string &bundleRoot,
                                                   const std::string &device = "cpu");

  /// The graph's inputs and outputs, in plan order.
  const std::vector<TensorInfo> &inputs() const { return inputs_; }
  const std::vector<TensorInfo> &outputs() const { return outputs_; }
  const Program &program() const { return program_; }
  /// The bundle's manifest (empty for create()).
  const Manifest &manifest() const { return manifest_; }

  /// Replaces BUNDLE-root weights (the adapters) by the tensors of the same
  /// name in the safetensors file `path` (e.g. a PEFT
  /// adapter_model.safetensors). Every tensor of the file must name a
  /// BUNDLE-root weight of the program with the same dtype and shape, and
  /// every BUNDLE-root weight must be in the file; errors name the file and
  /// tensor. Inputs must be set again afterwards.
  Status replaceBundleWeights(const std::string &path);

  /// Copies an input in; dtype and shape must be the compiled ones.
  Status setInput(const std::string &name, kernels::DType dtype,
                  const kernels::Shape &shape, const void *data, size_t bytes);
  /// Runs the program; every input must have been set.
  Status run();
  /// Sets each input `first` from `source`'s output (after its run) or
  /// input `second` of the same element type and shape, on the device (both
  /// runtimes on the same device; `source` may be this runtime: every source
  /// is read before any input is written). The training loop passes
  /// adapters, gradients and optimizer state between train_step and
  /// optimizer_step this way. Nothing is written when a pair is refused.
  Status setInputsFrom(const std::vector<std::pair<std::string, std::string>> &pairs,
                       const Runtime &source);
  /// Sets input `name` to zeros, on the device.
  Status setInputZero(const std::string &name);
  /// The device memory of this process's backends (Backend::deviceMemory);
  /// false on the CPU.
  bool deviceMemory(DeviceMemoryUse &use) const;
  /// The bytes of an output after run().
  Expected<std::vector<uint8_t>> output(const std::string &name) const;

  Runtime(const Runtime &) = delete;
  Runtime &operator=(const Runtime &) = delete;

  /// Use open() or create().
  struct Private {};
  explicit Runtime(Private) {}

private:
  Status initialise(const std::string &modelRoot, const std::string &bundleRoot,
                    const std::string &device);

  Program program_;
  Manifest manifest_;
  std::vector<TensorInfo> inputs_, outputs_;
  std::vector<bool> inputSet_;
  bool ran_ = false;
  std::vector<MappedFile> files_;
  std::vector<std::vector<uint64_t>> alignedCopies_;
  std::vector<const void *> weights_; // plan weight i's bytes
  std::string device_;
  std::unique_ptr<Backend> backend_;
};

/// "F32[2, 3]": the safetensors spelling users see in their files.
std::string userTypeString(kernels::DType dtype, const kernels::Shape &shape);

} // namespace vlora::runtime

#endif // VLORA_RUNTIME_RUNTIME_H
