# The output losses: their codes (LOSS_CODES in _losses.pyx) and the
# per-row loss and delta that the fused chain (_chain.pyx) shares.
from cython cimport floating

cdef enum:
    LOSS_SOFTMAX_CE = 0       # softmax output, categorical cross-entropy
    LOSS_LOGISTIC_CE = 1      # logistic outputs, binary cross-entropy summed over outputs
    LOSS_SQUARED = 2          # identity outputs, half squared error averaged over outputs
    LOSS_SQUARED_LOGISTIC = 3 # logistic outputs, half squared error averaged over outputs
    LOSS_POISSON = 4          # exp outputs, half Poisson deviance summed over outputs


cdef void rows_loss_delta(floating* Z, const floating* Y, floating* D, Py_ssize_t r0,
                          Py_ssize_t r1, Py_ssize_t n, int kind, double scale,
                          const floating* sw, double* row_loss) noexcept nogil
