"""Bad input gets a clear error and changes nothing; odd but valid layouts
are read the same as C-contiguous float64 (issue 6).

One matrix: every estimator x every bad input x every method it reaches.
Each case expects the exception type scikit-learn raises and a phrase that
says what is wrong, passes its arrays read-only (an in-place write would
raise) and checks them against copies afterwards. Where a fitted model is
involved, the model must come out of the failed call unchanged.
"""
import copy
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError

import fastbp
from fastbp import (LeNet5Classifier, MLPClassifier, MLPRegressor, RNNClassifier,
                    RNNRegressor)

COMMON = dict(max_iter=2, random_state=0, n_jobs=1)
FACTORIES = {
    "MLPClassifier": lambda **kw: MLPClassifier(**{"hidden_layer_sizes": (3,), **COMMON, **kw}),
    "MLPRegressor": lambda **kw: MLPRegressor(**{"hidden_layer_sizes": (3,), **COMMON, **kw}),
    "LeNet5Classifier": lambda **kw: LeNet5Classifier(**{**COMMON, **kw}),
    "RNNClassifier": lambda **kw: RNNClassifier(**{"hidden_size": 3, **COMMON, **kw}),
    "RNNRegressor": lambda **kw: RNNRegressor(**{"hidden_size": 3, **COMMON, **kw}),
}
NAMES = list(FACTORIES)
CLASSIFIERS = {"MLPClassifier", "LeNet5Classifier", "RNNClassifier"}


def _kind(name):
    return "mlp" if name.startswith("MLP") else "lenet" if name.startswith("LeNet") else "rnn"


def make_data(name):
    """A small valid (X, y) of the right kind for the estimator."""
    rng = np.random.default_rng(0)
    kind = _kind(name)
    if kind == "mlp":
        X = rng.standard_normal((12, 4))
    elif kind == "lenet":
        X = rng.random((6, 28, 28))
    else:
        X = rng.standard_normal((8, 5, 3))
    n = len(X)
    y = np.arange(n) % 3 if name in CLASSIFIERS else rng.standard_normal(n)
    return X, y


def _fit(est, X, y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y, **kwargs)


_FITTED = {}


def fitted(name):
    """A fitted model of each estimator (fitted once, handed out as copies)."""
    if name not in _FITTED:
        X, y = make_data(name)
        _FITTED[name] = _fit(FACTORIES[name](), X, y)
    return copy.deepcopy(_FITTED[name])


# ------------------------------------------------------------- bad inputs
def _set(X, value, index=0):
    X = np.array(X, dtype=float)
    X.reshape(-1)[index] = value
    return X


def _strings(X):
    X = np.array(X, dtype=object)
    X.reshape(-1)[1] = "a"
    return X


