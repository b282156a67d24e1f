"""Compiled kernels. Import them through this package so a missing build is
reported once, in words, instead of as a bare ImportError.

Importing them changes nothing else in the process: no environment variable
is set, and the kernels run on fastbp's own thread team (csrc/fb_team.h),
not on the OpenMP runtime that other libraries share (libgomp is loaded
once per process, by soname). The team's threads spin briefly and then
sleep, and a call never waits for a thread that other work keeps off the
cores.
"""
try:
    from . import (_blas, _calls, _chain, _chain_engine, _conv, _dense, _dispatch,  # noqa: F401
                   _losses, _openmp, _optimizers, _rnn, _sparse, _team)
except ImportError as exc:  # pragma: no cover - exercised by hand
    raise ImportError(
        "fastbp's compiled kernels could not be imported. The package was not "
        "built: install it with `pip install .` (or `pip install -e .` for "
        "development) from the source tree, rather than running it from src/. "
        f"The original error was: {exc}"
    ) from exc
