"""Direct 5x5 convolution and trainable 2x2 mean-pool kernels (LeNet-5).

Stateless: C-contiguous NCHW arrays in, results written into the arrays
marked ``# OUT``. Cython's buffer protocol checks dtype and contiguity, and
every entry point checks that the shapes agree (ValueError) before any C code
runs, since the C loops trust them.
The arithmetic lives in ``csrc/conv.c`` (plain C with copies per instruction
set, chosen at run time: see ``_dispatch``); the plain-NumPy twins in
``tests/_twins_conv.py`` define what every function computes.

Results do not depend on ``n_threads``: the work is split over blocks of
samples (16 float32 or 8 float64), and
parameter gradients are summed per block in a fixed order, the blocks being
added in order.

Between LeNet's convolution and pooling layers the maps can stay "side by
side" (``in_blocked``/``out_blocked``): blocks of ``block_samples(dtype)``
samples whose elements are interleaved, in the instruction set's sub-blocks
(``csrc/conv.h``), so that no layer transposes its input or output. Such an
array of n samples has ``padded_rows(n, dtype)`` rows, of the NCHW shape
otherwise; the true count is ``n_samples``. ``to_blocks`` and
``from_blocks`` convert. Every result is the same to the bit in either
layout.

A convolution whose output is 1x1 (input 5x5, such as LeNet's C5) with a full
connection table is a dense layer: it runs as a dense layer's products,
blocks of one GEMM shared out to the team (``_dense``'s split_gemm and
weight_gradient), with the bias, activation and derivative passes on the team
too. The blocks depend on the shape only, so this path is as independent of
n_threads as the direct one.
"""
from cython cimport floating
from libc.stdint cimport uint8_t

from ._dense cimport backward_products, split_gemm
from ._checks cimport check_shape
from ._dispatch cimport bind_dispatch
from ._team cimport bind_team


cdef extern from "conv.h" nogil:
    int fastbp_conv5x5_forward_f32(const float* X, const float* W, const float* b,
                                   const unsigned char* table, float* Y, int n,
                                   int c_in, int h, int w, int c_out, int act,
                                   int layout, int n_threads)
    int fastbp_conv5x5_forward_f64(const double* X, const double* W, const double* b,
                                   const unsigned char* table, double* Y, int n,
                                   int c_in, int h, int w, int c_out, int act,
                                   int layout, int n_threads)
    int fastbp_conv5x5_backward_f32(const float* X, const float* W, const float* dZ,
                                    const unsigned char* table, float* grad_W,
                                    float* grad_b, float* dX, int n, int c_in, int h,
                                    int w, int c_out, int in_act, int layout,
                                    int n_threads)
    int fastbp_conv5x5_backward_f64(const double* X, const double* W, const double* dZ,
                                    const unsigned char* table, double* grad_W,
                                    double* grad_b, double* dX, int n, int c_in, int h,
                                    int w, int c_out, int in_act, int layout,
                                    int n_threads)
    int fastbp_pool2x2_forward_f32(const float* Y, const float* coef, const float* bias,
                                   float* X, int n, int c, int h, int w, int act,
                                   int layout, int n_threads)
    int fastbp_pool2x2_forward_f64(const double* Y, const double* coef,
                                   const double* bias, double* X, int n, int c, int h,
                                   int w, int act, int layout, int n_threads)
    int fastbp_pool2x2_backward_f32(const float* Y, const float* coef, const float* dZ,
                                    float* grad_coef, float* grad_bias, float* dY,
                                    int n, int c, int h, int w, int in_act,
                                    int layout, int n_threads)
    int fastbp_pool2x2_backward_f64(const double* Y, const double* coef,
                                    const double* dZ, double* grad_coef,
                                    double* grad_bias, double* dY, int n, int c, int h,
                                    int w, int in_act, int layout, int n_threads)
    void fastbp_blocks_f32(float* blk, float* nchw, int n, Py_ssize_t P, int to)
    void fastbp_blocks_f64(double* blk, double* nchw, int n, Py_ssize_t P, int to)
    int FASTBP_BLOCKED_IN
    int FASTBP_BLOCKED_OUT


