"""Variable-length sequences for the RNNs: ragged storage, packed batches and
the recurrent network.

Sequences are stored concatenated (:class:`Ragged`). A mini-batch is packed like
PyTorch's PackedSequence: sorted by decreasing length, time-major, no padding,
``batch_sizes[t]`` sequences still running at step t. The big GEMMs (input
projection, output layer, weight gradients) then run over exactly the valid
rows; only h_{t-1} @ W_hh stays inside the time loop (the ``_rnn`` kernels).
"""
import functools
from dataclasses import dataclass

import numpy as np

from ._gather import gather_steps, packed_rows, take_rows
from ._kernels import _dense, _rnn
from ._kernels import _optimizers as _updates
from ._layers import ACTIVATION_CODES, Dense, Layer, LayerWorkspace, ParamSpec
from ._memory import aligned_empty
from ._network import (Network, _check_weight_sum, borrow_workspace, output_loss_delta,
                       return_workspace)
from ._threads import blas_single_thread_for_kernels


class Ragged:
    """Rows grouped into consecutive variable-length groups.

    Parameters
    ----------
    data : ndarray of shape (n_rows, n_columns)
        Every group's rows, one group after the other.
    lengths : ndarray of int of shape (n_groups,)
        Rows of each group (all positive).
    """

    def __init__(self, data, lengths):
        self.data = data
        self.lengths = np.asarray(lengths, dtype=np.intp)
        self.starts = np.zeros(len(self.lengths), dtype=np.intp)
        np.cumsum(self.lengths[:-1], out=self.starts[1:])

    def __len__(self):
        return len(self.lengths)

    @property
    def shape(self):
        return (len(self),) + self.data.shape[1:]

    @property
    def dtype(self):
        return self.data.dtype

    def rows_of(self, groups):
        """Row indices of the given groups, concatenated in that order."""
        lengths = self.lengths[groups]
        first = np.repeat(self.starts[groups], lengths)
        within = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return first + within

    def subset(self, groups):
        return Ragged(self.data[self.rows_of(groups)], self.lengths[groups])

    def astype(self, dtype, copy=False):
        if not copy and self.data.dtype == dtype:
            return self  # as ndarray.astype(copy=False): nothing to cast
        return Ragged(self.data.astype(dtype, copy=copy), self.lengths)

    def split(self):
        """The groups as a list of arrays (views)."""
        # slices, not np.split: it cost 3 us a group (2 ms for 640 sequences)
        data = self.data
        return [data[start:start + n] for start, n in zip(self.starts.tolist(),
                                                          self.lengths.tolist())]

    @functools.cached_property
    def uniform_length(self):
        """Rows of every group when all groups have as many (and there is
        one), else 0."""
        if len(self.lengths) and self.lengths[0] * len(self.lengths) == self.data.shape[0] \
                and bool((self.lengths == self.lengths[0]).all()):
            return int(self.lengths[0])
        return 0

    def max_rows(self, n_groups):
        """Most rows any n_groups groups can hold."""
        return int(np.sort(self.lengths)[::-1][:n_groups].sum())

    def batch(self, groups, targets, sample_weight, buffers=None, n_threads=1):
        """Pack groups into a :class:`PackedBatch` with its targets and weights
        (into ``buffers`` from :meth:`batch_buffers` when given, on
        ``n_threads``)."""
        return pack(self, groups, targets, sample_weight, buffers, n_threads)

    def batch_buffers(self, n_groups, targets=None, sample_weight=None):
        """Arrays that :meth:`batch` can pack any n_groups groups into, so a
        training loop allocates nothing per batch."""
        return pack_buffers(self, n_groups, targets, sample_weight)


class ClassCodes(Ragged):
    """Targets of a softmax cross-entropy given as the class of each row
    (int32 codes in [0, n_classes)) in place of its one-hot row, which the
    loss reads to the same bits (``_losses.softmax_ce_classes``): a fit then
    builds no one-hot matrix of every step (n_classes floats a step) and
    packing gathers 4 bytes a row. ``shape`` and ``astype`` are those of the
    one-hot rows they stand for."""

    def __init__(self, codes, lengths, n_classes):
        super().__init__(codes, lengths)
        self.n_classes = n_classes

    @property
    def shape(self):
        return (len(self), self.n_classes)

    def subset(self, groups):
        return ClassCodes(self.data[self.rows_of(groups)], self.lengths[groups], self.n_classes)

    def astype(self, dtype, copy=False):
        # the codes of one-hot rows of any dtype
        return ClassCodes(self.data.copy(), self.lengths, self.n_classes) if copy else self


