"""Dataset loaders: the IDX file format and Fashion-MNIST.

Pure Python + NumPy: nothing here calls the compiled kernels. Importing it
still imports the ``fastbp`` package, whose ``__init__`` loads the kernels,
so it needs a built fastbp like every other module.
"""

from __future__ import annotations

import gzip
import os
import stat
import zlib
from pathlib import Path

import numpy as np

from ._typing import Any, NDArray, PathLike

__all__ = ["load_idx", "load_fashion_mnist"]

# IDX type byte -> big-endian dtype of the payload.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# The format allows up to 255 dimensions, but NumPy 1.x caps arrays at 32 and
# no real IDX file comes close; a larger count means a corrupt or foreign file.
_MAX_NDIM = 32

# zlib's documented worst case: deflate never expands more than 1032:1, so a
# gzip file of N bytes cannot hold more than 1032 * N bytes.  Used to reject a
# huge declared size up front, before decompressing anything.
_MAX_DEFLATE_RATIO = 1032

# Read the payload in chunks so memory grows with data actually present, not
# with what a (possibly corrupt) header claims.
_CHUNK = 1 << 20

_GZIP_MAGIC = b"\x1f\x8b"


def _fail(name, what):
    raise ValueError(f"{name}: not a valid IDX file: {what}")


def _read_exactly(stream, nbytes, name, what):
    """Read exactly ``nbytes``; a short read means the file is truncated."""
    buf = bytearray()
    while len(buf) < nbytes:
        chunk = stream.read(min(_CHUNK, nbytes - len(buf)))
        if not chunk:
            _fail(name, f"truncated {what}: expected {nbytes} bytes, found {len(buf)}")
        buf += chunk
    return buf


def _parse_idx(stream, name, size_limit, exact_size):
    """Decode an IDX stream.

    ``size_limit`` bounds the total (decompressed) length; ``exact_size``
    says whether it is the exact length (raw file) or only an upper bound
    (gzip), which only changes the wording of the error.
    """
    header = _read_exactly(stream, 4, name, "header")
    if header[0] != 0 or header[1] != 0:
        _fail(name, f"bad magic number 0x{header[0]:02x}{header[1]:02x} (expected 0x0000)")
    code, ndim = header[2], header[3]
    dtype = _IDX_DTYPES.get(code)
    if dtype is None:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        _fail(name, f"unknown type code 0x{code:02X} (expected one of {known})")
    if ndim == 0:
        _fail(name, "number of dimensions is 0")
    if ndim > _MAX_NDIM:
        _fail(name, f"{ndim} dimensions (at most {_MAX_NDIM} supported)")

    dims = tuple(
        int(d) for d in np.frombuffer(_read_exactly(stream, 4 * ndim, name, "dimensions"), ">u4")
    )
    header_len = 4 + 4 * ndim
    # Python ints: the product cannot overflow, however absurd the dims.
    nbytes = dtype.itemsize
    for d in dims:
        nbytes *= d

    # Check the declared size against what the file can hold *before*
    # allocating or reading anything.
    if size_limit is not None and header_len + nbytes > size_limit:
        if exact_size:
            _fail(
                name,
                f"shape {dims} of {dtype.name} needs {nbytes} data bytes, "
                f"but the file has {max(size_limit - header_len, 0)}",
            )
        _fail(
            name,
            f"shape {dims} of {dtype.name} needs {nbytes} data bytes, more than "
            f"a gzip file of this size can hold (at most {size_limit} bytes)",
        )

    data = _read_exactly(stream, nbytes, name, "data")
    # One byte past the end: catches trailing garbage and, for gzip, makes the
    # decompressor reach the end of the stream and verify its CRC.
    if stream.read(1):
        _fail(name, f"unexpected data after the {nbytes} data bytes declared by shape {dims}")

    arr = np.frombuffer(data, dtype=dtype).reshape(dims)
    # Native byte order so downstream kernels see plain C types; a no-op
    # (no copy) for one-byte types, which keeps uint8 as uint8.
    return arr.astype(dtype.newbyteorder("="), copy=False)


def load_idx(path: PathLike) -> NDArray[Any]:
    """Read an IDX file (the MNIST file format), raw or gzip-compressed.

    The layout is two zero bytes, a type byte (``0x08`` uint8, ``0x09``
    int8, ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E``
    float64), a byte giving the number of dimensions, each dimension as a
    big-endian uint32, then the data in big-endian C order.  Compression is
    detected from the gzip magic bytes, not from the file name.

    Parameters
    ----------
    path : str or os.PathLike
        File to read.

    Returns
    -------
    ndarray
        Array with the declared shape and the declared element type, in
        native byte order (uint8 data stays uint8).

    Raises
    ------
    ValueError
        If the content is not a well-formed IDX file: bad magic number,
        unknown type code, zero or too many dimensions, data shorter or
        longer than the shape declares, or a corrupt gzip stream.  The
        message names the file and the problem.
    OSError
        If the file cannot be opened or read (e.g. ``FileNotFoundError``).

    Notes
    -----
    The declared size is checked against the file's length before any
    allocation, and gzip input is decompressed incrementally and never
    beyond the declared size plus one byte, so neither a corrupt header nor
    a gzip bomb can exhaust memory.

    Examples
    --------
    >>> from fastbp.datasets import load_idx
    >>> X = load_idx("train-images-idx3-ubyte.gz")  # doctest: +SKIP
    >>> X.shape, X.dtype  # doctest: +SKIP
    ((60000, 28, 28), dtype('uint8'))
    """
    name = os.fspath(path)
    with open(name, "rb") as f:
        st = os.fstat(f.fileno())
        # Size is only meaningful for regular files (not pipes and the like).
        size = st.st_size if stat.S_ISREG(st.st_mode) else None
        # peek, not read+seek, so that non-seekable inputs work too.
        magic = f.peek(2)[:2]
        if magic != _GZIP_MAGIC:
            return _parse_idx(f, name, size, exact_size=True)
        limit = None if size is None else _MAX_DEFLATE_RATIO * size
        try:
            with gzip.GzipFile(fileobj=f, mode="rb") as gz:
                return _parse_idx(gz, name, limit, exact_size=False)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise ValueError(f"{name}: corrupt gzip stream: {exc}") from exc


