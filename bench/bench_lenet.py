"""LeNet-5 training speed and accuracy: fastbp vs PyTorch CPU, same run.

Fashion-MNIST zero-padded to 32x32, float32, tanh, trainable S2/S4
subsampling (coefficient and bias per map), softmax cross-entropy, SGD with
momentum 0.9 (no Nesterov), alpha = 0. For each batch size and thread count
it trains, on the same images, fastbp with the full C3 connection table,
PyTorch with the same architecture and initialization, and fastbp with
LeCun's table (an extra row), then prints training images per second, the
ratio fastbp / PyTorch (= PyTorch time / fastbp time), test accuracy after
the timed epochs, and the speedup of all threads over one.

``--accuracy-epochs N`` then trains fastbp (full table, batch 128) and
PyTorch for N epochs on the whole training set and prints test accuracy
after each epoch: the target is 90% within 20 epochs.

    python bench/bench_lenet.py                        # timing: batches 128, 32; 1 and all threads
    python bench/bench_lenet.py --accuracy-epochs 20   # plus the accuracy check (long)
    python bench/bench_lenet.py --quick                # smoke test, < 1 min, numbers meaningless

Needs Debian's dataset-fashion-mnist (or FASTBP_DATA) and PyTorch (CPU).
"""
import argparse
import os
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

import fastbp
from _common import (environment, load_fashion_mnist_images, print_environment,
                     print_table, timed, write_json)

# SGD step for both libraries, from short runs (3000 and 10000 images, 1 thread):
# 0.03-0.1 learn alike at batch 128, 0.1 falls behind at batch 32, 0.01 is slow.
LR = 0.05
ACCURACY_BATCH = 128


def fastbp_estimator(table, batch, epochs, n_threads, lr, random_state=0):
    return fastbp.LeNet5Classifier(
        activation="tanh", connection_table=table, solver="sgd", momentum=0.9,
        nesterovs_momentum=False, learning_rate_init=lr, batch_size=batch, alpha=0.0,
        max_iter=epochs, tol=0, n_iter_no_change=10**9, n_jobs=n_threads,
        random_state=random_state)


def run_fastbp(table, data, batch, epochs, n_threads, lr):
    """Train for ``epochs``; return (seconds per epoch, test accuracy)."""
    X, y, X_test, y_test = data
    est = fastbp_estimator(table, batch, epochs, n_threads, lr)

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y)

    _, seconds, _ = timed(fit, memory=False)
    return seconds / epochs, est.score(X_test, y_test)


def torch_lenet(seed):
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


class TorchTrainer:
    """PyTorch training loop, the counterpart of fastbp's SGD epochs."""

    def __init__(self, batch, n_threads, lr, seed=0):
        import torch

        torch.set_num_threads(n_threads)
        self.torch, self.batch = torch, batch
        self.model = torch_lenet(seed)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=lr, momentum=0.9)
        self.loss_fn = torch.nn.CrossEntropyLoss()

    def epochs(self, X, y, n):
        torch = self.torch
        for _ in range(n):
            perm = torch.randperm(len(X))
            for start in range(0, len(X), self.batch):
                idx = perm[start:start + self.batch]
                self.opt.zero_grad(set_to_none=True)
                self.loss_fn(self.model(X[idx]), y[idx]).backward()
                self.opt.step()

    def accuracy(self, X, y):
        with self.torch.no_grad():
            pred = self.model(X).argmax(1).numpy()
        return float(np.mean(pred == y))


def run_torch(data, batch, epochs, n_threads, lr):
    import torch

    X, y, X_test, y_test = data
    trainer = TorchTrainer(batch, n_threads, lr)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    _, seconds, _ = timed(lambda: trainer.epochs(Xt, yt, epochs), memory=False)
    return seconds / epochs, trainer.accuracy(torch.from_numpy(X_test), y_test)


def timing_rows(data, args):
    n = len(data[0])
    rows = []
    for batch in args.batches:
        for n_threads in args.threads:
            row = {"batch": batch, "threads": n_threads}
            for name, run in (
                ("full", lambda: run_fastbp("full", data, batch, args.epochs, n_threads,
                                            args.lr)),
                ("torch", lambda: run_torch(data, batch, args.epochs, n_threads, args.lr)),
                ("lecun", lambda: run_fastbp("lecun", data, batch, args.epochs, n_threads,
                                             args.lr)),
            ):
                seconds, accuracy = run()
                row[f"{name}_ips"] = n / seconds
                row[f"{name}_acc"] = accuracy
            # images/s ratio = PyTorch time / fastbp time
            row["full_x"] = row["full_ips"] / row["torch_ips"]
            row["lecun_x"] = row["lecun_ips"] / row["torch_ips"]
            rows.append(row)
            print(f"batch={batch} threads={n_threads}: " + ", ".join(
                f"{k}={v:.3f}" for k, v in row.items() if isinstance(v, float)), flush=True)
    return rows


def scaling_rows(rows, threads):
    """images/s at one thread vs all threads, per batch size and model."""
    if len(threads) < 2:
        return []
    lo, hi = min(threads), max(threads)
    out = []
    for batch in sorted({r["batch"] for r in rows}, reverse=True):
        by_threads = {r["threads"]: r for r in rows if r["batch"] == batch}
        for name in ("full", "torch", "lecun"):
            a, b = by_threads[lo][f"{name}_ips"], by_threads[hi][f"{name}_ips"]
            out.append({"batch": batch, "model": name, "ips_lo": a, "ips_hi": b,
                        "speedup": b / a})
    return out