class StepWeights(Ragged):
    """Sample weights of one row per step, grouped by sequence (class weights
    of per-step targets), with each sequence's own weight: the mean of its
    steps' weights, which the L2 term is normalized by.

    Indexing with an array of sequences selects them (as the solver selects
    the per-sequence weights of a validation split).
    """

    def __init__(self, data, lengths, sequence_weights=None):
        super().__init__(data, lengths)
        if sequence_weights is None:
            sequence_weights = (np.add.reduceat(data, self.starts, dtype=np.float64)
                                / self.lengths)
        self.sequence_weights = sequence_weights

    def subset(self, groups):
        return StepWeights(self.data[self.rows_of(groups)], self.lengths[groups],
                           self.sequence_weights[groups])

    __getitem__ = subset


class PackedBatch:
    """One packed mini-batch of sequences.

    Attributes
    ----------
    data : ndarray of shape (n_rows, n_features)
        Step-major rows: the rows of step t are the first ``batch_sizes[t]``
        sequences (sorted by decreasing length).
    batch_sizes : ndarray of intp of shape (n_steps,)
    order : ndarray of shape (n_sequences,)
        Position in the original group list of each sorted sequence.
    last_rows : ndarray of shape (n_sequences,)
        Packed row of each sorted sequence's last step.
    step_rows : ndarray of shape (n_rows,)
        For each packed row, its row in the original concatenated layout
        (given as an array, or a function that makes it when first read:
        training never reads it).
    sequence_weight_sum : float
        Sum of the sequences' weights (their count when unweighted).
    """

    def __init__(self, data, batch_sizes, order, last_rows, step_rows, sequence_weight_sum):
        self.data = data
        self.batch_sizes = batch_sizes
        self.order = order
        self.last_rows = last_rows
        self._step_rows = step_rows
        self.sequence_weight_sum = sequence_weight_sum

    @property
    def step_rows(self):
        if callable(self._step_rows):
            self._step_rows = self._step_rows()
        return self._step_rows

    @property
    def shape(self):
        return (len(self.order),) + self.data.shape[1:]


def pack_uniform(X, start, stop, buffer=None):
    """:func:`pack` of sequences ``start:stop`` of X when every sequence of X
    has the same number of steps, without its sorting and index arithmetic:
    the same rows and ``batch_sizes``, for prediction (no targets, no
    weights). ``last_rows`` is a slice (the last step's rows are the last
    block), ``order`` and ``step_rows`` are left out (the order is X's).
    ``buffer``, of at least that many rows in X's dtype, receives the packed
    rows of more than one sequence; one sequence's are X's own."""
    n_steps = int(X.lengths[0])
    n_seq = stop - start
    rows = X.data[start * n_steps:stop * n_steps]
    if n_seq > 1:  # step-major: the rows of step t are X[start:stop, t]
        packed = np.empty((n_steps * n_seq,) + X.data.shape[1:], dtype=X.data.dtype) \
            if buffer is None else buffer[:n_steps * n_seq]
        np.copyto(packed.reshape(n_steps, n_seq, -1),
                  rows.reshape(n_seq, n_steps, -1).transpose(1, 0, 2))
        rows = packed
    batch_sizes = np.full(n_steps, n_seq, dtype=np.intp)
    last_rows = slice((n_steps - 1) * n_seq, n_steps * n_seq)
    return PackedBatch(rows, batch_sizes, None, last_rows, None, float(n_seq))


def _same_lengths(a, b):
    """Whether Raggeds a and b group their rows alike. The estimators build
    per-step targets and weights on X's own lengths array: then no
    comparison of every sequence's length (which would run per batch)."""
    return a.lengths is b.lengths or np.array_equal(a.lengths, b.lengths)


def _per_step(X, targets):
    """Whether targets has one row per step of X (else one per sequence)."""
    return targets.data.shape[0] == X.data.shape[0] and _same_lengths(targets, X)


