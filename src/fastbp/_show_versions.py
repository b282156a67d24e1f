"""Print what a bug report needs: versions, OpenMP threads and BLAS."""
import platform
import sys


def show_versions() -> None:
    """Print fastbp's, Python's and the dependencies' versions, the OpenMP
    build and thread count, and the BLAS libraries threadpoolctl finds.

    Returns
    -------
    None
    """
    import numpy
    import scipy
    import sklearn
    from threadpoolctl import threadpool_info

    from . import __version__
    from ._kernels import _openmp
    from ._threads import effective_n_threads

    rows = [
        ("fastbp", __version__),
        ("python", sys.version.replace("\n", " ")),
        ("machine", platform.platform()),
        ("numpy", numpy.__version__),
        ("scipy", scipy.__version__),
        ("scikit-learn", sklearn.__version__),
        ("openmp", "enabled" if _openmp.openmp_enabled() else "disabled (serial kernels)"),
        ("threads", str(effective_n_threads(None))),
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


def openblas_kernel_hint(infos):
    """A line of advice when the CPU has AVX-512 but an OpenBLAS in the
    process runs older kernels (it falls back to Haswell's on CPUs it does
    not know, such as AMD's Zen 5 for OpenBLAS 0.3.30-0.3.31); else None.

    Parameters
    ----------
    infos : list of dict
        threadpoolctl's ``threadpool_info()``.

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
    return ("This CPU has AVX-512, but OpenBLAS runs its " + "/".join(cores) + " kernels.\n"
            "Starting Python with OPENBLAS_CORETYPE=SkylakeX in the environment makes every\n"
            "OpenBLAS in the process use its AVX-512 kernels: on an AMD Zen 5 machine the\n"
            "GEMMs ran 1.9x and an MLP epoch 1.65x faster that way. Measure on yours.")


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
