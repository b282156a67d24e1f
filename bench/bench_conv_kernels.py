"""Micro-benchmark of the conv/pool kernels on LeNet-5's layer shapes.

Times forward + backward of each layer, float32, for fastbp's kernels and for
PyTorch CPU (autograd through torch.nn.functional) on the same shapes, batch
sizes and thread counts, in the same run. Both sides apply the layer's tanh and
compute the input gradient except for C1 (the input layer). fastbp fuses the
activation into the forward pass and the input layer's derivative into dX;
torch runs tanh and its backward as separate ops.

Usage: PYTHONPATH=src python bench/bench_conv_kernels.py [--quick] [--json PATH]
                                                         [--dispatch PATH]

Prints one row per (layer, batch, threads): milliseconds per batch, images/s,
and the ratio torch_time / fastbp_time (> 1: fastbp is faster). "LeNet convs"
sums the five layers. fastbp and torch run in alternating blocks of calls and
each figure is the minimum over single calls, which suits a shared, noisy
machine.
"""
import argparse
import json
import os
import platform
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from fastbp._kernels import _conv, _dispatch

TANH = 2
LECUN_C3 = None


def _lecun_table():
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
    from _twins_conv import LECUN_C3_TABLE

    return LECUN_C3_TABLE.view(np.uint8)


# name, kind, C_in, C_out, H (input), table ("full" or "lecun"), wants dX
LAYERS = [
    ("C1 1@32x32->6@28x28", "conv", 1, 6, 32, "full", False),
    ("S2 6@28x28->6@14x14", "pool", 6, 6, 28, None, True),
    ("C3 6@14x14->16@10x10", "conv", 6, 16, 14, "full", True),
    ("S4 16@10x10->16@5x5", "pool", 16, 16, 10, None, True),
    ("C5 16@5x5->120@1x1", "conv", 16, 120, 5, "full", True),
]


