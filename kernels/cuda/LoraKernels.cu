//===- LoraKernels.cu - the LoRA layer's skinny products ------------------===//
//
// Fragment layouts are PTX's for mma.m16n8k16 with bf16 operands: with
// g = lane / 4 and q = lane % 4, A's registers hold (row g, k 2q..2q+1),
// (g + 8, 2q), (g, 2q + 8), (g + 8, 2q + 8); B's hold (k 2q..2q+1, n g) and
// (2q + 8, g); C's hold (row g, cols 2q, 2q + 1) and (g + 8, ...). ldmatrix
// hands thread t the word (row t/4, cols 2(t%4)..) of each 8×8 matrix, or
// with .trans the pair (rows 2(t%4)..+1, col t/4).
//
//===----------------------------------------------------------------------===//

#include "LoraKernels.cuh"

#include <algorithm>
#include <type_traits>

namespace vlora::kernels::cuda::detail {

namespace {

__device__ __forceinline__ uint32_t sharedAddress(const void *p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

/// 16 bytes global -> shared; zero-fills when !valid (nothing is read).
__device__ __forceinline__ void copy16(void *shared, const void *global,
                                       bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(
                   sharedAddress(shared)),
               "l"(global), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void commitCopies() {
  asm volatile("cp.async.commit_group;\n" ::);
}
template <int Pending> __device__ __forceinline__ void waitCopies() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending));
}

__device__ __forceinline__ void ldmatrix4(uint32_t (&r)[4], const void *p) {
  asm volatile(
      "ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
      : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
      : "r"(sharedAddress(p)));
}
__device__ __forceinline__ void ldmatrix4Trans(uint32_t (&r)[4],
                                               const void *p) {
  asm volatile(
      "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, "
      "[%4];\n"
      : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
      : "r"(sharedAddress(p)));
}
__device__ __forceinline__ void ldmatrix2(uint32_t (&r)[2], const void *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(sharedAddress(p)));
}
__device__ __forceinline__ void ldmatrix2Trans(uint32_t (&r)[2],
                                               const void *p) {
  asm volatile(
      "ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
      : "=r"(r[0]), "=r"(r[1])
      : "r"(sharedAddress(p)));
}

/// c += a·b for one m16n8k16 tile.
__device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4],
                                    uint32_t b0, uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
               "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
               "{%0, %1, %2, %3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0),
                 "r"(b1));
}

constexpr int kThreads = 128; // 4 warps
constexpr int kStages = 3;

//===----------------------------------------------------------------------===//
// loraDown: 64 rows of R per block (16 per warp), K in tiles of 64.
//===----------------------------------------------------------------------===//

constexpr int kDownRows = 64, kDownK = 64, kDownPitch = kDownK + 8;

template <int NT, bool PT> struct DownLayout {
  static constexpr int kR = NT * 8;
  // P's tile: [kR][kDownK + 8] (PT = false) or [kDownK][kR + 8] (PT = true).
  static constexpr int kPTile = PT ? kDownK * (kR + 8) : kR * kDownPitch;
  static constexpr int kRTile = kDownRows * kDownPitch;
  static constexpr int kStage = kRTile + kPTile; // elements
  static constexpr size_t kBytes = size_t(kStages) * kStage * sizeof(bf16);
};

