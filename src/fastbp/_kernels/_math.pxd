# Element-wise math shared by the kernels: float32 uses the float libm calls,
# activations are applied and differentiated from their outputs.
from cython cimport floating
from libc.math cimport exp, expf, log, logf, log1p, log1pf, tanh, tanhf, sqrt, sqrtf

cdef enum:
    ACT_IDENTITY = 0
    ACT_LOGISTIC = 1
    ACT_TANH = 2
    ACT_RELU = 3
    ACT_LECUN_TANH = 4

# LeCun (1998), Appendix A: f(a) = A tanh(S a) with A = 1.7159, S = 2/3.
cdef extern from *:
    """
    #define FASTBP_LECUN_A 1.7159
    #define FASTBP_LECUN_S (2.0 / 3.0)
    """
    double LECUN_A "FASTBP_LECUN_A"
    double LECUN_S "FASTBP_LECUN_S"

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

cdef inline floating ftanh(floating x) noexcept nogil:
    if floating is float:
        return tanhf(x)
    else:
        return tanh(x)

cdef inline floating fsqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)

cdef inline floating sigmoid(floating z) noexcept nogil:
    # Never exponentiate a large positive number: exp overflows to inf.
    cdef floating e
    if z >= 0:
        return 1 / (1 + fexp(-z))
    e = fexp(z)
    return e / (1 + e)

cdef inline floating activate(floating z, int act) noexcept nogil:
    if act == ACT_RELU:
        return z if z > 0 else 0
    if act == ACT_TANH:
        return ftanh(z)
    if act == ACT_LOGISTIC:
        return sigmoid(z)
    if act == ACT_LECUN_TANH:
        return <floating> (LECUN_A * ftanh(<floating> (LECUN_S * z)))
    return z

cdef inline floating derivative_from_output(floating a, int act) noexcept nogil:
    """g'(z) written in terms of a = g(z), so z need not be stored."""
    if act == ACT_RELU:
        return 1 if a > 0 else 0
    if act == ACT_TANH:
        return 1 - a * a
    if act == ACT_LOGISTIC:
        return a * (1 - a)
    if act == ACT_LECUN_TANH:
        return <floating> (LECUN_S * (LECUN_A - a * a / LECUN_A))
    return 1
