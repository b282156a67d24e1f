"""Backpropagation against float64 central differences and against
scikit-learn's own backprop on the same weights."""
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor

from fastbp import MLPClassifier, MLPRegressor, check_gradients

ACTIVATIONS = ["identity", "logistic", "tanh", "relu"]
DEPTHS = [(), (5,), (4, 3, 5)]


def _data(task, rng, n=12, n_features=4):
    X = rng.standard_normal((n, n_features))
    if task == "multiclass":
        y = np.arange(n) % 3
    elif task == "binary":
        y = np.arange(n) % 2
    elif task == "multilabel":
        y = (rng.random((n, 3)) > 0.5).astype(int)
        y[0] = [1, 1, 0]
        y[1] = [0, 0, 1]
    elif task == "regression":
        y = rng.standard_normal((n, 2))
    elif task == "poisson":
        y = rng.poisson(1.5, n).astype(float)
    return X, y


def _fitted(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y)


CASES = [
    (MLPClassifier, "log_loss", "multiclass"),
    (MLPClassifier, "log_loss", "binary"),
    (MLPClassifier, "log_loss", "multilabel"),
    (MLPClassifier, "squared_error", "multiclass"),
    (MLPClassifier, "squared_error", "binary"),
    (MLPRegressor, "squared_error", "regression"),
    (MLPRegressor, "poisson", "poisson"),
]


@pytest.mark.parametrize("cls,loss,task", CASES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("hidden", DEPTHS)
def test_gradients_match_central_differences(cls, loss, task, activation, hidden):
    rng = np.random.default_rng(0)
    X, y = _data(task, rng)
    est = _fitted(cls(hidden_layer_sizes=hidden, activation=activation, loss=loss,
                      alpha=0.3, max_iter=2, random_state=0), X, y)
    assert check_gradients(est, X, y) <= 1e-6


def test_gradients_with_sample_weight_and_float32_model():
    # the float32 model's own backprop, against sklearn's _backprop in float64
    # on the same weights (check_gradients checks a float64 twin)
    rng = np.random.default_rng(1)
    X, y = _data("multiclass", rng)
    params = dict(hidden_layer_sizes=(6,), activation="tanh", alpha=0.1, max_iter=2,
                  random_state=0)
    est = _fitted(MLPClassifier(**params), X.astype(np.float32), y)
    assert est.coefs_[0].dtype == np.float32
    sw = rng.random(len(y)) + 0.1
    assert check_gradients(est, X, y, sample_weight=sw) <= 1e-6
    sk = _fitted(SkMLPClassifier(**params), X, y)
    sk.coefs_ = [c.astype(np.float64) for c in est.coefs_]
    sk.intercepts_ = [c.astype(np.float64) for c in est.intercepts_]
    loss, coef_grads, intercept_grads = _sklearn_backprop(
        sk, X.astype(np.float32).astype(np.float64),
        sk._label_binarizer.transform(y).astype(float), sw.astype(np.float32).astype(float))
    result = est.backprop(X.astype(np.float32), y, sample_weight=sw)
    assert result.loss == pytest.approx(loss, rel=1e-5)
    for i, (cg, ig) in enumerate(zip(coef_grads, intercept_grads)):
        for ours, theirs in ((result.gradients[f"coef_{i}"], cg),
                             (result.gradients[f"intercept_{i}"], ig)):
            assert ours.dtype == np.float32
            np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5 * np.abs(theirs).max())


def test_check_gradients_detects_a_wrong_gradient(monkeypatch):
    """The check must be able to fail: corrupt one gradient entry."""
    rng = np.random.default_rng(2)
    X, y = _data("multiclass", rng)
    est = _fitted(MLPClassifier(hidden_layer_sizes=(5,), max_iter=2, random_state=0), X, y)
    cls = type(est._network)
    original = cls.loss_and_grad

    def broken(self, *args, **kwargs):
        loss = original(self, *args, **kwargs)
        self.grad[3] += 0.01
        return loss

    monkeypatch.setattr(cls, "loss_and_grad", broken)
    assert check_gradients(est, X, y) > 1e-3


