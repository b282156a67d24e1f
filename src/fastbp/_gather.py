"""Gathering rows of training data into a batch's buffers."""
import numpy as np
import scipy.sparse as sp

from ._kernels import _sparse


def gathers_in_place(src, out):
    """Whether _sparse.take_rows and take_steps copy rows of ``src`` into
    ``out`` as they are: C-contiguous ndarrays of one dtype of plain data, the output
    writable (else NumPy converts)."""
    return (type(src) is np.ndarray and type(out) is np.ndarray and src.dtype == out.dtype
            and not src.dtype.hasobject and src.flags.c_contiguous
            and out.flags.c_contiguous and out.flags.writeable)


def take_rows(X, idx, out):
    """Gather rows ``idx`` of X (ndarray, or CSR from ``_batches._as_csr``)
    into ``out`` without allocating."""
    if sp.issparse(X):
        _sparse.csr_rows_to_dense(X.data, X.indices, X.indptr, idx, out)
        return out
    # mode="clip": the indices are in range by construction, and the default
    # mode="raise" copies through a temporary buffer (2.5x slower, measured)
    return np.take(X, idx, axis=0, out=out, mode="clip")


def gather(sources, idx, outs, n_threads, pad=0):
    """Rows ``idx`` of each source into the first ``len(idx)`` rows of its
    output; returns those rows of each output. Arrays that allow it are
    gathered in one call on ``n_threads`` of fastbp's team: the rows are
    scattered cache misses, and the cores wait on them together. With
    ``pad``, the first source's images (n, maps, h, w) go into the interior
    of its output's (n, maps, h + 2 pad, w + 2 pad), whose border is left
    as it is."""
    m = len(idx)
    if all(map(gathers_in_place, sources, outs)):
        _sparse.take_rows(list(sources), np.ascontiguousarray(idx, dtype=np.intp), list(outs),
                          n_threads, pad)
        return [out if m == len(out) else out[:m] for out in outs]
    outs = [out if m == len(out) else out[:m] for out in outs]
    if pad:
        outs[0][:, :, pad:-pad, pad:-pad] = np.take(sources[0], idx, axis=0)
        return [outs[0]] + [take_rows(src, idx, out) for src, out in zip(sources[1:], outs[1:])]
    return [take_rows(src, idx, out) for src, out in zip(sources, outs)]


def gather_steps(sources, starts, lengths, batch_sizes, outs, n_threads):
    """Sequences' steps packed step-major (``_sparse.take_steps``: step t of
    sequence s, rows ``starts[s] + t`` of each source, into row
    ``sum(batch_sizes[:t]) + s``); returns the packed rows of each output.
    Arrays the team cannot copy as they are go through NumPy's take."""
    m = int(np.sum(lengths))
    if all(map(gathers_in_place, sources, outs)):
        _sparse.take_steps(list(sources), np.ascontiguousarray(starts, dtype=np.intp),
                           np.ascontiguousarray(lengths, dtype=np.intp),
                           np.ascontiguousarray(batch_sizes, dtype=np.intp), list(outs),
                           n_threads)
        return [out if m == len(out) else out[:m] for out in outs]
    rows = packed_rows(np.asarray(starts), batch_sizes)[1]
    return [take_rows(src, rows, out if m == len(out) else out[:m])
            for src, out in zip(sources, outs)]


def packed_rows(starts, batch_sizes):
    """(sequence, source row) of each packed row, as ``gather_steps`` packs
    them: packed row sum(batch_sizes[:t]) + s is step t of sequence s,
    source row starts[s] + t."""
    n_rows = int(np.sum(batch_sizes))
    step = np.repeat(np.arange(len(batch_sizes)), batch_sizes)
    first = np.cumsum(batch_sizes) - batch_sizes
    sequence = np.arange(n_rows) - np.repeat(first, batch_sizes)
    return sequence, starts[sequence] + step
