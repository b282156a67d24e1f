"""The one solver loop that trains every fastbp estimator.

A network provides ``theta``, ``grad``, ``loss_and_grad`` and how one epoch
of mini-batches runs (``plan_epochs``, ``run_epoch``); everything else
(epochs, shuffling, batch size, learning-rate schedules, early stopping,
verbose output, the loss curve, Ctrl-C) lives here, written to
follow scikit-learn's MLP step for step so that the same ``random_state``
gives the same trajectory. Beside it: the optimizers it steps
(``_optimizers``), the validation set and stopping count
(``_early_stopping``), the data it batches (``_batches``), and the
full-batch L-BFGS solver (``_lbfgs``).

The solvers know nothing of estimators: they take the hyperparameters as a
:class:`SolverSettings`, the validation score as a callable, and a
:class:`TrainingRecord`, which they return updated; the estimator stores its
fitted attributes from it (as sklearn's ``_fit_stochastic`` does).
"""
import time
import warnings
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from ._batches import batch_source
from ._early_stopping import (
    _patience, _start_validation_records, _update_no_improvement_count, _ValidationSet,
)
from ._optimizers import OPTIMIZERS, Optimizer
from ._progress import EpochProgress


@dataclass(frozen=True)
class SolverSettings:
    """The hyperparameters the solvers read, by their sklearn names.

    Built by the estimator at each fit call (see :meth:`from_params`), so a
    ``set_params`` between ``partial_fit`` calls takes effect at the next one.
    ``clip_grad_norm`` and ``restore_best`` are the RNNs' own; the other
    estimators keep the defaults.
    """

    solver: str = "adam"
    alpha: float = 0.0001
    batch_size: Any = "auto"
    learning_rate: str = "constant"
    learning_rate_init: float = 0.001
    power_t: float = 0.5
    max_iter: int = 200
    shuffle: bool = True
    tol: float = 1e-4
    verbose: Any = False
    momentum: float = 0.9
    nesterovs_momentum: bool = True
    early_stopping: bool = False
    validation_fraction: float = 0.1
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    n_iter_no_change: Any = 10
    max_fun: int = 15000
    clip_grad_norm: Any = None
    restore_best: bool = False

    @classmethod
    def from_params(cls, params):
        """The settings found in ``params``, a mapping of hyperparameters by
        name (other names are ignored; missing ones keep their defaults)."""
        return cls(**{f.name: params[f.name] for f in fields(cls) if f.name in params})


@dataclass
class TrainingRecord:
    """What training has recorded, carried from one fit call to the next.

    The solvers take one and return it updated; the estimator stores each
    field as the fitted attribute named in ``RECORD_ATTRIBUTES``.

    Attributes
    ----------
    losses : list of float
        The training loss after each epoch (``loss_curve_``).
    loss : float or None
        The last of them (``loss_``).
    n_iter : int
        Epochs (L-BFGS iterations) run by the last fit call.
    t : int
        Training samples seen, over all calls.
    best_loss : float or None
        The lowest training loss (None while early stopping watches the
        validation score instead).
    validation_scores, validation_losses : list of float or None
        Score and loss on the validation set after each epoch (None without one).
    best_validation_score : float or None
    no_improvement_count : int
        Epochs since the watched quantity last improved by more than tol.
    best_theta : ndarray or None
        Early stopping: the parameters of the best validation score.
    optimizer : Optimizer or None
        The stochastic optimizer and its state.
    """

    losses: list
    loss: float | None = None
    n_iter: int = 0
    t: int = 0
    best_loss: float | None = None
    validation_scores: list | None = None
    validation_losses: list | None = None
    best_validation_score: float | None = None
    no_improvement_count: int = 0
    best_theta: np.ndarray | None = None
    optimizer: Optimizer | None = None


