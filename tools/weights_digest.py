"""Print a digest of the fitted weights and predictions of every estimator.

The same seeds must give the same weights, bit for bit, before and after a
change that should not alter results (a refactoring, a new thread pool):
run this script on both commits and compare the output.

    python tools/weights_digest.py > before.txt   # on the old commit
    python tools/weights_digest.py | diff before.txt -
"""
import hashlib
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.datasets import load_digits

from fastbp import (LeNet5Classifier, MLPClassifier, MLPRegressor, RNNClassifier,
                    RNNRegressor)


def digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def cases(dtype):
    X, y = load_digits(return_X_y=True)
    X = (X[:400] / 16).astype(dtype)
    y = y[:400]
    rng = np.random.default_rng(0)
    seq = rng.standard_normal((60, 12, 5)).astype(dtype)
    seq_y = (seq.sum(axis=(1, 2)) > 0).astype(int)
    seq_t = seq.sum(axis=2, keepdims=False).astype(dtype)
    common = dict(random_state=0, max_iter=4, n_jobs=2)
    yield "MLPClassifier sgd", MLPClassifier(hidden_layer_sizes=(32, 16), solver="sgd",
                                             **common), X, y
    yield "MLPClassifier adam", MLPClassifier(hidden_layer_sizes=(32,), **common), X, y
    yield "MLPRegressor", MLPRegressor(hidden_layer_sizes=(16,), **common), X, X[:, 5:9]
    images = np.kron(X[:200].reshape(-1, 8, 8), np.ones((1, 4, 4), dtype))  # 32x32
    yield "LeNet5Classifier", LeNet5Classifier(batch_size=50, **common), images, y[:200]
    yield "RNNClassifier", RNNClassifier(hidden_size=16, **common), seq, seq_y
    yield "RNNRegressor", RNNRegressor(hidden_size=16, output="sequence", **common), seq, \
        seq_t[..., None]
    # the other paths through the engine: sparse rows, sample weights, L-BFGS,
    # early stopping, an unshuffled Fortran-order X, RNN clipping and L-BFGS
    weights = np.linspace(0.5, 2.0, len(X))
    yield "MLP sparse sgd", MLPClassifier(hidden_layer_sizes=(16,), solver="sgd",
                                          **common), sp.csr_matrix(X), y
    yield "MLP weighted adam", (MLPRegressor(hidden_layer_sizes=(16,), **common),
                                {"sample_weight": weights}), X, X[:, 5:9]
    yield "MLP lbfgs", MLPClassifier(hidden_layer_sizes=(16,), solver="lbfgs",
                                     **common), X, y
    yield "MLP early stopping", MLPClassifier(hidden_layer_sizes=(16,), early_stopping=True,
                                              **common), X, y
    yield "MLP no shuffle, F", MLPClassifier(hidden_layer_sizes=(16,), shuffle=False,
                                             **common), np.asfortranarray(X), y
    yield "RNN clipped", RNNClassifier(hidden_size=16, clip_grad_norm=0.01, **common), seq, seq_y
    yield "RNN lbfgs", RNNClassifier(hidden_size=16, solver="lbfgs", **common), seq, seq_y


def main():
    warnings.simplefilter("ignore")
    for dtype in (np.float32, np.float64):
        for name, est, X, y in cases(dtype):
            est, fit_kwargs = est if isinstance(est, tuple) else (est, {})
            est.fit(X, y, **fit_kwargs)
            out = est.predict_proba(X) if hasattr(est, "predict_proba") else est.predict(X)
            weights = est._network.theta
            print(f"{name:20s} {np.dtype(dtype).name:8s} weights {digest(weights)} "
                  f"outputs {digest(out)} loss {est.loss_:.17g}")


if __name__ == "__main__":
    main()
