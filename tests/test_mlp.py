"""MLPClassifier / MLPRegressor behaviour: sklearn parity, solvers, state."""
import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_digits, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor

from fastbp import MLPClassifier, MLPRegressor


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600] / 16.0, y[:600]


def _quiet_fit(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


TRAJECTORY_CASES = [
    dict(solver="adam"),
    dict(solver="sgd", learning_rate_init=0.05),
    dict(solver="sgd", nesterovs_momentum=False, learning_rate="invscaling",
         learning_rate_init=0.1),
    dict(solver="sgd", momentum=0.0, batch_size=1, max_iter=2),
    dict(solver="adam", early_stopping=True, n_iter_no_change=2),
    dict(solver="sgd", learning_rate="adaptive", tol=0.05, n_iter_no_change=1,
         learning_rate_init=0.05),
    dict(solver="lbfgs"),
    dict(solver="adam", shuffle=False, batch_size=64, activation="tanh"),
]


@pytest.mark.parametrize("params", TRAJECTORY_CASES)
def test_classifier_follows_sklearn_trajectory(digits, params):
    """Same random_state, same data: the same numbers as sklearn, epoch by epoch."""
    X, y = digits
    if params.get("early_stopping"):
        # sklearn stratifies the validation split only for binary targets;
        # fastbp stratifies multiclass ones too, so compare on a binary task.
        y = y % 2
    params = {"hidden_layer_sizes": (20, 10), "max_iter": 8, "random_state": 0, **params}
    ours = _quiet_fit(MLPClassifier(**params), X, y)
    ref = _quiet_fit(SkMLPClassifier(**params), X, y)
    assert ours.n_iter_ == ref.n_iter_
    if params["solver"] != "lbfgs":
        np.testing.assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=1e-9)
    assert ours.loss_ == pytest.approx(ref.loss_, rel=1e-9)
    for a, b in zip(ours.coefs_ + ours.intercepts_, ref.coefs_ + ref.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-10)
    if params.get("early_stopping"):
        np.testing.assert_allclose(ours.validation_scores_, ref.validation_scores_)
        assert ours.best_validation_score_ == ref.best_validation_score_
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_saturating_run_reports_sklearns_clipped_loss(digits, dtype):
    """A step size of 2 saturates the softmax in epoch 3: sklearn clips each
    probability at its dtype's eps inside the loss, so the curve is the same
    only if fastbp clips too (unclipped, epoch 3 read 42.3 against 24.7)."""
    X, y = digits[0][:500], digits[1][:500]
    params = dict(hidden_layer_sizes=(50,), max_iter=10, random_state=0, solver="sgd",
                  learning_rate_init=2.0)
    ours = _quiet_fit(MLPClassifier(**params), X.astype(dtype), y)
    ref = _quiet_fit(SkMLPClassifier(**params), X.astype(dtype), y)
    assert max(ref.loss_curve_) > 10  # saturated: the case exercises the clip
    np.testing.assert_allclose(ours.loss_curve_, ref.loss_curve_,
                               rtol=1e-9 if dtype == np.float64 else 1e-4)
    assert ours.n_iter_ == ref.n_iter_


@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_regressor_follows_sklearn_trajectory(loss, solver):
    X, y = make_regression(n_samples=200, n_features=6, noise=1.0, random_state=0)
    y = np.abs(y) / 50 if loss == "poisson" else y / 100
    params = dict(loss=loss, solver=solver, hidden_layer_sizes=(8,), max_iter=6,
                  random_state=1, learning_rate_init=0.01)
    ours = _quiet_fit(MLPRegressor(**params), X, y)
    ref = _quiet_fit(SkMLPRegressor(**params), X, y)
    assert ours.loss_ == pytest.approx(ref.loss_, rel=1e-9)
    np.testing.assert_allclose(ours.predict(X), ref.predict(X), rtol=1e-7, atol=1e-10)


