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
    for info in threadpool_info():
        print(f"{info.get('user_api', '?'):>14}: {info.get('internal_api', '?')} "
              f"{info.get('version', '')}, {info.get('num_threads')} threads, "
              f"{info.get('filepath', '')}")
