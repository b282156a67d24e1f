"""Row-major GEMM: fastbp's own kernel (csrc/gemm.c) where the CPU has a copy
of it, else ``scipy.linalg.cython_blas``.

BLAS is column-major. A row-major matrix read as column-major is its transpose,
so C = op(A) op(B) in row-major is computed as C^T = op(B)^T op(A)^T in
column-major: swap the operands and their flags, keep the leading dimensions.
"""
from scipy.linalg.cython_blas cimport sgemm, dgemm

from ._checks cimport check_shape
from ._dispatch cimport bind_dispatch

cdef extern from "gemm.h" nogil:
    int fastbp_gemm_f32(int trans_a, int trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                        const float* A, Py_ssize_t lda, const float* B, Py_ssize_t ldb,
                        int accumulate, float* C, Py_ssize_t ldc)
    int fastbp_gemm_f64(int trans_a, int trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                        const double* A, Py_ssize_t lda, const double* B, Py_ssize_t ldb,
                        int accumulate, double* C, Py_ssize_t ldc)
    float* fastbp_gemm_pack_f32(int trans_b, Py_ssize_t n, Py_ssize_t k, const float* B,
                                Py_ssize_t ldb, int* level, void** held)
    double* fastbp_gemm_pack_f64(int trans_b, Py_ssize_t n, Py_ssize_t k, const double* B,
                                 Py_ssize_t ldb, int* level, void** held)
    void fastbp_gemm_pack_free(void* held)
    void fastbp_gemm_packed_f32(int level, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                                const float* A, Py_ssize_t lda, const float* packed,
                                int accumulate, float* C, Py_ssize_t ldc)
    void fastbp_gemm_packed_f64(int level, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                                const double* A, Py_ssize_t lda, const double* packed,
                                int accumulate, double* C, Py_ssize_t ldc)

bind_dispatch()


cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k,
               floating alpha, const floating* A, int lda,
               const floating* B, int ldb,
               floating beta, floating* C, int ldc) noexcept nogil:
    """C (m, n) = alpha * op(A) (m, k) @ op(B) (k, n) + beta * C, all row-major.

    fastbp's own kernel takes the products with alpha = 1 and beta = 0 or 1
    (all of fastbp's): their bits then depend on the instruction-set level
    only through having a copy (see csrc/gemm.c).
    """
    cdef char ta = b't' if trans_a else b'n'
    cdef char tb = b't' if trans_b else b'n'
    cdef int own = 1
    if alpha == 1 and (beta == 0 or beta == 1):
        if floating is float:
            own = fastbp_gemm_f32(trans_a, trans_b, m, n, k, A, lda, B, ldb, beta == 1, C, ldc)
        else:
            own = fastbp_gemm_f64(trans_a, trans_b, m, n, k, A, lda, B, ldb, beta == 1, C, ldc)
    if own == 0:
        return
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*> B, &ldb, <float*> A, &lda,
              &beta, C, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*> B, &ldb, <double*> A, &lda,
              &beta, C, &ldc)


cdef const floating* gemm_pack_b(bint trans_b, Py_ssize_t n, Py_ssize_t k, const floating* B,
                                 Py_ssize_t ldb, int* level, void** held) noexcept nogil:
    """op(B) (k, n) packed once for several gemm_packed calls that share it
    (the blocks of rows of one product), for the instruction-set level it
    sets in *level; gemm_pack_free(*held) once done. NULL (and *held NULL) where
    fastbp's own kernel does not run (the portable level), or the copy would
    be too large or finds no memory: the caller then uses gemm."""
    if floating is float:
        return fastbp_gemm_pack_f32(trans_b, n, k, B, ldb, level, held)
    else:
        return fastbp_gemm_pack_f64(trans_b, n, k, B, ldb, level, held)


cdef void gemm_pack_free(void* held) noexcept nogil:
    """Free what gemm_pack_b set in *held (NULL: nothing)."""
    fastbp_gemm_pack_free(held)


cdef void gemm_packed(int level, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating* A,
                      Py_ssize_t lda, const floating* packed, floating* C,
                      Py_ssize_t ldc) noexcept nogil:
    """C (m, n) = A (m, k) @ op(B), op(B) from gemm_pack_b (with these n and
    k): the same bits as gemm gives."""
    if floating is float:
        fastbp_gemm_packed_f32(level, m, n, k, A, lda, packed, 0, C, ldc)
    else:
        fastbp_gemm_packed_f64(level, m, n, k, A, lda, packed, 0, C, ldc)


def gemm_py(const floating[:, ::1] A, const floating[:, ::1] B, floating[:, ::1] C,
            bint trans_a=False, bint trans_b=False, double alpha=1.0, double beta=0.0):
    """Test hook: C = alpha * op(A) @ op(B) + beta * C for C-contiguous arrays.

    Raises ValueError when the shapes do not agree.
    """
    cdef int m = C.shape[0]
    cdef int n = C.shape[1]
    cdef int k = A.shape[0] if trans_a else A.shape[1]
    cdef Py_ssize_t i, j
    check_shape("A", A.shape, 2, (k, m) if trans_a else (m, k))
    check_shape("B", B.shape, 2, (n, k) if trans_b else (k, n))
    if m == 0 or n == 0:
        return
    if k == 0:  # an empty product
        for i in range(m):
            for j in range(n):
                C[i, j] = beta * C[i, j]
        return
    with nogil:
        gemm(trans_a, trans_b, m, n, k, <floating> alpha, &A[0, 0], A.shape[1],
             &B[0, 0], B.shape[1], <floating> beta, &C[0, 0], C.shape[1])
