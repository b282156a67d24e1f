"""Target handling shared by every fastbp estimator: class encoding,
probabilities and partial_fit for classifiers; numeric targets for regressors.

An estimator using these mixins provides ``_validate_X_y(X, y, reset)``
(validated input ready for its network, plus y) and ``_check_X(X)``.
"""
import numbers
from typing import Sequence, cast

import numpy as np
import scipy.sparse as sp
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_array
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import (
    _check_partial_fit_first_call, check_classification_targets, type_of_target, unique_labels,
)
from sklearn.utils.validation import _check_sample_weight, column_or_1d

from ._base import EstimatorMixin, EstimatorT, _restored_on_error
from ._inputs import FLOAT_DTYPES, cast_input, check_fitted
from ._params import InvalidParameterError
from ._typing import Any, ArrayLike, MatrixLike, NDArray

try:  # scikit-learn's own cache of a label array's np.unique (private)
    from sklearn.utils._unique import attach_unique as _sklearn_attach_unique
except ImportError:  # pragma: no cover - each check then finds the labels anew
    _sklearn_attach_unique = None


def _with_unique(y):
    """A view of labels y that carries their np.unique, so that the target
    checks and the binarizer find the labels once, not four times (7 ms of a
    128,000-label fit's setup). Labels of object dtype are left as they are:
    np.unique raises on mixed types, where scikit-learn's checks explain."""
    if _sklearn_attach_unique is None or y.dtype.kind not in "biufUS":
        return y
    return _sklearn_attach_unique(y)


def _integer_classes(y):
    """The sorted classes of labels y where y is a 1-D ndarray of integers in
    the machine's byte order, else None. Such labels pass sklearn's target
    checks, and its type_of_target finds 'binary' (two classes at most) or
    'multiclass', knowing nothing more: those checks and LabelBinarizer.fit
    scan the labels five times (2.6 ms of a 32,000-label fit). Also None
    where the classes outnumber a quarter of the labels: sklearn's checks
    then may warn that y looks like a regression target, and they run."""
    if not (type(y) is np.ndarray and y.ndim == 1 and y.dtype.kind in "iu"
            and y.dtype.isnative and len(y)):
        return None
    classes = np.unique(y)
    return classes if 4 * len(classes) <= len(y) or len(classes) <= 2 else None


def _binarizer(classes, y_type):
    """A LabelBinarizer as fitting it on labels of these sorted classes and
    type_of_target leaves it (the attributes its transform and
    inverse_transform read)."""
    lb = LabelBinarizer()
    lb.classes_, lb.y_type_, lb.sparse_input_ = classes, y_type, False
    return lb


# Widest range of integer labels that _class_codes looks up in a table.
_CODE_TABLE_SPAN = 1 << 16


def _class_codes(classes, y):
    """Position of each label of y in the sorted ``classes`` (every label of
    y is one): a table lookup for integer labels of a narrow range,
    np.searchsorted otherwise (4 ms for 128,000 labels, against 0.3)."""
    if (y.dtype.kind in "iu" and len(classes)
            and -(1 << 62) < int(classes[0]) and int(classes[-1]) < 1 << 62
            and int(classes[-1]) - int(classes[0]) < _CODE_TABLE_SPAN):
        first = int(classes[0])
        table = np.zeros(int(classes[-1]) - first + 1, dtype=np.intp)
        table[classes.astype(np.intp) - first] = np.arange(len(classes))
        return table[y.astype(np.intp) - first]
    return np.searchsorted(classes, y)


def is_stochastic(est):
    """``available_if`` condition of partial_fit: only sgd and adam have it."""
    if est.solver not in ("sgd", "adam"):
        raise AttributeError(
            f"partial_fit is only available for stochastic optimizers. "
            f"{est.solver} is not stochastic."
        )
    return True


def _finite_outputs(y_pred):
    """y_pred, unless the network's outputs overflowed (early stopping's
    score would otherwise fail with r2_score's 'Input contains infinity')."""
    if not np.all(np.isfinite(y_pred)):
        raise ValueError(
            "The network's outputs on the validation set became non-finite: its "
            "weights have grown too large. The input data may contain large values "
            "and need to be preprocessed (e.g. StandardScaler), or the learning rate "
            "is too high for this model."
        )
    return y_pred


