"""Type aliases of fastbp's public API (PEP 561: the package ships py.typed)."""
import os
from typing import IO, Any, Sequence, Union

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

#: Tabular input: anything np.asarray accepts, or a scipy sparse matrix.
MatrixLike = Union[ArrayLike, sp.spmatrix]
#: Sequence input of the RNNs: a 3-D array, or a list of (n_steps_i, n_features) arrays.
SequencesLike = Union[ArrayLike, Sequence[ArrayLike]]
#: A file name.
PathLike = Union[str, os.PathLike]
#: Where a model is saved or loaded: a file name, or a binary file object.
FileLike = Union[str, os.PathLike, IO[bytes]]
#: What predict and friends return: an array, or a list of arrays for ragged sequences.
Predictions = Union[NDArray[Any], list]

__all__ = ["ArrayLike", "FileLike", "MatrixLike", "NDArray", "PathLike",
           "Predictions", "SequencesLike", "np"]
