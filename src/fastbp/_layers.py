"""Layers of the engine.

A layer is a description (shapes, activation) bound to views of the network's
flat parameter and gradient vectors. It keeps no per-call state: buffers live
in a workspace the network hands in, so predict calls on one model can run
in several threads at once.

Protocol
--------
param_specs : tuple of ParamSpec (name, shape, regularized)
workspace(n, dtype, want_delta_in) -> LayerWorkspace for batches up to n rows
forward(A_in, ws, n_threads) -> A_out = g(z)
backward(A_in, A_out, delta, ws, want_delta_in, n_threads) -> delta_in
    delta = dL/dz of this layer's pre-activation; the layer writes its
    parameter gradients and returns dL/dz of the layer below (or None).

A layer's ``input_activation`` (the activation of the layer below, whose
derivative ``backward`` applies to the delta it hands down) is not a
constructor argument: the network sets it from the layer below
(:meth:`Layer.follow`), so the pairing cannot be got wrong.
"""
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ._kernels import _conv, _dense

ACTIVATION_CODES = _dense.ACTIVATION_CODES


def _rows(buffer, n):
    """The first n rows of a workspace buffer (the buffer itself when full)."""
    return buffer if buffer.shape[0] == n else buffer[:n]


class ParamSpec(NamedTuple):
    """One parameter array of a layer, as the network lays it out in theta."""

    name: str  # key in the network's parameter dict
    shape: tuple  # shape of the array
    regularized: bool  # whether the L2 term covers it


@dataclass(slots=True)
class LayerWorkspace:
    """A layer's buffers for batches of up to as many rows as they have."""

    out: np.ndarray  # the layer's outputs g(z)
    delta_in: np.ndarray | None = None  # dL/dz handed down (None: first layer, or predict)


def _empty_workspace(n, dtype, out_shape, in_shape, want_delta_in):
    return LayerWorkspace(np.empty((n,) + out_shape, dtype=dtype),
                          np.empty((n,) + in_shape, dtype=dtype) if want_delta_in else None)


