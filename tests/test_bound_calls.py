"""Tests of the kernels' bound calls (``_calls``): a ``bind_*`` function
checks a call once and returns a BoundCall that runs it, on the arrays'
contents at the time it runs, as often as it is called.

Each kernel's results are compared with its NumPy twin (tests/_twins_conv.py,
tests/_twins_dense.py); bad calls must fail when bound, before anything runs.
"""
import gc
import weakref

import numpy as np
import pytest
from numpy.testing import assert_allclose

from fastbp import LeNet5Classifier
from fastbp._kernels import _calls, _conv, _dense

import _twins_conv as conv_twins
import _twins_dense as dense_twins

TANH = 2


def _close(actual, expected):
    assert_allclose(actual, expected, rtol=1e-10, atol=1e-12)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _conv_arrays(rng, n=3, c_in=2, c_out=4, size=9, table=None):
    X = rng.standard_normal((n, c_in, size, size))
    W = rng.standard_normal((c_out, c_in, 5, 5)) * 0.2
    b = rng.standard_normal(c_out)
    table = np.ones((c_out, c_in), np.uint8) if table is None else table
    return X, W, b, table


@pytest.mark.parametrize("size", [9, 5])  # direct, and the 1x1 output's GEMM path
def test_conv_forward_reads_its_arrays_at_each_run(rng, size):
    X, W, b, table = _conv_arrays(rng, size=size)
    Y = np.empty((len(X), len(W), size - 4, size - 4))
    call = _conv.bind_conv5x5_forward(X, W, b, table, Y, TANH, 2)
    assert isinstance(call, _calls.BoundCall)
    for _ in range(2):
        X[...] = rng.standard_normal(X.shape)
        W *= 1.5
        call()
        _close(Y, conv_twins.conv5x5_forward(X, W, b, table, TANH))


@pytest.mark.parametrize("size", [9, 5])
@pytest.mark.parametrize("want_dX", [True, False])
def test_conv_backward_reads_its_arrays_at_each_run(rng, size, want_dX):
    X, W, _, table = _conv_arrays(rng, size=size)
    X = np.tanh(X)
    dZ = rng.standard_normal((len(X), len(W), size - 4, size - 4))
    grad_W, grad_b = np.empty_like(W), np.empty(len(W))
    dX = np.empty_like(X) if want_dX else None
    call = _conv.bind_conv5x5_backward(X, W, dZ, table, grad_W, grad_b, dX, TANH, 2)
    for _ in range(2):
        dZ[...] = rng.standard_normal(dZ.shape)
        call()
        expected = conv_twins.conv5x5_backward(X, W, dZ, table, TANH, want_dX)
        _close(grad_W, expected[0])
        _close(grad_b, expected[1])
        if want_dX:
            _close(dX, expected[2])


def test_pool_calls_read_their_arrays_at_each_run(rng):
    Y = np.tanh(rng.standard_normal((3, 4, 6, 8)))
    coef, bias = rng.standard_normal(4), rng.standard_normal(4)
    X = np.empty((3, 4, 3, 4))
    dZ = rng.standard_normal(X.shape)
    grad_coef, grad_bias, dY = np.empty(4), np.empty(4), np.empty_like(Y)
    forward = _conv.bind_pool2x2_forward(Y, coef, bias, X, TANH, 2)
    backward = _conv.bind_pool2x2_backward(Y, coef, dZ, grad_coef, grad_bias, dY, TANH, 2)
    for _ in range(2):
        coef += 0.5
        dZ[...] = rng.standard_normal(dZ.shape)
        _calls.run_calls([forward, backward])
        _close(X, conv_twins.pool2x2_forward(Y, coef, bias, TANH))
        expected = conv_twins.pool2x2_backward(Y, coef, dZ, TANH)
        for actual, want in zip((grad_coef, grad_bias, dY), expected):
            _close(actual, want)


@pytest.mark.parametrize("want_delta_in", [True, False])
def test_dense_calls_read_their_arrays_at_each_run(rng, want_delta_in):
    A_in = np.tanh(rng.standard_normal((7, 5)))
    W, b = rng.standard_normal((5, 3)), rng.standard_normal(3)
    A_out, delta = np.empty((7, 3)), rng.standard_normal((7, 3))
    grad_W, grad_b = np.empty_like(W), np.empty(3)
    delta_in = np.empty_like(A_in) if want_delta_in else None
    forward = _dense.bind_dense_forward(A_in, W, b, A_out, TANH, 2)
    backward = _dense.bind_dense_backward(A_in, W, delta, grad_W, grad_b, delta_in, TANH, 2)
    for _ in range(2):
        W -= 0.25
        delta[...] = rng.standard_normal(delta.shape)
        forward()
        backward()
        _close(A_out, dense_twins.dense_forward(A_in, W, b, "tanh"))
        expected = dense_twins.dense_backward(A_in, W, delta, "tanh", want_delta_in)
        _close(grad_W, expected[0])
        _close(grad_b, expected[1])
        if want_delta_in:
            _close(delta_in, expected[2])


