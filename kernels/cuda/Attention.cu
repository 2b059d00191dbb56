//===- Attention.cu - flash-style attention forward and backward ----------===//
//
// Two implementations behind one API, both deterministic (no atomics):
//
// bf16 with 16-byte aligned tensors runs on tensor cores (FlashAttention-2
// tiles, mma.sync m16n8k16 with fp32 accumulation, ldmatrix, cp.async double
// buffering). Forward: a CTA of 4 warps owns 64 queries of one (batch, head),
// each warp 16; it streams 64-key tiles of K and V with an online softmax in
// fp32 registers and turns P into bf16 A fragments in place for O += P·V.
// Backward: delta = rowsum(dO∘O); dq by a query-parallel sweep like the
// forward that recomputes P from the saved log-sum-exp; dk and dv by a
// key-parallel sweep (64 keys per CTA, 16 per warp) over every query head of
// the KV group, computing the transposed products S^T = K·Q^T and
// dP^T = V·dO^T so that P^T and dS^T feed dV += P^T·dO and dK += dS^T·Q
// straight from registers.
//
// Everything else (fp32, or misaligned bf16) runs the CUDA-core kernels, fp32
// arithmetic: the forward block owns 16 queries and streams 32-key tiles;
// lane j of a warp scores key j, probabilities are broadcast by warp
// shuffles. dq by the same query-parallel sweep; dk and dv by a key-parallel
// sweep where each lane owns one key and a quarter of the head dimension.
//
//===----------------------------------------------------------------------===//

#include "vlora/kernels/cuda/Attention.h"

#include "Primitives.cuh"

#include <cmath>
#include <cstring>

