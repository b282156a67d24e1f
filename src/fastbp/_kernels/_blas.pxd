# Row-major GEMM on top of scipy's BLAS; fastbp links no BLAS of its own.
from cython cimport floating

cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k,
               floating alpha, const floating* A, int lda,
               const floating* B, int ldb,
               floating beta, floating* C, int ldc) noexcept nogil



cdef inline int gemm_blocks(Py_ssize_t dim, Py_ssize_t work, Py_ssize_t min_work,
                            Py_ssize_t width) noexcept nogil:
    """How many blocks a GEMM result is cut into along ``dim`` (about ``width``
    each, at most 16) for the OpenMP team: one below ``min_work``
    multiply-adds.

    A function of the shape only, never of the thread count: single-precision
    BLAS rounds an element differently when it is computed in a call of
    another shape, so the calls themselves must not change with the thread
    count for results to stay bitwise identical. Threads share out the blocks.
    """
    if work < min_work:
        return 1
    return <int> max(1, min(16, dim // width))


cdef inline Py_ssize_t block_start(Py_ssize_t total, int n_blocks, int blk) noexcept nogil:
    """Start of block ``blk`` of ``n_blocks`` over ``total`` rows or columns;
    blocks start at multiples of 16 (whole BLAS micro-tiles)."""
    cdef Py_ssize_t per = (total + n_blocks - 1) // n_blocks
    per = (per + 15) // 16 * 16
    return min(blk * per, total)
