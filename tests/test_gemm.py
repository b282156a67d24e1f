"""fastbp's own GEMM (csrc/gemm.c, reached through _blas.gemm_py with alpha 1
and beta 0 or 1): products against float64 NumPy, the exact rounding of each
element (one fused multiply-add after the other along k, emulated with
fractions), and the invariances that keep results independent of how callers
cut a product into blocks for their threads."""
from fractions import Fraction

import numpy as np
import pytest

from fastbp._kernels import _blas, _dispatch

OWN_PATHS = [p for p in _dispatch.available_paths() if p != "portable"]
DTYPES = [np.float32, np.float64]

# Edges of the kernel's tiles: panels of 2 vectors (32 / 16 columns with
# AVX-512 in float32 / float64, 16 / 8 with AVX2), tiles of 6 or 12 rows,
# blocks of 128 (AVX-512) or 256 (AVX2) along k and of 192 rows (past one
# block of rows, op(B) is packed once for all of them). With several blocks
# of k, narrow products take the blocks of k outermost and wide ones (n >= k
# less a block) the panels: (9, 300, 260) with AVX2, and the 400 columns by
# 520 below on every path, as do the 40 columns by 520 the other order; with
# 2 rows (B read in place) and 200 (B packed up front) each. With A^T and 8
# panels or more (more than 14 vectors of columns), blocks of A^T are copied
# and the blocks of k go outermost whatever the width: the 400 columns, and
# 260 with AVX2.
SHAPES = [(1, 1, 1), (1, 17, 3), (5, 7, 2), (12, 32, 9), (13, 33, 17), (25, 65, 40),
          (7, 8, 256), (11, 16, 257), (24, 31, 513), (3, 48, 600), (400, 37, 300),
          (9, 300, 260), (2, 400, 520), (2, 40, 520), (200, 400, 520), (200, 40, 520)]


def _operands(rng, m, n, k, trans_a, trans_b, dtype):
    A = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    B = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    return A, B


def _product(A, B, trans_a, trans_b, C=None, path=None):
    """op(A) @ op(B) (+ C) through gemm_py, on ``path`` when given."""
    m = A.shape[1] if trans_a else A.shape[0]
    n = B.shape[0] if trans_b else B.shape[1]
    if C is None:
        out, beta = np.full((m, n), np.nan, dtype=A.dtype), 0.0  # beta 0 must not read C
    else:
        out, beta = C.copy(), 1.0
    if path is not None:
        _dispatch._force_dispatch_path(path)
    try:
        _blas.gemm_py(A, B, out, trans_a, trans_b, 1.0, beta)
    finally:
        if path is not None:
            _dispatch._force_dispatch_path(None)
    return out


def every_variant(test):
    """Run ``test`` on each own path, dtype, transpose and accumulate flag."""
    for name, values in [("accumulate", [False, True]), ("trans_b", [False, True]),
                         ("trans_a", [False, True]), ("dtype", DTYPES), ("path", OWN_PATHS)]:
        test = pytest.mark.parametrize(name, values)(test)
    return test


def _case(seed, m, n, k, trans_a, trans_b, accumulate, dtype, path):
    """Random operands of one product and its result on ``path``:
    (op(A), op(B), C or None, result)."""
    rng = np.random.default_rng(seed)
    A, B = _operands(rng, m, n, k, trans_a, trans_b, dtype)
    C = rng.standard_normal((m, n)).astype(dtype) if accumulate else None
    got = _product(A, B, trans_a, trans_b, C, path)
    return A.T if trans_a else A, B.T if trans_b else B, C, got


