"""The one solver loop that trains every fastbp estimator.

A network only provides ``theta``, ``grad`` and ``loss_and_grad``; everything
else (epochs, shuffling, mini-batches, learning-rate schedules, early
stopping, verbose output, ``loss_curve_``, Ctrl-C) lives here, written to
follow scikit-learn's MLP step for step so that the same ``random_state``
gives the same trajectory.
"""
import time
import warnings

import numpy as np
import scipy.optimize
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import gen_batches

from ._kernels import _losses, _optimizers, _sparse
from ._network import LOSS_CODES
from ._progress import EpochProgress
from ._sequences import StepWeights

STOCHASTIC_SOLVERS = ("sgd", "adam")
# Networks that train in chunks (train_chunk) get about this many rows of
# mini-batches per kernel call: the OpenMP team is woken once per chunk, and
# Ctrl-C and the progress bar act between chunks (tens of milliseconds).
CHUNK_ROWS = 4096
# ... and at most about this many flops (6 per weight and row: three GEMMs of
# 2 flops), so that Ctrl-C, which is seen between chunks, and the progress
# bar wait tens of milliseconds, or one batch when a batch is larger.
CHUNK_FLOPS = 6e9


class SGDState:
    """Momentum SGD state: the velocity and the current learning rate.

    Hyperparameters are read from the estimator at every step, so set_params
    between partial_fit calls takes effect (sklearn keeps those of the first
    call); a new learning_rate_init restarts the schedule from it.
    """

    def __init__(self, n_params, dtype, learning_rate_init):
        self.velocity = np.zeros(n_params, dtype=dtype)
        self.learning_rate = self.learning_rate_init = float(learning_rate_init)

    def follow(self, est):
        """Take a learning_rate_init set since the state was made."""
        if est.learning_rate_init != self.learning_rate_init:
            self.learning_rate = self.learning_rate_init = float(est.learning_rate_init)

    def step(self, est, theta, grad, n_threads):
        _optimizers.sgd_update(theta, grad, self.velocity, self.learning_rate,
                               est.momentum, est.nesterovs_momentum, n_threads)

    def update_args(self, est):
        """The step for a network that applies it itself (train_chunk)."""
        return dict(update=_optimizers.UPDATE_CODES["sgd"], state_1=self.velocity,
                    beta_1=est.momentum, nesterov=est.nesterovs_momentum)

    def next_learning_rate(self, est):
        """The step size of the next batch."""
        return self.learning_rate

    def iteration_ends(self, est, time_step):
        if est.learning_rate == "invscaling":
            self.learning_rate = est.learning_rate_init / (time_step + 1) ** est.power_t

    def trigger_stopping(self, est, msg):
        """Return True to stop; with the 'adaptive' schedule divide the rate by 5 first."""
        if est.learning_rate != "adaptive":
            _say(est, msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            _say(est, msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        _say(est, msg + " Setting learning rate to %f" % self.learning_rate)
        return False


class AdamState:
    """Adam state: both moments and the step count (hyperparameters are read
    from the estimator at every step, as SGDState's)."""

    def __init__(self, n_params, dtype, learning_rate_init):
        self.m1 = np.zeros(n_params, dtype=dtype)
        self.m2 = np.zeros(n_params, dtype=dtype)
        self.t = 0
        self.learning_rate = float(learning_rate_init)

    def _advance(self, est):
        """Count the step; return its bias-corrected step size."""
        self.t += 1
        self.learning_rate = (est.learning_rate_init * np.sqrt(1 - est.beta_2 ** self.t)
                              / (1 - est.beta_1 ** self.t))
        return self.learning_rate

    def step(self, est, theta, grad, n_threads):
        _optimizers.adam_update(theta, grad, self.m1, self.m2, self._advance(est),
                                est.beta_1, est.beta_2, est.epsilon, n_threads)

    def update_args(self, est):
        """The step for a network that applies it itself (train_chunk)."""
        return dict(update=_optimizers.UPDATE_CODES["adam"], state_1=self.m1, state_2=self.m2,
                    beta_1=est.beta_1, beta_2=est.beta_2, epsilon=est.epsilon)

    def next_learning_rate(self, est):
        """The step size of the next batch (counts the step)."""
        return self._advance(est)

    def follow(self, est):
        """Nothing to take: the step size is formed from est at each step."""

    def iteration_ends(self, est, time_step):
        pass

    def trigger_stopping(self, est, msg):
        _say(est, msg + " Stopping.")
        return True


def _say(est, msg):
    if est.verbose:
        print(msg)


def _take_rows(X, idx, out):
    """Gather rows ``idx`` of X (ndarray, or CSR from ``_as_csr``) into ``out``
    without allocating."""
    if sp.issparse(X):
        _sparse.csr_rows_to_dense(X.data, X.indices, X.indptr, idx, out)
        return out
    # mode="clip": the indices are in range by construction, and the default
    # mode="raise" copies through a temporary buffer (2.5x slower, measured)
    return np.take(X, idx, axis=0, out=out, mode="clip")


def _as_csr(X, dtype):
    """X as a CSR matrix in ``dtype`` with contiguous arrays, what
    ``_take_rows`` gathers from (one conversion per fit)."""
    X = X.tocsr().astype(dtype, copy=False)
    # the kernel takes indices and indptr of one dtype, int32 or int64
    index_dtype = np.int32 if X.indices.dtype == X.indptr.dtype == np.int32 else np.int64
    X.data = np.ascontiguousarray(X.data)
    X.indices = np.ascontiguousarray(X.indices, dtype=index_dtype)
    X.indptr = np.ascontiguousarray(X.indptr, dtype=index_dtype)
    return X


def _num_rows(A):
    return len(A) if hasattr(A, "batch") else A.shape[0]


def _subset(A, idx):
    """Rows idx of an array, sparse matrix, list or sequence dataset."""
    if hasattr(A, "subset"):
        return A.subset(idx)
    if isinstance(A, list):
        return [A[i] for i in idx]
    return A[idx]


def _clip_gradient(grad, max_norm):
    """Scale grad in place so that its global L2 norm is at most max_norm."""
    norm = float(np.sqrt(np.dot(grad, grad)))
    if norm > max_norm:
        grad *= max_norm / (norm + 1e-12)


def _check_finite(est, loss, theta):
    if not np.isfinite(loss) or not np.all(np.isfinite(theta)):
        raise ValueError(
            "Solver produced non-finite parameter weights or loss. The input data "
            "may contain large values and need to be preprocessed (e.g. "
            "StandardScaler), or the learning rate is too high for this model."
        )


def fit_stochastic(est, net, X, Y, sample_weight, y_raw, incremental, n_threads,
                   validation=None):
    """Train ``net`` with SGD or Adam, updating ``est``'s fitted attributes.

    Parameters
    ----------
    est : fastbp estimator
        Supplies the hyperparameters (sklearn names) and receives
        ``loss_``, ``loss_curve_``, ``n_iter_``, ``t_``, ``best_loss_``,
        ``validation_scores_``, ``validation_loss_curve_``,
        ``best_validation_score_``.
    net : Network
    X : ndarray or sparse matrix of shape (n_samples, ...)
    Y : ndarray of shape (n_samples, n_outputs)
        Encoded targets in the network's dtype.
    sample_weight : ndarray of shape (n_samples,) or None
    y_raw : array-like of shape (n_samples, ...)
        Targets as the user gave them, for the early-stopping score.
    incremental : bool
        partial_fit: one pass, optimizer state kept.
    n_threads : int
    validation : tuple (X, Y, y, sample_weight) or None
        A validation set given to fit, in the forms of (X, Y, y_raw,
        sample_weight): scored after every epoch, and what early stopping
        watches instead of a split of X.
    """
    rng = est._random_state
    state_cls = SGDState if est.solver == "sgd" else AdamState
    if not incremental or not isinstance(getattr(est, "_optimizer", None), state_cls):
        est._optimizer = state_cls(net.theta.size, net.dtype, est.learning_rate_init)
    optimizer = est._optimizer
    optimizer.follow(est)

    if est.early_stopping and incremental:
        raise ValueError("partial_fit does not support early_stopping=True")
    early_stopping = est.early_stopping
    validating = early_stopping or validation is not None
    # Continuing after lbfgs, or with early_stopping switched: start the
    # records this fit keeps (sklearn would fail on the missing attributes).
    if validating:
        _start_validation_records(est)
    if validation is not None and not incremental:
        # a validation set given to this fit is scored afresh: the best score
        # of an earlier fit, on other data, does not compare
        est.best_validation_score_ = -np.inf
        est._no_improvement_count = 0
    if not early_stopping and est.best_loss_ is None:
        est.best_loss_ = np.inf
    n_total = _num_rows(X)
    if validation is not None:
        X_train, Y_train, sw_train = X, Y, sample_weight
        val = _ValidationSet(net, *validation)
    elif early_stopping:
        # Splitting indices draws the same permutation sklearn's MLP draws
        # when it splits the arrays themselves.
        stratify = y_raw if est._stratify_validation() else None
        train_idx, val_idx = train_test_split(
            np.arange(n_total), random_state=rng, test_size=est.validation_fraction,
            stratify=stratify)
        if len(val_idx) < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' "
                "or the size of your dataset."
            )
        X_train, Y_train = _subset(X, train_idx), _subset(Y, train_idx)
        sw_train = sw_val = None
        if sample_weight is not None:
            sw_train, sw_val = sample_weight[train_idx], sample_weight[val_idx]
        val = _ValidationSet(net, _subset(X, val_idx), _subset(Y, val_idx),
                             _subset(y_raw, val_idx), sw_val)
    else:
        X_train, Y_train, sw_train = X, Y, sample_weight
        val = None

    n_samples = _num_rows(X_train)
    if est.batch_size == "auto":
        batch_size = min(200, n_samples)
    else:
        if est.batch_size > n_samples:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than "
                "sample size. It is going to be clipped"
            )
        batch_size = int(np.clip(est.batch_size, 1, n_samples))

    # Buffers are allocated once per fit; the batch loop allocates no arrays
    # (sequence data packs its batches itself).
    sequences = hasattr(X_train, "batch")
    ws = net.workspace(X_train.max_rows(batch_size) if sequences else batch_size)
    if sequences:
        pack_buffers = X_train.batch_buffers(batch_size, Y_train, sw_train)
    else:
        if sp.issparse(X_train):
            X_train = _as_csr(X_train, net.dtype)
        X_buf = np.empty((batch_size,) + X_train.shape[1:], dtype=net.dtype)
        Y_buf = np.empty((batch_size, Y_train.shape[1]), dtype=net.dtype)
        sw_buf = np.empty(batch_size, dtype=net.dtype) if sw_train is not None else None
    # int32 halves the index arrays, the largest per-sample buffers of a fit.
    index_dtype = np.int32 if n_samples < 2**31 else np.intp
    identity = np.arange(n_samples, dtype=index_dtype)
    sample_idx = identity.copy()
    shuffled = None  # buffers for the next epoch's order, made on first use
    alpha = float(est.alpha)
    theta, grad = net.theta, net.grad
    contiguous_slices = (not sequences and not sp.issparse(X_train)
                         and X_train.flags.c_contiguous)
    clip = getattr(est, "clip_grad_norm", None)
    # A network that trains in chunks applies the step inside its kernel, as
    # each block of the gradient is known, and keeps its team awake from batch
    # to batch. Dense rows only (a sparse chunk would be densified whole).
    chunked = (contiguous_slices and clip is None and net.trains_in_chunks
               and X_train.dtype == Y_train.dtype == net.dtype and Y_train.flags.c_contiguous)
    if chunked:
        update = optimizer.update_args(est)
        if sw_train is not None:
            sw_train = np.ascontiguousarray(sw_train, dtype=net.dtype)
        chunk_rows = min(CHUNK_ROWS, int(CHUNK_FLOPS // (6 * max(net.n_regularized, 1))))
        chunk = _ChunkBuffers(min(max(1, chunk_rows // batch_size), -(-n_samples // batch_size)),
                              batch_size, net.dtype, sw_train is not None)

    n_batches = -(-n_samples // batch_size)
    patience = _patience(est)
    # restore_best (an RNN parameter, on by default there): end with the
    # parameters of this fit's lowest training loss, so that a late spike of
    # the loss is not what the model keeps (early stopping keeps its own best).
    kept = kept_loss = None
    if getattr(est, "restore_best", False) and not early_stopping and not incremental:
        kept, kept_loss = np.empty_like(theta), np.inf
    est.n_iter_ = 0
    progress = None
    try:
        for it in range(est.max_iter):
            tic = time.perf_counter()
            if est.shuffle:
                # sklearn.utils.shuffle's draw (RandomState.shuffle of an arange,
                # whatever its dtype), so the order follows sklearn's MLP;
                # composed with the last order in buffers kept for the fit.
                if shuffled is None:
                    shuffled = (np.empty_like(sample_idx), np.empty_like(sample_idx))
                order, composed = shuffled
                order[...] = identity
                rng.shuffle(order)
                np.take(sample_idx, order, out=composed)
                shuffled = (order, sample_idx)
                sample_idx = composed
            accumulated_loss = 0.0
            if est.verbose >= 2:
                progress = EpochProgress(est.n_iter_ + 1, n_batches, n_samples)
            if chunked:
                accumulated_loss = _epoch_in_chunks(
                    est, net, optimizer, X_train, Y_train, sw_train, sample_idx, batch_size,
                    chunk, alpha, (X_buf, Y_buf, sw_buf), ws, n_threads, update,
                    progress)
            else:
                for batch_slice in gen_batches(n_samples, batch_size):
                    m = batch_slice.stop - batch_slice.start
                    if sequences:
                        X_batch, Y_batch, sw_batch = X_train.batch(
                            sample_idx[batch_slice], Y_train, sw_train, pack_buffers)
                    elif est.shuffle or not contiguous_slices:
                        idx = sample_idx[batch_slice]
                        X_batch = _take_rows(X_train, idx, X_buf[:m] if m < batch_size else X_buf)
                        Y_batch = _take_rows(Y_train, idx, Y_buf[:m] if m < batch_size else Y_buf)
                        sw_batch = None
                        if sw_train is not None:
                            sw_batch = np.take(sw_train, idx, out=sw_buf[:m], mode="clip")
                    else:
                        X_batch = X_train[batch_slice]
                        Y_batch = Y_train[batch_slice]
                        sw_batch = None if sw_train is None else sw_train[batch_slice]
                    batch_loss = net.loss_and_grad(X_batch, Y_batch, sw_batch, alpha, ws, n_threads)
                    accumulated_loss += batch_loss * m
                    if clip is not None:
                        _clip_gradient(grad, clip)
                    optimizer.step(est, theta, grad, n_threads)
                    if progress is not None:
                        progress.update(m, batch_loss)
            if progress is not None:
                progress.close()
                progress = None

            est.n_iter_ += 1
            est.loss_ = accumulated_loss / n_samples
            _check_finite(est, est.loss_, theta)
            est.t_ += n_samples
            est.loss_curve_.append(est.loss_)
            if kept is not None and est.loss_ < kept_loss:
                kept_loss = est.loss_
                np.copyto(kept, theta)
            if val is not None:
                val.record(est, net, n_threads, track_best=not early_stopping)
            _update_no_improvement_count(est, net, early_stopping)
            if est.verbose:
                line = "Iteration %d, loss = %.8f" % (est.n_iter_, est.loss_)
                if val is not None:
                    line += ", validation score = %.6f" % est.validation_scores_[-1]
                print(line + ", %.2f s" % (time.perf_counter() - tic), flush=True)
            optimizer.iteration_ends(est, est.t_)

            if est._no_improvement_count > patience:
                what = "Validation score" if early_stopping else "Training loss"
                msg = "%s did not improve more than tol=%f for %d consecutive epochs." % (
                    what, est.tol, patience)
                if optimizer.trigger_stopping(est, msg):
                    break
                est._no_improvement_count = 0

            if incremental:
                break
            if est.n_iter_ == est.max_iter:
                warnings.warn(
                    "Stochastic Optimizer: Maximum iterations (%d) reached and the "
                    "optimization hasn't converged yet." % est.max_iter,
                    ConvergenceWarning,
                )
    except KeyboardInterrupt:
        warnings.warn("Training interrupted by user.")
    finally:
        if progress is not None:
            progress.close()

    if early_stopping and est._best_theta is not None:
        theta[:] = est._best_theta
    elif kept is not None and kept_loss < est.loss_:
        _say(est, "Restoring the parameters of the lowest training loss, %.8f." % kept_loss)
        theta[:] = kept


def _patience(est):
    """Epochs without improvement before stopping: ``n_iter_no_change``, or
    for 'auto' half of ``max_iter`` and at least 10, so that a network whose
    loss plateaus or spikes for a while (RNNs) still gets the epochs asked for."""
    if isinstance(est.n_iter_no_change, str):  # 'auto'
        return max(10, est.max_iter // 2)
    return est.n_iter_no_change


class _ChunkBuffers:
    """The arrays one chunk of batches needs, allocated once per fit so that
    the epoch loop allocates none."""

    def __init__(self, chunk_batches, batch_size, dtype, weighted):
        rows = chunk_batches * batch_size
        self.order = np.empty(rows, dtype=np.intp)
        self.weights = np.empty(rows, dtype=dtype) if weighted else None
        self.sw_sums = np.empty(chunk_batches)
        self.learning_rates = np.empty(chunk_batches)
        self.params = np.empty((chunk_batches, 3))
        self.losses = np.empty(chunk_batches)


def _epoch_in_chunks(est, net, optimizer, X, Y, sample_weight, sample_idx, batch_size,
                     chunk, alpha, scratch, ws, n_threads, update, progress):
    """One epoch through ``net.train_chunk``; returns the summed batch losses
    weighted by batch size (as the batch-by-batch loop accumulates them)."""
    accumulated_loss = 0.0
    n_samples = len(sample_idx)
    chunk_rows = len(chunk.order)
    for start in range(0, n_samples, chunk_rows):
        n_rows = min(chunk_rows, n_samples - start)
        n_batches = -(-n_rows // batch_size)
        order = chunk.order[:n_rows]
        order[...] = sample_idx[start:start + n_rows]
        sw_sums = chunk.sw_sums[:n_batches]
        if sample_weight is None:
            sw_sums[...] = batch_size
            sw_sums[-1] = n_rows - (n_batches - 1) * batch_size
        else:
            weights = np.take(sample_weight, order, out=chunk.weights[:n_rows], mode="clip")
            for j in range(n_batches):
                # the sum sklearn takes of each batch's gathered weights
                sw_sums[j] = weights[j * batch_size:(j + 1) * batch_size].sum()
        learning_rates = chunk.learning_rates[:n_batches]
        for j in range(n_batches):
            learning_rates[j] = optimizer.next_learning_rate(est)
        losses = chunk.losses[:n_batches]
        net.train_chunk(X, Y, sample_weight, order, batch_size, sw_sums, learning_rates,
                        alpha, scratch, ws, n_threads, update, chunk.params[:n_batches], losses)
        for j in range(n_batches):
            m = min(batch_size, n_rows - j * batch_size)
            accumulated_loss += float(losses[j]) * m
            if progress is not None:
                progress.update(m, float(losses[j]))
    return accumulated_loss


def _start_validation_records(est):
    """Start the validation records where a model has none (a first fit, or
    one continued after lbfgs or without validation data)."""
    if est.validation_scores_ is None:
        est.validation_scores_, est.best_validation_score_ = [], -np.inf
    if est.validation_loss_curve_ is None:
        est.validation_loss_curve_ = []


class _ValidationSet:
    """A validation set, scored and evaluated once per epoch (iteration).

    Parameters
    ----------
    net : Network
    X : ndarray, sparse matrix or Ragged
        Input, ready for ``net.predict``.
    Y : ndarray of shape (n_samples, n_outputs) or Ragged
        Encoded targets, as the training loss sees them.
    y : array-like or list
        Targets in the form ``est._validation_score`` scores.
    sample_weight : ndarray of shape (n_samples,) or None
    """

    def __init__(self, net, X, Y, y, sample_weight):
        self.X = X.tocsr() if sp.issparse(X) else X  # predict slices rows
        self.y = y
        lengths = getattr(Y, "lengths", None)  # sequences: target rows per sequence
        self.Y = np.ascontiguousarray(Y.data if lengths is not None else Y, dtype=net.dtype)
        if sample_weight is not None:
            if lengths is not None:
                # one weight per predicted row, as the training loss weighs them
                # (class weights of sequence targets come per step already)
                sample_weight = (sample_weight.data if isinstance(sample_weight, StepWeights)
                                 else np.repeat(np.asarray(sample_weight), lengths))
            sample_weight = np.ascontiguousarray(sample_weight)
            weight_sum = float(sample_weight.sum())
            if not weight_sum > 0:
                raise ValueError(
                    "The sample weights of the validation set sum to zero (or are negative "
                    "or NaN), so its score and loss are undefined.")
        else:
            weight_sum = float(self.Y.shape[0])
        self.sample_weight, self.weight_sum = sample_weight, weight_sum
        self.delta = np.empty_like(self.Y)  # scratch the loss kernel writes

    def evaluate(self, est, net, n_threads):
        """Return (score, loss): ``est``'s score (accuracy or R²) and the
        weighted mean data loss, the training loss without the L2 term."""
        logits = net.predict(self.X, n_threads, logits=True)
        outputs = logits.copy()
        code = LOSS_CODES[net.loss]
        _losses.output_activate(outputs, code, n_threads)  # what predict gives
        sw = None if self.sample_weight is None else self.sample_weight.astype(
            net.dtype, copy=False)
        total = _losses.output_loss_delta(logits, self.Y, sw, self.delta, code, 1.0, n_threads)
        score = est._validation_score(outputs, self.y, self.sample_weight)
        return score, total / self.weight_sum

    def record(self, est, net, n_threads, track_best):
        """Append this epoch's score and loss to ``est``'s records; with
        ``track_best``, also keep the best score (early stopping keeps it
        itself, with the parameters that scored it)."""
        score, loss = self.evaluate(est, net, n_threads)
        est.validation_scores_.append(score)
        est.validation_loss_curve_.append(loss)
        if track_best and score > est.best_validation_score_:
            est.best_validation_score_ = score


def _update_no_improvement_count(est, net, early_stopping):
    if early_stopping:
        score = est.validation_scores_[-1]
        if score < est.best_validation_score_ + est.tol:
            est._no_improvement_count += 1
        else:
            est._no_improvement_count = 0
        if score > est.best_validation_score_:
            est.best_validation_score_ = score
            est._best_theta = net.theta.copy()
    else:
        if est.loss_curve_[-1] > est.best_loss_ - est.tol:
            est._no_improvement_count += 1
        else:
            est._no_improvement_count = 0
        if est.loss_curve_[-1] < est.best_loss_:
            est.best_loss_ = est.loss_curve_[-1]


def fit_lbfgs(est, net, X, Y, sample_weight, n_threads, validation=None):
    """Full-batch L-BFGS-B (scipy) on the flat parameter vector.

    ``validation`` (as for :func:`fit_stochastic`) is scored after every
    iteration, on the iterate; L-BFGS does not stop on it.
    """
    val = None
    if validation is not None:
        val = _ValidationSet(net, *validation)
        # this fit's records only, as loss_curve_
        est.validation_scores_ = est.validation_loss_curve_ = None
        _start_validation_records(est)
    if hasattr(X, "batch"):  # sequences: every one in a single packed batch
        X, Y, sample_weight = X.batch(np.arange(len(X)), Y, sample_weight)
        ws = net.workspace(X.data.shape[0])
    else:
        ws = net.workspace(X.shape[0])
        X = X.toarray() if sp.issparse(X) else X
        X = np.ascontiguousarray(X, dtype=net.dtype)
    alpha = float(est.alpha)
    curve = []
    tic = [time.perf_counter()]

    def fun(x):
        net.theta[:] = x
        loss = net.loss_and_grad(X, Y, sample_weight, alpha, ws, n_threads)
        return loss, net.grad.astype(np.float64)

    def callback(intermediate_result):
        curve.append(float(intermediate_result.fun))
        line = "Iteration %d, loss = %.8f" % (len(curve), curve[-1])
        if val is not None:
            net.theta[:] = intermediate_result.x  # the iterate, not the last line-search trial
            val.record(est, net, n_threads, track_best=True)
            line += ", validation score = %.6f" % est.validation_scores_[-1]
        if est.verbose:
            now = time.perf_counter()
            print(line + ", %.2f s" % (now - tic[0]), flush=True)
            tic[0] = now

    try:
        result = scipy.optimize.minimize(
            fun, net.theta.astype(np.float64), method="L-BFGS-B", jac=True,
            callback=callback,
            options={"maxfun": est.max_fun, "maxiter": est.max_iter, "gtol": est.tol},
        )
    except KeyboardInterrupt:
        warnings.warn("Training interrupted by user.")
        est.n_iter_ = len(curve)
        est.loss_ = curve[-1] if curve else np.nan
        est.loss_curve_ = curve
        est.best_loss_ = min(curve, default=est.loss_)
        return
    if result.status != 0:
        warnings.warn(
            "lbfgs failed to converge after %d iterations (status=%d): %s. "
            "Increase the number of iterations (max_iter) or scale the data."
            % (result.nit, result.status, result.message),
            ConvergenceWarning,
        )
    est.n_iter_ = min(int(result.nit), est.max_iter)
    net.theta[:] = result.x
    est.loss_ = float(result.fun)
    est.loss_curve_ = curve
    est.best_loss_ = min(curve, default=est.loss_)
    _check_finite(est, est.loss_, net.theta)
