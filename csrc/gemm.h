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

/* op(B) (k x n, op(B) = B^T when trans_b) packed once for several products
 * of fastbp_gemm_packed that share it (the blocks of rows of one product, as
 * a team shares them out). Returns the packed copy and sets *level (the
 * instruction-set level it is packed for) and *held (what to give
 * fastbp_gemm_pack_free once done); returns NULL with *held NULL where the
 * level has no copy, k or n is below 1, the copy would take more than 4 MB,
 * or memory runs out: the caller then multiplies with fastbp_gemm / BLAS. */
float* fastbp_gemm_pack_f32(int trans_b, ptrdiff_t n, ptrdiff_t k, const float* B,
                            ptrdiff_t ldb, int* level, void** held);
double* fastbp_gemm_pack_f64(int trans_b, ptrdiff_t n, ptrdiff_t k, const double* B,
                             ptrdiff_t ldb, int* level, void** held);

/* Frees what fastbp_gemm_pack_* set in *held (NULL: nothing). */
void fastbp_gemm_pack_free(void* held);

/* C (m x n) = A (m x k) @ op(B) (+ C when accumulate), op(B) from
 * fastbp_gemm_pack_* for `level` with the same n and k: the same bits as
 * fastbp_gemm gives for the same product. */
void fastbp_gemm_packed_f32(int level, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float* A,
                            ptrdiff_t lda, const float* packed, int accumulate, float* C,
                            ptrdiff_t ldc);
void fastbp_gemm_packed_f64(int level, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const double* A,
                            ptrdiff_t lda, const double* packed, int accumulate, double* C,
                            ptrdiff_t ldc);

#endif