def pack_buffers(X, n_groups, targets=None, sample_weight=None):
    """Output arrays for :func:`pack` of at most n_groups sequences of X.

    Packing a batch gathers megabytes (100 steps x 64 sequences x 65
    features, twice with per-step targets); fresh arrays of that size are
    mapped anew each time, and their page faults cost more than the copy.
    """
    rows = X.max_rows(n_groups)
    buffers = {"data": aligned_empty((rows,) + X.data.shape[1:], X.data.dtype)}
    if targets is not None:
        target_rows = rows if _per_step(X, targets) else n_groups
        buffers["targets"] = aligned_empty((target_rows,) + targets.data.shape[1:],
                                           targets.data.dtype)
        if sample_weight is not None:
            buffers["weights"] = aligned_empty(target_rows, sample_weight.dtype)
    return buffers


def _gather(A, idx, buffers, key):
    """A[idx] as a new array (on a cache line, as the buffers are), or into
    buffers[key] when buffers are given. The rows idx are in range, as pack
    builds them (take_rows clips, it does not check)."""
    if buffers is None:
        return take_rows(A, idx, aligned_empty((len(idx),) + A.shape[1:], A.dtype))
    return take_rows(A, idx, buffers[key][: len(idx)])


def pack(X, groups, targets=None, sample_weight=None, buffers=None, n_threads=1):
    """Pack sequences ``groups`` of X (and the matching targets) step-major.

    targets is a Ragged with one row per step (sequence output) or one row per
    sequence (last-step output); sample_weight holds one weight per sequence,
    or is a :class:`StepWeights` of one per step (with per-step targets).
    buffers, from :func:`pack_buffers`, receives the packed arrays (then
    valid until the next call with the same buffers); with per-step
    targets, they are gathered on ``n_threads`` of fastbp's team.
    Returns (PackedBatch, packed targets or None, packed weights or None).
    """
    groups = np.asarray(groups, dtype=np.intp)
    n_seq = len(groups)
    if X.uniform_length:
        # the same as below, where every sequence has n_steps steps: the
        # order is the groups' and row t * n_seq + b is step t of sequence b
        n_steps = X.uniform_length
        seqs, order = groups, np.arange(n_seq)
        sorted_lengths = np.full(n_seq, n_steps, dtype=np.intp)
        batch_sizes = np.full(n_steps, n_seq, dtype=np.intp)
        last_rows = (n_steps - 1) * n_seq + order
    else:
        lengths = X.lengths[groups]
        order = np.argsort(-lengths, kind="stable")
        seqs, sorted_lengths = groups[order], lengths[order]
        n_steps = int(sorted_lengths[0])
        counts = np.bincount(sorted_lengths, minlength=n_steps + 1)
        batch_sizes = (n_seq - np.cumsum(counts)[:n_steps]).astype(np.intp)
        offsets = np.cumsum(batch_sizes) - batch_sizes
        last_rows = offsets[sorted_lengths - 1] + np.arange(n_seq)
    row_sources = None

    def packed_sources():
        """(sorted sequence, source row) of each packed row, made when needed."""
        nonlocal row_sources
        if row_sources is None:
            row_sources = packed_rows(X.starts[seqs], batch_sizes)
        return row_sources

    step_weights = isinstance(sample_weight, StepWeights)
    if sample_weight is None:
        weight_sum = float(n_seq)
    elif step_weights:
        weight_sum = float(sample_weight.sequence_weights[seqs].sum())
    else:
        weight_sum = float(sample_weight[seqs].sum())
    per_step = targets is not None and _per_step(X, targets)
    if step_weights and targets is not None and not per_step:
        raise ValueError("Per-step weights need one target per step.")
    if step_weights and not _same_lengths(sample_weight, X):
        # the steps' weights are gathered with X's rows
        raise ValueError("Per-step weights need the lengths of the sequences they weigh.")
    Y = sw = None
    if per_step and buffers is not None:
        # per-step targets (and weights) have X's lengths, so X's rows: one
        # gather of all on the team, each sequence's steps read as a run
        # (in the packed rows' order they were scattered misses; NumPy's
        # take in that order was the faster on one thread)
        arrays = [X.data, targets.data] + ([sample_weight.data] if step_weights else [])
        outs = [buffers["data"], buffers["targets"]] + ([buffers["weights"]] if step_weights
                                                        else [])
        data, Y, *rest = gather_steps(arrays, X.starts[seqs], sorted_lengths, batch_sizes,
                                      outs, n_threads)
        if step_weights:
            sw = rest[0]
    else:
        src = packed_sources()[1]
        data = _gather(X.data, src, buffers, "data")
        if per_step:
            Y = _gather(targets.data, src, buffers, "targets")
            if step_weights:
                sw = _gather(sample_weight.data, src, buffers, "weights")
        elif targets is not None:  # one target per sequence, in sorted order
            Y = _gather(targets.data, targets.starts[seqs], buffers, "targets")
    if targets is not None and sample_weight is not None and not step_weights:
        sw = _gather(sample_weight, seqs[packed_sources()[0]] if per_step else seqs, buffers,
                     "weights")
    batch = PackedBatch(data, batch_sizes, order, last_rows, lambda: packed_sources()[1],
                        weight_sum)
    return batch, Y, sw


