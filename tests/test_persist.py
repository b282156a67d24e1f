"""save/load: round trips, and hostile files that must fail cleanly."""
import io
import json
import pickle
import tracemalloc
import warnings
import zipfile

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

import fastbp
from fastbp import MLPClassifier, MLPRegressor


@pytest.fixture(scope="module")
def data():
    X, y = load_digits(return_X_y=True)
    return X[:300] / 16.0, y[:300]


def _fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def _targets(kind, y):
    if kind == "int":
        return y
    if kind == "str":
        return np.array(["cat", "dog", "eel"])[y % 3]
    if kind == "binary":
        return y % 2
    if kind == "multilabel":
        return np.c_[y % 2, y % 3 == 0, y > 4].astype(int)
    if kind == "regression":
        return np.c_[y, y ** 2].astype(float) / 10


CASES = [
    (MLPClassifier, "int", np.float64, "adam"),
    (MLPClassifier, "str", np.float32, "sgd"),
    (MLPClassifier, "binary", np.float64, "lbfgs"),
    (MLPClassifier, "multilabel", np.float32, "adam"),
    (MLPRegressor, "regression", np.float64, "sgd"),
]


@pytest.mark.parametrize("cls,kind,dtype,solver", CASES)
def test_round_trip_predicts_and_continues_identically(tmp_path, data, cls, kind, dtype,
                                                      solver):
    X, y = data
    X = X.astype(dtype)
    y = _targets(kind, y)
    est = _fit(cls(hidden_layer_sizes=(12,), solver=solver, max_iter=4, random_state=0), X, y)
    path = tmp_path / "model.npz"
    est.save(path)
    loaded = fastbp.load(path)
    assert type(loaded) is cls and loaded.get_params() == est.get_params()
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    assert loaded.loss_curve_ == est.loss_curve_ and loaded.n_iter_ == est.n_iter_
    assert loaded.coefs_[0].dtype == dtype
    if hasattr(est, "classes_"):
        np.testing.assert_array_equal(loaded.classes_, est.classes_)
        np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
    if solver != "lbfgs":  # optimizer state travels: continuing gives the same model
        loaded.partial_fit(X, y)
        est.partial_fit(X, y)
        np.testing.assert_array_equal(loaded._network.theta, est._network.theta)


@pytest.mark.parametrize("cls, sizes", [(MLPClassifier, (5, 3)), (MLPRegressor, (4,))])
def test_saved_hidden_layer_sizes_come_back_through_the_estimators_hook(
        data, tmp_path, monkeypatch, cls, sizes):
    X, y = data
    est = _fit(cls(hidden_layer_sizes=sizes, max_iter=2, random_state=0), X, y)
    est.save(tmp_path / "m.npz")
    assert fastbp.load(tmp_path / "m.npz").hidden_layer_sizes == sizes  # a tuple again
    # the hook, not persistence, knows the parameter: without it a list comes back
    monkeypatch.setattr(cls, "_params_from_json", classmethod(lambda c, params: params))
    assert fastbp.load(tmp_path / "m.npz").hidden_layer_sizes == list(sizes)


def test_pickle_and_joblib_keep_working(tmp_path, data):
    X, y = data
    est = _fit(MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0), X, y)
    joblib.dump(est, tmp_path / "m.joblib")
    for clone in (pickle.loads(pickle.dumps(est)), joblib.load(tmp_path / "m.joblib")):
        np.testing.assert_array_equal(clone.predict_proba(X), est.predict_proba(X))


@pytest.fixture(scope="module")
def model_bytes(data, tmp_path_factory):
    X, y = data
    est = _fit(MLPClassifier(hidden_layer_sizes=(6,), max_iter=2, random_state=0), X, y)
    path = tmp_path_factory.mktemp("m") / "model.npz"
    est.save(path)
    return path.read_bytes()


def _members(raw):
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        return {name: z.read(name) for name in z.namelist()}