# name -> (make bad X from valid X (or None), regex, kinds it applies to)
BAD_X = {
    "nan": (lambda X: _set(X, np.nan), r"Input X contains NaN", None),
    "posinf": (lambda X: _set(X, np.inf, 3), r"Input X contains infinity", None),
    "neginf": (lambda X: _set(X, -np.inf, 5), r"Input X contains infinity", None),
    "complex": (lambda X: X + 1j, r"Complex data not supported", None),
    "object_strings": (_strings, r"could not convert string to float", None),
    "zero_samples": (lambda X: X[:0], r"Found array with 0 sample\(s\)", None),
    "zero_features_2d": (lambda X: np.zeros((len(X), 0)), r"0 feature\(s\)", None),
    "zero_features_3d": (lambda X: np.zeros((len(X), 5, 0)), r"0 feature\(s\)", {"rnn"}),
    "one_d": (lambda X: np.asarray(X).reshape(-1)[:len(X)], r"Expected 2D array, got 1D",
              None),
    "too_many_dims": (lambda X: X[:, :, None], r"[Ff]ound array with dim 3", {"mlp"}),
    "too_many_dims_rnn": (lambda X: X[..., None], r"[Ff]ound array with dim 4", {"rnn"}),
    "ragged_rows": (lambda X: [list(r) for r in X.reshape(len(X), -1)[:-1]]
                    + [list(X.reshape(len(X), -1)[-1][:-1])], r"inhomogeneous",
                    {"mlp", "lenet"}),
    "wrong_image_shape": (lambda X: np.zeros((len(X), 20, 20)),
                          r"takes images as X of shape", {"lenet"}),
    "wrong_channels": (lambda X: np.zeros((len(X), 3, 28, 28)), r"3 channels", {"lenet"}),
    "empty_sequence": (lambda X: [s for s in X[:-1]] + [X[-1][:0]], r"empty sequence",
                       {"rnn"}),
    "no_sequences": (lambda X: [], r"no sequences|0 sample\(s\)", {"rnn"}),
    "ragged_features": (lambda X: [s for s in X[:-1]] + [X[-1][:, :2]],
                        r"features per step", {"rnn"}),
    "nan_in_ragged": (lambda X: [s for s in X[:-2]] + [_set(X[-2], np.nan), X[-1][:2]],
                      r"Input X contains NaN", {"rnn"}),
}
# bad X seen only by a fitted model: another number of features
WRONG_FEATURES = {
    "mlp": (lambda X: X[:, :3], r"X has 3 features, but \w+ is expecting 4 features"),
    "lenet": (lambda X: np.zeros((len(X), 32, 32)),
              r"X has 1024 features, but LeNet5Classifier is expecting 784 features"),
    "rnn": (lambda X: np.zeros((len(X), 5, 4)),
            r"X has 4 features per step, but \w+ is expecting 3 features"),
}
# name -> (make bad y from valid y, regex, estimators it applies to)
BAD_Y = {
    "nan": (lambda y: _set(y, np.nan), r"Input y contains NaN", None),
    "inf": (lambda y: _set(y, np.inf), r"Input y contains infinity", None),
    "complex": (lambda y: y + 1j, r"Complex data not supported", None),
    "strings_for_regressor": (lambda y: y.astype(str),
                              r"not compatible with arrays of bytes/strings",
                              {"MLPRegressor", "RNNRegressor"}),
    "continuous_for_classifier": (lambda y: y + 0.5, r"Unknown label type: continuous",
                                  CLASSIFIERS),
    "too_short": (lambda y: y[:-1], r"inconsistent numbers of samples", None),
}
BAD_SAMPLE_WEIGHT = {
    "nan": (lambda sw: _set(sw, np.nan), r"Input sample_weight contains NaN"),
    "wrong_length": (lambda sw: sw[:-1], r"sample_weight.shape == \(\d+,\), expected"),
}

X_METHODS = ["fit", "partial_fit", "fitted.fit", "fitted.partial_fit", "fitted.warm_fit",
             "predict", "predict_proba", "transform", "backprop", "loaded.predict"]
Y_METHODS = ["fit", "partial_fit", "fitted.fit", "fitted.partial_fit", "fitted.warm_fit",
             "backprop"]


def _freeze(obj):
    """Make every array in obj read-only; return a deep copy to compare against."""
    snapshot = copy.deepcopy(obj)
    if isinstance(obj, np.ndarray):
        obj.flags.writeable = False
    elif isinstance(obj, list):
        for item in obj:
            _freeze(item)
    return snapshot


def _assert_same(obj, snapshot):
    if isinstance(snapshot, np.ndarray):
        assert isinstance(obj, np.ndarray) and obj.dtype == snapshot.dtype
        if snapshot.dtype == object:
            assert obj.tolist() == snapshot.tolist()
        else:
            np.testing.assert_array_equal(obj, snapshot)
    elif isinstance(snapshot, list):
        assert isinstance(obj, list) and len(obj) == len(snapshot)
        for a, b in zip(obj, snapshot):
            _assert_same(a, b)
    elif hasattr(snapshot, "to_numpy"):  # DataFrame
        np.testing.assert_array_equal(obj.to_numpy(), snapshot.to_numpy())
    elif snapshot is None or isinstance(snapshot, (float, int, str)):
        assert obj == snapshot or (obj != obj and snapshot != snapshot)  # NaN == NaN
    else:
        raise TypeError(f"cannot compare {type(snapshot)}")


def _model_state(est):
    """What a failed call must leave as it was."""
    if not hasattr(est, "_network"):
        return None
    X, _ = make_data(type(est).__name__)
    out = est.predict_proba(X) if hasattr(est, "predict_proba") else est.predict(X)
    return (est._network.theta.copy(), est.n_features_in_, out, est.n_iter_,
            list(est.loss_curve_))


