"""Fixtures shared by the kernel test modules."""
import pytest

from fastbp._kernels import _conv


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
