"""RNNClassifier / RNNRegressor: BPTT gradients, ragged input, shapes, errors."""
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

import fastbp
from fastbp import RNNClassifier, RNNRegressor, check_gradients


def _fit(est, X, y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y, **kwargs)


def _ragged(rng, lengths, n_features=3):
    return [rng.standard_normal((n, n_features)) for n in lengths]


LENGTHS = [5, 2, 4, 1, 5, 3]


def _numpy_loss(est, X, y, window=None, weights=None, states=None):
    """Independent NumPy forward pass and loss of an RNN estimator.

    With ``window`` the hidden state entering each window of that many steps
    is taken from ``window`` (a dict filled by a first full pass) and held
    constant: the loss whose exact gradient truncated BPTT computes.
    ``weights[i]`` weighs the predictions of sequence i (one weight per
    predicted step); in the L2 term a sequence weighs the mean of its
    weights. ``states``, a list, receives each sequence's hidden states.
    """
    p = {k: v.astype(np.float64) for k, v in est.parameters_.items()}
    f = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0),
         "logistic": lambda z: 1 / (1 + np.exp(-z))}[est.nonlinearity]
    per_step, totals, n_pred, sequence_weights = est.output == "sequence", 0.0, 0, 0.0
    for i, x in enumerate(X):
        h = np.zeros(est.hidden_size)
        outs, hs = [], []
        for t in range(len(x)):
            k = est.bptt_steps
            if window is not None and k and t % k == 0 and t > 0:
                h = window[(i, t)]
            h = f(x[t] @ p["weight_ih"] + h @ p["weight_hh"] + p["bias_h"])
            if window is not None and (i, t + 1) not in window:
                window[(i, t + 1)] = h.copy()
            outs.append(h @ p["weight_out"] + p["bias_out"])
            hs.append(h)
        if states is not None:
            states.append(np.array(hs))
        targets = y[i] if per_step else [y[i]]
        outs = outs if per_step else outs[-1:]
        w = np.ones(len(outs)) if weights is None else np.atleast_1d(weights[i])
        for z, target, w_t in zip(outs, targets, w):
            if isinstance(est, RNNClassifier):
                k = list(est.classes_).index(target)
                zmax = z.max()
                totals += w_t * (zmax + np.log(np.exp(z - zmax).sum()) - z[k])
            else:
                totals += w_t * np.mean((z - np.atleast_1d(target)) ** 2) / 2
            n_pred += w_t
        sequence_weights += np.mean(w)
    l2 = sum(np.sum(p[k] ** 2) for k in ("weight_ih", "weight_hh", "weight_out"))
    return totals / n_pred + est.alpha * l2 / (2 * sequence_weights)


@pytest.mark.parametrize("cls", [RNNClassifier, RNNRegressor])
@pytest.mark.parametrize("output", ["last", "sequence"])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "logistic"])
def test_loss_matches_numpy_and_gradients_match_central_differences(cls, output,
                                                                    nonlinearity):
    rng = np.random.default_rng(0)
    X = _ragged(rng, LENGTHS)
    if output == "last":
        y = np.arange(len(X)) % 3 if cls is RNNClassifier else rng.standard_normal(len(X))
    else:
        y = [rng.integers(0, 3, n) if cls is RNNClassifier else rng.standard_normal(n)
             for n in LENGTHS]
    est = _fit(cls(hidden_size=4, nonlinearity=nonlinearity, output=output, alpha=0.2,
                   max_iter=2, random_state=0), X, y)
    assert est.backprop(X, y).loss == pytest.approx(_numpy_loss(est, X, y), rel=1e-12)
    assert check_gradients(est, X, y) <= 1e-6


