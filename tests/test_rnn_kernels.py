"""Tests of the vanilla-RNN time-loop kernels (fastbp._kernels._rnn).

Kernels are compared with the NumPy twins in _twins_rnn.py, float32 with the
float64 kernels, and the whole backward pass with central differences of an
independent per-sequence NumPy forward.
"""
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from threadpoolctl import threadpool_limits

import _twins_rnn as twin
from _numeric import central_difference
from fastbp._kernels import _dense, _openmp, _rnn

ACTS = twin.ACTIVATIONS
BATCH_SIZES = {
    "ragged": [5, 5, 3, 1],
    "equal": [4, 4, 4, 4, 4],
    "shrink_each_step": [6, 5, 4, 3, 2, 1],
    "one_step": [3],
    "one_sequence": [1, 1, 1, 1],
    "mixed": [7, 7, 7, 4, 4, 2, 2, 2, 1],
}


def _bs(name):
    return np.asarray(BATCH_SIZES[name], dtype=np.intp)


def _problem(batch_sizes, n_hidden=6, dtype=np.float64, seed=0):
    """Random projection, recurrent weights and upstream gradient (packed)."""
    rng = np.random.default_rng(seed)
    n_rows = int(np.sum(batch_sizes))
    P = rng.normal(0, 0.8, (n_rows, n_hidden))
    W = rng.normal(0, 0.6 / np.sqrt(n_hidden), (n_hidden, n_hidden))
    dH = rng.normal(0, 1.0, (n_rows, n_hidden))
    return P.astype(dtype), W.astype(dtype), dH.astype(dtype)


def _forward(P, W, bs, act, n_threads=1, inplace=False):
    if inplace:
        H = P.copy()
        _rnn.rnn_forward(H, W, bs, H, act, n_threads)
    else:
        H = np.full_like(P, np.nan)  # OUT must not be read
        _rnn.rnn_forward(P, W, bs, H, act, n_threads)
    return H


def _backward(H, W, bs, dH, act, k=0, n_threads=1, inplace=False):
    if inplace:
        delta = dH.copy()
        _rnn.rnn_backward(H, W, bs, delta, delta, act, n_threads, k)
    else:
        delta = np.full_like(dH, np.nan)
        _rnn.rnn_backward(H, W, bs, dH, delta, act, n_threads, k)
    return delta


def _grad_hh(H, delta, bs):
    G = np.full((H.shape[1], H.shape[1]), np.nan, dtype=H.dtype)
    _rnn.rnn_grad_hh(H, delta, bs, G, 1)
    return G


# -------------------------------------------------------------- vs NumPy twins

