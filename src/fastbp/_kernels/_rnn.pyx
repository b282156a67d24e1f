"""Vanilla-RNN (Elman) time loop: forward pass and backpropagation through time.

Model, as in the seeds (weights stored input-major, like sklearn's ``coefs_``)::

    z_t = x_t @ W_ih + h_{t-1} @ W_hh + b_h,    h_t = f(z_t),    h_0 = 0
    delta_t = f'(z_t) * (dL/dh_t + delta_{t+1} @ W_hh.T)
    dL/dW_hh = sum_t h_{t-1}.T @ delta_t,   dL/dW_ih = sum_t x_t.T @ delta_t,
    dL/db_h = sum_t delta_t

Layout: packed, exactly like ``torch.nn.utils.rnn.PackedSequence.data``.
Sequences are sorted by decreasing length; ``batch_sizes[t]`` (non-increasing,
positive, dtype ``np.intp``) is how many of them are still running at step t.
Every per-step array has shape ``(n_rows, ...)`` with
``n_rows = batch_sizes.sum()``; the block of step t is rows
``offset_t : offset_t + batch_sizes[t]`` with ``offset_t = batch_sizes[:t].sum()``,
and its row i belongs to the i-th longest sequence. There is no padding, so
the large GEMMs done by the caller (input projection, output layer, weight
gradients) run over exactly the valid rows, and the rows of sequence i at step
t-1 are the first ``batch_sizes[t]`` rows of block t-1.

Only ``h_{t-1} @ W_hh`` (forward) and ``delta_{t+1} @ W_hh.T`` (backward) sit
inside the time loop: one GEMM of ``batch_sizes[t]`` rows per step, each
followed by its fused element-wise pass (vectorized C in csrc/elementwise.c).

Threads: fastbp trains with BLAS held to one thread, and ``n_threads`` is
the one OpenMP team: a large step's GEMM is split by columns over it, each
block followed by its own activation pass, and ``rnn_grad_hh`` splits the
rows of its result. Two thread pools (OpenMP and a multi-threaded BLAS)
handing work to each other every step stall for milliseconds when the
threads fill the cores (5-10 ms a switch measured on 2 cores), so call these
kernels with BLAS on one thread when ``n_threads > 1`` (the engine does), or
with ``n_threads=1`` otherwise. Each element is computed by the same code
whatever the thread count.

Activation codes: 0 identity, 1 logistic, 2 tanh, 3 relu, 4 LeCun tanh
(``fastbp._kernels._dense.ACTIVATION_CODES``).
"""
from cython cimport floating
from cython.parallel cimport prange

from ._blas cimport block_start, gemm, gemm_blocks
from libc.stdlib cimport free, malloc
from ._checks cimport check_shape

from ._elementwise cimport (elementwise_act, elementwise_dact, fastbp_set_simd_level,
                              fastbp_simd_level)

# Below this many elements in one step an OpenMP team costs more than it saves
# (tanh costs about 1 ns an element; the backward pass much less).
cdef Py_ssize_t ACT_PARALLEL_MIN = 8192
cdef Py_ssize_t DACT_PARALLEL_MIN = 32768
# Multiply-adds from which a step's GEMM is split over the team, and its
# narrowest block.
cdef Py_ssize_t GEMM_PARALLEL_MIN = 1 << 18
cdef Py_ssize_t GEMM_BLOCK_WIDTH = 64
# dL/dW_hh sums over every packed row: from 2x this many, the steps are cut
# into groups of about this many rows, one partial product each.
cdef Py_ssize_t REDUCTION_GROUP_ROWS = 1024


cdef inline int threads_for(Py_ssize_t work, Py_ssize_t threshold,
                            int n_threads) noexcept nogil:
    return n_threads if (n_threads > 1 and work >= threshold) else 1