def _timeit_pair(fns, reps=60, block=10):
    """Minimum time of a single call of each of fns.

    The fns are run in alternating blocks of `block` calls, and the first call
    of each block is not counted: after returning, an OpenMP or BLAS runtime
    keeps its threads spinning for a while, which would slow down the other
    library's next call on a machine with few cores.
    """
    best = [float("inf")] * len(fns)
    for _ in range(max(1, reps // block)):
        for k, fn in enumerate(fns):
            fn()
            for _ in range(block):
                t0 = time.perf_counter()
                fn()
                best[k] = min(best[k], time.perf_counter() - t0)
    return best


def fastbp_layer(kind, c_in, c_out, h, table, want_dx, n, threads, rng):
    f = np.float32
    X = np.tanh(rng.standard_normal((n, c_in, h, h))).astype(f)
    if kind == "conv":
        W = (rng.standard_normal((c_out, c_in, 5, 5)) / 5).astype(f)
        b = rng.standard_normal(c_out).astype(f)
        tab = np.ones((c_out, c_in), np.uint8) if table == "full" else _lecun_table()
        Y = np.empty((n, c_out, h - 4, h - 4), f)
        dZ = rng.standard_normal(Y.shape).astype(f)
        gW, gb = np.empty_like(W), np.empty_like(b)
        dX = np.empty_like(X) if want_dx else None

        def step():
            _conv.conv5x5_forward(X, W, b, tab, Y, TANH, threads)
            _conv.conv5x5_backward(X, W, dZ, tab, gW, gb, dX, TANH, threads)
    else:
        coef = rng.standard_normal(c_in).astype(f)
        bias = rng.standard_normal(c_in).astype(f)
        Y = np.empty((n, c_in, h // 2, h // 2), f)
        dZ = rng.standard_normal(Y.shape).astype(f)
        gc, gb = np.empty_like(coef), np.empty_like(bias)
        dX = np.empty_like(X)

        def step():
            _conv.pool2x2_forward(X, coef, bias, Y, TANH, threads)
            _conv.pool2x2_backward(X, coef, dZ, gc, gb, dX, TANH, threads)

    return step


def torch_layer(kind, c_in, c_out, h, want_dx, n, threads, rng):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    X = torch.tensor(np.tanh(rng.standard_normal((n, c_in, h, h))), dtype=torch.float32,
                     requires_grad=want_dx)
    if kind == "conv":
        W = torch.tensor(rng.standard_normal((c_out, c_in, 5, 5)) / 5, dtype=torch.float32,
                         requires_grad=True)
        b = torch.tensor(rng.standard_normal(c_out), dtype=torch.float32, requires_grad=True)
        dY = torch.tensor(rng.standard_normal((n, c_out, h - 4, h - 4)), dtype=torch.float32)

        def step():
            W.grad = b.grad = X.grad = None
            torch.tanh(F.conv2d(X, W, b)).backward(dY)
    else:
        coef = torch.tensor(rng.standard_normal(c_in), dtype=torch.float32, requires_grad=True)
        bias = torch.tensor(rng.standard_normal(c_in), dtype=torch.float32, requires_grad=True)
        dY = torch.tensor(rng.standard_normal((n, c_in, h // 2, h // 2)), dtype=torch.float32)

        def step():
            coef.grad = bias.grad = X.grad = None
            pre = F.avg_pool2d(X, 2) * coef[:, None, None] + bias[:, None, None]
            torch.tanh(pre).backward(dY)

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter timings")
    parser.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results",
                                                       "bench_conv_kernels.json"))
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--batches", default="128,32")
    parser.add_argument("--dispatch", choices=_dispatch.available_paths(),
                        help="run the kernels on this instruction-set path (default: the best)")
    args = parser.parse_args()
    _dispatch._force_dispatch_path(args.dispatch)
    reps = 15 if args.quick else 60
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None

    blas = [(i["internal_api"], i.get("version"), i.get("architecture")) for i in threadpool_info()
            if i["user_api"] == "blas"]
    print(f"fastbp conv kernels: dispatch path = {_dispatch.dispatch_path()}; "
          f"torch {torch_version}; BLAS {blas}; cpu = {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} logical cores; load average {os.getloadavg()[0]:.2f}")
    rng = np.random.default_rng(0)
    rows = []
    layers = LAYERS + [("C3 LeCun table (fastbp only)", "conv", 6, 16, 14, "lecun", True)]
    head = (f"{'layer':30s} {'batch':>5s} {'thr':>3s} {'fastbp ms':>10s} {'torch ms':>9s} "
            f"{'ratio':>6s} {'fastbp img/s':>13s} {'torch img/s':>12s}")
    print(head)
    print("-" * len(head))
    for n in [int(v) for v in args.batches.split(",")]:
        for threads in [int(v) for v in args.threads.split(",")]:
            # BLAS (C5's GEMM path) and torch get the same thread count as fastbp.
            limits = threadpool_limits(threads, user_api="blas")
            if torch_version is not None:
                torch.set_num_threads(threads)
            tot_f = tot_t = 0.0
            for name, kind, c_in, c_out, h, table, want_dx in layers:
                steps = [fastbp_layer(kind, c_in, c_out, h, table, want_dx, n, threads, rng)]
                if torch_version is not None and table != "lecun":
                    steps.append(torch_layer(kind, c_in, c_out, h, want_dx, n, threads, rng))
                times = _timeit_pair(steps, reps)
                tf, tt = times[0], (times[1] if len(times) > 1 else None)
                if table != "lecun":
                    tot_f += tf
                    tot_t += tt or 0.0
                rows.append(dict(layer=name, batch=n, threads=threads, fastbp_s=tf, torch_s=tt))
                _print_row(name, n, threads, tf, tt)
            _print_row("LeNet convs C1+S2+C3+S4+C5", n, threads, tot_f,
                       tot_t if torch_version else None)
            rows.append(dict(layer="total", batch=n, threads=threads, fastbp_s=tot_f,
                             torch_s=tot_t if torch_version else None))
            limits.restore_original_limits()
            print()
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(dict(dispatch_path=_dispatch.dispatch_path(), torch=torch_version, blas=blas,
                       loadavg=os.getloadavg(), rows=rows), f, indent=1)
    print(f"wrote {args.json}")


def _print_row(name, n, threads, tf, tt):
    ratio = f"{tt / tf:6.2f}" if tt else "     -"
    tts = f"{tt * 1e3:9.3f}" if tt else "        -"
    timg = f"{n / tt:12.0f}" if tt else "           -"
    print(f"{name:30s} {n:5d} {threads:3d} {tf * 1e3:10.3f} {tts} {ratio} {n / tf:13.0f} {timg}")


if __name__ == "__main__":
    main()