template <int NT, bool PT>
__global__ void __launch_bounds__(kThreads)
    loraDownKernel(int64_t m, int64_t K, const bf16 *__restrict__ R,
                   int64_t ldr, const bf16 *__restrict__ P, int64_t ldp,
                   float scale, bf16 *__restrict__ out, int64_t ldo) {
  using Layout = DownLayout<NT, PT>;
  constexpr int kR = Layout::kR;
  extern __shared__ __align__(16) unsigned char downShared[];
  bf16 *shared = reinterpret_cast<bf16 *>(downShared);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t row0 = int64_t(blockIdx.x) * kDownRows;
  const int64_t tiles = (K + kDownK - 1) / kDownK;

  auto load = [&](int64_t tile, int stage) {
    bf16 *rs = shared + stage * Layout::kStage, *ps = rs + Layout::kRTile;
    const int64_t k0 = tile * kDownK;
    // R: 64 rows × 8 chunks of 16 bytes.
    for (int c = threadIdx.x; c < kDownRows * 8; c += kThreads) {
      int row = c / 8, chunk = c % 8;
      int64_t gr = row0 + row, gk = k0 + chunk * 8;
      bool valid = gr < m && gk < K;
      copy16(rs + row * kDownPitch + chunk * 8,
             valid ? R + gr * ldr + gk : R, valid);
    }
    if (!PT) { // P rows: kR × 8 chunks
      for (int c = threadIdx.x; c < kR * 8; c += kThreads) {
        int row = c / 8, chunk = c % 8;
        int64_t gk = k0 + chunk * 8;
        bool valid = gk < K;
        copy16(ps + row * kDownPitch + chunk * 8,
               valid ? P + row * ldp + gk : P, valid);
      }
    } else { // Pᵀ rows: kDownK × (kR / 8) chunks
      for (int c = threadIdx.x; c < kDownK * NT; c += kThreads) {
        int row = c / NT, chunk = c % NT;
        int64_t gk = k0 + row;
        bool valid = gk < K;
        copy16(ps + row * (kR + 8) + chunk * 8,
               valid ? P + gk * ldp + chunk * 8 : P, valid);
      }
    }
  };

  float acc[NT][4];
#pragma unroll
  for (int t = 0; t < NT; ++t)
#pragma unroll
    for (int i = 0; i < 4; ++i)
      acc[t][i] = 0.f;

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < tiles)
      load(s, s);
    commitCopies();
  }
  for (int64_t tile = 0; tile < tiles; ++tile) {
    waitCopies<kStages - 2>();
    __syncthreads();
    if (tile + kStages - 1 < tiles)
      load(tile + kStages - 1, int((tile + kStages - 1) % kStages));
    commitCopies();
    const bf16 *rs = shared + int(tile % kStages) * Layout::kStage;
    const bf16 *ps = rs + Layout::kRTile;
#pragma unroll
    for (int kk = 0; kk < kDownK; kk += 16) {
      uint32_t a[4];
      {
        int mi = lane / 8, rr = lane % 8;
        int row = warp * 16 + rr + (mi & 1) * 8, col = kk + (mi >> 1) * 8;
        ldmatrix4(a, rs + row * kDownPitch + col);
      }
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        uint32_t b[2];
        int mi = (lane / 8) & 1, rr = lane % 8;
        if (!PT) // matrices (P rows t·8.., cols kk..), (.., cols kk + 8..)
          ldmatrix2(b, ps + (t * 8 + rr) * kDownPitch + kk + mi * 8);
        else // Pᵀ rows kk.. and kk + 8.., cols t·8..: transposed
          ldmatrix2Trans(b, ps + (kk + rr + mi * 8) * (kR + 8) + t * 8);
        mma(acc[t], a, b[0], b[1]);
      }
    }
  }
  waitCopies<0>();

  const int g = lane / 4, q = lane % 4;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    int64_t row = row0 + warp * 16 + g + half * 8;
    if (row >= m)
      continue;
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      int col = t * 8 + 2 * q;
      out[row * ldo + col] = __float2bfloat16_rn(scale * acc[t][half * 2]);
      out[row * ldo + col + 1] =
          __float2bfloat16_rn(scale * acc[t][half * 2 + 1]);
    }
  }
}

//===----------------------------------------------------------------------===//
// loraTN: 128 output columns per block (32 per warp), all r rows, over a
// chunk of j; partial sums per chunk, reduced by a second kernel in a fixed
// order (deterministic).
//===----------------------------------------------------------------------===//

constexpr int kTNCols = 128, kTNRows = 32, kTNPitch = kTNCols + 8;

template <int MT> struct TNLayout {
  static constexpr int kLPitch = MT * 16 + 8;
  static constexpr int kRTile = kTNRows * kTNPitch;
  static constexpr int kLTile = kTNRows * kLPitch;
  static constexpr int kStage = kRTile + kLTile;
  static constexpr size_t kBytes = size_t(kStages) * kStage * sizeof(bf16);
};

