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

import numpy as np
import scipy.sparse as sp

from ._kernels import _chain, _losses, _optimizers
from ._layers import Dense, _rows
from ._threads import blas_single_thread

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

# Rows of one chunk of the forward pass of predict: 1024, or more (up to
# 8192) while the chunk's workspace stays within _CHUNK_BYTES. The kernels
# cut a GEMM into at most 16 blocks, and each block packs the layer's whole
# weight matrix: larger chunks pack it fewer times (10,000 rows through a
# 784-256-128-10 MLP cost a fifth less in chunks of 4096 than of 1024).
_CHUNK_ROWS = 1024
_MAX_CHUNK_ROWS = 8192
_CHUNK_BYTES = 8 << 20


def _workspace_bytes(ws):
    if isinstance(ws, np.ndarray):
        return ws.nbytes
    if isinstance(ws, dict):
        ws = ws.values()
    elif not isinstance(ws, (list, tuple)):
        return 0
    return sum(_workspace_bytes(item) for item in ws)


def borrow_workspace(net, rows):
    """A prediction workspace of ``net`` (``net.workspace(capacity,
    backward=False)``) with room for at least ``rows`` rows, for this caller
    alone until :func:`return_workspace`; returns (capacity, workspace)."""
    capacity = 1 if rows <= 1 else 1 << (int(rows) - 1).bit_length()
    with _workspaces_lock:
        kept = _PREDICTION_WORKSPACES.get(net)
        ws = None if kept is None else kept.pop(capacity, None)
    if ws is None:
        ws = net.workspace(capacity, backward=False)
    return capacity, ws


