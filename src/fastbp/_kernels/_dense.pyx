"""Dense-layer, output-loss and optimizer kernels.

Stateless: C-contiguous arrays in, results written into the arrays marked
``# OUT``. Cython's buffer protocol checks dtype and contiguity, and every
entry point checks the shapes agree (ValueError), since the loops below run
with boundscheck off.

Every element-wise pass is fused with the GEMM it follows, and the work is
shared out in units to fastbp's thread team (_team.pxd); reductions use a
fixed order so results do not depend on the thread count.
"""
from cython cimport floating
from libc.stdlib cimport calloc, malloc, free
from libc.float cimport DBL_EPSILON, FLT_EPSILON
from libc.stdint cimport int32_t, int64_t
from libc.string cimport memcpy, memset

from ._blas cimport block_start, gemm, gemm_blocks
from ._checks cimport check_shape
from ._dispatch cimport bind_dispatch
from ._elementwise cimport elementwise_act, elementwise_dact, adam_range, l2_block, softmax_exp
from ._math cimport (ACT_IDENTITY, ACT_LECUN_TANH, ACT_LOGISTIC, ACT_RELU, ACT_TANH, LECUN_A,
                     LECUN_S, sigmoid, fexp, flog, flog1p)
from ._team cimport TEAM_UNIT_ELEMENTS, bind_team, sum_partials, team_run, unit_count

bind_dispatch()
bind_team()

cdef extern from "fastbp_omp.h":
    enum: FASTBP_MIN_PARALLEL

# Below this many elements (or multiply-adds) a team costs more than it saves.
cdef Py_ssize_t PARALLEL_MIN_WORK = FASTBP_MIN_PARALLEL
cdef Py_ssize_t PARALLEL_MIN_FLOPS = 1 << 20
# Narrowest block a GEMM result is split into for the team.
cdef Py_ssize_t GEMM_BLOCK_WIDTH = 32
# A weight gradient A^T @ delta summing over at least 2x this many rows is
# computed as partial products over row groups of about this size, added in
# order: splitting its small result instead would repack the long operands
# once per block.
cdef Py_ssize_t REDUCTION_GROUP_ROWS = 1024
# Block length of the fixed-order reductions.
cdef Py_ssize_t REDUCE_BLOCK = 4096
# Fewest rows of a row group in dense_chain_loss_and_grad: every group's
# GEMMs pack each layer's whole weight matrix, so narrower groups repack more.
cdef Py_ssize_t CHAIN_GROUP_ROWS = 64

cdef enum:
    LOSS_SOFTMAX_CE = 0       # softmax output, categorical cross-entropy
    LOSS_LOGISTIC_CE = 1      # logistic outputs, binary cross-entropy summed over outputs
    LOSS_SQUARED = 2          # identity outputs, half squared error averaged over outputs
    LOSS_SQUARED_LOGISTIC = 3 # logistic outputs, half squared error averaged over outputs
    LOSS_POISSON = 4          # exp outputs, half Poisson deviance summed over outputs

cdef enum:
    UPDATE_NONE = 0
    UPDATE_SGD = 1            # momentum SGD (sgd_update)
    UPDATE_ADAM = 2           # Adam (adam_update)

# The activation codes of every kernel (dense, convolution, RNN) by name, and
# the constants of lecun_tanh(z) = LECUN_TANH[0] tanh(LECUN_TANH[1] z): all
# from csrc/fb_activations.h.
ACTIVATION_CODES = {"identity": ACT_IDENTITY, "logistic": ACT_LOGISTIC, "tanh": ACT_TANH,
                    "relu": ACT_RELU, "lecun_tanh": ACT_LECUN_TANH}
LECUN_TANH = (LECUN_A, LECUN_S)
UPDATE_CODES = {"sgd": UPDATE_SGD, "adam": UPDATE_ADAM}
LOSS_CODES = {"softmax_ce": LOSS_SOFTMAX_CE, "logistic_ce": LOSS_LOGISTIC_CE,
              "squared": LOSS_SQUARED, "squared_logistic": LOSS_SQUARED_LOGISTIC,
              "poisson": LOSS_POISSON}


cdef inline int threads_for(Py_ssize_t work, int n_threads) noexcept nogil:
    return n_threads if work >= PARALLEL_MIN_WORK else 1


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


cdef void column_sums(const floating* A, Py_ssize_t m, Py_ssize_t n,
                      floating* out) noexcept nogil:
    """out[j] = sum_i A[i, j], rows added in order (thread-count independent)."""
    cdef Py_ssize_t i, j
    cdef const floating* row
    for j in range(n):
        out[j] = 0
    for i in range(m):
        row = A + i * n
        for j in range(n):
            out[j] += row[j]


