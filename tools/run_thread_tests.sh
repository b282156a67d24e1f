#!/usr/bin/env bash
# Run the thread-count, concurrency and determinism tests under OpenBLAS's
# other kernel set, so that results which hold for one set of GEMM kernels
# but not another cannot slip through: OpenBLAS's AVX-512 (SkylakeX) kernels
# round differently for different BLAS thread counts, its AVX2 (Haswell)
# kernels do not.
#   - OPENBLAS_CORETYPE set (some machines pin Haswell): run with it unset.
#   - not set and the CPU has AVX-512: run with OPENBLAS_CORETYPE=Haswell.
#   - otherwise OpenBLAS already runs AVX2 or older kernels: nothing to add.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

tests=(tests/test_extremes_threads.py tests/test_good_neighbour.py tests/test_kernel_properties.py
       tests/test_team.py)

if [ -n "${OPENBLAS_CORETYPE:-}" ]; then
    echo "thread tests with OPENBLAS_CORETYPE unset (the environment pins ${OPENBLAS_CORETYPE})"
    exec env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 -m pytest -q "${tests[@]}" "$@"
elif grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
    echo "thread tests with OPENBLAS_CORETYPE=Haswell (OpenBLAS picks AVX-512 kernels here)"
    OPENBLAS_CORETYPE=Haswell exec python3 -m pytest -q "${tests[@]}" "$@"
else
    echo "thread tests: this CPU has no AVX-512, OpenBLAS runs one kernel set only"
fi
