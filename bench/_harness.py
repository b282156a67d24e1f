"""A fair harness for the benchmarks: every contender in a process of its own.

Each contender (fastbp, scikit-learn, PyTorch, JAX, ...) runs in a fresh
Python process that imports nothing but its own library: OpenMP runtimes are
shared by soname (libgomp.so.1), so one library's settings would otherwise
become the other's. Each runs at every thread count from 1 to all usable
cores, pinned to that many cores (``sched_setaffinity``) with the usual
thread variables set for that process alone, and the ratios use each
contender's best count. ``--rounds R`` runs each (contender, thread count)
R times, the contenders alternating, and keeps the fastest of each: on a
shared machine a single run can land in a slow spell. The same run measures the machine's limit, a large
GEMM through scipy's BLAS on all cores, and every workload is reported as a
fraction of it.

A bench script describes one workload and its contenders::

    WORKLOAD = Workload(name=..., unit="s/epoch", flop=..., dtype="float32",
                        contenders={"fastbp": run_fastbp, "torch": run_torch})
    if __name__ == "__main__":
        harness.main(WORKLOADS)

A contender is a function ``run(options, n_threads) -> dict`` that does its own
imports and returns ``{"seconds": <per unit>}`` plus anything worth reporting
("accuracy" is printed, "blas", "kernels", ... go to the JSON; "flop" replaces
the workload's count for a contender that does less work per unit, such as a
sparser connection table); it may raise ``Unavailable`` when its library is
missing. Warm-up is the contender's own business and is excluded from
``seconds`` for all alike.

A script that prints a table of its own (bench_conv_kernels.py,
bench_rnn_kernels.py) keeps its command line: its main process imports
neither library and calls ``run_rounds``, which runs each contender in fresh
processes, and the script hands ``--worker`` invocations to ``worker_main``.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class Unavailable(Exception):
    """The contender's library is not installed here."""


@dataclass
class Workload:
    """One timed task, its FLOP per unit and the contenders that run it."""

    name: str
    unit: str  # "s/epoch", "ms/step", "us/call": what ``seconds`` is per, shown in s, ms or us
    flop: object  # per unit: a number, or a function of the options
    dtype: str
    contenders: dict
    options: dict = field(default_factory=dict)  # passed to every contender
    # how to show a time: per unit as it is, or as a rate (images/s)
    rate: tuple | None = None  # (label, units per second per 1 "seconds")


