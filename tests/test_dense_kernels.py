"""Dense kernels against their NumPy twins, float32 against float64, and
independence from the thread count."""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from fastbp._kernels import _chain, _dense, _losses, _optimizers, _sparse
from fastbp._threads import blas_single_thread

import _twins_dense as twin

ACTS = ["identity", "logistic", "tanh", "relu", "lecun_tanh"]
LOSSES = ["softmax_ce", "logistic_ce", "squared", "squared_logistic", "poisson"]
# (m, k, n); the last three are large enough to be split over threads: by
# rows (m > n), by columns (n > m), and with so many rows that the weight
# gradient is summed over row groups.
# (1600, 65, 128): a weight gradient cut into blocks of columns (n > k);
# (3000, 20, 520): row groups, with the bias gradient in two blocks of columns.
# (32, 120, 84): LeNet-5's F6 at batch 32, whose backward products are one
# block each, run side by side on two threads.
# (2, 784, 256): a predict of two rows through a large layer, split in two
# blocks of columns below PARALLEL_MIN_FLOPS (the delta below as well).
SHAPES = [(1, 1, 1), (7, 5, 3), (64, 33, 17), (130, 70, 40), (300, 90, 45), (24, 300, 250),
          (2100, 30, 20), (1600, 65, 128), (3000, 20, 520), (32, 120, 84), (2, 784, 256)]


def _logits_and_classes(rng, m, n, spread, dtype):
    """m rows of n normal logits times ``spread``, and one-hot targets of
    random classes, in ``dtype``."""
    Z = (rng.standard_normal((m, n)) * spread).astype(dtype)
    return Z, np.eye(n, dtype=dtype)[rng.integers(0, n, m)]


def _rand(rng, *shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_dense_forward_matches_twin(act, m, k, n):
    rng = np.random.default_rng(0)
    A, W, b = _rand(rng, m, k), _rand(rng, k, n), _rand(rng, n)
    out = np.empty((m, n))
    _dense.dense_forward(A, W, b, out, _dense.ACTIVATION_CODES[act], 2)
    np.testing.assert_allclose(out, twin.dense_forward(A, W, b, act), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("want_delta_in", [True, False])
def test_dense_backward_matches_twin(act, m, k, n, want_delta_in):
    rng = np.random.default_rng(1)
    A = twin.activate(_rand(rng, m, k), act)
    W, delta = _rand(rng, k, n), _rand(rng, m, n)
    gW, gb = np.full((k, n), np.nan), np.full(n, np.nan)
    d_in = np.full((m, k), np.nan) if want_delta_in else None
    _dense.dense_backward(A, W, delta, gW, gb, d_in, _dense.ACTIVATION_CODES[act], 2)
    eW, eb, ed = twin.dense_backward(A, W, delta, act, want_delta_in)
    np.testing.assert_allclose(gW, eW, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gb, eb, rtol=1e-12, atol=1e-12)
    if want_delta_in:
        np.testing.assert_allclose(d_in, ed, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize("weighted", [False, True])
def test_output_loss_delta_matches_twin(kind, weighted):
    rng = np.random.default_rng(2)
    n, k = 50, 4
    Z = _rand(rng, n, k) * 3
    if kind == "softmax_ce":
        Y = np.eye(k)[rng.integers(0, k, n)]
    elif kind == "poisson":
        Y = rng.poisson(2.0, (n, k)).astype(float)
    elif kind == "squared":
        Y = _rand(rng, n, k)
    else:
        Y = (rng.random((n, k)) > 0.5).astype(float)
    sw = rng.random(n) + 0.5 if weighted else None
    P_exp, loss_exp, d_exp = twin.output_loss_delta(Z, Y, sw, kind, 1 / 7)
    Zk, d = Z.copy(), np.empty_like(Z)
    loss = _losses.output_loss_delta(Zk, Y, sw, d, _losses.LOSS_CODES[kind], 1 / 7, 2)
    np.testing.assert_allclose(Zk, P_exp, rtol=1e-12)
    np.testing.assert_allclose(loss, loss_exp, rtol=1e-12)
    np.testing.assert_allclose(d, d_exp, rtol=1e-12, atol=1e-15)
    Za = Z.copy()
    _losses.output_activate(Za, _losses.LOSS_CODES[kind], 2)
    np.testing.assert_allclose(Za, P_exp, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 7, 8, 9, 16, 65])
@pytest.mark.parametrize("weighted", [False, True])
def test_softmax_cross_entropy_matches_twin_on_every_path(dtype, n, weighted, dispatch_path):
    # The row maxima and sums run 8 lanes at a time, the exponentials 32 rows
    # at a time: widths below, at and past a vector, and 70 rows (two chunks
    # and a part) on one thread and on two.
    rng = np.random.default_rng(12)
    m = 70
    Z, Y = _logits_and_classes(rng, m, n, 3, dtype)
    Y[::5] *= 0.5  # sum(y) != 1 scales p in the delta
    sw = (rng.random(m) + 0.5).astype(dtype) if weighted else None
    P_exp, loss_exp, d_exp = twin.output_loss_delta(
        Z.astype(np.float64), Y.astype(np.float64), None if sw is None else sw.astype(np.float64),
        "softmax_ce", 1 / 9, clip_eps=np.finfo(dtype).eps)
    rtol, atol = (2e-6, 1e-7) if dtype == np.float32 else (1e-12, 1e-15)
    for n_threads in (1, 2):
        Zk, d = Z.copy(), np.full_like(Z, np.nan)
        loss = _losses.output_loss_delta(Zk, Y, sw, d, _losses.LOSS_CODES["softmax_ce"], 1 / 9,
                                         n_threads)
        np.testing.assert_allclose(Zk, P_exp, rtol=rtol, atol=atol)
        np.testing.assert_allclose(d, d_exp, rtol=rtol, atol=atol)
        assert loss == pytest.approx(loss_exp, rel=rtol)
        Zp = Z.copy()
        _losses.output_activate(Zp, _losses.LOSS_CODES["softmax_ce"], n_threads)
        np.testing.assert_array_equal(Zp, Zk)  # predict's softmax is training's


def _softmax_both_ways(Z, Y, sw, scale):
    """Training's softmax outputs of logits Z (probabilities, delta, loss)
    and predict's probabilities, on two threads."""
    code = _losses.LOSS_CODES["softmax_ce"]
    P, d = Z.copy(), np.empty_like(Z)
    loss = _losses.output_loss_delta(P, Y, sw, d, code, scale, 2)
    Pp = Z.copy()
    _losses.output_activate(Pp, code, 2)
    return P, d, loss, Pp


def _lane_sums(Y):
    """Each row's sum as the softmax kernels take it: 8 interleaved partial
    sums from zero, combined in lane order, then the last n % 8 elements in
    order (every step rounded in Y's dtype)."""
    m, n = Y.shape
    body = n - n % 8
    lanes = np.zeros((m, 8), Y.dtype)
    for j in range(0, body, 8):
        lanes += Y[:, j:j + 8]
    total = np.zeros(m, Y.dtype)
    for l in range(8):
        total += lanes[:, l]
    for j in range(body, n):
        total += Y[:, j]
    return total


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [3, 8, 13, 65])
def test_softmax_delta_is_exact_given_the_probabilities(dtype, n, dispatch_path):
    # delta = w (sum(y) p - y), w = scale * sw, sum(y) in the kernels' lane
    # order, each step rounded, no fused multiply-add: the same bits on every
    # path, from the path's own probabilities. Targets that are no one-hot
    # rows make the order of sum(y) show; 300 rows are cut into several
    # units of the team on two threads.
    rng = np.random.default_rng(14)
    m = 300
    Z = (rng.standard_normal((m, n)) * 3).astype(dtype)
    Y = (rng.random((m, n)) * np.geomspace(1e-3, 1e3, n)).astype(dtype)
    Y[::3] = np.eye(n, dtype=dtype)[rng.integers(0, n, len(Y[::3]))]
    sw = (rng.random(m) + 0.5).astype(dtype)
    scale = 1 / 7
    for weights in (None, sw):
        for n_threads in (1, 2):
            P, d = Z.copy(), np.empty_like(Z)
            _losses.output_loss_delta(P, Y, weights, d, _losses.LOSS_CODES["softmax_ce"], scale,
                                      n_threads)
            w = np.full(m, dtype(scale)) if weights is None else dtype(scale) * weights
            expected = w[:, None] * (_lane_sums(Y)[:, None] * P - Y)
            np.testing.assert_array_equal(d, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_non_finite_row_of_logits_stays_in_its_row(dtype, dispatch_path):
    # NaN first (the row's max is NaN) or later (the max passes it over),
    # +inf, a row of -inf: that row's outputs are NaN, every other row's the
    # same bits as without it, in training and in predict.
    rng = np.random.default_rng(15)
    m, n = 40, 17
    Z, Y = _logits_and_classes(rng, m, n, 3, dtype)
    clean = _softmax_both_ways(Z, Y, None, 1.0)
    bad = Z.copy()
    bad[3, 0] = np.nan
    bad[9, 11] = np.nan
    bad[20, 5] = np.inf
    bad[33] = -np.inf
    outputs = _softmax_both_ways(bad, Y, None, 1.0)
    for out, ref in zip(outputs[:2] + outputs[3:], clean[:2] + clean[3:]):
        for i in range(m):
            if i in (3, 9, 20, 33):
                assert np.isnan(out[i]).all()
            else:
                np.testing.assert_array_equal(out[i], ref[i])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 7, 8, 9, 65])
