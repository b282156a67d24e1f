"""Micro-benchmark of the conv/pool kernels on LeNet-5's layer shapes.

Times forward + backward of each layer, float32, for fastbp's kernels and for
PyTorch CPU (autograd through torch.nn.functional) on the same shapes, batch
sizes, data and thread counts. Both sides apply the layer's tanh and compute
the input gradient except for C1 (the input layer). fastbp fuses the
activation into the forward pass and the input layer's derivative into dX;
torch runs tanh and its backward as separate ops.

Each library runs in a fresh process of its own that imports nothing but that
library and numpy (libgomp is shared by soname, so one library's OpenMP
settings would otherwise become the other's), started through
bench/_harness.py: pinned to N cores, with the thread variables set to N, and
N kernel threads (fastbp) or torch.set_num_threads(N). Each process draws its
data from a fixed seed with numpy, so both time the same arrays. The
processes run one after the other, not side by side, so they no longer share
the machine's noise call by call as the old alternating blocks did; instead
each library's process is started ``--rounds`` times per thread count,
alternating (fastbp, torch, fastbp, torch, ...), and each figure is the
minimum over single calls across all its rounds, which suits a shared, noisy
machine.

Usage:

    PYTHONPATH=src python bench/bench_conv_kernels.py    # 1..all cores, batch 128 and 32
    PYTHONPATH=src python bench/bench_conv_kernels.py --quick --threads 1 --batches 32 --rounds 1
    PYTHONPATH=src python bench/bench_conv_kernels.py [--threads 1,2] [--batches 128,32]
                       [--rounds R] [--quick] [--timeout S] [--json PATH]

--quick times 15 calls per process instead of 60; the second line is a quick
look (seconds).

Prints one row per (layer, batch, threads): milliseconds per batch, images/s,
and the ratio torch_time / fastbp_time (> 1: fastbp is faster). "LeNet convs"
sums the five layers. PyTorch is optional: without it, fastbp's times only.
(The script runs itself as the worker: ``--worker conv-kernels fastbp|torch
--threads N --options JSON`` prints one line of timings as JSON.)
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

import _harness
import _torch_util
from _harness import Workload

TANH = 2  # fastbp's activation code for tanh

# name, kind, C_in, C_out, H (input), table ("full" or "lecun"), wants dX
LAYERS = [
    ("C1 1@32x32->6@28x28", "conv", 1, 6, 32, "full", False),
    ("S2 6@28x28->6@14x14", "pool", 6, 6, 28, None, True),
    ("C3 6@14x14->16@10x10", "conv", 6, 16, 14, "full", True),
    ("S4 16@10x10->16@5x5", "pool", 16, 16, 10, None, True),
    ("C5 16@5x5->120@1x1", "conv", 16, 120, 5, "full", True),
]
LECUN = ("C3 LeCun table (fastbp only)", "conv", 6, 16, 14, "lecun", True)
TOTAL = "LeNet convs C1+S2+C3+S4+C5"


def _lecun_table():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from _twins_conv import LECUN_C3_TABLE  # numpy only

    return LECUN_C3_TABLE.view(np.uint8)


def layer_data(kind, c_in, c_out, h, n, seed):
    """A layer's float32 input, parameters and output gradient, drawn with numpy
    from ``seed`` and the shape, so that every process gets the same arrays."""
    rng = np.random.default_rng([seed, n, c_in, c_out, h])
    f = np.float32
    data = {"X": np.tanh(rng.standard_normal((n, c_in, h, h))).astype(f)}
    if kind == "conv":
        data["W"] = (rng.standard_normal((c_out, c_in, 5, 5)) / 5).astype(f)
        data["b"] = rng.standard_normal(c_out).astype(f)
        data["dZ"] = rng.standard_normal((n, c_out, h - 4, h - 4)).astype(f)
    else:
        data["coef"] = rng.standard_normal(c_in).astype(f)
        data["bias"] = rng.standard_normal(c_in).astype(f)
        data["dZ"] = rng.standard_normal((n, c_in, h // 2, h // 2)).astype(f)
    return data


def best_time(fn, reps, warmup=2):
    """Minimum time of a single call of fn over reps calls, after warm-up."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def fastbp_layer(_conv, kind, table, want_dx, threads, d):
    X, dZ = d["X"], d["dZ"]
    if kind == "conv":
        W, b = d["W"], d["b"]
        tab = np.ones(W.shape[:2], np.uint8) if table == "full" else _lecun_table()
        Y = np.empty_like(dZ)
        gW, gb = np.empty_like(W), np.empty_like(b)
        dX = np.empty_like(X) if want_dx else None

        def step():
            _conv.conv5x5_forward(X, W, b, tab, Y, TANH, threads)
            _conv.conv5x5_backward(X, W, dZ, tab, gW, gb, dX, TANH, threads)
    else:
        coef, bias = d["coef"], d["bias"]
        Y = np.empty_like(dZ)
        gc, gb = np.empty_like(coef), np.empty_like(bias)
        dX = np.empty_like(X)

        def step():
            _conv.pool2x2_forward(X, coef, bias, Y, TANH, threads)
            _conv.pool2x2_backward(X, coef, dZ, gc, gb, dX, TANH, threads)

    return step


def torch_layer(torch, kind, want_dx, d):
    import torch.nn.functional as F

    X = torch.from_numpy(d["X"]).requires_grad_(want_dx)
    dY = torch.from_numpy(d["dZ"])
    if kind == "conv":
        W = torch.from_numpy(d["W"]).requires_grad_(True)
        b = torch.from_numpy(d["b"]).requires_grad_(True)

        def step():
            W.grad = b.grad = X.grad = None
            torch.tanh(F.conv2d(X, W, b)).backward(dY)
    else:
        coef = torch.from_numpy(d["coef"]).requires_grad_(True)
        bias = torch.from_numpy(d["bias"]).requires_grad_(True)

        def step():
            coef.grad = bias.grad = X.grad = None
            pre = F.avg_pool2d(X, 2) * coef[:, None, None] + bias[:, None, None]
            torch.tanh(pre).backward(dY)

    return step


