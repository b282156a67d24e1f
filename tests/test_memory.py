"""fastbp's own buffers start on a cache line (_memory.py): a buffer that
starts mid-line makes every 64-byte vector access span two lines, and two
threads that split it by rows share a line at each boundary."""
import copy
import pickle
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits

import fastbp
from fastbp import LeNet5Classifier, MLPClassifier, RNNClassifier
from fastbp._batches import batch_source
from fastbp._memory import CACHE_LINE, aligned_copy, aligned_empty, aligned_zeros
from fastbp._network import _TRAINING_WORKSPACES, _workspace_bytes
from fastbp._sequences import Ragged, pack_buffers


def _starts_a_line(a):
    return a.ctypes.data % CACHE_LINE == 0


def _arrays(ws):
    """Every buffer of a workspace (dataclasses, lists, tuples); not the
    passes bound to the last batch, which may hold the caller's X."""
    if isinstance(ws, np.ndarray):
        return [ws]
    if hasattr(ws, "__dataclass_fields__"):
        ws = [getattr(ws, name) for name in ws.__dataclass_fields__ if name != "passes"]
    elif not isinstance(ws, (list, tuple)):
        return []
    return [a for item in ws for a in _arrays(item)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.uint8])
@pytest.mark.parametrize("shape", [0, 1, 7, (3, 5), (65, 129), (2, 3, 4), ()])
def test_aligned_arrays(shape, dtype):
    rng = np.random.default_rng(0)
    expected_shape = (shape,) if isinstance(shape, int) else shape
    # several in a row: NumPy's allocator hands out 16-byte boundaries
    for _ in range(4):
        empty = aligned_empty(shape, dtype)
        zeros = aligned_zeros(shape, dtype)
        source = (rng.standard_normal(expected_shape) * 100).astype(np.float64)
        copy = aligned_copy(source, dtype)
        for a in (empty, zeros, copy):
            assert a.shape == expected_shape and a.dtype == dtype
            assert a.flags.c_contiguous and a.flags.writeable
            assert _starts_a_line(a) or a.size == 0  # an empty view may point anywhere
        assert not zeros.any()
        np.testing.assert_array_equal(copy, source.astype(dtype))
        same = aligned_copy(copy)
        assert same.dtype == dtype and not np.shares_memory(same, copy)
        np.testing.assert_array_equal(same, copy)


@pytest.mark.parametrize("shape", [-1, (2, -3)])
def test_negative_shapes_are_refused(shape):
    with pytest.raises(ValueError, match="negative"):
        aligned_empty(shape, np.float32)


@pytest.mark.parametrize("shape", [2.5, (2, 1.5)])
def test_fractional_shapes_are_refused(shape):
    with pytest.raises(TypeError):
        aligned_empty(shape, np.float32)


def test_batch_and_packing_buffers_start_a_line():
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        X = rng.standard_normal((50, 13)).astype(dtype)
        Y = rng.standard_normal((50, 3)).astype(dtype)
        X_buf, Y_buf, sw_buf = batch_source(X, Y).buffers(17)
        assert sw_buf is None and _starts_a_line(X_buf) and _starts_a_line(Y_buf)
        for a in batch_source(X, Y, np.ones(50, dtype)).buffers(17, np.float32):
            assert _starts_a_line(a)
        lengths = np.array([3, 5, 2, 7])
        seqs = Ragged(rng.standard_normal((lengths.sum(), 6)).astype(dtype), lengths)
        targets = Ragged(rng.standard_normal((lengths.sum(), 2)).astype(dtype), lengths)
        buffers = pack_buffers(seqs, 3, targets, np.ones(4, dtype))
        assert set(buffers) == {"data", "targets", "weights"}
        for a in buffers.values():
            assert _starts_a_line(a)
        # the whole set packed at once (L-BFGS) as the batches are
        whole = batch_source(seqs, targets, np.ones(4, dtype)).whole(dtype)[0]
        assert _starts_a_line(whole.data)
        np.testing.assert_array_equal(np.sort(whole.data, axis=0), np.sort(seqs.data, axis=0))


def test_object_arrays_are_plain():
    a = aligned_empty((3, 2), object)
    assert a.shape == (3, 2) and a.dtype == object
    a[0, 0] = "x"  # holds references
    assert aligned_zeros(4, object).tolist() == [0, 0, 0, 0]


def test_aligned_copy_of_a_strided_view():
    a = np.arange(60.0).reshape(6, 10)[::2, 1::3]
    out = aligned_copy(a)
    assert _starts_a_line(out) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, a)


def _fitted(make, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make().fit(X, y)


def _check_network(est):
    net = est._network
    assert _starts_a_line(net.theta) and _starts_a_line(net.grad)
    for name in getattr(est._optimizer, "_state_arrays", ()):
        assert _starts_a_line(getattr(est._optimizer, name)), name
    kept = _TRAINING_WORKSPACES.get(net)
    if kept is not None and _workspace_bytes(kept[1]):
        arrays = _arrays(kept[1])
        assert arrays
        for a in arrays:
            assert _starts_a_line(a)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_mlp_buffers_start_a_line(solver):
    X, y = load_digits(return_X_y=True)
    est = _fitted(lambda: MLPClassifier((33, 17), solver=solver, max_iter=2, random_state=0),
                  X[:300], y[:300])
    _check_network(est)
    # a loaded model, and one cast to another dtype, align theirs too
    loaded = pickle.loads(pickle.dumps(est))
    _check_network(loaded)
    assert np.array_equal(loaded._network.theta, est._network.theta)
    cast = est._network.astype(np.float32)
    assert _starts_a_line(cast.theta) and _starts_a_line(cast.grad)
    # the kernel steps the arrays the optimizer reports
    opt = loaded._optimizer
    for key, name in (("state_1", opt._state_arrays[0]), ("state_2", opt._state_arrays[-1])):
        if key in opt.update_args():
            assert opt.update_args()[key] is getattr(opt, name)
    # a shallow copy shares its arrays, as it did before they were aligned
    assert copy.copy(est._network).theta is est._network.theta
    assert copy.copy(opt).update_args()["state_1"] is opt.update_args()["state_1"]
    # warm start from the loaded model: the restored optimizer state
    loaded.set_params(warm_start=True, max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded.fit(X[:300], y[:300])
    _check_network(loaded)


def test_saved_models_load_on_lines(tmp_path):
    X, y = load_digits(return_X_y=True)
    for solver in ("sgd", "adam"):
        est = _fitted(lambda: MLPClassifier((21,), solver=solver, max_iter=2, random_state=0),
                      X[:200], y[:200])
        path = tmp_path / f"{solver}.fastbp"
        est.save(path)
        loaded = fastbp.load(path)
        _check_network(loaded)
        assert np.array_equal(loaded._network.theta, est._network.theta)


def test_rnn_buffers_start_a_line():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 7, 5)).astype(np.float32)
    y = rng.integers(0, 3, (40, 7))
    est = _fitted(lambda: RNNClassifier(hidden_size=19, output="sequence", max_iter=2,
                                        batch_size=8, random_state=0), X, y)
    _check_network(est)


def test_lenet_buffers_start_a_line():
    rng = np.random.default_rng(0)
    X = rng.random((24, 32, 32)).astype(np.float32)
    y = rng.integers(0, 3, 24)
    est = _fitted(lambda: LeNet5Classifier(max_iter=1, batch_size=8, random_state=0), X, y)
    _check_network(est)