def check_class_weight(est):
    """Raise InvalidParameterError unless est.class_weight is None,
    'balanced' or a dict of finite weights >= 0."""
    class_weight = est.class_weight
    if class_weight is None or (isinstance(class_weight, str) and class_weight == "balanced"):
        return
    if not isinstance(class_weight, dict):
        raise InvalidParameterError(
            f"The 'class_weight' parameter of {type(est).__name__} must be an instance of "
            f"'dict', a str among {{'balanced'}} or None. Got {class_weight!r} instead.")
    bad = {k: w for k, w in class_weight.items()
           if not (isinstance(w, numbers.Real) and not isinstance(w, bool)
                   and np.isfinite(w) and w >= 0)}
    if bad:
        raise InvalidParameterError(
            f"The 'class_weight' parameter of {type(est).__name__} must map classes to "
            f"finite weights >= 0. Got {bad!r} among its weights.")


_BALANCED_PARTIAL_FIT = (
    "class_weight 'balanced' is not supported for partial_fit: it needs the class "
    "frequencies of the whole training set. In order to use 'balanced' weights, use "
    "compute_class_weight('balanced', classes=classes, y=y). In place of y you can use "
    "a large enough sample of the full training set target to properly estimate the "
    "class frequency distributions. Pass the resulting weights as the class_weight "
    "parameter: class_weight=dict(zip(classes, weights)).")


def _is_multilabel(y):
    """Whether y is a multilabel indicator matrix."""
    if np.ndim(y) != 2:
        return False
    try:
        with np.errstate(invalid="ignore"):  # NaN labels: the checks after say why
            return type_of_target(y).startswith("multilabel")
    except ValueError:  # not targets type_of_target reads: the checks after say why
        return False


