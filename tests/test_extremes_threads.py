"""Numeric extremes, determinism, threads and Ctrl-C, for every estimator (issue 6)."""
import _thread
import re
import signal
import threading
import time
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from fastbp import (LeNet5Classifier, MLPClassifier, MLPRegressor, RNNClassifier,
                    RNNRegressor, _dense_network, _network, _sequences)

NAMES = ["MLPClassifier", "MLPRegressor", "LeNet5Classifier", "RNNClassifier",
         "RNNRegressor"]
CLASSIFIERS = ["MLPClassifier", "LeNet5Classifier", "RNNClassifier"]


def make(name, **params):
    """The estimator with small defaults (params override them)."""
    if name.startswith("MLP"):
        params = {"hidden_layer_sizes": (16,), **params}
    elif name.startswith("RNN"):
        params = {"hidden_size": 8, **params}
    params = {"max_iter": 2, "random_state": 0, "n_jobs": 1, **params}
    cls = {"MLPClassifier": MLPClassifier, "MLPRegressor": MLPRegressor,
           "LeNet5Classifier": LeNet5Classifier, "RNNClassifier": RNNClassifier,
           "RNNRegressor": RNNRegressor}[name]
    return cls(**params)


def make_data(name, n=None, seed=0):
    rng = np.random.default_rng(seed)
    if name.startswith("MLP"):
        X = rng.standard_normal((n or 64, 6))
    elif name.startswith("LeNet"):
        X = rng.random((n or 16, 28, 28))
    else:
        X = rng.standard_normal((n or 24, 6, 3))
    y = np.arange(len(X)) % 3 if name in CLASSIFIERS else X.reshape(len(X), -1)[:, 0] * 2
    return X, y


def _fit(est, X, y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y, **kwargs)


def _outputs(est, X):
    return est.predict_proba(X) if hasattr(est, "predict_proba") else est.predict(X)


def _net_class(name):
    if name.startswith("RNN"):
        return _sequences.RNNNetwork
    return _dense_network.DenseNetwork if name.startswith("MLP") else _network.Network


NON_FINITE = re.compile(r"non-finite.*(StandardScaler|learning rate)", re.S)


# ------------------------------------------------------------ extremes
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_inputs_near_the_largest_float(name, solver):
    """X up to 1e308: a ValueError that says the weights became non-finite and
    what to do, and no NaN model left behind; or, where the activations or
    the (clipped) loss saturate, a finite model."""
    X, y = make_data(name)
    X = X / np.abs(X).max() * 1e308
    est = make(name, solver=solver, max_iter=3)
    with warnings.catch_warnings():
        # sklearn's own finiteness check sums X, which overflows to inf
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            _fit(est, X, y)
        except ValueError as exc:
            assert NON_FINITE.search(str(exc)), exc
            with pytest.raises(NotFittedError):  # nothing half-trained is handed back
                est.predict(X)
            return
        # Not raising is right only if nothing non-finite was handed back: the
        # clipped cross-entropy of saturated outputs is finite, and Adam's step
        # is bounded, so an Adam MLP can end finite (if useless) here.
        assert not (name.startswith("MLP") and solver != "adam"), "must raise"
        assert np.all(np.isfinite(est._network.theta))
        assert np.isfinite(est.loss_) and all(np.isfinite(est.loss_curve_))
        assert np.all(np.isfinite(_outputs(est, X)))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("how", ["warm_start", "partial_fit"])
def test_diverging_continuation_leaves_the_model_as_it_was(name, how):
    """A fitted model that diverges when training continues raises and keeps
    its finite parameters, optimizer state and loss curve."""
    X, y = make_data(name)
    extra = {"activation": "relu"} if not name.startswith("RNN") else {"nonlinearity": "relu"}
    est = _fit(make(name, solver="sgd", **extra), X, y)
    est.set_params(learning_rate_init=1e12, warm_start=how == "warm_start", max_iter=5)
    X_big = X / np.abs(X).max() * 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ValueError, match=NON_FINITE):
            for _ in range(5):  # partial_fit: until the call that diverges
                before = (est._network.theta.copy(), est._optimizer.velocity.copy(),
                          list(est.loss_curve_), est.n_iter_, est.t_, _outputs(est, X))
                if how == "warm_start":
                    _fit(est, X_big, y)
                else:
                    est.partial_fit(X_big, y)
    np.testing.assert_array_equal(est._network.theta, before[0])
    np.testing.assert_array_equal(est._optimizer.velocity, before[1])
    assert (list(est.loss_curve_), est.n_iter_, est.t_) == tuple(before[2:5])
    np.testing.assert_array_equal(_outputs(est, X), before[5])


