"""Validation data given to fit (X_val, y_val, sample_weight_val): early
stopping on it, validation_scores_ and validation_loss_curve_, metadata
routing through a Pipeline, and bad input."""
import warnings

import numpy as np
import pytest
import sklearn
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss, mean_poisson_deviance, r2_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from fastbp import (LeNet5Classifier, MLPClassifier, MLPRegressor, RNNClassifier,
                    RNNRegressor, load)

ESTIMATORS = [MLPClassifier, MLPRegressor, LeNet5Classifier, RNNClassifier, RNNRegressor]


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def _fit(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


def _sequences(n, seed, n_features=2):
    """Ragged sequences (3 to 9 steps) labelled by the sign of their sum."""
    rng = np.random.default_rng(seed)
    X = [rng.standard_normal((rng.integers(3, 10), n_features)) for _ in range(n)]
    return X, np.array([int(s[:, 0].sum() > 0) for s in X])


def _half_squared_error(y_true, y_pred, weights=None):
    """sklearn's MLP squared loss: half the mean over samples and outputs."""
    per_sample = ((np.reshape(y_pred, (len(y_pred), -1))
                   - np.reshape(y_true, (len(y_true), -1))) ** 2).mean(axis=1)
    return np.average(per_sample, weights=weights) / 2


# ----------------------------------------------------------- what is recorded
def test_every_epochs_score_and_loss_are_those_of_its_parameters(digits, epoch_snapshots):
    """validation_scores_[i] and validation_loss_curve_[i] are the score and
    log_loss that the parameters at the end of epoch i give on X_val."""
    X, y = digits
    est = _fit(MLPClassifier((16,), max_iter=8, random_state=0),
               X[:800], y[:800], X_val=X[800:1100], y_val=y[800:1100])
    assert (len(epoch_snapshots) == len(est.validation_scores_)
            == len(est.validation_loss_curve_) == 8)
    final = est._network.theta.copy()
    for theta, score, loss in zip(epoch_snapshots, est.validation_scores_,
                                  est.validation_loss_curve_):
        est._network.theta[:] = theta
        assert score == est.score(X[800:1100], y[800:1100])
        assert loss == pytest.approx(log_loss(y[800:1100], est.predict_proba(X[800:1100])),
                                     rel=1e-9)
    est._network.theta[:] = final
    # the loss falls as training goes on, and the score is tracked
    assert est.validation_loss_curve_[-1] < est.validation_loss_curve_[0]
    assert est.best_validation_score_ == max(est.validation_scores_)


def test_validation_data_without_early_stopping_only_observes(digits):
    """Without early stopping, X_val is recorded every epoch and changes
    nothing about training: the same weights as a fit without it."""
    X, y = digits
    params = dict(hidden_layer_sizes=(16,), max_iter=12, random_state=0)
    plain = _fit(MLPClassifier(**params), X[:800], y[:800])
    est = _fit(MLPClassifier(**params), X[:800], y[:800], X_val=X[800:], y_val=y[800:])
    assert plain.validation_scores_ is None and plain.validation_loss_curve_ is None
    for a, b in zip(est.coefs_, plain.coefs_):
        np.testing.assert_array_equal(a, b)
    assert est.loss_curve_ == plain.loss_curve_ and est.n_iter_ == plain.n_iter_
    assert len(est.validation_scores_) == len(est.validation_loss_curve_) == est.n_iter_
    assert est.validation_scores_[-1] == est.score(X[800:], y[800:])
    assert est.validation_loss_curve_[-1] == pytest.approx(
        log_loss(y[800:], est.predict_proba(X[800:])), rel=1e-9)
    assert est.best_validation_score_ == max(est.validation_scores_)
    assert est.best_loss_ == min(est.loss_curve_)  # the training loss rule, as without X_val


def test_early_stopping_stops_on_the_given_validation_set(digits):
    """An X_val whose labels are shifted by one class scores best before the
    network has learnt much: early stopping must stop there, keep those
    parameters, and train on all of X (no split)."""
    X, y = digits
    X_train, y_train = X[:1000], y[:1000]
    X_val, y_val = X[:300], (y[:300] + 1) % 10
    params = dict(hidden_layer_sizes=(32,), max_iter=60, early_stopping=True,
                  n_iter_no_change=3, random_state=0)
    est = _fit(MLPClassifier(**params), X_train, y_train, X_val=X_val, y_val=y_val)
    split = _fit(MLPClassifier(**params), X_train, y_train)

    scores = est.validation_scores_
    best = int(np.argmax(scores))
    assert est.n_iter_ == best + 1 + params["n_iter_no_change"] + 1
    assert scores[-1] < scores[best]
    assert split.n_iter_ > 2 * est.n_iter_  # the held-out split keeps improving
    assert est.t_ == len(X_train) * est.n_iter_  # every sample trained on
    # the parameters of the best epoch are kept
    assert est.score(X_val, y_val) == est.best_validation_score_ == scores[best]
    assert est.validation_loss_curve_[best] == pytest.approx(
        log_loss(y_val, est.predict_proba(X_val), labels=est.classes_), rel=1e-9)


def test_the_split_of_early_stopping_records_its_loss_too(digits):
    X, y = digits
    est = _fit(MLPClassifier((16,), max_iter=10, early_stopping=True, n_iter_no_change=50,
                             random_state=0), X[:600], y[:600])
    assert len(est.validation_loss_curve_) == len(est.validation_scores_) == 10
    assert np.all(np.isfinite(est.validation_loss_curve_))
    assert est.validation_loss_curve_[-1] < est.validation_loss_curve_[0]


@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
def test_regressor_records_r2_and_its_own_loss(loss):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 4))
    y = np.column_stack([np.exp(0.5 * X[:, 0]), np.exp(0.3 * X[:, 1] - 0.2 * X[:, 2])])
    w_val = rng.uniform(0.5, 2.0, 100)
    est = _fit(MLPRegressor(loss=loss, hidden_layer_sizes=(8,), max_iter=15, random_state=0),
               X[:200], y[:200], X_val=X[200:], y_val=y[200:], sample_weight_val=w_val)
    pred = est.predict(X[200:])
    assert est.validation_scores_[-1] == pytest.approx(
        r2_score(y[200:], pred, sample_weight=w_val), rel=1e-12)
    if loss == "squared_error":
        expected = _half_squared_error(y[200:], pred, w_val)
    else:  # half Poisson deviance, summed over the outputs of a sample
        expected = sum(mean_poisson_deviance(y[200:, j], pred[:, j], sample_weight=w_val)
                       for j in range(2)) / 2
    assert est.validation_loss_curve_[-1] == pytest.approx(expected, rel=1e-9)