@every_variant
@pytest.mark.parametrize("m, n, k", SHAPES)
def test_product_matches_float64_numpy(path, dtype, trans_a, trans_b, accumulate, m, n, k):
    opA, opB, C, got = _case(m * 1000 + n * 10 + k, m, n, k, trans_a, trans_b, accumulate,
                             dtype, path)
    opA, opB = opA.astype(np.float64), opB.astype(np.float64)
    want = opA @ opB + (C if accumulate else 0)
    # a chain of k rounded multiply-adds: |error| <= (k + 1) eps sum |a b| (+ |C|)
    bound = (k + 1) * np.finfo(dtype).eps * (np.abs(opA) @ np.abs(opB)
                                            + (np.abs(C) if accumulate else 0))
    assert np.all(np.abs(got - want) <= bound)


def _round_to(value, dtype):
    """The float of ``dtype`` nearest the exact rational ``value`` (ties to even)."""
    guess = dtype(float(value))
    candidates = [np.nextafter(guess, dtype(-np.inf)), guess, np.nextafter(guess, dtype(np.inf))]
    best = min(candidates, key=lambda c: (abs(Fraction(float(c)) - value),
                                          int(np.array(c).view(np.uint32 if dtype is np.float32
                                                               else np.uint64)) & 1))
    return dtype(best)


def _fma_chain(a_row, b_col, start, dtype):
    """start + a_0 b_0 + a_1 b_1 + ..., each step one correctly rounded
    multiply-add (what an FMA instruction computes)."""
    acc = dtype(start)
    for a, b in zip(a_row, b_col):
        acc = _round_to(Fraction(float(a)) * Fraction(float(b)) + Fraction(float(acc)), dtype)
    return acc


@every_variant
@pytest.mark.parametrize("m, n, rows, columns", [
    (3, 19, range(3), range(0, 19, 6)),
    # with A^T, columns 64 and 65 take the narrow edge's kernel (vectors along
    # the rows), but for the last rows, which take the panels' tiles
    (37, 66, range(0, 37, 4), (0, 31, 63, 64, 65)),
    # one edge column (the 65th class: chunks of 8 vectors of rows, then a
    # vector at a time), three and four: each chunk's rows with AVX2, and
    # the last rows in the panels' tiles
    (77, 65, (0, 40, 63, 64, 71, 72, 76), (0, 64)),
    (45, 67, (0, 23, 24, 44), (63, 64, 65, 66)),
    (45, 68, (0, 15, 16, 39, 40, 44), (3, 64, 65, 66, 67)),
    # AVX-512 float32's chunks of one and two edge columns (8 and 4 vectors
    # of 16 rows) and what follows them
    (200, 65, (0, 127, 128, 191, 192, 199), (0, 64)),
    (140, 66, (0, 63, 64, 127, 128, 139), (64, 65)),
    # more than one block of 192 rows: op(B) is packed once, up front
    (197, 35, (0, 5, 191, 192, 196), (0, 15, 16, 33, 34)),
    # wider than k less a block of k: each panel takes its blocks of k in
    # turn (the others go block of k by block of k over all the panels);
    # with A^T, 5 rows of A^T copied element by element, blocks of k
    # outermost
    (5, 290, range(5), (0, 17, 289)),
    # with A^T, 8 panels or more (on every path): each block of A^T is copied
    # before the panels pass, vectors of rows by vectors of k transposed in
    # registers and the rest (the rows past the last whole vector, the k of
    # each block past its last whole vector) element by element. 290
    # columns leave 2 past the panels, which the edge's kernel takes block
    # of k by block of k (one block per copy); 293 leave 5, a panel of their
    # own, so one call copies block after block of k, and 197 rows copy two
    # blocks of rows (B packed up front)
    (37, 290, (0, 15, 16, 31, 32, 36), (0, 31, 32, 289)),
    (37, 293, (0, 15, 16, 31, 32, 36), (0, 31, 32, 288, 292)),
    (197, 293, (0, 95, 96, 191, 192, 196), (0, 63, 64, 292))])
