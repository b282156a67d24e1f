"""LeNet5Classifier: the paper's architecture, input shapes, gradients, training."""
import pickle
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

import fastbp
from fastbp import LeNet5Classifier, check_gradients
from fastbp.lenet import LECUN_C3_TABLE


def _fit(est, X, y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y, **kwargs)


@pytest.fixture(scope="module")
def digits32():
    """sklearn's 8x8 digits upscaled to 32x32."""
    X, y = load_digits(return_X_y=True)
    return np.kron(X.reshape(-1, 8, 8) / 16.0, np.ones((4, 4))), y


def test_lecun_table_is_table_one():
    # Table I of LeCun et al. (1998): 60 connections, columns 0-5 see 3 maps,
    # 6-14 see 4, column 15 sees all six; spot-check a few columns.
    assert LECUN_C3_TABLE.shape == (6, 16) and LECUN_C3_TABLE.sum() == 60
    assert list(LECUN_C3_TABLE.sum(axis=0)) == [3] * 6 + [4] * 9 + [6]
    assert np.flatnonzero(LECUN_C3_TABLE[:, 4]).tolist() == [0, 4, 5]
    assert np.flatnonzero(LECUN_C3_TABLE[:, 11]).tolist() == [0, 1, 2, 5]
    assert np.flatnonzero(LECUN_C3_TABLE[:, 14]).tolist() == [0, 2, 3, 5]


def test_paper_parameter_counts_and_names(digits32):
    X, y = digits32
    est = _fit(LeNet5Classifier(max_iter=1, random_state=0), X[:40], y[:40])
    assert est.trainable_parameter_counts_ == {
        "C1": 156, "S2": 12, "C3": 1516, "S4": 32, "C5": 48120, "F6": 10164, "output": 850}
    shapes = {k: v.shape for k, v in est.parameters_.items()}
    assert shapes == {
        "C1.weight": (6, 1, 5, 5), "C1.bias": (6,), "S2.coef": (6,), "S2.bias": (6,),
        "C3.weight": (16, 6, 5, 5), "C3.bias": (16,), "S4.coef": (16,), "S4.bias": (16,),
        "C5.weight": (120, 16, 5, 5), "C5.bias": (120,), "F6.weight": (120, 84),
        "F6.bias": (84,), "output.weight": (84, 10), "output.bias": (10,)}
    full = _fit(LeNet5Classifier(connection_table="full", max_iter=1), X[:40], y[:40])
    assert full.trainable_parameter_counts_["C3"] == 16 * 6 * 25 + 16


def test_unconnected_c3_weights_stay_zero(digits32):
    X, y = digits32
    est = _fit(LeNet5Classifier(max_iter=3, solver="sgd", alpha=0.01, random_state=0),
               X[:200], y[:200])
    c3 = est.parameters_["C3.weight"]
    unconnected = ~LECUN_C3_TABLE.T
    assert np.all(c3[unconnected] == 0)
    assert np.all(np.abs(c3[~unconnected]).sum(axis=(-1, -2)) > 0)
    grads = est.backprop(X[:20], y[:20]).gradients["C3.weight"]
    assert np.all(grads[unconnected] == 0)


def test_continued_training_takes_a_new_activation_but_not_a_new_table(digits32):
    """Training that continues (partial_fit, warm_start) takes a changed
    activation on the fitted weights, as for the MLPs; a changed connection
    table would change which C3 weights exist, at equal shapes, and raises."""
    X, y = digits32
    X, y = X[:40], y[:40]
    est = _fit(LeNet5Classifier(connection_table="full", max_iter=1, random_state=0), X, y)
    before = est.predict_proba(X)
    est.set_params(activation="relu", learning_rate_init=1e-300)
    est.partial_fit(X, y)  # a step of 1e-300 leaves the weights: only relu differs
    assert not np.allclose(est.predict_proba(X), before)
    theta = est._network.theta.copy()
    est.set_params(connection_table="lecun", warm_start=True)
    with pytest.raises(ValueError, match=r"^connection_table changed"):
        _fit(est, X, y)
    np.testing.assert_array_equal(est._network.theta, theta)


@pytest.mark.parametrize("activation", ["tanh", "lecun_tanh", "relu", "logistic"])
@pytest.mark.parametrize("table", ["lecun", "full", "custom"])
def test_gradients_every_layer(digits32, activation, table):
    X, y = digits32
    if table == "custom":
        table = np.random.default_rng(0).random((6, 16)) > 0.5
        table[0] = True  # every C3 map sees at least one S2 map
    est = _fit(LeNet5Classifier(activation=activation, connection_table=table, alpha=0.05,
                                max_iter=1, batch_size=16, random_state=0), X[:48], y[:48])
    assert check_gradients(est, X[:3], y[:3], max_entries=25) <= 1e-6