def _assert_model_unchanged(est, before):
    after = _model_state(est)
    if before is None:
        assert after is None, "a failed first call left a fitted model behind"
        fitted_attrs = [k for k in vars(est) if k.endswith("_") and not k.startswith("__")]
        assert not fitted_attrs, f"a failed first call left {fitted_attrs} behind"
        return
    np.testing.assert_array_equal(after[0], before[0])
    assert after[1] == before[1]
    np.testing.assert_array_equal(after[2], before[2])
    assert after[3:] == before[3:]


def _call(name, method, X, y, tmp_path, sample_weight=None):
    """Run ``method`` of the estimator; return the estimator it ran on."""
    _, y_ok = make_data(name)
    classes = np.unique(y_ok) if name in CLASSIFIERS else None
    kw = {} if sample_weight is None else {"sample_weight": sample_weight}
    if method == "fit":
        est = FACTORIES[name]()
        return est, lambda: est.fit(X, y, **kw)
    if method == "partial_fit":
        est = FACTORIES[name]()
        extra = {"classes": classes} if classes is not None else {}
        return est, lambda: est.partial_fit(X, y, **kw, **extra)
    if method == "loaded.predict":
        fitted(name).save(tmp_path / "m.npz")
        est = fastbp.load(tmp_path / "m.npz")
        return est, lambda: est.predict(X)
    est = fitted(name)
    if method == "fitted.fit":
        return est, lambda: est.fit(X, y, **kw)
    if method == "fitted.partial_fit":
        return est, lambda: est.partial_fit(X, y, **kw)
    if method == "fitted.warm_fit":
        est.set_params(warm_start=True)
        return est, lambda: est.fit(X, y, **kw)
    if method == "backprop":
        return est, lambda: est.backprop(X, y, **kw)
    return est, lambda: getattr(est, method)(X)


def _check_raises(name, method, X, y, exc, match, tmp_path, sample_weight=None):
    frozen = [_freeze(a) for a in (X, y, sample_weight)]
    est, run = _call(name, method, X, y, tmp_path, sample_weight)
    before = _model_state(est)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow on the way
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.raises(exc, match=match):
            run()
    for a, snap in zip((X, y, sample_weight), frozen):
        _assert_same(a, snap)
    _assert_model_unchanged(est, before)


def _x_cases():
    for name in NAMES:
        for bad, (_, _, kinds) in BAD_X.items():
            if kinds is None or _kind(name) in kinds:
                yield pytest.param(name, bad, id=f"{name}-{bad}")


def _y_cases():
    for name in NAMES:
        for bad, (_, _, names) in BAD_Y.items():
            if names is None or name in names:
                yield pytest.param(name, bad, id=f"{name}-{bad}")