def test_softmax_of_class_codes_is_that_of_their_one_hot_rows(dtype, n, dispatch_path):
    # The RNN classifier's targets as classes: the outputs, delta and loss
    # have the one-hot rows' bits, with weights and without, on one thread
    # and on two (rows for three units of the team and a part), with rows
    # whose loss is clipped to -log(eps) and non-finite rows among them
    # (NaN then everywhere in the row and in the loss).
    rng = np.random.default_rng(16)
    m = 3 * (8192 // n) + 37  # a unit: 8192 elements (TEAM_UNIT_ELEMENTS, _team.pxd)
    Z, Y = _logits_and_classes(rng, m, n, 3, dtype)
    classes = Y.argmax(axis=1).astype(np.int32)
    Z[7, 0], Z[40, n - 1], Z[99] = np.nan, np.inf, -np.inf
    if n > 1:
        Z[120, classes[120]] = -np.inf  # lse - z = inf
        Z[130], Z[130, classes[130]] = 0, -60  # lse - z = 60 + log(n), past -log(eps)
    sw = (rng.random(m) + 0.5).astype(dtype)
    code = _losses.LOSS_CODES["softmax_ce"]
    finite = np.setdiff1d(np.arange(m), [7, 40, 99])
    for weights in (None, sw):
        for rows in (np.arange(m), finite):
            w = None if weights is None else weights[rows]
            for n_threads in (1, 2):
                P, d = Z[rows], np.full_like(Z[rows], 7)
                loss = _losses.output_loss_delta(P, Y[rows], w, d, code, 1 / 9, n_threads)
                Pc, dc = Z[rows], np.full_like(Z[rows], 7)
                loss_c = _losses.softmax_ce_classes(Pc, classes[rows], w, dc, 1 / 9, n_threads)
                np.testing.assert_array_equal(Pc, P)
                np.testing.assert_array_equal(dc, d)
                if len(rows) == m:
                    assert np.isnan(loss) and np.isnan(loss_c)
                else:
                    assert loss_c == loss and np.isfinite(loss)


def test_class_codes_are_read_before_the_rows_they_share_memory_with():
    # Codes that sit in the delta the kernel writes: the result of codes
    # kept apart (the kernel reads a copy, checked, not the caller's array).
    rng = np.random.default_rng(18)
    Z, Y = _logits_and_classes(rng, 40, 8, 3, np.float32)
    codes = Y.argmax(axis=1).astype(np.int32)
    P, d = Z.copy(), np.empty_like(Z)
    loss = _losses.softmax_ce_classes(P, codes, None, d, 1.0, 2)
    Ps, ds = Z.copy(), np.zeros_like(Z)
    shared = ds.reshape(-1).view(np.int32)[-40:]
    shared[:] = codes
    assert _losses.softmax_ce_classes(Ps, shared, None, ds, 1.0, 2) == loss
    np.testing.assert_array_equal(Ps, P)
    np.testing.assert_array_equal(ds, d)


@pytest.mark.parametrize("bad,match", [
    (lambda c: c[:-1], "classes"), (lambda c: c.astype(np.int64), "Buffer dtype"),
    (lambda c: np.where(np.arange(len(c)) == 3, 5, c).astype(np.int32), r"class 5 of row 3"),
    (lambda c: np.where(np.arange(len(c)) == 0, -1, c).astype(np.int32), r"class -1 of row 0")])
def test_class_codes_out_of_place_raise(bad, match):
    rng = np.random.default_rng(17)
    Z, Y = _logits_and_classes(rng, 6, 5, 1, np.float64)
    classes = Y.argmax(axis=1).astype(np.int32)
    d = np.zeros_like(Z)
    with pytest.raises(ValueError, match=match):
        _losses.softmax_ce_classes(Z, bad(classes), None, d, 1.0, 1)
    assert not d.any()  # checked before any row is touched
    with pytest.raises(ValueError, match=r"class 0 of row 0 is not in \[0, 0\)"):
        _losses.softmax_ce_classes(Z[:, :0], classes * 0, None, d[:, :0], 1.0, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,k,n", [(5, 3, 1), (40, 3, 31), (40, 3, 32), (40, 3, 33), (40, 3, 63),
                                   (40, 3, 64), (40, 3, 65), (33, 0, 130), (3000, 20, 520),
                                   (1600, 65, 128), (32, 120, 84)])
