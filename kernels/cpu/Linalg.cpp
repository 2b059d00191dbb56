//===- Linalg.cpp - matmul, lora_matmul and conv through BLAS -------------===//

#include "vlora/kernels/Cpu.h"

#include "Blas.h"
#include "Iteration.h"

#include <algorithm>
#include <climits>

namespace vlora::kernels::cpu {
using namespace detail;

namespace {
template <typename F> void visitBlasFloat(DType dtype, F &&f) {
  if (dtype == DType::F32)
    return f(Tag<float>{});
  if (dtype == DType::F64)
    return f(Tag<double>{});
  throw KernelError(std::string("unsupported element type ") + dtypeName(dtype));
}
} // namespace

void matmul(const TensorRef &lhs, const TensorRef &rhs, const TensorRef &out,
            bool ta, bool tb) {
  if (out.dtype == DType::F32 &&
      (lhs.dtype == DType::BF16 || rhs.dtype == DType::BF16)) {
    std::vector<float> wideLhs, wideRhs;
    return matmul(widenBFloat16(lhs, wideLhs), widenBFloat16(rhs, wideRhs), out,
                  ta, tb);
  }
  int64_t lr = lhs.rank(), rr = rhs.rank(), orank = out.rank();
  int64_t m = out.shape[orank - 2], n = out.shape[orank - 1];
  int64_t k = ta ? lhs.shape[lr - 2] : lhs.shape[lr - 1];
  int64_t lda = lhs.shape[lr - 1], ldb = rhs.shape[rr - 1];
  visitBlasFloat(out.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T *a = lhs.as<const T>(), *b = rhs.as<const T>();
    T *c = out.as<T>();
    // A plain linear layer: rhs has no batch dimensions and lhs is not
    // transposed, so all of lhs's rows are one GEMM.
    if (rr == 2 && !ta) {
      int64_t rows = out.numel() / std::max<int64_t>(n, 1);
      if (n == 0)
        return;
      gemm(false, tb, rows, n, k, 1.0, a, lda, b, ldb, 0.0, c, n);
      return;
    }
    Shape batch(out.shape.begin(), out.shape.end() - 2);
    Shape lb(lhs.shape.begin(), lhs.shape.end() - 2);
    Shape rb(rhs.shape.begin(), rhs.shape.end() - 2);
    Strides sl = broadcastStrides(lb, batch), sr = broadcastStrides(rb, batch);
    Strides so = contiguousStrides(batch);
    int64_t lm = lhs.shape[lr - 2] * lhs.shape[lr - 1];
    int64_t rm = rhs.shape[rr - 2] * rhs.shape[rr - 1];
    // Batch offsets are in matrices; walk the batch space element-wise.
    Shape space = batch;
    space.push_back(1);
    for (Strides *s : {&sl, &sr, &so})
      s->push_back(0);
    forEachRow<3>(space, {&sl, &sr, &so}, {0, 0, 0},
                  [&](const std::array<int64_t, 3> &o, int64_t) {
                    gemm(ta, tb, m, n, k, 1.0, a + o[0] * lm, lda,
                         b + o[1] * rm, ldb, 0.0, c + o[2] * m * n, n);
                  });
  });
}

void loraMatmul(const TensorRef &x, const TensorRef &w, const TensorRef &a,
                const TensorRef &b, const TensorRef &out, double scale,
                bool tb) {
  // bf16 x and/or w with an f32 result (--vlora-mixed-precision): widened
  // exactly, then the f32 path.
  if (out.dtype == DType::F32 &&
      (x.dtype == DType::BF16 || w.dtype == DType::BF16)) {
    std::vector<float> wideX, wideW;
    return loraMatmul(widenBFloat16(x, wideX), widenBFloat16(w, wideW), a, b,
                      out, scale, tb);
  }
  int64_t in = x.shape.back(), outDim = out.shape.back();
  int64_t r = a.shape[0];
  int64_t rows = outDim ? out.numel() / outDim : 0;
  visitBlasFloat(out.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T *px = x.as<const T>();
    T *py = out.as<T>();
    if (rows == 0 || outDim == 0)
      return;
    gemm(false, tb, rows, outDim, in, 1.0, px, in, w.as<const T>(),
         w.shape.back(), 0.0, py, outDim);
    if (r == 0)
      return;
    std::vector<T> t(static_cast<size_t>(rows * r));
    gemm(false, true, rows, r, in, 1.0, px, in, a.as<const T>(), in, 0.0,
         t.data(), r);
    gemm(false, true, rows, outDim, r, scale, t.data(), r, b.as<const T>(), r,
         1.0, py, outDim);
  });
}