def _check_every_method(name, methods, make_args, match, tmp_path):
    """_check_raises for each method; report every method that fails at once
    (one test per input rather than per method keeps the matrix quick)."""
    failures = []
    for method in methods:
        if method == "predict_proba" and name not in CLASSIFIERS:
            continue
        X, y = make_args(method)
        try:
            _check_raises(name, method, X, y, ValueError, match, tmp_path)
        except (Exception, pytest.fail.Exception) as exc:
            failures.append(f"{method}: {type(exc).__name__}: {exc}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("name,bad", list(_x_cases()))
def test_bad_X(name, bad, tmp_path):
    make_bad, match, _ = BAD_X[bad]

    def make_args(method):
        X, y = make_data(name)
        if bad in ("zero_samples", "no_sequences") and method not in (
                "predict", "predict_proba", "transform", "loaded.predict"):
            y = y[:0]
        return make_bad(X), y

    _check_every_method(name, X_METHODS, make_args, match, tmp_path)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("method", ["predict", "predict_proba", "transform", "backprop",
                                    "fitted.partial_fit", "fitted.warm_fit",
                                    "loaded.predict"])
def test_wrong_number_of_features_after_fit(name, method, tmp_path):
    if method == "predict_proba" and name not in CLASSIFIERS:
        pytest.skip("regressors have no predict_proba")
    X, y = make_data(name)
    make_bad, match = WRONG_FEATURES[_kind(name)]
    _check_raises(name, method, make_bad(X), y, ValueError, match, tmp_path)


@pytest.mark.parametrize("name,bad", list(_y_cases()))
def test_bad_y(name, bad, tmp_path):
    make_bad, match, _ = BAD_Y[bad]
    if bad == "complex" and name in CLASSIFIERS:
        match = r"Complex data not supported|Unknown label type"
    if bad == "too_short" and _kind(name) == "rnn":
        match = r"inconsistent numbers of samples|y holds 7 targets, X holds 8 sequences"

    def make_args(method):
        X, y = make_data(name)
        return X, make_bad(y)

    _check_every_method(name, Y_METHODS, make_args, match, tmp_path)


@pytest.mark.parametrize("name", ["MLPRegressor", "RNNRegressor"])
@pytest.mark.parametrize("method", ["fitted.partial_fit", "fitted.warm_fit", "backprop"])
def test_wrong_number_of_outputs_after_fit(name, method, tmp_path):
    X, y = make_data(name)
    _check_raises(name, method, X, np.c_[y, y], ValueError,
                  r"y has 2 outputs but the fitted network has 1", tmp_path)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", list(BAD_SAMPLE_WEIGHT))
@pytest.mark.parametrize("method", ["fit", "fitted.partial_fit", "backprop"])
def test_bad_sample_weight(name, bad, method, tmp_path):
    X, y = make_data(name)
    make_bad, match = BAD_SAMPLE_WEIGHT[bad]
    sw = make_bad(np.ones(len(X)))
    _check_raises(name, method, X, y, ValueError, match, tmp_path, sample_weight=sw)


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
@pytest.mark.parametrize("method", ["partial_fit", "fitted.partial_fit", "backprop"])
def test_class_outside_classes(name, method, tmp_path):
    """partial_fit (first call or later) and backprop reject labels that are
    not in ``classes``; a silent all-zero target row would train on garbage."""
    X, y = make_data(name)
    y = y.copy()
    y[0] = 7
    _check_raises(name, method, X, y, ValueError, r"not in .*classes", tmp_path)


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_partial_fit_needs_classes_first(name):
    X, y = make_data(name)
    est = FACTORIES[name]()
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        est.partial_fit(X, y)
    with pytest.raises(NotFittedError):
        est.predict(X)


# ------------------------------------------------------- hyperparameters
COMMON_BAD_PARAMS = [
    ("batch_size", 0), ("batch_size", -5), ("learning_rate_init", -0.1),
    ("learning_rate_init", 0.0), ("solver", "rmsprop"), ("learning_rate", "bogus"),
    ("alpha", -1.0), ("max_iter", 0), ("max_iter", -1), ("momentum", 1.5), ("n_jobs", 0),
    ("beta_1", 1.0), ("beta_2", -0.1), ("epsilon", 0.0), ("tol", -1.0),
    ("validation_fraction", 1.0), ("n_iter_no_change", 0), ("max_fun", 0),
    ("shuffle", "yes"), ("power_t", -1.0),
]
OWN_BAD_PARAMS = {
    "mlp": [("hidden_layer_sizes", (0,)), ("hidden_layer_sizes", (-3, 2)),
("activation", "softsign"), ("loss", "hinge")],
    "lenet": [("activation", "softsign"), ("connection_table", "bogus"),
              ("connection_table", np.zeros((6, 16), bool)), ("image_shape", (0, 5)),
              ("loss", "hinge")],
    "rnn": [("hidden_size", 0), ("hidden_size", -2), ("nonlinearity", "softsign"),
            ("output", "bogus"), ("clip_grad_norm", -1.0), ("clip_grad_norm", 0.0),
            ("bptt_steps", 0), ("loss", "hinge")],
}


def _param_cases():
    for name in NAMES:
        for param, value in COMMON_BAD_PARAMS + OWN_BAD_PARAMS[_kind(name)]:
            yield pytest.param(name, param, value, id=f"{name}-{param}={value!r}"[:80])


@pytest.mark.parametrize("name,param,value", list(_param_cases()))
def test_invalid_hyperparameter_raises_at_fit(name, param, value, tmp_path):
    X, y = make_data(name)
    FACTORIES[name](**{param: value})  # the constructor validates nothing
    # the message names the parameter
    match = "connection_table" if param == "connection_table" else param
    est = FACTORIES[name](**{param: value})
    frozen = [_freeze(X), _freeze(y)]
    with pytest.raises(ValueError, match=match):
        est.fit(X, y)
    _assert_same(X, frozen[0])
    _assert_same(y, frozen[1])
    assert not hasattr(est, "_network")
    if param == "solver":  # partial_fit only exists for sgd and adam, as in sklearn
        assert not hasattr(est, "partial_fit")
        return
    kw = {"classes": np.unique(y)} if name in CLASSIFIERS else {}
    with pytest.raises(ValueError, match=match):
        FACTORIES[name](**{param: value}).partial_fit(X, y, **kw)


def test_huge_integer_parameters_are_accepted_as_by_sklearn():
    X, y = make_data("MLPClassifier")
    est = MLPClassifier(solver="lbfgs", max_fun=10**30, max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    assert est.n_iter_ <= 2


@pytest.mark.parametrize("params", [
    dict(hidden_layer_sizes=(4, 0)), dict(hidden_layer_sizes="10"), dict(verbose=-1),
    dict(learning_rate_init=np.inf), dict(alpha=np.nan), dict(tol=np.inf),
    dict(momentum=1.5), dict(activation="softplus"), dict(max_iter=0),
])
def test_bad_parameters_raise_what_sklearn_raises(params):
    """The exception sklearn's MLP raises, or a subclass: InvalidParameterError
    (a ValueError and a TypeError), with a message that names the parameter."""
    from sklearn.neural_network import MLPClassifier as SkMLPClassifier
    from sklearn.utils._param_validation import InvalidParameterError
    X, y = make_data("MLPClassifier")
    name = next(iter(params))
    with pytest.raises(ValueError) as sklearn_raised:
        SkMLPClassifier(**params).fit(X, y)
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter") as raised:
        MLPClassifier(**params).fit(X, y)
    assert isinstance(raised.value, type(sklearn_raised.value))


# ----------------------------------------------------------- not fitted
@pytest.mark.parametrize("name", NAMES)
def test_everything_before_fit_raises_not_fitted(name, tmp_path):
    X, y = make_data(name)
    est = FACTORIES[name]()
    calls = [lambda: est.predict(X), lambda: est.backprop(X, y),
             lambda: est.save(tmp_path / "m.npz"), lambda: est.score(X, y),
             lambda: est.parameters_, lambda: est.transform(X),
             lambda: est.get_feature_names_out()]
    if name in CLASSIFIERS:
        calls += [lambda: est.predict_proba(X), lambda: est.predict_log_proba(X)]
    if _kind(name) == "mlp":
        calls += [lambda: est.coefs_]
    if _kind(name) == "lenet":
        calls += [lambda: est.trainable_parameter_counts_]
    for call in calls:
        with pytest.raises(NotFittedError, match="is not fitted yet"):
            call()
    assert not (tmp_path / "m.npz").exists()
    with pytest.raises(FileNotFoundError):
        fastbp.load(tmp_path / "missing.npz")


# ------------------------------------------------------------- variants
def _variants_table(X):
    """Layouts of the same numbers that must be read as the C float64 array."""
    wide = np.zeros((X.shape[0], 2 * X.shape[1]))
    wide[:, ::2] = X
    rev = np.ascontiguousarray(X[::-1])
    readonly = X.copy()
    readonly.flags.writeable = False
    return {
        "F-ordered": np.asfortranarray(X),
        "strided": wide[:, ::2],
        "negative-stride": rev[::-1],
        "read-only": readonly,
        "int": X.astype(np.int64),
        "float32": X.astype(np.float32),
        "list": X.tolist(),
    }


def _memmap(tmp_path, X):
    mm = np.memmap(tmp_path / "X.dat", dtype=X.dtype, mode="w+", shape=X.shape)
    mm[...] = X
    mm.flush()
    return np.memmap(tmp_path / "X.dat", dtype=X.dtype, mode="r", shape=X.shape)


def _variants(name, X, tmp_path):
    kind = _kind(name)
    if kind == "mlp":
        out = _variants_table(X)
        out["memmap"] = _memmap(tmp_path, X)
        pd = pytest.importorskip("pandas")
        out["DataFrame"] = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
        return out
    if kind == "lenet":
        out = {k: v if k == "list" else v.reshape(X.shape)
               for k, v in _variants_table(X.reshape(len(X), -1)).items()}
        out["strided-image"] = np.repeat(np.repeat(X, 2, axis=1), 2, axis=2)[:, ::2, ::2]
        out["flipped-view"] = np.ascontiguousarray(X[:, ::-1, ::-1])[:, ::-1, ::-1]
        out["memmap"] = _memmap(tmp_path, X)
        out["flat"] = X.reshape(len(X), -1)
        out["channel"] = X[:, None]
        pd = pytest.importorskip("pandas")
        out["DataFrame"] = pd.DataFrame(X.reshape(len(X), -1))
        return out
    out = {
        "F-ordered": np.asfortranarray(X),
        "strided": np.repeat(X, 2, axis=2)[:, :, ::2],
        "negative-stride": np.ascontiguousarray(X[::-1, ::-1])[::-1, ::-1],
        "read-only": X.copy(),
        "int": X.astype(np.int64),
        "float32": X.astype(np.float32),
        "list of arrays": [s for s in X],
        "nested lists": X.tolist(),
        "memmap": _memmap(tmp_path, X),
    }
    out["read-only"].flags.writeable = False
    return out


def _int_data(name):
    X, y = make_data(name)
    return np.round(X * 4), y  # integer-valued: the int variant holds the same numbers


def _outputs(est, X):
    return est.predict_proba(X) if hasattr(est, "predict_proba") else est.predict(X)


@pytest.mark.parametrize("name", NAMES)
def test_accepted_variants_give_the_same_model(name, tmp_path):
    X, y = _int_data(name)
    sw = np.linspace(0.5, 1.5, len(y))
    ref = _fit(FACTORIES[name](), X, y, sample_weight=sw)
    expected = _outputs(ref, X)
    y_snapshot, sw_snapshot = _freeze(y), _freeze(sw)  # read-only from here on
    for variant, Xv in _variants(name, X, tmp_path).items():
        snapshot = copy.deepcopy(Xv) if not isinstance(Xv, np.memmap) else np.array(Xv)
        est = _fit(FACTORIES[name](), Xv, y, sample_weight=sw)
        got = _outputs(est, Xv)
        if variant == "float32":
            assert est._network.dtype == np.float32
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5, err_msg=variant)
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12,
                                       err_msg=variant)
            # and the reference model reads the variant as X
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "X has feature names", UserWarning)
                np.testing.assert_allclose(_outputs(ref, Xv), expected, rtol=1e-12,
                                           atol=1e-12, err_msg=variant)
        # backprop and partial_fit take the variant too
        np.testing.assert_allclose(est.backprop(Xv, y, sample_weight=sw).loss,
                                   ref.backprop(X, y, sample_weight=sw).loss,
                                   rtol=1e-4 if variant == "float32" else 1e-12)
        est.partial_fit(Xv, y, sample_weight=sw)
        _assert_same(Xv if not isinstance(Xv, np.memmap) else np.array(Xv), snapshot)
    _assert_same(y, y_snapshot)
    _assert_same(sw, sw_snapshot)


