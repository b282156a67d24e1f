"""Fixtures and markers shared by the test modules."""
import os

import pytest

from fastbp._kernels import _dispatch, _team
from fastbp._threads import _usable_cpu_count, effective_n_threads


def _omp_thread_limit():
    """OMP_THREAD_LIMIT, which caps every OpenMP team; None when unset."""
    try:
        return max(1, int(os.environ["OMP_THREAD_LIMIT"]))
    except (KeyError, ValueError):
        return None


# Threads that a test comparing thread counts really gets. A kernel called
# with n_threads=2 runs a team of two even on one core, unless the kernels
# cannot run threads, or they run on OpenMP (no POSIX threads) and
# OMP_THREAD_LIMIT caps every team.
_TEAM_LIMIT = None if _team.threads_are_own() else _omp_thread_limit()
KERNEL_THREADS = 1 if not _team.threads_available() else min(2, _TEAM_LIMIT or 2)
# A fit with n_jobs=2 also stops at the cores this process may run on
# (os.sched_getaffinity): on one core it runs on one thread.
FIT_THREADS = min(effective_n_threads(2), KERNEL_THREADS)


def _one_thread_because():
    if not _team.threads_available():
        return "the kernels cannot run threads here (no POSIX threads, no OpenMP)"
    if KERNEL_THREADS < 2:
        return f"OMP_THREAD_LIMIT={_TEAM_LIMIT}"
    return f"this process may run on {_usable_cpu_count()} core"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "compares_n_jobs: compares fits with n_jobs=1 and n_jobs=2; skipped "
        "where a fit with n_jobs=2 gets fewer than two threads")
    config.addinivalue_line(
        "markers", "compares_n_threads: compares kernel calls on one thread and on "
        "several; skipped where no team of two threads can run")


def pytest_runtest_setup(item):
    # A thread-count comparison with one thread on each side compares a run
    # with itself: skip it rather than pass without checking anything.
    if item.get_closest_marker("compares_n_jobs") and FIT_THREADS < 2:
        pytest.skip(f"n_jobs=2 gets one thread here: {_one_thread_because()}")
    if item.get_closest_marker("compares_n_threads") and KERNEL_THREADS < 2:
        pytest.skip(f"every kernel runs on one thread here: {_one_thread_because()}")


@pytest.fixture(params=_dispatch.available_paths())
def dispatch_path(request):
    """Run the test on each instruction-set path of the C kernels that this
    CPU and build offer ("portable" always; "avx2-fma" and "avx512" where
    available): convolution, pooling, dense element-wise, optimizer and RNN
    kernels alike."""
    assert _dispatch._force_dispatch_path(request.param) == request.param
    yield request.param
    _dispatch._force_dispatch_path(None)


@pytest.fixture
def epoch_snapshots(monkeypatch):
    """A list that receives a copy of the parameters at the end of every
    epoch of the stochastic fits the test runs (taken where the solver
    updates its stopping count, after the epoch's last step)."""
    import fastbp._solvers

    snapshots = []
    original = fastbp._solvers._update_no_improvement_count

    def snapshot(record, net, *args):
        snapshots.append(net.theta.copy())
        return original(record, net, *args)

    monkeypatch.setattr(fastbp._solvers, "_update_no_improvement_count", snapshot)
    return snapshots