# ------------------------------------------------------------- the machine
def results_path(name):
    """Where a benchmark writes its JSON by default: bench/results/<name>,
    wherever it is run from."""
    return str(Path(__file__).resolve().parent / "results" / name)


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def instruction_set():
    """The widest vector instructions the CPU offers, as the kernels name them."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return platform.machine()
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags:
        return "AVX-512"
    if {"avx2", "fma"} <= flags:
        return "AVX2+FMA"
    return platform.machine()


def usable_cpus():
    return sorted(os.sched_getaffinity(0))


def blas_report():
    """What threadpoolctl sees in this process: one line per BLAS."""
    from threadpoolctl import threadpool_info

    return [f"{i.get('internal_api')} {i.get('version')} ({Path(i.get('filepath', '')).name}): "
            f"{i.get('architecture')} kernels"
            for i in threadpool_info() if i.get("user_api") == "blas"]


def fastbp_kernel_path(options):
    """In a fastbp worker: force the kernels' instruction-set path when the
    options name one (``--set dispatch=avx2-fma``), and say which one runs."""
    from fastbp._kernels import _dispatch

    if options.get("dispatch"):
        _dispatch._force_dispatch_path(options["dispatch"])
    path = _dispatch.dispatch_path()
    gemm = "scipy's BLAS" if path == "portable" else "fastbp's own"
    return f"kernel path {path}, GEMM {gemm}"


# ------------------------------------------------------------- the limit
def gemm_peak(options, n_threads):
    """GFLOP/s of a large GEMM through scipy's BLAS (what fastbp calls at the
    portable level; its own GEMM at the others)."""
    from scipy.linalg import blas

    dtype = np.dtype(options.get("dtype", "float32"))
    gemm = blas.sgemm if dtype == np.float32 else blas.dgemm
    n = 2048 if dtype == np.float32 else 1536
    rng = np.random.default_rng(0)
    A = np.asfortranarray(rng.random((n, n), dtype=np.float64).astype(dtype))
    B = np.asfortranarray(rng.random((n, n), dtype=np.float64).astype(dtype))
    gemm(1.0, A, B)  # warm-up: threads started, pages touched
    best = float("inf")
    for _ in range(5):
        tic = time.perf_counter()
        gemm(1.0, A, B)
        best = min(best, time.perf_counter() - tic)
    return {"seconds": best, "gflops": 2.0 * n**3 / best / 1e9, "blas": blas_report()}


# ------------------------------------------------------------- processes
def _child_env(n_threads):
    env = dict(os.environ)
    for name in THREAD_VARIABLES:
        env[name] = str(n_threads)
    # JAX's CPU client sizes its pool from the cores it may use; say it too
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                        f" --xla_cpu_multi_thread_eigen={'true' if n_threads > 1 else 'false'}"
                        f" intra_op_parallelism_threads={n_threads}").strip()
    return env


def run_in_process(script, workload, contender, n_threads, options, timeout):
    """Run one contender at one thread count in a fresh process; its result dict."""
    cpus = usable_cpus()[:n_threads]
    cmd = [sys.executable, str(script), "--worker", workload, contender,
           "--threads", str(n_threads), "--options", json.dumps(options)]
    try:
        proc = subprocess.run(cmd, env=_child_env(n_threads), capture_output=True, text=True,
                              timeout=timeout, preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}


def run_rounds(script, workload, thread_counts, rounds, options, timeout):
    """Each contender of ``workload`` at each thread count ``rounds`` times, every
    time in a fresh process (``run_in_process``), the contenders alternating
    (a, b, a, b, ...) so that a spell of load from elsewhere falls on all alike.
    ``{contender: {n_threads: [each round's result dict]}}``; a contender that
    is ``Unavailable`` is asked once."""
    results = {c: {n: [] for n in thread_counts} for c in workload.contenders}
    unavailable = set()
    for n in thread_counts:
        for round_ in range(rounds):
            for contender in workload.contenders:
                if contender in unavailable:
                    continue
                tic = time.perf_counter()
                r = run_in_process(script, workload.name, contender, n, options, timeout)
                results[contender][n].append(r)
                if "unavailable" in r:
                    unavailable.add(contender)
                shown = r.get("unavailable") or r.get("error") or \
                    f"{time.perf_counter() - tic:.1f} s"
                print(f"  {contender}, {n} thread(s), round {round_ + 1}: {shown}", flush=True)
    return results


def backends(results):
    """``{contender: line}`` for ``run_rounds``' results: the "kernels" and "blas"
    of a contender's last result that has them, or why it has none."""
    lines = {}
    for contender, by_threads in results.items():
        done = [r for rounds in by_threads.values() for r in rounds if "blas" in r]
        if done:
            lines[contender] = "; ".join(filter(None, [done[-1].get("kernels"),
                                                       *done[-1]["blas"]]))
        else:
            r = next((r for rounds in by_threads.values() for r in rounds), {})
            lines[contender] = r.get("unavailable") or r.get("error", "no result")
    return lines


def assert_not_imported(*modules):
    """Fail if this process has loaded any of ``modules``: a contender's process
    holds its own library alone (see the module docstring)."""
    loaded = sorted(name for name in modules if name in sys.modules)
    if loaded:
        raise AssertionError(f"this process has imported {', '.join(loaded)}: each "
                             "library must run in a process of its own")


def worker_main(workloads):
    """The child's side of ``run_in_process`` for a script with a command line of
    its own: run the contender named by ``--worker WORKLOAD CONTENDER`` at
    ``--threads N`` with ``--options JSON`` and print its result."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", nargs=2, required=True)
    parser.add_argument("--threads", nargs=1, type=int, required=True)
    parser.add_argument("--options", default="{}")
    _worker(workloads, parser.parse_args())


def parse_set(pairs):
    """``KEY=VALUE`` strings as a dict, values read as JSON where they parse."""
    overrides = dict(kv.split("=", 1) for kv in pairs)
    for key, value in overrides.items():
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            pass
    return overrides


def _worker(workloads, args):
    """Inside the child: run one contender once and print its result."""
    options = json.loads(args.options)
    name, contender = args.worker
    if name == "peak":
        run = gemm_peak
    else:
        run = {w.name: w for w in workloads}[name].contenders[contender]
    try:
        result = run(options, args.threads[0])
    except Unavailable as exc:
        result = {"unavailable": str(exc)}
    # the contender's library alone: fastbp's process holds no peer, and no
    # peer's process holds fastbp
    peers = ("torch", "jax", "sklearn.neural_network")
    if contender.startswith("fastbp"):
        assert_not_imported(*peers)
    elif name != "peak":
        assert_not_imported("fastbp", *(p for p in peers if not contender.startswith(p[:4])))
    print("RESULT " + json.dumps(result, default=float), flush=True)


# ------------------------------------------------------------- report
def _fmt(value, fmt):
    return "-" if value is None else format(value, fmt)


def _scale(unit):
    """(factor, name) that show seconds per unit in the unit's s, ms or us."""
    for prefix, factor in (("ms", 1e3), ("us", 1e6)):
        if unit.startswith(prefix + "/"):
            return factor, prefix
    return 1.0, "s"


def summarize(flop, results, peak_gflops, thread_counts):
    """Best thread count per contender, ratios to fastbp, fraction of peak
    (None without a peak: its GEMM failed)."""
    rows = []
    for contender, by_threads in results.items():
        times = {n: r["seconds"] for n, r in by_threads.items() if "seconds" in r}
        if not times:
            note = next(iter(by_threads.values()), {})
            rows.append({"contender": contender,
                         "note": note.get("unavailable") or note.get("error", "no result")})
            continue
        best_n = min(times, key=times.get)
        best = times[best_n]
        extra = by_threads[best_n]
        gflops = extra.get("flop", flop) / best / 1e9
        row = {"contender": contender, "best": best, "best_threads": best_n,
               "one_thread": times.get(1), "all_threads": times.get(max(thread_counts)),
               "gflops": gflops, "of_peak": gflops / peak_gflops if peak_gflops else None,
               "speedup": (times[1] / times[max(thread_counts)]
                           if 1 in times and max(thread_counts) in times else None)}
        for key in ("accuracy", "note"):
            if key in extra:
                row[key] = extra[key]
        rows.append(row)
    fastbp = next((r for r in rows if r["contender"] == "fastbp" and "best" in r), None)
    for row in rows:
        if fastbp and "best" in row:
            row["vs_fastbp"] = row["best"] / fastbp["best"]
    return rows


def print_report(workload, flop, rows, peak):
    scale, unit = _scale(workload.unit)
    per = workload.unit.split("/", 1)[1]
    print(f"\n## {workload.name}: {flop / 1e9:.3g} GFLOP per {per}, {workload.dtype}")
    head = ["contender", f"best {unit}/{per}", "threads", "1 thread", "all threads",
            "x fastbp", "GFLOP/s", "% of peak", "1->all"]
    if workload.rate:
        head.insert(2, workload.rate[0])
    accuracy = any("accuracy" in r for r in rows)
    if accuracy:
        head.append("accuracy")
    lines = [head]
    for r in rows:
        if "best" not in r:
            lines.append([r["contender"], r["note"]])
            continue
        cells = [r["contender"], _fmt(r["best"] * scale, ".4g"), str(r["best_threads"]),
                 _fmt(r["one_thread"] and r["one_thread"] * scale, ".4g"),
                 _fmt(r["all_threads"] and r["all_threads"] * scale, ".4g"),
                 _fmt(r.get("vs_fastbp"), ".2f"), _fmt(r["gflops"], ".1f"),
                 _fmt(r["of_peak"] and 100 * r["of_peak"], ".0f"), _fmt(r["speedup"], ".2f")]
        if workload.rate:
            cells.insert(2, _fmt(workload.rate[1] / r["best"], ",.0f"))
        if accuracy:
            cells.append(_fmt(r.get("accuracy"), ".4f"))
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines if len(line) == len(head))
              for i in range(len(head))]
    for line in lines:
        if len(line) < len(head):
            print(f"  {line[0]:<{widths[0]}}  ({line[1]})")
        else:
            print("  " + "  ".join(c.rjust(w) if i else c.ljust(w)
                                   for i, (c, w) in enumerate(zip(line, widths))))
    bound = (f"% of peak against {peak['gflops']:.0f} GFLOP/s ({workload.dtype} GEMM, "
             f"all cores, this run)" if "gflops" in peak else
             f"no % of peak: the GEMM peak failed ({peak.get('error')})")
    print(f"  x fastbp = contender's best time / fastbp's best time (above 1: fastbp "
          f"is faster); {bound}" +
          (f"; 1->all against the same GEMM's "
           f"{peak['top_gflops'] / peak['one_core_gflops']:.2f} from 1 to "
           f"{peak['top_threads']} threads" if peak.get("one_core_gflops") else "") +
          ("; accuracy at the best thread count" if accuracy else ""))


def _faster(kept, new):
    """Of two results of one contender and thread count, the one to report:
    the faster; one with a time beats one without. The kept result lists
    every round's seconds (None for a round without) and, under
    "failed_rounds", why each round without a time had none."""
    failed = [] if kept is None else kept.get("failed_rounds", [])
    if "seconds" not in new:
        failed = failed + [new.get("unavailable") or new.get("error", "no time")]
    if kept is None:
        return {**new, "rounds": [new.get("seconds")], "failed_rounds": failed}
    rounds = kept["rounds"] + [new.get("seconds")]
    if "seconds" in new and ("seconds" not in kept or new["seconds"] < kept["seconds"]):
        kept = new
    return {**kept, "rounds": rounds, "failed_rounds": failed}


def main(workloads, description, default_json, workers=()):
    """Run the chosen workloads and print their tables; ``workers`` are
    workloads that a script's own mode runs through ``run_in_process``: a child
    can run them, the tables never do."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--threads", nargs="+", type=int, default=None,
                        help="thread counts (default: every count from 1 to all usable cores)")
    parser.add_argument("--workloads", nargs="+", default=None,
                        choices=[w.name for w in workloads])
    parser.add_argument("--contenders", nargs="+", default=None)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override a workload option (epochs=1, n_train=6000, ...)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="runs of each contender at each thread count, each in a fresh "
                             "process, the contenders alternating; the fastest counts "
                             "(default: 1)")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--json", default=default_json)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return _worker([*workloads, *workers], args)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    script = Path(sys.argv[0]).resolve()
    n_cpus = len(usable_cpus())
    threads = sorted(set(args.threads or range(1, n_cpus + 1)))
    overrides = parse_set(args.set)
    chosen = [w for w in workloads if not args.workloads or w.name in args.workloads]

    env = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpu": cpu_model(),
           "instruction set": instruction_set(), "usable cores": n_cpus,
           "thread counts": threads, "python": platform.python_version(),
           "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
           "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"), "rounds": args.rounds}
    print("\n".join(f"{k:>18}: {v}" for k, v in env.items()), flush=True)
    peaks = {}
    report = {"environment": env, "workloads": []}
    for workload in chosen:
        if workload.dtype not in peaks:
            peaks[workload.dtype] = run_in_process(script, "peak", "gemm", n_cpus,
                                                   {"dtype": workload.dtype}, args.timeout)
            p = peaks[workload.dtype]
            if "gflops" not in p:  # no bound to read against: the tables still run
                print(f"{workload.dtype} GEMM peak on {n_cpus} cores: {p.get('error')}; "
                      f"no % of peak in the tables", flush=True)
            else:
                print(f"{workload.dtype} GEMM peak on {n_cpus} cores: {p['gflops']:.0f} "
                      f"GFLOP/s through scipy's BLAS: {'; '.join(p['blas'])}", flush=True)
            top = max(threads)
            if top > 1 and "gflops" in p:
                # the machine's own bound on the 1->all column: the same GEMM
                # on one core and at the table's top thread count, this run
                one = run_in_process(script, "peak", "gemm", 1, {"dtype": workload.dtype},
                                     args.timeout)
                at_top = p if top == n_cpus else run_in_process(
                    script, "peak", "gemm", top, {"dtype": workload.dtype}, args.timeout)
                if "gflops" in one and "gflops" in at_top:
                    p.update(one_core_gflops=one["gflops"], top_threads=top,
                             top_gflops=at_top["gflops"])
                    print(f"{workload.dtype} GEMM on 1 core: {one['gflops']:.0f} GFLOP/s, "
                          f"on {top}: {at_top['gflops']:.0f}, so the BLAS itself speeds up "
                          f"{at_top['gflops'] / one['gflops']:.2f}x from 1 to {top} threads "
                          f"in this run", flush=True)
                else:  # only a bound to read against: the tables still run
                    print(f"{workload.dtype} GEMM on 1 core or {top}: "
                          f"{one.get('error') or at_top.get('error')}", flush=True)
        options = {**workload.options, **overrides, "dtype": workload.dtype}
        scale, unit = _scale(workload.unit)
        per = workload.unit.split("/", 1)[1]
        results = {}
        contenders = [c for c in workload.contenders
                      if not args.contenders or c in args.contenders]
        unavailable = set()
        # with several rounds, the contenders alternate (a spell of load from
        # elsewhere falls on all alike) and each keeps its fastest run
        for round_ in range(args.rounds):
            for contender in contenders:
                by_threads = results.setdefault(contender, {})
                for n in threads:
                    if contender in unavailable:
                        break
                    r = run_in_process(script, workload.name, contender, n, options,
                                       args.timeout)
                    shown = (f"{r['seconds'] * scale:.4g} {unit}/{per}" if "seconds" in r
                             else r.get("unavailable") or r.get("error"))
                    print(f"  {workload.name} / {contender} / {n} thread(s)"
                          + (f", round {round_ + 1}" if args.rounds > 1 else "")
                          + f": {shown}", flush=True)
                    if "unavailable" in r:
                        unavailable.add(contender)
                    by_threads[n] = _faster(by_threads.get(n), r)
        flop = workload.flop(options) if callable(workload.flop) else workload.flop
        rows = summarize(flop, results, peaks[workload.dtype].get("gflops"), threads)
        print_report(workload, flop, rows, peaks[workload.dtype])
        if args.rounds > 1:
            print(f"  each time: the fastest of {args.rounds} rounds (a fresh process each, "
                  f"the contenders alternating)")
            for contender, by_threads in results.items():
                for n, r in by_threads.items():
                    failed = r["failed_rounds"]
                    if failed and "seconds" in r:  # a row that has fewer runs behind it
                        print(f"  {contender}, {n} thread(s): {len(failed)} of "
                              f"{len(r['rounds'])} rounds failed ({failed[-1]})")
        fastbp_info = next((r for r in results.get("fastbp", {}).values() if "blas" in r), {})
        if fastbp_info:
            print(f"  fastbp: {fastbp_info.get('kernels', '')}; "
                  f"BLAS: {'; '.join(fastbp_info['blas'])}")
        report["workloads"].append({"name": workload.name, "unit": workload.unit,
                                    "flop": flop, "dtype": workload.dtype,
                                    "options": options, "peak": peaks[workload.dtype],
                                    "results": results, "summary": rows})
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nwrote {path}")