class ClassifierTargetsMixin(EstimatorMixin):
    """Classes encoded by a LabelBinarizer: softmax for multiclass, logistic
    for binary and multilabel; ``loss='squared_error'`` puts the quadratic
    cost on logistic outputs."""

    def _out_activation(self):
        if self.loss == "log_loss" and self._label_binarizer.y_type_ == "multiclass":
            return "softmax"
        return "logistic"

    def _loss_kind(self):
        if self.loss == "squared_error":
            return "squared_logistic"
        return "softmax_ce" if self.out_activation_ == "softmax" else "logistic_ce"

    def _stratify_validation(self):
        return self.n_outputs_ == 1 or self.out_activation_ == "softmax"

    def _prepare_fit(self, X, y, incremental, reset):
        plain = self._plain_partial_fit(X, y) if incremental and not reset else None
        if plain is not None:
            X, y = plain
            return X, self._training_targets(y, X.dtype), y
        X, y = self._validate_X_y(X, y, reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        classes = _integer_classes(y)
        if classes is None:
            labels = _with_unique(y)
            check_classification_targets(labels)  # "Unknown label type: continuous..."
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            if classes is None:
                self._label_binarizer = LabelBinarizer().fit(labels)
            else:
                self._label_binarizer = _binarizer(
                    classes, "binary" if len(classes) <= 2 else "multiclass")
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(labels) if classes is None else classes
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as "
                        f"in the previous call to fit. Previously got {self.classes_}, "
                        f"`y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    f"`y` has classes not in `self.classes_`. `self.classes_` has "
                    f"{self.classes_}. 'y' has {classes}."
                )
        return X, self._training_targets(y, X.dtype), y

    def _plain_partial_fit(self, X, y):
        """(X, y's rows) of a partial_fit after the first, as its checks would
        give them back, where those would pass these very arrays with no
        warning: X plain and y an integer ndarray that fits it
        (``_plain_rows``), one label a row, each one of integer ``classes_``.
        None otherwise: the checks run, with their errors. They cost more
        than the arithmetic of a batch of a hundred rows (type_of_target,
        unique_labels, DataFrame probes)."""
        if not (type(y) is np.ndarray and y.ndim and y.dtype.kind in "iu"
                and self.classes_.dtype.kind in "iu") or self.warm_start:
            # (warm_start: every call's y must hold every class, which the
            # checks enforce)
            return None
        plain = self._plain_rows(X, y)
        if plain is None or plain[1].ndim != 1 or len(np.setdiff1d(
                np.unique(plain[1]), self.classes_, assume_unique=True)):
            return None
        return plain

    def _training_targets(self, y, dtype):
        """Labels y as the training loss reads them: their one-hot rows
        (``_one_hot``)."""
        return self._one_hot(y, dtype)

    def _one_hot(self, y, dtype):
        """The binarizer's target matrix, built in ``dtype`` directly for
        multiclass labels: LabelBinarizer's int64 matrix would be the largest
        array of the whole fit (8 bytes per sample and class)."""
        classes = self.classes_
        if y.ndim != 1 or len(classes) <= 2:
            return np.ascontiguousarray(self._label_binarizer.transform(y), dtype=dtype)
        codes = _class_codes(classes, y)
        Y = np.zeros((len(y), len(classes)), dtype=dtype)
        Y[np.arange(len(y)), codes] = 1
        return Y

    def _checked_labels(self, y):
        """Label rows checked as fit checks y, and against ``classes_``."""
        y = check_array(y, ensure_2d=False, dtype=None, input_name="y")
        y = column_or_1d(y) if y.ndim == 2 and y.shape[1] == 1 else y
        check_classification_targets(y)
        classes = unique_labels(y)
        if len(np.setdiff1d(classes, self.classes_)):
            raise ValueError(
                f"`y` has classes not in `self.classes_`. `self.classes_` has "
                f"{self.classes_}. 'y' has {classes}."
            )
        return y

    def _encode_targets(self, y):
        """Label rows -> the network's target matrix, checked as fit checks y."""
        return self._label_binarizer.transform(self._checked_labels(y))

    def _validation_targets(self, y, X):
        """(encoded targets in X's dtype, labels as scored) of a validation set."""
        y = self._checked_labels(y)
        return self._training_targets(y, X.dtype), y

    def _prepare_backprop(self, X, y):
        X = self._check_X(X)
        if sp.issparse(X):
            X = X.toarray()
        return X, self._encode_targets(y)

    def _target_state(self):
        lb = self._label_binarizer
        classes = lb.classes_
        meta = {"y_type": lb.y_type_, "classes": None, "classes_object": classes.dtype == object}
        if classes.dtype.kind in "biuf":
            return meta, {"classes": classes}
        meta["classes"] = [str(c) for c in classes]
        return meta, {}

    def _restore_target_state(self, meta, arrays, n_outputs):
        if not isinstance(meta, dict):
            raise ValueError("missing class labels")
        y_type = meta.get("y_type")
        if meta.get("classes") is not None:
            names = meta["classes"]
            if not isinstance(names, list) or not all(isinstance(c, str) for c in names):
                raise ValueError("malformed class labels")
            classes = np.asarray(names, dtype=object if meta.get("classes_object") else None)
        else:
            classes = arrays.get("classes")
            if (classes is None or classes.ndim != 1 or classes.dtype.kind not in "biuf"
                    or (classes.dtype.kind == "f" and not np.all(np.isfinite(classes)))):
                raise ValueError("malformed class labels")
        expected = {"multiclass": n_outputs, "multilabel-indicator": n_outputs}
        if y_type == "binary":
            ok = n_outputs == 1 and 1 <= len(classes) <= 2
        else:
            ok = y_type in expected and len(classes) == expected[y_type]
        if not ok or len(np.unique(classes)) != len(classes):
            raise ValueError("class labels do not match the output layer")
        weights = getattr(self, "class_weight", None)
        if isinstance(weights, dict) and not set(weights) <= set(classes.tolist()):
            raise ValueError("class_weight names labels that are not among the classes")
        self._label_binarizer = _binarizer(classes, y_type)
        self.classes_ = classes

    def _sample_weights(self, sample_weight, X, y, dtype):
        # sample_weight times the weight of each sample's class, as sklearn's
        # LogisticRegression multiplies them (in float64, then cast)
        if self.class_weight is None:
            return super()._sample_weights(sample_weight, X, y, dtype)
        weights = _check_sample_weight(sample_weight, X, dtype=np.float64)
        weights = weights * self._class_weights_of(y, weights)
        return weights.astype(dtype, copy=False)

    def _class_weights_of(self, y, sample_weight):
        """float64 weight that ``class_weight`` gives each label of y (labels
        of ``classes_``). 'balanced' counts the classes in y itself, each
        sample counting its sample_weight, as LogisticRegression counts."""
        y = check_array(y, ensure_2d=False, dtype=None, input_name="y")
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        if y.ndim != 1:
            raise ValueError(
                f"class_weight is not supported for multilabel targets (y of shape "
                f"{y.shape}): the network weighs whole samples, not single labels. "
                f"Pass sample_weight instead, or set class_weight=None.")
        class_weight = self.class_weight
        if isinstance(class_weight, str):  # 'balanced'
            classes = np.unique(y)
            with np.errstate(divide="ignore"):
                per_class = compute_class_weight(class_weight, classes=classes, y=y,
                                                 sample_weight=sample_weight)
            # a class whose samples all weigh 0 adds nothing, whatever its weight
            per_class[~np.isfinite(per_class)] = 0.0
        else:
            classes = self.classes_
            labels = classes.tolist()
            known = set(labels)
            unknown = [k for k in class_weight if k not in known]
            if unknown:
                # a typo would otherwise leave its class at weight 1 unnoticed
                raise ValueError(
                    f"class_weight names {unknown}, which are not classes of y "
                    f"(classes_: {labels}).")
            # classes missing from the dict weigh 1, as in sklearn
            per_class = np.array([class_weight.get(c, 1.0) for c in labels],
                                 dtype=np.float64)
        return per_class[np.searchsorted(classes, y)]

    def _validation_score(self, outputs, y, sample_weight):
        """Accuracy of the network's ``outputs`` (of predict) on labels y."""
        return accuracy_score(y, self._decode(outputs), sample_weight=sample_weight)

    # ---------------------------------------------------------------- API
    @available_if(is_stochastic)
    def partial_fit(self: EstimatorT, X: MatrixLike, y: ArrayLike,
                    sample_weight: ArrayLike | None = None,
                    classes: ArrayLike | None = None) -> EstimatorT:
        """Update the model with a single epoch over the given data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None
            Multiplied by the weights of ``class_weight`` (a dict: its keys
            are matched against ``classes``; 'balanced' raises ValueError, as
            in sklearn's SGDClassifier, since it needs the whole y).
        classes : array of shape (n_classes,), default=None
            Every class that will ever appear; required on the first call.

        Returns
        -------
        self : object
        """
        if isinstance(self.class_weight, str) and self.class_weight == "balanced":
            raise ValueError(_BALANCED_PARTIAL_FIT)
        # a first call that raises must not leave classes_ behind
        with _restored_on_error(self):
            if _check_partial_fit_first_call(self, classes):
                classes = cast("NDArray[Any] | Sequence[Any]", classes)  # checked: not None
                self._label_binarizer = LabelBinarizer()
                # as sklearn: a multilabel indicator y fits the binarizer itself
                # (not an RNN's labels by step, whose rows are sequences)
                if getattr(self, "output", "last") == "last" and _is_multilabel(y):
                    self._label_binarizer.fit(y)
                elif isinstance(classes[0], np.ndarray) or np.ndim(classes) > 1:
                    self._label_binarizer.fit(classes)
                else:
                    self._label_binarizer.fit(np.asarray(classes))
            return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def _predict_encoded(self, X):
        return self._decode(self._network.predict(X, self._n_threads()))

    def _decode(self, y_pred):
        """The network's outputs -> labels."""
        binarizer = self._label_binarizer
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if not binarizer.sparse_input_ and binarizer.neg_label == 0 \
                and binarizer.pos_label == 1:
            # LabelBinarizer.inverse_transform's own arithmetic, without its
            # checks (tens of microseconds, more than a small predict):
            # the first largest output, or the output above 0.5 of one
            # logistic unit
            if binarizer.y_type_ == "multiclass":
                return binarizer.classes_.take(y_pred.argmax(axis=1), mode="clip")
            if binarizer.y_type_ == "binary" and y_pred.ndim == 1 \
                    and len(binarizer.classes_) == 2:
                return binarizer.classes_.take((y_pred > 0.5).astype(np.intp))
        return binarizer.inverse_transform(y_pred)

    def predict(self, X: MatrixLike) -> NDArray[Any]:
        """Predict with the multi-layer perceptron classifier.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_classes)
            The predicted classes.
        """
        return self._predict_encoded(self._check_X(X))

    def predict_proba(self, X: MatrixLike) -> NDArray[Any]:
        """Probability estimates.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y_prob : ndarray of shape (n_samples, n_classes)
            Probability of each class, in the order of ``classes_``.
        """
        y_pred = self._forward(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
            return np.vstack([1 - y_pred, y_pred]).T
        if self.out_activation_ == "logistic" and self._label_binarizer.y_type_ == "multiclass":
            # quadratic cost on sigmoid outputs: normalize to a distribution
            y_pred /= np.maximum(y_pred.sum(axis=1, keepdims=True), np.finfo(y_pred.dtype).tiny)
        return y_pred

    def predict_log_proba(self, X: MatrixLike) -> NDArray[Any]:
        """Log of probability estimates, computed from the logits (no log(0)).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        log_y_prob : ndarray of shape (n_samples, n_classes)
        """
        check_fitted(self)
        if self.out_activation_ == "logistic" and self._label_binarizer.y_type_ == "multiclass":
            # this class's rows, not a subclass's reshaped predict_proba (the RNN's)
            with np.errstate(divide="ignore"):
                return np.log(ClassifierTargetsMixin.predict_proba(self, X))
        z = self._forward(X, logits=True)
        if self.out_activation_ == "softmax":
            z_max = z.max(axis=1, keepdims=True)
            shifted = z - z_max
            return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        # log sigmoid(z) = -log(1 + exp(-z)); log(1 - sigmoid(z)) = -log(1 + exp(z))
        log_p = -np.logaddexp(0, -z)
        if self.n_outputs_ == 1:
            return np.hstack([-np.logaddexp(0, z), log_p])
        return log_p

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class RegressorTargetsMixin(EstimatorMixin):
    """Numeric targets: identity output with half squared error, or exp output
    with half Poisson deviance (``loss='poisson'``)."""

    def _out_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    def _loss_kind(self):
        return "poisson" if self.loss == "poisson" else "squared"

    def _stratify_validation(self):
        return False

    def _prepare_fit(self, X, y, incremental, reset):
        plain = self._plain_partial_fit(X, y) if incremental and not reset else None
        if plain is None:
            X, y = self._validate_X_y(X, y, reset=reset)
            y = self._checked_targets(y)
            if y.ndim == 2 and y.shape[1] == 1:
                y = column_or_1d(y, warn=True)
        else:
            X, y = plain
        Y = cast_input(self, y.dtype, X.dtype,
                       lambda: np.ascontiguousarray(y.reshape(len(y), -1), dtype=X.dtype), "y")
        return X, Y, y

    def _plain_partial_fit(self, X, y):
        """(X, y's rows) of a partial_fit after the first, as its checks would
        give them back, where those would pass these very arrays with no
        warning: X plain and y a float32 or float64 ndarray that fits it
        (``_plain_rows``), its rows finite, of one output or several (not of
        one column), none negative for the Poisson loss. None otherwise: the
        checks run."""
        if not (type(y) is np.ndarray and y.ndim and y.dtype in FLOAT_DTYPES and y.size):
            return None
        plain = self._plain_rows(X, y)
        if plain is None:
            return None
        rows = plain[1]
        if (not (rows.ndim == 1 or (rows.ndim == 2 and rows.shape[1] > 1))
                or not np.isfinite(rows).all() or (self.loss == "poisson" and (rows < 0).any())):
            return None
        return plain

    def _checked_targets(self, y):
        """Target rows checked as fit checks y."""
        y = check_array(y, ensure_2d=False, dtype="numeric", input_name="y")
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError(
                "Some value(s) of y are negative which is not allowed for Poisson regression."
            )
        return y

    def _encode_targets(self, y):
        """Target rows -> the network's (n_rows, n_outputs) target matrix,
        checked as fit checks y."""
        y = np.asarray(self._checked_targets(y), dtype=np.float64)
        return y.reshape(len(y), -1)

    def _validation_targets(self, y, X):
        """(target matrix in X's dtype, targets as scored) of a validation set."""
        y = self._checked_targets(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y)
        return cast_input(self, y.dtype, X.dtype, lambda: np.ascontiguousarray(
            y.reshape(len(y), -1), dtype=X.dtype), "y"), y

    def _prepare_backprop(self, X, y):
        X = self._check_X(X)
        if sp.issparse(X):
            X = X.toarray()
        return X, self._encode_targets(y)

    def _validation_score(self, outputs, y, sample_weight):
        """R² of the network's ``outputs`` (of predict) on targets y."""
        y_pred = _finite_outputs(self._as_targets(outputs))
        return r2_score(y, y_pred, sample_weight=sample_weight)

    def _predict_checked(self, X):
        return self._as_targets(self._network.predict(X, self._n_threads()))

    @staticmethod
    def _as_targets(y_pred):
        """The network's outputs in the shape of the targets."""
        return y_pred.ravel() if y_pred.shape[1] == 1 else y_pred

    @available_if(is_stochastic)
    def partial_fit(self: EstimatorT, X: MatrixLike, y: ArrayLike,
                    sample_weight: ArrayLike | None = None) -> EstimatorT:
        """Update the model with a single epoch over the given data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : object
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X: MatrixLike) -> NDArray[Any]:
        """Predict using the multi-layer perceptron model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        """
        return self._predict_checked(self._check_X(X))
