"""LeNet-5 training speed: fastbp against PyTorch, each in a process of its own.

Fashion-MNIST zero-padded to 32x32, float32 (float64 in batch128-float64, for
both libraries), tanh, trainable S2/S4 subsampling (a coefficient and a bias
per map), full C3 connection table,
softmax cross-entropy, SGD with momentum 0.9 (no Nesterov), lr 0.05,
alpha = 0, Glorot-uniform weights and zero biases for all, shuffled every
epoch. The workloads are batch 128 and batch 32. Each contender warms up on a
few batches first (excluded; PyTorch's model and momentum are then reset to
where they started), then trains ``epochs`` epochs (3, as bench_mlp.py and
bench_rnn.py train) on the first ``n_train`` training images; fastbp's fit
setup (its checks of X and y and its initialization, mostly on one thread)
is timed with them, while PyTorch's tensors are built before its timing
starts. The figure is milliseconds per training image, shown as images/s
too, at each thread count from 1 to all cores, and the table compares
each one's best. Accuracy is measured on the first ``n_test`` test images
after the timed epochs. "fastbp-lecun-table" trains LeCun's sparse C3 table
(60 of the 96 map pairs) instead: its GFLOP/s and % of peak count the FLOPs of
that table, the other columns compare times. torch.compile is left out: it
compiled for about 20 s in each process (each thread count) and trained no
faster than eager PyTorch here (batch 32, 1 thread: 0.66 against 0.70 ms/image).

    python bench/bench_lenet.py                                  # every workload and contender
    python bench/bench_lenet.py --workloads batch128-float64     # float64 (both libraries)
    python bench/bench_lenet.py --workloads batch128 --contenders fastbp torch
    python bench/bench_lenet.py --set n_train=1280 n_test=1000   # a quick look
    python bench/bench_lenet.py --set epochs=20 n_train=60000 n_test=10000 \\
        --threads 2 --workloads batch128 --contenders fastbp torch  # accuracy (long)

Needs Debian's dataset-fashion-mnist (or FASTBP_DATA). PyTorch is optional: a
contender that is not installed is listed as such.
"""
import time

import numpy as np

import _harness
import _torch_util
from _data import fashion_mnist
from _harness import Workload

N_TRAIN = 10000
N_TEST = 2000
EPOCHS = 3
# SGD step for both libraries, from short runs (3000 and 10000 images, 1 thread):
# 0.03-0.1 learn alike at batch 128, 0.1 falls behind at batch 32, 0.01 is slow.
LR = 0.05
MOMENTUM = 0.9
WARMUP_BATCHES = 10
# LeCun's C3 table uses 60 of the 6 x 16 (S2 map, C3 map) pairs
C3_CONNECTIONS = {"full": 6 * 16, "lecun": 60}


C1_MACS = 6 * 28 * 28 * 25                               # 1@32x32 -> 6@28x28


def forward_macs(table="full"):
    """Multiply-adds of one image's forward pass through the convolution and
    fully connected layers (the subsampling layers and activations, a few
    thousand FLOP, are left out)."""
    c3 = C3_CONNECTIONS[table] * 10 * 10 * 25            # 6@14x14 -> 16@10x10
    c5 = 120 * 16 * 25                                   # 16@5x5 -> 120
    f6, out = 120 * 84, 84 * 10
    return C1_MACS + c3 + c5 + f6 + out


def flop_per_image(table="full"):
    """Training FLOP per image: 2 * (forward + weight gradient) MACs of the
    convolution and fully connected layers (``forward_macs``), plus the deltas
    of every layer but C1 (the input needs none)."""
    forward = forward_macs(table)
    delta = forward - C1_MACS
    return 2 * (2 * forward + delta)


def _pad(X):
    """(n, 28, 28) -> (n, 1, 32, 32), zero-padded as LeCun padded the digits."""
    return np.ascontiguousarray(np.pad(X[:, None], ((0, 0), (0, 0), (2, 2), (2, 2))))


def _data(options):
    X, y = fashion_mnist("train", options.get("n_train", N_TRAIN), options["dtype"])
    X_test, y_test = fashion_mnist("test", options.get("n_test", N_TEST), options["dtype"])
    return _pad(X), y, _pad(X_test), y_test


