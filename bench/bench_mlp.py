"""MLP training speed: fastbp vs scikit-learn vs PyTorch CPU, same run.

Fashion-MNIST, 784-256-128-10 ReLU (tanh in the -tanh config), batch 128,
softmax cross-entropy, alpha = 0, the same optimizer settings for all three. For each configuration
and thread count it prints seconds per epoch, the ratios to fastbp, the
time of the GEMMs alone (numpy's BLAS and scipy's, the same shapes), the
sklearn ratio that a step costing only scipy's GEMMs would reach, test accuracy, and the
peak memory that fit allocates (tracemalloc, numpy buffers included).

    python bench/bench_mlp.py                 # all configurations
    python bench/bench_mlp.py --epochs 2 --configs sgd-float32

Needs Debian's dataset-fashion-mnist (or FASTBP_DATA); PyTorch is optional.
"""
import argparse
import os
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from threadpoolctl import threadpool_limits

import fastbp
from fastbp._kernels import _blas
from _common import (environment, load_fashion_mnist_flat, print_environment,
                     print_table, timed, write_json)

HIDDEN = (256, 128)
BATCH = 128
CONFIGS = {
    "sgd-float32": dict(solver="sgd", dtype=np.float32, lr=0.01),
    "adam-float32": dict(solver="adam", dtype=np.float32, lr=0.001),
    "sgd-float64": dict(solver="sgd", dtype=np.float64, lr=0.01),
    "sgd-float32-tanh": dict(solver="sgd", dtype=np.float32, lr=0.01, activation="tanh"),
}
TORCH_ACTIVATIONS = {"relu": "ReLU", "tanh": "Tanh"}


def sk_params(cfg, epochs, seed):
    return dict(hidden_layer_sizes=HIDDEN, activation=cfg.get("activation", "relu"),
                solver=cfg["solver"],
                alpha=0.0, batch_size=BATCH, learning_rate_init=cfg["lr"],
                momentum=0.9, nesterovs_momentum=False, max_iter=epochs, tol=0.0,
                n_iter_no_change=10**9, shuffle=True, random_state=seed)


def run_sklearn_like(cls, cfg, data, epochs, n_threads, seed, **extra):
    X, y, X_test, y_test = data
    est = cls(**sk_params(cfg, epochs, seed), **extra)

    def fit():
        with warnings.catch_warnings(), threadpool_limits(n_threads):
            warnings.simplefilter("ignore", ConvergenceWarning)
            return est.fit(X, y)

    _, seconds, peak = timed(fit)
    with threadpool_limits(n_threads):
        accuracy = est.score(X_test, y_test)
    return seconds / epochs, accuracy, peak


def run_torch(cfg, data, epochs, n_threads, seed):
    try:
        import torch
    except ImportError:
        return None, None, None
    X, y, X_test, y_test = data
    torch.set_num_threads(n_threads)
    torch.manual_seed(seed)
    tdtype = torch.float32 if cfg["dtype"] == np.float32 else torch.float64
    Xt, yt = torch.from_numpy(X).to(tdtype), torch.from_numpy(y)
    sizes = (X.shape[1],) + HIDDEN + (10,)
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(getattr(torch.nn, TORCH_ACTIVATIONS[cfg.get("activation", "relu")])())
    model = torch.nn.Sequential(*layers).to(tdtype)
    if cfg["solver"] == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=0.9)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"], betas=(0.9, 0.999), eps=1e-8)
    loss_fn = torch.nn.CrossEntropyLoss()

    def fit():
        for _ in range(epochs):
            perm = torch.randperm(len(Xt))
            for start in range(0, len(Xt), BATCH):
                idx = perm[start:start + BATCH]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(Xt[idx]), yt[idx])
                loss.backward()
                opt.step()

    _, seconds, peak = timed(fit)
    with torch.no_grad():
        pred = model(torch.from_numpy(X_test).to(tdtype)).argmax(1).numpy()
    return seconds / epochs, float(np.mean(pred == y_test)), None


def _numpy_gemm(A, B, C, trans_a=False, trans_b=False):
    np.matmul(A.T if trans_a else A, B.T if trans_b else B, out=C)


