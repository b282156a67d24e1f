"""Multi-layer perceptrons: drop-in replacements for sklearn's MLPClassifier and
MLPRegressor, trained on fastbp's kernels."""
import numbers

import numpy as np
import scipy.sparse as sp
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from ._base import BackpropEstimator, EstimatorT
from ._inputs import cast_input, check_fitted, known_finite, plain_float_array
from ._layers import Dense
from ._dense_network import DenseNetwork
from ._params import InvalidParameterError, _options, store_init_params
from ._targets import ClassifierTargetsMixin, RegressorTargetsMixin, check_class_weight
from ._registry import loadable
from ._typing import ArrayLike, MatrixLike
from ._views import ParameterList


def _hidden_sizes(hidden_layer_sizes):
    sizes = hidden_layer_sizes
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
        sizes = [sizes]
    sizes = list(sizes)
    for s in sizes:
        if not isinstance(s, numbers.Integral) or isinstance(s, bool) or s <= 0:
            raise InvalidParameterError(
                "The 'hidden_layer_sizes' parameter must be an int >= 1 or a sequence of "
                f"them. Got {hidden_layer_sizes!r} instead.")
    return [int(s) for s in sizes]


class _BaseMLP(BackpropEstimator):
    """Shared parts of MLPClassifier and MLPRegressor."""

    _architecture_params = ("hidden_layer_sizes", "activation", "loss")

    def _validate_params(self):
        _hidden_sizes(self.hidden_layer_sizes)
        _options(self, "activation", {"identity", "logistic", "tanh", "relu"})
        _options(self, "loss", self._losses)
        self._validate_solver_params()

    @classmethod
    def _params_from_json(cls, params):
        if isinstance(params.get("hidden_layer_sizes"), list):
            params = {**params, "hidden_layer_sizes": tuple(params["hidden_layer_sizes"])}
        return params

    def _build_network(self, X, Y, theta=None):
        units = [X.shape[1]] + _hidden_sizes(self.hidden_layer_sizes) + [Y.shape[1]]
        layers = []
        for i in range(len(units) - 1):
            last = i == len(units) - 2
            layers.append(Dense(
                units[i], units[i + 1],
                activation="identity" if last else self.activation,
                weight_name=f"coef_{i}", bias_name=f"intercept_{i}",
            ))
        self.n_layers_ = len(units)
        self.n_outputs_ = Y.shape[1]
        self.out_activation_ = self._out_activation()
        return DenseNetwork(layers, self._loss_kind(), X.dtype, theta=theta)

    def _init_parameters(self, net, rng):
        # Glorot uniform, drawn in sklearn's order so the same random_state
        # starts from the same weights as sklearn's MLP.
        factor = 2.0 if self.activation == "logistic" else 6.0
        params = net.parameters()
        for i in range(self.n_layers_ - 1):
            coef = params[f"coef_{i}"]
            fan_in, fan_out = coef.shape
            bound = np.sqrt(factor / (fan_in + fan_out))
            coef[...] = rng.uniform(-bound, bound, (fan_in, fan_out))
            params[f"intercept_{i}"][...] = rng.uniform(-bound, bound, fan_out)

    @property
    def coefs_(self):
        """list of ndarray: weight matrix of each layer, live views of the model.

        Writing into an array, assigning ``coefs_[i]`` or assigning a whole
        list of arrays of the fitted shapes changes the model.
        """
        return self._layer_views("coef", "coefs_")

    @coefs_.setter
    def coefs_(self, values):
        self._layer_views("coef", "coefs_")[:] = values

    @property
    def intercepts_(self):
        """list of ndarray: bias vector of each layer, live views of the model
        (assignable as ``coefs_``)."""
        return self._layer_views("intercept", "intercepts_")

    @intercepts_.setter
    def intercepts_(self, values):
        self._layer_views("intercept", "intercepts_")[:] = values

    def _layer_views(self, kind, name):
        check_is_fitted(self, "_network")
        params = self._network.parameters()
        return ParameterList([params[f"{kind}_{i}"] for i in range(self.n_layers_ - 1)], name)

    def _validate_X_y(self, X, y, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset,
                             ensure_all_finite=not known_finite(self, X))
        if not sp.issparse(X):
            X = np.ascontiguousarray(X)
        return X, y

    def _plain_X(self, X, dtype=None):
        if plain_float_array(self, X) and X.shape[1] == self.n_features_in_:
            return cast_input(self, X.dtype, dtype,
                              lambda: np.ascontiguousarray(X, dtype=dtype))
        return None

    def _check_X(self, X):
        check_fitted(self)
        plain = self._plain_X(X, self._network.dtype)
        if plain is not None:  # what the checks below give it, without their cost
            return plain
        X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False,
                          dtype=(np.float64, np.float32))
        dtype = self._network.dtype
        return cast_input(self, X.dtype, dtype, lambda: X.astype(dtype) if sp.issparse(X)
                          else np.ascontiguousarray(X, dtype=dtype))

    def fit(self: EstimatorT, X: MatrixLike, y: ArrayLike,
            sample_weight: ArrayLike | None = None, *, X_val: MatrixLike | None = None,
            y_val: ArrayLike | None = None,
            sample_weight_val: ArrayLike | None = None) -> EstimatorT:
        """Fit the model to data matrix X and targets y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data. float32 input trains in float32, and the model
            then predicts in float32: float64 input is cast (values beyond
            float32's range are refused).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights; the loss is their weighted mean.
        X_val : {array-like, sparse matrix} of shape (n_val, n_features), default=None
            Validation data (the names of sklearn's HistGradientBoosting).
            When given, every epoch (every lbfgs iteration) appends its score
            to ``validation_scores_`` and its loss to
            ``validation_loss_curve_`` (appended to when training continues,
            as ``loss_curve_`` is); with ``early_stopping=True`` and
            solver 'sgd' or 'adam', training stops on its score instead of
            holding out ``validation_fraction`` of X, and keeps the best
            parameters. Otherwise (and always with 'lbfgs', which does not stop
            early) it is only recorded. In a :class:`~sklearn.pipeline.Pipeline`, X_val
            reaches this step as given unless the pipeline is built with
            ``transform_input=["X_val"]`` (metadata routing must be enabled).
        y_val : array-like of shape (n_val,) or (n_val, n_outputs), default=None
            Targets of X_val; a classifier's must be classes seen in y.
        sample_weight_val : array-like of shape (n_val,), default=None
            Weights of the validation samples in its score and loss.

        Returns
        -------
        self : object
            Trained model.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False,
                         validation=(X_val, y_val, sample_weight_val))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


@loadable
class MLPClassifier(ClassifierTargetsMixin, ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier trained by backpropagation.

    A drop-in for :class:`sklearn.neural_network.MLPClassifier`: the same
    parameters, defaults, fitted attributes and loss, computed by fastbp's
    multithreaded kernels.

    Parameters
    ----------
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element is the number of neurons in the ith hidden layer.
    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        Activation of the hidden layers.
    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        Weight optimizer.
    alpha : float, default=0.0001
        Strength of the L2 term alpha * ||W||² / (2 * n_samples).
    batch_size : int or 'auto', default='auto'
        Mini-batch size for sgd/adam; 'auto' is min(200, n_samples); 1 is
        online training, n_samples full-batch.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Learning-rate schedule for sgd.
    learning_rate_init : float, default=0.001
        Initial learning rate (sgd, adam).
    power_t : float, default=0.5
        Exponent of 'invscaling'.
    max_iter : int, default=200
        Maximum number of epochs (sgd, adam) or iterations (lbfgs).
    shuffle : bool, default=True
        Shuffle samples every epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds initialization, shuffling and the validation split.
    tol : float, default=1e-4
        Tolerance of the stopping rule.
    verbose : bool or int, default=False
        Print one line per epoch (loss, validation score, seconds).
    warm_start : bool, default=False
        Start from the previous solution.
    momentum : float, default=0.9
        Momentum of sgd.
    nesterovs_momentum : bool, default=True
        Use Nesterov's momentum (sgd).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` (stratified) and stop when its score
        stops improving; the best parameters are kept. With ``X_val`` and
        ``y_val`` given to :meth:`fit`, stop on their score instead. Only
        for solver 'sgd' or 'adam', as in sklearn (lbfgs ignores it).
    validation_fraction : float, default=0.1
        Share of training data held out for early stopping (unused when
        ``X_val`` is given).
    beta_1, beta_2 : float, default=0.9, 0.999
        Adam's moment decay rates.
    epsilon : float, default=1e-8
        Adam's numerical-stability constant.
    n_iter_no_change : int, inf or 'auto', default=10
        Epochs without improvement by ``tol`` before stopping; 'auto' (the
        RNNs' default) is half of ``max_iter`` and at least 10.
    max_fun : int, default=15000
        Maximum loss evaluations of lbfgs.
    loss : {'log_loss', 'squared_error'}, default='log_loss'
        Cross-entropy (softmax or logistic outputs), or the classic quadratic
        cost of backprop tutorials on logistic outputs.
    n_jobs : int, default=None
        Threads of fastbp's kernels, which also split the GEMMs among
        themselves (BLAS itself is held to one thread while fastbp runs).
        None uses every usable core, honouring OMP_NUM_THREADS; -1 is all cores.
    class_weight : dict, 'balanced' or None, default=None
        Weights of the classes, {class_label: weight} (classes left out weigh
        1); 'balanced' weighs each class n_samples / (n_classes * its count)
        in the y given to fit (counts of sample weight when sample_weight is
        given). A sample weighs its class's weight times its sample_weight,
        in the loss and in early stopping's validation score, as in sklearn's
        LogisticRegression and HistGradientBoostingClassifier. Not for
        multilabel y (ValueError), nor 'balanced' with partial_fit.

    Attributes
    ----------
    classes_ : ndarray or list of ndarray of shape (n_classes,)
    loss_ : float
    best_loss_ : float or None
        Lowest training loss of an epoch (of an iteration for lbfgs); None
        with early stopping, which keeps the best validation score instead.
    loss_curve_ : list of float
        Training loss of each epoch (of each lbfgs iteration, this fit's only).
    validation_scores_ : list of float or None
        Score (accuracy, R² for regressors) on the validation set after each
        epoch: the split of early stopping, or ``X_val`` given to fit; None
        without a validation set.
    validation_loss_curve_ : list of float or None
        Loss on the same validation set after each epoch, beside
        ``loss_curve_``: the same data loss (weighted mean cross-entropy,
        half squared error or half Poisson deviance) without the L2 term, so
        for a classifier it is :func:`sklearn.metrics.log_loss` of
        ``predict_proba``. None without a validation set.
    best_validation_score_ : float or None
        Best of ``validation_scores_``; after a warm-start fit given
        ``X_val``, the best of that fit's scores (a validation set given to
        a fit is scored afresh: earlier scores may be of other data).
    t_ : int
    coefs_ : list of ndarray of shape (n_units_in, n_units_out)
        Live views of the weights: writing into one, assigning an item or the
        whole list changes the model.
    intercepts_ : list of ndarray of shape (n_units_out,)
        Live views, as ``coefs_``.
    parameters_ : dict of str to ndarray
        ``coef_0``, ``intercept_0``, ...: live views of the weights.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
    n_iter_ : int
    n_layers_ : int
    n_outputs_ : int
    out_activation_ : str

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from fastbp import MLPClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=50,
    ...                     random_state=0).fit(X / 16, y)
    >>> clf.score(X / 16, y) > 0.95
    True
    """

    _losses = {"log_loss", "squared_error"}

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        loss="log_loss",
        n_jobs=None,
        class_weight=None,
    ):
        store_init_params(self, locals())

    def _validate_params(self):
        check_class_weight(self)
        super()._validate_params()


