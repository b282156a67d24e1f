# Type stub of the compiled module _conv.pyx (keep the two in step: a test compares them).
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from ._calls import BoundCall


def block_samples(dtype: DTypeLike) -> int: ...
def padded_rows(n: int, dtype: DTypeLike) -> int: ...
def conv5x5_forward(X: NDArray[Any], W: NDArray[Any], b: NDArray[Any],
                    table: NDArray[np.uint8], Y: NDArray[Any],
                    activation: int, n_threads: int, *, n_samples: int = ...,
                    in_blocked: bool = ..., out_blocked: bool = ...) -> None: ...
def conv5x5_backward(X: NDArray[Any], W: NDArray[Any], dZ: NDArray[Any],
                     table: NDArray[np.uint8], grad_W: NDArray[Any],
                     grad_b: NDArray[Any], dX: NDArray[Any] | None,
                     input_activation: int, n_threads: int, *, n_samples: int = ...,
                     in_blocked: bool = ..., out_blocked: bool = ...) -> None: ...
def pool2x2_forward(Y: NDArray[Any], coef: NDArray[Any], bias: NDArray[Any],
                    X: NDArray[Any], activation: int, n_threads: int, *,
                    n_samples: int = ..., in_blocked: bool = ...,
                    out_blocked: bool = ...) -> None: ...
def pool2x2_backward(Y: NDArray[Any], coef: NDArray[Any], dZ: NDArray[Any],
                     grad_coef: NDArray[Any], grad_bias: NDArray[Any],
                     dY: NDArray[Any] | None, input_activation: int,
                     n_threads: int, *, n_samples: int = ..., in_blocked: bool = ...,
                     out_blocked: bool = ...) -> None: ...
def bind_conv5x5_forward(X: NDArray[Any], W: NDArray[Any], b: NDArray[Any],
                         table: NDArray[np.uint8], Y: NDArray[Any],
                         activation: int, n_threads: int, *, n_samples: int = ...,
                         in_blocked: bool = ..., out_blocked: bool = ...) -> BoundCall: ...
def bind_conv5x5_backward(X: NDArray[Any], W: NDArray[Any], dZ: NDArray[Any],
                          table: NDArray[np.uint8], grad_W: NDArray[Any],
                          grad_b: NDArray[Any], dX: NDArray[Any] | None,
                          input_activation: int, n_threads: int, *, n_samples: int = ...,
                          in_blocked: bool = ..., out_blocked: bool = ...) -> BoundCall: ...
def bind_pool2x2_forward(Y: NDArray[Any], coef: NDArray[Any], bias: NDArray[Any],
                         X: NDArray[Any], activation: int, n_threads: int, *,
                         n_samples: int = ..., in_blocked: bool = ...,
                         out_blocked: bool = ...) -> BoundCall: ...
def bind_pool2x2_backward(Y: NDArray[Any], coef: NDArray[Any], dZ: NDArray[Any],
                          grad_coef: NDArray[Any], grad_bias: NDArray[Any],
                          dY: NDArray[Any] | None, input_activation: int,
                          n_threads: int, *, n_samples: int = ..., in_blocked: bool = ...,
                          out_blocked: bool = ...) -> BoundCall: ...
def to_blocks(X: NDArray[Any], out: NDArray[Any]) -> None: ...
def from_blocks(X: NDArray[Any], out: NDArray[Any]) -> None: ...


class _ConvForward(BoundCall): ...
class _ConvBackward(BoundCall): ...
class _PoolForward(BoundCall): ...
class _PoolBackward(BoundCall): ...