namespace vlora::kernels::cuda {
using namespace detail;

namespace {

constexpr int kThreads = 128;
constexpr int kQueryTile = 16; // queries per block in the query sweeps
constexpr int kKeyTile = 32;   // keys per tile (one per lane)

struct Params {
  int64_t seqQ, seqK, headsQ, headsKV;
  float scale;
  bool causal;
  const int32_t *kvLengths;
  const int32_t *prefixLengths;
};

__device__ __forceinline__ int64_t kvLengthOf(const Params &p, int64_t b) {
  if (!p.kvLengths)
    return p.seqK;
  int64_t n = p.kvLengths[b];
  return n < 0 ? 0 : (n > p.seqK ? p.seqK : n);
}
__device__ __forceinline__ int64_t prefixOf(const Params &p, int64_t b) {
  return p.prefixLengths ? p.prefixLengths[b] : 0;
}
__device__ __forceinline__ bool visible(const Params &p, int64_t i, int64_t j,
                                        int64_t kvLength, int64_t prefix) {
  if (j >= kvLength)
    return false;
  return !p.causal || j <= i + p.seqK - p.seqQ || j < prefix;
}

/// Forward (Grad = false: o, lse) or dq (Grad = true) over 16 queries.
template <typename T, int D, bool Grad>
__global__ void __launch_bounds__(kThreads)
    queryKernel(Params p, const T *q, const T *k, const T *v, T *o,
                float *lseOut, const T *dout, const float *lseIn,
                const float *delta, T *dq) {
  constexpr int kChunks = (D + 31) / 32;
  constexpr int kPitch = D + 1; // K/V rows padded: lane j reads row j
  constexpr int kPerWarp = kQueryTile / (kThreads / 32);
  extern __shared__ float smem[];
  float *qs = smem;
  float *dos = qs + kQueryTile * D;
  float *ks = dos + (Grad ? kQueryTile * D : 0);
  float *vs = ks + kKeyTile * kPitch;

  const int64_t b = blockIdx.z, h = blockIdx.y;
  const int64_t hk = h / (p.headsQ / p.headsKV);
  const int64_t q0 = int64_t(blockIdx.x) * kQueryTile;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  for (int idx = threadIdx.x; idx < kQueryTile * D; idx += kThreads) {
    int r = idx / D, d = idx % D;
    int64_t qi = q0 + r;
    int64_t at = ((b * p.seqQ + qi) * p.headsQ + h) * D + d;
    qs[idx] = qi < p.seqQ ? load(q + at) * p.scale : 0.f;
    if (Grad)
      dos[idx] = qi < p.seqQ ? load(dout + at) : 0.f;
  }

  float m[kPerWarp], l[kPerWarp], rowDelta[kPerWarp], acc[kPerWarp][kChunks];
#pragma unroll
  for (int t = 0; t < kPerWarp; ++t) {
    int64_t qi = q0 + warp * kPerWarp + t;
    int64_t row = (b * p.headsQ + h) * p.seqQ + qi;
    m[t] = Grad && qi < p.seqQ ? lseIn[row] : -INFINITY;
    rowDelta[t] = Grad && qi < p.seqQ ? delta[row] : 0.f;
    l[t] = 0.f;
#pragma unroll
    for (int c = 0; c < kChunks; ++c)
      acc[t][c] = 0.f;
  }

  const int64_t kvLength = kvLengthOf(p, b), prefix = prefixOf(p, b);
  int64_t lastQuery = min(q0 + kQueryTile - 1, p.seqQ - 1);
  int64_t keyEnd = kvLength;
  if (p.causal)
    keyEnd = min(kvLength, max(lastQuery + p.seqK - p.seqQ + 1, prefix));

  for (int64_t kt = 0; kt < keyEnd; kt += kKeyTile) {
    __syncthreads();
    for (int idx = threadIdx.x; idx < kKeyTile * D; idx += kThreads) {
      int r = idx / D, d = idx % D;
      int64_t j = kt + r;
      int64_t at = ((b * p.seqK + j) * p.headsKV + hk) * D + d;
      ks[r * kPitch + d] = j < p.seqK ? load(k + at) : 0.f;
      vs[r * kPitch + d] = j < p.seqK ? load(v + at) : 0.f;
    }
    __syncthreads();
    const int64_t j = kt + lane;
#pragma unroll
    for (int t = 0; t < kPerWarp; ++t) {
      const int r = warp * kPerWarp + t;
      const int64_t qi = q0 + r;
      if (qi >= p.seqQ)
        continue; // uniform across the warp
      float s = 0.f;
#pragma unroll 8
      for (int d = 0; d < D; ++d)
        s += qs[r * D + d] * ks[lane * kPitch + d];
      const bool vis = visible(p, qi, j, kvLength, prefix);
      if (!Grad) {
        s = vis ? s : -INFINITY;
        float tileMax = warpMax(s);
        if (tileMax == -INFINITY)
          continue;
        float mNew = fmaxf(m[t], tileMax);
        float pj = vis ? __expf(s - mNew) : 0.f;
        float correction = __expf(m[t] - mNew);
        l[t] = l[t] * correction + warpSum(pj);
#pragma unroll
        for (int c = 0; c < kChunks; ++c)
          acc[t][c] *= correction;
        for (int jj = 0; jj < kKeyTile; ++jj) {
          float pjj = __shfl_sync(0xffffffffu, pj, jj);
#pragma unroll
          for (int c = 0; c < kChunks; ++c) {
            int d = lane + 32 * c;
            if (d < D)
              acc[t][c] += pjj * vs[jj * kPitch + d];
          }
        }
        m[t] = mNew;
      } else {
        float pj = vis ? __expf(s - m[t]) : 0.f;
        float dp = 0.f;
#pragma unroll 8
        for (int d = 0; d < D; ++d)
          dp += dos[r * D + d] * vs[lane * kPitch + d];
        float ds = pj * (dp - rowDelta[t]);
        for (int jj = 0; jj < kKeyTile; ++jj) {
          float dsj = __shfl_sync(0xffffffffu, ds, jj);
#pragma unroll
          for (int c = 0; c < kChunks; ++c) {
            int d = lane + 32 * c;
            if (d < D)
              acc[t][c] += dsj * ks[jj * kPitch + d];
          }
        }
      }
    }
  }

#pragma unroll
  for (int t = 0; t < kPerWarp; ++t) {
    const int64_t qi = q0 + warp * kPerWarp + t;
    if (qi >= p.seqQ)
      continue;
    const int64_t at = ((b * p.seqQ + qi) * p.headsQ + h) * D;
    float factor = Grad ? p.scale : (l[t] > 0.f ? 1.f / l[t] : 0.f);
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      int d = lane + 32 * c;
      if (d < D)
        store((Grad ? dq : o) + at + d, acc[t][c] * factor);
    }
    if (!Grad && lane == 0)
      lseOut[(b * p.headsQ + h) * p.seqQ + qi] =
          l[t] > 0.f ? m[t] + logf(l[t]) : -INFINITY;
  }
}

/// delta[b, h, i] = Σ_d dO·O, one warp per row.
template <typename T>
__global__ void deltaKernel(int64_t batch, int64_t seqQ, int64_t headsQ,
                            int64_t headDim, const T *o, const T *dout,
                            float *delta) {
  int64_t rows = batch * seqQ * headsQ;
  int64_t warpId = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  int lane = threadIdx.x % 32;
  for (int64_t row = warpId; row < rows;
       row += int64_t(gridDim.x) * blockDim.x / 32) {
    // row enumerates [b, i, h] (the memory order of o).
    float sum = 0.f;
    for (int64_t d = lane; d < headDim; d += 32)
      sum += load(o + row * headDim + d) * load(dout + row * headDim + d);
    sum = warpSum(sum);
    if (lane == 0) {
      int64_t h = row % headsQ, i = (row / headsQ) % seqQ,
              b = row / (headsQ * seqQ);
      delta[(b * headsQ + h) * seqQ + i] = sum;
    }
  }
}

/// dk, dv for 32 keys of one (batch, KV head): lane owns key lane/4 of its
/// warp's 8 and dimensions d ≡ lane mod 4.
template <typename T, int D>
__global__ void __launch_bounds__(kThreads)
    keyKernel(Params p, const T *q, const T *k, const T *v, const T *dout,
              const float *lseIn, const float *delta, T *dk, T *dv) {
  constexpr int kQuarter = D / 4;
  __shared__ float qs[kKeyTile * D];
  __shared__ float dos[kKeyTile * D];
  __shared__ float lses[kKeyTile], deltas[kKeyTile];

  const int64_t b = blockIdx.z, hk = blockIdx.y;
  const int64_t k0 = int64_t(blockIdx.x) * kKeyTile;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t key = k0 + warp * 8 + lane / 4;
  const int sub = lane % 4;
  const int64_t keyAt = ((b * p.seqK + key) * p.headsKV + hk) * D;

  float kr[kQuarter], vr[kQuarter], dkAcc[kQuarter], dvAcc[kQuarter];
#pragma unroll
  for (int c = 0; c < kQuarter; ++c) {
    kr[c] = key < p.seqK ? load(k + keyAt + sub + 4 * c) : 0.f;
    vr[c] = key < p.seqK ? load(v + keyAt + sub + 4 * c) : 0.f;
    dkAcc[c] = dvAcc[c] = 0.f;
  }

  const int64_t kvLength = kvLengthOf(p, b), prefix = prefixOf(p, b);
  const int64_t group = p.headsQ / p.headsKV;
  int64_t qStart = 0;
  if (p.causal && k0 >= prefix)
    qStart = max(int64_t(0), k0 - (p.seqK - p.seqQ));
  if (k0 >= kvLength)
    qStart = p.seqQ; // no query sees these keys

  for (int64_t h = hk * group; h < (hk + 1) * group; ++h) {
    for (int64_t q0 = qStart; q0 < p.seqQ; q0 += kKeyTile) {
      __syncthreads();
      for (int idx = threadIdx.x; idx < kKeyTile * D; idx += kThreads) {
        int r = idx / D, d = idx % D;
        int64_t qi = q0 + r;
        int64_t at = ((b * p.seqQ + qi) * p.headsQ + h) * D + d;
        qs[idx] = qi < p.seqQ ? load(q + at) * p.scale : 0.f;
        dos[idx] = qi < p.seqQ ? load(dout + at) : 0.f;
      }
      if (threadIdx.x < kKeyTile) {
        int64_t qi = q0 + threadIdx.x;
        int64_t row = (b * p.headsQ + h) * p.seqQ + qi;
        lses[threadIdx.x] = qi < p.seqQ ? lseIn[row] : 0.f;
        deltas[threadIdx.x] = qi < p.seqQ ? delta[row] : 0.f;
      }
      __syncthreads();
      int64_t rows = min(int64_t(kKeyTile), p.seqQ - q0);
      for (int r = 0; r < rows; ++r) {
        float s = 0.f, dp = 0.f;
#pragma unroll
        for (int c = 0; c < kQuarter; ++c) {
          s += qs[r * D + sub + 4 * c] * kr[c];
          dp += dos[r * D + sub + 4 * c] * vr[c];
        }
        s += __shfl_xor_sync(0xffffffffu, s, 1);
        s += __shfl_xor_sync(0xffffffffu, s, 2);
        dp += __shfl_xor_sync(0xffffffffu, dp, 1);
        dp += __shfl_xor_sync(0xffffffffu, dp, 2);
        bool vis = key < p.seqK && visible(p, q0 + r, key, kvLength, prefix);
        float pj = vis ? __expf(s - lses[r]) : 0.f;
        float ds = pj * (dp - deltas[r]);
#pragma unroll
        for (int c = 0; c < kQuarter; ++c) {
          dvAcc[c] += pj * dos[r * D + sub + 4 * c];
          dkAcc[c] += ds * qs[r * D + sub + 4 * c];
        }
      }
    }
  }
  if (key < p.seqK) {
#pragma unroll
    for (int c = 0; c < kQuarter; ++c) {
      store(dk + keyAt + sub + 4 * c, dkAcc[c]);
      store(dv + keyAt + sub + 4 * c, dvAcc[c]);
    }
  }
}

//===----------------------------------------------------------------------===//
// Tensor-core path (bf16, 16-byte aligned tensors): FlashAttention-2 tiles on
// warp-level mma.sync m16n8k16 (bf16 in, fp32 accumulate). A CTA has 4 warps;
// each warp owns 16 rows of the M dimension of every product. Tiles live in
// shared memory with a pitch of D + 8 elements, so the eight 16-byte rows an
// ldmatrix phase reads fall in distinct bank groups. Global -> shared copies
// are cp.async (16 bytes, zero-filled beyond the valid rows), double
// buffered. Scores are kept in log2 units (scale·log2 e folded in) for exp2.
//===----------------------------------------------------------------------===//

constexpr int kTcThreads = 128; // 4 warps
constexpr int kTcRows = 64;     // rows of a CTA's own block (queries / keys)
constexpr int kTcCols = 64;     // key tile of the query-parallel kernels
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

template <int D> constexpr int tcPitch() { return D + 8; }

__device__ __forceinline__ uint32_t smemAddress(const void *p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

/// 16 bytes global -> shared; zero-fills the destination when !valid (then
/// `src` is not read, but is still a valid address).
__device__ __forceinline__ void cpAsync16(void *dst, const void *src,
                                          bool valid) {
  asm volatile(
      "cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smemAddress(dst)),
      "l"(src), "r"(valid ? 16 : 0)
      : "memory");
}
__device__ __forceinline__ void cpAsyncCommit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
/// Waits until at most N committed groups are still in flight.
template <int N> __device__ __forceinline__ void cpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

/// Four 8x8 bf16 matrices; lane l gives the row address of matrix l / 8.
__device__ __forceinline__ void ldsm4(uint32_t (&r)[4], const bf16 *p) {
  asm volatile(
      "ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
      : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
      : "r"(smemAddress(p)));
}
__device__ __forceinline__ void ldsm4Trans(uint32_t (&r)[4], const bf16 *p) {
  asm volatile(
      "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, "
      "[%4];\n"
      : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
      : "r"(smemAddress(p)));
}

/// c += a·b for one 16x8x16 tile (fragments in the PTX ISA's layouts).
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4],
                                         uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
      "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/// Two floats as a bf16 pair (lo in the low half), rounded to nearest.
__device__ __forceinline__ uint32_t packBF16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  uint32_t bits;
  memcpy(&bits, &v, sizeof(bits));
  return bits;
}