@pytest.mark.parametrize("inplace", [False, True], ids=["out", "inplace"])
@pytest.mark.parametrize("bs_name", list(BATCH_SIZES))
@pytest.mark.parametrize("act_name", list(ACTS))
def test_forward_matches_twin(act_name, bs_name, inplace):
    act, bs = ACTS[act_name], _bs(bs_name)
    P, W, _ = _problem(bs)
    H = _forward(P, W, bs, act, inplace=inplace)
    assert_allclose(H, twin.rnn_forward(P, W, bs, act), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("inplace", [False, True], ids=["out", "inplace"])
@pytest.mark.parametrize("k", [0, 1, 2, 3])
@pytest.mark.parametrize("bs_name", list(BATCH_SIZES))
@pytest.mark.parametrize("act_name", list(ACTS))
def test_backward_matches_twin(act_name, bs_name, k, inplace):
    act, bs = ACTS[act_name], _bs(bs_name)
    P, W, dH = _problem(bs)
    H = twin.rnn_forward(P, W, bs, act)
    delta = _backward(H, W, bs, dH, act, k, inplace=inplace)
    expected = twin.rnn_backward(H, W, bs, dH, act, k)
    assert_allclose(delta, expected, rtol=1e-12, atol=1e-14)
    assert_allclose(_grad_hh(H, delta, bs), twin.rnn_grad_hh(H, expected, bs),
                    rtol=1e-12, atol=1e-13)


def test_truncation_changes_the_gradient():
    # Guards the twin comparison above: k must matter where windows are cut ...
    bs = _bs("mixed")
    P, W, dH = _problem(bs)
    H = twin.rnn_forward(P, W, bs, 2)
    full = _backward(H, W, bs, dH, 2, 0)
    assert not np.allclose(_backward(H, W, bs, dH, 2, 3), full)
    # ... and k >= n_steps is full BPTT.
    assert_array_equal(_backward(H, W, bs, dH, 2, len(bs)), full)


@pytest.mark.parametrize("bs_name", list(BATCH_SIZES))
def test_grad_hh_matches_twin(bs_name):
    bs = _bs(bs_name)
    rng = np.random.default_rng(3)
    H = rng.normal(size=(bs.sum(), 5))
    delta = rng.normal(size=(bs.sum(), 5))
    G = _grad_hh(H, delta, bs)  # prefilled with NaN: must be overwritten
    assert_allclose(G, twin.rnn_grad_hh(H, delta, bs), rtol=1e-12, atol=1e-13)


# ----------------------------------------------------------- float32 vs float64

@pytest.mark.parametrize("k", [0, 1, 2, 3])
@pytest.mark.parametrize("act_name", list(ACTS))
def test_float32_matches_float64(act_name, k):
    act, bs = ACTS[act_name], _bs("mixed")
    P, W, dH = _problem(bs, n_hidden=9, seed=5)
    H64 = _forward(P, W, bs, act)
    d64 = _backward(H64, W, bs, dH, act, k)
    G64 = _grad_hh(H64, d64, bs)
    P32, W32, dH32 = (a.astype(np.float32) for a in (P, W, dH))
    H32 = _forward(P32, W32, bs, act)
    d32 = _backward(H32, W32, bs, dH32, act, k)
    G32 = _grad_hh(H32, d32, bs)
    for a32, a64 in ((H32, H64), (d32, d64), (G32, G64)):
        assert a32.dtype == np.float32
        assert_allclose(a32, a64, rtol=1e-4, atol=1e-5 * np.abs(a64).max())


# ----------------------------------------- gradient check against finite differences

def _loss_plain(params, seqs, targets, act, frozen=None, k=0):
    """Independent forward: each sequence on its own, no packing, no kernels.

    loss = sum over sequences and steps of 0.5 ||h_t @ V + c - y_t||^2.
    With frozen (per-sequence hidden states) and k > 0, the state entering each
    window [jk, (j+1)k) is taken from frozen instead of the running one: the
    loss whose exact gradient truncated BPTT is.
    """
    W_ih, W_hh, b, V, c = params
    loss = 0.0
    for s, (x, y) in enumerate(zip(seqs, targets)):
        h = np.zeros(W_hh.shape[0])
        for t in range(len(x)):
            if frozen is not None and k > 0 and t > 0 and t % k == 0:
                h = frozen[s][t - 1]
            h = twin.activate(x[t] @ W_ih + h @ W_hh + b, act)
            r = h @ V + c - y[t]
            loss += 0.5 * r @ r
    return loss


def _states_plain(params, seqs, act):
    W_ih, W_hh, b = params[:3]
    out = []
    for x in seqs:
        h, hs = np.zeros(W_hh.shape[0]), []
        for t in range(len(x)):
            h = twin.activate(x[t] @ W_ih + h @ W_hh + b, act)
            hs.append(h)
        out.append(hs)
    return out


def _grads_with_kernels(params, seqs, targets, act, k):
    """Gradient of the loss as the engine will compute it: packed rows, big
    GEMMs in NumPy, the time loop in the kernels."""
    W_ih, W_hh, b, V, c = params
    X, bs, order = twin.pack(seqs)
    Y, _, _ = twin.pack(targets)
    H = X @ W_ih + b
    _rnn.rnn_forward(H, W_hh, bs, H, act, 1)  # in place over the projection
    R = H @ V + c - Y
    dH = R @ V.T
    delta = np.empty_like(dH)
    _rnn.rnn_backward(H, W_hh, bs, dH, delta, act, 1, k)
    G_hh = np.empty_like(W_hh)
    _rnn.rnn_grad_hh(H, delta, bs, G_hh, 1)
    return [X.T @ delta, G_hh, delta.sum(0), H.T @ R, R.sum(0)]


def _tiny_rnn(seed, lengths=(4, 1, 3, 3, 4)):
    # Unsorted lengths on purpose: packing sorts them.
    rng = np.random.default_rng(seed)
    F, Hd, C = 3, 4, 2
    seqs = [rng.normal(size=(n, F)) for n in lengths]
    targets = [rng.normal(size=(n, C)) for n in lengths]
    params = [rng.normal(0, 0.7, (F, Hd)), rng.normal(0, 0.5, (Hd, Hd)),
              rng.normal(0, 0.3, Hd), rng.normal(0, 0.7, (Hd, C)), rng.normal(0, 0.3, C)]
    return params, seqs, targets


def _finite_differences(f, params):
    return [central_difference(f, p) for p in params]


def _rel_error(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


@pytest.mark.parametrize("act_name", list(ACTS))
def test_gradient_check_full_bptt(act_name):
    act = ACTS[act_name]
    params, seqs, targets = _tiny_rnn(seed=11)
    got = _grads_with_kernels(params, seqs, targets, act, k=0)
    fd = _finite_differences(lambda: _loss_plain(params, seqs, targets, act), params)
    for name, g, e in zip(["W_ih", "W_hh", "b_h", "W_out", "b_out"], got, fd):
        assert _rel_error(g, e) <= 1e-6, name


@pytest.mark.parametrize("k", [1, 2, 3])
def test_gradient_check_truncated_bptt(k):
    # The truncated gradient is the exact gradient of the loss in which the
    # state entering each window is frozen at its current value.
    act = ACTS["tanh"]
    params, seqs, targets = _tiny_rnn(seed=12, lengths=(5, 2, 7, 4))
    frozen = _states_plain(params, seqs, act)
    got = _grads_with_kernels(params, seqs, targets, act, k=k)
    fd = _finite_differences(
        lambda: _loss_plain(params, seqs, targets, act, frozen=frozen, k=k), params)
    for name, g, e in zip(["W_ih", "W_hh", "b_h"], got[:3], fd[:3]):
        assert _rel_error(g, e) <= 1e-6, name
    full = _grads_with_kernels(params, seqs, targets, act, k=0)
    assert _rel_error(got[1], full[1]) > 1e-3  # and it is not the full gradient


# --------------------------------------------------------------- layout / padding

def test_packed_batch_equals_sequences_one_by_one():
    # No row of one sequence leaks into another: the ragged packed batch gives,
    # row for row, what each sequence gives alone (a batch of one).
    act = ACTS["tanh"]
    rng = np.random.default_rng(4)
    lengths = [6, 2, 6, 3, 1]
    Ps = [rng.normal(size=(n, 5)) for n in lengths]
    dHs = [rng.normal(size=(n, 5)) for n in lengths]
    W = rng.normal(0, 0.4, (5, 5))
    P, bs, order = twin.pack(Ps)
    dH, _, _ = twin.pack(dHs)
    H = _forward(P, W, bs, act)
    delta = _backward(H, W, bs, dH, act, 2)
    G = _grad_hh(H, delta, bs)
    G_sum = np.zeros_like(G)
    for j, (Pj, dHj, Hj, dj) in enumerate(zip(Ps, dHs, twin.unpack(H, bs, order),
                                              twin.unpack(delta, bs, order))):
        bs1 = np.ones(len(Pj), dtype=np.intp)
        H1 = _forward(Pj, W, bs1, act)
        d1 = _backward(H1, W, bs1, dHj, act, 2)
        assert_allclose(Hj, H1, rtol=1e-13, atol=1e-15)
        assert_allclose(dj, d1, rtol=1e-13, atol=1e-15)
        G_sum += _grad_hh(H1, d1, bs1)
    assert_allclose(G, G_sum, rtol=1e-12, atol=1e-14)


def _guarded(A, guard=3):
    """A copied into the middle rows of a NaN-filled buffer (C-contiguous view)."""
    buf = np.full((A.shape[0] + 2 * guard, A.shape[1]), np.nan, dtype=A.dtype)
    buf[guard:-guard] = A
    return buf, buf[guard:-guard]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("inplace", [False, True], ids=["out", "inplace"])
def test_nothing_outside_the_packed_rows_is_read_or_written(dtype, inplace):
    bs = _bs("mixed")
    act = ACTS["tanh"]
    P, W, dH = _problem(bs, dtype=dtype)
    Pbuf, Pv = _guarded(P)
    Hbuf, Hv = (Pbuf, Pv) if inplace else _guarded(np.full_like(P, np.nan))
    _rnn.rnn_forward(Pv, W, bs, Hv, act, 2)
    dHbuf, dHv = _guarded(dH)
    dbuf, dv = (dHbuf, dHv) if inplace else _guarded(np.full_like(dH, np.nan))
    _rnn.rnn_backward(Hv, W, bs, dHv, dv, act, 2, 0)
    Gbuf, Gv = _guarded(np.full((W.shape[0], W.shape[0]), np.nan, dtype=dtype))
    _rnn.rnn_grad_hh(Hv, dv, bs, Gv, 2)
    for buf, view in ((Hbuf, Hv), (dbuf, dv), (Gbuf, Gv)):
        assert np.isfinite(view).all()
        assert np.isnan(buf[:3]).all() and np.isnan(buf[-3:]).all()
    H_ref = twin.rnn_forward(P.astype(np.float64), W.astype(np.float64), bs, act)
    assert_allclose(Hv, H_ref, rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-6)


def test_nan_propagates():
    # A non-finite value must reach the output, never be hidden (the engine
    # checks for it).
    bs = _bs("ragged")
    P, W, dH = _problem(bs)
    P[0, 0] = np.nan  # first sequence, first step
    for act in (1, 2, 4):
        H = _forward(P, W, bs, act)
        assert np.isnan(H[0]).any() and np.isnan(H[5]).all()  # spreads through W_hh
        assert np.isfinite(H[1:5]).all()  # other sequences untouched


# ------------------------------------------------------------------ threads

# Many rows, ragged: dL/dW_hh is summed over groups of steps.
LONG_BATCH = np.array([40] * 30 + [33] * 25 + [20] * 30 + [7] * 20, dtype=np.intp)


@pytest.mark.parametrize("bs", [np.array([150, 150, 131, 131, 77], dtype=np.intp),
                                LONG_BATCH], ids=["wide", "long"])
@pytest.mark.compares_n_threads
def test_bitwise_identical_for_1_2_and_3_threads(bs, dispatch_path):
    # Large enough that every element-wise pass runs on the OpenMP team, with
    # step sizes that do not split evenly into vector-width chunks.
    for dtype in (np.float64, np.float32):
        P, W, dH = _problem(bs, n_hidden=257 if bs[0] > 100 else 96, dtype=dtype, seed=8)
        with threadpool_limits(1, user_api="blas"):
            res = []
            for nt in (1, 2, 3):
                for act in range(5):
                    H = _forward(P, W, bs, act, n_threads=nt)
                    H2 = _forward(P, W, bs, act, n_threads=nt, inplace=True)
                    d = _backward(H, W, bs, dH, act, 2, n_threads=nt)
                    d2 = _backward(H, W, bs, dH, act, 0, n_threads=nt, inplace=True)
                    G = np.empty_like(W)
                    _rnn.rnn_grad_hh(H, d2, bs, G, nt)
                    res.append((H, H2, d, d2, G))
        for one, other in zip(res[:5], res[5:]):
            for a, b in zip(one, other):
                assert_array_equal(a, b)
        for one, other in zip(res[:5], res[10:]):
            for a, b in zip(one, other):
                assert_array_equal(a, b)


@pytest.mark.compares_n_threads
@pytest.mark.parametrize("n_hidden", [131, 300])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_more_threads_than_row_shares_and_ragged_panels(dtype, n_hidden, dispatch_path):
    # 23 sequences and 16 threads: the loop keeps at least 4 sequences a
    # thread (5 threads); 131 hidden units leave a last panel 3 wide
    # (float32: 16-wide panels, 32 on AVX-512; float64: 8, or 16), and 300
    # also sums each product
    # in two blocks of k (256 + 44). Same bits as one thread, and the twin's
    # values.
    bs = np.array([23, 23, 17, 17, 5, 1, 1], dtype=np.intp)
    P, W, dH = _problem(bs, n_hidden=n_hidden, dtype=dtype, seed=11)
    rtol = 1e-12 if dtype == np.float64 else 2e-4
    with threadpool_limits(1, user_api="blas"):
        for act in range(5):
            H1 = _forward(P, W, bs, act, n_threads=1)
            d1 = _backward(H1, W, bs, dH, act, 3, n_threads=1)
            for nt in (2, 5, 16):
                assert_array_equal(_forward(P, W, bs, act, n_threads=nt), H1)
                assert_array_equal(_backward(H1, W, bs, dH, act, 3, n_threads=nt), d1)
            P64, W64, dH64 = (a.astype(np.float64) for a in (P, W, dH))
            H64 = twin.rnn_forward(P64, W64, bs, act)
            assert_allclose(H1, H64, rtol=rtol, atol=rtol)
            assert_allclose(d1, twin.rnn_backward(H64, W64, bs, dH64, act, 3),
                            rtol=rtol, atol=rtol)


def test_grad_hh_over_step_groups_matches_twin():
    rng = np.random.default_rng(9)
    H = rng.normal(size=(LONG_BATCH.sum(), 40))
    delta = rng.normal(size=H.shape)
    for n_threads in (1, 2):
        G = np.full((40, 40), np.nan)
        _rnn.rnn_grad_hh(H, delta, LONG_BATCH, G, n_threads)
        assert_allclose(G, twin.rnn_grad_hh(H, delta, LONG_BATCH), rtol=1e-12, atol=1e-11)
    if _openmp.openmp_enabled():
        assert _openmp.omp_max_threads() >= 1


# ------------------------------------------------------ element-wise accuracy

def test_every_dispatch_path_matches_twin(dispatch_path):
    bs = _bs("mixed")
    for act in range(5):
        for dtype, rtol in ((np.float64, 1e-12), (np.float32, 1e-4)):
            P, W, dH = _problem(bs, dtype=dtype, seed=act)
            H = _forward(P, W, bs, act)
            d = _backward(H, W, bs, dH, act, 2)
            P64, W64, dH64 = (a.astype(np.float64) for a in (P, W, dH))
            H64 = twin.rnn_forward(P64, W64, bs, act)
            assert_allclose(H, H64, rtol=rtol, atol=rtol * 1e-2)
            assert_allclose(d, twin.rnn_backward(H64, W64, bs, dH64, act, 2),
                            rtol=rtol, atol=rtol * 1e-1)


def _dense_activation(z, out, act):
    """out = act(z) through a dense layer of one input and one output: the
    1x1 GEMM multiplies by 1.0 and adds a 0.0 bias, both exact."""
    ones, zero = np.ones((1, 1), z.dtype), np.zeros(1, z.dtype)
    _dense.dense_forward(z.reshape(-1, 1), ones, zero, out.reshape(-1, 1), act, 1)


@pytest.mark.parametrize("kernel", [_rnn.rnn_activation, _dense_activation],
                         ids=["rnn", "dense"])
@pytest.mark.parametrize("dtype,max_ulp", [(np.float64, 4), (np.float32, 4)])
@pytest.mark.parametrize("act_name", ["tanh", "logistic", "lecun_tanh"])
def test_activation_accuracy(act_name, dtype, max_ulp, kernel, dispatch_path):
    # The kernels' own vectorized tanh / sigmoid against NumPy's in float64.
    act = ACTS[act_name]
    x = np.concatenate([np.linspace(-50, 50, 20001), np.geomspace(1e-300, 30, 2000),
                        -np.geomspace(1e-300, 30, 2000), [0.0, 5e-324, 1e-8, 0.3466, 20.0]])
    z = x.astype(dtype)
    out = np.empty_like(z)
    kernel(z, out, act)
    ref = twin.activate(z.astype(np.float64), act)
    ulp = np.abs(out - ref) / np.spacing(np.abs(ref).astype(dtype))
    ok = (ulp <= max_ulp) | (np.abs(ref) < np.finfo(dtype).tiny)
    assert ok.all(), (z[~ok][:5], out[~ok][:5], ref[~ok][:5])


def test_float32_tanh_within_its_measured_worst_case(dispatch_path):
    # float32 tanh has its own short reduction and minimax polynomial: every
    # 527th float of [0, 10] (2,073,276, each with both signs) against float64
    # NumPy, within the worst case that a sweep of every float measured
    # (2.498 ulp on the AVX2 path, 2.500 on the portable one).
    bits = np.arange(0, np.float32(10).view(np.uint32), 527, dtype=np.uint32)
    z = np.concatenate([bits.view(np.float32), -bits.view(np.float32)])
    out = np.empty_like(z)
    _rnn.rnn_activation(z, out, ACTS["tanh"])
    ref = np.tanh(z.astype(np.float64))
    ulp = np.abs(out - ref) / np.spacing(np.abs(ref).astype(np.float32))
    ulp[np.abs(ref) < np.finfo(np.float32).tiny] = 0
    assert ulp.max() <= 2.51, (z[ulp.argmax()], ulp.max())
    assert ulp.max() > 1  # the sweep reaches the hard cases


def test_activation_special_values(dispatch_path):
    for dtype in (np.float64, np.float32):
        z = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 800.0, -800.0], dtype=dtype)
        out = np.empty_like(z)
        _rnn.rnn_activation(z, out, ACTS["tanh"])
        assert_array_equal(out, [1, -1, np.nan, 0, 0, 1, -1])
        _rnn.rnn_activation(z, out, ACTS["logistic"])
        assert_array_equal(out, [1, 0, np.nan, 0.5, 0.5, 1, 0])
        _rnn.rnn_activation(z, out, ACTS["relu"])
        assert_array_equal(out[[0, 1, 3, 5, 6]], [np.inf, 0, 0, 800, 0])
        # tanh(z) = z where z*z is below half an ulp of z: zeros keep their
        # sign, subnormals come back bit for bit (assert_array_equal would
        # take -0 for 0)
        info = np.finfo(dtype)
        z = np.array([-0.0, 0.0, info.smallest_subnormal, -info.smallest_subnormal,
                      info.tiny / 3, -info.tiny], dtype=dtype)
        _rnn.rnn_activation(z, out := np.empty_like(z), ACTS["tanh"])
        assert out.tobytes() == z.tobytes()


