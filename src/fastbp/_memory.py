"""Arrays that start on a cache line.

NumPy's allocator aligns to 16 bytes. The kernels' vectors are up to 64 bytes
wide (AVX-512): in a buffer that starts mid-line, every such load and store
spans two lines, and where threads split a buffer by rows, the two threads at
each boundary write one line between them, which then moves between their
cores at every step. fastbp's own buffers (workspaces, parameters, gradients
and optimizer state) therefore start on a 64-byte boundary.
"""
import math
import operator

import numpy as np

CACHE_LINE = 64


def aligned_empty(shape, dtype):
    """``np.empty(shape, dtype)`` whose first element starts a cache line.

    Parameters
    ----------
    shape : int or tuple of int
        Shape of the array.
    dtype : data-type
        Its dtype.

    Returns
    -------
    ndarray
        A C-contiguous array: a view of a slightly larger byte buffer, or
        for an object dtype (references, which bytes cannot hold) a plain
        ``np.empty``.
    """
    return _on_a_line(shape, dtype, np.empty)


def aligned_zeros(shape, dtype):
    """``np.zeros(shape, dtype)`` whose first element starts a cache line
    (see :func:`aligned_empty`)."""
    # np.zeros, not empty then fill: calloc's fresh pages are zero already,
    # so a large buffer is not written twice (60,000 padded images: 54 ms
    # against 79)
    return _on_a_line(shape, dtype, np.zeros)


def _on_a_line(shape, dtype, allocate):
    # (plain Python where NumPy's helpers cost microseconds: it runs for
    # each prediction call's buffers)
    dtype = np.dtype(dtype)
    try:
        shape = (operator.index(shape),)
    except TypeError:
        if not hasattr(shape, "__iter__"):
            raise  # neither an int nor a sequence: index's own message
        shape = tuple(map(operator.index, shape))
    if min(shape, default=0) < 0:
        raise ValueError(f"negative dimensions are not allowed: {shape}")
    if dtype.hasobject:
        return allocate(shape, dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    raw = allocate(nbytes + CACHE_LINE, dtype=np.uint8)
    start = -raw.ctypes.data % CACHE_LINE
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def starts_a_line(a):
    """Whether ndarray ``a``'s first element starts a cache line."""
    return a.ctypes.data % CACHE_LINE == 0


def aligned_copy(a, dtype=None):
    """A C-contiguous copy of ``a`` (cast to ``dtype`` when given) whose first
    element starts a cache line (see :func:`aligned_empty`)."""
    a = np.asarray(a)
    out = aligned_empty(a.shape, a.dtype if dtype is None else dtype)
    np.copyto(out, a, casting="unsafe")
    return out