def test_gradients_with_sample_weight_and_multi_output_regression():
    rng = np.random.default_rng(1)
    X = _ragged(rng, LENGTHS)
    y = [rng.standard_normal((n, 2)) for n in LENGTHS]
    est = _fit(RNNRegressor(hidden_size=5, output="sequence", max_iter=2, random_state=0), X, y)
    sw = rng.random(len(X)) + 0.2
    assert check_gradients(est, X, y, sample_weight=sw) <= 1e-6
    assert est.predict(X)[0].shape == (5, 2)


@pytest.mark.parametrize("class_weight", ["balanced", {0: 0.3, 1: 2.0, 2: 1.0}], ids=repr)
def test_class_weight_weighs_every_step_by_its_class(class_weight):
    """output='sequence': step t of sequence i weighs sample_weight[i] *
    class_weight[y_it] ('balanced' counting steps so weighted); in the L2
    term a sequence weighs the mean of its steps' weights."""
    rng = np.random.default_rng(5)
    X = _ragged(rng, LENGTHS)
    y = [rng.integers(0, 3, n) for n in LENGTHS]
    sw = rng.uniform(0.5, 2.0, len(X))
    est = _fit(RNNClassifier(hidden_size=4, output="sequence", alpha=0.2, max_iter=2,
                             random_state=0, class_weight=class_weight), X, y, sample_weight=sw)
    steps, step_sw = np.concatenate(y), np.repeat(sw, LENGTHS)
    if class_weight == "balanced":
        per_class = step_sw.sum() / (3 * np.bincount(steps, weights=step_sw))
    else:
        per_class = np.array([0.3, 2.0, 1.0])
    weights = np.split(step_sw * per_class[steps], np.cumsum(LENGTHS)[:-1])
    expected = _numpy_loss(est, X, y, weights=weights)
    assert est.backprop(X, y, sample_weight=sw).loss == pytest.approx(expected, rel=1e-12)
    assert check_gradients(est, X, y, sample_weight=sw) <= 1e-6
    est.set_params(class_weight=None)
    assert est.backprop(X, y, sample_weight=sw).loss != pytest.approx(expected, rel=1e-6)


def test_early_stopping_holds_out_step_weights_with_their_sequences(monkeypatch):
    """The held-out sequences keep their steps' class weights, by which the
    validation accuracy is weighted, as the training loss is."""
    seen = []
    score = RNNClassifier._validation_score

    def spy(self, outputs, y, sample_weight):
        seen.append((outputs, y, sample_weight))
        return score(self, outputs, y, sample_weight)
    monkeypatch.setattr(RNNClassifier, "_validation_score", spy)
    rng = np.random.default_rng(6)
    lengths = rng.integers(1, 6, 40)
    X = _ragged(rng, lengths)
    y = [rng.integers(0, 2, n) for n in lengths]
    _fit(RNNClassifier(hidden_size=4, output="sequence", max_iter=2, random_state=0,
                       early_stopping=True, validation_fraction=0.25,
                       class_weight={0: 0.5, 1: 2.0}), X, y)
    outputs, y_val, weights = seen[0]  # one output and one weight per step
    assert len(y_val) == 10 and len(outputs) == sum(len(s) for s in y_val)
    expected = np.array([0.5, 2.0])[np.concatenate(y_val)]
    np.testing.assert_array_equal(weights, expected)


