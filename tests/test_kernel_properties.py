"""Property tests of every kernel entry point (hypothesis).

Each test draws shapes (empty ones included), a dtype, a thread count, the
activation or loss, and a memory layout for every array argument, then checks
the kernel's contract:

* on C-contiguous arrays of one floating dtype it matches its NumPy twin,
  computed in float64 from the same values;
* an F-ordered, strided, negative-stride or wrong-dtype argument is refused
  with ValueError/TypeError, and no output is written;
* an argument whose shape disagrees with the others by one element is refused
  with ValueError, and no output is written;
* the linear parts satisfy the adjoint identity <L x, y> = <x, L^T y>.

The kernels run with boundscheck off, so the refusals are the memory-safety
guarantee: nothing reaches the loops unless every shape agrees.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastbp._kernels import _blas, _conv, _dense, _losses, _optimizers, _rnn

import _twins_conv as twin_conv
import _twins_dense as twin_dense
import _twins_rnn as twin_rnn

ACT_NAMES = list(_dense.ACTIVATION_CODES)
LOSS_NAMES = list(_losses.LOSS_CODES)
DTYPES = [np.float64, np.float32]
LAYOUTS = ["C", "F", "strided", "reversed", "other_dtype"]
# The fixtures below only pick an instruction-set path for the whole test, so
# sharing them between examples is intended.
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None,
                             suppress_health_check=[HealthCheck.function_scoped_fixture])

dtypes = st.sampled_from(DTYPES)
threads = st.sampled_from([1, 2, 3])
acts = st.sampled_from(ACT_NAMES)
seeds = st.integers(0, 2**32 - 1)


def _tol(dtype):
    return 1e-10 if dtype == np.float64 else 3e-4


def assert_close(actual, expected, dtype):
    """Relative to the largest |expected|, so float32 sums of many terms pass."""
    tol = _tol(dtype)
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected,
                               rtol=tol, atol=tol * scale)


def in_layout(a, layout):
    """A new array equal to ``a`` element for element, laid out as asked."""
    if layout == "C" or a.ndim == 0:
        return a.copy()
    if layout == "F":
        return np.array(a, order="F")  # a copy even when a is already F-ordered
    if layout == "strided":
        wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
        wide[..., ::2] = a
        return wide[..., ::2]
    if layout == "reversed":
        return np.flip(np.flip(a).copy())
    if layout == "other_dtype":
        return a.astype(np.float32 if a.dtype == np.float64 else np.float64)
    raise ValueError(layout)


def _snapshot(arrays):
    return [None if a is None else a.copy() for a in arrays]


def _unchanged(before, after):
    return all(b is None or np.array_equal(b, a, equal_nan=True) for b, a in zip(before, after))


def check_contract(data, kernel, arrays, scalars, dtype, verify):
    """Run ``kernel(*arrays, *scalars)`` the three ways the module docstring lists.

    arrays: the kernel's array arguments in order, C-contiguous, of ``dtype``
    (None for an optional output; an integer array is passed through as is).
    verify(arrays) checks the outputs of a successful call.
    """
    floating = [i for i, a in enumerate(arrays) if a is not None and a.dtype == dtype]

    # 1. A random layout for every floating argument.
    laid = list(arrays)
    for i in floating:
        laid[i] = in_layout(arrays[i], data.draw(st.sampled_from(LAYOUTS), label=f"layout{i}"))
    contiguous = all(laid[i].flags.c_contiguous for i in floating)
    kinds = {laid[i].dtype for i in floating}
    if contiguous and kinds == {np.dtype(dtype)}:
        # Size-1 axes make some drawn layouts contiguous after all.
        kernel(*laid, *scalars)
        verify(laid)
    elif contiguous and len(kinds) == 1:
        kernel(*laid, *scalars)  # every argument converted: a valid call in the other dtype
    else:
        before = _snapshot(laid)
        with pytest.raises((ValueError, TypeError)):
            kernel(*laid, *scalars)
        assert _unchanged(before, laid), "a refused call wrote to an argument"

    # 2. One argument one element too long along one axis.
    candidates = [i for i in floating if arrays[i].ndim > 0]
    i = data.draw(st.sampled_from(candidates), label="grown argument")
    axis = data.draw(st.integers(0, arrays[i].ndim - 1), label="grown axis")
    grown = list(_snapshot(arrays))
    pad = [(0, 0)] * arrays[i].ndim
    pad[axis] = (0, 1)
    grown[i] = np.pad(arrays[i], pad)
    before = _snapshot(grown)
    with pytest.raises(ValueError):
        kernel(*grown, *scalars)
    assert _unchanged(before, grown), "a refused call wrote to an argument"

    # 3. The well-formed call.
    kernel(*arrays, *scalars)
    verify(arrays)


def outputs_match(dtype, expected):
    """A verify() for check_contract: argument i matches expected[i] (skipped
    where expected[i] is None, an output not asked for)."""
    def verify(arrays):
        for i, want in expected.items():
            if want is not None:
                assert_close(arrays[i], want, dtype)
    return verify


def _normal(rng, shape, dtype, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def _f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


# ------------------------------------------------------------------ dense

@PROPERTY_SETTINGS
@given(data=st.data(), dtype=dtypes, n_threads=threads, act=acts, seed=seeds,
       m=st.integers(0, 150), k=st.integers(0, 40), n=st.integers(0, 40))
def test_dense_forward(dispatch_path, data, dtype, n_threads, act, seed, m, k, n):
    rng = np.random.default_rng(seed)
    A, W, b = _normal(rng, (m, k), dtype), _normal(rng, (k, n), dtype), _normal(rng, n, dtype)
    out = np.full((m, n), np.nan, dtype)
    expected = twin_dense.dense_forward(_f64(A), _f64(W), _f64(b), act)

    def verify(arrays):
        assert_close(arrays[3], expected, dtype)

    check_contract(data, _dense.dense_forward, [A, W, b, out],
                   (_dense.ACTIVATION_CODES[act], n_threads), dtype, verify)


@PROPERTY_SETTINGS
@given(data=st.data(), dtype=dtypes, n_threads=threads, act=acts, seed=seeds,
       m=st.integers(0, 150), k=st.integers(0, 40), n=st.integers(0, 40),
       want_delta_in=st.booleans())
def test_dense_backward(dispatch_path, data, dtype, n_threads, act, seed, m, k, n, want_delta_in):
    rng = np.random.default_rng(seed)
    A = twin_dense.activate(_normal(rng, (m, k), dtype), act).astype(dtype)
    W, delta = _normal(rng, (k, n), dtype), _normal(rng, (m, n), dtype)
    gW, gb = np.full((k, n), np.nan, dtype), np.full(n, np.nan, dtype)
    d_in = np.full((m, k), np.nan, dtype) if want_delta_in else None
    eW, eb, ed = twin_dense.dense_backward(_f64(A), _f64(W), _f64(delta), act, want_delta_in)
    check_contract(data, _dense.dense_backward, [A, W, delta, gW, gb, d_in],
                   (_dense.ACTIVATION_CODES[act], n_threads), dtype,
                   outputs_match(dtype, {3: eW, 4: eb, 5: ed}))


def _targets(rng, kind, shape):
    if kind == "softmax_ce":
        return np.eye(shape[1])[rng.integers(0, shape[1], shape[0])]
    if kind == "poisson":
        return rng.poisson(2.0, shape).astype(float)
    if kind == "squared":
        return rng.standard_normal(shape)
    return (rng.random(shape) > 0.5).astype(float)


@PROPERTY_SETTINGS
@given(data=st.data(), dtype=dtypes, n_threads=threads, kind=st.sampled_from(LOSS_NAMES),
       seed=seeds, m=st.integers(0, 300), n=st.integers(1, 12), weighted=st.booleans(),
       logit_scale=st.sampled_from([1.0, 10.0, 1000.0]))
def test_output_loss_delta(dispatch_path, data, dtype, n_threads, kind, seed, m, n, weighted, logit_scale):
    rng = np.random.default_rng(seed)
    if kind == "poisson":
        logit_scale = min(logit_scale, 10.0)  # exp(1000) is inf by definition
    Z = _normal(rng, (m, n), dtype, logit_scale)
    logits = Z.copy()  # Z is overwritten with the outputs
    Y = _targets(rng, kind, (m, n)).astype(dtype)
    sw = (rng.random(m) + 0.5).astype(dtype) if weighted else None
    delta = np.full((m, n), np.nan, dtype)
    scale = 1.0 / max(m, 1)
    with np.errstate(over="ignore"):
        P, loss, d = twin_dense.output_loss_delta(_f64(Z), _f64(Y), _f64(sw), kind, scale,
                                                   clip_eps=np.finfo(dtype).eps)
    result = {}

    def kernel(*args):
        result["loss"] = _losses.output_loss_delta(*args)

    def verify(arrays):
        assert_close(arrays[0], P, dtype)
        assert_close(arrays[3], d, dtype)
        assert np.isfinite(result["loss"]) or not np.isfinite(loss)
        assert_close(result["loss"], loss, dtype)
        Za = logits.copy()
        _losses.output_activate(Za, _losses.LOSS_CODES[kind], n_threads)
        assert_close(Za, P, dtype)
        if kind == "softmax_ce" and m and n:
            np.testing.assert_allclose(Za.sum(axis=1, dtype=np.float64), 1.0, rtol=_tol(dtype))

    check_contract(data, kernel, [Z, Y, sw, delta],
                   (_losses.LOSS_CODES[kind], scale, n_threads), dtype, verify)


@PROPERTY_SETTINGS
@given(data=st.data(), dtype=dtypes, n_threads=threads, seed=seeds,
       size=st.integers(1, 40000), coef=st.floats(0, 10))
def test_l2_penalty(data, dtype, n_threads, seed, size, coef):
    rng = np.random.default_rng(seed)
    theta, grad = _normal(rng, size, dtype), _normal(rng, size, dtype)
    expected_grad = _f64(grad) + np.float64(dtype(coef)) * _f64(theta)
    expected_sq = float(np.sum(_f64(theta) ** 2))
    result = {}

    def kernel(*args):
        result["sq"] = _optimizers.l2_penalty(*args)

    def verify(arrays):
        assert_close(arrays[1], expected_grad, dtype)
        assert_close(result["sq"], expected_sq, dtype)

    check_contract(data, kernel, [theta, grad], (coef, n_threads), dtype, verify)


@PROPERTY_SETTINGS
@given(data=st.data(), dtype=dtypes, n_threads=threads, seed=seeds,
       size=st.integers(1, 40000), lr=st.floats(1e-4, 1.0), momentum=st.floats(0, 0.99),
       nesterov=st.booleans())
def test_sgd_update(data, dtype, n_threads, seed, size, lr, momentum, nesterov):
    rng = np.random.default_rng(seed)
    theta, grad, vel = (_normal(rng, size, dtype) for _ in range(3))
    e_theta, e_vel = twin_dense.sgd_update(_f64(theta), _f64(grad), _f64(vel), lr, momentum,
                                           nesterov)

    check_contract(data, _optimizers.sgd_update, [theta, grad, vel],
                   (lr, momentum, nesterov, n_threads), dtype,
                   outputs_match(dtype, {0: e_theta, 2: e_vel}))


@PROPERTY_SETTINGS
@given(data=st.data(), dtype=dtypes, n_threads=threads, seed=seeds,
       size=st.integers(1, 40000), step=st.floats(1e-5, 0.1))
def test_adam_update(data, dtype, n_threads, seed, size, step):
    rng = np.random.default_rng(seed)
    theta, grad, m1 = (_normal(rng, size, dtype) for _ in range(3))
    m2 = np.abs(_normal(rng, size, dtype))
    b1, b2, eps = 0.9, 0.999, 1e-8
    expected = twin_dense.adam_update(_f64(theta), _f64(grad), _f64(m1), _f64(m2), step,
                                      b1, b2, eps)

    check_contract(data, _optimizers.adam_update, [theta, grad, m1, m2],
                   (step, b1, b2, eps, n_threads), dtype,
                   outputs_match(dtype, dict(zip((0, 2, 3), expected))))


@PROPERTY_SETTINGS
@given(data=st.data(), dtype=dtypes, seed=seeds, m=st.integers(0, 30), n=st.integers(0, 30),
       k=st.integers(0, 30), trans_a=st.booleans(), trans_b=st.booleans())
def test_gemm(data, dtype, seed, m, n, k, trans_a, trans_b):
    rng = np.random.default_rng(seed)
    A = _normal(rng, (k, m) if trans_a else (m, k), dtype)
    B = _normal(rng, (n, k) if trans_b else (k, n), dtype)
    C = _normal(rng, (m, n), dtype)
    expected = 0.5 * (_f64(A).T if trans_a else _f64(A)) @ (_f64(B).T if trans_b else _f64(B)) \
        + 2.0 * _f64(C)

    def verify(arrays):
        assert_close(arrays[2], expected, dtype)

    check_contract(data, _blas.gemm_py, [A, B, C], (trans_a, trans_b, 0.5, 2.0), dtype, verify)


# ------------------------------------------------------------ convolution

def _conv_problem(rng, dtype, n, c_in, c_out, h, w, density):
    X = _normal(rng, (n, c_in, h, w), dtype)
    W = _normal(rng, (c_out, c_in, 5, 5), dtype, 0.3)
    table = rng.random((c_out, c_in)) < density
    return X, W, table.view(np.uint8)


conv_shapes = dict(n=st.integers(0, 9), c_in=st.integers(1, 5), c_out=st.integers(1, 7),
                   h=st.integers(5, 14), w=st.integers(5, 14),
                   density=st.sampled_from([0.0, 0.5, 1.0]))


@PROPERTY_SETTINGS
@given(data=st.data(), dtype=dtypes, n_threads=threads, act=acts, seed=seeds, **conv_shapes)
def test_conv5x5_forward(dispatch_path, data, dtype, n_threads, act, seed, n, c_in, c_out, h, w,
                         density):
    rng = np.random.default_rng(seed)
    X, W, table = _conv_problem(rng, dtype, n, c_in, c_out, h, w, density)
    b = _normal(rng, c_out, dtype)
    Y = np.full((n, c_out, h - 4, w - 4), np.nan, dtype)
    code = _dense.ACTIVATION_CODES[act]
    expected = twin_conv.conv5x5_forward(_f64(X), _f64(W), _f64(b), table, code)

    def verify(arrays):
        assert_close(arrays[4], expected, dtype)

    check_contract(data, _conv.conv5x5_forward, [X, W, b, table, Y], (code, n_threads),
                   dtype, verify)


@PROPERTY_SETTINGS
@given(data=st.data(), dtype=dtypes, n_threads=threads, act=acts, seed=seeds,
       want_dX=st.booleans(), **conv_shapes)
def test_conv5x5_backward(dispatch_path, data, dtype, n_threads, act, seed, want_dX, n, c_in,
                          c_out, h, w, density):
    rng = np.random.default_rng(seed)
    X, W, table = _conv_problem(rng, dtype, n, c_in, c_out, h, w, density)
    code = _dense.ACTIVATION_CODES[act]
    X = twin_conv.activate(X, code).astype(dtype)
    dZ = _normal(rng, (n, c_out, h - 4, w - 4), dtype)
    gW, gb = np.full(W.shape, np.nan, dtype), np.full(c_out, np.nan, dtype)
    dX = np.full(X.shape, np.nan, dtype) if want_dX else None
    eW, eb, edX = twin_conv.conv5x5_backward(_f64(X), _f64(W), _f64(dZ), table, code, want_dX)
    check_contract(data, _conv.conv5x5_backward, [X, W, dZ, table, gW, gb, dX],
                   (code, n_threads), dtype, outputs_match(dtype, {4: eW, 5: eb, 6: edX}))


pool_shapes = dict(n=st.integers(0, 9), c=st.integers(1, 7), h=st.integers(1, 12),
                   w=st.integers(1, 12))


@PROPERTY_SETTINGS
@given(data=st.data(), dtype=dtypes, n_threads=threads, act=acts, seed=seeds, **pool_shapes)
def test_pool2x2_forward(dispatch_path, data, dtype, n_threads, act, seed, n, c, h, w):
    rng = np.random.default_rng(seed)
    Y = _normal(rng, (n, c, 2 * h, 2 * w), dtype)
    coef, bias = _normal(rng, c, dtype), _normal(rng, c, dtype)
    X = np.full((n, c, h, w), np.nan, dtype)
    code = _dense.ACTIVATION_CODES[act]
    expected = twin_conv.pool2x2_forward(_f64(Y), _f64(coef), _f64(bias), code)

    def verify(arrays):
        assert_close(arrays[3], expected, dtype)

    check_contract(data, _conv.pool2x2_forward, [Y, coef, bias, X], (code, n_threads), dtype,
                   verify)


@PROPERTY_SETTINGS
@given(data=st.data(), dtype=dtypes, n_threads=threads, act=acts, seed=seeds,
       want_dY=st.booleans(), **pool_shapes)
def test_pool2x2_backward(dispatch_path, data, dtype, n_threads, act, seed, want_dY, n, c, h, w):
    rng = np.random.default_rng(seed)
    code = _dense.ACTIVATION_CODES[act]
    Y = twin_conv.activate(_normal(rng, (n, c, 2 * h, 2 * w), dtype), code).astype(dtype)
    coef, dZ = _normal(rng, c, dtype), _normal(rng, (n, c, h, w), dtype)
    gc, gb = np.full(c, np.nan, dtype), np.full(c, np.nan, dtype)
    dY = np.full(Y.shape, np.nan, dtype) if want_dY else None
    ec, eb, edY = twin_conv.pool2x2_backward(_f64(Y), _f64(coef), _f64(dZ), code, want_dY)
    check_contract(data, _conv.pool2x2_backward, [Y, coef, dZ, gc, gb, dY], (code, n_threads),
                   dtype, outputs_match(dtype, {3: ec, 4: eb, 5: edY}))


# -------------------------------------------------------------------- RNN

@st.composite
def batch_sizes(draw):
    """Packed-batch step sizes of 1 to 6 sequences of 1 to 9 steps (or none)."""
    lengths = draw(st.lists(st.integers(1, 9), min_size=0, max_size=6))
    T = max(lengths, default=0)
    return np.array([sum(length > t for length in lengths) for t in range(T)], dtype=np.intp)


def _rnn_problem(rng, dtype, bs, n_hidden):
    n_rows = int(bs.sum())
    P = _normal(rng, (n_rows, n_hidden), dtype, 0.8)
    W = _normal(rng, (n_hidden, n_hidden), dtype, 0.6 / np.sqrt(max(n_hidden, 1)))
    return P, W


@PROPERTY_SETTINGS
@given(data=st.data(), dtype=dtypes, n_threads=threads, act=acts, seed=seeds, bs=batch_sizes(),
       n_hidden=st.integers(1, 140))
def test_rnn_forward(dispatch_path, data, dtype, n_threads, act, seed, bs, n_hidden):
    rng = np.random.default_rng(seed)
    P, W = _rnn_problem(rng, dtype, bs, n_hidden)
    H = np.full(P.shape, np.nan, dtype)
    code = twin_rnn.ACTIVATIONS[act]
    expected = twin_rnn.rnn_forward(_f64(P), _f64(W), bs, code)

    def kernel(P, W, H, *scalars):
        _rnn.rnn_forward(P, W, bs, H, *scalars)

    def verify(arrays):
        assert_close(arrays[2], expected, dtype)

    check_contract(data, kernel, [P, W, H], (code, n_threads), dtype, verify)


@PROPERTY_SETTINGS
@given(data=st.data(), dtype=dtypes, n_threads=threads, act=acts, seed=seeds, bs=batch_sizes(),
       n_hidden=st.integers(1, 140), bptt_steps=st.integers(0, 4))
def test_rnn_backward_and_grad_hh(dispatch_path, data, dtype, n_threads, act, seed, bs, n_hidden,
                                  bptt_steps):
    rng = np.random.default_rng(seed)
    P, W = _rnn_problem(rng, dtype, bs, n_hidden)
    code = twin_rnn.ACTIVATIONS[act]
    H = twin_rnn.rnn_forward(P, W, bs, code).astype(dtype)
    dH = _normal(rng, P.shape, dtype)
    delta = np.full(P.shape, np.nan, dtype)
    G = np.full(W.shape, np.nan, dtype)
    e_delta = twin_rnn.rnn_backward(_f64(H), _f64(W), bs, _f64(dH), code, bptt_steps)
    e_G = twin_rnn.rnn_grad_hh(_f64(H), e_delta, bs)

    def backward(H, W, dH, delta, *scalars):
        _rnn.rnn_backward(H, W, bs, dH, delta, *scalars, bptt_steps)

    def verify_delta(arrays):
        assert_close(arrays[3], e_delta, dtype)

    check_contract(data, backward, [H, W, dH, delta], (code, n_threads), dtype, verify_delta)

    def grad_hh(H, delta, G, n_threads):
        _rnn.rnn_grad_hh(H, delta, bs, G, n_threads)

    def verify_G(arrays):
        assert_close(arrays[2], e_G, dtype)

    check_contract(data, grad_hh, [H, delta.copy(), G], (n_threads,), dtype, verify_G)


# ---------------------------------------------------- adjoint identities

def _dot(a, b):
    return float(np.sum(_f64(a) * _f64(b)))


def _amax(a):
    return float(np.max(np.abs(a), initial=0.0))


def _assert_adjoint(lhs, rhs, scale):
    assert abs(lhs - rhs) <= 1e-11 * max(1.0, scale), (lhs, rhs)


@PROPERTY_SETTINGS
@given(n_threads=threads, seed=seeds, m=st.integers(1, 150), k=st.integers(1, 40),
       n=st.integers(1, 40))
def test_dense_adjoint(n_threads, seed, m, k, n):
    """<A W, D> = <A, D W^T> = <W, A^T D> with A W from the forward kernel and
    D W^T, A^T D from the backward kernel (identity activations)."""
    rng = np.random.default_rng(seed)
    A, W, D = rng.standard_normal((m, k)), rng.standard_normal((k, n)), rng.standard_normal((m, n))
    AW = np.empty((m, n))
    _dense.dense_forward(A, W, np.zeros(n), AW, 0, n_threads)
    gW, gb, DWt = np.empty((k, n)), np.empty(n), np.empty((m, k))
    _dense.dense_backward(A, W, D, gW, gb, DWt, 0, n_threads)
    scale = np.abs(AW).sum() * _amax(D)
    _assert_adjoint(_dot(AW, D), _dot(A, DWt), scale)
    _assert_adjoint(_dot(AW, D), _dot(W, gW), scale)
    _assert_adjoint(_dot(np.ones((m, n)), D), float(gb.sum()), np.abs(D).sum())


@PROPERTY_SETTINGS
@given(n_threads=threads, seed=seeds, **conv_shapes)
def test_conv5x5_adjoint(dispatch_path, n_threads, seed, n, c_in, c_out, h, w, density):
    """<conv(X; W), dZ> = <X, conv^T(dZ; W)> = <W, grad_W(X, dZ)>."""
    rng = np.random.default_rng(seed)
    X, W, table = _conv_problem(rng, np.float64, n, c_in, c_out, h, w, density)
    W = np.where(table.view(bool)[:, :, None, None], W, 0)  # unconnected weights unread
    dZ = rng.standard_normal((n, c_out, h - 4, w - 4))
    Y = np.empty_like(dZ)
    _conv.conv5x5_forward(X, W, np.zeros(c_out), table, Y, 0, n_threads)
    gW, gb, dX = np.empty_like(W), np.empty(c_out), np.empty_like(X)
    _conv.conv5x5_backward(X, W, dZ, table, gW, gb, dX, 0, n_threads)
    scale = (np.abs(Y).sum() + 1) * (_amax(dZ) + 1)
    _assert_adjoint(_dot(Y, dZ), _dot(X, dX), scale)
    _assert_adjoint(_dot(Y, dZ), _dot(W, gW), scale)


@PROPERTY_SETTINGS
@given(n_threads=threads, seed=seeds, **pool_shapes)
def test_pool2x2_adjoint(dispatch_path, n_threads, seed, n, c, h, w):
    """<pool(Y; coef), dZ> = <Y, pool^T(dZ; coef)> = <coef, grad_coef(Y, dZ)>."""
    rng = np.random.default_rng(seed)
    Y, coef = rng.standard_normal((n, c, 2 * h, 2 * w)), rng.standard_normal(c)
    dZ = rng.standard_normal((n, c, h, w))
    X = np.empty_like(dZ)
    _conv.pool2x2_forward(Y, coef, np.zeros(c), X, 0, n_threads)
    gc, gb, dY = np.empty(c), np.empty(c), np.empty_like(Y)
    _conv.pool2x2_backward(Y, coef, dZ, gc, gb, dY, 0, n_threads)
    scale = (np.abs(X).sum() + 1) * (_amax(dZ) + 1)
    _assert_adjoint(_dot(X, dZ), _dot(Y, dY), scale)
    _assert_adjoint(_dot(X, dZ), _dot(coef, gc), scale)


@PROPERTY_SETTINGS
@given(n_threads=threads, seed=seeds, bs=batch_sizes(), n_hidden=st.integers(1, 140))
def test_rnn_adjoint(dispatch_path, n_threads, seed, bs, n_hidden):
    """With the identity activation the time loop is linear in P, H = L P, and
    the backward kernel is its adjoint: <L P, dH> = <P, L^T dH>."""
    rng = np.random.default_rng(seed)
    P, W = _rnn_problem(rng, np.float64, bs, n_hidden)
    dH = rng.standard_normal(P.shape)
    H, delta = np.empty_like(P), np.empty_like(P)
    _rnn.rnn_forward(P, W, bs, H, 0, n_threads)
    _rnn.rnn_backward(H, W, bs, dH, delta, 0, n_threads)
    scale = (np.abs(H).sum() + 1) * (_amax(dH) + 1)
    _assert_adjoint(_dot(H, dH), _dot(P, delta), scale)