def test_one_sgd_step_worked_by_hand():
    """x = (1, 2), y = 1; h = w·x + b = 0.1, out = v h + c = -0.3, loss = 1.3²/2.
    dL/dout = -1.3, dL/dc = -1.3, dL/dv = -0.13, dL/dh = -2.6, dL/dw = (-2.6, -5.2),
    dL/db = -2.6; one step with lr = 0.1."""
    X, y = np.array([[1.0, 2.0]]), np.array([1.0])
    est = MLPRegressor(hidden_layer_sizes=(1,), activation="identity", solver="sgd",
                       momentum=0.0, alpha=0.0, learning_rate_init=0.1, batch_size=1,
                       shuffle=False, max_iter=1, random_state=0)
    _quiet_fit(est, X, y)
    p = est.parameters_
    p["coef_0"][:] = [[0.5], [-0.25]]
    p["intercept_0"][:] = [0.1]
    p["coef_1"][:] = [[2.0]]
    p["intercept_1"][:] = [-0.5]
    assert est.backprop(X, y).loss == pytest.approx(0.845)
    est.partial_fit(X, y)
    assert est.loss_ == pytest.approx(0.845)
    np.testing.assert_allclose(p["coef_0"].ravel(), [0.76, 0.27])
    np.testing.assert_allclose(p["intercept_0"], [0.36])
    np.testing.assert_allclose(p["coef_1"].ravel(), [2.013])
    np.testing.assert_allclose(p["intercept_1"], [-0.37])


def test_partial_fit_equals_fit_without_shuffle(digits):
    X, y = digits
    params = dict(hidden_layer_sizes=(15,), solver="sgd", shuffle=False, random_state=0,
                  learning_rate_init=0.05, tol=0, n_iter_no_change=100)
    a = MLPClassifier(**params)
    for _ in range(3):
        a.partial_fit(X, y, classes=np.unique(y))
    b = _quiet_fit(MLPClassifier(max_iter=3, **params), X, y)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-12)
    np.testing.assert_allclose(a.coefs_[0], b.coefs_[0], rtol=1e-12)
    assert a.t_ == b.t_ == 3 * len(y)


def test_partial_fit_classes_rules(digits):
    X, y = digits
    est = MLPClassifier(hidden_layer_sizes=(5,))
    with pytest.raises(ValueError, match="classes must be passed"):
        est.partial_fit(X, y)
    est.partial_fit(X[y < 5], y[y < 5], classes=np.arange(10))
    assert list(est.classes_) == list(range(10))
    with pytest.raises(ValueError, match="classes"):
        est.partial_fit(X, y + 10)
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")


def test_warm_start_continues(digits):
    X, y = digits
    est = _quiet_fit(MLPClassifier(hidden_layer_sizes=(15,), max_iter=3, random_state=0), X, y)
    first = est.coefs_[0].copy()
    est.set_params(warm_start=True)
    _quiet_fit(est, X, y)
    assert len(est.loss_curve_) == 6
    assert est.loss_curve_[3] < est.loss_curve_[0]
    assert not np.allclose(first, est.coefs_[0])
    with pytest.raises(ValueError, match="warm_start"):
        est.fit(X[y < 5], y[y < 5])


@pytest.mark.parametrize("how", ["warm_start", "partial_fit"])
def test_continued_training_takes_a_changed_activation_as_sklearn(digits, how):
    """sklearn reads activation on every pass, so set_params between fits
    changes the continued model; a new hidden_layer_sizes cannot reshape the
    fitted weights and raises, the model left as it was."""
    X, y = digits
    params = dict(hidden_layer_sizes=(16,), solver="sgd", max_iter=3, random_state=0)
    models = []
    for cls in (MLPClassifier, SkMLPClassifier):
        est = cls(**params)
        if how == "warm_start":
            _quiet_fit(est, X, y)
            est.set_params(activation="tanh", warm_start=True)
            _quiet_fit(est, X, y)
        else:
            est.partial_fit(X, y, classes=np.unique(y))
            est.set_params(activation="tanh")
            est.partial_fit(X, y)
        models.append(est)
    ours, ref = models
    np.testing.assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=1e-9)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), rtol=1e-7)
    before = ours.predict_proba(X)
    ours.set_params(hidden_layer_sizes=(7, 3), warm_start=True)
    with pytest.raises(ValueError, match="hidden_layer_sizes changed since the model was fitted"):
        ours.fit(X, y) if how == "warm_start" else ours.partial_fit(X, y)
    np.testing.assert_array_equal(ours.predict_proba(X), before)
    ours.set_params(hidden_layer_sizes=[16])  # the same layers, spelt as a list
    ours.partial_fit(X, y)
    assert ours.coefs_[0].shape == (64, 16)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_partial_fit_takes_hyperparameters_set_between_calls(digits, solver):
    """set_params between partial_fit calls takes effect (sklearn's MLP keeps
    the first call's optimizer settings): a step size of 0 leaves the weights
    where they are, and a new solver gets its own optimizer."""
    X, y = digits
    est = MLPClassifier((8,), solver=solver, random_state=0)
    est.partial_fit(X, y, classes=np.unique(y))
    est.partial_fit(X, y)
    before = [c.copy() for c in est.coefs_]
    est.set_params(learning_rate_init=1e-300, momentum=0.0)
    est.partial_fit(X, y)
    for a, b in zip(est.coefs_, before):
        np.testing.assert_array_equal(a, b)
    est.set_params(learning_rate_init=0.01, solver="adam" if solver == "sgd" else "sgd")
    est.partial_fit(X, y)
    assert type(est._optimizer).__name__ == ("AdamState" if solver == "sgd" else "SGDState")
    assert not np.array_equal(est.coefs_[0], before[0])


