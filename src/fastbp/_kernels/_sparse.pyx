"""Mini-batch gathers: rows of dense arrays on the team, and CSR rows into a
dense buffer."""
from cpython.buffer cimport (PyBUF_C_CONTIGUOUS, PyBUF_WRITABLE, PyBuffer_Release,
                             PyObject_GetBuffer)
from cython cimport floating
from libc.stdint cimport int32_t, int64_t
from cpython.pyport cimport PY_SSIZE_T_MAX
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from ._checks cimport check_shape
from ._copy cimport copy_bytes
from ._team cimport bind_team, team_run, unit_count

bind_team()

# Bytes a unit of take_rows copies (whole rows, at least one), and the bytes
# of a call from which it runs on the team: a batch's rows are scattered over
# the training set, each a cache miss or several, and two cores wait for them
# side by side (a LeNet-5 batch of 32 on an AMD EPYC VM: 20 us on two
# threads, 28 on one).
cdef Py_ssize_t ROWS_UNIT_BYTES = 16384
cdef Py_ssize_t ROWS_MIN_PARALLEL = 32768
# Arrays one take_rows call gathers: X, Y and the sample weights.
cdef enum:
    MAX_ARRAYS = 3


ctypedef struct RowsJob:
    const char* src[MAX_ARRAYS]
    char* dst[MAX_ARRAYS]
    Py_ssize_t row_bytes[MAX_ARRAYS]
    Py_ssize_t rows_per_unit[MAX_ARRAYS]
    int first_unit[MAX_ARRAYS + 1]  # array a's units: first_unit[a] up to first_unit[a + 1]
    const Py_ssize_t* rows
    Py_ssize_t m
    # pad > 0: array 0's rows are images of maps x height lines of line_bytes,
    # each written into the interior of an output row of out_row_bytes, whose
    # border the gather leaves as it is
    Py_ssize_t pad, maps, height, line_bytes, out_row_bytes, out_map_bytes, out_line_bytes
    Py_ssize_t interior


cdef inline void padded_row(const RowsJob* j, char* dst, const char* src) noexcept nogil:
    """One image of array 0 into the interior of its padded output row."""
    cdef Py_ssize_t c, r
    dst += j.interior
    for c in range(j.maps):
        for r in range(j.height):
            copy_bytes(dst + c * j.out_map_bytes + r * j.out_line_bytes,
                       src + (c * j.height + r) * j.line_bytes, j.line_bytes)


cdef void rows_unit(void* job, int u, int slot) noexcept nogil:
    cdef const RowsJob* j = <const RowsJob*> job
    cdef int a = 0
    cdef Py_ssize_t i, lo, hi, rb
    while u >= j.first_unit[a + 1]:
        a += 1
    rb = j.row_bytes[a]
    lo = (u - j.first_unit[a]) * j.rows_per_unit[a]
    hi = min(lo + j.rows_per_unit[a], j.m)
    if a == 0 and j.pad > 0:
        for i in range(lo, hi):
            padded_row(j, j.dst[0] + i * j.out_row_bytes, j.src[0] + j.rows[i] * rb)
        return
    for i in range(lo, hi):
        copy_bytes(j.dst[a] + i * rb, j.src[a] + j.rows[i] * rb, rb)


