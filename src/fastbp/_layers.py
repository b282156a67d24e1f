"""Layers of the engine.

A layer is a description (shapes, activation) bound to views of the network's
flat parameter and gradient vectors. It keeps no per-call state: buffers live
in a workspace the network hands in, so predict calls on one model can run
in several threads at once.

Protocol
--------
param_specs : tuple of ParamSpec (name, shape, regularized)
workspace(n, dtype, want_delta_in) -> LayerWorkspace for batches up to n rows
bind_forward(A_in, ws, n_threads, once=False) -> (run, A_out)
    run() computes A_out = g(z) (A_out is a workspace buffer).
bind_backward(A_in, A_out, delta, ws, want_delta_in, n_threads, once=False)
        -> (run, delta_in)
    delta = dL/dz of this layer's pre-activation; run() writes the layer's
    parameter gradients and dL/dz of the layer below into delta_in (None
    when not wanted).
forward(A_in, ws, n_threads) -> A_out and backward(...) -> delta_in bind
and run at once.

A run reads its arrays when it runs, so the network binds a batch's passes
once and runs them again on each batch gathered into the same input buffer
(``Network.loss_and_grad``): the layers' Python then runs once per fit, not
once per batch, where the epochs are shuffled. Such a run is a kernel's
``BoundCall``, its arrays checked when bound, not at each run (1.3-3.2 us a
pass); a run made ``once`` (predict's chunks, the RNN's output layer) calls
the kernel's entry point, which checks them as it runs, without the
BoundCall's cost; but a pass on maps side by side is bound even then, so
that ``_conv.stack_calls`` can run such passes together (a few us against
the hundreds a batch of such maps takes).

A layer's ``input_activation`` (the activation of the layer below, whose
derivative ``backward`` applies to the delta it hands down) is not a
constructor argument: the network sets it from the layer below
(:meth:`Layer.follow`), so the pairing cannot be got wrong.

Neighbouring convolution and pooling layers hand their maps (and deltas) on
with the samples side by side, the layout the convolution kernels compute
in (``_conv``), wrapped in :class:`SideBySide`, so that neither transposes
them; :meth:`Layer.follow` links such pairs. A batch of fewer samples than
a block (``_conv.block_samples``) stays NCHW: its lanes would mostly be
empty. Results are the same to the bit in either layout.
"""
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import numpy as np

from ._kernels import _conv, _dense
from ._memory import aligned_empty

ACTIVATION_CODES = _dense.ACTIVATION_CODES


def _runs(entry_point, bind):
    """The two ways a layer makes a run of a kernel, as the pair
    ``(bound, once)`` that ``KERNEL[once](*args)`` picks from: the kernel's
    bind function (a BoundCall, checked now), and a maker of partials of its
    entry point (checked when run). One Python call either way: the one-off
    runs of predict pay no more than they did before BoundCalls."""
    return bind, partial(partial, entry_point)


DENSE_FORWARD = _runs(_dense.dense_forward, _dense.bind_dense_forward)
DENSE_BACKWARD = _runs(_dense.dense_backward, _dense.bind_dense_backward)
CONV_FORWARD = _runs(_conv.conv5x5_forward, _conv.bind_conv5x5_forward)
CONV_BACKWARD = _runs(_conv.conv5x5_backward, _conv.bind_conv5x5_backward)
POOL_FORWARD = _runs(_conv.pool2x2_forward, _conv.bind_pool2x2_forward)
POOL_BACKWARD = _runs(_conv.pool2x2_backward, _conv.bind_pool2x2_backward)


def _rows(buffer, n):
    """The first n rows of a workspace buffer (the buffer itself when full)."""
    return buffer if buffer.shape[0] == n else buffer[:n]


class SideBySide(NamedTuple):
    """Maps of ``n`` samples side by side (``_conv``'s layout): ``data`` has
    ``_conv.padded_rows(n, dtype)`` rows of the NCHW shape."""

    data: np.ndarray
    n: int

    def to_array(self):
        """The maps as a new NCHW array of n rows."""
        out = np.empty((self.n,) + self.data.shape[1:], dtype=self.data.dtype)
        _conv.from_blocks(self.data, out)
        return out


