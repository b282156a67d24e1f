# Type stub of the compiled module _sparse.pyx (keep the two in step: a test compares them).
from typing import Any

from numpy.typing import NDArray


def csr_rows_to_dense(data: NDArray[Any], indices: NDArray[Any], indptr: NDArray[Any],
                      rows: NDArray[Any], out: NDArray[Any]) -> None: ...


def take_rows(sources: list[NDArray[Any]], rows: NDArray[Any], outs: list[NDArray[Any]],
              n_threads: int, pad: int = ...) -> None: ...


def take_steps(sources: list[NDArray[Any]], starts: NDArray[Any], lengths: NDArray[Any],
               batch_sizes: NDArray[Any], outs: list[NDArray[Any]], n_threads: int) -> None: ...
