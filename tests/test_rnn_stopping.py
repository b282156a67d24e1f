"""The RNNs' stopping defaults: n_iter_no_change='auto' (half of max_iter,
at least 10) and restore_best=True, against the MLP rule they replace."""
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from fastbp import MLPClassifier, RNNClassifier, RNNRegressor
from fastbp._base import InvalidParameterError


def _fit(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


def _memory_task(n, seed, n_classes=4):
    """Sequences of 8 to 15 noisy steps whose class is the direction the
    first step points to: the network must carry it to the last step."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for _ in range(n):
        x = 0.5 * rng.standard_normal((rng.integers(8, 16), 2))
        c = rng.integers(n_classes)
        angle = 2 * np.pi * c / n_classes
        x[0] = [2 * np.cos(angle), 2 * np.sin(angle)]
        X.append(x)
        y.append(c)
    return X, np.array(y)


def test_rnn_defaults_train_through_a_spike_of_the_loss():
    """Adam at this learning rate makes the loss spike (epoch 26 here): the
    MLP's rule (10 epochs without a new best) stops during the recovery with
    a half-trained network; the defaults train on and solve the task."""
    X, y = _memory_task(200, 0)
    X_test, y_test = _memory_task(400, 1)
    params = dict(hidden_size=32, learning_rate_init=0.01, batch_size=16, max_iter=100,
                  random_state=4)
    old = _fit(RNNClassifier(n_iter_no_change=10, restore_best=False, **params), X, y)
    new = _fit(RNNClassifier(**params), X, y)

    curve = np.asarray(new.loss_curve_)
    spikes = [i for i in range(1, len(curve)) if curve[i] > 1.5 * curve[:i].min()]
    assert spikes and spikes[0] < old.n_iter_ <= spikes[0] + 15
    assert old.loss_curve_ == new.loss_curve_[:old.n_iter_]  # one path until old stops
    assert new.n_iter_ > old.n_iter_ + 30
    assert new.loss_curve_[-1] < 0.5 * min(old.loss_curve_)
    assert old.score(X_test, y_test) < 0.6
    assert new.score(X_test, y_test) > 0.9


@pytest.mark.parametrize("max_iter, patience", [(16, 10), (60, 30), (200, 100)])
def test_auto_patience_is_half_of_max_iter_and_at_least_10(max_iter, patience):
    # tol above any possible gain: no epoch after the first counts as an
    # improvement, and training stops once patience + 1 of them have passed
    X, y = _memory_task(16, 0)
    est = _fit(RNNClassifier(hidden_size=2, max_iter=max_iter, tol=1e3, batch_size=16,
                             random_state=0), X, y)
    assert est.n_iter_ == patience + 2
    mlp_rule = _fit(RNNClassifier(hidden_size=2, max_iter=max_iter, tol=1e3, batch_size=16,
                                  n_iter_no_change=10, random_state=0), X, y)
    assert mlp_rule.n_iter_ == 12


@pytest.mark.parametrize("restore_best", [True, False])
def test_restore_best_keeps_the_epoch_of_lowest_training_loss(epoch_snapshots, restore_best):
    X, y = _memory_task(200, 0)
    # the spike of the test above, trained until just after it
    est = _fit(RNNClassifier(hidden_size=32, learning_rate_init=0.01, batch_size=16,
                             max_iter=28, random_state=4, restore_best=restore_best), X, y)
    best = int(np.argmin(est.loss_curve_))
    assert best < est.n_iter_ - 1  # the last epoch is not the best one
    kept = epoch_snapshots[best] if restore_best else epoch_snapshots[-1]
    np.testing.assert_array_equal(est._network.theta, kept)
    assert est.best_loss_ == est.loss_curve_[best]
    assert est.loss_ == est.loss_curve_[-1]  # the record of every epoch stays


def test_restore_best_leaves_early_stopping_its_own_best(epoch_snapshots):
    """With early stopping the parameters of the best validation score are
    kept, whatever the training loss did."""
    X, y = _memory_task(200, 0)
    X_val, y_val = _memory_task(100, 2)
    est = _fit(RNNClassifier(hidden_size=32, learning_rate_init=0.01, batch_size=16,
                             max_iter=28, random_state=4, early_stopping=True), X, y,
               X_val=X_val, y_val=y_val)
    best = int(np.argmax(est.validation_scores_))
    np.testing.assert_array_equal(est._network.theta, epoch_snapshots[best])


def test_partial_fit_is_one_epoch_whatever_restore_best():
    X, y = _memory_task(40, 0)
    est = RNNRegressor(hidden_size=4, random_state=0).partial_fit(X, y.astype(float))
    again = RNNRegressor(hidden_size=4, random_state=0, restore_best=False).partial_fit(
        X, y.astype(float))
    np.testing.assert_array_equal(est._network.theta, again._network.theta)


def test_mlps_keep_sklearns_stopping_defaults():
    est = MLPClassifier()
    assert est.n_iter_no_change == 10 and "restore_best" not in est.get_params()


@pytest.mark.parametrize("params, message", [
    (dict(n_iter_no_change="never"), "must be an int >= 1, inf or 'auto'"),
    (dict(n_iter_no_change=0), "n_iter_no_change"),
    (dict(restore_best="yes"), "restore_best must be a bool"),
])
def test_bad_stopping_parameters(params, message):
    X, y = _memory_task(10, 0)
    with pytest.raises(InvalidParameterError, match=message):
        RNNClassifier(max_iter=1, **params).fit(X, y)