__device__ __forceinline__ float fastExp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

/// The A fragment of rows [row0, row0+16) x cols [col0, col0+16) of a
/// row-major tile; the same addresses with ldsm4Trans give the B fragments
/// (k = rows, n = cols) of two adjacent n-tiles of a row-major [k][n] tile:
/// r[0], r[1] for cols col0.., r[2], r[3] for cols col0+8...
template <int D>
__device__ __forceinline__ const bf16 *fragA(const bf16 *tile, int row0,
                                             int col0, int lane) {
  return tile + (row0 + (lane & 7) + 8 * ((lane >> 3) & 1)) * tcPitch<D>() +
         col0 + 8 * (lane >> 4);
}
/// With ldsm4: the B fragments (k = cols, n = rows) of a row-major [n][k]
/// tile for n-tiles [row0, row0+8) (r[0], r[1]) and [row0+8, row0+16) (r[2],
/// r[3]), k in [col0, col0+16).
template <int D>
__device__ __forceinline__ const bf16 *fragBt(const bf16 *tile, int row0,
                                              int col0, int lane) {
  return tile + (row0 + (lane & 7) + 8 * (lane >> 4)) * tcPitch<D>() + col0 +
         8 * ((lane >> 3) & 1);
}

/// Rows [row0, row0+Rows) of a [rows][stride] bf16 matrix (D used columns)
/// into a shared tile; rows at or beyond `valid` become zeros.
template <int Rows, int D>
__device__ __forceinline__ void loadTileAsync(bf16 *dst, const bf16 *src,
                                              int64_t stride, int64_t row0,
                                              int64_t valid) {
  constexpr int kChunks = D / 8; // 16-byte chunks per row
  for (int idx = threadIdx.x; idx < Rows * kChunks; idx += kTcThreads) {
    const int r = idx / kChunks, c = idx % kChunks;
    const bool ok = row0 + r < valid;
    const bf16 *from = ok ? src + (row0 + r) * stride + c * 8 : src;
    cpAsync16(dst + r * tcPitch<D>() + c * 8, from, ok);
  }
}

/// S[16 x 8·NT] += A[16 x D] · B[8·NT x D]^T: A from rows [aRow, aRow+16) of
/// tile `a`, B from rows [0, 8·NT) of tile `b` (both row-major, D columns).
template <int D, int NT>
__device__ __forceinline__ void mmaABt(float (&s)[NT][4], const bf16 *a,
                                       int aRow, const bf16 *b, int lane) {
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    uint32_t af[4];
    ldsm4(af, fragA<D>(a, aRow, kk * 16, lane));
#pragma unroll
    for (int np = 0; np < NT / 2; ++np) {
      uint32_t bf[4];
      ldsm4(bf, fragBt<D>(b, np * 16, kk * 16, lane));
      mma16816(s[2 * np], af, bf[0], bf[1]);
      mma16816(s[2 * np + 1], af, bf[2], bf[3]);
    }
  }
}

