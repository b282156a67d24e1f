# Type stub of the compiled module _losses.pyx (keep the two in step: a test compares them).
from typing import Any

from numpy.typing import NDArray

LOSS_CODES: dict[str, int]


def output_loss_delta(Z: NDArray[Any], Y: NDArray[Any],
                      sample_weight: NDArray[Any] | None, delta: NDArray[Any],
                      kind: int, scale: float, n_threads: int) -> float: ...
def softmax_ce_classes(Z: NDArray[Any], classes: NDArray[Any],
                       sample_weight: NDArray[Any] | None, delta: NDArray[Any],
                       scale: float, n_threads: int) -> float: ...
def output_activate(Z: NDArray[Any], kind: int, n_threads: int) -> None: ...
