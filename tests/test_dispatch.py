"""The one instruction-set dispatch of the C kernels (fastbp._kernels._dispatch)."""
import platform
import sys
from pathlib import Path

import numpy as np
import pytest

from fastbp._kernels import _conv, _dense, _dispatch, _optimizers, _rnn

PATHS = ("portable", "avx2-fma", "avx512")


def _cpu_flags():
    """The CPU's feature flags as Linux reports them, or None elsewhere."""
    cpuinfo = Path("/proc/cpuinfo")
    if not sys.platform.startswith("linux") or not cpuinfo.exists():
        return None
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def test_paths_follow_the_cpu():
    available = _dispatch.available_paths()
    assert available == PATHS[:len(available)]
    assert _dispatch.dispatch_path() == available[-1]  # the best, unless forced
    flags = _cpu_flags()
    if flags is None or platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("expected paths known only for x86-64 Linux")
    # The OS's support is in the flags too: Linux hides features it does not enable.
    want = ["portable"]
    if {"avx2", "fma"} <= flags:
        want.append("avx2-fma")
        if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags:
            want.append("avx512")
    assert list(available) == want


def test_force_and_restore():
    best = _dispatch.dispatch_path()
    try:
        for path in _dispatch.available_paths():
            assert _dispatch._force_dispatch_path(path) == path
            assert _dispatch.dispatch_path() == path
    finally:
        assert _dispatch._force_dispatch_path(None) == best


def test_bad_paths_are_rejected():
    with pytest.raises(ValueError, match="must be one of"):
        _dispatch._force_dispatch_path("sse9")
    missing = [p for p in PATHS if p not in _dispatch.available_paths()]
    if missing:
        with pytest.raises(ValueError, match="not available"):
            _dispatch._force_dispatch_path(missing[-1])
    assert _dispatch.dispatch_path() == _dispatch.available_paths()[-1]


def _conv_out():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2, 3, 12, 12)).astype(np.float32)
    W = rng.normal(size=(4, 3, 5, 5)).astype(np.float32)
    Y = np.empty((2, 4, 8, 8), np.float32)
    _conv.conv5x5_forward(X, W, np.zeros(4, np.float32), np.ones((4, 3), np.uint8), Y, 0, 1)
    return Y


def _rnn_out():
    rng = np.random.default_rng(1)
    P = rng.normal(size=(60, 48)).astype(np.float32)
    W = rng.normal(size=(48, 48)).astype(np.float32) * 0.2
    H = np.empty_like(P)
    _rnn.rnn_forward(P, W, np.full(6, 10, np.intp), H, 0, 1)
    return H


def _dense_out():
    z = np.linspace(-8, 8, 4001, dtype=np.float32).reshape(-1, 1)
    out = np.empty_like(z)
    _dense.dense_forward(z, np.ones((1, 1), np.float32), np.zeros(1, np.float32), out, 2, 1)
    return out


@pytest.mark.parametrize("kernel", [_conv_out, _rnn_out, _dense_out],
                         ids=["conv", "rnn", "dense"])
def test_one_switch_reaches_every_kernel_module(kernel):
    # Without FMA (portable) a product and a sum round twice; with it
    # (AVX2+FMA) once: some element of each kernel's output differs, so the
    # module must have followed the level forced in _dispatch.
    if "avx2-fma" not in _dispatch.available_paths():
        pytest.skip("this CPU has only the portable path")
    try:
        _dispatch._force_dispatch_path("portable")
        portable = kernel()
        _dispatch._force_dispatch_path("avx2-fma")
        avx2 = kernel()
    finally:
        _dispatch._force_dispatch_path(None)
    assert not np.array_equal(portable, avx2)
    np.testing.assert_allclose(portable, avx2, rtol=1e-5, atol=1e-5)