/// acc[16 x D] += P[16 x 8·NT] · B[8·NT x D], P given as accumulator
/// fragments (rounded to bf16 here), B rows [0, 8·NT) of a row-major tile.
template <int D, int NT>
__device__ __forceinline__ void mmaPB(float (&acc)[D / 8][4],
                                      const float (&pf)[NT][4], const bf16 *b,
                                      int lane) {
#pragma unroll
  for (int ks = 0; ks < NT / 2; ++ks) {
    // The m16n8 accumulator layout of n-tiles 2ks and 2ks+1 is the m16k16
    // A layout of k-step ks.
    uint32_t af[4] = {packBF16(pf[2 * ks][0], pf[2 * ks][1]),
                      packBF16(pf[2 * ks][2], pf[2 * ks][3]),
                      packBF16(pf[2 * ks + 1][0], pf[2 * ks + 1][1]),
                      packBF16(pf[2 * ks + 1][2], pf[2 * ks + 1][3])};
#pragma unroll
    for (int dp = 0; dp < D / 16; ++dp) {
      uint32_t bf[4];
      ldsm4Trans(bf, fragA<D>(b, ks * 16, dp * 16, lane));
      mma16816(acc[2 * dp], af, bf[0], bf[1]);
      mma16816(acc[2 * dp + 1], af, bf[2], bf[3]);
    }
  }
}

/// Key tiles [0, keyEnd) the queries [q0, q0 + rows) need.
__device__ __forceinline__ int64_t keyEndOf(const Params &p, int64_t q0,
                                            int64_t rows, int64_t kvLength,
                                            int64_t prefix) {
  int64_t lastQuery = min(q0 + rows - 1, p.seqQ - 1);
  int64_t keyEnd = kvLength;
  if (p.causal)
    keyEnd = min(kvLength, max(lastQuery + p.seqK - p.seqQ + 1, prefix));
  return keyEnd > 0 ? keyEnd : 0;
}

/// True when some key in [j0, j0 + cols) is hidden from some query in
/// [i0, ...) (the rows' upper end does not matter: later rows see more).
__device__ __forceinline__ bool tileNeedsMask(const Params &p, int64_t i0,
                                              int64_t j0, int64_t cols,
                                              int64_t kvLength,
                                              int64_t prefix) {
  const int64_t jLast = j0 + cols - 1;
  if (jLast >= kvLength)
    return true;
  return p.causal && jLast > i0 + p.seqK - p.seqQ && jLast >= prefix;
}

/// Forward over 64 queries of one (batch, head): each warp 16 queries, key
/// tiles of 64 (S = Q·K^T, online softmax, O += P·V).
template <int D>
__global__ void __launch_bounds__(kTcThreads)
    tcForwardKernel(Params p, const bf16 *q, const bf16 *k, const bf16 *v,
                    bf16 *o, float *lseOut) {
  constexpr int kTile = kTcRows * tcPitch<D>();
  constexpr int NT = kTcCols / 8; // n-tiles of S
  extern __shared__ __align__(16) unsigned char smemBytes[];
  bf16 *qs = reinterpret_cast<bf16 *>(smemBytes);
  bf16 *ks = qs + kTile; // two stages
  bf16 *vs = ks + 2 * kTile;

  const int64_t b = blockIdx.z, h = blockIdx.y;
  const int64_t hk = h / (p.headsQ / p.headsKV);
  // Heavy (late, causal) query blocks first.
  const int64_t q0 = int64_t(gridDim.x - 1 - blockIdx.x) * kTcRows;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane >> 2, t = lane & 3;
  const int64_t qStride = p.headsQ * D, kStride = p.headsKV * D;
  const bf16 *qBase = q + (b * p.seqQ * p.headsQ + h) * D;
  const bf16 *kBase = k + (b * p.seqK * p.headsKV + hk) * D;
  const bf16 *vBase = v + (b * p.seqK * p.headsKV + hk) * D;
  const int64_t kvLength = kvLengthOf(p, b), prefix = prefixOf(p, b);
  const int64_t keyEnd = keyEndOf(p, q0, kTcRows, kvLength, prefix);
  const int nTiles = static_cast<int>((keyEnd + kTcCols - 1) / kTcCols);

  loadTileAsync<kTcRows, D>(qs, qBase, qStride, q0, p.seqQ);
  if (nTiles > 0) {
    loadTileAsync<kTcCols, D>(ks, kBase, kStride, 0, kvLength);
    loadTileAsync<kTcCols, D>(vs, vBase, kStride, 0, kvLength);
  }
  cpAsyncCommit();
  cpAsyncWait<0>();
  __syncthreads();
  uint32_t qf[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk)
    ldsm4(qf[kk], fragA<D>(qs, warp * 16, kk * 16, lane));

  float acc[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n)
    acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
  // Rows g and g + 8 of the warp's 16: running max (log2 units) and this
  // lane's partial row sum.
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const float scaleLog2 = p.scale * kLog2e;
  const int64_t row0 = q0 + warp * 16 + g;

  for (int it = 0; it < nTiles; ++it) {
    const int buf = it & 1;
    const int64_t kt = int64_t(it) * kTcCols;
    if (it + 1 < nTiles) {
      loadTileAsync<kTcCols, D>(ks + (buf ^ 1) * kTile, kBase, kStride,
                                kt + kTcCols, kvLength);
      loadTileAsync<kTcCols, D>(vs + (buf ^ 1) * kTile, vBase, kStride,
                                kt + kTcCols, kvLength);
      cpAsyncCommit();
      cpAsyncWait<1>();
    } else {
      cpAsyncWait<0>();
    }
    __syncthreads();
    const bf16 *kTileS = ks + buf * kTile, *vTileS = vs + buf * kTile;

    float s[NT][4];
#pragma unroll
    for (int n = 0; n < NT; ++n)
      s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int np = 0; np < NT / 2; ++np) {
        uint32_t bf[4];
        ldsm4(bf, fragBt<D>(kTileS, np * 16, kk * 16, lane));
        mma16816(s[2 * np], qf[kk], bf[0], bf[1]);
        mma16816(s[2 * np + 1], qf[kk], bf[2], bf[3]);
      }
    }

    const bool needMask = tileNeedsMask(p, q0, kt, kTcCols, kvLength, prefix);