def _warmup_rows(batch, n):
    return min(WARMUP_BATCHES * batch + batch // 2, n)  # a ragged last batch too


def _fastbp(options, n_threads, table):
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from fastbp import LeNet5Classifier

    kernels = _harness.fastbp_kernel_path(options)  # first: it may force the path
    X, y, X_test, y_test = _data(options)
    batch, epochs = options["batch"], options.get("epochs", EPOCHS)

    def estimator(max_iter):
        return LeNet5Classifier(
            activation="tanh", connection_table=table, solver="sgd", momentum=MOMENTUM,
            nesterovs_momentum=False, learning_rate_init=options.get("lr", LR),
            batch_size=batch, alpha=0.0, max_iter=max_iter, tol=0, n_iter_no_change=10**9,
            shuffle=True, n_jobs=n_threads, random_state=0)

    rows = _warmup_rows(batch, len(X))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator(1).fit(X[:rows], y[:rows])
        est = estimator(epochs)
        tic = time.perf_counter()
        est.fit(X, y)
        seconds = (time.perf_counter() - tic) / (epochs * len(X))
    return {"seconds": seconds, "accuracy": float(est.score(X_test, y_test)),
            "flop": flop_per_image(table), "loss": float(est.loss_),
            "blas": _harness.blas_report(), "kernels": kernels}


def run_fastbp(options, n_threads):
    return _fastbp(options, n_threads, "full")


def run_fastbp_lecun(options, n_threads):
    return _fastbp(options, n_threads, "lecun")


def torch_lenet(seed=0):
    """LeNet-5 with a full C3 table, built and initialized as fastbp builds it."""
    import torch
    from torch import nn

    class Subsample(nn.Module):
        """S2/S4: tanh(coef * mean of each 2x2 block + bias), per map."""

        def __init__(self, maps):
            super().__init__()
            self.coef = nn.Parameter(torch.ones(maps))
            self.bias = nn.Parameter(torch.zeros(maps))

        def forward(self, x):
            pooled = nn.functional.avg_pool2d(x, 2)
            return torch.tanh(pooled * self.coef.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1))

    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.Tanh(), Subsample(6),       # C1, S2
        nn.Conv2d(6, 16, 5), nn.Tanh(), Subsample(16),     # C3 (full table), S4
        nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(),    # C5
        nn.Linear(120, 84), nn.Tanh(),                     # F6
        nn.Linear(84, 10),                                 # output (softmax in the loss)
    )
    # fastbp's tanh init: Glorot uniform weights (fans over connected maps x 25,
    # which xavier_uniform_ computes the same way for a full table), zero biases.
    # PyTorch's default init would make accuracy differ for reasons other than speed.
    for layer in model:
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return model


def run_torch(options, n_threads):
    torch = _torch_util.import_torch(n_threads)
    X, y, X_test, y_test = _data(options)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    batch, epochs = options["batch"], options.get("epochs", EPOCHS)
    model = torch_lenet(seed=0).to(Xt.dtype)  # float64 workloads train in float64
    initial = _torch_util.snapshot(model)
    opt = torch.optim.SGD(model.parameters(), lr=options.get("lr", LR), momentum=MOMENTUM)
    step = _torch_util.train_step(model, opt, torch.nn.CrossEntropyLoss())

    def epoch(rows):
        perm = torch.randperm(rows)
        for start in range(0, rows, batch):
            idx = perm[start:start + batch]
            step(Xt[idx], yt[idx])

    epoch(_warmup_rows(batch, len(Xt)))
    _torch_util.reset_in_place(torch, model, opt, initial)
    tic = time.perf_counter()
    for _ in range(epochs):
        epoch(len(Xt))
    seconds = (time.perf_counter() - tic) / (epochs * len(Xt))
    with torch.no_grad():
        pred = model(torch.from_numpy(X_test)).argmax(1).numpy()
    return {"seconds": seconds, "accuracy": float(np.mean(pred == y_test)),
            "blas": _torch_util.backend_report(torch)}


CONTENDERS = {"fastbp": run_fastbp, "torch": run_torch, "fastbp-lecun-table": run_fastbp_lecun}
WORKLOADS = [
    # seconds per image, shown in ms/image and as images/s (1 / seconds)
    Workload(name=f"batch{batch}{suffix}", unit="ms/image", flop=flop_per_image("full"),
             dtype=dtype, contenders=CONTENDERS, rate=("images/s", 1.0),
             options={"batch": batch, "epochs": EPOCHS, "n_train": N_TRAIN, "n_test": N_TEST,
                      "lr": LR})
    for batch, dtype, suffix in ((128, "float32", ""), (32, "float32", ""),
                                 (128, "float64", "-float64"))
]

if __name__ == "__main__":
    _harness.main(WORKLOADS, __doc__.splitlines()[0], _harness.results_path("bench_lenet.json"))
