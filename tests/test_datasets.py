"""Tests for fastbp.datasets (IDX reader and Fashion-MNIST loader)."""

import gzip
import io
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastbp.datasets as datasets
from fastbp.datasets import load_fashion_mnist, load_idx

CODES = {
    np.dtype("uint8"): 0x08,
    np.dtype("int8"): 0x09,
    np.dtype("int16"): 0x0B,
    np.dtype("int32"): 0x0C,
    np.dtype("float32"): 0x0D,
    np.dtype("float64"): 0x0E,
}

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


def header(code, dims):
    return bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)


def encode_idx(arr):
    """Independent IDX encoder: header + big-endian C-order payload."""
    arr = np.asarray(arr)
    return header(CODES[arr.dtype], arr.shape) + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write(path, content, compress=False):
    path.write_bytes(gzip.compress(content) if compress else content)
    return path


def make_array(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)


# ---------------------------------------------------------------- load_idx


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4), (0, 4)], ids=str)
@pytest.mark.parametrize("dtype", list(CODES), ids=str)
def test_round_trip(tmp_path, dtype, shape, compress):
    arr = make_array(dtype, shape)
    out = load_idx(write(tmp_path / "a.idx", encode_idx(arr), compress))
    assert out.dtype == dtype
    assert out.dtype.isnative
    assert out.shape == shape
    assert out.flags.writeable
    np.testing.assert_array_equal(out, arr)


def test_big_endian_values_decoded(tmp_path):
    # Hand-written bytes, not the test encoder, so the byte order is pinned.
    raw = header(0x0C, [2]) + b"\x00\x00\x01\x00" + b"\xff\xff\xff\xfe"
    np.testing.assert_array_equal(load_idx(write(tmp_path / "i", raw)), [256, -2])
    raw = header(0x0D, [1]) + b"\x3f\xc0\x00\x00"
    assert load_idx(write(tmp_path / "f", raw))[0] == np.float32(1.5)
    raw = header(0x0B, [1]) + b"\x01\x02"
    assert load_idx(write(tmp_path / "s", raw))[0] == 0x0102
    raw = header(0x0E, [1]) + struct.pack(">d", -0.25)
    assert load_idx(write(tmp_path / "d", raw))[0] == -0.25
    raw = header(0x09, [1]) + b"\xff"
    assert load_idx(write(tmp_path / "b", raw))[0] == -1


def test_uint8_is_not_widened(tmp_path):
    out = load_idx(write(tmp_path / "u", header(0x08, [2, 2]) + bytes([0, 1, 254, 255])))
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 1], [254, 255]]


def test_gzip_detected_by_content_not_name(tmp_path):
    arr = make_array("int16", (4, 3))
    # Compressed data under a plain name, plain data under a .gz name.
    np.testing.assert_array_equal(load_idx(write(tmp_path / "x.idx", encode_idx(arr), True)), arr)
    np.testing.assert_array_equal(load_idx(write(tmp_path / "y.gz", encode_idx(arr))), arr)


def test_accepts_str_path(tmp_path):
    arr = make_array("uint8", (3,))
    path = write(tmp_path / "a", encode_idx(arr))
    np.testing.assert_array_equal(load_idx(str(path)), arr)


VALID = header(0x0C, [2, 3]) + bytes(24)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize(
    "content, match",
    [
        (b"\x01" + VALID[1:], "magic"),
        (b"\x00\x01" + VALID[2:], "magic"),
        (VALID[:2] + b"\x0a" + VALID[3:], "type code 0x0A"),
        (VALID[:2] + b"\x07" + VALID[3:], "type code 0x07"),
        (header(0x08, []) + bytes(4), "dimensions is 0"),
        (bytes([0, 0, 8, 255]) + bytes(4 * 255), "255 dimensions"),
        (VALID[:-1], "needs 24 data bytes|truncated"),
        (VALID[:10], "truncated dimensions"),
        (VALID[:3], "truncated header"),
        (b"", "truncated header"),
        (VALID + b"\x00", "unexpected data after"),
        (VALID + b"junk" * 10, "unexpected data after"),
        (b"\x89PNG\r\n\x1a\n" + bytes(40), "magic"),
    ],
    ids=[
        "magic-first",
        "magic-second",
        "type-0A",
        "type-07",
        "zero-dims",
        "255-dims",
        "truncated-data",
        "truncated-dims",
        "truncated-header",
        "empty",
        "one-trailing-byte",
        "trailing-garbage",
        "png",
    ],
)
def test_malformed_raises_value_error(tmp_path, content, match, compress):
    path = write(tmp_path / "bad.idx", content, compress)
    with pytest.raises(ValueError, match=match) as info:
        load_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize(
    "dims",
    [[0xFFFFFFFF] * 3, [1 << 14, 1 << 14], [60000, 28, 28]],
    ids=["astronomical", "256MiB", "fashion-mnist-size"],
)
def test_huge_declared_size_fails_fast_without_allocating(tmp_path, dims, compress):
    path = write(tmp_path / "huge.idx", header(0x08, dims) + bytes(100), compress)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="needs .* data bytes") as info:
            load_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(path) in str(info.value)
    assert peak < 1 << 20, f"allocated {peak} bytes before rejecting"