def test_gradients_squared_error_and_sample_weight(digits32):
    X, y = digits32
    est = _fit(LeNet5Classifier(loss="squared_error", max_iter=1, random_state=0),
               X[:30], y[:30] % 3)
    w = np.array([0.5, 2.0, 1.0])
    assert check_gradients(est, X[:3], y[:3] % 3, sample_weight=w, max_entries=25) <= 1e-6


def test_l2_term_covers_weights_not_biases_or_pool_coefficients(digits32):
    X, y = digits32
    est = _fit(LeNet5Classifier(max_iter=1, random_state=0), X[:30], y[:30])
    est.set_params(alpha=0.0)
    p = est.parameters_
    p["S2.coef"][...] = 3.0  # would change the penalty if it were counted
    weights = ["C1.weight", "C3.weight", "C5.weight", "F6.weight", "output.weight"]
    sumsq = sum(float(np.sum(p[k] ** 2)) for k in weights)
    base = est.backprop(X[:10], y[:10]).loss
    est.set_params(alpha=0.7)
    assert est.backprop(X[:10], y[:10]).loss - base == pytest.approx(0.7 * sumsq / 20)


@pytest.mark.parametrize("shape,padded", [
    ((784,), True), ((28, 28), True), ((1, 28, 28), True),
    ((1024,), False), ((32, 32), False), ((1, 32, 32), False)])
def test_accepted_input_shapes(shape, padded):
    rng = np.random.default_rng(0)
    X = rng.random((12,) + shape)
    y = np.arange(12) % 3
    est = _fit(LeNet5Classifier(max_iter=1, random_state=0), X, y)
    assert est._sample_shape == (1, 32, 32)
    images = np.asarray(est._check_X(X))  # 28x28: a PaddedImages, padded by asarray
    if padded:
        assert np.all(images[:, :, :2] == 0) and np.all(images[:, :, :, -2:] == 0)
        np.testing.assert_array_equal(images[:, 0, 2:30, 2:30], X.reshape(12, 28, 28))
    else:
        np.testing.assert_array_equal(images.reshape(12, -1), X.reshape(12, -1))
    assert est.predict(X).shape == (12,)


@pytest.mark.parametrize("settings", [
    dict(solver="sgd"), dict(solver="sgd", shuffle=False), dict(solver="adam", class_weight="balanced"),
    dict(solver="sgd", early_stopping=True, validation_fraction=0.25), dict(solver="lbfgs")])
def test_28x28_images_train_as_their_padded_32x32_copy(settings):
    """28x28 images, padded batch by batch as the fit gathers them, train
    the same network to the bit as the same images padded by hand: every
    solver, the shuffled and the sliced epochs, the validation split."""
    rng = np.random.default_rng(3)
    X = rng.random((90, 784), dtype=np.float32)
    y = np.arange(90) % 3
    padded = np.pad(X.reshape(90, 1, 28, 28), [(0, 0), (0, 0), (2, 2), (2, 2)])
    params = dict(max_iter=2, batch_size=16, random_state=0, n_jobs=2, **settings)
    lazy = _fit(LeNet5Classifier(**params), X, y)
    by_hand = _fit(LeNet5Classifier(**params), padded, y)
    assert lazy.n_features_in_ == 784 and by_hand.n_features_in_ == 1024
    np.testing.assert_array_equal(lazy._network.theta, by_hand._network.theta)
    assert lazy.loss_curve_ == by_hand.loss_curve_
    if settings.get("early_stopping"):
        assert lazy.validation_scores_ == by_hand.validation_scores_
    np.testing.assert_array_equal(lazy.predict_proba(X), by_hand.predict_proba(padded))


def test_28x28_images_continue_as_their_padded_copy():
    """partial_fit and a warm start from float64 images into a float32
    network (converted once, then padded by batch) match the padded copy."""
    rng = np.random.default_rng(4)
    X = rng.random((60, 1, 28, 28))
    y = np.arange(60) % 4
    padded = np.pad(X, [(0, 0), (0, 0), (2, 2), (2, 2)])
    runs = []
    for data in (X, padded):
        est = LeNet5Classifier(max_iter=1, batch_size=16, random_state=0, warm_start=True)
        _fit(est, data.astype(np.float32), y)
        _fit(est, data, y)  # float64 into the float32 network
        est.partial_fit(data[:20], y[:20])
        runs.append(est._network.theta.copy())
    assert runs[0].dtype == np.float32
    np.testing.assert_array_equal(runs[0], runs[1])


