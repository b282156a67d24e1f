"""predict's fast path (issue 15): a plain float ndarray skips sklearn's
input checks, a predict allocates no workspace after the first of its size,
and neither changes a single bit of what predict gives or raises."""
import threading
import warnings

import numpy as np
import pytest
import sklearn
from sklearn.exceptions import ConvergenceWarning

import fastbp
from fastbp import _network, _sequence_input, _sequences, lenet, mlp
from fastbp._threads import blas_single_thread

from _estimator_data import data

NAMES = ["MLPClassifier", "MLPRegressor", "LeNet5Classifier", "RNNClassifier",
         "RNNRegressor"]
CLASSIFIERS = {"MLPClassifier", "LeNet5Classifier", "RNNClassifier"}


def make(name, **params):
    params = {"max_iter": 2, "random_state": 0, "n_jobs": 2, **params}
    if name.startswith("MLP"):
        params = {"hidden_layer_sizes": (9, 5), **params}
    elif name.startswith("RNN"):
        params = {"hidden_size": 6, **params}
    return getattr(fastbp, name)(**params)


def targets(name, n, output="last"):
    if name in CLASSIFIERS:
        y = np.arange(n) % 3
    else:
        y = np.linspace(-1, 1, n)
    if output == "sequence":
        return np.repeat(y[:, None], 4, axis=1)
    return y


def fit(name, dtype, n=24, output=None, X=None):
    params = {} if output is None else {"output": output}
    X = data(name, n, dtype) if X is None else X
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return make(name, **params).fit(X, targets(name, len(X), output or "last"))


def outputs(est, X):
    """Every prediction method's result for X."""
    methods = ["predict", "predict_proba", "predict_log_proba", "transform"]
    return {m: getattr(est, m)(X) for m in methods if hasattr(est, m)}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        got, want = np.asarray(a[key]), np.asarray(b[key])
        assert got.dtype == want.dtype and got.shape == want.shape, key
        np.testing.assert_array_equal(got, want, err_msg=key)


@pytest.fixture
def checks_called(monkeypatch):
    """Count the calls of sklearn's input checks made by the estimators."""
    calls = []
    for module in (mlp, lenet, _sequence_input):
        for name in ("validate_data", "check_array"):
            real = getattr(module, name, None)
            if real is None:
                continue

            def spy(*args, _real=real, **kwargs):
                calls.append(_real)
                return _real(*args, **kwargs)
            monkeypatch.setattr(module, name, spy)
    return calls


def _slow_twins(name, X):
    """The same values as other input types, which take sklearn's checks."""
    if name.startswith("RNN"):
        return [list(X), X.tolist()]  # a list of sequences; nested lists
    return [X.tolist()]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 7])
def test_plain_array_skips_the_checks_and_predicts_the_same(name, dtype, n, checks_called):
    est = fit(name, dtype)
    X = data(name, n, dtype, seed=1)
    checks_called.clear()  # of fit
    fast = outputs(est, X)
    assert checks_called == [], "a plain float array went through sklearn's checks"
    for twin in _slow_twins(name, X):
        assert_same(fast, outputs(est, twin))
    assert checks_called, "the other input types must take the full checks"


@pytest.mark.parametrize("name", NAMES)
def test_other_float_dtype_and_layouts_are_read_as_before(name, checks_called):
    """float64 input to a float32 model is cast as the checks cast it;
    a Fortran-ordered or strided array is read as its contiguous copy."""
    est = fit(name, np.float32)
    X = data(name, 5, np.float64, seed=2)
    expected = outputs(est, X.tolist() if not name.startswith("RNN") else list(X))
    checks_called.clear()
    assert_same(outputs(est, X), expected)
    assert_same(outputs(est, np.asfortranarray(X)), expected)
    wide = np.repeat(X, 2, axis=-1)[..., ::2]  # the same values, strided
    assert not wide.flags.c_contiguous
    assert_same(outputs(est, wide), expected)
    assert checks_called == []


