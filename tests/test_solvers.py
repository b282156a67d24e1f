"""The seams between the solvers and what surrounds them: the solver returns a
training record and leaves the estimator alone; every optimizer gives and
takes its state through one protocol, which is all persistence uses."""
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

import fastbp
import fastbp._base
import fastbp._solvers
from fastbp import MLPClassifier, RNNClassifier
from fastbp._optimizers import OPTIMIZERS, Optimizer, apply_update
from fastbp._solvers import RECORD_ATTRIBUTES, SolverSettings, TrainingRecord


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300] / 16.0, y[:300]


def _fit(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


def _snapshot(est):
    """Every attribute of est: the object itself, and a copy of a list's items."""
    return {k: (v, list(v) if isinstance(v, list) else None) for k, v in vars(est).items()}


def _spy_on_solver(monkeypatch, name):
    """Wrap the solver ``name`` so that each call records the estimator's
    attributes before and after it, and the record it returns."""
    calls = []
    solver = getattr(fastbp._base, name)

    def spy(*args, **kwargs):
        est = kwargs["score"].__self__  # the estimator, reached only by its score
        before = _snapshot(est)
        record = solver(*args, **kwargs)
        calls.append((before, _snapshot(est), record))
        return record

    monkeypatch.setattr(fastbp._base, name, spy)
    return calls


@pytest.mark.parametrize("solver, early_stopping", [
    ("sgd", False), ("adam", True), ("lbfgs", False)])
def test_solver_leaves_the_estimator_alone_and_returns_the_record(digits, monkeypatch,
                                                                  solver, early_stopping):
    X, y = digits
    name = "fit_lbfgs" if solver == "lbfgs" else "fit_stochastic"
    calls = _spy_on_solver(monkeypatch, name)
    est = MLPClassifier((8,), solver=solver, max_iter=4, early_stopping=early_stopping,
                        random_state=0)
    _fit(est, X, y, X_val=None if early_stopping else X[:50],
         y_val=None if early_stopping else y[:50])
    est.set_params(warm_start=True)
    _fit(est, X, y)
    assert len(calls) == 2
    for before, after, record in calls:
        assert isinstance(record, TrainingRecord)
        assert after.keys() == before.keys()
        for key, (value, items) in before.items():
            assert after[key][0] is value, key  # nothing reassigned
            assert after[key][1] == items, key  # no list extended
    # what the estimator stores is the record of its last call
    for field, attribute in RECORD_ATTRIBUTES.items():
        assert getattr(est, attribute) is getattr(record, field), attribute
    if solver != "lbfgs":  # warm start continues the curve (lbfgs starts its own)
        assert est.loss_curve_ == calls[0][2].losses + est.loss_curve_[-4:]
        assert len(calls[0][2].losses) == 4
    assert est.n_iter_ == record.n_iter > 0


def test_partial_fit_continues_the_record(digits):
    """The record's pieces persist across partial_fit calls as the fitted
    attributes: the curve grows, t_ counts every sample, the optimizer is kept."""
    X, y = digits
    est = MLPClassifier((8,), solver="sgd", random_state=0)
    est.partial_fit(X, y, classes=np.unique(y))
    optimizer, curve = est._optimizer, list(est.loss_curve_)
    est.partial_fit(X, y)
    assert est._optimizer is optimizer
    assert est.loss_curve_[:1] == curve and len(est.loss_curve_) == 2
    assert est.t_ == 2 * len(X) and est.n_iter_ == 1


def _settings(kind, **extra):
    return SolverSettings(solver=kind, learning_rate_init=0.01, momentum=0.8, **extra)


def _trained_optimizer(kind, dtype, n, rng, **extra):
    """An optimizer of ``kind`` that has taken a few steps (and ended an epoch)."""
    settings = _settings(kind, **extra)
    opt = OPTIMIZERS[kind](n, dtype, settings)
    theta = rng.standard_normal(n).astype(dtype)
    for _ in range(3):
        opt.step(theta, rng.standard_normal(n).astype(dtype), 1)
    opt.iteration_ends(300)
    return opt, settings, theta


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind, extra", [
    ("sgd", {"learning_rate": "invscaling"}), ("sgd", {"nesterovs_momentum": False}),
    ("adam", {})])