@pytest.mark.parametrize("cls", [RNNClassifier, RNNRegressor])
@pytest.mark.parametrize("output", ["last", "sequence"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_transform_is_the_hidden_state_the_output_layer_reads(cls, output, dtype):
    rng = np.random.default_rng(7)
    X = [x.astype(dtype) for x in _ragged(rng, LENGTHS)]
    if output == "last":
        y = np.arange(len(X)) % 3 if cls is RNNClassifier else rng.standard_normal(len(X))
    else:
        y = [rng.integers(0, 3, n) if cls is RNNClassifier else rng.standard_normal(n)
             for n in LENGTHS]
    est = _fit(cls(hidden_size=4, output=output, max_iter=2, random_state=0), X, y)
    states = []
    _numpy_loss(est, X, y, states=states)
    got = est.transform(X)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    if output == "last":  # the final state of each sequence
        assert got.shape == (len(X), 4) and got.dtype == dtype
        np.testing.assert_allclose(got, [h[-1] for h in states], rtol=tol, atol=tol)
    else:  # every step's state, shaped as the targets
        assert [g.shape for g in got] == [(n, 4) for n in LENGTHS]
        for g, h in zip(got, states):
            assert g.dtype == dtype
            np.testing.assert_allclose(g, h, rtol=tol, atol=tol)
        assert est.transform(rng.standard_normal((5, 3, 3))).shape == (5, 3, 4)
    assert list(est.get_feature_names_out()) == [f"{cls.__name__.lower()}{i}"
                                                 for i in range(4)]


def test_transform_to_pandas_needs_a_row_per_sequence():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(8)
    X = rng.standard_normal((10, 4, 2))
    last = _fit(RNNClassifier(hidden_size=3, max_iter=2), X, np.arange(10) % 2)
    out = last.set_output(transform="pandas").transform(X)
    assert isinstance(out, pd.DataFrame) and out.shape == (10, 3)
    np.testing.assert_array_equal(out.to_numpy(), last.set_output(transform="default")
                                  .transform(X))
    seq = _fit(RNNClassifier(hidden_size=3, max_iter=2, output="sequence"), X,
               rng.integers(0, 2, (10, 4)))
    assert seq.transform(X).shape == (10, 4, 3)
    with pytest.raises(ValueError, match="one row of hidden state per step"):
        seq.set_output(transform="pandas").transform(X)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_truncated_bptt_is_the_gradient_with_window_states_held(k):
    rng = np.random.default_rng(2)
    X = _ragged(rng, LENGTHS)
    y = [rng.integers(0, 3, n) for n in LENGTHS]
    est = _fit(RNNClassifier(hidden_size=4, output="sequence", bptt_steps=k, alpha=0.0,
                             max_iter=1, random_state=0), X, y)
    held = {}
    _numpy_loss(est, X, y, window=held)  # record the states entering each window
    analytic = est.backprop(X, y).gradients
    for name in ("weight_ih", "weight_hh", "bias_h"):
        param = est.parameters_[name]
        numeric = np.zeros_like(param)
        for idx in np.ndindex(*param.shape):
            saved = param[idx]
            param[idx] = saved + 1e-6
            up = _numpy_loss(est, X, y, window=dict(held))
            param[idx] = saved - 1e-6
            down = _numpy_loss(est, X, y, window=dict(held))
            param[idx] = saved
            numeric[idx] = (up - down) / 2e-6
        np.testing.assert_allclose(analytic[name], numeric, rtol=1e-6, atol=1e-9)
    full = RNNClassifier(hidden_size=4, output="sequence", alpha=0.0)
    full.__dict__.update({k_: v for k_, v in est.__dict__.items() if k_.endswith("_")
                          or k_.startswith("_")})
    full._network = est._network.astype(np.float64)
    full._network.bptt_steps = 0
    assert not np.allclose(full.backprop(X, y).gradients["weight_hh"], analytic["weight_hh"])


def test_padding_never_matters_and_shapes_follow_the_input():
    rng = np.random.default_rng(3)
    X = _ragged(rng, LENGTHS)
    y = [rng.integers(0, 3, n) for n in LENGTHS]
    est = _fit(RNNClassifier(hidden_size=6, output="sequence", max_iter=3, random_state=0),
               X, y)
    together = est.predict_proba(X)
    assert isinstance(together, list) and [p.shape for p in together] == [
        (n, 3) for n in LENGTHS]
    for seq, proba in zip(X, together):
        np.testing.assert_allclose(est.predict_proba([seq])[0], proba, rtol=1e-12)
    X3 = rng.standard_normal((4, 5, 3))
    assert est.predict(X3).shape == (4, 5)
    last = _fit(RNNClassifier(hidden_size=6, max_iter=2), X3, [0, 1, 0, 1])
    assert last.predict(X3).shape == (4,) and last.predict_proba(X3).shape == (4, 2)
    uni = _fit(RNNRegressor(hidden_size=6, max_iter=2), rng.standard_normal((8, 7)),
               rng.standard_normal(8))
    assert uni.predict(rng.standard_normal((3, 7))).shape == (3,)


@pytest.mark.parametrize("X,y,match", [
    ([np.zeros((3, 2)), np.zeros((0, 2))], [0, 1], "empty sequence"),
    ([np.zeros((3, 2)), np.zeros((4, 3))], [0, 1], "features per step"),
    ([np.zeros((3, 2)), np.zeros((4, 2))], [0, 1, 1], "targets"),
])
def test_bad_sequences_raise(X, y, match):
    with pytest.raises(ValueError, match=match):
        RNNClassifier(max_iter=1).fit(X, y)


@pytest.mark.parametrize("X,y,match", [
    # y as one array: its steps against each sequence's, the first mismatch named
    (np.zeros((4, 5, 2)), np.zeros((4, 6), int), r"^y\[0\] has 6 steps but X\[0\] has 5"),
    ([np.zeros((5, 2)), np.zeros((5, 2)), np.zeros((3, 2))], np.zeros((3, 5), int),
     r"^y\[2\] has 5 steps but X\[2\] has 3"),
    (np.zeros((4, 5, 2)), np.zeros((3, 5), int), r"^y holds 3 sequences, X holds 4\."),
    # y as a list of arrays
    (np.zeros((3, 5, 2)), [np.zeros(5, int), np.zeros(5, int), np.zeros(4, int)],
     r"^y\[2\] has 4 steps but X\[2\] has 5"),
    (np.zeros((3, 5, 2)), [np.zeros(5, int)] * 2, r"^y holds 2 sequences, X holds 3\."),
])
def test_per_step_targets_must_match_the_sequences(X, y, match):
    with pytest.raises(ValueError, match=match):
        RNNClassifier(output="sequence", max_iter=1).fit(X, y)


def test_per_step_targets_of_one_array_are_its_rows_in_order():
    # y given as an (n, t) or (n, t, k) array trains as the same targets given
    # as a list of per-sequence arrays
    rng = np.random.default_rng(4)
    X = rng.standard_normal((6, 5, 3))
    y = rng.integers(0, 3, (6, 5))
    params = dict(hidden_size=4, output="sequence", max_iter=3, random_state=0)
    a = _fit(RNNClassifier(**params), X, y)
    b = _fit(RNNClassifier(**params), X, list(y))
    np.testing.assert_array_equal(a._network.theta, b._network.theta)
    Y = rng.standard_normal((6, 5, 2))
    a = _fit(RNNRegressor(**params), X, Y)
    b = _fit(RNNRegressor(**params), X, [s for s in Y])
    np.testing.assert_array_equal(a._network.theta, b._network.theta)
    assert a.predict(X).shape == (6, 5, 2)


def test_sequence_targets_must_match_lengths_and_features_at_predict():
    X = [np.zeros((3, 2)), np.zeros((4, 2))]
    with pytest.raises(ValueError, match="steps"):
        RNNClassifier(output="sequence", max_iter=1).fit(X, [[0, 1, 0], [1, 0, 1]])
    est = _fit(RNNClassifier(hidden_size=3, max_iter=1), X, [0, 1])
    with pytest.raises(ValueError, match="features"):
        est.predict([np.zeros((3, 5))])


def test_clip_grad_norm_keeps_a_long_relu_rnn_finite():
    """Recurrent weights of gain 1.05 over 200 steps: the gradient explodes.
    Without clipping the weights become non-finite (a clear error); with it
    training stays finite."""
    rng = np.random.default_rng(4)
    X = np.abs(rng.standard_normal((16, 200, 2)))
    y = rng.standard_normal(16)

    def explosive(**extra):
        est = _fit(RNNRegressor(hidden_size=16, nonlinearity="relu", solver="sgd",
                                momentum=0.0, learning_rate_init=0.05, max_iter=1,
                                random_state=0, **extra), X, y)
        est.parameters_["weight_hh"][...] = 1.05 * np.eye(16)
        est.parameters_["weight_ih"][...] = np.abs(est.parameters_["weight_ih"])
        est.set_params(warm_start=True, max_iter=5)
        return est

    with pytest.raises(ValueError, match="non-finite"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            _fit(explosive(), X, y)
    est = _fit(explosive(clip_grad_norm=1.0), X, y)
    assert np.all(np.isfinite(est._network.theta)) and np.all(np.isfinite(est.predict(X)))


def test_learns_digits_as_sequences_and_round_trips(tmp_path):
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).reshape(-1, 8, 8)  # 8 steps of 8 pixels
    est = _fit(RNNClassifier(hidden_size=64, max_iter=40, random_state=0), X[:1400], y[:1400])
    assert est.score(X[1400:], y[1400:]) > 0.85
    est.save(tmp_path / "rnn.npz")
    loaded = fastbp.load(tmp_path / "rnn.npz")
    np.testing.assert_array_equal(loaded.predict(X[1400:]), est.predict(X[1400:]))


def test_float32_and_run_to_run_determinism():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((64, 10, 4)).astype(np.float32)
    y = (X[:, :, 0].sum(1) > 0).astype(int)
    a, b = (_fit(RNNClassifier(hidden_size=16, max_iter=3, random_state=0), X, y)
            for _ in range(2))
    assert a.parameters_["weight_hh"].dtype == np.float32
    np.testing.assert_array_equal(a._network.theta, b._network.theta)


@pytest.mark.parametrize("cls,output", [(RNNClassifier, "last"), (RNNRegressor, "sequence")])
def test_lbfgs_trains_on_ragged_sequences(cls, output):
    """solver='lbfgs' packs every sequence into one batch; its final loss is
    the loss backprop computes at the fitted parameters."""
    rng = np.random.default_rng(6)
    X = _ragged(rng, LENGTHS)
    if output == "last":
        y = np.arange(len(X)) % 2
    else:
        y = [rng.standard_normal(n) for n in LENGTHS]
    sw = rng.random(len(X)) + 0.5
    est = _fit(cls(hidden_size=4, output=output, solver="lbfgs", max_iter=20,
                   random_state=0), X, y, sample_weight=sw)
    assert est.n_iter_ >= 1 and est.loss_curve_[-1] < est.loss_curve_[0]
    assert est.loss_ == pytest.approx(est.backprop(X, y, sample_weight=sw).loss, rel=1e-12)


@pytest.mark.parametrize("uniform", [True, False], ids=["one-length", "ragged"])
@pytest.mark.parametrize("per_step", [True, False], ids=["sequence", "last"])
@pytest.mark.parametrize("weights", ["none", "sequence", "step"])
def test_packing_is_step_major_in_the_groups_order(uniform, per_step, weights):
    # Sequences of one length are packed by a shortcut (no sorting); written
    # out here element by element, both ways must give PyTorch's layout: row
    # t * B + b is step t of the b-th group, targets and weights alike.
    from fastbp._sequences import Ragged, StepWeights, pack

    rng = np.random.default_rng(11)
    n_seq, n_steps = 12, 5
    # a shorter sequence outside the groups makes X ragged, not the groups
    lengths = np.full(n_seq + (0 if uniform else 1), n_steps)
    if not uniform:
        lengths[-1] = 3
    X = Ragged(rng.normal(size=(lengths.sum(), 3)), lengths)
    assert X.uniform_length == (n_steps if uniform else 0)
    Y = Ragged(rng.normal(size=(lengths.sum() if per_step else len(lengths), 2)),
               lengths if per_step else np.ones(len(lengths), dtype=np.intp))
    sw = {"none": None, "sequence": rng.uniform(0.5, 2, size=len(lengths)),
          "step": StepWeights(rng.uniform(0.5, 2, size=lengths.sum()), lengths)}[weights]
    if weights == "step" and not per_step:
        return  # per-step weights need per-step targets (a ValueError)
    groups = rng.permutation(n_seq)[:7]
    batch, Yp, swp = pack(X, groups, Y, sw)
    B = len(groups)
    seqs = X.split()
    want = np.array([seqs[g][t] for t in range(n_steps) for g in groups])
    np.testing.assert_array_equal(batch.data, want)
    np.testing.assert_array_equal(batch.batch_sizes, np.full(n_steps, B))
    np.testing.assert_array_equal(batch.order, np.arange(B))
    np.testing.assert_array_equal(batch.data[batch.last_rows],
                                  [seqs[g][-1] for g in groups])
    np.testing.assert_array_equal(X.data[batch.step_rows], want)
    targets = Y.split()
    if per_step:
        np.testing.assert_array_equal(Yp, [targets[g][t] for t in range(n_steps) for g in groups])
    else:
        np.testing.assert_array_equal(Yp, [targets[g][0] for g in groups])
    if weights == "none":
        assert swp is None and batch.sequence_weight_sum == B
    elif weights == "sequence":
        np.testing.assert_array_equal(
            swp, [sw[g] for t in range(n_steps) for g in groups] if per_step else sw[groups])
        assert batch.sequence_weight_sum == sw[groups].sum()
    else:
        step_w = sw.split()
        np.testing.assert_array_equal(swp, [step_w[g][t] for t in range(n_steps) for g in groups])
        assert batch.sequence_weight_sum == sw.sequence_weights[groups].sum()


@pytest.mark.parametrize("per_step", [True, False], ids=["sequence", "last"])
def test_packing_into_reused_buffers_equals_packing_anew(per_step):
    # The training loop packs every batch into buffers allocated once per fit;
    # a batch must come out the same as when packed into fresh arrays, also
    # after a longer batch left other data in the buffers.
    from fastbp._sequences import Ragged, pack

    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 9, size=12)
    X = Ragged(rng.normal(size=(lengths.sum(), 3)), lengths)
    Y = Ragged(rng.normal(size=(lengths.sum() if per_step else 12, 2)),
               lengths if per_step else np.ones(12, dtype=np.intp))
    weights = rng.uniform(0.5, 2, size=12)
    buffers = X.batch_buffers(5, Y, weights)
    longest_first = np.argsort(-lengths)
    for groups in (longest_first[:5], longest_first[-5:], [7, 2], longest_first[:5]):
        fresh = pack(X, groups, Y, weights)
        reused = X.batch(groups, Y, weights, buffers)
        assert np.shares_memory(reused[0].data, buffers["data"])
        np.testing.assert_array_equal(reused[0].data, fresh[0].data)
        np.testing.assert_array_equal(reused[0].batch_sizes, fresh[0].batch_sizes)
        np.testing.assert_array_equal(reused[1], fresh[1])
        np.testing.assert_array_equal(reused[2], fresh[2])
        assert fresh[1].shape[0] == (fresh[0].data.shape[0] if per_step else len(groups))


def _train(est, X, y, how, **fit_params):
    """est trained by ``how``: 'fit', 'warm_start' (a second fit on the first)
    or 'partial_fit' (three calls)."""
    if how == "partial_fit":
        for _ in range(3):
            est.partial_fit(X, y, classes=np.arange(4), **fit_params)
        return est
    _fit(est, X, y, **fit_params)
    if how == "warm_start":
        est.set_params(warm_start=True)
        _fit(est, X, y, **fit_params)
    return est


@pytest.mark.parametrize("case", [
    dict(output="sequence", solver="sgd", class_weight="balanced", n_jobs=2, weighted=True),
    dict(output="sequence", solver="adam", early_stopping=True, validation_fraction=0.3),
    dict(output="sequence", solver="sgd", validation="given"),
    dict(output="sequence", solver="lbfgs", max_iter=6, weighted=True),
    dict(output="sequence", solver="sgd", how="warm_start"),
    dict(output="sequence", solver="adam", how="partial_fit"),
    dict(output="last", solver="adam", early_stopping=True, validation_fraction=0.3),
    dict(output="last", solver="sgd", class_weight={0: 2.0, 1: 0.5, 2: 1.0, 3: 1.5}),
], ids=lambda case: "-".join(str(v) for v in case.values()))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_training_on_class_codes_is_training_on_their_one_hot_rows(case, dtype, monkeypatch):
    # A multiclass RNNClassifier's loss reads each step's class, not its
    # one-hot row (_losses.softmax_ce_classes): every fit path gives the
    # bits of training on the one-hot rows, its record included.
    from fastbp._kernels import _losses
    from fastbp._targets import ClassifierTargetsMixin

    case = dict(case)
    how, validation = case.pop("how", "fit"), case.pop("validation", None)
    weighted = case.pop("weighted", False)
    rng = np.random.default_rng(21)
    lengths = rng.integers(1, 7, 30)
    X = [x.astype(dtype) for x in _ragged(rng, lengths)]
    per_step = case["output"] == "sequence"
    y = [rng.integers(0, 4, n) for n in lengths] if per_step else rng.integers(0, 4, 30)
    fit_params = {"sample_weight": rng.random(30) + 0.5} if weighted else {}
    if validation:
        fit_params.update(X_val=X[:8], y_val=y[:8])
    params = {**dict(hidden_size=5, max_iter=4, batch_size=8, random_state=0), **case}
    calls = []
    classes_loss = _losses.softmax_ce_classes

    def counted(*args):
        calls.append(1)
        return classes_loss(*args)
    monkeypatch.setattr(_losses, "softmax_ce_classes", counted)
    on_codes = _train(RNNClassifier(**params), X, y, how, **fit_params)
    assert calls, "the fit did not train on class codes"
    monkeypatch.setattr(RNNClassifier, "_training_targets",
                        ClassifierTargetsMixin._training_targets)
    calls.clear()
    on_rows = _train(RNNClassifier(**params), X, y, how, **fit_params)
    assert not calls
    np.testing.assert_array_equal(on_codes._network.theta, on_rows._network.theta)
    for name in ("loss_curve_", "loss_", "best_loss_", "validation_scores_",
                 "validation_loss_curve_", "best_validation_score_", "n_iter_"):
        assert getattr(on_codes, name, None) == getattr(on_rows, name, None), name


def test_per_step_classes_take_no_one_hot_matrix():
    # 20,000 steps of 500 classes: their one-hot rows would take 40 MB in
    # float32; the fit keeps each step's class, and batches of 10 sequences.
    import tracemalloc

    rng = np.random.default_rng(22)
    X = rng.standard_normal((400, 50)).astype(np.float32)  # univariate sequences
    y = rng.integers(0, 500, (400, 50))
    est = RNNClassifier(hidden_size=4, output="sequence", max_iter=1, batch_size=10,
                        random_state=0)
    tracemalloc.start()
    try:
        _fit(est, X, y)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(est.classes_) == 500
    assert peak < 400 * 50 * 500 * 4 / 4, f"{peak / 1e6:.1f} MB at the fit's peak"


def test_log_proba_of_sequence_outputs_with_squared_error():
    # the quadratic loss normalises sigmoid outputs: the log is taken of them
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 4, 2))
    est = _fit(RNNClassifier(hidden_size=4, max_iter=5, output="sequence",
                             loss="squared_error", random_state=0), X, rng.integers(0, 3, (20, 4)))
    log_proba = est.predict_log_proba(X)
    assert log_proba.shape == (20, 4, 3)
    np.testing.assert_allclose(np.exp(log_proba), est.predict_proba(X), rtol=1e-12)
    ragged = [X[0], X[1][:2]]
    for lp, p in zip(est.predict_log_proba(ragged), est.predict_proba(ragged)):
        np.testing.assert_allclose(np.exp(lp), p, rtol=1e-12)