def _output_layer(est):
    p = est.parameters_
    if "coef_0" in p:
        k = est.n_layers_ - 2
        return p[f"coef_{k}"], p[f"intercept_{k}"]
    if "output.weight" in p:
        return p["output.weight"], p["output.bias"]
    return p["weight_out"], p["bias_out"]


@pytest.mark.parametrize("name", CLASSIFIERS)
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("loss", ["log_loss", "squared_error"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_logits_of_1000(name, n_classes, loss, dtype):
    """Logits of ±1000: finite probabilities that sum to one, finite loss and
    gradient, a finite training step, and no RuntimeWarning on the way."""
    X, y = make_data(name, n=12)
    X = X.astype(dtype)
    y = np.arange(len(X)) % n_classes
    est = _fit(make(name, loss=loss, max_iter=1), X, y)
    W, b = _output_layer(est)
    W[...] = 0
    b[...] = np.resize([1000.0, -1000.0, 0.0], b.shape) if b.size > 1 else 1000.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        proba = est.predict_proba(X)
        assert est.predict(X).shape == y.shape
        log_proba = est.predict_log_proba(X)
        result = est.backprop(X, y)
        est.partial_fit(X, y)
    assert proba.dtype == dtype and np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert np.all((proba >= 0) & (proba <= 1))
    if loss == "log_loss":
        assert np.all(np.isfinite(log_proba))
        # a wrong class has p = exp(-1000), clipped to the dtype's eps: it costs
        # -log(eps), as in sklearn's log_loss; 2 rows in 3 are wrong (1 in 2 binary)
        worst = -np.log(np.finfo(dtype).eps)
        assert 0.45 * worst < result.loss < 0.7 * worst
    assert np.isfinite(result.loss)
    assert all(np.all(np.isfinite(g)) for g in result.gradients.values())
    assert np.isfinite(est.loss_) and np.all(np.isfinite(est._network.theta))


@pytest.mark.parametrize("name", NAMES)
def test_early_stopping_with_a_diverging_model(name):
    """A learning rate of 1e6 with early stopping: either a clear non-finite
    error (and no model) or a finished fit whose model is finite."""
    X, y = make_data(name, n=40 if not name.startswith("LeNet") else 20)
    extra = {"activation": "relu"} if not name.startswith("RNN") else {"nonlinearity": "relu"}
    est = make(name, solver="sgd", learning_rate_init=1e6, early_stopping=True,
               validation_fraction=0.25, n_iter_no_change=2, max_iter=5, **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            _fit(est, X * 10, y * 100 if name not in CLASSIFIERS else y)
        except ValueError as exc:
            assert NON_FINITE.search(str(exc)), exc
            assert not hasattr(est, "_network")
            return
    assert np.all(np.isfinite(est._network.theta))
    assert np.all(np.isfinite(_outputs(est, X)))
    assert len(est.validation_scores_) == est.n_iter_


# --------------------------------------------------------- determinism
SOLVERS = {"MLPClassifier": "adam", "MLPRegressor": "sgd", "LeNet5Classifier": "adam",
           "RNNClassifier": "sgd", "RNNRegressor": "adam"}


def _wide(name):
    """Sizes large enough that the kernels actually split work over 2 threads."""
    if name.startswith("MLP"):
        return {"hidden_layer_sizes": (256, 128)}
    if name.startswith("RNN"):
        return {"hidden_size": 128}
    return {}


def _wide_data(name):
    rng = np.random.default_rng(1)
    if name.startswith("MLP"):
        X = rng.standard_normal((256, 64))
    elif name.startswith("LeNet"):
        X = rng.random((64, 28, 28))
    else:
        X = rng.standard_normal((64, 12, 16))
    y = np.arange(len(X)) % 3 if name in CLASSIFIERS else X.reshape(len(X), -1)[:, 0]
    return X, y


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n_jobs", [1, pytest.param(2, marks=pytest.mark.compares_n_jobs)])
def test_same_random_state_and_n_jobs_give_bitwise_identical_models(name, n_jobs):
    X, y = _wide_data(name)
    params = dict(solver=SOLVERS[name], batch_size=32, early_stopping=True,
                  validation_fraction=0.2, n_jobs=n_jobs, **_wide(name))
    a, b = (_fit(make(name, **params), X, y) for _ in range(2))
    np.testing.assert_array_equal(a._network.theta, b._network.theta)
    assert a.loss_curve_ == b.loss_curve_ and a.validation_scores_ == b.validation_scores_


@pytest.mark.compares_n_jobs
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", NAMES)
def test_kernels_are_bitwise_identical_for_any_thread_count(name, dtype, dispatch_path):
    """One forward and backward pass (every kernel, including the split GEMMs
    and fixed-order reductions) with 1 and 2 threads, on every instruction-set
    path. float32 matters most:
    single-precision BLAS rounds differently in calls of different shapes, so
    this fails unless the GEMM split depends on the shape alone."""
    X, y = _wide_data(name)
    X = X.astype(dtype)
    est = _fit(make(name, max_iter=1, **_wide(name)), X, y)
    results = []
    for n_jobs in (1, 2):
        est.set_params(n_jobs=n_jobs)
        results.append((est.backprop(X, y), _outputs(est, X)))
    (one, out_one), (two, out_two) = results
    assert one.loss == two.loss
    for key in one.gradients:
        np.testing.assert_array_equal(one.gradients[key], two.gradients[key], err_msg=key)
    np.testing.assert_array_equal(out_one, out_two)


@pytest.mark.compares_n_jobs
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_whole_fit_with_one_and_two_threads(name, dtype, capsys):
    """A whole fit with n_jobs=1 and n_jobs=2 (reported): the same model to the
    bit, since BLAS runs on one thread inside fastbp's blocks, whose shapes do
    not depend on the thread count."""
    X, y = _wide_data(name)
    X = X.astype(dtype)
    params = dict(solver=SOLVERS[name], batch_size=64, max_iter=3, **_wide(name))
    one = _fit(make(name, n_jobs=1, **params), X, y)._network.theta
    two = _fit(make(name, n_jobs=2, **params), X, y)._network.theta
    assert one.dtype == dtype
    scale = np.abs(one).max()
    rel = float(np.max(np.abs(one - two)) / scale)
    with capsys.disabled():
        print(f"\n{name} {np.dtype(dtype).name}: n_jobs=1 vs 2, "
              f"max |dtheta| / max |theta| = {rel:.3g}")
    np.testing.assert_array_equal(one, two)


# ------------------------------------------------------------- threads
def _run_in_threads(jobs):
    """Run each job in its own thread, all released at once; return results."""
    barrier = threading.Barrier(len(jobs))
    results, errors = [None] * len(jobs), []

    def work(i, job):
        try:
            barrier.wait()
            results[i] = job()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize("pair", [("MLPClassifier", "RNNRegressor"),
                                  ("LeNet5Classifier", "RNNClassifier"),
                                  ("MLPRegressor", "MLPRegressor")])
def test_two_fits_in_two_threads_equal_sequential_fits(pair):
    data = [_wide_data(name) for name in pair]

    def job(i):
        name = pair[i]
        params = dict(solver=SOLVERS[name], batch_size=64, max_iter=2, n_jobs=2,
                      random_state=i, **_wide(name))
        return lambda: make(name, **params).fit(*data[i])._network.theta

    # warning filters are process-wide: set them here, not in the threads
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sequential = [job(i)() for i in range(2)]
        concurrent = _run_in_threads([job(0), job(1)])
    for s, c in zip(sequential, concurrent):
        np.testing.assert_array_equal(s, c)


@pytest.mark.parametrize("name", NAMES)
def test_eight_threads_predicting_on_one_model(name):
    X, y = _wide_data(name)
    est = _fit(make(name, max_iter=1, n_jobs=2, **_wide(name)), X, y)
    X = X[:24]
    expected = _outputs(est, X)
    results = _run_in_threads([lambda: [_outputs(est, X) for _ in range(3)]] * 8)
    for per_thread in results:
        for got in per_thread:
            np.testing.assert_array_equal(got, expected)


# ---------------------------------------------------------- interrupts
def _training_method(name, solver):
    """What a fit calls once per kernel call: dense MLPs train whole chunks of
    mini-batches with SGD and Adam (train_chunk, one call an epoch for the
    small data here); everything else runs loss_and_grad once per batch."""
    return "train_chunk" if name.startswith("MLP") and solver != "lbfgs" else "loss_and_grad"


def _interrupt_on_call(monkeypatch, name, solver, k, action, deadline=10.0):
    """Make the k-th training call of the network (see _training_method) run
    ``action``; a fit still training ``deadline`` seconds later fails instead
    of running on."""
    cls = _net_class(name)
    method = _training_method(name, solver)
    original = getattr(cls, method)
    calls = {"n": 0, "at": None}

    def patched(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == k:
            calls["at"] = time.perf_counter()
            action()
        elif calls["at"] is not None and time.perf_counter() - calls["at"] > deadline:
            raise RuntimeError(f"fit still running {deadline} s after the interrupt")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, method, patched)
    return calls, lambda: monkeypatch.setattr(cls, method, original)


def _raise_keyboard_interrupt():
    raise KeyboardInterrupt


def _continue_training(est, name, X, y):
    before = est._network.theta.copy()
    if est.solver == "lbfgs":
        est.set_params(warm_start=True, max_iter=2)
        _fit(est, X, y)
    else:
        est.partial_fit(X, y)
    assert not np.array_equal(est._network.theta, before)
    assert np.all(np.isfinite(_outputs(est, X)))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_keyboard_interrupt_during_fit(name, solver, monkeypatch):
    X, y = make_data(name)
    est = make(name, solver=solver, batch_size=8, max_iter=50)
    calls, restore = _interrupt_on_call(monkeypatch, name, solver, 5, _raise_keyboard_interrupt)
    with pytest.warns(UserWarning, match="interrupted"):
        _fit(est, X, y)
    assert calls["n"] == 5  # no training call after the interrupt
    out = _outputs(est, X)
    assert len(out) == len(X) and np.all(np.isfinite(out))
    assert est.n_iter_ < 50
    restore()
    _continue_training(est, name, X, y)


@pytest.mark.parametrize("name", NAMES)
def test_keyboard_interrupt_with_early_stopping_keeps_the_best_model(name, monkeypatch):
    X, y = make_data(name)
    est = make(name, batch_size=4, max_iter=50, early_stopping=True, validation_fraction=0.25,
               n_iter_no_change=100)
    n_batches = -(-int(len(X) * 0.75) // 4)
    solver = est.get_params().get("solver", "sgd")
    per_epoch = 1 if _training_method(name, solver) == "train_chunk" else n_batches
    # the first training call of the third epoch
    calls, restore = _interrupt_on_call(monkeypatch, name, solver, 2 * per_epoch + 1,
                                        _raise_keyboard_interrupt)
    with pytest.warns(UserWarning, match="interrupted"):
        _fit(est, X, y)
    assert est.n_iter_ == 2 and len(est.validation_scores_) == 2
    np.testing.assert_array_equal(est._network.theta, est._best_theta)
    restore()
    assert np.all(np.isfinite(_outputs(est, X)))
    est.set_params(warm_start=True, max_iter=1)
    _fit(est, X, y)
    assert est.n_iter_ == 1


@pytest.mark.skipif(signal.getsignal(signal.SIGINT) is signal.SIG_IGN,
                    reason="SIGINT is ignored in this process (started as a background "
                           "job): interrupt_main delivers nothing")
@pytest.mark.parametrize("name", NAMES)
def test_ctrl_c_signal_stops_fit_at_once(name, monkeypatch):
    """A real SIGINT (interrupt_main), delivered while a long fit runs."""
    X, y = make_data(name, n=64 if not name.startswith("LeNet") else 32)
    est = make(name, batch_size=8, max_iter=10_000, n_iter_no_change=np.inf, tol=0)

    def deliver():
        calls["sent"] = calls["n"]  # training calls made when the signal arrives
        _thread.interrupt_main()

    def send_sigint():
        threading.Timer(0.05, deliver).start()

    calls, restore = _interrupt_on_call(monkeypatch, name, est.get_params().get("solver"), 20,
                                        send_sigint)
    try:
        with pytest.warns(UserWarning, match="interrupted"):
            _fit(est, X, y)
    except KeyboardInterrupt:  # pragma: no cover - would abort the test session
        pytest.fail("KeyboardInterrupt escaped fit")
    # the call under way when it arrived may finish; no other one starts
    assert calls["n"] - calls["sent"] <= 1, (calls["n"], calls["sent"])
    assert est.n_iter_ < 10_000
    restore()
    assert np.all(np.isfinite(_outputs(est, X)))
    est.set_params(warm_start=True, max_iter=1)
    _fit(est, X, y)  # and a warm_start fit continues
    assert est.n_iter_ == 1


@pytest.mark.parametrize("name", NAMES)
def test_keyboard_interrupt_leaves_lbfgs_at_the_iterate_of_its_loss(name, monkeypatch):
    # not at an untried step of the line search in progress
    X, y = make_data(name)
    est = make(name, solver="lbfgs", max_iter=50, alpha=0.0)
    _, restore = _interrupt_on_call(monkeypatch, name, "lbfgs", 9, _raise_keyboard_interrupt)
    with pytest.warns(UserWarning, match="interrupted"):
        _fit(est, X, y)
    restore()
    assert est.n_iter_ >= 1
    assert est.backprop(X, y).loss == pytest.approx(est.loss_, rel=1e-9)
