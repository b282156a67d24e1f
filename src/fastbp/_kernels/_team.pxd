# Work shared by a team of threads: fastbp's own team (csrc/fb_team.h says
# why it is not an OpenMP region), which _team.pyx owns and every kernel
# module binds to when imported (bind_team). A team call is
#
#     cdef void unit(void* job, int u, int slot) noexcept nogil:
#         ...unit u of the job (slot: which per-thread scratch to use)...
#     team_run(nt, count, unit, &job)
#
# Each thread takes its own share of the units first, then helps with the
# others' (fb_team.h): which thread runs a unit depends on timing, so its
# result must not depend on the thread that runs it.
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


# A team unit whose body is a fused function: the job starts with the
# body's two specialisations and its dtype, and dtype_unit runs the one the
# job's arrays hold. The body is called through a pointer of its own type:
#
#     cdef void body(const void* job, int u, int slot, floating* tag) noexcept nogil
#     set_units(&job.units, body[float], body[double], <floating*> NULL)
#     team_run(nt, count, dtype_unit, &job)
ctypedef void (*body_f32)(const void* job, int u, int slot, float* tag) noexcept nogil
ctypedef void (*body_f64)(const void* job, int u, int slot, double* tag) noexcept nogil


ctypedef struct DtypeUnits:
    body_f32 f32
    body_f64 f64
    bint is_f64


cdef inline void set_units(DtypeUnits* units, body_f32 f32, body_f64 f64,
                           floating* tag) noexcept nogil:
    """Point the job's units at the body's specialisations; ``tag`` picks the
    one dtype_unit runs."""
    units.f32 = f32
    units.f64 = f64
    units.is_f64 = floating is double


cdef inline void dtype_unit(void* job, int u, int slot) noexcept nogil:
    """The team unit of a job whose first member is its DtypeUnits."""
    cdef const DtypeUnits* units = <const DtypeUnits*> job
    if units.is_f64:
        units.f64(job, u, slot, NULL)
    else:
        units.f32(job, u, slot, NULL)


ctypedef struct PartialsJob:
    DtypeUnits units
    void* G              # float* or double*
    const void* partial
    int n_groups
    Py_ssize_t size


cdef inline void add_partials_unit(const void* job, int unit, int slot,
                                   floating* tag) noexcept nogil:
    cdef const PartialsJob* j = <const PartialsJob*> job
    add_partials(<floating*> j.G, <const floating*> j.partial, j.n_groups, j.size, unit)


cdef inline void sum_partials(floating* G, const floating* partial, int n_groups,
                              Py_ssize_t size, int n_threads) noexcept nogil:
    """G += partial results 1..n_groups-1 (each of size elements, stored
    after each other in partial), in group order, by a team."""
    cdef PartialsJob job
    job.G = G
    job.partial = partial
    job.n_groups = n_groups
    job.size = size
    set_units(&job.units, add_partials_unit[float], add_partials_unit[double], <floating*> NULL)
    team_run(n_threads, <int> unit_count(size, TEAM_UNIT_ELEMENTS), dtype_unit, &job)
