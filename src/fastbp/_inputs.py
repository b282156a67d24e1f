"""Cheap checks of input, where sklearn's full ones would hand it back
unchanged: a one-row predict otherwise spends most of its time in them, and
fit's finiteness check of a large X runs on one thread."""
import numpy as np
from sklearn import get_config
from sklearn.utils.validation import check_is_fitted

from ._kernels import _dense
from ._threads import effective_n_threads


def check_fitted(est):
    """sklearn's ``check_is_fitted(est, "_network")``, without its cost (it
    reads the estimator's tags, several microseconds) when est is fitted."""
    if not hasattr(est, "_network"):
        check_is_fitted(est, "_network")


FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# Above this many elements the finiteness check of a contiguous X runs on
# fastbp's team; below it, on the calling thread (one row of 784: 0.85 us,
# against 2.1 for np.isfinite(X).all()). A small non-contiguous X takes
# np.isfinite; a large one, sklearn's finite-sum test.
_FINITE_BY_ELEMENT = 1 << 16


def plain_float_array(est, X, ndims=(2,)):
    """Whether sklearn's checks of predict's input would hand ``X`` back as
    it is, with no warning: a finite float32 or float64 ndarray (native byte
    order, any layout) of one of ``ndims`` dimensions holding at least one value, for
    a model fitted without feature names (given an ndarray, such a model
    warns). Anything else takes the full checks, whose errors and warnings
    stay theirs; so does a non-finite X, whatever ``assume_finite`` says.

    Parameters
    ----------
    est : estimator
    X : object
        Input given to predict.
    ndims : tuple of int

    Returns
    -------
    plain : bool
    """
    if not (type(X) is np.ndarray and X.ndim in ndims and X.dtype in FLOAT_DTYPES
            and X.size and not hasattr(est, "feature_names_in_")):
        return False
    return _finite(X, est.n_jobs)


def _finite(X, n_jobs):
    """Whether the float ndarray X (native byte order, at least one value)
    has no NaN or infinity."""
    if X.flags.c_contiguous or X.flags.f_contiguous:
        # one vectorized pass (ravel of a contiguous X is a view), on
        # fastbp's team where X is long enough to pay for starting it
        n_threads = 1 if X.size <= _FINITE_BY_ELEMENT else effective_n_threads(n_jobs)
        return _dense.all_finite(X.ravel(order="K"), n_threads)
    if X.size <= _FINITE_BY_ELEMENT:
        return bool(np.isfinite(X).all())
    # sklearn's own first pass: a finite sum means finite elements (an
    # overflowing sum of finite ones takes the full check)
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(X.sum()))


def known_finite(est, X):
    """Whether X is a float32 or float64 ndarray holding no NaN or infinity,
    found in one pass on fastbp's team where X is contiguous: fit's
    ``validate_data`` can then leave out its own check (a NumPy sum over X
    on one thread, 4 ms for 10,000 images of 32x32). Anything else, a
    non-finite X included, gives False: sklearn's check then runs, with its
    own errors.

    Parameters
    ----------
    est : estimator
    X : object
        Input given to fit.

    Returns
    -------
    finite : bool
    """
    if get_config()["assume_finite"]:  # sklearn leaves its check out too
        return False
    return (type(X) is np.ndarray and X.dtype in FLOAT_DTYPES and X.size > 0
            and _finite(X, est.n_jobs))



def cast_input(est, source_dtype, dtype, cast, name="X"):
    """``cast()``, the input (of ``source_dtype``) in the model's dtype: an
    ndarray, sparse matrix, ``Ragged`` or ``PaddedImages``. Raises
    ValueError where narrowing float64 to float32 made a finite value
    infinite, which would otherwise reach the network and come out as NaN
    (the cast's own overflow warning is left out: the error says it).

    Parameters
    ----------
    est : estimator
    source_dtype : numpy dtype
        The input's dtype, before the cast.
    dtype : numpy dtype or None
        The model's dtype, which ``cast`` casts to (None: the input's own).
    cast : callable
        Makes the cast input.
    name : str, default='X'
        What the error calls the input (a regressor's targets: 'y').

    Returns
    -------
    X : the cast input (None where ``cast`` gives None: a fast path that
        does not apply)
    """
    if dtype is None or np.dtype(source_dtype).itemsize <= np.dtype(dtype).itemsize:
        return cast()  # nothing narrows (and no errstate: 1 us a predict call)
    with np.errstate(over="ignore"):
        X = cast()
    if X is None:
        return None
    values = X if isinstance(X, np.ndarray) else getattr(X, "images", None)
    if values is None:  # a sparse matrix's or a Ragged's
        values = X.data
    if not values.size:
        return X
    finite = (_finite(values, est.n_jobs) if values.flags.c_contiguous
              else bool(np.isfinite(values).all()))
    if not finite:
        raise ValueError(f"{name} holds values beyond the range of {values.dtype} "
                         f"(largest {np.finfo(values.dtype).max:.4g}), the dtype the model "
                         f"was fitted in.")
    return X
