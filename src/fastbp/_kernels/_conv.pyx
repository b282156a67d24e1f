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
from libc.stdlib cimport malloc, free
from libc.string cimport memset

from ._calls cimport BoundCall, raise_for
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
    int FASTBP_CONV_FORWARD
    int FASTBP_CONV_BACKWARD
    int FASTBP_POOL_FORWARD
    int FASTBP_POOL_BACKWARD
    ctypedef struct fastbp_conv_layer:
        int kind
        const void* input
        const void* weight
        const void* bias
        const void* dout
        const unsigned char* table
        void* output
        void* grad_weight
        void* grad_bias
        void* din
        int c_in, h, w, c_out, act, layout
    int fastbp_conv_hands_on(const fastbp_conv_layer* a, const fastbp_conv_layer* b, int* c,
                             int* h, int* w)
    int fastbp_conv_stack_f32(const fastbp_conv_layer* layers, int count, int n,
                              int n_threads, int local_links)
    int fastbp_conv_stack_f64(const fastbp_conv_layer* layers, int count, int n,
                              int n_threads, int local_links)


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


ctypedef struct ConvForwardArgs:
    const void* X
    const void* W
    const void* b
    const unsigned char* table
    void* Y
    int n, c_in, h, w, c_out, act, layout, n_threads
    bint single, dense


cdef int _conv_forward_run(const ConvForwardArgs* a) noexcept nogil:
    """Run a call of conv5x5_forward from its checked arguments."""
    if a.n == 0:
        return 0
    if a.dense:
        # 1x1 output: Y (n, c_out) = g(X (n, c_in*25) @ W (c_out, c_in*25)^T + b),
        # shared out to the team like a dense layer's product.
        if a.single:
            split_gemm[float](True, a.n, a.c_out, a.c_in * 25, <const float*> a.X,
                              <const float*> a.W, <float*> a.Y, <const float*> a.b,
                              <const float*> NULL, a.act, a.n_threads)
        else:
            split_gemm[double](True, a.n, a.c_out, a.c_in * 25,
                               <const double*> a.X, <const double*> a.W,
                               <double*> a.Y, <const double*> a.b,
                               <const double*> NULL, a.act, a.n_threads)
        return 0
    if a.single:
        return fastbp_conv5x5_forward_f32(<const float*> a.X, <const float*> a.W,
                                          <const float*> a.b, a.table,
                                          <float*> a.Y, a.n, a.c_in, a.h,
                                          a.w, a.c_out, a.act, a.layout,
                                          a.n_threads)
    return fastbp_conv5x5_forward_f64(<const double*> a.X, <const double*> a.W,
                                      <const double*> a.b, a.table,
                                      <double*> a.Y, a.n, a.c_in, a.h, a.w,
                                      a.c_out, a.act, a.layout, a.n_threads)


cdef class _ConvForward(BoundCall):
    """conv5x5_forward's call, bound (_calls.pyx)."""
    cdef ConvForwardArgs a

    cdef int execute(self) noexcept nogil:
        return _conv_forward_run(&self.a)


cdef int _conv_forward_args(ConvForwardArgs* a, const floating[:, :, :, ::1] X,
                            const floating[:, :, :, ::1] W,
                            const floating[::1] b,
                            const uint8_t[:, ::1] table,
                            floating[:, :, :, ::1] Y,
                            int activation, int n_threads, int n_samples,
                            bint in_blocked, bint out_blocked) except -1:
    """Check a call of conv5x5_forward (ValueError) and fill ``a`` with its pointers
    and sizes."""
    cdef int bl = 16 if floating is float else 8
    cdef int n = _samples(X.shape[0], n_samples, in_blocked or out_blocked)
    memset(a, 0, sizeof(a[0]))
    _check_conv(X, W, table)
    _check_rows("X", X.shape[0], n, in_blocked, bl)
    check_shape("b", b.shape, 1, (W.shape[0],))
    check_shape("Y", Y.shape, 4, (Y.shape[0], W.shape[0], X.shape[2] - 4, X.shape[3] - 4))
    _check_rows("Y", Y.shape[0], n, out_blocked, bl)
    a.dense = _is_dense(table, X.shape[2], X.shape[3])
    a.layout = (FASTBP_BLOCKED_IN if in_blocked else 0) | (
        FASTBP_BLOCKED_OUT if out_blocked else 0)
    if a.layout and a.dense:
        raise ValueError("a 1x1 output runs as a dense layer: maps side by side are not for it")
    a.n, a.c_in, a.h, a.w = n, X.shape[1], X.shape[2], X.shape[3]
    a.c_out, a.act, a.n_threads = W.shape[0], activation, n_threads
    a.single = floating is float
    if n > 0:
        a.X, a.W, a.b = &X[0, 0, 0, 0], &W[0, 0, 0, 0], &b[0]
        a.table, a.Y = &table[0, 0], &Y[0, 0, 0, 0]
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
    cdef ConvForwardArgs a
    cdef int status
    _conv_forward_args(&a, X, W, b, table, Y, activation, n_threads, n_samples, in_blocked,
                       out_blocked)
    with nogil:
        status = _conv_forward_run(&a)
    raise_for(status)