def test_28x28_images_predict_as_their_padded_copy():
    """Prediction pads 28x28 images chunk by chunk into one buffer: the
    same bits as the images padded by hand, over several chunks and a short
    last one, for every output (probabilities, features, the gradients of
    backprop, a validation set's scores)."""
    from fastbp._images import PaddedImages

    rng = np.random.default_rng(6)
    X = rng.random((50, 1, 28, 28))
    y = np.arange(50) % 3
    padded = np.pad(X, [(0, 0), (0, 0), (2, 2), (2, 2)])
    est = _fit(LeNet5Classifier(max_iter=1, batch_size=16, random_state=0), padded, y)
    net = est._network
    lazy = PaddedImages(X, 2)
    np.testing.assert_array_equal(np.asarray(lazy), padded)
    for batch_rows in (7, 50, None):
        np.testing.assert_array_equal(net.predict(lazy, 2, batch_rows=batch_rows),
                                      net.predict(padded, 2, batch_rows=batch_rows))
    twin = _fit(LeNet5Classifier(max_iter=1, batch_size=16, random_state=0), X, y)
    np.testing.assert_array_equal(twin._network.theta, net.theta)
    np.testing.assert_array_equal(twin.predict_proba(X), est.predict_proba(padded))
    np.testing.assert_array_equal(twin.predict_proba(X.reshape(50, 784)),
                                  est.predict_proba(padded))
    np.testing.assert_array_equal(twin.transform(X), est.transform(padded))
    a, b = twin.backprop(X[:9], y[:9]), est.backprop(padded[:9], y[:9])
    assert a.loss == b.loss
    for key in a.gradients:
        np.testing.assert_array_equal(a.gradients[key], b.gradients[key])
    scored = [_fit(LeNet5Classifier(max_iter=2, batch_size=16, random_state=0), data, y,
                   X_val=val, y_val=y[:20]).validation_scores_
              for data, val in ((X, X[:20]), (padded, padded[:20]))]
    assert scored[0] == scored[1] and len(scored[0]) == 2


def test_a_fit_on_28x28_images_makes_no_padded_copy_of_them():
    """The images are padded a batch at a time: a fit's peak memory grows
    with the training set by far less than a padded copy of it would add
    (the fit before padded all of it up front). The workspace, sized by the
    batch, is the same for both sizes."""
    import tracemalloc

    rng = np.random.default_rng(5)
    X = rng.random((8000, 784), dtype=np.float32)
    y = np.arange(8000) % 10
    est = LeNet5Classifier(max_iter=1, batch_size=128, random_state=0)
    _fit(est, X[:200], y[:200])  # the first fit's one-off allocations
    peaks = []
    for n in (2000, 8000):
        tracemalloc.start()
        try:
            _fit(est, X[:n], y[:n])
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    padded_growth = (8000 - 2000) * 32 * 32 * 4  # 24.6 MB
    assert peaks[1] - peaks[0] < padded_growth / 4, peaks


def test_larger_images_give_c5_a_spatial_map():
    rng = np.random.default_rng(1)
    X, y = rng.random((10, 1, 40, 44)), np.arange(10) % 2
    est = _fit(LeNet5Classifier(max_iter=1, random_state=0), X, y)
    assert est.parameters_["F6.weight"].shape == (120 * 3 * 4, 84)
    assert check_gradients(est, X[:2], y[:2], max_entries=10) <= 1e-6
    flat = _fit(LeNet5Classifier(image_shape=(40, 44), max_iter=1, random_state=0),
                X.reshape(10, -1), y)
    np.testing.assert_allclose(flat.predict_proba(X.reshape(10, -1)), est.predict_proba(X))


@pytest.mark.parametrize("shape", [(100,), (20, 20), (3, 28, 28), (1, 30, 30), (36, 34)])
def test_unaccepted_shapes_say_what_is_accepted(shape):
    X = np.zeros((4,) + shape)
    with pytest.raises(ValueError, match=r"takes images as X of shape \(n, 784\)"):
        LeNet5Classifier(max_iter=1).fit(X, [0, 1, 0, 1])


def test_predict_rejects_another_layout_of_the_same_pixel_count():
    rng = np.random.default_rng(2)
    est = _fit(LeNet5Classifier(max_iter=1), rng.random((6, 32, 48)), [0, 1] * 3)
    with pytest.raises(ValueError, match="fitted on"):
        est.predict(rng.random((2, 48, 32)))


def test_learns_digits_and_round_trips(tmp_path, digits32):
    X, y = digits32
    est = _fit(LeNet5Classifier(max_iter=6, random_state=0), X[:1200], y[:1200])
    assert est.score(X[1200:], y[1200:]) > 0.85
    est.save(tmp_path / "lenet.npz")
    loaded = fastbp.load(tmp_path / "lenet.npz")
    np.testing.assert_array_equal(loaded.predict_proba(X[1200:]), est.predict_proba(X[1200:]))
    assert loaded.trainable_parameter_counts_ == est.trainable_parameter_counts_