void conv(const TensorRef &input, const TensorRef &weight, const TensorRef *bias,
          const TensorRef &out, const Shape &strides, const Shape &pads,
          const Shape &dilations, int64_t group) {
  size_t k = input.shape.size() - 2;
  int64_t batch = input.shape[0], channels = input.shape[1];
  int64_t outChannels = out.shape[1];
  int64_t cg = channels / group, mg = outChannels / group;
  Shape inSpatial(input.shape.begin() + 2, input.shape.end());
  Shape kernel(weight.shape.begin() + 2, weight.shape.end());
  Shape outSpatial(out.shape.begin() + 2, out.shape.end());
  int64_t inSize = numElements(inSpatial), kSize = numElements(kernel),
          outSize = numElements(outSpatial);
  int64_t colRows = cg * kSize;
  visitBlasFloat(out.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T *px = input.as<const T>(), *pw = weight.as<const T>();
    T *py = out.as<T>();
    if (out.numel() == 0)
      return;
    // im2col: col[(c, kpos), opos] = x[c, opos * stride - padBegin + kpos * dilation]
    std::vector<T> col(static_cast<size_t>(colRows * outSize));
    std::vector<int64_t> kIdx(k), oIdx(k);
    for (int64_t n = 0; n < batch; ++n) {
      for (int64_t g = 0; g < group; ++g) {
        const T *xg = px + (n * channels + g * cg) * inSize;
        T *cp = col.data();
        for (int64_t c = 0; c < cg; ++c) {
          std::fill(kIdx.begin(), kIdx.end(), 0);
          for (int64_t kp = 0; kp < kSize; ++kp) {
            std::fill(oIdx.begin(), oIdx.end(), 0);
            for (int64_t op = 0; op < outSize; ++op) {
              int64_t offset = 0;
              bool inside = true;
              for (size_t d = 0; d < k; ++d) {
                int64_t pos = oIdx[d] * strides[d] - pads[d] + kIdx[d] * dilations[d];
                if (pos < 0 || pos >= inSpatial[d]) {
                  inside = false;
                  break;
                }
                offset = offset * inSpatial[d] + pos;
              }
              *cp++ = inside ? xg[c * inSize + offset] : T(0);
              for (int64_t d = static_cast<int64_t>(k) - 1; d >= 0; --d) {
                if (++oIdx[d] < outSpatial[d])
                  break;
                oIdx[d] = 0;
              }
            }
            for (int64_t d = static_cast<int64_t>(k) - 1; d >= 0; --d) {
              if (++kIdx[d] < kernel[d])
                break;
              kIdx[d] = 0;
            }
          }
        }
        // y[g*mg.., opos] = w[g*mg.., (c, kpos)] · col
        gemm(false, false, mg, outSize, colRows, 1.0, pw + g * mg * colRows,
             colRows, col.data(), outSize, 0.0,
             py + (n * outChannels + g * mg) * outSize, outSize);
      }
      if (bias) {
        const T *pb = bias->as<const T>();
        for (int64_t m = 0; m < outChannels; ++m) {
          T *row = py + (n * outChannels + m) * outSize;
          for (int64_t i = 0; i < outSize; ++i)
            row[i] += pb[m];
        }
      }
    }
  });
}

} // namespace vlora::kernels::cpu
