"""Vanilla RNNs trained by backpropagation through time, as sklearn estimators."""
import numbers
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils._set_output import _get_output_config
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import _check_sample_weight

from ._base import Backprop, BackpropEstimator, EstimatorT
from ._params import InvalidParameterError, _options, store_init_params
from ._registry import loadable
from ._sequence_input import SequenceInputMixin
from ._sequences import ClassCodes, Ragged, RNNNetwork, StepWeights, pack
from ._targets import (ClassifierTargetsMixin, RegressorTargetsMixin, _class_codes,
                       _finite_outputs, check_class_weight, is_stochastic)
from ._typing import ArrayLike, Predictions, SequencesLike


class _RNNMixin(SequenceInputMixin):
    """Network, BPTT options and sequence-shaped outputs shared by the RNN
    estimators (placed before the target mixins, whose methods it extends);
    reading X and y is :class:`SequenceInputMixin`'s.
    """

    _architecture_params = ("hidden_size", "nonlinearity", "output", "bptt_steps", "loss")

    def _validate_params(self):
        if (not isinstance(self.hidden_size, numbers.Integral)
                or isinstance(self.hidden_size, bool) or self.hidden_size < 1):
            raise InvalidParameterError(f"hidden_size must be a positive int; got {self.hidden_size!r}.")
        _options(self, "nonlinearity", {"tanh", "relu", "logistic"})
        _options(self, "output", {"sequence", "last"})
        if self.clip_grad_norm is not None and not (
                isinstance(self.clip_grad_norm, numbers.Real) and self.clip_grad_norm > 0):
            raise InvalidParameterError(f"clip_grad_norm must be None or a positive float; got "
                             f"{self.clip_grad_norm!r}.")
        if not isinstance(self.restore_best, (bool, np.bool_)):
            raise InvalidParameterError(f"restore_best must be a bool; got {self.restore_best!r}.")
        if self.bptt_steps is not None and not (
                isinstance(self.bptt_steps, numbers.Integral)
                and not isinstance(self.bptt_steps, bool) and self.bptt_steps >= 1):
            raise InvalidParameterError(f"bptt_steps must be None or a positive int; got "
                             f"{self.bptt_steps!r}.")
        self._validate_solver_params()

    def _prepare_fit(self, X, y, incremental, reset):
        X, Y, y_rows = super()._prepare_fit(X, y, incremental, reset)
        targets = self._ragged_targets(Y, self._target_lengths)
        if self.output == "sequence":
            y_rows = Ragged(np.asarray(y_rows), self._target_lengths).split()
        return X, targets, y_rows

    def _stratify_validation(self):
        return self.output == "last" and super()._stratify_validation()

    def _build_network(self, X, Y, theta=None):
        self.n_outputs_ = Y.shape[1]
        self.out_activation_ = self._out_activation()
        # X.shape[1]: features per step, of a Ragged or of load's (1, n_features) array
        return RNNNetwork(X.shape[1], self.hidden_size, Y.shape[1],
                          nonlinearity=self.nonlinearity, loss=self._loss_kind(),
                          last_step=self.output == "last", bptt_steps=self.bptt_steps or 0,
                          dtype=X.dtype, theta=theta)

    def _init_parameters(self, net, rng):
        # PyTorch's nn.RNN/nn.Linear: uniform in ±1/sqrt(hidden_size)
        # (±1/sqrt(fan_in) for the output layer); biases likewise.
        for name, value in net.parameters().items():
            fan_in = self.hidden_size if name != "weight_out" and name != "bias_out" else \
                net.layers[1].n_in
            bound = 1.0 / np.sqrt(fan_in)
            value[...] = rng.uniform(-bound, bound, value.shape)

    # -------------------------------------------------------------- outputs
    def _unflatten(self, rows, X):
        """Per-step rows back into the shape of the targets."""
        if self.output == "last":
            return rows
        if len(X) and (X.lengths == X.lengths[0]).all():
            # one length: a view of the rows, no copy
            return rows.reshape((len(X), int(X.lengths[0])) + rows.shape[1:])
        return Ragged(rows, X.lengths).split()

    def _per_sequence(self, rows_of, X):
        """``rows_of`` (a predict method of the tabular mixins) on the checked
        sequences X, in the shape of the targets."""
        X = self._check_X(X)
        return self._unflatten(rows_of(X), X)

    def _backprop_batch(self, X, y, sample_weight, dtype):
        X = self._check_X(X).astype(dtype)
        y_rows, lengths = self._targets(y, X)
        if len(y_rows) != lengths.sum():
            raise ValueError(f"y holds {len(y_rows)} targets, X holds {len(X)} sequences.")
        Y = self._encode_targets(y_rows)
        self._check_n_outputs(Y)
        targets = Ragged(np.ascontiguousarray(Y, dtype=dtype), lengths)
        sample_weight = self._sample_weights(sample_weight, X, y_rows, dtype)
        return pack(X, np.arange(len(X)), targets, sample_weight)

    def backprop(self, X: SequencesLike, y: SequencesLike,
                 sample_weight: ArrayLike | None = None) -> Backprop:
        """One forward pass and BPTT on (X, y) without changing the model.

        Parameters
        ----------
        X : sequences, as for ``fit``
        y : targets, as for ``fit``
        sample_weight : array-like of shape (n_sequences,), default=None

        Returns
        -------
        result : fastbp.Backprop
            ``.loss``, ``.gradients`` (keys of ``parameters_``) and ``.deltas``:
            δ_t = dloss/dz_t of every step (the rows of the sequences still
            running at step t, longest first), then the output layer's δ.
        """
        # the base signature names tabular input; _prepare_backprop reads sequences
        return super().backprop(X, y, sample_weight)  # type: ignore[arg-type]

    def fit(self: EstimatorT, X: SequencesLike, y: SequencesLike,
            sample_weight: ArrayLike | None = None, *, X_val: SequencesLike | None = None,
            y_val: SequencesLike | None = None,
            sample_weight_val: ArrayLike | None = None) -> EstimatorT:
        """Train the RNN by backpropagation through time.

        Parameters
        ----------
        X : array-like of shape (n_sequences, n_steps, n_features), list of \
arrays of shape (n_steps_i, n_features), or array of shape (n_sequences, n_steps)
            The input sequences (the 2-D form is read as univariate sequences).
        y : array-like
            With ``output='last'``: shape (n_sequences,) (or (n_sequences,
            n_outputs) for the regressor); with ``output='sequence'``: one
            target per step, shape (n_sequences, n_steps[, n_outputs]) or a
            list of arrays.
        sample_weight : array-like of shape (n_sequences,), default=None
        X_val : sequences, as X (ragged lists too), default=None
            Validation sequences, scored after every epoch and watched by
            early stopping instead of a split of X; see
            :meth:`fastbp.MLPClassifier.fit`.
        y_val : targets of X_val, as y, default=None
        sample_weight_val : array-like of shape (n_val_sequences,), default=None

        Returns
        -------
        self : object
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False,
                         validation=(X_val, y_val, sample_weight_val))

    def _step_weights(self, sample_weight, lengths):
        """Per-sequence weights spread over every predicted step."""
        if sample_weight is None or self.output != "sequence":
            return sample_weight
        if isinstance(sample_weight, StepWeights):
            return sample_weight.data
        sample_weight = np.asarray(sample_weight)
        if sample_weight.shape != (len(lengths),):
            raise ValueError(f"sample_weight.shape == {sample_weight.shape}, expected "
                             f"({len(lengths)},) (one weight per sequence).")
        return np.repeat(sample_weight, lengths)

    def _validation_targets(self, y, X):
        y_rows, lengths = self._targets(y, X)
        Y, y_rows = super()._validation_targets(y_rows, X)
        if len(Y) != lengths.sum():
            raise ValueError(f"y holds {len(Y)} targets, X holds {len(X)} sequences.")
        if self.output == "sequence":  # per sequence, as _prepare_fit gives them
            y_rows = Ragged(np.asarray(y_rows), lengths).split()
        return self._ragged_targets(Y, lengths), y_rows

    def _ragged_targets(self, Y, lengths):
        """Training targets grouped by sequence: rows, or class codes
        (RNNClassifier's ``_training_targets``)."""
        if Y.ndim == 1:
            return ClassCodes(Y, lengths, len(self.classes_))
        return Ragged(Y, lengths)

    def _sample_weights(self, sample_weight, X, y, dtype):
        # With a target per step, class weights weigh each step: its
        # sequence's sample_weight times its class's weight.
        # (getattr: RNNRegressor has no class_weight)
        if self.output == "last" or getattr(self, "class_weight", None) is None:
            return super()._sample_weights(sample_weight, X, y, dtype)
        steps = np.concatenate(y) if isinstance(y, list) else y
        weights = np.repeat(_check_sample_weight(sample_weight, X, dtype=np.float64),
                            X.lengths)
        weights = weights * self._class_weights_of(steps, weights)
        return StepWeights(weights.astype(dtype, copy=False), X.lengths)

    if TYPE_CHECKING:  # transform is HiddenFeaturesMixin's (there set_output wraps it)
        def transform(self, X: SequencesLike) -> Predictions:  # type: ignore[override]
            ...

    def _hidden_features(self, X):
        if self.output == "sequence" and _get_output_config("transform", self)["dense"] \
                != "default":
            raise ValueError(
                "transform gives one row of hidden state per step with "
                "output='sequence', which set_output cannot put in a DataFrame; use "
                "set_output(transform='default'), or output='last' for one row per "
                "sequence.")
        return self._unflatten(super()._hidden_features(X), X)

    def _validation_score(self, outputs, y, sample_weight):
        # outputs and sample_weight come one per predicted row (step)
        y_true = np.concatenate(y) if self.output == "sequence" else y
        return super()._validation_score(outputs, y_true, sample_weight)

    def score(self, X: SequencesLike, y: SequencesLike,
              sample_weight: ArrayLike | None = None) -> float:
        """Accuracy (classifier) or R² (regressor) over every predicted step,
        or every sequence with ``output='last'``.

        Parameters
        ----------
        X : sequences, as for ``fit``
        y : targets, as for ``fit``
        sample_weight : array-like of shape (n_sequences,), default=None

        Returns
        -------
        score : float
        """
        X = self._check_X(X)
        y_rows, lengths = self._targets(y, X)
        return self._score_rows(X, y_rows, self._step_weights(sample_weight, lengths))


def _partial_fit_doc(more=""):
    """Give an RNN's partial_fit its docstring: the sequences' parameters,
    then ``more`` (the classifier's) after sample_weight's line."""
    def document(method):
        method.__doc__ = f"""Update the model with one epoch over the given sequences.

        Parameters
        ----------
        X : sequences, as for ``fit``
        y : array-like or list of arrays, as for ``fit``
        sample_weight : array-like of shape (n_sequences,), default=None{more}

        Returns
        -------
        self : object
        """
        return method
    return document


_RNN_DOC_PARAMS = """
    hidden_size : int, default=100
        Units of the hidden state.
    nonlinearity : {'tanh', 'relu', 'logistic'}, default='tanh'
        f in h_t = f(x_t W_ih + h_{t-1} W_hh + b_h).
    output : {'last', 'sequence'}, default='last'
        'sequence': a target at every step (synchronous seq2seq); 'last':
        one target per sequence, read from its last step.
    clip_grad_norm : float, default=None
        Clip the global L2 norm of the gradient to this before each update.
    bptt_steps : int, default=None
        None: full BPTT; k: truncated BPTT, the gradient does not flow back
        across windows of k steps (the forward pass is not cut).
    n_iter_no_change : int, inf or 'auto', default='auto'
        Epochs without an improvement by ``tol`` (of the training loss, or
        of the validation score with early stopping) before training stops.
        'auto' is half of ``max_iter`` and at least 10: an RNN trained with
        Adam often sits on a plateau or recovers from a spike of its loss
        for more than the 10 epochs of sklearn's MLP default, and stopping
        there leaves it half trained (10 and ``restore_best=False`` give the
        MLP's rule).
    restore_best : bool, default=True
        Without early stopping, end with the parameters of the epoch of
        lowest training loss of this fit rather than those of the last
        epoch, so that a late spike of the loss is not what the model keeps
        (``loss_`` and the curves still record every epoch). Early stopping
        always ends with the parameters of the best validation score.
    solver, alpha, batch_size, learning_rate, learning_rate_init, power_t, \
max_iter, shuffle, random_state, tol, verbose, warm_start, momentum, \
nesterovs_momentum, early_stopping, validation_fraction, beta_1, beta_2, \
epsilon, max_fun, n_jobs
        As for :class:`fastbp.MLPClassifier`; a sample is a sequence.
        ``alpha`` penalizes weight_ih, weight_hh and weight_out with
        alpha·||W||²/(2·n_sequences).
"""


@loadable
class RNNClassifier(_RNNMixin, ClassifierTargetsMixin, ClassifierMixin, BackpropEstimator):
    __doc__ = """Vanilla RNN classifier trained by backpropagation through time.

    Its stopping defaults are fastbp's own, not those of sklearn's MLP
    (``n_iter_no_change='auto'``, ``restore_best=True``): the loss of an RNN
    trained with Adam plateaus and spikes, and the MLP's rule stops it half
    trained.

    The data loss is the mean cross-entropy over every predicted step.

    Parameters
    ----------""" + _RNN_DOC_PARAMS + """    class_weight : dict, 'balanced' or None, default=None
        As for :class:`fastbp.MLPClassifier`. With ``output='sequence'`` it
        weighs every step by the class of its target (times its sequence's
        sample_weight), 'balanced' counting steps; the L2 term is then
        normalized by the sum of the sequences' weights, a sequence weighing
        the mean of its steps' weights.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    parameters_ : dict of str to ndarray
        ``weight_ih`` (n_features, hidden_size), ``weight_hh`` (hidden_size,
        hidden_size), ``bias_h``, ``weight_out`` (hidden_size, n_outputs),
        ``bias_out``: live views of the weights.
    loss_, loss_curve_, best_loss_, validation_scores_, validation_loss_curve_, \
best_validation_score_, n_iter_, t_, n_features_in_, n_outputs_, out_activation_
        As for :class:`fastbp.MLPClassifier`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbp import RNNClassifier
    >>> X = np.random.default_rng(0).standard_normal((40, 6, 2))
    >>> y = (X[:, :, 0].sum(1) > 0).astype(int)
    >>> RNNClassifier(hidden_size=8, max_iter=5).fit(X, y).predict(X[:3]).shape
    (3,)
    """

    def __init__(self, hidden_size=100, nonlinearity="tanh", output="last", *,
                 clip_grad_norm=None, bptt_steps=None, loss="log_loss", solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change="auto", max_fun=15000, n_jobs=None, restore_best=True,
                 class_weight=None):
        store_init_params(self, locals())

    def _validate_params(self):
        _options(self, "loss", {"log_loss", "squared_error"})
        check_class_weight(self)
        super()._validate_params()

    def _training_targets(self, y, dtype):
        # The softmax cross-entropy reads each step's class (4 bytes) where
        # the one-hot row takes n_classes floats, to the same bits: no one-hot
        # matrix of every step is built (8 MB for 32,000 steps of 65 float32
        # classes), and a batch's targets are gathered 4 bytes a step.
        if y.ndim == 1 and self._out_activation() == "softmax":
            return _class_codes(self.classes_, y).astype(np.int32)
        return super()._training_targets(y, dtype)

    def _score_rows(self, X, y_rows, weights):
        return accuracy_score(y_rows, self._predict_encoded(X), sample_weight=weights)

    # Ragged input gives a list of arrays, where the tabular mixins return
    # one array: hence the overrides' wider return type.
    def predict(self, X: SequencesLike) -> Predictions:  # type: ignore[override]
        """Predict classes.

        Parameters
        ----------
        X : sequences, as for ``fit``

        Returns
        -------
        y : ndarray of shape (n_sequences,), (n_sequences, n_steps), or a list
            of arrays of shape (n_steps_i,) for ragged input with
            ``output='sequence'``.
        """
        return self._per_sequence(self._predict_encoded, X)

    @available_if(is_stochastic)
    @_partial_fit_doc("""
            Multiplied by the weights of ``class_weight`` (a dict; 'balanced'
            raises ValueError, since it needs the whole y).
        classes : array of shape (n_classes,), default=None
            Every class that will ever appear; required on the first call.""")
    def partial_fit(self: EstimatorT, X: SequencesLike, y: ArrayLike,  # type: ignore[override]
                    sample_weight: ArrayLike | None = None,
                    classes: ArrayLike | None = None) -> EstimatorT:
        return ClassifierTargetsMixin.partial_fit(self, X, y, sample_weight=sample_weight,
                                                  classes=classes)

    def predict_proba(self, X: SequencesLike) -> Predictions:  # type: ignore[override]
        """Class probabilities, in the shape of the targets plus a class axis.

        Parameters
        ----------
        X : sequences, as for ``fit``

        Returns
        -------
        proba : ndarray of shape (n_sequences[, n_steps], n_classes) or list
        """
        return self._per_sequence(partial(ClassifierTargetsMixin.predict_proba, self), X)

    def predict_log_proba(self, X: SequencesLike) -> Predictions:  # type: ignore[override]
        """Log of class probabilities, computed from the logits.

        Parameters
        ----------
        X : sequences, as for ``fit``

        Returns
        -------
        log_proba : ndarray or list, as for :meth:`predict_proba`
        """
        return self._per_sequence(partial(ClassifierTargetsMixin.predict_log_proba, self), X)

@loadable
class RNNRegressor(_RNNMixin, RegressorTargetsMixin, RegressorMixin, BackpropEstimator):
    __doc__ = """Vanilla RNN regressor trained by backpropagation through time.

    Its stopping defaults are fastbp's own, not those of sklearn's MLP
    (``n_iter_no_change='auto'``, ``restore_best=True``): the loss of an RNN
    trained with Adam plateaus and spikes, and the MLP's rule stops it half
    trained.

    The data loss is the mean half squared error over every predicted step.

    Parameters
    ----------""" + _RNN_DOC_PARAMS + """
    Attributes
    ----------
    parameters_ : dict of str to ndarray
        ``weight_ih``, ``weight_hh``, ``bias_h``, ``weight_out``, ``bias_out``.
    loss_, loss_curve_, best_loss_, validation_scores_, validation_loss_curve_, \
best_validation_score_, n_iter_, t_, n_features_in_, n_outputs_, out_activation_
        As for :class:`fastbp.MLPRegressor`.
    """

    def __init__(self, hidden_size=100, nonlinearity="tanh", output="last", *,
                 clip_grad_norm=None, bptt_steps=None, loss="squared_error", solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change="auto", max_fun=15000, n_jobs=None, restore_best=True):
        store_init_params(self, locals())

    def _validate_params(self):
        _options(self, "loss", {"squared_error", "poisson"})
        super()._validate_params()

    def _score_rows(self, X, y_rows, weights):
        return r2_score(y_rows, _finite_outputs(self._predict_checked(X)), sample_weight=weights)

    @available_if(is_stochastic)
    @_partial_fit_doc()
    def partial_fit(self: EstimatorT, X: SequencesLike, y: ArrayLike,  # type: ignore[override]
                    sample_weight: ArrayLike | None = None) -> EstimatorT:
        return RegressorTargetsMixin.partial_fit(self, X, y, sample_weight=sample_weight)

    def predict(self, X: SequencesLike) -> Predictions:  # type: ignore[override]
        """Predict targets.

        Parameters
        ----------
        X : sequences, as for ``fit``

        Returns
        -------
        y : ndarray or list of arrays, in the shape of the targets
        """
        return self._per_sequence(self._predict_checked, X)
