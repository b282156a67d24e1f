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
inside the time loop. That loop is C (csrc/recurrent.c): W_hh is packed once
per call, each step's product is summed in registers tile by tile with its
activation (or derivative) pass right after, and not through BLAS, which
would pack W_hh again at every step.

Threads: the sequences are cut into ``n_threads`` slices, each a unit of
fastbp's team that runs all the steps. Sequence i at step t needs only its
own state at t-1 (t+1 backward), so the threads never wait for each other
between steps. ``rnn_grad_hh`` is BLAS, one call per block of
rows of the result or per group of steps: call it with BLAS on one thread
when ``n_threads > 1`` (the engine does). Two thread pools (fastbp's team
and a multi-threaded BLAS) handing work to each other stall for milliseconds when
the threads fill the cores. Each element is computed by the same code
whatever the thread count.

Activation codes: 0 identity, 1 logistic, 2 tanh, 3 relu, 4 LeCun tanh
(``fastbp._kernels._dense.ACTIVATION_CODES``).
"""
from cython cimport floating

from ._alloc cimport fb_alloc_lines
from ._blas cimport block_start, gemm, gemm_blocks
from libc.stdlib cimport free, malloc

from ._checks cimport check_shape
from ._team cimport DtypeUnits, bind_team, dtype_unit, set_units, sum_partials, team_run

from ._dispatch cimport bind_dispatch
from ._elementwise cimport elementwise_act

bind_dispatch()
bind_team()

# Multiply-adds from which a step's GEMM is split over the team, and its
# narrowest block.
cdef Py_ssize_t GEMM_PARALLEL_MIN = 1 << 18
cdef Py_ssize_t GEMM_BLOCK_WIDTH = 64
# dL/dW_hh sums over every packed row: from 2x this many, the steps are cut
# into groups of about this many rows, one partial product each.
cdef Py_ssize_t REDUCTION_GROUP_ROWS = 1024


cdef extern from "recurrent.h":
    int fastbp_rnn_forward_f(const float* P, const float* W, const Py_ssize_t* batch_sizes,
                             Py_ssize_t T, int n, float* H, int act,
                             int n_threads) noexcept nogil
    int fastbp_rnn_forward_d(const double* P, const double* W, const Py_ssize_t* batch_sizes,
                             Py_ssize_t T, int n, double* H, int act,
                             int n_threads) noexcept nogil
    int fastbp_rnn_backward_f(const float* H, const float* W, const Py_ssize_t* batch_sizes,
                              Py_ssize_t T, int n, Py_ssize_t n_rows, const float* dH,
                              float* delta, int act, int n_threads,
                              Py_ssize_t window) noexcept nogil
    int fastbp_rnn_backward_d(const double* H, const double* W, const Py_ssize_t* batch_sizes,
                              Py_ssize_t T, int n, Py_ssize_t n_rows, const double* dH,
                              double* delta, int act, int n_threads,
                              Py_ssize_t window) noexcept nogil


cdef int _forward(const floating* P, const floating* W, const Py_ssize_t* bs,
                  Py_ssize_t T, int n, floating* H, int act, int n_threads) noexcept nogil:
    if floating is float:
        return fastbp_rnn_forward_f(P, W, bs, T, n, H, act, n_threads)
    else:
        return fastbp_rnn_forward_d(P, W, bs, T, n, H, act, n_threads)


cdef int _backward(const floating* H, const floating* W, const Py_ssize_t* bs,
                   Py_ssize_t T, int n, Py_ssize_t n_rows, const floating* dH,
                   floating* delta, int act, int n_threads, Py_ssize_t k) noexcept nogil:
    if floating is float:
        return fastbp_rnn_backward_f(H, W, bs, T, n, n_rows, dH, delta, act, n_threads, k)
    else:
        return fastbp_rnn_backward_d(H, W, bs, T, n, n_rows, dH, delta, act, n_threads, k)


cdef void _grad_hh_steps(const floating* H, const floating* delta, const Py_ssize_t* bs,
                         Py_ssize_t t0, Py_ssize_t t1, Py_ssize_t off_prev, int n,
                         floating* G, Py_ssize_t c0, Py_ssize_t c1) noexcept nogil:
    # Columns c0..c1 of G = sum over steps t0 <= t < t1 (t0 >= 1) of
    # h_{t-1}[:b_t]^T delta_t; off_prev is the first packed row of step t0 - 1.
    # (A block of columns packs only its columns of delta; a block of rows
    # would pack all of delta, again in each block.)
    # Step t pairs rows [off_{t-1}, off_{t-1} + b_t) of H with rows
    # [off_t, off_t + b_t) of delta. delta's rows of consecutive steps are
    # always adjacent; H's are adjacent when b_{t-1} == b_{t-2}. So one GEMM
    # covers each run of steps over which the batch does not shrink.
    cdef Py_ssize_t t, i, off_tm1 = off_prev  # offset of block t - 1
    cdef Py_ssize_t h_start = off_prev, d_start = off_prev + bs[t0 - 1], rows = 0
    cdef floating beta = 0
    cdef int cols = <int> (c1 - c0)
    for t in range(t0, t1):
        if t > t0 and bs[t - 1] != bs[t - 2]:
            gemm(True, False, n, cols, <int> rows, <floating> 1, H + h_start * n, n,
                 delta + d_start * n + c0, n, beta, G + c0, n)
            beta = 1
            h_start = off_tm1
            d_start = off_tm1 + bs[t - 1]
            rows = 0
        rows += bs[t]
        off_tm1 += bs[t - 1]
    if rows > 0:
        gemm(True, False, n, cols, <int> rows, <floating> 1, H + h_start * n, n,
             delta + d_start * n + c0, n, beta, G + c0, n)
    elif beta == 0:
        for i in range(n):
            for t in range(c0, c1):
                G[i * n + t] = 0


cdef int _grad_hh(const floating* H, const floating* delta, const Py_ssize_t* bs,
                  Py_ssize_t T, int n, Py_ssize_t n_rows, floating* G,
                  int n_threads) noexcept nogil:
    """G = sum_t h_{t-1}^T delta_t; returns -1 when out of memory.

    Few rows: one pass over the steps, the columns of G cut into blocks. Many
    rows: the steps cut into groups of about REDUCTION_GROUP_ROWS rows, each
    group's sum computed into its own partial result (all rows of G at once,
    so the long operands are packed once), the partials added in group order
    by the same team once every group is done. Blocks and groups depend on the
    shape only, so the result does not depend on the thread count.
    """
    cdef Py_ssize_t summed = n_rows - bs[0]  # rows of delta with t >= 1
    cdef Py_ssize_t size = <Py_ssize_t> n * n
    cdef int n_groups = 1, g = 0
    cdef Py_ssize_t t, rows_before
    cdef Py_ssize_t* bounds  # per group: first step, then first row of step - 1
    cdef floating* partial
    cdef void* held
    cdef GradHHJob job
    job.H = H
    job.delta = delta
    job.bs = bs
    job.T = T
    job.n = n
    job.G = G
    if summed >= 2 * REDUCTION_GROUP_ROWS and summed * size >= GEMM_PARALLEL_MIN:
        n_groups = <int> min(16, summed // REDUCTION_GROUP_ROWS)
    if n_groups == 1:
        job.n_blocks = gemm_blocks(n, summed * size, GEMM_PARALLEL_MIN, GEMM_BLOCK_WIDTH)
        set_units(&job.units, grad_hh_block[float], grad_hh_block[double], <floating*> NULL)
        team_run(n_threads, job.n_blocks, dtype_unit, &job)
        return 0
    bounds = <Py_ssize_t*> malloc(2 * (n_groups + 1) * sizeof(Py_ssize_t))
    partial = <floating*> fb_alloc_lines((n_groups - 1) * size * sizeof(floating), &held)
    if bounds == NULL or partial == NULL:
        free(bounds)
        free(held)
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
    job.bounds = bounds
    job.partial = partial
    set_units(&job.units, grad_hh_group[float], grad_hh_group[double], <floating*> NULL)
    team_run(n_threads, n_groups, dtype_unit, &job)
    sum_partials(G, partial, n_groups, size, n_threads)
    free(bounds)
    free(held)
    return 0


ctypedef struct GradHHJob:
    # _grad_hh's units: blocks of rows of G (n_blocks), or groups of steps
    # (bounds, each group but the first summed into its partial result).
    DtypeUnits units
    const void* H
    const void* delta
    const Py_ssize_t* bs
    const Py_ssize_t* bounds
    void* G
    void* partial
    Py_ssize_t T
    int n, n_blocks


cdef void grad_hh_block(const void* job, int blk, int slot, floating* tag) noexcept nogil:
    cdef const GradHHJob* j = <const GradHHJob*> job
    cdef Py_ssize_t c0 = block_start(j.n, j.n_blocks, blk)
    cdef Py_ssize_t c1 = block_start(j.n, j.n_blocks, blk + 1)
    if c1 > c0:
        _grad_hh_steps(<const floating*> j.H, <const floating*> j.delta, j.bs, 1, j.T, 0, j.n,
                       <floating*> j.G, c0, c1)


cdef void grad_hh_group(const void* job, int g, int slot, floating* tag) noexcept nogil:
    cdef const GradHHJob* j = <const GradHHJob*> job
    cdef Py_ssize_t size = <Py_ssize_t> j.n * j.n
    cdef floating* out = <floating*> j.G if g == 0 else <floating*> j.partial + (g - 1) * size
    _grad_hh_steps(<const floating*> j.H, <const floating*> j.delta, j.bs, j.bounds[2 * g],
                   j.bounds[2 * g + 2], j.bounds[2 * g + 1], j.n, out, 0, j.n)


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
        Threads of fastbp's team for the element-wise passes.
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
    cdef int status
    with nogil:
        status = _forward(&P[0, 0], &W_hh[0, 0], &batch_sizes[0], T, <int> n_hidden,
                          &H[0, 0], activation, n_threads)
    if status != 0:
        raise MemoryError()


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
    cdef int status
    with nogil:
        status = _backward(&H[0, 0], &W_hh[0, 0], &batch_sizes[0], T, <int> n_hidden, n_rows,
                           &dH[0, 0], &delta[0, 0], activation, n_threads, bptt_steps)
    if status != 0:
        raise MemoryError()


def rnn_grad_hh(const floating[:, ::1] H, const floating[:, ::1] delta,
                const Py_ssize_t[::1] batch_sizes,
                floating[:, ::1] grad_hh,  # OUT
                int n_threads):
    """``grad_hh = sum_{t >= 1} H[block t-1][:batch_sizes[t]].T @ delta[block t]``.

    dL/dW_hh (h_0 = 0 contributes nothing). Overwrites grad_hh. One GEMM per
    run of steps over which the batch does not shrink -- a single GEMM when
    all sequences have the same length -- accumulated in step order.
    Blocks of grad_hh's columns, or groups of steps, are shared out to
    n_threads (each element is computed the same way whatever the thread
    count).

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
                   int activation):
    """Test hook: out = f(z) with the time loop's element-wise code."""
    cdef Py_ssize_t n = z.shape[0]
    if out.shape[0] != n:
        raise ValueError("z and out differ in length")
    if n == 0:
        return
    with nogil:
        elementwise_act(&out[0], &z[0], <floating*> NULL, n, activation)

