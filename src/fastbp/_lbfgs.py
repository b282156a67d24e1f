"""The full-batch solver: scipy's L-BFGS-B on the network's flat parameter
vector, one batch of every sample per loss evaluation."""
import time
import warnings

import numpy as np
import scipy.optimize
from sklearn.exceptions import ConvergenceWarning

from ._batches import batch_source
from ._early_stopping import _start_validation_records, _ValidationSet
from ._solvers import _check_finite


def fit_lbfgs(net, X, Y, sample_weight, record, settings, n_threads, *, validation=None,
              score=None):
    """Full-batch L-BFGS-B (scipy) on the flat parameter vector; return the
    training record, updated.

    Parameters are those of :func:`fit_stochastic`. ``validation`` is scored
    (by ``score``) after every iteration, on the iterate; L-BFGS does not
    stop on it. The record's losses become this call's alone.
    """
    val = None
    if validation is not None:
        val = _ValidationSet(net, *validation)
        # this fit's records only, as the losses
        record.validation_scores = record.validation_losses = None
        _start_validation_records(record)
    source = batch_source(X, Y, sample_weight)
    ws = net.workspace(source.batch_rows(len(source)))
    X, Y, sample_weight = source.whole(net.dtype)
    alpha = float(settings.alpha)
    curve = []
    tic = [time.perf_counter()]
    start = net.theta.astype(np.float64)
    accepted = [start]  # the last iterate, which Ctrl-C leaves the model at

    def fun(x):
        net.theta[:] = x
        loss = net.loss_and_grad(X, Y, sample_weight, alpha, ws, n_threads)
        return loss, net.grad.astype(np.float64)

    def callback(intermediate_result):
        accepted[0] = intermediate_result.x.copy()
        curve.append(float(intermediate_result.fun))
        line = "Iteration %d, loss = %.8f" % (len(curve), curve[-1])
        if val is not None:
            net.theta[:] = intermediate_result.x  # the iterate, not the last line-search trial
            val.record(record, score, net, n_threads, track_best=True)
            line += ", validation score = %.6f" % record.validation_scores[-1]
        if settings.verbose:
            now = time.perf_counter()
            print(line + ", %.2f s" % (now - tic[0]), flush=True)
            tic[0] = now

    try:
        result = scipy.optimize.minimize(
            fun, start, method="L-BFGS-B", jac=True,
            callback=callback,
            options={"maxfun": settings.max_fun, "maxiter": settings.max_iter,
                     "gtol": settings.tol},
        )
    except KeyboardInterrupt:
        warnings.warn("Training interrupted by user.")
        # not a line search's untried step: the weights that loss_ describes
        net.theta[:] = accepted[0]
        record.n_iter = len(curve)
        record.loss = curve[-1] if curve else np.nan
        record.losses = curve
        record.best_loss = min(curve, default=record.loss)
        return record
    if result.status != 0:
        warnings.warn(
            "lbfgs failed to converge after %d iterations (status=%d): %s. "
            "Increase the number of iterations (max_iter) or scale the data."
            % (result.nit, result.status, result.message),
            ConvergenceWarning,
        )
    record.n_iter = min(int(result.nit), settings.max_iter)
    net.theta[:] = result.x
    record.loss = float(result.fun)
    record.losses = curve
    record.best_loss = min(curve, default=record.loss)
    _check_finite(record.loss, net.theta)
    return record