def _npz(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, payload in members.items():
            z.writestr(name, payload)
    return buf.getvalue()


def _npy(array):
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def _meta(raw):
    return json.loads(np.load(io.BytesIO(_members(raw)["__meta__.npy"])).tobytes())


def _with_meta(raw, meta):
    members = _members(raw)
    members["__meta__.npy"] = _npy(np.frombuffer(json.dumps(meta).encode(), np.uint8))
    return _npz(members)


def _load_bytes(tmp_path, raw):
    path = tmp_path / "hostile.npz"
    path.write_bytes(raw)
    return fastbp.load(path)


def _edit(meta, **changes):
    meta = json.loads(json.dumps(meta))
    for dotted, value in changes.items():
        node = meta
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return meta


CRAFTED = {
    "unknown estimator": dict(estimator="os.system"),
    "future format": dict(format_version=99),
    "foreign format": dict(format="something-else"),
    "huge hidden layer": dict(params__hidden_layer_sizes=[10**9]),
    "bad hyperparameter": dict(params__activation="evil"),
    "extra hyperparameter": dict(params__command="rm -rf /"),
    "wrong dtype": dict(dtype="int64"),
    "huge input": dict(sample_shape=[10**9]),
    "wrong outputs": dict(n_outputs=3),
    "bad fitted type": dict(fitted__n_iter_="many"),
    "bad loss curve": dict(fitted__loss_curve_=["x"]),
    "bad classes": dict(target__y_type="continuous"),
    "class_weight pair without a weight": dict(params__class_weight=[[0]]),
    "class_weight keyed by a list": dict(params__class_weight=[[[0], 1.0]]),
    "class_weight of text": dict(params__class_weight=[[0, "heavy"]]),
    "optimizer kind of a list": dict(optimizer__kind=["adam"]),
    "unknown optimizer": dict(optimizer__kind="lbfgs"),
    "negative Adam step count": dict(optimizer__t=-1),
    "optimizer rate of text": dict(optimizer__learning_rate="fast"),
    "Adam step count past any float": dict(optimizer__t=10**400),
    "negative optimizer rate": dict(optimizer__learning_rate=-1.0),
    "infinite optimizer rate": dict(optimizer__learning_rate=float("inf")),
    "estimator name of a list": dict(estimator=["MLPClassifier"]),
    "random_state of text": dict(params__random_state="abc"),
    "random_state past 2**32": dict(params__random_state=2**40),
    "class_weight for a label not fitted": dict(params__class_weight=[[99, 2.0]]),
    "negative no-improvement count": dict(fitted__no_improvement_count=-1),
    "huge input shape": dict(sample_shape=[2**24, 2**24], fitted__n_features_in_=2**48),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_metadata_is_rejected(tmp_path, model_bytes, case):
    meta = _edit(_meta(model_bytes), **CRAFTED[case])
    tracemalloc.start()
    with pytest.raises(ValueError, match="not a valid fastbp model file"):
        _load_bytes(tmp_path, _with_meta(model_bytes, meta))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50 * 2**20  # no huge allocation before the check


def test_pickle_inside_and_wrong_arrays_are_rejected(tmp_path, model_bytes):
    members = _members(model_bytes)
    evil = dict(members)
    evil["theta.npy"] = _npy(np.array([object()], dtype=object))
    with pytest.raises(ValueError, match="not a valid fastbp model file"):
        _load_bytes(tmp_path, _npz(evil))
    for bad_theta in (np.zeros(5), np.zeros(10**4), np.zeros(7, dtype=np.int64),
                      np.full(_load_bytes(tmp_path, model_bytes)._network.theta.size, np.nan)):
        wrong = dict(members)
        wrong["theta.npy"] = _npy(bad_theta)
        with pytest.raises(ValueError, match="not a valid fastbp model file"):
            _load_bytes(tmp_path, _npz(wrong))
    no_meta = {k: v for k, v in members.items() if k != "__meta__.npy"}
    with pytest.raises(ValueError, match="no metadata"):
        _load_bytes(tmp_path, _npz(no_meta))


def test_deeply_nested_metadata_is_rejected(tmp_path, model_bytes):
    members = _members(model_bytes)
    members["__meta__.npy"] = _npy(np.frombuffer(b"[" * 100000 + b"]" * 100000, np.uint8))
    with pytest.raises(ValueError, match="not JSON"):
        _load_bytes(tmp_path, _npz(members))


def test_members_are_checked_before_they_are_read(tmp_path, model_bytes):
    members = _members(model_bytes)
    # a header claiming 2**36 floats over a few bytes, known name or not
    claim = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        claim, {"descr": "<f8", "fortran_order": False, "shape": (2**36,)})
    for name in ("theta.npy", "optimizer.velocity.npy", "junk.npy"):
        crafted = dict(members)
        crafted[name] = claim.getvalue() + bytes(64)
        tracemalloc.start()
        try:
            with pytest.raises(ValueError, match="not a valid fastbp model file"):
                _load_bytes(tmp_path, _npz(crafted))
            assert tracemalloc.get_traced_memory()[1] < 50 * 2**20
        finally:
            tracemalloc.stop()
    for name, payload in (("theta", members["theta.npy"]), ("junk.npy", _npy(np.zeros(3)))):
        crafted = dict(members)
        crafted[name] = payload  # a member that is not a known .npy array
        with pytest.raises(ValueError, match="unexpected member"):
            _load_bytes(tmp_path, _npz(crafted))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, payload in members.items():
            z.writestr(name, payload)
    with pytest.raises(ValueError, match="compressed"):
        _load_bytes(tmp_path, buf.getvalue())


def test_a_plain_npy_file_is_rejected(tmp_path):
    buf = io.BytesIO()
    np.save(buf, np.zeros(3))
    with pytest.raises(ValueError, match="not an .npz archive"):
        _load_bytes(tmp_path, buf.getvalue())
    buf.seek(0)
    with pytest.raises(ValueError, match="not an .npz archive"):
        fastbp.load(buf)


def test_tampered_optimizer_arrays_are_rejected(tmp_path, data):
    X, y = data
    est = _fit(MLPClassifier(hidden_layer_sizes=(6,), solver="adam", max_iter=2,
                             random_state=0), X, y)
    path = tmp_path / "adam.npz"
    est.save(path)
    members = _members(path.read_bytes())
    m2 = np.load(io.BytesIO(members["optimizer.m2.npy"]))
    for bad in (np.full_like(m2, np.nan), np.full_like(m2, -1.0)):
        crafted = dict(members)
        crafted["optimizer.m2.npy"] = _npy(bad)
        with pytest.raises(ValueError, match="malformed optimizer array m2"):
            _load_bytes(tmp_path, _npz(crafted))


def test_a_model_followed_by_more_data_in_a_stream(tmp_path, data, small_model):
    X, y = data
    other = _fit(MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, random_state=0), X,
                 y.astype(float))
    stream = io.BytesIO()
    stream.write(b"HDR")
    small_model.save(stream)
    other.save(stream)
    stream.seek(3)
    with pytest.raises(ValueError, match="not the last thing in the file"):
        fastbp.load(stream)
    stream = io.BytesIO()
    stream.write(b"HDR")
    small_model.save(stream)
    stream.seek(3)
    loaded = fastbp.load(stream)
    np.testing.assert_array_equal(loaded.predict_proba(X), small_model.predict_proba(X))


