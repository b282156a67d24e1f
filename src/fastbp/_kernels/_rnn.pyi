# Type stub of the compiled module _rnn.pyx (keep the two in step: a test compares them).
from typing import Any

import numpy as np
from numpy.typing import NDArray

def rnn_forward(P: NDArray[Any], W_hh: NDArray[Any], batch_sizes: NDArray[np.intp],
                H: NDArray[Any], activation: int, n_threads: int) -> None: ...
def rnn_backward(H: NDArray[Any], W_hh: NDArray[Any], batch_sizes: NDArray[np.intp],
                 dH: NDArray[Any], delta: NDArray[Any], activation: int,
                 n_threads: int, bptt_steps: int = ...) -> None: ...
def rnn_grad_hh(H: NDArray[Any], delta: NDArray[Any], batch_sizes: NDArray[np.intp],
                grad_hh: NDArray[Any], n_threads: int) -> None: ...
def rnn_activation(z: NDArray[Any], out: NDArray[Any], activation: int) -> None: ...
