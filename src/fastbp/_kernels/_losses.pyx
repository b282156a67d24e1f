"""Output-layer kernels: each loss fused with its output activation and
its delta (rows_loss_delta, which _chain_engine.pyx shares through _losses.pxd).

Stateless: C-contiguous arrays in, results written into the arrays marked
``# OUT``; every entry point checks the shapes agree (ValueError). Rows are
shared out to fastbp's thread team and the loss summed in row order, so
results do not depend on the thread count.
"""
from cython cimport floating
from libc.stdint cimport int32_t
from libc.stdlib cimport malloc, free
from libc.float cimport DBL_EPSILON, FLT_EPSILON

from ._checks cimport check_shape
from ._dispatch cimport bind_dispatch
from ._elementwise cimport elementwise_act, softmax_ce_rows, softmax_rows
from ._math cimport ACT_LOGISTIC, sigmoid, fexp, flog, flog1p
from ._team cimport (TEAM_UNIT_ELEMENTS, DtypeUnits, bind_team, dtype_unit, set_units, team_run,
                     threads_for, unit_count)

bind_dispatch()
bind_team()

LOSS_CODES = {"softmax_ce": LOSS_SOFTMAX_CE, "logistic_ce": LOSS_LOGISTIC_CE,
              "squared": LOSS_SQUARED, "squared_logistic": LOSS_SQUARED_LOGISTIC,
              "poisson": LOSS_POISSON}


cdef inline floating clip(floating v, floating lo, floating hi) noexcept nogil:
    return lo if v < lo else (hi if v > hi else v)


cdef inline floating row_loss_delta(floating* z, const floating* y, floating* d,
                                    Py_ssize_t n, int kind, floating weight) noexcept nogil:
    """Turn one row of logits z into outputs in place, write d = weight * dl/dz,
    return the row's loss l (unweighted); every kind but the softmax
    cross-entropy, which elementwise.c's softmax_ce takes (fastbp_softmax_ce_*).

    The cross-entropies clip each probability to [eps, 1 - eps] (eps of the
    dtype) inside the loss, as sklearn's log_loss does, so a saturated output
    costs at most -log(eps) and loss_curve_ and tol see sklearn's numbers; the
    delta is the unclipped p - y, as in sklearn's backprop."""
    cdef Py_ssize_t j
    cdef floating loss = 0, p, diff, soft, neg_log_p, neg_log_q
    cdef floating eps = FLT_EPSILON if floating is float else DBL_EPSILON
    # -log(p) for p clipped to [eps, 1 - eps] is -log(p) clipped to [lo, hi]
    cdef floating lo = -flog1p(-eps), hi = -flog(eps)
    if kind == LOSS_LOGISTIC_CE:
        # l = sum_j y_j (-log p_j) + (1 - y_j) (-log(1 - p_j)), where
        # -log p = softplus(-z) and -log(1 - p) = softplus(z), each written so
        # that exp never overflows and neither is a difference of near equals.
        for j in range(n):
            soft = flog1p(fexp(-(z[j] if z[j] >= 0 else -z[j])))
            neg_log_p = (-z[j] if z[j] < 0 else 0) + soft
            neg_log_q = (z[j] if z[j] > 0 else 0) + soft
            loss += y[j] * clip(neg_log_p, lo, hi) + (1 - y[j]) * clip(neg_log_q, lo, hi)
            z[j] = sigmoid(z[j])
            d[j] = weight * (z[j] - y[j])
    elif kind == LOSS_SQUARED:
        for j in range(n):
            diff = z[j] - y[j]
            loss += diff * diff
            d[j] = weight * diff / n
        loss = loss / (2 * n)
    elif kind == LOSS_SQUARED_LOGISTIC:
        for j in range(n):
            p = sigmoid(z[j])
            z[j] = p
            diff = p - y[j]
            loss += diff * diff
            d[j] = weight * diff * p * (1 - p) / n
        loss = loss / (2 * n)
    elif kind == LOSS_POISSON:
        # Half Poisson deviance with log link: y log y - y z - y + exp(z).
        for j in range(n):
            p = fexp(z[j])
            loss += (y[j] * flog(y[j]) if y[j] > 0 else 0) - y[j] * z[j] - y[j] + p
            z[j] = p
            d[j] = weight * (p - y[j])
    return loss


