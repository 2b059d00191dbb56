//===- Blas.h - the CPU kernels' one GEMM entry point -----------*- C++ -*-===//
//
// Internal to kernels/cpu: row-major GEMM through CBLAS (OpenBLAS, threaded)
// for f32 and f64, with the sizes checked against the BLAS integer range.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_KERNELS_CPU_BLAS_H
#define VLORA_KERNELS_CPU_BLAS_H

#include "vlora/kernels/Tensor.h"

#include <cblas.h>

#include <algorithm>
#include <climits>
#include <string>
#include <type_traits>

namespace vlora::kernels::cpu::detail {

inline blasint blasSize(int64_t n) {
  if (n > INT_MAX)
    throw KernelError("matrix dimension " + std::to_string(n) +
                      " exceeds the BLAS integer range");
  return static_cast<blasint>(n);
}

/// Row-major C[m,n] = alpha · op(A)[m,k] · op(B)[k,n] + beta · C with the
/// leading dimensions as stored. k == 0 scales C by beta without calling
/// BLAS (so empty contractions give zeros whatever the library does).
template <typename T>
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha,
          const T *a, int64_t lda, const T *b, int64_t ldb, double beta, T *c,
          int64_t ldc) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
  if (m == 0 || n == 0)
    return;
  if (k == 0) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j)
        c[i * ldc + j] =
            beta == 0 ? T(0) : static_cast<T>(beta * c[i * ldc + j]);
    return;
  }
  auto ld = [](int64_t v) { return blasSize(std::max<int64_t>(v, 1)); };
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                tb ? CblasTrans : CblasNoTrans, blasSize(m), blasSize(n),
                blasSize(k), static_cast<float>(alpha), a, ld(lda), b, ld(ldb),
                static_cast<float>(beta), c, ld(ldc));
  else
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                tb ? CblasTrans : CblasNoTrans, blasSize(m), blasSize(n),
                blasSize(k), alpha, a, ld(lda), b, ld(ldb), beta, c, ld(ldc));
}

} // namespace vlora::kernels::cpu::detail

#endif // VLORA_KERNELS_CPU_BLAS_H
