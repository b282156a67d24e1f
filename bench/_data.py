"""Fashion-MNIST for the benchmarks, read with numpy alone, so that no
contender's process imports another library to get its data."""
import gzip
import os
from pathlib import Path

import numpy as np

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _read_idx(path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find(stem):
    for folder in filter(None, (os.environ.get("FASTBP_DATA"), DEBIAN_DIR)):
        for name in (stem + ".gz", stem):
            if (Path(folder) / name).exists():
                return Path(folder) / name
    raise SystemExit(f"Fashion-MNIST's {stem} was not found in $FASTBP_DATA or {DEBIAN_DIR}.\n"
                     "On Debian/Ubuntu: sudo apt-get update && "
                     "sudo apt-get install dataset-fashion-mnist")


def fashion_mnist(subset, n=None, dtype="float32"):
    """(X, y): images scaled to [0, 1] of shape (n, 28, 28), labels int64."""
    images, labels = (_read_idx(_find(stem)) for stem in FILES[subset])
    images, labels = images[:n], labels[:n]
    return (images / np.float32(255)).astype(dtype), labels.astype(np.int64)
