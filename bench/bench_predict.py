"""Prediction latency: fastbp against scikit-learn, PyTorch and onnxruntime,
each in a process of its own.

The MLP workloads time ``predict_proba`` of MLPClassifier 784-256-128-10
(ReLU, softmax, float32; bench_mlp.py's model) on 10,000 rows ("mlp-10k",
milliseconds per call) and on 1 row ("mlp-1row", microseconds per call).
Every contender computes the same function with the same weights: each
process draws them from one seed (Glorot uniform, as bench_mlp.py), fastbp
and scikit-learn fit for one iteration on a few random rows (not timed) and
then take those weights through ``coefs_`` and ``intercepts_``; PyTorch's
``nn.Sequential`` (Linear, ReLU, ..., Softmax) copies them and runs under
``torch.inference_mode()``; "fastbp-onnx" runs fastbp's ``to_onnx`` export
in onnxruntime. All predict the same rows, drawn from a fixed seed; each
takes NumPy rows and gives NumPy probabilities, as an estimator does.

fastbp alone: LeNet5Classifier (full C3 table, tanh) on 1,000 images of
1x32x32 and on 1 image, RNNClassifier (65 one-hot features, 50 steps, hidden
128, a prediction at every step: bench_rnn.py's model) on 1,000 sequences and
on 1, and MLPRegressor 784-256-128-1 on 10,000 rows and on 1 row, each fitted
for one iteration on random data.

Each contender calls once to build its model's workspace, warms up for
``warmup`` calls, then times ``calls`` calls one by one (time.perf_counter);
the figure is the fastest call, as the harness's GEMM peak and
bench_conv_kernels.py take the fastest, and the JSON holds the median too,
with a checksum of the output so that the contenders can be seen to agree.
FLOP counts are the forward multiply-adds (x2) of the dense, convolution and
recurrent layers.

    python bench/bench_predict.py                           # every workload, every contender
    python bench/bench_predict.py --workloads mlp-10k mlp-1row --contenders fastbp torch
    python bench/bench_predict.py --set calls=20 warmup=2   # a quick look

PyTorch and onnxruntime (with onnx, for the export) are optional: a contender
that is not installed is listed as such. No data set is needed.
"""
import time

import numpy as np

import _harness
import _torch_util
from _harness import Unavailable, Workload
from bench_lenet import forward_macs as lenet_forward_macs
from bench_mlp import _glorot
from bench_rnn import fastbp_rnn, fit_quietly, one_hot
from bench_rnn import forward_macs as rnn_forward_macs

CLASSIFIER_SIZES = (784, 256, 128, 10)
REGRESSOR_SIZES = (784, 256, 128, 1)
RNN_SHAPE = {"n_features": 65, "hidden": 128, "seq_len": 50}
FIT_ROWS = 64  # the brief fit that builds a model, not timed
WEIGHT_SEED, ROW_SEED = 0, 1


def dense_flop(sizes, rows):
    """Forward FLOP of an MLP of layer ``sizes`` on ``rows`` rows."""
    return 2 * rows * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def time_calls(call, options):
    """Warm up, then time ``calls`` calls one by one: the fastest (``seconds``),
    the median, and the last call's output."""
    for _ in range(1 + options["warmup"]):
        out = call()
    times = np.empty(options["calls"])
    for i in range(len(times)):
        tic = time.perf_counter()
        out = call()
        times[i] = time.perf_counter() - tic
    return {"seconds": float(times.min()), "median_seconds": float(np.median(times)),
            "calls": len(times)}, out


def checksum(out):
    """One number from an output, the same (to float32 rounding) for
    contenders that compute the same function: each column's sum, weighted by
    its position, so that swapped columns show."""
    out = np.asarray(out, dtype=np.float64)
    columns = out.reshape(-1, out.shape[-1]) if out.ndim > 1 else out[:, None]
    return float(columns.sum(axis=0) @ np.arange(1, columns.shape[1] + 1))


def _timed(call, options, extra):
    result, out = time_calls(call, options)
    return {**result, "checksum": checksum(out), **extra}