cdef int _hold_arrays(list sources, list outs, Py_buffer* src_view, Py_buffer* out_view,
                      Py_ssize_t m, Py_ssize_t* n_src, Py_ssize_t pad=0) except -1:
    """Get the buffers of sources and outs (ValueError where one cannot be
    copied as bytes or does not match; m: rows each output needs; pad: array
    0's images grow by pad on each side) and return how many: the caller
    releases them (_release_arrays)."""
    cdef int a, n_arrays = len(sources), held = 0
    if n_arrays != len(outs) or not 0 < n_arrays <= MAX_ARRAYS:
        raise ValueError(f"a gather copies 1 to {MAX_ARRAYS} arrays, each with an output")
    for a in range(n_arrays):
        for array in (sources[a], outs[a]):
            dtype = getattr(array, "dtype", None)
            if dtype is None or dtype.hasobject:
                # object pointers copied as bytes would skip their reference counts
                raise ValueError(f"array {a}: a gather copies NumPy arrays of plain data, "
                                 f"not {type(array).__name__} of {dtype}")
    try:
        # the buffer protocol: C-contiguity, shape and address read in C, at
        # a fraction of the cost of the ndarray attributes
        for a in range(n_arrays):
            try:
                PyObject_GetBuffer(sources[a], &src_view[a], PyBUF_C_CONTIGUOUS)
                held += 1
                PyObject_GetBuffer(outs[a], &out_view[a],
                                   PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE)
                held += 1
            except (BufferError, ValueError) as exc:  # NumPy: ValueError when read-only
                raise ValueError(f"array {a}: a gather reads C-contiguous arrays and writes "
                                 f"writable ones ({exc})") from exc
            if a == 0:
                n_src[0] = src_view[0].shape[0] if src_view[0].ndim > 0 else 0
            if sources[a].dtype != outs[a].dtype or not _same_rows(
                    &src_view[a], &out_view[a], pad if a == 0 else 0):
                raise ValueError(f"array {a}: its output's dtype or row shape differs"
                                 + (f" (images padded by {pad})" if a == 0 and pad else ""))
            if src_view[a].shape[0] != n_src[0] or out_view[a].shape[0] < m:
                raise ValueError(f"array {a}: {src_view[a].shape[0]} rows gathered into "
                                 f"{out_view[a].shape[0]}, expected {n_src[0]} into {m}")
        # an output sharing memory with a source or another output would be
        # read and written by the team's threads at once
        for a in range(n_arrays):
            for b in range(n_arrays):
                if (_overlap(&out_view[a], &src_view[b])
                        or (b != a and _overlap(&out_view[a], &out_view[b]))):
                    raise ValueError(f"array {a}: its output overlaps array {b}'s source "
                                     f"or output")
    except BaseException:
        _release_arrays(src_view, out_view, held)
        raise
    return held


cdef bint _overlap(const Py_buffer* x, const Py_buffer* y) noexcept:
    """Whether the bytes of two buffers overlap."""
    cdef const char* x0 = <const char*> x.buf
    cdef const char* y0 = <const char*> y.buf
    return x.len > 0 and y.len > 0 and x0 < y0 + y.len and y0 < x0 + x.len


