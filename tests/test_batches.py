"""Batch sources: one class per kind of training data, chosen once by type,
each answering what a solver asks of its data."""
import numpy as np
import pytest
import scipy.sparse as sp

from fastbp._batches import (DenseBatches, PaddedImageBatches, SequenceBatches, SparseBatches,
                             batch_source)
from fastbp._images import PaddedImages
from fastbp._sequences import Ragged, StepWeights


def _sequences():
    """Three sequences of 2, 4 and 3 steps, targets per step, weights per sequence."""
    lengths = [2, 4, 3]
    X = Ragged(np.arange(18, dtype=np.float64).reshape(9, 2), lengths)
    Y = Ragged(np.arange(9, dtype=np.float64).reshape(9, 1), lengths)
    return X, Y, np.array([1.0, 2.0, 3.0])


def test_the_kind_is_decided_by_type():
    X = np.ones((5, 3))
    Y = np.ones((5, 1))
    assert isinstance(batch_source(X, Y), DenseBatches) and batch_source(X, Y).kind == "dense"
    assert isinstance(batch_source(sp.csr_matrix(X), Y), SparseBatches)
    assert batch_source(sp.csc_matrix(X), Y).kind == "sparse"
    source = batch_source(*_sequences())
    assert isinstance(source, SequenceBatches) and source.kind == "sequences"
    images = PaddedImages(np.ones((5, 1, 2, 2)), 1)
    assert isinstance(batch_source(images, Y), PaddedImageBatches)


def test_dense_source():
    X = np.asfortranarray(np.arange(12, dtype=np.float64).reshape(6, 2))
    Y, sw = np.arange(6.0).reshape(6, 1), np.arange(1.0, 7.0)
    source = batch_source(X, Y, sw)
    assert len(source) == 6 and source.batch_rows(4) == 4
    X_all, Y_all, sw_all = source.whole(np.float32)
    assert X_all.dtype == np.float32 and X_all.flags.c_contiguous
    np.testing.assert_array_equal(X_all, X.astype(np.float32))
    assert Y_all is Y and sw_all is sw
    part = source.subset(np.array([4, 1]))
    assert type(part) is DenseBatches
    np.testing.assert_array_equal(part.X, [[8, 9], [2, 3]])
    np.testing.assert_array_equal(part.sample_weight, [5, 2])
    assert source.predicted_rows() == (Y, sw)


def test_sparse_source_densifies_the_whole_batch():
    X = sp.random(7, 4, density=0.4, format="csr", random_state=0)
    source = batch_source(X, np.zeros((7, 1)))
    X_all, _, _ = source.whole(np.float64)
    assert isinstance(X_all, np.ndarray)
    np.testing.assert_array_equal(X_all, X.toarray())
    part = source.subset(np.array([6, 0]))
    assert part.kind == "sparse" and len(part) == 2
    np.testing.assert_array_equal(part.X.toarray(), X.toarray()[[6, 0]])


def test_sequence_source():
    X, Y, sw = _sequences()
    source = batch_source(X, Y, sw)
    assert len(source) == 3
    assert source.batch_rows(2) == 4 + 3  # the two longest sequences
    assert source.batch_rows(3) == 9
    batch, Y_all, sw_all = source.whole(np.float64)
    assert batch.data.shape[0] == 9
    np.testing.assert_array_equal(batch.batch_sizes, [3, 3, 2, 1])
    # the packed rows are the steps, step-major, longest sequence first
    np.testing.assert_array_equal(Y_all.ravel(), [2, 6, 0, 3, 7, 1, 4, 8, 5])
    np.testing.assert_array_equal(sw_all, [2, 3, 1, 2, 3, 1, 2, 3, 2])
    packed, Y_two, _ = source.take(np.array([0, 2]), source.buffers(2))
    assert packed.data.shape[0] == 5
    np.testing.assert_array_equal(Y_two.ravel(), [6, 0, 7, 1, 8])
    part = source.subset(np.array([2, 0]))
    np.testing.assert_array_equal(part.X.lengths, [3, 2])
    np.testing.assert_array_equal(part.Y.data.ravel(), [6, 7, 8, 0, 1])
    Y_rows, weights = source.predicted_rows()
    np.testing.assert_array_equal(Y_rows, Y.data)
    np.testing.assert_array_equal(weights, [1, 1, 2, 2, 2, 2, 3, 3, 3])


