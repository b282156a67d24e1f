"""The public API carries type hints that resolve at run time (PEP 561)."""
import typing
from importlib import resources

import pytest

import fastbp
from fastbp import datasets, plot

PUBLIC_FUNCTIONS = [fastbp.load, fastbp.check_gradients, fastbp.show_versions,
                    datasets.load_idx, datasets.load_fashion_mnist]
ESTIMATORS = [fastbp.MLPClassifier, fastbp.MLPRegressor, fastbp.LeNet5Classifier,
              fastbp.RNNClassifier, fastbp.RNNRegressor]
METHODS = ["fit", "predict", "save", "backprop"]


@pytest.mark.parametrize("func", PUBLIC_FUNCTIONS, ids=lambda f: f.__qualname__)
def test_functions_are_annotated(func):
    hints = typing.get_type_hints(func)
    assert "return" in hints


@pytest.mark.parametrize("func", [plot.loss_curve, plot.filters], ids=lambda f: f.__name__)
def test_plot_functions_are_annotated(func):
    # matplotlib's types are named only for type checkers (matplotlib is optional)
    assert {"est", "return"} <= set(func.__annotations__)


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: e.__name__)
@pytest.mark.parametrize("method", METHODS)
def test_estimator_methods_are_annotated(est, method):
    hints = typing.get_type_hints(getattr(est, method))
    assert "return" in hints and "X" in hints or method == "save"


def test_package_is_typed_and_versioned():
    assert resources.files("fastbp").joinpath("py.typed").is_file()
    from fastbp._version import __version__

    assert fastbp.__version__ == __version__
