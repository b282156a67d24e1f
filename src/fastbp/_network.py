"""A network: layers bound to one flat parameter vector, with its loss.

theta = [every regularized parameter..., every other parameter...]
grad  = its twin.

Regularized weights come first so that the L2 term is one fused pass over
``theta[:n_regularized]``; for an MLP this is also scikit-learn's packing
(coefs, then intercepts).
"""
import copy
import threading
import weakref
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.utils import gen_batches

from ._images import PaddedImages
from ._kernels import _losses
from ._kernels import _optimizers as _updates
from ._kernels._calls import run_calls
from ._kernels._conv import stack_calls
from ._layers import as_array
from ._memory import aligned_copy, aligned_empty, aligned_zeros, starts_a_line
from ._threads import blas_single_thread_for_kernels

LOSS_CODES = _losses.LOSS_CODES

# Prediction workspaces, one kept per network and row capacity (a power of
# two), so that a predict allocates nothing but its output: each is lent to
# one call at a time, which keeps concurrent predicts on one model apart.
# Kept beside the network rather than in it, so that they are not pickled;
# one larger than _KEPT_BYTES is not kept (its page faults cost little next
# to the arithmetic that fills it).
_PREDICTION_WORKSPACES: "weakref.WeakKeyDictionary[object, dict]" = weakref.WeakKeyDictionary()
_workspaces_lock = threading.Lock()
_KEPT_BYTES = 16 << 20
# The training workspace of a network's last fit, (rows, workspace), for
# its next fit of as many rows a batch: partial_fit fits one batch a call,
# and a fresh workspace's page faults and binding cost 1-3 ms of each (a
# LeNet-5 batch of 32 computes in about 0.7 ms). Lent to one fit at a time.
_TRAINING_WORKSPACES: "weakref.WeakKeyDictionary[object, tuple]" = weakref.WeakKeyDictionary()

# Rows of one chunk of the forward pass of predict: 1024, or more (up to
# 8192) while twice the chunk's workspace stays within _CHUNK_BYTES (so the
# workspace, at most _KEPT_BYTES, is kept for the next call). The kernels
# cut a GEMM into at most 16 blocks, and each block packs the layer's whole
# weight matrix: larger chunks pack it fewer times (10,000 rows through a
# 784-256-128-10 MLP took 24 ms in chunks of 2048 rows, 21 ms in chunks of
# 8192, on 2 threads; the chunk size changes no result).
_CHUNK_ROWS = 1024
_MAX_CHUNK_ROWS = 8192
_CHUNK_BYTES = 2 * _KEPT_BYTES


@dataclass(slots=True)
class BoundPasses:
    """The forward and backward passes of one batch, bound to its arrays
    (:meth:`Network.loss_and_grad`): each run reads the contents of those
    arrays when it runs, so the passes serve every batch gathered into the
    same C-contiguous input buffer."""

    X: Any  # the input they read: kept, so that it is recognized by identity
    binding: object  # the network's binding of its layers to theta and grad
    n_threads: int
    activations: list  # [X, A_1, ..., logits], as the layers hand them on
    # the forward runs, first layer first, and the backward runs, last layer
    # first, each run of maps layers that hand their maps on side by side as
    # one call (_conv.stack_calls), for _calls.run_calls
    forward: list
    backward: list  # (backward run, delta handed down or None) per layer, last layer first
    backward_runs: list


@dataclass(slots=True)
class Workspace:
    """Every buffer of a batch of up to ``n`` rows (:meth:`Network.workspace`)."""

    layers: list  # a LayerWorkspace per layer
    delta_out: np.ndarray | None = None  # dL/dlogits (None: prediction)
    # The passes last bound to these buffers in training, for the next batch
    # on the same input array (a shuffled epoch gathers its full batches into
    # one buffer; a last, shorter batch or a slice of X binds its own).
    passes: BoundPasses | None = None


@dataclass(slots=True)
class EpochPlan:
    """What :meth:`Network.run_epoch` needs through one fit, made once per
    fit by :meth:`Network.plan_epochs` (so that epochs allocate nothing)."""

    source: Any  # the training batch source (_batches)
    batch_size: int
    gather: bool  # take each batch's rows into buffers (else slice them in place)
    alpha: float  # L2 strength
    clip_grad_norm: float | None
    n_threads: int
    ws: Any  # the network's workspace for batch_size samples
    ws_rows: int  # its rows (a batch of sequences has a row per step)
    buffers: tuple  # what the source gathers batches into


