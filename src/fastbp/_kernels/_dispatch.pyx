"""The instruction-set path of fastbp's C kernels, chosen once for all.

The convolution, pooling, dense element-wise, optimizer and RNN kernels each
have a portable copy (which the compiler vectorizes for the build's baseline:
SSE2 on x86-64, NEON on aarch64) and, in x86-64 builds with GCC or Clang,
copies compiled for AVX2+FMA and for AVX-512 (F, BW, DQ and VL). The CPU is
probed once, when this module is imported, and every kernel module reads the
level kept here (csrc/fb_dispatch.h), so one switch reaches them all.
"""

cdef extern from "fb_dispatch.h" nogil:
    int fastbp_dispatch_best()
    int* fastbp_dispatch_own()

# Level codes of fb_dispatch.h, by name.
_PATHS = ("portable", "avx2-fma", "avx512")

# Probed here, at import, while the GIL is held.
cdef int _best = fastbp_dispatch_best()
fastbp_dispatch_own()[0] = _best


cdef const int* level_address() noexcept nogil:
    return fastbp_dispatch_own()


def dispatch_path():
    """Instruction-set path the C kernels take.

    Returns
    -------
    path : {"portable", "avx2-fma", "avx512"}
        The best path this CPU and build support (unless a test forced
        another with ``_force_dispatch_path``).
    """
    return _PATHS[fastbp_dispatch_own()[0]]


def available_paths():
    """Instruction-set paths this CPU and build can run, slowest first.

    Returns
    -------
    paths : tuple of str
        ``("portable",)``, then ``"avx2-fma"`` and ``"avx512"`` where the CPU
        (and its operating system) support them and the build has those
        copies (GCC or Clang on x86-64).
    """
    return _PATHS[:_best + 1]


def _force_dispatch_path(path):
    """Test and benchmark hook: run every C kernel on ``path``.

    Parameters
    ----------
    path : {"portable", "avx2-fma", "avx512"} or None
        None restores the automatic choice (the best path available).

    Returns
    -------
    path : str
        The path now in use.

    Raises
    ------
    ValueError
        If ``path`` is not a path name, or this CPU or build cannot run it.

    Not thread-safe: call it while no kernel runs. Not within a batch
    either: maps handed on side by side (``_conv``) are laid out for the
    vector width of the path that wrote them.
    """
    if path is None:
        level = _best
    elif path not in _PATHS:
        raise ValueError(f"path must be one of {_PATHS} or None, got {path!r}")
    else:
        level = _PATHS.index(path)
        if level > _best:
            raise ValueError(f"path {path!r} is not available here; available: "
                             f"{available_paths()}")
    fastbp_dispatch_own()[0] = level
    return dispatch_path()
