"""Demo: ``python -m fastbp`` trains fastbp's MLP, LeNet-5 and RNN on the
embedded digits and prints accuracy and time beside scikit-learn's MLP."""
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from threadpoolctl import threadpool_info

import fastbp
from fastbp._show_versions import openblas_kernel_hint


def _run(name, estimator, X_train, y_train, X_test, y_test):
    tic = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(X_train, y_train)
    seconds = time.perf_counter() - tic
    accuracy = estimator.score(X_test, y_test)
    print(f"{name:<44} {accuracy:>9.4f} {seconds:>9.2f}")
    return accuracy, seconds


def demo_rows():
    """Yield (name, estimator, view of X) for every model in the demo."""
    mlp = dict(hidden_layer_sizes=(128, 64), max_iter=60, random_state=0)
    yield "fastbp.MLPClassifier (128, 64) adam", fastbp.MLPClassifier(**mlp), "flat"
    yield "sklearn MLPClassifier (128, 64) adam", SkMLPClassifier(**mlp), "flat"
    yield ("fastbp.LeNet5Classifier tanh, 32x32", fastbp.LeNet5Classifier(
        max_iter=15, random_state=0), "images")
    yield ("fastbp.RNNClassifier 64 tanh, 8 steps", fastbp.RNNClassifier(
        hidden_size=64, max_iter=60, random_state=0), "sequences")


def _view(X, view):
    """The 8x8 digits as flat rows, as 32x32 images (each pixel a 4x4 block,
    the size LeNet-5 takes) or as 8 steps of 8 pixels (one row per step)."""
    if view == "images":
        return np.kron(X.reshape(-1, 8, 8), np.ones((4, 4)))
    if view == "sequences":
        return X.reshape(-1, 8, 8)
    return X


def main():
    """Train every demo model on sklearn's digits and print a table."""
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float64)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0)
    print(f"fastbp {fastbp.__version__} demo: digits (8x8), {len(X_train)} train / "
          f"{len(X_test)} test images\n")
    print(f"{'model':<44} {'accuracy':>9} {'seconds':>9}")
    for name, estimator, view in demo_rows():
        _run(name, estimator, _view(X_train, view), y_train, _view(X_test, view), y_test)
    hint = openblas_kernel_hint(threadpool_info())
    if hint:
        print("\n" + hint)


if __name__ == "__main__":
    main()
