"""Micro-bench of the vanilla-RNN kernels against PyTorch CPU nn.RNN.

Two measurements per shape (n_features, hidden, steps, batch) and thread count,
on the same data:

rnn   the RNN layer's forward + backward as the engine will run it: input
      projection (one GEMM over all packed rows, through fastbp's GEMM), rnn_forward (in place),
      rnn_backward given dL/dh, and the weight gradients X.T @ delta,
      delta.sum(0) and rnn_grad_hh -- against nn.RNN(tanh) forward and
      out.backward(dL/dh) with autograd.
step  a whole training step's forward + backward: the above plus the output
      layer (GEMM), softmax cross-entropy (fastbp's output_loss_delta kernel),
      dW_out and dL/dh (GEMMs) -- against nn.RNN + nn.Linear + cross_entropy.

Each library runs in a fresh process of its own that imports nothing but that
library and numpy (libgomp is shared by soname, so one library's OpenMP
settings would otherwise become the other's), started through
bench/_harness.py: pinned to N cores with the thread variables set to N.
Each process draws its data from a fixed seed with numpy, so both time the
same arrays and weights. "threads" is N: the BLAS thread count for fastbp and
torch.set_num_threads for PyTorch. fastbp's own kernels (the time loop, the
element-wise passes) run with n_threads=1 while BLAS is threaded, as the
kernels' docstring asks (fastbp's thread team and a threaded BLAS taking
turns stall each other on a fully-subscribed machine); --kernel-threads
changes that. (fit
itself does the opposite: BLAS on one thread, n_jobs threads in fastbp's
kernels.)

The processes run one after the other, not side by side, so they no longer
share the machine's noise call by call as the old alternating blocks did:
each library's process is started ``--rounds`` times per thread count,
alternating (fastbp, torch, fastbp, torch, ...), and times ``--repeat`` single
calls after a warm-up. A time is the lowest of the rounds' medians; ratio =
PyTorch time / fastbp time (> 1: fastbp faster), min-ratio the same for the
fastest single call of each over all rounds (less sensitive to other load).
The machine may be shared: a round that met other load loses to the others.

Usage:

    PYTHONPATH=src python bench/bench_rnn_kernels.py    # both shapes, 1..all cores
    PYTHONPATH=src python bench/bench_rnn_kernels.py --shapes 0 --threads 1 --repeat 3 --rounds 1
    PYTHONPATH=src python bench/bench_rnn_kernels.py [--repeat N] [--rounds R] [--threads 1 2]
                       [--float64] [--kernel-threads K] [--breakdown] [--shapes 0 1]
                       [--timeout S] [--json PATH]

The second line is a quick look (seconds).

PyTorch is optional: without it, fastbp's times only. (The script runs itself
as the worker: ``--worker rnn-kernels fastbp|torch --threads N --options JSON``
prints one line of timings as JSON.)
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

SHAPES = [(65, 128, 50, 32), (65, 256, 100, 64)]
N_CLASSES = 65
MEASURES = ("rnn", "step")


def _times(fn, repeat, warmup=3):
    """Times of ``repeat`` single calls of fn, after warm-up."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def rnn_data(F, Hd, T, B, C, dtype, seed):
    """Inputs, targets, weights (fastbp's layout, input-major) and dL/dh, drawn
    with numpy from ``seed`` and the shape, so that every process gets the same."""
    rng = np.random.default_rng([seed, F, Hd, T, B, C])
    n = T * B
    s = 1 / np.sqrt(Hd)
    return {"X": rng.normal(size=(n, F)).astype(dtype), "y": rng.integers(0, C, n),
            "W_ih": rng.uniform(-s, s, (F, Hd)).astype(dtype),
            "W_hh": rng.uniform(-s, s, (Hd, Hd)).astype(dtype),
            "b_h": rng.uniform(-s, s, Hd).astype(dtype),
            "W_out": rng.uniform(-s, s, (Hd, C)).astype(dtype),
            "b_out": rng.uniform(-s, s, C).astype(dtype),
            "dH_given": rng.normal(size=(n, Hd)).astype(dtype)}