# ---- the paths against each other ----
#
# Every path is tested against the NumPy twins (the kernel tests take the
# dispatch_path fixture); here the faster paths are compared with the portable
# one. They differ only in rounding: fused multiply-adds (AVX2, AVX-512) round
# once where the portable path rounds twice. Stated bounds:
# activations within 8 ulp of each other element for element (each is within
# 4 of NumPy's float64 value), and d * f'(z) within 8 ulp of d (1 - h^2 near
# h = 1 cancels: its own ulps say nothing); sums (RNN, convolution, pooling)
# within 64 ulp of the output's largest magnitude; Adam's step, with no fused
# operation and only exact square roots and divisions, bit for bit.

ELEMENTWISE_ULP = 8
SUM_ULP = 64


def _on_every_path(kernel):
    """{path: kernel()} for every path this CPU offers."""
    out = {}
    try:
        for path in _dispatch.available_paths():
            _dispatch._force_dispatch_path(path)
            out[path] = kernel()
    finally:
        _dispatch._force_dispatch_path(None)
    return out


def _faster_paths():
    paths = _dispatch.available_paths()[1:]
    if not paths:
        pytest.skip("this CPU has only the portable path")
    return paths


def _assert_elementwise_ulp(got, ref, ulp, of=None):
    """|got - ref| within ulp units in the last place of `of` (default: ref)."""
    spacing = np.spacing(np.abs(ref if of is None else of))
    ok = (np.abs(got.astype(np.float64) - ref) <= ulp * spacing) | (got == ref)
    assert ok.all(), (got[~ok][:5], ref[~ok][:5])


