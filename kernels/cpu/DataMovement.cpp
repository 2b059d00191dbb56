//===- DataMovement.cpp - reshape, transpose, slice, gather, scatter, ... -===//
//
// These kernels move elements without looking at their values, so they work
// on every element type by moving element-sized words.
//
//===----------------------------------------------------------------------===//

#include "vlora/kernels/Cpu.h"

#include "Iteration.h"

#include <algorithm>
#include <cstring>

namespace vlora::kernels::cpu {
using namespace detail;

namespace {
/// Copies out[...] = in[...] over `space`, with the given element strides
/// and base offsets of both sides.
void stridedCopy(const TensorRef &in, const TensorRef &out, const Shape &space,
                 const Strides &inStrides, int64_t inBase,
                 const Strides &outStrides, int64_t outBase) {
  visitBits(in.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T *x = in.as<const T>();
    T *y = out.as<T>();
    int64_t is = inStrides.empty() ? 1 : inStrides.back();
    int64_t os = outStrides.empty() ? 1 : outStrides.back();
    forEachRow<2>(space, {&inStrides, &outStrides}, {inBase, outBase},
                  [&](const std::array<int64_t, 2> &o, int64_t n) {
                    if (is == 1 && os == 1) {
                      std::memcpy(y + o[1], x + o[0], n * sizeof(T));
                      return;
                    }
                    for (int64_t i = 0; i < n; ++i)
                      y[o[1] + i * os] = x[o[0] + i * is];
                  });
  });
}

size_t esize(const TensorRef &t) { return dtypeSize(t.dtype); }
char *bytesOf(const TensorRef &t) { return static_cast<char *>(t.data); }
} // namespace

void copy(const TensorRef &in, const TensorRef &out) {
  if (in.data != out.data && in.bytes())
    std::memmove(out.data, in.data, in.bytes());
}

void transpose(const TensorRef &in, const TensorRef &out, const Shape &perm) {
  Strides si = contiguousStrides(in.shape), permuted(perm.size());
  for (size_t i = 0; i < perm.size(); ++i)
    permuted[i] = si[perm[i]];
  stridedCopy(in, out, out.shape, permuted, 0, contiguousStrides(out.shape), 0);
}

void slice(const TensorRef &in, const TensorRef &out, const Shape &starts,
           const Shape &steps) {
  Strides si = contiguousStrides(in.shape), s(si.size());
  int64_t base = 0;
  for (size_t d = 0; d < si.size(); ++d) {
    s[d] = si[d] * steps[d];
    base += starts[d] * si[d];
  }
  if (out.numel() == 0)
    return;
  stridedCopy(in, out, out.shape, s, base, contiguousStrides(out.shape), 0);
}

void concat(const std::vector<TensorRef> &inputs, const TensorRef &out,
            int64_t axis) {
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d)
    outer *= out.shape[d];
  size_t outRow = out.numel() && outer ? out.bytes() / outer : 0;
  size_t at = 0;
  for (const TensorRef &in : inputs) {
    size_t row = in.numel() && outer ? in.bytes() / outer : 0;
    for (int64_t o = 0; o < outer && row; ++o)
      std::memcpy(bytesOf(out) + o * outRow + at, bytesOf(in) + o * row, row);
    at += row;
  }
}

void split(const TensorRef &in, const std::vector<TensorRef> &outs,
           int64_t axis) {
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d)
    outer *= in.shape[d];
  size_t inRow = in.numel() && outer ? in.bytes() / outer : 0;
  size_t at = 0;
  for (const TensorRef &out : outs) {
    size_t row = out.numel() && outer ? out.bytes() / outer : 0;
    for (int64_t o = 0; o < outer && row; ++o)
      std::memcpy(bytesOf(out) + o * row, bytesOf(in) + o * inRow + at, row);
    at += row;
  }
}

void gather(const TensorRef &data, const TensorRef &indices,
            const TensorRef &out, int64_t axis) {
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d)
    outer *= data.shape[d];
  for (size_t d = axis + 1; d < data.shape.size(); ++d)
    inner *= data.shape[d];
  int64_t size = data.shape[axis], count = indices.numel();
  size_t chunk = inner * esize(data);
  // Check every index before writing anything.
  std::vector<int64_t> idx(count);
  for (int64_t i = 0; i < count; ++i)
    idx[i] = normaliseIndex(loadIndex(indices, i), size, "gather");
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < count && chunk; ++i)
      std::memcpy(bytesOf(out) + (o * count + i) * chunk,
                  bytesOf(data) + (o * size + idx[i]) * chunk, chunk);
}

void gatherGrad(const TensorRef &grad, const TensorRef &indices,
                const TensorRef &out, int64_t axis) {
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d)
    outer *= out.shape[d];
  for (size_t d = axis + 1; d < out.shape.size(); ++d)
    inner *= out.shape[d];
  int64_t size = out.shape[axis], count = indices.numel();
  std::vector<int64_t> idx(count);
  for (int64_t i = 0; i < count; ++i)
    idx[i] = normaliseIndex(loadIndex(indices, i), size, "gather_grad");
  auto run = [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T *g = grad.as<const T>();
    T *y = out.as<T>();
    std::fill(y, y + outer * size * inner, T(0));
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < count; ++i) {
        const T *src = g + (o * count + i) * inner;
        T *dst = y + (o * size + idx[i]) * inner;
        for (int64_t k = 0; k < inner; ++k)
          dst[k] += src[k];
      }
  };
  if (grad.dtype == DType::F32)
    run(Tag<float>{});
  else if (grad.dtype == DType::F64)
    run(Tag<double>{});
  else
    throw KernelError(std::string("gather_grad: unsupported element type ") +
                      dtypeName(grad.dtype));
}

