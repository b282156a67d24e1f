"""MLP training speed: fastbp against scikit-learn, PyTorch (eager and
torch.compile) and JAX (jit), each in a process of its own.

Fashion-MNIST (60,000 images), 784-256-128-10 ReLU, batch 128, softmax
cross-entropy, alpha = 0, Glorot-uniform initialization (scikit-learn's) for
all, shuffled every epoch. Each contender warms up on a few batches first
(excluded), then trains ``epochs`` epochs; the figure is seconds per epoch at
each thread count from 1 to all cores, and the table compares each one's best.
The rows "gemms-only" and "torch-gemms-only" are reference points, not
trainers: the same epoch's matrix products alone, through NumPy's BLAS and
through PyTorch's CPU matmul.

    python bench/bench_mlp.py                                  # SGD float32, every contender
    python bench/bench_mlp.py --workloads sgd-float32 adam-float32 sgd-float64
    python bench/bench_mlp.py --set epochs=1 n_train=12800      # a quick look

Needs Debian's dataset-fashion-mnist (or FASTBP_DATA). PyTorch and JAX are
optional: a contender that is not installed is listed as such.
"""
import time

import numpy as np

import _harness
import _torch_util
from _data import fashion_mnist
from _harness import Unavailable, Workload

SIZES = (784, 256, 128, 10)
BATCH = 128
N_TRAIN = 60000
WARMUP_ROWS = 20 * BATCH


def warmup_rows(n):
    """Rows of a warm-up epoch whose last batch has the size of the timed
    epochs' last batch, so a JIT compiles every shape before the timing."""
    return min(WARMUP_ROWS + (n % BATCH or BATCH), n)
SETTINGS = {"sgd": dict(lr=0.01, momentum=0.9), "adam": dict(lr=0.001)}


def flop_per_sample():
    """Forward and backward GEMMs: 2 * (forward + weight gradient) MACs, plus the
    deltas of every layer but the first."""
    macs = sum(a * b for a, b in zip(SIZES[:-1], SIZES[1:]))
    delta_macs = sum(a * b for a, b in zip(SIZES[1:-1], SIZES[2:]))
    return 2 * (2 * macs + delta_macs)


def _data(options):
    n = options.get("n_train", N_TRAIN)
    X, y = fashion_mnist("train", n, options["dtype"])
    X_test, y_test = fashion_mnist("test", None, options["dtype"])
    return X.reshape(len(X), -1), y, X_test.reshape(len(X_test), -1), y_test


def _sklearn_params(options):
    solver = options["solver"]
    params = dict(hidden_layer_sizes=SIZES[1:-1], activation="relu", solver=solver,
                  alpha=0.0, batch_size=BATCH, learning_rate_init=SETTINGS[solver]["lr"],
                  tol=0.0, n_iter_no_change=10**9, shuffle=True, random_state=0)
    if solver == "sgd":
        params.update(momentum=SETTINGS["sgd"]["momentum"], nesterovs_momentum=False)
    return params