template <int MT>
__global__ void __launch_bounds__(kThreads)
    loraTNKernel(int64_t m, int64_t r, int64_t C, int64_t chunkRows,
                 const bf16 *__restrict__ L, int64_t ldl,
                 const bf16 *__restrict__ R, int64_t ldr,
                 float *__restrict__ partial) {
  using Layout = TNLayout<MT>;
  extern __shared__ __align__(16) unsigned char tnShared[];
  bf16 *shared = reinterpret_cast<bf16 *>(tnShared);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t col0 = int64_t(blockIdx.x) * kTNCols;
  const int64_t j0 = int64_t(blockIdx.y) * chunkRows;
  const int64_t j1 = min(m, j0 + chunkRows);
  const int64_t tiles = j1 > j0 ? (j1 - j0 + kTNRows - 1) / kTNRows : 0;

  auto load = [&](int64_t tile, int stage) {
    bf16 *rs = shared + stage * Layout::kStage, *ls = rs + Layout::kRTile;
    const int64_t jt = j0 + tile * kTNRows;
    for (int c = threadIdx.x; c < kTNRows * (kTNCols / 8); c += kThreads) {
      int row = c / (kTNCols / 8), chunk = c % (kTNCols / 8);
      int64_t j = jt + row, col = col0 + chunk * 8;
      bool valid = j < j1 && col < C;
      copy16(rs + row * kTNPitch + chunk * 8, valid ? R + j * ldr + col : R,
             valid);
    }
    for (int c = threadIdx.x; c < kTNRows * MT * 2; c += kThreads) {
      int row = c / (MT * 2), chunk = c % (MT * 2);
      int64_t j = jt + row, col = chunk * 8;
      bool valid = j < j1 && col < r;
      copy16(ls + row * Layout::kLPitch + chunk * 8,
             valid ? L + j * ldl + col : L, valid);
    }
  };

  float acc[MT][4][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int t = 0; t < 4; ++t)
#pragma unroll
      for (int i = 0; i < 4; ++i)
        acc[mt][t][i] = 0.f;

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < tiles)
      load(s, s);
    commitCopies();
  }
  for (int64_t tile = 0; tile < tiles; ++tile) {
    waitCopies<kStages - 2>();
    __syncthreads();
    if (tile + kStages - 1 < tiles)
      load(tile + kStages - 1, int((tile + kStages - 1) % kStages));
    commitCopies();
    const bf16 *rs = shared + int(tile % kStages) * Layout::kStage;
    const bf16 *ls = rs + Layout::kRTile;
#pragma unroll
    for (int jj = 0; jj < kTNRows; jj += 16) {
      const int mi = lane / 8, rr = lane % 8;
      uint32_t b[4][2];
#pragma unroll
      for (int t = 0; t < 4; t += 2) {
        // (rows jj.., cols c), (jj + 8.., c), (jj.., c + 8), (jj + 8.., c + 8)
        uint32_t four[4];
        int row = jj + rr + (mi & 1) * 8;
        int col = warp * 32 + t * 8 + (mi >> 1) * 8;
        ldmatrix4Trans(four, rs + row * kTNPitch + col);
        b[t][0] = four[0];
        b[t][1] = four[1];
        b[t + 1][0] = four[2];
        b[t + 1][1] = four[3];
      }
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        // A = Lᵀ: (j jj.., i mt·16..), (jj.., +8), (jj + 8.., ..), (jj + 8.., +8)
        uint32_t a[4];
        int row = jj + rr + (mi >> 1) * 8, col = mt * 16 + (mi & 1) * 8;
        ldmatrix4Trans(a, ls + row * Layout::kLPitch + col);
#pragma unroll
        for (int t = 0; t < 4; ++t)
          mma(acc[mt][t], a, b[t][0], b[t][1]);
      }
    }
  }
  waitCopies<0>();

  // partial[chunk][i][c], i < r, c < C.
  float *part = partial + int64_t(blockIdx.y) * r * C;
  const int g = lane / 4, q = lane % 4;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      int64_t i = mt * 16 + g + half * 8;
      if (i >= r)
        continue;
#pragma unroll
      for (int t = 0; t < 4; ++t) {
        int64_t c = col0 + warp * 32 + t * 8 + 2 * q;
        if (c < C)
          part[i * C + c] = acc[mt][t][half * 2];
        if (c + 1 < C)
          part[i * C + c + 1] = acc[mt][t][half * 2 + 1];
      }
    }
}

/// out = Σ_chunk partial[chunk] (+ out), [r, C] or transposed [C, r].
__global__ void loraTNReduceKernel(int64_t chunks, int64_t r, int64_t C,
                                   const float *__restrict__ partial,
                                   float *__restrict__ out, bool transposeOut,
                                   bool accumulate) {
  const int64_t total = r * C;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total;
       e += int64_t(gridDim.x) * blockDim.x) {
    float sum = 0.f;
    for (int64_t z = 0; z < chunks; ++z)
      sum += partial[z * total + e];
    int64_t i = e / C, c = e % C;
    int64_t at = transposeOut ? c * r + i : e;
    out[at] = accumulate ? out[at] + sum : sum;
  }
}

template <typename F> Status dispatchTiles(int64_t tiles, F &&f) {
  switch (tiles) {
  case 1: return f(std::integral_constant<int, 1>());
  case 2: return f(std::integral_constant<int, 2>());
  case 3: return f(std::integral_constant<int, 3>());
  case 4: return f(std::integral_constant<int, 4>());
  case 5: return f(std::integral_constant<int, 5>());
  case 6: return f(std::integral_constant<int, 6>());
  case 7: return f(std::integral_constant<int, 7>());
  case 8: return f(std::integral_constant<int, 8>());
  default: return Status::failure("unsupported tile count");
  }
}

