# Type stub of the compiled module _chain.pyx (keep the two in step: a test compares them).
from typing import Any

from numpy.typing import NDArray


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
