"""How the RNNs read their input: X as sequences (a 3-D array, a list of
arrays of different lengths, or a 2-D table of univariate sequences) into a
:class:`~fastbp._sequences.Ragged` of steps, y as one target row per step or
per sequence, and the input layout that a model file records."""
import numpy as np
from sklearn.utils.validation import check_array, validate_data

from ._base import EstimatorMixin
from ._inputs import cast_input, check_fitted, known_finite, plain_float_array
from ._sequences import Ragged

_FLOATS = (np.float64, np.float32)


def _as_ragged(seqs, n_features=None, what="X"):
    """Validate a list of (n_steps_i, n_features) arrays into a Ragged."""
    arrays = []
    for i, s in enumerate(seqs):
        a = check_array(s, ensure_2d=False, dtype=_FLOATS, input_name=what,
                        ensure_min_samples=0)
        if a.ndim == 1:
            a = a.reshape(-1, 1)
        if a.ndim != 2:
            raise ValueError(f"{what}[{i}] must have shape (n_steps, n_features); got "
                             f"an array of shape {a.shape}.")
        if a.shape[0] == 0:
            raise ValueError(f"{what}[{i}] is an empty sequence; every sequence needs at "
                             "least one step.")
        if n_features is not None and a.shape[1] != n_features:
            raise ValueError(f"{what}[{i}] has {a.shape[1]} features per step, expected "
                             f"{n_features}.")
        n_features = a.shape[1]
        arrays.append(a)
    if not arrays:
        raise ValueError(f"{what} holds no sequences.")
    dtype = np.result_type(*arrays)
    data = np.ascontiguousarray(np.concatenate(arrays).astype(dtype, copy=False))
    return Ragged(data, [len(a) for a in arrays])