class RNNCell(Layer):
    """Parameters of the recurrence z_t = x_t W_ih + h_{t-1} W_hh + b_h."""

    # BPTT applies f'(z_t) itself: the output layer hands dL/dh_t down.
    derivative_applied_above = False

    def __init__(self, n_features, hidden_size, *, nonlinearity):
        self.n_in, self.n_out = int(n_features), int(hidden_size)
        self.activation = nonlinearity
        self.param_specs = (
            ParamSpec("weight_ih", (self.n_in, self.n_out), True),
            ParamSpec("weight_hh", (self.n_out, self.n_out), True),
            ParamSpec("bias_h", (self.n_out,), False),
        )
        self.n_trainable = (self.n_in + self.n_out + 1) * self.n_out
        self._act = ACTIVATION_CODES[nonlinearity]


@dataclass(slots=True)
class RNNWorkspace:
    """Buffers of an :class:`RNNNetwork` for packed batches of up to as many
    rows as they have."""

    H: np.ndarray  # hidden states h_t, every packed row
    out: LayerWorkspace  # the output layer's
    dH: np.ndarray | None = None  # dL/dz_t (training)
    delta_out: np.ndarray | None = None  # dL/dlogits (training)
    data: np.ndarray | None = None  # the packed input (prediction)


class RNNNetwork(Network):
    """A vanilla RNN and its output layer, over packed batches.

    Parameters
    ----------
    n_features, hidden_size, n_outputs : int
    nonlinearity : str
    loss : str
        As for :class:`Network`.
    last_step : bool
        Only the last step of each sequence feeds the output layer.
    bptt_steps : int
        Truncation window of BPTT; 0 is full BPTT.
    dtype : numpy dtype
    theta : ndarray, default=None
    """

    def __init__(self, n_features, hidden_size, n_outputs, *, nonlinearity, loss, last_step,
                 bptt_steps, dtype, theta=None):
        cell = RNNCell(n_features, hidden_size, nonlinearity=nonlinearity)
        out = Dense(hidden_size, n_outputs, activation="identity", weight_name="weight_out",
                    bias_name="bias_out")
        super().__init__([cell, out], loss, dtype, theta=theta)
        self.last_step = bool(last_step)
        self.bptt_steps = int(bptt_steps)

    @staticmethod
    def batch_rows(batch):
        """Rows (steps) of a :class:`PackedBatch`, as :meth:`workspace` counts them."""
        return batch.data.shape[0]

    def workspace(self, n_rows, backward=True):
        """Buffers of a packed batch of up to ``n_rows`` rows; without
        ``backward`` (prediction), those of the forward pass and the packed
        input (``data``)."""
        cell, out = self.layers

        def empty(width):
            return aligned_empty((n_rows, width), self.dtype)
        ws = RNNWorkspace(H=empty(cell.n_out),
                          out=out.workspace(n_rows, self.dtype, want_delta_in=backward))
        if backward:
            ws.dH, ws.delta_out = empty(cell.n_out), empty(self.n_outputs)
        else:
            ws.data = empty(cell.n_in)
        return ws

    def _hidden(self, batch, ws, n_threads):
        cell = self.layers[0]
        H = ws.H[: batch.data.shape[0]]
        # input projection of every step at once, then the time loop in place
        _dense.dense_forward(batch.data, cell.params["weight_ih"], cell.params["bias_h"],
                             H, 0, n_threads)
        _rnn.rnn_forward(H, cell.params["weight_hh"], batch.batch_sizes, H, cell._act,
                         n_threads)
        return H

    def forward(self, batch, ws, n_threads):
        H = self._hidden(batch, ws, n_threads)
        H_out = H[batch.last_rows] if self.last_step else H
        logits = self.layers[1].forward(H_out, ws.out, n_threads)
        return [batch.data, H, H_out, logits]

    def predict(self, X, n_threads, logits=False, batch_sequences=512):
        """Outputs for a Ragged X, in X's own row layout (one row per step,
        or per sequence with last-step output)."""
        return self._forward_batches(X, n_threads, self.n_outputs,
                                     self._outputs(logits, n_threads), batch_sequences)

    def features(self, X, n_threads, batch_sequences=512):
        """The hidden states the output layer reads for a Ragged X (h_t of
        every step, or of each sequence's last step), laid out as
        :meth:`predict`'s rows."""
        return self._forward_batches(X, n_threads, self.layers[1].n_in,
                                     lambda activations: activations[2], batch_sequences)

    def _forward_batches(self, X, n_threads, width, pick, batch_sequences):
        """Run the forward pass over X, ``batch_sequences`` sequences at a
        time, in a workspace lent to this call alone; return
        ``pick(activations)``'s rows in X's order."""
        n = len(X)
        n_out_rows = n if self.last_step else X.data.shape[0]
        out = np.empty((n_out_rows, width), dtype=self.dtype)
        n_steps = X.uniform_length
        uniform = n_steps > 0
        most = min(n, batch_sequences)
        capacity, ws = borrow_workspace(
            self, n_steps * most if uniform else X.max_rows(most))
        data = ws.data if X.data.dtype == self.dtype else None
        try:
            with blas_single_thread_for_kernels():
                for start in range(0, n, batch_sequences):
                    stop = min(start + batch_sequences, n)
                    if uniform:
                        batch = pack_uniform(X, start, stop, data)
                    else:
                        batch, _, _ = pack(X, np.arange(start, stop),
                                           buffers=None if data is None else {"data": data})
                    rows = pick(self.forward(batch, ws, n_threads))
                    if uniform and self.last_step:
                        out[start:stop] = rows
                    elif uniform:  # packed step-major, out sequence-major
                        out.reshape(n, n_steps, width)[start:stop] = \
                            rows.reshape(n_steps, stop - start, width).transpose(1, 0, 2)
                    elif self.last_step:
                        out[start + batch.order] = rows
                    else:
                        out[batch.step_rows] = rows
        finally:
            return_workspace(self, capacity, ws)
        return out

    def loss_and_grad(self, batch, Y, sample_weight, alpha, ws, n_threads, record=None):
        """Forward pass and BPTT on one packed batch; fills ``self.grad``.

        The data loss is the (weighted) mean over the predicted rows (every
        step, or each sequence's last); the L2 term is alpha * ||W||² / (2 *
        the batch's ``sequence_weight_sum``: its number of sequences when
        unweighted), over weight_ih, weight_hh and weight_out.
        """
        cell, out = self.layers
        x, H, H_out, logits = self.forward(batch, ws, n_threads)
        n_pred = logits.shape[0]
        sw_sum = float(n_pred) if sample_weight is None else float(sample_weight.sum())
        if n_pred:
            _check_weight_sum(sw_sum)
        delta_out = ws.delta_out[:n_pred]
        data_loss = output_loss_delta(self.loss, logits, Y, sample_weight, delta_out,
                                      1.0 / sw_sum, n_threads)
        dH_out = out.backward(H_out, logits, delta_out, ws.out, True, n_threads)
        if self.last_step:
            dH = ws.dH[: H.shape[0]]
            dH[...] = 0
            dH[batch.last_rows] = dH_out
        else:
            dH = dH_out
        _rnn.rnn_backward(H, cell.params["weight_hh"], batch.batch_sizes, dH, dH, cell._act,
                          n_threads, self.bptt_steps)
        _dense.dense_backward(x, cell.params["weight_ih"], dH, cell.grads["weight_ih"],
                              cell.grads["bias_h"], None, 0, n_threads)
        _rnn.rnn_grad_hh(H, dH, batch.batch_sizes, cell.grads["weight_hh"], n_threads)
        loss = data_loss / sw_sum
        if alpha > 0:
            nr = self.n_regularized
            seq_sum = batch.sequence_weight_sum
            sumsq = _updates.l2_penalty(self.theta[:nr], self.grad[:nr], alpha / seq_sum,
                                      n_threads)
            loss += 0.5 * alpha * sumsq / seq_sum
        if record is not None:
            # δ_t of every step (rows of the sorted sequences still running),
            # then the output layer's δ.
            bounds = np.cumsum(batch.batch_sizes)[:-1]
            record.extend(block.copy() for block in np.split(dH, bounds))
            record.append(delta_out.copy())
        return loss
