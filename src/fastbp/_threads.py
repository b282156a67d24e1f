"""How many threads a fit uses, worked out once per fit."""
import contextlib
import os
import sys
import threading

import threadpoolctl
from threadpoolctl import ThreadpoolController

from ._kernels import _dispatch, _openmp, _team


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
        makes the team's threads wait on each other.

    Returns
    -------
    n_threads : int
        At least 1; always 1 where the kernels cannot run threads (a build
        without OpenMP on a system without POSIX threads).
    """
    if n_jobs == 0:
        raise ValueError("n_jobs == 0 has no meaning; use None, a positive or a negative int.")
    if not _team.threads_available():
        return 1
    n_cpus = _usable_cpu_count()
    if n_jobs is None:
        share = _dask_task_share()
        if share is not None:
            n_cpus = min(n_cpus, share)
        # OMP_NUM_THREADS caps it, as scikit-learn's threads
        limit = _openmp.omp_max_threads() if _openmp.openmp_enabled() else _omp_num_threads()
        if limit is not None:
            n_cpus = min(limit, n_cpus)
        return max(1, n_cpus)
    if n_jobs < 0:
        return max(1, n_cpus + 1 + n_jobs)
    return max(1, min(int(n_jobs), n_cpus))


def _omp_num_threads():
    """OMP_NUM_THREADS's first value (a list gives one per nesting level), or
    None when it is unset or not a positive integer."""
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


_blas_lock = threading.Lock()
_blas_depth = 0
_blas_saved: list = []   # (set_threads, the user's count) to put back
_blas_libraries = None   # (get_threads, set_threads) of each BLAS, found once


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


def _thread_count_functions(lib):
    """(get, set) of the thread count of one BLAS library of threadpoolctl.

    A process-wide OpenBLAS pool is set through OpenBLAS's own functions,
    which is what threadpoolctl calls for it once the claim of
    :func:`_as_any_thread` is out of the way, without threadpoolctl's
    bookkeeping (a limit through ``ThreadpoolController.limit`` costs tens of
    microseconds, longer than a one-row predict). Other libraries go through
    threadpoolctl.
    """
    symbol = getattr(lib, "_get_symbol", None)
    if (symbol is not None and lib.internal_api == "openblas"
            and getattr(lib, "threading_layer", None) == "pthreads"):
        get, set_ = symbol("openblas_get_num_threads"), symbol("openblas_set_num_threads")
        if get is not None and set_ is not None:
            return get, set_
    return lib.get_num_threads, lambda n: _as_any_thread(lambda: lib.set_num_threads(n))


def _blas_thread_counts():
    global _blas_libraries
    if _blas_libraries is None:
        libs = ThreadpoolController().select(user_api="blas").lib_controllers
        _blas_libraries = [_thread_count_functions(lib) for lib in libs]
    return _blas_libraries


class _BlasSingleThread:
    """The context manager of :func:`blas_single_thread` (one, shared: the
    state it guards is the process's)."""

    __slots__ = ()

    def __enter__(self):
        global _blas_depth
        with _blas_lock:
            if _blas_depth == 0:
                for get, set_ in _blas_thread_counts():
                    n = get()
                    if n != 1:
                        set_(1)
                        _blas_saved.append((set_, n))
            _blas_depth += 1

    def __exit__(self, *exc_info):
        global _blas_depth
        with _blas_lock:
            _blas_depth -= 1
            if _blas_depth == 0:
                while _blas_saved:
                    set_, n = _blas_saved.pop()
                    set_(n)


_BLAS_SINGLE_THREAD = _BlasSingleThread()


def blas_single_thread():
    """Run BLAS on one thread while fastbp's kernels split GEMMs over its team.

    Re-entrant and safe across Python threads: the first caller in sets the
    limit, the last one out restores the user's setting.

    Returns
    -------
    context : context manager
    """
    return _BLAS_SINGLE_THREAD


_NO_LIMIT = contextlib.nullcontext()


def blas_single_thread_for_kernels():
    """:func:`blas_single_thread` where fastbp's kernels multiply through BLAS,
    else a context that changes nothing.

    Only the portable path calls BLAS for the kernels' products; the others
    multiply with fastbp's own GEMM. A forward pass (predict) makes no other
    BLAS call, so there it needs no limit, whose round trip through every
    OpenBLAS of the process costs more than a one-row product. Training keeps
    :func:`blas_single_thread`: its gradient norms go through NumPy's BLAS.

    Returns
    -------
    context : context manager
    """
    if _dispatch.dispatch_path() == "portable":
        return _BLAS_SINGLE_THREAD
    return _NO_LIMIT
