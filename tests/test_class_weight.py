"""class_weight of the classifiers (issue 17): the same training as the
matching sample_weight, sklearn's 'balanced', composition with sample_weight,
and clear errors."""
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight

import fastbp
from fastbp import LeNet5Classifier, MLPClassifier, RNNClassifier

# Dyadic weights: a sequence's weight (the mean of its steps' weights) is
# then exact, so per-step and per-sequence weighting agree to the bit.
CLASS_WEIGHT = {0: 0.5, 1: 4.0, 2: 1.25}
FACTORIES = {
    "MLPClassifier": lambda **kw: MLPClassifier(
        **{"hidden_layer_sizes": (8,), "max_iter": 5, "random_state": 0, **kw}),
    "LeNet5Classifier": lambda **kw: LeNet5Classifier(
        **{"max_iter": 2, "random_state": 0, **kw}),
    "RNNClassifier": lambda **kw: RNNClassifier(
        **{"hidden_size": 6, "max_iter": 5, "random_state": 0, **kw}),
    "RNNClassifier-sequence": lambda **kw: RNNClassifier(
        **{"hidden_size": 6, "max_iter": 5, "random_state": 0, "output": "sequence", **kw}),
}
NAMES = list(FACTORIES)


def make_data(name):
    """(X, y, labels): 3 imbalanced classes; ``labels`` holds one class per
    sample (for output='sequence', each sequence's steps all share it)."""
    rng = np.random.default_rng(0)
    if name == "LeNet5Classifier":
        labels = np.array([0, 1, 0, 2, 0, 1, 0, 0, 1, 0, 2, 0])
        return rng.random((len(labels), 28, 28)), labels, labels
    labels = rng.permutation(np.repeat([0, 1, 2], [30, 20, 10]))
    if name == "MLPClassifier":
        X = rng.standard_normal((len(labels), 5)) + labels[:, None] * 0.3
        return X, labels, labels
    X = rng.standard_normal((len(labels), 4, 3))
    if name == "RNNClassifier-sequence":
        return X, np.repeat(labels[:, None], 4, axis=1), labels
    return X, labels, labels


def _fit(est, X, y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y, **kwargs)


def _assert_same_training(a, b):
    np.testing.assert_array_equal(a._network.theta, b._network.theta)
    assert a.loss_curve_ == b.loss_curve_


def _solver_cases():
    for name in NAMES:
        for solver in (["adam", "sgd", "lbfgs"] if name == "MLPClassifier" else
                       ["adam", "lbfgs"]):
            yield pytest.param(name, solver, id=f"{name}-{solver}")


@pytest.mark.parametrize("name,solver", list(_solver_cases()))
def test_dict_equals_sample_weight_of_the_classes_bit_for_bit(name, solver):
    X, y, labels = make_data(name)
    weighted = _fit(FACTORIES[name](solver=solver, class_weight=CLASS_WEIGHT), X, y)
    expected = np.array([CLASS_WEIGHT[c] for c in labels])
    reference = _fit(FACTORIES[name](solver=solver), X, y, sample_weight=expected)
    _assert_same_training(weighted, reference)
    unweighted = _fit(FACTORIES[name](solver=solver), X, y)
    assert not np.array_equal(weighted._network.theta, unweighted._network.theta)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dict_and_sample_weight_compose_as_their_product(dtype):
    """The product is formed in float64 and then cast, as a user's own
    product would be: float32 training is bit for bit the same too."""
    X, y, _ = make_data("MLPClassifier")
    X = X.astype(dtype)
    sw = np.random.default_rng(1).uniform(0.1, 3.0, len(y))
    both = _fit(FACTORIES["MLPClassifier"](class_weight=CLASS_WEIGHT), X, y, sample_weight=sw)
    product = sw * np.array([CLASS_WEIGHT[c] for c in y])
    reference = _fit(FACTORIES["MLPClassifier"](), X, y, sample_weight=product)
    _assert_same_training(both, reference)
    assert both._network.dtype == dtype


@pytest.mark.parametrize("name", ["MLPClassifier", "LeNet5Classifier", "RNNClassifier"])
def test_balanced_equals_sklearns_sample_weights_bit_for_bit(name):
    X, y, _ = make_data(name)
    balanced = _fit(FACTORIES[name](class_weight="balanced"), X, y)
    reference = _fit(FACTORIES[name](), X, y,
                     sample_weight=compute_sample_weight("balanced", y))
    _assert_same_training(balanced, reference)
    # n_samples / (n_classes * bincount(y)), spelled out
    counts = np.bincount(y)
    np.testing.assert_allclose(compute_sample_weight("balanced", y),
                               len(y) / (3 * counts[y]), rtol=1e-15)


