//===- Primitives.cuh - what every CUDA kernel file shares ------*- CUDA -*-===//
//
// Error messages naming the kernel and the shape, element loads/stores for
// fp32 and bf16 (fp32 arithmetic), warp/block reductions and the dtype
// dispatch of the host entry points.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_KERNELS_CUDA_PRIMITIVES_CUH
#define VLORA_KERNELS_CUDA_PRIMITIVES_CUH

#include "vlora/kernels/cuda/Device.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <sstream>
#include <string>

namespace vlora::kernels::cuda::detail {

using bf16 = __nv_bfloat16;

/// "name [k=v, ...]" built from key/value pairs.
class ShapeText {
public:
  explicit ShapeText(const char *kernel) : text_(std::string(kernel) + " [") {}
  template <typename V> ShapeText &operator()(const char *key, const V &value) {
    std::ostringstream item;
    item << (first_ ? "" : ", ") << key << "=" << value;
    text_ += item.str();
    first_ = false;
    return *this;
  }
  ShapeText &dtype(DType dtype) { return (*this)("dtype", dtypeText(dtype)); }
  std::string str() const { return text_ + "]"; }
  static const char *dtypeText(DType dtype) {
    switch (dtype) {
    case DType::F32: return "f32";
    case DType::BF16: return "bf16";
    default: return "unsupported";
    }
  }

private:
  std::string text_;
  bool first_ = true;
};

inline Status fail(const ShapeText &shape, const std::string &why) {
  return Status::failure("cuda kernel " + shape.str() + ": " + why);
}
inline Status check(cudaError_t error, const ShapeText &shape,
                    const char *what) {
  if (error == cudaSuccess)
    return Status::success();
  return fail(shape, std::string(what) + " failed: " + cudaGetErrorName(error) +
                         " (" + cudaGetErrorString(error) + ")");
}
/// After a launch: reports configuration errors (asynchronous faults surface
/// at the next synchronisation).
inline Status checkLaunch(const ShapeText &shape) {
  return check(cudaGetLastError(), shape, "kernel launch");
}

inline bool aligned(const void *p, size_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}
inline bool isFloatType(DType dtype) {
  return dtype == DType::F32 || dtype == DType::BF16;
}
inline size_t elementBytes(DType dtype) { return dtype == DType::F32 ? 4 : 2; }

inline cudaStream_t streamOf(Context &ctx) {
  return static_cast<cudaStream_t>(ctx.stream());
}

/// Calls f(T{}) with T = float or bf16.
template <typename F> Status dispatchFloat(DType dtype, F &&f) {
  if (dtype == DType::BF16)
    return f(bf16{});
  return f(float{});
}

__device__ __forceinline__ float load(const float *p) { return *p; }
__device__ __forceinline__ float load(const bf16 *p) {
  return __bfloat162float(*p);
}
__device__ __forceinline__ void store(float *p, float v) { *p = v; }
__device__ __forceinline__ void store(bf16 *p, float v) {
  *p = __float2bfloat16_rn(v);
}

__device__ __forceinline__ float warpSum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
__device__ __forceinline__ float warpMax(float v) {
  for (int offset = 16; offset > 0; offset >>= 1)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

/// Sum over the block (blockDim.x a multiple of 32, at most 1024); every
/// thread gets the result. `scratch` is 32 floats of shared memory.
__device__ __forceinline__ float blockSum(float v, float *scratch) {
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  v = warpSum(v);
  __syncthreads(); // scratch may still be read from a previous call
  if (lane == 0)
    scratch[warp] = v;
  __syncthreads();
  int warps = blockDim.x / 32;
  v = lane < warps ? scratch[lane] : 0.f;
  return warpSum(v);
}
__device__ __forceinline__ float blockMax(float v, float *scratch) {
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  v = warpMax(v);
  __syncthreads();
  if (lane == 0)
    scratch[warp] = v;
  __syncthreads();
  int warps = blockDim.x / 32;
  v = lane < warps ? scratch[lane] : -INFINITY;
  return warpMax(v);
}

inline unsigned blocksFor(int64_t n, int threads, int64_t cap = 65535LL * 16) {
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks < 1)
    blocks = 1;
  return static_cast<unsigned>(blocks < cap ? blocks : cap);
}

} // namespace vlora::kernels::cuda::detail

#endif // VLORA_KERNELS_CUDA_PRIMITIVES_CUH
