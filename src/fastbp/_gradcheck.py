"""Gradient check of any fastbp estimator against float64 central differences."""
import numbers

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._threads import blas_single_thread
from ._typing import Any, ArrayLike


def check_gradients(estimator: Any, X: Any, y: Any, *, sample_weight: ArrayLike | None = None,
                    eps: float = 1e-6, max_entries: int | None = None,
                    random_state: int | np.random.RandomState | None = 0) -> float:
    """Compare ``estimator.backprop`` with float64 central differences.

    The network is copied to float64 (a float32 model is checked through its
    float64 twin), every entry of theta (or ``max_entries`` random ones) is
    moved by ±eps and the loss re-evaluated.

    Parameters
    ----------
    estimator : fitted fastbp estimator
    X, y : array-like
        Data, as for the estimator's ``fit``.
    sample_weight : array-like of shape (n_samples,), default=None
    eps : float, default=1e-6
        Step of the central differences.
    max_entries : int, default=None
        Check at most this many randomly chosen entries of each parameter
        array (every entry when None), so that every layer is covered.
    random_state : int, RandomState instance or None, default=0
        Chooses the entries when ``max_entries`` is set.

    Returns
    -------
    max_relative_error : float
        The largest over the checked entries of
        ``|analytic - numeric| / max(|analytic|, |numeric|, 1e-3 * |loss|)``:
        each entry relative to its own size, so a wrong small entry counts
        as much as a wrong large one. The floor keeps entries that are zero
        or nearly so, where the central difference's own rounding error
        (about 1e-16 * |loss| / eps) would dominate, from reading as errors.
    """
    check_is_fitted(estimator, "_network")
    if (not isinstance(eps, numbers.Real) or isinstance(eps, bool)
            or not 0 < eps < float("inf")):
        raise ValueError(f"eps must be a positive finite float; got {eps!r}.")
    if max_entries is not None and (not isinstance(max_entries, numbers.Integral)
                                    or isinstance(max_entries, bool) or max_entries < 1):
        raise ValueError(f"max_entries must be None or an int >= 1; got {max_entries!r}.")
    net = estimator._network.astype(np.float64)
    X, Y, sample_weight = estimator._backprop_batch(X, y, sample_weight, np.float64)
    alpha = float(estimator.alpha)
    ws = net.workspace(net.batch_rows(X))

    def loss():
        with blas_single_thread():
            return net.loss_and_grad(X, Y, sample_weight, alpha, ws, 1)

    floor = 1e-3 * abs(loss())
    analytic = net.grad.copy()
    entries = np.arange(net.theta.size)
    if max_entries is not None:
        rng = check_random_state(random_state)
        chosen = []
        for start, stop, _ in net._slices.values():
            block = entries[start:stop]
            if block.size > max_entries:
                block = np.sort(rng.choice(block, max_entries, replace=False))
            chosen.append(block)
        entries = np.concatenate(chosen)
    numeric = np.empty(entries.size)
    theta = net.theta
    for j, i in enumerate(entries):
        saved = theta[i]
        theta[i] = saved + eps
        f_plus = loss()
        theta[i] = saved - eps
        f_minus = loss()
        theta[i] = saved
        numeric[j] = (f_plus - f_minus) / (2 * eps)
    analytic = analytic[entries]
    scale = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)),
                       max(floor, np.finfo(np.float64).tiny))
    return float(np.max(np.abs(analytic - numeric) / scale, initial=0.0))
