//===- Device.h - status, context and buffers of the CUDA kernels -*- C++ -*-===//
//
// The host side of the CUDA kernel library. No CUDA type appears in these
// headers: streams are `void *` (a cudaStream_t), device memory is `void *`.
// Every entry point validates its shapes before launching and returns a
// Status whose message names the kernel and the shape; every CUDA and
// cuBLASLt status is checked and turned into such a message.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_KERNELS_CUDA_DEVICE_H
#define VLORA_KERNELS_CUDA_DEVICE_H

#include "vlora/kernels/Tensor.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace vlora::kernels::cuda {

/// Success, or a one-line message naming the kernel, the shape and the cause.
class [[nodiscard]] Status {
public:
  Status() = default;
  static Status success() { return Status(); }
  static Status failure(std::string message) {
    Status status;
    status.message_ = std::move(message);
    return status;
  }
  bool ok() const { return !message_; }
  explicit operator bool() const { return ok(); }
  /// Only when !ok().
  const std::string &message() const { return *message_; }

private:
  std::optional<std::string> message_;
};

/// The number of CUDA devices, or a failure saying why there is none usable
/// (no driver, no device).
Status deviceCount(int &count);

/// One stream, a cuBLASLt handle and its workspace on the current device.
/// Kernels are launched on the stream asynchronously.
class Context {
public:
  /// `stream` is a cudaStream_t; null means the legacy default stream.
  static Status create(std::unique_ptr<Context> &out, void *stream = nullptr);
  ~Context();
  Context(const Context &) = delete;
  Context &operator=(const Context &) = delete;

  void *stream() const;
  /// On (the default), the first use of each GEMM problem times cuBLASLt's
  /// candidate algorithms and keeps the fastest; off keeps the heuristic's
  /// first choice. Timing runs into scratch memory, never into the caller's
  /// output, and is skipped while the stream is being captured.
  void setGemmAutotuning(bool on);
  /// On (the default), the LoRA backward runs its dA and dB products on a
  /// second stream beside the dx GEMM; off runs everything on stream().
  void setLoraOverlap(bool on);
  /// Waits for everything launched on the stream; reports asynchronous
  /// kernel failures.
  Status synchronize();

  struct Impl;
  Impl &impl() { return *impl_; }

private:
  explicit Context(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Owned device memory (tests, benchmarks, the CUDA backend's arena).
class DeviceBuffer {
public:
  DeviceBuffer() = default;
  static Status allocate(size_t bytes, DeviceBuffer &out);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer &&other) noexcept;
  DeviceBuffer &operator=(DeviceBuffer &&other) noexcept;
  DeviceBuffer(const DeviceBuffer &) = delete;
  DeviceBuffer &operator=(const DeviceBuffer &) = delete;

  void *data() const { return data_; }
  template <typename T> T *as() const { return static_cast<T *>(data_); }
  size_t bytes() const { return bytes_; }
  /// Synchronous copies of the first `bytes` bytes.
  Status upload(const void *host, size_t bytes);
  Status download(void *host, size_t bytes) const;
  Status zero();

private:
  void *data_ = nullptr;
  size_t bytes_ = 0;
};

} // namespace vlora::kernels::cuda

#endif // VLORA_KERNELS_CUDA_DEVICE_H