def test_bias_gradient_adds_rows_in_order(dtype, m, k, n, dispatch_path):
    # grad_b is each column's sum, rows added in order from zero on every
    # path (the columns of a pass sit in vector registers; a bias gradient
    # of several blocks sums each block's columns): the bits of adding the
    # rows one by one. k = 0: no weights, the bias gradient alone.
    rng = np.random.default_rng(13)
    A, W = _rand(rng, m, k, dtype=dtype), _rand(rng, k, n, dtype=dtype)
    delta = (_rand(rng, m, n, dtype=dtype) * np.geomspace(1e-3, 1e3, m)[:, None]).astype(dtype)
    expected = np.zeros(n, dtype)
    for row in delta:
        expected += row
    for want_delta_in in (False, True):
        gW, gb = np.empty((k, n), dtype), np.full(n, np.nan, dtype)
        d_in = np.empty((m, k), dtype) if want_delta_in else None
        _dense.dense_backward(A, W, delta, gW, gb, d_in, 0, 2)
        np.testing.assert_array_equal(gb, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["softmax_ce", "logistic_ce"])
def test_cross_entropy_clips_probabilities_as_sklearn_log_loss(kind, dtype):
    # sklearn's own loss functions are the reference: probabilities clipped to
    # [eps, 1 - eps] with eps of their dtype. Half the logits are far enough out
    # that clipping decides the loss (a saturated wrong row costs -log(eps),
    # not |z|), half moderate, where nothing is clipped.
    from sklearn.neural_network._base import binary_log_loss, log_loss
    rng = np.random.default_rng(11)
    n, k = 200, 4 if kind == "softmax_ce" else 3
    far = 30.0 if dtype == np.float32 else 60.0
    Z = np.where(rng.random((n, k)) < 0.5, rng.normal(size=(n, k)),
                 far * rng.choice([-1.0, 1.0], size=(n, k))).astype(dtype)
    if kind == "softmax_ce":
        Y = np.eye(k, dtype=dtype)[rng.integers(0, k, n)]
    else:
        Y = (rng.random((n, k)) < 0.5).astype(dtype)
    sw = (rng.random(n) + 0.5).astype(dtype)
    P, d = Z.copy(), np.empty_like(Z)
    total = _losses.output_loss_delta(P, Y, sw, d, _losses.LOSS_CODES[kind], 1.0, 2)
    reference = (log_loss if kind == "softmax_ce" else binary_log_loss)(Y, P, sw)
    unclipped = twin.output_loss_delta(Z.astype(np.float64), Y, sw, kind, 1.0, clip_eps=0.0)[1]
    assert total / sw.sum() == pytest.approx(reference, rel=1e-5 if dtype == np.float32 else 1e-11)
    assert total < 0.9 * unclipped  # the clip changed the answer: the case tests it
    # the delta stays the unclipped p - y, as in sklearn's backprop
    np.testing.assert_allclose(d, sw[:, None] * (P - Y), rtol=1e-6, atol=1e-7)


