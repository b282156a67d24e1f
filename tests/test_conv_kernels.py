"""Tests of the 5x5 convolution and 2x2 trainable mean-pool kernels.

Every kernel is compared with its NumPy twin (float64, tight tolerance), the
float32 kernels with the float64 ones, the linear parts with their adjoints,
and the gradients with central differences. Each test runs on every
instruction-set path this CPU offers (conftest.dispatch_path).
"""
from fractions import Fraction

import numpy as np
import pytest
from numpy.testing import assert_allclose

from fastbp._kernels import _conv, _dense

import _twins_conv as twins
from _numeric import central_difference

LECUN_C3_TABLE = twins.LECUN_C3_TABLE
ACTS = list(twins.ACTIVATIONS.values())
SMOOTH_ACTS = [0, 1, 2, 4]  # differentiable everywhere: central differences apply

# (n, c_in, c_out, h, w, table kind)
CONV_CASES = [
    (1, 1, 1, 5, 5, "full"),
    (2, 1, 6, 12, 10, "full"),
    (9, 6, 16, 14, 14, "lecun"),  # 2^20 multiply-adds in one block: maps split on 2 threads
    (9, 3, 5, 9, 7, "random"),
    (4, 16, 12, 5, 5, "full"),  # 1x1 output, full table: the GEMM path
    (11, 16, 36, 5, 5, "full"),  # the GEMM path's two products side by side
    (2, 16, 12, 5, 5, "random"),  # 1x1 output, sparse table: the direct path
    (5, 7, 3, 6, 11, "random"),
    (2, 4, 16, 8, 13, "holes"),  # an output map with no input, an unused input map
]
# widths up to 66: rows of one to three vectors on every path
POOL_CASES = [(1, 1, 2, 2), (3, 6, 28, 28), (9, 16, 10, 10), (2, 4, 6, 14), (5, 3, 8, 2),
              (2, 3, 4, 36), (1, 2, 2, 66)]


@pytest.fixture
def path(dispatch_path):
    """Each test runs on every instruction-set path (conftest.dispatch_path)."""
    return dispatch_path


def _table(kind, c_out, c_in, rng):
    if kind == "full":
        table = np.ones((c_out, c_in), dtype=bool)
    elif kind == "lecun":
        table = LECUN_C3_TABLE.copy()
    elif kind == "random":
        table = rng.random((c_out, c_in)) < 0.5
        table[0, 0] = True
        table[-1, -1] = False
    elif kind == "holes":
        table = rng.random((c_out, c_in)) < 0.6
        table[1, :] = False
        table[:, 2] = False
    return table.view(np.uint8)


def _conv_problem(case, act, seed=0, dtype=np.float64):
    n, c_in, c_out, h, w, kind = case
    rng = np.random.default_rng(seed)
    # X is the output of the layer below, so it lies in the range of act.
    X = twins.activate(rng.standard_normal((n, c_in, h, w)), act)
    W = rng.standard_normal((c_out, c_in, 5, 5)) / 5
    b = rng.standard_normal(c_out)
    table = _table(kind, c_out, c_in, rng)
    dZ = rng.standard_normal((n, c_out, h - 4, w - 4))
    return [a.astype(dtype) for a in (X, W, b)] + [table, dZ.astype(dtype)]


def conv_forward(X, W, b, table, act, n_threads=2):
    n, _, h, w = X.shape
    Y = np.full((n, W.shape[0], h - 4, w - 4), np.nan, dtype=X.dtype)
    _conv.conv5x5_forward(X, W, b, table, Y, act, n_threads)
    return Y


def conv_backward(X, W, dZ, table, in_act, n_threads=2, want_dX=True):
    gW = np.full(W.shape, np.nan, dtype=X.dtype)
    gb = np.full(W.shape[0], np.nan, dtype=X.dtype)
    dX = np.full(X.shape, np.nan, dtype=X.dtype) if want_dX else None
    _conv.conv5x5_backward(X, W, dZ, table, gW, gb, dX, in_act, n_threads)
    return gW, gb, dX