def test_check_gradients_measures_each_entry_on_its_own_scale(monkeypatch):
    """A wrong entry far smaller than the largest gradient still fails the
    check: tripling the smallest clearly nonzero entry (a normwise error
    against the whole gradient read 1e-4 here, under a 1e-3 bar)."""
    rng = np.random.default_rng(2)
    X, y = _data("multiclass", rng)
    est = _fitted(MLPClassifier(hidden_layer_sizes=(5,), max_iter=2, random_state=0), X, y)
    net = est._network
    Xb, Y, sw = est._backprop_batch(X, y, None, net.dtype)
    loss = net.loss_and_grad(Xb, Y, sw, est.alpha, net.workspace(len(X)), 1)
    grad = np.abs(net.grad)
    candidates = np.flatnonzero(grad > 1e-2 * loss)
    small = candidates[np.argmin(grad[candidates])]
    assert grad[small] < 0.1 * grad.max()  # small next to the largest
    original = type(net).loss_and_grad

    def broken(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        self.grad[small] *= 3
        return result

    monkeypatch.setattr(type(net), "loss_and_grad", broken)
    assert check_gradients(est, X, y) > 0.5


def _sklearn_backprop(sk, X, Y, sample_weight=None):
    """Loss and gradients from sklearn's own _backprop (the reference)."""
    n = X.shape[0]
    layer_units = [X.shape[1]] + list(sk.hidden_layer_sizes) + [sk.n_outputs_]
    activations = [X] + [None] * (len(layer_units) - 1)
    deltas = [None] * (len(activations) - 1)
    coef_grads = [np.empty((a, b)) for a, b in zip(layer_units[:-1], layer_units[1:])]
    intercept_grads = [np.empty(b) for b in layer_units[1:]]
    loss, cg, ig = sk._backprop(X, Y, sample_weight, activations, deltas, coef_grads,
                                intercept_grads)
    assert n == X.shape[0]
    return loss, cg, ig


@pytest.mark.parametrize("task", ["multiclass", "binary", "multilabel", "regression1"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_backprop_matches_sklearn(task, activation, weighted):
    rng = np.random.default_rng(3)
    if task == "regression1":
        X, y = rng.standard_normal((15, 4)), rng.standard_normal(15)
        ours, sk = MLPRegressor, SkMLPRegressor
    else:
        X, y = _data(task, rng, n=15)
        ours, sk = MLPClassifier, SkMLPClassifier
    params = dict(hidden_layer_sizes=(6, 5), activation=activation, alpha=0.2,
                  max_iter=3, random_state=0)
    a = _fitted(ours(**params), X, y)
    b = _fitted(sk(**params), X, y)
    b.coefs_ = [c.copy() for c in a.coefs_]
    b.intercepts_ = [c.copy() for c in a.intercepts_]
    sw = rng.random(len(X)) + 0.5 if weighted else None
    Y = y.reshape(len(y), -1) if task == "regression1" else b._label_binarizer.transform(y)
    loss, coef_grads, intercept_grads = _sklearn_backprop(b, X, Y.astype(float), sw)
    result = a.backprop(X, y, sample_weight=sw)
    assert result.loss == pytest.approx(loss, rel=1e-12)
    for i, (cg, ig) in enumerate(zip(coef_grads, intercept_grads)):
        np.testing.assert_allclose(result.gradients[f"coef_{i}"], cg, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(result.gradients[f"intercept_{i}"], ig, rtol=1e-10,
                                   atol=1e-14)


def test_backprop_deltas_are_dloss_dz():
    """δ of the first layer equals d loss / d z_1 by central differences on z_1."""
    rng = np.random.default_rng(4)
    X, y = _data("multiclass", rng, n=6)
    est = _fitted(MLPClassifier(hidden_layer_sizes=(4,), activation="tanh", alpha=0.0,
                                max_iter=2, random_state=0), X, y)
    result = est.backprop(X, y)
    assert [d.shape for d in result.deltas] == [(6, 4), (6, 3)]
    W0, b0 = est.coefs_[0], est.intercepts_[0]
    W1, b1 = est.coefs_[1], est.intercepts_[1]
    Y = est._label_binarizer.transform(y)

    def loss_of_z1(z1):
        z2 = np.tanh(z1) @ W1 + b1
        lse = np.log(np.exp(z2 - z2.max(1, keepdims=True)).sum(1)) + z2.max(1)
        return np.mean(lse - (Y * z2).sum(1))

    z1 = X @ W0 + b0
    numeric = np.zeros_like(z1)
    for idx in np.ndindex(*z1.shape):
        e = np.zeros_like(z1)
        e[idx] = 1e-6
        numeric[idx] = (loss_of_z1(z1 + e) - loss_of_z1(z1 - e)) / 2e-6
    np.testing.assert_allclose(result.deltas[0], numeric, rtol=1e-6, atol=1e-10)
    # backprop leaves the model untouched
    np.testing.assert_array_equal(est.coefs_[0], W0)


@pytest.mark.parametrize("bad", [dict(eps=0), dict(eps=-1e-6), dict(eps=float("nan")),
                                 dict(max_entries=0), dict(max_entries=-1),
                                 dict(max_entries=2.5)])
def test_check_gradients_rejects_bad_settings(bad):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((10, 3)), rng.integers(0, 2, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="eps must be|max_entries must be"):
        check_gradients(est, X, y, **bad)


def test_several_outputs_step_along_the_gradient_of_the_reported_loss():
    # sklearn reports the same loss but steps along n_outputs times its gradient
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5))
    Y = np.c_[2 * X[:, 0] + X[:, 1], -X[:, 2], X[:, 3]]
    params = dict(hidden_layer_sizes=(7,), alpha=0.0, max_iter=2, random_state=0)
    ours, theirs = _fitted(MLPRegressor(**params), X, Y), _fitted(SkMLPRegressor(**params), X, Y)
    assert check_gradients(ours, X, Y) <= 1e-6
    theirs.coefs_ = [c.copy() for c in ours.coefs_]
    theirs.intercepts_ = [c.copy() for c in ours.intercepts_]
    loss, coef_grads, intercept_grads = _sklearn_backprop(theirs, X, Y)
    result = ours.backprop(X, Y)
    assert result.loss == pytest.approx(loss, rel=1e-12)
    for i, (cg, ig) in enumerate(zip(coef_grads, intercept_grads)):
        np.testing.assert_allclose(3 * result.gradients[f"coef_{i}"], cg, rtol=1e-10)
        np.testing.assert_allclose(3 * result.gradients[f"intercept_{i}"], ig, rtol=1e-10)