#pragma unroll
    for (int n = 0; n < NT; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = s[n][e] * scaleLog2;
        if (needMask) {
          const int64_t i = row0 + 8 * (e >> 1);
          const int64_t j = kt + 8 * n + 2 * t + (e & 1);
          if (!visible(p, i, j, kvLength, prefix))
            x = -INFINITY;
        }
        s[n][e] = x;
      }

#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = m[r];
#pragma unroll
      for (int n = 0; n < NT; ++n)
        mx = fmaxf(mx, fmaxf(s[n][2 * r], s[n][2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      // No visible key yet: keep every exponent at exp2(-inf) = 0.
      const float base = mx == -INFINITY ? 0.f : mx;
      const float correction = fastExp2(m[r] - base);
      m[r] = mx;
      float sum = 0.f;
#pragma unroll
      for (int n = 0; n < NT; ++n) {
        s[n][2 * r] = fastExp2(s[n][2 * r] - base);
        s[n][2 * r + 1] = fastExp2(s[n][2 * r + 1] - base);
        sum += s[n][2 * r] + s[n][2 * r + 1];
      }
      l[r] = l[r] * correction + sum;
#pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        acc[n][2 * r] *= correction;
        acc[n][2 * r + 1] *= correction;
      }
    }

    mmaPB<D, NT>(acc, s, vTileS, lane);
    __syncthreads(); // the next iteration refills this stage
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float sum = l[r];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const int64_t i = row0 + 8 * r;
    if (i >= p.seqQ)
      continue;
    const float factor = sum > 0.f ? 1.f / sum : 0.f;
    bf16 *orow = o + ((b * p.seqQ + i) * p.headsQ + h) * D;
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      __nv_bfloat162 pair = __floats2bfloat162_rn(acc[n][2 * r] * factor,
                                                  acc[n][2 * r + 1] * factor);
      *reinterpret_cast<__nv_bfloat162 *>(orow + 8 * n + 2 * t) = pair;
    }
    if (t == 0)
      lseOut[(b * p.headsQ + h) * p.seqQ + i] =
          sum > 0.f ? m[r] * kLn2 + logf(sum) : -INFINITY;
  }
}

/// log2-unit log-sum-exp of a row for exp2(s·scale·log2 e - lse2): +inf for
/// a row that sees no key (and rows past the end), so every p is 0.
__device__ __forceinline__ float lse2Of(float lse) {
  return lse == -INFINITY ? INFINITY : lse * kLog2e;
}

/// dq over 64 queries of one (batch, head): recompute S and P per key tile,
/// dP = dO·V^T, dS = P∘(dP - delta), dq += dS·K.
template <int D>
__global__ void __launch_bounds__(kTcThreads)
    tcQueryGradKernel(Params p, const bf16 *q, const bf16 *k, const bf16 *v,
                      const bf16 *dout, const float *lseIn, const float *delta,
                      bf16 *dq) {
  constexpr int kTile = kTcRows * tcPitch<D>();
  constexpr int NT = kTcCols / 8;
  extern __shared__ __align__(16) unsigned char smemBytes[];
  bf16 *qs = reinterpret_cast<bf16 *>(smemBytes);
  bf16 *dos = qs + kTile;
  bf16 *ks = dos + kTile; // two stages
  bf16 *vs = ks + 2 * kTile;

  const int64_t b = blockIdx.z, h = blockIdx.y;
  const int64_t hk = h / (p.headsQ / p.headsKV);
  const int64_t q0 = int64_t(gridDim.x - 1 - blockIdx.x) * kTcRows;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane >> 2, t = lane & 3;
  const int64_t qStride = p.headsQ * D, kStride = p.headsKV * D;
  const bf16 *qBase = q + (b * p.seqQ * p.headsQ + h) * D;
  const bf16 *doBase = dout + (b * p.seqQ * p.headsQ + h) * D;
  const bf16 *kBase = k + (b * p.seqK * p.headsKV + hk) * D;
  const bf16 *vBase = v + (b * p.seqK * p.headsKV + hk) * D;
  const int64_t kvLength = kvLengthOf(p, b), prefix = prefixOf(p, b);
  const int64_t keyEnd = keyEndOf(p, q0, kTcRows, kvLength, prefix);
  const int nTiles = static_cast<int>((keyEnd + kTcCols - 1) / kTcCols);

  loadTileAsync<kTcRows, D>(qs, qBase, qStride, q0, p.seqQ);
  loadTileAsync<kTcRows, D>(dos, doBase, qStride, q0, p.seqQ);
  if (nTiles > 0) {
    loadTileAsync<kTcCols, D>(ks, kBase, kStride, 0, kvLength);
    loadTileAsync<kTcCols, D>(vs, vBase, kStride, 0, kvLength);
  }
  cpAsyncCommit();

  const int64_t row0 = q0 + warp * 16 + g;
  float rowLse2[2], rowDelta[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t i = row0 + 8 * r;
    const int64_t at = (b * p.headsQ + h) * p.seqQ + i;
    rowLse2[r] = i < p.seqQ ? lse2Of(lseIn[at]) : INFINITY;
    rowDelta[r] = i < p.seqQ ? delta[at] : 0.f;
  }
  float acc[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n)
    acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
  const float scaleLog2 = p.scale * kLog2e;

  for (int it = 0; it < nTiles; ++it) {
    const int buf = it & 1;
    const int64_t kt = int64_t(it) * kTcCols;
    if (it + 1 < nTiles) {
      loadTileAsync<kTcCols, D>(ks + (buf ^ 1) * kTile, kBase, kStride,
                                kt + kTcCols, kvLength);
      loadTileAsync<kTcCols, D>(vs + (buf ^ 1) * kTile, vBase, kStride,
                                kt + kTcCols, kvLength);
      cpAsyncCommit();
      cpAsyncWait<1>();
    } else {
      cpAsyncWait<0>();
    }
    __syncthreads();
    const bf16 *kTileS = ks + buf * kTile, *vTileS = vs + buf * kTile;

    float s[NT][4], dp[NT][4];
#pragma unroll
    for (int n = 0; n < NT; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        s[n][e] = dp[n][e] = 0.f;
    mmaABt<D, NT>(s, qs, warp * 16, kTileS, lane);
    mmaABt<D, NT>(dp, dos, warp * 16, vTileS, lane);

    const bool needMask = tileNeedsMask(p, q0, kt, kTcCols, kvLength, prefix);
#pragma unroll
    for (int n = 0; n < NT; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float pv = fastExp2(s[n][e] * scaleLog2 - rowLse2[e >> 1]);
        if (needMask) {
          const int64_t i = row0 + 8 * (e >> 1);
          const int64_t j = kt + 8 * n + 2 * t + (e & 1);
          if (!visible(p, i, j, kvLength, prefix))
            pv = 0.f;
        }
        dp[n][e] = pv * (dp[n][e] - rowDelta[e >> 1]);
      }

    mmaPB<D, NT>(acc, dp, kTileS, lane); // dq += dS·K
    __syncthreads();
  }
  cpAsyncWait<0>(); // nTiles == 0: the q/dO copies are still in flight

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t i = row0 + 8 * r;
    if (i >= p.seqQ)
      continue;
    bf16 *row = dq + ((b * p.seqQ + i) * p.headsQ + h) * D;
#pragma unroll
    for (int n = 0; n < D / 8; ++n)
      *reinterpret_cast<__nv_bfloat162 *>(row + 8 * n + 2 * t) =
          __floats2bfloat162_rn(acc[n][2 * r] * p.scale,
                                acc[n][2 * r + 1] * p.scale);
  }
}