def test_softmax_and_logistic_stay_finite_at_extreme_logits():
    Z = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0]])
    Y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    for kind in ("softmax_ce", "logistic_ce"):
        Zk, d = Z.copy(), np.empty_like(Z)
        loss = _losses.output_loss_delta(Zk, Y, None, d, _losses.LOSS_CODES[kind], 1.0, 1)
        assert np.isfinite(loss) and np.all(np.isfinite(Zk)) and np.all(np.isfinite(d))
    Zk = Z.copy()
    _losses.output_activate(Zk, _losses.LOSS_CODES["softmax_ce"], 1)
    np.testing.assert_allclose(Zk.sum(1), 1.0)
    # row 0's true class has p = exp(-2000), clipped to eps: it costs -log(eps)
    Zk, d = Z[:1].copy(), np.empty((1, 3))
    loss = _losses.output_loss_delta(Zk, Y[:1], None, d, _losses.LOSS_CODES["softmax_ce"], 1.0, 1)
    assert loss == pytest.approx(-np.log(np.finfo(np.float64).eps))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_update_rounds_as_sklearns_numpy_code(dtype, dispatch_path):
    # sklearn's AdamOptimizer._get_updates, run by numpy on arrays of this
    # dtype with Python-float hyperparameters, gives the reference bits: the
    # kernel fuses no multiply-adds, and sqrt and division are exact, so every
    # element must match on both SIMD paths, for any thread count (300,003
    # elements: above the size worth a team, several threads, a scalar remainder).
    rng = np.random.default_rng(5)
    n, T = 300_003, dtype
    theta, grad = rng.normal(size=n).astype(T), rng.normal(size=n).astype(T)
    m1, m2 = rng.normal(size=n).astype(T), rng.uniform(0, 2, size=n).astype(T)
    step, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-8
    want_m1 = b1 * m1 + (1 - b1) * grad
    want_m2 = b2 * m2 + (1 - b2) * (grad**2)
    want_theta = theta + (-step * want_m1 / (np.sqrt(want_m2) + eps))
    assert want_theta.dtype == T
    for n_threads in (1, 2, 3):
        t, a, b = theta.copy(), m1.copy(), m2.copy()
        _optimizers.adam_update(t, grad, a, b, step, b1, b2, eps, n_threads)
        np.testing.assert_array_equal(a, want_m1)
        np.testing.assert_array_equal(b, want_m2)
        np.testing.assert_array_equal(t, want_theta)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_update_rounds_as_sklearns_numpy_code(dtype, nesterov, dispatch_path):
    # sklearn's SGDOptimizer._get_updates on arrays of this dtype with
    # Python-float hyperparameters: v = mu v - lr g, then theta += v (or
    # += mu v - lr g). No fused multiply-adds, so every element must match on
    # every path and thread count (300,003 elements, as for Adam above).
    rng = np.random.default_rng(6)
    n, T = 300_003, dtype
    theta, grad, velocity = (rng.normal(size=n).astype(T) for _ in range(3))
    lr, mu = 0.01, 0.9
    want_v = mu * velocity - lr * grad
    want_theta = theta + (mu * want_v - lr * grad if nesterov else want_v)
    assert want_theta.dtype == T
    for n_threads in (1, 2, 3):
        t, v = theta.copy(), velocity.copy()
        _optimizers.sgd_update(t, grad, v, lr, mu, nesterov, n_threads)
        np.testing.assert_array_equal(v, want_v)
        np.testing.assert_array_equal(t, want_theta)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_probabilities_within_a_few_ulp(dtype, dispatch_path):
    # The vectorized exponentials against float64 NumPy, over logit gaps from
    # 0 to past where exp underflows, on both SIMD paths, training and predict.
    rng = np.random.default_rng(0)
    Z = (rng.standard_normal((400, 37)) * np.geomspace(0.01, 200, 400)[:, None]).astype(dtype)
    # the reference starts from z - max(z) rounded in the kernel's dtype, as the
    # kernel's does: for far-apart logits that rounding alone is tens of ulp
    E = np.exp((Z - Z.max(axis=1, keepdims=True)).astype(np.float64))
    expected = E / E.sum(axis=1, keepdims=True)
    Y = np.eye(37, dtype=dtype)[rng.integers(0, 37, 400)]
    Zt, d = Z.copy(), np.empty_like(Z)
    _losses.output_loss_delta(Zt, Y, None, d, _losses.LOSS_CODES["softmax_ce"], 1.0, 2)
    Zp = Z.copy()
    _losses.output_activate(Zp, _losses.LOSS_CODES["softmax_ce"], 2)
    tiny = np.finfo(dtype).tiny
    for P in (Zt, Zp):
        error = np.abs(P - expected)
        ulp = error / np.spacing(np.maximum(expected, tiny).astype(dtype))
        # probabilities below the smallest normal number may flush to zero
        ok = (ulp <= 8) | ((expected < tiny) & (error <= tiny))
        assert ok.all(), (ulp[~ok].max(), expected[~ok][:3], P[~ok][:3])
        assert (expected < tiny).any() and (ulp[expected >= tiny] > 0.5).any()
    nan_row = np.array([[0.0, np.nan, 1.0], [-np.inf, 0.0, 0.0]], dtype)
    _losses.output_activate(nan_row, _losses.LOSS_CODES["softmax_ce"], 1)
    assert np.isnan(nan_row[0]).all()
    np.testing.assert_array_equal(nan_row[1], [0.0, 0.5, 0.5])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_of_a_row_does_not_depend_on_its_batch(dtype, dispatch_path):
    # The kernels sum several rows' exponentials side by side; each row's sum
    # must still be its own, in index order: the same bits alone as at any
    # place in a batch of any size (loss, delta, probabilities, predictions).
    rng = np.random.default_rng(5)
    m, n = 83, 65
    Z, Y = _logits_and_classes(rng, m, n, 4, dtype)
    sw = (rng.random(m) + 0.5).astype(dtype)

    def run(rows):
        return _softmax_both_ways(Z[rows], Y[rows], sw[rows], 0.25)

    alone = [run([i]) for i in range(m)]
    for size in (2, 7, 8, 9, 31, 32, 33, m):
        rows = np.arange(size)
        P, d, loss, Pp = run(rows)
        for i in rows:
            np.testing.assert_array_equal(P[i], alone[i][0][0])
            np.testing.assert_array_equal(d[i], alone[i][1][0])
            np.testing.assert_array_equal(Pp[i], alone[i][3][0])
        # the batch's loss adds the rows' weighted losses in row order
        assert loss == sum(alone[i][2] for i in rows)


def test_l2_penalty_and_optimizers_match_twins():
    rng = np.random.default_rng(3)
    theta, grad = _rand(rng, 10007), _rand(rng, 10007)
    g = grad.copy()
    sumsq = _optimizers.l2_penalty(theta, g, 0.3, 2)
    # Compilers may fuse a multiply-add (GCC does by default on aarch64), which
    # rounds once instead of twice: where terms of size ~1 cancel, results then
    # differ from NumPy's by an ulp of the terms, not of the result.
    atol = 4 * np.finfo(float).eps
    np.testing.assert_allclose(g, grad + 0.3 * theta, rtol=1e-15, atol=atol)
    assert sumsq == pytest.approx(np.dot(theta, theta), rel=1e-12)
    for nesterov in (False, True):
        t, v = theta.copy(), _rand(rng, theta.size)
        t_exp, v_exp = twin.sgd_update(theta, grad, v, 0.05, 0.9, nesterov)
        _optimizers.sgd_update(t, grad, v, 0.05, 0.9, nesterov, 2)
        np.testing.assert_allclose(t, t_exp, rtol=1e-14, atol=atol)
        np.testing.assert_allclose(v, v_exp, rtol=1e-14, atol=atol)
    t, m1, m2 = theta.copy(), _rand(rng, theta.size), rng.random(theta.size)
    t_exp, m1_exp, m2_exp = twin.adam_update(theta, grad, m1, m2, 1e-3, 0.9, 0.999, 1e-8)
    _optimizers.adam_update(t, grad, m1, m2, 1e-3, 0.9, 0.999, 1e-8, 2)
    np.testing.assert_allclose(t, t_exp, rtol=1e-14, atol=atol)
    np.testing.assert_allclose(m1, m1_exp, rtol=1e-14, atol=atol)
    np.testing.assert_allclose(m2, m2_exp, rtol=1e-14, atol=atol)


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_float32_kernels_track_float64(act):
    rng = np.random.default_rng(4)
    m, k, n = 96, 50, 30
    A, W, b, delta = _rand(rng, m, k), _rand(rng, k, n) / 5, _rand(rng, n), _rand(rng, m, n)
    outs = {}
    for dtype in (np.float32, np.float64):
        A_, W_, b_, d_ = (x.astype(dtype) for x in (A, W, b, delta))
        out = np.empty((m, n), dtype)
        _dense.dense_forward(A_, W_, b_, out, _dense.ACTIVATION_CODES[act], 2)
        gW, gb, d_in = np.empty((k, n), dtype), np.empty(n, dtype), np.empty((m, k), dtype)
        _dense.dense_backward(twin.activate(A_, act), W_, d_, gW, gb, d_in,
                              _dense.ACTIVATION_CODES[act], 2)
        outs[dtype] = (out, gW, gb, d_in)
    for a32, a64 in zip(outs[np.float32], outs[np.float64]):
        assert a32.dtype == np.float32
        np.testing.assert_allclose(a32, a64, rtol=2e-4, atol=2e-4)


