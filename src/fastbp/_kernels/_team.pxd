# Work shared by a team of threads: fastbp's own team (csrc/fb_team.h says
# why it is not an OpenMP region), which _team.pyx owns and every kernel
# module binds to when imported (bind_team). A team call is
#
#     cdef void unit(void* job, int u, int slot) noexcept nogil:
#         ...unit u of the job (slot: which per-thread scratch to use)...
#     team_run(nt, count, unit, &job)
#
# A unit goes to whichever thread asks first: its result must not depend on
# the thread that runs it.
from cython cimport floating

cdef extern from "fb_team.h" nogil:
    ctypedef void (*fb_unit_fn)(void* job, int unit, int slot) noexcept nogil
    ctypedef void (*fb_team_run_fn)(int nt, int count, fb_unit_fn unit, void* job) noexcept nogil
    void team_run "fb_team_run"(int nt, int count, fb_unit_fn unit, void* job)
    void fastbp_team_bind(fb_team_run_fn run)

cdef fb_team_run_fn team_run_address() noexcept nogil


cdef inline void bind_team() noexcept:
    """Make this module's team calls run on the team owned by _team."""
    fastbp_team_bind(team_run_address())

# Elements of one unit of an element-wise pass: small enough that a thread
# left running on busy cores takes over the units of a descheduled partner,
# large enough that taking a unit costs next to nothing.
cdef enum:
    TEAM_UNIT_ELEMENTS = 8192


cdef extern from "fastbp_omp.h":
    enum: FASTBP_MIN_PARALLEL


cdef inline int threads_for(Py_ssize_t work, int n_threads) noexcept nogil:
    """n_threads for an element-wise pass of ``work`` elements, or 1 below
    FASTBP_MIN_PARALLEL, where a team costs more than it saves."""
    return n_threads if work >= FASTBP_MIN_PARALLEL else 1


cdef inline Py_ssize_t unit_count(Py_ssize_t total, Py_ssize_t per_unit) noexcept nogil:
    """Units of at most per_unit (>= 1) items covering total items."""
    return (total + per_unit - 1) // per_unit


cdef inline void add_partials(floating* G, const floating* partial, int n_groups,
                              Py_ssize_t size, int unit) noexcept nogil:
    """Unit ``unit`` (TEAM_UNIT_ELEMENTS elements) of G (size elements) +=
    the partial results 1..n_groups-1 stored after each other in partial,
    added in group order whatever thread runs the unit."""
    cdef Py_ssize_t i, lo = <Py_ssize_t> unit * TEAM_UNIT_ELEMENTS
    cdef Py_ssize_t hi = min(lo + TEAM_UNIT_ELEMENTS, size)
    cdef int g
    for i in range(lo, hi):
        for g in range(1, n_groups):
            G[i] += partial[(g - 1) * size + i]


ctypedef struct PartialsJob:
    void* G              # float* or double*
    const void* partial
    int n_groups
    Py_ssize_t size
    bint f64


cdef inline void add_partials_unit(void* job, int unit, int slot) noexcept nogil:
    cdef PartialsJob* j = <PartialsJob*> job
    if j.f64:
        add_partials(<double*> j.G, <const double*> j.partial, j.n_groups, j.size, unit)
    else:
        add_partials(<float*> j.G, <const float*> j.partial, j.n_groups, j.size, unit)


cdef inline void sum_partials(floating* G, const floating* partial, int n_groups,
                              Py_ssize_t size, int n_threads) noexcept nogil:
    """G += partial results 1..n_groups-1 (each of size elements, stored
    after each other in partial), in group order, by a team."""
    cdef PartialsJob job
    job.G = G
    job.partial = partial
    job.n_groups = n_groups
    job.size = size
    job.f64 = floating is double
    team_run(n_threads, <int> unit_count(size, TEAM_UNIT_ELEMENTS), add_partials_unit, &job)