# Where Debian/Ubuntu's package ``dataset-fashion-mnist`` installs the files.
_SYSTEM_DIRS = ("/usr/share/datasets/fashion-mnist",)

_ENV_VAR = "FASTBP_DATA"

_SUBSET_PREFIX = {"train": "train", "test": "t10k"}


def _find(directory, stem):
    """Return ``directory/stem[.gz]`` if it exists, preferring ``.gz``."""
    for candidate in (directory / (stem + ".gz"), directory / stem):
        if candidate.is_file():
            return candidate
    return None


def load_fashion_mnist(subset: str = "train", *, path: PathLike | None = None
                       ) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Load the Fashion-MNIST images and labels.

    Fashion-MNIST holds 28x28 grayscale images of clothing in 10 classes:
    60000 for training and 10000 for testing.  The four IDX files (raw or
    ``.gz``) are looked for, in order, in:

    1. the directory ``path``, if given;
    2. the directory named by the environment variable ``FASTBP_DATA``;
    3. ``/usr/share/datasets/fashion-mnist``, where Debian/Ubuntu's package
       ``dataset-fashion-mnist`` installs them.

    The first directory holding both files of the subset is used.

    Parameters
    ----------
    subset : {"train", "test"}, default="train"
        Which split to load.
    path : str or os.PathLike, optional
        Directory holding ``train-images-idx3-ubyte[.gz]``,
        ``train-labels-idx1-ubyte[.gz]``, ``t10k-images-idx3-ubyte[.gz]``
        and ``t10k-labels-idx1-ubyte[.gz]``.

    Returns
    -------
    X : ndarray of shape (n_samples, 28, 28), dtype uint8
        Pixel intensities, 0 (background) to 255.
    y : ndarray of shape (n_samples,), dtype uint8
        Class labels, 0 to 9.

    Raises
    ------
    ValueError
        If ``subset`` is not "train" or "test", or if the files are
        malformed or inconsistent (wrong shape or type, image and label
        counts differ, labels outside 0..9).
    FileNotFoundError
        If no searched directory holds the files; the message lists the
        places searched and how to get the data.

    Examples
    --------
    >>> from fastbp.datasets import load_fashion_mnist
    >>> X, y = load_fashion_mnist("test")  # doctest: +SKIP
    >>> X.shape, y.shape  # doctest: +SKIP
    ((10000, 28, 28), (10000,))
    """
    if subset not in _SUBSET_PREFIX:
        raise ValueError(f"subset must be 'train' or 'test', got {subset!r}")
    prefix = _SUBSET_PREFIX[subset]
    images_stem = f"{prefix}-images-idx3-ubyte"
    labels_stem = f"{prefix}-labels-idx1-ubyte"

    searched = []
    if path is not None:
        searched.append((Path(path), "path argument"))
    env = os.environ.get(_ENV_VAR)
    if env:  # an empty variable means unset, not the current directory
        searched.append((Path(env), f"${_ENV_VAR}"))
    searched.extend((Path(d), "dataset-fashion-mnist package") for d in _SYSTEM_DIRS)

    for directory, _ in searched:
        images_file = _find(directory, images_stem)
        labels_file = _find(directory, labels_stem)
        if images_file is not None and labels_file is not None:
            break
    else:
        places = "\n".join(f"  {d} ({why})" for d, why in searched)
        raise FileNotFoundError(
            f"Fashion-MNIST {subset!r} files ({images_stem}[.gz], "
            f"{labels_stem}[.gz]) not found. Searched:\n{places}\n"
            "To get them: on Debian/Ubuntu run "
            "'sudo apt-get install dataset-fashion-mnist'; otherwise download "
            "the four IDX files from the Fashion-MNIST project "
            "(https://github.com/zalandoresearch/fashion-mnist) into a "
            f"directory and pass it as path= or set {_ENV_VAR} to it."
        )

    X = load_idx(images_file)
    y = load_idx(labels_file)
    if X.dtype != np.uint8 or X.ndim != 3 or X.shape[1:] != (28, 28):
        raise ValueError(
            f"{images_file}: expected uint8 images of shape (n, 28, 28), "
            f"got {X.dtype} of shape {X.shape}"
        )
    if y.dtype != np.uint8 or y.ndim != 1:
        raise ValueError(
            f"{labels_file}: expected uint8 labels of shape (n,), got {y.dtype} of shape {y.shape}"
        )
    if X.shape[0] != y.shape[0]:
        raise ValueError(
            f"{images_file} holds {X.shape[0]} images but {labels_file} holds {y.shape[0]} labels"
        )
    if y.size and y.max() > 9:
        raise ValueError(f"{labels_file}: labels must be in 0..9, found {int(y.max())}")
    return X, y