def test_rnn_takes_ragged_validation_sequences():
    X, y = _sequences(120, 0)
    X_val, y_val = _sequences(40, 1)
    est = _fit(RNNClassifier(hidden_size=8, max_iter=6, random_state=0), X, y,
               X_val=X_val, y_val=y_val)
    assert len(est.validation_scores_) == 6
    assert est.validation_scores_[-1] == est.score(X_val, y_val)
    assert est.validation_loss_curve_[-1] == pytest.approx(
        log_loss(y_val, est.predict_proba(X_val)), rel=1e-9)


def test_rnn_sequence_output_weighs_every_step_of_a_sequence():
    X, _ = _sequences(80, 2)
    X_val, _ = _sequences(30, 3)
    y = [np.cumsum(s[:, 0]) for s in X]
    y_val = [np.cumsum(s[:, 0]) for s in X_val]
    w_val = np.random.default_rng(4).uniform(0.5, 2.0, 30)
    est = _fit(RNNRegressor(hidden_size=8, output="sequence", max_iter=6, random_state=0),
               X, y, X_val=X_val, y_val=y_val, sample_weight_val=w_val)
    step_weights = np.repeat(w_val, [len(s) for s in X_val])
    pred = np.concatenate(est.predict(X_val))
    assert est.validation_scores_[-1] == est.score(X_val, y_val, sample_weight=w_val)
    assert est.validation_loss_curve_[-1] == pytest.approx(
        _half_squared_error(np.concatenate(y_val), pred, step_weights), rel=1e-9)


def test_lenet_takes_validation_images():
    rng = np.random.default_rng(0)
    X = rng.random((60, 28, 28))
    y = np.arange(60) % 3
    est = _fit(LeNet5Classifier(max_iter=2, random_state=0), X[:40], y[:40],
               X_val=X[40:], y_val=y[40:])
    assert len(est.validation_scores_) == 2
    assert est.validation_scores_[-1] == est.score(X[40:], y[40:])
    assert est.validation_loss_curve_[-1] == pytest.approx(
        log_loss(y[40:], est.predict_proba(X[40:])), rel=1e-9)


