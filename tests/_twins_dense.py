"""Plain-NumPy twins of the dense kernels: what each kernel computes."""
import numpy as np

LECUN_A, LECUN_S = 1.7159, 2.0 / 3.0


def activate(z, name):
    if name == "identity":
        return z.copy()
    if name == "logistic":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0)
    if name == "lecun_tanh":
        return LECUN_A * np.tanh(LECUN_S * z)
    raise ValueError(name)


def derivative_from_output(a, name):
    return {
        "identity": np.ones_like(a),
        "logistic": a * (1 - a),
        "tanh": 1 - a * a,
        "relu": (a > 0).astype(a.dtype),
        "lecun_tanh": LECUN_S * (LECUN_A - a * a / LECUN_A),
    }[name]


def dense_forward(A_in, W, b, activation):
    return activate(A_in @ W + b, activation)


def dense_backward(A_in, W, delta, input_activation, want_delta_in=True):
    grad_W = A_in.T @ delta
    grad_b = delta.sum(axis=0)
    delta_in = None
    if want_delta_in:
        delta_in = (delta @ W.T) * derivative_from_output(A_in, input_activation)
    return grad_W, grad_b, delta_in


def _neg_log_clipped(neg_log_p, eps):
    """-log(clip(p, eps, 1 - eps)) from -log(p): sklearn's log_loss clipping,
    in log space so that nothing cancels. eps = 0 clips nothing."""
    if eps == 0:
        return neg_log_p
    return np.clip(neg_log_p, -np.log1p(-eps), -np.log(eps))


def output_loss_delta(Z, Y, sw, kind, scale, clip_eps=None):
    """Return (outputs, sum_i w_i l_i, delta) for a loss kind. The
    cross-entropies clip probabilities at clip_eps (default: eps of Z's dtype)."""
    n, k = Z.shape
    w = np.ones(n) if sw is None else sw
    eps = np.finfo(Z.dtype).eps if clip_eps is None else clip_eps
    if kind == "softmax_ce":
        lse = np.log(np.exp(Z - Z.max(1, keepdims=True)).sum(1)) + Z.max(1)
        P = np.exp(Z - lse[:, None])
        row = (Y * _neg_log_clipped(lse[:, None] - Z, eps)).sum(1)
        d = Y.sum(1, keepdims=True) * P - Y
    elif kind == "logistic_ce":
        P = 1 / (1 + np.exp(-Z))
        row = (Y * _neg_log_clipped(np.logaddexp(0, -Z), eps)
               + (1 - Y) * _neg_log_clipped(np.logaddexp(0, Z), eps)).sum(1)
        d = P - Y
    elif kind == "squared":
        P = Z.copy()
        row = ((P - Y) ** 2).sum(1) / (2 * k)
        d = (P - Y) / k
    elif kind == "squared_logistic":
        P = 1 / (1 + np.exp(-Z))
        row = ((P - Y) ** 2).sum(1) / (2 * k)
        d = (P - Y) * P * (1 - P) / k
    elif kind == "poisson":
        P = np.exp(Z)
        ylogy = np.where(Y > 0, Y * np.log(np.where(Y > 0, Y, 1)), 0)
        row = (ylogy - Y * Z - Y + P).sum(1)
        d = P - Y
    else:
        raise ValueError(kind)
    return P, float((w * row).sum()), scale * w[:, None] * d


def dense_chain(X, weights, biases, activations, Y, sw, kind, scale, l2_coef):
    """dense_chain_loss_and_grad: every layer forward, the fused loss, the
    seeds' delta recursion and the gradients (weights + l2_coef * W).

    Returns (outputs, deltas, grad_weights, grad_biases, data_loss, sumsq).
    """
    A = [X]
    for W, b, act in zip(weights, biases, activations):
        A.append(dense_forward(A[-1], W, b, act))
    P, data_loss, delta = output_loss_delta(A[-1], Y, sw, kind, scale)
    deltas, grad_W, grad_b = [delta], [], []
    for layer in range(len(weights) - 1, -1, -1):
        below = activations[layer - 1] if layer > 0 else "identity"
        gW, gb, delta = dense_backward(A[layer], weights[layer], deltas[0], below, layer > 0)
        grad_W.insert(0, gW + l2_coef * weights[layer])
        grad_b.insert(0, gb)
        if layer > 0:
            deltas.insert(0, delta)
    sumsq = sum(float(np.sum(W * W)) for W in weights) if l2_coef else 0.0
    return A[1:-1] + [P], deltas, grad_W, grad_b, data_loss, sumsq


def sgd_update(theta, grad, velocity, lr, momentum, nesterov):
    velocity = momentum * velocity - lr * grad
    step = momentum * velocity - lr * grad if nesterov else velocity
    return theta + step, velocity


def adam_update(theta, grad, m1, m2, step, b1, b2, eps):
    m1 = b1 * m1 + (1 - b1) * grad
    m2 = b2 * m2 + (1 - b2) * grad * grad
    return theta - step * m1 / (np.sqrt(m2) + eps), m1, m2
