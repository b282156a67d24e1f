"""fastbp.to_onnx: the exported graphs, run by onnxruntime, reproduce predict
and predict_proba of every estimator; bad requests raise clear errors."""
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning, NotFittedError

import fastbp
from fastbp import (LeNet5Classifier, MLPClassifier, MLPRegressor, RNNClassifier,
                    RNNRegressor, to_onnx)

try:
    import onnx
    import onnxruntime as ort
except ImportError:  # pragma: no cover - CI installs both with the test extra
    onnx = ort = None

needs_onnx = pytest.mark.skipif(ort is None, reason="needs onnx and onnxruntime")
ATOL = 1e-5


def _fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def _run(model, X, **extra):
    """Check the model and run it on X (as float32); {output name: array}."""
    onnx.checker.check_model(model, full_check=True)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    feeds = {"X": np.asarray(X, dtype=np.float32), **extra}
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds)))


def _assert_labels(labels, expected, proba):
    """Labels equal, except where the two best probabilities tie within
    float32 rounding (a last-bit difference may pick either)."""
    labels, expected, proba = np.asarray(labels), np.asarray(expected), np.asarray(proba)
    top2 = np.sort(proba, axis=-1)[..., -2:]
    clear = top2[..., 1] - top2[..., 0] > 1e-6
    assert clear.mean() > 0.99
    assert labels.shape == expected.shape
    assert labels.dtype.kind == expected.dtype.kind or (
        labels.dtype == object and expected.dtype.kind in "UO")
    assert np.array_equal(labels[clear], expected[clear])


def _assert_classifier(est, X, X_onnx=None, **extra):
    out = _run(to_onnx(est, **({"sequence_lens": True} if extra else {})),
               X if X_onnx is None else X_onnx, **extra)
    proba = est.predict_proba(X)
    np.testing.assert_allclose(out["probabilities"], proba, rtol=0, atol=ATOL)
    _assert_labels(out["label"], est.predict(X), proba)
    return out


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600] / 16, y[:600]


# ---------------------------------------------------------------------- MLP
@needs_onnx
@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
def test_mlp_classifier_multiclass_matches_predict(digits, activation):
    X, y = digits
    clf = _fit(MLPClassifier((16, 12), activation, max_iter=5, random_state=0), X, y)
    out = _assert_classifier(clf, X)
    assert out["label"].dtype == np.int64 and out["probabilities"].shape == (len(X), 10)


@needs_onnx
@pytest.mark.parametrize("loss", ["log_loss", "squared_error"])
@pytest.mark.parametrize("labels", [[3, 7], ["no", "yes"], [False, True]],
                         ids=["int", "str", "bool"])
def test_mlp_classifier_binary_gives_two_probability_columns(digits, loss, labels):
    X, y = digits
    y = np.asarray(labels)[(y > 4).astype(int)]
    clf = _fit(MLPClassifier((8,), "tanh", loss=loss, max_iter=5, random_state=0), X, y)
    out = _assert_classifier(clf, X)
    assert out["probabilities"].shape == (len(X), 2)
    assert set(out["label"]) == set(labels)


@needs_onnx
def test_mlp_classifier_string_labels(digits):
    X, y = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven",
                      "eight", "nine"], dtype=object)
    clf = _fit(MLPClassifier((16,), max_iter=5, random_state=0), X, names[y])
    out = _assert_classifier(clf, X)
    assert out["label"].dtype == object and set(out["label"]) <= set(names)


@needs_onnx
def test_mlp_classifier_float_labels_and_a_single_class(digits):
    X, y = digits
    clf = _fit(MLPClassifier((8,), max_iter=3, random_state=0), X, y * 2.0)
    out = _assert_classifier(clf, X)
    assert out["label"].dtype == np.float64
    one = _fit(MLPClassifier((4,), max_iter=2, random_state=0), X, np.full(len(X), 7))
    out = _assert_classifier(one, X)
    assert np.all(out["label"] == 7)


