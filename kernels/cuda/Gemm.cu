//===- Gemm.cu - cuBLASLt GEMMs and the LoRA linear layer -----------------===//

#include "vlora/kernels/cuda/Gemm.h"

#include "ContextImpl.h"
#include "LoraKernels.cuh"
#include "Primitives.cuh"

#include <cublasLt.h>

#include <algorithm>

namespace vlora::kernels::cuda {
using namespace detail;

namespace {

const char *ltStatusName(cublasStatus_t status) {
  switch (status) {
  case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
  case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
  case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
  case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
  case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
  case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
  case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
  case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
  case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
  default: return "cuBLAS error";
  }
}

/// Destroys cuBLASLt descriptors when a GEMM call ends.
struct LtObjects {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t layouts[3] = {nullptr, nullptr, nullptr};
  cublasLtMatmulPreference_t preference = nullptr;
  ~LtObjects() {
    if (preference)
      cublasLtMatmulPreferenceDestroy(preference);
    for (cublasLtMatrixLayout_t layout : layouts)
      if (layout)
        cublasLtMatrixLayoutDestroy(layout);
    if (desc)
      cublasLtMatmulDescDestroy(desc);
  }
};

cudaDataType_t ltType(DType dtype) {
  return dtype == DType::BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

/// The largest power of two <= 256 that divides the address.
uint32_t alignmentOf(const void *p) {
  uint32_t alignment = 256;
  while (alignment > 1 && !aligned(p, alignment))
    alignment /= 2;
  return alignment;
}

ShapeText gemmShape(const GemmArgs &g) {
  ShapeText shape("gemm");
  shape("m", g.m)("n", g.n)("k", g.k)("batch", g.batch)(
      "a", ShapeText::dtypeText(g.a.dtype))("b", ShapeText::dtypeText(g.b.dtype))(
      "d", ShapeText::dtypeText(g.dDtype))("transA", g.a.transpose)(
      "transB", g.b.transpose)("lda", g.a.ld)("ldb", g.b.ld)("ldd", g.ldd);
  return shape;
}

Status validateGemm(const GemmArgs &g, const ShapeText &shape) {
  if (g.m < 1 || g.n < 1 || g.k < 1 || g.batch < 1)
    return fail(shape, "m, n, k and batch must be positive");
  if (g.m > INT32_MAX || g.n > INT32_MAX || g.k > INT32_MAX ||
      g.batch > INT32_MAX)
    return fail(shape, "dimensions must fit in int32");
  bool bf16In = g.a.dtype == DType::BF16 && g.b.dtype == DType::BF16;
  bool f32In = g.a.dtype == DType::F32 && g.b.dtype == DType::F32;
  if (!(bf16In && (g.dDtype == DType::BF16 || g.dDtype == DType::F32)) &&
      !(f32In && g.dDtype == DType::F32))
    return fail(shape, "supported types: bf16·bf16 -> bf16|f32, "
                       "f32·f32 -> f32");
  if (!g.a.data || !g.b.data || !g.d)
    return fail(shape, "null operand");
  int64_t aCols = g.a.transpose ? g.m : g.k;
  int64_t bCols = g.b.transpose ? g.k : g.n;
  if (g.a.ld < aCols || g.b.ld < bCols || g.ldd < g.n)
    return fail(shape, "a leading dimension is smaller than the row length");
  size_t inBytes = elementBytes(g.a.dtype);
  if (!aligned(g.a.data, inBytes) || !aligned(g.b.data, inBytes) ||
      !aligned(g.d, elementBytes(g.dDtype)) ||
      (g.bias && !aligned(g.bias, elementBytes(g.dDtype))))
    return fail(shape, "operands must be aligned to their element size");
  if (g.batch > 1 &&
      (g.a.batchStride < 0 || g.b.batchStride < 0 || g.batchStrideD < g.m * g.ldd))
    return fail(shape, "batch strides must be non-negative and d's must not "
                       "overlap");
  return Status::success();
}

#define VLORA_LT(call)                                                         \
  do {                                                                         \
    cublasStatus_t lt_status = (call);                                         \
    if (lt_status != CUBLAS_STATUS_SUCCESS)                                    \
      return fail(shape, std::string(#call).substr(0, 40) + "... failed: " +   \
                             ltStatusName(lt_status));                         \
  } while (0)

} // namespace

namespace {

constexpr int kCandidates = 8;

bool capturing(cudaStream_t stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &status) != cudaSuccess) {
    cudaGetLastError();
    return true; // unknown: do not launch extra work
  }
  return status != cudaStreamCaptureStatusNone;
}

/// Milliseconds per run of `algo` (median of 3 after a warm-up) writing into
/// `scratch` instead of the caller's d; < 0 when the algorithm fails.
float timeCandidate(Context::Impl &impl, cudaStream_t stream, void *workspace,
                    cublasLtMatmulDesc_t desc,
                    const cublasLtMatrixLayout_t layouts[3],
                    const GemmArgs &g, void *scratch,
                    const cublasLtMatmulAlgo_t &algo) {
  cudaEvent_t events[4] = {};
  for (cudaEvent_t &event : events)
    if (cudaEventCreate(&event) != cudaSuccess) {
      cudaGetLastError();
      event = nullptr;
    }
  float times[3] = {-1, -1, -1};
  bool usable = true;
  for (cudaEvent_t event : events)
    usable = usable && event;
  for (int run = -1; usable && run < 3; ++run) {
    if (run >= 0)
      cudaEventRecord(events[run], stream);
    usable = cublasLtMatmul(impl.lt, desc, &g.alpha, g.b.data, layouts[0],
                            g.a.data, layouts[1], &g.beta, scratch,
                            layouts[2], scratch, layouts[2], &algo, workspace,
                            Context::Impl::kWorkspaceBytes,
                            stream) == CUBLAS_STATUS_SUCCESS;
    if (run >= 0)
      cudaEventRecord(events[run + 1], stream);
    if (run >= 0 && usable && cudaEventSynchronize(events[run + 1]) ==
                                  cudaSuccess)
      cudaEventElapsedTime(&times[run], events[run], events[run + 1]);
  }
  for (cudaEvent_t event : events)
    if (event)
      cudaEventDestroy(event);
  if (!usable || cudaGetLastError() != cudaSuccess)
    return -1;
  std::sort(times, times + 3);
  return times[1];
}

std::string planKey(const GemmArgs &g, const ShapeText &shape) {
  std::string key = shape.str() + "/" + std::to_string(g.batchStrideD) + "/" +
                    std::to_string(g.a.batchStride) + "/" +
                    std::to_string(g.b.batchStride) + "/" +
                    (g.a.dtype == DType::F32 && g.allowTF32 ? "tf32" : "") +
                    "/" + (g.bias ? "bias" : "") + "/" +
                    (g.beta != 0 ? "beta" : "") + "/sm" +
                    std::to_string(g.smCountTarget);
  for (const void *p :
       std::initializer_list<const void *>{g.b.data, g.a.data, g.d, g.bias})
    key += "/" + std::to_string(p ? alignmentOf(p) : 256u);
  return key;
}

/// Builds the descriptors of g's problem into `plan` (freed by the caller's
/// LtObjects on failure, handed to the plan on success).
Status buildPlan(const GemmArgs &g, const ShapeText &shape, LtObjects &lt) {
  cublasComputeType_t compute =
      g.a.dtype == DType::F32 && g.allowTF32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                              : CUBLAS_COMPUTE_32F;
  VLORA_LT(cublasLtMatmulDescCreate(&lt.desc, compute, CUDA_R_32F));
  // Row-major D = op(A)·op(B) is column-major Dᵀ = op(B)ᵀ·op(A)ᵀ: cuBLASLt's
  // first operand is b, its second a.
  cublasOperation_t opFirst = g.b.transpose ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t opSecond = g.a.transpose ? CUBLAS_OP_T : CUBLAS_OP_N;
  VLORA_LT(cublasLtMatmulDescSetAttribute(lt.desc, CUBLASLT_MATMUL_DESC_TRANSA,
                                          &opFirst, sizeof(opFirst)));
  VLORA_LT(cublasLtMatmulDescSetAttribute(lt.desc, CUBLASLT_MATMUL_DESC_TRANSB,
                                          &opSecond, sizeof(opSecond)));
  if (g.bias) {
    cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    VLORA_LT(cublasLtMatmulDescSetAttribute(
        lt.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
    VLORA_LT(cublasLtMatmulDescSetAttribute(
        lt.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof(g.bias)));
  }
  if (g.smCountTarget > 0) {
    int32_t sms = g.smCountTarget;
    VLORA_LT(cublasLtMatmulDescSetAttribute(
        lt.desc, CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET, &sms, sizeof(sms)));
  }
  uint64_t firstRows = g.b.transpose ? g.k : g.n;
  uint64_t firstCols = g.b.transpose ? g.n : g.k;
  uint64_t secondRows = g.a.transpose ? g.m : g.k;
  uint64_t secondCols = g.a.transpose ? g.k : g.m;
  VLORA_LT(cublasLtMatrixLayoutCreate(&lt.layouts[0], ltType(g.b.dtype),
                                      firstRows, firstCols, g.b.ld));
  VLORA_LT(cublasLtMatrixLayoutCreate(&lt.layouts[1], ltType(g.a.dtype),
                                      secondRows, secondCols, g.a.ld));
  VLORA_LT(cublasLtMatrixLayoutCreate(&lt.layouts[2], ltType(g.dDtype), g.n,
                                      g.m, g.ldd));
  if (g.batch > 1) {
    int32_t count = static_cast<int32_t>(g.batch);
    int64_t strides[3] = {g.b.batchStride, g.a.batchStride, g.batchStrideD};
    for (int i = 0; i < 3; ++i) {
      VLORA_LT(cublasLtMatrixLayoutSetAttribute(
          lt.layouts[i], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
          sizeof(count)));
      VLORA_LT(cublasLtMatrixLayoutSetAttribute(
          lt.layouts[i], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
          &strides[i], sizeof(strides[i])));
    }
  }
  return Status::success();
}

/// Asks the heuristic for candidates and, when `time`, times them into
/// scratch memory and keeps the fastest.
Status chooseAlgorithm(Context::Impl &impl, cudaStream_t stream,
                       void *workspace, const GemmArgs &g,
                       const ShapeText &shape, Context::Impl::GemmPlan &plan,
                       bool time) {
  LtObjects lt; // holds the preference only
  VLORA_LT(cublasLtMatmulPreferenceCreate(&lt.preference));
  size_t workspaceBytes = Context::Impl::kWorkspaceBytes;
  VLORA_LT(cublasLtMatmulPreferenceSetAttribute(
      lt.preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspaceBytes,
      sizeof(workspaceBytes)));
  const cublasLtMatmulPreferenceAttributes_t alignmentAttributes[4] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  uint32_t alignments[4] = {alignmentOf(g.b.data), alignmentOf(g.a.data),
                            alignmentOf(g.d), alignmentOf(g.d)};
  for (int i = 0; i < 4; ++i)
    VLORA_LT(cublasLtMatmulPreferenceSetAttribute(
        lt.preference, alignmentAttributes[i], &alignments[i],
        sizeof(uint32_t)));
  cublasLtMatmulHeuristicResult_t results[kCandidates] = {};
  int returned = 0;
  VLORA_LT(cublasLtMatmulAlgoGetHeuristic(
      impl.lt, plan.desc, plan.layouts[0], plan.layouts[1], plan.layouts[2],
      plan.layouts[2], lt.preference, time ? kCandidates : 1, results,
      &returned));
  if (returned < 1)
    return fail(shape, "cuBLASLt has no algorithm for this problem");
  int best = 0;
  if (time && returned > 1) {
    // Scratch output (and C input) with d's footprint and d's offset within
    // 256 bytes (cudaMalloc aligns to 256), so alignments match.
    size_t elements = size_t(g.batch - 1) * size_t(g.batchStrideD) +
                      size_t(g.m - 1) * size_t(g.ldd) + size_t(g.n);
    size_t offset = reinterpret_cast<uintptr_t>(g.d) % 256;
    size_t bytes = elements * elementBytes(g.dDtype) + offset;
    void *scratch = nullptr;
    if (cudaMalloc(&scratch, bytes) == cudaSuccess &&
        cudaMemsetAsync(scratch, 0, bytes, stream) == cudaSuccess) {
      float bestMs = -1;
      for (int i = 0; i < returned; ++i) {
        float ms = timeCandidate(impl, stream, workspace, plan.desc,
                                 plan.layouts, g,
                                 static_cast<char *>(scratch) + offset,
                                 results[i].algo);
        if (ms >= 0 && (bestMs < 0 || ms < bestMs)) {
          bestMs = ms;
          best = i;
        }
      }
    }
    cudaGetLastError(); // a failed candidate or allocation is not an error
    if (scratch)
      cudaFree(scratch);
  }
  plan.algo = results[best].algo;
  plan.timed = time;
  return Status::success();
}

/// One GEMM on `stream` with cuBLASLt workspace `workspace`.
Status gemmOn(Context::Impl &impl, cudaStream_t stream, void *workspace,
              const GemmArgs &g) {
  ShapeText shape = gemmShape(g);
  if (Status s = validateGemm(g, shape); !s)
    return s;
  std::string key = planKey(g, shape);
  auto found = impl.gemmPlans.find(key);
  if (found == impl.gemmPlans.end()) {
    LtObjects lt;
    if (Status s = buildPlan(g, shape, lt); !s)
      return s;
    Context::Impl::GemmPlan plan;
    plan.desc = lt.desc;
    lt.desc = nullptr;
    for (int i = 0; i < 3; ++i) {
      plan.layouts[i] = lt.layouts[i];
      lt.layouts[i] = nullptr;
    }
    found = impl.gemmPlans.emplace(key, plan).first;
    bool time = impl.autotune && !capturing(stream);
    if (Status s = chooseAlgorithm(impl, stream, workspace, g, shape,
                                   found->second, time);
        !s) {
      impl.gemmPlans.erase(found); // Context's destructor would free it
      for (cublasLtMatrixLayout_t layout : plan.layouts)
        cublasLtMatrixLayoutDestroy(layout);
      cublasLtMatmulDescDestroy(plan.desc);
      return s;
    }
  } else if (!found->second.timed && impl.autotune && !capturing(stream)) {
    if (Status s = chooseAlgorithm(impl, stream, workspace, g, shape,
                                   found->second, true);
        !s)
      return s;
  }
  Context::Impl::GemmPlan &plan = found->second;
  if (g.bias) // the one per-call attribute: the key fixes everything else
    VLORA_LT(cublasLtMatmulDescSetAttribute(
        plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias,
        sizeof(g.bias)));
  VLORA_LT(cublasLtMatmul(impl.lt, plan.desc, &g.alpha, g.b.data,
                          plan.layouts[0], g.a.data, plan.layouts[1], &g.beta,
                          g.d, plan.layouts[2], g.d, plan.layouts[2],
                          &plan.algo, workspace,
                          Context::Impl::kWorkspaceBytes, stream));
  return Status::success();
}

} // namespace

Status gemm(Context &ctx, const GemmArgs &g) {
  Context::Impl &impl = ctx.impl();
  return gemmOn(impl, impl.stream, impl.workspace, g);
}

//===----------------------------------------------------------------------===//
// LoRA linear
//===----------------------------------------------------------------------===//

namespace {

ShapeText loraShape(const char *kernel, const LoraLinearShape &s) {
  ShapeText shape(kernel);
  shape("m", s.m)("k", s.k)("n", s.n)("r", s.r)("transposeW", s.transposeW);
  return shape;
}

Status validateLora(const LoraLinearShape &s, const ShapeText &shape,
                    std::initializer_list<const void *> bf16Buffers) {
  if (s.m < 1 || s.k < 1 || s.n < 1 || s.r < 1)
    return fail(shape, "m, k, n and r must be positive");
  for (const void *p : bf16Buffers)
    if (!p || !aligned(p, 2))
      return fail(shape, "bf16 buffers must be non-null and 2-byte aligned");
  return Status::success();
}

/// Writes A [r, k] and B [n, r] (fp32) rounded to bf16 into wPad's slots.
__global__ void packAdaptersKernel(int64_t k, int64_t n, int64_t r,
                                   bool transposeW, const float *a,
                                   const float *b, bf16 *w) {
  int64_t total = r * (k + n);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    if (i < r * k) { // A[row, col]
      int64_t row = i / k, col = i % k;
      int64_t at = transposeW ? (n + row) * (k + r) + col // [n+r, k+r]
                              : col * (n + r) + n + row;  // Aᵀ in [k+r, n+r]
      w[at] = __float2bfloat16_rn(a[i]);
    } else { // B[row, col]
      int64_t j = i - r * k, row = j / r, col = j % r;
      int64_t at = transposeW ? row * (k + r) + k + col
                              : (k + col) * (n + r) + row; // Bᵀ
      w[at] = __float2bfloat16_rn(b[j]);
    }
  }
}

Status wrap(const ShapeText &shape, Status inner) {
  if (inner)
    return inner;
  return fail(shape, inner.message());
}

GemmOperand bf16Operand(const void *data, int64_t ld, bool transpose) {
  GemmOperand operand;
  operand.data = data;
  operand.dtype = DType::BF16;
  operand.ld = ld;
  operand.transpose = transpose;
  return operand;
}

} // namespace

Status loraPackAdapters(Context &ctx, const LoraLinearShape &s,
                        const float *a, const float *b, void *wPad) {
  ShapeText shape = loraShape("loraPackAdapters", s);
  if (Status st = validateLora(s, shape, {wPad}); !st)
    return st;
  if (!a || !b || !aligned(a, 4) || !aligned(b, 4))
    return fail(shape, "adapters must be non-null aligned fp32");
  packAdaptersKernel<<<blocksFor(s.r * (s.k + s.n), 256, 4096), 256, 0,
                       streamOf(ctx)>>>(s.k, s.n, s.r, s.transposeW, a, b,
                                        static_cast<bf16 *>(wPad));
  return checkLaunch(shape);
}

Status loraLinearForward(Context &ctx, const LoraLinearShape &s, void *xPad,
                         const void *wPad, void *y, DType yDtype,
                         bool accumulate) {
  ShapeText shape = loraShape("loraLinearForward", s);
  if (Status st = validateLora(s, shape, {xPad, wPad}); !st)
    return st;
  if (!y || !isFloatType(yDtype) || !aligned(y, elementBytes(yDtype)))
    return fail(shape, "y must be non-null aligned bf16 or f32");
  int64_t ldx = s.k + s.r;
  int64_t ldw = s.transposeW ? s.k + s.r : s.n + s.r;
  const bf16 *w = static_cast<const bf16 *>(wPad);
  bf16 *x = static_cast<bf16 *>(xPad);

  // u = s·x·Aᵀ into xPad[:, k:k+r]. A sits in wPad as [r, k] rows below W
  // (transposeW) or as Aᵀ columns right of it.
  if (loraSkinnySupported(s.r, {s.k, s.n}, {xPad, wPad})) {
    const bf16 *p = s.transposeW ? w + s.n * ldw : w + s.n;
    if (Status st = loraDown(streamOf(ctx), shape, s.m, s.k, s.r, x, ldx, p,
                             ldw, /*pTransposed=*/!s.transposeW, s.scale,
                             x + s.k, ldx);
        !st)
      return st;
  } else {
    GemmArgs low;
    low.m = s.m;
    low.n = s.r;
    low.k = s.k;
    low.a = bf16Operand(x, ldx, false);
    low.b = s.transposeW ? bf16Operand(w + s.n * ldw, ldw, true)
                         : bf16Operand(w + s.n, ldw, false);
    low.d = x + s.k;
    low.dDtype = DType::BF16;
    low.ldd = ldx;
    low.alpha = s.scale;
    if (Status st = wrap(shape, gemm(ctx, low)); !st)
      return st;
  }

  // y = [x | u]·[W ; Bᵀ] in one GEMM over k + r.
  GemmArgs big;
  big.m = s.m;
  big.n = s.n;
  big.k = s.k + s.r;
  big.a = bf16Operand(x, ldx, false);
  big.b = bf16Operand(w, ldw, s.transposeW);
  big.d = y;
  big.dDtype = yDtype;
  big.ldd = s.n;
  big.beta = accumulate ? 1.f : 0.f;
  return wrap(shape, gemm(ctx, big));
}

Status loraLinearBackward(Context &ctx, const LoraLinearShape &s,
                          const void *xPad, const void *wPad, void *dyPad,
                          void *dx, float *dA, float *dB, bool accumulateDx,
                          bool accumulateGrads) {
  ShapeText shape = loraShape("loraLinearBackward", s);
  if (Status st = validateLora(s, shape, {xPad, wPad, dyPad}); !st)
    return st;
  if (dx && !aligned(dx, 2))
    return fail(shape, "dx must be 2-byte aligned bf16");
  if (!dA || !dB || !aligned(dA, 4) || !aligned(dB, 4))
    return fail(shape, "dA and dB must be non-null aligned fp32");
  int64_t ldx = s.k + s.r, ldy = s.n + s.r;
  int64_t ldw = s.transposeW ? s.k + s.r : s.n + s.r;
  const bf16 *w = static_cast<const bf16 *>(wPad);
  const bf16 *x = static_cast<const bf16 *>(xPad);
  bf16 *dy = static_cast<bf16 *>(dyPad);

  // The skinny gradient GEMMs run on the side stream, beside the main
  // stream's g and dx GEMMs: dB needs only dy and the forward's u, dA needs
  // g. The side stream forks from the main one here and joins it at the end.
  Context::Impl &impl = ctx.impl();
  cudaStream_t sideStream = impl.overlap ? impl.side : impl.stream;
  void *sideWorkspace = impl.overlap ? impl.sideWorkspace : impl.workspace;
  if (Status st = check(cudaEventRecord(impl.fork, impl.stream), shape,
                        "cudaEventRecord(fork)");
      !st)
    return st;
  if (Status st = check(cudaStreamWaitEvent(sideStream, impl.fork, 0), shape,
                        "cudaStreamWaitEvent(fork)");
      !st)
    return st;

  GemmArgs gradB; // dB [n, r] = dyᵀ·u (u = s·x·Aᵀ from the forward pass)
  gradB.m = s.n;
  gradB.n = s.r;
  gradB.k = s.m;
  gradB.a = bf16Operand(dy, ldy, true);
  gradB.b = bf16Operand(x + s.k, ldx, false);
  gradB.d = dB;
  gradB.dDtype = DType::F32;
  gradB.ldd = s.r;
  gradB.beta = accumulateGrads ? 1.f : 0.f;
  const bool skinny = loraSkinnySupported(s.r, {s.k, s.n}, {xPad, wPad, dyPad});
  Status sideStatus =
      skinny ? loraTN(sideStream, shape, s.m, s.r, s.n, x + s.k, ldx, dy, ldy,
                      dB, /*transposeOut=*/true, accumulateGrads,
                      sideWorkspace, Context::Impl::kWorkspaceBytes)
             : gemmOn(impl, sideStream, sideWorkspace, gradB);

  // g = s·dy·B into dyPad[:, n:n+r] (bytes gradB does not read).
  GemmArgs low;
  low.m = s.m;
  low.n = s.r;
  low.k = s.n;
  low.a = bf16Operand(dy, ldy, false);
  low.b = s.transposeW ? bf16Operand(w + s.k, ldw, false)
                       : bf16Operand(w + s.k * ldw, ldw, true);
  low.d = dy + s.n;
  low.dDtype = DType::BF16;
  low.ldd = ldy;
  low.alpha = s.scale;
  // Bᵀ sits in wPad as [r, n] rows below W, or as B's columns right of it
  // (transposeW).
  Status mainStatus =
      skinny ? loraDown(impl.stream, shape, s.m, s.n, s.r, dy, ldy,
                        s.transposeW ? w + s.k : w + s.k * ldw, ldw,
                        /*pTransposed=*/s.transposeW, s.scale, dy + s.n, ldy)
             : gemmOn(impl, impl.stream, impl.workspace, low);

  // dA needs g: the side stream waits for it.
  auto afterG = [&]() -> Status {
    if (Status st = check(cudaEventRecord(impl.fork, impl.stream), shape,
                          "cudaEventRecord(g)");
        !st)
      return st;
    if (Status st = check(cudaStreamWaitEvent(sideStream, impl.fork, 0), shape,
                          "cudaStreamWaitEvent(g)");
        !st)
      return st;
    GemmArgs gradA; // dA [r, k] = gᵀ·x
    gradA.m = s.r;
    gradA.n = s.k;
    gradA.k = s.m;
    gradA.a = bf16Operand(dy + s.n, ldy, true);
    gradA.b = bf16Operand(x, ldx, false);
    gradA.d = dA;
    gradA.dDtype = DType::F32;
    gradA.ldd = s.k;
    gradA.beta = accumulateGrads ? 1.f : 0.f;
    if (skinny)
      return loraTN(sideStream, shape, s.m, s.r, s.k, dy + s.n, ldy, x, ldx, dA,
                    /*transposeOut=*/false, accumulateGrads,
                    sideWorkspace, Context::Impl::kWorkspaceBytes);
    return gemmOn(impl, sideStream, sideWorkspace, gradA);
  };
  auto dxGemm = [&]() -> Status {
    if (!dx)
      return Status::success();
    GemmArgs big; // dx = [dy | g]·[W | Aᵀ]ᵀ over n + r
    big.m = s.m;
    big.n = s.k;
    big.k = s.n + s.r;
    big.a = bf16Operand(dy, ldy, false);
    big.b = bf16Operand(w, ldw, !s.transposeW);
    big.d = dx;
    big.dDtype = DType::BF16;
    big.ldd = s.k;
    big.beta = accumulateDx ? 1.f : 0.f;
    return gemmOn(impl, impl.stream, impl.workspace, big);
  };
  Status rest = sideStatus && mainStatus ? afterG() : Status::success();
  Status dxStatus =
      sideStatus && mainStatus && rest ? dxGemm() : Status::success();

  // Join: the main stream waits for the side stream whatever happened, so
  // that no side work is left unordered (and a capture stays well formed).
  Status recorded = check(cudaEventRecord(impl.join, sideStream), shape,
                          "cudaEventRecord(join)");
  Status joined = recorded ? check(cudaStreamWaitEvent(impl.stream, impl.join,
                                                       0),
                                   shape, "cudaStreamWaitEvent(join)")
                           : recorded;
  for (const Status *st : {&sideStatus, &mainStatus, &rest, &dxStatus})
    if (!*st)
      return wrap(shape, *st);
  return joined;
}

} // namespace vlora::kernels::cuda