bind_dispatch()
bind_team()


cdef bint _is_dense(const uint8_t[:, ::1] table, Py_ssize_t h, Py_ssize_t w) noexcept nogil:
    """True when the convolution is a dense layer: 1x1 output, all maps connected."""
    cdef Py_ssize_t o, i
    if h != 5 or w != 5:
        return False
    for o in range(table.shape[0]):
        for i in range(table.shape[1]):
            if table[o, i] == 0:
                return False
    return True


cdef int _check_conv(const floating[:, :, :, ::1] X, const floating[:, :, :, ::1] W,
                     const uint8_t[:, ::1] table) except -1:
    if X.shape[2] < 5 or X.shape[3] < 5:
        raise ValueError(f"input maps are {X.shape[2]}x{X.shape[3]}, at least 5x5 needed")
    check_shape("W", W.shape, 4, (None, X.shape[1], 5, 5))
    if W.shape[0] == 0 or W.shape[1] == 0:
        raise ValueError("a convolution needs at least one input and one output map")
    check_shape("table", table.shape, 2, (W.shape[0], X.shape[1]))
    return 0


def block_samples(dtype):
    """Samples of a block in the layout side by side: 16 float32, 8 float64."""
    import numpy
    return 16 if numpy.dtype(dtype) == numpy.float32 else 8