@pytest.mark.parametrize("cls", [MLPClassifier, fastbp.RNNRegressor])
def test_continuing_after_a_round_trip_counts_epochs_without_improvement(tmp_path, cls):
    rng = np.random.default_rng(0)
    if cls is MLPClassifier:
        X, y = rng.standard_normal((60, 4)), rng.integers(0, 3, 60)
        est = cls(hidden_layer_sizes=(6,), tol=10.0, n_iter_no_change=5, max_iter=3,
                  random_state=0)
    else:
        X = rng.standard_normal((20, 4, 2))
        y = X[:, :, 0].sum(1)
        est = cls(hidden_size=4, solver="sgd", tol=10.0, n_iter_no_change=5, max_iter=3,
                  random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
        assert est._no_improvement_count > 0
        path = tmp_path / "m.npz"
        est.save(path)
        loaded = fastbp.load(path)
        for model in (est, loaded):
            model.set_params(warm_start=True, max_iter=20).fit(X, y)
    assert loaded.n_iter_ == est.n_iter_
    np.testing.assert_array_equal(loaded._network.theta, est._network.theta)


def test_lenet_parameters_come_back_in_their_types(tmp_path):
    rng = np.random.default_rng(0)
    table = np.ones((6, 16), dtype=bool)
    est = fastbp.LeNet5Classifier(image_shape=(36, 40), connection_table=table, max_iter=1,
                                  random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(rng.random((10, 1440)), rng.integers(0, 2, 10))
    path = tmp_path / "lenet.npz"
    est.save(path)
    loaded = fastbp.load(path)
    assert loaded.image_shape == (36, 40)
    assert isinstance(loaded.connection_table, np.ndarray)
    np.testing.assert_array_equal(loaded.connection_table, table)


def test_non_finite_float_labels_are_rejected(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((30, 3)), rng.integers(0, 3, 30).astype(float)
    est = _fit(MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0), X, y)
    path = tmp_path / "float_labels.npz"
    est.save(path)
    members = _members(path.read_bytes())
    for bad in (np.array([0.0, np.nan, 2.0]), np.array([0.0, np.inf, 2.0])):
        crafted = dict(members)
        crafted["target.classes.npy"] = _npy(bad)
        with pytest.raises(ValueError, match="malformed class labels"):
            _load_bytes(tmp_path, _npz(crafted))


def test_foreign_and_truncated_files_are_rejected(tmp_path, model_bytes):
    for raw in (b"", b"\x89PNG\r\n\x1a\n" + bytes(100), pickle.dumps({"a": 1}),
                model_bytes[: len(model_bytes) // 2], model_bytes[:-1]):
        with pytest.raises(ValueError, match="not a valid fastbp model file"):
            _load_bytes(tmp_path, raw)
    with pytest.raises(FileNotFoundError):
        fastbp.load(tmp_path / "missing.npz")


def test_fuzz_thousands_of_corrupted_files(tmp_path, model_bytes, data):
    """Bit flips, truncations and insertions: a clean ValueError or a model that
    still predicts finite probabilities; never anything else."""
    X, _ = data
    rng = np.random.default_rng(0)
    n_rejected = 0
    path = tmp_path / "fuzz.npz"
    for i in range(2500):
        raw = bytearray(model_bytes)
        kind = i % 3
        if kind == 0:
            for _ in range(rng.integers(1, 4)):
                pos = rng.integers(len(raw))
                raw[pos] ^= 1 << int(rng.integers(8))
        elif kind == 1:
            raw = raw[: rng.integers(len(raw))]
        else:
            pos = rng.integers(len(raw))
            raw[pos:pos] = rng.bytes(int(rng.integers(1, 16)))
        path.write_bytes(bytes(raw))
        try:
            est = fastbp.load(path)
        except ValueError:
            n_rejected += 1
            continue
        assert np.all(np.isfinite(est.predict_proba(X[:5])))
    assert n_rejected > 2000


def test_padded_lenet_and_univariate_rnn_round_trip(tmp_path):
    """A LeNet fitted on 28x28 images (padded to a 32x32 input) and an RNN
    fitted on 2-D univariate sequences (n_features_in_ counts steps) load back."""
    rng = np.random.default_rng(0)
    cases = [(fastbp.LeNet5Classifier(max_iter=1, random_state=0),
              rng.random((6, 28, 28)), np.arange(6) % 2),
             (fastbp.RNNRegressor(hidden_size=3, max_iter=1, random_state=0),
              rng.standard_normal((8, 7)), rng.standard_normal(8))]
    for est, X, y in cases:
        _fit(est, X, y)
        est.save(tmp_path / "m.npz")
        loaded = fastbp.load(tmp_path / "m.npz")
        np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
        assert loaded.n_features_in_ == est.n_features_in_


@pytest.fixture(scope="module")
def small_model(data):
    X, y = data
    return _fit(MLPClassifier(hidden_layer_sizes=(6,), max_iter=2, random_state=0), X, y)


@pytest.mark.parametrize("name", ["model", "model.fbp", "model.npz", "dir.v2/model.bin"])
@pytest.mark.parametrize("as_path", [False, True], ids=["str", "Path"])
def test_saves_to_exactly_the_given_path_and_loads_from_it(tmp_path, data, small_model,
                                                           name, as_path):
    """No suffix is added (np.savez would append .npz), so the same name loads."""
    X, _ = data
    (tmp_path / name).parent.mkdir(exist_ok=True)
    path = tmp_path / name if as_path else str(tmp_path / name)
    small_model.save(path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")
                  if p.is_file()) == [name]
    loaded = fastbp.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), small_model.predict_proba(X))


def test_saves_to_and_loads_from_binary_file_objects(tmp_path, data, small_model):
    X, _ = data
    buf = io.BytesIO()
    small_model.save(buf)
    assert not buf.closed and buf.tell() > 0 and list(tmp_path.iterdir()) == []
    buf.seek(0)
    np.testing.assert_array_equal(fastbp.load(buf).predict_proba(X),
                                  small_model.predict_proba(X))
    path = tmp_path / "model.fbp"
    with open(path, "wb") as f:
        small_model.save(f)
        assert not f.closed  # the caller's file stays the caller's to close
    assert path.read_bytes() == buf.getvalue()
    assert [p.name for p in tmp_path.iterdir()] == ["model.fbp"]
    with open(path, "rb") as f:
        loaded = fastbp.load(f)
    np.testing.assert_array_equal(loaded.predict_proba(X), small_model.predict_proba(X))


def test_bad_file_objects_raise_value_error_naming_the_file(tmp_path, model_bytes):
    with pytest.raises(ValueError, match="not a valid fastbp model file"):
        fastbp.load(io.BytesIO(model_bytes[:-1]))
    path = tmp_path / "junk.fbp"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with open(path, "rb") as f, pytest.raises(ValueError, match="junk.fbp is not a valid"):
        fastbp.load(f)


def test_text_mode_file_objects_are_refused(tmp_path, small_model, model_bytes):
    path = tmp_path / "model.fbp"
    path.write_bytes(model_bytes)
    with open(path) as f, pytest.raises(ValueError, match=r"binary mode \('rb'\)"):
        fastbp.load(f)
    with open(tmp_path / "out.txt", "w") as f, \
            pytest.raises(ValueError, match=r"binary mode \('wb'\)"):
        small_model.save(f)
    assert (tmp_path / "out.txt").read_bytes() == b""
    with pytest.raises(ValueError, match="text-mode StringIO"):
        small_model.save(io.StringIO())


def test_lenet_fitted_on_images_whatever_its_image_shape_loads(tmp_path):
    # image_shape reads flat X only: 3-D images keep their own size
    rng = np.random.default_rng(0)
    est = fastbp.LeNet5Classifier(image_shape=(32, 32), max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(rng.random((20, 28, 28)), np.arange(20) % 2)
    est.save(tmp_path / "m.npz")
    loaded = fastbp.load(tmp_path / "m.npz")
    X = rng.random((3, 28, 28))
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))


def test_a_directory_is_not_a_model_file(tmp_path):
    with pytest.raises(ValueError, match="not a valid fastbp model file"):
        fastbp.load(tmp_path)
