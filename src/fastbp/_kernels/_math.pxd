# Scalar math of the Cython kernels (float32 uses the float libm calls) and the
# activation codes of csrc/fb_activations.h, the one table of activations of
# every C kernel; the vectorized activation loops are in _elementwise.pxd.
from cython cimport floating
from libc.math cimport exp, expf, log, logf, log1p, log1pf

cdef extern from "fb_activations.h":
    enum:
        ACT_IDENTITY "FB_ACT_IDENTITY"
        ACT_LOGISTIC "FB_ACT_LOGISTIC"
        ACT_TANH "FB_ACT_TANH"
        ACT_RELU "FB_ACT_RELU"
        ACT_LECUN_TANH "FB_ACT_LECUN_TANH"
    # lecun_tanh(z) = LECUN_A tanh(LECUN_S z)
    const double LECUN_A "FB_LECUN_A"
    const double LECUN_S "FB_LECUN_S"

cdef inline floating fexp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)

cdef inline floating flog(floating x) noexcept nogil:
    if floating is float:
        return logf(x)
    else:
        return log(x)

cdef inline floating flog1p(floating x) noexcept nogil:
    if floating is float:
        return log1pf(x)
    else:
        return log1p(x)

cdef inline floating sigmoid(floating z) noexcept nogil:
    # The logistic link of the output losses, with libm's exp (the hidden
    # layers' ACT_LOGISTIC is fb_activations.h's). Never exponentiate a large
    # positive number: exp overflows to inf.
    cdef floating e
    if z >= 0:
        return 1 / (1 + fexp(-z))
    e = fexp(z)
    return e / (1 + e)
