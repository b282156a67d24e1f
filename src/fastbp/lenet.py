"""LeNet-5 (LeCun, Bottou, Bengio and Haffner, 1998) as a scikit-learn classifier."""
import numbers

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ._base import BackpropEstimator, EstimatorT
from ._images import PaddedImages
from ._inputs import cast_input, check_fitted, known_finite, plain_float_array
from ._layers import Conv5x5, Dense, MeanPool2x2
from ._network import Network
from ._params import InvalidParameterError, _options, store_init_params
from ._targets import ClassifierTargetsMixin, _with_unique, check_class_weight
from ._registry import loadable
from ._typing import ArrayLike

# LeCun et al. (1998), Table I: which S2 maps (rows) each C3 map (columns) sees.
# C3 maps 0-5 take 3 contiguous S2 maps, 6-11 take 4 contiguous, 12-14 take 4
# discontinuous ones and 15 takes all six: 60 connections.
_C3_MAPS = (
    [[j % 6, (j + 1) % 6, (j + 2) % 6] for j in range(6)]
    + [[j % 6, (j + 1) % 6, (j + 2) % 6, (j + 3) % 6] for j in range(6)]
    + [[0, 1, 3, 4], [1, 2, 4, 5], [0, 2, 3, 5], [0, 1, 2, 3, 4, 5]]
)
LECUN_C3_TABLE = np.zeros((6, 16), dtype=bool)
for _col, _rows_of_col in enumerate(_C3_MAPS):
    LECUN_C3_TABLE[_rows_of_col, _col] = True
LECUN_C3_TABLE.setflags(write=False)

_ACTIVATIONS = {"tanh", "lecun_tanh", "relu", "logistic"}
_SHAPES_HELP = (
    "LeNet5Classifier takes images as X of shape (n, 784), (n, 28, 28) or "
    "(n, 1, 28, 28) (zero-padded to 32x32 as LeCun did), (n, 1024), (n, 32, 32) or "
    "(n, 1, 32, 32), or larger images (n, H, W) / (n, 1, H, W) whose sides are "
    "multiples of 4 and at least 32 (flat input of another size needs "
    "image_shape=(H, W))"
)


