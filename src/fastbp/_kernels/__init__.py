"""Compiled kernels. Import them through this package so a missing build is
reported once, in words, instead of as a bare ImportError."""
import os

# libgomp reads its wait policy once, when it loads with these modules. Its
# default spins for a while after every parallel region, and a team whose
# threads are descheduled by other work on the cores then waits milliseconds
# per region: measured here, a fit 5-15x slower on two busy cores. Passive
# waiting costs microseconds per region on an idle machine. A policy the user
# set wins, and the variable is removed again once the library has read it.
_SET_WAIT_POLICY = not ({"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"} & set(os.environ))
if _SET_WAIT_POLICY:
    os.environ["OMP_WAIT_POLICY"] = "passive"
try:
    from . import _blas, _conv, _dense, _openmp, _rnn  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by hand
    raise ImportError(
        "fastbp's compiled kernels could not be imported. The package was not "
        "built: install it with `pip install .` (or `pip install -e .` for "
        "development) from the source tree, rather than running it from src/. "
        f"The original error was: {exc}"
    ) from exc
finally:
    if _SET_WAIT_POLICY:
        del os.environ["OMP_WAIT_POLICY"]