cdef inline int split_blocks(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """Blocks of split_gemm's product (m, k) @ (k, n): a function of the shape."""
    return gemm_blocks(n if n > m else m, m * n * k, PARALLEL_MIN_FLOPS, GEMM_BLOCK_WIDTH)


cdef void split_gemm_block(int blk, int n_blocks, bint trans_b, Py_ssize_t m, Py_ssize_t n,
                           Py_ssize_t k, const floating* A, const floating* B, floating* C,
                           const floating* bias, const floating* act_out,
                           int act) noexcept nogil:
    """Block ``blk`` of split_gemm: its GEMM, then its epilogue."""
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
        gemm(False, trans_b, <int> (hi - lo), <int> n, <int> k, <floating> 1,
             A + lo * k, <int> k, B, <int> ldb, <floating> 0, C + lo * n, <int> n)
        if bias != NULL:
            bias_activate(C + lo * n, bias, hi - lo, 0, n, n, act)
        elif act_out != NULL:
            multiply_derivative(C + lo * n, act_out + lo * n, hi - lo, 0, n, n, act)


ctypedef struct GemmJob:
    # Units 0..n_grad-1: blocks of gradient_block (G = GA^T @ GD); then
    # n_split blocks of split_gemm_block (C = A @ op(B) and its epilogue).
    int n_grad, n_split, act
    bint trans_b, f64
    Py_ssize_t gm, gk, gn, m, n, k
    const void* GA
    const void* GD
    void* G
    const void* A
    const void* B
    void* C
    const void* bias
    const void* act_out


cdef inline void gemm_job(GemmJob* job, int n_grad, Py_ssize_t m, Py_ssize_t k, Py_ssize_t n,
                          const floating* A, const floating* D, floating* G) noexcept nogil:
    """Set up a GemmJob of n_grad gradient blocks (and no split blocks yet)."""
    job.n_grad = n_grad
    job.n_split = 0
    job.f64 = floating is double
    job.gm = m
    job.gk = k
    job.gn = n
    job.GA = A
    job.GD = D
    job.G = G


cdef inline void gemm_job_split(GemmJob* job, int n_split, bint trans_b, Py_ssize_t m,
                                Py_ssize_t n, Py_ssize_t k, const floating* A,
                                const floating* B, floating* C, const floating* bias,
                                const floating* act_out, int act) noexcept nogil:
    """Add the n_split blocks of split_gemm to a GemmJob."""
    job.f64 = floating is double
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


cdef inline void gemm_job_block(const GemmJob* j, int u, floating* tag) noexcept nogil:
    if u < j.n_grad:
        gradient_block(u, j.n_grad, j.gm, j.gk, j.gn, <const floating*> j.GA,
                       <const floating*> j.GD, <floating*> j.G)
    else:
        split_gemm_block(u - j.n_grad, j.n_split, j.trans_b, j.m, j.n, j.k,
                         <const floating*> j.A, <const floating*> j.B, <floating*> j.C,
                         <const floating*> j.bias, <const floating*> j.act_out, j.act)


cdef void gemm_job_unit(void* job, int u, int slot) noexcept nogil:
    cdef const GemmJob* j = <const GemmJob*> job
    if j.f64:
        gemm_job_block(j, u, <double*> NULL)
    else:
        gemm_job_block(j, u, <float*> NULL)


cdef void split_gemm(bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                     const floating* A, const floating* B, floating* C,
                     const floating* bias, const floating* act_out, int act,
                     int n_threads) noexcept nogil:
    """C (m, n) = A (m, k) @ op(B), then an epilogue on each block while it is
    in cache: with ``bias``, C = act(C + bias); with ``act_out``,
    C *= act'(from act_out) (act_out has C's shape).

    The product is split into blocks shared out to fastbp's team while
    BLAS runs on one thread (the engine sets that around fit and predict):
    two thread pools on the same cores slow small GEMMs several-fold. The
    split runs along the larger of m and n, so each block packs only its
    share of the larger operand. B is (k, n), or (n, k) when trans_b.
    """
    cdef GemmJob job
    job.n_grad = 0
    gemm_job_split(&job, split_blocks(m, n, k), trans_b, m, n, k, A, B, C, bias, act_out, act)
    team_run(n_threads, job.n_split, gemm_job_unit, &job)


cdef inline int gradient_groups(Py_ssize_t m, Py_ssize_t k, Py_ssize_t n) noexcept nogil:
    """Row groups of weight_gradient (1: no groups, the result split in blocks)."""
    if m >= 2 * REDUCTION_GROUP_ROWS and m * n * k >= PARALLEL_MIN_FLOPS:
        return <int> min(16, m // REDUCTION_GROUP_ROWS)
    return 1


cdef inline int gradient_blocks(Py_ssize_t m, Py_ssize_t k, Py_ssize_t n) noexcept nogil:
    """Blocks of rows of weight_gradient's result when it has no row groups."""
    return gemm_blocks(k, m * n * k, PARALLEL_MIN_FLOPS, GEMM_BLOCK_WIDTH)


cdef void gradient_block(int blk, int n_blocks, Py_ssize_t m, Py_ssize_t k, Py_ssize_t n,
                         const floating* A, const floating* D, floating* G) noexcept nogil:
    """Rows of block ``blk`` of G = A^T @ D: columns of A, each block packing all of D."""
    cdef Py_ssize_t r0 = block_start(k, n_blocks, blk)
    cdef Py_ssize_t r1 = block_start(k, n_blocks, blk + 1)
    if r1 > r0:
        gemm(True, False, <int> (r1 - r0), <int> n, <int> m, <floating> 1, A + r0,
             <int> k, D, <int> n, <floating> 0, G + r0 * n, <int> n)


cdef int weight_gradient(Py_ssize_t m, Py_ssize_t k, Py_ssize_t n, const floating* A,
                         const floating* D, floating* G, int n_threads) noexcept nogil:
    """G (k, n) = A^T @ D for A (m, k), D (m, n); returns -1 when out of memory.

    With few rows (a mini-batch) G is split by rows (k >= n almost always):
    rows k0..k1 of A^T are columns of A, and each block packs all of D, the
    smaller operand. With many rows (an RNN's packed steps) the m rows are cut
    into groups instead: one GEMM per group into its own partial result, the
    partials then added in group order, by the same team once every group is
    done. The groups, like the blocks, depend on the shape only.
    """
    cdef int n_groups = gradient_groups(m, k, n)
    cdef GemmJob job
    if n_groups == 1:
        gemm_job(&job, gradient_blocks(m, k, n), m, k, n, A, D, G)
        team_run(n_threads, job.n_grad, gemm_job_unit, &job)
        return 0
    # n_groups row groups: G for the first, partial results for the others
    gemm_job(&job, n_groups, m, k, n, A, D, G)
    job.C = malloc((n_groups - 1) * k * n * sizeof(floating))
    if job.C == NULL:
        return -1
    team_run(n_threads, n_groups, group_gradient_unit, &job)
    sum_partials(G, <floating*> job.C, n_groups, k * n, n_threads)
    free(job.C)
    return 0


cdef inline void group_gradient(const GemmJob* j, int g, floating* tag) noexcept nogil:
    """Row group g of weight_gradient (of j.n_grad): its product into G (the
    first) or into its partial result (j.C)."""
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


cdef void group_gradient_unit(void* job, int g, int slot) noexcept nogil:
    cdef const GemmJob* j = <const GemmJob*> job
    if j.f64:
        group_gradient(j, g, <double*> NULL)
    else:
        group_gradient(j, g, <float*> NULL)


def dense_forward(const floating[:, ::1] A_in, const floating[:, ::1] W,
                  const floating[::1] b,
                  floating[:, ::1] A_out,  # OUT
                  int activation, int n_threads):
    """A_out = g(A_in @ W + b): GEMM, then bias and activation on each block.

    A_in (m, k), W (k, n), b (n,), A_out (m, n).
    """
    cdef Py_ssize_t m = A_in.shape[0], k = A_in.shape[1], n = W.shape[1]
    check_shape("W", W.shape, 2, (k, n))
    check_shape("b", b.shape, 1, (n,))
    check_shape("A_out", A_out.shape, 2, (m, n))
    if m == 0 or n == 0:
        return
    if k == 0:  # an empty product: g(b) on every row
        A_out[:, :] = 0
        bias_activate(&A_out[0, 0], &b[0], m, 0, n, n, activation)
        return
    with nogil:
        split_gemm(False, A_in.shape[0], W.shape[1], A_in.shape[1], &A_in[0, 0], &W[0, 0],
                   &A_out[0, 0], &b[0], NULL, activation, n_threads)


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
    cdef int m = A_in.shape[0]
    cdef Py_ssize_t k = A_in.shape[1]
    cdef int n = W.shape[1]
    cdef bint want_delta_in = delta_in is not None
    cdef int status = 0
    check_shape("W", W.shape, 2, (k, n))
    check_shape("delta", delta.shape, 2, (m, n))
    check_shape("grad_W", grad_W.shape, 2, (k, n))
    check_shape("grad_b", grad_b.shape, 1, (n,))
    if want_delta_in:
        check_shape("delta_in", delta_in.shape, 2, (m, k))
    if m == 0 or n == 0:
        # Empty sums: zero gradients and a zero delta for the layer below.
        grad_W[:, :] = 0
        grad_b[:] = 0
        if want_delta_in:
            delta_in[:, :] = 0
        return
    if k == 0:  # no weights and no layer below: only the bias gradient
        column_sums(&delta[0, 0], m, n, &grad_b[0])
        return
    cdef GemmJob job
    with nogil:
        if want_delta_in and gradient_groups(m, k, n) == 1:
            # The weight gradient and the delta below are independent: one
            # team takes the blocks of both, so it is woken once, not twice.
            # The blocks are those of the separate calls (same results).
            gemm_job(&job, gradient_blocks(m, k, n), m, k, n, &A_in[0, 0], &delta[0, 0],
                     &grad_W[0, 0])
            gemm_job_split(&job, split_blocks(m, k, n), True, m, k, n, &delta[0, 0], &W[0, 0],
                           &delta_in[0, 0], NULL, &A_in[0, 0], input_activation)
            # one block each: both products are below the size worth a team
            team_run(1 if job.n_grad == 1 and job.n_split == 1 else n_threads,
                     job.n_grad + job.n_split, gemm_job_unit, &job)
            column_sums(&delta[0, 0], m, n, &grad_b[0])
        else:
            status = weight_gradient(m, k, n, &A_in[0, 0], &delta[0, 0], &grad_W[0, 0],
                                     n_threads)
            column_sums(&delta[0, 0], m, n, &grad_b[0])
            if want_delta_in:
                split_gemm(True, m, k, n, &delta[0, 0], &W[0, 0], &delta_in[0, 0], NULL,
                           &A_in[0, 0], input_activation, n_threads)
    if status != 0:
        raise MemoryError()


cdef void sgd_range(floating* theta, const floating* grad, floating* velocity, floating lr,
                    floating mu, bint nesterov, Py_ssize_t n) noexcept nogil:
    """sgd_update on n elements."""
    cdef Py_ssize_t i
    for i in range(n):
        velocity[i] = mu * velocity[i] - lr * grad[i]
        if nesterov:
            theta[i] += mu * velocity[i] - lr * grad[i]
        else:
            theta[i] += velocity[i]


cdef inline void adam_block(floating* theta, const floating* grad, floating* m1, floating* m2,
                            double step_size, double beta_1, double beta_2, double epsilon,
                            Py_ssize_t n) noexcept nogil:
    """adam_update on n elements, its constants rounded as sklearn's numpy
    code rounds them for arrays of this dtype (1 - beta formed in double)."""
    adam_range(theta, grad, m1, m2, <floating> step_size, <floating> beta_1,
               <floating> (1.0 - beta_1), <floating> beta_2, <floating> (1.0 - beta_2),
               <floating> epsilon, n)


cdef void update_range(int update, floating* theta, const floating* grad, floating* s1,
                       floating* s2, double lr, double beta_1, double beta_2, double epsilon,
                       bint nesterov, Py_ssize_t n) noexcept nogil:
    """The optimizer step of dense_chain_loss_and_grad on n elements (s1, s2:
    the velocity, or Adam's moments, at the same place as theta)."""
    if update == UPDATE_SGD:
        sgd_range(theta, grad, s1, <floating> lr, <floating> beta_1, nesterov, n)
    elif update == UPDATE_ADAM:
        adam_block(theta, grad, s1, s2, lr, beta_1, beta_2, epsilon, n)


cdef inline int chain_row_groups(Py_ssize_t m, Py_ssize_t work) noexcept nogil:
    """Row groups of a fused batch's first phase: a function of the shape
    only (see gemm_blocks), each at least CHAIN_GROUP_ROWS rows."""
    return gemm_blocks(m, work, PARALLEL_MIN_FLOPS, CHAIN_GROUP_ROWS)


cdef enum:
    UNITS_PER_LAYER = 17      # second-phase units of a layer: 16 gradient blocks + its bias


cdef struct Chain:
    # What every batch of a fused call shares. The pointer arrays hold
    # floating* of the call's dtype, one per layer (A: n_layers + 1).
    int n_layers
    Py_ssize_t* dims          # n_layers + 1 widths
    int* acts
    void** A                  # A[0] the batch's input, A[l + 1] layer l's outputs
    void** W
    void** b
    void** D                  # dL/dz of each layer
    void** gW
    void** gb
    void* Y                   # the batch's targets
    void* sw                  # the batch's sample weights, or NULL
    int kind
    int update                # UPDATE_NONE: gradients only
    Py_ssize_t* offsets       # 2 per layer: where W[l] and b[l] start in theta
    void* s1                  # the velocity, or Adam's moments, laid out as theta
    void* s2
    double beta_1
    double beta_2
    double epsilon
    bint nesterov
    const void* X_src         # gathering: batch row i is row order[i] of these
    const void* Y_src
    const void* sw_src


cdef struct ChainBatch:
    # One batch of a fused call.
    Py_ssize_t m
    const Py_ssize_t* order   # m rows of the gather sources, or NULL: A[0], Y, sw are the batch
    double scale              # delta = scale * w_i * dl_i/dz
    double l2_coef            # grad_W += l2_coef * W (0: none)
    double learning_rate
    int n_groups
    int n_units
    int* unit_layer
    int* unit_block
    int* unit_blocks
    double* row_loss          # m
    double* sumsq             # n_units + 1 (the last: layers summed after the team's)


cdef void chain_units(ChainBatch* bt, int n_layers, const Py_ssize_t* dims) noexcept nogil:
    """The second phase's units of a batch. Layers whose gradient sums so many
    rows that it is cut into row groups get only their bias unit: their weight
    gradient runs after the batch's units (chain_grouped_layers)."""
    cdef int n = 0, l, blk, n_blocks
    for l in range(n_layers):
        if gradient_groups(bt.m, dims[l], dims[l + 1]) == 1:
            n_blocks = gradient_blocks(bt.m, dims[l], dims[l + 1])
            for blk in range(n_blocks):
                bt.unit_layer[n] = l
                bt.unit_block[n] = blk
                bt.unit_blocks[n] = n_blocks
                n += 1
        bt.unit_layer[n] = l
        bt.unit_block[n] = -1
        bt.unit_blocks[n] = 0
        n += 1
    bt.n_units = n


cdef inline void layer_arrays(const Chain* c, floating*** A, floating*** W, floating*** b,
                              floating*** D) noexcept nogil:
    """The call's per-layer activations, weights, biases and deltas, typed
    (the struct holds them as void**: a struct field cannot be fused)."""
    A[0] = <floating**> c.A
    W[0] = <floating**> c.W
    b[0] = <floating**> c.b
    D[0] = <floating**> c.D


cdef void chain_rows(int g, const Chain* c, const ChainBatch* bt, floating* tag) noexcept nogil:
    """Rows of group g of a batch (``tag`` only picks the dtype): gathered when
    the call gathers, then every layer forward, the output loss and delta, and
    the seeds' recursion down to the first layer's delta. Rows are
    independent here, so the groups need no synchronisation."""
    cdef floating **A
    cdef floating **W
    cdef floating **b
    cdef floating **D
    layer_arrays(c, &A, &W, &b, &D)
    cdef floating* Y = <floating*> c.Y
    cdef floating* sw = <floating*> c.sw
    cdef const Py_ssize_t* dims = c.dims
    cdef int n_layers = c.n_layers, l
    cdef Py_ssize_t r0 = block_start(bt.m, bt.n_groups, g)
    cdef Py_ssize_t r1 = block_start(bt.m, bt.n_groups, g + 1)
    cdef Py_ssize_t rows = r1 - r0, k, n, i, src
    cdef Py_ssize_t n_in = dims[0], n_out = dims[n_layers]
    cdef floating w, loss
    if rows <= 0:
        return
    if bt.order != NULL:
        for i in range(r0, r1):
            src = bt.order[i]
            memcpy(A[0] + i * n_in, <const floating*> c.X_src + src * n_in,
                   n_in * sizeof(floating))
            memcpy(Y + i * n_out, <const floating*> c.Y_src + src * n_out,
                   n_out * sizeof(floating))
            if sw != NULL:
                sw[i] = (<const floating*> c.sw_src)[src]
    for l in range(n_layers):  # A[l+1] = g_l(A[l] @ W[l] + b[l])
        k = dims[l]
        n = dims[l + 1]
        gemm(False, False, <int> rows, <int> n, <int> k, <floating> 1, A[l] + r0 * k,
             <int> k, W[l], <int> n, <floating> 0, A[l + 1] + r0 * n, <int> n)
        bias_activate(A[l + 1] + r0 * n, b[l], rows, 0, n, n, c.acts[l])
    for i in range(r0, r1):
        w = <floating> bt.scale
        if sw != NULL:
            w = w * sw[i]
        loss = row_loss_delta(A[n_layers] + i * n_out, Y + i * n_out,
                              D[n_layers - 1] + i * n_out, n_out, c.kind, w)
        if sw != NULL:
            loss = loss * sw[i]  # rounded as output_loss_delta rounds it
        bt.row_loss[i] = loss
    for l in range(n_layers - 1, 0, -1):  # D[l-1] = (D[l] @ W[l]^T) * g'_{l-1}
        k = dims[l]
        n = dims[l + 1]
        gemm(False, True, <int> rows, <int> k, <int> n, <floating> 1, D[l] + r0 * n,
             <int> n, W[l], <int> n, <floating> 0, D[l - 1] + r0 * k, <int> k)
        multiply_derivative(D[l - 1] + r0 * k, A[l] + r0 * k, rows, 0, k, k, c.acts[l - 1])


cdef void chain_gradient_unit(int u, const Chain* c, const ChainBatch* bt,
                              floating* tag) noexcept nogil:
    """Unit u of a batch's second phase: a block of rows of one layer's weight
    gradient, then its L2 term and the optimizer's step on it while it is in
    cache; or (block -1) that layer's bias gradient and step."""
    cdef floating **A
    cdef floating **W
    cdef floating **b
    cdef floating **D
    layer_arrays(c, &A, &W, &b, &D)
    cdef floating** gW = <floating**> c.gW
    cdef floating** gb = <floating**> c.gb
    cdef floating* s1 = <floating*> c.s1
    cdef floating* s2 = <floating*> c.s2
    cdef int l = bt.unit_layer[u], blk = bt.unit_block[u], n_blocks = bt.unit_blocks[u]
    cdef Py_ssize_t k = c.dims[l], n = c.dims[l + 1], r0, r1, at
    bt.sumsq[u] = 0
    if blk < 0:
        column_sums(D[l], bt.m, n, gb[l])
        if c.update != UPDATE_NONE:
            at = c.offsets[2 * l + 1]
            update_range(c.update, b[l], gb[l], s1 + at, s2 + at if s2 != NULL else NULL,
                         bt.learning_rate, c.beta_1, c.beta_2, c.epsilon, c.nesterov, n)
        return
    gradient_block(blk, n_blocks, bt.m, k, n, A[l], D[l], gW[l])
    r0 = block_start(k, n_blocks, blk)
    r1 = block_start(k, n_blocks, blk + 1)
    if r1 <= r0:
        return
    if bt.l2_coef != 0:
        bt.sumsq[u] = l2_block(W[l] + r0 * n, gW[l] + r0 * n, <floating> bt.l2_coef,
                               (r1 - r0) * n)
    if c.update != UPDATE_NONE:
        at = c.offsets[2 * l] + r0 * n
        update_range(c.update, W[l] + r0 * n, gW[l] + r0 * n, s1 + at,
                     s2 + at if s2 != NULL else NULL, bt.learning_rate, c.beta_1, c.beta_2,
                     c.epsilon, c.nesterov, (r1 - r0) * n)


ctypedef struct ChainJob:
    const Chain* c
    ChainBatch* bt
    bint f64


cdef void chain_rows_unit(void* job, int g, int slot) noexcept nogil:
    cdef ChainJob* j = <ChainJob*> job
    if j.f64:
        chain_rows(g, j.c, j.bt, <double*> NULL)
    else:
        chain_rows(g, j.c, j.bt, <float*> NULL)


cdef void chain_gradient_unit_of(void* job, int u, int slot) noexcept nogil:
    cdef ChainJob* j = <ChainJob*> job
    if j.f64:
        chain_gradient_unit(u, j.c, j.bt, <double*> NULL)
    else:
        chain_gradient_unit(u, j.c, j.bt, <float*> NULL)


cdef void chain_step(const Chain* c, ChainBatch* bt, int n_team, floating* tag) noexcept nogil:
    """One batch: its row groups, then (once all are done) its gradient
    units, so the next batch sees the updated parameters."""
    cdef ChainJob job
    job.c = c
    job.bt = bt
    job.f64 = floating is double
    team_run(n_team, bt.n_groups, chain_rows_unit, &job)
    team_run(n_team, bt.n_units, chain_gradient_unit_of, &job)


cdef int chain_grouped_layers(const Chain* c, ChainBatch* bt, int n_threads,
                              floating* tag) noexcept nogil:
    """After a batch's units: the layers whose weight gradient sums so many
    rows (full-batch L-BFGS) that weight_gradient's own row-group reduction
    runs it, then their L2 term and step. -1 when out of memory."""
    cdef floating** W = <floating**> c.W
    cdef floating** gW = <floating**> c.gW
    cdef floating* s1 = <floating*> c.s1
    cdef floating* s2 = <floating*> c.s2
    cdef int l
    cdef Py_ssize_t k, n, at
    bt.sumsq[bt.n_units] = 0
    for l in range(c.n_layers):
        k = c.dims[l]
        n = c.dims[l + 1]
        if gradient_groups(bt.m, k, n) == 1:
            continue
        if weight_gradient(bt.m, k, n, (<floating**> c.A)[l], (<floating**> c.D)[l], gW[l],
                           n_threads) != 0:
            return -1
        if bt.l2_coef != 0:
            bt.sumsq[bt.n_units] += l2_block(W[l], gW[l], <floating> bt.l2_coef, k * n)
        if c.update != UPDATE_NONE:
            at = c.offsets[2 * l]
            update_range(c.update, W[l], gW[l], s1 + at, s2 + at if s2 != NULL else NULL,
                         bt.learning_rate, c.beta_1, c.beta_2, c.epsilon, c.nesterov, k * n)
    return 0


cdef int chain_run(const Chain* c, ChainBatch* batches, int n_batches, int n_threads,
                   Py_ssize_t work, floating* tag) noexcept nogil:
    """Run the batches in order, each followed by the layers that need the
    row-group gradient of weight_gradient (full-batch L-BFGS). work:
    multiply-adds of the first batch. -1 when out of memory."""
    cdef int bi = 0, l, n_team = 1
    cdef bint grouped = False
    for l in range(c.n_layers):
        if gradient_groups(batches[0].m, c.dims[l], c.dims[l + 1]) > 1:
            grouped = True
    if work >= PARALLEL_MIN_FLOPS:
        n_team = n_threads
    for bi in range(n_batches):
        chain_step(c, &batches[bi], n_team, tag)
        if not grouped:
            batches[bi].sumsq[batches[bi].n_units] = 0
        elif chain_grouped_layers(c, &batches[bi], n_threads, tag) != 0:
            return -1
    return 0


cdef class _ChainCall:
    """The C arrays of one fused call: checked against each other on the way
    in, freed with the object."""
    cdef Chain c
    cdef ChainBatch* batches
    cdef void* block
    cdef Py_ssize_t work

    def __dealloc__(self):
        free(self.block)

    cdef int setup(self, list weights, list biases, list activations, list outputs,
                   list deltas, list grad_weights, list grad_biases, Py_ssize_t rows,
                   Py_ssize_t n_in, Py_ssize_t n_batches, floating* tag) except -1:
        """Check the per-layer lists against each other and against ``rows``
        (the buffers' rows) and ``n_in``; allocate everything for n_batches
        batches of at most ``rows`` rows."""
        cdef int n_layers = len(weights), l, bi
        cdef floating[:, ::1] w2
        cdef const floating[:, ::1] cw2
        cdef floating[::1] w1
        cdef const floating[::1] cw1
        cdef Py_ssize_t per_batch, size, structs
        cdef char* p
        cdef ChainBatch* bt
        if n_layers == 0:
            raise ValueError("a fused dense call needs at least one layer")
        for name, lst in (("biases", biases), ("activations", activations),
                          ("outputs", outputs), ("deltas", deltas),
                          ("grad_weights", grad_weights), ("grad_biases", grad_biases)):
            if len(lst) != n_layers:
                raise ValueError(f"{name} has {len(lst)} entries for {n_layers} layers")
        if activations[n_layers - 1] != 0:
            raise ValueError("the last layer's activation must be identity "
                             "(the loss applies its own)")
        if rows == 0 or n_in == 0:
            raise ValueError(f"a fused dense call needs a non-empty batch with features, "
                             f"got batches of {rows} rows and {n_in} features")
        # one block: the Chain's arrays, the batches' structs, then each
        # batch's row losses and L2 sums (doubles first), then its units
        per_batch = ((rows + UNITS_PER_LAYER * n_layers + 1) * sizeof(double)
                     + 3 * UNITS_PER_LAYER * n_layers * sizeof(int))
        per_batch = (per_batch + 15) // 16 * 16
        # (widest alignment first: pointers, then Py_ssize_t, then int)
        size = ((7 * n_layers + 1) * sizeof(void*) + (3 * n_layers + 1) * sizeof(Py_ssize_t)
                + n_layers * sizeof(int))
        size = (size + 15) // 16 * 16
        structs = (n_batches * sizeof(ChainBatch) + 15) // 16 * 16
        self.block = calloc(size + structs + n_batches * per_batch, 1)
        if self.block == NULL:
            raise MemoryError()
        p = <char*> self.block
        self.c.n_layers = n_layers
        self.c.A = <void**> p
        self.c.dims = <Py_ssize_t*> (self.c.A + 7 * n_layers + 1)
        self.c.offsets = self.c.dims + n_layers + 1
        self.c.acts = <int*> (self.c.offsets + 2 * n_layers)
        self.c.W = self.c.A + n_layers + 1
        self.c.b = self.c.W + n_layers
        self.c.D = self.c.b + n_layers
        self.c.gW = self.c.D + n_layers
        self.c.gb = self.c.gW + n_layers
        self.batches = <ChainBatch*> (p + size)
        for bi in range(n_batches):
            bt = &self.batches[bi]
            bt.row_loss = <double*> (p + size + structs + bi * per_batch)
            bt.sumsq = bt.row_loss + rows
            bt.unit_layer = <int*> (bt.sumsq + UNITS_PER_LAYER * n_layers + 1)
            bt.unit_block = bt.unit_layer + UNITS_PER_LAYER * n_layers
            bt.unit_blocks = bt.unit_block + UNITS_PER_LAYER * n_layers
        self.c.dims[0] = n_in
        self.work = 0
        for l in range(n_layers):
            self.c.acts[l] = activations[l]
            cw2 = weights[l]
            self.c.dims[l + 1] = cw2.shape[1]
            check_shape(f"weights[{l}]", cw2.shape, 2, (self.c.dims[l], self.c.dims[l + 1]))
            if self.c.dims[l + 1] == 0:
                raise ValueError(f"layer {l} has no units")
            self.c.W[l] = <void*> &cw2[0, 0]
            cw1 = biases[l]
            check_shape(f"biases[{l}]", cw1.shape, 1, (self.c.dims[l + 1],))
            self.c.b[l] = <void*> &cw1[0]
            w2 = grad_weights[l]
            check_shape(f"grad_weights[{l}]", w2.shape, 2, (self.c.dims[l], self.c.dims[l + 1]))
            self.c.gW[l] = <void*> &w2[0, 0]
            w1 = grad_biases[l]
            check_shape(f"grad_biases[{l}]", w1.shape, 1, (self.c.dims[l + 1],))
            self.c.gb[l] = <void*> &w1[0]
            w2 = outputs[l]
            check_shape(f"outputs[{l}]", w2.shape, 2, (rows, self.c.dims[l + 1]))
            self.c.A[l + 1] = <void*> &w2[0, 0]
            w2 = deltas[l]
            check_shape(f"deltas[{l}]", w2.shape, 2, (rows, self.c.dims[l + 1]))
            self.c.D[l] = <void*> &w2[0, 0]
            self.work += rows * self.c.dims[l] * self.c.dims[l + 1]
        return 0

    cdef int setup_update(self, int update, floating[::1] theta, floating[::1] state_1,
                          floating[::1] state_2, double beta_1, double beta_2,
                          double epsilon, bint nesterov) except -1:
        """The optimizer step of a fused call: every weight and bias must lie
        in theta, since the step writes through them."""
        cdef int l
        cdef Py_ssize_t size
        self.c.update = update
        if update == UPDATE_NONE:
            return 0
        if update not in (UPDATE_SGD, UPDATE_ADAM):
            raise ValueError(f"unknown update code {update}")
        if theta is None or state_1 is None or (update == UPDATE_ADAM and state_2 is None):
            raise ValueError("an update needs theta and its optimizer state")
        check_shape("state_1", state_1.shape, 1, (theta.shape[0],))
        self.c.s1 = <void*> &state_1[0]
        if update == UPDATE_ADAM:
            check_shape("state_2", state_2.shape, 1, (theta.shape[0],))
            self.c.s2 = <void*> &state_2[0]
        for l in range(self.c.n_layers):
            size = self.c.dims[l] * self.c.dims[l + 1]
            self.c.offsets[2 * l] = theta_offset(theta, <floating*> self.c.W[l], size,
                                                 "weights", l)
            self.c.offsets[2 * l + 1] = theta_offset(theta, <floating*> self.c.b[l],
                                                     self.c.dims[l + 1], "biases", l)
        self.c.beta_1 = beta_1
        self.c.beta_2 = beta_2
        self.c.epsilon = epsilon
        self.c.nesterov = nesterov
        return 0

    cdef void set_batch(self, int bi, Py_ssize_t m, const Py_ssize_t* order, double scale,
                        double l2_coef, double learning_rate) noexcept:
        cdef ChainBatch* bt = &self.batches[bi]
        cdef Py_ssize_t work = 0
        cdef int l
        bt.m = m
        bt.order = order
        bt.scale = scale
        bt.l2_coef = l2_coef
        bt.learning_rate = learning_rate
        for l in range(self.c.n_layers):
            work += m * self.c.dims[l] * self.c.dims[l + 1]
        bt.n_groups = chain_row_groups(m, work)
        chain_units(bt, self.c.n_layers, self.c.dims)

    cdef (double, double) totals(self, int bi):
        """(sum of the batch's weighted row losses, its sum of squared weights)."""
        cdef ChainBatch* bt = &self.batches[bi]
        cdef double loss = 0, sumsq = 0
        cdef Py_ssize_t i
        for i in range(bt.m):
            loss += bt.row_loss[i]
        for i in range(bt.n_units + 1):
            sumsq += bt.sumsq[i]
        return loss, sumsq


def dense_chain_loss_and_grad(const floating[:, ::1] X, list weights, list biases,
                              list activations, const floating[:, ::1] Y,
                              const floating[::1] sample_weight,  # None: all ones
                              list outputs,  # OUT: each layer's A = g(z); the last holds the outputs
                              list deltas,  # OUT: dL/dz of each layer
                              list grad_weights,  # OUT
                              list grad_biases,  # OUT
                              int kind, double scale, double l2_coef, int n_threads):
    """Forward, loss and backward of a chain of dense layers in two team
    calls: what dense_forward, output_loss_delta, dense_backward and
    l2_penalty do layer by layer, with two hand-offs to the team instead of
    one per kernel.

    Phase 1 shares row groups out: each group runs every layer forward, the
    fused output loss and the delta recursion for its rows. Phase 2 shares
    out blocks of rows of each weight gradient, grad_W = A^T @ delta (the
    blocks of dense_backward), each followed by grad_W += l2_coef * W on its
    block, and each layer's bias gradient. Groups and blocks depend on the
    shapes alone, so results do not depend on the thread count.

    Layer l maps A[l] (A[0] = X, of shape (m, d_l)) through weights[l]
    (d_l, d_{l+1}) and biases[l] (d_{l+1},) to outputs[l] (m, d_{l+1}) with
    activation code activations[l]; the last layer's must be identity (its
    outputs are the logits that the loss ``kind`` turns into outputs in
    place). deltas[l] and the gradients have the shapes of outputs[l] and of
    the parameters. delta = scale * w_i * dl_i/dz as in output_loss_delta.

    Returns (sum_i w_i l_i, sum of squared weights when l2_coef != 0 else 0).
    """
    cdef Py_ssize_t m = X.shape[0]
    cdef _ChainCall call = _ChainCall()
    call.setup(weights, biases, activations, outputs, deltas, grad_weights, grad_biases,
               m, X.shape[1], 1, <floating*> NULL)
    check_shape("Y", Y.shape, 2, (m, call.c.dims[call.c.n_layers]))
    if sample_weight is not None:
        check_shape("sample_weight", sample_weight.shape, 1, (m,))
        call.c.sw = <void*> <floating*> &sample_weight[0]
    call.c.A[0] = <void*> <floating*> &X[0, 0]
    call.c.Y = <void*> <floating*> &Y[0, 0]
    call.c.kind = kind
    call.set_batch(0, m, NULL, scale, l2_coef, 0.0)
    cdef int status
    with nogil:
        status = chain_run(&call.c, call.batches, 1, n_threads, call.work, <floating*> NULL)
    if status != 0:
        raise MemoryError()
    return call.totals(0)


def dense_chain_train(const floating[:, ::1] X, const floating[:, ::1] Y,
                      const floating[::1] sample_weight,  # None: all ones
                      const Py_ssize_t[::1] order, Py_ssize_t batch_size,
                      const double[:, ::1] batch_params, list weights, list biases,
                      list activations,
                      floating[:, ::1] X_batch,  # OUT: scratch for a batch's rows
                      floating[:, ::1] Y_batch,  # OUT: scratch
                      floating[::1] sw_batch,  # OUT: scratch (None without sample_weight)
                      list outputs, list deltas, list grad_weights, list grad_biases,  # OUT
                      int kind,
                      double[:, ::1] batch_losses,  # OUT
                      int n_threads, int update=UPDATE_NONE,
                      floating[::1] theta=None,  # OUT
                      floating[::1] state_1=None,  # OUT
                      floating[::1] state_2=None,  # OUT (Adam)
                      double beta_1=0, double beta_2=0, double epsilon=0, bint nesterov=False):
    """Train a chain of dense layers on consecutive mini-batches, two team
    calls a batch: the team stays awake from batch to batch.

    Batch j holds rows order[j * batch_size : (j + 1) * batch_size] of X, Y
    and sample_weight (the last may be shorter), gathered by each row group
    into X_batch, Y_batch and sw_batch. Each batch is a step of
    dense_chain_loss_and_grad followed by the optimizer's step (``update``
    in UPDATE_CODES: sgd_update with state_1 the velocity and beta_1 the
    momentum, or adam_update with state_1, state_2 the moments), applied
    block by block as each block of the gradient is known: the same bits as
    those kernels called one after the other. The weights and biases must
    be views into theta; states have theta's shape.

    batch_params[j] = (scale, l2_coef, learning_rate) of batch j: the delta
    scale (1 / sum of its sample weights), the L2 coefficient (alpha times
    that, or 0) and the step size (Adam's bias-corrected one).
    batch_losses[j] receives (sum_i w_i l_i, sum of squared weights or 0)
    of batch j, before its step.
    """
    cdef Py_ssize_t n_rows = order.shape[0], n_samples = X.shape[0], i, start
    cdef Py_ssize_t n_batches, bi
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if update == UPDATE_NONE:
        raise ValueError("dense_chain_train needs an optimizer step (update)")
    n_batches = (n_rows + batch_size - 1) // batch_size
    if n_batches == 0:
        return
    check_shape("batch_params", batch_params.shape, 2, (n_batches, 3))
    check_shape("batch_losses", batch_losses.shape, 2, (n_batches, 2))
    for i in range(n_rows):
        if order[i] < 0 or order[i] >= n_samples:
            raise ValueError(f"order[{i}] = {order[i]} is not a row of X ({n_samples} rows)")
    cdef _ChainCall call = _ChainCall()
    call.setup(weights, biases, activations, outputs, deltas, grad_weights, grad_biases,
               batch_size, X.shape[1], n_batches, <floating*> NULL)
    cdef Py_ssize_t n_out = call.c.dims[call.c.n_layers]
    check_shape("X_batch", X_batch.shape, 2, (batch_size, X.shape[1]))
    check_shape("Y", Y.shape, 2, (n_samples, n_out))
    check_shape("Y_batch", Y_batch.shape, 2, (batch_size, n_out))
    if (sample_weight is None) != (sw_batch is None):
        raise ValueError("sample_weight and sw_batch go together")
    if sample_weight is not None:
        check_shape("sample_weight", sample_weight.shape, 1, (n_samples,))
        check_shape("sw_batch", sw_batch.shape, 1, (batch_size,))
        call.c.sw = <void*> &sw_batch[0]
        call.c.sw_src = <const void*> &sample_weight[0]
    call.setup_update(update, theta, state_1, state_2, beta_1, beta_2, epsilon, nesterov)
    call.c.A[0] = <void*> &X_batch[0, 0]
    call.c.Y = <void*> &Y_batch[0, 0]
    call.c.X_src = <const void*> &X[0, 0]
    call.c.Y_src = <const void*> &Y[0, 0]
    call.c.kind = kind
    for bi in range(n_batches):
        start = bi * batch_size
        call.set_batch(<int> bi, min(batch_size, n_rows - start), &order[start],
                       batch_params[bi, 0], batch_params[bi, 1], batch_params[bi, 2])
    cdef int status
    with nogil:
        status = chain_run(&call.c, call.batches, <int> n_batches, n_threads, call.work,
                           <floating*> NULL)
    if status != 0:
        raise MemoryError()
    for bi in range(n_batches):
        batch_losses[bi, 0], batch_losses[bi, 1] = call.totals(<int> bi)


cdef Py_ssize_t theta_offset(floating[::1] theta, const floating* p, Py_ssize_t size,
                             str name, int l) except -1:
    """Where the ``size`` parameters at ``p`` start in theta; ValueError when
    they are not all inside it (the fused update writes through theta)."""
    cdef Py_ssize_t at = p - &theta[0] if theta.shape[0] > 0 else -1
    if p == NULL or at < 0 or at > theta.shape[0] - size:
        raise ValueError(f"{name}[{l}] is not a view into theta")
    return at


cdef inline floating clip(floating v, floating lo, floating hi) noexcept nogil:
    return lo if v < lo else (hi if v > hi else v)


cdef floating row_loss_delta(floating* z, const floating* y, floating* d,
                             Py_ssize_t n, int kind, floating weight) noexcept nogil:
    """Turn one row of logits z into outputs in place, write d = weight * dl/dz,
    return the row's loss l (unweighted).

    The cross-entropies clip each probability to [eps, 1 - eps] (eps of the
    dtype) inside the loss, as sklearn's log_loss does, so a saturated output
    costs at most -log(eps) and loss_curve_ and tol see sklearn's numbers; the
    delta is the unclipped p - y, as in sklearn's backprop."""
    cdef Py_ssize_t j
    cdef floating zmax, total, lse, ysum, loss = 0, p, diff, soft, neg_log_p, neg_log_q
    cdef floating eps = FLT_EPSILON if floating is float else DBL_EPSILON
    # -log(p) for p clipped to [eps, 1 - eps] is -log(p) clipped to [lo, hi]
    cdef floating lo = -flog1p(-eps), hi = -flog(eps)
    if kind == LOSS_SOFTMAX_CE:
        # l = sum_j y_j (lse(z) - z_j); max subtracted so exp never overflows.
        # d holds exp(z_j - zmax) until the last loop makes it the delta.
        zmax = z[0]
        ysum = 0
        for j in range(n):
            if z[j] > zmax:
                zmax = z[j]
            ysum += y[j]
        total = softmax_exp(z, zmax, d, n)
        lse = zmax + flog(total)
        for j in range(n):
            loss += y[j] * clip(lse - z[j], lo, hi)
            z[j] = d[j] / total
            d[j] = weight * (ysum * z[j] - y[j])
    elif kind == LOSS_LOGISTIC_CE:
        # l = sum_j y_j (-log p_j) + (1 - y_j) (-log(1 - p_j)), where
        # -log p = softplus(-z) and -log(1 - p) = softplus(z), each written so
        # that exp never overflows and neither is a difference of near equals.
        for j in range(n):
            soft = flog1p(fexp(-(z[j] if z[j] >= 0 else -z[j])))
            neg_log_p = (-z[j] if z[j] < 0 else 0) + soft
            neg_log_q = (z[j] if z[j] > 0 else 0) + soft
            loss += y[j] * clip(neg_log_p, lo, hi) + (1 - y[j]) * clip(neg_log_q, lo, hi)
            z[j] = sigmoid(z[j])
            d[j] = weight * (z[j] - y[j])
    elif kind == LOSS_SQUARED:
        for j in range(n):
            diff = z[j] - y[j]
            loss += diff * diff
            d[j] = weight * diff / n
        loss = loss / (2 * n)
    elif kind == LOSS_SQUARED_LOGISTIC:
        for j in range(n):
            p = sigmoid(z[j])
            z[j] = p
            diff = p - y[j]
            loss += diff * diff
            d[j] = weight * diff * p * (1 - p) / n
        loss = loss / (2 * n)
    elif kind == LOSS_POISSON:
        # Half Poisson deviance with log link: y log y - y z - y + exp(z).
        for j in range(n):
            p = fexp(z[j])
            loss += (y[j] * flog(y[j]) if y[j] > 0 else 0) - y[j] * z[j] - y[j] + p
            z[j] = p
            d[j] = weight * (p - y[j])
    return loss


def output_loss_delta(floating[:, ::1] Z,  # IN: logits, OUT: outputs
                      const floating[:, ::1] Y,
                      const floating[::1] sample_weight,  # None: all ones
                      floating[:, ::1] delta,  # OUT
                      int kind, double scale, int n_threads):
    """Fused output activation, loss and output delta.

    Returns sum_i w_i l_i (float64). delta_i = scale * w_i * dl_i/dz_i, so with
    scale = 1 / sum(w) it is the gradient of the weighted mean loss.
    """
    cdef Py_ssize_t m = Z.shape[0]
    cdef Py_ssize_t n = Z.shape[1]
    cdef Py_ssize_t i
    cdef bint weighted = sample_weight is not None
    cdef double total = 0
    cdef OutputJob job
    check_shape("Y", Y.shape, 2, (m, n))
    check_shape("delta", delta.shape, 2, (m, n))
    if weighted:
        check_shape("sample_weight", sample_weight.shape, 1, (m,))
    if m == 0 or n == 0:
        return 0.0
    cdef floating* row_loss = <floating*> malloc(m * sizeof(floating))
    if row_loss == NULL:
        raise MemoryError()
    output_job(&job, &Z[0, 0], m, n, kind)
    job.Y = &Y[0, 0]
    job.sample_weight = &sample_weight[0] if weighted else NULL
    job.delta = &delta[0, 0]
    job.row_loss = row_loss
    job.scale = scale
    with nogil:
        team_run(threads_for(m * n * 8, n_threads), job.n_units, output_loss_unit, &job)
        for i in range(m):
            total += row_loss[i]
    free(row_loss)
    return total


ctypedef struct OutputJob:
    # Rows of the output layer, rows_per_unit a unit.
    void* Z
    const void* Y
    const void* sample_weight
    void* delta
    void* row_loss
    double scale
    Py_ssize_t m, n, rows_per_unit
    int n_units, kind
    bint f64


cdef inline void output_job(OutputJob* job, floating* Z, Py_ssize_t m, Py_ssize_t n,
                            int kind) noexcept nogil:
    job.Z = Z
    job.m = m
    job.n = n
    job.kind = kind
    job.f64 = floating is double
    job.rows_per_unit = max(1, TEAM_UNIT_ELEMENTS // max(n, 1))
    job.n_units = <int> unit_count(m, job.rows_per_unit)


cdef inline void output_loss_rows(const OutputJob* j, int u, floating* tag) noexcept nogil:
    cdef Py_ssize_t i, n = j.n
    cdef const floating* sw = <const floating*> j.sample_weight
    cdef floating* row_loss = <floating*> j.row_loss
    cdef floating w
    for i in range(u * j.rows_per_unit, min(j.m, (u + 1) * j.rows_per_unit)):
        w = <floating> j.scale
        if sw != NULL:
            w = w * sw[i]
        row_loss[i] = row_loss_delta(<floating*> j.Z + i * n, <const floating*> j.Y + i * n,
                                     <floating*> j.delta + i * n, n, j.kind, w)
        if sw != NULL:
            row_loss[i] = row_loss[i] * sw[i]


cdef void output_loss_unit(void* job, int u, int slot) noexcept nogil:
    cdef const OutputJob* j = <const OutputJob*> job
    if j.f64:
        output_loss_rows(j, u, <double*> NULL)
    else:
        output_loss_rows(j, u, <float*> NULL)


cdef inline void output_activate_rows(const OutputJob* j, int u, floating* tag) noexcept nogil:
    cdef Py_ssize_t i, k, n = j.n
    cdef floating zmax, total
    cdef floating* z
    for i in range(u * j.rows_per_unit, min(j.m, (u + 1) * j.rows_per_unit)):
        z = <floating*> j.Z + i * n
        if j.kind == LOSS_SOFTMAX_CE:
            zmax = z[0]
            for k in range(1, n):
                if z[k] > zmax:
                    zmax = z[k]
            total = softmax_exp(z, zmax, z, n)
            for k in range(n):
                z[k] = z[k] / total
        elif j.kind == LOSS_LOGISTIC_CE or j.kind == LOSS_SQUARED_LOGISTIC:
            elementwise_act(z, z, <floating*> NULL, n, ACT_LOGISTIC)
        elif j.kind == LOSS_POISSON:
            for k in range(n):
                z[k] = fexp(z[k])


cdef void output_activate_unit(void* job, int u, int slot) noexcept nogil:
    cdef const OutputJob* j = <const OutputJob*> job
    if j.f64:
        output_activate_rows(j, u, <double*> NULL)
    else:
        output_activate_rows(j, u, <float*> NULL)


def output_activate(floating[:, ::1] Z,  # IN: logits, OUT: outputs
                    int kind, int n_threads):
    """Apply the output activation of a loss kind in place (prediction path)."""
    cdef Py_ssize_t m = Z.shape[0]
    cdef Py_ssize_t n = Z.shape[1]
    cdef OutputJob job
    if n == 0 or m == 0:
        return
    output_job(&job, &Z[0, 0], m, n, kind)
    with nogil:
        team_run(threads_for(m * n * 8, n_threads), job.n_units, output_activate_unit, &job)


ctypedef fused csr_index:
    int32_t
    int64_t

ctypedef fused row_index:
    int32_t
    int64_t


def csr_rows_to_dense(const floating[::1] data, const csr_index[::1] indices,
                      const csr_index[::1] indptr, const row_index[::1] rows,
                      floating[:, ::1] out):  # OUT
    """out[i] = row rows[i] of the CSR matrix (data, indices, indptr), dense:
    a sparse mini-batch gathered into a preallocated buffer. Rows, columns and
    row pointers are checked (ValueError), as a malformed matrix would write
    out of bounds."""
    cdef Py_ssize_t m = rows.shape[0], n_cols = out.shape[1]
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1, nnz = data.shape[0]
    cdef Py_ssize_t i, k, r, lo, hi, col
    cdef int bad = 0
    check_shape("out", out.shape, 2, (m, None))
    if n_rows < 0 or indices.shape[0] != nnz:
        raise ValueError("indptr/indices do not describe a CSR matrix of these data")
    with nogil:
        for i in range(m):
            r = rows[i]
            if r < 0 or r >= n_rows:
                bad = 1
                break
            lo = indptr[r]
            hi = indptr[r + 1]
            if lo < 0 or hi < lo or hi > nnz:
                bad = 2
                break
            if n_cols > 0:
                memset(&out[i, 0], 0, n_cols * sizeof(floating))
            for k in range(lo, hi):
                col = indices[k]
                if col < 0 or col >= n_cols:
                    bad = 3
                    break
                out[i, col] = out[i, col] + data[k]  # duplicates add, as scipy's toarray
            if bad:
                break
    if bad == 1:
        raise ValueError(f"row index out of range for a matrix of {n_rows} rows")
    if bad == 2:
        raise ValueError("indptr is not a valid CSR row pointer array")
    if bad == 3:
        raise ValueError(f"a column index is out of range for {n_cols} columns")


def l2_penalty(const floating[::1] theta,
               floating[::1] grad,  # OUT: grad += coef * theta
               double coef, int n_threads):
    """Add coef * theta to grad and return sum(theta ** 2) (fixed-order sum)."""
    cdef Py_ssize_t size = theta.shape[0]
    cdef Py_ssize_t blk
    cdef double total = 0
    cdef VectorJob job
    check_shape("grad", grad.shape, 1, (size,))
    if size == 0:
        return 0.0
    vector_job(&job, VECTOR_L2, <floating*> &theta[0], &grad[0], NULL, NULL, size, REDUCE_BLOCK)
    job.lr = coef
    job.partial = <double*> malloc(job.n_units * sizeof(double))
    if job.partial == NULL:
        raise MemoryError()
    with nogil:
        team_run(threads_for(size, n_threads), job.n_units, vector_unit, &job)
        for blk in range(job.n_units):
            total += job.partial[blk]
    free(job.partial)
    return total


cdef enum:
    VECTOR_L2 = 3  # beside UPDATE_SGD and UPDATE_ADAM: grad += c theta, sum(theta ** 2)


ctypedef struct VectorJob:
    # An element-wise pass over theta and its companions, `block` elements
    # a unit: an optimizer step (update_range's arguments) or VECTOR_L2.
    void* theta
    const void* grad
    void* s1
    void* s2
    double* partial  # VECTOR_L2: sum(theta ** 2) per unit
    double lr, beta_1, beta_2, epsilon
    Py_ssize_t size, block
    int op, n_units
    bint nesterov, f64


cdef inline void vector_job(VectorJob* job, int op, floating* theta, const floating* grad,
                            floating* s1, floating* s2, Py_ssize_t size,
                            Py_ssize_t block) noexcept nogil:
    job.op = op
    job.theta = theta
    job.grad = grad
    job.s1 = s1
    job.s2 = s2
    job.size = size
    job.block = block
    job.n_units = <int> unit_count(size, block)
    job.f64 = floating is double


cdef inline void vector_block(const VectorJob* j, int u, floating* tag) noexcept nogil:
    cdef Py_ssize_t start = <Py_ssize_t> u * j.block
    cdef Py_ssize_t n = min(j.block, j.size - start)
    cdef floating* theta = <floating*> j.theta + start
    cdef const floating* grad = <const floating*> j.grad + start
    if j.op == VECTOR_L2:
        j.partial[u] = l2_block(theta, <floating*> grad, <floating> j.lr, n)
    else:
        update_range(j.op, theta, grad, <floating*> j.s1 + start,
                     <floating*> j.s2 + start if j.s2 != NULL else NULL, j.lr, j.beta_1,
                     j.beta_2, j.epsilon, j.nesterov, n)


cdef void vector_unit(void* job, int u, int slot) noexcept nogil:
    cdef const VectorJob* j = <const VectorJob*> job
    if j.f64:
        vector_block(j, u, <double*> NULL)
    else:
        vector_block(j, u, <float*> NULL)


def sgd_update(floating[::1] theta,  # OUT
               const floating[::1] grad,
               floating[::1] velocity,  # OUT
               double learning_rate, double momentum, bint nesterov, int n_threads):
    """Momentum SGD, as sklearn's SGDOptimizer:
    v = momentum * v - lr * g; theta += v, or with Nesterov
    theta += momentum * v - lr * g."""
    cdef Py_ssize_t size = theta.shape[0]
    cdef VectorJob job
    check_shape("grad", grad.shape, 1, (size,))
    check_shape("velocity", velocity.shape, 1, (size,))
    if size == 0:
        return
    vector_job(&job, UPDATE_SGD, &theta[0], &grad[0], &velocity[0], NULL, size,
               TEAM_UNIT_ELEMENTS)
    job.lr = learning_rate
    job.beta_1 = momentum
    job.nesterov = nesterov
    with nogil:
        team_run(threads_for(size, n_threads), job.n_units, vector_unit, &job)


def adam_update(floating[::1] theta,  # OUT
                const floating[::1] grad,
                floating[::1] m1,  # OUT: first moment
                floating[::1] m2,  # OUT: second moment
                double step_size, double beta_1, double beta_2, double epsilon,
                int n_threads):
    """Adam, as sklearn's AdamOptimizer, rounded as its numpy code rounds it
    for arrays of this dtype; step_size is the bias-corrected
    lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)."""
    cdef Py_ssize_t size = theta.shape[0]
    cdef VectorJob job
    check_shape("grad", grad.shape, 1, (size,))
    check_shape("m1", m1.shape, 1, (size,))
    check_shape("m2", m2.shape, 1, (size,))
    if size == 0:
        return
    vector_job(&job, UPDATE_ADAM, &theta[0], &grad[0], &m1[0], &m2[0], size, TEAM_UNIT_ELEMENTS)
    job.lr = step_size
    job.beta_1 = beta_1
    job.beta_2 = beta_2
    job.epsilon = epsilon
    with nogil:
        team_run(threads_for(size, n_threads), job.n_units, vector_unit, &job)

