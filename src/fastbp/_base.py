"""What every fastbp estimator shares: solver hyperparameters, the fit driver,
parameter views and backprop inspection. No arithmetic lives here."""
import copy
import numbers
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import (
    _check_sample_weight, check_consistent_length, check_is_fitted,
)

from ._features import HiddenFeaturesMixin
from ._inputs import cast_input, check_fitted
from ._params import InvalidParameterError, _boolean, _interval, _options
from ._persist import save as save_model
from ._lbfgs import fit_lbfgs
from ._optimizers import STOCHASTIC_SOLVERS
from ._solvers import RECORD_ATTRIBUTES, SolverSettings, TrainingRecord, fit_stochastic
from ._threads import blas_single_thread, effective_n_threads
from ._typing import ArrayLike, FileLike, MatrixLike
from ._views import ParameterDict


@dataclass
class Backprop:
    """What one forward and backward pass computed.

    Attributes
    ----------
    loss : float
        Mean data loss plus the L2 term, as minimized by ``fit``.
    gradients : dict of str to ndarray
        dloss/dparameter, with the keys and shapes of ``parameters_``.
    deltas : list of ndarray
        δ = dloss/dz for each layer's pre-activation z, first layer first.
    """

    loss: float
    gradients: dict
    deltas: list


# Spare arrays that hold a fitted model's parameters and optimizer state while
# training continues (warm_start, partial_fit), so that a call that fails can
# put them back. Kept beside the network rather than on the estimator (so they
# are not pickled) and reused from call to call: fresh copies each time cost
# page faults that can exceed a small partial_fit's arithmetic.
_SPARES: "weakref.WeakKeyDictionary[object, list[np.ndarray]]" = weakref.WeakKeyDictionary()


def _copy_to_spares(net, arrays):
    spares = _SPARES.get(net)
    if spares is None or [(s.shape, s.dtype) for s in spares] != [
            (a.shape, a.dtype) for a in arrays]:
        spares = _SPARES[net] = [np.empty_like(a) for a in arrays]
    for spare, a in zip(spares, arrays):
        np.copyto(spare, a)
    return spares


@contextmanager
def _restored_on_error(est, in_place=False):
    """Put back every attribute of ``est`` when the block raises.

    Fitted lists (``loss_curve_``, ...) are put back too; with ``in_place``,
    so are the parameters and the optimizer state, which training continued
    from the fitted model changes in place.
    """
    saved = dict(est.__dict__)
    lists = {k: list(v) for k, v in saved.items() if isinstance(v, list)}
    net, optimizer = saved.get("_network"), saved.get("_optimizer")
    live = []
    if in_place and net is not None:
        opt_state = {} if optimizer is None else dict(vars(optimizer))
        live = [net.theta] + [v for v in opt_state.values() if isinstance(v, np.ndarray)]
        spares = _copy_to_spares(net, live)
    try:
        yield
    except BaseException:
        est.__dict__.clear()
        est.__dict__.update(saved, **lists)
        if live:
            if optimizer is not None:
                vars(optimizer).update(opt_state)
            for a, spare in zip(live, spares):
                np.copyto(a, spare)
        raise


def _same_settings(a, b):
    """Whether two dicts of constructor parameters are equal (arrays by value)."""
    if a.keys() != b.keys():
        return False
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            try:
                if not np.array_equal(np.asarray(x), np.asarray(y)):
                    return False
            except (TypeError, ValueError):
                return False
        elif not (x is y or x == y):
            return False
    return True


class _RequiredHook:
    """A hook every estimator must define, left out: reading it raises
    NotImplementedError naming the hook and the class that lacks it."""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None) -> Any:
        if obj is None:
            return self
        raise NotImplementedError(
            f"{type(obj).__name__} does not define {self.name}, a hook that every fastbp "
            f"estimator needs (see fastbp._base.BackpropEstimator).")


#: ``fit`` and ``partial_fit`` return the estimator itself.
EstimatorT = TypeVar("EstimatorT", bound="BackpropEstimator")