# -------------------------------------------------------------- validation

def test_bad_batch_sizes_and_overlap_are_rejected():
    P, W, dH = _problem(_bs("ragged"))
    H = np.empty_like(P)
    for bad in ([5, 5, 3, 2], [5, 5, 1, 3], [5, 5, 3, 0, 1], [15]):
        with pytest.raises(ValueError, match="batch_sizes"):
            _rnn.rnn_forward(P, W, np.array(bad, dtype=np.intp), H, 2, 1)
    bs = _bs("ragged")
    with pytest.raises(ValueError, match="overlap"):
        _rnn.rnn_forward(P[1:], W, np.array([5, 5, 3], dtype=np.intp), P[:-1], 2, 1)
    with pytest.raises(ValueError, match="overlap"):
        _rnn.rnn_backward(P[1:], W, np.array([5, 5, 3], dtype=np.intp), dH[:-1], dH[1:],
                          2, 1, 0)
    with pytest.raises(ValueError, match="overlap H"):
        _rnn.rnn_backward(P, W, bs, dH, P, 2, 1, 0)
    with pytest.raises(ValueError, match="shape"):
        _rnn.rnn_forward(P, W[:, :3].copy(), bs, H, 2, 1)
    with pytest.raises(ValueError, match="bptt_steps"):
        _rnn.rnn_backward(P, W, bs, dH, H, 2, 1, -1)


def test_empty_batch():
    bs = np.zeros(0, dtype=np.intp)
    P = np.zeros((0, 4))
    W = np.eye(4)
    H = np.zeros((0, 4))
    _rnn.rnn_forward(P, W, bs, H, 2, 1)
    _rnn.rnn_backward(H, W, bs, P, H, 2, 1, 0)
    G = np.full((4, 4), np.nan)
    _rnn.rnn_grad_hh(H, P, bs, G, 1)
    assert_array_equal(G, 0)
