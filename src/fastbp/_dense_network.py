"""A chain of dense layers (the MLPs' network), trained by the fused dense
chain kernel.

:class:`DenseNetwork` is a :class:`~fastbp._network.Network` whose
``loss_and_grad`` is one kernel call (two team calls instead of one per layer
and pass), and whose ``run_epoch`` trains whole chunks of mini-batches per
kernel call, the optimizer's step applied inside it as each block of the
gradient is known, with the bits of the per-batch loop. Where the chunks do
not apply (sparse or non-contiguous X, another dtype, ``clip_grad_norm``),
it runs the per-batch loop of :class:`Network`.
"""
from dataclasses import dataclass, fields

import numpy as np

from ._kernels import _chain
from ._layers import Dense, _rows
from ._network import LOSS_CODES, EpochPlan, Network, _batch_loss, _check_weight_sum

# An epoch runs in chunks of about this many rows of mini-batches per kernel
# call: the GIL is released once per chunk, and Ctrl-C and the progress bar
# act between chunks (tens of milliseconds).
CHUNK_ROWS = 4096
# ... and at most about this many flops (6 per weight and row: three GEMMs of
# 2 flops), so that Ctrl-C, which is seen between chunks, and the progress
# bar wait tens of milliseconds, or one batch when a batch is larger.
CHUNK_FLOPS = 6e9


@dataclass(slots=True)
class ChunkPlan(EpochPlan):
    """An :class:`EpochPlan` for training in chunks, with the data in the
    form the kernel reads and each chunk's arrays, allocated once per fit."""

    X: np.ndarray  # C-contiguous, in the network's dtype
    Y: np.ndarray
    sample_weight: np.ndarray | None  # contiguous, in the network's dtype
    order: np.ndarray  # (chunk rows,) the chunk's rows of X
    weights: np.ndarray | None  # (chunk rows,) their sample weights
    sw_sums: np.ndarray  # (chunk batches,) each batch's weight sum
    learning_rates: np.ndarray  # (chunk batches,) each batch's step size
    params: np.ndarray  # (chunk batches, 3) the kernel's scale, L2 coefficient, step
    totals: np.ndarray  # (chunk batches, 2) the kernel's data loss and L2 sum
    losses: np.ndarray  # (chunk batches,) each batch's loss


