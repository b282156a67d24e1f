"""The nogil engine of the fused dense chain (_chain.pyx sets its calls
up): forward, loss, backward and optimizer step of a whole network in two
team calls a batch, with the same results bit for bit as the layer-by-layer
kernels of _dense.pyx, _losses.pyx and _optimizers.pyx, whose helpers it
calls through their .pxd files.
"""
from cython cimport floating
from ._copy cimport copy_bytes

from ._blas cimport block_start, gemm
from ._dense cimport (PARALLEL_MIN_FLOPS, bias_activate, gradient_block, gradient_blocks,
                      gradient_groups, multiply_derivative, weight_gradient)
from ._dispatch cimport bind_dispatch
from ._elementwise cimport column_sums, l2_block
from ._losses cimport rows_loss_delta
from ._optimizers cimport UPDATE_NONE, update_range
from ._team cimport DtypeUnits, bind_team, dtype_unit, set_units, team_run

bind_dispatch()
bind_team()


ctypedef struct ChainJob:
    DtypeUnits units
    const Chain* c
    ChainBatch* bt
    int first                 # the row groups' first layer: 1 after chain_first_columns


cdef void chain_units(ChainBatch* bt, int n_layers, const Py_ssize_t* dims) noexcept nogil:
    """The second phase's units of a batch. Layers whose gradient sums so many
    rows that it is cut into row groups get only their bias unit: their weight
    gradient runs after the batch's units (chain_grouped_layers)."""
    cdef int n = 0, l, blk, n_blocks
    for l in range(n_layers):
        if gradient_groups(bt.m, dims[l], dims[l + 1]) == 1:
            # blocks of rows: each unit's L2 term and step take its rows
            n_blocks = gradient_blocks(bt.m, dims[l], dims[l + 1], False)
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


cdef inline void gather_rows(const Chain* c, const ChainBatch* bt, Py_ssize_t r0,
                             Py_ssize_t r1, floating* tag) noexcept nogil:
    """Batch rows r0..r1 of A[0], Y and sw: rows order[i] of the sources."""
    cdef Py_ssize_t n_in = c.dims[0], n_out = c.dims[c.n_layers], i, src
    cdef floating* A0 = (<floating**> c.A)[0]
    cdef floating* Y = <floating*> c.Y
    cdef floating* sw = <floating*> c.sw
    for i in range(r0, r1):
        src = bt.order[i]
        copy_bytes(A0 + i * n_in, <const floating*> c.X_src + src * n_in,
                   n_in * sizeof(floating))
        copy_bytes(Y + i * n_out, <const floating*> c.Y_src + src * n_out,
                   n_out * sizeof(floating))
        if sw != NULL:
            sw[i] = (<const floating*> c.sw_src)[src]


cdef void chain_gather(const void* job, int g, int slot, floating* tag) noexcept nogil:
    """Row group g's gather alone, before chain_first_columns."""
    cdef const ChainBatch* bt = (<const ChainJob*> job).bt
    gather_rows((<const ChainJob*> job).c, bt, block_start(bt.m, bt.n_groups, g),
                block_start(bt.m, bt.n_groups, g + 1), tag)


cdef void chain_first_columns(const void* job, int u, int slot, floating* tag) noexcept nogil:
    """Column block u of the first layer's forward over all the batch's rows:
    each block packs only its columns of W[0], where the row groups would
    each pack all of it."""
    cdef const Chain* c = (<const ChainJob*> job).c
    cdef const ChainBatch* bt = (<const ChainJob*> job).bt
    cdef Py_ssize_t k = c.dims[0], n = c.dims[1]
    cdef Py_ssize_t c0 = block_start(n, bt.n_cols0, u), c1 = block_start(n, bt.n_cols0, u + 1)
    cdef floating* A0 = (<floating**> c.A)[0]
    cdef floating* A1 = (<floating**> c.A)[1]
    if c1 <= c0:
        return
    gemm(False, False, <int> bt.m, <int> (c1 - c0), <int> k, <floating> 1, A0, <int> k,
         (<floating**> c.W)[0] + c0, <int> n, <floating> 0, A1 + c0, <int> n)
    bias_activate(A1, (<floating**> c.b)[0], bt.m, c0, c1, n, c.acts[0])