@pytest.mark.compares_n_threads
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_results_do_not_depend_on_thread_count(dtype, dispatch_path):
    """GEMM blocks and reduction groups fixed by the shape, fixed-order sums:
    the same bits on 1, 2 or 3 threads (BLAS itself on one thread, as during
    fit). (2500, 40, 30) and (3000, 20, 520) take the row-group path of the
    weight gradient, (1600, 65, 128) its blocks of columns; (32, 120, 84)
    runs its two backward products, one block each, side by side; (2, 784,
    256) splits its products in two below PARALLEL_MIN_FLOPS."""
    rng = np.random.default_rng(5)
    for m, k, n in [(300, 200, 150), (40, 300, 250), (128, 784, 256), (2500, 40, 30),
                    (1600, 65, 128), (3000, 20, 520), (32, 120, 84), (2, 784, 256)]:
        _check_thread_independence(rng, m, k, n, dtype)


@pytest.mark.compares_n_threads
@pytest.mark.parametrize("size", [40_001, 300_007])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_element_wise_passes_do_not_depend_on_thread_count(dtype, size, dispatch_path):
    """The update, penalty and loss passes over more elements than one thread
    takes alone (the optimizer's passes from 4 units of 8192, the loss from
    FASTBP_MIN_PARALLEL, 2**18): the same bits on 1, 2 or 3 threads."""
    rng = np.random.default_rng(6)
    theta, grad, v = (_rand(rng, size, dtype=dtype) for _ in range(3))
    Z, Y = _rand(rng, 5_000, 10, dtype=dtype), np.eye(10, dtype=dtype)[rng.integers(0, 10, 5_000)]
    results = []
    for n_threads in (1, 2, 3):
        t, g, vel = theta.copy(), grad.copy(), v.copy()
        s = _optimizers.l2_penalty(t, g, 0.1, n_threads)
        _optimizers.sgd_update(t, g, vel, 0.01, 0.9, True, n_threads)
        m1, m2 = vel.copy(), np.abs(vel)
        _optimizers.adam_update(t, g, m1, m2, 1e-3, 0.9, 0.999, 1e-8, n_threads)
        Zk, d = Z.copy(), np.empty_like(Z)
        loss = _losses.output_loss_delta(Zk, Y, None, d, 0, 1 / 5_000, n_threads)
        results.append((t, g, vel, m1, m2, Zk, d, np.array([s, loss])))
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_array_equal(a, b_)


def _check_thread_independence(rng, m, k, n, dtype):
    A, W, b, delta = (_rand(rng, *shape, dtype=dtype)
                      for shape in ((m, k), (k, n), (n,), (m, n)))
    results = []
    with blas_single_thread():
        for n_threads in (1, 2, 3):
            out = np.empty((m, n), dtype)
            _dense.dense_forward(A, W, b, out, 2, n_threads)
            gW, gb, d_in = np.empty((k, n), dtype), np.empty(n, dtype), np.empty((m, k), dtype)
            _dense.dense_backward(np.tanh(A), W, delta, gW, gb, d_in, 2, n_threads)
            Z, d = out.copy(), np.empty_like(out)
            loss = _losses.output_loss_delta(Z, out, None, d, 0, 0.5, n_threads)
            g = delta.ravel()[: A.size].copy()
            s = _optimizers.l2_penalty(A.ravel()[: g.size], g, 0.1, n_threads)
            results.append((out, gW, gb, d_in, Z, d, np.array([loss, s]), g))
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_array_equal(a, b_)


# (m, layer widths, activations): one layer; the MLP bench's chain (several
# row groups and gradient blocks); a deep mixed chain; so many rows that the
# first weight gradient is summed over row groups after the fused region; and
# a first layer wider than the batch, whose forward runs by column blocks
# before the row groups.
CHAINS = [(7, (5, 3), ("identity",)),
          (128, (100, 96, 64, 10), ("relu", "relu", "identity")),
          (300, (40, 60, 20, 30, 4), ("logistic", "tanh", "lecun_tanh", "identity")),
          (2500, (30, 40, 5), ("tanh", "identity")),
          (128, (100, 160, 32, 10), ("logistic", "relu", "identity"))]


def _chain_case(rng, m, widths, kind, weighted, dtype):
    X = _rand(rng, m, widths[0], dtype=dtype)
    Ws = [(_rand(rng, a, b) / np.sqrt(a)).astype(dtype) for a, b in zip(widths, widths[1:])]
    bs = [_rand(rng, b, dtype=dtype) for b in widths[1:]]
    if kind == "softmax_ce":
        Y = np.eye(widths[-1], dtype=dtype)[rng.integers(0, widths[-1], m)]
    elif kind == "squared":
        Y = _rand(rng, m, widths[-1], dtype=dtype)
    else:
        Y = (rng.random((m, widths[-1])) > 0.5).astype(dtype)
    sw = (rng.random(m) + 0.5).astype(dtype) if weighted else None
    return X, Ws, bs, Y, sw