@needs_onnx
def test_mlp_classifier_squared_error_multiclass_normalizes_sigmoids(digits):
    X, y = digits
    clf = _fit(MLPClassifier((16,), loss="squared_error", max_iter=5, random_state=0), X, y)
    out = _assert_classifier(clf, X)
    np.testing.assert_allclose(out["probabilities"].sum(axis=1), 1, atol=ATOL)


@needs_onnx
def test_mlp_classifier_multilabel(digits):
    X, y = digits
    Y = np.stack([y % 2, y > 4, y % 3 == 0], axis=1).astype(int)
    clf = _fit(MLPClassifier((16,), max_iter=20, random_state=0), X, Y)
    out = _run(to_onnx(clf), X)
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(out["probabilities"], proba, rtol=0, atol=ATOL)
    clear = np.abs(proba - 0.5) > 1e-6
    expected = clf.predict(X)
    assert out["label"].shape == expected.shape and out["label"].dtype == np.int64
    assert clear.mean() > 0.99 and np.array_equal(out["label"][clear], expected[clear])


@needs_onnx
def test_mlp_classifier_trained_in_float32(digits):
    X, y = digits
    clf = _fit(MLPClassifier((16,), max_iter=5, random_state=0), X.astype(np.float32), y)
    _assert_classifier(clf, X.astype(np.float32))


@needs_onnx
@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
@pytest.mark.parametrize("n_targets", [1, 3])
def test_mlp_regressor_matches_predict(digits, loss, n_targets):
    X, y = digits
    Y = np.stack([y, y % 5, X[:, 20] * 3][:n_targets], axis=1).astype(float)
    reg = _fit(MLPRegressor(loss, (16,), "tanh", max_iter=10, random_state=0), X,
               Y[:, 0] if n_targets == 1 else Y)
    out = _run(to_onnx(reg), X)["variable"]
    assert out.shape == (len(X), n_targets)
    np.testing.assert_allclose(out, reg.predict(X).reshape(len(X), -1), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ LeNet-5
def _images(digits, side):
    """The 8x8 digits scaled up to side x side (side >= 32) or to 32x32 then
    cropped to 28x28."""
    X, y = digits
    images = np.kron(X[:120].reshape(-1, 8, 8), np.ones((1, 4, 4)))
    if side == 28:
        images = images[:, 2:30, 2:30]
    elif side > 32:
        images = np.pad(images, ((0, 0), (0, side - 32), (0, side - 32)))
    return images, y[:120]


@needs_onnx
@pytest.mark.parametrize("activation", ["tanh", "lecun_tanh", "relu", "logistic"])
def test_lenet_matches_predict(digits, activation):
    images, y = _images(digits, 32)
    clf = _fit(LeNet5Classifier(activation, learning_rate_init=0.01, max_iter=2,
                                random_state=0), images, y)
    _assert_classifier(clf, images, images[:, None])


@needs_onnx
def test_lenet_pads_28x28_digits_and_takes_images(digits):
    images, y = _images(digits, 28)
    flat = images.reshape(len(images), -1)
    clf = _fit(LeNet5Classifier(max_iter=2, random_state=0), flat, y % 2)
    model = to_onnx(clf)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]]
    assert dims == [1, 28, 28]
    _assert_classifier(clf, flat, images[:, None])


@needs_onnx
def test_lenet_larger_images_and_full_table(digits):
    # 36x36 images: C5 outputs 120 maps of 2x2, which F6 reads flattened
    images, y = _images(digits, 36)
    clf = _fit(LeNet5Classifier(connection_table="full", max_iter=2, random_state=0),
               images, y)
    _assert_classifier(clf, images, images[:, None])


@needs_onnx
def test_lenet_ignores_unconnected_weights_as_predict_does(digits):
    images, y = _images(digits, 32)
    clf = _fit(LeNet5Classifier(max_iter=2, random_state=0), images, y)
    unconnected = ~fastbp.lenet.LECUN_C3_TABLE.T
    clf.parameters_["C3.weight"][unconnected] = 5.0  # never read by the kernels
    _assert_classifier(clf, images, images[:, None])


