"""Central differences for the kernel tests: the float64 reference that
analytic gradients are checked against (kept apart from fastbp._gradcheck,
so a test never checks the library with its own code)."""
import numpy as np


def central_difference(f, x, eps=1e-6):
    """d f / d x for a scalar function f() of the float64 array x.

    x is perturbed in place, one element at a time, and restored.
    """
    assert x.flags.c_contiguous, "x must be perturbable in place through a flat view"
    grad = np.empty_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + eps
        up = f()
        flat[k] = old - eps
        down = f()
        flat[k] = old
        gflat[k] = (up - down) / (2 * eps)
    return grad
