"""Plain-NumPy twins of fastbp._kernels._rnn.

They compute what each kernel computes, one step at a time, with no BLAS
tricks, and so document the kernels' contracts.

Packed layout (as ``PackedSequence.data``): sequences sorted by decreasing
length, ``batch_sizes[t]`` of them still running at step t, the block of step t
is rows ``offsets[t] : offsets[t] + batch_sizes[t]`` and its row i belongs to
the i-th longest sequence.
"""
import numpy as np

ACTIVATIONS = {"identity": 0, "logistic": 1, "tanh": 2, "relu": 3, "lecun_tanh": 4}
LECUN_A, LECUN_S = 1.7159, 2.0 / 3.0


def activate(z, act):
    """f(z) for an activation code."""
    if act == 1:
        return 1.0 / (1.0 + np.exp(-z))
    if act == 2:
        return np.tanh(z)
    if act == 3:
        return np.maximum(z, 0.0)
    if act == 4:
        return LECUN_A * np.tanh(LECUN_S * z)
    return z.copy()


def derivative_from_output(h, act):
    """f'(z) written in terms of h = f(z)."""
    if act == 1:
        return h * (1.0 - h)
    if act == 2:
        return 1.0 - h * h
    if act == 3:
        return (h > 0).astype(h.dtype)
    if act == 4:
        return LECUN_S * (LECUN_A - h * h / LECUN_A)
    return np.ones_like(h)


def offsets(batch_sizes):
    """offsets[t] = first packed row of step t; offsets[T] = n_rows."""
    return np.concatenate([[0], np.cumsum(batch_sizes)]).astype(np.intp)


def pack(sequences):
    """Pack a list of (length_i, n_features) arrays.

    Returns (data, batch_sizes, order): order[i] is the index in ``sequences``
    of the i-th longest sequence (stable for ties), which owns row i of every
    step block.
    """
    lengths = np.array([len(s) for s in sequences])
    order = np.argsort(-lengths, kind="stable")
    T = lengths.max()
    batch_sizes = np.array([(lengths > t).sum() for t in range(T)], dtype=np.intp)
    data = np.concatenate(
        [np.stack([sequences[j][t] for j in order[: batch_sizes[t]]]) for t in range(T)]
    )
    return data, batch_sizes, order


def unpack(data, batch_sizes, order):
    """Inverse of ``pack``: the list of per-sequence arrays."""
    off = offsets(batch_sizes)
    out = [[] for _ in order]
    for t, b in enumerate(batch_sizes):
        for i in range(b):
            out[order[i]].append(data[off[t] + i])
    return [np.array(s) for s in out]


def rnn_forward(P, W_hh, batch_sizes, act):
    """H[block t] = f(P[block t] + H[block t-1][:b_t] @ W_hh), h_0 = 0."""
    off = offsets(batch_sizes)
    H = np.empty_like(P)
    for t, b in enumerate(batch_sizes):
        z = P[off[t] : off[t] + b].copy()
        if t > 0:
            z += H[off[t - 1] : off[t - 1] + b] @ W_hh
        H[off[t] : off[t] + b] = activate(z, act)
    return H


def rnn_backward(H, W_hh, batch_sizes, dH, act, bptt_steps=0):
    """delta[block t] = f'(z_t) * (dH[block t] + c_t), from the last step down.

    c_t[:b_{t+1}] = delta[block t+1] @ W_hh.T, zero elsewhere, and zero for
    every row when t is the last step or when bptt_steps = k > 0 and t + 1 is a
    multiple of k (t + 1 opens a new truncation window).
    """
    off = offsets(batch_sizes)
    T = len(batch_sizes)
    delta = np.empty_like(dH)
    for t in range(T - 1, -1, -1):
        b = batch_sizes[t]
        g = dH[off[t] : off[t] + b].copy()
        if t + 1 < T and not (bptt_steps > 0 and (t + 1) % bptt_steps == 0):
            nb = batch_sizes[t + 1]
            g[:nb] += delta[off[t + 1] : off[t + 1] + nb] @ W_hh.T
        delta[off[t] : off[t] + b] = g * derivative_from_output(H[off[t] : off[t] + b], act)
    return delta


def rnn_grad_hh(H, delta, batch_sizes):
    """dL/dW_hh = sum over t >= 1 of H[block t-1][:b_t].T @ delta[block t]."""
    off = offsets(batch_sizes)
    n = H.shape[1]
    G = np.zeros((n, n), dtype=H.dtype)
    for t in range(1, len(batch_sizes)):
        b = batch_sizes[t]
        G += H[off[t - 1] : off[t - 1] + b].T @ delta[off[t] : off[t] + b]
    return G