def test_sequence_source_with_step_weights():
    X, Y, _ = _sequences()
    steps = StepWeights(np.arange(1.0, 10.0), X.lengths)
    source = batch_source(X, Y, steps)
    np.testing.assert_array_equal(source.predicted_rows()[1], np.arange(1.0, 10.0))
    part = source.subset(np.array([1]))
    assert isinstance(part.sample_weight, StepWeights)
    np.testing.assert_array_equal(part.sample_weight.data, [3, 4, 5, 6])


@pytest.mark.parametrize("weights, per_step_targets", [
    ("none", True), ("per sequence", True), ("per step", True),
    ("none", False), ("per sequence", False)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sequences_pack_into_their_buffers_alike_at_every_thread_count(
        weights, per_step_targets, dtype, monkeypatch):
    """Each packed row is the step of X it names (``step_rows``), with its
    target and weight; per-step X, targets and per-step weights are
    gathered in one team call, sequence by sequence."""
    import fastbp._gather

    team_calls = []
    take_steps = fastbp._gather._sparse.take_steps

    def counted(sources, *args):
        team_calls.append(len(sources))
        return take_steps(sources, *args)

    monkeypatch.setattr(fastbp._gather._sparse, "take_steps", counted)
    rng = np.random.default_rng(3)
    lengths = np.array([5, 2, 7, 7, 1, 4])
    X = Ragged(rng.random((lengths.sum(), 3)).astype(dtype), lengths)
    target_lengths = lengths if per_step_targets else np.ones_like(lengths)
    Y = Ragged(rng.random((target_lengths.sum(), 2)).astype(dtype), target_lengths)
    sw = {"none": None, "per sequence": rng.random(len(lengths)).astype(dtype),
          "per step": StepWeights(rng.random(lengths.sum()).astype(dtype), lengths)}[weights]
    source = batch_source(X, Y, sw)
    idx = np.array([3, 1, 5, 4])  # 14 rows of the 23 the buffers hold
    for n_threads in (1, 2, 3):
        team_calls.clear()
        buffers = source.buffers(len(idx))
        for array in buffers.values():
            array.fill(np.nan)
        batch, Y_b, sw_b = source.take(idx, buffers, n_threads)
        assert np.shares_memory(batch.data, buffers["data"])
        rows = batch.step_rows
        sequence = np.searchsorted(X.starts, rows, side="right") - 1  # of each row
        np.testing.assert_array_equal(batch.data, X.data[rows])
        if per_step_targets:
            np.testing.assert_array_equal(Y_b, Y.data[rows])
        else:
            np.testing.assert_array_equal(Y_b, Y.data[idx[batch.order]])
        if weights == "none":
            assert sw_b is None
        elif weights == "per step":
            np.testing.assert_array_equal(sw_b, sw.data[rows])
        else:
            np.testing.assert_array_equal(
                sw_b, sw[sequence] if per_step_targets else sw[idx[batch.order]])
        assert team_calls == ([3 if weights == "per step" else 2] if per_step_targets else [])
        # the buffers' rows past the batch's are left alone
        n_rows = len(batch.step_rows)
        assert n_rows == 14 and np.isnan(buffers["data"][n_rows:]).all()


def test_step_weights_need_per_step_targets():
    X, _, _ = _sequences()
    Y = Ragged(np.arange(3.0).reshape(3, 1), [1, 1, 1])  # one target per sequence
    source = batch_source(X, Y, StepWeights(np.ones(9), X.lengths))
    with pytest.raises(ValueError, match="Per-step weights need one target per step"):
        source.take(np.array([0, 1]), source.buffers(2), 2)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_step_weights_need_the_lengths_of_their_sequences(n_threads):
    X, _, _ = _sequences()
    Y = Ragged(np.arange(9.0).reshape(9, 1), X.lengths)
    lengths = X.lengths[::-1].copy()  # as many steps, other sequences'
    assert lengths.sum() == X.lengths.sum() and not np.array_equal(lengths, X.lengths)
    source = batch_source(X, Y, StepWeights(np.ones(9), lengths))
    with pytest.raises(ValueError, match="lengths of the sequences they weigh"):
        source.take(np.array([0, 1]), source.buffers(2), n_threads)


def test_networks_count_the_rows_of_their_batches():
    # what a workspace for one batch (backprop, gradient checks) is sized by
    from fastbp._network import Network
    from fastbp._sequences import RNNNetwork

    assert Network.batch_rows(np.ones((5, 2))) == 5
    X, Y, _ = _sequences()
    packed, _, _ = batch_source(X, Y).whole(np.float64)
    assert RNNNetwork.batch_rows(packed) == 9  # steps, not sequences


def test_dense_and_sparse_sources_gather_batches_into_their_buffers():
    X = np.arange(24, dtype=np.float64).reshape(8, 3)
    Y, sw = np.arange(8.0).reshape(8, 1), np.arange(1.0, 9.0)
    idx = np.array([5, 0, 7])
    for data in (X, sp.csc_matrix(X)):
        source = batch_source(data, Y, sw)
        buffers = source.buffers(4, np.float32)
        X_b, Y_b, sw_b = source.take(idx, buffers)
        # a short batch fills the head of each buffer, in the fit's dtype
        assert X_b.dtype == np.float32 and np.shares_memory(X_b, buffers[0])
        assert np.shares_memory(Y_b, buffers[1]) and np.shares_memory(sw_b, buffers[2])
        np.testing.assert_array_equal(X_b, X[idx])
        np.testing.assert_array_equal(Y_b, Y[idx])
        np.testing.assert_array_equal(sw_b, sw[idx])
    assert batch_source(X, Y).buffers(4)[2] is None  # no weights, no weight buffer


def test_only_contiguous_dense_rows_are_sliced_in_place():
    X, Y = np.arange(12.0).reshape(6, 2), np.zeros((6, 1))
    source = batch_source(X, Y)
    assert source.sliceable
    X_b, Y_b, sw_b = source.slice(slice(2, 5))
    assert np.shares_memory(X_b, X) and sw_b is None
    np.testing.assert_array_equal(X_b, X[2:5])
    assert not batch_source(np.asfortranarray(X), Y).sliceable
    assert not batch_source(sp.csr_matrix(X), Y).sliceable
    assert not batch_source(*_sequences()).sliceable


def _at_offset(shape, dtype, offset):
    """A C-contiguous array of zeros whose data starts `offset` bytes past a
    4 KiB boundary."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.zeros(nbytes + 8192, np.uint8)
    start = (offset - raw.ctypes.data) % 4096
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def test_dense_rows_are_gathered_on_the_team_at_any_offset():
    """The gather of same-dtype rows (4 KiB images, their targets and
    weights) in one team call: the rows asked for, at every thread count,
    whatever the buffers' offsets against the data (some offsets modulo
    4 KiB are the slow ones of a `rep movsb` copy on some CPUs)."""
    rng = np.random.default_rng(0)
    n = 40
    idx = np.array([39, 0, 7, 7, 22, 13, 5])
    for x_offset, buffer_offset in [(0, 0), (0, 4), (16, 20), (64, 4090), (8, 0)]:
        X = _at_offset((n, 1, 32, 32), np.float32, x_offset)
        X[...] = rng.random(X.shape, dtype=np.float32)
        Y = rng.random((n, 10), dtype=np.float32)
        sw = rng.random(n, dtype=np.float32)
        source = batch_source(X, Y, sw)
        buffers = (_at_offset((10, 1, 32, 32), np.float32, buffer_offset),
                   np.full((10, 10), np.nan, np.float32), np.full(10, np.nan, np.float32))
        for n_threads in (1, 2, 3):
            X_b, Y_b, sw_b = source.take(idx, buffers, n_threads)
            assert X_b.shape == (len(idx), 1, 32, 32) and np.shares_memory(X_b, buffers[0])
            np.testing.assert_array_equal(X_b, X[idx])
            np.testing.assert_array_equal(Y_b, Y[idx])
            np.testing.assert_array_equal(sw_b, sw[idx])
        # the rows past the short batch are left alone
        assert np.isnan(buffers[1][len(idx):]).all() and np.isnan(buffers[2][len(idx):]).all()


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_take_steps_packs_each_sequence_step_major(n_threads):
    """Step t of sequence s lands in row sum(batch_sizes[:t]) + s of each
    output, for ragged and uniform lengths, rows of any size, and large
    enough arrays to run on the team; nothing past the packed rows."""
    from fastbp._kernels import _sparse

    rng = np.random.default_rng(5)
    for n_src, lengths, row in [(40, [7, 5, 5, 2, 1], (3,)), (30, [4, 4, 4], ()),
                                (5000, [300, 260, 260, 90, 3, 1], (65,)), (9, [0], (2,))]:
        lengths = np.array(lengths, dtype=np.intp)
        starts = rng.choice(n_src - lengths.max(), len(lengths), replace=False).astype(np.intp)
        batch_sizes = np.array([(lengths > t).sum() for t in range(lengths.max())],
                               dtype=np.intp)
        X = rng.random((n_src,) + row, dtype=np.float32)
        Y = rng.random((n_src, 2)).astype(np.float64)
        m = lengths.sum()
        outs = [np.full((m + 2,) + row, np.nan, np.float32), np.full((m + 2, 2), np.nan)]
        _sparse.take_steps([X, Y], starts, lengths, batch_sizes, outs, n_threads)
        expected = [s0 + t for t in range(len(batch_sizes))
                    for s0, n in zip(starts, lengths) if n > t]
        np.testing.assert_array_equal(outs[0][:m], X[expected])
        np.testing.assert_array_equal(outs[1][:m], Y[expected])
        assert np.isnan(outs[0][m:]).all() and np.isnan(outs[1][m:]).all()


def test_take_steps_copies_rows_of_no_bytes_and_three_arrays_on_the_team():
    from fastbp._kernels import _sparse

    starts, lengths, sizes = np.array([0, 4]), np.array([3, 2]), np.array([2, 2, 1])
    empty = np.empty((9, 0), np.float32)
    out = np.empty((5, 0), np.float32)
    _sparse.take_steps([empty], starts, lengths, sizes, [out], 2)  # nothing to copy
    rng = np.random.default_rng(2)
    n_src, lengths = 3000, np.array([900, 700, 700, 20])
    starts = np.array([2000, 0, 1000, 900])
    sizes = np.array([(lengths > t).sum() for t in range(900)])
    sources = [rng.random((n_src, 40), dtype=np.float32), rng.random((n_src, 40)),
               rng.random(n_src)]  # over 32 KiB: on the team
    outs = [np.empty((lengths.sum(),) + a.shape[1:], a.dtype) for a in sources]
    _sparse.take_steps(sources, starts, lengths, sizes, outs, 2)
    rows = [s0 + t for t in range(900) for s0, n in zip(starts, lengths) if n > t]
    for source, out in zip(sources, outs):
        np.testing.assert_array_equal(out, source[rows])


def test_gather_steps_packs_what_the_team_cannot_copy_through_numpy():
    from fastbp._gather import gather_steps

    X = np.arange(24).astype(object).reshape(12, 2)
    W = np.arange(12.0)
    starts, lengths, sizes = np.array([6, 0, 9]), np.array([3, 2, 2]), np.array([3, 3, 1])
    outs = [np.empty((8, 2), object), np.full(8, np.nan)]
    packed_X, packed_W = gather_steps([X, W], starts, lengths, sizes, outs, 2)
    rows = [6, 0, 9, 7, 1, 10, 8]
    assert packed_X.shape == (7, 2) and np.shares_memory(packed_W, outs[1])
    np.testing.assert_array_equal(packed_X, X[rows])
    np.testing.assert_array_equal(packed_W, W[rows])


def test_take_steps_rejects_sequences_that_do_not_pack_and_writes_nothing():
    from fastbp._kernels import _sparse

    X = np.arange(40, dtype=np.float32).reshape(20, 2)
    out = np.full((8, 2), -1, np.float32)
    starts, lengths, sizes = np.array([0, 10, 16]), np.array([4, 3, 1]), np.array([3, 2, 2, 1])
    bad = [
        (starts, np.array([3, 4, 1]), sizes, "non-increasing"),
        (starts, np.array([4, 3, -1]), sizes, "non-increasing"),
        (starts, lengths, np.array([3, 2, 2]), "do not count"),
        (starts, lengths, np.array([3, 2, 2, 1, 1]), "do not count"),
        (starts, lengths, np.array([3, 3, 2, 1]), "do not count"),
        (starts, lengths, np.array([2, 2, 2, 2]), "do not count"),
        (np.array([0, 10, 20]), lengths, sizes, "out of range"),
        (np.array([-1, 10, 16]), lengths, sizes, "out of range"),
        (np.array([0, 18, 16]), lengths, sizes, "out of range"),
    ]
    for st, ln, bs, message in bad:
        with pytest.raises(ValueError, match=message):
            _sparse.take_steps([X], st, ln, bs, [out], 2)
    huge = np.iinfo(np.intp).max - 2  # start + length would wrap around
    with pytest.raises(ValueError, match="out of range"):
        _sparse.take_steps([X], np.array([0, 10, huge]), lengths, sizes, [out], 2)
    with pytest.raises(ValueError, match="add up"):
        _sparse.take_steps([X], np.array([0, 0]), np.array([huge, huge]), np.array([2]),
                           [out], 2)
    with pytest.raises(ValueError, match="rows gathered"):
        _sparse.take_steps([X], starts, lengths, sizes, [out[:7]], 2)
    with pytest.raises(ValueError, match="overlaps"):
        _sparse.take_steps([X], starts, lengths, sizes, [X[:8]], 2)
    with pytest.raises(ValueError, match="lengths"):
        _sparse.take_steps([X], starts, lengths[:2], sizes, [out], 2)
    with pytest.raises(ValueError, match="dtype or row shape"):
        _sparse.take_steps([X], starts, lengths, sizes, [out.astype(np.float64)], 2)
    assert (out == -1).all()
    _sparse.take_steps([X], starts, lengths, sizes, [out], 2)
    np.testing.assert_array_equal(out, X[[0, 10, 16, 1, 11, 2, 12, 3]])


def test_take_rows_rejects_what_it_cannot_copy_and_writes_nothing():
    from fastbp._kernels import _sparse

    X, Y = np.arange(24, dtype=np.float32).reshape(6, 4), np.arange(6, dtype=np.float32)
    rows = np.array([1, 5], dtype=np.intp)
    out_X, out_Y = np.full((2, 4), -1, np.float32), np.full(2, -1, np.float32)
    bad = [
        ([X], rows, [np.zeros((2, 4), np.float64)], "dtype or row shape"),
        ([X], rows, [np.zeros((2, 3), np.float32)], "dtype or row shape"),
        ([X], rows, [np.zeros((1, 4), np.float32)], "rows gathered"),
        ([X, Y[:5]], rows, [out_X, np.zeros(2, np.float32)], "rows gathered"),
        ([X], np.array([1, 6], dtype=np.intp), [out_X], "out of range"),
        ([X], np.array([-1, 0], dtype=np.intp), [out_X], "out of range"),
        ([X[:, ::2]], rows, [np.zeros((2, 2), np.float32)], "C-contiguous"),
        ([X], rows, [np.zeros((4, 2), np.float32).T], "C-contiguous"),
        ([X, Y], rows, [out_X], "1 to 3 arrays"),
        ([X] * 4, rows, [out_X] * 4, "1 to 3 arrays"),
        ([X.astype(object)], rows, [np.zeros((2, 4), object)], "plain data"),
        ([memoryview(X)], rows, [out_X], "plain data"),
    ]
    for sources, idx, outs, message in bad:
        with pytest.raises(ValueError, match=message):
            _sparse.take_rows(sources, idx, outs, 2)
    for sources, outs in [([X], [X[2:4]]), ([X, Y], [out_X, Y[:2]]),
                          ([X, X], [out_X, out_X])]:
        with pytest.raises(ValueError, match="overlaps"):
            _sparse.take_rows(sources, rows, outs, 2)
    read_only = np.zeros((2, 4), np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        _sparse.take_rows([X], rows, [read_only], 2)
    with pytest.raises(TypeError):
        _sparse.take_rows([X], None, [out_X], 2)
    assert (out_X == -1).all() and (out_Y == -1).all()
    _sparse.take_rows([X, Y], rows, [out_X, out_Y], 2)
    np.testing.assert_array_equal(out_X, X[rows])
    np.testing.assert_array_equal(out_Y, Y[rows])


def test_object_rows_are_gathered_by_numpy():
    """Rows of Python objects go through np.take, which counts their
    references; a byte copy would not."""
    X = np.array([[str(i), i] for i in range(5)], dtype=object)
    Y = np.arange(5.0).reshape(5, 1).astype(object)
    source = batch_source(X, Y)
    X_b, Y_b, _ = source.take(np.array([4, 1]), source.buffers(2))
    del X, source
    assert X_b.tolist() == [["4", 4], ["1", 1]] and Y_b.ravel().tolist() == [4.0, 1.0]


def _padded(images, pad):
    """NumPy's zero padding of the last two axes: the reference."""
    return np.pad(images, [(0, 0), (0, 0), (pad, pad), (pad, pad)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_take_rows_pads_images_into_the_interior_and_leaves_the_border(dtype):
    from fastbp._kernels import _sparse

    rng = np.random.default_rng(0)
    # 3 maps of 5 x 4, rows large enough (with 40 images) to run on the team
    images = rng.random((40, 3, 5, 4)).astype(dtype)
    Y = rng.random((40, 2)).astype(dtype)
    idx = np.array([39, 0, 7, 7, 22, 13, 5] * 20, dtype=np.intp)
    for pad in (1, 2):
        for n_threads in (1, 2, 3):
            out = np.full((len(idx) + 2, 3, 5 + 2 * pad, 4 + 2 * pad), 7, dtype)
            out_Y = np.zeros((len(idx), 2), dtype)
            _sparse.take_rows([images, Y], idx, [out, out_Y], n_threads, pad)
            inner = (slice(None), slice(None), slice(pad, -pad), slice(pad, -pad))
            np.testing.assert_array_equal(out[:len(idx)][inner], images[idx])
            np.testing.assert_array_equal(out_Y, Y[idx])
            border = np.ones(out.shape, bool)
            border[inner] = False
            assert (out[:len(idx)][border[:len(idx)]] == 7).all()
            assert (out[len(idx):] == 7).all()  # past the batch: untouched


def test_take_rows_checks_the_padded_shape():
    from fastbp._kernels import _sparse

    images = np.ones((4, 1, 3, 3), np.float32)
    rows = np.array([0, 3], dtype=np.intp)
    out = np.full((2, 1, 7, 7), -1, np.float32)
    bad = [
        ([images], [np.zeros((2, 1, 7, 6), np.float32)], 2, "padded by 2"),
        ([images], [np.zeros((2, 1, 3, 3), np.float32)], 2, "padded by 2"),
        ([images], [np.zeros((2, 2, 7, 7), np.float32)], 2, "padded by 2"),
        ([images.reshape(4, 9)], [np.zeros((2, 13), np.float32)], 2, "padded by 2"),
        ([images], [np.zeros((2, 1, 7, 7), np.float64)], 2, "dtype"),
        ([images], [out], -1, "at least 0"),
        # 2 * pad would wrap around to -2: refused, not written out of bounds
        ([images], [np.zeros((2, 1, 1, 1), np.float32)], 2**63 - 1, "padded by"),
        ([images], [out], 2**62, "padded by"),
    ]
    for sources, outs, pad, message in bad:
        with pytest.raises(ValueError, match=message):
            _sparse.take_rows(sources, rows, outs, 2, pad)
    assert (out == -1).all()


def test_padded_images_stand_for_their_padded_copy():
    rng = np.random.default_rng(1)
    raw = rng.random((6, 2, 3, 4))
    images = PaddedImages(raw, 2)
    assert images.shape == (6, 2, 7, 8) and images.dtype == np.float64 and len(images) == 6
    np.testing.assert_array_equal(images.padded(), _padded(raw, 2))
    assert images.padded(np.float32).dtype == np.float32
    assert images.padded().ctypes.data % 64 == 0  # on a cache line, as fastbp's buffers
    part = images[np.array([4, 1])]
    assert isinstance(part, PaddedImages) and part.pad == 2
    np.testing.assert_array_equal(part.images, raw[[4, 1]])
    single = images.astype(np.float32)
    assert single.dtype == np.float32 and single.shape == images.shape
    assert images.astype(np.float64, copy=False).images is images.images
    for bad_raw, pad in [(raw.reshape(6, 24), 2), (raw, 0)]:
        with pytest.raises(ValueError, match="PaddedImages"):
            PaddedImages(bad_raw, pad)
    with pytest.raises(TypeError):
        PaddedImages(raw, 1.9)  # not quietly one
    with pytest.raises(TypeError, match="index array or a slice"):
        images[0]
    np.testing.assert_array_equal(np.asarray(images), _padded(raw, 2))
    with pytest.raises(ValueError, match="without a copy"):
        np.asarray(images, copy=False)
    # the output's shape is checked on both paths (the team's, from 32 KB
    # of images, and NumPy's, which would broadcast one image to every row)
    many = PaddedImages(np.ones((20, 1, 28, 28), np.float32), 2)
    for source, out in [(many, np.zeros((25, 1, 32, 32), np.float32)),
                        (many[:1], np.zeros((6, 1, 32, 32), np.float32)),
                        (many[:1], np.zeros((1, 2, 32, 32), np.float32))]:
        for n_threads in (1, 2):
            with pytest.raises(ValueError, match="padded_into needs"):
                source.padded_into(out, n_threads)
            assert (out == 0).all()
    out = np.full((20, 1, 32, 32), 7, np.float32)
    assert many.padded_into(out, 2) is out
    assert (out[:, :, 2:30, 2:30] == 1).all() and (out[:, :, :2] == 7).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_padded_image_batches_pad_each_batch_as_they_gather_it(dtype):
    """The batch is the padded images' rows whether the team copies them
    (float64: every array of the buffers' dtype) or NumPy does (float32
    buffers: the targets and weights stay float64, which the team does not
    convert; the images are converted once, by ``buffers``)."""
    rng = np.random.default_rng(2)
    raw = rng.random((30, 1, 4, 4))
    Y, sw = rng.random((30, 3)), rng.random(30)
    source = batch_source(PaddedImages(raw, 2), Y, sw)
    assert not source.sliceable and len(source) == 30
    buffers = source.buffers(8, dtype)
    assert buffers[0].shape == (8, 1, 8, 8) and (buffers[0] == 0).all()
    assert source.X.dtype == dtype
    padded = _padded(raw, 2).astype(dtype)
    for idx in (np.array([29, 0, 3, 3, 17, 8, 1, 2]), np.array([5, 6, 7])):
        X_b, Y_b, sw_b = source.take(idx, buffers, 2)
        assert np.shares_memory(X_b, buffers[0])
        np.testing.assert_array_equal(X_b, padded[idx])
        np.testing.assert_array_equal(Y_b, Y[idx].astype(dtype))
        np.testing.assert_array_equal(sw_b, sw[idx].astype(dtype))
    X_all, Y_all, _ = source.whole(np.float64)
    np.testing.assert_array_equal(X_all, padded.astype(np.float64))
    held_out = source.subset(np.array([4, 9]))
    assert isinstance(held_out, PaddedImageBatches) and isinstance(held_out.X, PaddedImages)
    np.testing.assert_array_equal(np.asarray(held_out.X), padded[[4, 9]])
