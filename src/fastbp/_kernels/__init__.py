"""Compiled kernels. Import them through this package so a missing build is
reported once, in words, instead of as a bare ImportError.

Importing them changes nothing else in the process: no environment variable
is set, so an OpenMP runtime shared with other libraries (libgomp is loaded
once per process, by soname) keeps the settings its user gave it. The
kernels' own waits spin briefly and then sleep (csrc/fastbp_sync.h), so a
team whose threads are descheduled by other work does not stall.
"""
try:
    from . import _blas, _conv, _dense, _dispatch, _openmp, _rnn  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by hand
    raise ImportError(
        "fastbp's compiled kernels could not be imported. The package was not "
        "built: install it with `pip install .` (or `pip install -e .` for "
        "development) from the source tree, rather than running it from src/. "
        f"The original error was: {exc}"
    ) from exc
