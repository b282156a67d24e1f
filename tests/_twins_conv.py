"""Plain-NumPy reference twins of the convolution and pooling kernels.

They are slow and obvious on purpose: each one is the definition that the
compiled kernel in ``fastbp._kernels._conv`` must reproduce. Layout is NCHW.
Activation codes are those of ``fastbp._kernels._math``: 0 identity,
1 logistic, 2 tanh, 3 relu, 4 lecun_tanh = 1.7159 tanh(2x/3).
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

ACTIVATIONS = {"identity": 0, "logistic": 1, "tanh": 2, "relu": 3, "lecun_tanh": 4}
LECUN_A = 1.7159
LECUN_S = 2.0 / 3.0


def _lecun_c3_table():
    """Table I of LeCun et al. (1998): which S2 maps feed each C3 map."""
    table = np.zeros((16, 6), dtype=bool)  # [out (C3 map), in (S2 map)]
    for j in range(6):  # 3 contiguous maps
        table[j, [j % 6, (j + 1) % 6, (j + 2) % 6]] = True
    for j in range(6, 12):  # 4 contiguous maps
        table[j, [(j - 6 + d) % 6 for d in range(4)]] = True
    for j, maps in zip(range(12, 15), ([0, 1, 3, 4], [1, 2, 4, 5], [0, 2, 3, 5])):
        table[j, maps] = True  # 4 discontinuous maps
    table[15, :] = True  # all 6 maps
    return table


#: LeCun's C3 connection table, of shape (16, 6), indexed [C3 map, S2 map].
LECUN_C3_TABLE = _lecun_c3_table()
LECUN_C3_TABLE.flags.writeable = False


def activate(z, act):
    """g(z) for an activation code."""
    if act == 0:
        return z.copy()
    if act == 1:
        # Stable logistic, as _math.sigmoid.
        out = np.empty_like(z)
        pos = z >= 0
        out[pos] = 1 / (1 + np.exp(-z[pos]))
        e = np.exp(z[~pos])
        out[~pos] = e / (1 + e)
        return out
    if act == 2:
        return np.tanh(z)
    if act == 3:
        return np.where(z > 0, z, 0).astype(z.dtype)
    if act == 4:
        return LECUN_A * np.tanh(LECUN_S * z)
    raise ValueError(act)


def derivative_from_output(a, act):
    """g'(z) expressed through a = g(z), as _math.derivative_from_output."""
    if act == 0:
        return np.ones_like(a)
    if act == 1:
        return a * (1 - a)
    if act == 2:
        return 1 - a * a
    if act == 3:
        return (a > 0).astype(a.dtype)
    if act == 4:
        return LECUN_S * (LECUN_A - a * a / LECUN_A)
    raise ValueError(act)


def _masked(W, table):
    # np.where, not W * mask: an unconnected weight may be anything, even NaN.
    return np.where(np.asarray(table, dtype=bool)[:, :, None, None], W, 0)


def conv5x5_preactivation(X, W, b, table):
    """Z[n, o, y, x] = b[o] + sum over connected i, kh, kw of
    W[o, i, kh, kw] * X[n, i, y + kh, x + kw]  (valid cross-correlation).

    X (n, C_in, H, W_), W (C_out, C_in, 5, 5), b (C_out,), table (C_out, C_in)
    -> Z (n, C_out, H - 4, W_ - 4).
    """
    windows = sliding_window_view(X, (5, 5), axis=(2, 3))  # n, i, y, x, kh, kw
    return np.einsum("niyxhw,oihw->noyx", windows, _masked(W, table)) + b[None, :, None, None]


def conv5x5_forward(X, W, b, table, activation):
    """Y = g(conv5x5_preactivation(X, W, b, table))."""
    return activate(conv5x5_preactivation(X, W, b, table), activation)


def conv5x5_backward(X, W, dZ, table, input_activation, want_dX=True):
    """Gradients of a 5x5 convolution given dZ = dL/dZ (pre-activation).

    grad_W[o, i, kh, kw] = sum_{n, y, x} dZ[n, o, y, x] X[n, i, y + kh, x + kw]
    (exactly 0 where table[o, i] is 0), grad_b[o] = sum_{n, y, x} dZ[n, o, y, x],
    dX[n, i] = (full convolution of dZ[n, o] with the 180-degree-rotated
    W[o, i], summed over connected o) * g_in'(X) where X = g_in(z_in).
    """
    windows = sliding_window_view(X, (5, 5), axis=(2, 3))
    grad_W = np.einsum("niyxhw,noyx->oihw", windows, dZ)
    grad_W = np.where(np.asarray(table, dtype=bool)[:, :, None, None], grad_W, 0)
    grad_b = dZ.sum(axis=(0, 2, 3))
    if not want_dX:
        return grad_W, grad_b, None
    n, _, ho, wo = dZ.shape
    Wm = _masked(W, table)
    dX = np.zeros_like(X)
    # Scatter form: each output pixel sends dZ * W back over its 5x5 window.
    for kh in range(5):
        for kw in range(5):
            dX[:, :, kh:kh + ho, kw:kw + wo] += np.einsum("noyx,oi->niyx", dZ, Wm[:, :, kh, kw])
    return grad_W, grad_b, dX * derivative_from_output(X, input_activation)


def mean_pool2x2(Y):
    """Mean of each non-overlapping 2x2 block: (n, C, H, W_) -> (n, C, H/2, W_/2)."""
    n, c, h, w = Y.shape
    return Y.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))


def pool2x2_forward(Y, coef, bias, activation):
    """X = g(coef[c] * MeanPool(Y) + bias[c]) (LeCun's trainable subsampling)."""
    pre = coef[None, :, None, None] * mean_pool2x2(Y) + bias[None, :, None, None]
    return activate(pre, activation)


def pool2x2_backward(Y, coef, dZ, input_activation, want_dY=True):
    """Gradients of pool2x2 given dZ = dL/d(pre-activation), of shape (n, C, H/2, W_/2).

    grad_coef[c] = sum dZ * MeanPool(Y), grad_bias[c] = sum dZ,
    dY[n, c, i, j] = coef[c] / 4 * dZ[n, c, i // 2, j // 2] * g_in'(Y[n, c, i, j]).
    """
    grad_coef = (dZ * mean_pool2x2(Y)).sum(axis=(0, 2, 3))
    grad_bias = dZ.sum(axis=(0, 2, 3))
    if not want_dY:
        return grad_coef, grad_bias, None
    up = np.repeat(np.repeat(dZ, 2, axis=2), 2, axis=3)
    dY = coef[None, :, None, None] / 4 * up * derivative_from_output(Y, input_activation)
    return grad_coef, grad_bias, dY
