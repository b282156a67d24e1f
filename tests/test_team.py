"""fastbp's own thread team (csrc/fb_team.h): its threads belong to the
Python thread that called the kernels and go away with it, and a forked
child, which inherits none of them, still computes the same results."""
import os
import shlex
import subprocess
import sys
import sysconfig
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fastbp import LeNet5Classifier
from fastbp._kernels import _team

from conftest import FIT_THREADS

pytestmark = [
    pytest.mark.skipif(not _team.threads_are_own(), reason="the team is not POSIX threads here"),
    pytest.mark.skipif(FIT_THREADS < 2, reason="a team of one has no threads of its own"),
]


def _native_threads():
    return len(os.listdir("/proc/self/task"))


def _native_threads_after_exits(at_most, timeout=30.0):
    """The native thread count once it falls to ``at_most``, or at the deadline.

    ``Thread.join`` returns before the OS thread has run its thread-local
    destructors, which is where the team's threads are stopped and joined, so
    the last worker and its team may still be exiting when the join returns.
    """
    deadline = time.monotonic() + timeout
    while _native_threads() > at_most and time.monotonic() < deadline:
        time.sleep(0.01)
    return _native_threads()


def _fit_lenet():
    rng = np.random.default_rng(0)
    X = rng.random((64, 28, 28), dtype=np.float32)
    return LeNet5Classifier(max_iter=1, batch_size=64, n_jobs=2, random_state=0).fit(
        X, np.arange(64) % 3)


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs /proc")
def test_team_threads_end_with_the_python_thread_that_started_them():
    def fit_in_a_thread():
        worker = threading.Thread(target=_fit_lenet)
        worker.start()
        worker.join()

    _fit_lenet()  # this thread's team, which stays
    fit_in_a_thread()  # the BLAS libraries start threads of theirs once
    before = _native_threads()
    for _ in range(8):
        fit_in_a_thread()
    # each of the 8 Python threads started a team thread of its own: all gone
    assert _native_threads_after_exits(before) <= before


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs /proc")
def test_a_thread_that_exits_right_after_its_first_call_leaves_no_thread_behind():
    """The team's thread may not have run yet when its owner exits and stops
    it: it must still see the stop (it once slept forever, and the owner's
    exit waited on it)."""
    est = _fit_lenet()
    X = np.random.default_rng(1).random((2, 28, 28), dtype=np.float32)
    threading.Thread(target=est.predict, args=(X,)).start()  # BLAS's own threads
    time.sleep(0.5)
    before = _native_threads()
    for _ in range(50):
        worker = threading.Thread(target=est.predict, args=(X,))
        worker.start()
        worker.join()
    assert _native_threads_after_exits(before) <= before


def test_python_threads_fitting_at_once_each_get_their_own_team():
    expected = _fit_lenet()._network.theta
    results = [None] * 4

    def fit(i):
        results[i] = _fit_lenet()._network.theta

    workers = [threading.Thread(target=fit, args=(i,)) for i in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for theta in results:
        np.testing.assert_array_equal(theta, expected)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_fits_without_its_parents_team_threads():
    code = textwrap.dedent("""
        import hashlib, os, sys, warnings
        import numpy as np
        warnings.simplefilter("ignore")
        from fastbp import RNNClassifier
        X = np.random.default_rng(1).random((64, 12, 5)).astype(np.float32)
        y = np.arange(64) % 2

        def digest():
            est = RNNClassifier(hidden_size=64, max_iter=2, n_jobs=2, random_state=0).fit(X, y)
            return hashlib.sha256(est._network.theta.tobytes()).hexdigest()

        parent = digest()  # the parent's team exists now
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(write, digest().encode())
            os._exit(0)
        os.close(write)
        child = os.read(read, 100).decode()
        os.waitpid(pid, 0)
        print(parent == child == digest())
    """)
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True", result.stdout + result.stderr


_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("sanitizer", [None, "thread"])
def test_team_protocol_under_stress_in_c(tmp_path, sanitizer):
    """Every unit runs once and its writes reach the caller, over 100,000
    calls from several threads at once (ThreadSanitizer checks the atomics)."""
    if not (_ROOT / "csrc" / "team.c").is_file():
        pytest.skip("needs the source tree's csrc/ (the tests run from a copy)")
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    flags = ["-O1", "-g", f"-fsanitize={sanitizer}"] if sanitizer else ["-O2"]
    exe = tmp_path / "team_stress"
    build = subprocess.run(
        cc + flags + ["-I", str(_ROOT / "csrc"), str(_ROOT / "tests" / "c" / "team_stress.c"),
                      str(_ROOT / "csrc" / "team.c"), "-o", str(exe), "-lpthread"],
        capture_output=True, text=True)
    if build.returncode != 0:
        if sanitizer:
            pytest.skip(f"the compiler has no -fsanitize={sanitizer}: {build.stderr[-300:]}")
        raise AssertionError(build.stderr)
    # not the sanitizer runtimes tools/check_memory.sh preloads into Python:
    # a ThreadSanitizer binary with AddressSanitizer preloaded crashes at start
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stdout + run.stderr


def test_idle_team_threads_sleep_instead_of_spinning():
    """A team thread spins for a fraction of a millisecond after a call, then
    sleeps: a process that stops calling fastbp stops using the cores.
    The kernel is a convolution, which calls no BLAS, so no BLAS thread of
    numpy's or scipy's spins here either."""
    from fastbp._kernels import _conv

    rng = np.random.default_rng(0)
    n = 2 * _conv.block_samples(np.float32)
    X = rng.random((n, 6, 14, 14), dtype=np.float32)
    W = rng.random((16, 6, 5, 5), dtype=np.float32)
    Y = np.empty((n, 16, 10, 10), np.float32)
    table = np.ones((16, 6), np.uint8)
    # BLAS threads of earlier tests in this process may still be spinning
    time.sleep(0.5)
    for _ in range(20):
        _conv.conv5x5_forward(X, W, np.zeros(16, np.float32), table, Y, 2, 2)
    cpu, wall = time.process_time(), time.perf_counter()
    time.sleep(0.5)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    # a thread spinning through the sleep would use all of it
    assert cpu < 0.2 * wall, (cpu, wall)