@loadable
class MLPRegressor(RegressorTargetsMixin, RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor trained by backpropagation.

    A drop-in for :class:`sklearn.neural_network.MLPRegressor`; see
    :class:`MLPClassifier` for the parameters they share.

    Parameters
    ----------
    loss : {'squared_error', 'poisson'}, default='squared_error'
        Half squared error (identity output) or half Poisson deviance
        (exponential output, requires y >= 0). With several outputs the loss
        is their mean, as sklearn reports it, and the gradient is that
        mean's. sklearn's own MLPRegressor steps along the gradient of their
        sum (n_outputs times larger), so there a fit with several outputs
        takes other steps than sklearn's; with one output they are the same.
    hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate, \
learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose, \
warm_start, momentum, nesterovs_momentum, early_stopping, validation_fraction, \
beta_1, beta_2, epsilon, n_iter_no_change, max_fun, n_jobs
        As for :class:`MLPClassifier`; early stopping scores R².

    Attributes
    ----------
    loss_, best_loss_, loss_curve_, validation_scores_, validation_loss_curve_, \
best_validation_score_, t_, coefs_, intercepts_, parameters_, n_features_in_, \
feature_names_in_, n_iter_, n_layers_, n_outputs_, out_activation_
        As for :class:`MLPClassifier`.
    """

    _losses = {"squared_error", "poisson"}

    def __init__(
        self,
        loss="squared_error",
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        n_jobs=None,
    ):
        store_init_params(self, locals())

