//===- Device.cu - context, buffers and device queries --------------------===//

#include "ContextImpl.h"
#include "OpsCommon.cuh"
#include "vlora/kernels/cuda/Ops.h"
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
  if (impl_->dataError)
    cudaFree(impl_->dataError);
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
  if (Status s = check(cudaMalloc(&i.dataError, sizeof(detail::DataError)),
                       shape, "cudaMalloc(data error)");
      !s) {
    i.dataError = nullptr;
    return s;
  }
  if (Status s = check(cudaMemset(i.dataError, 0, sizeof(detail::DataError)),
                       shape, "cudaMemset(data error)");
      !s)
    return s;
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

namespace detail {
const char *opIdName(OpId op) {
  switch (op) {
  case OpId::Gather: return "gather";
  case OpId::GatherGrad: return "gather_grad";
  case OpId::GatherElements: return "gather_elements";
  case OpId::GatherND: return "gather_nd";
  case OpId::ScatterND: return "scatter_nd";
  case OpId::MaskedScatter: return "masked_scatter";
  case OpId::MaskedSelect: return "masked_select";
  case OpId::CrossEntropy: return "cross_entropy";
  case OpId::CrossEntropyGrad: return "cross_entropy_grad";
  case OpId::LinearCrossEntropy: return "linear_cross_entropy";
  case OpId::AdamW: return "adamw_update";
  case OpId::Binary: return "binary";
  case OpId::Embedding: return "embedding";
  }
  return "op";
}

DataError *dataErrorOf(Context &ctx) {
  return static_cast<DataError *>(ctx.impl().dataError);
}
} // namespace detail

Status ops::takeDataError(Context &ctx) {
  ShapeText shape("takeDataError");
  if (Status s = ctx.synchronize(); !s)
    return s;
  detail::DataError record{};
  if (Status s = check(cudaMemcpy(&record, ctx.impl().dataError, sizeof(record),
                                  cudaMemcpyDeviceToHost),
                       shape, "cudaMemcpy(data error)");
      !s)
    return s;
  if (record.code == 0)
    return Status::success();
  // Cleared on the context's stream (which may not synchronise with the
  // legacy default stream), then waited for, so no later kernel sees it.
  if (Status s = check(cudaMemsetAsync(ctx.impl().dataError, 0, sizeof(record),
                                       ctx.impl().stream),
                       shape, "cudaMemsetAsync(data error)");
      !s)
    return s;
  if (Status s = ctx.synchronize(); !s)
    return s;
  std::string op = detail::opIdName(static_cast<detail::OpId>(record.op));
  std::string v = std::to_string(record.value), lo = std::to_string(record.lo),
              hi = std::to_string(record.hi);
  using detail::DataErrorCode;
  switch (static_cast<DataErrorCode>(record.code)) {
  case DataErrorCode::IndexOutOfRange:
    return Status::failure(op + ": index " + v + " is outside [" + lo + ", " +
                           hi + ")");
  case DataErrorCode::LabelOutOfRange:
    return Status::failure(op + ": label " + v + " is outside [0, " + hi +
                           ") and is not the ignore index");
  case DataErrorCode::TooManyTrueValues:
    return Status::failure(op + ": the mask has " + v +
                           " true values, more than the " + hi +
                           " elements of the output");
  case DataErrorCode::TooFewSourceValues:
    return Status::failure(op + ": the mask needs " + v +
                           " source values, the source has " + hi);
  case DataErrorCode::BadStep:
    return Status::failure(op + ": step " + v + " is below 1");
  case DataErrorCode::NegativeScalar:
    return Status::failure(op + ": the learning rate or weight decay is "
                                "negative");
  case DataErrorCode::DivisionByZero:
    return Status::failure(op + ": integer division by zero");
  default:
    return Status::failure(op + ": data error " +
                           std::to_string(record.code));
  }
}

} // namespace vlora::kernels::cuda
