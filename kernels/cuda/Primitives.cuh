//===- Primitives.cuh - what every CUDA kernel file shares ------*- CUDA
//-*-===//
//
// Error messages naming the kernel and the shape, element loads/stores for
// fp32 and bf16 (fp32 arithmetic), 16-byte vector loads/stores, warp/block
// reductions and the dtype dispatch of the host entry points.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_KERNELS_CUDA_PRIMITIVES_CUH
#define VLORA_KERNELS_CUDA_PRIMITIVES_CUH

#include "vlora/kernels/cuda/Device.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>
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

//===----------------------------------------------------------------------===//
// 16-byte vector access
//===----------------------------------------------------------------------===//

/// The elements of T one 16-byte access moves (4 fp32 or 8 bf16) and the
/// register type that holds them as loaded.
template <typename T> struct Pack;
template <> struct Pack<float> {
  static constexpr int kSize = 4;
  using Raw = float4;
};
template <> struct Pack<bf16> {
  static constexpr int kSize = 8;
  using Raw = uint4;
};
template <typename T> using RawPack = typename Pack<T>::Raw;

/// One 16-byte load or store; p must be 16-byte aligned.
template <typename T>
__device__ __forceinline__ RawPack<T> loadRaw(const T *p) {
  return *reinterpret_cast<const RawPack<T> *>(p);
}
template <typename T>
__device__ __forceinline__ void storeRaw(T *p, const RawPack<T> &v) {
  *reinterpret_cast<RawPack<T> *>(p) = v;
}
template <typename T> __device__ __forceinline__ RawPack<T> zeroRaw() {
  return RawPack<T>{};
}

/// Element e (a constant after unrolling) of a loaded pack, as fp32.
__device__ __forceinline__ float element(const float4 &v, int e) {
  return e == 0 ? v.x : e == 1 ? v.y : e == 2 ? v.z : v.w;
}
__device__ __forceinline__ float element(const uint4 &v, int e) {
  uint32_t word = e < 2 ? v.x : e < 4 ? v.y : e < 6 ? v.z : v.w;
  // bf16 is the upper half of an fp32; element 2k is the low half-word.
  return __uint_as_float(e % 2 ? word & 0xffff0000u : word << 16);
}

/// Two fp32 values rounded to bf16 (as store() rounds) in one 32-bit word.
__device__ __forceinline__ uint32_t packBF16x2(float lo, float hi) {
  __nv_bfloat162 pair = __floats2bfloat162_rn(lo, hi);
  return static_cast<uint32_t>(__bfloat16_as_ushort(pair.x)) |
         static_cast<uint32_t>(__bfloat16_as_ushort(pair.y)) << 16;
}
/// A pack from fp32 values (rounded to nearest for bf16).
__device__ __forceinline__ float4 toRaw(const float (&v)[4]) {
  return make_float4(v[0], v[1], v[2], v[3]);
}
__device__ __forceinline__ uint4 toRaw(const float (&v)[8]) {
  return make_uint4(packBF16x2(v[0], v[1]), packBF16x2(v[2], v[3]),
                    packBF16x2(v[4], v[5]), packBF16x2(v[6], v[7]));
}

/// N consecutive elements (N a multiple of the pack size) held as loaded:
/// load() issues every 16-byte load before anything uses them.
template <typename T, int N> struct Packs {
  static constexpr int kWidth = Pack<T>::kSize, kCount = N / kWidth;
  static_assert(N % Pack<T>::kSize == 0, "whole packs only");
  RawPack<T> raw[kCount];

  __device__ __forceinline__ void load(const T *p) {
#pragma unroll
    for (int k = 0; k < kCount; ++k)
      raw[k] = loadRaw(p + k * kWidth);
  }
  /// load() where `valid`, zeros elsewhere (a predicated load, no branch).
  __device__ __forceinline__ void loadIf(bool valid, const T *p) {
#pragma unroll
    for (int k = 0; k < kCount; ++k)
      raw[k] = valid ? loadRaw(p + k * kWidth) : zeroRaw<T>();
  }
  __device__ __forceinline__ float operator[](int e) const {
    return element(raw[e / kWidth], e % kWidth);
  }
};
/// Stores N fp32 values as T through 16-byte stores (p 16-byte aligned).
template <typename T, int N>
__device__ __forceinline__ void storePacks(T *p, const float (&v)[N]) {
  constexpr int kWidth = Pack<T>::kSize;
  static_assert(N % kWidth == 0, "whole packs only");
#pragma unroll
  for (int k = 0; k < N / kWidth; ++k) {
    float part[kWidth];
#pragma unroll
    for (int e = 0; e < kWidth; ++e)
      part[e] = v[k * kWidth + e];
    storeRaw(p + k * kWidth, toRaw(part));
  }
}

inline bool aligned16(std::initializer_list<const void *> pointers) {
  for (const void *p : pointers)
    if (!aligned(p, 16))
      return false;
  return true;
}

} // namespace vlora::kernels::cuda::detail

#endif // VLORA_KERNELS_CUDA_PRIMITIVES_CUH