def _fastbp_fns(F, Hd, T, B, C, n_threads, dtype, d):
    from fastbp._kernels import _blas, _dense, _losses, _rnn

    TANH = _dense.ACTIVATION_CODES["tanh"]

    def gemm(A, B, C, trans_a=False, trans_b=False):
        """C = op(A) @ op(B) through fastbp's GEMM (scipy's BLAS), as the engine
        does. Not np.matmul: NumPy ships its own OpenBLAS with its own thread
        pool, and alternating two pools with the kernels' stalls when threads
        fill the cores."""
        _blas.gemm_py(A, B, C, trans_a, trans_b)

    n = T * B
    bs = np.full(T, B, dtype=np.intp)
    X, y, W_ih, W_hh, b_h = d["X"], d["y"], d["W_ih"], d["W_hh"], d["b_h"]
    W_out, b_out, dH_given = d["W_out"], d["b_out"], d["dH_given"]
    Y = np.zeros((n, C), dtype=dtype)
    Y[np.arange(n), y] = 1
    # Buffers allocated once, as the engine does per fit.
    H = np.empty((n, Hd), dtype)
    dH = np.empty((n, Hd), dtype)
    delta = np.empty((n, Hd), dtype)
    Z = np.empty((n, C), dtype)
    dZ = np.empty((n, C), dtype)
    g_ih, g_hh, g_bh = np.empty_like(W_ih), np.empty_like(W_hh), np.empty_like(b_h)
    g_out, g_bout = np.empty_like(W_out), np.empty_like(b_out)

    def rnn_forward():
        gemm(X, W_ih, H)
        np.add(H, b_h, out=H)
        _rnn.rnn_forward(H, W_hh, bs, H, TANH, n_threads)

    def rnn_weight_grads():
        _rnn.rnn_backward(H, W_hh, bs, dH, delta, TANH, n_threads, 0)
        gemm(X, delta, g_ih, trans_a=True)
        np.sum(delta, axis=0, out=g_bh)
        _rnn.rnn_grad_hh(H, delta, bs, g_hh, n_threads)

    def layer():
        rnn_forward()
        dH[...] = dH_given  # stands for the gradient the layer above hands down
        rnn_weight_grads()

    def step():
        rnn_forward()
        gemm(H, W_out, Z)
        np.add(Z, b_out, out=Z)
        loss = _losses.output_loss_delta(Z, Y, None, dZ, 0, 1.0 / n, n_threads)
        gemm(H, dZ, g_out, trans_a=True)
        np.sum(dZ, axis=0, out=g_bout)
        gemm(dZ, W_out, dH, trans_b=True)
        rnn_weight_grads()
        return loss

    parts = {
        "projection": lambda: (gemm(X, W_ih, H), np.add(H, b_h, out=H)),
        "rnn_forward": lambda: _rnn.rnn_forward(H, W_hh, bs, H, TANH, n_threads),
        "output GEMM": lambda: (gemm(H, W_out, Z), np.add(Z, b_out, out=Z)),
        "softmax CE": lambda: _losses.output_loss_delta(Z, Y, None, dZ, 0, 1.0 / n, n_threads),
        "dW_out, dH": lambda: (gemm(H, dZ, g_out, trans_a=True), np.sum(dZ, axis=0, out=g_bout),
                               gemm(dZ, W_out, dH, trans_b=True)),
        "rnn_backward": lambda: _rnn.rnn_backward(H, W_hh, bs, dH, delta, TANH, n_threads, 0),
        "dW_ih, db_h": lambda: (gemm(X, delta, g_ih, trans_a=True),
                                np.sum(delta, axis=0, out=g_bh)),
        "rnn_grad_hh": lambda: _rnn.rnn_grad_hh(H, delta, bs, g_hh, n_threads),
    }
    return {"rnn": layer, "step": step}, parts