# --------------------------------------------------------------------- RNNs
def _sequences(n=40, steps=6, n_features=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, steps, n_features))
    lengths = rng.integers(1, steps + 1, n)
    return X, lengths


@needs_onnx
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "logistic"])
@pytest.mark.parametrize("labels", [[0, 1, 2], [-1, 4], ["a", "b", "c"]],
                         ids=["multiclass", "binary", "str"])
def test_rnn_classifier_last_matches_predict(nonlinearity, labels):
    X, _ = _sequences()
    y = np.asarray(labels)[(X[:, :, 0].sum(1) > 0) + (X[:, :, 1].sum(1) > 1) * (len(labels) - 2)]
    clf = _fit(RNNClassifier(8, nonlinearity, max_iter=5, random_state=0), X, y)
    _assert_classifier(clf, X)


@needs_onnx
def test_rnn_classifier_sequence_output():
    X, _ = _sequences()
    y = (X[:, :, 0] > 0).astype(int) + (X[:, :, 1] > 1)
    clf = _fit(RNNClassifier(8, output="sequence", max_iter=5, random_state=0), X, y)
    out = _assert_classifier(clf, X)
    assert out["probabilities"].shape == (40, 6, 3) and out["label"].shape == (40, 6)


@needs_onnx
@pytest.mark.parametrize("output", ["last", "sequence"])
def test_rnn_ragged_batches_through_sequence_lens(output):
    X, lengths = _sequences()
    ragged = [x[:n] for x, n in zip(X, lengths)]
    y = ((X[:, :, 0] > 0) if output == "sequence" else X[:, :, 0].sum(1) > 0).astype(int)
    y = [row[:n] for row, n in zip(y, lengths)] if output == "sequence" else y
    clf = _fit(RNNClassifier(8, output=output, max_iter=5, random_state=0), ragged, y)
    X[np.arange(6) >= lengths[:, None]] = 7.0  # padding the model must not read
    out = _run(to_onnx(clf, sequence_lens=True), X, sequence_lens=lengths)
    proba, labels = clf.predict_proba(ragged), clf.predict(ragged)
    if output == "last":
        np.testing.assert_allclose(out["probabilities"], proba, rtol=0, atol=ATOL)
        _assert_labels(out["label"], labels, proba)
        return
    for i, n in enumerate(lengths):
        np.testing.assert_allclose(out["probabilities"][i, :n], proba[i], rtol=0, atol=ATOL)
        _assert_labels(out["label"][i, :n], labels[i], proba[i])


@needs_onnx
@pytest.mark.parametrize("output", ["last", "sequence"])
@pytest.mark.parametrize("n_targets", [1, 2])
def test_rnn_regressor_matches_predict(output, n_targets):
    X, lengths = _sequences(seed=1)
    ragged = [x[:n] for x, n in zip(X, lengths)]
    rng = np.random.default_rng(2)
    if output == "last":
        y = rng.standard_normal((len(X), n_targets))
    else:
        y = [rng.standard_normal((n, n_targets)) for n in lengths]
    if n_targets == 1:
        y = y[:, 0] if output == "last" else [t[:, 0] for t in y]
    reg = _fit(RNNRegressor(8, "relu", output, max_iter=5, random_state=0), ragged, y)
    out = _run(to_onnx(reg, sequence_lens=True), X, sequence_lens=lengths)["variable"]
    pred = reg.predict(ragged)
    if output == "last":
        np.testing.assert_allclose(out, pred.reshape(len(X), -1), rtol=1e-5, atol=1e-5)
        return
    assert out.shape == (len(X), 6, n_targets)
    for i, n in enumerate(lengths):
        np.testing.assert_allclose(out[i, :n], pred[i].reshape(n, -1), rtol=1e-5, atol=1e-5)