def test_each_element_is_one_fma_chain_along_k(path, dtype, trans_a, trans_b, accumulate, m, n,
                                               rows, columns):
    # k spans several blocks of k (128 or 256), so the chain crosses the
    # reloads of C
    k = 300
    opA, opB, C, got = _case(7, m, n, k, trans_a, trans_b, accumulate, dtype, path)
    for i in rows:
        for j in columns:
            want = _fma_chain(opA[i], opB[:, j], C[i, j] if accumulate else 0, dtype)
            assert got[i, j] == want, (i, j)


@every_variant
@pytest.mark.parametrize("m, n, k, rows, columns", [
    # the edge's columns (with A itself: its blocks transposed) over fewer k
    # than a vector, and over whole vectors of k
    (48, 65, 7, (0, 15, 16, 47), (0, 63, 64)),
    (48, 65, 32, (0, 15, 16, 47), (0, 63, 64)),
    # every column an edge column (no panel at all), and three of them over
    # a chunk of three vectors of rows
    (200, 3, 300, (0, 47, 48, 191, 192, 199), (0, 1, 2)),
    (48, 67, 300, (0, 16, 32, 47), (31, 64, 65, 66)),
    # blocks of rows with op(B) too large to pack up front (4.5 MB in
    # float32 with AVX-512): each block packs its own panels
    (200, 1025, 1100, (0, 191, 192, 199), (0, 1023, 1024)),
])
def test_narrow_edges_are_one_fma_chain_along_k(path, dtype, trans_a, trans_b, accumulate, m,
                                                n, k, rows, columns):
    opA, opB, C, got = _case(11, m, n, k, trans_a, trans_b, accumulate, dtype, path)
    for i in rows:
        for j in columns:
            want = _fma_chain(opA[i], opB[:, j], C[i, j] if accumulate else 0, dtype)
            assert got[i, j] == want, (i, j)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_paths_agree_bit_for_bit(dtype, trans_a, trans_b):
    if len(OWN_PATHS) < 2:
        pytest.skip(f"this CPU offers one copy of the kernel: {OWN_PATHS}")
    rng = np.random.default_rng(3)
    A, B = _operands(rng, 37, 70, 300, trans_a, trans_b, dtype)
    results = [_product(A, B, trans_a, trans_b, None, p) for p in OWN_PATHS]
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


@pytest.mark.parametrize("path", OWN_PATHS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("n", [75, 67])
def test_blocks_of_rows_and_columns_give_the_same_bits(path, dtype, trans_a, trans_b, n):
    # callers share a product out as blocks of rows or columns: an element
    # must not depend on which block computed it (n = 67: with A^T, the last
    # 3 columns of the whole take the narrow edge's kernel)
    m, k = 411, 270
    rng = np.random.default_rng(5)
    A, B = _operands(rng, m, n, k, trans_a, trans_b, dtype)
    whole = _product(A, B, trans_a, trans_b, None, path)
    for r0, r1 in [(0, 1), (5, 18), (17, 41), (150, 411)]:
        part = A[:, r0:r1] if trans_a else A[r0:r1]
        np.testing.assert_array_equal(
            _product(np.ascontiguousarray(part), B, trans_a, trans_b, None, path), whole[r0:r1])
    for c0, c1 in [(0, 1), (3, 40), (33, n)]:
        part = B[c0:c1] if trans_b else B[:, c0:c1]
        np.testing.assert_array_equal(
            _product(A, np.ascontiguousarray(part), trans_a, trans_b, None, path),
            whole[:, c0:c1])


@pytest.mark.parametrize("path", OWN_PATHS)
def test_non_finite_values_propagate_and_beta_zero_ignores_c(path):
    A = np.ones((4, 20), dtype=np.float32)
    B = np.ones((20, 18), dtype=np.float32)
    A[1, 3] = np.nan
    B[5, 17] = np.inf
    got = _product(A, B, False, False, None, path)  # C starts as NaN: must be ignored
    assert np.isnan(got[1]).all()
    assert np.isinf(got[[0, 2, 3], 17]).all()
    np.testing.assert_array_equal(got[[0, 2, 3], :17], 20)
