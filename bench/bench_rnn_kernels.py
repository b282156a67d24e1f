"""Micro-bench of the vanilla-RNN kernels against PyTorch CPU nn.RNN.

Two measurements per shape (n_features, hidden, steps, batch) and thread count,
both in the same process and on the same data:

rnn   the RNN layer's forward + backward as the engine will run it: input
      projection (one GEMM over all packed rows, through fastbp's GEMM), rnn_forward (in place),
      rnn_backward given dL/dh, and the weight gradients X.T @ delta,
      delta.sum(0) and rnn_grad_hh -- against nn.RNN(tanh) forward and
      out.backward(dL/dh) with autograd.
step  a whole training step's forward + backward: the above plus the output
      layer (GEMM), softmax cross-entropy (fastbp's output_loss_delta kernel),
      dW_out and dL/dh (GEMMs) -- against nn.RNN + nn.Linear + cross_entropy.

"threads" is the BLAS thread count for fastbp and torch.set_num_threads for
PyTorch. fastbp's own kernels (the time loop, the element-wise passes) run
with n_threads=1 while BLAS is threaded, as the kernels' docstring asks
(alternating OpenMP regions with a threaded BLAS stalls on a fully-subscribed
machine); --kernel-threads changes that. (fit itself does the opposite: BLAS
on one thread, n_jobs threads in fastbp's kernels.)

Times are medians; ratio = PyTorch time / fastbp time (> 1: fastbp faster),
min-ratio the same for the fastest run of each (less sensitive to other load).
The machine may be shared: trust the ratios (same run) more than the times.

Usage: python bench/bench_rnn_kernels.py [--repeat N] [--threads 1 2] [--float64]
                                         [--kernel-threads K] [--breakdown]
                                         [--shapes 0 1] [--dispatch PATH]
"""
import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from fastbp._kernels import _blas, _dense, _dispatch, _openmp, _rnn

SHAPES = [(65, 128, 50, 32), (65, 256, 100, 64)]
TANH = _dense.ACTIVATION_CODES["tanh"]