@pytest.mark.parametrize("name", ["RNNClassifier", "RNNRegressor"])
def test_rnn_univariate_2d_equals_3d_with_one_feature(name):
    X, y = make_data(name)
    X2 = X[:, :, 0]
    a = _fit(FACTORIES[name](), X2, y)
    b = _fit(FACTORIES[name](), X2[:, :, None], y)
    np.testing.assert_allclose(_outputs(a, X2), _outputs(b, X2[:, :, None]), rtol=1e-12)
    # a model fitted on 2-D input also reads the 3-D and list forms of it
    np.testing.assert_allclose(_outputs(a, X2[:, :, None]), _outputs(a, X2), rtol=1e-12)
    np.testing.assert_allclose(_outputs(a, [s[:, None] for s in X2]), _outputs(a, X2),
                               rtol=1e-12)
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X2, columns=[f"t{i}" for i in range(X2.shape[1])])
    c = _fit(FACTORIES[name](), frame, y)
    np.testing.assert_allclose(_outputs(c, frame), _outputs(a, X2), rtol=1e-12)
    assert list(c.feature_names_in_) == list(frame.columns)


def test_sparse_input_with_nan_is_rejected():
    sp = pytest.importorskip("scipy.sparse")
    X, y = make_data("MLPClassifier")
    Xs = sp.csr_matrix(_set(X, np.nan))
    with pytest.raises(ValueError, match="Input X contains NaN"):
        FACTORIES["MLPClassifier"]().fit(Xs, y)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        fitted("MLPClassifier").predict(Xs)


