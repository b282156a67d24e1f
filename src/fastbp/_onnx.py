"""ONNX export of fitted fastbp estimators, so that a model runs wherever an
ONNX runtime does.

onnx is an optional dependency (``pip install "fastbp[onnx]"``), imported only
when a model is exported. The graphs replicate each network's forward pass in
float32 and name their inputs and outputs as skl2onnx does.
"""
from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils.validation import check_is_fitted

from ._kernels import _dense

if TYPE_CHECKING:  # pragma: no cover
    import onnx

__all__ = ["to_onnx"]

_MISSING = (
    "fastbp.to_onnx needs onnx, which is not installed. Install it with "
    '`pip install "fastbp[onnx]"` (or `pip install onnx`).'
)

# Softmax on the last axis of any rank, and Squeeze/Unsqueeze/ReduceSum axes
# as inputs, date from opset 13.
MIN_OPSET = 13
DEFAULT_OPSET = 17

_UNARY = {"logistic": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "exp": "Exp"}
# LeNet's lecun_tanh: A tanh(S x), with the kernels' A = 1.7159 and S = 2/3
_LECUN_A, _LECUN_S = _dense.LECUN_TANH


class _Graph:
    """Nodes and float32 initializers of the graph being built, with unique names."""

    def __init__(self, onnx_module):
        self.onnx = onnx_module
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0

    def _name(self, hint):
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value, hint, dtype=np.float32):
        """An initializer holding ``value``: float32 unless ``dtype`` says,
        a string tensor for strings."""
        name = self._name(hint)
        value = np.asarray(value)
        if value.dtype.kind in "OUS":
            tensor = self.onnx.helper.make_tensor(
                name, self.onnx.TensorProto.STRING, value.shape,
                [str(v).encode("utf-8") for v in value.ravel()])
        else:
            tensor = self.onnx.numpy_helper.from_array(
                np.ascontiguousarray(value, dtype=dtype), name)
        self.initializers.append(tensor)
        return name

    def ints(self, values, hint="axes"):
        return self.const(np.asarray(values, dtype=np.int64), hint, np.int64)

    def op(self, op_type, inputs, hint=None, n_outputs=1, output=None, **attrs):
        """Add a node; return its output name (a list when ``n_outputs`` > 1)."""
        if output is not None:
            outputs = [output]
        else:
            outputs = [self._name(hint or op_type.lower()) for _ in range(n_outputs)]
        self.nodes.append(self.onnx.helper.make_node(
            op_type, list(inputs), outputs, name=self._name("node_" + op_type), **attrs))
        return outputs[0] if n_outputs == 1 else outputs

    def activate(self, x, activation, hint="act"):
        """``activation`` (a fastbp activation name) applied to x."""
        if activation == "identity":
            return x
        if activation == "lecun_tanh":
            scaled = self.op("Mul", [x, self.const(_LECUN_S, "lecun_s")])
            return self.op("Mul", [self.op("Tanh", [scaled]), self.const(_LECUN_A, "lecun_a")],
                           hint=hint)
        if activation not in _UNARY:  # pragma: no cover - guarded by the estimators
            raise ValueError(f"activation {activation!r} has no ONNX mapping")
        return self.op(_UNARY[activation], [x], hint=hint)

    def dense(self, x, weight, bias, hint):
        """x @ weight + bias for x of shape (n, n_in)."""
        return self.op("Gemm", [x, self.const(weight, f"{hint}_weight"),
                                self.const(bias, f"{hint}_bias")], hint=hint)


def _label_values(classes):
    """The classes as an array ONNX can hold, and its ONNX element type name."""
    classes = np.asarray(classes)
    kind = classes.dtype.kind
    if kind == "O":
        if all(isinstance(c, str) for c in classes):
            return classes.astype(str), "string"
        if all(isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in classes):
            return classes.astype(np.int64), "int64"
        raise ValueError(
            "to_onnx exports class labels that are all integers or all strings; "
            f"classes_ holds {sorted({type(c).__name__ for c in classes})}.")
    if kind in "US":
        return classes.astype(str), "string"
    if kind in "iu":
        if kind == "u" and classes.size and classes.max() > np.iinfo(np.int64).max:
            raise ValueError("to_onnx cannot export unsigned class labels above 2**63 - 1.")
        return classes.astype(np.int64), "int64"
    if kind == "b":
        return classes, "bool"
    if kind == "f":
        return classes, "double" if classes.dtype == np.float64 else "float"
    raise ValueError(f"to_onnx cannot export class labels of dtype {classes.dtype}.")