def output_loss_delta(floating[:, ::1] Z,  # IN: logits, OUT: outputs
                      const floating[:, ::1] Y,
                      const floating[::1] sample_weight,  # None: all ones
                      floating[:, ::1] delta,  # OUT
                      int kind, double scale, int n_threads):
    """Fused output activation, loss and output delta.

    Returns sum_i w_i l_i (float64). delta_i = scale * w_i * dl_i/dz_i, so with
    scale = 1 / sum(w) it is the gradient of the weighted mean loss.
    """
    cdef Py_ssize_t m = Z.shape[0]
    cdef Py_ssize_t n = Z.shape[1]
    cdef bint weighted = sample_weight is not None
    cdef OutputJob job
    check_shape("Y", Y.shape, 2, (m, n))
    check_shape("delta", delta.shape, 2, (m, n))
    if weighted:
        check_shape("sample_weight", sample_weight.shape, 1, (m,))
    if m == 0 or n == 0:
        return 0.0
    output_job(&job, &Z[0, 0], m, n, kind)
    set_units(&job.units, output_loss_rows[float], output_loss_rows[double], <floating*> NULL)
    job.Y = &Y[0, 0]
    return _run_loss(&job, &sample_weight[0] if weighted else NULL, &delta[0, 0], scale,
                     n_threads)


def softmax_ce_classes(floating[:, ::1] Z,  # IN: logits, OUT: probabilities
                       const int32_t[::1] classes,
                       const floating[::1] sample_weight,  # None: all ones
                       floating[:, ::1] delta,  # OUT
                       double scale, int n_threads):
    """output_loss_delta of the softmax cross-entropy with the targets given
    as the class of each row (classes[i] in [0, n_outputs), else ValueError):
    the same results, to the bit, as with their one-hot rows, without
    reading (or anyone building) those rows."""
    cdef Py_ssize_t m = Z.shape[0]
    cdef Py_ssize_t n = Z.shape[1]
    cdef Py_ssize_t i
    cdef OutputJob job
    cdef int32_t* codes
    check_shape("classes", classes.shape, 1, (m,))
    check_shape("delta", delta.shape, 2, (m, n))
    if sample_weight is not None:
        check_shape("sample_weight", sample_weight.shape, 1, (m,))
    if m == 0:
        return 0.0
    # The kernel indexes rows by the codes, so it reads a private copy, the
    # one checked: the caller's array may share memory with Z or delta,
    # which the kernel writes, or be written by another thread meanwhile.
    codes = <int32_t*> malloc(m * sizeof(int32_t))
    if codes == NULL:
        raise MemoryError()
    try:
        for i in range(m):
            codes[i] = classes[i]
            if not 0 <= codes[i] < n:
                raise ValueError(f"class {codes[i]} of row {i} is not in [0, {n})")
        output_job(&job, &Z[0, 0], m, n, LOSS_SOFTMAX_CE)
        set_units(&job.units, softmax_classes_rows[float], softmax_classes_rows[double],
                  <floating*> NULL)
        job.classes = codes
        return _run_loss(&job, &sample_weight[0] if sample_weight is not None else NULL,
                         &delta[0, 0], scale, n_threads)
    finally:
        free(codes)


cdef double _run_loss(OutputJob* job, const void* sample_weight, void* delta, double scale,
                      int n_threads) except? -1:
    """Run a loss job (its units, Z and targets set) on the team; return the
    sum of its rows' losses, added in row order."""
    cdef Py_ssize_t i
    cdef double total = 0
    cdef double* row_loss = <double*> malloc(job.m * sizeof(double))
    if row_loss == NULL:
        raise MemoryError()
    job.sample_weight = sample_weight
    job.delta = delta
    job.row_loss = row_loss
    job.scale = scale
    with nogil:
        team_run(threads_for(job.m * job.n * 8, n_threads), job.n_units, dtype_unit, job)
        for i in range(job.m):
            total += row_loss[i]
    free(row_loss)
    return total


ctypedef struct OutputJob:
    # Rows of the output layer, rows_per_unit a unit.
    DtypeUnits units
    void* Z
    const void* Y
    const int32_t* classes  # the softmax cross-entropy's targets, in place of Y
    const void* sample_weight
    void* delta
    double* row_loss
    double scale
    Py_ssize_t m, n, rows_per_unit
    int n_units, kind