@pytest.mark.parametrize("name", ["LeNet5Classifier"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lenet_layouts_take_the_fast_path(name, dtype, checks_called):
    est = fit(name, dtype)
    images = data(name, 3, dtype, seed=3)
    expected = outputs(est, images.tolist())
    checks_called.clear()
    for X in (images, images.reshape(3, 784), images[:, None]):
        assert_same(outputs(est, X), expected)
    assert checks_called == []


@pytest.mark.parametrize("name", ["RNNClassifier", "RNNRegressor"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rnn_sequence_output_and_tables_take_the_fast_path(name, dtype, checks_called):
    est = fit(name, dtype, output="sequence")
    X = data(name, 5, dtype, seed=4)
    checks_called.clear()  # of fit
    fast = outputs(est, X)
    assert checks_called == []
    assert_same(fast, outputs(est, list(X)))
    # a model fitted on a table of univariate sequences (n_sequences, n_steps)
    table = data(name, 24, dtype)[:, :, 0]
    est = fit(name, dtype, X=table)
    checks_called.clear()
    fast = outputs(est, table[:3])
    assert checks_called == []
    assert_same(fast, outputs(est, table[:3].tolist()))
    # 3-D input with one feature is read as the same table
    assert_same(outputs(est, table[:3, :, None]), fast)


@pytest.mark.parametrize("name", ["MLPClassifier", "LeNet5Classifier", "RNNRegressor"])
def test_many_rows_in_several_chunks(name):
    """More rows than one chunk of the forward pass (8192 rows of this
    narrow MLP, 1024 images, 512 sequences): the same as the checked path,
    chunk by chunk."""
    est = fit(name, np.float32)
    n = 9000 if name.startswith("MLP") else 600 if name.startswith("RNN") else 1030
    X = data(name, n, np.float32, seed=5)
    slow = list(X) if name.startswith("RNN") else X.tolist()
    assert_same(outputs(est, X), outputs(est, slow))


def test_fitted_on_a_dataframe_still_warns_for_an_array():
    pd = pytest.importorskip("pandas")
    X = data("MLPClassifier", 24, np.float64)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = make("MLPClassifier").fit(frame, targets("MLPClassifier", 24))
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        proba = est.predict_proba(X[:2])
    np.testing.assert_array_equal(proba, est.predict_proba(frame[:2]))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", ["small", "large"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_arrays_raise_as_before(name, size, bad):
    """Small arrays are checked element by element, large ones (over 65,536
    values) in one pass of the team: either way the error is sklearn's."""
    est = fit(name, np.float32)
    n = 3 if size == "small" else 100 if name.startswith("LeNet") else 10000
    X = data(name, n, np.float32, seed=6)
    assert (X.size > 1 << 16) == (size == "large")
    X.reshape(-1)[-1] = bad
    with pytest.raises(ValueError, match="Input X contains (NaN|infinity)"):
        est.predict(X)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("where", [0, 65535, 65536, "last"])
def test_a_large_non_finite_array_raises_wherever_the_value_is(order, where):
    """The large-array check covers every unit of its pass, in either layout."""
    est = fit("MLPClassifier", np.float64)
    X = np.asarray(data("MLPClassifier", 10000, np.float64, seed=7), order=order)
    X.ravel(order="K")[-1 if where == "last" else where] = np.inf  # a view: X is contiguous
    with pytest.raises(ValueError, match="Input X contains infinity"):
        est.predict(X)


def test_a_sum_that_overflows_is_not_an_error():
    """Finite values whose sum overflows pass the checks, as they always did."""
    est = fit("MLPRegressor", np.float32)
    X = np.full((20000, 7), 3e34, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # nor does it warn
        got = est.predict(X)
    np.testing.assert_array_equal(got, est.predict(X.tolist()))


def test_assume_finite_lets_nan_through_as_before():
    est = fit("MLPRegressor", np.float64)
    X = data("MLPRegressor", 2, np.float64)
    X[0, 0] = np.nan
    with sklearn.config_context(assume_finite=True):
        got = est.predict(X)
        np.testing.assert_array_equal(got, est.predict(X.tolist()))


@pytest.mark.parametrize("name", NAMES)
def test_a_predict_allocates_no_workspace_after_the_first(name, monkeypatch):
    est = fit(name, np.float32)
    net = est._network
    made = []
    real = type(net).workspace

    def counting(self, *args, **kwargs):
        made.append(args)
        return real(self, *args, **kwargs)
    monkeypatch.setattr(type(net), "workspace", counting)
    X = data(name, 3, np.float32, seed=7)
    first = est.predict(X)
    assert len(made) == 1
    for n in (3, 4, 3):  # the same power-of-two capacity
        est.predict(data(name, n, np.float32, seed=n))
    np.testing.assert_array_equal(est.predict(X), first)
    assert len(made) == 1


@pytest.mark.parametrize("name", NAMES)
def test_concurrent_predicts_of_different_inputs_keep_their_own_workspaces(name):
    """Eight threads predict different inputs of the same capacity at once:
    each gets what it gets alone (a workspace lent to two calls at once
    would mix their rows)."""
    est = fit(name, np.float32)
    inputs = [data(name, 5 + i % 4, np.float32, seed=10 + i) for i in range(8)]
    expected = [est.predict(X) for X in inputs]
    barrier = threading.Barrier(8)
    results, errors = [None] * 8, []

    def work(i):
        try:
            barrier.wait()
            results[i] = [est.predict(inputs[i]) for _ in range(20)]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    for want, got in zip(expected, results):
        for g in got:
            np.testing.assert_array_equal(g, want)


@pytest.mark.parametrize("name", ["RNNClassifier", "RNNRegressor"])
@pytest.mark.parametrize("output", ["last", "sequence"])
def test_uniform_packing_is_the_general_packing(name, output):
    """Sequences of one length are packed without sorting: the same rows
    and step sizes as the general packing, so the same predictions to the
    bit as the network gave through it."""
    est = fit(name, np.float32, output=output)
    net = est._network
    X = est._check_X(data(name, 700, np.float32, seed=8))
    for start, stop in [(0, 1), (3, 9), (0, 512), (512, 700)]:
        want, _, _ = _sequences.pack(X, np.arange(start, stop))
        got = _sequences.pack_uniform(X, start, stop)
        np.testing.assert_array_equal(got.data, want.data)
        np.testing.assert_array_equal(got.batch_sizes, want.batch_sizes)
        np.testing.assert_array_equal(got.data[got.last_rows], want.data[want.last_rows])
    # the network's outputs against the general packing's, batch by batch
    expected = np.empty((len(X) if output == "last" else X.data.shape[0], net.n_outputs),
                        dtype=net.dtype)
    for start in range(0, len(X), 512):
        groups = np.arange(start, min(start + 512, len(X)))
        batch, _, _ = _sequences.pack(X, groups)
        ws = net.workspace(batch.data.shape[0], backward=False)
        with blas_single_thread():
            z = net.forward(batch, ws, 1)[-1]
        if output == "last":
            expected[groups[batch.order]] = z
        else:
            expected[batch.step_rows] = z
    np.testing.assert_array_equal(net.predict(X, 2, logits=True), expected)


def test_prediction_workspaces_are_not_pickled():
    import pickle

    est = fit("MLPClassifier", np.float32)
    est.predict(data("MLPClassifier", 3, np.float32))
    assert est._network in _network._PREDICTION_WORKSPACES
    size = len(pickle.dumps(est))
    del _network._PREDICTION_WORKSPACES[est._network]
    assert len(pickle.dumps(est)) == size


@pytest.mark.parametrize("y_kind", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_labels_are_decoded_as_label_binarizer_decodes_them(y_kind, dtype, monkeypatch):
    """predict reads labels off the outputs as LabelBinarizer.inverse_transform
    does (first largest output; logistic output over 0.5), ties and NaN
    included, without its checks; multilabel output still goes through it."""
    X = data("MLPClassifier", 30, dtype)
    if y_kind == "multilabel":
        y = (X[:, :3] > 0).astype(int)
    else:
        names = np.array(["cat", "dog", "emu"])
        y = names[np.arange(30) % (2 if y_kind == "binary" else 3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = make("MLPClassifier").fit(X, y)
    binarizer = est._label_binarizer
    rng = np.random.default_rng(3)
    y_pred = rng.random((40, est.n_outputs_)).astype(dtype)
    y_pred[:5] = 0.5  # ties, and the logistic threshold itself
    y_pred[5, -1] = np.nan
    y_pred[6] = np.nan
    expected = binarizer.inverse_transform(y_pred.ravel() if est.n_outputs_ == 1 else y_pred)
    calls = []
    real = type(binarizer).inverse_transform
    monkeypatch.setattr(type(binarizer), "inverse_transform",
                        lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    got = est._decode(y_pred.copy())
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)
    assert bool(calls) == (y_kind == "multilabel")
    raw = est._network.predict(X, 1)
    np.testing.assert_array_equal(
        est.predict(X), real(binarizer, raw.ravel() if est.n_outputs_ == 1 else raw))


def test_a_workspace_too_large_to_keep_is_not_kept(monkeypatch):
    est = fit("MLPClassifier", np.float32)
    net = est._network
    row_bytes = _network._workspace_bytes(net.workspace(1, backward=False))
    monkeypatch.setattr(_network, "_KEPT_BYTES", 8 * row_bytes)
    small, large = data("MLPClassifier", 5, np.float32), data("MLPClassifier", 9, np.float32)
    expected = est.predict_proba(large)
    _network._PREDICTION_WORKSPACES.pop(net, None)
    est.predict_proba(small)  # a capacity of 8 rows: kept
    np.testing.assert_array_equal(est.predict_proba(large), expected)  # 16 rows: not kept
    assert set(_network._PREDICTION_WORKSPACES[net]) == {8}


@pytest.mark.parametrize("name", NAMES)
def test_predict_limits_blas_only_where_the_kernels_call_it(name, dispatch_path, monkeypatch):
    """Every prediction method reads BLAS's thread count (to hold it to one)
    on the portable path, whose products go through BLAS, and never on the
    others, which make no BLAS call in a forward pass; the outputs are those
    of a forward pass under the limit."""
    from fastbp import _threads

    est = fit(name, np.float32)
    X = data(name, 5, np.float32, seed=3)
    reads = []
    monkeypatch.setattr(_threads, "_blas_thread_counts",
                        lambda: [(lambda: reads.append(1) or 1, lambda n: None)])
    got = outputs(est, X)
    assert bool(reads) == (dispatch_path == "portable")
    monkeypatch.undo()
    with blas_single_thread():
        assert_same(outputs(est, X), got)
