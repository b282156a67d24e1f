"""Sparse input: CSR rows gathered into a dense mini-batch buffer."""
from cython cimport floating
from libc.stdint cimport int32_t, int64_t
from libc.string cimport memset

from ._checks cimport check_shape


ctypedef fused csr_index:
    int32_t
    int64_t

ctypedef fused row_index:
    int32_t
    int64_t


def csr_rows_to_dense(const floating[::1] data, const csr_index[::1] indices,
                      const csr_index[::1] indptr, const row_index[::1] rows,
                      floating[:, ::1] out):  # OUT
    """out[i] = row rows[i] of the CSR matrix (data, indices, indptr), dense:
    a sparse mini-batch gathered into a preallocated buffer. Rows, columns and
    row pointers are checked (ValueError), as a malformed matrix would write
    out of bounds."""
    cdef Py_ssize_t m = rows.shape[0], n_cols = out.shape[1]
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1, nnz = data.shape[0]
    cdef Py_ssize_t i, k, r, lo, hi, col
    cdef int bad = 0
    check_shape("out", out.shape, 2, (m, None))
    if n_rows < 0 or indices.shape[0] != nnz:
        raise ValueError("indptr/indices do not describe a CSR matrix of these data")
    with nogil:
        for i in range(m):
            r = rows[i]
            if r < 0 or r >= n_rows:
                bad = 1
                break
            lo = indptr[r]
            hi = indptr[r + 1]
            if lo < 0 or hi < lo or hi > nnz:
                bad = 2
                break
            if n_cols > 0:
                memset(&out[i, 0], 0, n_cols * sizeof(floating))
            for k in range(lo, hi):
                col = indices[k]
                if col < 0 or col >= n_cols:
                    bad = 3
                    break
                out[i, col] = out[i, col] + data[k]  # duplicates add, as scipy's toarray
            if bad:
                break
    if bad == 1:
        raise ValueError(f"row index out of range for a matrix of {n_rows} rows")
    if bad == 2:
        raise ValueError("indptr is not a valid CSR row pointer array")
    if bad == 3:
        raise ValueError(f"a column index is out of range for {n_cols} columns")
