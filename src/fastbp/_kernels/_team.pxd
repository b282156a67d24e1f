# A parallel region's work handed out from an atomic counter, then a join of
# fastbp's own before the region's barrier (csrc/fastbp_sync.h says why: the
# runtime's barrier, whose wait policy fastbp leaves alone, spins for a time
# slice when a partner thread is descheduled on busy cores). A region is
#
#     cdef int team[2]          # units handed out, threads joined
#     team[:] = [0, 0]
#     with nogil, parallel(num_threads=nt):
#         u = team_next(team, count)
#         while u >= 0:
#             ...unit u...
#             u = team_next(team, count)
#
# A variable assigned in the block is private to each thread (firstprivate:
# initialise it where it is declared, or the C compiler warns of copying an
# undefined value); team is only passed by address, so the threads share it.
# A unit goes to whichever thread asks first: its result must not depend on
# the thread that runs it.
from cython cimport floating

cdef extern from "fastbp_sync.h":
    int fb_next_unit(int* counter) noexcept nogil
    void fb_team_join(int* arrived) noexcept nogil

# Elements of one unit of an element-wise pass: small enough that a thread
# left running on busy cores takes over the units of a descheduled partner,
# large enough that taking a unit costs next to nothing.
cdef enum:
    TEAM_UNIT_ELEMENTS = 8192


cdef inline int team_next(int* team, int count) noexcept nogil:
    """The next of units 0..count-1 for this thread, or -1 once all are
    handed out, after every thread of the team has got there (its writes then
    visible to all). team[0], team[1]: zeroed before the region."""
    cdef int u = fb_next_unit(&team[0])
    if u < count:
        return u
    fb_team_join(&team[1])
    return -1


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