def test_lbfgs_scores_every_iteration_without_changing_its_path(digits):
    X, y = digits
    params = dict(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=15, random_state=0)
    plain = _fit(MLPClassifier(**params), X[:500], y[:500])
    est = _fit(MLPClassifier(**params), X[:500], y[:500], X_val=X[500:800], y_val=y[500:800])
    for a, b in zip(est.coefs_, plain.coefs_):
        np.testing.assert_array_equal(a, b)
    assert len(est.validation_scores_) == len(est.loss_curve_) == est.n_iter_ == 15
    assert est.validation_scores_[-1] == est.score(X[500:800], y[500:800])
    assert est.validation_loss_curve_[-1] == pytest.approx(
        log_loss(y[500:800], est.predict_proba(X[500:800])), rel=1e-9)
    assert plain.validation_scores_ is None and plain.validation_loss_curve_ is None


def test_warm_start_appends_to_the_validation_records(digits):
    X, y = digits
    est = _fit(MLPClassifier((8,), max_iter=3, warm_start=True, random_state=0),
               X[:500], y[:500])
    assert est.validation_scores_ is None
    _fit(est, X[:500], y[:500], X_val=X[500:700], y_val=y[500:700])
    assert len(est.loss_curve_) == 6 and len(est.validation_loss_curve_) == 3
    _fit(est, X[:500], y[:500], X_val=X[500:700], y_val=y[500:700])
    assert len(est.validation_scores_) == len(est.validation_loss_curve_) == 6
    assert est.validation_scores_[-1] == est.score(X[500:700], y[500:700])


def test_the_validation_loss_curve_is_saved(digits, tmp_path):
    X, y = digits
    est = _fit(MLPClassifier((8,), max_iter=3, random_state=0), X[:300], y[:300],
               X_val=X[300:400], y_val=y[300:400])
    est.save(tmp_path / "model.npz")
    assert load(tmp_path / "model.npz").validation_loss_curve_ == est.validation_loss_curve_


# -------------------------------------------------------- metadata routing
@pytest.mark.parametrize("cls", ESTIMATORS)
def test_fit_requests_the_validation_data(cls):
    with sklearn.config_context(enable_metadata_routing=True):
        est = cls().set_fit_request(X_val=True, y_val=True, sample_weight_val=True)
        requests = est.get_metadata_routing().fit.requests
    assert requests["X_val"] is requests["y_val"] is requests["sample_weight_val"] is True


@pytest.mark.parametrize("transform_input", [None, ["X_val"]])
def test_pipeline_routes_the_validation_data(digits, transform_input):
    """Routed through a Pipeline, X_val reaches the network as given, or
    through the steps before it with transform_input=['X_val']."""
    X, y = digits
    X = X * 16.0  # raw pixels: scaling them matters
    X_val, y_val = X[1000:1300], y[1000:1300]
    with sklearn.config_context(enable_metadata_routing=True):
        net = MLPClassifier((16,), max_iter=5, random_state=0).set_fit_request(
            X_val=True, y_val=True)
        pipe = _fit(Pipeline([("scale", StandardScaler()), ("net", net)],
                             transform_input=transform_input),
                    X[:1000], y[:1000], X_val=X_val, y_val=y_val)
    net = pipe.named_steps["net"]
    seen = X_val if transform_input is None else pipe.named_steps["scale"].transform(X_val)
    assert net.validation_loss_curve_[-1] == pytest.approx(
        log_loss(y_val, net.predict_proba(seen)), rel=1e-9)
    assert net.validation_scores_[-1] == net.score(seen, y_val)
    other = pipe.named_steps["scale"].transform(X_val) if transform_input is None else X_val
    assert net.validation_loss_curve_[-1] != pytest.approx(
        log_loss(y_val, net.predict_proba(other)), rel=1e-3)


# --------------------------------------------------------------- bad input
def _dense_cases():
    rng = np.random.default_rng(0)
    X, y = rng.random((40, 5)), np.arange(40) % 3
    return X, y, [
        (dict(X_val=X[:10]), "X_val is provided, but y_val was not provided"),
        (dict(y_val=y[:10]), "y_val is provided, but X_val was not provided"),
        (dict(sample_weight_val=np.ones(10)), "sample_weight_val is provided, but X_val"),
        (dict(X_val=X[:10, :4], y_val=y[:10]),
         "X_val does not fit the model being trained: X has 4 features"),
        (dict(X_val=X[:10], y_val=y[:10] + 5),
         r"y_val does not fit the model being trained: `y` has classes not in"),
        (dict(X_val=X[:10], y_val=y[:9]), "X_val holds 10 samples, but y_val holds 9"),
        (dict(X_val=X[:10], y_val=y[:10], sample_weight_val=np.ones(9)),
         "sample_weight_val: sample_weight.shape"),
        (dict(X_val=X[:10], y_val=y[:10], sample_weight_val=np.r_[1.0, -1.0, np.zeros(8)]),
         "sample weights of the validation set sum to zero"),
        (dict(X_val=X[:10], y_val=np.full(10, 0.5)),
         "y_val does not fit the model being trained: Unknown label type"),
    ]