def test_balanced_with_sample_weight_counts_weighted_classes_as_logistic_regression():
    """sklearn's LogisticRegression: sample_weight * class_weight[y], where
    'balanced' counts each class by its samples' total weight."""
    X, y, _ = make_data("MLPClassifier")
    sw = np.random.default_rng(2).uniform(0.1, 3.0, len(y))
    both = _fit(FACTORIES["MLPClassifier"](class_weight="balanced"), X, y, sample_weight=sw)
    per_class = compute_class_weight("balanced", classes=np.unique(y), y=y, sample_weight=sw)
    reference = _fit(FACTORIES["MLPClassifier"](), X, y, sample_weight=sw * per_class[y])
    _assert_same_training(both, reference)
    # integer weights are repeated samples, to 'balanced' too
    reps = np.random.default_rng(3).integers(1, 4, len(y))
    weighted = _fit(FACTORIES["MLPClassifier"](class_weight="balanced", solver="lbfgs"),
                    X, y, sample_weight=reps.astype(float))
    repeated = _fit(FACTORIES["MLPClassifier"](class_weight="balanced", solver="lbfgs"),
                    np.repeat(X, reps, axis=0), np.repeat(y, reps))
    np.testing.assert_allclose(weighted.predict_proba(X), repeated.predict_proba(X),
                               rtol=1e-6, atol=1e-9)


def test_a_heavy_class_is_predicted_more_often():
    X, y, _ = make_data("MLPClassifier")
    params = dict(hidden_layer_sizes=(16,), max_iter=300, random_state=0)
    plain = _fit(MLPClassifier(**params), X, y)
    heavy = _fit(MLPClassifier(**params, class_weight={2: 20.0}), X, y)
    assert np.mean(heavy.predict(X) == 2) > np.mean(plain.predict(X) == 2) + 0.2


@pytest.mark.parametrize("name", NAMES)
def test_backprop_weighs_classes_as_fit_does(name):
    X, y, labels = make_data(name)
    est = _fit(FACTORIES[name](class_weight=CLASS_WEIGHT), X, y)
    sw = np.random.default_rng(4).integers(1, 5, len(X)) / 2  # dyadic, as CLASS_WEIGHT
    got = est.backprop(X, y, sample_weight=sw)
    est.set_params(class_weight=None)
    want = est.backprop(X, y, sample_weight=sw * np.array([CLASS_WEIGHT[c] for c in labels]))
    assert got.loss == want.loss
    for key in want.gradients:
        np.testing.assert_array_equal(got.gradients[key], want.gradients[key])


@pytest.mark.parametrize("name", ["MLPClassifier", "RNNClassifier"])
def test_partial_fit_with_a_dict_equals_sample_weight(name):
    """Keys are checked against ``classes``: a batch may lack a class."""
    X, y, labels = make_data(name)
    batches = [slice(0, 30), slice(30, 60)]
    first = np.flatnonzero(labels[batches[0]] != 2)  # a first batch without class 2
    a = FACTORIES[name](class_weight=CLASS_WEIGHT)
    b = FACTORIES[name]()
    a.partial_fit(X[first], y[first], classes=[0, 1, 2])
    b.partial_fit(X[first], y[first], classes=[0, 1, 2],
                  sample_weight=np.array([CLASS_WEIGHT[c] for c in labels[first]]))
    a.partial_fit(X[batches[1]], y[batches[1]])
    b.partial_fit(X[batches[1]], y[batches[1]],
                  sample_weight=np.array([CLASS_WEIGHT[c] for c in labels[batches[1]]]))
    _assert_same_training(a, b)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("value", ["bogus", [1.0, 2.0], 2.0, {0: -1.0}, {0: np.nan},
                                   {0: np.inf}, {0: "heavy"}, {0: True}],
                         ids=repr)
def test_invalid_class_weight_raises_at_fit(name, value):
    X, y, _ = make_data(name)
    est = FACTORIES[name](class_weight=value)  # the constructor validates nothing
    with pytest.raises(InvalidParameterError, match="'class_weight' parameter"):
        est.fit(X, y)
    assert not hasattr(est, "_network") and not hasattr(est, "classes_")
    with pytest.raises(InvalidParameterError, match="'class_weight' parameter"):
        FACTORIES[name](class_weight=value).partial_fit(X, y, classes=[0, 1, 2])


@pytest.mark.parametrize("name", NAMES)
def test_a_key_that_is_no_class_is_named(name):
    X, y, _ = make_data(name)
    est = FACTORIES[name](class_weight={0: 2.0, 7: 3.0})
    with pytest.raises(ValueError, match=r"class_weight names \[7\], which are not classes "
                                         r"of y \(classes_: \[0, 1, 2\]\)"):
        est.fit(X, y)
    assert not hasattr(est, "_network")


def test_a_key_that_is_no_class_raises_and_missing_classes_weigh_one():
    # sklearn ignores extra keys when every class has a weight; a typo then
    # leaves its class at weight 1 unnoticed, so fastbp names it
    X, y, _ = make_data("MLPClassifier")
    with pytest.raises(ValueError, match=r"class_weight names \[7\]"):
        _fit(FACTORIES["MLPClassifier"](class_weight={**CLASS_WEIGHT, 7: 3.0}), X, y)
    # classes left out weigh 1
    partial = _fit(FACTORIES["MLPClassifier"](class_weight={2: 3.0}), X, y)
    reference = _fit(FACTORIES["MLPClassifier"](), X, y,
                     sample_weight=np.where(y == 2, 3.0, 1.0))
    _assert_same_training(partial, reference)


