"""Dense-layer kernels: forward and backward, on the GEMM blocks they share.

Stateless: C-contiguous arrays in, results written into the arrays marked
``# OUT``. Cython's buffer protocol checks dtype and contiguity, and every
entry point checks the shapes agree (ValueError), since the loops below run
with boundscheck off.

Every element-wise pass is fused with the GEMM it follows, and the work is
shared out in units to fastbp's thread team (_team.pxd). The helpers that
_chain.pyx shares are declared in _dense.pxd.
"""
from cython cimport floating
from libc.stdlib cimport malloc, free
from libc.string cimport memset

from ._alloc cimport fb_alloc_lines
from ._calls cimport BoundCall, raise_for
from ._blas cimport block_start, gemm, gemm_blocks, gemm_pack_b, gemm_pack_free, gemm_packed
from ._checks cimport check_shape
from ._dispatch cimport bind_dispatch
from ._elementwise cimport (column_sums, elementwise_act, elementwise_all_finite,
                           elementwise_dact)
from ._math cimport (ACT_IDENTITY, ACT_LECUN_TANH, ACT_LOGISTIC, ACT_RELU, ACT_TANH, LECUN_A,
                     LECUN_S)
from ._team cimport (DtypeUnits, bind_team, dtype_unit, set_units, sum_partials, team_run,
                     threads_for, unit_count)

bind_dispatch()
bind_team()

# The activation codes of every kernel (dense, convolution, RNN) by name, and
# the constants of lecun_tanh(z) = LECUN_TANH[0] tanh(LECUN_TANH[1] z): all
# from csrc/fb_activations.h.
ACTIVATION_CODES = {"identity": ACT_IDENTITY, "logistic": ACT_LOGISTIC, "tanh": ACT_TANH,
                    "relu": ACT_RELU, "lecun_tanh": ACT_LECUN_TANH}
LECUN_TANH = (LECUN_A, LECUN_S)


cdef void bias_activate(floating* out, const floating* bias, Py_ssize_t rows,
                        Py_ssize_t c0, Py_ssize_t c1, Py_ssize_t ld, int act) noexcept nogil:
    """out[i, j] = act(out[i, j] + bias[j]) for columns c0..c1 of a row-major block."""
    cdef Py_ssize_t i
    for i in range(rows):
        elementwise_act(out + i * ld + c0, out + i * ld + c0, bias + c0, c1 - c0, act)


cdef void multiply_derivative(floating* delta, const floating* act_out, Py_ssize_t rows,
                              Py_ssize_t c0, Py_ssize_t c1, Py_ssize_t ld,
                              int act) noexcept nogil:
    """delta *= g'(z) on columns c0..c1, g'(z) computed from act_out = g(z)."""
    cdef Py_ssize_t i
    if act == 0:  # identity: g' = 1
        return
    for i in range(rows):
        elementwise_dact(delta + i * ld + c0, delta + i * ld + c0, <floating*> NULL,
                         act_out + i * ld + c0, c1 - c0, act)


