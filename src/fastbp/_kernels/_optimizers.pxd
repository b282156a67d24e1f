# The optimizer steps: their codes (UPDATE_CODES in _optimizers.pyx) and
# the step on a range of parameters that the fused chain (_chain.pyx) shares.
from cython cimport floating

cdef enum:
    UPDATE_NONE = 0
    UPDATE_SGD = 1            # momentum SGD (sgd_update)
    UPDATE_ADAM = 2           # Adam (adam_update)


cdef void update_range(int update, floating* theta, const floating* grad, floating* s1,
                       floating* s2, double lr, double beta_1, double beta_2, double epsilon,
                       bint nesterov, Py_ssize_t n) noexcept nogil
