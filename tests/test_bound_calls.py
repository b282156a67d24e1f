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
from fastbp._layers import SideBySide, as_array

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
                                                     TANH, 1), "^b has shape"),
    (_conv.bind_conv5x5_forward, lambda X, W, b, t: (X, W, b, t, np.empty((3, 4, 4, 5)),
                                                     TANH, 1), "^Y has shape"),
    (_conv.bind_conv5x5_forward, lambda X, W, b, t: (X, W, b, t, np.empty((3, 4, 5, 5)),
                                                     TANH, 1, {"in_blocked": True}),
     "^n_samples is needed"),
    (_conv.bind_conv5x5_backward, lambda X, W, b, t: (X, W, np.empty((3, 4, 5, 5)), t,
                                                      np.empty_like(W), b, np.empty((3, 2, 9, 8)),
                                                      TANH, 1), "^dX has shape"),
    (_conv.bind_pool2x2_forward, lambda X, W, b, t: (X[:, :, :8, :8].copy(), b[:2], b[:2],
                                                     np.empty((3, 2, 4, 3)), TANH, 1),
     "^X has shape"),
    (_conv.bind_pool2x2_backward, lambda X, W, b, t: (X[:, :, :8, :8].copy(), b[:2],
                                                      np.empty((3, 2, 4, 4)), b[:3], b[:2],
                                                      None, TANH, 1), "^grad_coef has shape"),
    (_dense.bind_dense_forward, lambda X, W, b, t: (X[0, 0], W[0, 0], b, np.empty((9, 4)),
                                                    TANH, 1), "^W has shape"),
    (_dense.bind_dense_backward, lambda X, W, b, t: (X[0, 0], X[0, 0, :, :4].copy(),
                                                     np.empty((9, 5)), np.empty((9, 4)), b,
                                                     None, TANH, 1), "^delta has shape"),
])
def test_a_bad_call_fails_when_bound(rng, bind, args, message):
    X, W, b, table = _conv_arrays(rng)
    arguments = args(X, W, b, table)
    keywords = arguments[-1] if isinstance(arguments[-1], dict) else {}
    with pytest.raises(ValueError, match=message):
        bind(*arguments[:len(arguments) - bool(keywords)], **keywords)


def test_a_call_not_made_by_a_bind_function_refuses_to_run():
    for call in (_calls.BoundCall(), _conv._ConvBackward(), _dense._DenseForward()):
        with pytest.raises(ValueError, match="bind_"):
            call()
        with pytest.raises(ValueError, match="bind_"):
            _calls.run_calls([call])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("in_blocked, out_blocked", [(False, True), (True, True), (True, False)])
def test_bound_calls_on_maps_side_by_side_match_the_entry_points(rng, dtype, in_blocked,
                                                                 out_blocked):
    """Both ways of running a kernel, on the layouts LeNet-5 links its
    layers with: the same bits (each layout's arithmetic is checked against
    the twins in test_conv_kernels.py)."""
    n = 21  # a partial block
    rows = _conv.padded_rows(n, dtype)
    X = rng.standard_normal((rows if in_blocked else n, 3, 12, 12)).astype(dtype)
    W = (rng.standard_normal((5, 3, 5, 5)) * 0.2).astype(dtype)
    b = rng.standard_normal(5).astype(dtype)
    table = (rng.random((5, 3)) < 0.7).view(np.uint8)
    table[0, 0] = 1
    out_shape = (rows if out_blocked else n, 5, 8, 8)
    layout = {"n_samples": n, "in_blocked": in_blocked, "out_blocked": out_blocked}
    Y_entry, Y_bound = np.zeros(out_shape, dtype), np.zeros(out_shape, dtype)
    _conv.conv5x5_forward(X, W, b, table, Y_entry, TANH, 2, **layout)
    _conv.bind_conv5x5_forward(X, W, b, table, Y_bound, TANH, 2, **layout)()
    np.testing.assert_array_equal(Y_bound, Y_entry)
    dZ = rng.standard_normal(out_shape).astype(dtype)
    results = []
    for kernel in (_conv.conv5x5_backward, _conv.bind_conv5x5_backward):
        outputs = np.empty_like(W), np.empty_like(b), np.zeros_like(X)
        call = kernel(X, W, dZ, table, *outputs, TANH, 2, **layout)
        if call is not None:
            call()
        results.append(outputs)
    for bound, entry in zip(*results):
        np.testing.assert_array_equal(bound, entry)