/// Queries per tile of the key-parallel kernel: 32 at D = 128 keeps dK, dV,
/// S^T and dP^T in registers.
template <int D> constexpr int tcKeyKernelQueries() { return D > 80 ? 32 : 64; }

/// dk, dv for 64 keys of one (batch, KV head), each warp 16 keys: for every
/// query head of the group and query tile, S^T = K·Q^T, P^T, dP^T = V·dO^T,
/// dS^T = P^T∘(dP^T - delta), dV += P^T·dO, dK += dS^T·Q.
template <int D>
__global__ void __launch_bounds__(kTcThreads)
    tcKeyGradKernel(Params p, const bf16 *q, const bf16 *k, const bf16 *v,
                    const bf16 *dout, const float *lseIn, const float *delta,
                    bf16 *dk, bf16 *dv) {
  constexpr int Br = tcKeyKernelQueries<D>();
  constexpr int NT = Br / 8;
  constexpr int kKeyTileElems = kTcRows * tcPitch<D>();
  constexpr int kQTile = Br * tcPitch<D>();
  extern __shared__ __align__(16) unsigned char smemBytes[];
  bf16 *ks = reinterpret_cast<bf16 *>(smemBytes);
  bf16 *vs = ks + kKeyTileElems;
  bf16 *qs = vs + kKeyTileElems;                             // two stages
  bf16 *dos = qs + 2 * kQTile;                               // two stages
  float *lses = reinterpret_cast<float *>(dos + 2 * kQTile); // [2][Br]
  float *deltas = lses + 2 * Br;                             // [2][Br]

  const int64_t b = blockIdx.z, hk = blockIdx.y;
  const int64_t k0 = int64_t(blockIdx.x) * kTcRows;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane >> 2, t = lane & 3;
  const int64_t qStride = p.headsQ * D, kStride = p.headsKV * D;
  const int64_t group = p.headsQ / p.headsKV;
  const int64_t kvLength = kvLengthOf(p, b), prefix = prefixOf(p, b);
  const int64_t off = p.seqK - p.seqQ;

  int64_t qStart = 0;
  if (p.causal && k0 >= prefix)
    qStart = max(int64_t(0), k0 - off);
  if (k0 >= kvLength)
    qStart = p.seqQ; // no query sees these keys
  const int64_t qTiles = qStart < p.seqQ ? (p.seqQ - qStart + Br - 1) / Br : 0;
  const int64_t steps = group * qTiles;

  // Step `step` is (query head, query tile): its Q and dO rows go to shared
  // buffer `buf` by cp.async; thread r < Br reads row r's lse and delta into
  // registers and stores them (lse in log2 units) to shared memory a step of
  // compute later, so the loads' latency hides.
  auto stageTiles = [&](int64_t step, int buf) {
    const int64_t h = hk * group + step / qTiles;
    const int64_t qt0 = qStart + (step % qTiles) * Br;
    const int64_t at = (b * p.seqQ * p.headsQ + h) * D;
    loadTileAsync<Br, D>(qs + buf * kQTile, q + at, qStride, qt0, p.seqQ);
    loadTileAsync<Br, D>(dos + buf * kQTile, dout + at, qStride, qt0, p.seqQ);
  };
  auto rowValues = [&](int64_t step, float &rowLse, float &rowDelta) {
    const int64_t h = hk * group + step / qTiles;
    const int64_t i = qStart + (step % qTiles) * Br + threadIdx.x;
    const int64_t row = (b * p.headsQ + h) * p.seqQ + i;
    rowLse = i < p.seqQ ? lseIn[row] : -INFINITY; // -inf: every p is 0
    rowDelta = i < p.seqQ ? delta[row] : 0.f;
  };

  if (steps > 0) {
    const int64_t at = (b * p.seqK * p.headsKV + hk) * D;
    loadTileAsync<kTcRows, D>(ks, k + at, kStride, k0, kvLength);
    loadTileAsync<kTcRows, D>(vs, v + at, kStride, k0, kvLength);
    stageTiles(0, 0);
    cpAsyncCommit();
    if (threadIdx.x < Br) {
      float rowLse, rowDelta;
      rowValues(0, rowLse, rowDelta);
      lses[threadIdx.x] = lse2Of(rowLse);
      deltas[threadIdx.x] = rowDelta;
    }
  }

  float dkAcc[D / 8][4], dvAcc[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      dkAcc[n][e] = dvAcc[n][e] = 0.f;
  const float scaleLog2 = p.scale * kLog2e;
  const int64_t key0 = k0 + warp * 16 + g; // and key0 + 8

  for (int64_t step = 0; step < steps; ++step) {
    const int buf = static_cast<int>(step & 1);
    const bool prefetch = step + 1 < steps;
    float nextLse = 0.f, nextDelta = 0.f;
    if (prefetch) {
      stageTiles(step + 1, buf ^ 1);
      cpAsyncCommit();
      if (threadIdx.x < Br)
        rowValues(step + 1, nextLse, nextDelta);
      cpAsyncWait<1>();
    } else {
      cpAsyncWait<0>();
    }
    __syncthreads();
    const int64_t qt0 = qStart + (step % qTiles) * Br;
    const bf16 *qTileS = qs + buf * kQTile, *doTileS = dos + buf * kQTile;
    const float *lseS = lses + buf * Br, *deltaS = deltas + buf * Br;

    float s[NT][4], dp[NT][4];
#pragma unroll
    for (int n = 0; n < NT; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        s[n][e] = dp[n][e] = 0.f;
    mmaABt<D, NT>(s, ks, warp * 16, qTileS, lane);   // S^T = K·Q^T
    mmaABt<D, NT>(dp, vs, warp * 16, doTileS, lane); // dP^T = V·dO^T

    const bool needMask = qt0 + Br > p.seqQ ||
                          tileNeedsMask(p, qt0, k0, kTcRows, kvLength, prefix);
#pragma unroll
    for (int n = 0; n < NT; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = 8 * n + 2 * t + (e & 1); // query qt0 + col
        float pv = fastExp2(s[n][e] * scaleLog2 - lseS[col]);
        if (needMask) {
          const int64_t i = qt0 + col;
          const int64_t j = key0 + 8 * (e >> 1);
          if (i >= p.seqQ || !visible(p, i, j, kvLength, prefix))
            pv = 0.f;
        }
        s[n][e] = pv;
        dp[n][e] = pv * (dp[n][e] - deltaS[col]);
      }

    mmaPB<D, NT>(dvAcc, s, doTileS, lane); // dV += P^T·dO
    mmaPB<D, NT>(dkAcc, dp, qTileS, lane); // dK += dS^T·Q
    // The other buffer's rows were last read before the previous barrier.
    if (prefetch && threadIdx.x < Br) {
      lses[(buf ^ 1) * Br + threadIdx.x] = lse2Of(nextLse);
      deltas[(buf ^ 1) * Br + threadIdx.x] = nextDelta;
    }
    __syncthreads();
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t j = key0 + 8 * r;
    if (j >= p.seqK)
      continue;
    const int64_t at = ((b * p.seqK + j) * p.headsKV + hk) * D;
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      *reinterpret_cast<__nv_bfloat162 *>(dk + at + 8 * n + 2 * t) =
          __floats2bfloat162_rn(dkAcc[n][2 * r] * p.scale,
                                dkAcc[n][2 * r + 1] * p.scale);
      *reinterpret_cast<__nv_bfloat162 *>(dv + at + 8 * n + 2 * t) =
          __floats2bfloat162_rn(dvAcc[n][2 * r], dvAcc[n][2 * r + 1]);
    }
  }
}

ShapeText attentionShape(const char *kernel, const AttentionShape &s) {
  ShapeText shape(kernel);
  shape("batch", s.batch)("seqQ", s.seqQ)("seqK", s.seqK)("headsQ", s.headsQ)(
      "headsKV", s.headsKV)("headDim", s.headDim)("causal", s.causal)
      .dtype(s.dtype);
  return shape;
}

Status validateAttention(const AttentionShape &s, const ShapeText &shape,
                         std::initializer_list<const void *> tensors,
                         std::initializer_list<const void *> floats) {
  if (s.batch < 1 || s.seqQ < 1 || s.seqK < 1 || s.headsQ < 1 ||
      s.headsKV < 1)
    return fail(shape, "dimensions must be positive");
  if (s.headDim != 64 && s.headDim != 80 && s.headDim != 128)
    return fail(shape, "head dimension must be 64, 80 or 128");
  if (s.headsQ % s.headsKV)
    return fail(shape, "headsQ must be a multiple of headsKV");
  if (s.batch > 65535 || s.headsQ > 65535 ||
      (s.seqQ + kQueryTile - 1) / kQueryTile > INT32_MAX)
    return fail(shape, "grid too large");
  if (!isFloatType(s.dtype))
    return fail(shape, "element type must be f32 or bf16");
  for (const void *p : tensors)
    if (!p || !aligned(p, elementBytes(s.dtype)))
      return fail(shape, "tensors must be non-null and aligned");
  for (const void *p : floats)
    if (!p || !aligned(p, 4))
      return fail(shape, "fp32 buffers must be non-null and aligned");
  return Status::success();
}

Params paramsOf(const AttentionShape &s) {
  return Params{s.seqQ,
                s.seqK,
                s.headsQ,
                s.headsKV,
                s.scale != 0.f ? s.scale
                               : 1.f / std::sqrt(static_cast<float>(s.headDim)),
                s.causal,
                s.kvLengths,
                s.prefixLengths};
}

template <typename T, int D, bool Grad>
Status launchQueryKernel(Context &ctx, const AttentionShape &s,
                         const ShapeText &shape, const void *q, const void *k,
                         const void *v, void *o, float *lse, const void *dout,
                         const float *delta, void *dq) {
  size_t smem = sizeof(float) * ((Grad ? 2 : 1) * kQueryTile * D +
                                 2 * kKeyTile * (D + 1));
  auto kernel = queryKernel<T, D, Grad>;
  if (Status st = check(cudaFuncSetAttribute(
                            kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                            static_cast<int>(smem)),
                        shape, "cudaFuncSetAttribute");
      !st)
    return st;
  dim3 grid(static_cast<unsigned>((s.seqQ + kQueryTile - 1) / kQueryTile),
            static_cast<unsigned>(s.headsQ), static_cast<unsigned>(s.batch));
  kernel<<<grid, kThreads, smem, streamOf(ctx)>>>(
      paramsOf(s), static_cast<const T *>(q), static_cast<const T *>(k),
      static_cast<const T *>(v), static_cast<T *>(o), lse,
      static_cast<const T *>(dout), lse, delta, static_cast<T *>(dq));
  return checkLaunch(shape);
}

template <typename F> Status dispatchHeadDim(int64_t headDim, F &&f) {
  switch (headDim) {
  case 64: return f(std::integral_constant<int, 64>{});
  case 80: return f(std::integral_constant<int, 80>{});
  default: return f(std::integral_constant<int, 128>{});
  }
}

/// Launches a tensor-core kernel with `smem` bytes of dynamic shared memory;
/// errors name the kernel and the shape.
template <typename Kernel, typename... Args>
Status launchTc(Context &ctx, const ShapeText &shape, const char *name,
                Kernel kernel, dim3 grid, size_t smem, Args... args) {
  std::string what = std::string("cudaFuncSetAttribute(") + name + ")";
  if (Status st = check(cudaFuncSetAttribute(
                            kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                            static_cast<int>(smem)),
                        shape, what.c_str());
      !st)
    return st;
  kernel<<<grid, kTcThreads, smem, streamOf(ctx)>>>(args...);
  what = std::string(name) + " launch";
  return check(cudaGetLastError(), shape, what.c_str());
}

/// bf16 with every tensor 16-byte aligned (cp.async of whole rows): the
/// tensor-core kernels; otherwise the CUDA-core kernels above.
bool useTensorCores(const AttentionShape &s,
                    std::initializer_list<const void *> tensors) {
  if (s.dtype != DType::BF16)
    return false;
  for (const void *p : tensors)
    if (!aligned(p, 16))
      return false;
  return true;
}

template <int D> size_t tcForwardSmem() {
  return sizeof(bf16) * 5 * kTcRows * tcPitch<D>();
}
template <int D> size_t tcQueryGradSmem() {
  return sizeof(bf16) * 6 * kTcRows * tcPitch<D>();
}
template <int D> size_t tcKeyGradSmem() {
  constexpr int Br = tcKeyKernelQueries<D>();
  return sizeof(bf16) * (2 * kTcRows + 4 * Br) * tcPitch<D>() +
         sizeof(float) * 4 * Br;
}

dim3 tcQueryGrid(const AttentionShape &s) {
  return dim3(static_cast<unsigned>((s.seqQ + kTcRows - 1) / kTcRows),
              static_cast<unsigned>(s.headsQ), static_cast<unsigned>(s.batch));
}

} // namespace