cdef inline Py_ssize_t _chunk_length(Py_ssize_t n, int nt) noexcept nogil:
    """Elements per thread in an element-wise pass: whole 16-element vectors."""
    return ((n + nt - 1) // nt + 15) // 16 * 16


cdef inline void _pass_range(floating* out, const floating* a, const floating* b,
                             const floating* h, Py_ssize_t start, Py_ssize_t stop,
                             int act) noexcept nogil:
    cdef const floating* b_part = NULL
    if start >= stop:
        return
    if b != NULL:
        b_part = b + start
    if h == NULL:
        elementwise_act(out + start, a + start, b_part, stop - start, act)
    else:
        elementwise_dact(out + start, a + start, b_part, h + start, stop - start, act)


cdef void _chunked_pass(floating* out, const floating* a, const floating* b,
                        const floating* h, Py_ssize_t n, int act, int n_threads,
                        Py_ssize_t parallel_min) noexcept nogil:
    """act_pass (h NULL) or dact_pass (h given) over n elements, split into one
    contiguous chunk per thread, so each element is computed by the same code
    whatever the thread count."""
    cdef int nt = threads_for(n, parallel_min, n_threads)
    cdef Py_ssize_t chunk = _chunk_length(n, nt), c
    if nt == 1:  # no OpenMP region for a pass that stays on one thread
        _pass_range(out, a, b, h, 0, n, act)
        return
    for c in prange(nt, num_threads=nt, schedule="static"):
        _pass_range(out, a, b, h, c * chunk, min((c + 1) * chunk, n), act)


cdef inline void act_pass(floating* out, const floating* a, const floating* b,
                          Py_ssize_t n, int act, int n_threads) noexcept nogil:
    """out = f(a + b) (b NULL: f(a)) over n elements; out may be a."""
    _chunked_pass(out, a, b, <const floating*> NULL, n, act, n_threads, ACT_PARALLEL_MIN)


cdef inline void dact_pass(floating* out, const floating* a, const floating* b,
                           const floating* h, Py_ssize_t n, int act,
                           int n_threads) noexcept nogil:
    """out = (a + b) * f'(z) (b NULL: a * f'(z)), f'(z) taken from h = f(z)."""
    if act == 0 and b == NULL and out == a:  # identity, in place: nothing to do
        return
    _chunked_pass(out, a, b, h, n, act, n_threads, DACT_PARALLEL_MIN)


cdef inline int _step_blocks(Py_ssize_t rows, Py_ssize_t n) noexcept nogil:
    return gemm_blocks(n, rows * n * n, GEMM_PARALLEL_MIN, GEMM_BLOCK_WIDTH)


# Each step's GEMM is split by columns of the hidden state over fastbp's
# OpenMP team (BLAS runs on one thread while fastbp trains), and every block's
# activation (or derivative) pass runs right after its GEMM, while it is in
# cache: one OpenMP region per step, one thread pool.

cdef void _step_forward(floating* cur, const floating* prev, const floating* W,
                        const floating* P_t, Py_ssize_t b, int n, int act,
                        int n_threads) noexcept nogil:
    """cur = f(P_t + prev[:b] @ W); P_t NULL means cur already holds P_t."""
    cdef int n_blocks = _step_blocks(b, n)
    cdef int blk
    cdef Py_ssize_t c0, c1, i
    cdef const floating* p_row
    for blk in prange(n_blocks, num_threads=min(n_blocks, n_threads), schedule="static"):
        c0 = block_start(n, n_blocks, blk)
        c1 = block_start(n, n_blocks, blk + 1)
        if c1 > c0:
            gemm(False, False, <int> b, <int> (c1 - c0), n, <floating> 1, prev, n,
                 W + c0, n, <floating> (1 if P_t == NULL else 0), cur + c0, n)
            for i in range(b):
                p_row = NULL
                if P_t != NULL:
                    p_row = P_t + i * n + c0
                elementwise_act(cur + i * n + c0, cur + i * n + c0, p_row, c1 - c0, act)


cdef void _step_backward(floating* cur, const floating* d_t, const floating* d_next,
                         const floating* W, const floating* h_t, Py_ssize_t nb, int n,
                         int act, int n_threads) noexcept nogil:
    """Rows [0, nb) of step t: cur = f'(z_t) * (d_t + d_next @ W^T); d_t NULL
    means cur already holds dL/dh_t."""
    cdef int n_blocks = _step_blocks(nb, n)
    cdef int blk
    cdef Py_ssize_t c0, c1, i
    cdef const floating* d_row
    for blk in prange(n_blocks, num_threads=min(n_blocks, n_threads), schedule="static"):
        c0 = block_start(n, n_blocks, blk)
        c1 = block_start(n, n_blocks, blk + 1)
        if c1 > c0:
            # columns c0..c1 of W^T are rows c0..c1 of W
            gemm(False, True, <int> nb, <int> (c1 - c0), n, <floating> 1, d_next, n,
                 W + c0 * n, n, <floating> (1 if d_t == NULL else 0), cur + c0, n)
            for i in range(nb):
                d_row = NULL
                if d_t != NULL:
                    d_row = d_t + i * n + c0
                elementwise_dact(cur + i * n + c0, cur + i * n + c0, d_row, h_t + i * n + c0,
                      c1 - c0, act)


cdef void _forward(const floating* P, const floating* W, const Py_ssize_t* bs,
                   Py_ssize_t T, int n, floating* H, int act,
                   int n_threads) noexcept nogil:
    cdef bint inplace = H == P
    cdef Py_ssize_t t, b, off = 0, off_prev = 0
    cdef floating* cur
    for t in range(T):
        b = bs[t]
        cur = H + off * n
        if t == 0:
            # h_0 = 0, so z_1 is the projection alone.
            act_pass(cur, P + off * n, <floating*> NULL, b * n, act, n_threads)
        else:
            # z_t = P_t + h_{t-1}[:b] @ W_hh (accumulated onto P_t when in place)
            _step_forward(cur, H + off_prev * n, W,
                          <floating*> NULL if inplace else P + off * n,
                          b, n, act, n_threads)
        off_prev = off
        off += b


cdef void _backward(const floating* H, const floating* W, const Py_ssize_t* bs,
                    Py_ssize_t T, int n, Py_ssize_t n_rows, const floating* dH,
                    floating* delta, int act, int n_threads,
                    Py_ssize_t k) noexcept nogil:
    cdef bint inplace = delta == dH
    cdef Py_ssize_t t, b, nb, off, off_next = n_rows
    cdef floating* cur
    cdef const floating* dcur
    cdef const floating* hcur
    for t in range(T - 1, -1, -1):
        b = bs[t]
        off = off_next - b
        cur = delta + off * n
        dcur = dH + off * n
        hcur = H + off * n
        # Rows of step t that receive delta_{t+1} @ W_hh.T: the sequences still
        # running at t + 1, unless t + 1 starts a truncation window.
        nb = 0
        if t + 1 < T and (k <= 0 or (t + 1) % k != 0):
            nb = bs[t + 1]
        if nb > 0:
            _step_backward(cur, <floating*> NULL if inplace else dcur,
                           delta + off_next * n, W, hcur, nb, n, act, n_threads)
        if b > nb:
            dact_pass(cur + nb * n, dcur + nb * n, <floating*> NULL, hcur + nb * n,
                      (b - nb) * n, act, n_threads)
        off_next = off


cdef void _grad_hh_steps(const floating* H, const floating* delta, const Py_ssize_t* bs,
                         Py_ssize_t t0, Py_ssize_t t1, Py_ssize_t off_prev, int n,
                         floating* G, Py_ssize_t r0, Py_ssize_t r1) noexcept nogil:
    # Rows r0..r1 of G = sum over steps t0 <= t < t1 (t0 >= 1) of
    # h_{t-1}[:b_t]^T delta_t; off_prev is the first packed row of step t0 - 1.
    # Step t pairs rows [off_{t-1}, off_{t-1} + b_t) of H with rows
    # [off_t, off_t + b_t) of delta. delta's rows of consecutive steps are
    # always adjacent; H's are adjacent when b_{t-1} == b_{t-2}. So one GEMM
    # covers each run of steps over which the batch does not shrink.
    cdef Py_ssize_t t, i, off_tm1 = off_prev  # offset of block t - 1
    cdef Py_ssize_t h_start = off_prev, d_start = off_prev + bs[t0 - 1], rows = 0
    cdef floating beta = 0
    cdef int m = <int> (r1 - r0)
    for t in range(t0, t1):
        if t > t0 and bs[t - 1] != bs[t - 2]:
            gemm(True, False, m, n, <int> rows, <floating> 1, H + h_start * n + r0, n,
                 delta + d_start * n, n, beta, G + r0 * n, n)
            beta = 1
            h_start = off_tm1
            d_start = off_tm1 + bs[t - 1]
            rows = 0
        rows += bs[t]
        off_tm1 += bs[t - 1]
    if rows > 0:
        gemm(True, False, m, n, <int> rows, <floating> 1, H + h_start * n + r0, n,
             delta + d_start * n, n, beta, G + r0 * n, n)
    elif beta == 0:
        for i in range(r0 * n, r1 * n):
            G[i] = 0


cdef int _grad_hh(const floating* H, const floating* delta, const Py_ssize_t* bs,
                  Py_ssize_t T, int n, Py_ssize_t n_rows, floating* G,
                  int n_threads) noexcept nogil:
    """G = sum_t h_{t-1}^T delta_t; returns -1 when out of memory.

    Few rows: one pass over the steps, the rows of G cut into blocks. Many
    rows: the steps cut into groups of about REDUCTION_GROUP_ROWS rows, each
    group's sum computed into its own partial result (all rows of G at once,
    so the long operands are packed once), the partials added in group order.
    Blocks and groups depend on the shape only, so the result does not depend
    on the thread count.
    """
    cdef Py_ssize_t summed = n_rows - bs[0]  # rows of delta with t >= 1
    cdef Py_ssize_t size = <Py_ssize_t> n * n
    cdef int n_groups = 1, n_blocks, blk, g
    cdef Py_ssize_t r0, r1, t, i, rows_before, target
    cdef Py_ssize_t* bounds  # per group: first step, then first row of step - 1
    cdef floating* partial
    if summed >= 2 * REDUCTION_GROUP_ROWS and summed * size >= GEMM_PARALLEL_MIN:
        n_groups = <int> min(16, summed // REDUCTION_GROUP_ROWS)
    if n_groups == 1:
        n_blocks = gemm_blocks(n, summed * size, GEMM_PARALLEL_MIN, GEMM_BLOCK_WIDTH)
        for blk in prange(n_blocks, num_threads=min(n_blocks, n_threads), schedule="static"):
            r0 = block_start(n, n_blocks, blk)
            r1 = block_start(n, n_blocks, blk + 1)
            if r1 > r0:
                _grad_hh_steps(H, delta, bs, 1, T, 0, n, G, r0, r1)
        return 0
    bounds = <Py_ssize_t*> malloc(2 * (n_groups + 1) * sizeof(Py_ssize_t))
    partial = <floating*> malloc((n_groups - 1) * size * sizeof(floating))
    if bounds == NULL or partial == NULL:
        free(bounds)
        free(partial)
        return -1
    # Group g starts at the first step t >= 1 whose rows begin at or after
    # g * summed / n_groups rows of steps 1.. .
    g = 0
    rows_before = 0
    for t in range(1, T):
        while g < n_groups and rows_before * n_groups >= g * summed:
            bounds[2 * g] = t
            bounds[2 * g + 1] = n_rows - summed + rows_before - bs[t - 1]
            g += 1
        rows_before += bs[t]
    while g <= n_groups:
        bounds[2 * g] = T
        bounds[2 * g + 1] = 0
        g += 1
    for g in prange(n_groups, num_threads=min(n_groups, n_threads), schedule="static"):
        _grad_hh_steps(H, delta, bs, bounds[2 * g], bounds[2 * g + 2], bounds[2 * g + 1], n,
                       G if g == 0 else partial + (g - 1) * size, 0, n)
    for i in prange(size, num_threads=n_threads if size * n_groups >= ACT_PARALLEL_MIN else 1,
                    schedule="static"):
        for g in range(1, n_groups):
            G[i] += partial[(g - 1) * size + i]
    free(bounds)
    free(partial)
    return 0


cdef Py_ssize_t _check_batch_sizes(const Py_ssize_t[::1] batch_sizes,
                                   Py_ssize_t n_rows) except -1:
    """Cheap O(T) check that batch_sizes describes exactly n_rows packed rows.

    A wrong batch_sizes would make the kernels read or write out of bounds, so
    it is checked here although other shapes are the caller's job.
    """
    cdef Py_ssize_t t, T = batch_sizes.shape[0], total = 0
    for t in range(T):
        if batch_sizes[t] <= 0 or (t > 0 and batch_sizes[t] > batch_sizes[t - 1]):
            raise ValueError("batch_sizes must be positive and non-increasing")
        total += batch_sizes[t]
    if total != n_rows:
        raise ValueError(f"batch_sizes sums to {total}, arrays have {n_rows} rows")
    return 0


cdef bint _overlap(const void* a, const void* b, Py_ssize_t nbytes) noexcept:
    """True when two buffers of nbytes overlap without being the same buffer."""
    cdef const char* x = <const char*> a
    cdef const char* y = <const char*> b
    return x != y and x < y + nbytes and y < x + nbytes


def rnn_forward(const floating[:, ::1] P, const floating[:, ::1] W_hh,
                const Py_ssize_t[::1] batch_sizes,
                floating[:, ::1] H,  # OUT (may be P itself)
                int activation, int n_threads):
    """Forward time loop of a vanilla RNN over a packed batch, h_0 = 0.

    ``H[block t] = f(P[block t] + H[block t-1][:batch_sizes[t]] @ W_hh)``, and
    ``H[block 0] = f(P[block 0])``.

    Parameters
    ----------
    P : ndarray of shape (n_rows, n_hidden)
        Input projection ``x_t @ W_ih + b_h`` of every packed row, computed by
        the caller with one GEMM over all rows.
    W_hh : ndarray of shape (n_hidden, n_hidden)
        Recurrent weights, input-major (``h_{t-1} @ W_hh``).
    batch_sizes : ndarray of shape (n_steps,), dtype np.intp
        Positive, non-increasing; sums to n_rows.
    H : ndarray of shape (n_rows, n_hidden)
        OUT: hidden states ``h_t`` (packed). May be the same array as P (the
        projection is then overwritten); partial overlap is an error.
    activation : int
        Activation code of f.
    n_threads : int
        OpenMP threads for the element-wise passes.
    """
    cdef Py_ssize_t n_rows = P.shape[0], n_hidden = P.shape[1]
    cdef Py_ssize_t T = batch_sizes.shape[0]
    _check_batch_sizes(batch_sizes, n_rows)
    check_shape("W_hh", W_hh.shape, 2, (n_hidden, n_hidden))
    check_shape("H", H.shape, 2, (n_rows, n_hidden))
    if n_rows == 0 or n_hidden == 0:
        return
    if _overlap(&P[0, 0], &H[0, 0], n_rows * n_hidden * sizeof(floating)):
        raise ValueError("H must be P itself or not overlap it")
    with nogil:
        _forward(&P[0, 0], &W_hh[0, 0], &batch_sizes[0], T, <int> n_hidden,
                 &H[0, 0], activation, n_threads)


def rnn_backward(const floating[:, ::1] H, const floating[:, ::1] W_hh,
                 const Py_ssize_t[::1] batch_sizes,
                 const floating[:, ::1] dH,
                 floating[:, ::1] delta,  # OUT (may be dH itself)
                 int activation, int n_threads, Py_ssize_t bptt_steps=0):
    """Backpropagation through time: pre-activation deltas of every packed row.

    Going from the last step to the first::

        delta[block t] = f'(z_t) * (dH[block t] + c_t)
        c_t[:batch_sizes[t+1]] = delta[block t+1] @ W_hh.T,  c_t = 0 elsewhere

    with f'(z_t) computed from ``h_t = H[block t]``. ``c_t = 0`` also when t is
    the last step, and under truncation (below).

    Truncated BPTT, ``bptt_steps = k > 0``: the steps are cut into windows
    [0, k), [k, 2k), ...; ``c_t = 0`` whenever t + 1 is a multiple of k, so no
    gradient flows from a window into the one before it. The forward pass is
    not cut: this is the exact gradient of the loss when the hidden state
    entering each window (``h_{jk-1}``) is held constant -- what PyTorch gives
    when a sequence is run window by window with ``h = h.detach()`` in
    between. ``rnn_grad_hh`` still pairs ``h_{jk-1}`` with ``delta_{jk}``
    (the held state is an input of the window). k = 0 (or k >= n_steps) is
    full BPTT.

    Parameters
    ----------
    H : ndarray of shape (n_rows, n_hidden)
        Hidden states from ``rnn_forward``.
    W_hh : ndarray of shape (n_hidden, n_hidden)
    batch_sizes : ndarray of shape (n_steps,), dtype np.intp
    dH : ndarray of shape (n_rows, n_hidden)
        dL/dh_t of every packed row from the layers above (the output layer's
        ``delta_out @ W_out.T``, one GEMM by the caller).
    delta : ndarray of shape (n_rows, n_hidden)
        OUT: dL/dz_t of every packed row. May be dH itself (overwritten);
        partial overlap is an error. The caller then forms
        ``dL/dW_ih = X.T @ delta``, ``dL/db_h = delta.sum(0)`` and
        ``dL/dW_hh = rnn_grad_hh(H, delta, ...)``.
    activation : int
    n_threads : int
    bptt_steps : int, default=0
        Truncation window length k; 0 means full BPTT.
    """
    cdef Py_ssize_t n_rows = H.shape[0], n_hidden = H.shape[1]
    cdef Py_ssize_t T = batch_sizes.shape[0]
    _check_batch_sizes(batch_sizes, n_rows)
    check_shape("W_hh", W_hh.shape, 2, (n_hidden, n_hidden))
    check_shape("dH", dH.shape, 2, (n_rows, n_hidden))
    check_shape("delta", delta.shape, 2, (n_rows, n_hidden))
    if bptt_steps < 0:
        raise ValueError("bptt_steps must be >= 0")
    if n_rows == 0 or n_hidden == 0:
        return
    if _overlap(&dH[0, 0], &delta[0, 0], n_rows * n_hidden * sizeof(floating)):
        raise ValueError("delta must be dH itself or not overlap it")
    if _overlap(&H[0, 0], &delta[0, 0], n_rows * n_hidden * sizeof(floating)) or \
            &H[0, 0] == &delta[0, 0]:
        raise ValueError("delta must not overlap H")
    with nogil:
        _backward(&H[0, 0], &W_hh[0, 0], &batch_sizes[0], T, <int> n_hidden, n_rows,
                  &dH[0, 0], &delta[0, 0], activation, n_threads, bptt_steps)


def rnn_grad_hh(const floating[:, ::1] H, const floating[:, ::1] delta,
                const Py_ssize_t[::1] batch_sizes,
                floating[:, ::1] grad_hh,  # OUT
                int n_threads):
    """``grad_hh = sum_{t >= 1} H[block t-1][:batch_sizes[t]].T @ delta[block t]``.

    dL/dW_hh (h_0 = 0 contributes nothing). Overwrites grad_hh. One GEMM per
    run of steps over which the batch does not shrink -- a single GEMM when
    all sequences have the same length -- accumulated in step order.
    The rows of grad_hh are split over n_threads (each row is computed the
    same way whatever the thread count).

    Parameters
    ----------
    H, delta : ndarray of shape (n_rows, n_hidden)
    batch_sizes : ndarray of shape (n_steps,), dtype np.intp
    grad_hh : ndarray of shape (n_hidden, n_hidden)
        OUT.
    n_threads : int
    """
    cdef Py_ssize_t n_rows = H.shape[0], n_hidden = H.shape[1]
    cdef Py_ssize_t T = batch_sizes.shape[0]
    _check_batch_sizes(batch_sizes, n_rows)
    check_shape("delta", delta.shape, 2, (n_rows, n_hidden))
    check_shape("grad_hh", grad_hh.shape, 2, (n_hidden, n_hidden))
    if n_hidden == 0:
        return
    if n_rows == 0:
        grad_hh[:, :] = 0
        return
    cdef int status
    with nogil:
        status = _grad_hh(&H[0, 0], &delta[0, 0], &batch_sizes[0], T, <int> n_hidden, n_rows,
                          &grad_hh[0, 0], n_threads)
    if status != 0:
        raise MemoryError()


def rnn_activation(const floating[::1] z,
                   floating[::1] out,  # OUT
                   int activation, int n_threads):
    """Test hook: out = f(z) with the time loop's element-wise code."""
    cdef Py_ssize_t n = z.shape[0]
    if out.shape[0] != n:
        raise ValueError("z and out differ in length")
    if n == 0:
        return
    with nogil:
        act_pass(&out[0], &z[0], <floating*> NULL, n, activation, n_threads)


def simd_level():
    """1 when the AVX2+FMA copy of the element-wise loops runs, else 0."""
    return fastbp_simd_level()


def _set_simd_level(int level):
    """Test hook: use at most this SIMD level (0: portable loops), capped by
    what the CPU has; returns the level now in use. Call while no kernel runs."""
    return fastbp_set_simd_level(level)
