"""Compiled kernels. Import them through this package so a missing build is
reported once, in words, instead of as a bare ImportError."""
try:
    from . import _blas, _conv, _dense, _openmp, _rnn  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by hand
    raise ImportError(
        "fastbp's compiled kernels could not be imported. The package was not "
        "built: install it with `pip install .` (or `pip install -e .` for "
        "development) from the source tree, rather than running it from src/. "
        f"The original error was: {exc}"
    ) from exc
