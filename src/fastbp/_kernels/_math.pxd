# Scalar math of the Cython kernels (float32 uses the float libm calls) and the
# activation codes; the vectorized activation loops are in _elementwise.pxd.
from cython cimport floating
from libc.math cimport exp, expf, log, logf, log1p, log1pf

cdef enum:
    ACT_IDENTITY = 0
    ACT_LOGISTIC = 1
    ACT_TANH = 2
    ACT_RELU = 3
    ACT_LECUN_TANH = 4

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
    # Never exponentiate a large positive number: exp overflows to inf.
    cdef floating e
    if z >= 0:
        return 1 / (1 + fexp(-z))
    e = fexp(z)
    return e / (1 + e)