def bind_conv5x5_forward(const floating[:, :, :, ::1] X,
                         const floating[:, :, :, ::1] W,
                         const floating[::1] b,
                         const uint8_t[:, ::1] table,
                         floating[:, :, :, ::1] Y,  # OUT
                         int activation, int n_threads, *, int n_samples=-1,
                         bint in_blocked=False, bint out_blocked=False):
    """:func:`conv5x5_forward`'s call, checked now: a BoundCall (see ``_calls``)."""
    cdef _ConvForward call = _ConvForward.__new__(_ConvForward)
    # a copy: the table shapes the call (which pairs it computes, the dense
    # path or the direct one), as the shapes do, so it is read when bound
    cdef const uint8_t[:, ::1] frozen = table.copy()
    _conv_forward_args(&call.a, X, W, b, frozen, Y, activation, n_threads, n_samples, in_blocked,
                       out_blocked)
    return call.keep((X, W, b, frozen, Y))


ctypedef struct ConvBackwardArgs:
    const void* X
    const void* W
    const void* dZ
    const unsigned char* table
    void* grad_W
    void* grad_b
    void* dX
    int n, c_in, h, w, c_out, in_act, layout, n_threads
    bint single, dense


cdef int _conv_backward_run(const ConvBackwardArgs* a) noexcept nogil:
    """Run a call of conv5x5_backward from its checked arguments."""
    if a.n > 0 and a.dense:
        # a dense layer's products, W laid out (c_out, k) by outputs
        if a.single:
            return backward_products[float](
                a.n, a.c_in * 25, a.c_out, <const float*> a.X,
                <const float*> a.W, True, <const float*> a.dZ, <float*> a.grad_W,
                <float*> a.grad_b, <float*> a.dX, a.in_act, a.n_threads)
        return backward_products[double](
            a.n, a.c_in * 25, a.c_out, <const double*> a.X,
            <const double*> a.W, True, <const double*> a.dZ, <double*> a.grad_W,
            <double*> a.grad_b, <double*> a.dX, a.in_act, a.n_threads)
    if a.single:
        return fastbp_conv5x5_backward_f32(
            <const float*> a.X, <const float*> a.W, <const float*> a.dZ, a.table,
            <float*> a.grad_W, <float*> a.grad_b, <float*> a.dX, a.n, a.c_in,
            a.h, a.w, a.c_out, a.in_act, a.layout, a.n_threads)
    return fastbp_conv5x5_backward_f64(
        <const double*> a.X, <const double*> a.W, <const double*> a.dZ, a.table,
        <double*> a.grad_W, <double*> a.grad_b, <double*> a.dX, a.n, a.c_in,
        a.h, a.w, a.c_out, a.in_act, a.layout, a.n_threads)


cdef class _ConvBackward(BoundCall):
    """conv5x5_backward's call, bound (_calls.pyx)."""
    cdef ConvBackwardArgs a

    cdef int execute(self) noexcept nogil:
        return _conv_backward_run(&self.a)


