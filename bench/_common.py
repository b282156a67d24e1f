"""Shared pieces of the benchmarks: environment report, data, tables, JSON."""
import json
import os
import platform
import time
import tracemalloc
from pathlib import Path

import numpy as np


def environment(n_threads_list):
    """Describe what the figures were measured on."""
    import scipy
    import sklearn
    from threadpoolctl import threadpool_info

    import fastbp

    env = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "threads": list(n_threads_list),
        "python": platform.python_version(),
        "fastbp": fastbp.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "sklearn": sklearn.__version__,
        "blas": [
            f"{i.get('internal_api')} {i.get('version')}, {i.get('architecture')} kernels "
            f"({Path(i.get('filepath', '')).name})"
            for i in threadpool_info() if i.get("user_api") == "blas"
        ],
        # These override OpenBLAS's own choice of kernels and blocking, for
        # every OpenBLAS in the process (numpy's, so sklearn's, too).
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"),
    }
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_blas"] = "mkl" if torch.backends.mkl.is_available() else "other"
    except ImportError:
        env["torch"] = None
    return env


def print_environment(env):
    from threadpoolctl import threadpool_info

    from fastbp._show_versions import openblas_kernel_hint

    for key, value in env.items():
        print(f"{key:>12}: {value}")
    hint = openblas_kernel_hint(threadpool_info())
    if hint:
        print("\n" + hint)
    print()


def load_fashion_mnist_flat(n_train=None, dtype=np.float32):
    """Fashion-MNIST scaled to [0, 1], flattened; says how to install it if missing."""
    X_train, y_train, X_test, y_test = _fashion_mnist_raw()
    X_train = (X_train.reshape(len(X_train), -1) / 255.0).astype(dtype)
    X_test = (X_test.reshape(len(X_test), -1) / 255.0).astype(dtype)
    if n_train:
        X_train, y_train = X_train[:n_train], y_train[:n_train]
    return X_train, y_train.astype(np.int64), X_test, y_test.astype(np.int64)


def load_fashion_mnist_images(n_train=None, n_test=None, pad=0, dtype=np.float32):
    """Fashion-MNIST as images of shape (n, 1, 28 + 2 pad, 28 + 2 pad) in [0, 1].

    Zero padding of ``pad`` pixels on each side (2 gives LeNet-5's 32x32).
    """
    X_train, y_train, X_test, y_test = _fashion_mnist_raw()

    def images(X):
        X = (X[:, None] / 255.0).astype(dtype)
        return np.ascontiguousarray(np.pad(X, ((0, 0), (0, 0), (pad, pad), (pad, pad))))

    X_train, y_train = X_train[:n_train], y_train[:n_train]
    X_test, y_test = X_test[:n_test], y_test[:n_test]
    return images(X_train), y_train.astype(np.int64), images(X_test), y_test.astype(np.int64)


def _fashion_mnist_raw():
    from fastbp.datasets import load_fashion_mnist

    try:
        X_train, y_train = load_fashion_mnist("train")
        X_test, y_test = load_fashion_mnist("test")
    except FileNotFoundError as exc:
        raise SystemExit(f"{exc}\nOn Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist")
    return X_train, y_train, X_test, y_test


def timed(fn, memory=True):
    """Run fn(); return (its result, wall seconds, peak traced MiB or None).

    memory=False skips tracemalloc, whose allocation hook slows Python-heavy
    loops (a per-batch training loop) and can bias small-step timings.
    """
    if memory:
        tracemalloc.start()
    tic = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - tic
    peak = None
    if memory:
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return result, seconds, peak


def print_table(rows, columns):
    """Print dict rows as a fixed-width table, columns = [(key, header, fmt)]."""
    widths = [max(len(h), 10) for _, h, _ in columns]
    print("  ".join(h.rjust(w) for (_, h, _), w in zip(columns, widths)))
    for row in rows:
        cells = []
        for (key, _, fmt), w in zip(columns, widths):
            value = row.get(key)
            cells.append(("-" if value is None else format(value, fmt)).rjust(w))
        print("  ".join(cells))
    print()


def write_json(path, payload):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str))
    print(f"wrote {path}")
