/* fastbp's own GEMM for the shapes of its layers; see gemm.c. */
#ifndef FASTBP_GEMM_H
#define FASTBP_GEMM_H

#include <stddef.h>

/* C (m x n) = op(A) (m x k) @ op(B) (k x n), plus C when accumulate, all
 * row-major with leading dimensions lda, ldb, ldc; op(X) is X^T when its flag
 * is set. Returns 0 when done, 1 when this instruction-set level has no copy
 * or k < 1: the caller then uses BLAS. */
int fastbp_gemm_f32(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                    const float* A, ptrdiff_t lda, const float* B, ptrdiff_t ldb,
                    int accumulate, float* C, ptrdiff_t ldc);
int fastbp_gemm_f64(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                    const double* A, ptrdiff_t lda, const double* B, ptrdiff_t ldb,
                    int accumulate, double* C, ptrdiff_t ldc);

#endif