def test_warm_start_from_lbfgs_to_a_stochastic_solver_with_early_stopping(digits):
    X, y = digits
    est = _quiet_fit(MLPClassifier((6,), solver="lbfgs", max_iter=3, early_stopping=True,
                                   random_state=0), X, y)
    assert est.validation_scores_ is None
    est.set_params(solver="adam", warm_start=True)
    _quiet_fit(est, X, y)
    assert len(est.validation_scores_) == est.n_iter_ > 0
    assert est.best_validation_score_ == max(est.validation_scores_)


def test_continued_training_refuses_in_place_changes_and_saved_models_name_them(
        digits, tmp_path):
    import fastbp
    X, y = digits
    est = _quiet_fit(MLPClassifier(hidden_layer_sizes=[6], max_iter=2, random_state=0), X, y)
    est.hidden_layer_sizes.append(3)  # changed in place: still a change
    with pytest.raises(ValueError, match=r"^hidden_layer_sizes changed"):
        est.partial_fit(X, y)
    est.hidden_layer_sizes.pop()
    est.save(tmp_path / "m.npz")
    loaded = fastbp.load(tmp_path / "m.npz")
    loaded.set_params(hidden_layer_sizes=(5,))
    with pytest.raises(ValueError, match=r"^hidden_layer_sizes changed"):
        loaded.partial_fit(X, y)


def test_failed_assignment_to_parameters_changes_nothing(digits):
    X, y = digits
    est = _quiet_fit(MLPClassifier((6,), max_iter=2, random_state=0), X, y)
    before = est._network.theta.copy()
    with pytest.raises(ValueError, match=r"coefs_\[1\] has shape"):
        est.coefs_ = [np.zeros((64, 6)), np.zeros((5, 5))]
    with pytest.raises(KeyError, match="'nope' is not a parameter"):
        est.parameters_.update({"coef_0": np.ones((64, 6)), "nope": 1.0})
    np.testing.assert_array_equal(est._network.theta, before)


@pytest.mark.parametrize("layout", ["dense", "sparse", "sequential"])
def test_a_batch_of_zero_total_weight_raises_clearly(digits, layout):
    """sklearn fails on such a batch with a ZeroDivisionError; fastbp says
    what is wrong, on every training path, and hands back no model."""
    import scipy.sparse as sp
    X, y = digits
    w = np.ones(len(X))
    w[:10] = 0
    X = sp.csr_matrix(X) if layout == "sparse" else X
    if layout == "sequential":  # not C-contiguous: the batch-by-batch path
        X = np.asfortranarray(X)
    est = MLPClassifier((6,), batch_size=10, shuffle=False, max_iter=2, random_state=0)
    with pytest.raises(ValueError, match="sample weights of a mini-batch sum to zero"):
        est.fit(X, y, sample_weight=w)
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        est.predict(X)


def test_early_stopping_keeps_best_parameters(digits):
    X, y = digits
    est = _quiet_fit(MLPClassifier(hidden_layer_sizes=(15,), early_stopping=True,
                                   max_iter=30, n_iter_no_change=3, random_state=0,
                                   learning_rate_init=0.05), X, y)
    assert len(est.validation_scores_) == est.n_iter_
    assert est.best_validation_score_ == max(est.validation_scores_)
    assert est.best_loss_ is None
    with pytest.raises(ValueError, match="early_stopping"):
        est.partial_fit(X, y)


