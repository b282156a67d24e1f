"""fastbp leaves the rest of the process as it found it: no environment
variable set (not even briefly), no OpenMP runtime loaded under the name
other libraries share, and BLAS limits that hold in whichever thread takes
them and are restored afterwards."""
import os
import subprocess
import sys
import textwrap
import threading

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from fastbp._threads import blas_single_thread

# Small fits of the three models, run after the import in each subprocess.
_FITS = """
import numpy as np
from fastbp import LeNet5Classifier, MLPClassifier, RNNRegressor
rng = np.random.default_rng(0)
MLPClassifier(hidden_layer_sizes=(8,), max_iter=2).fit(rng.random((40, 5)), np.arange(40) % 2)
LeNet5Classifier(max_iter=1).fit(rng.random((8, 28, 28)), np.arange(8) % 2)
RNNRegressor(hidden_size=4, max_iter=2).fit(rng.random((6, 5, 2)), rng.random(6))
"""


def _run(*parts):
    """Run the code ``parts`` in a fresh interpreter with no OpenMP or GOMP variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    code = "\n".join(textwrap.dedent(part) for part in parts)
    return subprocess.run([sys.executable, "-c", code], env=env,
                          capture_output=True, text=True, timeout=300)


def test_import_and_fits_set_no_environment_variable():
    # os.putenv and os.unsetenv raise audit events, os.environ's writes included
    result = _run("""
        import importlib.util, os, sys
        events = []
        # fastbp's own folder, found without importing it
        package = os.path.dirname(importlib.util.find_spec("fastbp").origin) + os.sep

        def hook(name, args):
            # who asked: the innermost caller outside the os module (scipy sets
            # OPENBLAS_MAIN_FREE while it loads, which is not fastbp's doing)
            if name in ("os.putenv", "os.unsetenv"):
                frame = sys._getframe(1)
                while frame.f_code.co_filename in (os.__file__, "<frozen os>"):
                    frame = frame.f_back
                if frame.f_code.co_filename.startswith(package):
                    events.append((name, args, frame.f_code.co_filename))

        sys.addaudithook(hook)
        import fastbp
        """, _FITS, """
        print("EVENTS", events)
        """)
    assert result.returncode == 0, result.stderr
    assert "EVENTS []" in result.stdout, result.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_no_openmp_runtime_is_loaded_under_its_shared_name():
    """After fastbp's import and fits no libgomp.so.1 (nor libomp/libiomp) is
    mapped: one loaded by soname becomes every later library's runtime, as
    PyTorch's was once fastbp had loaded the system's (scikit-learn vendors
    its libgomp under a hashed name, which captures nothing)."""
    result = _run("""
        import fastbp
        """, _FITS, """
        import os
        names = {os.path.basename(line.split()[-1]) for line in open("/proc/self/maps")
                 if len(line.split()) >= 6}
        print(sorted(n for n in names
                     if n.startswith(("libgomp.so", "libomp.so", "libiomp5.so"))))
        """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout


def _blas_threads():
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def _in_thread(fn):
    out = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join()
    return out[0]


def _limited_threads():
    with blas_single_thread():
        return _blas_threads()


@pytest.fixture
def multithreaded_blas():
    original = _blas_threads()
    if not original or max(original) < 2:
        pytest.skip("BLAS runs on one thread already")
    return original


def test_blas_limit_holds_in_a_second_thread_and_is_restored(multithreaded_blas):
    """The main thread takes the limit first; a fit in another thread must still
    run BLAS on one thread (threadpoolctl ignored any thread but the first that
    set a limit, so LeNet-5's GEMMs ran on the user's thread count)."""
    assert _limited_threads() == [1] * len(multithreaded_blas)
    assert _in_thread(_limited_threads) == [1] * len(multithreaded_blas)
    assert _blas_threads() == multithreaded_blas


def test_user_limits_in_other_threads_still_work_after_fastbp(multithreaded_blas):
    _limited_threads()

    def users_own_limit():
        with threadpool_limits(1, user_api="blas"):
            return _blas_threads()

    assert _in_thread(users_own_limit) == [1] * len(multithreaded_blas)
    assert _blas_threads() == multithreaded_blas


def test_limit_restored_when_another_thread_leaves_last(multithreaded_blas):
    """Thread A enters, thread B enters, A leaves, B leaves last: the user's
    setting comes back, whoever restores it."""
    entered, a_left = threading.Event(), threading.Event()

    def a():
        with blas_single_thread():
            entered.set()
            b_inside.wait()
        a_left.set()

    b_inside = threading.Event()

    def b():
        entered.wait()
        with blas_single_thread():
            b_inside.set()
            a_left.wait()
            return _blas_threads()

    thread_a = threading.Thread(target=a)
    thread_a.start()
    inside_b = _in_thread(b)
    thread_a.join()
    assert inside_b == [1] * len(multithreaded_blas)
    assert _blas_threads() == multithreaded_blas


class _OtherBlas:
    """A BLAS that threadpoolctl sets through its own setter (MKL, BLIS, an
    OpenMP OpenBLAS), as threadpoolctl's controllers present it."""

    internal_api = "mkl"
    threading_layer = "intel"

    def __init__(self, n):
        self.n, self.calls = n, []

    def get_num_threads(self):
        return self.n

    def set_num_threads(self, n):
        self.calls.append(n)
        self.n = n


def test_limit_of_a_blas_other_than_a_pthreads_openblas(monkeypatch):
    """OpenBLAS with its own thread pool is set through its own functions;
    any other library through threadpoolctl, limited and restored all the
    same (left alone when it runs on one thread already)."""
    from fastbp import _threads

    libs = [_OtherBlas(4), _OtherBlas(1)]
    monkeypatch.setattr(_threads, "_blas_libraries",
                        [_threads._thread_count_functions(lib) for lib in libs])
    with blas_single_thread():
        with blas_single_thread():
            assert [lib.n for lib in libs] == [1, 1]
        assert [lib.n for lib in libs] == [1, 1]
    assert [lib.n for lib in libs] == [4, 1]
    assert [lib.calls for lib in libs] == [[1, 4], []]
