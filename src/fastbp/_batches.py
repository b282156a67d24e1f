"""Training data as a source of batches, one class per kind of data: dense
rows, images padded as they are gathered, sparse rows, sequences. A solver
asks the source what it needs (how many samples, how many rows a batch of
them fills, one batch of everything, a subset) instead of telling the kinds
apart by their attributes.

Build one with :func:`batch_source`; it decides the kind once, by type.
"""
import numpy as np
import scipy.sparse as sp

from ._gather import gather
from ._images import PaddedImages
from ._memory import aligned_empty, aligned_zeros
from ._sequences import Ragged, StepWeights


def _as_csr(X, dtype):
    """X as a CSR matrix in ``dtype`` with contiguous arrays, what
    ``_gather.take_rows`` gathers from (one conversion per fit)."""
    X = X.tocsr().astype(dtype, copy=False)
    # the kernel takes indices and indptr of one dtype, int32 or int64
    index_dtype = np.int32 if X.indices.dtype == X.indptr.dtype == np.int32 else np.int64
    X.data = np.ascontiguousarray(X.data)
    X.indices = np.ascontiguousarray(X.indices, dtype=index_dtype)
    X.indptr = np.ascontiguousarray(X.indptr, dtype=index_dtype)
    return X


class DenseBatches:
    """Dense rows: X an ndarray of shape (n_samples, ...), Y an ndarray of
    shape (n_samples, n_outputs), one weight per sample (or None).

    Attributes
    ----------
    kind : str
        ``"dense"``, ``"sparse"`` or ``"sequences"``.
    X, Y, sample_weight
        The data, as given.
    """

    kind = "dense"
    _new_input_buffer = staticmethod(aligned_empty)

    def __init__(self, X, Y, sample_weight=None):
        self.X, self.Y, self.sample_weight = X, Y, sample_weight

    def __len__(self):
        """Number of samples (of sequences, for sequence data)."""
        return self.X.shape[0]

    def batch_rows(self, n_samples):
        """Rows that a batch of at most ``n_samples`` samples fills: the
        size of the network workspace it needs."""
        return n_samples

    def whole(self, dtype):
        """Every sample as one batch ``(X, Y, sample_weight)``, ready for
        ``Network.loss_and_grad`` (full-batch solvers)."""
        return np.ascontiguousarray(self.X, dtype=dtype), self.Y, self.sample_weight

    @property
    def sliceable(self):
        """Whether :meth:`slice` gives batches of consecutive samples as
        views (dense C-contiguous rows), with no gathering."""
        return self.X.flags.c_contiguous

    def slice(self, rows):
        """The samples of the slice ``rows`` as one batch of views (only
        where :attr:`sliceable`)."""
        sw = None if self.sample_weight is None else self.sample_weight[rows]
        return self.X[rows], self.Y[rows], sw

    def buffers(self, n_samples, dtype=None):
        """Arrays that :meth:`take` gathers batches of up to ``n_samples``
        into, in ``dtype`` (default: X's); allocated once per fit so that
        the batch loop allocates none."""
        dtype = self.X.dtype if dtype is None else dtype
        X_buf = self._new_input_buffer((n_samples,) + self.X.shape[1:], dtype)
        Y_buf = aligned_empty((n_samples, self.Y.shape[1]), dtype)
        sw_buf = None if self.sample_weight is None else aligned_empty(n_samples, dtype)
        return X_buf, Y_buf, sw_buf

    def take(self, idx, buffers, n_threads=1):
        """Samples ``idx`` gathered as one batch ``(X, Y, sample_weight)``
        into ``buffers`` (of :meth:`buffers`), on ``n_threads`` threads."""
        X_rows, pad = self._input_rows()
        sources = [X_rows, self.Y]
        outs = list(buffers[:2])
        if self.sample_weight is not None:
            sources.append(self.sample_weight)
            outs.append(buffers[2])
        outs = gather(sources, idx, outs, n_threads, pad=pad)
        return outs[0], outs[1], outs[2] if len(outs) > 2 else None

    def _input_rows(self):
        """(the array :meth:`take` gathers X's rows from, the pad of its
        images: 0 for rows copied as they are)."""
        return self.X, 0

    def subset(self, idx):
        """The samples ``idx``, as a source of the same kind."""
        sw = None if self.sample_weight is None else self.sample_weight[idx]
        return type(self)(self.X[idx], self.Y[idx], sw)

    def predicted_rows(self):
        """``(Y, sample_weight)`` with one row (one weight) per output row
        of ``Network.predict``: what a validation score compares."""
        return self.Y, self.sample_weight