def test_sample_weight_zero_equals_dropping_samples(digits):
    X, y = digits
    sw = np.ones(len(y))
    sw[::3] = 0
    params = dict(hidden_layer_sizes=(10,), solver="lbfgs", max_iter=30, random_state=0)
    a = _quiet_fit(MLPClassifier(**params), X, y, sample_weight=sw)
    b = _quiet_fit(MLPClassifier(**params), X[sw > 0], y[sw > 0])
    np.testing.assert_allclose(a.coefs_[0], b.coefs_[0], rtol=1e-6, atol=1e-8)


def test_float32_trains_in_float32(digits):
    X, y = digits
    a = _quiet_fit(MLPClassifier(hidden_layer_sizes=(20,), max_iter=5, random_state=0),
                   X.astype(np.float32), y)
    b = _quiet_fit(MLPClassifier(hidden_layer_sizes=(20,), max_iter=5, random_state=0), X, y)
    assert a.coefs_[0].dtype == np.float32 and a.predict_proba(X).dtype == np.float32
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-4)
    assert np.mean(a.predict(X) == b.predict(X)) > 0.98
    # integer input is cast to float64, as sklearn does
    c = _quiet_fit(MLPClassifier(hidden_layer_sizes=(5,), max_iter=2), (X * 16).astype(int), y)
    assert c.coefs_[0].dtype == np.float64


def test_multilabel_and_squared_error_classifier():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 5))
    Y = np.c_[X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] < 0.5].astype(int)
    est = _quiet_fit(MLPClassifier(hidden_layer_sizes=(20,), max_iter=300, random_state=0),
                     X, Y)
    assert est.out_activation_ == "logistic" and est.predict(X).shape == Y.shape
    assert np.mean(est.predict(X) == Y) > 0.9
    y = np.argmax(X[:, :3], axis=1)
    sq = _quiet_fit(MLPClassifier(loss="squared_error", hidden_layer_sizes=(20,),
                                  max_iter=300, learning_rate_init=0.01, random_state=0), X, y)
    proba = sq.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-12)
    assert sq.score(X, y) > 0.9


def test_predict_log_proba_is_finite_where_proba_underflows(digits):
    X, y = digits
    est = _quiet_fit(MLPClassifier(hidden_layer_sizes=(10,), max_iter=5, random_state=0), X, y)
    est.coefs_[1][...] *= 1e4  # logits of thousands
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log_p = est.predict_log_proba(X)
        p = est.predict_proba(X)
    assert np.all(np.isfinite(log_p))
    np.testing.assert_allclose(p.sum(1), 1.0)
    np.testing.assert_allclose(np.exp(log_p), p, atol=1e-12)


def test_parameters_are_live_views_that_survive_pickling(digits):
    X, y = digits
    est = _quiet_fit(MLPClassifier(hidden_layer_sizes=(10,), max_iter=3, random_state=0), X, y)
    assert list(est.parameters_) == ["coef_0", "intercept_0", "coef_1", "intercept_1"]
    assert np.shares_memory(est.parameters_["coef_1"], est.coefs_[1])
    clone = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(clone.predict_proba(X), est.predict_proba(X))
    clone.parameters_["intercept_1"][:] = 0
    clone.parameters_["intercept_1"][3] = 1e3  # class 3 everywhere
    assert np.all(clone.predict(X) == 3)
    assert np.all(clone.intercepts_[1] == clone.parameters_["intercept_1"])
    assert not np.all(est.predict(X) == 3)  # the original is untouched


