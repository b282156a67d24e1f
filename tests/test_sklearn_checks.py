"""scikit-learn's common estimator checks on every estimator."""
import numpy as np
import pytest
from sklearn.datasets import load_digits, make_classification
from sklearn.utils.estimator_checks import (
    check_class_weight_balanced_classifiers,
    check_get_feature_names_out_error,
    check_global_output_transform_pandas,
    check_sample_weight_equivalence_on_dense_data,
    check_set_output_transform,
    check_set_output_transform_pandas,
    check_transformer_get_feature_names_out,
    check_transformer_get_feature_names_out_pandas,
    parametrize_with_checks,
)

from fastbp import (LeNet5Classifier, MLPClassifier, MLPRegressor, RNNClassifier,
                    RNNRegressor)

class LeNet5OnTables(LeNet5Classifier):
    """LeNet5Classifier that draws each row of a small table as a 32x32 image
    (``side``; 28: 28x28 images, which LeNet-5 pads as it uses them).

    sklearn's checks feed tabular toys of 1 to 20 features, which LeNet-5
    rejects (it needs images: test_lenet.py checks that it says so). Drawn as
    images, they exercise its estimator API. Only the picture is added: X
    still passes LeNet-5's own validation first (types, dtype, NaN, sparse,
    n_features_in_), and the picture is a fixed function of the validated row,
    the same in fit, predict and transform: feature j fills the pixels p with
    p * n_features // side**2 == j. It keeps X's dtype, memory order and
    read-only flag, which the checks vary.
    """

    side = 32

    def _as_images(self, X, hw, *dtype):
        n_features, area = X.shape[1], self.side ** 2
        if 0 < n_features < 784:
            pixels = np.bincount(np.arange(area) * n_features // area, minlength=n_features)
            picture = np.repeat(X, pixels, axis=1)
            if X.flags.f_contiguous and not X.flags.c_contiguous:
                picture = np.asfortranarray(picture)
            picture.setflags(write=X.flags.writeable)
            X, hw = picture, (self.side, self.side)
        return super()._as_images(X, hw, *dtype)


class LeNet5On28x28Tables(LeNet5OnTables):
    side = 28


@parametrize_with_checks(
    [MLPClassifier(max_iter=100), MLPRegressor(max_iter=100),
     RNNClassifier(hidden_size=20, max_iter=100), RNNRegressor(hidden_size=20, max_iter=100),
     LeNet5OnTables(max_iter=5), LeNet5On28x28Tables(max_iter=5)],
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_sample_weight_equivalence_lbfgs():
    # sklearn runs this check on its own MLPs with solver='lbfgs'.
    check_sample_weight_equivalence_on_dense_data(
        "MLPClassifier", MLPClassifier(solver="lbfgs", max_iter=100)
    )
    check_sample_weight_equivalence_on_dense_data(
        "MLPRegressor", MLPRegressor(solver="lbfgs", max_iter=100)
    )


def _imbalanced_split(X, y, seed=0, shares=(1.0, 0.15, 0.05)):
    """Half of each class for training, thinned to ``shares`` of it (class 0
    common, class 2 rare); the other halves, balanced, for testing: the case
    class_weight='balanced' is for."""
    rng = np.random.RandomState(seed)
    train, test = [], []
    for c, share in enumerate(shares):
        idx = rng.permutation(np.flatnonzero(y == c))
        half = len(idx) // 2
        train += list(idx[:max(2, int(half * share))])
        test += list(idx[half:])
    return X[train], y[train], X[test], y[test]


def _tabular_classes():
    X, y = make_classification(n_samples=600, n_features=6, n_informative=3, n_redundant=0,
                               class_sep=0.7, n_clusters_per_class=1, n_classes=3,
                               random_state=0)
    return _imbalanced_split(X, y)


def _image_classes():
    """Noisy 32x32 digits 3, 5 and 8 (the classes most alike)."""
    X, y = load_digits(return_X_y=True)
    keep = np.isin(y, [3, 5, 8])
    X, y = X[keep], np.searchsorted([3, 5, 8], y[keep])
    X = np.kron(X.reshape(-1, 8, 8) / 16.0, np.ones((4, 4)))
    X = X + np.random.RandomState(0).normal(0, 0.5, X.shape)
    return _imbalanced_split(X, y)


@pytest.mark.parametrize("estimator,data", [
    (MLPClassifier(), _tabular_classes), (RNNClassifier(hidden_size=20), _tabular_classes),
    (LeNet5Classifier(), _image_classes)], ids=["MLPClassifier", "RNNClassifier",
                                                "LeNet5Classifier"])
def test_class_weight_balanced_classifiers(estimator, data):
    # sklearn's check (which parametrize_with_checks does not run: it needs
    # data); images for LeNet-5
    X_train, y_train, X_test, y_test = data()
    check_class_weight_balanced_classifiers(type(estimator).__name__, estimator, X_train,
                                            y_train, X_test, y_test, weights=None)


TRANSFORMERS = [MLPClassifier(max_iter=100), MLPRegressor(max_iter=100),
                RNNClassifier(hidden_size=20, max_iter=100),
                RNNRegressor(hidden_size=20, max_iter=100)]
# the checks sklearn runs on its own transformers besides parametrize_with_checks
# (LeNet-5's transform is checked on images in test_transform.py)
OUTPUT_CHECKS = [check_set_output_transform, check_set_output_transform_pandas,
                 check_global_output_transform_pandas, check_transformer_get_feature_names_out,
                 check_transformer_get_feature_names_out_pandas,
                 check_get_feature_names_out_error]


# (the checks fit on DataFrames and transform arrays, and the other way round, on purpose)
@pytest.mark.filterwarnings("ignore:X (does not have valid|has) feature names:UserWarning")
@pytest.mark.parametrize("estimator", TRANSFORMERS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("check", OUTPUT_CHECKS, ids=lambda c: c.__name__)
def test_transform_output_checks(estimator, check):
    check(type(estimator).__name__, estimator)
