"""Check an installed fastbp wheel: it is the installed copy (not a source
tree), its version agrees with the package metadata, it ships py.typed, its
kernels can run threads, and the OpenMP runtime it loads (Windows only:
elsewhere the kernels run fastbp's own threads and load none) is the one
vendored into the wheel.

Run with the Python of the environment that has the wheel installed, from a
directory without fastbp's sources:

    python tools/check_wheel.py [--no-vendored-openmp]

``threadpoolctl.threadpool_info()`` lists the OpenMP runtimes loaded in the
process. On Windows the kernels' runtime must be one of them, and its file
must lie in the installed package (delvewheel puts vcomp140.dll in
``fastbp.libs/``); elsewhere none may come from the wheel.
Exits non-zero with a message on the first failed check.
"""
import argparse
import os
import sys
import sysconfig
from importlib import metadata
from pathlib import Path


def fail(msg):
    print(f"check_wheel: FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-vendored-openmp", action="store_true",
                        help="accept an OpenMP runtime from outside the wheel "
                             "(a wheel that was not repaired)")
    args = parser.parse_args()

    import fastbp
    from fastbp._kernels import _openmp, _team
    from fastbp._threads import effective_n_threads
    from threadpoolctl import threadpool_info

    package_dir = Path(fastbp.__file__).resolve().parent
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    platsite = Path(sysconfig.get_paths()["platlib"]).resolve()
    if site not in package_dir.parents and platsite not in package_dir.parents:
        fail(f"fastbp was imported from {package_dir}, not from {site}")
    print(f"fastbp {fastbp.__version__} from {package_dir}")

    dist_version = metadata.version("fastbp")
    if dist_version != fastbp.__version__:
        fail(f"fastbp.__version__ is {fastbp.__version__} but the installed "
             f"distribution says {dist_version}")
    if not (package_dir / "py.typed").is_file():
        fail("py.typed is missing from the installed package")
    if not _team.threads_available():
        fail("the kernels cannot run threads (no POSIX threads, and built without OpenMP)")
    uses_openmp = _openmp.openmp_enabled()

    roots = [package_dir] + [p for p in package_dir.parent.glob("fastbp*.libs")]
    found = []
    for info in threadpool_info():
        if info.get("user_api") != "openmp":
            continue
        path = Path(info["filepath"]).resolve()
        inside = any(root == path.parent or root in path.parents for root in roots)
        found.append((path, inside, info.get("num_threads")))
        print(f"openmp runtime: {info.get('internal_api')} {info.get('version')} "
              f"{path}{'  (vendored in the wheel)' if inside else ''}")
    if not uses_openmp:
        if any(inside for _, inside, _ in found):
            fail("the wheel vendors an OpenMP runtime its kernels do not use")
        print("kernels: fastbp's own POSIX threads, no OpenMP runtime")
    elif not found:
        fail("threadpoolctl finds no OpenMP runtime after importing fastbp's kernels")
    elif not args.no_vendored_openmp and not any(inside for _, inside, _ in found):
        fail("no OpenMP runtime loaded from the wheel's own libraries "
             f"({', '.join(str(r) for r in roots)})")
    print(f"threads for n_jobs=None: {effective_n_threads(None)} "
          f"(usable cores {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()})")
    print("check_wheel: OK")


if __name__ == "__main__":
    main()