cdef inline void output_job(OutputJob* job, floating* Z, Py_ssize_t m, Py_ssize_t n,
                            int kind) noexcept nogil:
    job.Z = Z
    job.m = m
    job.n = n
    job.kind = kind
    job.rows_per_unit = max(1, TEAM_UNIT_ELEMENTS // max(n, 1))
    job.n_units = <int> unit_count(m, job.rows_per_unit)


cdef void rows_loss_delta(floating* Z, const floating* Y, floating* D, Py_ssize_t r0,
                          Py_ssize_t r1, Py_ssize_t n, int kind, double scale,
                          const floating* sw, double* row_loss) noexcept nogil:
    """Rows [r0, r1) of the output layer (n outputs a row): each row of logits Z
    turns into outputs in place, D = w_i * dl_i/dz_i and row_loss[i] = w_i l_i,
    with w_i = scale * sw[i] (sw NULL: scale, and row_loss[i] = l_i).

    The cross-entropies clip each probability to [eps, 1 - eps] (eps of the
    dtype) inside the loss, as sklearn's log_loss does, so a saturated output
    costs at most -log(eps) and loss_curve_ and tol see sklearn's numbers; the
    delta is the unclipped p - y, as in sklearn's backprop."""
    cdef Py_ssize_t i
    cdef floating w, loss
    cdef floating eps = FLT_EPSILON if floating is float else DBL_EPSILON
    cdef const floating* sw_rows = NULL
    if kind == LOSS_SOFTMAX_CE:
        if sw != NULL:
            sw_rows = sw + r0
        softmax_ce_rows(Z + r0 * n, Y + r0 * n, NULL, D + r0 * n, r1 - r0, n, scale, sw_rows,
                        -flog1p(-eps), -flog(eps), row_loss + r0)
        return
    for i in range(r0, r1):
        w = <floating> scale
        if sw != NULL:
            w = w * sw[i]
        loss = row_loss_delta(Z + i * n, Y + i * n, D + i * n, n, kind, w)
        if sw != NULL:
            loss = loss * sw[i]
        row_loss[i] = loss


cdef void output_loss_rows(const void* job, int u, int slot, floating* tag) noexcept nogil:
    cdef const OutputJob* j = <const OutputJob*> job
    rows_loss_delta(<floating*> j.Z, <const floating*> j.Y, <floating*> j.delta,
                    u * j.rows_per_unit, min(j.m, (u + 1) * j.rows_per_unit), j.n, j.kind,
                    j.scale, <const floating*> j.sample_weight, j.row_loss)


cdef void softmax_classes_rows(const void* job, int u, int slot, floating* tag) noexcept nogil:
    cdef const OutputJob* j = <const OutputJob*> job
    cdef Py_ssize_t r0 = u * j.rows_per_unit, r1 = min(j.m, (u + 1) * j.rows_per_unit)
    cdef floating eps = FLT_EPSILON if floating is float else DBL_EPSILON
    cdef const floating* sw = <const floating*> j.sample_weight
    softmax_ce_rows(<floating*> j.Z + r0 * j.n, <const floating*> NULL, j.classes + r0,
                    <floating*> j.delta + r0 * j.n, r1 - r0, j.n, j.scale,
                    sw + r0 if sw != NULL else NULL, -flog1p(-eps), -flog(eps),
                    j.row_loss + r0)


cdef void output_activate_rows(const void* job, int u, int slot, floating* tag) noexcept nogil:
    cdef const OutputJob* j = <const OutputJob*> job
    cdef Py_ssize_t i, k, n = j.n
    cdef Py_ssize_t r0 = u * j.rows_per_unit, r1 = min(j.m, (u + 1) * j.rows_per_unit)
    cdef floating* z
    if j.kind == LOSS_SOFTMAX_CE:
        softmax_rows(<floating*> j.Z + r0 * n, r1 - r0, n)
        return
    for i in range(r0, r1):
        z = <floating*> j.Z + i * n
        if j.kind == LOSS_LOGISTIC_CE or j.kind == LOSS_SQUARED_LOGISTIC:
            elementwise_act(z, z, <floating*> NULL, n, ACT_LOGISTIC)
        elif j.kind == LOSS_POISSON:
            for k in range(n):
                z[k] = fexp(z[k])


def output_activate(floating[:, ::1] Z,  # IN: logits, OUT: outputs
                    int kind, int n_threads):
    """Apply the output activation of a loss kind in place (prediction path)."""
    cdef Py_ssize_t m = Z.shape[0]
    cdef Py_ssize_t n = Z.shape[1]
    cdef OutputJob job
    if n == 0 or m == 0:
        return
    output_job(&job, &Z[0, 0], m, n, kind)
    set_units(&job.units, output_activate_rows[float], output_activate_rows[double],
              <floating*> NULL)
    with nogil:
        team_run(threads_for(m * n * 8, n_threads), job.n_units, dtype_unit, &job)
