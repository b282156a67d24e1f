#!/usr/bin/env bash
# Run the whole test suite against a checked or variant build of fastbp.
#
#   tools/check_memory.sh asan    AddressSanitizer + UndefinedBehaviorSanitizer:
#                                 the kernels (Cython and csrc/) are compiled with
#                                 -fsanitize=address,undefined, libasan is
#                                 preloaded into python and PYTHONMALLOC=malloc
#                                 lets ASan see Python's allocations too. Every
#                                 report is written to a log file; the run fails
#                                 when any log file exists, even if pytest passed.
#   tools/check_memory.sh debug   FASTBP_DEBUG_CYTHON=1: Cython's boundscheck,
#                                 wraparound and initializedcheck are on.
#   tools/check_memory.sh conv-scalar
#                                 -DFASTBP_CONV_SCALAR: no GCC vector extensions,
#                                 as compilers without them (MSVC) build fastbp:
#                                 the portable path's convolution and pooling
#                                 kernels one lane wide (the run checks that
#                                 their layout is the 1-lane one), the softmax's
#                                 lanes an array. CI runs this mode on the
#                                 convolution, LeNet-5 and softmax tests.
#
# The build goes into a scratch venv that sees the current environment (an
# activated venv, the system's or the user's site-packages), so numpy, scipy,
# sklearn, the test extra and the build tools come from there; the source
# tree is copied, so its own build artefacts are left alone.
#
# Usage: tools/check_memory.sh asan|debug|conv-scalar [-- extra pytest args]
#   PYTHON=python3.12 picks the interpreter; CC must be gcc or clang.
# Needs: the test extra, Cython and setuptools>=77 installed (pip install
# Cython ".[test]"; a venv, activated or named by PYTHON, will do) and a C
# compiler (for asan, with the sanitizer runtimes: gcc's libasan, libubsan).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
MODE="${1:-}"
shift || true
PYTEST_ARGS=(-q -p no:cacheprovider)
if [[ "${1:-}" == "--" ]]; then shift; PYTEST_ARGS+=("$@"); fi
case "$MODE" in
    asan|debug|conv-scalar) ;;
    *) echo "usage: $0 asan|debug|conv-scalar [-- pytest args]" >&2; exit 2 ;;
esac

WORK="$(mktemp -d "${TMPDIR:-/tmp}/fastbp-$MODE.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
T0=$SECONDS
step() { echo; echo "==> [$((SECONDS - T0))s] $*"; }

step "copy the source tree"
mkdir "$WORK/src"
# git ls-files: tracked and untracked-but-not-ignored files, no build artefacts.
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard |
    xargs -0 cp --parents -t "$WORK/src")

step "scratch venv on the current environment"
# --system-site-packages shows the *base* interpreter's site-packages only,
# not those of a venv $PYTHON runs in (there: "No module named 'sklearn'"),
# nor the user site: a .pth file adds every site directory $PYTHON sees,
# after the scratch venv's own (where the checked build goes). No pip of its
# own: ensurepip's setuptools (65.5 on Python 3.11) would shadow the
# environment's, and is too old for pyproject.toml's SPDX license.
"$PYTHON" -m venv --system-site-packages --without-pip "$WORK/venv"
PY="$WORK/venv/bin/python"
"$PYTHON" - "$("$PY" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" <<'PTH'
import os, site, sys
dirs = site.getsitepackages() + ([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])
with open(os.path.join(sys.argv[1], "_current_environment.pth"), "w") as f:
    f.writelines(f"import site; site.addsitedir({d!r})\n" for d in dirs if os.path.isdir(d))