def pool_forward(Y, coef, bias, act, n_threads=2):
    n, c, h, w = Y.shape
    X = np.full((n, c, h // 2, w // 2), np.nan, dtype=Y.dtype)
    _conv.pool2x2_forward(Y, coef, bias, X, act, n_threads)
    return X


def pool_backward(Y, coef, dZ, in_act, n_threads=2, want_dY=True):
    gc = np.full(coef.shape, np.nan, dtype=Y.dtype)
    gb = np.full(coef.shape, np.nan, dtype=Y.dtype)
    dY = np.full(Y.shape, np.nan, dtype=Y.dtype) if want_dY else None
    _conv.pool2x2_backward(Y, coef, dZ, gc, gb, dY, in_act, n_threads)
    return gc, gb, dY


def _pool_problem(case, act, seed=0, dtype=np.float64):
    n, c, h, w = case
    rng = np.random.default_rng(seed)
    Y = twins.activate(rng.standard_normal((n, c, h, w)), act)
    coef = rng.standard_normal(c)
    bias = rng.standard_normal(c)
    dZ = rng.standard_normal((n, c, h // 2, w // 2))
    return [a.astype(dtype) for a in (Y, coef, bias, dZ)]


def assert_close(actual, desired, rtol):
    """Relative tolerance, with an absolute floor scaled to the array."""
    scale = np.abs(desired).max() if desired.size else 0.0
    assert_allclose(actual, desired, rtol=rtol, atol=rtol * scale)


def test_lecun_c3_table():
    t = LECUN_C3_TABLE
    assert t.shape == (16, 6) and t.dtype == bool
    assert t.sum(axis=1).tolist() == [3] * 6 + [4] * 9 + [6]
    assert t[0].nonzero()[0].tolist() == [0, 1, 2]
    assert t[5].nonzero()[0].tolist() == [0, 1, 5]  # {5, 6, 7} mod 6
    assert t[9].nonzero()[0].tolist() == [0, 3, 4, 5]
    assert t[14].nonzero()[0].tolist() == [0, 2, 3, 5]
    # 60 connections: LeCun's 1,516 trainable parameters of C3.
    assert t.sum() * 25 + 16 == 1516


# ---- one activation table: the dense layers' functions, bit for bit ----


def _dense_act(z, act):
    """act(z) through a dense layer of one input and one output: the 1x1 GEMM
    multiplies by 1.0 and adds a 0.0 bias, both exact."""
    out = np.empty((z.size, 1), z.dtype)
    _dense.dense_forward(np.ascontiguousarray(z).reshape(-1, 1), np.ones((1, 1), z.dtype), np.zeros(1, z.dtype),
                         out, act, 1)
    return out.reshape(z.shape)


def _dense_deriv(d, h, act):
    """d * act'(z) from h = act(z), through a dense layer's backward pass."""
    m = d.size
    delta_in = np.empty((m, 1), d.dtype)
    gW, gb = np.empty((1, 1), d.dtype), np.empty(1, d.dtype)
    h, d = np.ascontiguousarray(h), np.ascontiguousarray(d)
    _dense.dense_backward(h.reshape(-1, 1), np.ones((1, 1), d.dtype), d.reshape(-1, 1), gW, gb,
                          delta_in, act, 1)
    return delta_in.reshape(d.shape)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", ACTS)
def test_activations_are_the_dense_layers(path, act, dtype):
    # A one-hot kernel (and a pool of four equal values with coefficient 1)
    # hands the activation its input exactly, so the convolution and the
    # pooling must give the dense layer's f(z) and d * f'(z) bit for bit.
    rng = np.random.default_rng(act)
    z = (rng.standard_normal((3, 1, 12, 12)) * 6).astype(dtype)
    z.flat[:6] = [0.0, 30.0, -30.0, 1e-4, 0.3466, -0.75]
    h = _dense_act(z, act)  # the layer below's outputs
    d = rng.standard_normal(z.shape).astype(dtype)
    W = np.zeros((1, 1, 5, 5), dtype)
    W[0, 0, 0, 0] = 1
    one, zero, table = np.ones(1, dtype), np.zeros(1, dtype), np.ones((1, 1), np.uint8)
    Y = conv_forward(z, W, zero, table, act)
    np.testing.assert_array_equal(Y, _dense_act(z[:, :, :8, :8], act))
    dZ = np.zeros((3, 1, 8, 8), dtype)
    dZ[...] = d[:, :, :8, :8]
    _, _, dX = conv_backward(h, W, dZ, table, act)
    np.testing.assert_array_equal(dX[:, :, :8, :8], _dense_deriv(dZ, h[:, :, :8, :8], act))
    quad = np.repeat(np.repeat(z[:, :, :6, :6], 2, axis=2), 2, axis=3)
    np.testing.assert_array_equal(pool_forward(quad, one, zero, act),
                                  _dense_act(z[:, :, :6, :6], act))
    _, _, dY = pool_backward(h, 4 * one, np.ascontiguousarray(d[:, :, ::2, ::2]), act)
    up = np.repeat(np.repeat(d[:, :, ::2, ::2], 2, axis=2), 2, axis=3)
    np.testing.assert_array_equal(dY, _dense_deriv(up, h, act))


def test_activation_table_is_shared():
    # Codes are stored in pickled models: they never change. Every twin uses
    # the kernels' codes and LeCun's constants.
    import _twins_dense
    import _twins_rnn

    assert _dense.ACTIVATION_CODES == {"identity": 0, "logistic": 1, "tanh": 2, "relu": 3,
                                       "lecun_tanh": 4}
    assert twins.ACTIVATIONS == _twins_rnn.ACTIVATIONS == _dense.ACTIVATION_CODES
    for twin in (twins, _twins_rnn, _twins_dense):
        assert _dense.LECUN_TANH == (twin.LECUN_A, twin.LECUN_S)


# ---- against the NumPy twins (float64) and float32 against float64 ----


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_matches_twin(path, case, act):
    X, W, b, table, dZ = _conv_problem(case, act)
    assert_close(conv_forward(X, W, b, table, act), twins.conv5x5_forward(X, W, b, table, act),
                 rtol=1e-12)
    gW, gb, dX = conv_backward(X, W, dZ, table, act)
    rW, rb, rX = twins.conv5x5_backward(X, W, dZ, table, act)
    assert_close(gW, rW, rtol=1e-12)
    assert_close(gb, rb, rtol=1e-12)
    assert_close(dX, rX, rtol=1e-12)
    gW2, gb2, none = conv_backward(X, W, dZ, table, act, want_dX=False)
    assert none is None
    assert np.array_equal(gW2, gW) and np.array_equal(gb2, gb)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_float32_matches_float64(path, case, act):
    X, W, b, table, dZ = _conv_problem(case, act, seed=1)
    X32, W32, b32, dZ32 = (a.astype(np.float32) for a in (X, W, b, dZ))
    # Both from the same float32 inputs, so only the arithmetic differs.
    X, W, b, dZ = (a.astype(np.float64) for a in (X32, W32, b32, dZ32))
    Y32 = conv_forward(X32, W32, b32, table, act)
    assert Y32.dtype == np.float32
    assert_close(Y32, conv_forward(X, W, b, table, act), rtol=1e-4)
    for got, ref in zip(conv_backward(X32, W32, dZ32, table, act),
                        conv_backward(X, W, dZ, table, act)):
        assert got.dtype == np.float32
        assert_close(got, ref, rtol=1e-4)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("case", POOL_CASES)
def test_pool_matches_twin(path, case, act):
    Y, coef, bias, dZ = _pool_problem(case, act)
    assert_close(pool_forward(Y, coef, bias, act), twins.pool2x2_forward(Y, coef, bias, act),
                 rtol=1e-12)
    got = pool_backward(Y, coef, dZ, act)
    for g, r in zip(got, twins.pool2x2_backward(Y, coef, dZ, act)):
        assert_close(g, r, rtol=1e-12)
    gc, gb, none = pool_backward(Y, coef, dZ, act, want_dY=False)
    assert none is None
    assert np.array_equal(gc, got[0]) and np.array_equal(gb, got[1])


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("case", POOL_CASES)
def test_pool_float32_matches_float64(path, case, act):
    Y32, coef32, bias32, dZ32 = (a.astype(np.float32) for a in _pool_problem(case, act, seed=2))
    Y, coef, bias, dZ = (a.astype(np.float64) for a in (Y32, coef32, bias32, dZ32))
    assert_close(pool_forward(Y32, coef32, bias32, act), pool_forward(Y, coef, bias, act),
                 rtol=1e-4)
    for got, ref in zip(pool_backward(Y32, coef32, dZ32, act), pool_backward(Y, coef, dZ, act)):
        assert got.dtype == np.float32
        assert_close(got, ref, rtol=1e-4)


# ---- adjoints of the linear parts: <dZ, J v> = <J^T dZ, v> ----


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_adjoint(path, case):
    X, W, b, table, dZ = _conv_problem(case, 0, seed=3)
    rng = np.random.default_rng(4)
    zero_b = np.zeros_like(b)
    gW, _, dX = conv_backward(X, W, dZ, table, 0)
    # Linear in X (W fixed) ...
    V = rng.standard_normal(X.shape)
    lhs = np.vdot(dZ, conv_forward(V, W, zero_b, table, 0))
    assert_allclose(lhs, np.vdot(dX, V), rtol=1e-12, atol=1e-12 * np.abs(dX).sum())
    # ... and in W (X fixed).
    VW = rng.standard_normal(W.shape)
    lhs = np.vdot(dZ, conv_forward(X, VW, zero_b, table, 0))
    assert_allclose(lhs, np.vdot(gW, VW), rtol=1e-12, atol=1e-12 * np.abs(gW).sum())


@pytest.mark.parametrize("case", POOL_CASES)
def test_pool_adjoint(path, case):
    Y, coef, bias, dZ = _pool_problem(case, 0, seed=5)
    rng = np.random.default_rng(6)
    zero = np.zeros_like(bias)
    gc, _, dY = pool_backward(Y, coef, dZ, 0)
    V = rng.standard_normal(Y.shape)
    lhs = np.vdot(dZ, pool_forward(V, coef, zero, 0))
    assert_allclose(lhs, np.vdot(dY, V), rtol=1e-12, atol=1e-12 * np.abs(dY).sum())
    vc = rng.standard_normal(coef.shape)
    lhs = np.vdot(dZ, pool_forward(Y, vc, zero, 0))
    assert_allclose(lhs, np.vdot(gc, vc), rtol=1e-12, atol=1e-12 * np.abs(gc).sum())


# ---- central differences ----


def _rel_err(num, ana):
    return np.linalg.norm(num - ana) / max(np.linalg.norm(num) + np.linalg.norm(ana), 1e-300)


@pytest.mark.parametrize("act,in_act", [(4, 2), (1, 4), (2, 1), (0, 0)])
@pytest.mark.parametrize("shape", [(2, 3, 4, 7, 6), (3, 2, 3, 5, 5)])
def test_conv_gradient_central_differences(path, act, in_act, shape):
    n, c_in, c_out, h, w = shape
    rng = np.random.default_rng(7)
    z_in = rng.standard_normal((n, c_in, h, w))
    W = rng.standard_normal((c_out, c_in, 5, 5)) / 5
    b = rng.standard_normal(c_out)
    table = (rng.random((c_out, c_in)) < 0.7).view(np.uint8)
    table[0, 0], table[-1, -1] = 1, 0
    r = rng.standard_normal((n, c_out, h - 4, w - 4))

    def loss():  # L = sum r * g(conv(g_in(z_in)))
        return np.vdot(r, conv_forward(twins.activate(z_in, in_act), W, b, table, act))

    X = twins.activate(z_in, in_act)
    Y = conv_forward(X, W, b, table, act)
    dZ = r * twins.derivative_from_output(Y, act)
    gW, gb, dz_in = conv_backward(X, W, dZ, table, in_act)
    assert _rel_err(central_difference(loss, W), gW) <= 1e-6
    assert _rel_err(central_difference(loss, b), gb) <= 1e-6
    assert _rel_err(central_difference(loss, z_in), dz_in) <= 1e-6


@pytest.mark.parametrize("act,in_act", [(4, 2), (1, 4), (2, 1), (0, 0)])
def test_pool_gradient_central_differences(path, act, in_act):
    rng = np.random.default_rng(8)
    z_in = rng.standard_normal((2, 3, 4, 6))
    coef = rng.standard_normal(3)
    bias = rng.standard_normal(3)
    r = rng.standard_normal((2, 3, 2, 3))

    def loss():
        return np.vdot(r, pool_forward(twins.activate(z_in, in_act), coef, bias, act))

    Y = twins.activate(z_in, in_act)
    X = pool_forward(Y, coef, bias, act)
    dZ = r * twins.derivative_from_output(X, act)
    gc, gb, dz_in = pool_backward(Y, coef, dZ, in_act)
    assert _rel_err(central_difference(loss, coef), gc) <= 1e-6
    assert _rel_err(central_difference(loss, bias), gb) <= 1e-6
    assert _rel_err(central_difference(loss, z_in), dz_in) <= 1e-6


# ---- connection table ----


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", [c for c in CONV_CASES if c[-1] != "full"])
def test_unconnected_pairs_are_skipped(path, case, dtype):
    X, W, b, table, dZ = _conv_problem(case, 2, seed=9, dtype=dtype)
    off = ~table.view(bool)
    assert off.any()
    Y = conv_forward(X, W, b, table, 2)
    gW, gb, dX = conv_backward(X, W, dZ, table, 2)
    assert np.all(gW[off] == 0)
    assert np.all(gW[~off] != 0)
    # Unconnected weights are never read: even NaN there changes nothing.
    W2 = W.copy()
    W2[off] = np.nan
    assert np.array_equal(conv_forward(X, W2, b, table, 2), Y)
    gW2, gb2, dX2 = conv_backward(X, W2, dZ, table, 2)
    assert np.array_equal(gW2, gW) and np.array_equal(gb2, gb) and np.array_equal(dX2, dX)


def test_output_map_without_inputs(path):
    X, W, b, table, dZ = _conv_problem(CONV_CASES[-1], 4)
    assert not table[1].any()
    Y = conv_forward(X, W, b, table, 4)
    assert np.array_equal(Y[:, 1], np.full_like(Y[:, 1], Y[0, 1, 0, 0]))
    assert_allclose(Y[0, 1, 0, 0], twins.activate(b[1:2], 4)[0], rtol=1e-15)


# ---- determinism ----


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", [(261, 6, 16, 14, 14, "lecun"), (133, 16, 24, 5, 5, "full"),
                                  (32, 16, 120, 5, 5, "full"), (11, 16, 36, 5, 5, "full"),
                                  (21, 1, 6, 32, 32, "full"), (19, 5, 4, 9, 8, "random"),
                                  (19, 6, 16, 14, 14, "lecun")])
@pytest.mark.compares_n_threads
def test_conv_bitwise_identical_across_threads(path, case, dtype):
    # 261 samples = 17 blocks of 16 floats, 33 of 8 doubles: more than one
    # wave of block sums, and a partial block. Fewer blocks than threads (21
    # or 19 samples on 3 or 5 threads) split the forward pass's output maps
    # and (19 samples of 6 maps) the backward pass's input maps among them.
    X, W, b, table, dZ = _conv_problem(case, 4, seed=10, dtype=dtype)
    runs = [(conv_forward(X, W, b, table, 4, t),) + conv_backward(X, W, dZ, table, 4, t)
            for t in (1, 2, 3, 5)]
    for other in runs[1:]:
        for a, b_ in zip(runs[0], other):
            assert np.array_equal(a, b_)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", [(3, 1, 6, 16, 20, "full"), (2, 6, 16, 14, 14, "full"),
                                  (2, 5, 11, 9, 12, "full"), (2, 6, 16, 14, 14, "lecun"),
                                  (2, 4, 16, 8, 13, "holes")])
