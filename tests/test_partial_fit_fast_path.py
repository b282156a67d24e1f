"""partial_fit's fast path: after the first call, a plain float ndarray X and
plain labels (integer classes) or float targets skip sklearn's input checks,
which cost more than a batch of a hundred rows; the model trains to the same
bits, and every error and warning stays sklearn's."""
import warnings

import numpy as np
import pytest
from sklearn.exceptions import DataConversionWarning

import fastbp
from fastbp import _sequence_input, _targets, lenet, mlp

from _estimator_data import data

# the RNNs with one target per step ("-seq") or per sequence
NAMES = ["MLPClassifier", "MLPRegressor", "LeNet5Classifier", "RNNClassifier",
         "RNNRegressor", "RNNClassifier-seq", "RNNRegressor-seq"]


def make(name, **params):
    params = {"random_state": 0, "n_jobs": 2, "batch_size": 8, **params}
    if name.startswith("MLP"):
        params = {"hidden_layer_sizes": (9, 5), **params}
    elif name.startswith("RNN"):
        params = {"hidden_size": 6, "output": "sequence" if name.endswith("-seq") else "last",
                  **params}
    return getattr(fastbp, name.removesuffix("-seq"))(**params)


def targets(name, n, seed=0):
    rng = np.random.default_rng(seed + 100)
    shape = (n, 4) if name.endswith("-seq") else n
    if "Classifier" in name:
        return rng.integers(0, 3, shape)
    return rng.standard_normal(shape)


def first_call(est, X, y):
    if "Classifier" in type(est).__name__:
        return est.partial_fit(X, y, classes=np.arange(3))
    return est.partial_fit(X, y)


@pytest.fixture
def checks_called(monkeypatch):
    """Calls of sklearn's input and target checks made by the estimators."""
    calls = []
    for module, names in ((mlp, ("validate_data",)), (lenet, ("validate_data", "check_array")),
                          (_sequence_input, ("validate_data", "check_array")),
                          (_targets, ("check_array", "check_classification_targets",
                                      "unique_labels"))):
        for name in names:
            real = getattr(module, name)

            def spy(*args, _real=real, **kwargs):
                calls.append(_real.__name__)
                return _real(*args, **kwargs)
            monkeypatch.setattr(module, name, spy)
    return calls


def _checked_twin(name):
    """An estimator whose partial_fit always takes the full checks."""
    twin = make(name)
    twin._plain_partial_fit = lambda X, y: None
    return twin


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_plain_arrays_skip_the_checks_and_train_the_same(name, dtype, checks_called):
    fast = make(name)
    slow = _checked_twin(name)
    X = data(name, 40, dtype)
    y = targets(name, 40)
    for est in (fast, slow):
        first_call(est, X[:8], y[:8])
    for start in range(8, 40, 16):
        checks_called.clear()
        fast.partial_fit(X[start:start + 16], y[start:start + 16])
        assert checks_called == [], "plain arrays went through sklearn's checks"
        slow.partial_fit(X[start:start + 16], y[start:start + 16])
        assert checks_called, "the twin must take the checks"
    np.testing.assert_array_equal(fast._network.theta, slow._network.theta)
    assert fast.loss_curve_ == slow.loss_curve_
    np.testing.assert_array_equal(fast.predict(X), slow.predict(X))


@pytest.mark.parametrize("name", ["MLPClassifier", "LeNet5Classifier", "RNNClassifier-seq"])
def test_labels_of_other_integer_dtypes_and_float_images_as_before(name, checks_called):
    """int32 labels for int64 classes, float64 rows for a float32 model and
    Fortran order take the fast path, cast as the checks cast them."""
    fast = make(name)
    slow = _checked_twin(name)
    X = data(name, 24, np.float32)
    y = targets(name, 24)
    for est in (fast, slow):
        first_call(est, X[:8], y[:8])
    X64 = np.asfortranarray(data(name, 16, np.float64, seed=1))
    y32 = targets(name, 16, seed=1).astype(np.int32)
    checks_called.clear()
    fast.partial_fit(X64, y32)
    assert checks_called == []
    slow.partial_fit(X64, y32)
    np.testing.assert_array_equal(fast._network.theta, slow._network.theta)


def _error(est, X, y):
    with pytest.raises(Exception) as info:
        est.partial_fit(X, y)
    return type(info.value), str(info.value)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case", ["unseen label", "nan in X", "inf in y", "too few labels",
                                  "other features"])
def test_bad_input_raises_as_before_and_changes_nothing(name, case):
    X = data(name, 16, np.float32)
    y = targets(name, 16)
    if case == "unseen label":
        if "Classifier" not in name:
            pytest.skip("regressors have no classes")
        y = y.copy()
        y.reshape(-1)[3] = 7
    elif case == "nan in X":
        X = X.copy()
        X.reshape(-1)[5] = np.nan
    elif case == "inf in y":
        if "Classifier" in name:
            pytest.skip("integer labels hold no infinity")
        y = y.copy()
        y.reshape(-1)[2] = np.inf
    elif case == "too few labels":
        y = y[:-1]
    else:
        X = X[:, :5] if name.startswith("MLP") else X[..., :2] if name.startswith("RNN") \
            else X[:, :20, :20]
    fast = make(name)
    slow = _checked_twin(name)
    for est in (fast, slow):
        first_call(est, data(name, 8, np.float32, seed=3), targets(name, 8, seed=3))
    before = fast._network.theta.copy()
    assert _error(fast, X, y) == _error(slow, X, y)
    np.testing.assert_array_equal(fast._network.theta, before)