class BackpropEstimator(HiddenFeaturesMixin, BaseEstimator):
    """Base class of fastbp's estimators (solver parameters as sklearn's MLP).

    Every estimator is also a transformer: ``transform`` gives the last hidden
    layer's activations, so a fitted network can feed other estimators.

    The hooks that the base classes (this one, the target mixins of
    ``_targets``, ``_features``), the solvers and the model files call:

    Required of the estimator class (its model and its input):

    - ``_architecture_params``: tuple of the parameter names ``_build_network`` reads.
    - ``_validate_X_y(X, y, reset)``: (X ready for the network, y) for fit; X is
      anything ``_batches.batch_source`` takes (PaddedImages: padded as gathered).
    - ``_check_X(X)``: X validated for prediction, in the network's dtype.
    - ``_build_network(X, Y, theta=None)``: the Network; sets ``n_outputs_``, ``out_activation_``.
    - ``_init_parameters(net, rng)``: draws the initial weights into ``net``.

    Required, and given by ``ClassifierTargetsMixin`` or ``RegressorTargetsMixin``:

    - ``_out_activation()``: name of the output activation.
    - ``_loss_kind()``: the network's loss, a key of ``LOSS_CODES``.
    - ``_prepare_fit(X, y, incremental, reset)``: (X, Y encoded targets, y as scored).
    - ``_validation_targets(y, X)``: (Y, y as scored) of a validation set.
    - ``_prepare_backprop(X, y)``: (X, Y) of one batch for ``backprop``.
    - ``_validation_score(outputs, y, sample_weight)``: float score of predict's outputs.
    - ``_stratify_validation()``: bool, whether early stopping's split is stratified.

    Optional, with defaults here (or, the last, in ``HiddenFeaturesMixin``):

    - ``_validate_params()``: raises on a bad parameter (default: the solver's).
    - ``_plain_X(X, dtype=None)``: X as ``_validate_X_y`` would give it back
      (reset=False; in ``dtype`` when given) where its checks would pass this
      very array with no warning, else None (default: None, the checks always
      run). The fast path of ``partial_fit`` and prediction.
    - ``_plain_rows(X, y)``: (X, y's target rows) as ``_validate_X_y`` would
      give them back for a plain X and an ndarray y that fits it, else None
      (default: ``_plain_X``'s X and y itself, one row per row of X).
    - ``_sample_weights(sample_weight, X, y, dtype)``: the samples' training weights.
    - ``_backprop_batch(X, y, sample_weight, dtype)``: (X, Y, sample_weight) for ``loss_and_grad``.
    - ``_fits_sample_shape(shape)``: bool, whether a model file's input shape fits.
    - ``_target_state()``: (JSON-able dict, dict of arrays) of the target encoding.
    - ``_restore_target_state(meta, arrays, n_outputs)``: rebuilds it from a model file.
    - ``_params_from_json(params)``: classmethod, constructor parameters as a model file gives them back.
    - ``_fixed_after_fit``: tuple of parameters that continued training may not change.
    - ``_hidden_features(X)``: ``transform``'s output for a checked X.
    """

    # Fitted attributes every estimator sets, declared for the type checker.
    n_outputs_: int
    out_activation_: str

    # The required hooks: a subclass that leaves one out gets an error naming it.
    (_architecture_params, _validate_X_y, _check_X, _build_network, _init_parameters,
     _out_activation, _loss_kind, _prepare_fit, _validation_targets, _prepare_backprop,
     _validation_score, _stratify_validation) = (_RequiredHook() for _ in range(12))

    def _validate_solver_params(self):
        _options(self, "solver", {"lbfgs", "sgd", "adam"})
        _interval(self, "alpha", 0)
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            _interval(self, "batch_size", 1, integer=True)
        _options(self, "learning_rate", {"constant", "invscaling", "adaptive"})
        _interval(self, "learning_rate_init", 0, closed="neither")
        _interval(self, "power_t", 0)
        _interval(self, "max_iter", 1, integer=True)
        _boolean(self, "shuffle")
        _interval(self, "tol", 0)
        _boolean(self, "warm_start")
        _interval(self, "momentum", 0, 1, closed="both")
        _boolean(self, "nesterovs_momentum")
        _boolean(self, "early_stopping")
        _interval(self, "validation_fraction", 0, 1, closed="left")
        _interval(self, "beta_1", 0, 1, closed="left")
        _interval(self, "beta_2", 0, 1, closed="left")
        _interval(self, "epsilon", 0, closed="neither")
        if isinstance(self.n_iter_no_change, str):
            if self.n_iter_no_change != "auto":
                raise InvalidParameterError(
                    f"The 'n_iter_no_change' parameter of {type(self).__name__} must be an "
                    f"int >= 1, inf or 'auto'. Got {self.n_iter_no_change!r} instead.")
        elif self.n_iter_no_change != np.inf:
            _interval(self, "n_iter_no_change", 1, integer=True)
        _interval(self, "max_fun", 1, integer=True)
        if not (isinstance(self.verbose, (bool, np.bool_))
                or (isinstance(self.verbose, numbers.Integral) and self.verbose >= 0)):
            raise InvalidParameterError(
                f"The 'verbose' parameter of {type(self).__name__} must be a bool or an int "
                f">= 0. Got {self.verbose!r} instead.")
        if self.n_jobs is not None:
            _interval(self, "n_jobs", None, integer=True)
            if self.n_jobs == 0:
                raise InvalidParameterError(
                    "The 'n_jobs' parameter must be None or a nonzero int. Got 0.")

    def _validate_params(self):
        self._validate_solver_params()

    def _plain_X(self, X, dtype=None):
        return None

    def _plain_rows(self, X, y):
        X = self._plain_X(X)
        if X is None or len(X) != len(y):
            return None
        return X, y

    # ------------------------------------------------------------------ fit
    def _fit(self, X, y, sample_weight=None, incremental=False, validation=(None, None, None)):
        # A call that raises leaves the model as it was: checking X and y
        # records their layout (n_features_in_, classes_, ...) before every
        # check has passed, and a diverging fit must not hand back NaN weights.
        continuing = hasattr(self, "_network") and (
            incremental or self.warm_start is True or self.warm_start is np.True_)
        with _restored_on_error(self, in_place=continuing):
            self._fit_unguarded(X, y, sample_weight, incremental, validation)
        return self

    def _fit_unguarded(self, X, y, sample_weight, incremental, validation=(None, None, None)):
        self._validate_params()
        first_pass = not hasattr(self, "_network") or (not self.warm_start and not incremental)
        X, Y, y_raw = self._prepare_fit(X, y, incremental=incremental, reset=first_pass)
        if not first_pass:
            if tuple(X.shape[1:]) != tuple(self._sample_shape):
                # the same number of features in another layout (LeNet-5's
                # images): the fitted network's buffers are not for it
                raise ValueError(
                    f"X holds samples of shape {tuple(X.shape[1:])}, but the model was "
                    f"fitted on samples of shape {tuple(self._sample_shape)}; warm_start "
                    f"and partial_fit continue the fitted network.")
            X = cast_input(self, X.dtype, self._network.dtype,
                           lambda: X.astype(self._network.dtype, copy=False))
            Y = cast_input(self, Y.dtype, self._network.dtype,
                           lambda: Y.astype(self._network.dtype, copy=False), "y")
        sample_weight = self._sample_weights(sample_weight, X, y_raw, X.dtype)
        if not first_pass and Y.shape[1] != self._network.n_outputs:
            raise ValueError(
                f"y has {Y.shape[1]} outputs but the fitted network has "
                f"{self._network.n_outputs}; refit without warm_start."
            )
        self._random_state = check_random_state(self.random_state)

        if first_pass:
            self._sample_shape = tuple(X.shape[1:])
            self._network = self._build_network(X, Y)
            self._built_with = self._architecture()
            self._init_parameters(self._network, self._random_state)
            self._reset_training_state()
        else:
            self._network = self._continued_network(X, Y)

        validation = self._prepare_validation(*validation)
        n_threads = effective_n_threads(self.n_jobs)
        # the hyperparameters are attributes of the same names (sklearn's rule)
        settings = SolverSettings.from_params(vars(self))
        record = self._training_record()
        with blas_single_thread():
            if self.solver in STOCHASTIC_SOLVERS:
                record = fit_stochastic(
                    self._network, X, Y, sample_weight, y_raw, record, settings,
                    self._random_state, n_threads, incremental=incremental,
                    validation=validation, score=self._validation_score,
                    stratify=self.early_stopping and self._stratify_validation())
            else:
                record = fit_lbfgs(self._network, X, Y, sample_weight, record, settings,
                                   n_threads, validation=validation,
                                   score=self._validation_score)
        for field, name in RECORD_ATTRIBUTES.items():
            setattr(self, name, getattr(record, field))

    def _training_record(self):
        """The record of training so far, from the fitted attributes (copies
        of the lists, so that the solver extends its own)."""
        values = {field: getattr(self, name, None) for field, name in RECORD_ATTRIBUTES.items()}
        return TrainingRecord(**{k: list(v) if isinstance(v, list) else v
                                 for k, v in values.items()})

    def _prepare_validation(self, X_val, y_val, sample_weight_val):
        """The validation set given to fit, checked against the network being
        trained, as (X, Y, y, sample_weight) in the forms ``_prepare_fit``
        gives the training set; None when none is given."""
        if X_val is None and y_val is None:
            if sample_weight_val is not None:
                raise ValueError("sample_weight_val is provided, but X_val and y_val "
                                 "were not provided.")
            return None
        if y_val is None:
            raise ValueError("X_val is provided, but y_val was not provided.")
        if X_val is None:
            raise ValueError("y_val is provided, but X_val was not provided.")
        # the checks name X and y: say which data they were about
        try:
            X = self._check_X(X_val)
        except ValueError as exc:
            raise ValueError(f"X_val does not fit the model being trained: {exc}") from exc
        try:
            Y, y = self._validation_targets(y_val, X)
            self._check_n_outputs(Y)
        except ValueError as exc:
            raise ValueError(f"y_val does not fit the model being trained: {exc}") from exc
        # shape[0]: samples (sequences) of an array, sparse matrix or Ragged alike
        if Y.shape[0] != X.shape[0]:
            raise ValueError(f"X_val holds {X.shape[0]} samples, but y_val holds "
                             f"{Y.shape[0]}.")
        if X.shape[0] < 2:
            raise ValueError(f"X_val holds {X.shape[0]} sample(s); a validation score "
                             "needs at least 2 (R² of one sample is undefined).")
        # class weights count on the validation set too, as in sklearn's
        # HistGradientBoosting
        try:
            sample_weight_val = self._sample_weights(sample_weight_val, X, y, X.dtype)
        except ValueError as exc:
            raise ValueError(f"sample_weight_val: {exc}") from exc
        return X, Y, y, sample_weight_val

    # Parameters that may not change while training continues even where the
    # weights keep their shapes (LeNet-5's connection table).
    _fixed_after_fit: tuple = ()

    def _architecture(self):
        """The parameters ``_build_network`` reads, by name (copies, so that
        changing a list in place counts as a change)."""
        return {name: copy.deepcopy(getattr(self, name)) for name in self._architecture_params}

    def _continued_network(self, X, Y):
        """The fitted network, for training that continues it (warm_start,
        partial_fit). sklearn reads the activation and loss afresh on every
        pass, so a changed one is taken here too, on the fitted weights; a
        change that would reshape the weights cannot be, and raises."""
        wanted = self._architecture()
        if _same_settings(self._built_with, wanted):
            return self._network
        changed = [k for k in wanted
                   if not _same_settings({k: self._built_with[k]}, {k: wanted[k]})]
        fitted = self._network
        rebuilt = self._build_network(X, Y)
        shapes = {k: v.shape for k, v in fitted.parameters().items()}
        reshaped = {k: v.shape for k, v in rebuilt.parameters().items()} != shapes
        if reshaped or any(k in self._fixed_after_fit for k in changed):
            raise ValueError(
                f"{', '.join(changed)} changed since the model was fitted, which would "
                f"change the weights it has; warm_start and partial_fit continue the fitted "
                f"weights. Fit a fresh model (warm_start=False) to change them.")
        rebuilt.theta[...] = fitted.theta
        self._built_with = wanted
        return rebuilt

    def _reset_training_state(self):
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        self._no_improvement_count = 0
        # The solver starts the validation records when it has a validation set.
        self.validation_loss_curve_ = None
        if self.solver == "lbfgs":
            # L-BFGS sees the whole training set and no validation split;
            # best_loss_ is its lowest loss, set when it ends.
            self.validation_scores_ = self.best_validation_score_ = self.best_loss_ = None
        elif self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = np.inf
        # Only early stopping goes back to the best weights: no copy otherwise.
        self._best_theta = self._network.theta.copy() if self.early_stopping else None

    def _n_threads(self):
        return effective_n_threads(self.n_jobs)

    def _sample_weights(self, sample_weight, X, y, dtype):
        """The training weights of the samples of X (labels y) in ``dtype``:
        sample_weight checked against X, None staying None; classifiers
        multiply in their class weights."""
        if sample_weight is None:
            return None
        return _check_sample_weight(sample_weight, X, dtype=dtype)

    def _forward(self, X, logits=False):
        """Outputs (or logits) of the network for raw input X."""
        check_fitted(self)
        return self._network.predict(self._check_X(X), self._n_threads(), logits=logits)

    def save(self, path: FileLike) -> None:
        """Save the fitted model to ``path`` in fastbp's safe format (no pickle).

        The file is an .npz archive of arrays plus JSON metadata, written to
        exactly ``path`` (no suffix is added); read it back with
        ``fastbp.load(path)``. Pickle and joblib keep working too.

        Parameters
        ----------
        path : str, path-like or binary file object
            Destination, any file name; a file object must be open for
            binary writing (``"wb"``) and is left open.
        """
        save_model(self, path)

    def _fits_sample_shape(self, shape):
        """Whether ``n_features_in_`` agrees with a network input of ``shape``
        (one sample, as stored by ``save``)."""
        return self.n_features_in_ == int(np.prod(shape))

    def _target_state(self):
        """(JSON-able dict, dict of arrays) describing the target encoding."""
        return {}, {}

    def _restore_target_state(self, meta, arrays, n_outputs):
        """Rebuild the target encoding from ``_target_state``'s output."""

    @classmethod
    def _params_from_json(cls, params):
        """Constructor parameters as a model file's JSON gives them back
        (tuples come back as lists), in the types the estimator keeps."""
        return params

    # ----------------------------------------------------------- inspection
    @property
    def parameters_(self):
        """dict of str to ndarray: live views of every parameter, by name.

        Writing into an array, or assigning an array of the same shape to a
        key, changes the model.
        """
        check_is_fitted(self, "_network")
        return ParameterDict(self._network.parameters())

    def backprop(self, X: MatrixLike, y: ArrayLike,
                 sample_weight: ArrayLike | None = None) -> Backprop:
        """Run one forward and backward pass on (X, y) without changing the model.

        Parameters
        ----------
        X : array-like
            Input, as for ``fit``.
        y : array-like
            Targets, as for ``fit``.
        sample_weight : array-like of shape (n_samples,), default=None
            Multiplied by the weights of ``class_weight``, as in ``fit``.

        Returns
        -------
        result : Backprop
            ``.loss``, ``.gradients`` (keys and shapes of ``parameters_``) and
            ``.deltas`` (dloss/dz of each layer, first layer first).
        """
        check_is_fitted(self, "_network")
        net = self._network
        X, Y, sample_weight = self._backprop_batch(X, y, sample_weight, net.dtype)
        return run_backprop(net, X, Y, sample_weight, self.alpha, self._n_threads())

    def _backprop_batch(self, X, y, sample_weight, dtype):
        """(X, Y, sample_weight) of one batch, ready for ``loss_and_grad``."""
        X, Y = self._prepare_backprop(X, y)
        check_consistent_length(X, Y)
        self._check_n_outputs(Y)
        X = np.ascontiguousarray(X, dtype=dtype)
        Y = np.ascontiguousarray(Y, dtype=dtype)
        sample_weight = self._sample_weights(sample_weight, X, y, dtype)
        return X, Y, sample_weight

    def _check_n_outputs(self, Y):
        if Y.shape[1] != self._network.n_outputs:
            raise ValueError(
                f"y has {Y.shape[1]} outputs but the fitted network has "
                f"{self._network.n_outputs}."
            )


def run_backprop(net, X, Y, sample_weight, alpha, n_threads):
    """One pass of ``net`` on (X, Y), returning a :class:`Backprop` of copies."""
    record = []
    ws = net.workspace(net.batch_rows(X))
    saved_grad = net.grad.copy()
    with blas_single_thread():
        loss = net.loss_and_grad(X, Y, sample_weight, alpha, ws, n_threads, record=record)
    gradients = {k: v.copy() for k, v in net.gradients().items()}
    net.grad[:] = saved_grad
    return Backprop(loss=float(loss), gradients=gradients, deltas=record)


# The target and RNN mixins are written against BackpropEstimator's interface
# (the hooks listed in its docstring, which it declares).
# To the type checker they derive from it; at run time from object, so each
# estimator's method resolution order stays as its class statement says.
if TYPE_CHECKING:
    EstimatorMixin = BackpropEstimator
else:
    EstimatorMixin = object