def test_dense_calls_on_empty_shapes_write_what_the_sums_give(rng):
    # no rows: zero gradients and delta_in; no inputs: g(b) on every row
    A_in, W = np.empty((0, 4)), rng.standard_normal((4, 3))
    grad_W, grad_b = np.full((4, 3), np.nan), np.full(3, np.nan)
    _dense.bind_dense_backward(A_in, W, np.empty((0, 3)), grad_W, grad_b, np.empty((0, 4)),
                               TANH, 2)()
    assert not grad_W.any() and not grad_b.any()
    b, A_out = rng.standard_normal(3), np.full((2, 3), np.nan)
    _dense.bind_dense_forward(np.empty((2, 0)), np.empty((0, 3)), b, A_out, TANH, 2)()
    _close(A_out, np.tile(np.tanh(b), (2, 1)))


def test_a_bound_call_keeps_its_arrays_alive(rng):
    X, W, b, table = _conv_arrays(rng)
    expected = conv_twins.conv5x5_forward(X, W, b, table, TANH)
    Y = np.empty(expected.shape)
    copies = [X.copy(), W.copy(), b.copy(), table.copy()]
    probe = weakref.ref(copies[0])
    call = _conv.bind_conv5x5_forward(*copies, Y, TANH, 2)
    del copies
    gc.collect()
    assert probe() is not None
    for junk in [rng.standard_normal(X.shape) for _ in range(4)]:  # reuse of freed memory
        junk += 1
    call()
    _close(Y, expected)
    del call
    gc.collect()
    assert probe() is None


@pytest.mark.parametrize("bind, args, message", [
    (_conv.bind_conv5x5_forward, lambda X, W, b, t: (X, W, b[:-1], t, np.empty((3, 4, 5, 5)),
                                                     TANH, 1), "b"),
    (_conv.bind_conv5x5_forward, lambda X, W, b, t: (X, W, b, t, np.empty((3, 4, 4, 5)),
                                                     TANH, 1), "Y"),
    (_conv.bind_conv5x5_backward, lambda X, W, b, t: (X, W, np.empty((3, 4, 5, 5)), t,
                                                      np.empty_like(W), b, np.empty((3, 2, 9, 8)),
                                                      TANH, 1), "dX"),
    (_conv.bind_pool2x2_forward, lambda X, W, b, t: (X[:, :, :8, :8].copy(), b[:2], b[:2],
                                                     np.empty((3, 2, 4, 3)), TANH, 1), "X"),
    (_dense.bind_dense_forward, lambda X, W, b, t: (X[0, 0], W[0, 0], b, np.empty((9, 4)),
                                                    TANH, 1), "W"),
])
def test_a_bad_call_fails_when_bound(rng, bind, args, message):
    X, W, b, table = _conv_arrays(rng)
    with pytest.raises(ValueError, match=message):
        bind(*args(X, W, b, table))


def test_run_calls_runs_bound_and_plain_calls_in_order(rng):
    A_in = rng.standard_normal((4, 3))
    W, b = rng.standard_normal((3, 3)), np.zeros(3)
    A_out = np.empty((4, 3))
    seen = []
    forward = _dense.bind_dense_forward(A_in, W, b, A_out, 0, 1)
    _calls.run_calls([lambda: A_in.__setitem__(..., 2 * A_in), forward,
                      lambda: seen.append(A_out.copy())])
    _close(seen[0], A_in @ W)
    with pytest.raises(TypeError):
        _calls.run_calls([forward, 3])


def test_the_network_runs_its_passes_as_recorded(rng):
    """loss_and_grad runs its bound passes through run_calls, and layer by
    layer when it records the deltas: both ways give the same bits."""
    X = rng.random((40, 28, 28))
    y = np.arange(40) % 4
    net = LeNet5Classifier(max_iter=1, batch_size=16, random_state=0).fit(X, y)._network
    images = np.zeros((16, 1, 32, 32))
    images[:, 0, 2:30, 2:30] = X[:16]
    Y = np.eye(4)[y[:16]]
    ws = net.workspace(16)
    loss = net.loss_and_grad(images, Y, None, 1e-3, ws, 2)
    grad = net.grad.copy()
    net.grad[...] = np.nan
    record = []
    assert net.loss_and_grad(images, Y, None, 1e-3, ws, 2, record=record) == loss
    np.testing.assert_array_equal(net.grad, grad)
    assert len(record) == len(net.layers)  # dL/dz of each layer