REFIT_OTHER_LAYOUT = {
    "mlp": lambda X: np.c_[X, X],
    "lenet": lambda X: np.zeros((len(X), 32, 32)),
    "rnn": lambda X: np.concatenate([X, X], axis=2),
}


@pytest.mark.parametrize("name", NAMES)
def test_refit_with_bad_y_and_another_layout_changes_nothing(name, tmp_path):
    """X is valid but of another layout, y is bad: the error must come before
    the model adopts the new layout, or it would predict through a network
    built for the old one."""
    X, y = make_data(name)
    X_new = REFIT_OTHER_LAYOUT[_kind(name)](X)
    y_bad = y + 0.5 if name in CLASSIFIERS else _set(y, np.nan)
    for method in ("fitted.fit", "fitted.partial_fit"):
        match = r"Unknown label type|Input y contains NaN|X has \d+ features"
        _check_raises(name, method, X_new, y_bad, ValueError, match, tmp_path)


def _per_step(lengths, values, bad):
    parts = [np.asarray(values[:n], dtype=float) for n in lengths]
    parts[1] = parts[1].copy()
    parts[1][2] = bad
    return parts


@pytest.mark.parametrize("name", ["RNNClassifier", "RNNRegressor"])
@pytest.mark.parametrize("bad,match", [(np.nan, "Input y contains NaN"),
                                       (np.inf, "Input y contains infinity"),
                                       (2.5, "Unknown label type: continuous|classes not in"),
                                       (7, "classes not in")])
