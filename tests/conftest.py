"""Fixtures shared by the kernel test modules."""
import pytest

from fastbp._kernels import _dispatch


@pytest.fixture(params=_dispatch.available_paths())
def dispatch_path(request):
    """Run the test on each instruction-set path of the C kernels that this
    CPU and build offer ("portable" always; "avx2-fma" and "avx512" where
    available): convolution, pooling, dense element-wise, optimizer and RNN
    kernels alike."""
    assert _dispatch._force_dispatch_path(request.param) == request.param
    yield request.param
    _dispatch._force_dispatch_path(None)
