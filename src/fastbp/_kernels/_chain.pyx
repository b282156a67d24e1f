"""The fused chain of dense layers: the Python entry points
(dense_chain_loss_and_grad, dense_chain_train) and the checked setup of
their C arrays (_ChainCall); _chain_engine.pyx runs them without the GIL.
"""
from cython cimport floating
from libc.stdlib cimport calloc, free

from ._blas cimport gemm_blocks
from ._chain_engine cimport UNITS_PER_LAYER, Chain, ChainBatch, chain_run, chain_units
from ._checks cimport check_shape
from ._dense cimport GEMM_BLOCK_WIDTH, PARALLEL_MIN_FLOPS
from ._optimizers cimport UPDATE_ADAM, UPDATE_NONE, UPDATE_SGD

# Fewest rows of a row group in dense_chain_loss_and_grad: every group's
# GEMMs pack each layer's whole weight matrix, so narrower groups repack more.
cdef Py_ssize_t CHAIN_GROUP_ROWS = 64


cdef inline int chain_row_groups(Py_ssize_t m, Py_ssize_t work) noexcept nogil:
    """Row groups of a fused batch's first phase: a function of the shape
    only (see gemm_blocks), each at least CHAIN_GROUP_ROWS rows."""
    return gemm_blocks(m, work, PARALLEL_MIN_FLOPS, CHAIN_GROUP_ROWS)


cdef inline int first_layer_columns(Py_ssize_t m, Py_ssize_t k, Py_ssize_t n,
                                    int n_groups) noexcept nogil:
    """Column blocks of the first layer's forward when it runs apart from the
    row groups, else 0. Each of the n_groups row groups packs all of W[0]
    (k x n) and its rows of A[0]; each of C column blocks packs its columns of
    W[0] and all of A[0] (m x k). Columns pack less when (C - 1) m < (G - 1) n:
    the MLP bench's 784-256 layer on batches of 128 rows. A function of the
    shape only, like the groups and blocks."""
    cdef int n_cols
    if n_groups < 2:
        return 0
    n_cols = gemm_blocks(n, m * k * n, PARALLEL_MIN_FLOPS, GEMM_BLOCK_WIDTH)
    if n_cols < 2 or (n_cols - 1) * m >= (n_groups - 1) * n:
        return 0
    return n_cols


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
        bt.n_cols0 = first_layer_columns(m, self.c.dims[0], self.c.dims[1], bt.n_groups)
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