def test_conv_maps_bitwise_independent_of_tiling(path, case, dtype):
    # A layer computes its output maps (input maps, for dX) in tiles of 1, 2
    # or 4 maps, and grad_W over 1, 2 or 4 output maps of an input map; each
    # map's sums must not depend on that grouping. Every map computed alone
    # (a tile of one) must then give bitwise the same result. Y and dX only
    # for full tables: a pair that shares only some input maps sums them in
    # another order (shared ones first) than a map alone.
    X, W, b, table, dZ = _conv_problem(case, 2, seed=12, dtype=dtype)
    full = case[-1] == "full"
    Y = conv_forward(X, W, b, table, 2)
    gW, gb, dX = conv_backward(X, W, dZ, table, 2)
    one = np.ascontiguousarray
    for o in range(W.shape[0]):
        s = slice(o, o + 1)
        gW1, gb1, _ = conv_backward(X, W[s], one(dZ[:, s]), table[s], 2, want_dX=False)
        assert np.array_equal(gW1, gW[s]) and np.array_equal(gb1, gb[s])
        if full:
            assert np.array_equal(conv_forward(X, W[s], b[s], table[s], 2), Y[:, s])
    for i in range(X.shape[1] if full else 0):
        s = slice(i, i + 1)
        _, _, dX1 = conv_backward(one(X[:, s]), one(W[:, s]), dZ, one(table[:, s]), 2)
        assert np.array_equal(dX1, dX[:, s])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", [(20, 1, 6, 32, 32, "full"), (20, 6, 16, 14, 14, "lecun"),
                                  (20, 4, 16, 8, 13, "holes")])