def test_gzip_bomb_with_small_dims_is_bounded(tmp_path):
    # 10 declared bytes followed by 16 MiB of zeros (compresses to ~16 KiB).
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits=31: gzip container
    parts = [comp.compress(header(0x08, [10]))]
    zeros = bytes(1 << 20)
    parts += [comp.compress(zeros) for _ in range(16)]
    parts.append(comp.flush())
    path = tmp_path / "bomb.idx"
    path.write_bytes(b"".join(parts))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="unexpected data after"):
            load_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"decompressed {peak} bytes, should stop after 11 data bytes"


def test_truncated_gzip(tmp_path):
    blob = gzip.compress(encode_idx(make_array("float32", (20, 20))))
    for cut in (len(blob) - 4, len(blob) // 2, 12, 3):
        path = tmp_path / f"cut{cut}.gz"
        path.write_bytes(blob[:cut])
        with pytest.raises(ValueError) as info:
            load_idx(path)
        assert str(path) in str(info.value)


def test_corrupt_gzip_crc(tmp_path):
    blob = bytearray(gzip.compress(encode_idx(make_array("uint8", (50,)))))
    blob[-8] ^= 0xFF  # CRC32 field of the trailer
    path = tmp_path / "crc.gz"
    path.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="corrupt gzip"):
        load_idx(path)


def test_missing_file_is_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_idx(tmp_path / "nope.idx")


# ------------------------------------------------------------ fuzzing

DTYPE_LIST = list(CODES)


@pytest.fixture(scope="module")
def fuzz_file(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "f.idx"


def check_load(path, content):
    """load_idx must return the exact decoding of ``content`` or raise ValueError."""
    path.write_bytes(content)
    try:
        out = load_idx(path)
    except ValueError:
        return
    # Success: the file must decode to exactly this array, i.e. re-encoding
    # the result reproduces the (decompressed) bytes, shape and type included.
    raw = content
    if content[:2] == b"\x1f\x8b":
        raw = gzip.GzipFile(fileobj=io.BytesIO(content)).read()
    assert out.dtype.isnative
    assert encode_idx(out) == raw


@st.composite
def valid_idx(draw):
    dtype = draw(st.sampled_from(DTYPE_LIST))
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=1, max_size=3)))
    nbytes = dtype.itemsize * int(np.prod(shape))
    payload = draw(st.binary(min_size=nbytes, max_size=nbytes))
    return header(CODES[dtype], shape) + payload


@st.composite
def corrupted(draw):
    data = bytearray(draw(valid_idx()))
    if draw(st.booleans()):
        data = bytearray(gzip.compress(bytes(data), mtime=0))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["flip", "truncate", "append", "insert", "delete"]))
        pos = draw(st.integers(0, len(data)))
        if op == "flip" and pos < len(data):
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "truncate":
            del data[pos:]
        elif op == "append":
            data += draw(st.binary(min_size=1, max_size=8))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 4))]
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=st.one_of(
    st.binary(max_size=64),
    st.binary(max_size=64).map(lambda b: gzip.compress(b, mtime=0)),
    valid_idx(),
    corrupted(),
))
def test_fuzz_load_idx(fuzz_file, content):
    check_load(fuzz_file, content)


# --------------------------------------------------- load_fashion_mnist


def make_fmnist_dir(directory, n_train=5, n_test=3, compress=True, seed=0):
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    data = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        X = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, size=n, dtype=np.uint8)
        ext = ".gz" if compress else ""
        write(directory / f"{prefix}-images-idx3-ubyte{ext}", encode_idx(X), compress)
        write(directory / f"{prefix}-labels-idx1-ubyte{ext}", encode_idx(y), compress)
        data[prefix] = (X, y)
    return data


@pytest.fixture
def no_system_data(monkeypatch, tmp_path):
    """Hide the real Debian files and any FASTBP_DATA so only the test's files count."""
    monkeypatch.setattr(datasets, "_SYSTEM_DIRS", (str(tmp_path / "no-system-dir"),))
    monkeypatch.delenv("FASTBP_DATA", raising=False)


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "raw"])
@pytest.mark.parametrize("subset, prefix", [("train", "train"), ("test", "t10k")])
def test_fmnist_from_path(tmp_path, no_system_data, subset, prefix, compress):
    data = make_fmnist_dir(tmp_path / "fm", compress=compress)
    X, y = load_fashion_mnist(subset, path=tmp_path / "fm")
    assert X.dtype == np.uint8 and y.dtype == np.uint8
    np.testing.assert_array_equal(X, data[prefix][0])
    np.testing.assert_array_equal(y, data[prefix][1])