def _run_chain(X, Ws, bs, acts, Y, sw, kind, scale, l2_coef, n_threads):
    m, dtype = X.shape[0], X.dtype
    outs = [np.full((m, W.shape[1]), np.nan, dtype) for W in Ws]
    deltas = [np.full((m, W.shape[1]), np.nan, dtype) for W in Ws]
    gW = [np.full_like(W, np.nan) for W in Ws]
    gb = [np.full_like(b, np.nan) for b in bs]
    with blas_single_thread():
        loss, sumsq = _chain.dense_chain_loss_and_grad(
            X, Ws, bs, [_dense.ACTIVATION_CODES[a] for a in acts], Y, sw, outs, deltas, gW,
            gb, _losses.LOSS_CODES[kind], scale, l2_coef, n_threads)
    return outs, deltas, gW, gb, loss, sumsq


@pytest.mark.parametrize("m,widths,acts", CHAINS)
@pytest.mark.parametrize("kind", ["softmax_ce", "logistic_ce", "squared"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("l2_coef", [0.0, 0.03])
def test_dense_chain_matches_twin(m, widths, acts, kind, weighted, l2_coef):
    rng = np.random.default_rng(6)
    X, Ws, bs, Y, sw = _chain_case(rng, m, widths, kind, weighted, np.float64)
    got = _run_chain(X, Ws, bs, acts, Y, sw, kind, 1 / m, l2_coef, 2)
    want = twin.dense_chain(X, Ws, bs, acts, Y, sw, kind, 1 / m, l2_coef)
    for got_list, want_list in zip(got[:4], want[:4]):
        assert len(got_list) == len(want_list) == len(Ws)
        for g, w in zip(got_list, want_list):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-13)
    assert got[4] == pytest.approx(want[4], rel=1e-12)
    assert got[5] == pytest.approx(want[5], rel=1e-12)


def test_dense_chain_float32_tracks_float64():
    m, widths, acts = CHAINS[1]
    X, Ws, bs, Y, sw = _chain_case(np.random.default_rng(7), m, widths, "softmax_ce", True,
                                   np.float64)
    ref = _run_chain(X, Ws, bs, acts, Y, sw, "softmax_ce", 1 / m, 0.01, 2)
    f32 = [a.astype(np.float32) if a is not None else None for a in (X, Y, sw)]
    got = _run_chain(f32[0], [W.astype(np.float32) for W in Ws],
                     [b.astype(np.float32) for b in bs], acts, f32[1], f32[2], "softmax_ce",
                     1 / m, 0.01, 2)
    for got_list, ref_list in zip(got[:4], ref[:4]):
        for g, r in zip(got_list, ref_list):
            assert g.dtype == np.float32
            np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5 * np.abs(r).max())
    assert got[4] == pytest.approx(ref[4], rel=1e-5)


@pytest.mark.compares_n_threads
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_chain_does_not_depend_on_thread_count(dtype, dispatch_path):
    """Row groups and gradient blocks come from the shapes alone, so 1, 2 and 3
    threads (3: groups and units not a multiple of the team) agree bit for bit."""
    for case, kind in ((CHAINS[1], "softmax_ce"), (CHAINS[2], "logistic_ce"),
                       (CHAINS[4], "softmax_ce"),
                       ((256, (784, 256, 128, 10), ("relu", "relu", "identity")), "squared")):
        m, widths, acts = case
        X, Ws, bs, Y, sw = _chain_case(np.random.default_rng(8), m, widths, kind, True, dtype)
        runs = [_run_chain(X, Ws, bs, acts, Y, sw, kind, 1 / m, 0.02, t) for t in (1, 2, 3)]
        for other in runs[1:]:
            assert other[4:] == runs[0][4:]
            for got_list, ref_list in zip(other[:4], runs[0][:4]):
                for g, r in zip(got_list, ref_list):
                    np.testing.assert_array_equal(g, r)


def test_dense_chain_rejects_inconsistent_arguments():
    m, widths, acts = CHAINS[1]
    X, Ws, bs, Y, sw = _chain_case(np.random.default_rng(9), m, widths, "softmax_ce", False,
                                   np.float64)
    codes = [_dense.ACTIVATION_CODES[a] for a in acts]
    outs = [np.empty((m, W.shape[1])) for W in Ws]
    deltas = [np.empty((m, W.shape[1])) for W in Ws]
    gW, gb = [np.empty_like(W) for W in Ws], [np.empty_like(b) for b in bs]

    def call(**change):
        args = dict(X=X, weights=Ws, biases=bs, activations=codes, Y=Y, sample_weight=sw,
                    outputs=outs, deltas=deltas, grad_weights=gW, grad_biases=gb,
                    kind=0, scale=1.0, l2_coef=0.0, n_threads=2)
        args.update(change)
        return _chain.dense_chain_loss_and_grad(*args.values())

    call()  # the unchanged arguments are accepted
    with pytest.raises(ValueError, match="weights\\[1\\]"):
        call(weights=[Ws[0], Ws[1][:-1], Ws[2]])
    with pytest.raises(ValueError, match="biases has 2 entries for 3 layers"):
        call(biases=bs[:2])
    with pytest.raises(ValueError, match="identity"):
        call(activations=[3, 3, 3])
    with pytest.raises(ValueError, match="outputs\\[0\\]"):
        call(outputs=[outs[0][:-1]] + outs[1:])
    with pytest.raises(ValueError, match="grad_weights\\[2\\]"):
        call(grad_weights=gW[:2] + [gW[2].T.copy()])
    with pytest.raises(ValueError, match="Y"):
        call(Y=np.ascontiguousarray(Y[:, :-1]))
    with pytest.raises(ValueError, match="sample_weight"):
        call(sample_weight=np.ones(m - 1))
    with pytest.raises(ValueError, match="non-empty batch"):
        call(X=X[:0], Y=Y[:0], outputs=[o[:0] for o in outs], deltas=[d[:0] for d in deltas])
    with pytest.raises(ValueError):  # a float32 array among float64 ones
        call(biases=bs[:2] + [bs[2].astype(np.float32)])


def _flat_params(rng, widths, dtype):
    """theta and the per-layer weight and bias views into it."""
    shapes = [s for a, b in zip(widths, widths[1:]) for s in ((a, b), (b,))]
    theta = (rng.standard_normal(sum(int(np.prod(s)) for s in shapes)) / 8).astype(dtype)
    views, at = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        views.append(theta[at:at + size].reshape(shape))
        at += size
    return theta, views[0::2], views[1::2]


