# The dense kernels' helpers that the fused chain (_chain.pyx) and the
# convolutions' 1x1-output case (_conv.pyx) share:
# plain cdef functions of _dense.pyx, called through Cython's C-API, and the
# inline block counts of weight_gradient.
from cython cimport floating

from ._blas cimport gemm_blocks

cdef enum:
    # Below this many multiply-adds a team costs more than it saves.
    PARALLEL_MIN_FLOPS = 1 << 20
    # A backward pass's weight gradient and delta below PARALLEL_MIN_FLOPS
    # run on two threads from this many multiply-adds each: LeNet-5's F6 at
    # batch 32 (322,560) took 11.5 us on one thread and 7.6 on two; 32 x 84
    # x 10 broke even. split_gemm's products with more columns than rows are
    # cut in two blocks from here where B is large (split_blocks).
    PAIR_MIN_FLOPS = 1 << 16
    # Elements of a large B, there: 256 KB of float32, half of the L2 of
    # some cores (AMD's Zen 3: 512 KiB).
    SPLIT_MIN_B = 1 << 16
    # Multiply-adds from which split_gemm cuts a product with more columns
    # than rows in two whatever its B (LeNet-5's F6 at batch 32: 322,560).
    SPLIT_MIN_FLOPS = 1 << 18
    # Narrowest block a GEMM result is split into for the team.
    GEMM_BLOCK_WIDTH = 32
    # A weight gradient A^T @ delta summing over at least 2x this many rows is
    # computed as partial products over row groups of about this size, added in
    # order: splitting its small result instead would repack the long operands
    # once per block.
    REDUCTION_GROUP_ROWS = 1024
    # Columns of a block of column sums (a bias gradient) for the team.
    SUMS_BLOCK_WIDTH = 256


cdef void bias_activate(floating* out, const floating* bias, Py_ssize_t rows,
                        Py_ssize_t c0, Py_ssize_t c1, Py_ssize_t ld, int act) noexcept nogil
cdef void multiply_derivative(floating* delta, const floating* act_out, Py_ssize_t rows,
                              Py_ssize_t c0, Py_ssize_t c1, Py_ssize_t ld,
                              int act) noexcept nogil
cdef void split_gemm(bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                     const floating* A, const floating* B, floating* C,
                     const floating* bias, const floating* act_out, int act,
                     int n_threads) noexcept nogil
cdef void gradient_block(int blk, int n_blocks, bint by_columns, Py_ssize_t m, Py_ssize_t k,
                         Py_ssize_t n, const floating* A, const floating* D,
                         floating* G) noexcept nogil
cdef int backward_products(Py_ssize_t m, Py_ssize_t k, Py_ssize_t n, const floating* A_in,
                           const floating* W, bint w_by_outputs, const floating* delta,
                           floating* grad_W, floating* grad_b, floating* delta_in,
                           int input_activation, int n_threads) noexcept nogil
cdef int weight_gradient(Py_ssize_t m, Py_ssize_t k, Py_ssize_t n, const floating* A,
                         const floating* D, floating* G, const floating* S, Py_ssize_t s_n,
                         floating* sums, int n_threads) noexcept nogil


cdef inline int gradient_groups(Py_ssize_t m, Py_ssize_t k, Py_ssize_t n) noexcept nogil:
    """Row groups of weight_gradient (1: no groups, the result split in blocks)."""
    if m >= 2 * REDUCTION_GROUP_ROWS and m * n * k >= PARALLEL_MIN_FLOPS:
        return <int> min(16, m // REDUCTION_GROUP_ROWS)
    return 1


cdef inline int gradient_blocks(Py_ssize_t m, Py_ssize_t k, Py_ssize_t n,
                                bint by_columns) noexcept nogil:
    """Blocks of gradient_block's (k, n) result (of rows, or by_columns of
    columns) when it has no row groups."""
    return gemm_blocks(n if by_columns else k, m * n * k, PARALLEL_MIN_FLOPS, GEMM_BLOCK_WIDTH)

