"""scikit-learn's common estimator checks."""
from sklearn.utils.estimator_checks import (
    check_sample_weight_equivalence_on_dense_data,
    parametrize_with_checks,
)

from fastbp import MLPClassifier, MLPRegressor


@parametrize_with_checks([MLPClassifier(max_iter=100), MLPRegressor(max_iter=100)])
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
