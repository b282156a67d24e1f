"""What the solvers keep to stop early: the validation set, scored after
every epoch (iteration), the records of its scores and losses, and the count
of epochs without improvement that ends training after its patience."""
import numpy as np
import scipy.sparse as sp

from ._batches import batch_source
from ._kernels import _losses
from ._network import LOSS_CODES, output_loss_delta


def _patience(settings):
    """Epochs without improvement before stopping: ``n_iter_no_change``, or
    for 'auto' half of ``max_iter`` and at least 10, so that a network whose
    loss plateaus or spikes for a while (RNNs) still gets the epochs asked for."""
    if isinstance(settings.n_iter_no_change, str):  # 'auto'
        return max(10, settings.max_iter // 2)
    return settings.n_iter_no_change


def _start_validation_records(record):
    """Start the validation records where a model has none (a first fit, or
    one continued after lbfgs or without validation data)."""
    if record.validation_scores is None:
        record.validation_scores, record.best_validation_score = [], -np.inf
    if record.validation_losses is None:
        record.validation_losses = []


class _ValidationSet:
    """A validation set, scored and evaluated once per epoch (iteration).

    Parameters
    ----------
    net : Network
    X : ndarray, sparse matrix, Ragged or PaddedImages
        Input, ready for ``net.predict``.
    Y : ndarray of shape (n_samples, n_outputs) or Ragged
        Encoded targets, as the training loss sees them.
    y : array-like or list
        Targets in the form the validation score takes them.
    sample_weight : ndarray of shape (n_samples,) or None
    """

    def __init__(self, net, X, Y, y, sample_weight):
        self.X = X.tocsr() if sp.issparse(X) else X  # predict slices rows
        self.y = y
        Y, sample_weight = batch_source(X, Y, sample_weight).predicted_rows()
        # (class codes stay codes: output_loss_delta reads them as they are)
        self.Y = np.ascontiguousarray(Y, dtype=net.dtype if Y.ndim == 2 else None)
        if sample_weight is not None:
            sample_weight = np.ascontiguousarray(sample_weight)
            weight_sum = float(sample_weight.sum())
            if not weight_sum > 0:
                raise ValueError(
                    "The sample weights of the validation set sum to zero (or are negative "
                    "or NaN), so its score and loss are undefined.")
        else:
            weight_sum = float(self.Y.shape[0])
        self.sample_weight, self.weight_sum = sample_weight, weight_sum
        # scratch the loss kernel writes
        self.delta = np.empty((self.Y.shape[0], net.n_outputs), dtype=net.dtype)

    def evaluate(self, score, net, n_threads):
        """Return (score, loss): ``score(outputs, y, sample_weight)`` (accuracy
        or R²) and the weighted mean data loss, the training loss without the
        L2 term."""
        logits = net.predict(self.X, n_threads, logits=True)
        outputs = logits.copy()
        _losses.output_activate(outputs, LOSS_CODES[net.loss], n_threads)  # what predict gives
        sw = None if self.sample_weight is None else self.sample_weight.astype(
            net.dtype, copy=False)
        total = output_loss_delta(net.loss, logits, self.Y, sw, self.delta, 1.0, n_threads)
        return score(outputs, self.y, self.sample_weight), total / self.weight_sum

    def record(self, record, score, net, n_threads, track_best):
        """Append this epoch's score and loss to ``record``; with
        ``track_best``, also keep the best score (early stopping keeps it
        itself, with the parameters that scored it)."""
        value, loss = self.evaluate(score, net, n_threads)
        record.validation_scores.append(value)
        record.validation_losses.append(loss)
        if track_best and value > record.best_validation_score:
            record.best_validation_score = value


def _update_no_improvement_count(record, net, early_stopping, tol):
    if early_stopping:
        score = record.validation_scores[-1]
        if score < record.best_validation_score + tol:
            record.no_improvement_count += 1
        else:
            record.no_improvement_count = 0
        if score > record.best_validation_score:
            record.best_validation_score = score
            record.best_theta = net.theta.copy()
    else:
        if record.losses[-1] > record.best_loss - tol:
            record.no_improvement_count += 1
        else:
            record.no_improvement_count = 0
        if record.losses[-1] < record.best_loss:
            record.best_loss = record.losses[-1]