def _clip_gradient(grad, max_norm):
    """Scale grad in place so that its global L2 norm is at most max_norm."""
    norm = float(np.sqrt(np.dot(grad, grad)))
    if norm > max_norm:
        grad *= max_norm / (norm + 1e-12)


def output_loss_delta(loss, logits, Y, sample_weight, delta, scale, n_threads):
    """``_losses.output_loss_delta`` of the loss named ``loss``, for targets Y
    given as rows or, for the softmax cross-entropy, as the class of each
    row (1-D int32, :class:`~fastbp._sequences.ClassCodes`' rows)."""
    if Y.ndim == 1:
        if loss != "softmax_ce":
            raise ValueError(f"class codes are targets of 'softmax_ce', not {loss!r}")
        return _losses.softmax_ce_classes(logits, Y, sample_weight, delta, scale, n_threads)
    return _losses.output_loss_delta(logits, Y, sample_weight, delta, LOSS_CODES[loss], scale,
                                     n_threads)


def _workspace_bytes(ws):
    if isinstance(ws, np.ndarray):
        return ws.nbytes
    if is_dataclass(ws):
        ws = [getattr(ws, f.name) for f in fields(ws)]
    elif not isinstance(ws, (list, tuple)):
        return 0
    return sum(_workspace_bytes(item) for item in ws)


def borrow_workspace(net, rows):
    """A prediction workspace of ``net`` (``net.workspace(capacity,
    backward=False)``) with room for at least ``rows`` rows, for this caller
    alone until :func:`return_workspace`; returns (capacity, workspace),
    capacity None for one too large to keep."""
    capacity = 1 if rows <= 1 else 1 << (int(rows) - 1).bit_length()
    with _workspaces_lock:
        kept = _PREDICTION_WORKSPACES.get(net)
        ws = None if kept is None else kept.pop(capacity, None)
    if ws is None:
        ws = net.workspace(capacity, backward=False)
        if _workspace_bytes(ws) > _KEPT_BYTES:
            capacity = None
    return capacity, ws


def training_workspace(net, rows):
    """A training workspace of ``net`` for batches of ``rows`` rows
    (``net.workspace(rows)``): the one its last fit gave back with
    :func:`keep_training_workspace` when that has as many rows, else a new
    one. The caller has it alone."""
    with _workspaces_lock:
        kept = _TRAINING_WORKSPACES.pop(net, None)
    if kept is not None and kept[0] == rows:
        return kept[1]
    return net.workspace(rows)


def keep_training_workspace(net, rows, ws):
    """Keep the workspace of a fit that has ended for the network's next fit
    (one of at most _KEPT_BYTES; it replaces any kept before)."""
    if _workspace_bytes(ws) <= _KEPT_BYTES:
        with _workspaces_lock:
            _TRAINING_WORKSPACES[net] = (rows, ws)


def return_workspace(net, capacity, ws):
    """Keep a workspace from :func:`borrow_workspace` for the next predict."""
    if capacity is None:
        return
    with _workspaces_lock:
        kept = _PREDICTION_WORKSPACES.get(net)
        if kept is None:
            kept = _PREDICTION_WORKSPACES[net] = {}
        kept[capacity] = ws