class Layer:
    """Base class: holds the bound parameter/gradient views."""

    param_specs = ()
    activation = "identity"
    input_activation = "identity"
    _in_act = ACTIVATION_CODES["identity"]
    # Whether the layer above applies this layer's activation derivative to
    # the delta it hands down (False where the layer applies it itself, as
    # the RNN cell does inside BPTT).
    derivative_applied_above = True

    def follow(self, below):
        """Take the input activation from ``below``, the layer that feeds
        this one (None for the first layer: its input is the data)."""
        if below is None or not below.derivative_applied_above:
            self.input_activation = "identity"
        else:
            self.input_activation = below.activation
        self._in_act = ACTIVATION_CODES[self.input_activation]

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
        g, applied to this layer's output. The derivative of the layer
        below's activation enters the delta that backward hands down (δˡ =
        g'(zˡ) ⊙ δˡ⁺¹ (Wˡ⁺¹)ᵀ); the network sets it (:meth:`Layer.follow`).
    weight_name, bias_name : str
        Keys of the weight and bias in the network's parameter dict.
    """

    def __init__(self, n_in, n_out, *, activation, weight_name, bias_name):
        self.n_in = int(n_in)
        self.n_out = int(n_out)
        self.activation = activation
        self.weight_name = weight_name
        self.bias_name = bias_name
        self.param_specs = (
            ParamSpec(weight_name, (self.n_in, self.n_out), True),
            ParamSpec(bias_name, (self.n_out,), False),
        )
        self.n_trainable = (self.n_in + 1) * self.n_out
        self._act = ACTIVATION_CODES[activation]

    def workspace(self, n, dtype, want_delta_in):
        return _empty_workspace(n, dtype, (self.n_out,), (self.n_in,), want_delta_in)

    def forward(self, A_in, ws, n_threads):
        n = A_in.shape[0]
        out = _rows(ws.out, n)
        _dense.dense_forward(
            A_in.reshape(n, self.n_in), self.params[self.weight_name],
            self.params[self.bias_name], out, self._act, n_threads,
        )
        return out

    def backward(self, A_in, A_out, delta, ws, want_delta_in, n_threads):
        n = A_in.shape[0]
        delta_in = _rows(ws.delta_in, n) if want_delta_in else None
        _dense.dense_backward(
            A_in.reshape(n, self.n_in), self.params[self.weight_name], delta,
            self.grads[self.weight_name], self.grads[self.bias_name], delta_in,
            self._in_act, n_threads,
        )
        if delta_in is None:
            return None
        return delta_in.reshape(A_in.shape)


class Conv5x5(Layer):
    """Direct 5×5 valid convolution (cross-correlation) with a connection table.

    Parameters
    ----------
    in_maps, out_maps : int
    in_size : tuple of int
        (H, W) of the input maps; the output maps are (H - 4, W - 4).
    table : ndarray of bool of shape (out_maps, in_maps)
        Which input maps each output map sees; unconnected weights are never
        read, get a zero gradient and so stay zero.
    activation : str
        As for :class:`Dense`.
    name : str
        Prefix of the parameter names (``<name>.weight``, ``<name>.bias``).
    """

    def __init__(self, in_maps, out_maps, *, in_size, table, activation, name):
        self.in_maps, self.out_maps = int(in_maps), int(out_maps)
        self.in_size = tuple(int(s) for s in in_size)
        self.out_size = (self.in_size[0] - 4, self.in_size[1] - 4)
        self.table = np.ascontiguousarray(table, dtype=np.uint8)
        if self.table.shape != (self.out_maps, self.in_maps):
            raise ValueError(f"{name}: connection table must have shape "
                             f"{(self.out_maps, self.in_maps)}, got {self.table.shape}")
        self.activation = activation
        self.weight_name, self.bias_name = f"{name}.weight", f"{name}.bias"
        self.param_specs = (
            ParamSpec(self.weight_name, (self.out_maps, self.in_maps, 5, 5), True),
            ParamSpec(self.bias_name, (self.out_maps,), False),
        )
        self.n_trainable = int(self.table.sum()) * 25 + self.out_maps
        self._act = ACTIVATION_CODES[activation]

    def workspace(self, n, dtype, want_delta_in):
        return _empty_workspace(n, dtype, (self.out_maps,) + self.out_size,
                                (self.in_maps,) + self.in_size, want_delta_in)

    def forward(self, A_in, ws, n_threads):
        out = _rows(ws.out, A_in.shape[0])
        _conv.conv5x5_forward(A_in, self.params[self.weight_name], self.params[self.bias_name],
                              self.table, out, self._act, n_threads)
        return out

    def backward(self, A_in, A_out, delta, ws, want_delta_in, n_threads):
        delta_in = _rows(ws.delta_in, A_in.shape[0]) if want_delta_in else None
        _conv.conv5x5_backward(A_in, self.params[self.weight_name], delta, self.table,
                               self.grads[self.weight_name], self.grads[self.bias_name],
                               delta_in, self._in_act, n_threads)
        return delta_in


class MeanPool2x2(Layer):
    """LeCun's trainable subsampling: g(coef · mean of each 2×2 block + bias),
    one coefficient and one bias per map (not L2-regularized).

    Parameters
    ----------
    maps : int
    in_size : tuple of int
        (H, W) of the input maps, both even; the output maps are (H / 2, W / 2).
    activation : str
        As for :class:`Dense`.
    name : str
        Prefix of the parameter names (``<name>.coef``, ``<name>.bias``).
    """

    def __init__(self, maps, *, in_size, activation, name):
        self.maps = int(maps)
        self.in_size = tuple(int(s) for s in in_size)
        if self.in_size[0] % 2 or self.in_size[1] % 2:
            raise ValueError(f"{name}: 2x2 pooling needs even map sizes, got {self.in_size}")
        self.out_size = (self.in_size[0] // 2, self.in_size[1] // 2)
        self.activation = activation
        self.coef_name, self.bias_name = f"{name}.coef", f"{name}.bias"
        self.param_specs = (
            ParamSpec(self.coef_name, (self.maps,), False),
            ParamSpec(self.bias_name, (self.maps,), False),
        )
        self.n_trainable = 2 * self.maps
        self._act = ACTIVATION_CODES[activation]

    def workspace(self, n, dtype, want_delta_in):
        return _empty_workspace(n, dtype, (self.maps,) + self.out_size,
                                (self.maps,) + self.in_size, want_delta_in)

    def forward(self, A_in, ws, n_threads):
        out = _rows(ws.out, A_in.shape[0])
        _conv.pool2x2_forward(A_in, self.params[self.coef_name], self.params[self.bias_name],
                              out, self._act, n_threads)
        return out

    def backward(self, A_in, A_out, delta, ws, want_delta_in, n_threads):
        delta_in = _rows(ws.delta_in, A_in.shape[0]) if want_delta_in else None
        _conv.pool2x2_backward(A_in, self.params[self.coef_name], delta,
                               self.grads[self.coef_name], self.grads[self.bias_name],
                               delta_in, self._in_act, n_threads)
        return delta_in
