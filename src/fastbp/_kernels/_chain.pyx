"""The fused chain of dense layers: forward, loss, backward and optimizer
step of a whole network in two team calls a batch (dense_chain_loss_and_grad,
dense_chain_train), with the same results bit for bit as the layer-by-layer
kernels of _dense.pyx, _losses.pyx and _optimizers.pyx, whose helpers it
calls through their .pxd files.
"""
from cython cimport floating
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy

from ._blas cimport block_start, gemm, gemm_blocks
from ._checks cimport check_shape
from ._dense cimport (PARALLEL_MIN_FLOPS, bias_activate, column_sums, gradient_block,
                      gradient_blocks, gradient_groups, multiply_derivative, weight_gradient)
from ._dispatch cimport bind_dispatch
from ._elementwise cimport l2_block
from ._losses cimport row_loss_delta
from ._optimizers cimport UPDATE_ADAM, UPDATE_NONE, UPDATE_SGD, update_range
from ._team cimport bind_team, team_run

bind_dispatch()
bind_team()

# Fewest rows of a row group in dense_chain_loss_and_grad: every group's
# GEMMs pack each layer's whole weight matrix, so narrower groups repack more.
cdef Py_ssize_t CHAIN_GROUP_ROWS = 64


cdef inline int chain_row_groups(Py_ssize_t m, Py_ssize_t work) noexcept nogil:
    """Row groups of a fused batch's first phase: a function of the shape
    only (see gemm_blocks), each at least CHAIN_GROUP_ROWS rows."""
    return gemm_blocks(m, work, PARALLEL_MIN_FLOPS, CHAIN_GROUP_ROWS)


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