def test_conv_forward_of_a_sample_does_not_depend_on_its_batch(path, case, dtype):
    # Blocks of samples side by side, and a block's last few samples one at
    # a time: each output must be bitwise the same whichever way it ran.
    X, W, b, table, _ = _conv_problem(case, 2, seed=13, dtype=dtype)
    Y = conv_forward(X, W, b, table, 2)
    for i in range(X.shape[0]):
        assert np.array_equal(conv_forward(X[i:i + 1], W, b, table, 2), Y[i:i + 1])
    for n in (3, 7, 13, 17):
        assert np.array_equal(conv_forward(X[:n], W, b, table, 2), Y[:n])


@pytest.mark.compares_n_threads
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pool_bitwise_identical_across_threads(path, dtype):
    Y, coef, bias, dZ = _pool_problem((133, 6, 28, 28), 4, seed=11, dtype=dtype)
    runs = [(pool_forward(Y, coef, bias, 4, t),) + pool_backward(Y, coef, dZ, 4, t)
            for t in (1, 2, 3)]
    for other in runs[1:]:
        for a, b_ in zip(runs[0], other):
            assert np.array_equal(a, b_)


def _side_by_side(A):
    """A (NCHW) side by side, NaN in the lanes past its samples: no result
    may depend on them."""
    rows = _conv.padded_rows(len(A), A.dtype)
    padded = np.full((rows,) + A.shape[1:], np.nan, dtype=A.dtype)
    padded[:len(A)] = A
    out = np.empty_like(padded)
    _conv.to_blocks(padded, out)
    return out


