# Row-major GEMM: fastbp's own kernel (csrc/gemm.c) at the AVX2 and AVX-512
# levels, scipy's BLAS at the portable level; fastbp links no BLAS of its own.
from cython cimport floating

cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k,
               floating alpha, const floating* A, int lda,
               const floating* B, int ldb,
               floating beta, floating* C, int ldc) noexcept nogil
cdef const floating* gemm_pack_b(bint trans_b, Py_ssize_t n, Py_ssize_t k, const floating* B,
                                 Py_ssize_t ldb, int* level, void** held) noexcept nogil
cdef void gemm_pack_free(void* held) noexcept nogil
cdef void gemm_packed(int level, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating* A,
                      Py_ssize_t lda, const floating* packed, floating* C,
                      Py_ssize_t ldc) noexcept nogil



cdef inline int gemm_blocks(Py_ssize_t dim, Py_ssize_t work, Py_ssize_t min_work,
                            Py_ssize_t width) noexcept nogil:
    """How many blocks a GEMM result is cut into along ``dim`` for fastbp's
    team: one below ``min_work`` multiply-adds, else a power of two (so 2, 4,
    8 or 16 threads share them evenly) from 2 up to one block per 2**23
    multiply-adds, each at least ``width`` wide, at most 16. Every block is
    one GEMM call, and more calls cost more (each packs its share of B again).

    A function of the shape only, never of the thread count: BLAS (the
    portable level's GEMM) rounds an element differently when it is computed
    in a call of another shape, so the calls themselves must not change with
    the thread count for results to stay bitwise identical. (fastbp's own
    GEMM gives the same bits for any blocks.) Threads share out the blocks.
    """
    cdef Py_ssize_t cap, n = 1
    if work < min_work:
        return 1
    cap = min(16, max(2, work >> 23), max(1, dim // width))
    while n * 2 <= cap:
        n *= 2
    return <int> n


cdef inline Py_ssize_t block_start(Py_ssize_t total, int n_blocks, int blk) noexcept nogil:
    """Start of block ``blk`` of ``n_blocks`` over ``total`` rows or columns;
    blocks start at multiples of 16 (whole GEMM micro-tiles)."""
    cdef Py_ssize_t per = (total + n_blocks - 1) // n_blocks
    per = (per + 15) // 16 * 16
    return min(blk * per, total)
