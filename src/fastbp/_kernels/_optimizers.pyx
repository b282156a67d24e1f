"""Optimizer kernels: SGD and Adam steps and the L2 penalty, element-wise
over the flat parameter vector theta.

Stateless: C-contiguous arrays in, results written into the arrays marked
``# OUT``; every entry point checks the shapes agree (ValueError). The
elements are shared out to fastbp's thread team in fixed units, and the L2
sum is added in a fixed order, so results do not depend on the thread count.
update_range, the step that _chain.pyx applies block by block, is declared
in _optimizers.pxd.
"""
from cython cimport floating
from libc.stdlib cimport malloc, free

from ._checks cimport check_shape
from ._dispatch cimport bind_dispatch
from ._elementwise cimport adam_range, l2_block, sgd_range
from ._team cimport (TEAM_UNIT_ELEMENTS, DtypeUnits, bind_team, dtype_unit, set_units, team_run,
                     unit_count)

bind_dispatch()
bind_team()

# Block length of the fixed-order reductions.
cdef Py_ssize_t REDUCE_BLOCK = 4096
# Parameters from which the optimizer passes run on the team. Lower than
# FASTBP_MIN_PARALLEL: in a fit, theta, its gradient and the optimizer's
# state have left the cache by the time of the step (the forward and
# backward passes ran between), so the step is bound by memory, and two
# cores draw on it about twice as fast as one.
cdef Py_ssize_t UPDATE_MIN_PARALLEL = 4 * TEAM_UNIT_ELEMENTS


cdef inline int update_threads(Py_ssize_t size, int n_threads) noexcept nogil:
    return n_threads if size >= UPDATE_MIN_PARALLEL else 1

UPDATE_CODES = {"sgd": UPDATE_SGD, "adam": UPDATE_ADAM}


cdef inline void adam_block(floating* theta, const floating* grad, floating* m1, floating* m2,
                            double step_size, double beta_1, double beta_2, double epsilon,
                            Py_ssize_t n) noexcept nogil:
    """adam_update on n elements, its constants rounded as sklearn's numpy
    code rounds them for arrays of this dtype (1 - beta formed in double)."""
    adam_range(theta, grad, m1, m2, <floating> step_size, <floating> beta_1,
               <floating> (1.0 - beta_1), <floating> beta_2, <floating> (1.0 - beta_2),
               <floating> epsilon, n)


cdef void update_range(int update, floating* theta, const floating* grad, floating* s1,
                       floating* s2, double lr, double beta_1, double beta_2, double epsilon,
                       bint nesterov, Py_ssize_t n) noexcept nogil:
    """The optimizer step of dense_chain_loss_and_grad on n elements (s1, s2:
    the velocity, or Adam's moments, at the same place as theta)."""
    if update == UPDATE_SGD:
        sgd_range(theta, grad, s1, <floating> lr, <floating> beta_1, nesterov, n)
    elif update == UPDATE_ADAM:
        adam_block(theta, grad, s1, s2, lr, beta_1, beta_2, epsilon, n)


def l2_penalty(const floating[::1] theta,
               floating[::1] grad,  # OUT: grad += coef * theta
               double coef, int n_threads):
    """Add coef * theta to grad and return sum(theta ** 2) (fixed-order sum)."""
    cdef Py_ssize_t size = theta.shape[0]
    cdef Py_ssize_t blk
    cdef double total = 0
    cdef VectorJob job
    check_shape("grad", grad.shape, 1, (size,))
    if size == 0:
        return 0.0
    vector_job(&job, VECTOR_L2, <floating*> &theta[0], &grad[0], NULL, NULL, size, REDUCE_BLOCK)
    job.lr = coef
    job.partial = <double*> malloc(job.n_units * sizeof(double))
    if job.partial == NULL:
        raise MemoryError()
    with nogil:
        team_run(update_threads(size, n_threads), job.n_units, dtype_unit, &job)
        for blk in range(job.n_units):
            total += job.partial[blk]
    free(job.partial)
    return total


