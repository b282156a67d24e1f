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

_NOT_IMAGES = ("sklearn feeds tabular toys of 1-20 features; LeNet-5 needs images "
               "(28x28 or larger) and rejects them with a ValueError naming the shapes")
# Every check below fits LeNet-5 on sklearn's toy data, which is not images.
LENET_EXPECTED_FAILURES = {name: _NOT_IMAGES for name in [
    "check_fit_score_takes_y", "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters", "check_estimators_fit_returns_self",
    "check_readonly_memmap_input", "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit", "check_estimators_dtypes",
    "check_sample_weights_pandas_series", "check_sample_weights_not_an_array",
    "check_sample_weights_list", "check_all_zero_sample_weights_error",
    "check_sample_weights_shape", "check_sample_weights_not_overwritten",
    "check_sample_weight_equivalence_on_dense_data", "check_dtype_object",
    "check_pipeline_consistency", "check_estimators_nan_inf", "check_estimators_pickle",
    "check_f_contiguous_array_estimator", "check_classifier_data_not_an_array",
    "check_classifiers_one_label", "check_classifiers_one_label_sample_weights",
    "check_classifiers_classes", "check_estimators_partial_fit_n_features",
    "check_classifiers_train", "check_classifiers_multilabel_representation_invariance",
    "check_classifiers_multilabel_output_format_predict",
    "check_classifiers_multilabel_output_format_predict_proba",
    "check_classifiers_multilabel_output_format_decision_function",
    "check_supervised_y_2d", "check_non_transformer_estimators_n_iter",
    "check_methods_sample_order_invariance", "check_methods_subset_invariance",
    "check_dict_unchanged", "check_fit_idempotent", "check_fit_check_is_fitted",
    "check_n_features_in", "check_fit2d_predict1d", "check_class_weight_classifiers",
    "check_transformer_data_not_an_array", "check_transformer_general",
    "check_transformer_preserve_dtypes", "check_transformer_n_iter",
]}


def _expected_failed_checks(estimator):
    return LENET_EXPECTED_FAILURES if isinstance(estimator, LeNet5Classifier) else {}


@parametrize_with_checks(
    [MLPClassifier(max_iter=100), MLPRegressor(max_iter=100),
     RNNClassifier(hidden_size=20, max_iter=100), RNNRegressor(hidden_size=20, max_iter=100),
     LeNet5Classifier(max_iter=5)],
    expected_failed_checks=_expected_failed_checks,
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
