//===- Backend.h - where a program runs -------------------------*- C++ -*-===//
//
// The one interface between the runtime and a device. A backend owns the
// arena in its memory, places weights and constants where its kernels can
// read them, executes the steps, and copies values to and from the host.
// `cpu` (runtime/cpu) is always built; `cuda` (runtime/cuda) when the CUDA
// toolkit was found at configure time.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_RUNTIME_BACKEND_H
#define VLORA_RUNTIME_BACKEND_H

#include "runtime/Error.h"
#include "runtime/Program.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace vlora::runtime {

/// Device memory of this process's backends on one device (bytes):
/// `predicted` from runtime/DeviceMemory.h for the programs prepared so far,
/// `measured` the most the device had in use beyond what it had in use
/// before the first of them allocated (sampled after prepare and after every
/// run, with the stream-ordered pool keeping its high-water mark).
struct DeviceMemoryUse {
  uint64_t predicted = 0, measured = 0;
};

class Backend {
public:
  virtual ~Backend() = default;
  virtual const char *name() const = 0;

  /// Refuses steps whose kernel/element types the backend lacks (errors name
  /// the step), allocates the arena and places the weights (`weights[i]` is
  /// plan weight i's bytes in host memory, aligned to its element size; they
  /// outlive the backend). `program` outlives the backend.
  virtual Status prepare(const Program &program,
                         const std::vector<const void *> &weights) = 0;
  /// Copies `bytes` (the value's size) from the host into arena value `value`.
  virtual Status write(uint32_t value, const void *host) = 0;
  /// Executes every step in order.
  virtual Status run() = 0;
  /// Executes step `index` alone, after the steps before it (differential
  /// checks run two backends side by side, step by step). Errors name the
  /// step.
  virtual Status runStep(size_t index) = 0;
  /// Copies value `value` (any storage) to the host.
  virtual Status read(uint32_t value, void *host) = 0;
  /// Where value `value` lives in this backend's memory (host memory for
  /// `cpu`, device memory for `cuda`): the source of copyIn() between
  /// backends of one kind.
  virtual const void *address(uint32_t value) const = 0;
  /// Copies each copy's value bytes from `source` (an address() of this
  /// backend or of another of the same kind whose work has finished) into
  /// arena value `value`, without passing through the host. Every source is
  /// read before any value is written: a program's outputs may share arena
  /// bytes with its inputs.
  struct Copy {
    uint32_t value;
    const void *source;
  };
  virtual Status copyIn(const std::vector<Copy> &copies) = 0;
  /// Zeroes arena value `value`.
  virtual Status zero(uint32_t value) = 0;
  /// The device memory of this process's backends of this kind; false for
  /// host backends.
  virtual bool deviceMemory(DeviceMemoryUse &use) const {
    (void)use;
    return false;
  }
};

/// "cpu" or "cuda"; errors list the known devices, say when this build has
/// no CUDA and when no CUDA device is usable.
Expected<std::unique_ptr<Backend>> createBackend(const std::string &device);

std::unique_ptr<Backend> createCpuBackend();

/// Only in builds with CUDA (VLORA_HAVE_CUDA): fails when no CUDA device is
/// usable (no driver, no device).
Expected<std::unique_ptr<Backend>> createCudaBackend();

} // namespace vlora::runtime

#endif // VLORA_RUNTIME_BACKEND_H
