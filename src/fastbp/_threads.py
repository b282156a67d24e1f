"""How many OpenMP threads a fit uses, worked out once per fit."""
import os
import sys
import threading
from contextlib import contextmanager

import threadpoolctl
from threadpoolctl import ThreadpoolController

from ._kernels import _openmp


def _usable_cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _dask_task_share():
    """Cores per task thread when called from a dask worker's task, else None.

    Dask runs several tasks at once in each worker (its ``nthreads``); a fit
    inside one of them must leave the other task threads their cores. Worker
    processes started by a nanny get ``OMP_NUM_THREADS=1`` from dask's
    ``distributed.nanny.pre-spawn-environ`` (which ``omp_get_max_threads``
    already honours), but workers living in the client's process
    (``LocalCluster(processes=False)``) do not, so share the usable cores
    among every task thread of the workers of this process.
    """
    distributed = sys.modules.get("distributed")
    if distributed is None:  # dask was never imported: not a worker
        return None
    try:
        distributed.get_worker()
        from distributed.worker import Worker

        task_threads = sum(
            int(getattr(w, "nthreads", 1) or 1) for w in list(Worker._instances)
            if getattr(getattr(w, "status", None), "name", "") not in ("closed", "failed"))
    except Exception:  # not in a task, or a dask without these internals
        return None
    return max(1, _usable_cpu_count() // max(1, task_threads))


def effective_n_threads(n_jobs: int | None = None) -> int:
    """Return the number of threads a fit with ``n_jobs`` should use.

    Parameters
    ----------
    n_jobs : int or None
        None means every usable core, capped by OMP_NUM_THREADS when it is set
        (``omp_get_max_threads``, which also follows a threadpoolctl limit set
        in the calling thread); inside a dask worker's task, the cores divided
        by the worker's task threads. A negative value counts back from the number
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
        share = _dask_task_share()
        if share is not None:
            n_cpus = min(n_cpus, share)
        return max(1, min(_openmp.omp_max_threads(), n_cpus))
    if n_jobs < 0:
        return max(1, n_cpus + 1 + n_jobs)
    return max(1, min(int(n_jobs), n_cpus))


_blas_lock = threading.Lock()
_blas_depth = 0
_blas_limiter = None
_controller = None


def _as_any_thread(set_limits):
    """Call ``set_limits`` so that it takes effect whichever thread calls it.

    threadpoolctl (3.6 and later) lets only one Python thread change a
    process-wide OpenBLAS pool: the first one that sets a limit, until its own
    ``with`` block ends, and it silently ignores the others. fastbp's first and
    last callers may be any threads, so the claim is released before and after
    each change; otherwise a fit in a second thread ran with the user's BLAS
    threads, and OpenBLAS's AVX-512 kernels round differently for another
    thread count.
    """
    release = getattr(getattr(threadpoolctl, "OpenBLASController", None),
                      "clear_controlling_thread", None)
    if release is not None:
        release(force=True)
    try:
        return set_limits()
    finally:
        if release is not None:
            release(force=True)


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
            _blas_limiter = _as_any_thread(
                lambda: _controller.limit(limits=1, user_api="blas"))
        _blas_depth += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_depth -= 1
            if _blas_depth == 0:
                _as_any_thread(_blas_limiter.restore_original_limits)
                _blas_limiter = None