class SequenceInputMixin(EstimatorMixin):
    """Reading X and y for the RNN estimators (``_RNNMixin`` derives from
    it): the input hooks ``_validate_X_y`` and ``_check_X``, the target rows
    of ``output='sequence'`` or ``'last'``, and the input layout stored by
    ``save``. X's layout (``_input_kind``, ``_n_step_features``) is
    remembered on the first fit and checked afterwards."""

    def _sequences(self, X, reset):
        """X as a Ragged of steps; remembers (or checks) the input layout."""
        shape = getattr(X, "shape", None)
        ndim = len(shape) if shape is not None else (
            None if isinstance(X, (list, tuple)) else np.asarray(X).ndim)
        # a 1-D object array holds sequences as a list does
        if isinstance(X, np.ndarray) and X.dtype == object and X.ndim == 1:
            X, ndim = list(X), None
        listed = isinstance(X, (list, tuple))
        # fitted on sequences of one feature: a 2-D X, or a list of 1-D
        # sequences of one length, is such sequences too, of any length
        univariate = (not reset and self._input_kind == "sequences"
                      and self._n_step_features == 1)
        if listed and (not len(X) or np.ndim(X[0]) >= 1 and (
                len({np.shape(s) for s in X}) > 1 or np.ndim(X[0]) == 2 or univariate)):
            n_features = None if reset else self._n_step_features
            ragged = _as_ragged(X, n_features)
            kind = "sequences"
            if reset:
                self.n_features_in_ = ragged.data.shape[1]
        elif ndim == 2 and univariate:
            X = check_array(X, dtype=_FLOATS, input_name="X",
                            ensure_all_finite=not known_finite(self, X))
            ragged = Ragged(np.ascontiguousarray(X.reshape(-1, 1)), np.full(len(X), X.shape[1]))
            kind = "sequences"
        elif ndim == 3:
            X = check_array(X, allow_nd=True, dtype=_FLOATS, input_name="X",
                            ensure_all_finite=not known_finite(self, X))
            n, t, f = X.shape
            if n == 0 or t == 0:
                raise ValueError(f"X of shape {X.shape} holds no steps.")
            if f == 0:
                raise ValueError(f"Found array with 0 feature(s) (shape={X.shape}) while a "
                                 f"minimum of 1 is required by {type(self).__name__}.")
            if not reset and f != self._n_step_features:
                raise ValueError(f"X has {f} features per step, but {type(self).__name__} "
                                 f"is expecting {self._n_step_features} features as input.")
            ragged = Ragged(np.ascontiguousarray(X.reshape(n * t, f)), np.full(n, t))
            kind = "sequences"
            if reset:
                self.n_features_in_ = f
        else:
            # the 2-D reading: (n_sequences, n_steps) univariate sequences
            X = validate_data(self, X, reset=reset, dtype=_FLOATS,
                              ensure_all_finite=not known_finite(self, X))
            n, t = X.shape
            ragged = Ragged(np.ascontiguousarray(X.reshape(n * t, 1)), np.full(n, t))
            kind = "table"
        if reset:
            self._input_kind = kind
            self._n_step_features = ragged.data.shape[1]
            if kind == "sequences" and hasattr(self, "feature_names_in_"):
                del self.feature_names_in_  # a table's, from an earlier fit
        elif kind != self._input_kind and not (kind == "sequences"
                                               and self._n_step_features == 1):
            raise ValueError(f"{type(self).__name__} was fitted on {self._input_kind} "
                             f"input and cannot read this X as such.")
        return ragged

    def _targets(self, y, X):
        """y as a flat array of target rows (one per step or per sequence), and
        the per-sequence structure used to report predictions."""
        lengths = X.lengths
        if self.output == "last":
            return y, np.ones(len(lengths), dtype=np.intp)
        if isinstance(y, (list, tuple)) and len(y) and np.ndim(y[0]) >= 1:
            parts = [np.asarray(p) for p in y]
            steps = [len(p) for p in parts]
        else:
            y = np.asarray(y)
            if y.ndim < 2:
                raise ValueError(
                    "With output='sequence', y needs one target per step: shape "
                    "(n_sequences, n_steps[, n_outputs]) or a list of arrays.")
            parts, steps = None, np.full(len(y), y.shape[1])
        if len(steps) != len(lengths):
            raise ValueError(f"y holds {len(steps)} sequences, X holds {len(lengths)}.")
        mismatch = np.flatnonzero(np.asarray(steps) != lengths)
        if len(mismatch):
            i = int(mismatch[0])
            raise ValueError(f"y[{i}] has {steps[i]} steps but X[{i}] has {lengths[i]}: with "
                             "output='sequence' they must match.")
        if parts is None:  # one array's rows, without a list of its sequences
            return y.reshape((-1,) + y.shape[2:]).copy(), lengths
        return np.concatenate(parts), lengths

    def _validate_X_y(self, X, y, reset):
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the "
                             "target y is None.")
        X = self._sequences(X, reset)
        y_rows, target_lengths = self._targets(y, X)
        # per-step targets too: NaN labels must not reach type_of_target's cast
        y_rows = check_array(y_rows, ensure_2d=False, dtype=None, input_name="y")
        if self.output == "last":
            if len(y_rows) != len(X):
                raise ValueError(f"y holds {len(y_rows)} targets, X holds {len(X)} "
                                 "sequences.")
        self._target_lengths = target_lengths
        return X, y_rows

    def _check_X(self, X):
        check_fitted(self)
        dtype = self._network.dtype
        if isinstance(X, Ragged):
            ragged = X
        else:
            plain = cast_input(self, getattr(X, "dtype", dtype), dtype,
                               lambda: self._plain_sequences(X, dtype))
            if plain is not None:
                return plain
            ragged = self._sequences(X, reset=False)
        return cast_input(self, ragged.data.dtype, dtype, lambda: ragged.astype(dtype))

    def _plain_rows(self, X, y):
        """Plain sequences X (``_plain_sequences``, in X's own dtype, as the
        checks keep it: a regressor's targets are cast to it) and y's target
        rows where y has the shape of the targets: one per sequence, or with
        output='sequence' (n_sequences, n_steps, ...). Sets
        ``_target_lengths`` as ``_validate_X_y`` does."""
        X = self._plain_sequences(X, None)
        if X is None:
            return None
        n = len(X)
        if self.output == "last":
            if len(y) != n:
                return None
            rows, lengths = y, np.ones(n, dtype=np.intp)
        else:
            if y.ndim < 2 or y.shape[:2] != (n, int(X.lengths[0])):
                return None
            rows, lengths = y.reshape((len(X.data),) + y.shape[2:]), X.lengths
        self._target_lengths = lengths
        return X, rows

    def _plain_sequences(self, X, dtype):
        """What ``_sequences`` (then the cast to ``dtype``; None: X's own)
        makes of an X that passes every check as it is, by the shape alone:
        an array (n_sequences, n_steps, n_features) of the fitted n_features,
        or for a model fitted on a 2-D table, one of the fitted width. None
        for any other X, which takes the full checks."""
        if not plain_float_array(self, X, (2, 3)):
            return None
        if X.ndim == 3:
            n, t, f = X.shape
            if f != self._n_step_features or not (
                    self._input_kind == "sequences" or f == 1):
                return None
        else:
            (n, t), f = X.shape, 1
            if self._input_kind != "table" or t != self.n_features_in_:
                return None
        data = np.ascontiguousarray(X.reshape(n * t, f), dtype=dtype)
        return Ragged(data, np.full(n, t))

    def _target_state(self):
        meta, arrays = super()._target_state()
        meta = dict(meta, input_kind=self._input_kind, n_step_features=self._n_step_features)
        return meta, arrays

    def _fits_sample_shape(self, shape):
        # a sample is one step; 2-D input counts its steps as n_features_in_
        if shape != (self._n_step_features,):
            return False
        if self._input_kind == "table":
            return shape == (1,)
        return self.n_features_in_ == shape[0]

    def _restore_target_state(self, meta, arrays, n_outputs):
        if (not isinstance(meta, dict) or meta.get("input_kind") not in ("table", "sequences")
                or not isinstance(meta.get("n_step_features"), int)):
            raise ValueError("missing input layout")
        self._input_kind = meta["input_kind"]
        self._n_step_features = meta["n_step_features"]
        super()._restore_target_state(meta, arrays, n_outputs)
