"""How many OpenMP threads a fit uses, worked out once per fit."""
import os
import threading
from contextlib import contextmanager

from threadpoolctl import ThreadpoolController

from ._kernels import _openmp


def _usable_cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def effective_n_threads(n_jobs=None):
    """Return the number of threads a fit with ``n_jobs`` should use.

    Parameters
    ----------
    n_jobs : int or None
        None means every usable core, capped by OMP_NUM_THREADS when it is set
        (``omp_get_max_threads``); a negative value counts back from the number
        of usable cores as in scikit-learn (-1 is all of them). A positive value
        is capped at the number of usable cores: more threads than cores only
        makes OpenMP teams wait on each other.

    Returns
    -------
    n_threads : int
        At least 1; always 1 when the kernels were built without OpenMP.
    """
    if n_jobs == 0:
        raise ValueError("n_jobs == 0 has no meaning; use None, a positive or a negative int.")
    if not _openmp.openmp_enabled():
        return 1
    n_cpus = _usable_cpu_count()
    if n_jobs is None:
        return max(1, min(_openmp.omp_max_threads(), n_cpus))
    if n_jobs < 0:
        return max(1, n_cpus + 1 + n_jobs)
    return max(1, min(int(n_jobs), n_cpus))


_blas_lock = threading.Lock()
_blas_depth = 0
_blas_limiter = None
_controller = None


@contextmanager
def blas_single_thread():
    """Run BLAS on one thread while fastbp's kernels split GEMMs over OpenMP.

    Re-entrant and safe across Python threads: the first caller in sets the
    limit, the last one out restores the user's setting.
    """
    global _blas_depth, _blas_limiter, _controller
    with _blas_lock:
        if _blas_depth == 0:
            if _controller is None:
                _controller = ThreadpoolController()
            _blas_limiter = _controller.limit(limits=1, user_api="blas")
        _blas_depth += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_depth -= 1
            if _blas_depth == 0:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None