@pytest.mark.parametrize("method", ["fit", "fitted.partial_fit", "backprop"])
def test_bad_per_step_targets(name, bad, match, method):
    """output='sequence': a bad target at one step of one ragged sequence."""
    if name == "RNNRegressor" and bad in (2.5, 7):
        pytest.skip("any finite number is a valid regression target")
    if method == "fit" and bad == 7:
        pytest.skip("a new class is fine for a fresh fit")
    rng = np.random.default_rng(1)
    lengths = [3, 5, 2, 4]
    X = [rng.standard_normal((n, 2)) for n in lengths]
    labels = [0, 1, 1, 0, 1]
    y_ok = [np.asarray(labels[:n]) for n in lengths]
    est = _fit(FACTORIES[name](output="sequence"), X, y_ok)
    y_bad = _per_step(lengths, labels, bad)
    if method == "fit":
        est = FACTORIES[name](output="sequence")
        run = lambda: est.fit(X, y_bad)  # noqa: E731
    elif method == "backprop":
        run = lambda: est.backprop(X, y_bad)  # noqa: E731
    else:
        run = lambda: est.partial_fit(X, y_bad)  # noqa: E731
    frozen = [_freeze(X), _freeze(y_bad)]
    before = _model_state_seq(est)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(ValueError, match=match):
            run()
    _assert_same(X, frozen[0])
    _assert_same(y_bad, frozen[1])
    after = _model_state_seq(est)
    assert (before is None) == (after is None)
    if before is not None:
        np.testing.assert_array_equal(before, after)


def _model_state_seq(est):
    return est._network.theta.copy() if hasattr(est, "_network") else None


# ---- fit's finiteness check of a large float array (fastbp's team pass) ----

def _large_fit_data(name, order, dtype):
    """Over 65,536 values: fit checks them in one pass of fastbp's team."""
    rng = np.random.default_rng(3)
    shape = (70, 1, 32, 32) if name == "LeNet5Classifier" else (100, 700)
    X = np.asarray(rng.standard_normal(shape).astype(dtype), order=order)
    assert X.size > 1 << 16
    return X, np.arange(shape[0]) % 3


