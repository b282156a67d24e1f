# Type stub of the compiled module _blas.pyx (keep the two in step: a test compares them).
from typing import Any

from numpy.typing import NDArray

def gemm_py(A: NDArray[Any], B: NDArray[Any], C: NDArray[Any],
            trans_a: bool = ..., trans_b: bool = ..., alpha: float = ...,
            beta: float = ...) -> None: ...
