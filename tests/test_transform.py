"""transform (issue 17): the last hidden layer's activations, for other
estimators to use; set_output and get_feature_names_out as sklearn's
transformers. (The RNNs' transform is checked in test_rnn.py.)"""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from fastbp import LeNet5Classifier, MLPClassifier, MLPRegressor

import _twins_conv as conv_twin
import _twins_dense as dense_twin


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300] / 16.0, y[:300]


def _fit(est, X, y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y, **kwargs)


def _numpy_hidden(est, X):
    """The last hidden layer's activations, recomputed in float64 from
    coefs_ and intercepts_."""
    A = np.asarray(X, dtype=np.float64)
    for W, b in zip(est.coefs_[:-1], est.intercepts_[:-1]):
        A = dense_twin.activate(A @ W.astype(np.float64) + b.astype(np.float64),
                                est.activation)
    return A


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mlp_transform_is_the_last_hidden_layer(digits, cls, activation, dtype):
    X, y = digits
    X = X.astype(dtype)
    est = _fit(cls(hidden_layer_sizes=(16, 7), activation=activation, max_iter=5,
                   random_state=0), X, y)
    Xt = est.transform(X)
    assert Xt.shape == (len(X), 7) and Xt.dtype == dtype
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(Xt, _numpy_hidden(est, X), rtol=rtol, atol=rtol)
    # sparse input is read as its dense twin
    np.testing.assert_array_equal(est.transform(sp.csr_matrix(X)), Xt)
    # and fit_transform is fit, then transform
    again = cls(hidden_layer_sizes=(16, 7), activation=activation, max_iter=5,
                random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        np.testing.assert_array_equal(again.fit_transform(X, y), Xt)


def test_mlp_without_hidden_layers_transforms_to_its_input(digits):
    X, y = digits
    est = _fit(MLPRegressor(hidden_layer_sizes=(), max_iter=2), X, y)
    np.testing.assert_array_equal(est.transform(X), X)
    assert len(est.get_feature_names_out()) == X.shape[1]


def test_transform_follows_training(digits):
    """Computed from the current weights, not cached at fit."""
    X, y = digits
    est = _fit(MLPClassifier(hidden_layer_sizes=(5,), max_iter=2, random_state=0), X, y)
    before = est.transform(X)
    est.intercepts_[0][...] += 1.0
    after = est.transform(X)
    assert not np.array_equal(before, after)
    np.testing.assert_allclose(after, _numpy_hidden(est, X), rtol=1e-12, atol=1e-12)


def test_pandas_output_names_columns_and_keeps_the_index(digits):
    pd = pytest.importorskip("pandas")
    X, y = digits
    frame = pd.DataFrame(X, columns=[f"px{i}" for i in range(X.shape[1])],
                         index=np.arange(len(X)) * 3)
    est = _fit(MLPClassifier(hidden_layer_sizes=(12, 4), max_iter=2, random_state=0),
               frame, y)
    names = est.get_feature_names_out()
    assert list(names) == ["mlpclassifier0", "mlpclassifier1", "mlpclassifier2",
                           "mlpclassifier3"]
    default = est.transform(frame)
    out = est.set_output(transform="pandas").transform(frame)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == list(names)
    assert list(out.index) == list(frame.index)
    np.testing.assert_array_equal(out.to_numpy(), default)
    # predictions are not transformed
    assert isinstance(est.predict(frame), np.ndarray)


def test_a_fitted_network_feeds_another_estimator_in_a_pipeline(digits):
    X, y = digits
    pipe = Pipeline([("net", MLPRegressor(hidden_layer_sizes=(32,), max_iter=30,
                                          random_state=0)),
                     ("lr", LogisticRegression(max_iter=1000))])
    _fit(pipe, X, y)
    assert pipe.score(X, y) > 0.9
    # the same as training the logistic regression on the network's features
    features = pipe.named_steps["net"].transform(X)
    lr = LogisticRegression(max_iter=1000).fit(features, y)
    np.testing.assert_array_equal(pipe.predict(X), lr.predict(features))
    # classifiers too, pandas output included
    pytest.importorskip("pandas")
    pipe = Pipeline([("net", MLPClassifier(hidden_layer_sizes=(16,), max_iter=30,
                                           random_state=0)),
                     ("lr", LogisticRegression(max_iter=1000))]).set_output(transform="pandas")
    _fit(pipe, X, y)
    features = pipe[:-1].transform(X)
    assert list(features.columns)[:2] == ["mlpclassifier0", "mlpclassifier1"]
    lr = LogisticRegression(max_iter=1000).fit(features, y)
    np.testing.assert_array_equal(pipe.predict(X), lr.predict(features))


def _numpy_f6(est, images):
    """LeNet-5's F6 activations recomputed in float64 by the conv twins."""
    p = {k: v.astype(np.float64) for k, v in est.parameters_.items()}
    act = conv_twin.ACTIVATIONS[est.activation]
    A = np.pad(images[:, None].astype(np.float64), ((0, 0), (0, 0), (2, 2), (2, 2)))
    A = conv_twin.conv5x5_forward(A, p["C1.weight"], p["C1.bias"], np.ones((6, 1)), act)
    A = conv_twin.pool2x2_forward(A, p["S2.coef"], p["S2.bias"], act)
    A = conv_twin.conv5x5_forward(A, p["C3.weight"], p["C3.bias"], conv_twin.LECUN_C3_TABLE,
                                  act)
    A = conv_twin.pool2x2_forward(A, p["S4.coef"], p["S4.bias"], act)
    A = conv_twin.conv5x5_forward(A, p["C5.weight"], p["C5.bias"], np.ones((120, 16)), act)
    return conv_twin.activate(A.reshape(len(A), -1) @ p["F6.weight"] + p["F6.bias"], act)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lenet_transform_is_f6(digits, dtype):
    X, y = digits
    images = np.kron(X[:60].reshape(-1, 8, 8), np.ones((3, 3)))[:, :, :]  # 24x24
    images = np.pad(images, ((0, 0), (2, 2), (2, 2))).astype(dtype)  # 28x28
    est = _fit(LeNet5Classifier(max_iter=2, random_state=0), images, y[:60])
    Xt = est.transform(images)
    assert Xt.shape == (60, 84) and Xt.dtype == dtype
    rtol = 1e-10 if dtype == np.float64 else 2e-4
    np.testing.assert_allclose(Xt, _numpy_f6(est, images), rtol=rtol, atol=rtol)
    names = est.get_feature_names_out()
    assert names[0] == "lenet5classifier0" and names[-1] == "lenet5classifier83"
    # flat input of the same images, as predict reads it
    np.testing.assert_array_equal(est.transform(images.reshape(60, -1)), Xt)