def _time_layers(options, layers, make_step):
    return [{"layer": name, "batch": n,
             "seconds": best_time(make_step(kind, table, want_dx,
                                            layer_data(kind, c_in, c_out, h, n, options["seed"])),
                                  options["reps"])}
            for n in options["batches"]
            for name, kind, c_in, c_out, h, table, want_dx in layers]


def run_fastbp(options, n_threads):
    """The fastbp worker: every layer (and the LeCun-table C3) at every batch."""
    from fastbp._kernels import _conv

    kernels = _harness.fastbp_kernel_path(options)
    rows = _time_layers(options, LAYERS + [LECUN],
                        lambda kind, table, want_dx, d:
                        fastbp_layer(_conv, kind, table, want_dx, n_threads, d))
    result = {"rows": rows, "kernels": kernels,
              "blas": _harness.blas_report()}
    _harness.assert_not_imported("torch")
    return result


def run_torch(options, n_threads):
    """The PyTorch worker: the five LeNet layers at every batch."""
    torch = _torch_util.import_torch(n_threads)
    rows = _time_layers(options, LAYERS,
                        lambda kind, table, want_dx, d: torch_layer(torch, kind, want_dx, d))
    result = {"rows": rows, "blas": _torch_util.backend_report(torch)}
    _harness.assert_not_imported("fastbp")
    return result


WORKLOAD = Workload(name="conv-kernels", unit="ms/batch", flop=0, dtype="float32",
                    contenders={"fastbp": run_fastbp, "torch": run_torch})


def _ints(text):
    return [int(v) for v in text.split(",")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter timings (15 calls)")
    parser.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results",
                                                       "bench_conv_kernels.json"))
    parser.add_argument("--threads", type=_ints, default=None,
                        help="comma-separated thread counts (default: 1 to all usable cores)")
    parser.add_argument("--batches", type=_ints, default=[128, 32])
    parser.add_argument("--rounds", type=int, default=3,
                        help="processes per library and thread count, alternating (default 3)")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    n_cpus = len(_harness.usable_cpus())
    threads = sorted(set(args.threads or range(1, n_cpus + 1)))
    options = {"batches": args.batches, "reps": 15 if args.quick else 60, "seed": 0}
    env = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpu": _harness.cpu_model(),
           "instruction set": _harness.instruction_set(), "usable cores": n_cpus,
           "thread counts": threads, "rounds": args.rounds, "calls per round": options["reps"],
           "load average": round(os.getloadavg()[0], 2)}
    print("\n".join(f"{k:>16}: {v}" for k, v in env.items()), flush=True)

    script = Path(__file__).resolve()
    results = _harness.run_rounds(script, WORKLOAD, threads, args.rounds, options,
                                  args.timeout)
    best = {}  # (library, layer, batch, threads) -> seconds, the minimum over the rounds
    for lib, by_threads in results.items():
        for n, rounds in by_threads.items():
            for row in (row for r in rounds for row in r.get("rows", ())):
                key = (lib, row["layer"], row["batch"], n)
                best[key] = min(best.get(key, float("inf")), row["seconds"])
    backends = _harness.backends(results)
    print("\n".join(f"{lib}: {line}" for lib, line in backends.items()))

    head = (f"{'layer':30s} {'batch':>5s} {'thr':>3s} {'fastbp ms':>10s} {'torch ms':>9s} "
            f"{'ratio':>6s} {'fastbp img/s':>13s} {'torch img/s':>12s}")
    print(head)
    print("-" * len(head))
    rows = []
    for batch in args.batches:
        for n in threads:
            times = {}
            for name, *_ in LAYERS + [LECUN]:
                times[name] = tf, tt = [best.get((lib, name, batch, n))
                                        for lib in ("fastbp", "torch")]
                rows.append(dict(layer=name, batch=batch, threads=n, fastbp_s=tf, torch_s=tt))
                _print_row(name, batch, n, tf, tt)
            # the LeCun-table C3 is an alternative to the full C3, not a sixth layer
            total = {lib: None if None in parts else sum(parts)
                     for lib, parts in zip(("fastbp", "torch"),
                                           zip(*(times[name] for name, *_ in LAYERS)))}
            _print_row(TOTAL, batch, n, total["fastbp"], total["torch"])
            rows.append(dict(layer="total", batch=batch, threads=n, fastbp_s=total["fastbp"],
                             torch_s=total["torch"]))
            print()
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(dict(environment=env, options=options, backends=backends, rows=rows,
                       processes=results), f, indent=1)
    print(f"wrote {args.json}")
    _harness.assert_not_imported("fastbp", "torch")  # the launcher times nothing itself


def _ms(t, width):
    return f"{t * 1e3:{width}.3f}" if t else "-".rjust(width)


def _print_row(name, n, threads, tf, tt):
    ratio = f"{tt / tf:6.2f}" if tt and tf else "     -"
    fimg = f"{n / tf:13.0f}" if tf else "-".rjust(13)
    timg = f"{n / tt:12.0f}" if tt else "-".rjust(12)
    print(f"{name:30s} {n:5d} {threads:3d} {_ms(tf, 10)} {_ms(tt, 9)} {ratio} {fimg} {timg}")


if __name__ == "__main__":
    if "--worker" in sys.argv[1:]:
        _harness.worker_main([WORKLOAD])
    else:
        main()
