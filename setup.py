"""Build the Cython/OpenMP kernels of fastbp.

Environment switches
--------------------
FASTBP_NO_OPENMP=1      build without OpenMP (on Linux and macOS the kernels still run
                        fastbp's own threads; OMP_NUM_THREADS is then not read).
FASTBP_DEBUG_CYTHON=1   build with boundscheck/wraparound on, to catch shape bugs.

CC, CPPFLAGS, CFLAGS and LDFLAGS are honoured, by the OpenMP probe too: on
macOS point them at a libomp (see tools/cibw_before_all_macos.sh). Except
on Windows the extensions compile in parallel, one job per core
(``build_ext -j N`` to change it).
"""
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from setuptools import Extension, setup

HERE = Path(__file__).parent.resolve()
KERNEL_DIR = Path("src", "fastbp", "_kernels")
# C sources compiled into each kernel module besides its .pyx (each module
# gets its own copy of the shared element-wise loops and of the thread team;
# each that runs C kernels binds them to the instruction-set level kept by
# _dispatch and to the team kept by _team).
_ELEMENTWISE = ["elementwise.c", "dispatch.c", "team.c"]
C_SOURCES = {"_chain_engine": _ELEMENTWISE, "_conv": ["conv.c"] + _ELEMENTWISE, "_dense": _ELEMENTWISE,
             "_dispatch": ["dispatch.c"], "_losses": _ELEMENTWISE, "_optimizers": _ELEMENTWISE,
             "_rnn": ["elementwise.c", "recurrent.c", "dispatch.c", "team.c"],
             "_team": ["team.c"]}


def _env_flag(name):
    return os.environ.get(name, "0").strip().lower() not in ("", "0", "false", "no")


def _openmp_flags():
    """Return (compile_args, link_args) for OpenMP, or None when the compiler lacks it."""
    if _env_flag("FASTBP_NO_OPENMP"):
        return None
    if sys.platform == "win32":
        return ["/openmp"], []
    if sys.platform == "darwin":
        # Apple clang needs libomp (brew install libomp); fall back to a serial build.
        candidates = [(["-Xpreprocessor", "-fopenmp"], ["-lomp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    for compile_args, link_args in candidates:
        if _compiles_with(compile_args, link_args):
            return compile_args, link_args
    print("fastbp: the compiler has no OpenMP; building serial kernels", file=sys.stderr)
    return None


def _compiles_with(compile_args, link_args):
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    cc = shlex.split(cc)
    # ARCHFLAGS: cibuildwheel's macOS cross builds (setuptools passes it on too)
    flags = [shlex.split(os.environ.get(v, ""))
             for v in ("CPPFLAGS", "CFLAGS", "LDFLAGS", "ARCHFLAGS")]
    flags[1] += flags.pop()
    code = "#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n"
    tmp = tempfile.mkdtemp()
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(code)
        cmd = (cc + flags[0] + flags[1] + compile_args + [src, "-o", os.path.join(tmp, "probe")]
               + flags[2] + link_args)
        return subprocess.run(cmd, capture_output=True).returncode == 0
    except OSError:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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


setup(
    ext_modules=_extensions(),
    # setuptools' build_ext compiles the extensions in parallel with -j
    # (not with MSVC, whose parallel builds can fight over program databases).
    options={"build_ext": {"parallel": _jobs()}} if sys.platform != "win32" else {},
)