cdef void _release_arrays(Py_buffer* src_view, Py_buffer* out_view, int held) noexcept:
    cdef int a
    for a in range(held // 2):
        PyBuffer_Release(&src_view[a])
        PyBuffer_Release(&out_view[a])
    if held % 2:
        PyBuffer_Release(&src_view[held // 2])


def take_rows(list sources, const Py_ssize_t[::1] rows not None, list outs, int n_threads,
              Py_ssize_t pad=0):
    """outs[a][i] = sources[a][rows[i]] for each array a, all in one team call.

    Parameters
    ----------
    sources : list of ndarray
        Up to three C-contiguous arrays of the same number of rows: the
        training set's X, Y and sample weights.
    rows : ndarray of intp
        Rows to gather, each in [0, len(sources[0])).
    outs : list of ndarray
        One writable C-contiguous array per source, of its dtype and row
        shape, with at least len(rows) rows (the first len(rows) are written),
        overlapping no source and no other output (ValueError).
    n_threads : int
    pad : int, default=0
        Above 0: sources[0] holds images (n, maps, height, width) and
        outs[0] images (n, maps, height + 2 pad, width + 2 pad); each image
        is written into the interior of its output image, and the border is
        left as it is (zeros where the caller zeroed the buffer once: a
        batch padded as it is gathered).

    Raises ValueError for an array that is not a NumPy array of plain data
    (no Python objects), that does not match or overlaps another, or for a
    row out of range.
    """
    cdef RowsJob job
    cdef Py_buffer src_view[MAX_ARRAYS]
    cdef Py_buffer out_view[MAX_ARRAYS]
    cdef Py_ssize_t m = rows.shape[0], n_src = 0, i, total = 0
    cdef int a, n_arrays = len(sources)
    if pad < 0:
        raise ValueError(f"pad must be at least 0, got {pad}")
    cdef int held = _hold_arrays(sources, outs, src_view, out_view, m, &n_src, pad)
    try:
        for i in range(m):
            if not 0 <= rows[i] < n_src:
                raise ValueError(f"row {rows[i]} out of range for {n_src} rows")
        if m == 0:
            return
        job.rows = &rows[0]
        job.m = m
        job.pad = pad
        if pad > 0:
            job.maps = src_view[0].shape[1]
            job.height = src_view[0].shape[2]
            job.line_bytes = src_view[0].shape[3] * src_view[0].itemsize
            job.out_line_bytes = out_view[0].shape[3] * out_view[0].itemsize
            job.out_map_bytes = out_view[0].shape[2] * job.out_line_bytes
            job.out_row_bytes = job.maps * job.out_map_bytes
            job.interior = pad * job.out_line_bytes + pad * out_view[0].itemsize
        job.first_unit[0] = 0
        for a in range(n_arrays):
            job.row_bytes[a] = src_view[a].len // n_src
            job.src[a] = <const char*> src_view[a].buf
            job.dst[a] = <char*> out_view[a].buf
            job.rows_per_unit[a] = max(1, ROWS_UNIT_BYTES // max(1, job.row_bytes[a]))
            job.first_unit[a + 1] = job.first_unit[a] + <int> unit_count(m, job.rows_per_unit[a])
            total += job.row_bytes[a] * m
        # with the GIL held: no other Python thread can change the rows
        # checked above while the team copies (its threads need no GIL)
        team_run(n_threads if total >= ROWS_MIN_PARALLEL else 1, job.first_unit[n_arrays],
                 rows_unit, &job)
    finally:
        _release_arrays(src_view, out_view, held)


ctypedef struct StepsJob:
    const char* src[MAX_ARRAYS]
    char* dst[MAX_ARRAYS]
    Py_ssize_t row_bytes[MAX_ARRAYS]
    int n_arrays
    const Py_ssize_t* starts
    const Py_ssize_t* lengths
    const Py_ssize_t* offsets  # packed row of sequence 0's step t
    Py_ssize_t n_seq
    Py_ssize_t seqs_per_unit


cdef void steps_unit(void* job, int u, int slot) noexcept nogil:
    cdef const StepsJob* j = <const StepsJob*> job
    cdef Py_ssize_t s, t, rb, lo = u * j.seqs_per_unit
    cdef Py_ssize_t hi = min(lo + j.seqs_per_unit, j.n_seq)
    cdef const char* src
    cdef int a
    for s in range(lo, hi):
        for a in range(j.n_arrays):
            rb = j.row_bytes[a]
            src = j.src[a] + j.starts[s] * rb
            for t in range(j.lengths[s]):
                copy_bytes(j.dst[a] + (j.offsets[t] + s) * rb, src + t * rb, rb)


def take_steps(list sources, const Py_ssize_t[::1] starts not None,
               const Py_ssize_t[::1] lengths not None,
               const Py_ssize_t[::1] batch_sizes not None, list outs, int n_threads):
    """Pack sequences step-major, all arrays in one team call: step t of
    sequence s (rows starts[s] + t of each source) goes to row
    sum(batch_sizes[:t]) + s of its output.

    Each sequence's steps are read as one run, where gathering the packed
    rows in their order reads a scattered row of each sequence in turn.

    Parameters
    ----------
    sources : list of ndarray
        Up to three C-contiguous arrays of the same number of rows: the
        steps of X, of per-step targets and of per-step weights.
    starts, lengths : ndarray of intp
        Each sequence's first row and number of steps, the lengths
        non-increasing.
    batch_sizes : ndarray of intp
        Sequences that have step t, for each t up to the longest length.
    outs : list of ndarray
        One writable C-contiguous array per source, of its dtype and row
        shape, with at least sum(lengths) rows, overlapping no source and no
        other output (ValueError).
    n_threads : int

    Raises ValueError for arrays as :func:`take_rows` does (overlaps
    included), a sequence out of the sources' rows, lengths that increase,
    or batch_sizes that do not count the lengths.
    """
    cdef StepsJob job
    cdef Py_buffer src_view[MAX_ARRAYS]
    cdef Py_buffer out_view[MAX_ARRAYS]
    cdef Py_ssize_t n_seq = starts.shape[0], n_steps = batch_sizes.shape[0]
    cdef Py_ssize_t n_src = 0, m = 0, s, t, having, total = 0
    cdef Py_ssize_t* offsets = NULL
    cdef int a, n_arrays = len(sources), held
    check_shape("lengths", lengths.shape, 1, (n_seq,))
    for s in range(n_seq):
        if lengths[s] < 0 or (s > 0 and lengths[s] > lengths[s - 1]):
            raise ValueError("the sequences' lengths must be non-negative and non-increasing")
        if lengths[s] > PY_SSIZE_T_MAX - m:
            raise ValueError("the sequences' lengths add up past the largest array")
        m += lengths[s]
    # batch_sizes[t] must be the count of lengths > t: packed rows then
    # cover 0..m-1 once each, so no two threads write one row
    having = n_seq
    for t in range(n_steps):
        while having > 0 and lengths[having - 1] <= t:
            having -= 1
        if batch_sizes[t] != having:
            raise ValueError("batch_sizes do not count the sequences' steps")
    if n_seq > 0 and lengths[0] != n_steps:
        raise ValueError("batch_sizes do not count the sequences' steps")
    held = _hold_arrays(sources, outs, src_view, out_view, m, &n_src)
    try:
        for s in range(n_seq):
            if starts[s] < 0 or lengths[s] > n_src - starts[s]:  # no overflow
                raise ValueError(f"sequence {s} (rows {starts[s]} + {lengths[s]}) out of "
                                 f"range for {n_src} rows")
        if m == 0:
            return
        offsets = <Py_ssize_t*> malloc(n_steps * sizeof(Py_ssize_t))
        if offsets == NULL:
            raise MemoryError()
        offsets[0] = 0
        for t in range(1, n_steps):
            offsets[t] = offsets[t - 1] + batch_sizes[t - 1]
        job.n_arrays = n_arrays
        for a in range(n_arrays):
            job.row_bytes[a] = src_view[a].len // n_src
            job.src[a] = <const char*> src_view[a].buf
            job.dst[a] = <char*> out_view[a].buf
            total += job.row_bytes[a] * m
        if total == 0:  # rows of no bytes
            return
        job.starts = &starts[0]
        job.lengths = &lengths[0]
        job.offsets = offsets
        job.n_seq = n_seq
        job.seqs_per_unit = max(1, n_seq * ROWS_UNIT_BYTES // total)
        # with the GIL held, as in take_rows
        team_run(n_threads if total >= ROWS_MIN_PARALLEL else 1,
                 <int> unit_count(n_seq, job.seqs_per_unit), steps_unit, &job)
    finally:
        free(offsets)
        _release_arrays(src_view, out_view, held)


cdef bint _same_rows(const Py_buffer* src, const Py_buffer* out, Py_ssize_t pad=0) noexcept:
    """Whether the two buffers hold rows of one item size and shape; with
    pad > 0, images (n, maps, height, width) and the same grown by pad on
    each side."""
    cdef int d
    if src.ndim < 1 or src.ndim != out.ndim or src.itemsize != out.itemsize:
        return False
    if pad > 0 and src.ndim != 4:
        return False
    for d in range(1, src.ndim):
        # pad bounded by the output's side first: 2 * pad cannot overflow
        if d >= 2 and (pad > out.shape[d] or out.shape[d] - 2 * pad != src.shape[d]):
            return False
        if d < 2 and src.shape[d] != out.shape[d]:
            return False
    return True


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