# ---------------------------------------------------------------- the MLPs
def mlp_weights(sizes, dtype):
    """(coefs, intercepts) of every layer, the same in every process."""
    rng = np.random.default_rng(WEIGHT_SEED)
    layers = [_glorot(rng, a, b) for a, b in zip(sizes[:-1], sizes[1:])]
    return [W.astype(dtype) for W, _ in layers], [b.astype(dtype) for _, b in layers]


def mlp_rows(options, n_features=CLASSIFIER_SIZES[0]):
    """The rows every contender predicts, and a few others to fit on."""
    rng = np.random.default_rng(ROW_SEED)
    X = rng.random((options["rows"], n_features), dtype=np.float32).astype(options["dtype"])
    X_fit = rng.random((FIT_ROWS, n_features), dtype=np.float32).astype(options["dtype"])
    return X, X_fit


def _fit_targets(sizes, n):
    """Every class in the brief fit (10 classes), or one target for a regressor."""
    if sizes[-1] == 1:
        return np.linspace(0.0, 1.0, n)
    return np.arange(n) % sizes[-1]


def _estimator_with_weights(cls, sizes, options, extra):
    """An MLP fitted for one iteration, then given ``mlp_weights``."""
    X, X_fit = mlp_rows(options, sizes[0])
    est = cls(hidden_layer_sizes=sizes[1:-1], activation="relu", max_iter=1,
              random_state=0, **extra)
    fit_quietly(est, X_fit, _fit_targets(sizes, len(X_fit)))
    est.coefs_, est.intercepts_ = mlp_weights(sizes, options["dtype"])
    return est, X


def run_fastbp(options, n_threads):
    kernels = _harness.fastbp_kernel_path(options)  # first: it may force the path
    if options["model"] == "mlp-regressor":
        from fastbp import MLPRegressor as cls
        sizes = REGRESSOR_SIZES
    else:
        from fastbp import MLPClassifier as cls
        sizes = CLASSIFIER_SIZES
    est, X = _estimator_with_weights(cls, sizes, options, {"n_jobs": n_threads})
    call = est.predict if options["model"] == "mlp-regressor" else est.predict_proba
    return _timed(lambda: call(X), options, {"blas": _harness.blas_report(),
                                            "kernels": kernels})


def run_sklearn(options, n_threads):
    from sklearn.neural_network import MLPClassifier

    est, X = _estimator_with_weights(MLPClassifier, CLASSIFIER_SIZES, options, {})
    return _timed(lambda: est.predict_proba(X), options, {"blas": _harness.blas_report()})


def run_torch(options, n_threads):
    torch = _torch_util.import_torch(n_threads)
    X, _ = mlp_rows(options)
    coefs, intercepts = mlp_weights(CLASSIFIER_SIZES, options["dtype"])
    layers = []
    for W, b in zip(coefs, intercepts):
        linear = torch.nn.Linear(*W.shape, dtype=getattr(torch, options["dtype"]))
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W.T.copy()))
            linear.bias.copy_(torch.from_numpy(b))
        layers += [linear, torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1], torch.nn.Softmax(dim=1)).eval()

    def call():
        with torch.inference_mode():
            return model(torch.from_numpy(X)).numpy()

    return _timed(call, options, {"blas": _torch_util.backend_report(torch)})


def run_fastbp_onnx(options, n_threads):
    try:
        import onnx  # noqa: F401  (to_onnx needs it)
        import onnxruntime as ort
    except ImportError:
        raise Unavailable("onnx or onnxruntime is not installed")
    from fastbp import MLPClassifier, to_onnx

    est, X = _estimator_with_weights(MLPClassifier, CLASSIFIER_SIZES, options, {"n_jobs": 1})
    so = ort.SessionOptions()
    so.intra_op_num_threads = n_threads
    so.inter_op_num_threads = 1
    session = ort.InferenceSession(to_onnx(est).SerializeToString(), so,
                                   providers=["CPUExecutionProvider"])
    return _timed(lambda: session.run(["probabilities"], {"X": X})[0], options,
                  {"blas": [f"onnxruntime {ort.__version__}, "
                            f"{', '.join(session.get_providers())}"]})


