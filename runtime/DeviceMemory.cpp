//===- DeviceMemory.cpp - what the CUDA backend allocates -----------------===//
//
// Mirrors the allocations of runtime/cuda/CudaBackend.cpp and of the op
// twins in kernels/cuda/Ops*.cu; a change to either changes this file (the
// GPU check compares the prediction with what the backend measures).
//
//===----------------------------------------------------------------------===//

#include "runtime/DeviceMemory.h"

#include "vlora/kernels/Tensor.h"

#include <algorithm>
#include <cstdio>

namespace vlora::runtime {
using kernels::DType;

namespace {

/// One cudaMallocAsync of the twins: at least 16 bytes, pool-aligned.
uint64_t block(uint64_t bytes) {
  return cudaAlignUp(std::max<uint64_t>(bytes, 16));
}

const ProgramValue &input(const Program &p, const ProgramStep &s, size_t i) {
  return p.values[s.inputs[i]];
}
const ProgramValue &output(const Program &p, const ProgramStep &s, size_t i) {
  return p.values[s.outputs[i]];
}
int64_t numel(const ProgramValue &v) { return kernels::numElements(v.shape); }

/// An exact f32 copy of a bf16 operand (widenedWeight).
uint64_t widened(const ProgramValue &v) {
  return v.dtype == DType::BF16 ? block(uint64_t(numel(v)) * 4) : 0;
}

/// The attention twins' scratch: `buffers` result-typed [S, T] blocks for
/// min(cap, batch) heads, cap = 256 MiB / (S·T·bytes·buffers) (at least 1);
/// with f32_result a bf16 copy of one set of them when q, k, v are all bf16
/// (else the bf16 ones widened), and in the backward dO rounded.
uint64_t attentionScratch(const Program &p, const ProgramStep &s,
                          size_t first, int buffers) {
  const ProgramValue &q = input(p, s, first), &k = input(p, s, first + 1),
                     &v = input(p, s, first + 2), &out = output(p, s, 0);
  size_t rank = q.shape.size();
  if (rank < 2)
    return 0;
  int64_t sLen = q.shape[rank - 2];
  int64_t tLen = s.transposeK ? k.shape[rank - 2] : k.shape[rank - 1];
  int64_t batch = 1;
  for (size_t i = 0; i + 2 < rank; ++i)
    batch *= q.shape[i];
  DType result = out.dtype;
  bool rounded = result == DType::F32 &&
                 (q.dtype == DType::BF16 || k.dtype == DType::BF16 ||
                  v.dtype == DType::BF16);
  bool bf16 = rounded && q.dtype == DType::BF16 && k.dtype == DType::BF16 &&
              v.dtype == DType::BF16;
  uint64_t total = 0;
  if (rounded && !bf16)
    total += widened(q) + widened(k) + widened(v);
  if (rounded && first == 1)
    total += block(uint64_t(numel(input(p, s, 0))) * (bf16 ? 2 : 4));
  uint64_t bytes = kernels::dtypeSize(result);
  uint64_t blockBytes = std::max<uint64_t>(uint64_t(sLen * tLen) * bytes, 1);
  int64_t cap = std::max<int64_t>(
      1, int64_t((uint64_t(256) << 20) / (blockBytes * buffers)));
  uint64_t elements = uint64_t(std::min(cap, batch)) * sLen * tLen;
  total += buffers * block(elements * bytes);
  if (bf16)
    total += block(elements * 2);
  return total;
}

} // namespace

uint64_t cudaScratchBytes(const Program &p, const ProgramStep &s) {
  switch (s.kernel) {
  case Kernel::Matmul: {
    const ProgramValue &l = input(p, s, 0), &r = input(p, s, 1);
    if (output(p, s, 0).dtype == DType::F32 && l.dtype != r.dtype)
      return widened(l) + widened(r);
    return 0;
  }
  case Kernel::LoRAMatmul: {
    const ProgramValue &x = input(p, s, 0), &w = input(p, s, 1),
                       &a = input(p, s, 2), &out = output(p, s, 0);
    uint64_t total = 0;
    bool bf16Frozen = x.dtype == DType::BF16 && w.dtype == DType::BF16;
    if (out.dtype == DType::F32)
      total += widened(x) + (bf16Frozen ? 0 : widened(w));
    int64_t outDim = out.shape.empty() ? 0 : out.shape.back();
    int64_t rows = outDim ? numel(out) / outDim : 0;
    int64_t in = x.shape.back(), r = a.shape[0];
    if (rows == 0 || outDim == 0 || r == 0)
      return total;
    bool drop = s.inputs.size() > 4 && s.dropout > 0;
    if (drop)
      total += block(uint64_t(rows * in) * 4);
    return total + block(uint64_t(rows * r) * 4);
  }
  case Kernel::LoRAMatmulGrad: {
    const ProgramValue &dy = input(p, s, 0), &x = input(p, s, 1),
                       &w = input(p, s, 2), &a = input(p, s, 3);
    bool gradX = s.outputs.size() > 2;
    uint64_t total = 0;
    if (dy.dtype == DType::F32 &&
        (x.dtype == DType::BF16 || (gradX && w.dtype == DType::BF16))) {
      total += widened(x);
      if (gradX && x.dtype == DType::BF16) {
        total += block(uint64_t(numel(dy)) * 2);
        if (w.dtype != DType::BF16)
          total += block(uint64_t(numel(dy)) * 4);
      } else if (gradX) {
        total += widened(w);
      }
    }
    int64_t in = x.shape.back(), outDim = dy.shape.back(), r = a.shape[0];
    int64_t n = in ? numel(x) / in : numel(dy) / std::max<int64_t>(outDim, 1);
    bool drop = s.inputs.size() > 5 && s.dropout > 0;
    if (drop && n * in > 0)
      total += block(uint64_t(n * in) * 4);
    total += 2 * block(uint64_t(n * r) * 4);
    if (gradX && drop && n * in > 0)
      total += block(uint64_t(n * in) * 4);
    return total;
  }
  case Kernel::LinearCrossEntropy: {
    const ProgramValue &in = input(p, s, 0), &w = input(p, s, 1);
    uint64_t total = 0;
    bool f32Grad = output(p, s, 1).dtype == DType::F32;
    // Both bf16: bf16 GEMMs and a bf16 copy of the logits' gradient chunk;
    // one of them bf16: both widened.
    bool bf16 = f32Grad && in.dtype == DType::BF16 && w.dtype == DType::BF16;
    if (f32Grad && !bf16)
      total += widened(in) + widened(w);
    int64_t rows = in.shape.size() == 3 ? in.shape[0] * in.shape[1] : 0;
    int64_t vocab = w.shape.size() == 2 ? w.shape[s.transposeB ? 0 : 1] : 0;
    total += block(8) + block(uint64_t(rows) * 8);
    if (rows > 0) {
      int64_t chunk = std::clamp<int64_t>(
          (int64_t(1) << 24) / std::max<int64_t>(vocab, 1), 1, rows);
      total += block(uint64_t(chunk * vocab) * 4);
      if (bf16)
        total += block(uint64_t(chunk * vocab) * 2);
    }
    return total;
  }
  case Kernel::CrossEntropy: {
    const ProgramValue &logits = input(p, s, 0);
    int64_t rows = logits.shape.size() == 3 ? logits.shape[0] * logits.shape[1] : 0;
    return block(8) + block(uint64_t(rows) * 8);
  }
  case Kernel::CrossEntropyGrad:
    return block(8);
  case Kernel::Attention:
    return attentionScratch(p, s, 0, 2);
  case Kernel::AttentionGrad:
    return attentionScratch(p, s, 1, 3);
  case Kernel::MaskedScatter:
  case Kernel::MaskedSelect: {
    // Flags and positions (i64) per mask element; cub's scan storage, a
    // small fraction of it, is not counted.
    const ProgramValue &mask = input(p, s, 1);
    return block(uint64_t(numel(mask)) * 16);
  }
  default:
    return 0;
  }
}

CudaMemoryEstimate estimateCudaMemory(const Program &program) {
  CudaMemoryEstimate e;
  e.arena = cudaAlignUp(std::max<uint64_t>(program.arenaBytes, 1));
  std::vector<bool> used(program.weights.size(), false);
  for (const ProgramValue &v : program.values) {
    if (v.storage == Storage::Weight)
      used[v.weight] = true;
    else if (v.storage == Storage::Constant)
      e.constants += cudaAlignUp(v.bytes);
  }
  for (size_t w = 0; w < program.weights.size(); ++w)
    if (used[w])
      e.weights += cudaAlignUp(program.weights[w].length);
  // One resident allocation of at least one alignment unit.
  if (e.weights + e.constants == 0)
    e.weights = kCudaAlignment;
  e.context = kCudaContextBytes;
  for (const ProgramStep &s : program.steps)
    e.scratch = std::max(e.scratch, cudaScratchBytes(program, s));
  return e;
}

uint64_t cudaPeakBytes(const std::vector<CudaMemoryEstimate> &programs) {
  uint64_t resident = 0, scratch = 0;
  for (const CudaMemoryEstimate &e : programs) {
    resident += e.resident();
    scratch = std::max(scratch, e.scratch);
  }
  return resident + scratch;
}

std::string describeCudaMemory(const CudaMemoryEstimate &e) {
  auto mib = [](uint64_t b) { return double(b) / (1024.0 * 1024.0); };
  char text[256];
  std::snprintf(text, sizeof text,
                "arena %.2f MiB, weights %.2f MiB, constants %.2f MiB, kernel "
                "context %.2f MiB, scratch %.2f MiB",
                mib(e.arena), mib(e.weights), mib(e.constants), mib(e.context),
                mib(e.scratch));
  return text;
}

} // namespace vlora::runtime