def accuracy_curve(data, epochs, n_threads, lr):
    """Test accuracy after each epoch, fastbp (full table) and PyTorch, batch 128."""
    import torch

    X, y, X_test, y_test = data
    # One fit per epoch through partial_fit (which keeps the momentum); a
    # RandomState instance, not an int, so each epoch draws a new shuffle.
    est = fastbp_estimator("full", ACCURACY_BATCH, 1, n_threads, lr,
                           random_state=np.random.RandomState(0))
    trainer = TorchTrainer(ACCURACY_BATCH, n_threads, lr)
    Xt, yt, Xt_test = torch.from_numpy(X), torch.from_numpy(y), torch.from_numpy(X_test)
    classes = np.arange(10)
    rows, fastbp_s, torch_s = [], 0.0, 0.0
    for epoch in range(1, epochs + 1):
        _, s, _ = timed(lambda: est.partial_fit(X, y, classes=classes), memory=False)
        fastbp_s += s
        torch.set_num_threads(n_threads)
        _, s, _ = timed(lambda: trainer.epochs(Xt, yt, 1), memory=False)
        torch_s += s
        row = {"epoch": epoch, "fastbp_acc": est.score(X_test, y_test),
               "torch_acc": trainer.accuracy(Xt_test, y_test),
               "fastbp_loss": est.loss_, "fastbp_s": fastbp_s, "torch_s": torch_s}
        rows.append(row)
        print(f"epoch {epoch}: " + ", ".join(
            f"{k}={v:.4f}" for k, v in row.items() if isinstance(v, float)), flush=True)
    return rows


def first_epoch_at(rows, key, level):
    return next((r["epoch"] for r in rows if r[key] >= level), None)


def main():
    all_threads = len(os.sched_getaffinity(0))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs per row")
    parser.add_argument("--accuracy-epochs", type=int, default=None,
                        help="epochs of the accuracy run (0: skip; default 0, 1 with --quick)")
    parser.add_argument("--batches", nargs="+", type=int, default=[128, 32])
    parser.add_argument("--threads", nargs="+", type=int, default=sorted({1, all_threads}))
    parser.add_argument("--n-train", type=int, default=None, help="training images (all)")
    parser.add_argument("--n-test", type=int, default=None, help="test images (all)")
    parser.add_argument("--lr", type=float, default=LR, help=f"SGD step (default {LR})")
    parser.add_argument("--quick", action="store_true",
                        help="256 training / 1000 test images: checks the script runs")
    parser.add_argument("--json", default=None,
                        help="default bench/results/bench_lenet[_quick].json")
    args = parser.parse_args()
    if args.quick:
        args.n_train = args.n_train or 256
        args.n_test = args.n_test or 1000
    if args.accuracy_epochs is None:
        args.accuracy_epochs = 1 if args.quick else 0
    json_path = args.json or (
        f"bench/results/bench_lenet{'_quick' if args.quick else ''}.json")

    env = environment(args.threads)
    print_environment(env)
    data = load_fashion_mnist_images(args.n_train, args.n_test, pad=2)
    print(f"{len(data[0])} training and {len(data[2])} test images of 32x32, lr {args.lr}\n")

    rows = timing_rows(data, args)
    print(f"\ntraining images/s, {args.epochs} epoch(s) on {len(data[0])} images, "
          f"SGD momentum 0.9, lr {args.lr}; *_x = fastbp images/s / PyTorch images/s "
          f"(target >= 2 at all threads); acc = test accuracy after those epochs\n")
    print_table(rows, [
        ("batch", "batch", "d"), ("threads", "threads", "d"),
        ("full_ips", "fastbp full", ".0f"), ("torch_ips", "torch", ".0f"),
        ("lecun_ips", "fastbp lecun", ".0f"),
        ("full_x", "full_x", ".2f"), ("lecun_x", "lecun_x", ".2f"),
        ("full_acc", "acc full", ".4f"), ("torch_acc", "acc torch", ".4f"),
        ("lecun_acc", "acc lecun", ".4f"),
    ])
    scaling = scaling_rows(rows, args.threads)
    if scaling:
        lo, hi = min(args.threads), max(args.threads)
        print(f"images/s at {lo} vs {hi} threads\n")
        print_table(scaling, [
            ("batch", "batch", "d"), ("model", "model", ""),
            ("ips_lo", f"{lo} thread(s)", ".0f"), ("ips_hi", f"{hi} threads", ".0f"),
            ("speedup", "speedup", ".2f"),
        ])

    curve = []
    if args.accuracy_epochs > 0:
        n_threads = max(args.threads)
        print(f"accuracy run: batch {ACCURACY_BATCH}, {n_threads} threads, "
              f"{args.accuracy_epochs} epochs\n")
        curve = accuracy_curve(data, args.accuracy_epochs, n_threads, args.lr)
        print()
        print_table(curve, [
            ("epoch", "epoch", "d"), ("fastbp_acc", "acc fastbp", ".4f"),
            ("torch_acc", "acc torch", ".4f"), ("fastbp_loss", "loss fastbp", ".4f"),
            ("fastbp_s", "fastbp s", ".1f"), ("torch_s", "torch s", ".1f"),
        ])
        for key, who in (("fastbp_acc", "fastbp"), ("torch_acc", "PyTorch")):
            epoch = first_epoch_at(curve, key, 0.90)
            print(f"{who}: " + (f"90% test accuracy at epoch {epoch}" if epoch else
                                f"below 90% after {args.accuracy_epochs} epochs "
                                f"(best {max(r[key] for r in curve):.4f})"))
        print()

    write_json(json_path, {
        "environment": env, "epochs": args.epochs, "lr": args.lr, "quick": args.quick,
        "n_train": len(data[0]), "n_test": len(data[2]), "rows": rows,
        "thread_scaling": scaling, "accuracy_batch": ACCURACY_BATCH, "accuracy_curve": curve,
    })


if __name__ == "__main__":
    main()