def _run_estimator(cls, options, extra):
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    X, y, X_test, y_test = _data(options)
    epochs = options.get("epochs", 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cls(**_sklearn_params(options), max_iter=1, **extra).fit(X[:WARMUP_ROWS], y[:WARMUP_ROWS])
        est = cls(**_sklearn_params(options), max_iter=epochs, **extra)
        tic = time.perf_counter()
        est.fit(X, y)
        seconds = (time.perf_counter() - tic) / epochs
    return {"seconds": seconds, "accuracy": float(est.score(X_test, y_test)),
            "blas": _harness.blas_report()}


def run_fastbp(options, n_threads):
    from fastbp import MLPClassifier

    kernels = _harness.fastbp_kernel_path(options)
    result = _run_estimator(MLPClassifier, options, {"n_jobs": n_threads})
    result["kernels"] = kernels
    return result


def run_sklearn(options, n_threads):
    from sklearn.neural_network import MLPClassifier

    return _run_estimator(MLPClassifier, options, {})


def _glorot(rng, fan_in, fan_out):
    """scikit-learn's MLP initialization: weights and biases U(+-sqrt(6 / (in + out)))."""
    bound = np.sqrt(6.0 / (fan_in + fan_out))
    return (rng.uniform(-bound, bound, (fan_in, fan_out)),
            rng.uniform(-bound, bound, fan_out))


def _torch(options, n_threads, compiled):
    torch = _torch_util.import_torch(n_threads)
    torch.manual_seed(0)
    tdtype = getattr(torch, options["dtype"])
    X, y, X_test, y_test = _data(options)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    rng = np.random.default_rng(0)
    layers = []
    for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        linear = torch.nn.Linear(a, b, dtype=tdtype)
        W, bias = _glorot(rng, a, b)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W.T.copy()))
            linear.bias.copy_(torch.from_numpy(bias))
        layers.append(linear)
        if i < len(SIZES) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    if options["solver"] == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=SETTINGS["sgd"]["lr"],
                              momentum=SETTINGS["sgd"]["momentum"])
    else:
        opt = torch.optim.Adam(model.parameters(), lr=SETTINGS["adam"]["lr"])
    step = _torch_util.train_step(model, opt, torch.nn.CrossEntropyLoss())
    if compiled:
        step = torch.compile(step)

    def epoch(rows):
        perm = torch.randperm(rows)
        for start in range(0, rows, BATCH):
            idx = perm[start:start + BATCH]
            step(Xt[idx], yt[idx])

    epoch(warmup_rows(len(Xt)))  # warm-up, the ragged last batch included
    epochs = options.get("epochs", 3)
    tic = time.perf_counter()
    for _ in range(epochs):
        epoch(len(Xt))
    seconds = (time.perf_counter() - tic) / epochs
    with torch.no_grad():
        pred = model(torch.from_numpy(X_test)).argmax(1).numpy()
    return {"seconds": seconds, "accuracy": float(np.mean(pred == y_test)),
            "blas": [torch.__config__.show().split("\n")[0].strip(),
                     f"MKL: {torch.backends.mkl.is_available()}"]}


def run_torch(options, n_threads):
    return _torch(options, n_threads, compiled=False)


def run_torch_compile(options, n_threads):
    return _torch(options, n_threads, compiled=True)


def run_jax(options, n_threads):
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        raise Unavailable("JAX is not installed")
    if options["dtype"] == "float64":
        jax.config.update("jax_enable_x64", True)
    X, y, X_test, y_test = _data(options)
    rng = np.random.default_rng(0)
    params = [tuple(jnp.asarray(p.astype(options["dtype"])) for p in _glorot(rng, a, b))
              for a, b in zip(SIZES[:-1], SIZES[1:])]
    Xd, yd = jnp.asarray(X), jnp.asarray(y)

    def forward(params, x):
        for W, b in params[:-1]:
            x = jax.nn.relu(x @ W + b)
        W, b = params[-1]
        return x @ W + b

    def loss(params, x, labels):
        logp = jax.nn.log_softmax(forward(params, x))
        return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))

    solver = options["solver"]
    if solver == "sgd":
        lr, mu = SETTINGS["sgd"]["lr"], SETTINGS["sgd"]["momentum"]
        state = jax.tree_util.tree_map(jnp.zeros_like, params)

        @jax.jit
        def step(params, state, idx):
            g = jax.grad(loss)(params, Xd[idx], yd[idx])
            state = jax.tree_util.tree_map(lambda v, gi: mu * v + gi, state, g)
            params = jax.tree_util.tree_map(lambda p, v: p - lr * v, params, state)
            return params, state
    else:
        lr, b1, b2, eps = SETTINGS["adam"]["lr"], 0.9, 0.999, 1e-8
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        state = (zeros, zeros, jnp.zeros((), jnp.int32))

        @jax.jit
        def step(params, state, idx):
            g = jax.grad(loss)(params, Xd[idx], yd[idx])
            m, v, t = state
            t = t + 1
            m = jax.tree_util.tree_map(lambda a, gi: b1 * a + (1 - b1) * gi, m, g)
            v = jax.tree_util.tree_map(lambda a, gi: b2 * a + (1 - b2) * gi * gi, v, g)
            scale = lr * jnp.sqrt(1 - b2**t) / (1 - b1**t)
            params = jax.tree_util.tree_map(lambda p, a, c: p - scale * a / (jnp.sqrt(c) + eps),
                                            params, m, v)
            return params, (m, v, t)

    perm_rng = np.random.default_rng(0)

    def epoch(params, state, rows):
        perm = perm_rng.permutation(rows)
        for start in range(0, rows, BATCH):
            params, state = step(params, state, perm[start:start + BATCH])
        return params, state

    params, state = epoch(params, state, warmup_rows(len(X)))  # compiles both shapes
    jax.block_until_ready(params)
    epochs = options.get("epochs", 3)
    tic = time.perf_counter()
    for _ in range(epochs):
        params, state = epoch(params, state, len(X))
    jax.block_until_ready(params)
    seconds = (time.perf_counter() - tic) / epochs
    pred = np.asarray(forward(params, jnp.asarray(X_test)).argmax(1))
    return {"seconds": seconds, "accuracy": float(np.mean(pred == y_test)),
            "blas": [f"jax {jax.__version__} (XLA CPU)"]}