def _torch_fns(torch, F, Hd, T, B, C, d):
    tdt = torch.float32 if d["X"].dtype == np.float32 else torch.float64
    rnn = torch.nn.RNN(F, Hd, nonlinearity="tanh").to(tdt)
    lin = torch.nn.Linear(Hd, C).to(tdt)
    with torch.no_grad():  # same weights (PyTorch stores them output-major)
        rnn.weight_ih_l0.copy_(torch.from_numpy(d["W_ih"].T.copy()))
        rnn.weight_hh_l0.copy_(torch.from_numpy(d["W_hh"].T.copy()))
        rnn.bias_ih_l0.copy_(torch.from_numpy(d["b_h"]))
        rnn.bias_hh_l0.zero_()
        lin.weight.copy_(torch.from_numpy(d["W_out"].T.copy()))
        lin.bias.copy_(torch.from_numpy(d["b_out"]))
    x = torch.from_numpy(d["X"].reshape(T, B, F))
    target = torch.from_numpy(d["y"])
    g = torch.from_numpy(d["dH_given"].reshape(T, B, Hd))
    params = list(rnn.parameters()) + list(lin.parameters())

    def layer():
        for p in params:
            p.grad = None
        out, _ = rnn(x)
        out.backward(g)

    def step():
        for p in params:
            p.grad = None
        out, _ = rnn(x)
        loss = torch.nn.functional.cross_entropy(lin(out.reshape(T * B, Hd)), target)
        loss.backward()
        return loss

    return {"rnn": layer, "step": step}


def _run(options, make_fns):
    """Per shape and measure, the single-call times; ``make_fns(shape, data)``
    returns ({measure: fn}, {part: fn} or None)."""
    rows = []
    for F, Hd, T, B in options["shapes"]:
        d = rnn_data(F, Hd, T, B, N_CLASSES, np.dtype(options["dtype"]), options["seed"])
        fns, parts = make_fns((F, Hd, T, B), d)
        for what, fn in fns.items():
            rows.append({"shape": [F, Hd, T, B], "what": what,
                         "times": _times(fn, options["repeat"])})
        for name, fn in (parts or {}).items():
            rows.append({"shape": [F, Hd, T, B], "what": name, "part": True,
                         "times": _times(fn, options["repeat"])})
    return rows


def run_fastbp(options, n_threads):
    """The fastbp worker: BLAS on n_threads (the process's thread variables),
    fastbp's own kernels on options["kernel_threads"]."""
    from fastbp._kernels import _openmp

    kernels = _harness.fastbp_kernel_path(options)
    kt = options["kernel_threads"]

    def make_fns(shape, d):
        fns, parts = _fastbp_fns(*shape, N_CLASSES, kt, np.dtype(options["dtype"]), d)
        return fns, parts if options["breakdown"] else None

    rows = _run(options, make_fns)
    result = {"rows": rows, "blas": _harness.blas_report(),
              "kernels": f"OpenMP={_openmp.openmp_enabled()} (kernels' n_threads={kt}), "
                         f"{kernels}"}
    _harness.assert_not_imported("torch")
    return result


def run_torch(options, n_threads):
    """The PyTorch worker: torch.set_num_threads(n_threads)."""
    torch = _torch_util.import_torch(n_threads)
    rows = _run(options, lambda s, d: (_torch_fns(torch, *s, N_CLASSES, d), None))
    result = {"rows": rows, "blas": _torch_util.backend_report(torch)}
    _harness.assert_not_imported("fastbp")
    return result