void gatherElements(const TensorRef &data, const TensorRef &indices,
                    const TensorRef &out, int64_t axis) {
  Strides sd = contiguousStrides(data.shape);
  int64_t rank = data.rank(), n = indices.numel(), size = data.shape[axis];
  std::vector<int64_t> index(rank, 0);
  visitBits(data.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T *x = data.as<const T>();
    T *y = out.as<T>();
    for (int64_t i = 0; i < n; ++i) {
      int64_t offset = 0;
      for (int64_t d = 0; d < rank; ++d) {
        int64_t c = d == axis ? normaliseIndex(loadIndex(indices, i), size,
                                               "gather_elements")
                              : index[d];
        offset += c * sd[d];
      }
      y[i] = x[offset];
      for (int64_t d = rank - 1; d >= 0; --d) {
        if (++index[d] < indices.shape[d])
          break;
        index[d] = 0;
      }
    }
  });
}

namespace {
/// Offsets (in elements of `data`) of the slices addressed by the index
/// tuples in `indices` [..., k]; all checked.
std::vector<int64_t> tupleOffsets(const TensorRef &data,
                                  const TensorRef &indices, const char *what) {
  int64_t k = indices.shape.back();
  int64_t tuples = k ? indices.numel() / k : numElements(
      Shape(indices.shape.begin(), indices.shape.end() - 1));
  Strides sd = contiguousStrides(data.shape);
  std::vector<int64_t> offsets(tuples, 0);
  for (int64_t t = 0; t < tuples; ++t)
    for (int64_t j = 0; j < k; ++j)
      offsets[t] += normaliseIndex(loadIndex(indices, t * k + j),
                                   data.shape[j], what) * sd[j];
  return offsets;
}
} // namespace

void gatherND(const TensorRef &data, const TensorRef &indices,
              const TensorRef &out) {
  int64_t k = indices.shape.back();
  int64_t sliceElems = numElements(Shape(data.shape.begin() + k, data.shape.end()));
  size_t chunk = sliceElems * esize(data);
  std::vector<int64_t> offsets = tupleOffsets(data, indices, "gather_nd");
  for (size_t t = 0; t < offsets.size() && chunk; ++t)
    std::memcpy(bytesOf(out) + t * chunk,
                bytesOf(data) + offsets[t] * esize(data), chunk);
}

void scatterND(const TensorRef &data, const TensorRef &indices,
               const TensorRef &updates, const TensorRef &out) {
  int64_t k = indices.shape.back();
  int64_t sliceElems = numElements(Shape(data.shape.begin() + k, data.shape.end()));
  size_t chunk = sliceElems * esize(data);
  std::vector<int64_t> offsets = tupleOffsets(data, indices, "scatter_nd");
  copy(data, out);
  for (size_t t = 0; t < offsets.size() && chunk; ++t)
    std::memcpy(bytesOf(out) + offsets[t] * esize(data),
                bytesOf(updates) + t * chunk, chunk);
}

void maskedScatter(const TensorRef &data, const TensorRef &mask,
                   const TensorRef &source, const TensorRef &out) {
  const uint8_t *m = mask.as<const uint8_t>();
  int64_t n = data.numel(), trues = 0;
  for (int64_t i = 0; i < n; ++i)
    trues += m[i] != 0;
  if (trues > source.numel())
    throw KernelError("masked_scatter: the mask selects " +
                      std::to_string(trues) + " positions but source has only " +
                      std::to_string(source.numel()) + " elements");
  copy(data, out);
  visitBits(data.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T *s = source.as<const T>();
    T *y = out.as<T>();
    int64_t next = 0;
    for (int64_t i = 0; i < n; ++i)
      if (m[i])
        y[i] = s[next++];
  });
}

void expand(const TensorRef &in, const TensorRef &out) {
  stridedCopy(in, out, out.shape, broadcastStrides(in.shape, out.shape), 0,
              contiguousStrides(out.shape), 0);
}

void pad(const TensorRef &in, const TensorRef &out, const Shape &pads,
         double value) {
  // Fill with the value converted to the element type, then copy the input
  // into the interior.
  TensorRef scalarIn{&value, DType::F64, {}};
  std::vector<uint64_t> word(1);
  TensorRef scalarOut{word.data(), out.dtype, {}};
  cast(scalarIn, scalarOut);
  visitBits(out.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T v = *scalarOut.as<T>();
    std::fill(out.as<T>(), out.as<T>() + out.numel(), v);
  });
  Strides so = contiguousStrides(out.shape);
  int64_t base = 0;
  for (size_t d = 0; d < so.size(); ++d)
    base += pads[d] * so[d];
  stridedCopy(in, out, in.shape, contiguousStrides(in.shape), 0, so, base);
}

void trilu(const TensorRef &in, const TensorRef &out, bool upper, int64_t k) {
  copy(in, out);
  int64_t rows = in.shape[in.rank() - 2], cols = in.shape.back();
  int64_t matrixSize = rows * cols;
  int64_t matrices = matrixSize != 0 ? in.numel() / matrixSize : 0;
  size_t es = esize(in);
  for (int64_t mtx = 0; mtx < matrices; ++mtx) {
    char *base = bytesOf(out) + mtx * rows * cols * es;
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) {
        bool keep = upper ? j - i >= k : j - i <= k;
        if (!keep)
          std::memset(base + (i * cols + j) * es, 0, es);
      }
  }
}

} // namespace vlora::kernels::cpu