def return_workspace(net, capacity, ws):
    """Keep a workspace from :func:`borrow_workspace` for the next predict
    (unless it is over _KEPT_BYTES)."""
    if capacity > 1024 and _workspace_bytes(ws) > _KEPT_BYTES:
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
        specs = [spec for layer in self.layers for spec in layer.param_specs]
        ordered = [s for s in specs if s[2]] + [s for s in specs if not s[2]]
        self._slices = {}
        offset = 0
        for name, shape, _ in ordered:
            if name in self._slices:
                raise ValueError(f"duplicate parameter name {name!r}")
            size = int(np.prod(shape))
            self._slices[name] = (offset, offset + size, tuple(shape))
            offset += size
        self.n_regularized = sum(int(np.prod(s[1])) for s in ordered if s[2])
        self._order = [s[0] for s in specs]
        if theta is None:
            self.theta = np.zeros(offset, dtype=self.dtype)
        else:
            if theta.ndim != 1 or theta.size != offset or theta.dtype != self.dtype:
                raise ValueError(
                    f"theta of shape {theta.shape} and dtype {theta.dtype} does not fit "
                    f"this network, which has {offset} {self.dtype} parameters."
                )
            self.theta = np.array(theta, dtype=self.dtype, order="C")
        self.grad = np.zeros(offset, dtype=self.dtype)
        self._bind()

    # ------------------------------------------------------------------ params
    def _views(self, flat):
        return {
            name: flat[start:stop].reshape(shape)
            for name, (start, stop, shape) in self._slices.items()
        }

    def _bind(self):
        params = self._views(self.theta)
        grads = self._views(self.grad)
        for layer in self.layers:
            names = [spec[0] for spec in layer.param_specs]
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
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.grad = np.zeros_like(self.theta)
        self._bind()

    def astype(self, dtype):
        """Return a copy of the network whose parameters are cast to ``dtype``."""
        new = copy.deepcopy(self)
        new.dtype = np.dtype(dtype)
        new.theta = self.theta.astype(new.dtype)
        new.grad = np.zeros_like(new.theta)
        new._bind()
        return new

    @property
    def trains_in_chunks(self):
        """True for a chain of dense layers: loss_and_grad then runs as one
        fused kernel, and :meth:`train_chunk` trains runs of mini-batches."""
        return all(isinstance(layer, Dense) for layer in self.layers)

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
        ws = {"layers": layers, "rows": n}
        if backward:
            ws["delta_out"] = np.empty((n, self.n_outputs), dtype=self.dtype)
        return ws

    # --------------------------------------------------------------- passes
    def forward(self, X, ws, n_threads):
        """Run every layer; return the list [X, A_1, ..., logits]."""
        activations = [X]
        for layer, layer_ws in zip(self.layers, ws["layers"]):
            activations.append(layer.forward(activations[-1], layer_ws, n_threads))
        return activations

    def predict(self, X, n_threads, logits=False, batch_rows=None):
        """Return the outputs (or, with ``logits=True``, the logits) for X.

        X is processed in chunks of ``batch_rows`` (by default 1024 rows, or
        more for narrow networks; a sparse X is densified chunk by chunk of
        1024), in a workspace lent to this call alone, so that concurrent
        calls on one model stay independent.
        """
        code = LOSS_CODES[self.loss]

        def outputs(activations):
            z = activations[-1]
            if not logits:
                _losses.output_activate(z, code, n_threads)
            return z
        return self._forward_chunks(X, n_threads, self.n_outputs, outputs, batch_rows)

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
        capacity, ws = borrow_workspace(self, min(n, batch_rows))
        try:
            with blas_single_thread():
                for start in range(0, n, batch_rows):
                    stop = min(start + batch_rows, n)
                    chunk = X[start:stop]
                    if sp.issparse(chunk):
                        chunk = np.ascontiguousarray(chunk.toarray(), dtype=self.dtype)
                    out[start:stop] = pick(self.forward(chunk, ws, n_threads)).reshape(
                        stop - start, width)
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
        ws : dict
            Workspace from :meth:`workspace` with at least n_samples rows.
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
        if n > 0 and self.trains_in_chunks:
            return self._dense_chain_loss_and_grad(X, Y, sample_weight, alpha, ws, n_threads,
                                                   record, sw_sum)
        activations = self.forward(X, ws, n_threads)
        delta = ws["delta_out"]
        delta = delta if delta.shape[0] == n else delta[:n]
        data_loss = _losses.output_loss_delta(
            activations[-1], Y, sample_weight, delta, LOSS_CODES[self.loss],
            1.0 / sw_sum, n_threads,
        )
        deltas = [delta.copy()] if record is not None else None
        for i in range(len(self.layers) - 1, -1, -1):
            delta = self.layers[i].backward(
                activations[i], activations[i + 1], delta, ws["layers"][i],
                i > 0, n_threads,
            )
            if deltas is not None and delta is not None:
                deltas.append(delta.copy())
        loss = data_loss / sw_sum
        if alpha > 0 and self.n_regularized:
            nr = self.n_regularized
            sumsq = _optimizers.l2_penalty(
                self.theta[:nr], self.grad[:nr], alpha / sw_sum, n_threads
            )
            loss += 0.5 * alpha * sumsq / sw_sum
        if deltas is not None:
            record.extend(reversed(deltas))
        return loss

    def _chain_buffers(self, ws, n):
        """The fused kernels' per-layer arguments: parameter and gradient views,
        activation codes, and the first n rows of the outputs and deltas."""
        layers = self.layers
        deltas = [_rows(ws["layers"][i]["delta_in"], n) for i in range(1, len(layers))]
        deltas.append(_rows(ws["delta_out"], n))
        return dict(
            weights=[layer.params[layer.weight_name] for layer in layers],
            biases=[layer.params[layer.bias_name] for layer in layers],
            activations=[layer._act for layer in layers],
            outputs=[_rows(layer_ws["out"], n) for layer_ws in ws["layers"]],
            deltas=deltas,
            grad_weights=[layer.grads[layer.weight_name] for layer in layers],
            grad_biases=[layer.grads[layer.bias_name] for layer in layers],
        )

    def _dense_chain_loss_and_grad(self, X, Y, sample_weight, alpha, ws, n_threads, record,
                                   sw_sum):
        """loss_and_grad of a chain of dense layers in one kernel call: one
        OpenMP region instead of a team per layer and pass."""
        n = X.shape[0]
        buffers = self._chain_buffers(ws, n)
        coef = alpha / sw_sum if alpha > 0 and self.n_regularized else 0.0
        data_loss, sumsq = _chain.dense_chain_loss_and_grad(
            X.reshape(n, self.layers[0].n_in), buffers["weights"], buffers["biases"],
            buffers["activations"], Y, sample_weight, buffers["outputs"], buffers["deltas"],
            buffers["grad_weights"], buffers["grad_biases"], LOSS_CODES[self.loss],
            1.0 / sw_sum, coef, n_threads,
        )
        if record is not None:
            record.extend(d.copy() for d in buffers["deltas"])
        return _batch_loss(data_loss, sumsq, alpha, sw_sum)

    def train_chunk(self, X, Y, sample_weight, order, batch_size, sw_sums, learning_rates,
                    alpha, scratch, ws, n_threads, update, batch_params, batch_losses):
        """Train on consecutive mini-batches in one kernel call (see
        :attr:`trains_in_chunks`): each batch's forward and backward pass,
        then the optimizer's step on each block of the gradient.

        Parameters
        ----------
        X, Y : ndarray of shape (n_samples, n_features), (n_samples, n_outputs)
            C-contiguous, in the network's dtype.
        sample_weight : ndarray of shape (n_samples,) or None
        order : ndarray of shape (n_rows,), dtype np.intp
            Rows of X in training order; batch j is order[j * batch_size:][:batch_size].
        batch_size : int
        sw_sums : ndarray of shape (n_batches,)
            Per batch, the sum of its sample weights (its size without them).
        learning_rates : ndarray of shape (n_batches,)
            Per batch, the step size (``next_learning_rate`` of the optimizer).
        alpha : float
            L2 strength, as in :meth:`loss_and_grad`.
        scratch : tuple of ndarray
            (X, Y, sample_weight) buffers of batch_size rows (the last None
            without sample weights).
        ws : dict
            Workspace from :meth:`workspace` with batch_size rows.
        n_threads : int
        update : dict
            The optimizer's ``update_args``.
        batch_params : ndarray of shape (n_batches, 3), float64
            Scratch for the kernel's per-batch scale, L2 coefficient and step.
        batch_losses : ndarray of shape (n_batches,), float64
            Receives each batch's loss, as :meth:`loss_and_grad` gives it
            (before its step).
        """
        regularized = alpha > 0 and self.n_regularized
        np.divide(1.0, sw_sums, out=batch_params[:, 0])
        if regularized:
            np.divide(alpha, sw_sums, out=batch_params[:, 1])
        else:
            batch_params[:, 1] = 0.0
        batch_params[:, 2] = learning_rates
        _check_weight_sum(sw_sums.min())
        totals = ws.get("chunk_totals")
        if totals is None or totals.shape[0] < len(sw_sums):
            totals = ws["chunk_totals"] = np.empty((len(sw_sums), 2))
        totals = totals[:len(sw_sums)]
        buffers = self._chain_buffers(ws, batch_size)
        _chain.dense_chain_train(
            X, Y, sample_weight, order, batch_size, batch_params, buffers["weights"],
            buffers["biases"], buffers["activations"], scratch[0], scratch[1], scratch[2],
            buffers["outputs"], buffers["deltas"], buffers["grad_weights"],
            buffers["grad_biases"], LOSS_CODES[self.loss], totals, n_threads,
            theta=self.theta, **update,
        )
        for j in range(len(sw_sums)):
            batch_losses[j] = _batch_loss(totals[j, 0], totals[j, 1], alpha, sw_sums[j])


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