cdef enum:
    VECTOR_L2 = 3  # beside UPDATE_SGD and UPDATE_ADAM: grad += c theta, sum(theta ** 2)


ctypedef struct VectorJob:
    # An element-wise pass over theta and its companions, `block` elements
    # a unit: an optimizer step (update_range's arguments) or VECTOR_L2.
    DtypeUnits units
    void* theta
    const void* grad
    void* s1
    void* s2
    double* partial  # VECTOR_L2: sum(theta ** 2) per unit
    double lr, beta_1, beta_2, epsilon
    Py_ssize_t size, block
    int op, n_units
    bint nesterov


cdef inline void vector_job(VectorJob* job, int op, floating* theta, const floating* grad,
                            floating* s1, floating* s2, Py_ssize_t size,
                            Py_ssize_t block) noexcept nogil:
    job.op = op
    job.theta = theta
    job.grad = grad
    job.s1 = s1
    job.s2 = s2
    job.size = size
    job.block = block
    job.n_units = <int> unit_count(size, block)
    set_units(&job.units, vector_block[float], vector_block[double], <floating*> NULL)


cdef void vector_block(const void* job, int u, int slot, floating* tag) noexcept nogil:
    cdef const VectorJob* j = <const VectorJob*> job
    cdef Py_ssize_t start = <Py_ssize_t> u * j.block
    cdef Py_ssize_t n = min(j.block, j.size - start)
    cdef floating* theta = <floating*> j.theta + start
    cdef const floating* grad = <const floating*> j.grad + start
    if j.op == VECTOR_L2:
        j.partial[u] = l2_block(theta, <floating*> grad, <floating> j.lr, n)
    else:
        update_range(j.op, theta, grad, <floating*> j.s1 + start,
                     <floating*> j.s2 + start if j.s2 != NULL else NULL, j.lr, j.beta_1,
                     j.beta_2, j.epsilon, j.nesterov, n)


def sgd_update(floating[::1] theta,  # OUT
               const floating[::1] grad,
               floating[::1] velocity,  # OUT
               double learning_rate, double momentum, bint nesterov, int n_threads):
    """Momentum SGD, as sklearn's SGDOptimizer:
    v = momentum * v - lr * g; theta += v, or with Nesterov
    theta += momentum * v - lr * g."""
    cdef Py_ssize_t size = theta.shape[0]
    cdef VectorJob job
    check_shape("grad", grad.shape, 1, (size,))
    check_shape("velocity", velocity.shape, 1, (size,))
    if size == 0:
        return
    vector_job(&job, UPDATE_SGD, &theta[0], &grad[0], &velocity[0], NULL, size,
               TEAM_UNIT_ELEMENTS)
    job.lr = learning_rate
    job.beta_1 = momentum
    job.nesterov = nesterov
    with nogil:
        team_run(update_threads(size, n_threads), job.n_units, dtype_unit, &job)


def adam_update(floating[::1] theta,  # OUT
                const floating[::1] grad,
                floating[::1] m1,  # OUT: first moment
                floating[::1] m2,  # OUT: second moment
                double step_size, double beta_1, double beta_2, double epsilon,
                int n_threads):
    """Adam, as sklearn's AdamOptimizer, rounded as its numpy code rounds it
    for arrays of this dtype; step_size is the bias-corrected
    lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)."""
    cdef Py_ssize_t size = theta.shape[0]
    cdef VectorJob job
    check_shape("grad", grad.shape, 1, (size,))
    check_shape("m1", m1.shape, 1, (size,))
    check_shape("m2", m2.shape, 1, (size,))
    if size == 0:
        return
    vector_job(&job, UPDATE_ADAM, &theta[0], &grad[0], &m1[0], &m2[0], size, TEAM_UNIT_ELEMENTS)
    job.lr = step_size
    job.beta_1 = beta_1
    job.beta_2 = beta_2
    job.epsilon = epsilon
    with nogil:
        team_run(update_threads(size, n_threads), job.n_units, dtype_unit, &job)