def _classifier_head(g, logits, est):
    """Outputs ``label`` and ``probabilities`` from the logits (last axis:
    the network's outputs), as ``predict`` and ``predict_proba`` compute them."""
    y_type = est._label_binarizer.y_type_
    if est.out_activation_ == "softmax":
        scores = g.op("Softmax", [logits], output="probabilities", axis=-1)
    else:
        scores = g.op("Sigmoid", [logits], hint="sigmoid")
        if est.n_outputs_ == 1:  # binary: predict_proba gives [1 - p, p]
            one_minus = g.op("Sub", [g.const(1.0, "one"), scores])
            g.op("Concat", [one_minus, scores], output="probabilities", axis=-1)
        elif y_type == "multiclass":  # quadratic cost on sigmoids: normalized
            total = g.op("ReduceSum", [scores, g.ints([-1])], keepdims=1)
            tiny = g.const(np.finfo(np.float32).tiny, "tiny")
            g.op("Div", [scores, g.op("Max", [total, tiny])], output="probabilities")
        else:  # multilabel: the probability of each label
            g.op("Identity", [scores], output="probabilities")

    if y_type == "multilabel-indicator":  # predict: the thresholded indicator matrix
        half = g.const(0.5, "half")
        g.op("Cast", [g.op("Greater", [scores, half])], output="label",
             to=g.onnx.TensorProto.INT64)
        return "int64"
    classes, label_type = _label_values(est.classes_)
    if est.n_outputs_ == 1:
        # LabelBinarizer's threshold: the second class where p > 0.5; a model
        # fitted on one class predicts it everywhere.
        if len(classes) == 1:
            classes = np.repeat(classes, 2)
        p = g.op("Squeeze", [scores, g.ints([-1])])
        positive = g.op("Greater", [p, g.const(0.5, "half")])
        index = g.op("Cast", [positive], to=g.onnx.TensorProto.INT64)
    else:
        index = g.op("ArgMax", [scores], axis=-1, keepdims=0)
    dtype = None if label_type == "string" else classes.dtype
    g.op("Gather", [g.const(classes, "classes", dtype), index], output="label", axis=0)
    return label_type


def _head(g, logits, est, leading):
    """Add the estimator's outputs; return their ValueInfoProtos.
    ``leading`` names the leading dimensions (("N",) or ("N", "T"))."""
    helper, tp = g.onnx.helper, g.onnx.TensorProto
    shape = list(leading)
    if is_classifier(est):
        label_type = _classifier_head(g, logits, est)
        elem = {"int64": tp.INT64, "string": tp.STRING, "bool": tp.BOOL,
                "double": tp.DOUBLE, "float": tp.FLOAT}[label_type]
        n_columns = len(est.classes_) if est.n_outputs_ > 1 else 2
        label_shape = shape + ([est.n_outputs_]
                               if est._label_binarizer.y_type_ == "multilabel-indicator"
                               else [])
        return [helper.make_tensor_value_info("label", elem, label_shape),
                helper.make_tensor_value_info("probabilities", tp.FLOAT,
                                              shape + [n_columns])]
    g.op("Identity", [g.activate(logits, est.out_activation_)], output="variable")
    return [helper.make_tensor_value_info("variable", tp.FLOAT, shape + [est.n_outputs_])]


def _f32(a):
    return np.asarray(a, dtype=np.float32)


# ---------------------------------------------------------------- networks
def _fitted(est, name):
    """The setting the network was built with: a set_params since the last fit
    has not reached the weights yet (predict still uses the built network)."""
    return getattr(est, "_built_with", {}).get(name, getattr(est, name))


def _mlp_graph(g, est):
    p = est.parameters_
    x = "X"
    n_layers = est.n_layers_ - 1
    for i in range(n_layers):
        x = g.dense(x, _f32(p[f"coef_{i}"]), _f32(p[f"intercept_{i}"]), f"dense_{i}")
        if i < n_layers - 1:
            x = g.activate(x, _fitted(est, "activation"))
    inputs = [g.onnx.helper.make_tensor_value_info(
        "X", g.onnx.TensorProto.FLOAT, ["N", est.n_features_in_])]
    return inputs, _head(g, x, est, ("N",))


def _lenet_image_size(est):
    """(H, W) of the images the exported model takes, and whether the graph
    pads them by 2 pixels on each side (28x28 digits, as LeNet5Classifier)."""
    h, w = est._network.layers[0].in_size
    if h * w != est.n_features_in_:  # fitted on 28x28 images, padded to 32x32
        return (h - 4, w - 4), True
    return (h, w), False