def as_array(A):
    """A copy of a layer's output or delta as an ndarray (NCHW for maps)."""
    return A.to_array() if isinstance(A, SideBySide) else A.copy()


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
    return LayerWorkspace(aligned_empty((n,) + out_shape, dtype),
                          aligned_empty((n,) + in_shape, dtype) if want_delta_in else None)


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
    # Whether the layer can take and hand on maps side by side, and whether
    # its input and output do so (set by follow).
    maps_side_by_side = False
    in_side_by_side = False
    out_side_by_side = False

    def follow(self, below):
        """Take the input activation from ``below``, the layer that feeds
        this one (None for the first layer: its input is the data), and
        link the two for maps side by side where both can."""
        if below is None or not below.derivative_applied_above:
            self.input_activation = "identity"
        else:
            self.input_activation = below.activation
        self._in_act = ACTIVATION_CODES[self.input_activation]
        linked = below is not None and below.maps_side_by_side and self.maps_side_by_side
        self.in_side_by_side = linked
        if below is not None:
            below.out_side_by_side = linked

    def bind(self, params, grads):
        self.params = params
        self.grads = grads

    def bind_forward(self, A_in, ws, n_threads, once=False):
        """(run, A_out): see the module's protocol."""
        raise NotImplementedError(f"{type(self).__name__} has no forward pass of its own")

    def bind_backward(self, A_in, A_out, delta, ws, want_delta_in, n_threads, once=False):
        """(run, delta_in): see the module's protocol."""
        raise NotImplementedError(f"{type(self).__name__} has no backward pass of its own")

    def forward(self, A_in, ws, n_threads):
        """Compute and return the layer's output for A_in (see the module's
        protocol)."""
        run, out = self.bind_forward(A_in, ws, n_threads, once=True)
        run()
        return out

    def backward(self, A_in, A_out, delta, ws, want_delta_in, n_threads):
        """Write the parameter gradients; return dL/dz of the layer below
        (None unless ``want_delta_in``)."""
        run, delta_in = self.bind_backward(A_in, A_out, delta, ws, want_delta_in, n_threads,
                                           once=True)
        run()
        return delta_in

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

    def bind_forward(self, A_in, ws, n_threads, once=False):
        n = A_in.shape[0]
        out = _rows(ws.out, n)
        return DENSE_FORWARD[once](
            A_in.reshape(n, self.n_in), self.params[self.weight_name], self.params[self.bias_name],
            out, self._act, n_threads), out

    def bind_backward(self, A_in, A_out, delta, ws, want_delta_in, n_threads, once=False):
        n = A_in.shape[0]
        delta_in = _rows(ws.delta_in, n) if want_delta_in else None
        run = DENSE_BACKWARD[once](
            A_in.reshape(n, self.n_in), self.params[self.weight_name], delta,
            self.grads[self.weight_name], self.grads[self.bias_name], delta_in, self._in_act,
            n_threads)
        return run, None if delta_in is None else delta_in.reshape(A_in.shape)


