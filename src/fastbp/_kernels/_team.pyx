"""fastbp's own thread team (csrc/fb_team.h), one per calling thread.

Every kernel module's C code is compiled with its own copy of the team; this
module's copy is the one they all use (bind_team in _team.pxd), so that a
fit's convolution, dense and RNN kernels share one set of threads.
"""

cdef extern from "fb_team.h" nogil:
    void fastbp_team_run_own(int nt, int count, fb_unit_fn unit, void* job)
    int FB_TEAM_THREADS
    int FB_TEAM_POSIX


cdef fb_team_run_fn team_run_address() noexcept nogil:
    return fastbp_team_run_own


def threads_available():
    """Return True when the kernels can run a call on several threads.

    Always on Linux and macOS (fastbp's own team of POSIX threads);
    elsewhere only in builds with OpenMP.
    """
    return bool(FB_TEAM_THREADS)


def threads_are_own():
    """Return True when the team is fastbp's own POSIX threads (False: an
    OpenMP region, or no threads)."""
    return bool(FB_TEAM_POSIX)
