"""fastbp.plot: the learning curve and LeNet's kernels (matplotlib is optional)."""
import builtins
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from fastbp import LeNet5Classifier, MLPClassifier
from fastbp import plot as fbplot


def _fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


@pytest.fixture(scope="module")
def mpl():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    yield matplotlib
    plt.close("all")


@pytest.fixture(scope="module")
def lenet():
    rng = np.random.default_rng(0)
    X = rng.random((24, 32, 32))
    y = np.arange(24) % 3
    return _fit(LeNet5Classifier(max_iter=2, random_state=0), X, y)


def test_missing_matplotlib_says_how_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    est = MLPClassifier(max_iter=1)
    with pytest.raises(ImportError, match=r"pip install fastbp\[plot\]"):
        fbplot.loss_curve(est)
    with pytest.raises(ImportError, match=r"pip install fastbp\[plot\]"):
        fbplot.filters(est)


def test_loss_curve_draws_loss_and_validation_score(mpl):
    rng = np.random.default_rng(1)
    X = rng.random((200, 5))
    y = (X[:, 0] > 0.5).astype(int)
    est = _fit(MLPClassifier(hidden_layer_sizes=(4,), max_iter=6, early_stopping=True,
                             n_iter_no_change=50, random_state=0), X, y)
    ax = fbplot.loss_curve(est)
    line, val_line = ax.get_lines()
    np.testing.assert_allclose(line.get_ydata(), est.loss_curve_)
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, 7))
    np.testing.assert_allclose(val_line.get_ydata(), est.validation_loss_curve_)
    assert val_line.get_label() == "validation loss"
    (score,) = ax.right_ax.get_lines()
    np.testing.assert_allclose(score.get_ydata(), est.validation_scores_)


def test_loss_curve_without_validation_uses_the_given_axes(mpl):
    import matplotlib.pyplot as plt

    X = np.random.default_rng(2).random((50, 3))
    est = _fit(MLPClassifier(hidden_layer_sizes=(3,), max_iter=3), X, np.arange(50) % 2)
    _, ax = plt.subplots()
    assert fbplot.loss_curve(est, ax=ax) is ax
    assert len(ax.get_lines()) == 1 and not hasattr(ax, "right_ax")


def test_loss_curve_of_an_unfitted_model_raises(mpl):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        fbplot.loss_curve(MLPClassifier())


def test_filters_c1_shows_the_six_kernels(mpl, lenet):
    fig = fbplot.filters(lenet)
    images = [ax.get_images()[0] for ax in fig.axes if ax.get_images()]
    assert len(images) == 6
    weight = lenet.parameters_["C1.weight"]
    np.testing.assert_allclose(images[2].get_array(), weight[2, 0])
    limit = np.abs(weight).max()
    assert images[0].get_clim() == pytest.approx((-limit, limit))


def test_filters_c3_leaves_unconnected_pairs_blank(mpl, lenet):
    fig = fbplot.filters(lenet, layer="C3")
    drawn = sum(1 for ax in fig.axes if ax.get_images())
    assert drawn == 60  # Table I's connections


def test_filters_rejects_other_layers_and_models(mpl, lenet):
    with pytest.raises(ValueError, match="C1"):
        fbplot.filters(lenet, layer="F6")
    X = np.random.default_rng(3).random((20, 4))
    mlp = _fit(MLPClassifier(hidden_layer_sizes=(2,), max_iter=2), X, np.arange(20) % 2)
    with pytest.raises(ValueError, match="LeNet5Classifier"):
        fbplot.filters(mlp)


@pytest.mark.parametrize("max_maps", [0, -2, 2.5, True])
def test_filters_rejects_a_bad_number_of_maps(mpl, lenet, max_maps):
    with pytest.raises(ValueError, match="max_maps must be an int >= 1"):
        fbplot.filters(lenet, "C3", max_maps=max_maps)