def test_assigning_coefs_and_intercepts_changes_the_model_as_in_sklearn(digits):
    """sklearn's coefs_ is a plain list, so assigning an item or the whole list
    replaces weights; fastbp's views take the assignment into the model."""
    import copy
    X, y = digits
    ours = _quiet_fit(MLPClassifier((12,), max_iter=2, random_state=0), X, y)
    ref = _quiet_fit(SkMLPClassifier((12,), max_iter=2, random_state=1), X, y)
    rng = np.random.default_rng(0)
    new_coefs = [rng.normal(size=c.shape) for c in ref.coefs_]
    new_intercepts = [rng.normal(size=b.shape) for b in ref.intercepts_]
    for est in (ours, ref):
        est.coefs_[0] = new_coefs[0]
        est.coefs_[-1] = new_coefs[1]
        est.intercepts_ = new_intercepts
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), rtol=1e-12)
    ours.parameters_["intercept_1"] = np.zeros(10)
    assert np.all(ours.intercepts_[1] == 0)
    # a detached copy, as sklearn users make one, does not follow the model
    saved = copy.deepcopy(ours.coefs_)
    ours.coefs_[0][...] = 0
    assert type(saved) is list and not np.all(saved[0] == 0)
    with pytest.raises(ValueError, match=r"coefs_\[1\] has shape \(12, 10\)"):
        ours.coefs_[1] = np.zeros((3, 3))
    with pytest.raises(ValueError, match="one array per layer"):
        ours.coefs_ = [np.zeros((64, 12))]
    with pytest.raises(TypeError, match="length cannot change"):
        ours.coefs_.append(np.zeros(1))
    with pytest.raises(KeyError, match="not a parameter"):
        ours.parameters_["coef_9"] = 0.0


def test_sparse_input_with_mixed_index_dtypes(digits):
    import scipy.sparse as sp
    X, y = digits
    Xs = sp.csr_matrix(X)
    Xs.indices = Xs.indices.astype(np.int64)  # indptr stays int32
    params = dict(hidden_layer_sizes=(6,), max_iter=2, random_state=0)
    a = _quiet_fit(MLPClassifier(**params), Xs, y)
    b = _quiet_fit(MLPClassifier(**params), X, y)
    np.testing.assert_array_equal(a._network.theta, b._network.theta)


def test_sparse_input_matches_dense(digits):
    X, y = digits
    params = dict(hidden_layer_sizes=(10,), max_iter=3, random_state=0)
    a = _quiet_fit(MLPClassifier(**params), sp.csr_matrix(X), y)
    b = _quiet_fit(MLPClassifier(**params), X, y)
    np.testing.assert_allclose(a.coefs_[0], b.coefs_[0], rtol=1e-12)
    np.testing.assert_allclose(a.predict_proba(sp.csc_matrix(X)), b.predict_proba(X))


def test_verbose_prints_one_line_per_epoch(digits, capsys):
    X, y = digits
    _quiet_fit(MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, verbose=True,
                             early_stopping=True, n_iter_no_change=50), X, y)
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("Iteration")]
    assert len(lines) == 3
    assert "loss = " in lines[0] and "validation score = " in lines[0] and lines[0].endswith(" s")


def test_lbfgs_reports_its_iterations_and_no_validation(digits, capsys):
    """L-BFGS trains full-batch on all the data: one verbose line per iteration
    (loss, seconds), best_loss_ its lowest loss, and no validation scores even
    with early_stopping (which sklearn's lbfgs ignores too)."""
    X, y = digits
    est = _quiet_fit(MLPClassifier(hidden_layer_sizes=(5,), solver="lbfgs", max_iter=4,
                                   early_stopping=True, verbose=True), X, y)
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("Iteration")]
    assert len(lines) == len(est.loss_curve_) == est.n_iter_ == 4
    assert all("loss = " in line and line.endswith(" s") for line in lines)
    assert est.best_loss_ == min(est.loss_curve_)
    assert est.validation_scores_ is None and est.best_validation_score_ is None