def _nchw(B, n):
    out = np.full((n,) + B.shape[1:], np.nan, dtype=B.dtype)
    _conv.from_blocks(B, out)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 7, 16, 17, 40])
def test_side_by_side_round_trip(path, n, dtype):
    X = np.random.default_rng(n).standard_normal((n, 3, 5, 7)).astype(dtype)
    B = np.full((_conv.padded_rows(n, dtype), 3, 5, 7), np.nan, dtype=dtype)
    _conv.to_blocks(X, B)
    assert _conv.padded_rows(n, dtype) % _conv.block_samples(dtype) == 0
    assert np.array_equal(_nchw(B, n), X)
    if n >= 2 and path != "portable":  # a vector's lanes are samples (a 1-lane build: NCHW)
        assert not np.array_equal(B[:n], X)


# (n, c_in, c_out, h, w, table kind): full and partial blocks, LeNet's shapes
SIDE_CASES = [(17, 1, 6, 32, 32, "full"), (40, 6, 16, 14, 14, "lecun"),
              (5, 3, 5, 9, 7, "random"), (33, 4, 16, 8, 13, "holes")]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", [(True, True), (False, True), (True, False)])
@pytest.mark.parametrize("case", SIDE_CASES)
def test_conv_side_by_side_is_nchw_to_the_bit(path, case, layout, dtype):
    # The layers hand maps on side by side: every output and gradient must be
    # bitwise what the NCHW call gives, on 1 and 3 threads.
    in_b, out_b = layout
    n = case[0]
    X, W, b, table, dZ = _conv_problem(case, 2, seed=14, dtype=dtype)
    Y = conv_forward(X, W, b, table, 2)
    gW, gb, dX = conv_backward(X, W, dZ, table, 2)
    for t in (1, 3):
        Xs = _side_by_side(X) if in_b else X
        Ys = np.full(((_conv.padded_rows(n, dtype),) if out_b else (n,)) + Y.shape[1:], np.nan,
                     dtype=dtype)
        _conv.conv5x5_forward(Xs, W, b, table, Ys, 2, t, n_samples=n, in_blocked=in_b,
                              out_blocked=out_b)
        assert np.array_equal(_nchw(Ys, n) if out_b else Ys, Y)
        gW2, gb2 = np.full_like(gW, np.nan), np.full_like(gb, np.nan)
        dXs = np.full_like(Xs, np.nan)
        _conv.conv5x5_backward(Xs, W, _side_by_side(dZ) if out_b else dZ, table, gW2, gb2, dXs,
                               2, t, n_samples=n, in_blocked=in_b, out_blocked=out_b)
        assert np.array_equal(gW2, gW) and np.array_equal(gb2, gb)
        assert np.array_equal(_nchw(dXs, n) if in_b else dXs, dX)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("out_b", [True, False])