def padded_rows(n, dtype):
    """Rows of an array side by side holding n samples: n rounded up to a
    whole block."""
    bl = block_samples(dtype)
    return -(-int(n) // bl) * bl


cdef int _check_rows(str name, Py_ssize_t rows, int n, bint blocked, int bl) except -1:
    cdef Py_ssize_t expected = (n + bl - 1) // bl * bl if blocked else n
    if rows != expected:
        raise ValueError(f"{name} has {rows} rows for {n} samples; expected {expected}"
                         + (" (samples side by side)" if blocked else ""))
    return 0


cdef int _samples(Py_ssize_t rows, int n_samples, bint blocked) except -1:
    if n_samples < 0:
        if blocked:
            raise ValueError("n_samples is needed for arrays side by side")
        return <int> rows
    return n_samples


cdef int _check_pool_input(const floating[:, :, :, ::1] Y) except -1:
    if Y.shape[2] % 2 or Y.shape[3] % 2:
        raise ValueError(f"pooled maps are {Y.shape[2]}x{Y.shape[3]}, need even sizes")
    return 0


def conv5x5_forward(const floating[:, :, :, ::1] X,
                    const floating[:, :, :, ::1] W,
                    const floating[::1] b,
                    const uint8_t[:, ::1] table,
                    floating[:, :, :, ::1] Y,  # OUT
                    int activation, int n_threads, *, int n_samples=-1,
                    bint in_blocked=False, bint out_blocked=False):
    """Y = g(valid 5x5 cross-correlation of X with W over connected maps + b).

    ``Y[n, o, y, x] = g(b[o] + sum_{i: table[o, i]} sum_{kh, kw < 5}
    W[o, i, kh, kw] * X[n, i, y + kh, x + kw])``. Unconnected pairs are
    skipped (their weights are never read).

    Parameters
    ----------
    X : ndarray of shape (n_samples, C_in, H, W_)
        Input maps, H >= 5 and W_ >= 5.
    W : ndarray of shape (C_out, C_in, 5, 5)
    b : ndarray of shape (C_out,)
    table : ndarray of uint8, of shape (C_out, C_in)
        Connection mask, 1 = connected (pass a bool mask as ``view(np.uint8)``).
    Y : ndarray of shape (n_samples, C_out, H - 4, W_ - 4)
        OUT.
    activation : int
        Activation code g (0 identity, 1 logistic, 2 tanh, 3 relu, 4 lecun_tanh).
    n_threads : int
        Threads of fastbp's team; results do not depend on it.
    n_samples : int, optional
        Samples in X and Y; needed when either is side by side, whose rows
        are ``padded_rows(n_samples, dtype)``. Default: X's rows.
    in_blocked, out_blocked : bool, optional
        X, Y side by side (see the module's docstring); not for 1x1 outputs.

    All arrays C-contiguous and of one floating dtype.
    """
    cdef int bl = 16 if floating is float else 8
    cdef int n = _samples(X.shape[0], n_samples, in_blocked or out_blocked)
    cdef int c_in = X.shape[1], h = X.shape[2], w = X.shape[3]
    cdef int c_out = W.shape[0]
    cdef int k = c_in * 25
    cdef int status = 0
    cdef int layout = (FASTBP_BLOCKED_IN if in_blocked else 0) | (
        FASTBP_BLOCKED_OUT if out_blocked else 0)
    _check_conv(X, W, table)
    _check_rows("X", X.shape[0], n, in_blocked, bl)
    check_shape("b", b.shape, 1, (c_out,))
    check_shape("Y", Y.shape, 4, (Y.shape[0], c_out, h - 4, w - 4))
    _check_rows("Y", Y.shape[0], n, out_blocked, bl)
    if layout and _is_dense(table, h, w):
        raise ValueError("a 1x1 output runs as a dense layer: maps side by side are not for it")
    if n == 0:
        return
    with nogil:
        if _is_dense(table, h, w):
            # 1x1 output: Y (n, c_out) = g(X (n, c_in*25) @ W (c_out, c_in*25)^T + b),
            # shared out to the team like a dense layer's product.
            split_gemm(True, n, c_out, k, &X[0, 0, 0, 0], &W[0, 0, 0, 0], &Y[0, 0, 0, 0], &b[0],
                       <floating*> NULL, activation, n_threads)
        elif floating is float:
            status = fastbp_conv5x5_forward_f32(&X[0, 0, 0, 0], &W[0, 0, 0, 0], &b[0],
                                                &table[0, 0], &Y[0, 0, 0, 0], n, c_in,
                                                h, w, c_out, activation, layout,
                                                n_threads)
        else:
            status = fastbp_conv5x5_forward_f64(&X[0, 0, 0, 0], &W[0, 0, 0, 0], &b[0],
                                                &table[0, 0], &Y[0, 0, 0, 0], n, c_in,
                                                h, w, c_out, activation, layout,
                                                n_threads)
    if status != 0:
        raise MemoryError()


def conv5x5_backward(const floating[:, :, :, ::1] X,
                     const floating[:, :, :, ::1] W,
                     const floating[:, :, :, ::1] dZ,
                     const uint8_t[:, ::1] table,
                     floating[:, :, :, ::1] grad_W,  # OUT
                     floating[::1] grad_b,  # OUT
                     floating[:, :, :, ::1] dX,  # OUT (None: not needed)
                     int input_activation, int n_threads, *, int n_samples=-1,
                     bint in_blocked=False, bint out_blocked=False):
    """Backward pass of conv5x5_forward given dZ = dL/d(pre-activation).

    ``grad_W[o, i, kh, kw] = sum_{n, y, x} dZ[n, o, y, x] * X[n, i, y + kh, x + kw]``
    (exactly 0 where ``table[o, i] == 0``), ``grad_b[o] = sum_{n, y, x} dZ[n, o, y, x]``
    and, unless dX is None, the delta of the layer below:
    ``dX[n, i] = (sum over connected o of the full convolution of dZ[n, o] with
    W[o, i] rotated by 180 degrees) * g_in'(z_in)``, g_in' computed from
    ``X = g_in(z_in)`` (code 0, identity, gives the plain gradient w.r.t. X).

    Parameters
    ----------
    X : ndarray of shape (n_samples, C_in, H, W_)
        The forward input (an activation output of the layer below).
    W : ndarray of shape (C_out, C_in, 5, 5)
    dZ : ndarray of shape (n_samples, C_out, H - 4, W_ - 4)
    table : ndarray of uint8, of shape (C_out, C_in)
    grad_W : ndarray of shape (C_out, C_in, 5, 5)
        OUT, overwritten.
    grad_b : ndarray of shape (C_out,)
        OUT, overwritten.
    dX : ndarray of shape (n_samples, C_in, H, W_) or None
        OUT, overwritten; None skips it (first layer).
    input_activation : int
        Activation code g_in of the layer that produced X.
    n_threads : int
        Threads of fastbp's team; results are bitwise identical for any value.
    n_samples : int, optional
        As for :func:`conv5x5_forward`.
    in_blocked, out_blocked : bool, optional
        X and dX, and dZ, side by side (see the module's docstring).
    """
    cdef int bl = 16 if floating is float else 8
    cdef int n = _samples(X.shape[0], n_samples, in_blocked or out_blocked)
    cdef int c_in = X.shape[1], h = X.shape[2], w = X.shape[3]
    cdef int c_out = W.shape[0]
    cdef int k = c_in * 25
    cdef bint want_dX = dX is not None
    cdef floating* dX_ptr = NULL
    cdef int status = 0
    cdef int layout = (FASTBP_BLOCKED_IN if in_blocked else 0) | (
        FASTBP_BLOCKED_OUT if out_blocked else 0)
    _check_conv(X, W, table)
    _check_rows("X", X.shape[0], n, in_blocked, bl)
    check_shape("dZ", dZ.shape, 4, (dZ.shape[0], c_out, h - 4, w - 4))
    _check_rows("dZ", dZ.shape[0], n, out_blocked, bl)
    check_shape("grad_W", grad_W.shape, 4, (c_out, c_in, 5, 5))
    check_shape("grad_b", grad_b.shape, 1, (c_out,))
    if want_dX:
        check_shape("dX", dX.shape, 4, (dX.shape[0], c_in, h, w))
        _check_rows("dX", dX.shape[0], n, in_blocked, bl)
    if layout and _is_dense(table, h, w):
        raise ValueError("a 1x1 output runs as a dense layer: maps side by side are not for it")
    if want_dX and n > 0:
        dX_ptr = &dX[0, 0, 0, 0]
    with nogil:
        if n > 0 and _is_dense(table, h, w):
            # a dense layer's products, W laid out (c_out, k) by outputs
            status = backward_products(n, k, c_out, &X[0, 0, 0, 0], &W[0, 0, 0, 0], True,
                                       &dZ[0, 0, 0, 0], &grad_W[0, 0, 0, 0], &grad_b[0],
                                       dX_ptr, input_activation, n_threads)
        elif floating is float:
            status = fastbp_conv5x5_backward_f32(
                &X[0, 0, 0, 0] if n > 0 else NULL, &W[0, 0, 0, 0],
                &dZ[0, 0, 0, 0] if n > 0 else NULL, &table[0, 0], &grad_W[0, 0, 0, 0],
                &grad_b[0], dX_ptr, n, c_in, h, w, c_out, input_activation, layout,
                n_threads)
        else:
            status = fastbp_conv5x5_backward_f64(
                &X[0, 0, 0, 0] if n > 0 else NULL, &W[0, 0, 0, 0],
                &dZ[0, 0, 0, 0] if n > 0 else NULL, &table[0, 0], &grad_W[0, 0, 0, 0],
                &grad_b[0], dX_ptr, n, c_in, h, w, c_out, input_activation, layout,
                n_threads)
    if status != 0:
        raise MemoryError()


def pool2x2_forward(const floating[:, :, :, ::1] Y,
                    const floating[::1] coef,
                    const floating[::1] bias,
                    floating[:, :, :, ::1] X,  # OUT
                    int activation, int n_threads, *, int n_samples=-1,
                    bint in_blocked=False, bint out_blocked=False):
    """X = g(coef[c] * (mean of each 2x2 block of Y) + bias[c]).

    ``X[n, c, i, j] = g(coef[c] * (Y[n, c, 2i, 2j] + Y[n, c, 2i, 2j+1]
    + Y[n, c, 2i+1, 2j] + Y[n, c, 2i+1, 2j+1]) / 4 + bias[c])``, LeCun's
    trainable subsampling.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, C, H, W_)
        H and W_ even.
    coef : ndarray of shape (C,)
    bias : ndarray of shape (C,)
    X : ndarray of shape (n_samples, C, H // 2, W_ // 2)
        OUT.
    activation : int
        Activation code g.
    n_threads : int
    n_samples : int, optional
        As for :func:`conv5x5_forward`.
    in_blocked, out_blocked : bool, optional
        Y, X side by side (see the module's docstring); X only with Y.
    """
    cdef int bl = 16 if floating is float else 8
    cdef int n = _samples(Y.shape[0], n_samples, in_blocked or out_blocked)
    cdef int c = Y.shape[1], h = Y.shape[2], w = Y.shape[3]
    cdef int status = 0
    cdef int layout = (FASTBP_BLOCKED_IN if in_blocked else 0) | (
        FASTBP_BLOCKED_OUT if out_blocked else 0)
    if out_blocked and not in_blocked:
        raise ValueError("a pooling's output side by side needs its input side by side")
    _check_pool_input(Y)
    _check_rows("Y", Y.shape[0], n, in_blocked, bl)
    check_shape("coef", coef.shape, 1, (c,))
    check_shape("bias", bias.shape, 1, (c,))
    check_shape("X", X.shape, 4, (X.shape[0], c, h // 2, w // 2))
    _check_rows("X", X.shape[0], n, out_blocked, bl)
    if n == 0:
        return
    with nogil:
        if floating is float:
            status = fastbp_pool2x2_forward_f32(&Y[0, 0, 0, 0], &coef[0], &bias[0],
                                                &X[0, 0, 0, 0], n, c, h, w, activation,
                                                layout, n_threads)
        else:
            status = fastbp_pool2x2_forward_f64(&Y[0, 0, 0, 0], &coef[0], &bias[0],
                                                &X[0, 0, 0, 0], n, c, h, w, activation,
                                                layout, n_threads)
    if status != 0:
        raise MemoryError()


def pool2x2_backward(const floating[:, :, :, ::1] Y,
                     const floating[::1] coef,
                     const floating[:, :, :, ::1] dZ,
                     floating[::1] grad_coef,  # OUT
                     floating[::1] grad_bias,  # OUT
                     floating[:, :, :, ::1] dY,  # OUT (None: not needed)
                     int input_activation, int n_threads, *, int n_samples=-1,
                     bint in_blocked=False, bint out_blocked=False):
    """Backward pass of pool2x2_forward given dZ = dL/d(pre-activation).

    ``grad_coef[c] = sum_{n, i, j} dZ[n, c, i, j] * MeanPool(Y)[n, c, i, j]``,
    ``grad_bias[c] = sum_{n, i, j} dZ[n, c, i, j]`` and, unless dY is None,
    ``dY[n, c, i, j] = coef[c] / 4 * dZ[n, c, i // 2, j // 2] * g_in'(z_in)``
    with g_in' computed from ``Y = g_in(z_in)``.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, C, H, W_)
        The forward input, H and W_ even.
    coef : ndarray of shape (C,)
    dZ : ndarray of shape (n_samples, C, H // 2, W_ // 2)
    grad_coef : ndarray of shape (C,)
        OUT, overwritten.
    grad_bias : ndarray of shape (C,)
        OUT, overwritten.
    dY : ndarray of shape (n_samples, C, H, W_) or None
        OUT, overwritten; None skips it.
    input_activation : int
        Activation code g_in of the layer that produced Y.
    n_threads : int
        Threads of fastbp's team; results are bitwise identical for any value.
    n_samples : int, optional
        As for :func:`conv5x5_forward`.
    in_blocked, out_blocked : bool, optional
        Y and dY, and dZ, side by side (see the module's docstring); dZ only
        with Y.

    The sums of grad_coef and grad_bias run per sample (each pooled column
    over its rows in order, then the columns in order), then over the
    samples of each block of ``block_samples`` in order, then over the
    blocks in order, in either layout.
    """
    cdef int bl = 16 if floating is float else 8
    cdef int n = _samples(Y.shape[0], n_samples, in_blocked or out_blocked)
    cdef int c = Y.shape[1], h = Y.shape[2], w = Y.shape[3]
    cdef floating* dY_ptr = NULL
    cdef const floating* Y_ptr = NULL
    cdef const floating* dZ_ptr = NULL
    cdef int status
    cdef int layout = (FASTBP_BLOCKED_IN if in_blocked else 0) | (
        FASTBP_BLOCKED_OUT if out_blocked else 0)
    if out_blocked and not in_blocked:
        raise ValueError("a pooling's dZ side by side needs its input side by side")
    _check_pool_input(Y)
    _check_rows("Y", Y.shape[0], n, in_blocked, bl)
    check_shape("coef", coef.shape, 1, (c,))
    check_shape("dZ", dZ.shape, 4, (dZ.shape[0], c, h // 2, w // 2))
    _check_rows("dZ", dZ.shape[0], n, out_blocked, bl)
    check_shape("grad_coef", grad_coef.shape, 1, (c,))
    check_shape("grad_bias", grad_bias.shape, 1, (c,))
    if dY is not None:
        check_shape("dY", dY.shape, 4, (dY.shape[0], c, h, w))
        _check_rows("dY", dY.shape[0], n, in_blocked, bl)
    if n > 0:
        Y_ptr = &Y[0, 0, 0, 0]
        dZ_ptr = &dZ[0, 0, 0, 0]
        if dY is not None:
            dY_ptr = &dY[0, 0, 0, 0]
    with nogil:
        if floating is float:
            status = fastbp_pool2x2_backward_f32(Y_ptr, &coef[0], dZ_ptr, &grad_coef[0],
                                                 &grad_bias[0], dY_ptr, n, c, h, w,
                                                 input_activation, layout, n_threads)
        else:
            status = fastbp_pool2x2_backward_f64(Y_ptr, &coef[0], dZ_ptr, &grad_coef[0],
                                                 &grad_bias[0], dY_ptr, n, c, h, w,
                                                 input_activation, layout, n_threads)
    if status != 0:
        raise MemoryError()


cdef _transpose_blocks(const floating[:, :, :, ::1] nchw, const floating[:, :, :, ::1] blk,
                       bint to):
    """nchw (n samples) into blk (side by side) when ``to``, else back; the
    destination is the caller's writable array."""
    cdef int bl = 16 if floating is float else 8
    cdef int n = nchw.shape[0]
    cdef Py_ssize_t P = <Py_ssize_t> nchw.shape[1] * nchw.shape[2] * nchw.shape[3]
    cdef str name = "out" if to else "X"
    check_shape(name, blk.shape, 4, (blk.shape[0], nchw.shape[1], nchw.shape[2], nchw.shape[3]))
    _check_rows(name, blk.shape[0], n, True, bl)
    if n == 0 or P == 0:
        return
    with nogil:
        if floating is float:
            fastbp_blocks_f32(<float*> &blk[0, 0, 0, 0], <float*> &nchw[0, 0, 0, 0], n, P, to)
        else:
            fastbp_blocks_f64(<double*> &blk[0, 0, 0, 0], <double*> &nchw[0, 0, 0, 0], n, P,
                              to)


def to_blocks(const floating[:, :, :, ::1] X,
              floating[:, :, :, ::1] out):  # OUT
    """Copy X's samples (NCHW) side by side into out (see the module's
    docstring): out has ``padded_rows(len(X), X.dtype)`` rows of X's shape,
    and the lanes past len(X) are zeroed."""
    _transpose_blocks(X, out, True)


def from_blocks(const floating[:, :, :, ::1] X,
                floating[:, :, :, ::1] out):  # OUT
    """Copy the samples of X, side by side, into out (NCHW); X has
    ``padded_rows(len(out), dtype)`` rows."""
    _transpose_blocks(out, X, False)