cdef inline int split_blocks(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """Blocks of split_gemm's product (m, k) @ (k, n): a function of the shape.

    Under PARALLEL_MIN_FLOPS, two blocks of columns where there are more
    columns than rows, at least 64, from PAIR_MIN_FLOPS with a large B or
    from SPLIT_MIN_FLOPS: a few rows against a large B (a one-row predict
    through a 784 x 256 layer) are bound by reading B, and two cores each
    read half of it and keep that half in their own L2 from one call to the
    next; LeNet-5's F6 forward at batch 32 (32 x 120 x 84, B of 10,080)
    took 12.5 us in one block and 7.7 in two. Two rows through 256 x 128
    took 5 us longer in two blocks, and two half-height blocks of rows ran
    13-35% slower on one thread (64 x 64 x 64 to 96 x 96 x 96). (Two
    threads of an AMD EPYC, Zen 3.)"""
    if (m * n * k < PARALLEL_MIN_FLOPS and n > m and n >= 2 * GEMM_BLOCK_WIDTH
            and (m * n * k >= SPLIT_MIN_FLOPS
                 or (m * n * k >= PAIR_MIN_FLOPS and n * k >= SPLIT_MIN_B))):
        return 2
    return gemm_blocks(n if n > m else m, m * n * k, PARALLEL_MIN_FLOPS, GEMM_BLOCK_WIDTH)


cdef inline bint packs_b_once(Py_ssize_t m, Py_ssize_t n, int n_blocks,
                              int n_threads) noexcept nogil:
    """Whether split_gemm packs op(B) once for all its blocks: blocks of
    rows (each would pack all of B), more of them than threads."""
    return n <= m and n_blocks > max(1, n_threads)


def split_gemm_plan(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, int n_threads):
    """Test hook: ``(blocks, packs_b_once)`` of split_gemm's product (m, k) @
    (k, n) on n_threads, as split_gemm decides them."""
    cdef int n_blocks = split_blocks(m, n, k)
    return n_blocks, bool(packs_b_once(m, n, n_blocks, n_threads))


cdef void split_gemm_block(int blk, int n_blocks, bint trans_b, Py_ssize_t m, Py_ssize_t n,
                           Py_ssize_t k, const floating* A, const floating* B, floating* C,
                           const floating* bias, const floating* act_out, int act,
                           const floating* packed, int level) noexcept nogil:
    """Block ``blk`` of split_gemm: its GEMM (a block of rows from op(B) as
    gemm_pack_b packed it for ``level``, unless packed is NULL), then its
    epilogue."""
    cdef bint by_columns = n > m
    cdef Py_ssize_t ldb = k if trans_b else n
    cdef Py_ssize_t lo = block_start(n if by_columns else m, n_blocks, blk)
    cdef Py_ssize_t hi = block_start(n if by_columns else m, n_blocks, blk + 1)
    if hi <= lo:
        return
    if by_columns:
        gemm(False, trans_b, <int> m, <int> (hi - lo), <int> k, <floating> 1, A,
             <int> k, B + (lo * k if trans_b else lo), <int> ldb, <floating> 0,
             C + lo, <int> n)
        if bias != NULL:
            bias_activate(C, bias, m, lo, hi, n, act)
        elif act_out != NULL:
            multiply_derivative(C, act_out, m, lo, hi, n, act)
    else:
        if packed != NULL:
            gemm_packed(level, hi - lo, n, k, A + lo * k, k, packed, C + lo * n, n)
        else:
            gemm(False, trans_b, <int> (hi - lo), <int> n, <int> k, <floating> 1,
                 A + lo * k, <int> k, B, <int> ldb, <floating> 0, C + lo * n, <int> n)
        if bias != NULL:
            bias_activate(C + lo * n, bias, hi - lo, 0, n, n, act)
        elif act_out != NULL:
            multiply_derivative(C + lo * n, act_out + lo * n, hi - lo, 0, n, n, act)


ctypedef struct GemmJob:
    # Units: n_sums blocks of column sums (below); then n_grad blocks of
    # gradient_block (G = GA^T @ GD); then n_split blocks of split_gemm_block
    # (C = A @ op(B) and its epilogue; from op(B) packed once for all of
    # them unless packed is NULL).
    DtypeUnits units
    int n_grad, n_split, act, level
    const void* packed
    bint trans_b
    Py_ssize_t gm, gk, gn, m, n, k
    const void* GA
    const void* GD
    void* G
    const void* A
    const void* B
    void* C
    const void* bias
    const void* act_out
    # The column sums: sums[j] = sum_i S[i, j] over the gm rows of S (s_n
    # columns), rows in order. They come first because a block of them can be
    # the longest unit (all the rows of S): the others fill in around it.
    int n_sums
    Py_ssize_t s_n
    const void* S
    void* sums


cdef inline void gemm_job(GemmJob* job, int n_grad, Py_ssize_t m, Py_ssize_t k, Py_ssize_t n,
                          const floating* A, const floating* D, floating* G) noexcept nogil:
    """Set up a GemmJob of n_grad gradient blocks (and no split blocks yet)."""
    set_units(&job.units, gemm_job_block[float], gemm_job_block[double], <floating*> NULL)
    job.n_grad = n_grad
    job.n_split = 0
    job.gm = m
    job.gk = k
    job.gn = n
    job.GA = A
    job.GD = D
    job.G = G
    job.n_sums = 0


cdef inline void gemm_job_sums(GemmJob* job, const floating* S, Py_ssize_t s_n,
                               floating* sums) noexcept nogil:
    """Add blocks of column sums of S (job.gm rows, s_n columns) to a GemmJob:
    a bias gradient, computed beside the products instead of by one thread
    after them. None where sums is NULL."""
    job.n_sums = 0 if sums == NULL or s_n == 0 else max(1, min(16, s_n // SUMS_BLOCK_WIDTH))
    job.s_n = s_n
    job.S = S
    job.sums = sums


cdef void sums_block(const GemmJob* j, int blk, floating* tag) noexcept nogil:
    """Block ``blk`` of the job's column sums: its columns, rows in order."""
    cdef Py_ssize_t lo = block_start(j.s_n, j.n_sums, blk), hi = block_start(j.s_n, j.n_sums, blk + 1)
    column_sums(<const floating*> j.S + lo, j.gm, j.s_n, hi - lo, <floating*> j.sums + lo)


cdef inline void gemm_job_split(GemmJob* job, int n_split, bint trans_b, Py_ssize_t m,
                                Py_ssize_t n, Py_ssize_t k, const floating* A,
                                const floating* B, floating* C, const floating* bias,
                                const floating* act_out, int act) noexcept nogil:
    """Add the n_split blocks of split_gemm to a GemmJob (set up by gemm_job)."""
    job.n_split = n_split
    job.trans_b = trans_b
    job.m = m
    job.n = n
    job.k = k
    job.A = A
    job.B = B
    job.C = C
    job.bias = bias
    job.act_out = act_out
    job.act = act
    job.packed = NULL


cdef void gemm_job_block(const void* job, int u, int slot, floating* tag) noexcept nogil:
    cdef const GemmJob* j = <const GemmJob*> job
    if u < j.n_sums:
        sums_block(j, u, tag)
        return
    u -= j.n_sums
    if u < j.n_grad:
        gradient_block(u, j.n_grad, j.gn > j.gk, j.gm, j.gk, j.gn, <const floating*> j.GA,
                       <const floating*> j.GD, <floating*> j.G)
    else:
        split_gemm_block(u - j.n_grad, j.n_split, j.trans_b, j.m, j.n, j.k,
                         <const floating*> j.A, <const floating*> j.B, <floating*> j.C,
                         <const floating*> j.bias, <const floating*> j.act_out, j.act,
                         <const floating*> j.packed, j.level)


cdef void split_gemm(bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                     const floating* A, const floating* B, floating* C,
                     const floating* bias, const floating* act_out, int act,
                     int n_threads) noexcept nogil:
    """C (m, n) = A (m, k) @ op(B), then an epilogue on each block while it is
    in cache: with ``bias``, C = act(C + bias); with ``act_out``,
    C *= act'(from act_out) (act_out has C's shape).

    The product is split into blocks shared out to fastbp's team while each
    GEMM runs on one thread (the engine holds BLAS to one thread around fit
    and predict): two thread pools on the same cores slow small GEMMs
    several-fold. The split runs along the larger of m and n (by columns,
    each block packs only its columns of B). Blocks of rows would each pack
    all of B: where a thread has more than one of them, B is packed once,
    by the caller, for all (10,000 rows through a 784 x 256 layer: 16 blocks
    of rows a chunk of 8,192). B is (k, n), or (n, k) when trans_b.
    """
    cdef GemmJob job
    cdef void* held = NULL
    gemm_job(&job, 0, 0, 0, 0, <const floating*> NULL, <const floating*> NULL,
             <floating*> NULL)
    gemm_job_split(&job, split_blocks(m, n, k), trans_b, m, n, k, A, B, C, bias, act_out, act)
    if packs_b_once(m, n, job.n_split, n_threads):
        job.packed = gemm_pack_b(trans_b, n, k, B, k if trans_b else n, &job.level, &held)
    team_run(n_threads, job.n_split, dtype_unit, &job)
    gemm_pack_free(held)



cdef void gradient_block(int blk, int n_blocks, bint by_columns, Py_ssize_t m, Py_ssize_t k,
                         Py_ssize_t n, const floating* A, const floating* D,
                         floating* G) noexcept nogil:
    """Block ``blk`` of G (k, n) = A^T @ D: a block of its rows, or with
    by_columns of its columns. D is the operand the GEMM packs: a block of
    rows (columns of A) packs all of it, a block of columns only its own
    columns of D, which pays where n > k (an RNN's input layer, 65 features
    by 128 hidden over 1,600 rows: two blocks of rows took 160 us on 2
    threads, each packing 800 KB of D, against 196 us on one)."""
    cdef Py_ssize_t lo = block_start(n if by_columns else k, n_blocks, blk)
    cdef Py_ssize_t hi = block_start(n if by_columns else k, n_blocks, blk + 1)
    if hi <= lo:
        return
    if by_columns:
        gemm(True, False, <int> k, <int> (hi - lo), <int> m, <floating> 1, A, <int> k,
             D + lo, <int> n, <floating> 0, G + lo, <int> n)
    else:
        gemm(True, False, <int> (hi - lo), <int> n, <int> m, <floating> 1, A + lo,
             <int> k, D, <int> n, <floating> 0, G + lo * n, <int> n)


cdef int weight_gradient(Py_ssize_t m, Py_ssize_t k, Py_ssize_t n, const floating* A,
                         const floating* D, floating* G, const floating* S, Py_ssize_t s_n,
                         floating* sums, int n_threads) noexcept nogil:
    """G (k, n) = A^T @ D for A (m, k), D (m, n), and unless sums is NULL the
    column sums of S (m, s_n) into sums (a bias gradient: S is A or D), in
    the same team; returns -1 when out of memory.

    With few rows (a mini-batch) G is split into blocks along its longer side
    (gradient_block, gradient_blocks). With many rows (an RNN's packed steps) the m rows are cut
    into groups instead: one GEMM per group into its own partial result, the
    partials then added in group order, by the same team once every group is
    done. The groups, like the blocks, depend on the shape only.
    """
    cdef int n_groups = gradient_groups(m, k, n)
    cdef GemmJob job
    cdef void* held
    if n_groups == 1:
        gemm_job(&job, gradient_blocks(m, k, n, n > k), m, k, n, A, D, G)
        gemm_job_sums(&job, S, s_n, sums)
        team_run(n_threads, job.n_grad + job.n_sums, dtype_unit, &job)
        return 0
    # n_groups row groups: G for the first, partial results for the others
    gemm_job(&job, n_groups, m, k, n, A, D, G)
    gemm_job_sums(&job, S, s_n, sums)
    job.C = fb_alloc_lines((n_groups - 1) * k * n * sizeof(floating), &held)
    if job.C == NULL:
        return -1
    set_units(&job.units, group_gradient[float], group_gradient[double], <floating*> NULL)
    team_run(n_threads, n_groups + job.n_sums, dtype_unit, &job)
    sum_partials(G, <floating*> job.C, n_groups, k * n, n_threads)
    free(held)
    return 0


cdef void group_gradient(const void* job, int g, int slot, floating* tag) noexcept nogil:
    """Unit g of weight_gradient with row groups: the blocks of column sums,
    then each row group's product into G (the first) or into its partial
    result (j.C)."""
    cdef const GemmJob* j = <const GemmJob*> job
    if g < j.n_sums:
        sums_block(j, g, tag)
        return
    g -= j.n_sums
    cdef Py_ssize_t m = j.gm, k = j.gk, n = j.gn, i, size = j.gk * j.gn
    cdef Py_ssize_t r0 = block_start(m, j.n_grad, g), r1 = block_start(m, j.n_grad, g + 1)
    cdef floating* out = <floating*> j.G if g == 0 else <floating*> j.C + (g - 1) * size
    if r1 > r0:
        gemm(True, False, <int> k, <int> n, <int> (r1 - r0), <floating> 1,
             <const floating*> j.GA + r0 * k, <int> k, <const floating*> j.GD + r0 * n,
             <int> n, <floating> 0, out, <int> n)
    elif g > 0:
        for i in range(size):
            out[i] = 0


cdef int backward_products(Py_ssize_t m, Py_ssize_t k, Py_ssize_t n, const floating* A_in,
                           const floating* W, bint w_by_outputs, const floating* delta,
                           floating* grad_W, floating* grad_b, floating* delta_in,
                           int input_activation, int n_threads) noexcept nogil:
    """The products of a dense layer's backward pass, for A_in (m, k) and
    delta (m, n); returns -1 when out of memory.

    grad_W = A_in^T @ delta (k, n), the layout of W; with ``w_by_outputs``,
    W and grad_W are (n, k) (a 1x1 convolution's weights), and grad_W =
    delta^T @ A_in. grad_b = the column sums of delta. Unless delta_in is
    NULL, delta_in = (delta @ W^T) * g'(z_in), with g' taken from A_in.

    The weight gradient and delta_in are independent: one team takes the
    blocks of both, so it is woken once, not twice. The blocks are those of
    weight_gradient and split_gemm alone (same results).
    """
    # grad_W = GA^T @ GD, of shape (gk, gn)
    cdef const floating* GA = delta if w_by_outputs else A_in
    cdef const floating* GD = A_in if w_by_outputs else delta
    cdef Py_ssize_t gk = n if w_by_outputs else k
    cdef Py_ssize_t gn = k if w_by_outputs else n
    cdef int status
    cdef GemmJob job
    if delta_in == NULL or gradient_groups(m, gk, gn) != 1:
        status = weight_gradient(m, gk, gn, GA, GD, grad_W, delta, n, grad_b, n_threads)
        if status == 0 and delta_in != NULL:
            split_gemm(not w_by_outputs, m, k, n, delta, W, delta_in, NULL, A_in,
                       input_activation, n_threads)
        return status
    gemm_job(&job, gradient_blocks(m, gk, gn, gn > gk), m, gk, gn, GA, GD, grad_W)
    gemm_job_split(&job, split_blocks(m, k, n), not w_by_outputs, m, k, n, delta, W, delta_in,
                   NULL, A_in, input_activation)
    gemm_job_sums(&job, delta, n, grad_b)
    # few blocks (one each, or the delta's two of split_blocks): the
    # products run side by side from PAIR_MIN_FLOPS
    team_run(1 if job.n_grad == 1 and job.n_split == 1 and m * k * n < PAIR_MIN_FLOPS
             else n_threads, job.n_grad + job.n_split + job.n_sums, dtype_unit, &job)
    return 0


ctypedef struct DenseForwardArgs:
    const void* A_in
    const void* W
    const void* b
    void* A_out
    Py_ssize_t m, k, n
    int act, n_threads
    bint single


cdef void _dense_forward(Py_ssize_t m, Py_ssize_t k, Py_ssize_t n, const floating* A_in,
                         const floating* W, const floating* b, floating* A_out, int act,
                         int n_threads) noexcept nogil:
    if m == 0 or n == 0:
        return
    if k == 0:  # an empty product: g(b) on every row
        memset(A_out, 0, m * n * sizeof(floating))
        bias_activate(A_out, b, m, 0, n, n, act)
        return
    split_gemm(False, m, n, k, A_in, W, A_out, b, NULL, act, n_threads)


cdef int _dense_forward_run(const DenseForwardArgs* a) noexcept nogil:
    """Run a call of dense_forward from its checked arguments."""
    if a.single:
        _dense_forward[float](a.m, a.k, a.n, <const float*> a.A_in, <const float*> a.W,
                              <const float*> a.b, <float*> a.A_out, a.act, a.n_threads)
    else:
        _dense_forward[double](a.m, a.k, a.n, <const double*> a.A_in, <const double*> a.W,
                               <const double*> a.b, <double*> a.A_out, a.act, a.n_threads)
    return 0


cdef class _DenseForward(BoundCall):
    """dense_forward's call, bound (_calls.pyx)."""
    cdef DenseForwardArgs a

    cdef int execute(self) noexcept nogil:
        return _dense_forward_run(&self.a)


cdef int _dense_forward_args(DenseForwardArgs* a, const floating[:, ::1] A_in,
                             const floating[:, ::1] W, const floating[::1] b,
                             floating[:, ::1] A_out, int activation, int n_threads) except -1:
    """Check a call of dense_forward (ValueError) and fill ``a`` with its
    pointers and sizes."""
    cdef Py_ssize_t m = A_in.shape[0], k = A_in.shape[1], n = W.shape[1]
    memset(a, 0, sizeof(a[0]))
    check_shape("W", W.shape, 2, (k, n))
    check_shape("b", b.shape, 1, (n,))
    check_shape("A_out", A_out.shape, 2, (m, n))
    a.m, a.k, a.n = m, k, n
    a.act, a.n_threads = activation, n_threads
    a.single = floating is float
    if m > 0 and n > 0:
        a.A_out, a.b = &A_out[0, 0], &b[0]
        if k > 0:
            a.A_in, a.W = &A_in[0, 0], &W[0, 0]
    return 0


def dense_forward(const floating[:, ::1] A_in, const floating[:, ::1] W,
                  const floating[::1] b,
                  floating[:, ::1] A_out,  # OUT
                  int activation, int n_threads):
    """A_out = g(A_in @ W + b): GEMM, then bias and activation on each block.

    A_in (m, k), W (k, n), b (n,), A_out (m, n).
    """
    cdef DenseForwardArgs a
    _dense_forward_args(&a, A_in, W, b, A_out, activation, n_threads)
    with nogil:
        _dense_forward_run(&a)


def bind_dense_forward(const floating[:, ::1] A_in, const floating[:, ::1] W,
                       const floating[::1] b,
                       floating[:, ::1] A_out,  # OUT
                       int activation, int n_threads):
    """:func:`dense_forward`'s call, checked now: a BoundCall (see ``_calls``)."""
    cdef _DenseForward call = _DenseForward.__new__(_DenseForward)
    _dense_forward_args(&call.a, A_in, W, b, A_out, activation, n_threads)
    return call.keep((A_in, W, b, A_out))


ctypedef struct DenseBackwardArgs:
    const void* A_in
    const void* W
    const void* delta
    void* grad_W
    void* grad_b
    void* delta_in
    Py_ssize_t m, k, n
    int in_act, n_threads
    bint single


cdef int _dense_backward(Py_ssize_t m, Py_ssize_t k, Py_ssize_t n, const floating* A_in,
                         const floating* W, const floating* delta, floating* grad_W,
                         floating* grad_b, floating* delta_in, int input_activation,
                         int n_threads) noexcept nogil:
    if m == 0 or n == 0:
        # Empty sums: zero gradients and a zero delta for the layer below.
        if grad_W != NULL:
            memset(grad_W, 0, k * n * sizeof(floating))
        if grad_b != NULL:
            memset(grad_b, 0, n * sizeof(floating))
        if delta_in != NULL:
            memset(delta_in, 0, m * k * sizeof(floating))
        return 0
    if k == 0:  # no weights and no layer below: only the bias gradient
        column_sums(delta, m, n, n, grad_b)
        return 0
    return backward_products(m, k, n, A_in, W, False, delta, grad_W, grad_b, delta_in,
                             input_activation, n_threads)


cdef int _dense_backward_run(const DenseBackwardArgs* a) noexcept nogil:
    """Run a call of dense_backward from its checked arguments."""
    if a.single:
        return _dense_backward[float](
            a.m, a.k, a.n, <const float*> a.A_in, <const float*> a.W, <const float*> a.delta,
            <float*> a.grad_W, <float*> a.grad_b, <float*> a.delta_in, a.in_act, a.n_threads)
    return _dense_backward[double](
        a.m, a.k, a.n, <const double*> a.A_in, <const double*> a.W, <const double*> a.delta,
        <double*> a.grad_W, <double*> a.grad_b, <double*> a.delta_in, a.in_act, a.n_threads)


cdef class _DenseBackward(BoundCall):
    """dense_backward's call, bound (_calls.pyx)."""
    cdef DenseBackwardArgs a

    cdef int execute(self) noexcept nogil:
        return _dense_backward_run(&self.a)


cdef int _dense_backward_args(DenseBackwardArgs* a, const floating[:, ::1] A_in,
                              const floating[:, ::1] W, const floating[:, ::1] delta,
                              floating[:, ::1] grad_W, floating[::1] grad_b,
                              floating[:, ::1] delta_in, int input_activation,
                              int n_threads) except -1:
    """Check a call of dense_backward (ValueError) and fill ``a`` with its
    pointers and sizes."""
    cdef Py_ssize_t m = A_in.shape[0], k = A_in.shape[1], n = W.shape[1]
    cdef bint want_delta_in = delta_in is not None
    memset(a, 0, sizeof(a[0]))
    check_shape("W", W.shape, 2, (k, n))
    check_shape("delta", delta.shape, 2, (m, n))
    check_shape("grad_W", grad_W.shape, 2, (k, n))
    check_shape("grad_b", grad_b.shape, 1, (n,))
    if want_delta_in:
        check_shape("delta_in", delta_in.shape, 2, (m, k))
    a.m, a.k, a.n = m, k, n
    a.in_act, a.n_threads = input_activation, n_threads
    a.single = floating is float
    # each pointer only where its array has elements
    if k * n > 0:
        a.W, a.grad_W = &W[0, 0], &grad_W[0, 0]
    if n > 0:
        a.grad_b = &grad_b[0]
    if m * n > 0:
        a.delta = &delta[0, 0]
    if m * k > 0:
        a.A_in = &A_in[0, 0]
        if want_delta_in:
            a.delta_in = &delta_in[0, 0]
    return 0


def dense_backward(const floating[:, ::1] A_in, const floating[:, ::1] W,
                   const floating[:, ::1] delta,
                   floating[:, ::1] grad_W,  # OUT
                   floating[::1] grad_b,  # OUT
                   floating[:, ::1] delta_in,  # OUT (None: not needed)
                   int input_activation, int n_threads):
    """Backward pass of a dense layer given delta = dL/dz of its pre-activation.

    grad_W = A_in^T @ delta, grad_b = sum over rows of delta, and, unless
    delta_in is None, the seeds' recursion for the layer below:
    delta_in = (delta @ W^T) * g'(z_in), with g' taken from A_in = g(z_in).
    """
    cdef DenseBackwardArgs a
    cdef int status
    _dense_backward_args(&a, A_in, W, delta, grad_W, grad_b, delta_in, input_activation,
                         n_threads)
    with nogil:
        status = _dense_backward_run(&a)
    raise_for(status)


def bind_dense_backward(const floating[:, ::1] A_in, const floating[:, ::1] W,
                        const floating[:, ::1] delta,
                        floating[:, ::1] grad_W,  # OUT
                        floating[::1] grad_b,  # OUT
                        floating[:, ::1] delta_in,  # OUT (None: not needed)
                        int input_activation, int n_threads):
    """:func:`dense_backward`'s call, checked now: a BoundCall (see ``_calls``)."""
    cdef _DenseBackward call = _DenseBackward.__new__(_DenseBackward)
    _dense_backward_args(&call.a, A_in, W, delta, grad_W, grad_b, delta_in, input_activation,
                         n_threads)
    return call.keep((A_in, W, delta, grad_W, grad_b, delta_in))


# Elements one unit of all_finite checks: a pass over them costs far more
# than taking the unit.
cdef enum:
    FINITE_UNIT = 1 << 16


ctypedef struct FiniteJob:
    DtypeUnits units
    const void* x
    Py_ssize_t n
    unsigned char* ok  # a flag per unit


cdef void finite_unit(const void* job, int u, int slot, floating* tag) noexcept nogil:
    cdef const FiniteJob* j = <const FiniteJob*> job
    cdef Py_ssize_t lo = <Py_ssize_t> u * FINITE_UNIT
    j.ok[u] = elementwise_all_finite(<const floating*> j.x + lo, min(j.n - lo, FINITE_UNIT))


def all_finite(const floating[::1] x, int n_threads):
    """Whether no element of x is NaN or infinite.

    The check of predict's input on large arrays: one vectorized pass shared
    out to fastbp's team, where NumPy's sum of X (sklearn's first pass) costs
    several times as long.

    Parameters
    ----------
    x : ndarray of shape (n,)
        float32 or float64, contiguous.
    n_threads : int
        Threads of fastbp's team.

    Returns
    -------
    finite : bool
    """
    cdef FiniteJob job
    cdef Py_ssize_t n = x.shape[0], u
    cdef int n_units
    cdef bint finite = True
    if n == 0:
        return True
    n_units = <int> unit_count(n, FINITE_UNIT)
    job.ok = <unsigned char*> malloc(n_units)
    if job.ok == NULL:
        raise MemoryError()
    job.x = &x[0]
    job.n = n
    set_units(&job.units, finite_unit[float], finite_unit[double], <floating*> NULL)
    with nogil:
        team_run(threads_for(n, n_threads), n_units, dtype_unit, &job)
        for u in range(n_units):
            finite = finite and job.ok[u]
    free(job.ok)
    return finite
