#!/usr/bin/env bash
# cibuildwheel before-all on macOS: put LLVM's OpenMP runtime (libomp) for
# both architectures under /tmp/libomp/{x86_64,arm64}. Apple clang compiles
# OpenMP with -Xpreprocessor -fopenmp but ships no runtime; Homebrew's libomp
# targets the runner's own macOS release, which would raise the wheels'
# minimum macOS, so take conda-forge's builds, made for old releases (10.9 on
# x86_64, 11.0 on arm64). pyproject.toml points CPPFLAGS/LDFLAGS here and sets
# MACOSX_DEPLOYMENT_TARGET; delocate copies libomp.dylib into the wheel.
set -euo pipefail

LLVM_OPENMP_VERSION="${LLVM_OPENMP_VERSION:-11.1.0}"
# (no associative arrays: macOS ships bash 3.2)
for arch in x86_64 arm64; do
    case "$arch" in
        x86_64) package="osx-64/llvm-openmp-${LLVM_OPENMP_VERSION}-hda6cdc1_1.tar.bz2" ;;
        arm64) package="osx-arm64/llvm-openmp-${LLVM_OPENMP_VERSION}-hf3c4609_1.tar.bz2" ;;
    esac
    prefix="/tmp/libomp/$arch"
    mkdir -p "$prefix"
    curl -fsSL --retry 3 \
        "https://anaconda.org/conda-forge/llvm-openmp/${LLVM_OPENMP_VERSION}/download/${package}" \
        | tar -xjf - -C "$prefix" include lib
    test -f "$prefix/include/omp.h" && test -f "$prefix/lib/libomp.dylib"
    lipo -info "$prefix/lib/libomp.dylib"
done