int multiprocessorCount() {
  static int count = [] {
    int device = 0, sms = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount,
                               device) != cudaSuccess) {
      cudaGetLastError();
      return 132;
    }
    return sms;
  }();
  return count;
}

} // namespace

bool loraSkinnySupported(int64_t r, std::initializer_list<int64_t> multiplesOf8,
                         std::initializer_list<const void *> bases) {
  if (r < 8 || r > 64 || r % 8 != 0)
    return false;
  for (int64_t v : multiplesOf8)
    if (v % 8 != 0)
      return false;
  for (const void *p : bases)
    if (!p || !aligned(p, 16))
      return false;
  return true;
}

Status loraDown(cudaStream_t stream, const ShapeText &shape, int64_t m,
                int64_t K, int64_t r, const bf16 *R, int64_t ldr,
                const bf16 *p, int64_t ldp, bool pTransposed, float scale,
                bf16 *out, int64_t ldo) {
  if (m < 1 || K < 1)
    return Status::success();
  unsigned blocks = static_cast<unsigned>((m + kDownRows - 1) / kDownRows);
  auto launch = [&](auto kernel, size_t bytes) -> Status {
    if (Status s = check(cudaFuncSetAttribute(
                             kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(bytes)),
                         shape, "cudaFuncSetAttribute(loraDown)");
        !s)
      return s;
    kernel<<<blocks, kThreads, bytes, stream>>>(m, K, R, ldr, p, ldp, scale,
                                                out, ldo);
    return check(cudaGetLastError(), shape, "loraDown launch");
  };
  return dispatchTiles(r / 8, [&](auto nt) -> Status {
    constexpr int NT = decltype(nt)::value;
    if (pTransposed)
      return launch(loraDownKernel<NT, true>, DownLayout<NT, true>::kBytes);
    return launch(loraDownKernel<NT, false>, DownLayout<NT, false>::kBytes);
  });
}

Status loraTN(cudaStream_t stream, const ShapeText &shape, int64_t m,
              int64_t r, int64_t C, const bf16 *L, int64_t ldl, const bf16 *R,
              int64_t ldr, float *out, bool transposeOut, bool accumulate,
              void *workspace, size_t workspaceBytes) {
  if (r < 1 || C < 1)
    return Status::success();
  // Chunks of j: enough blocks for two per multiprocessor, each chunk at
  // least 4 row tiles, the partial sums within the workspace.
  const int64_t columnBlocks = (C + kTNCols - 1) / kTNCols;
  const int64_t rowTiles = (m + kTNRows - 1) / kTNRows;
  int64_t chunks = (2 * multiprocessorCount() + columnBlocks - 1) / columnBlocks;
  chunks = std::min(chunks, std::max<int64_t>(1, rowTiles / 4));
  const int64_t perChunk = r * C * int64_t(sizeof(float));
  chunks = std::min<int64_t>(chunks, int64_t(workspaceBytes) / perChunk);
  if (chunks < 1)
    return fail(shape, "the partial sums need " + std::to_string(perChunk) +
                           " bytes of workspace, more than " +
                           std::to_string(workspaceBytes));
  chunks = std::min<int64_t>(chunks, 65535);
  int64_t chunkRows = (rowTiles + chunks - 1) / chunks * kTNRows;
  chunks = std::max<int64_t>(1, (m + chunkRows - 1) / chunkRows);
  float *partial = static_cast<float *>(workspace);
  dim3 grid(static_cast<unsigned>(columnBlocks), static_cast<unsigned>(chunks));
  Status launched = dispatchTiles((r + 15) / 16, [&](auto mt) -> Status {
    constexpr int MT = decltype(mt)::value;
    if constexpr (MT > 4) {
      return fail(shape, "rank above 64");
    } else {
      size_t bytes = TNLayout<MT>::kBytes;
      if (Status s = check(cudaFuncSetAttribute(
                               loraTNKernel<MT>,
                               cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(bytes)),
                           shape, "cudaFuncSetAttribute(loraTN)");
          !s)
        return s;
      loraTNKernel<MT><<<grid, kThreads, bytes, stream>>>(
          m, r, C, chunkRows, L, ldl, R, ldr, partial);
      return check(cudaGetLastError(), shape, "loraTN launch");
    }
  });
  if (!launched)
    return launched;
  loraTNReduceKernel<<<blocksFor(r * C, 256, 4096), 256, 0, stream>>>(
      chunks, r, C, partial, out, transposeOut, accumulate);
  return check(cudaGetLastError(), shape, "loraTN reduce launch");
}

} // namespace vlora::kernels::cuda::detail
