"""Layers of the engine.

A layer is a description (shapes, activation) bound to views of the network's
flat parameter and gradient vectors. It keeps no per-call state: buffers live
in a workspace dict the network hands in, so predict calls on one model can run
in several threads at once.

Protocol
--------
param_specs : list of (name, shape, regularized)
workspace(n, dtype, want_delta_in) -> dict of buffers for batches up to n rows
forward(A_in, ws, n_threads) -> A_out = g(z)
backward(A_in, A_out, delta, ws, want_delta_in, n_threads) -> delta_in
    delta = dL/dz of this layer's pre-activation; the layer writes its
    parameter gradients and returns dL/dz of the layer below (or None).
"""
import numpy as np

from ._kernels import _dense

ACTIVATION_CODES = _dense.ACTIVATION_CODES


class Layer:
    """Base class: holds the bound parameter/gradient views."""

    param_specs = ()
    activation = "identity"
    input_activation = "identity"

    def bind(self, params, grads):
        self.params = params
        self.grads = grads

    def __getstate__(self):
        # Views into theta must not be pickled: they would come back as copies
        # and lose the tie to theta. The network rebinds them on load.
        state = self.__dict__.copy()
        state.pop("params", None)
        state.pop("grads", None)
        return state


class Dense(Layer):
    """Fully connected layer, A_out = g(A_in @ W + b).

    Parameters
    ----------
    n_in, n_out : int
        Fan-in and fan-out.
    activation : str
        g, applied to this layer's output.
    input_activation : str
        Activation of the layer below; its derivative enters the delta that
        backward hands down (δˡ = g'(zˡ) ⊙ δˡ⁺¹ (Wˡ⁺¹)ᵀ).
    weight_name, bias_name : str
        Keys of the weight and bias in the network's parameter dict.
    """

    def __init__(self, n_in, n_out, activation, input_activation, weight_name, bias_name):
        self.n_in = int(n_in)
        self.n_out = int(n_out)
        self.activation = activation
        self.input_activation = input_activation
        self.weight_name = weight_name
        self.bias_name = bias_name
        self.param_specs = (
            (weight_name, (self.n_in, self.n_out), True),
            (bias_name, (self.n_out,), False),
        )
        self._act = ACTIVATION_CODES[activation]
        self._in_act = ACTIVATION_CODES[input_activation]

    def workspace(self, n, dtype, want_delta_in):
        ws = {"out": np.empty((n, self.n_out), dtype=dtype)}
        if want_delta_in:
            ws["delta_in"] = np.empty((n, self.n_in), dtype=dtype)
        return ws

    def forward(self, A_in, ws, n_threads):
        n = A_in.shape[0]
        out = ws["out"]
        if out.shape[0] != n:
            out = out[:n]
        _dense.dense_forward(
            A_in.reshape(n, self.n_in), self.params[self.weight_name],
            self.params[self.bias_name], out, self._act, n_threads,
        )
        return out

    def backward(self, A_in, A_out, delta, ws, want_delta_in, n_threads):
        n = A_in.shape[0]
        delta_in = None
        if want_delta_in:
            delta_in = ws["delta_in"]
            if delta_in.shape[0] != n:
                delta_in = delta_in[:n]
        _dense.dense_backward(
            A_in.reshape(n, self.n_in), self.params[self.weight_name], delta,
            self.grads[self.weight_name], self.grads[self.bias_name], delta_in,
            self._in_act, n_threads,
        )
        if delta_in is None:
            return None
        return delta_in.reshape(A_in.shape)
