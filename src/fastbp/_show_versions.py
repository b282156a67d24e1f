"""Print what a bug report needs: versions, threads and BLAS."""
import os
import platform
import sys
import textwrap


def show_versions() -> None:
    """Print fastbp's, Python's and the dependencies' versions, the thread
    build and thread count, the instruction-set path of the C kernels, and
    the BLAS libraries threadpoolctl finds.

    Returns
    -------
    None
    """
    import numpy
    import scipy
    import sklearn
    from threadpoolctl import threadpool_info

    from ._version import __version__
    from ._kernels import _dispatch, _team
    from ._threads import effective_n_threads

    rows = [
        ("fastbp", __version__),
        ("python", sys.version.replace("\n", " ")),
        ("machine", platform.platform()),
        ("numpy", numpy.__version__),
        ("scipy", scipy.__version__),
        ("scikit-learn", sklearn.__version__),
        ("thread team", "fastbp's own (POSIX threads)" if _team.threads_are_own()
         else "OpenMP" if _team.threads_available() else "none (serial kernels)"),
        ("threads", str(effective_n_threads(None))),
        ("kernels", f"{_dispatch.dispatch_path()} path (available: "
                    f"{', '.join(_dispatch.available_paths())})"),
    ]
    print("\nfastbp:")
    for key, value in rows:
        print(f"{key:>14}: {value}")
    print("\nthreadpools (threadpoolctl):")
    infos = threadpool_info()
    for info in infos:
        kernels = f", {info['architecture']} kernels" if info.get("architecture") else ""
        print(f"{info.get('user_api', '?'):>14}: {info.get('internal_api', '?')} "
              f"{info.get('version', '')}{kernels}, {info.get('num_threads')} threads, "
              f"{info.get('filepath', '')}")
    hint = openblas_kernel_hint(infos)
    if hint:
        print("\n" + hint)


# OpenBLAS core types whose kernels use AVX-512.
_AVX512_CORES = {"skylakex", "cooperlake", "sapphirerapids"}


def openblas_kernel_hint(infos, environ=None):
    """A few lines of advice when the CPU has AVX-512 but an OpenBLAS in the
    process runs older kernels; else None.

    OpenBLAS picks kernels for the CPU when it loads, unless the environment
    variable OPENBLAS_CORETYPE names them (some machines set it because older
    OpenBLAS builds misbehave on newer CPUs), and falls back to older ones on
    a CPU it does not know.

    Parameters
    ----------
    infos : list of dict
        threadpoolctl's ``threadpool_info()``.
    environ : mapping, default=None
        The environment (``os.environ`` when None).

    Returns
    -------
    str or None
    """
    if not _cpu_has_avx512():
        return None
    cores = sorted({i["architecture"] for i in infos if i.get("internal_api") == "openblas"
                    and i.get("architecture")
                    and i["architecture"].lower() not in _AVX512_CORES})
    if not cores:
        return None
    environ = os.environ if environ is None else environ
    forced = environ.get("OPENBLAS_CORETYPE")
    lines = [f"This CPU has AVX-512, but OpenBLAS runs its {'/'.join(cores)} kernels"]
    if forced:
        lines[0] += (f", as OPENBLAS_CORETYPE={forced} in the environment asks. If your "
                     "OpenBLAS builds handle this CPU, start Python without it (and "
                     "without OPENBLAS_L2_SIZE)")
    else:
        lines[0] += (". Starting Python with OPENBLAS_CORETYPE=SkylakeX in the environment "
                     "gives every OpenBLAS in the process its AVX-512 kernels")
    from ._kernels import _dispatch

    if _dispatch.dispatch_path() != "portable":  # BLAS runs fastbp's products only there
        lines[0] += (". fastbp multiplies with its own kernels here, so the setting "
                     "concerns the other libraries in the process (scikit-learn, NumPy)")
    # Only what is found on this machine: a speed-up measured elsewhere says
    # nothing about this one.
    lines[0] += ". Time both to see which is faster here."
    return textwrap.fill(lines[0], 79)


def _cpu_has_avx512():
    """Whether the CPU and OS support the AVX-512 subsets of OpenBLAS's
    SkylakeX kernels, as numpy's runtime dispatch sees them (False when
    numpy does not say)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # numpy < 2
        try:
            from numpy.core._multiarray_umath import __cpu_features__
        except ImportError:
            return False
    return bool(__cpu_features__.get("AVX512_SKX"))