@loadable
class LeNet5Classifier(ClassifierTargetsMixin, ClassifierMixin, BackpropEstimator):
    """LeNet-5 convolutional network trained by backpropagation.

    C1: 6@28x28 5x5 convolution, S2: 6@14x14 trainable 2x2 subsampling,
    C3: 16@10x10 5x5 convolution through LeCun's connection table, S4: 16@5x5
    subsampling, C5: 120 5x5 convolution, F6: 84 fully connected, then an
    output layer with softmax and negative log-likelihood. Every C and F layer
    is followed by the activation; every S layer computes
    g(coef · MeanPool(Y) + bias) with one trainable coefficient and bias per map.

    Parameters
    ----------
    activation : {'tanh', 'lecun_tanh', 'relu', 'logistic'}, default='tanh'
        g of every hidden layer; 'lecun_tanh' is 1.7159·tanh(2x/3).
    connection_table : {'lecun', 'full'} or array-like of bool of shape (6, 16), default='lecun'
        Which S2 maps (rows) feed each C3 map (columns).
    image_shape : tuple of int (H, W), default=None
        Shape of each image when X is flat and not 784 or 1024 pixels wide.
    loss : {'log_loss', 'squared_error'}, default='log_loss'
        Softmax with negative log-likelihood, or the quadratic cost on
        logistic outputs.
    solver, alpha, batch_size, learning_rate, learning_rate_init, power_t, \
max_iter, shuffle, random_state, tol, verbose, warm_start, momentum, \
nesterovs_momentum, early_stopping, validation_fraction, beta_1, beta_2, \
epsilon, n_iter_no_change, max_fun, n_jobs, class_weight
        As for :class:`fastbp.MLPClassifier`. ``alpha`` penalizes the
        convolution and fully connected weights, not biases or pool
        coefficients.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    parameters_ : dict of str to ndarray
        ``C1.weight`` (6, 1, 5, 5), ``C1.bias``, ``S2.coef``, ``S2.bias``,
        ``C3.weight`` (16, 6, 5, 5) (unconnected pairs stay zero), ``C3.bias``,
        ``S4.coef``, ``S4.bias``, ``C5.weight`` (120, 16, 5, 5), ``C5.bias``,
        ``F6.weight`` (120 · s², 84), ``F6.bias``, ``output.weight``
        (84, n_classes), ``output.bias``: live views of the weights.
    trainable_parameter_counts_ : dict of str to int
        Trainable parameters of each layer (156, 12, 1516, 32, 48120, 10164
        with the default table, as in the paper).
    loss_, loss_curve_, best_loss_, validation_scores_, validation_loss_curve_, \
best_validation_score_, n_iter_, t_, n_features_in_, n_outputs_, out_activation_
        As for :class:`fastbp.MLPClassifier`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbp import LeNet5Classifier
    >>> X = np.random.default_rng(0).random((20, 28, 28))
    >>> y = np.arange(20) % 2
    >>> LeNet5Classifier(max_iter=2).fit(X, y).predict(X[:3]).shape
    (3,)
    """

    _architecture_params = ("activation", "connection_table", "image_shape", "loss")
    _fixed_after_fit = ("connection_table",)  # which weights exist, at equal shapes

    def __init__(
        self,
        activation="tanh",
        connection_table="lecun",
        image_shape=None,
        *,
        loss="log_loss",
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
        class_weight=None,
    ):
        store_init_params(self, locals())

    # ------------------------------------------------------------ validation
    def _validate_params(self):
        _options(self, "activation", _ACTIVATIONS)
        _options(self, "loss", {"log_loss", "squared_error"})
        check_class_weight(self)
        self._c3_table()
        if self.image_shape is not None:
            _check_image_shape(self.image_shape)
        self._validate_solver_params()

    def _c3_table(self):
        """The connection table as (C3 maps, S2 maps) for the kernels."""
        table = self.connection_table
        if isinstance(table, str):
            if table == "lecun":
                return LECUN_C3_TABLE.T
            if table == "full":
                return np.ones((16, 6), dtype=bool)
            raise InvalidParameterError(
                "The 'connection_table' parameter of LeNet5Classifier must be 'lecun', "
                f"'full' or a boolean array of shape (6, 16). Got {table!r} instead."
            )
        table = np.asarray(table)
        if table.shape != (6, 16) or table.dtype != bool:
            raise InvalidParameterError(
                "connection_table must be 'lecun', 'full' or a boolean array of shape "
                f"(6, 16) (S2 maps x C3 maps); got dtype {table.dtype}, shape {table.shape}."
            )
        if not table.any(axis=0).all():
            raise InvalidParameterError("connection_table leaves a C3 map without any input map.")
        return table.T

    def _image_size(self, X, checked=False, finite_later=False):
        """Return (X as (n, H*W), (H, W)) for any accepted input layout
        (``checked``: X is known to pass check_array as it is;
        ``finite_later``: the caller checks the result's finiteness, which
        reads all of X, so this check leaves it out)."""
        shape = getattr(X, "shape", None)
        if shape is None:  # lists; objects that only offer __array__
            X = np.asarray(X)
            shape = X.shape
        ndim = len(shape)
        if ndim > 4:
            raise ValueError(f"{_SHAPES_HELP}; got X of shape {tuple(shape)}.")
        if ndim in (3, 4):
            if not checked:
                X = check_array(X, allow_nd=True, dtype=(np.float64, np.float32),
                                ensure_all_finite=not finite_later, input_name="X")
            if ndim == 4 and X.shape[1] != 1:
                raise ValueError(f"{_SHAPES_HELP}; got {X.shape[1]} channels in X of "
                                 f"shape {X.shape}.")
            hw = X.shape[-2:]
            return X.reshape(X.shape[0], -1), _accepted(hw, X.shape)
        if self.image_shape is not None:
            hw = _check_image_shape(self.image_shape)
        else:
            n_features = shape[1] if ndim == 2 else None
            side = int(round(np.sqrt(n_features))) if n_features else 0
            hw = (side, side) if side * side == n_features else None
        return X, hw

    def _validate_X_y(self, X, y, reset):
        if y is None:
            raise ValueError("LeNet5Classifier requires y to be passed, but the target y "
                             "is None.")
        # labels first, so that a continuous y is named as such whatever X's
        # shape; y's finiteness before that (type_of_target casts NaN to int);
        # their np.unique found once for the checks (0.61 -> 0.39 ms, 10,000)
        check_classification_targets(_with_unique(check_array(y, ensure_2d=False, dtype=None,
                                                              input_name="y")))
        X, hw = self._image_size(X, finite_later=True)
        X, y = validate_data(self, X, y, multi_output=True, reset=reset,
                             dtype=(np.float64, np.float32),
                             ensure_all_finite=not known_finite(self, X))
        return self._as_images(X, hw), y

    def _plain_X(self, X, dtype=None):
        if not plain_float_array(self, X, (2, 3, 4)):
            return None
        try:
            X, hw = self._image_size(X, checked=True)
            if X.shape[1] != self.n_features_in_:
                return None
            return self._as_images(X, hw, dtype)
        except ValueError:
            # a layout the full checks refuse, after checking y first in
            # fit: their error is the one to give
            return None

    def _check_X(self, X):
        check_fitted(self)
        images = self._plain_X(X, self._network.dtype)
        if images is None:
            X, hw = self._image_size(X)
            X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
            images = self._as_images(X, hw, self._network.dtype)
        if images.shape[1:] != tuple(self._sample_shape):
            # Same pixel count, other layout: the network's buffers would not fit.
            raise ValueError(f"X holds images of shape {images.shape[2:]} (after padding), "
                             f"but the model was fitted on {tuple(self._sample_shape[1:])}.")
        return images

    def _fits_sample_shape(self, shape):
        # 28x28 images (784 features) are padded to a 32x32 network input
        return super()._fits_sample_shape(shape) or (
            shape == (1, 32, 32) and self.n_features_in_ == 784)

    @classmethod
    def _params_from_json(cls, params):
        # JSON gives image_shape back as a list and a table as nested lists
        params = dict(params)
        if isinstance(params.get("image_shape"), list):
            params["image_shape"] = tuple(params["image_shape"])
        if isinstance(params.get("connection_table"), list):
            params["connection_table"] = np.asarray(params["connection_table"])
        return params

    def _as_images(self, X, hw, dtype=None):
        """X (n, H*W) as contiguous images (n, 1, H, W) in ``dtype`` (X's
        by default). 28x28 images become a PaddedImages of 32x32, LeCun's
        input, which a fit pads batch by batch and a prediction chunk by
        chunk: no padded copy of the whole set."""
        hw = _accepted(hw, X.shape)
        if hw[0] * hw[1] != X.shape[1]:
            raise ValueError(f"{_SHAPES_HELP}; got X of shape {X.shape} "
                             f"(n_features = {X.shape[1]}) with image_shape={self.image_shape}.")
        images = cast_input(self, X.dtype, dtype, lambda: np.ascontiguousarray(
            X.reshape(X.shape[0], 1, *hw), dtype=dtype))
        if hw == (28, 28):  # LeCun padded the 28x28 digits to 32x32
            return PaddedImages(images, pad=2)
        return images

    # --------------------------------------------------------------- network
    def _build_network(self, X, Y, theta=None):
        g = self.activation
        h, w = X.shape[2:]
        layers = [
            # C1: 1@32x32 -> 6@28x28
            Conv5x5(1, 6, in_size=(h, w), table=np.ones((6, 1), bool), activation=g,
                    name="C1"),
            # S2: 6@28x28 -> 6@14x14
            MeanPool2x2(6, in_size=(h - 4, w - 4), activation=g, name="S2"),
        ]
        s2 = layers[-1].out_size
        # C3: 6@14x14 -> 16@10x10 through the connection table
        layers.append(Conv5x5(6, 16, in_size=s2, table=self._c3_table(), activation=g,
                              name="C3"))
        # S4: 16@10x10 -> 16@5x5
        layers.append(MeanPool2x2(16, in_size=layers[-1].out_size, activation=g, name="S4"))
        # C5: 16@5x5 -> 120@1x1 (a spatial map for larger images, flattened by F6)
        layers.append(Conv5x5(16, 120, in_size=layers[-1].out_size,
                              table=np.ones((120, 16), bool), activation=g, name="C5"))
        c5 = layers[-1].out_size
        # F6: 120 -> 84, output: 84 -> n_classes
        layers.append(Dense(120 * c5[0] * c5[1], 84, activation=g,
                            weight_name="F6.weight", bias_name="F6.bias"))
        layers.append(Dense(84, Y.shape[1], activation="identity",
                            weight_name="output.weight", bias_name="output.bias"))
        self.n_outputs_ = Y.shape[1]
        self.out_activation_ = self._out_activation()
        return Network(layers, self._loss_kind(), X.dtype, theta=theta)

    def _init_parameters(self, net, rng):
        # Uniform weights: LeCun (1998)'s ±2.4 / fan-in for 'lecun_tanh' (made
        # for his input scaling), He's ±sqrt(6 / fan-in) for relu, and Glorot's
        # ±sqrt(factor / (fan-in + fan-out)) otherwise, as the MLPs use (it
        # trains tanh LeNet several times faster than LeCun's bound on [0, 1]
        # pixels). Fans count connected maps only; unconnected weights are 0.
        # Pool coefficients start at 1, biases at 0.
        params = net.parameters()
        for layer in net.layers:
            if isinstance(layer, MeanPool2x2):
                params[layer.coef_name][...] = 1.0
                continue
            weight = params[layer.weight_name]
            if isinstance(layer, Conv5x5):
                fan_in = layer.table.sum(axis=1)[:, None, None, None] * 25.0
                fan_out = layer.table.sum(axis=0)[None, :, None, None] * 25.0
                mask = layer.table.astype(bool)[:, :, None, None]
            else:
                fan_in, fan_out, mask = float(layer.n_in), float(layer.n_out), True
            if self.activation == "lecun_tanh":
                bound = 2.4 / fan_in
            elif self.activation == "relu":
                bound = np.sqrt(6.0 / fan_in)
            else:
                factor = 2.0 if self.activation == "logistic" else 6.0
                bound = np.sqrt(factor / (fan_in + fan_out))
            draw = rng.uniform(-1.0, 1.0, weight.shape) * bound
            weight[...] = np.where(mask, draw, 0.0)

    @property
    def trainable_parameter_counts_(self):
        """dict of str to int: trainable parameters of each layer."""
        check_is_fitted(self, "_network")
        names = ["C1", "S2", "C3", "S4", "C5", "F6", "output"]
        return {name: layer.n_trainable for name, layer in zip(names, self._network.layers)}

    def fit(self: EstimatorT, X: ArrayLike, y: ArrayLike,
            sample_weight: ArrayLike | None = None, *, X_val: ArrayLike | None = None,
            y_val: ArrayLike | None = None,
            sample_weight_val: ArrayLike | None = None) -> EstimatorT:
        """Train LeNet-5 on images X and labels y.

        Parameters
        ----------
        X : array-like of shape (n_samples, 784), (n_samples, 28, 28), \
(n_samples, 1, 28, 28), (n_samples, 1024), (n_samples, 32, 32) or (n_samples, 1, H, W)
            Images; 28x28 ones are zero-padded to 32x32. float32 trains in float32,
            and the model then predicts in float32 (float64 input is cast).
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        sample_weight : array-like of shape (n_samples,), default=None
        X_val : array-like of images, as X, default=None
            Validation images, scored after every epoch and watched by early
            stopping instead of a split of X; see :meth:`fastbp.MLPClassifier.fit`.
        y_val : array-like of shape (n_val,) or (n_val, n_labels), default=None
            Labels of X_val, classes seen in y.
        sample_weight_val : array-like of shape (n_val,), default=None

        Returns
        -------
        self : object
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False,
                         validation=(X_val, y_val, sample_weight_val))


def _check_image_shape(image_shape):
    if (not isinstance(image_shape, (tuple, list)) or len(image_shape) != 2
            or not all(isinstance(s, numbers.Integral) and s > 0 for s in image_shape)):
        raise InvalidParameterError(f"image_shape must be a pair of positive ints (H, W); got "
                         f"{image_shape!r}.")
    return tuple(int(s) for s in image_shape)


def _accepted(hw, shape):
    """Check that images of size hw fit LeNet-5; return hw as a tuple."""
    if hw is not None:
        hw = tuple(int(s) for s in hw)
        if hw == (28, 28) or (min(hw) >= 32 and hw[0] % 4 == 0 and hw[1] % 4 == 0):
            return hw
    n_features = int(np.prod(shape[1:])) if len(shape) > 1 else 0
    raise ValueError(f"{_SHAPES_HELP}; got X of shape {tuple(shape)} "
                     f"(n_samples = {shape[0]}, n_features = {n_features}).")