Status attentionForward(Context &ctx, const AttentionShape &s, const void *q,
                        const void *k, const void *v, void *o, float *lse) {
  ShapeText shape = attentionShape("attentionForward", s);
  if (Status st = validateAttention(s, shape, {q, k, v, o}, {lse}); !st)
    return st;
  if (useTensorCores(s, {q, k, v, o}))
    return dispatchHeadDim(s.headDim, [&](auto dim) {
      constexpr int D = decltype(dim)::value;
      return launchTc(
          ctx, shape, "tcForwardKernel", tcForwardKernel<D>, tcQueryGrid(s),
          tcForwardSmem<D>(), paramsOf(s), static_cast<const bf16 *>(q),
          static_cast<const bf16 *>(k), static_cast<const bf16 *>(v),
          static_cast<bf16 *>(o), lse);
    });
  return dispatchFloat(s.dtype, [&](auto tag) {
    using T = decltype(tag);
    return dispatchHeadDim(s.headDim, [&](auto dim) {
      return launchQueryKernel<T, decltype(dim)::value, false>(
          ctx, s, shape, q, k, v, o, lse, nullptr, nullptr, nullptr);
    });
  });
}

size_t attentionBackwardWorkspace(const AttentionShape &s) {
  return static_cast<size_t>(s.batch * s.headsQ * s.seqQ) * sizeof(float);
}