# The estimator attribute that holds each field of a TrainingRecord.
RECORD_ATTRIBUTES = {
    "losses": "loss_curve_",
    "loss": "loss_",
    "n_iter": "n_iter_",
    "t": "t_",
    "best_loss": "best_loss_",
    "validation_scores": "validation_scores_",
    "validation_losses": "validation_loss_curve_",
    "best_validation_score": "best_validation_score_",
    "no_improvement_count": "_no_improvement_count",
    "best_theta": "_best_theta",
    "optimizer": "_optimizer",
}


def _subset(A, idx):
    """Rows idx of targets as scored: an array, or a list (of sequences)."""
    if isinstance(A, list):
        return [A[i] for i in idx]
    return A[idx]


def _check_finite(loss, theta):
    if not np.isfinite(loss) or not np.all(np.isfinite(theta)):
        raise ValueError(
            "Solver produced non-finite parameter weights or loss. The input data "
            "may contain large values and need to be preprocessed (e.g. "
            "StandardScaler), or the learning rate is too high for this model."
        )


def fit_stochastic(net, X, Y, sample_weight, y_raw, record, settings, rng, n_threads, *,
                   incremental=False, validation=None, score=None, stratify=False):
    """Train ``net`` with SGD or Adam; return the training record, updated.

    Parameters
    ----------
    net : Network
    X : ndarray or sparse matrix of shape (n_samples, ...)
    Y : ndarray of shape (n_samples, n_outputs)
        Encoded targets in the network's dtype.
    sample_weight : ndarray of shape (n_samples,) or None
    y_raw : array-like of shape (n_samples, ...)
        Targets as the user gave them, for the validation score.
    record : TrainingRecord
        What earlier calls recorded (a fresh one for a first fit); updated
        in place. Its optimizer is continued by ``incremental`` calls.
    settings : SolverSettings
    rng : numpy.random.RandomState
        Draws the validation split and the epochs' orders.
    n_threads : int
    incremental : bool, default=False
        partial_fit: one pass, optimizer state kept.
    validation : tuple (X, Y, y, sample_weight) or None
        A validation set given to fit, in the forms of (X, Y, y_raw,
        sample_weight): scored after every epoch, and what early stopping
        watches instead of a split of X.
    score : callable, default=None
        ``score(outputs, y, sample_weight)``: the validation score (higher is
        better) of the network's outputs (those of ``predict``) on targets y
        in the form of ``y_raw``. Needed with early stopping or ``validation``.
    stratify : bool, default=False
        Early stopping splits its validation set stratified by ``y_raw``.

    Returns
    -------
    record : TrainingRecord
        ``record``, with this call's epochs added.
    """
    optimizer_cls = OPTIMIZERS[settings.solver]
    optimizer = record.optimizer
    if not incremental or not isinstance(optimizer, optimizer_cls):
        optimizer = record.optimizer = optimizer_cls(net.theta.size, net.dtype, settings)
    else:
        optimizer.follow(settings)

    if settings.early_stopping and incremental:
        raise ValueError("partial_fit does not support early_stopping=True")
    early_stopping = settings.early_stopping
    validating = early_stopping or validation is not None
    # Continuing after lbfgs, or with early_stopping switched: start the
    # records this fit keeps (sklearn would fail on the missing attributes).
    if validating:
        _start_validation_records(record)
    if validation is not None and not incremental:
        # a validation set given to this fit is scored afresh: the best score
        # of an earlier fit, on other data, does not compare
        record.best_validation_score = -np.inf
        record.no_improvement_count = 0
    if not early_stopping and record.best_loss is None:
        record.best_loss = np.inf
    source = batch_source(X, Y, sample_weight)
    n_total = len(source)
    if validation is not None:
        train = source
        val = _ValidationSet(net, *validation)
    elif early_stopping:
        # Splitting indices draws the same permutation sklearn's MLP draws
        # when it splits the arrays themselves.
        train_idx, val_idx = train_test_split(
            np.arange(n_total), random_state=rng, test_size=settings.validation_fraction,
            stratify=y_raw if stratify else None)
        if len(val_idx) < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' "
                "or the size of your dataset."
            )
        train, held_out = source.subset(train_idx), source.subset(val_idx)
        val = _ValidationSet(net, held_out.X, held_out.Y, _subset(y_raw, val_idx),
                             held_out.sample_weight)
    else:
        train = source
        val = None

    n_samples = len(train)
    if settings.batch_size == "auto":
        batch_size = min(200, n_samples)
    else:
        if settings.batch_size > n_samples:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than "
                "sample size. It is going to be clipped"
            )
        batch_size = int(np.clip(settings.batch_size, 1, n_samples))

    # Buffers are allocated once per fit; the epoch loop allocates no arrays.
    plan = net.plan_epochs(train, batch_size, settings, n_threads)
    # int32 halves the index arrays, the largest per-sample buffers of a fit.
    index_dtype = np.int32 if n_samples < 2**31 else np.intp
    identity = np.arange(n_samples, dtype=index_dtype)
    sample_idx = identity.copy()
    shuffled = None  # buffers for the next epoch's order, made on first use
    theta = net.theta

    n_batches = -(-n_samples // batch_size)
    patience = _patience(settings)
    # restore_best (an RNN parameter, on by default there): end with the
    # parameters of this fit's lowest training loss, so that a late spike of
    # the loss is not what the model keeps (early stopping keeps its own best).
    kept = kept_loss = None
    if settings.restore_best and not early_stopping and not incremental:
        kept, kept_loss = np.empty_like(theta), np.inf
    record.n_iter = 0
    progress = None
    try:
        for it in range(settings.max_iter):
            tic = time.perf_counter()
            if settings.shuffle:
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
            if settings.verbose >= 2:
                progress = EpochProgress(record.n_iter + 1, n_batches, n_samples)
            accumulated_loss = net.run_epoch(plan, sample_idx, optimizer, progress)
            if progress is not None:
                progress.close()
                progress = None

            record.n_iter += 1
            record.loss = accumulated_loss / n_samples
            _check_finite(record.loss, theta)
            record.t += n_samples
            record.losses.append(record.loss)
            if kept is not None and record.loss < kept_loss:
                kept_loss = record.loss
                np.copyto(kept, theta)
            if val is not None:
                val.record(record, score, net, n_threads, track_best=not early_stopping)
            _update_no_improvement_count(record, net, early_stopping, settings.tol)
            if settings.verbose:
                line = "Iteration %d, loss = %.8f" % (record.n_iter, record.loss)
                if val is not None:
                    line += ", validation score = %.6f" % record.validation_scores[-1]
                print(line + ", %.2f s" % (time.perf_counter() - tic), flush=True)
            optimizer.iteration_ends(record.t)

            if record.no_improvement_count > patience:
                what = "Validation score" if early_stopping else "Training loss"
                msg = "%s did not improve more than tol=%f for %d consecutive epochs." % (
                    what, settings.tol, patience)
                stop, msg = optimizer.trigger_stopping(msg)
                _say(settings, msg)
                if stop:
                    break
                record.no_improvement_count = 0

            if incremental:
                break
            if record.n_iter == settings.max_iter:
                warnings.warn(
                    "Stochastic Optimizer: Maximum iterations (%d) reached and the "
                    "optimization hasn't converged yet." % settings.max_iter,
                    ConvergenceWarning,
                )
    except KeyboardInterrupt:
        warnings.warn("Training interrupted by user.")
    finally:
        if progress is not None:
            progress.close()
    net.end_epochs(plan)

    if early_stopping and record.best_theta is not None:
        theta[:] = record.best_theta
    elif kept is not None and kept_loss < record.loss:
        _say(settings, "Restoring the parameters of the lowest training loss, %.8f." % kept_loss)
        theta[:] = kept
    return record


def _say(settings, msg):
    if settings.verbose:
        print(msg)
