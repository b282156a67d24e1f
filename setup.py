"""Build the Cython/C kernels of fastbp.

Environment switches
--------------------
FASTBP_NO_OPENMP=1      Windows: build without OpenMP (serial kernels). Linux and
                        macOS builds never use OpenMP: the kernels run fastbp's own
                        POSIX threads.
FASTBP_DEBUG_CYTHON=1   build with boundscheck/wraparound on, to catch shape bugs.

CC, CPPFLAGS, CFLAGS and LDFLAGS are honoured. Except on Windows the
extensions compile in parallel, one job per core (``build_ext -j N`` to
change it).
"""
import copy
import os
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent.resolve()
KERNEL_DIR = Path("src", "fastbp", "_kernels")
# C sources compiled into each kernel module besides its .pyx (each module
# gets its own copy of the shared element-wise loops and of the thread team;
# each that runs C kernels binds them to the instruction-set level kept by
# _dispatch and to the team kept by _team).
_ELEMENTWISE = ["elementwise.c", "dispatch.c", "team.c"]
C_SOURCES = {"_blas": ["gemm.c", "dispatch.c"], "_chain_engine": _ELEMENTWISE, "_conv": ["conv.c"] + _ELEMENTWISE, "_dense": _ELEMENTWISE,
             "_dispatch": ["dispatch.c"], "_losses": _ELEMENTWISE, "_optimizers": _ELEMENTWISE,
             "_rnn": ["elementwise.c", "recurrent.c", "dispatch.c", "team.c"],
             "_sparse": ["team.c"], "_team": ["team.c"]}


def _env_flag(name):
    return os.environ.get(name, "0").strip().lower() not in ("", "0", "false", "no")


def _openmp_flags():
    """Return (compile_args, link_args) for OpenMP where the kernels use it, else None.

    On Linux and macOS the kernels run on fastbp's own POSIX threads
    (csrc/fb_team.h) and link no OpenMP runtime: a runtime is loaded once
    per process by soname, so fastbp's would become PyTorch's or any other
    library's. Only MSVC builds (no POSIX threads) share work through OpenMP.
    """
    if sys.platform != "win32" or _env_flag("FASTBP_NO_OPENMP"):
        return None
    return ["/openmp"], []


def _extensions():
    from Cython.Build import cythonize

    debug = _env_flag("FASTBP_DEBUG_CYTHON")
    # An sdist ships the .pyx sources as they are: no need to probe the
    # compiler or run Cython for it.
    sdist_only = "sdist" in sys.argv[1:] and not {"build_ext", "bdist_wheel"} & set(sys.argv[1:])
    omp = None if sdist_only else _openmp_flags()
    compile_args, link_args = [], []
    if sys.platform != "win32":
        # no a*b + c fused by the compiler in the Cython code (csrc/fastbp_fp.h says why)
        compile_args += ["-O3", "-fno-math-errno", "-ffp-contract=off"]
    if omp is not None:
        compile_args += omp[0]
        link_args += omp[1]
    macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]

    extensions = []
    for pyx in sorted(KERNEL_DIR.glob("*.pyx")):
        name = "fastbp._kernels." + pyx.stem
        sources = [str(pyx)] + [str(Path("csrc", c)) for c in C_SOURCES.get(pyx.stem, ())]
        extensions.append(
            Extension(
                name,
                sources=sources,
                include_dirs=["csrc"],
                # a changed header rebuilds the modules (setuptools tracks no #include)
                depends=[str(h) for h in sorted(Path("csrc").glob("*.h"))],
                define_macros=macros,
                extra_compile_args=compile_args,
                extra_link_args=link_args,
            )
        )
    directives = {
        "language_level": 3,
        "boundscheck": debug,
        "wraparound": debug,
        "initializedcheck": debug,
        "cdivision": not debug,
        "embedsignature": True,
    }
    # Cython does not notice a change of directives, so regenerate the C files
    # whenever the build mode differs from the one that produced them.
    mode = f"debug={debug} openmp={omp is not None}"
    mode_file = KERNEL_DIR / ".build_mode"
    force = not mode_file.exists() or mode_file.read_text() != mode
    if sdist_only:
        return extensions
    modules = cythonize(extensions, compiler_directives=directives, force=force,
                        nthreads=_jobs() if sys.platform.startswith("linux") else 0)
    mode_file.write_text(mode)
    return modules


def _jobs():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


class BuildExtOwnObjects(build_ext):
    """build_ext with each extension's object files in a folder of its own.

    Several extensions compile the same C files (C_SOURCES), which would
    otherwise go to one object path: parallel jobs then rewrote an object
    while another job linked it, and an incremental build linked modules with
    undefined symbols.
    """

    def build_extension(self, ext):
        own = copy.copy(self)  # the jobs run in threads: leave self's build_temp alone
        own.build_temp = os.path.join(self.build_temp, ext.name)
        return build_ext.build_extension(own, ext)


setup(
    ext_modules=_extensions(),
    cmdclass={"build_ext": BuildExtOwnObjects},
    # setuptools' build_ext compiles the extensions in parallel with -j
    # (not with MSVC, whose parallel builds can fight over program databases).
    options={"build_ext": {"parallel": _jobs()}} if sys.platform != "win32" else {},
)