def gemm_only_epoch(cfg, data, n_threads, gemm=_numpy_gemm):
    """Seconds per epoch of just the GEMMs of forward and backward, through
    numpy's BLAS by default; ``_blas.gemm_py`` runs them through scipy's
    BLAS, the one fastbp calls (the two are different OpenBLAS builds)."""
    X = data[0]
    rng = np.random.default_rng(0)
    sizes = (X.shape[1],) + HIDDEN + (10,)
    W = [rng.standard_normal((a, b)).astype(cfg["dtype"]) for a, b in zip(sizes[:-1], sizes[1:])]
    acts = [np.empty((BATCH, s), cfg["dtype"]) for s in sizes]
    grads = [np.empty_like(w) for w in W]
    deltas = [np.zeros((BATCH, s), cfg["dtype"]) for s in sizes]

    def epoch():
        for start in range(0, len(X) - BATCH + 1, BATCH):
            acts[0][...] = X[start:start + BATCH]
            for i, w in enumerate(W):
                gemm(acts[i], w, acts[i + 1])
            for i in range(len(W) - 1, -1, -1):
                gemm(acts[i], deltas[i + 1], grads[i], trans_a=True)
                if i > 0:
                    gemm(deltas[i + 1], W[i], deltas[i], trans_b=True)

    with threadpool_limits(n_threads):
        epoch()
        _, seconds, _ = timed(epoch)
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--threads", nargs="+", type=int,
                        default=sorted({1, len(os.sched_getaffinity(0))}))
    parser.add_argument("--n-train", type=int, default=None)
    parser.add_argument("--skip", nargs="*", default=[], choices=["sklearn", "torch"])
    parser.add_argument("--json", default="bench/results/bench_mlp.json")
    args = parser.parse_args()

    env = environment(args.threads)
    print_environment(env)
    rows = []
    for name in args.configs:
        cfg = CONFIGS[name]
        data = load_fashion_mnist_flat(args.n_train, cfg["dtype"])
        for n_threads in args.threads:
            row = {"config": name, "threads": n_threads}
            row["fastbp_s"], row["fastbp_acc"], row["fastbp_mb"] = run_sklearn_like(
                fastbp.MLPClassifier, cfg, data, args.epochs, n_threads, 0, n_jobs=n_threads)
            if "sklearn" not in args.skip:
                row["sklearn_s"], row["sklearn_acc"], row["sklearn_mb"] = run_sklearn_like(
                    SkMLPClassifier, cfg, data, args.epochs, n_threads, 0)
            if "torch" not in args.skip:
                row["torch_s"], row["torch_acc"], _ = run_torch(
                    cfg, data, args.epochs, n_threads, 0)
            row["gemm_s"] = gemm_only_epoch(cfg, data, n_threads)
            row["gemm_scipy_s"] = gemm_only_epoch(cfg, data, n_threads, _blas.gemm_py)
            for peer in ("sklearn", "torch"):
                if row.get(f"{peer}_s"):
                    row[f"{peer}_x"] = row[f"{peer}_s"] / row["fastbp_s"]
            row["vs_gemm"] = row["fastbp_s"] / row["gemm_s"]
            row["vs_gemm_scipy"] = row["fastbp_s"] / row["gemm_scipy_s"]
            if row.get("sklearn_s"):
                # The sklearn ratio of a step that cost nothing but its GEMMs
                # through scipy's BLAS, the one fastbp may use: no fastbp can beat it.
                row["sklearn_x_ceiling"] = row["sklearn_s"] / row["gemm_scipy_s"]
            rows.append(row)
            print(f"{name} threads={n_threads}: " + ", ".join(
                f"{k}={v:.3f}" for k, v in row.items() if isinstance(v, float)), flush=True)

    print(f"\nseconds per epoch, {args.epochs} epochs, batch {BATCH}, "
          f"784-{'-'.join(map(str, HIDDEN))}-10, relu unless the config says tanh; "
          "*_x = peer time / fastbp time; sklearn_x ceiling = sklearn time / "
          "gemm scipy time\n")
    print_table(rows, [
        ("config", "config", ""), ("threads", "threads", "d"),
        ("fastbp_s", "fastbp", ".3f"), ("sklearn_s", "sklearn", ".3f"),
        ("torch_s", "torch", ".3f"), ("gemm_s", "gemm only", ".3f"),
        ("sklearn_x", "sklearn_x", ".2f"), ("torch_x", "torch_x", ".2f"),
        ("vs_gemm", "fastbp/gemm", ".2f"), ("gemm_scipy_s", "gemm scipy", ".3f"),
        ("vs_gemm_scipy", "fastbp/gemm scipy", ".2f"),
        ("sklearn_x_ceiling", "sklearn_x ceiling", ".2f"),
        ("fastbp_acc", "acc fastbp", ".4f"), ("sklearn_acc", "acc sklearn", ".4f"),
        ("torch_acc", "acc torch", ".4f"),
        ("fastbp_mb", "MiB fastbp", ".0f"), ("sklearn_mb", "MiB sklearn", ".0f"),
    ])
    write_json(args.json, {"environment": env, "epochs": args.epochs, "rows": rows})


if __name__ == "__main__":
    main()