def test_string_labels_and_their_keys():
    X, y, _ = make_data("MLPClassifier")
    names = np.array(["ant", "bee", "cat"])[y]
    cw = {"ant": 0.5, "bee": 4.0, "cat": 1.25}
    weighted = _fit(FACTORIES["MLPClassifier"](class_weight=cw), X, names)
    reference = _fit(FACTORIES["MLPClassifier"](), X, names,
                     sample_weight=np.array([cw[c] for c in names]))
    _assert_same_training(weighted, reference)
    with pytest.raises(ValueError, match=r"\['dog'\].*not classes"):
        _fit(FACTORIES["MLPClassifier"](class_weight={"ant": 1.0, "dog": 2.0}), X, names)


@pytest.mark.parametrize("class_weight", ["balanced", CLASS_WEIGHT])
def test_multilabel_targets_are_refused(class_weight):
    X, y, _ = make_data("MLPClassifier")
    Y = np.c_[y == 0, y == 1, y > 0].astype(int)
    est = FACTORIES["MLPClassifier"](class_weight=class_weight)
    with pytest.raises(ValueError, match="not supported for multilabel targets"):
        est.fit(X, Y)
    assert not hasattr(est, "_network")
    _fit(FACTORIES["MLPClassifier"](), X, Y)  # without class_weight they train


@pytest.mark.parametrize("name", NAMES)
def test_partial_fit_refuses_balanced_as_sgdclassifier(name):
    X, y, _ = make_data(name)
    est = FACTORIES[name](class_weight="balanced")
    with pytest.raises(ValueError, match="class_weight 'balanced' is not supported for "
                                         "partial_fit"):
        est.partial_fit(X, y, classes=[0, 1, 2])
    assert not hasattr(est, "classes_")
    # a model fitted with 'balanced' cannot continue with it either
    fitted = _fit(FACTORIES[name](class_weight="balanced"), X, y)
    theta = fitted._network.theta.copy()
    with pytest.raises(ValueError, match="not supported for partial_fit"):
        fitted.partial_fit(X, y)
    np.testing.assert_array_equal(fitted._network.theta, theta)


# ----------------------------------------------------------- persistence
@pytest.mark.parametrize("class_weight,labels", [
    ({0: 0.5, 1: 4.0, 2: 1.25}, None), ({"ant": 0.5, "cat": 3.0}, ["ant", "bee", "cat"]),
    ({0.0: 2.0, 1.0: 1.0}, [0.0, 1.0, 2.0]), ("balanced", None)], ids=repr)
def test_class_weight_survives_save_and_load_with_its_label_types(tmp_path, class_weight,
                                                                  labels):
    X, y, _ = make_data("MLPClassifier")
    if labels is not None:
        y = np.asarray(labels)[y]
    est = _fit(FACTORIES["MLPClassifier"](class_weight=class_weight), X, y)
    est.save(tmp_path / "m.npz")
    loaded = fastbp.load(tmp_path / "m.npz")
    assert loaded.class_weight == class_weight
    if isinstance(class_weight, dict):
        assert [type(k) for k in loaded.class_weight] == [type(k) for k in class_weight]
    # and continues training exactly as the model saved
    loaded.set_params(warm_start=True, max_iter=2)
    est.set_params(warm_start=True, max_iter=2)
    _assert_same_training(_fit(loaded, X, y), _fit(est, X, y))


def test_class_weights_count_on_given_validation_data():
    """X_val's score is weighted by class as the training loss is (as in
    HistGradientBoosting), on top of sample_weight_val."""
    from sklearn.metrics import accuracy_score

    rng = np.random.default_rng(3)
    X, X_val = rng.standard_normal((80, 4)), rng.standard_normal((40, 4))
    y, y_val = (X[:, 0] > 0).astype(int), (X_val[:, 0] > 0.3).astype(int)
    w_val = rng.uniform(0.5, 2.0, 40)
    weights = {0: 1.0, 1: 7.0}
    clf = MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0,
                        class_weight=weights)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y, X_val=X_val, y_val=y_val, sample_weight_val=w_val)
    expected = accuracy_score(y_val, clf.predict(X_val),
                              sample_weight=w_val * np.array([1.0, 7.0])[y_val])
    assert clf.validation_scores_[-1] == pytest.approx(expected, rel=1e-12)
    unweighted = accuracy_score(y_val, clf.predict(X_val), sample_weight=w_val)
    assert expected != pytest.approx(unweighted)


def test_numpy_bool_keys_save_and_load(tmp_path):
    """dict(zip(clf.classes_, w)) on bool labels gives numpy bool keys."""
    X, y, _ = make_data("MLPClassifier")
    labels = y == 1
    clf = _fit(FACTORIES["MLPClassifier"](class_weight={np.True_: 2.0, np.False_: 1.0}),
               X, labels)
    clf.save(tmp_path / "m.fbp")
    loaded = fastbp.load(tmp_path / "m.fbp")
    assert loaded.class_weight == {True: 2.0, False: 1.0}
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
