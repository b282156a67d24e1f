"""What OpenMP the kernels were built with."""

cdef extern from "fastbp_omp.h":
    int omp_get_max_threads() noexcept nogil
    int FASTBP_HAVE_OPENMP


def openmp_enabled():
    """Return True when the kernels were compiled with OpenMP."""
    return bool(FASTBP_HAVE_OPENMP)


def omp_max_threads():
    """Return ``omp_get_max_threads()``: honours OMP_NUM_THREADS; 1 without OpenMP."""
    return omp_get_max_threads()