def _median_time(fn, repeat, warmup=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _paired_times(ours, theirs, repeat, block=5):
    """Medians of both, timed in alternating blocks so that load from other
    processes falls on both alike. Before each block the other library's
    thread pools are given time to stop spinning (OpenBLAS workers spin for
    ~0.1 s after a call, libgomp's for milliseconds), so neither library is
    timed while the other's idle threads hold the cores."""
    a, b = [], []
    while len(a) < repeat:
        time.sleep(0.3)
        a += [_median_time(ours, 1, warmup=2 if i == 0 else 0) for i in range(block)]
        if theirs:
            time.sleep(0.3)
            b += [_median_time(theirs, 1, warmup=2 if i == 0 else 0) for i in range(block)]
    return np.array(a), (np.array(b) if b else None)


def gemm(A, B, C, trans_a=False, trans_b=False):
    """C = op(A) @ op(B) through fastbp's GEMM (scipy's BLAS), as the engine
    does. Not np.matmul: NumPy ships its own OpenBLAS with its own thread pool,
    and alternating two pools with the kernels' stalls when threads fill the
    cores."""
    _blas.gemm_py(A, B, C, trans_a, trans_b)


def _fastbp_fns(F, Hd, T, B, C, n_threads, dtype, rng):
    n = T * B
    bs = np.full(T, B, dtype=np.intp)
    X = rng.normal(size=(n, F)).astype(dtype)
    y = rng.integers(0, C, n)
    Y = np.zeros((n, C), dtype=dtype)
    Y[np.arange(n), y] = 1
    s = 1 / np.sqrt(Hd)
    W_ih = rng.uniform(-s, s, (F, Hd)).astype(dtype)
    W_hh = rng.uniform(-s, s, (Hd, Hd)).astype(dtype)
    b_h = rng.uniform(-s, s, Hd).astype(dtype)
    W_out = rng.uniform(-s, s, (Hd, C)).astype(dtype)
    b_out = rng.uniform(-s, s, C).astype(dtype)
    dH_given = rng.normal(size=(n, Hd)).astype(dtype)
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
        loss = _dense.output_loss_delta(Z, Y, None, dZ, 0, 1.0 / n, n_threads)
        gemm(H, dZ, g_out, trans_a=True)
        np.sum(dZ, axis=0, out=g_bout)
        gemm(dZ, W_out, dH, trans_b=True)
        rnn_weight_grads()
        return loss

    parts = {
        "projection": lambda: (gemm(X, W_ih, H), np.add(H, b_h, out=H)),
        "rnn_forward": lambda: _rnn.rnn_forward(H, W_hh, bs, H, TANH, n_threads),
        "output GEMM": lambda: (gemm(H, W_out, Z), np.add(Z, b_out, out=Z)),
        "softmax CE": lambda: _dense.output_loss_delta(Z, Y, None, dZ, 0, 1.0 / n, n_threads),
        "dW_out, dH": lambda: (gemm(H, dZ, g_out, trans_a=True), np.sum(dZ, axis=0, out=g_bout),
                               gemm(dZ, W_out, dH, trans_b=True)),
        "rnn_backward": lambda: _rnn.rnn_backward(H, W_hh, bs, dH, delta, TANH, n_threads, 0),
        "dW_ih, db_h": lambda: (gemm(X, delta, g_ih, trans_a=True), np.sum(delta, axis=0, out=g_bh)),
        "rnn_grad_hh": lambda: _rnn.rnn_grad_hh(H, delta, bs, g_hh, n_threads),
    }
    return layer, step, parts, (X, y, W_ih, W_hh, b_h, W_out, b_out, dH_given)


def _torch_fns(torch, F, Hd, T, B, C, dtype, data):
    X, y, W_ih, W_hh, b_h, W_out, b_out, dH_given = data
    tdt = torch.float32 if dtype == np.float32 else torch.float64
    rnn = torch.nn.RNN(F, Hd, nonlinearity="tanh").to(tdt)
    lin = torch.nn.Linear(Hd, C).to(tdt)
    with torch.no_grad():  # same weights (PyTorch stores them output-major)
        rnn.weight_ih_l0.copy_(torch.from_numpy(W_ih.T.copy()))
        rnn.weight_hh_l0.copy_(torch.from_numpy(W_hh.T.copy()))
        rnn.bias_ih_l0.copy_(torch.from_numpy(b_h))
        rnn.bias_hh_l0.zero_()
        lin.weight.copy_(torch.from_numpy(W_out.T.copy()))
        lin.bias.copy_(torch.from_numpy(b_out))
    x = torch.from_numpy(X.reshape(T, B, F))
    target = torch.from_numpy(y)
    g = torch.from_numpy(dH_given.reshape(T, B, Hd))
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

    return layer, step


def _blas_info():
    return [
        f"{i['internal_api']} {i.get('version')} ({Path(i['filepath']).name})"
        for i in threadpool_info() if i["user_api"] == "blas"
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--float64", action="store_true",
                        help="float64 for both libraries (default float32, PyTorch's)")
    parser.add_argument("--shapes", type=int, nargs="+", default=list(range(len(SHAPES))),
                        help="indices into SHAPES to run (default all)")
    parser.add_argument("--kernel-threads", type=int, default=1,
                        help="n_threads of fastbp's own kernels (default 1)")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time each part of fastbp's training step")
    parser.add_argument("--json", default="bench/results/bench_rnn_kernels.json")
    parser.add_argument("--dispatch", choices=_dispatch.available_paths(),
                        help="run the kernels on this instruction-set path (default: the best)")
    args = parser.parse_args()
    _dispatch._force_dispatch_path(args.dispatch)
    dtype = np.float64 if args.float64 else np.float32
    try:
        import torch
    except ImportError:
        torch = None
        print("PyTorch is not installed: fastbp times only (pip install torch).")

    print(f"fastbp rnn kernels vs PyTorch {torch.__version__ if torch else '-'}, "
          f"{np.dtype(dtype).name}, OpenMP={_openmp.openmp_enabled()} "
          f"(fastbp kernels' n_threads={args.kernel_threads}), "
          f"dispatch path={_dispatch.dispatch_path()}, cores={os.cpu_count()}")
    print("BLAS:", "; ".join(_blas_info()))
    header = (f"{'shape (F,H,T,B)':>20} {'thr':>3} {'what':>5} {'fastbp ms':>10} "
              f"{'torch ms':>9} {'ratio':>6} {'min-ratio':>8}")
    print(header)
    print("-" * len(header))
    rows = []
    rng = np.random.default_rng(0)
    for F, Hd, T, B in [SHAPES[i] for i in args.shapes]:
        C = 65
        for nt in args.threads:
            layer, step, parts, data = _fastbp_fns(F, Hd, T, B, C, args.kernel_threads,
                                                   dtype, rng)
            fns = {"rnn": [layer, None], "step": [step, None]}
            if torch is not None:
                torch.set_num_threads(nt)
                t_layer, t_step = _torch_fns(torch, F, Hd, T, B, C, dtype, data)
                fns["rnn"][1], fns["step"][1] = t_layer, t_step
            with threadpool_limits(nt, user_api="blas"):
                for what, (ours, theirs) in fns.items():
                    a, b = _paired_times(ours, theirs, args.repeat)
                    t_ours = float(np.median(a))
                    t_theirs = float(np.median(b)) if b is not None else None
                    ratio = t_theirs / t_ours if t_theirs else None
                    ratio_min = float(b.min() / a.min()) if b is not None else None
                    rows.append(dict(shape=[F, Hd, T, B], threads=nt, what=what,
                                     fastbp_s=t_ours, torch_s=t_theirs, ratio=ratio,
                                     fastbp_min_s=float(a.min()),
                                     torch_min_s=float(b.min()) if b is not None else None,
                                     ratio_of_minima=ratio_min))
                    print(f"{str((F, Hd, T, B)):>20} {nt:>3} {what:>5} "
                          f"{t_ours * 1e3:>10.2f} "
                          f"{(t_theirs * 1e3 if t_theirs else float('nan')):>9.2f} "
                          f"{(ratio or float('nan')):>6.2f} {(ratio_min or float('nan')):>8.2f}")
                if args.breakdown:
                    for name, fn in parts.items():
                        time.sleep(0.3)
                        t = _median_time(fn, args.repeat)
                        rows.append(dict(shape=[F, Hd, T, B], threads=nt, what=name,
                                         fastbp_s=t))
                        print(f"{'':>20} {nt:>3}   {name:<14} {t * 1e3:>7.2f}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(
        dtype=np.dtype(dtype).name, blas=_blas_info(), platform=platform.platform(),
        python=sys.version.split()[0], torch=torch.__version__ if torch else None,
        openmp=_openmp.openmp_enabled(), kernel_threads=args.kernel_threads,
        dispatch_path=_dispatch.dispatch_path(), rows=rows), indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