@needs_onnx
def test_rnn_fitted_on_univariate_table_takes_2d_x():
    X, _ = _sequences(n_features=1)
    table = X[:, :, 0]
    reg = _fit(RNNRegressor(6, max_iter=5, random_state=0), table, table.sum(1))
    out = _run(to_onnx(reg), table)["variable"]
    np.testing.assert_allclose(out[:, 0], reg.predict(table), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------ model, errors
@needs_onnx
@pytest.mark.parametrize("opset", [13, 18])
def test_target_opset_sets_the_model_versions(digits, opset):
    X, y = digits
    clf = _fit(MLPClassifier((8,), max_iter=2, random_state=0), X, y)
    model = to_onnx(clf, target_opset=opset, name="digits")
    assert [(o.domain, o.version) for o in model.opset_import] == [("", opset)]
    assert model.ir_version == onnx.helper.find_min_ir_version_for(model.opset_import)
    assert model.graph.name == "digits" and model.producer_name == "fastbp"
    _assert_classifier(clf, X)


@needs_onnx
def test_errors(digits):
    X, y = digits
    with pytest.raises(NotFittedError):
        to_onnx(MLPClassifier())
    with pytest.raises(NotFittedError):
        to_onnx(RNNRegressor())
    from sklearn.neural_network import MLPClassifier as SkMLP

    with pytest.raises(TypeError, match="fastbp's MLPClassifier"):
        to_onnx(SkMLP())
    clf = _fit(MLPClassifier((4,), max_iter=2, random_state=0), X, y)
    for opset in (12, onnx.defs.onnx_opset_version() + 1, 13.0, "17"):
        with pytest.raises(ValueError, match="target_opset"):
            to_onnx(clf, target_opset=opset)
    with pytest.raises(ValueError, match="sequence_lens=True applies to RNNs only"):
        to_onnx(clf, sequence_lens=True)
    with pytest.raises(ValueError, match="sequence_lens must be a bool"):
        to_onnx(clf, sequence_lens="yes")


@needs_onnx
def test_class_labels_onnx_cannot_hold(digits):
    X, y = digits
    clf = _fit(MLPClassifier((4,), max_iter=2, random_state=0), X, y % 2)
    clf.classes_ = clf._label_binarizer.classes_ = np.array([0, "a"], dtype=object)
    with pytest.raises(ValueError, match="all integers or all strings"):
        to_onnx(clf)


def test_missing_onnx_names_the_extra(digits, monkeypatch):
    X, y = digits
    clf = _fit(MLPClassifier((4,), max_iter=2, random_state=0), X, y)
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "fastbp\[onnx\]"'):
        to_onnx(clf)


def test_importing_fastbp_does_not_import_onnx():
    code = "import sys, fastbp; fastbp.to_onnx; assert 'onnx' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_to_onnx_is_annotated_and_documented():
    # onnx's type is named for type checkers only (onnx is optional)
    assert {"estimator", "return"} <= set(to_onnx.__annotations__)
    assert "Parameters" in to_onnx.__doc__ and "Returns" in to_onnx.__doc__


@needs_onnx
def test_export_and_saving_follow_the_fitted_network_not_a_later_set_params(digits, tmp_path):
    """set_params(activation=...) reaches the weights only at the next fit:
    until then predict uses the network as built, and so must the export and
    a saved model."""
    X, y = digits
    clf = _fit(MLPClassifier((8,), "relu", max_iter=5, random_state=0), X, y)
    clf.set_params(activation="tanh")
    _assert_classifier(clf, X)
    path = tmp_path / "model.fbp"
    clf.save(path)
    np.testing.assert_array_equal(fastbp.load(path).predict_proba(X), clf.predict_proba(X))
    X_seq = _sequences()[0]
    rnn = _fit(RNNRegressor(hidden_size=4, nonlinearity="tanh", max_iter=3, random_state=0),
               X_seq, X_seq[:, -1, 0])
    rnn.set_params(nonlinearity="relu")
    out = _run(to_onnx(rnn), X_seq)
    np.testing.assert_allclose(out["variable"].ravel(), rnn.predict(X_seq).ravel(),
                               rtol=ATOL, atol=ATOL)
