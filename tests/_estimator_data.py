"""Random input for each estimator by name, for the tests of the input fast
paths: MLP rows of 7 features, LeNet-5 images of 28x28, RNN sequences of 4
steps of 3 features."""
import numpy as np


def data(name, n, dtype, seed=0):
    """n samples of the input of estimator ``name`` (its class name) in ``dtype``."""
    rng = np.random.default_rng(seed)
    if name.startswith("MLP"):
        return rng.standard_normal((n, 7)).astype(dtype)
    if name.startswith("LeNet"):
        return rng.random((n, 28, 28)).astype(dtype)
    return rng.standard_normal((n, 4, 3)).astype(dtype)
