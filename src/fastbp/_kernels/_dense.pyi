# Type stub of the compiled module _dense.pyx (keep the two in step: a test compares them).
from typing import Any

from numpy.typing import NDArray

ACTIVATION_CODES: dict[str, int]
LOSS_CODES: dict[str, int]
LECUN_TANH: tuple[float, float]
UPDATE_CODES: dict[str, int]


def dense_forward(A_in: NDArray[Any], W: NDArray[Any], b: NDArray[Any],
                  A_out: NDArray[Any], activation: int, n_threads: int) -> None: ...
def dense_backward(A_in: NDArray[Any], W: NDArray[Any], delta: NDArray[Any],
                   grad_W: NDArray[Any], grad_b: NDArray[Any],
                   delta_in: NDArray[Any] | None, input_activation: int,
                   n_threads: int) -> None: ...
class _ChainCall:
    """The C arrays of one fused call (internal)."""


def dense_chain_loss_and_grad(X: NDArray[Any], weights: list[NDArray[Any]],
                              biases: list[NDArray[Any]], activations: list[int],
                              Y: NDArray[Any], sample_weight: NDArray[Any] | None,
                              outputs: list[NDArray[Any]], deltas: list[NDArray[Any]],
                              grad_weights: list[NDArray[Any]],
                              grad_biases: list[NDArray[Any]], kind: int, scale: float,
                              l2_coef: float, n_threads: int) -> tuple[float, float]: ...
def dense_chain_train(X: NDArray[Any], Y: NDArray[Any], sample_weight: NDArray[Any] | None,
                      order: NDArray[Any], batch_size: int, batch_params: NDArray[Any],
                      weights: list[NDArray[Any]], biases: list[NDArray[Any]],
                      activations: list[int], X_batch: NDArray[Any], Y_batch: NDArray[Any],
                      sw_batch: NDArray[Any] | None, outputs: list[NDArray[Any]],
                      deltas: list[NDArray[Any]], grad_weights: list[NDArray[Any]],
                      grad_biases: list[NDArray[Any]], kind: int, batch_losses: NDArray[Any],
                      n_threads: int, update: int = ..., theta: NDArray[Any] | None = ...,
                      state_1: NDArray[Any] | None = ..., state_2: NDArray[Any] | None = ...,
                      beta_1: float = ..., beta_2: float = ..., epsilon: float = ...,
                      nesterov: bool = ...) -> None: ...
def csr_rows_to_dense(data: NDArray[Any], indices: NDArray[Any], indptr: NDArray[Any],
                      rows: NDArray[Any], out: NDArray[Any]) -> None: ...
def output_loss_delta(Z: NDArray[Any], Y: NDArray[Any],
                      sample_weight: NDArray[Any] | None, delta: NDArray[Any],
                      kind: int, scale: float, n_threads: int) -> float: ...
def output_activate(Z: NDArray[Any], kind: int, n_threads: int) -> None: ...
def l2_penalty(theta: NDArray[Any], grad: NDArray[Any], coef: float,
               n_threads: int) -> float: ...
def sgd_update(theta: NDArray[Any], grad: NDArray[Any], velocity: NDArray[Any],
               learning_rate: float, momentum: float, nesterov: bool,
               n_threads: int) -> None: ...
def adam_update(theta: NDArray[Any], grad: NDArray[Any], m1: NDArray[Any],
                m2: NDArray[Any], step_size: float, beta_1: float, beta_2: float,
                epsilon: float, n_threads: int) -> None: ...