cdef void chain_rows(const void* job, int g, int slot, floating* tag) noexcept nogil:
    """Rows of group g of a batch (``tag`` only picks the dtype): gathered when
    the call gathers, then every layer forward from job.first, the output loss
    and delta, and the seeds' recursion down to the first layer's delta. Rows
    are independent here, so the groups need no synchronisation."""
    cdef const Chain* c = (<const ChainJob*> job).c
    cdef const ChainBatch* bt = (<const ChainJob*> job).bt
    cdef int first = (<const ChainJob*> job).first
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
    cdef Py_ssize_t rows = r1 - r0, k, n
    cdef Py_ssize_t n_out = dims[n_layers]
    if rows <= 0:
        return
    if bt.order != NULL and first == 0:
        gather_rows(c, bt, r0, r1, tag)
    for l in range(first, n_layers):  # A[l+1] = g_l(A[l] @ W[l] + b[l])
        k = dims[l]
        n = dims[l + 1]
        gemm(False, False, <int> rows, <int> n, <int> k, <floating> 1, A[l] + r0 * k,
             <int> k, W[l], <int> n, <floating> 0, A[l + 1] + r0 * n, <int> n)
        bias_activate(A[l + 1] + r0 * n, b[l], rows, 0, n, n, c.acts[l])
    rows_loss_delta(A[n_layers], Y, D[n_layers - 1], r0, r1, n_out, c.kind, bt.scale, sw,
                    bt.row_loss)
    for l in range(n_layers - 1, 0, -1):  # D[l-1] = (D[l] @ W[l]^T) * g'_{l-1}
        k = dims[l]
        n = dims[l + 1]
        gemm(False, True, <int> rows, <int> k, <int> n, <floating> 1, D[l] + r0 * n,
             <int> n, W[l], <int> n, <floating> 0, D[l - 1] + r0 * k, <int> k)
        multiply_derivative(D[l - 1] + r0 * k, A[l] + r0 * k, rows, 0, k, k, c.acts[l - 1])


cdef void chain_gradient_unit(const void* job, int u, int slot, floating* tag) noexcept nogil:
    """Unit u of a batch's second phase: a block of rows of one layer's weight
    gradient, then its L2 term and the optimizer's step on it while it is in
    cache; or (block -1) that layer's bias gradient and step."""
    cdef const Chain* c = (<const ChainJob*> job).c
    cdef ChainBatch* bt = (<const ChainJob*> job).bt
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
        column_sums(D[l], bt.m, n, n, gb[l])
        if c.update != UPDATE_NONE:
            at = c.offsets[2 * l + 1]
            update_range(c.update, b[l], gb[l], s1 + at, s2 + at if s2 != NULL else NULL,
                         bt.learning_rate, c.beta_1, c.beta_2, c.epsilon, c.nesterov, n)
        return
    gradient_block(blk, n_blocks, False, bt.m, k, n, A[l], D[l], gW[l])
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


cdef void chain_step(const Chain* c, ChainBatch* bt, int n_team, floating* tag) noexcept nogil:
    """One batch: its row groups, then (once all are done) its gradient
    units, so the next batch sees the updated parameters. When the first
    layer's forward runs by column blocks (bt.n_cols0), the gather and those
    blocks come first, each a team call, and the row groups start at layer 1:
    two row groups each packing the whole 784 x 256 W[0] cost more than the
    extra calls."""
    cdef ChainJob job
    job.c = c
    job.bt = bt
    job.first = 0
    if bt.n_cols0 > 0:
        if bt.order != NULL:
            set_units(&job.units, chain_gather[float], chain_gather[double], <floating*> NULL)
            team_run(n_team, bt.n_groups, dtype_unit, &job)
        set_units(&job.units, chain_first_columns[float], chain_first_columns[double],
                  <floating*> NULL)
        team_run(n_team, bt.n_cols0, dtype_unit, &job)
        job.first = 1
    set_units(&job.units, chain_rows[float], chain_rows[double], <floating*> NULL)
    team_run(n_team, bt.n_groups, dtype_unit, &job)
    set_units(&job.units, chain_gradient_unit[float], chain_gradient_unit[double],
              <floating*> NULL)
    team_run(n_team, bt.n_units, dtype_unit, &job)


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
                           <floating*> NULL, 0, <floating*> NULL, n_threads) != 0:
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