def test_univariate_sequences_in_any_of_their_forms():
    rng = np.random.default_rng(0)
    seqs = [rng.standard_normal(n) for n in (3, 5, 4, 5)]
    est = _fit(RNNRegressor(hidden_size=4, max_iter=5, random_state=0), seqs,
               [0.0, 1.0, 2.0, 3.0])
    every = est.predict(seqs)
    np.testing.assert_array_equal(est.predict([seqs[0]]), every[:1])
    np.testing.assert_array_equal(est.predict([seqs[1], seqs[3]]), every[[1, 3]])
    np.testing.assert_array_equal(est.predict(np.stack([seqs[1], seqs[3]])), every[[1, 3]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.partial_fit([seqs[1], seqs[3]], [1.0, 3.0])  # one length: still sequences
    assert est.n_features_in_ == 1


def test_sequences_after_a_table_fit_forget_its_feature_names(tmp_path):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 30)
    est = RNNClassifier(hidden_size=4, max_iter=3, random_state=0)
    _fit(est, pd.DataFrame(rng.standard_normal((30, 6)), columns=[f"t{i}" for i in range(6)]), y)
    assert hasattr(est, "feature_names_in_")
    _fit(est, rng.standard_normal((30, 4, 2)), y)
    assert not hasattr(est, "feature_names_in_")
    est.save(tmp_path / "m.npz")
    fastbp.load(tmp_path / "m.npz")  # raised on the stale names


def test_an_object_array_of_sequences_reads_as_a_list():
    rng = np.random.default_rng(0)
    seqs = _ragged(rng, [3, 5, 2])
    held = np.empty(3, dtype=object)
    held[:] = seqs
    from_list = _fit(RNNClassifier(hidden_size=4, max_iter=2, random_state=0), seqs, [0, 1, 0])
    from_array = _fit(RNNClassifier(hidden_size=4, max_iter=2, random_state=0), held, [0, 1, 0])
    np.testing.assert_array_equal(from_array._network.theta, from_list._network.theta)
    np.testing.assert_array_equal(from_array.predict_proba(held), from_list.predict_proba(seqs))


def test_sequence_scores_check_the_length_of_sample_weight():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((12, 5, 2)), rng.integers(0, 2, (12, 5))
    est = _fit(RNNClassifier(hidden_size=4, max_iter=3, output="sequence", random_state=0), X, y)
    with pytest.raises(ValueError, match=r"sample_weight.shape == \(3,\), expected \(12,\)"):
        est.score(X, y, sample_weight=np.ones(3))


@pytest.mark.parametrize("cls", [RNNClassifier, RNNRegressor])
def test_partial_fit_documents_sequences(cls):
    doc = cls.partial_fit.__doc__
    assert "sequences, as for ``fit``" in doc and "sparse" not in doc


def test_an_object_array_of_equal_length_univariate_sequences_reads_as_a_list():
    rng = np.random.default_rng(0)
    seqs = [rng.standard_normal(5) for _ in range(12)]
    held = np.empty(12, dtype=object)
    held[:] = seqs
    y = np.arange(12.0)
    from_list = _fit(RNNRegressor(hidden_size=3, max_iter=2, random_state=0), seqs, y)
    from_array = _fit(RNNRegressor(hidden_size=3, max_iter=2, random_state=0), held, y)
    np.testing.assert_array_equal(from_array._network.theta, from_list._network.theta)
    np.testing.assert_array_equal(from_list.predict(held), from_list.predict(seqs))