def test_keyboard_interrupt_stops_with_a_usable_model(digits, monkeypatch):
    X, y = digits
    from fastbp import _dense_network

    # Dense MLPs train through train_chunk (one call per chunk of batches;
    # the digits make one chunk an epoch), so that is where Ctrl-C lands.
    original = _dense_network.DenseNetwork.train_chunk
    calls = {"n": 0}

    def interrupting(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(_dense_network.DenseNetwork, "train_chunk", interrupting)
    est = MLPClassifier(hidden_layer_sizes=(10,), max_iter=50, random_state=0)
    with pytest.warns(UserWarning, match="interrupted"):
        est.fit(X, y)
    assert calls["n"] == 7
    assert est.predict(X).shape == y.shape
    monkeypatch.setattr(_dense_network.DenseNetwork, "train_chunk", original)
    est.partial_fit(X, y)  # training can be continued


def test_non_finite_weights_raise_clear_error():
    X = np.full((20, 3), 1e300)
    y = np.arange(20) % 2
    with pytest.raises(ValueError, match="non-finite"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            MLPRegressor(solver="sgd", max_iter=5).fit(X, y.astype(float))


@pytest.mark.compares_n_jobs
def test_thread_count_does_not_change_results(digits):
    # BLAS runs on one thread inside fastbp's GEMM blocks, whose shapes do not
    # depend on the thread count, and every reduction has a fixed order
    X, y = digits
    params = dict(hidden_layer_sizes=(200, 100), max_iter=3, random_state=0)
    a = _quiet_fit(MLPClassifier(n_jobs=1, **params), X, y)
    b = _quiet_fit(MLPClassifier(n_jobs=2, **params), X, y)
    np.testing.assert_array_equal(a._network.theta, b._network.theta)


@pytest.mark.parametrize("params,match", [
    (dict(hidden_layer_sizes=(0,)), "hidden_layer_sizes"),
    (dict(activation="softsign"), "activation"),
    (dict(solver="rmsprop"), "solver"),
    (dict(batch_size=0), "batch_size"),
    (dict(learning_rate_init=-1.0), "learning_rate_init"),
    (dict(alpha=-1.0), "alpha"),
    (dict(momentum=1.5), "momentum"),
    (dict(max_iter=0), "max_iter"),
    (dict(loss="hinge"), "loss"),
    (dict(n_jobs=0), "n_jobs"),
])
def test_invalid_hyperparameters_raise_at_fit(digits, params, match):
    X, y = digits
    est = MLPClassifier(**params)  # nothing is validated in __init__
    with pytest.raises(ValueError, match=match):
        est.fit(X, y)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chunked_training_equals_batch_by_batch(digits, solver, dtype, monkeypatch):
    """Dense X trains whole chunks of mini-batches per kernel call (the step
    applied inside it); sparse X goes batch by batch (gradient, then the
    optimizer's own kernel). Same data, same model, to the bit; chunks of one
    batch too (CHUNK_ROWS) and of a bounded amount of work (CHUNK_FLOPS), with
    sample weights and a ragged last batch."""
    import scipy.sparse as sp

    from fastbp import _dense_network

    chunk_calls = []
    original = _dense_network.DenseNetwork.train_chunk

    def counting(self, plan, n_rows, update):
        chunk_calls.append(-(-n_rows // plan.batch_size))  # batches in this call
        return original(self, plan, n_rows, update)

    monkeypatch.setattr(_dense_network.DenseNetwork, "train_chunk", counting)
    X, y = digits
    X = X[:700].astype(dtype)
    y = y[:700]
    w = np.random.default_rng(0).random(len(X)) + 0.5
    params = dict(hidden_layer_sizes=(40, 30), solver=solver, batch_size=64, max_iter=3,
                  alpha=1e-3, momentum=0.9, nesterovs_momentum=True, random_state=0,
                  learning_rate_init=0.01)
    fits = [MLPClassifier(**params).fit(sp.csr_matrix(X), y, sample_weight=w)]
    assert chunk_calls == []
    fits.append(MLPClassifier(**params).fit(X, y, sample_weight=w))
    n_batches = -(-len(X) // 64)
    assert chunk_calls == [n_batches] * 3  # one chunk an epoch
    monkeypatch.setattr(_dense_network, "CHUNK_ROWS", 1)
    fits.append(MLPClassifier(**params).fit(X, y, sample_weight=w))
    assert chunk_calls[3:] == [1] * (3 * n_batches)
    # a chunk also holds at most CHUNK_FLOPS of work: 6 per weight and row
    monkeypatch.setattr(_dense_network, "CHUNK_ROWS", 4096)
    n_weights = 64 * 40 + 40 * 30 + 30 * 10
    monkeypatch.setattr(_dense_network, "CHUNK_FLOPS", 6 * n_weights * 200)  # 200 rows: 3 batches
    del chunk_calls[:]
    fits.append(MLPClassifier(**params).fit(X, y, sample_weight=w))
    assert chunk_calls == [3, 3, 3, 1] * 3  # 600 rows: 10 batches
    reference = fits[0]
    assert reference._network.dtype == dtype
    for other in fits[1:]:
        np.testing.assert_array_equal(other._network.theta, reference._network.theta)
        assert other.loss_curve_ == reference.loss_curve_


@pytest.mark.parametrize("labels", [
    np.array([3, -7, 3, 12, -7, 0], dtype=np.int8),       # negative, narrow: the table
    np.array([250, 3, 250, 7], dtype=np.uint8),
    np.array([-(2**40), 5, 2**40, 5], dtype=np.int64),    # too wide for the table
    np.array([2**63 + 5, 2**63 + 1, 2**63 + 5, 7], dtype=np.uint64),
    np.array(["b", "a", "c", "a"]),
    np.array([1.0, -1.0, 1.0, 2.0]),
])
def test_one_hot_targets_put_each_label_at_its_class(labels):
    # The target matrix's 1 of each row is at the label's place in classes_,
    # whichever way the codes are found (a table for narrow integers); three
    # classes or more, so that the matrix has a column per class.
    from fastbp._targets import _class_codes

    classes = np.unique(labels)
    codes = _class_codes(classes, labels)
    np.testing.assert_array_equal(classes[codes], labels)
    est = MLPClassifier(hidden_layer_sizes=(3,), max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(np.arange(len(labels), dtype=float)[:, None], labels)
    np.testing.assert_array_equal(est.classes_, classes)
    Y = est._one_hot(labels, np.float32)
    assert Y.sum() == len(labels)
    np.testing.assert_array_equal(est.classes_[Y.argmax(axis=1)], labels)


@pytest.mark.parametrize("labels", [
    np.array([3, -7, 3, 12, -7, 0], dtype=np.int8),
    np.array([250, 3, 250, 7], dtype=np.uint8),
    np.array([2**63 + 5, 2**63 + 1, 2**63 + 5, 7], dtype=np.uint64),
    np.array([9, 4, 9, 4], dtype=np.int32),  # binary
    np.array([5, 5, 5, 5], dtype=np.int64),  # one class
    np.array([3, 1, 2, 1, 3, 2, 1, 1], dtype=">i4"),  # big-endian: sklearn's classes are native
    np.arange(40) % 21,  # sklearn warns that y may be a regression target
])
def test_integer_labels_fit_the_binarizer_as_sklearn_does(labels):
    # A fit on integer labels skips sklearn's target checks and
    # LabelBinarizer.fit: its binarizer holds what sklearn's fit holds, of
    # the same values and dtypes, and encodes and decodes as that one does;
    # the fit gives sklearn's warnings about the labels.
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils.multiclass import check_classification_targets

    est = MLPClassifier(hidden_layer_sizes=(3,), max_iter=1, random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(np.arange(len(labels), dtype=float)[:, None], labels)
    with warnings.catch_warnings(record=True) as sklearn_caught:
        warnings.simplefilter("always")
        check_classification_targets(labels)  # what sklearn's classifiers run first
        sklearns = LabelBinarizer().fit(labels)
    # sklearn's warnings about the labels, and no other
    assert ([str(w.message) for w in caught if w.category is UserWarning]
            == [str(w.message) for w in sklearn_caught if w.category is UserWarning])
    ours = est._label_binarizer
    assert vars(ours).keys() == vars(sklearns).keys()
    for name, value in vars(sklearns).items():
        if isinstance(value, np.ndarray):
            assert vars(ours)[name].dtype == value.dtype, name
            np.testing.assert_array_equal(vars(ours)[name], value)
        else:
            assert vars(ours)[name] == value, name
    Y = sklearns.transform(labels)
    np.testing.assert_array_equal(ours.transform(labels), Y)
    np.testing.assert_array_equal(ours.inverse_transform(Y), labels)


def test_partial_fit_on_multilabel_targets_with_the_classes_listed():
    # sklearn fits its binarizer on the indicator matrix when classes is 1-D
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((60, 4)), (rng.random((60, 3)) > 0.5).astype(int)
    ours = MLPClassifier(hidden_layer_sizes=(5,), random_state=0)
    ours.partial_fit(X, Y, classes=[0, 1, 2])
    theirs = SkMLPClassifier(hidden_layer_sizes=(5,), random_state=0)
    theirs.partial_fit(X, Y, classes=[0, 1, 2])
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-6)

