//===- Device.cu - context, buffers and device queries --------------------===//

#include "ContextImpl.h"
#include "Primitives.cuh"

namespace vlora::kernels::cuda {
using detail::check;
using detail::ShapeText;

Status deviceCount(int &count) {
  count = 0;
  cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess) {
    count = 0;
    cudaGetLastError(); // clear the sticky-free error
    return Status::failure(std::string("no usable CUDA device: ") +
                           cudaGetErrorName(error) + " (" +
                           cudaGetErrorString(error) + ")");
  }
  if (count == 0)
    return Status::failure("no CUDA device found");
  return Status::success();
}

Context::Context(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Context::~Context() {
  for (auto &[key, plan] : impl_->gemmPlans) {
    for (cublasLtMatrixLayout_t layout : plan.layouts)
      if (layout)
        cublasLtMatrixLayoutDestroy(layout);
    if (plan.desc)
      cublasLtMatmulDescDestroy(plan.desc);
  }
  if (impl_->fork)
    cudaEventDestroy(impl_->fork);
  if (impl_->join)
    cudaEventDestroy(impl_->join);
  if (impl_->side)
    cudaStreamDestroy(impl_->side);
  if (impl_->sideWorkspace)
    cudaFree(impl_->sideWorkspace);
  if (impl_->workspace)
    cudaFree(impl_->workspace);
  if (impl_->lt)
    cublasLtDestroy(impl_->lt);
}

Status Context::create(std::unique_ptr<Context> &out, void *stream) {
  ShapeText shape("Context::create");
  auto impl = std::make_unique<Impl>();
  impl->stream = static_cast<cudaStream_t>(stream);
  // Own the resources before anything can fail so the destructor frees them.
  std::unique_ptr<Context> ctx(new Context(std::move(impl)));
  Impl &i = ctx->impl();
  cublasStatus_t lt = cublasLtCreate(&i.lt);
  if (lt != CUBLAS_STATUS_SUCCESS) {
    i.lt = nullptr;
    return detail::fail(shape, "cublasLtCreate failed with status " +
                                   std::to_string(static_cast<int>(lt)));
  }
  if (Status s = check(cudaMalloc(&i.workspace, Impl::kWorkspaceBytes), shape,
                       "cudaMalloc(workspace)");
      !s) {
    i.workspace = nullptr;
    return s;
  }
  if (Status s = check(cudaMalloc(&i.sideWorkspace, Impl::kWorkspaceBytes),
                       shape, "cudaMalloc(side workspace)");
      !s) {
    i.sideWorkspace = nullptr;
    return s;
  }
  int device = 0;
  if (Status s = check(cudaGetDevice(&device), shape, "cudaGetDevice"); !s)
    return s;
  if (Status s = check(cudaDeviceGetAttribute(&i.multiprocessors,
                                              cudaDevAttrMultiProcessorCount,
                                              device),
                       shape, "cudaDeviceGetAttribute");
      !s)
    return s;
  // Default priority: a high-priority side stream was measured to slow the
  // dx GEMM more than its own work gained (docs/results.md).
  if (Status s = check(cudaStreamCreateWithFlags(&i.side, cudaStreamNonBlocking),
                       shape, "cudaStreamCreateWithFlags");
      !s) {
    i.side = nullptr;
    return s;
  }
  for (cudaEvent_t *event : {&i.fork, &i.join})
    if (Status s = check(cudaEventCreateWithFlags(event, cudaEventDisableTiming),
                         shape, "cudaEventCreateWithFlags");
        !s) {
      *event = nullptr;
      return s;
    }
  out = std::move(ctx);
  return Status::success();
}

void *Context::stream() const { return impl_->stream; }

void Context::setGemmAutotuning(bool on) { impl_->autotune = on; }
void Context::setLoraOverlap(bool on) { impl_->overlap = on; }

Status Context::synchronize() {
  return check(cudaStreamSynchronize(impl_->stream),
               ShapeText("Context::synchronize"), "cudaStreamSynchronize");
}

Status DeviceBuffer::allocate(size_t bytes, DeviceBuffer &out) {
  DeviceBuffer buffer;
  if (bytes) {
    if (Status s = check(cudaMalloc(&buffer.data_, bytes),
                         ShapeText("DeviceBuffer::allocate")("bytes", bytes),
                         "cudaMalloc");
        !s)
      return s;
  }
  buffer.bytes_ = bytes;
  out = std::move(buffer);
  return Status::success();
}

DeviceBuffer::~DeviceBuffer() {
  if (data_)
    cudaFree(data_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer &&other) noexcept
    : data_(other.data_), bytes_(other.bytes_) {
  other.data_ = nullptr;
  other.bytes_ = 0;
}

DeviceBuffer &DeviceBuffer::operator=(DeviceBuffer &&other) noexcept {
  if (this != &other) {
    if (data_)
      cudaFree(data_);
    data_ = other.data_;
    bytes_ = other.bytes_;
    other.data_ = nullptr;
    other.bytes_ = 0;
  }
  return *this;
}

Status DeviceBuffer::upload(const void *host, size_t bytes) {
  ShapeText shape = ShapeText("DeviceBuffer::upload")("bytes", bytes)(
      "capacity", bytes_);
  if (bytes > bytes_)
    return detail::fail(shape, "more bytes than the buffer holds");
  return check(cudaMemcpy(data_, host, bytes, cudaMemcpyHostToDevice), shape,
               "cudaMemcpy");
}

Status DeviceBuffer::download(void *host, size_t bytes) const {
  ShapeText shape = ShapeText("DeviceBuffer::download")("bytes", bytes)(
      "capacity", bytes_);
  if (bytes > bytes_)
    return detail::fail(shape, "more bytes than the buffer holds");
  return check(cudaMemcpy(host, data_, bytes, cudaMemcpyDeviceToHost), shape,
               "cudaMemcpy");
}

Status DeviceBuffer::zero() {
  return check(cudaMemset(data_, 0, bytes_),
               ShapeText("DeviceBuffer::zero")("bytes", bytes_), "cudaMemset");
}

} // namespace vlora::kernels::cuda