def test_fmnist_default_subset_is_train(tmp_path, no_system_data):
    data = make_fmnist_dir(tmp_path / "fm", n_train=4, n_test=2)
    X, y = load_fashion_mnist(path=str(tmp_path / "fm"))
    assert X.shape == (4, 28, 28) and y.shape == (4,)
    np.testing.assert_array_equal(y, data["train"][1])


def test_fmnist_from_env(tmp_path, no_system_data, monkeypatch):
    data = make_fmnist_dir(tmp_path / "env", n_test=2)
    monkeypatch.setenv("FASTBP_DATA", str(tmp_path / "env"))
    X, y = load_fashion_mnist("test")
    np.testing.assert_array_equal(X, data["t10k"][0])
    np.testing.assert_array_equal(y, data["t10k"][1])


def test_fmnist_path_takes_precedence_over_env(tmp_path, no_system_data, monkeypatch):
    make_fmnist_dir(tmp_path / "env", n_train=2)
    make_fmnist_dir(tmp_path / "arg", n_train=6)
    monkeypatch.setenv("FASTBP_DATA", str(tmp_path / "env"))
    assert load_fashion_mnist(path=tmp_path / "arg")[0].shape[0] == 6
    # A directory without the files falls through to the next place.
    assert load_fashion_mnist(path=tmp_path / "empty")[0].shape[0] == 2


def test_fmnist_env_takes_precedence_over_system(tmp_path, monkeypatch):
    make_fmnist_dir(tmp_path / "sys", n_train=7)
    make_fmnist_dir(tmp_path / "env", n_train=3)
    monkeypatch.setattr(datasets, "_SYSTEM_DIRS", (str(tmp_path / "sys"),))
    monkeypatch.setenv("FASTBP_DATA", str(tmp_path / "env"))
    assert load_fashion_mnist()[0].shape[0] == 3
    monkeypatch.delenv("FASTBP_DATA")
    assert load_fashion_mnist()[0].shape[0] == 7


def test_fmnist_mismatched_counts(tmp_path, no_system_data):
    d = tmp_path / "fm"
    make_fmnist_dir(d)
    write(d / "train-labels-idx1-ubyte.gz", encode_idx(np.zeros(4, np.uint8)), True)
    with pytest.raises(ValueError, match="5 images .* 4 labels"):
        load_fashion_mnist(path=d)


@pytest.mark.parametrize(
    "images, labels, match",
    [
        (np.zeros((2, 28, 27), np.uint8), np.zeros(2, np.uint8), r"\(n, 28, 28\)"),
        (np.zeros((2, 28, 28), np.float32), np.zeros(2, np.uint8), r"\(n, 28, 28\)"),
        (np.zeros((2, 28, 28), np.uint8), np.zeros((2, 1), np.uint8), r"labels of shape"),
        (np.zeros((2, 28, 28), np.uint8), np.array([0, 10], np.uint8), r"0\.\.9"),
    ],
    ids=["bad-image-shape", "float-images", "2d-labels", "label-10"],
)
def test_fmnist_wrong_content(tmp_path, no_system_data, images, labels, match):
    d = tmp_path / "fm"
    d.mkdir()
    write(d / "train-images-idx3-ubyte", encode_idx(images))
    write(d / "train-labels-idx1-ubyte", encode_idx(labels))
    with pytest.raises(ValueError, match=match):
        load_fashion_mnist(path=d)


@pytest.mark.parametrize("subset", ["val", "Train", "", None, 0])
def test_fmnist_bad_subset(subset):
    with pytest.raises(ValueError, match="subset"):
        load_fashion_mnist(subset)


def test_fmnist_missing(tmp_path, no_system_data, monkeypatch):
    monkeypatch.setenv("FASTBP_DATA", str(tmp_path / "env-dir"))
    d = tmp_path / "half"
    make_fmnist_dir(d)
    (d / "train-labels-idx1-ubyte.gz").unlink()  # images alone are not enough
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist(path=d)
    msg = str(info.value)
    assert "sudo apt-get install dataset-fashion-mnist" in msg
    assert "FASTBP_DATA" in msg
    for place in (d, tmp_path / "env-dir", tmp_path / "no-system-dir"):
        assert str(place) in msg


@pytest.mark.skipif(
    not (DEBIAN_DIR / "t10k-labels-idx1-ubyte.gz").exists(),
    reason="Debian package dataset-fashion-mnist not installed",
)
def test_fmnist_real_debian_files(monkeypatch):
    monkeypatch.delenv("FASTBP_DATA", raising=False)
    for subset, n in (("train", 60000), ("test", 10000)):
        X, y = load_fashion_mnist(subset)
        assert X.shape == (n, 28, 28) and X.dtype == np.uint8
        assert y.shape == (n,) and y.dtype == np.uint8
        assert y.min() == 0 and y.max() == 9
        assert np.bincount(y).tolist() == [n // 10] * 10  # balanced classes
        assert X.max() == 255  # real pixel data, not zeros