# (n_samples, batch_size, widths, activations): batches of 48 rows and a last
# one of 8; batches so large that the first weight gradient is summed in row
# groups after a region per batch; and batches of 128 rows whose first layer
# runs by column blocks after its own gather, then a last one of 88 rows that
# runs in a single row group.
TRAIN_CASES = [(200, 48, (100, 96, 64, 10), ("relu", "tanh", "identity")),
               (4500, 2100, (30, 40, 5), ("tanh", "identity")),
               (600, 128, (100, 160, 32, 10), ("relu", "tanh", "identity"))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("optimizer", ["sgd", "nesterov", "adam"])
@pytest.mark.parametrize("case", TRAIN_CASES)
def test_dense_chain_train_equals_batch_by_batch_steps(dtype, optimizer, case):
    """Training a run of mini-batches in one call gives the bits of, batch by
    batch, dense_chain_loss_and_grad on the gathered rows and then the
    standalone sgd_update / adam_update, for any thread count."""
    n, batch, widths, acts = case
    rng = np.random.default_rng(10)
    X, _, _, Y, sw = _chain_case(rng, n, widths, "softmax_ce", True, dtype)
    codes = [_dense.ACTIVATION_CODES[a] for a in acts]
    theta0, _, _ = _flat_params(rng, widths, dtype)
    states0 = [rng.standard_normal(theta0.size).astype(dtype) / 10,
               rng.random(theta0.size).astype(dtype)]
    order = rng.permutation(n).astype(np.intp)
    starts = range(0, n, batch)
    lrs = [1e-3 * (1 + j) for j in range(len(starts))]  # Adam's change per batch
    scales = [1 / float(sw[order[s:s + batch]].sum()) for s in starts]
    l2 = 0.01
    nesterov = optimizer == "nesterov"

    def fresh():
        theta = theta0.copy()
        grad = np.zeros_like(theta)
        _, Ws, bs = _flat_params_like(theta, widths)
        _, gW, gb = _flat_params_like(grad, widths)
        outs = [np.empty((batch, W.shape[1]), dtype) for W in Ws]
        deltas = [np.empty((batch, W.shape[1]), dtype) for W in Ws]
        return theta, grad, Ws, bs, gW, gb, outs, deltas, [s.copy() for s in states0]

    theta, grad, Ws, bs, gW, gb, outs, deltas, states = fresh()
    want_losses = []
    with blas_single_thread():
        for j, s in enumerate(starts):
            rows = order[s:s + batch]
            m = len(rows)
            want_losses.append(_chain.dense_chain_loss_and_grad(
                X[rows], Ws, bs, codes, Y[rows], sw[rows], [o[:m] for o in outs],
                [d[:m] for d in deltas], gW, gb, 0, scales[j], l2 * scales[j], 1))
            if optimizer == "adam":
                _optimizers.adam_update(theta, grad, states[0], states[1], lrs[j], 0.9, 0.999,
                                        1e-8, 1)
            else:
                _optimizers.sgd_update(theta, grad, states[0], lrs[j], 0.9, nesterov, 1)
    want = (theta, states)
    assert not np.array_equal(theta, theta0)

    params = np.array([[sc, l2 * sc, lr] for sc, lr in zip(scales, lrs)])
    hyper = (dict(update=_optimizers.UPDATE_CODES["adam"], beta_1=0.9, beta_2=0.999, epsilon=1e-8)
             if optimizer == "adam" else
             dict(update=_optimizers.UPDATE_CODES["sgd"], beta_1=0.9, nesterov=nesterov))
    for n_threads in (1, 2, 3):
        theta, grad, Ws, bs, gW, gb, outs, deltas, states = fresh()
        losses = np.full((len(starts), 2), np.nan)
        scratch = (np.empty((batch, widths[0]), dtype), np.empty((batch, widths[-1]), dtype),
                   np.empty(batch, dtype))
        with blas_single_thread():
            _chain.dense_chain_train(
                X, Y, sw, order, batch, params, Ws, bs, codes, *scratch, outs, deltas, gW, gb,
                0, losses, n_threads, theta=theta, state_1=states[0],
                state_2=states[1] if optimizer == "adam" else None, **hyper)
        assert [tuple(row) for row in losses] == want_losses
        np.testing.assert_array_equal(theta, want[0])
        for got, expected in zip(states, want[1]):
            np.testing.assert_array_equal(got, expected)


def test_dense_chain_train_checks_before_writing():
    n, batch, widths, acts = TRAIN_CASES[0]
    rng = np.random.default_rng(11)
    X, _, _, Y, sw = _chain_case(rng, n, widths, "softmax_ce", True, np.float64)
    theta, Ws, bs = _flat_params(rng, widths, np.float64)
    codes = [_dense.ACTIVATION_CODES[a] for a in acts]
    outs = [np.empty((batch, W.shape[1])) for W in Ws]
    deltas = [np.empty((batch, W.shape[1])) for W in Ws]
    gW, gb = [np.empty_like(W) for W in Ws], [np.empty_like(b) for b in bs]
    order = np.arange(n, dtype=np.intp)
    n_batches = -(-n // batch)

    def call(weights=Ws, order=order, params=np.full((n_batches, 3), 0.01), theta=theta,
             state=np.zeros_like(theta), update=1, sw=sw, sw_batch=np.empty(batch),
             X_batch=np.empty((batch, widths[0]))):
        return _chain.dense_chain_train(
            X, Y, sw, order, batch, params, weights, bs, codes, X_batch,
            np.empty((batch, widths[-1])), sw_batch, outs, deltas, gW, gb, 0,
            np.empty((n_batches, 2)), 2, update=update, theta=theta, state_1=state,
            beta_1=0.9)

    before = theta.copy()
    bad_order = order.copy()
    bad_order[7] = n
    with pytest.raises(ValueError, match="order\\[7\\] = 200 is not a row of X"):
        call(order=bad_order)
    with pytest.raises(ValueError, match="batch_params"):
        call(params=np.zeros((n_batches - 1, 3)))
    with pytest.raises(ValueError, match="weights\\[1\\] is not a view into theta"):
        call(weights=[Ws[0], Ws[1].copy(), Ws[2]])
    with pytest.raises(ValueError, match="state_1"):
        call(state=np.zeros(theta.size - 1))
    with pytest.raises(ValueError, match="needs an optimizer step"):
        call(update=0)
    with pytest.raises(ValueError, match="unknown update code"):
        call(update=7)
    with pytest.raises(ValueError, match="go together"):
        call(sw_batch=None)
    with pytest.raises(ValueError, match="X_batch"):
        call(X_batch=np.empty((batch - 1, widths[0])))
    np.testing.assert_array_equal(theta, before)  # nothing was written
    call()
    assert not np.array_equal(theta, before)


def _flat_params_like(flat, widths):
    """Views of an existing flat vector laid out as _flat_params lays theta."""
    views, at = [], 0
    for a, b in zip(widths, widths[1:]):
        for shape in ((a, b), (b,)):
            size = int(np.prod(shape))
            views.append(flat[at:at + size].reshape(shape))
            at += size
    return flat, views[0::2], views[1::2]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_csr_rows_to_dense_matches_scipy(dtype, index_dtype):
    # scipy's own fancy indexing + toarray is the reference; duplicates add
    # and empty rows come out zero, whatever the buffer held before.
    rng = np.random.default_rng(3)
    X = sp.random(40, 13, density=0.3, format="csr", dtype=dtype, random_state=3)
    X = sp.csr_matrix((np.r_[X.data, dtype(2.5)], np.r_[X.indices, X.indices[0]],
                       np.r_[X.indptr[:-1], X.indptr[-1] + 1]), shape=X.shape)  # a duplicate
    X.data[X.indptr[5]:X.indptr[6]] = 0
    X.eliminate_zeros()  # row 5 empty
    X.indices, X.indptr = X.indices.astype(index_dtype), X.indptr.astype(index_dtype)
    rows = rng.integers(0, 40, 25).astype(index_dtype)
    rows[0] = 5
    out = np.full((25, 13), np.nan, dtype)
    _sparse.csr_rows_to_dense(X.data, X.indices, X.indptr, rows, out)
    np.testing.assert_array_equal(out, X[rows].toarray())


def test_csr_rows_to_dense_rejects_what_would_write_out_of_bounds():
    X = sp.random(6, 4, density=0.5, format="csr", random_state=0)
    out = np.empty((2, 4))
    with pytest.raises(ValueError, match="row index out of range"):
        _sparse.csr_rows_to_dense(X.data, X.indices, X.indptr, np.array([0, 6]), out)
    with pytest.raises(ValueError, match="column index is out of range"):
        bad = X.indices.copy()
        bad[0] = 4
        _sparse.csr_rows_to_dense(X.data, bad, X.indptr, np.array([0, 1]), out)
    with pytest.raises(ValueError, match="row pointer"):
        ptr = X.indptr.copy()
        ptr[1] = len(X.data) + 5
        _sparse.csr_rows_to_dense(X.data, X.indices, ptr, np.array([0, 1]), out)
    with pytest.raises(ValueError, match="out has shape"):
        _sparse.csr_rows_to_dense(X.data, X.indices, X.indptr, np.array([0, 1, 2]), out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_all_finite_matches_numpy(dispatch_path, dtype, n_threads):
    """all_finite finds one non-finite value wherever it is (first, last, and
    either side of a unit boundary) and passes extreme finite values, on
    every instruction-set path."""
    info = np.finfo(dtype)
    n = 3 * 65536 + 17
    x = np.random.default_rng(0).standard_normal(n).astype(dtype)
    x[:4] = [info.max, -info.max, info.tiny / 4, -0.0]
    assert _dense.all_finite(x, n_threads)
    for where in [0, 65535, 65536, 2 * 65536 + 1, n - 1]:
        for bad in [np.nan, np.inf, -np.inf]:
            y = x.copy()
            y[where] = bad
            assert _dense.all_finite(y, n_threads) == bool(np.isfinite(y).all()) is False
    assert _dense.all_finite(x[:0], n_threads)


def test_a_large_predict_packs_each_weight_matrix_once():
    # A 10,000-row predict multiplies chunks of rows by each layer's weights
    # in blocks of rows, more blocks than threads: B is packed once for all
    # of them. A regression here would keep the bits and lose the speed, so
    # the decision itself is checked, on the chunks the network really uses.
    from fastbp import MLPClassifier

    rng = np.random.default_rng(0)
    X = rng.random((40, 784), dtype=np.float32)
    est = MLPClassifier(hidden_layer_sizes=(256, 128), max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, np.arange(40) % 10)
    rows = est._network._chunk_rows(np.empty((10_000, 784), np.float32))
    assert rows >= 4096
    for n_in, n_out in ((784, 256), (256, 128)):
        for n_threads in (1, 2, 4):
            blocks, packs = _dense.split_gemm_plan(rows, n_out, n_in, n_threads)
            assert blocks > n_threads and packs, (n_in, n_out, n_threads, blocks)
        # one block a thread: each packs only what it multiplies
        assert not _dense.split_gemm_plan(rows, n_out, n_in, blocks)[1]
    # a training batch (128 rows) splits by columns: each block packs its own
    blocks, packs = _dense.split_gemm_plan(128, 256, 784, 2)
    assert blocks == 2 and not packs


def test_products_below_the_team_threshold_are_cut_in_two_from_the_pair_size():
    # (rows, outputs, inputs): under PARALLEL_MIN_FLOPS multiply-adds a
    # product with more columns than rows, at least 64, runs as two blocks
    # from PAIR_MIN_FLOPS with a B of 2**16 elements, else from 2**18
    assert _dense.split_gemm_plan(32, 84, 120, 2) == (2, False)  # LeNet-5's F6, batch 32
    assert _dense.split_gemm_plan(1, 256, 784, 2) == (2, False)  # a one-row predict
    assert _dense.split_gemm_plan(32, 10, 84, 2)[0] == 1  # too few multiply-adds
    assert _dense.split_gemm_plan(512, 40, 40, 2)[0] == 1  # too few columns
    assert _dense.split_gemm_plan(96, 96, 96, 2)[0] == 1  # not by rows: slower on one thread
    assert _dense.split_gemm_plan(128, 64, 64, 2)[0] == 1
    assert _dense.split_gemm_plan(2, 128, 256, 2)[0] == 1  # 65,536, a small B
    assert _dense.split_gemm_plan(8, 128, 256, 2)[0] == 2  # 2**18
    assert _dense.split_gemm_plan(1, 100, 700, 2)[0] == 2  # 70,000, B of 70,000
    assert _dense.split_gemm_plan(1, 100, 600, 2)[0] == 1  # 60,000 < 2**16