@pytest.mark.parametrize("case", range(len(_dense_cases()[2])))
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_bad_validation_data_raises_and_leaves_the_model(case, solver):
    X, y, cases = _dense_cases()
    kwargs, message = cases[case]
    est = _fit(MLPClassifier((4,), solver=solver, max_iter=2, random_state=0), X, y)
    coefs = [c.copy() for c in est.coefs_]
    with pytest.raises(ValueError, match=message):
        est.fit(X, y, **kwargs)
    for a, b in zip(est.coefs_, coefs):
        np.testing.assert_array_equal(a, b)
    assert est.n_iter_ == 2 and est.validation_scores_ is None


def test_regressor_validation_targets_need_the_same_outputs():
    rng = np.random.default_rng(0)
    X, y = rng.random((30, 3)), rng.random(30)
    with pytest.raises(ValueError, match="y_val does not fit.*2 outputs"):
        MLPRegressor(max_iter=1).fit(X, y, X_val=X[:5], y_val=rng.random((5, 2)))
    with pytest.raises(ValueError, match="y_val does not fit.*negative"):
        MLPRegressor(loss="poisson", max_iter=1).fit(X, y, X_val=X[:5], y_val=-y[:5])


@pytest.mark.parametrize("X_val, y_val, output, message", [
    ([np.ones((4, 3))], [0], "last", "X_val does not fit.*3 features per step, expected 2"),
    ([np.ones((4, 2))] * 3, [0, 1], "last", "y_val does not fit.*2 targets, X holds 3"),
    ([np.ones((4, 2))], [np.zeros(3)], "sequence", r"y_val does not fit.*y\[0\] has 3 steps"),
])
def test_bad_validation_sequences(X_val, y_val, output, message):
    X, y = _sequences(20, 0)
    if output == "sequence":
        y = [np.full(len(s), label) for s, label in zip(X, y)]
    with pytest.raises(ValueError, match=message):
        RNNClassifier(hidden_size=4, output=output, max_iter=1).fit(
            X, y, X_val=X_val, y_val=y_val)


def test_lenet_validation_images_of_another_size():
    rng = np.random.default_rng(0)
    X, y = rng.random((12, 28, 28)), np.arange(12) % 2
    with pytest.raises(ValueError, match="X_val does not fit the model being trained"):
        LeNet5Classifier(max_iter=1).fit(X, y, X_val=rng.random((4, 32, 32)),
                                         y_val=y[:4])


def test_one_validation_sample_is_refused():
    """R² of one sample is undefined: every epoch would score NaN, never
    improve, and early stopping would hand back the initial weights."""
    from fastbp import MLPRegressor

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((30, 3)), rng.standard_normal(30)
    est = MLPRegressor(hidden_layer_sizes=(4,), max_iter=5, early_stopping=True)
    with pytest.raises(ValueError, match="X_val holds 1 sample"):
        est.fit(X, y, X_val=X[:1], y_val=y[:1])


def test_warm_start_with_new_validation_data_scores_it_afresh():
    """The best score of an earlier fit was on other data: a refit given a
    new validation set must not stop at once against it and hand back the
    earlier fit's weights."""
    from sklearn.datasets import make_classification

    from fastbp import MLPClassifier

    X, y = make_classification(400, 6, n_informative=4, random_state=0)
    est = MLPClassifier((16,), max_iter=40, warm_start=True, early_stopping=True,
                        random_state=0, n_iter_no_change=3)
    rng = np.random.RandomState(1)
    noisy = np.where(rng.rand(100) < 0.4, 1 - y[100:200], y[100:200])  # scores lower
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y, X_val=X[:100], y_val=y[:100])
        first = est.coefs_[0].copy()
        n_scores = len(est.validation_scores_)
        est.fit(X, y, X_val=X[100:200], y_val=noisy)
    assert est.best_validation_score_ == max(est.validation_scores_[n_scores:])
    assert not np.array_equal(est.coefs_[0], first)
