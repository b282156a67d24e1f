"""Fixtures shared by the kernel test modules."""
import pytest

from fastbp._kernels import _conv, _dense, _rnn


def _conv_paths():
    paths = ["portable"]
    if _conv._force_dispatch_path("avx2-fma") == "avx2-fma":
        paths.append("avx2-fma")
    _conv._force_dispatch_path(None)
    return paths


@pytest.fixture(params=_conv_paths())
def conv_path(request):
    """Run the test on each instruction-set path of the convolution kernels
    this CPU offers ("portable" always, "avx2-fma" where available)."""
    assert _conv._force_dispatch_path(request.param) == request.param
    yield request.param
    _conv._force_dispatch_path(None)


def _simd_levels():
    best = _rnn._set_simd_level(1)
    return [0, 1] if best == 1 else [0]


@pytest.fixture(params=_simd_levels(), ids=["portable", "avx2"][:len(_simd_levels())])
def simd_level(request):
    """Run the test on the portable element-wise loops of the dense and RNN
    kernels, and on their AVX2+FMA copies where the CPU has AVX2 and FMA."""
    for module in (_dense, _rnn):
        assert module._set_simd_level(request.param) == request.param
    yield request.param
    for module in (_dense, _rnn):
        module._set_simd_level(1)
