# Type stub of the compiled module _optimizers.pyx (keep the two in step: a test compares them).
from typing import Any

from numpy.typing import NDArray

UPDATE_CODES: dict[str, int]


def l2_penalty(theta: NDArray[Any], grad: NDArray[Any], coef: float,
               n_threads: int) -> float: ...
def sgd_update(theta: NDArray[Any], grad: NDArray[Any], velocity: NDArray[Any],
               learning_rate: float, momentum: float, nesterov: bool,
               n_threads: int) -> None: ...
def adam_update(theta: NDArray[Any], grad: NDArray[Any], m1: NDArray[Any],
                m2: NDArray[Any], step_size: float, beta_1: float, beta_2: float,
                epsilon: float, n_threads: int) -> None: ...
