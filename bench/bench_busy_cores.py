"""Fits on cores busy with other work: each model with n_jobs = all cores,
first on idle cores, then while one spinning process per core competes for
them. A thread that waits for a descheduled partner stalls the whole fit;
this measures how much.

    python bench/bench_busy_cores.py                      # this checkout
    python bench/bench_busy_cores.py --other /path/src    # A/B: another tree's src/

Each fit runs in a fresh process (``--repeat`` times, alternating with the
other tree when given); the table gives median seconds and the range.
"""
import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import textwrap

FIT = textwrap.dedent("""
    import sys, time, warnings
    import numpy as np
    warnings.simplefilter("ignore")
    from fastbp import LeNet5Classifier, MLPClassifier, RNNClassifier
    rng = np.random.default_rng(0)
    name, n_jobs = sys.argv[1], int(sys.argv[2])
    if name == "mlp":
        X = rng.random((4096, 784), dtype=np.float32); y = np.arange(4096) % 10
        est = MLPClassifier(hidden_layer_sizes=(256, 128), solver="sgd", batch_size=128,
                            max_iter=3, n_jobs=n_jobs, tol=0, n_iter_no_change=99)
    elif name == "lenet":
        X = rng.random((1024, 28, 28), dtype=np.float32); y = np.arange(1024) % 10
        est = LeNet5Classifier(batch_size=32, max_iter=1, n_jobs=n_jobs, solver="sgd", tol=0)
    else:
        X = rng.random((256, 50, 65), dtype=np.float32); y = np.arange(256 * 50).reshape(256, 50) % 65
        est = RNNClassifier(hidden_size=128, output="sequence", batch_size=32, max_iter=1,
                            n_jobs=n_jobs, solver="sgd", tol=0)
    tic = time.perf_counter()
    est.fit(X, y)
    print(time.perf_counter() - tic)
""")
MODELS = {"lenet": "LeNet-5, 1,024 images, batch 32, 1 epoch",
          "rnn": "RNN 65-128, 256 sequences of 50 steps, batch 32, 1 epoch",
          "mlp": "MLP 784-256-128-10, 4,096 rows, batch 128, 3 epochs"}


def fit_seconds(model, n_jobs, src):
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    out = subprocess.run([sys.executable, "-c", FIT, model, str(n_jobs)], env=env,
                         capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def spin():
    while True:
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--other", help="src/ of another fastbp tree to compare with")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    trees = [("this tree", None)] + ([("other", args.other)] if args.other else [])
    print(f"{cores} usable cores; fits with n_jobs={cores}; busy: {cores} spinning processes")
    for condition in ("idle", "busy"):
        spinners = []
        if condition == "busy":
            spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(cores)]
            for p in spinners:
                p.start()
        try:
            for model in args.models:
                times = {name: [] for name, _ in trees}
                for _ in range(args.repeat):
                    for name, src in trees:
                        times[name].append(fit_seconds(model, cores, src))
                cells = [f"{name} {statistics.median(t):.3f} s ({min(t):.3f}-{max(t):.3f})"
                         for name, t in times.items()]
                print(f"{condition:5s} {MODELS[model]}: " + "; ".join(cells))
        finally:
            for p in spinners:
                p.terminate()


if __name__ == "__main__":
    main()