@pytest.mark.compares_n_jobs
def test_float32_and_thread_count(digits32):
    X, y = digits32
    X32 = X[:256].astype(np.float32)
    runs = [_fit(LeNet5Classifier(max_iter=2, random_state=0, n_jobs=n), X32, y[:256])
            for n in (1, 2)]
    assert runs[0].parameters_["C1.weight"].dtype == np.float32
    np.testing.assert_array_equal(runs[0]._network.theta, runs[1]._network.theta)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_maps_side_by_side_change_no_bit(digits32, dtype, dispatch_path, monkeypatch):
    # C1 -> S2 -> C3 -> S4 hand their maps on side by side when a batch has
    # a block of samples or more. A fit, its deltas and its predictions must
    # be bitwise those of the same layers on NCHW maps (batches of 20, 20
    # and 7: full and partial blocks, and a batch under a block, NCHW).
    from fastbp import _layers
    X, y = digits32
    X, y = X[:47].astype(dtype), y[:47]
    linked = [(False, True), (True, True), (True, True), (True, False), (False, False)]

    def run():
        est = _fit(LeNet5Classifier(max_iter=2, batch_size=20, random_state=0, n_jobs=2), X, y)
        return est, est.backprop(X[:20], y[:20]), est.predict_proba(X)

    est, bp, proba = run()
    assert [(layer.in_side_by_side, layer.out_side_by_side)
            for layer in est._network.layers[:5]] == linked
    # a model saved before the layout has no links; loading adds them
    for layer in est._network.layers:
        layer.__dict__.pop("in_side_by_side", None)
        layer.__dict__.pop("out_side_by_side", None)
    loaded = pickle.loads(pickle.dumps(est))
    assert [(layer.in_side_by_side, layer.out_side_by_side)
            for layer in loaded._network.layers[:5]] == linked
    np.testing.assert_array_equal(loaded.predict_proba(X), proba)
    assert [d.shape for d in bp.deltas[:4]] == [
        (20, 6, 28, 28), (20, 6, 14, 14), (20, 16, 10, 10), (20, 16, 5, 5)]
    monkeypatch.setattr(_layers._MapsLayer, "_blocked", lambda self, linked, n, dtype: False)
    est_nchw, bp_nchw, proba_nchw = run()
    np.testing.assert_array_equal(est._network.theta, est_nchw._network.theta)
    np.testing.assert_array_equal(proba, proba_nchw)
    assert bp.loss == bp_nchw.loss
    for d, d_nchw in zip(bp.deltas, bp_nchw.deltas):
        np.testing.assert_array_equal(d, d_nchw)
    for name, g in bp.gradients.items():
        np.testing.assert_array_equal(g, bp_nchw.gradients[name])


def test_gradients_with_maps_side_by_side(digits32):
    # 17 samples: float64 blocks of 8, 8 and 1 side by side
    X, y = digits32
    est = _fit(LeNet5Classifier(alpha=0.05, max_iter=1, batch_size=16, random_state=0),
               X[:48], y[:48])
    assert check_gradients(est, X[:17], y[:17], max_entries=25) <= 1e-6


@pytest.mark.parametrize("bad,message", [(np.nan, "contains NaN"), (np.inf, "infinity")])
@pytest.mark.parametrize("shape", [(20, 1, 32, 32), (20, 32, 32), (20, 1024)])
def test_non_finite_images_are_refused_once_checked(shape, bad, message):
    # Images are checked for finiteness once (by validate_data, after the
    # reshape), whatever their layout, with the same error.
    X = np.zeros(shape)
    X.reshape(20, -1)[3, 77] = bad
    with pytest.raises(ValueError, match=message):
        LeNet5Classifier(max_iter=1).fit(X, np.arange(20) % 3)


@pytest.mark.parametrize("how", ["warm_start", "partial_fit", "image_shape"])
def test_continuing_on_images_of_another_layout_is_refused(how):
    rng = np.random.default_rng(0)
    wide, tall, y = rng.random((30, 32, 48)), rng.random((30, 48, 32)), rng.integers(0, 2, 30)
    est = LeNet5Classifier(max_iter=1, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(wide, y)
    theta = est._network.theta.copy()
    calls = {"warm_start": lambda: est.fit(tall, y), "partial_fit": lambda: est.partial_fit(tall, y),
             "image_shape": lambda: est.set_params(image_shape=(48, 32)).fit(
                 wide.reshape(30, -1), y)}
    with pytest.raises(ValueError, match=r"samples of shape \(1, 48, 32\), but the model was "
                                         r"fitted on samples of shape \(1, 32, 48\)"):
        calls[how]()
    np.testing.assert_array_equal(est._network.theta, theta)
    est.set_params(image_shape=None)
    est.predict(wide[:2])


def test_five_dimensional_images_are_named_as_such():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="images"):
        LeNet5Classifier(max_iter=1).fit(rng.random((10, 1, 1, 28, 28)), rng.integers(0, 2, 10))
