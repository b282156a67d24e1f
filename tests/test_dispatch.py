"""The one instruction-set dispatch of the C kernels (fastbp._kernels._dispatch)."""
import platform
import sys
from pathlib import Path

import numpy as np
import pytest

from fastbp._kernels import _conv, _dense, _dispatch, _rnn

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