# ---------------------------------------------------- LeNet-5 and the RNN
def run_fastbp_lenet(options, n_threads):
    from fastbp import LeNet5Classifier

    kernels = _harness.fastbp_kernel_path(options)
    rng = np.random.default_rng(ROW_SEED)
    X = rng.random((options["rows"], 1, 32, 32), dtype=np.float32).astype(options["dtype"])
    X_fit = rng.random((FIT_ROWS, 1, 32, 32), dtype=np.float32).astype(options["dtype"])
    est = LeNet5Classifier(activation="tanh", connection_table="full", max_iter=1,
                           n_jobs=n_threads, random_state=0)
    fit_quietly(est, X_fit, np.arange(FIT_ROWS) % 10)
    return _timed(lambda: est.predict_proba(X), options, {"blas": _harness.blas_report(),
                                                          "kernels": kernels})


def run_fastbp_rnn(options, n_threads):
    kernels = _harness.fastbp_kernel_path(options)
    F, T = RNN_SHAPE["n_features"], RNN_SHAPE["seq_len"]
    rng = np.random.default_rng(ROW_SEED)
    X = one_hot(rng.integers(0, F, (options["rows"], T)), F).astype(options["dtype"])
    X_fit = one_hot(rng.integers(0, F, (FIT_ROWS, T)), F).astype(options["dtype"])
    y_fit = rng.integers(0, F, (FIT_ROWS, T))
    y_fit[0] = np.arange(T) % F  # every class seen: 65 outputs, as the FLOP count says
    y_fit[1, :F - T] = np.arange(T, F)
    est = fastbp_rnn(RNN_SHAPE["hidden"], 32, "sgd", 0.01, 1, n_threads)
    fit_quietly(est, X_fit, y_fit)
    assert len(est.classes_) == F
    return _timed(lambda: est.predict_proba(X), options, {"blas": _harness.blas_report(),
                                                          "kernels": kernels})


# ---------------------------------------------------------------- workloads
MLP_CONTENDERS = {"fastbp": run_fastbp, "sklearn": run_sklearn, "torch": run_torch,
                  "fastbp-onnx": run_fastbp_onnx}
# (name, model, rows, FLOP per row, contenders, calls)
SHAPES = [
    ("mlp-10k", "mlp-classifier", 10000, dense_flop(CLASSIFIER_SIZES, 1), MLP_CONTENDERS, 50),
    ("mlp-1row", "mlp-classifier", 1, dense_flop(CLASSIFIER_SIZES, 1), MLP_CONTENDERS, 5000),
    ("mlp-regressor-10k", "mlp-regressor", 10000, dense_flop(REGRESSOR_SIZES, 1),
     {"fastbp": run_fastbp}, 50),
    ("mlp-regressor-1row", "mlp-regressor", 1, dense_flop(REGRESSOR_SIZES, 1),
     {"fastbp": run_fastbp}, 5000),
    ("lenet-1k", "lenet", 1000, 2 * lenet_forward_macs("full"),
     {"fastbp": run_fastbp_lenet}, 30),
    ("lenet-1image", "lenet", 1, 2 * lenet_forward_macs("full"),
     {"fastbp": run_fastbp_lenet}, 2000),
    ("rnn-1k", "rnn", 1000, 2 * RNN_SHAPE["seq_len"] * rnn_forward_macs(RNN_SHAPE),
     {"fastbp": run_fastbp_rnn}, 30),
    ("rnn-1seq", "rnn", 1, 2 * RNN_SHAPE["seq_len"] * rnn_forward_macs(RNN_SHAPE),
     {"fastbp": run_fastbp_rnn}, 2000),
]
RATE = {"mlp-classifier": "rows/s", "mlp-regressor": "rows/s", "lenet": "images/s",
        "rnn": "sequences/s"}
WORKLOADS = [
    # seconds per call, shown in ms (many rows) or us (one row) and as rows/s
    Workload(name=name, unit="us/call" if rows == 1 else "ms/call", flop=flop * rows,
             dtype="float32", contenders=contenders, rate=(RATE[model], float(rows)),
             options={"model": model, "rows": rows, "calls": calls, "warmup": 5})
    for name, model, rows, flop, contenders, calls in SHAPES
]

if __name__ == "__main__":
    _harness.main(WORKLOADS, __doc__.splitlines()[0], _harness.results_path("bench_predict.json"))