def _assert_sum_ulp(got, ref, ulp):
    scale = np.spacing(np.abs(ref).max()) if ref.size else 0
    np.testing.assert_allclose(got, ref, rtol=0, atol=ulp * scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", list(_dense.ACTIVATION_CODES.values()))
def test_activations_agree_across_paths(act, dtype):
    x = np.concatenate([np.linspace(-50, 50, 20001), np.geomspace(1e-30, 30, 2000),
                        -np.geomspace(1e-30, 30, 2000)]).astype(dtype)
    h = np.empty_like(x)
    _rnn.rnn_activation(x, h, act)  # the layer's outputs, for the derivative
    d = np.cos(x)

    def kernel():
        out = np.empty_like(x)
        _rnn.rnn_activation(x, out, act)
        delta_in = np.empty((x.size, 1), dtype)
        _dense.dense_backward(h.reshape(-1, 1), np.ones((1, 1), dtype), d.reshape(-1, 1),
                              np.empty((1, 1), dtype), np.empty(1, dtype), delta_in, act, 1)
        return out, delta_in.ravel()

    res = _on_every_path(kernel)
    for path in _faster_paths():
        (f, df), (f_ref, df_ref) = res[path], res["portable"]
        _assert_elementwise_ulp(f, f_ref, ELEMENTWISE_ULP)
        _assert_elementwise_ulp(df, df_ref, ELEMENTWISE_ULP, of=d)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", list(_dense.ACTIVATION_CODES.values()))
def test_rnn_agrees_across_paths(act, dtype):
    rng = np.random.default_rng(act)
    bs = np.array([40, 40, 33, 20, 20, 7], np.intp)
    n = 150  # float32 panels: 16 (portable, AVX2) or 32 (AVX-512) wide, the last one partial
    P = rng.normal(size=(bs.sum(), n)).astype(dtype)
    W = (rng.normal(size=(n, n)) / np.sqrt(n)).astype(dtype)
    dH = rng.normal(size=P.shape).astype(dtype)

    def kernel():
        H, delta = np.empty_like(P), np.empty_like(P)
        _rnn.rnn_forward(P, W, bs, H, act, 2)
        _rnn.rnn_backward(H, W, bs, dH, delta, act, 2, 0)
        return H, delta

    res = _on_every_path(kernel)
    for path in _faster_paths():
        for got, ref in zip(res[path], res["portable"]):
            _assert_sum_ulp(got, ref, SUM_ULP)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", list(_dense.ACTIVATION_CODES.values()))
def test_conv_and_pool_agree_across_paths(act, dtype):
    rng = np.random.default_rng(10 + act)
    n, c_in, c_out, h = 9, 6, 16, 14
    X = rng.normal(size=(n, c_in, h, h)).astype(dtype)
    W = (rng.normal(size=(c_out, c_in, 5, 5)) / 5).astype(dtype)
    b = rng.normal(size=c_out).astype(dtype)
    table = (rng.random((c_out, c_in)) < 0.6).astype(np.uint8)
    dZ = rng.normal(size=(n, c_out, h - 4, h - 4)).astype(dtype)
    coef = np.linspace(0.5, 1.5, c_out).astype(dtype)

    def kernel():
        Y = np.empty((n, c_out, h - 4, h - 4), dtype)
        _conv.conv5x5_forward(X, W, b, table, Y, act, 2)
        gW, gb, dX = np.empty_like(W), np.empty_like(b), np.empty_like(X)
        _conv.conv5x5_backward(X, W, dZ, table, gW, gb, dX, act, 2)
        pooled = np.empty((n, c_out, 5, 5), dtype)
        _conv.pool2x2_forward(Y, coef, b, pooled, act, 2)
        gc, gb2, dY = np.empty_like(coef), np.empty_like(coef), np.empty_like(Y)
        _conv.pool2x2_backward(Y, coef, np.ascontiguousarray(dZ[:, :, :5, :5]), gc, gb2, dY,
                               act, 2)
        return Y, gW, gb, dX, pooled, gc, gb2, dY

    res = _on_every_path(kernel)
    for path in _faster_paths():
        for got, ref in zip(res[path], res["portable"]):
            _assert_sum_ulp(got, ref, SUM_ULP)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_is_bitwise_the_same_on_every_path(dtype):
    rng = np.random.default_rng(3)
    size = 10_007  # a vector body and a remainder on every path
    theta, grad, m1 = (rng.normal(size=size).astype(dtype) for _ in range(3))
    m2 = np.abs(rng.normal(size=size)).astype(dtype)

    def kernel():
        t, a, b = theta.copy(), m1.copy(), m2.copy()
        _optimizers.adam_update(t, grad, a, b, 1e-3, 0.9, 0.999, 1e-8, 1)
        return t, a, b

    res = _on_every_path(kernel)
    for path in _faster_paths():
        for got, ref in zip(res[path], res["portable"]):
            np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("table_kind", ["full", "sparse"])
def test_conv_is_bitwise_the_same_on_avx2_and_avx512(table_kind, dtype):
    # A convolution's lanes are samples, so each lane sums in the same order
    # at every vector width and tiling (AVX2 tiles 2 maps, AVX-512 up to 4):
    # the two fused-multiply-add paths must agree bit for bit. 19 samples: a
    # full block and a partial one in both dtypes. Identity activations keep
    # the element-wise loops (checked above within ulps) out of it.
    paths = _dispatch.available_paths()
    if "avx512" not in paths or "avx2-fma" not in paths:
        pytest.skip("needs the AVX2 and AVX-512 paths")
    rng = np.random.default_rng(5)
    n, c_in, c_out, h, w = 19, 6, 16, 14, 13
    X = rng.normal(size=(n, c_in, h, w)).astype(dtype)
    W = (rng.normal(size=(c_out, c_in, 5, 5)) / 5).astype(dtype)
    b = rng.normal(size=c_out).astype(dtype)
    table = np.ones((c_out, c_in), np.uint8)
    if table_kind == "sparse":
        table = (rng.random((c_out, c_in)) < 0.6).astype(np.uint8)
    dZ = rng.normal(size=(n, c_out, h - 4, w - 4)).astype(dtype)

    def kernel():
        Y = np.empty((n, c_out, h - 4, w - 4), dtype)
        _conv.conv5x5_forward(X, W, b, table, Y, 0, 2)
        gW, gb, dX = np.empty_like(W), np.empty_like(b), np.empty_like(X)
        _conv.conv5x5_backward(X, W, dZ, table, gW, gb, dX, 0, 2)
        return Y, gW, gb, dX

    res = _on_every_path(kernel)
    for got, ref in zip(res["avx512"], res["avx2-fma"]):
        assert np.array_equal(got, ref)
