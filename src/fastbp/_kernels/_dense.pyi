# Type stub of the compiled module _dense.pyx (keep the two in step: a test compares them).
from typing import Any

from numpy.typing import NDArray

from ._calls import BoundCall

ACTIVATION_CODES: dict[str, int]
LECUN_TANH: tuple[float, float]


def dense_forward(A_in: NDArray[Any], W: NDArray[Any], b: NDArray[Any],
                  A_out: NDArray[Any], activation: int, n_threads: int) -> None: ...
def dense_backward(A_in: NDArray[Any], W: NDArray[Any], delta: NDArray[Any],
                   grad_W: NDArray[Any], grad_b: NDArray[Any],
                   delta_in: NDArray[Any] | None, input_activation: int,
                   n_threads: int) -> None: ...
def bind_dense_forward(A_in: NDArray[Any], W: NDArray[Any], b: NDArray[Any],
                       A_out: NDArray[Any], activation: int, n_threads: int) -> BoundCall: ...
def bind_dense_backward(A_in: NDArray[Any], W: NDArray[Any], delta: NDArray[Any],
                        grad_W: NDArray[Any], grad_b: NDArray[Any],
                        delta_in: NDArray[Any] | None, input_activation: int,
                        n_threads: int) -> BoundCall: ...
def all_finite(x: NDArray[Any], n_threads: int) -> bool: ...
def split_gemm_plan(m: int, n: int, k: int, n_threads: int) -> tuple[int, bool]: ...


class _DenseForward(BoundCall): ...
class _DenseBackward(BoundCall): ...