print("environment:", sys.prefix)
PTH
"$PY" - <<'NEEDS'
import importlib.util, sys
needs = ["pip", "setuptools", "Cython", "numpy", "scipy", "sklearn", "threadpoolctl", "pytest"]
missing = [m for m in needs if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"the environment lacks {', '.join(missing)}: pip install Cython '.[test]'")
NEEDS
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [[ "$MODE" == asan ]]; then
    CC_BIN="${CC:-gcc}"
    SAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
    export CFLAGS="${CFLAGS:-} $SAN_FLAGS"
    export LDFLAGS="${LDFLAGS:-} -fsanitize=address,undefined"
    step "build with $SAN_FLAGS"
    (cd "$WORK/src" && "$PY" -m pip install -q --no-build-isolation --no-deps .)
    LIBASAN="$("$CC_BIN" -print-file-name=libasan.so)"
    LIBUBSAN="$("$CC_BIN" -print-file-name=libubsan.so)"
    [[ -f "$LIBASAN" && -f "$LIBUBSAN" ]] || {
        echo "no sanitizer runtime found next to $CC_BIN (libasan.so, libubsan.so)" >&2; exit 1; }
    mkdir "$WORK/reports"
    # Leak checking is off: CPython deliberately leaves objects alive at exit.
    export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:log_path=$WORK/reports/asan"
    export UBSAN_OPTIONS="print_stacktrace=1:log_path=$WORK/reports/ubsan"
    RUN_ENV=(env "LD_PRELOAD=$LIBASAN $LIBUBSAN" PYTHONMALLOC=malloc)
    # Some reports skip log_path and go to stderr just before the process
    # exits (seen: a misaligned store under GCC's combined ASan + UBSan).
    # pytest must not capture file descriptors, or such a report dies with it.
    PYTEST_ARGS+=(--capture=sys)
elif [[ "$MODE" == conv-scalar ]]; then
    step "build with -DFASTBP_CONV_SCALAR"
    (cd "$WORK/src" && CFLAGS="${CFLAGS:-} -DFASTBP_CONV_SCALAR" \
        "$PY" -m pip install -q --no-build-isolation --no-deps .)
    RUN_ENV=(env)
else
    step "build with FASTBP_DEBUG_CYTHON=1"
    (cd "$WORK/src" && FASTBP_DEBUG_CYTHON=1 "$PY" -m pip install -q --no-build-isolation --no-deps .)
    RUN_ENV=(env)
fi

step "check the checked build is the one imported"
(cd "$WORK" && "${RUN_ENV[@]}" "$PY" -c \
    "import fastbp, sys; p = fastbp.__file__; print(p); sys.exit(not p.startswith('$WORK/venv'))")

if [[ "$MODE" == conv-scalar ]]; then
    step "check the portable convolution kernels are one lane wide"
    # side by side, sample l's element p is at [(l / VL) VL P + p VL + l % VL]:
    # one lane puts a sample's elements next to each other
    (cd "$WORK" && "$PY" - <<'LANES'
import sys
import numpy as np
from fastbp._kernels import _conv, _dispatch
_dispatch._force_dispatch_path("portable")
X = np.arange(2 * 25, dtype=np.float32).reshape(2, 1, 5, 5)
out = np.empty((_conv.padded_rows(2, X.dtype), 1, 5, 5), np.float32)
_conv.to_blocks(X, out)
lanes = 1 if out.ravel()[1] == X.ravel()[1] else None
print("portable convolution lanes:", lanes or "more than one")
sys.exit(lanes != 1)
LANES
    )
fi

if [[ "$MODE" == asan ]]; then
    step "check every kernel module is instrumented"
    for so in "$WORK"/venv/lib/python*/site-packages/fastbp/_kernels/*.so; do
        # Every instrumented object registers with the ASan runtime; UBSan's
        # runtime is linked in (a module may have no check UBSan can place).
        # (The listings are read whole: grep -q would end nm early, and
        # pipefail would count that as a failure.)
        symbols="$(nm -D "$so")"
        needed="$(readelf -d "$so")"
        [[ "$symbols" == *__asan_init* ]] || { echo "$so is not built with ASan" >&2; exit 1; }
        [[ "$needed" == *libubsan* ]] || { echo "$so is not linked with UBSan" >&2; exit 1; }
        echo "instrumented: $(basename "$so")"
    done
fi

step "test suite"
status=0
(cd "$WORK" && "${RUN_ENV[@]}" "$PY" -m pytest "$WORK/src/tests" "${PYTEST_ARGS[@]}") || status=$?

if [[ "$MODE" == asan ]]; then
    step "sanitizer reports"
    if compgen -G "$WORK/reports/*" >/dev/null; then
        cat "$WORK"/reports/*
        echo "sanitizer reports above: FAILED" >&2
        exit 1
    fi
    if [[ $status == 0 ]]; then
        echo "no sanitizer reports"
    else
        echo "no sanitizer report files; a report printed before the process exited is above"
    fi
fi
echo "pytest exit status: $status ($((SECONDS - T0))s in all)"
exit $status