class _MapsLayer(Layer):
    """What the convolution and pooling layers share: buffers and the choice
    of layout (see the module's docstring)."""

    def _blocked(self, linked, n, dtype):
        return linked and n >= _conv.block_samples(dtype)

    def workspace(self, n, dtype, want_delta_in):
        def buffer(shape, linked):
            rows = _conv.padded_rows(n, dtype) if self._blocked(linked, n, dtype) else n
            return aligned_empty((rows,) + shape, dtype)
        return LayerWorkspace(
            buffer(self._out_shape, self.out_side_by_side),
            buffer(self._in_shape, self.in_side_by_side) if want_delta_in else None)

    @property
    def _out_shape(self):
        return (self.out_maps,) + self.out_size

    @property
    def _in_shape(self):
        return (self.in_maps,) + self.in_size

    def _buffer(self, buffer, n, linked):
        """A buffer's rows for n samples: SideBySide or NCHW."""
        if self._blocked(linked, n, buffer.dtype):
            return SideBySide(buffer[:_conv.padded_rows(n, buffer.dtype)], n)
        return _rows(buffer, n)

    def _forward_arrays(self, A_in, ws, linked_out):
        """(input array, output array, the output as handed on, the kernel's
        layout keywords) of a forward pass."""
        X, n, in_blocked = _maps(A_in)
        out = self._buffer(ws.out, n, linked_out)
        Y, _, out_blocked = _maps(out)
        return X, Y, out, {"n_samples": n, "in_blocked": in_blocked, "out_blocked": out_blocked}

    @staticmethod
    def _kernel(kernel, once, layout):
        """The run maker of ``kernel`` (see _runs): a bound call for maps
        side by side even ``once`` (see the module's docstring)."""
        return kernel[once and not (layout["in_blocked"] or layout["out_blocked"])]

    def _backward_arrays(self, A_in, delta, ws, want_delta_in):
        """(input array, delta array, delta_in as handed down or None, its
        array or None, the kernel's layout keywords) of a backward pass."""
        X, n, in_blocked = _maps(A_in)
        dZ, _, out_blocked = _maps(delta)
        delta_in = self._buffer(ws.delta_in, n, in_blocked) if want_delta_in else None
        dX = None if delta_in is None else _maps(delta_in)[0]
        return X, dZ, delta_in, dX, {"n_samples": n, "in_blocked": in_blocked,
                                      "out_blocked": out_blocked}


def _maps(A):
    """(array, samples, side by side?) of a layer's input, output or delta."""
    if isinstance(A, SideBySide):
        return A.data, A.n, True
    return A, A.shape[0], False


class Conv5x5(_MapsLayer):
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

    @property
    def maps_side_by_side(self):
        # a 1x1 output with every map connected runs as a dense layer, on NCHW
        return not (self.in_size == (5, 5) and bool(self.table.all()))

    def bind_forward(self, A_in, ws, n_threads, once=False):
        X, Y, out, layout = self._forward_arrays(A_in, ws, self.out_side_by_side)
        return self._kernel(CONV_FORWARD, once, layout)(
            X, self.params[self.weight_name], self.params[self.bias_name], self.table, Y,
            self._act, n_threads, **layout), out

    def bind_backward(self, A_in, A_out, delta, ws, want_delta_in, n_threads, once=False):
        X, dZ, delta_in, dX, layout = self._backward_arrays(A_in, delta, ws, want_delta_in)
        return self._kernel(CONV_BACKWARD, once, layout)(
            X, self.params[self.weight_name], dZ, self.table, self.grads[self.weight_name],
            self.grads[self.bias_name], dX, self._in_act, n_threads, **layout), delta_in


class MeanPool2x2(_MapsLayer):
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

    maps_side_by_side = True
    # the maps pass through: as many out as in
    in_maps = out_maps = property(lambda self: self.maps)

    def bind_forward(self, A_in, ws, n_threads, once=False):
        linked_out = self.out_side_by_side and isinstance(A_in, SideBySide)
        Y, X, out, layout = self._forward_arrays(A_in, ws, linked_out)
        return self._kernel(POOL_FORWARD, once, layout)(
            Y, self.params[self.coef_name], self.params[self.bias_name], X, self._act, n_threads,
            **layout), out

    def bind_backward(self, A_in, A_out, delta, ws, want_delta_in, n_threads, once=False):
        Y, dZ, delta_in, dY, layout = self._backward_arrays(A_in, delta, ws, want_delta_in)
        return self._kernel(POOL_BACKWARD, once, layout)(
            Y, self.params[self.coef_name], dZ, self.grads[self.coef_name],
            self.grads[self.bias_name], dY, self._in_act, n_threads, **layout), delta_in
