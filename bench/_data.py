"""Fashion-MNIST for the benchmarks, read with numpy alone, so that no
contender's process imports another library to get its data."""
import gzip
import os
from pathlib import Path

import numpy as np

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _read_idx(path, n=None):
    """The first n items (all if None) of an IDX file of unsigned bytes: only
    those are read, which spares decompressing the rest in every process."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        ndim = f.read(4)[3]
        shape = [int.from_bytes(f.read(4), "big") for _ in range(ndim)]
        if n is not None:
            shape[0] = min(shape[0], n)
        data = f.read(int(np.prod(shape)))
    return np.frombuffer(data, np.uint8).reshape(shape)


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
    images, labels = (_read_idx(_find(stem), n) for stem in FILES[subset])
    return (images / np.float32(255)).astype(dtype), labels.astype(np.int64)