@pytest.mark.parametrize("case", [(17, 6, 28, 28), (40, 16, 10, 10), (3, 4, 6, 14),
                                  (9, 2, 4, 36)])
def test_pool_side_by_side_is_nchw_to_the_bit(path, case, out_b, dtype):
    n = case[0]
    Y, coef, bias, dZ = _pool_problem(case, 4, seed=15, dtype=dtype)
    X = pool_forward(Y, coef, bias, 4)
    gc, gb, dY = pool_backward(Y, coef, dZ, 4)
    for t in (1, 3):
        Ys = _side_by_side(Y)
        Xs = np.full(((_conv.padded_rows(n, dtype),) if out_b else (n,)) + X.shape[1:], np.nan,
                     dtype=dtype)
        _conv.pool2x2_forward(Ys, coef, bias, Xs, 4, t, n_samples=n, in_blocked=True,
                              out_blocked=out_b)
        assert np.array_equal(_nchw(Xs, n) if out_b else Xs, X)
        gc2, gb2, dYs = np.full_like(gc, np.nan), np.full_like(gb, np.nan), np.full_like(Ys, np.nan)
        _conv.pool2x2_backward(Ys, coef, _side_by_side(dZ) if out_b else dZ, gc2, gb2, dYs, 4, t,
                               n_samples=n, in_blocked=True, out_blocked=out_b)
        assert np.array_equal(gc2, gc) and np.array_equal(gb2, gb)
        assert np.array_equal(_nchw(dYs, n), dY)
        _conv.pool2x2_backward(Ys, coef, _side_by_side(dZ) if out_b else dZ, gc2, gb2, None, 4,
                               t, n_samples=n, in_blocked=True, out_blocked=out_b)
        assert np.array_equal(gc2, gc) and np.array_equal(gb2, gb)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pool_gradient_sums_in_the_stated_order(path, dtype):
    # Per sample: each pooled column over its rows, then the columns; then
    # the samples of each block in order, then the blocks. grad_coef's terms
    # are multiply-adds, fused on the AVX paths (rounded once, here through
    # exact fractions), so scalar arithmetic in that order gives every bit.
    n, c, h, w = 19, 2, 6, 10
    Y, coef, _, dZ = _pool_problem((n, c, h, w), 2, seed=16, dtype=dtype)
    gc, gb, _ = pool_backward(Y, coef, dZ, 2, want_dY=False)
    zero, quarter, bl = dtype(0), dtype(0.25), _conv.block_samples(dtype)

    def multiply_add(a, b, acc):
        if path == "portable":
            return acc + a * b
        return dtype(float(Fraction(float(a)) * Fraction(float(b)) + Fraction(float(acc))))

    for ch in range(c):
        total_c = total_b = zero
        for start in range(0, n, bl):
            block_c = block_b = zero
            for i in range(start, min(start + bl, n)):
                sample_c = sample_b = zero
                for x in range(w // 2):
                    col_c = col_b = zero
                    for r in range(h // 2):
                        y0, y1 = Y[i, ch, 2 * r], Y[i, ch, 2 * r + 1]
                        s = (y0[2 * x] + y0[2 * x + 1]) + (y1[2 * x] + y1[2 * x + 1])
                        d = dZ[i, ch, r, x]
                        col_c = multiply_add(d, quarter * s, col_c)
                        col_b = col_b + d
                    sample_c, sample_b = sample_c + col_c, sample_b + col_b
                block_c, block_b = block_c + sample_c, block_b + sample_b
            total_c, total_b = total_c + block_c, total_b + block_b
        assert gc[ch] == total_c and gb[ch] == total_b


def test_side_by_side_arguments_are_checked():
    X, W, b, table, dZ = _conv_problem((17, 6, 16, 14, 14, "lecun"), 2, dtype=np.float32)
    Xs = _side_by_side(X)
    Y = np.empty((32, 16, 10, 10), np.float32)
    with pytest.raises(ValueError, match="n_samples"):
        _conv.conv5x5_forward(Xs, W, b, table, Y, 2, 1, in_blocked=True)
    with pytest.raises(ValueError, match="expected 32"):
        _conv.conv5x5_forward(Xs[:17], W, b, table, Y, 2, 1, n_samples=17, in_blocked=True,
                              out_blocked=True)
    with pytest.raises(ValueError, match="expected 17"):
        _conv.conv5x5_forward(Xs, W, b, table, Y, 2, 1, n_samples=17, in_blocked=True)
    with pytest.raises(ValueError, match="Y has 17 rows"):
        _conv.conv5x5_forward(Xs, W, b, table, Y[:17], 2, 1, n_samples=17, in_blocked=True,
                              out_blocked=True)
    dX = np.empty_like(X)
    with pytest.raises(ValueError, match="dX has 17 rows"):
        _conv.conv5x5_backward(Xs, W, dZ, table, np.empty_like(W), np.empty_like(b), dX, 2, 1,
                               n_samples=17, in_blocked=True)
    dense = np.ones((12, 16), np.uint8)
    X5 = np.zeros((16, 16, 5, 5), np.float32)
    with pytest.raises(ValueError, match="dense layer"):
        _conv.conv5x5_forward(X5, np.zeros((12, 16, 5, 5), np.float32),
                              np.zeros(12, np.float32), dense,
                              np.empty((16, 12, 1, 1), np.float32), 0, 1, n_samples=16,
                              in_blocked=True)
    P = np.zeros((16, 2, 4, 4), np.float32)
    with pytest.raises(ValueError, match="needs its input side by side"):
        _conv.pool2x2_forward(P, np.ones(2, np.float32), np.zeros(2, np.float32),
                              np.empty((16, 2, 2, 2), np.float32), 0, 1, n_samples=16,
                              out_blocked=True)
    with pytest.raises(ValueError, match="out has 17 rows"):
        _conv.to_blocks(X, np.empty_like(X))


def test_empty_batch():
    X, W, b, table, dZ = _conv_problem((0, 3, 4, 9, 9, "random"), 0)
    assert conv_forward(X, W, b, table, 0).shape == (0, 4, 5, 5)
    gW, gb, dX = conv_backward(X, W, dZ, table, 0)
    assert np.all(gW == 0) and np.all(gb == 0) and dX.shape == X.shape
    Y, coef, bias, dZ = _pool_problem((0, 3, 4, 4), 0)
    gc, gb, dY = pool_backward(Y, coef, dZ, 0)
    assert np.all(gc == 0) and np.all(gb == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [16, 7])
@pytest.mark.parametrize("side_by_side", [False, True])
def test_conv_weight_gradient_sums_a_blocks_samples_in_order(path, dtype, n, side_by_side):
    # Each weight's gradient adds a block's samples in order, the first
    # sample first, then the blocks in order. With a first sample of 2^24
    # (2^53 in float64) and ones after it, every one of its block rounds
    # away in that order; any other order keeps some of them. dZ is 1 at the
    # first output only, so the term of sample i is X[i] at the weight's
    # offset.
    big = dtype(2.0 ** (24 if dtype == np.float32 else 53))
    X = np.zeros((n, 1, 6, 6), dtype)
    X[:, 0, 2, 3] = 1
    X[0, 0, 2, 3] = big
    dZ = np.zeros((n, 1, 2, 2), dtype)
    dZ[:, 0, 0, 0] = 1
    W = np.zeros((1, 1, 5, 5), dtype)
    table = np.ones((1, 1), np.uint8)
    gW, gb = np.full_like(W, np.nan), np.full(1, np.nan, dtype)
    if side_by_side:
        rows = _conv.padded_rows(n, dtype)
        Xb, dZb = np.empty((rows, 1, 6, 6), dtype), np.empty((rows, 1, 2, 2), dtype)
        _conv.to_blocks(X, Xb)
        _conv.to_blocks(dZ, dZb)
        _conv.conv5x5_backward(Xb, W, dZb, table, gW, gb, None, 0, 2, n_samples=n,
                               in_blocked=True, out_blocked=True)
    else:
        _conv.conv5x5_backward(X, W, dZ, table, gW, gb, None, 0, 2)
    total, bl = dtype(0), _conv.block_samples(dtype)
    for start in range(0, n, bl):
        block = X[start, 0, 2, 3]
        for i in range(start + 1, min(start + bl, n)):
            block = block + X[i, 0, 2, 3]
        total = total + block
    assert total == big + max(0, n - bl)  # the ones of the first block all lost
    expected = np.zeros_like(W)
    expected[0, 0, 2, 3] = total
    assert np.array_equal(gW, expected)
    assert gb[0] == n