class PaddedImageBatches(DenseBatches):
    """Images padded as they are gathered: X a :class:`PaddedImages`. Each
    batch buffer is zeroed once; the gathers write only its interior."""

    sliceable = False
    _new_input_buffer = staticmethod(aligned_zeros)

    def whole(self, dtype):
        return self.X.padded(dtype), self.Y, self.sample_weight

    def buffers(self, n_samples, dtype=None):
        if dtype is not None:
            # converted once per fit, to what the gather copies as it is
            self.X = self.X.astype(dtype, copy=False)
        return super().buffers(n_samples, dtype)

    def _input_rows(self):
        return self.X.images, self.X.pad


class SparseBatches(DenseBatches):
    """Sparse rows: X a scipy sparse matrix, densified one batch at a time."""

    kind = "sparse"
    sliceable = False

    def whole(self, dtype):
        return DenseBatches(self.X.toarray(), self.Y, self.sample_weight).whole(dtype)

    def buffers(self, n_samples, dtype=None):
        # converted once per fit, to what the gather kernel reads
        self.X = _as_csr(self.X, self.X.dtype if dtype is None else dtype)
        return super().buffers(n_samples, dtype)


class SequenceBatches(DenseBatches):
    """Sequences: X a :class:`~fastbp._sequences.Ragged` of steps, Y a Ragged
    of one target row per step or per sequence, sample_weight one weight per
    sequence or a :class:`~fastbp._sequences.StepWeights` of one per step.
    Batches are packed (:class:`~fastbp._sequences.PackedBatch`)."""

    kind = "sequences"
    sliceable = False

    def batch_rows(self, n_samples):
        return self.X.max_rows(n_samples)

    def whole(self, dtype):
        return self.X.batch(np.arange(len(self.X)), self.Y, self.sample_weight)

    def buffers(self, n_samples, dtype=None):
        """Arrays that :meth:`take` packs batches of ``n_samples`` into (in
        the data's dtype)."""
        return self.X.batch_buffers(n_samples, self.Y, self.sample_weight)

    def take(self, idx, buffers=None, n_threads=1):
        """Sequences ``idx`` packed as one batch ``(X, Y, sample_weight)``,
        gathered on ``n_threads``."""
        return self.X.batch(idx, self.Y, self.sample_weight, buffers, n_threads)

    def subset(self, idx):
        sw = None if self.sample_weight is None else self.sample_weight[idx]
        return SequenceBatches(self.X.subset(idx), self.Y.subset(idx), sw)

    def predicted_rows(self):
        sw = self.sample_weight
        if sw is not None:
            # one weight per predicted row, as the training loss weighs them
            # (class weights of per-step targets come per step already)
            sw = sw.data if isinstance(sw, StepWeights) else np.repeat(np.asarray(sw),
                                                                       self.Y.lengths)
        return self.Y.data, sw


def batch_source(X, Y, sample_weight=None):
    """The batch source of the kind of ``X``.

    Parameters
    ----------
    X : ndarray, scipy sparse matrix, Ragged or PaddedImages
        Input as the estimator's ``_prepare_fit`` gives it.
    Y : ndarray or Ragged
        Encoded targets.
    sample_weight : ndarray, StepWeights or None

    Returns
    -------
    source : DenseBatches, PaddedImageBatches, SparseBatches or SequenceBatches
    """
    if isinstance(X, Ragged):
        return SequenceBatches(X, Y, sample_weight)
    if isinstance(X, PaddedImages):
        return PaddedImageBatches(X, Y, sample_weight)
    if sp.issparse(X):
        return SparseBatches(X, Y, sample_weight)
    return DenseBatches(X, Y, sample_weight)