def test_optimizer_round_trips_through_its_state_and_steps_the_same(kind, extra, dtype):
    rng = np.random.default_rng(0)
    n = 37
    opt, settings, theta = _trained_optimizer(kind, dtype, n, rng, **extra)
    state = opt.state()
    # plain arrays of theta's shape and plain scalars, what a model file stores
    for name, value in state.items():
        assert (isinstance(value, np.ndarray) and value.shape == (n,)) or (
            isinstance(value, (int, float)) and not isinstance(value, bool)), name
    # as a file gives them back: copies, scalars through JSON's types
    given = {k: v.copy() if isinstance(v, np.ndarray) else type(v)(v)
             for k, v in state.items()}
    clone = type(opt).from_state(given, settings, n, dtype)
    assert all(not np.shares_memory(a, given[k]) for k, a in clone.state().items()
               if isinstance(a, np.ndarray))
    grad = rng.standard_normal(n).astype(dtype)
    theta_clone = theta.copy()
    for _ in range(2):
        opt.step(theta, grad, 1)
        clone.step(theta_clone, grad, 1)
        opt.iteration_ends(600)
        clone.iteration_ends(600)
    np.testing.assert_array_equal(theta_clone, theta)
    for name, value in opt.state().items():
        np.testing.assert_array_equal(clone.state()[name], value)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_the_fused_chains_protocol_is_the_steps(kind):
    """update_args and next_learning_rate, what a network that applies the
    step itself asks for, give the bits of step."""
    rng = np.random.default_rng(1)
    n = 50
    a, _, theta = _trained_optimizer(kind, np.float64, n, rng)
    b = type(a).from_state({k: v.copy() if isinstance(v, np.ndarray) else v
                            for k, v in a.state().items()}, a.settings, n, np.float64)
    theta_b = theta.copy()
    grad = rng.standard_normal(n)
    for _ in range(3):
        a.step(theta, grad, 1)
        apply_update(theta_b, grad, b.next_learning_rate(), 1, **b.update_args())
    np.testing.assert_array_equal(theta_b, theta)


@pytest.mark.parametrize("kind, state, match", [
    ("sgd", {"learning_rate": 0.1}, "velocity"),
    ("sgd", {"learning_rate": 0.1, "velocity": np.zeros(4)}, "velocity"),
    ("sgd", {"learning_rate": 0.1, "velocity": np.zeros(5, np.float32)}, "velocity"),
    ("sgd", {"learning_rate": "fast", "velocity": np.zeros(5)}, "learning rate"),
    ("adam", {"learning_rate": 0.1, "t": -1, "m1": np.zeros(5), "m2": np.zeros(5)},
     "step count"),
    ("adam", {"learning_rate": 0.1, "t": 2, "m1": np.zeros(5)}, "m2"),
])
def test_from_state_rejects_malformed_state(kind, state, match):
    with pytest.raises(ValueError, match=match):
        OPTIMIZERS[kind].from_state(state, _settings(kind), 5, np.float64)


class _Counting(Optimizer):
    """An optimizer persistence has never heard of: one with a scalar and an array of its own."""

    kind = "counting"
    _state_arrays = ("scratch",)

    def __init__(self, n_params, dtype, settings):
        self.scratch = np.arange(n_params, dtype=dtype)
        self.steps = 0
        self.follow(settings)

    def _restore_scalars(self, state, settings):
        self.steps = int(state["steps"])

    def follow(self, settings):
        self.settings = settings
        self._update = dict(update=0, state_1=self.scratch)

    def state(self):
        return {"steps": self.steps, "scratch": self.scratch}


def test_persistence_goes_through_state_and_from_state_only(digits, tmp_path, monkeypatch):
    X, y = digits
    monkeypatch.setitem(OPTIMIZERS, "counting", _Counting)
    est = _fit(MLPClassifier((4,), solver="sgd", max_iter=2, random_state=0), X, y)
    n = est._network.theta.size
    est._optimizer = _Counting(n, est._network.dtype, SolverSettings())
    est._optimizer.steps = 7
    est._optimizer.scratch[:] = 3.5
    est.save(tmp_path / "m.npz")
    loaded = fastbp.load(tmp_path / "m.npz")
    assert type(loaded._optimizer) is _Counting and loaded._optimizer.steps == 7
    np.testing.assert_array_equal(loaded._optimizer.scratch, np.full(n, 3.5))


def test_settings_take_the_hyperparameters_by_name():
    est = RNNClassifier(clip_grad_norm=2.5, learning_rate_init=0.3, max_iter=7)
    settings = SolverSettings.from_params(est.get_params())
    assert (settings.clip_grad_norm, settings.learning_rate_init, settings.max_iter,
            settings.restore_best) == (2.5, 0.3, 7, True)
    # estimators without the RNN's parameters keep the defaults
    settings = SolverSettings.from_params(MLPClassifier(momentum=0.5).get_params())
    assert (settings.momentum, settings.clip_grad_norm, settings.restore_best) == (0.5, None,
                                                                                   False)