@pytest.mark.parametrize("name", ["MLPClassifier", "MLPRegressor", "LeNet5Classifier"])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("where", [0, 65535, 65536, -1])
@pytest.mark.parametrize("bad,message", [(np.nan, "Input X contains NaN"),
                                         (-np.inf, "Input X contains infinity")])
def test_fit_refuses_a_large_non_finite_array_with_sklearns_error(name, order, where, bad,
                                                                  message):
    X, y = _large_fit_data(name, order, np.float32)
    X.ravel(order="K")[where] = bad  # a view: X is contiguous
    with pytest.raises(ValueError, match=message) as info:
        FACTORIES[name](max_iter=1).fit(X, y)
    if bad != bad:  # NaN: sklearn's message names the estimator
        assert f"{name} does not accept missing values" in str(info.value)


@pytest.mark.parametrize("name", ["MLPClassifier", "LeNet5Classifier"])
def test_fit_of_a_large_strided_array_is_checked_too(name):
    X, y = _large_fit_data(name, "C", np.float64)
    X = np.repeat(X, 2, axis=0)[::2]  # neither C- nor F-contiguous
    X[(-1,) * X.ndim] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        FACTORIES[name](max_iter=1).fit(X, y)


def test_fit_of_a_large_finite_array_equals_a_fit_of_its_list():
    X, y = _large_fit_data("MLPClassifier", "C", np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = FACTORIES["MLPClassifier"](max_iter=2).fit(X, y)
        b = FACTORIES["MLPClassifier"](max_iter=2).fit(X.tolist(), y)
    for wa, wb in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(wa, wb)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("method", ["predict", "transform", "score"])
def test_float64_beyond_a_float32_models_range(name, method):
    # the cast to float32 would make the value infinite and the output NaN
    X, y = make_data(name)
    model = _fit(FACTORIES[name](), X.astype(np.float32), y)
    theta = model._network.theta.copy()
    big = X[:3].astype(np.float64)
    big.reshape(-1)[1] = 1e39
    for form in (big, list(big)):
        args = (form, y[:3]) if method == "score" else (form,)
        with pytest.raises(ValueError, match="beyond the range of float32"):
            getattr(model, method)(*args)
    np.testing.assert_array_equal(model._network.theta, theta)
    getattr(model, method)(*((X[:3], y[:3]) if method == "score" else (X[:3],)))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("how", ["warm_start", "partial_fit"])
def test_continued_training_refuses_float64_beyond_float32(name, how):
    X, y = make_data(name)
    model = _fit(FACTORIES[name](), X.astype(np.float32), y)
    theta = model._network.theta.copy()
    big = X.astype(np.float64)
    big.reshape(-1)[1] = 1e39
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow warning first
        with pytest.raises(ValueError, match="beyond the range of float32"):
            if how == "warm_start":
                _fit(model.set_params(warm_start=True), big, y)
            else:
                model.partial_fit(big, y)
    np.testing.assert_array_equal(model._network.theta, theta)


@pytest.mark.parametrize("name", ["MLPRegressor", "RNNRegressor"])
@pytest.mark.parametrize("how", ["fit", "warm_start", "partial_fit", "X_val"])
def test_targets_beyond_a_float32_models_range(name, how):
    X, y = make_data(name)
    X32 = X.astype(np.float32)
    big = np.array(y, dtype=np.float64)
    big[1] = 1e39
    model = _fit(FACTORIES[name](), X32, y) if how != "fit" else FACTORIES[name]()
    theta = model._network.theta.copy() if how != "fit" else None
    with pytest.raises(ValueError, match="y holds values beyond the range of float32"):
        if how == "fit":
            model.fit(X32, big)
        elif how == "warm_start":
            _fit(model.set_params(warm_start=True), X32, big)
        elif how == "partial_fit":
            model.partial_fit(X32, big)
        else:
            _fit(FACTORIES[name](), X32, y, X_val=X32, y_val=big)
    if theta is not None:
        np.testing.assert_array_equal(model._network.theta, theta)