def _lenet_graph(g, est):
    p = est.parameters_
    act = _fitted(est, "activation")
    layers = est._network.layers
    (h, w), padded = _lenet_image_size(est)
    x = "X"
    if padded:
        x = g.op("Pad", [x, g.ints([0, 0, 2, 2, 0, 0, 2, 2], "pads")], hint="padded",
                 mode="constant")
    for name, layer in zip(("C1", "S2", "C3", "S4", "C5"), layers):
        if name.startswith("C"):
            # unconnected (output, input) map pairs of the table are never read
            weight = _f32(p[f"{name}.weight"]) * layer.table.astype(bool)[:, :, None, None]
            x = g.op("Conv", [x, g.const(weight, f"{name}_weight"),
                              g.const(_f32(p[f"{name}.bias"]), f"{name}_bias")],
                     hint=name, kernel_shape=[5, 5])
        else:
            # g(coef * mean of each 2x2 block + bias), one coef and bias per map
            pooled = g.op("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
            per_map = (1, -1, 1, 1)
            x = g.op("Mul", [pooled, g.const(_f32(p[f"{name}.coef"]).reshape(per_map),
                                             f"{name}_coef")])
            x = g.op("Add", [x, g.const(_f32(p[f"{name}.bias"]).reshape(per_map),
                                        f"{name}_bias")], hint=name)
        x = g.activate(x, act)
    x = g.op("Flatten", [x], axis=1)
    x = g.activate(g.dense(x, _f32(p["F6.weight"]), _f32(p["F6.bias"]), "F6"), act)
    logits = g.dense(x, _f32(p["output.weight"]), _f32(p["output.bias"]), "output")
    inputs = [g.onnx.helper.make_tensor_value_info(
        "X", g.onnx.TensorProto.FLOAT, ["N", 1, h, w])]
    return inputs, _head(g, logits, est, ("N",))


def _rnn_graph(g, est, with_lengths):
    tp, helper = g.onnx.TensorProto, g.onnx.helper
    p = est.parameters_
    n_features, hidden = p["weight_ih"].shape
    table = est._input_kind == "table"
    inputs = [helper.make_tensor_value_info(
        "X", tp.FLOAT, ["N", "T"] if table else ["N", "T", n_features])]
    x = g.op("Unsqueeze", ["X", g.ints([2])]) if table else "X"
    # time-major: onnxruntime does not implement the RNN's batch-major layout
    x = g.op("Transpose", [x], perm=[1, 0, 2], hint="time_major")
    lengths = ""  # an omitted optional input: every sequence runs T steps
    if with_lengths:
        inputs.append(helper.make_tensor_value_info("sequence_lens", tp.INT64, ["N"]))
        lengths = g.op("Cast", ["sequence_lens"], to=tp.INT32)
    # ONNX: h_t = f(x_t W^T + h_{t-1} R^T + Wb + Rb), h_0 = 0; fastbp keeps
    # the input-major transposes and a single bias.
    bias = np.concatenate([_f32(p["bias_h"]), np.zeros(hidden, np.float32)])[None]
    Y, Y_h = g.op("RNN", [x, g.const(_f32(p["weight_ih"]).T[None], "W"),
                          g.const(_f32(p["weight_hh"]).T[None], "R"),
                          g.const(bias, "B"), lengths],
                  n_outputs=2, hidden_size=int(hidden),
                  activations=[_UNARY[_fitted(est, "nonlinearity")]])
    weight_out, bias_out = _f32(p["weight_out"]), _f32(p["bias_out"])
    if _fitted(est, "output") == "last":
        # Y_h holds each sequence's state at its own last step
        H = g.op("Squeeze", [Y_h, g.ints([0])])
        logits = g.dense(H, weight_out, bias_out, "output")
        return inputs, _head(g, logits, est, ("N",))
    H = g.op("Transpose", [g.op("Squeeze", [Y, g.ints([1])])], perm=[1, 0, 2])
    logits = g.op("Add", [g.op("MatMul", [H, g.const(weight_out, "output_weight")]),
                          g.const(bias_out, "output_bias")], hint="output")
    return inputs, _head(g, logits, est, ("N", "T"))


# ---------------------------------------------------------------------- API
def to_onnx(estimator: Any, *, target_opset: int | None = None,
            sequence_lens: bool = False, name: str | None = None) -> "onnx.ModelProto":
    """Export a fitted fastbp estimator to an ONNX model.

    The model computes the estimator's forward pass in float32 (a model
    fitted in float64 is exported with its parameters rounded to float32) and
    runs on any ONNX runtime, e.g. ``onnxruntime.InferenceSession(
    model.SerializeToString())``. Inputs and outputs are named as skl2onnx
    names them.

    Parameters
    ----------
    estimator : MLPClassifier, MLPRegressor, LeNet5Classifier, RNNClassifier \
or RNNRegressor
        A fitted fastbp estimator.
    target_opset : int, default=None
        Version of the default ONNX operator set the model uses, at least 13;
        None is 17 (or the newest the installed onnx knows, if older).
    sequence_lens : bool, default=False
        RNNs only: give the model a second input, ``sequence_lens``, int64 of
        shape (n_sequences,), the length of each sequence of a ragged batch
        padded at the end. Without it every sequence runs all of X's steps.
    name : str, default=None
        Name of the graph (the estimator's class name when None).

    Returns
    -------
    model : onnx.ModelProto
        Input ``X``, float32, of shape

        - MLPs: (n_samples, n_features_in_);
        - LeNet5Classifier: (n_samples, 1, H, W), images of the size the
          model was fitted on (28x28 images are zero-padded to 32x32 inside
          the graph, as ``predict`` pads them); reshape flat rows to it;
        - RNNs: (n_sequences, n_steps, n_features), or (n_sequences,
          n_steps) for a model fitted on 2-D (univariate) X.

        Outputs, for classifiers: ``label``, the ``classes_`` values
        (int64, string, bool or float; for multilabel models the int64
        indicator matrix ``predict`` gives), and ``probabilities``, float32
        of shape (n_samples, n_classes), as ``predict_proba`` (two columns
        for binary models). For regressors: ``variable``, float32 of shape
        (n_samples, n_outputs) (one column for a single target, where
        ``predict`` gives a 1-D array). RNNs with ``output='sequence'`` have
        a step axis after the first: (n_sequences, n_steps, ...); with
        ``sequence_lens``, the steps past a sequence's length hold no
        prediction.

    Raises
    ------
    ImportError
        If onnx is not installed.
    TypeError
        If ``estimator`` is not a fastbp estimator.
    sklearn.exceptions.NotFittedError
        If it is not fitted.
    ValueError
        For a ``target_opset`` below 13 or above what the installed onnx
        knows, ``sequence_lens`` on a model that is no RNN, or class labels
        ONNX cannot hold (neither all integers nor all strings, ...).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> import fastbp
    >>> X, y = load_digits(return_X_y=True)
    >>> X = (X / 16).astype(np.float32)
    >>> clf = fastbp.MLPClassifier((32,), max_iter=30, random_state=0).fit(X, y)
    >>> model = fastbp.to_onnx(clf)
    >>> [i.name for i in model.graph.input], [o.name for o in model.graph.output]
    (['X'], ['label', 'probabilities'])
    >>> import onnxruntime as ort  # doctest: +SKIP
    >>> session = ort.InferenceSession(model.SerializeToString())  # doctest: +SKIP
    >>> label, proba = session.run(None, {"X": X})  # doctest: +SKIP
    >>> bool((label == clf.predict(X)).all())  # doctest: +SKIP
    True
    """
    from .lenet import LeNet5Classifier
    from .mlp import _BaseMLP
    from .rnn import _RNNMixin

    if not isinstance(estimator, (_BaseMLP, LeNet5Classifier, _RNNMixin)):
        raise TypeError(
            "to_onnx exports fastbp's MLPClassifier, MLPRegressor, LeNet5Classifier, "
            f"RNNClassifier and RNNRegressor; got {type(estimator).__name__}.")
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(_MISSING) from exc
    check_is_fitted(estimator, "_network")

    newest = onnx.defs.onnx_opset_version()
    opset = min(DEFAULT_OPSET, newest) if target_opset is None else target_opset
    if (not isinstance(opset, numbers.Integral) or isinstance(opset, bool)
            or not MIN_OPSET <= opset <= newest):
        raise ValueError(
            f"target_opset must be an int from {MIN_OPSET} to {newest} (the newest the "
            f"installed onnx {onnx.__version__} knows); got {target_opset!r}.")
    is_rnn = isinstance(estimator, _RNNMixin)
    if not isinstance(sequence_lens, (bool, np.bool_)):
        raise ValueError(f"sequence_lens must be a bool; got {sequence_lens!r}.")
    if sequence_lens and not is_rnn:
        raise ValueError(
            f"sequence_lens=True applies to RNNs only, not to {type(estimator).__name__}.")

    g = _Graph(onnx)
    if is_rnn:
        inputs, outputs = _rnn_graph(g, estimator, bool(sequence_lens))
    elif isinstance(estimator, LeNet5Classifier):
        inputs, outputs = _lenet_graph(g, estimator)
    else:
        inputs, outputs = _mlp_graph(g, estimator)

    from ._version import __version__

    graph = onnx.helper.make_graph(g.nodes, name or type(estimator).__name__, inputs,
                                   outputs, initializer=g.initializers)
    opset_ids = [onnx.helper.make_opsetid("", int(opset))]
    model = onnx.helper.make_model(
        graph, opset_imports=opset_ids, producer_name="fastbp", producer_version=__version__,
        doc_string=f"fastbp {type(estimator).__name__}",
        # the oldest IR version that carries this opset: older runtimes load it
        ir_version=onnx.helper.find_min_ir_version_for(opset_ids))
    return model