cdef int _conv_backward_args(ConvBackwardArgs* a, const floating[:, :, :, ::1] X,
                             const floating[:, :, :, ::1] W,
                             const floating[:, :, :, ::1] dZ,
                             const uint8_t[:, ::1] table,
                             floating[:, :, :, ::1] grad_W,
                             floating[::1] grad_b,
                             floating[:, :, :, ::1] dX,
                             int input_activation, int n_threads, int n_samples,
                             bint in_blocked, bint out_blocked) except -1:
    """Check a call of conv5x5_backward (ValueError) and fill ``a`` with its pointers
    and sizes."""
    cdef int bl = 16 if floating is float else 8
    cdef int n = _samples(X.shape[0], n_samples, in_blocked or out_blocked)
    cdef int c_in = X.shape[1], h = X.shape[2], w = X.shape[3]
    cdef int c_out = W.shape[0]
    cdef bint want_dX = dX is not None
    memset(a, 0, sizeof(a[0]))
    _check_conv(X, W, table)
    _check_rows("X", X.shape[0], n, in_blocked, bl)
    check_shape("dZ", dZ.shape, 4, (dZ.shape[0], c_out, h - 4, w - 4))
    _check_rows("dZ", dZ.shape[0], n, out_blocked, bl)
    check_shape("grad_W", grad_W.shape, 4, (c_out, c_in, 5, 5))
    check_shape("grad_b", grad_b.shape, 1, (c_out,))
    if want_dX:
        check_shape("dX", dX.shape, 4, (dX.shape[0], c_in, h, w))
        _check_rows("dX", dX.shape[0], n, in_blocked, bl)
    a.dense = _is_dense(table, h, w)
    a.layout = (FASTBP_BLOCKED_IN if in_blocked else 0) | (
        FASTBP_BLOCKED_OUT if out_blocked else 0)
    if a.layout and a.dense:
        raise ValueError("a 1x1 output runs as a dense layer: maps side by side are not for it")
    a.n, a.c_in, a.h, a.w, a.c_out = n, c_in, h, w, c_out
    a.in_act, a.n_threads = input_activation, n_threads
    a.single = floating is float
    a.W, a.table = &W[0, 0, 0, 0], &table[0, 0]
    a.grad_W, a.grad_b = &grad_W[0, 0, 0, 0], &grad_b[0]
    if n > 0:
        a.X, a.dZ = &X[0, 0, 0, 0], &dZ[0, 0, 0, 0]
        if want_dX:
            a.dX = &dX[0, 0, 0, 0]
    return 0


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
    cdef ConvBackwardArgs a
    cdef int status
    _conv_backward_args(&a, X, W, dZ, table, grad_W, grad_b, dX, input_activation, n_threads,
                        n_samples, in_blocked, out_blocked)
    with nogil:
        status = _conv_backward_run(&a)
    raise_for(status)


def bind_conv5x5_backward(const floating[:, :, :, ::1] X,
                          const floating[:, :, :, ::1] W,
                          const floating[:, :, :, ::1] dZ,
                          const uint8_t[:, ::1] table,
                          floating[:, :, :, ::1] grad_W,  # OUT
                          floating[::1] grad_b,  # OUT
                          floating[:, :, :, ::1] dX,  # OUT (None: not needed)
                          int input_activation, int n_threads, *, int n_samples=-1,
                          bint in_blocked=False, bint out_blocked=False):
    """:func:`conv5x5_backward`'s call, checked now: a BoundCall (see ``_calls``)."""
    cdef _ConvBackward call = _ConvBackward.__new__(_ConvBackward)
    # a copy: the table shapes the call (which pairs it computes, the dense
    # path or the direct one), as the shapes do, so it is read when bound
    cdef const uint8_t[:, ::1] frozen = table.copy()
    _conv_backward_args(&call.a, X, W, dZ, frozen, grad_W, grad_b, dX, input_activation, n_threads,
                        n_samples, in_blocked, out_blocked)
    return call.keep((X, W, dZ, frozen, grad_W, grad_b, dX))


ctypedef struct PoolForwardArgs:
    const void* Y
    const void* coef
    const void* bias
    void* X
    int n, c, h, w, act, layout, n_threads
    bint single


cdef int _pool_forward_run(const PoolForwardArgs* a) noexcept nogil:
    """Run a call of pool2x2_forward from its checked arguments."""
    if a.n == 0:
        return 0
    if a.single:
        return fastbp_pool2x2_forward_f32(<const float*> a.Y, <const float*> a.coef,
                                          <const float*> a.bias, <float*> a.X, a.n,
                                          a.c, a.h, a.w, a.act, a.layout,
                                          a.n_threads)
    return fastbp_pool2x2_forward_f64(<const double*> a.Y, <const double*> a.coef,
                                      <const double*> a.bias, <double*> a.X, a.n,
                                      a.c, a.h, a.w, a.act, a.layout,
                                      a.n_threads)


cdef class _PoolForward(BoundCall):
    """pool2x2_forward's call, bound (_calls.pyx)."""
    cdef PoolForwardArgs a

    cdef int execute(self) noexcept nogil:
        return _pool_forward_run(&self.a)