Status attentionBackward(Context &ctx, const AttentionShape &s, const void *q,
                         const void *k, const void *v, const void *o,
                         const float *lse, const void *dout, void *dq,
                         void *dk, void *dv, void *workspace) {
  ShapeText shape = attentionShape("attentionBackward", s);
  if (Status st = validateAttention(s, shape, {q, k, v, o, dout, dq, dk, dv},
                                    {lse, workspace});
      !st)
    return st;
  float *delta = static_cast<float *>(workspace);
  Params params = paramsOf(s);
  const bool tensorCores = useTensorCores(s, {q, k, v, o, dout, dq, dk, dv});
  return dispatchFloat(s.dtype, [&](auto tag) {
    using T = decltype(tag);
    int64_t rows = s.batch * s.seqQ * s.headsQ;
    deltaKernel<T><<<blocksFor(rows * 32, 256, 65535), 256, 0, streamOf(ctx)>>>(
        s.batch, s.seqQ, s.headsQ, s.headDim, static_cast<const T *>(o),
        static_cast<const T *>(dout), delta);
    if (Status st = checkLaunch(shape); !st)
      return st;
    return dispatchHeadDim(s.headDim, [&](auto dim) {
      constexpr int D = decltype(dim)::value;
      if (tensorCores) {
        const bf16 *qb = static_cast<const bf16 *>(q),
                   *kb = static_cast<const bf16 *>(k),
                   *vb = static_cast<const bf16 *>(v),
                   *dob = static_cast<const bf16 *>(dout);
        if (Status st =
                launchTc(ctx, shape, "tcQueryGradKernel", tcQueryGradKernel<D>,
                         tcQueryGrid(s), tcQueryGradSmem<D>(), params, qb, kb,
                         vb, dob, lse, static_cast<const float *>(delta),
                         static_cast<bf16 *>(dq));
            !st)
          return st;
        dim3 grid(static_cast<unsigned>((s.seqK + kTcRows - 1) / kTcRows),
                  static_cast<unsigned>(s.headsKV),
                  static_cast<unsigned>(s.batch));
        return launchTc(ctx, shape, "tcKeyGradKernel", tcKeyGradKernel<D>, grid,
                        tcKeyGradSmem<D>(), params, qb, kb, vb, dob, lse,
                        static_cast<const float *>(delta),
                        static_cast<bf16 *>(dk), static_cast<bf16 *>(dv));
      }
      // lse is read through the query kernel's lse argument.
      if (Status st = launchQueryKernel<T, D, true>(
              ctx, s, shape, q, k, v, nullptr, const_cast<float *>(lse), dout,
              delta, dq);
          !st)
        return st;
      dim3 grid(static_cast<unsigned>((s.seqK + kKeyTile - 1) / kKeyTile),
                static_cast<unsigned>(s.headsKV),
                static_cast<unsigned>(s.batch));
      keyKernel<T, D><<<grid, kThreads, 0, streamOf(ctx)>>>(
          params, static_cast<const T *>(q), static_cast<const T *>(k),
          static_cast<const T *>(v), static_cast<const T *>(dout), lse, delta,
          static_cast<T *>(dk), static_cast<T *>(dv));
      return checkLaunch(shape);
    });
  });
}

} // namespace vlora::kernels::cuda
