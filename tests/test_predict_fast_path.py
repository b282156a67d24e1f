"""predict's fast path (issue 15): a predict allocates no workspace after the
first of its size, and that changes no bit of what predict gives."""
import threading
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import fastbp
from fastbp import _network, _sequences
from fastbp._threads import blas_single_thread

NAMES = ["MLPClassifier", "MLPRegressor", "LeNet5Classifier", "RNNClassifier",
         "RNNRegressor"]
CLASSIFIERS = {"MLPClassifier", "LeNet5Classifier", "RNNClassifier"}


def make(name, **params):
    params = {"max_iter": 2, "random_state": 0, "n_jobs": 2, **params}
    if name.startswith("MLP"):
        params = {"hidden_layer_sizes": (9, 5), **params}
    elif name.startswith("RNN"):
        params = {"hidden_size": 6, **params}
    return getattr(fastbp, name)(**params)


def data(name, n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if name.startswith("MLP"):
        return rng.standard_normal((n, 7)).astype(dtype)
    if name.startswith("LeNet"):
        return rng.random((n, 28, 28)).astype(dtype)
    return rng.standard_normal((n, 4, 3)).astype(dtype)


def targets(name, n, output="last"):
    if name in CLASSIFIERS:
        y = np.arange(n) % 3
    else:
        y = np.linspace(-1, 1, n)
    if output == "sequence":
        return np.repeat(y[:, None], 4, axis=1)
    return y


def fit(name, dtype, n=24, output=None, X=None):
    params = {} if output is None else {"output": output}
    X = data(name, n, dtype) if X is None else X
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return make(name, **params).fit(X, targets(name, len(X), output or "last"))


def outputs(est, X):
    """Every prediction method's result for X."""
    methods = ["predict", "predict_proba", "predict_log_proba", "transform"]
    return {m: getattr(est, m)(X) for m in methods if hasattr(est, m)}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        got, want = np.asarray(a[key]), np.asarray(b[key])
        assert got.dtype == want.dtype and got.shape == want.shape, key
        np.testing.assert_array_equal(got, want, err_msg=key)


@pytest.mark.parametrize("name", ["MLPClassifier", "LeNet5Classifier", "RNNRegressor"])
def test_many_rows_in_several_chunks(name):
    """More rows than one chunk of the forward pass (8192 rows of this
    narrow MLP, 1024 images, 512 sequences): the same as the checked path,
    chunk by chunk."""
    est = fit(name, np.float32)
    n = 9000 if name.startswith("MLP") else 600 if name.startswith("RNN") else 1030
    X = data(name, n, np.float32, seed=5)
    slow = list(X) if name.startswith("RNN") else X.tolist()
    assert_same(outputs(est, X), outputs(est, slow))


@pytest.mark.parametrize("name", NAMES)
def test_a_predict_allocates_no_workspace_after_the_first(name, monkeypatch):
    est = fit(name, np.float32)
    net = est._network
    made = []
    real = type(net).workspace

    def counting(self, *args, **kwargs):
        made.append(args)
        return real(self, *args, **kwargs)
    monkeypatch.setattr(type(net), "workspace", counting)
    X = data(name, 3, np.float32, seed=7)
    first = est.predict(X)
    assert len(made) == 1
    for n in (3, 4, 3):  # the same power-of-two capacity
        est.predict(data(name, n, np.float32, seed=n))
    np.testing.assert_array_equal(est.predict(X), first)
    assert len(made) == 1


@pytest.mark.parametrize("name", NAMES)
def test_concurrent_predicts_of_different_inputs_keep_their_own_workspaces(name):
    """Eight threads predict different inputs of the same capacity at once:
    each gets what it gets alone (a workspace lent to two calls at once
    would mix their rows)."""
    est = fit(name, np.float32)
    inputs = [data(name, 5 + i % 4, np.float32, seed=10 + i) for i in range(8)]
    expected = [est.predict(X) for X in inputs]
    barrier = threading.Barrier(8)
    results, errors = [None] * 8, []

    def work(i):
        try:
            barrier.wait()
            results[i] = [est.predict(inputs[i]) for _ in range(20)]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    for want, got in zip(expected, results):
        for g in got:
            np.testing.assert_array_equal(g, want)


@pytest.mark.parametrize("name", ["RNNClassifier", "RNNRegressor"])
@pytest.mark.parametrize("output", ["last", "sequence"])
def test_uniform_packing_is_the_general_packing(name, output):
    """Sequences of one length are packed without sorting: the same rows
    and step sizes as the general packing, so the same predictions to the
    bit as the network gave through it."""
    est = fit(name, np.float32, output=output)
    net = est._network
    X = est._check_X(data(name, 700, np.float32, seed=8))
    for start, stop in [(0, 1), (3, 9), (0, 512), (512, 700)]:
        want, _, _ = _sequences.pack(X, np.arange(start, stop))
        got = _sequences.pack_uniform(X, start, stop)
        np.testing.assert_array_equal(got.data, want.data)
        np.testing.assert_array_equal(got.batch_sizes, want.batch_sizes)
        np.testing.assert_array_equal(got.data[got.last_rows], want.data[want.last_rows])
    # the network's outputs against the general packing's, batch by batch
    expected = np.empty((len(X) if output == "last" else X.data.shape[0], net.n_outputs),
                        dtype=net.dtype)
    for start in range(0, len(X), 512):
        groups = np.arange(start, min(start + 512, len(X)))
        batch, _, _ = _sequences.pack(X, groups)
        ws = net.workspace(batch.data.shape[0], backward=False)
        with blas_single_thread():
            z = net.forward(batch, ws, 1)[-1]
        if output == "last":
            expected[groups[batch.order]] = z
        else:
            expected[batch.step_rows] = z
    np.testing.assert_array_equal(net.predict(X, 2, logits=True), expected)


def test_prediction_workspaces_are_not_pickled():
    import pickle

    est = fit("MLPClassifier", np.float32)
    est.predict(data("MLPClassifier", 3, np.float32))
    assert est._network in _network._PREDICTION_WORKSPACES
    size = len(pickle.dumps(est))
    del _network._PREDICTION_WORKSPACES[est._network]
    assert len(pickle.dumps(est)) == size