def test_a_bound_convolution_keeps_the_table_it_was_bound_with(rng):
    """The connection table shapes a call (which pairs it computes, and the
    dense path or the direct one) as its shapes do: it is read when bound."""
    X, W, b, table = _conv_arrays(rng, size=5)
    Y = np.empty((len(X), len(W), 1, 1))
    expected = conv_twins.conv5x5_forward(X, W, b, table, TANH)
    call = _conv.bind_conv5x5_forward(X, W, b, table, Y, TANH, 2)
    table[0, 0] = 0
    call()
    _close(Y, expected)


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


def _lenet_batch(rng):
    """A fitted LeNet-5 network (float64, 4 classes), a batch of 16 padded
    images and its one-hot targets."""
    X = rng.random((40, 28, 28))
    y = np.arange(40) % 4
    net = LeNet5Classifier(max_iter=1, batch_size=16, random_state=0).fit(X, y)._network
    images = np.zeros((16, 1, 32, 32))
    images[:, 0, 2:30, 2:30] = X[:16]
    return net, images, np.eye(4)[y[:16]]


def test_the_networks_bound_passes_match_the_entry_points(rng):
    """loss_and_grad runs its passes as BoundCalls (run_calls); the layers'
    one-off runs (``once``) call the kernels' entry points (those on maps side
    by side are bound, and stacked, here too): the same bits."""
    net, images, Y = _lenet_batch(rng)
    ws = net.workspace(16)
    net.loss_and_grad(images, Y, None, 0.0, ws, 2)
    bound_activations = [as_array(a) for a in ws.passes.activations[1:-1]]
    grad = net.grad.copy()
    net.grad[...] = np.nan
    once = net.workspace(16)
    activations = net.forward(images, once, 2)  # one-off runs
    for bound, entry in zip(bound_activations, activations[1:-1]):
        np.testing.assert_array_equal(bound, as_array(entry))
    delta = ws.delta_out  # dL/dlogits of the bound pass, from the same logits
    for i in range(len(net.layers) - 1, -1, -1):
        delta = net.layers[i].backward(activations[i], activations[i + 1], delta,
                                       once.layers[i], i > 0, 2)
    np.testing.assert_array_equal(net.grad, grad)


def test_the_network_runs_its_passes_as_recorded(rng):
    """loss_and_grad runs its bound passes through run_calls, and layer by
    layer when it records the deltas: both ways give the same bits."""
    net, images, Y = _lenet_batch(rng)
    ws = net.workspace(16)
    loss = net.loss_and_grad(images, Y, None, 1e-3, ws, 2)
    grad = net.grad.copy()
    net.grad[...] = np.nan
    record = []
    assert net.loss_and_grad(images, Y, None, 1e-3, ws, 2, record=record) == loss
    np.testing.assert_array_equal(net.grad, grad)
    assert len(record) == len(net.layers)  # dL/dz of each layer


def _lenet_images(rng, n, dtype):
    """A fitted LeNet-5 network of ``dtype`` (LeCun's C3 table, 4 classes),
    n padded images and their one-hot targets."""
    X = rng.random((40, 28, 28)).astype(dtype)
    y = np.arange(40) % 4
    net = LeNet5Classifier(max_iter=1, batch_size=16, random_state=0).fit(X, y)._network
    images = np.zeros((n, 1, 32, 32), dtype)
    images[:, 0, 2:30, 2:30] = rng.random((n, 28, 28))
    return net, images, np.eye(4, dtype=dtype)[np.arange(n) % 4]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [16, 40, 300])  # one block; several, the last partial; two waves
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_stacked_passes_give_the_bits_of_the_layers_one_by_one(rng, dtype, n, n_threads,
                                                               dispatch_path):
    """C1 -> S2 -> C3 -> S4 hand their maps on side by side in a batch of a
    block or more, so loss_and_grad runs them as one stacked call each way
    (block by block where the threads allow, else layer by layer): the loss,
    every activation and every gradient are those of the layers' bound calls
    run one by one."""
    net, images, Y = _lenet_images(rng, n, dtype)
    ws = net.workspace(n)
    loss = net.loss_and_grad(images, Y, None, 1e-3, ws, n_threads)
    passes = ws.passes
    blocked = n >= _conv.block_samples(dtype)
    assert len(passes.forward) == (4 if blocked else 7)
    assert len(passes.backward_runs) == (4 if blocked else 7)
    activations = [as_array(a) for a in passes.activations[1:]]
    grad = net.grad.copy()

    passes.forward = net._bind_forward(images, ws, n_threads)[1]
    passes.backward_runs = [run for run, _ in passes.backward]
    assert len(passes.forward) == len(passes.backward_runs) == 7
    net.grad[...] = np.nan
    for a in passes.activations[1:]:
        (a.data if isinstance(a, SideBySide) else a)[...] = np.nan
    assert net.loss_and_grad(images, Y, None, 1e-3, ws, n_threads) == loss
    np.testing.assert_array_equal(net.grad, grad)
    for a, expected in zip(passes.activations[1:], activations):
        np.testing.assert_array_equal(as_array(a), expected)


