"""verbose=0 prints nothing, verbose=1 a line per epoch, verbose=2 a progress
display inside each epoch (tqdm when installed, a plain text line otherwise)."""
import io
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from fastbp import MLPClassifier, RNNClassifier, _progress


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.random((300, 8))
    y = (X[:, 0] > 0.5).astype(int)
    return X, y


def _fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


@pytest.fixture
def no_tqdm(monkeypatch):
    monkeypatch.setattr(_progress, "_tqdm", lambda: None)


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_verbose_0_prints_nothing(data, capsys, solver):
    X, y = data
    _fit(MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, solver=solver, verbose=0), X, y)
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_verbose_1_has_no_progress_display(data, capsys):
    X, y = data
    _fit(MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, batch_size=50, verbose=1), X, y)
    out = capsys.readouterr().out
    assert out.count("Iteration") == 3
    assert "\r" not in out and "batches" not in out


def test_verbose_2_text_fallback(data, capsys, no_tqdm):
    X, y = data
    _fit(MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, batch_size=50, verbose=2), X, y)
    out = capsys.readouterr().out
    # the first batch of every epoch is shown at once; later ones every 0.2 s
    assert "Epoch 1: 1/6 batches, loss " in out and "Epoch 2: 1/6 batches" in out
    assert "samples/s" in out and " left" in out
    assert out.count("Iteration") == 2  # the per-epoch summary lines remain
    # the progress line is wiped before each summary line
    summary = [part for part in out.split("\r") if "Iteration" in part]
    assert all(part.lstrip().startswith("Iteration") for part in summary)


def test_verbose_2_sequences(capsys, no_tqdm):
    rng = np.random.default_rng(1)
    X = [rng.random((n, 2)) for n in rng.integers(2, 6, 40)]
    y = np.arange(40) % 2
    _fit(RNNClassifier(hidden_size=3, max_iter=1, batch_size=10, verbose=2), X, y)
    assert "Epoch 1: 1/4 batches" in capsys.readouterr().out


def test_text_progress_refreshes_every_interval(no_tqdm):
    out = io.StringIO()
    progress = _progress.EpochProgress(3, n_batches=1000, n_samples=10000,
                                       interval=3600, file=out)
    for _ in range(1000):
        progress.update(10, 0.5)
    progress.close()
    text = out.getvalue()
    assert text.count("Epoch 3:") == 1  # only the first batch within the hour
    assert "loss 0.5" in text
    assert text.endswith("\r")


def test_verbose_2_with_tqdm(data, capsys):
    pytest.importorskip("tqdm")
    X, y = data
    _fit(MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, batch_size=50, verbose=2), X, y)
    out = capsys.readouterr().out
    assert "Epoch 1" in out and "batch" in out
    assert out.count("Iteration") == 2
