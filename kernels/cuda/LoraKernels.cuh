//===- LoraKernels.cuh - the LoRA layer's skinny products -------*- CUDA -*-===//
//
// The rank-r products of the LoRA linear layer on tensor cores
// (mma.sync m16n8k16, bf16 in, fp32 accumulate), memory-bound by design:
//  - loraDown:  out[m, r] = scale · R[m, K] · P[r, K]ᵀ   (u = s·x·Aᵀ, g = s·dy·B)
//  - loraTN:    out[r, C] = Σ_j L[j, r]ᵀ · R[j, C]        (dA = gᵀ·x, dB = (uᵀ·dy)ᵀ)
// cuBLASLt runs these shapes (N or M = r = 16) well below the bandwidth a
// single pass over R needs; these stream R once through shared memory with
// cp.async. Used when r is a multiple of 8 up to 64 and every row is 16-byte
// aligned; Gemm.cu falls back to cuBLASLt otherwise.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_KERNELS_CUDA_LORAKERNELS_CUH
#define VLORA_KERNELS_CUDA_LORAKERNELS_CUH

#include "Primitives.cuh"

namespace vlora::kernels::cuda::detail {

/// The skinny kernels' preconditions: r a multiple of 8 in [8, 64], every
/// leading dimension and column offset a multiple of 8 elements, every base
/// 16-byte aligned.
bool loraSkinnySupported(int64_t r, std::initializer_list<int64_t> multiplesOf8,
                         std::initializer_list<const void *> bases);

/// out[i, c] (i < m, c < r; bf16, leading dimension ldo) = scale · Σ_k
/// R[i, k] · P(c, k), where P(c, k) = p[c·ldp + k] (pTransposed = false) or
/// p[k·ldp + c] (true). R bf16 [m, K] with leading dimension ldr.
Status loraDown(cudaStream_t stream, const ShapeText &shape, int64_t m,
                int64_t K, int64_t r, const bf16 *R, int64_t ldr,
                const bf16 *p, int64_t ldp, bool pTransposed, float scale,
                bf16 *out, int64_t ldo);

/// out (fp32) = Σ_j L[j, i] · R[j, c] over j < m, for i < r, c < C: written
/// at out[i·C + c] (transposeOut = false: [r, C]) or out[c·r + i] ([C, r]),
/// added to what is there when accumulate. L bf16 [m, r] (ldl), R bf16
/// [m, C] (ldr). `workspace` (fp32 partial sums) holds `workspaceBytes`.
Status loraTN(cudaStream_t stream, const ShapeText &shape, int64_t m,
              int64_t r, int64_t C, const bf16 *L, int64_t ldl, const bf16 *R,
              int64_t ldr, float *out, bool transposeOut, bool accumulate,
              void *workspace, size_t workspaceBytes);

} // namespace vlora::kernels::cuda::detail

#endif // VLORA_KERNELS_CUDA_LORAKERNELS_CUH