class DenseNetwork(Network):
    """A :class:`Network` of :class:`~fastbp._layers.Dense` layers only.

    Parameters are those of :class:`Network`; ValueError if a layer is not
    dense.
    """

    def __init__(self, layers, loss, dtype, theta=None):
        layers = list(layers)
        if not all(isinstance(layer, Dense) for layer in layers):
            raise ValueError("a DenseNetwork has Dense layers only")
        super().__init__(layers, loss, dtype, theta=theta)

    def _chain_buffers(self, ws, n):
        """The fused kernels' per-layer arguments: parameter and gradient views,
        activation codes, and the first n rows of the outputs and deltas."""
        layers = self.layers
        deltas = [_rows(ws.layers[i].delta_in, n) for i in range(1, len(layers))]
        deltas.append(_rows(ws.delta_out, n))
        return dict(
            weights=[layer.params[layer.weight_name] for layer in layers],
            biases=[layer.params[layer.bias_name] for layer in layers],
            activations=[layer._act for layer in layers],
            outputs=[_rows(layer_ws.out, n) for layer_ws in ws.layers],
            deltas=deltas,
            grad_weights=[layer.grads[layer.weight_name] for layer in layers],
            grad_biases=[layer.grads[layer.bias_name] for layer in layers],
        )

    def loss_and_grad(self, X, Y, sample_weight, alpha, ws, n_threads, record=None):
        """:meth:`Network.loss_and_grad` in one kernel call: two team calls
        instead of one per layer and pass."""
        n = X.shape[0]
        if n == 0:
            return super().loss_and_grad(X, Y, sample_weight, alpha, ws, n_threads, record)
        sw_sum = float(n) if sample_weight is None else float(sample_weight.sum())
        _check_weight_sum(sw_sum)
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

    def plan_epochs(self, source, batch_size, settings, n_threads):
        """:meth:`Network.plan_epochs`; a :class:`ChunkPlan` where X is dense
        and C-contiguous, X and Y have the network's dtype and no gradient
        clipping is asked for (a sparse chunk would be densified whole)."""
        plan = super().plan_epochs(source, batch_size, settings, n_threads)
        X, Y, sw = source.X, source.Y, source.sample_weight
        if not (source.sliceable and plan.clip_grad_norm is None
                and X.dtype == Y.dtype == self.dtype and Y.flags.c_contiguous):
            return plan
        if sw is not None:
            sw = np.ascontiguousarray(sw, dtype=self.dtype)
        n_samples = len(source)
        chunk_rows = min(CHUNK_ROWS, int(CHUNK_FLOPS // (6 * max(self.n_regularized, 1))))
        n_batches = min(max(1, chunk_rows // batch_size), -(-n_samples // batch_size))
        rows = n_batches * batch_size
        return ChunkPlan(
            **{f.name: getattr(plan, f.name) for f in fields(EpochPlan)},
            X=X, Y=Y, sample_weight=sw,
            order=np.empty(rows, dtype=np.intp),
            weights=None if sw is None else np.empty(rows, dtype=self.dtype),
            sw_sums=np.empty(n_batches), learning_rates=np.empty(n_batches),
            params=np.empty((n_batches, 3)), totals=np.empty((n_batches, 2)),
            losses=np.empty(n_batches))

    def run_epoch(self, plan, order, optimizer, progress=None):
        """:meth:`Network.run_epoch`, in chunks of mini-batches through
        :meth:`train_chunk` when ``plan`` is a :class:`ChunkPlan`; the
        progress bar and Ctrl-C act between chunks."""
        if not isinstance(plan, ChunkPlan):
            return super().run_epoch(plan, order, optimizer, progress)
        update = optimizer.update_args()
        batch_size = plan.batch_size
        loss_sum = 0.0
        n_samples = len(order)
        chunk_rows = len(plan.order)
        for start in range(0, n_samples, chunk_rows):
            n_rows = min(chunk_rows, n_samples - start)
            n_batches = -(-n_rows // batch_size)
            chunk_order = plan.order[:n_rows]
            chunk_order[...] = order[start:start + n_rows]
            sw_sums = plan.sw_sums[:n_batches]
            if plan.sample_weight is None:
                sw_sums[...] = batch_size
                sw_sums[-1] = n_rows - (n_batches - 1) * batch_size
            else:
                weights = np.take(plan.sample_weight, chunk_order, out=plan.weights[:n_rows],
                                  mode="clip")
                for j in range(n_batches):
                    # the sum sklearn takes of each batch's gathered weights
                    sw_sums[j] = weights[j * batch_size:(j + 1) * batch_size].sum()
            for j in range(n_batches):
                plan.learning_rates[j] = optimizer.next_learning_rate()
            self.train_chunk(plan, n_rows, update)
            for j in range(n_batches):
                m = min(batch_size, n_rows - j * batch_size)
                loss_sum += float(plan.losses[j]) * m
                if progress is not None:
                    progress.update(m, float(plan.losses[j]))
        return loss_sum

    def train_chunk(self, plan, n_rows, update):
        """Train on the mini-batches of the first ``n_rows`` rows of
        ``plan.order`` in one kernel call: each batch's forward and backward
        pass, then the optimizer's step on each block of the gradient.

        Parameters
        ----------
        plan : ChunkPlan
            Its ``order``, ``sw_sums`` and ``learning_rates`` filled for the
            chunk's rows and batches; receives each batch's loss, as
            :meth:`loss_and_grad` gives it (before its step), in ``losses``.
        n_rows : int
            Rows of the chunk.
        update : dict
            The optimizer's ``update_args``.
        """
        n_batches = -(-n_rows // plan.batch_size)
        sw_sums = plan.sw_sums[:n_batches]
        params = plan.params[:n_batches]
        alpha = plan.alpha
        np.divide(1.0, sw_sums, out=params[:, 0])
        if alpha > 0 and self.n_regularized:
            np.divide(alpha, sw_sums, out=params[:, 1])
        else:
            params[:, 1] = 0.0
        params[:, 2] = plan.learning_rates[:n_batches]
        _check_weight_sum(sw_sums.min())
        totals = plan.totals[:n_batches]
        buffers = self._chain_buffers(plan.ws, plan.batch_size)
        scratch = plan.buffers
        _chain.dense_chain_train(
            plan.X, plan.Y, plan.sample_weight, plan.order[:n_rows], plan.batch_size, params,
            buffers["weights"], buffers["biases"], buffers["activations"], scratch[0],
            scratch[1], scratch[2], buffers["outputs"], buffers["deltas"],
            buffers["grad_weights"], buffers["grad_biases"], LOSS_CODES[self.loss], totals,
            plan.n_threads, theta=self.theta, **update,
        )
        for j in range(n_batches):
            plan.losses[j] = _batch_loss(totals[j, 0], totals[j, 1], alpha, sw_sums[j])