cdef int _pool_forward_args(PoolForwardArgs* a, const floating[:, :, :, ::1] Y,
                            const floating[::1] coef,
                            const floating[::1] bias,
                            floating[:, :, :, ::1] X,
                            int activation, int n_threads, int n_samples,
                            bint in_blocked, bint out_blocked) except -1:
    """Check a call of pool2x2_forward (ValueError) and fill ``a`` with its pointers
    and sizes."""
    cdef int bl = 16 if floating is float else 8
    cdef int n = _samples(Y.shape[0], n_samples, in_blocked or out_blocked)
    cdef int c = Y.shape[1], h = Y.shape[2], w = Y.shape[3]
    memset(a, 0, sizeof(a[0]))
    if out_blocked and not in_blocked:
        raise ValueError("a pooling's output side by side needs its input side by side")
    _check_pool_input(Y)
    _check_rows("Y", Y.shape[0], n, in_blocked, bl)
    check_shape("coef", coef.shape, 1, (c,))
    check_shape("bias", bias.shape, 1, (c,))
    check_shape("X", X.shape, 4, (X.shape[0], c, h // 2, w // 2))
    _check_rows("X", X.shape[0], n, out_blocked, bl)
    a.n, a.c, a.h, a.w = n, c, h, w
    a.act, a.n_threads = activation, n_threads
    a.layout = (FASTBP_BLOCKED_IN if in_blocked else 0) | (
        FASTBP_BLOCKED_OUT if out_blocked else 0)
    a.single = floating is float
    if n > 0 and c > 0 and h > 0 and w > 0:  # else X has no element to write
        a.Y, a.coef, a.bias, a.X = &Y[0, 0, 0, 0], &coef[0], &bias[0], &X[0, 0, 0, 0]
    else:
        a.n = 0
    return 0


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
    cdef PoolForwardArgs a
    cdef int status
    _pool_forward_args(&a, Y, coef, bias, X, activation, n_threads, n_samples, in_blocked,
                       out_blocked)
    with nogil:
        status = _pool_forward_run(&a)
    raise_for(status)


def bind_pool2x2_forward(const floating[:, :, :, ::1] Y,
                         const floating[::1] coef,
                         const floating[::1] bias,
                         floating[:, :, :, ::1] X,  # OUT
                         int activation, int n_threads, *, int n_samples=-1,
                         bint in_blocked=False, bint out_blocked=False):
    """:func:`pool2x2_forward`'s call, checked now: a BoundCall (see ``_calls``)."""
    cdef _PoolForward call = _PoolForward.__new__(_PoolForward)
    _pool_forward_args(&call.a, Y, coef, bias, X, activation, n_threads, n_samples, in_blocked,
                       out_blocked)
    return call.keep((Y, coef, bias, X))


ctypedef struct PoolBackwardArgs:
    const void* Y
    const void* coef
    const void* dZ
    void* grad_coef
    void* grad_bias
    void* dY
    int n, c, h, w, in_act, layout, n_threads
    bint single


cdef int _pool_backward_run(const PoolBackwardArgs* a) noexcept nogil:
    """Run a call of pool2x2_backward from its checked arguments."""
    if a.c == 0:
        return 0
    if a.single:
        return fastbp_pool2x2_backward_f32(
            <const float*> a.Y, <const float*> a.coef, <const float*> a.dZ,
            <float*> a.grad_coef, <float*> a.grad_bias, <float*> a.dY, a.n,
            a.c, a.h, a.w, a.in_act, a.layout, a.n_threads)
    return fastbp_pool2x2_backward_f64(
        <const double*> a.Y, <const double*> a.coef, <const double*> a.dZ,
        <double*> a.grad_coef, <double*> a.grad_bias, <double*> a.dY, a.n,
        a.c, a.h, a.w, a.in_act, a.layout, a.n_threads)


cdef class _PoolBackward(BoundCall):
    """pool2x2_backward's call, bound (_calls.pyx)."""
    cdef PoolBackwardArgs a

    cdef int execute(self) noexcept nogil:
        return _pool_backward_run(&self.a)


cdef int _pool_backward_args(PoolBackwardArgs* a, const floating[:, :, :, ::1] Y,
                             const floating[::1] coef,
                             const floating[:, :, :, ::1] dZ,
                             floating[::1] grad_coef,
                             floating[::1] grad_bias,
                             floating[:, :, :, ::1] dY,
                             int input_activation, int n_threads, int n_samples,
                             bint in_blocked, bint out_blocked) except -1:
    """Check a call of pool2x2_backward (ValueError) and fill ``a`` with its pointers
    and sizes."""
    cdef int bl = 16 if floating is float else 8
    cdef int n = _samples(Y.shape[0], n_samples, in_blocked or out_blocked)
    cdef int c = Y.shape[1], h = Y.shape[2], w = Y.shape[3]
    memset(a, 0, sizeof(a[0]))
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
    a.n, a.c, a.h, a.w = n, c, h, w
    a.in_act, a.n_threads = input_activation, n_threads
    a.layout = (FASTBP_BLOCKED_IN if in_blocked else 0) | (
        FASTBP_BLOCKED_OUT if out_blocked else 0)
    a.single = floating is float
    if c > 0:
        a.coef, a.grad_coef, a.grad_bias = &coef[0], &grad_coef[0], &grad_bias[0]
    if n > 0 and c > 0 and h > 0 and w > 0:
        a.Y, a.dZ = &Y[0, 0, 0, 0], &dZ[0, 0, 0, 0]
        if dY is not None:
            a.dY = &dY[0, 0, 0, 0]
    else:
        a.n = 0  # empty sums: the kernel zeroes grad_coef and grad_bias
    return 0


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
    cdef PoolBackwardArgs a
    cdef int status
    _pool_backward_args(&a, Y, coef, dZ, grad_coef, grad_bias, dY, input_activation, n_threads,
                        n_samples, in_blocked, out_blocked)
    with nogil:
        status = _pool_backward_run(&a)
    raise_for(status)


def bind_pool2x2_backward(const floating[:, :, :, ::1] Y,
                          const floating[::1] coef,
                          const floating[:, :, :, ::1] dZ,
                          floating[::1] grad_coef,  # OUT
                          floating[::1] grad_bias,  # OUT
                          floating[:, :, :, ::1] dY,  # OUT (None: not needed)
                          int input_activation, int n_threads, *, int n_samples=-1,
                          bint in_blocked=False, bint out_blocked=False):
    """:func:`pool2x2_backward`'s call, checked now: a BoundCall (see ``_calls``)."""
    cdef _PoolBackward call = _PoolBackward.__new__(_PoolBackward)
    _pool_backward_args(&call.a, Y, coef, dZ, grad_coef, grad_bias, dY, input_activation,
                        n_threads, n_samples, in_blocked, out_blocked)
    return call.keep((Y, coef, dZ, grad_coef, grad_bias, dY))


ctypedef struct _CallCounts:
    int n, n_threads
    bint single


cdef void _layer_shape(fastbp_conv_layer* l, _CallCounts* counts, int kind, const void* input,
                       const void* weight, int c_in, int h, int w, int c_out, int act,
                       int layout, int n, int n_threads, bint single) noexcept:
    """The fields every layer of a stack has (kind, input, weight, shape,
    activation and layout), and its call's samples, threads and dtype."""
    l.kind, l.input, l.weight = kind, input, weight
    l.c_in, l.h, l.w, l.c_out, l.act, l.layout = c_in, h, w, c_out, act, layout
    counts.n, counts.n_threads, counts.single = n, n_threads, single


cdef bint _stack_layer(object call, fastbp_conv_layer* l, _CallCounts* counts):
    """Describe ``call`` as a layer of a stack (fastbp_conv_stack) in ``l``,
    with its samples, threads and dtype in ``counts``; False for a call that
    cannot be one (not a convolution or pooling call, a convolution run as a
    dense layer, or no samples)."""
    cdef ConvForwardArgs* cf
    cdef ConvBackwardArgs* cb
    cdef PoolForwardArgs* pf
    cdef PoolBackwardArgs* pb
    memset(l, 0, sizeof(l[0]))
    memset(counts, 0, sizeof(counts[0]))
    if isinstance(call, _ConvForward) and not (<_ConvForward> call).a.dense:
        cf = &(<_ConvForward> call).a
        _layer_shape(l, counts, FASTBP_CONV_FORWARD, cf.X, cf.W, cf.c_in, cf.h, cf.w, cf.c_out,
                     cf.act, cf.layout, cf.n, cf.n_threads, cf.single)
        l.bias, l.table, l.output = cf.b, cf.table, cf.Y
    elif isinstance(call, _ConvBackward) and not (<_ConvBackward> call).a.dense:
        cb = &(<_ConvBackward> call).a
        _layer_shape(l, counts, FASTBP_CONV_BACKWARD, cb.X, cb.W, cb.c_in, cb.h, cb.w, cb.c_out,
                     cb.in_act, cb.layout, cb.n, cb.n_threads, cb.single)
        l.dout, l.table, l.din = cb.dZ, cb.table, cb.dX
        l.grad_weight, l.grad_bias = cb.grad_W, cb.grad_b
    elif isinstance(call, _PoolForward):
        pf = &(<_PoolForward> call).a
        _layer_shape(l, counts, FASTBP_POOL_FORWARD, pf.Y, pf.coef, pf.c, pf.h, pf.w, pf.c,
                     pf.act, pf.layout, pf.n, pf.n_threads, pf.single)
        l.bias, l.output = pf.bias, pf.X
    elif isinstance(call, _PoolBackward):
        pb = &(<_PoolBackward> call).a
        _layer_shape(l, counts, FASTBP_POOL_BACKWARD, pb.Y, pb.coef, pb.c, pb.h, pb.w, pb.c,
                     pb.in_act, pb.layout, pb.n, pb.n_threads, pb.single)
        l.dout, l.din, l.grad_weight, l.grad_bias = pb.dZ, pb.dY, pb.grad_coef, pb.grad_bias
    else:
        return False
    return counts.n > 0 and l.c_in > 0 and l.c_out > 0


cdef class _ConvStack(BoundCall):
    """Bound convolution and pooling calls run as one (stack_calls)."""
    cdef fastbp_conv_layer* layers
    cdef int count, n, n_threads
    cdef bint single, local_links

    def __dealloc__(self):
        free(self.layers)

    cdef int execute(self) noexcept nogil:
        if self.single:
            return fastbp_conv_stack_f32(self.layers, self.count, self.n, self.n_threads,
                                         self.local_links)
        return fastbp_conv_stack_f64(self.layers, self.count, self.n, self.n_threads,
                                     self.local_links)


cdef object _stack_of(list calls, bint local_links):
    """One call for ``calls`` (checked by stack_calls): the call itself when
    alone, else a _ConvStack of them."""
    cdef _ConvStack stack
    cdef _CallCounts counts
    cdef int k
    if len(calls) == 1:
        return calls[0]
    stack = _ConvStack.__new__(_ConvStack)
    stack.layers = <fastbp_conv_layer*> malloc(sizeof(fastbp_conv_layer) * len(calls))
    if stack.layers == NULL:
        raise MemoryError()
    stack.count = len(calls)
    stack.local_links = local_links
    for k in range(stack.count):
        _stack_layer(calls[k], &stack.layers[k], &counts)
    stack.n, stack.n_threads, stack.single = counts.n, counts.n_threads, counts.single
    return stack.keep(tuple(calls))


def stack_calls(calls, local_links=False):
    """``calls`` with each run of consecutive bound convolution and pooling
    calls that hand their maps on side by side replaced by one call.

    That call runs the layers block of samples by block (``csrc/conv.h``,
    ``fastbp_conv_stack``), in one team call where the threads allow it, so
    that a block's maps pass from layer to layer in its thread's caches. It
    gives the same bits as the calls one by one.

    Parameters
    ----------
    calls : list of callables
        Bound calls (BoundCall) in the order they run; other callables are
        kept as they are.
    local_links : bool, default False
        Let what a layer of a stack hands on to the next (its maps, or a
        backward pass's input gradient) stay in per-thread scratch, a block
        at a time, in its thread's caches: those arrays (but the stack's
        last layer's) may then be left as they were. For calls whose caller
        reads only the last layer's.

    Returns
    -------
    list of callables
    """
    cdef fastbp_conv_layer prev, layer
    cdef _CallCounts counts, prev_counts
    cdef int maps, rows, cols
    cdef bint ok, linked = False
    memset(&prev, 0, sizeof(prev))
    memset(&prev_counts, 0, sizeof(prev_counts))
    out, run = [], []
    for call in calls:
        ok = isinstance(call, BoundCall) and (<BoundCall> call).bound and _stack_layer(
            call, &layer, &counts)
        linked = (ok and len(run) > 0 and counts.n == prev_counts.n
                  and counts.n_threads == prev_counts.n_threads
                  and counts.single == prev_counts.single
                  and fastbp_conv_hands_on(&prev, &layer, &maps, &rows, &cols))
        if run and not linked:
            out.append(_stack_of(run, local_links))
            run = []
        if ok:
            run.append(call)
            prev, prev_counts = layer, counts
        else:
            out.append(call)
    if run:
        out.append(_stack_of(run, local_links))
    return out


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
