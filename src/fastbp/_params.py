"""Checks of constructor parameters, each raising sklearn's
InvalidParameterError with sklearn's wording."""
import numbers

import numpy as np
# sklearn's own class (sklearn >= 1.2), so that code catching it catches ours
from sklearn.utils._param_validation import InvalidParameterError


def _interval(est, name, low=None, high=None, closed="left", integer=False):
    """Raise InvalidParameterError unless est.<name> is a real (or integer)
    within the interval; an open end excludes infinity, as in sklearn."""
    value = getattr(est, name)
    kind = numbers.Integral if integer else numbers.Real
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if ok and low is not None:
        ok = value >= low if closed in ("left", "both") else value > low
    if ok and high is not None:
        ok = value <= high if closed in ("right", "both") else value < high
    if ok and not isinstance(value, numbers.Integral):
        ok = bool(np.isfinite(value))
    if not ok:
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        left = "[" if closed in ("left", "both") and low is not None else "("
        right = "]" if closed in ("right", "both") and high is not None else ")"
        what = "an int" if integer else "a float"
        raise InvalidParameterError(
            f"The '{name}' parameter of {type(est).__name__} must be {what} in the "
            f"range {left}{lo}, {hi}{right}. Got {value!r} instead."
        )


def _options(est, name, options):
    value = getattr(est, name)
    if not (isinstance(value, str) and value in options):
        raise InvalidParameterError(
            f"The '{name}' parameter of {type(est).__name__} must be one of "
            f"{sorted(options)}. Got {value!r} instead."
        )


def _boolean(est, name):
    value = getattr(est, name)
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidParameterError(
            f"The '{name}' parameter of {type(est).__name__} must be a bool. "
            f"Got {value!r} instead."
        )


def store_init_params(est, params):
    """Set every constructor argument as an attribute, unchanged (sklearn's
    rule: no validation or logic in __init__). ``params`` is ``locals()``."""
    for name, value in params.items():
        if name not in ("self", "__class__"):
            setattr(est, name, value)
