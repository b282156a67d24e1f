"""fastbp: backpropagation on multicore CPUs behind a scikit-learn API."""
from ._version import __version__
from . import _kernels  # noqa: F401  (a readable error when the build is missing)
from . import datasets, plot
from ._base import Backprop
from ._gradcheck import check_gradients
from ._onnx import to_onnx
from ._persist import load
from ._show_versions import show_versions

from .lenet import LeNet5Classifier
from .mlp import MLPClassifier, MLPRegressor
from .rnn import RNNClassifier, RNNRegressor

__all__ = [
    "Backprop",
    "LeNet5Classifier",
    "MLPClassifier",
    "MLPRegressor",
    "RNNClassifier",
    "RNNRegressor",
    "__version__",
    "datasets",
    "plot",
    "check_gradients",
    "load",
    "show_versions",
    "to_onnx",
]
