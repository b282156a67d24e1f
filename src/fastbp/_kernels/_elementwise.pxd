# The vectorized element-wise loops of csrc/elementwise.c (contract in
# elementwise.h), for the modules that compile that file in: typed wrappers
# over the float and double versions.
from cython cimport floating
from libc.stdint cimport int32_t

cdef extern from "elementwise.h":
    void fastbp_act_f(float* out, const float* a, const float* b,
                      Py_ssize_t n, int act) noexcept nogil
    void fastbp_act_d(double* out, const double* a, const double* b,
                      Py_ssize_t n, int act) noexcept nogil
    void fastbp_dact_f(float* out, const float* a, const float* b,
                       const float* h, Py_ssize_t n, int act) noexcept nogil
    void fastbp_dact_d(double* out, const double* a, const double* b,
                       const double* h, Py_ssize_t n, int act) noexcept nogil
    void fastbp_softmax_ce_f(float* z, const float* y, const int32_t* cls, float* d,
                             Py_ssize_t rows, Py_ssize_t n, double scale, const float* sw,
                             float lo, float hi, double* row_loss) noexcept nogil
    void fastbp_softmax_ce_d(double* z, const double* y, const int32_t* cls, double* d,
                             Py_ssize_t rows, Py_ssize_t n, double scale, const double* sw,
                             double lo, double hi, double* row_loss) noexcept nogil
    void fastbp_softmax_f(float* z, Py_ssize_t rows, Py_ssize_t n) noexcept nogil
    void fastbp_softmax_d(double* z, Py_ssize_t rows, Py_ssize_t n) noexcept nogil
    void fastbp_column_sums_f(const float* a, Py_ssize_t m, Py_ssize_t ld, Py_ssize_t n,
                              float* out) noexcept nogil
    void fastbp_column_sums_d(const double* a, Py_ssize_t m, Py_ssize_t ld, Py_ssize_t n,
                              double* out) noexcept nogil
    double fastbp_l2_f(const float* theta, float* grad, float c, Py_ssize_t n) noexcept nogil
    double fastbp_l2_d(const double* theta, double* grad, double c, Py_ssize_t n) noexcept nogil
    void fastbp_adam_f(float* theta, const float* g, float* m1, float* m2, float lr,
                       float b1, float c1, float b2, float c2, float eps,
                       Py_ssize_t n) noexcept nogil
    void fastbp_adam_d(double* theta, const double* g, double* m1, double* m2, double lr,
                       double b1, double c1, double b2, double c2, double eps,
                       Py_ssize_t n) noexcept nogil
    void fastbp_sgd_f(float* theta, const float* g, float* v, float lr, float mu,
                      int nesterov, Py_ssize_t n) noexcept nogil
    void fastbp_sgd_d(double* theta, const double* g, double* v, double lr, double mu,
                      int nesterov, Py_ssize_t n) noexcept nogil
    int fastbp_all_finite_f(const float* x, Py_ssize_t n) noexcept nogil
    int fastbp_all_finite_d(const double* x, Py_ssize_t n) noexcept nogil


cdef inline bint elementwise_all_finite(const floating* x, Py_ssize_t n) noexcept nogil:
    """Whether no element of x is NaN or infinite."""
    if floating is float:
        return fastbp_all_finite_f(x, n)
    else:
        return fastbp_all_finite_d(x, n)


cdef inline void elementwise_act(floating* out, const floating* a, const floating* b,
                                 Py_ssize_t n, int act) noexcept nogil:
    """out = act(a + b) (b NULL: act(a)); out may be a."""
    if floating is float:
        fastbp_act_f(out, a, b, n, act)
    else:
        fastbp_act_d(out, a, b, n, act)


cdef inline void elementwise_dact(floating* out, const floating* a, const floating* b,
                                  const floating* h, Py_ssize_t n, int act) noexcept nogil:
    """out = (a + b) * act'(z) from h = act(z) (b NULL: a act'(z)); out may be a."""
    if floating is float:
        fastbp_dact_f(out, a, b, h, n, act)
    else:
        fastbp_dact_d(out, a, b, h, n, act)


cdef inline void softmax_ce_rows(floating* z, const floating* y, const int32_t* cls,
                                 floating* d, Py_ssize_t rows, Py_ssize_t n, double scale,
                                 const floating* sw, floating lo, floating hi,
                                 double* row_loss) noexcept nogil:
    """The softmax cross-entropy of ``rows`` rows of n logits (elementwise.h),
    targets y (NULL: the classes cls, each in [0, n)): z turns into
    probabilities, d into the delta, row_loss into the losses."""
    if floating is float:
        fastbp_softmax_ce_f(z, y, cls, d, rows, n, scale, sw, lo, hi, row_loss)
    else:
        fastbp_softmax_ce_d(z, y, cls, d, rows, n, scale, sw, lo, hi, row_loss)


cdef inline void softmax_rows(floating* z, Py_ssize_t rows, Py_ssize_t n) noexcept nogil:
    """``rows`` rows of n logits into their softmax, in place."""
    if floating is float:
        fastbp_softmax_f(z, rows, n)
    else:
        fastbp_softmax_d(z, rows, n)


cdef inline void column_sums(const floating* a, Py_ssize_t m, Py_ssize_t ld, Py_ssize_t n,
                             floating* out) noexcept nogil:
    """out[c] = the sum of column c (c < n) over m rows of stride ld, rows in order."""
    if floating is float:
        fastbp_column_sums_f(a, m, ld, n, out)
    else:
        fastbp_column_sums_d(a, m, ld, n, out)


cdef inline double l2_block(const floating* theta, floating* grad, floating c,
                            Py_ssize_t n) noexcept nogil:
    """grad += c * theta; returns sum(theta ** 2) in double, in a fixed order."""
    if floating is float:
        return fastbp_l2_f(theta, grad, c, n)
    else:
        return fastbp_l2_d(theta, grad, c, n)


cdef inline void adam_range(floating* theta, const floating* g, floating* m1, floating* m2,
                            floating lr, floating b1, floating c1, floating b2, floating c2,
                            floating eps, Py_ssize_t n) noexcept nogil:
    """Adam's step over n elements (c1 = 1 - b1, c2 = 1 - b2), rounded as numpy
    rounds it."""
    if floating is float:
        fastbp_adam_f(theta, g, m1, m2, lr, b1, c1, b2, c2, eps, n)
    else:
        fastbp_adam_d(theta, g, m1, m2, lr, b1, c1, b2, c2, eps, n)


cdef inline void sgd_range(floating* theta, const floating* g, floating* velocity,
                           floating lr, floating mu, bint nesterov, Py_ssize_t n) noexcept nogil:
    """Momentum SGD over n elements, as sklearn's SGDOptimizer rounds it:
    v = mu * v - lr * g; theta += v, or with Nesterov theta += mu * v - lr * g."""
    if floating is float:
        fastbp_sgd_f(theta, g, velocity, lr, mu, nesterov, n)
    else:
        fastbp_sgd_d(theta, g, velocity, lr, mu, nesterov, n)