def _gemms_epoch_seconds(options, to_backend, matmul):
    """Seconds an epoch's matrix products alone take: every batch's forward,
    delta and weight-gradient GEMM (the FLOP the table counts) on random
    operands, with no gather, activation, loss or step. ``to_backend`` turns
    a NumPy array into the backend's, ``matmul(a, b, out)`` multiplies."""
    n = options.get("n_train", N_TRAIN)
    dtype = np.dtype(options["dtype"])
    rng = np.random.default_rng(0)

    def array(*shape):
        return to_backend(rng.standard_normal(shape).astype(dtype))

    weights = [array(a, b) for a, b in zip(SIZES[:-1], SIZES[1:])]
    grads = [array(*W.shape) for W in weights]
    shapes = {rows: ([array(rows, d) for d in SIZES], [array(rows, d) for d in SIZES[1:]])
              for rows in {BATCH, n % BATCH or BATCH}}

    def batch(rows):
        acts, deltas = shapes[rows]
        for l, W in enumerate(weights):
            matmul(acts[l], W, acts[l + 1])
        for l in range(len(weights) - 1, 0, -1):
            matmul(deltas[l], weights[l].T, deltas[l - 1])
        for l, G in enumerate(grads):
            matmul(acts[l].T, deltas[l], G)

    def epoch(rows):
        for start in range(0, rows, BATCH):
            batch(min(BATCH, rows - start))

    epoch(warmup_rows(n))
    epochs = options.get("epochs", 3)
    tic = time.perf_counter()
    for _ in range(epochs):
        epoch(n)
    return (time.perf_counter() - tic) / epochs


def run_gemms_only(options, n_threads):
    """Not a trainer: an epoch's matrix products alone through NumPy's BLAS.
    A reference point: what the products alone cost with a tuned BLAS (no
    trainer that multiplies with this BLAS is faster; fastbp uses its own
    GEMM)."""
    seconds = _gemms_epoch_seconds(options, lambda a: a,
                                   lambda a, b, out: np.matmul(a, b, out=out))
    return {"seconds": seconds, "blas": _harness.blas_report()}


def run_gemms_only_torch(options, n_threads):
    """Not a trainer: the same products through PyTorch's CPU matmul (MKL or
    oneDNN on x86), in PyTorch's own process: a second bound for the
    products alone, from another vendor's tuned GEMM."""
    torch = _torch_util.import_torch(n_threads)
    seconds = _gemms_epoch_seconds(options, torch.from_numpy,
                                   lambda a, b, out: torch.mm(a, b, out=out))
    return {"seconds": seconds, "blas": _torch_util.backend_report(torch)}


CONTENDERS = {"fastbp": run_fastbp, "sklearn": run_sklearn, "torch": run_torch,
              "torch.compile": run_torch_compile, "jax": run_jax,
              "gemms-only": run_gemms_only, "torch-gemms-only": run_gemms_only_torch}
WORKLOADS = [
    Workload(name=f"{solver}-{dtype}", unit="s/epoch",
             flop=lambda options: flop_per_sample() * options.get("n_train", N_TRAIN),
             dtype=dtype, contenders=CONTENDERS, options={"solver": solver, "epochs": 3})
    for solver, dtype in (("sgd", "float32"), ("adam", "float32"), ("sgd", "float64"))
]

if __name__ == "__main__":
    _harness.main(WORKLOADS, __doc__.splitlines()[0], _harness.results_path("bench_mlp.json"))