@pytest.mark.parametrize("name", ["MLPRegressor", "RNNRegressor", "RNNRegressor-seq"])
def test_float32_rows_for_a_float64_model_train_as_before(name, checks_called):
    """The checks keep X's dtype, and a regressor's targets are cast to it
    before the network's: float32 rows round a float64 model's targets."""
    fast = make(name)
    slow = _checked_twin(name)
    for est in (fast, slow):
        first_call(est, data(name, 8, np.float64), targets(name, 8))
    X32, y = data(name, 16, np.float32, seed=1), targets(name, 16, seed=1)
    checks_called.clear()
    fast.partial_fit(X32, y)
    assert checks_called == []
    slow.partial_fit(X32, y)
    np.testing.assert_array_equal(fast._network.theta, slow._network.theta)


@pytest.mark.parametrize("name", ["MLPClassifier", "LeNet5Classifier", "RNNClassifier-seq"])
def test_warm_start_still_needs_every_class(name):
    """With warm_start, sklearn's rule (every call's y holds every class) is
    the checks': the fast path leaves such calls to them."""
    est = make(name, warm_start=True)
    first_call(est, data(name, 8, np.float64), targets(name, 8))
    y = targets(name, 8) % 2  # no class 2
    with pytest.raises(ValueError, match="warm_start can only be used where `y` has the same"):
        est.partial_fit(data(name, 8, np.float64), y)


@pytest.mark.parametrize("name", NAMES)
def test_a_scalar_y_gets_the_checks_error(name):
    fast = make(name)
    slow = _checked_twin(name)
    for est in (fast, slow):
        first_call(est, data(name, 8, np.float32), targets(name, 8))
    X = data(name, 1, np.float32)
    y = np.array(1) if "Classifier" in name else np.array(0.5)
    assert _error(fast, X, y) == _error(slow, X, y)


@pytest.mark.parametrize("X_shape", [(8, 3, 28, 28), (8, 16, 49)])
def test_lenet_bad_images_and_bad_labels_give_the_labels_error(X_shape):
    """fit checks LeNet-5's labels before the images' layout; so does a
    partial_fit whose images the fast path cannot read."""
    fast = make("LeNet5Classifier")
    slow = _checked_twin("LeNet5Classifier")
    for est in (fast, slow):
        first_call(est, data("LeNet5Classifier", 8, np.float32), targets("LeNet5Classifier", 8))
    X = np.random.default_rng(0).random(X_shape).astype(np.float32)
    y = np.zeros((8, 2, 2), dtype=np.int64)
    assert _error(fast, X, y) == _error(slow, X, y)
    assert "dim 3" in _error(fast, X, y)[1]


def test_a_poisson_regressor_refuses_negative_targets_as_before():
    est = make("MLPRegressor", loss="poisson")
    X = data("MLPRegressor", 8, np.float64)
    est.partial_fit(X, np.abs(targets("MLPRegressor", 8)))
    with pytest.raises(ValueError, match="negative which is not allowed for Poisson"):
        est.partial_fit(X, targets("MLPRegressor", 8))


def test_a_column_of_targets_still_warns():
    est = make("MLPRegressor")
    X = data("MLPRegressor", 8, np.float64)
    y = targets("MLPRegressor", 8)
    est.partial_fit(X, y)
    with pytest.warns(DataConversionWarning):
        est.partial_fit(X, y[:, None])


def test_string_classes_take_the_checks(checks_called):
    est = make("MLPClassifier")
    X = data("MLPClassifier", 8, np.float64)
    labels = np.array(["a", "b", "c"])
    est.partial_fit(X, labels[np.arange(8) % 3], classes=labels)
    checks_called.clear()
    est.partial_fit(X, labels[np.arange(8) % 2])
    assert checks_called


def test_fitted_on_a_dataframe_still_warns_for_an_array():
    pd = pytest.importorskip("pandas")
    X = data("MLPClassifier", 8, np.float64)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    est = make("MLPClassifier")
    est.partial_fit(frame, targets("MLPClassifier", 8), classes=np.arange(3))
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        est.partial_fit(X, targets("MLPClassifier", 8))


def test_fit_and_warm_start_keep_the_checks(checks_called):
    """Only partial_fit after its first call takes the fast path: fit resets
    what the checks record (n_features_in_, classes_)."""
    est = make("MLPClassifier", max_iter=1, warm_start=True)
    X = data("MLPClassifier", 8, np.float64)
    y = targets("MLPClassifier", 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
        checks_called.clear()
        est.fit(X, y)
    assert "validate_data" in checks_called