WORKLOAD = Workload(name="rnn-kernels", unit="ms/call", flop=0, dtype="float32",
                    contenders={"fastbp": run_fastbp, "torch": run_torch})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed calls per process")
    parser.add_argument("--rounds", type=int, default=3,
                        help="processes per library and thread count, alternating (default 3)")
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="thread counts (default: 1 to all usable cores)")
    parser.add_argument("--float64", action="store_true",
                        help="float64 for both libraries (default float32, PyTorch's)")
    parser.add_argument("--shapes", type=int, nargs="+", default=list(range(len(SHAPES))),
                        help="indices into SHAPES to run (default all)")
    parser.add_argument("--kernel-threads", type=int, default=1,
                        help="n_threads of fastbp's own kernels (default 1)")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time each part of fastbp's training step")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--json", default=_harness.results_path("bench_rnn_kernels.json"))
    args = parser.parse_args()
    n_cpus = len(_harness.usable_cpus())
    threads = sorted(set(args.threads or range(1, n_cpus + 1)))
    shapes = [SHAPES[i] for i in args.shapes]
    options = {"shapes": shapes, "dtype": "float64" if args.float64 else "float32",
               "repeat": args.repeat, "kernel_threads": args.kernel_threads,
               "breakdown": args.breakdown, "seed": 0}
    env = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpu": _harness.cpu_model(),
           "instruction set": _harness.instruction_set(), "usable cores": n_cpus,
           "thread counts": threads, "rounds": args.rounds, "calls per round": args.repeat,
           "dtype": options["dtype"], "load average": round(os.getloadavg()[0], 2)}
    print("\n".join(f"{k:>16}: {v}" for k, v in env.items()), flush=True)

    script = Path(__file__).resolve()
    results = _harness.run_rounds(script, WORKLOAD, threads, args.rounds, options,
                                  args.timeout)
    # (library, shape, threads, what) -> each round's single-call times
    samples = {}
    for lib, by_threads in results.items():
        for nt, rounds in by_threads.items():
            for row in (row for r in rounds for row in r.get("rows", ())):
                key = (lib, tuple(row["shape"]), nt, row["what"])
                samples.setdefault(key, []).append(np.array(row["times"]))
    backends = _harness.backends(results)
    print("\n".join(f"{lib}: {line}" for lib, line in backends.items()))

    def median(lib, *key):  # the best round's median
        rounds = samples.get((lib, *key))
        return min(float(np.median(t)) for t in rounds) if rounds else None

    def fastest(lib, *key):
        rounds = samples.get((lib, *key))
        return min(float(t.min()) for t in rounds) if rounds else None

    header = (f"{'shape (F,H,T,B)':>20} {'thr':>3} {'what':>5} {'fastbp ms':>10} "
              f"{'torch ms':>9} {'ratio':>6} {'min-ratio':>8}")
    print(header)
    print("-" * len(header))
    rows = []
    nan = float("nan")
    for shape in shapes:
        for nt in threads:
            for what in MEASURES:
                t_ours, t_theirs = median("fastbp", shape, nt, what), median("torch", shape, nt,
                                                                              what)
                m_ours, m_theirs = fastest("fastbp", shape, nt, what), fastest("torch", shape,
                                                                               nt, what)
                ratio = t_theirs / t_ours if t_theirs and t_ours else None
                ratio_min = m_theirs / m_ours if m_theirs and m_ours else None
                rows.append(dict(shape=list(shape), threads=nt, what=what, fastbp_s=t_ours,
                                 torch_s=t_theirs, ratio=ratio, fastbp_min_s=m_ours,
                                 torch_min_s=m_theirs, ratio_of_minima=ratio_min))
                print(f"{str(shape):>20} {nt:>3} {what:>5} "
                      f"{(t_ours * 1e3 if t_ours else nan):>10.2f} "
                      f"{(t_theirs * 1e3 if t_theirs else nan):>9.2f} "
                      f"{(ratio or nan):>6.2f} {(ratio_min or nan):>8.2f}")
            if args.breakdown:
                for key in samples:
                    if key[0] == "fastbp" and key[1:3] == (shape, nt) and key[3] not in MEASURES:
                        t = median(*key)
                        rows.append(dict(shape=list(shape), threads=nt, what=key[3], fastbp_s=t))
                        print(f"{'':>20} {nt:>3}   {key[3]:<14} {t * 1e3:>7.2f}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(environment=env, options=options, backends=backends,
                                   rows=rows, processes=results), indent=1))
    print(f"wrote {out}")
    _harness.assert_not_imported("fastbp", "torch")  # the launcher times nothing itself


if __name__ == "__main__":
    if "--worker" in sys.argv[1:]:
        _harness.worker_main([WORKLOAD])
    else:
        main()