def test_stack_calls_groups_only_calls_that_hand_maps_on_side_by_side(rng):
    net, images, Y = _lenet_images(rng, 40, np.float64)
    ws = net.workspace(40)
    c1, s2, c3, s4, c5, f6, out = net._bind_forward(images, ws, 2)[1]
    stacked = _conv.stack_calls([c1, s2, c3, s4, c5, f6, out])
    assert len(stacked) == 4 and stacked[1:] == [c5, f6, out]
    assert isinstance(stacked[0], _calls.BoundCall)
    # C3 does not read C1's maps; a plain callable breaks a run; a lone
    # call stays itself
    plain = lambda: None  # noqa: E731
    assert _conv.stack_calls([c1, c3]) == [c1, c3]
    assert _conv.stack_calls([c1, plain, s2]) == [c1, plain, s2]
    assert _conv.stack_calls([s4]) == [s4]
    # on the same buffers: another thread count, or another number of
    # samples in the same padded rows, is not linked
    s2_threads = net._bind_forward(images, ws, 3)[1][1]
    assert _conv.stack_calls([c1, s2_threads]) == [c1, s2_threads]
    s2_fewer = net._bind_forward(images[:33], ws, 2)[1][1]
    assert _conv.stack_calls([c1, s2_fewer]) == [c1, s2_fewer]
    # NCHW maps between the layers (a batch under a block) are not linked
    few = net._bind_forward(images[:5], net.workspace(5), 2)[1]
    assert _conv.stack_calls(few[:4]) == few[:4]


def test_stack_calls_links_only_maps_of_the_same_shape(rng):
    """A pool that reads, from the array C1 writes, maps of another shape
    per sample is not C1's next layer: it stays a call of its own, and runs
    as it does alone."""
    n, rows = 40, _conv.padded_rows(40, np.float32)
    X = rng.standard_normal((n, 1, 32, 32)).astype(np.float32)
    W = (rng.standard_normal((6, 1, 5, 5)) * 0.2).astype(np.float32)
    b = np.zeros(6, np.float32)
    buf = np.zeros(rows * 8 * 28 * 28, np.float32)
    Y = buf[:rows * 6 * 784].reshape(rows, 6, 28, 28)
    conv = _conv.bind_conv5x5_forward(X, W, b, np.ones((6, 1), np.uint8), Y, TANH, 2,
                                      n_samples=n, out_blocked=True)
    coef, bias = np.ones(8, np.float32), np.zeros(8, np.float32)
    pooled = np.zeros((rows, 8, 14, 14), np.float32)
    pool = _conv.bind_pool2x2_forward(buf.reshape(rows, 8, 28, 28), coef, bias, pooled, TANH,
                                      2, n_samples=n, in_blocked=True, out_blocked=True)
    calls = [conv, pool]
    assert _conv.stack_calls(calls, local_links=True) == calls


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [16, 40, 300])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_a_forward_pass_that_keeps_only_its_outputs_gives_the_same_ones(rng, n, dtype, n_threads,
                                                                       dispatch_path):
    """Predict reads only the logits (or the last hidden layer), so its
    forward passes let the maps C1, S2 and C3 hand on stay in scratch: the
    outputs from S4 on are those of the full pass, bit for bit, and where
    the layers run as a stack the buffers of those three maps are not
    written."""
    net, images, _ = _lenet_images(rng, n, dtype)
    full = [as_array(a)
            for a in net.forward(images, net.workspace(n, backward=False), n_threads)]
    ws = net.workspace(n, backward=False)
    for layer_ws in ws.layers:
        layer_ws.out[...] = np.nan
    kept = [as_array(a) for a in net.forward(images, ws, n_threads, every_layer=False)]
    for a, expected in zip(kept[4:], full[4:]):
        np.testing.assert_array_equal(a, expected)
    if n >= n_threads * _conv.block_samples(dtype):
        assert all(np.isnan(a).all() for a in kept[1:4])
    else:  # fewer blocks than threads: the layers run one by one
        for a, expected in zip(kept[1:4], full[1:4]):
            np.testing.assert_array_equal(a, expected)