class Network:
    """Sequential layers trained on a fused output loss.

    Parameters
    ----------
    layers : list of Layer
        First layer first; the last one is linear (identity activation), its
        outputs are the logits fed to the loss.
    loss : {'softmax_ce', 'logistic_ce', 'squared', 'squared_logistic', 'poisson'}
        Output activation and loss, fused.
    dtype : numpy dtype
        float32 or float64: the dtype of theta, of every buffer and of the kernels.
    theta : ndarray of shape (n_params,), default=None
        Parameters to adopt (e.g. from a model file). Its size is checked
        against the layers before anything is allocated.
    """

    def __init__(self, layers, loss, dtype, theta=None):
        self.layers = list(layers)
        self.loss = loss
        self.dtype = np.dtype(dtype)
        self._link()
        specs = [spec for layer in self.layers for spec in layer.param_specs]
        ordered = ([s for s in specs if s.regularized]
                   + [s for s in specs if not s.regularized])
        self._slices = {}
        offset = 0
        for spec in ordered:
            if spec.name in self._slices:
                raise ValueError(f"duplicate parameter name {spec.name!r}")
            size = int(np.prod(spec.shape))
            self._slices[spec.name] = (offset, offset + size, tuple(spec.shape))
            offset += size
        self.n_regularized = sum(int(np.prod(s.shape)) for s in ordered if s.regularized)
        self._order = [s.name for s in specs]
        if theta is None:
            self.theta = aligned_zeros(offset, self.dtype)
        else:
            if theta.ndim != 1 or theta.size != offset or theta.dtype != self.dtype:
                raise ValueError(
                    f"theta of shape {theta.shape} and dtype {theta.dtype} does not fit "
                    f"this network, which has {offset} {self.dtype} parameters."
                )
            self.theta = aligned_copy(theta)
        self.grad = aligned_zeros(offset, self.dtype)
        self._bind()

    def _link(self):
        # Each layer applies the derivative of the activation below it, and
        # neighbours that can pass their maps on side by side.
        for below, layer in zip([None] + self.layers[:-1], self.layers):
            layer.follow(below)

    # ------------------------------------------------------------------ params
    def _views(self, flat):
        return {
            name: flat[start:stop].reshape(shape)
            for name, (start, stop, shape) in self._slices.items()
        }

    def _bind(self):
        self._binding = object()  # bound passes made before this do not apply
        params = self._views(self.theta)
        grads = self._views(self.grad)
        for layer in self.layers:
            names = [spec.name for spec in layer.param_specs]
            layer.bind({k: params[k] for k in names}, {k: grads[k] for k in names})

    def parameters(self):
        """Return a dict name -> live view of theta, in layer order."""
        views = self._views(self.theta)
        return {name: views[name] for name in self._order}

    def gradients(self):
        """Return a dict name -> live view of grad, in layer order."""
        views = self._views(self.grad)
        return {name: views[name] for name in self._order}

    def __getstate__(self):
        state = self.__dict__.copy()
        state["grad"] = None  # scratch; rebuilt on load
        state.pop("_binding", None)  # made anew by _bind on load
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if not starts_a_line(self.theta):  # unpickled; a shallow copy shares it
            self.theta = aligned_copy(self.theta)
        self.grad = aligned_zeros(self.theta.shape, self.dtype)
        self._link()  # a model saved before the layout side by side links now
        self._bind()

    def astype(self, dtype):
        """Return a copy of the network whose parameters are cast to ``dtype``."""
        new = copy.deepcopy(self)
        new.dtype = np.dtype(dtype)
        new.theta = aligned_copy(self.theta, new.dtype)
        new.grad = aligned_zeros(new.theta.shape, new.dtype)
        new._bind()
        return new

    @property
    def n_outputs(self):
        return self.layers[-1].n_out

    # ------------------------------------------------------------- workspace
    def workspace(self, n, backward=True):
        """Allocate every buffer a batch of up to ``n`` rows needs (once per fit);
        ``backward=False`` leaves out the delta buffers (prediction)."""
        layers = [
            layer.workspace(n, self.dtype, want_delta_in=backward and i > 0)
            for i, layer in enumerate(self.layers)
        ]
        delta_out = aligned_empty((n, self.n_outputs), self.dtype) if backward else None
        return Workspace(layers, delta_out)

    # --------------------------------------------------------------- passes
    def forward(self, X, ws, n_threads, every_layer=True):
        """Run every layer; return the list [X, A_1, ..., logits].

        With ``every_layer=False`` the maps that convolution and pooling
        layers hand on to the next one inside a stack stay in scratch
        (``_conv.stack_calls``' local links) and their buffers may be left
        unwritten: for callers that read only the last two entries (a stack
        ends before the dense layers).
        """
        activations, runs = self._bind_forward(X, ws, n_threads, once=True)
        run_calls(stack_calls(runs, local_links=not every_layer))
        return activations

    def _bind_forward(self, X, ws, n_threads, once=False):
        """(activations [X, A_1, ..., logits], the layers' forward runs that
        fill them: runs made ``once`` or bound, see _layers)."""
        activations, runs = [X], []
        for layer, layer_ws in zip(self.layers, ws.layers):
            run, out = layer.bind_forward(activations[-1], layer_ws, n_threads, once)
            runs.append(run)
            activations.append(out)
        return activations, runs

    def _bound_passes(self, X, ws, n_threads):
        """The passes of a training batch on X (:class:`BoundPasses`): those
        bound last to ``ws`` when they read this very X, else new ones, kept
        in ``ws`` for the next batch where X is C-contiguous (a layer may bind
        a reshaped copy of any other X, which would go stale)."""
        passes = ws.passes
        if (passes is not None and passes.X is X and passes.binding is self._binding
                and passes.n_threads == n_threads):
            return passes
        activations, forward = self._bind_forward(X, ws, n_threads)
        n = X.shape[0]
        delta = ws.delta_out if ws.delta_out.shape[0] == n else ws.delta_out[:n]
        backward = []
        for i in range(len(self.layers) - 1, -1, -1):
            run, delta = self.layers[i].bind_backward(
                activations[i], activations[i + 1], delta, ws.layers[i], i > 0, n_threads)
            backward.append((run, delta))
        passes = BoundPasses(X, self._binding, n_threads, activations, stack_calls(forward),
                             backward, stack_calls([run for run, _ in backward], local_links=True))
        ws.passes = passes if X.flags.c_contiguous else None
        return passes

    def predict(self, X, n_threads, logits=False, batch_rows=None):
        """Return the outputs (or, with ``logits=True``, the logits) for X.

        X is processed in chunks of ``batch_rows`` (by default 1024 rows, or
        more for narrow networks; a sparse X is densified chunk by chunk of
        1024, and a PaddedImages padded chunk by chunk), in a workspace lent
        to this call alone, so that concurrent calls on one model stay
        independent.
        """
        return self._forward_chunks(X, n_threads, self.n_outputs,
                                    self._outputs(logits, n_threads), batch_rows)

    @staticmethod
    def batch_rows(batch):
        """Rows of one batch of :meth:`loss_and_grad`'s input, as
        :meth:`workspace` counts them."""
        return batch.shape[0]

    def _outputs(self, logits, n_threads):
        """What predict keeps of a forward pass's activations: the last
        layer's, through the output activation unless ``logits``."""
        code = LOSS_CODES[self.loss]

        def outputs(activations):
            z = activations[-1]
            if not logits:
                _losses.output_activate(z, code, n_threads)
            return z
        return outputs

    def features(self, X, n_threads, batch_rows=None):
        """Return what the output layer reads for X: the last hidden layer's
        activations (the input itself when there is no hidden layer), by the
        same forward pass as :meth:`predict`."""
        return self._forward_chunks(X, n_threads, self.layers[-1].n_in,
                                    lambda activations: activations[-2], batch_rows)

    def _chunk_rows(self, X):
        """Rows of each chunk of the forward pass over X (see _CHUNK_ROWS):
        a function of the network and of X's shape only, like every split
        of the work, so that results do not depend on anything else."""
        if X.shape[0] <= _CHUNK_ROWS or sp.issparse(X):
            return _CHUNK_ROWS
        row_bytes = _workspace_bytes(self.workspace(1, backward=False))
        rows = _CHUNK_ROWS
        while rows < _MAX_CHUNK_ROWS and 2 * rows * row_bytes <= _CHUNK_BYTES:
            rows *= 2
        return rows

    def _forward_chunks(self, X, n_threads, width, pick, batch_rows):
        """Run the forward pass over X in chunks of ``batch_rows`` (None: see
        :meth:`_chunk_rows`); return the (n_samples, width) array of
        ``pick(activations)`` of every chunk."""
        n = X.shape[0]
        if batch_rows is None:
            batch_rows = self._chunk_rows(X)
        out = np.empty((n, width), dtype=self.dtype)
        # images to pad: one zeroed buffer, padded into chunk by chunk
        padded = (aligned_zeros((min(n, batch_rows),) + X.shape[1:], self.dtype)
                  if isinstance(X, PaddedImages) else None)
        capacity, ws = borrow_workspace(self, min(n, batch_rows))
        try:
            with blas_single_thread_for_kernels():
                for start in range(0, n, batch_rows):
                    stop = min(start + batch_rows, n)
                    # (a sparse X is sliced even whole: into CSR, as always)
                    chunk = X if stop - start == n and not sp.issparse(X) else X[start:stop]
                    if sp.issparse(chunk):
                        chunk = np.ascontiguousarray(chunk.toarray(), dtype=self.dtype)
                    elif padded is not None:
                        chunk = chunk.padded_into(padded[:stop - start], n_threads)
                    # pick reads the logits or the last hidden layer's outputs
                    activations = self.forward(chunk, ws, n_threads, every_layer=False)
                    out[start:stop] = pick(activations).reshape(stop - start, width)
        finally:
            return_workspace(self, capacity, ws)
        return out

    def loss_and_grad(self, X, Y, sample_weight, alpha, ws, n_threads, record=None):
        """Forward and backward pass on one batch; fills ``self.grad``.

        Parameters
        ----------
        X : ndarray of shape (n_samples, ...)
            C-contiguous input in the network's dtype.
        Y : ndarray of shape (n_samples, n_outputs)
            Targets in the network's dtype.
        sample_weight : ndarray of shape (n_samples,) or None
        alpha : float
            L2 strength; the loss is mean data loss + alpha * ||W||² / (2 * sum(w)).
        ws : Workspace
            From :meth:`workspace`, with at least n_samples rows.
        n_threads : int
        record : list or None
            When a list, the deltas dL/dz of every layer are appended to it
            (copies, first layer first).

        Returns
        -------
        loss : float
        """
        n = X.shape[0]
        sw_sum = float(n) if sample_weight is None else float(sample_weight.sum())
        if n > 0:
            _check_weight_sum(sw_sum)
        passes = self._bound_passes(X, ws, n_threads)
        run_calls(passes.forward)
        delta = ws.delta_out
        delta = delta if delta.shape[0] == n else delta[:n]
        data_loss = _losses.output_loss_delta(
            passes.activations[-1], Y, sample_weight, delta, LOSS_CODES[self.loss],
            1.0 / sw_sum, n_threads,
        )
        if record is None:
            run_calls(passes.backward_runs)
        else:
            deltas = [delta.copy()]
            for run, delta in passes.backward:
                run()
                if delta is not None:
                    deltas.append(as_array(delta))
        loss = data_loss / sw_sum
        if alpha > 0 and self.n_regularized:
            nr = self.n_regularized
            sumsq = _updates.l2_penalty(
                self.theta[:nr], self.grad[:nr], alpha / sw_sum, n_threads
            )
            loss += 0.5 * alpha * sumsq / sw_sum
        if record is not None:
            record.extend(reversed(deltas))
        return loss

    # ------------------------------------------------------------- training
    def plan_epochs(self, source, batch_size, settings, n_threads):
        """Allocate what :meth:`run_epoch` needs through one fit.

        Parameters
        ----------
        source : DenseBatches, SparseBatches or SequenceBatches
            The training data (``_batches``).
        batch_size : int
            Samples per mini-batch (the last batch may have fewer).
        settings : SolverSettings
            Read for ``shuffle``, ``alpha`` and ``clip_grad_norm``.
        n_threads : int

        Returns
        -------
        plan : EpochPlan
        """
        rows = source.batch_rows(batch_size)
        return EpochPlan(
            source=source, batch_size=batch_size,
            gather=bool(settings.shuffle) or not source.sliceable,
            alpha=float(settings.alpha), clip_grad_norm=settings.clip_grad_norm,
            n_threads=n_threads, ws=training_workspace(self, rows), ws_rows=rows,
            buffers=source.buffers(batch_size, self.dtype))

    def end_epochs(self, plan):
        """The fit of ``plan`` is over: keep its workspace for the next fit."""
        keep_training_workspace(self, plan.ws_rows, plan.ws)

    def run_epoch(self, plan, order, optimizer, progress=None):
        """Train one epoch: for each mini-batch of ``order``, the loss and
        gradient (:meth:`loss_and_grad`), the optional gradient clipping, and
        ``optimizer.step``.

        Parameters
        ----------
        plan : EpochPlan
            From :meth:`plan_epochs`, for this fit.
        order : ndarray of shape (n_samples,) of int
            The samples of ``plan.source`` in this epoch's order; batch j is
            ``order[j * batch_size:][:batch_size]``.
        optimizer : Optimizer
        progress : EpochProgress or None
            Updated after each batch with its size and loss.

        Returns
        -------
        loss_sum : float
            The batches' losses, each times its number of samples.
        """
        source, theta, grad = plan.source, self.theta, self.grad
        loss_sum = 0.0
        for batch_slice in gen_batches(len(order), plan.batch_size):
            m = batch_slice.stop - batch_slice.start
            if plan.gather:
                X, Y, sw = source.take(order[batch_slice], plan.buffers, plan.n_threads)
            else:
                X, Y, sw = source.slice(batch_slice)
            batch_loss = self.loss_and_grad(X, Y, sw, plan.alpha, plan.ws, plan.n_threads)
            loss_sum += batch_loss * m
            if plan.clip_grad_norm is not None:
                _clip_gradient(grad, plan.clip_grad_norm)
            optimizer.step(theta, grad, plan.n_threads)
            if progress is not None:
                progress.update(m, batch_loss)
        return loss_sum


def _check_weight_sum(smallest):
    """ValueError unless the smallest of the batches' sample-weight sums is
    positive: a batch whose weights sum to zero has no mean loss (sklearn
    fails there too, with a ZeroDivisionError)."""
    if not smallest > 0:
        raise ValueError(
            "The sample weights of a mini-batch sum to zero (or are negative or NaN), "
            "so its mean loss is undefined. Use a larger batch_size, or drop the samples "
            "of weight zero.")


def _batch_loss(data_loss, sumsq, alpha, sw_sum):
    """Mean data loss + alpha * ||W||² / (2 * sum(w)) of one batch."""
    return data_loss / sw_sum + 0.5 * alpha * sumsq / sw_sum
