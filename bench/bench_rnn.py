"""Vanilla RNN training speed, and a character language model: fastbp against
PyTorch, each in a process of its own.

Timing: synchronous seq2seq (a softmax cross-entropy target at every step),
float32 (float64 in 65-128-50-32-float64, for both libraries), one-hot inputs of 65 features (random characters, not dense random
inputs), 65 classes, tanh, SGD with momentum 0.9 (no Nesterov), lr 0.01,
alpha = 0. The workloads are named n_features-hidden-seq_len-batch:
65-128-50-32 and 65-256-100-64. fastbp's ``RNNClassifier(output='sequence')``
and PyTorch's ``nn.RNN`` + ``nn.Linear`` (the same function: see
``torch_rnn``) train on the same random sequences for the same number of
mini-batches: ``epochs`` epochs of ``steps`` mini-batches, after a warm-up
of ``warmup_steps`` mini-batches (excluded; PyTorch's model and momentum are
then reset to where they started). The figure is milliseconds per training
step (forward + BPTT + update; fastbp's fit setup and batch packing
included) at each thread count from 1 to all cores, and the table compares
each one's best. torch.compile is left out to keep the run short (see
bench_lenet.py).

Char LM (``--lm``, a separate mode): a plain-text file (default: the GPL-3
text Debian ships), one-hot characters in, next character out, 90% train /
10% held out, cut into sequences of ``seq_len`` steps. fastbp and PyTorch
train the same model (same init distribution, batch, epochs, Adam) with
``seeds`` seeds each, each library in a process of its own on all cores;
PyTorch runs twice, with fastbp's (scikit-learn's) Adam update rule
("torch") and with torch.optim.Adam's ("torch-adam"). The table gives the
mean held-out bits per character and training time (target: fastbp within
2% of PyTorch with the same rule).

    python bench/bench_rnn.py                               # timing, both shapes (+ float64)
    python bench/bench_rnn.py --workloads 65-128-50-32-float64
    python bench/bench_rnn.py --workloads 65-256-100-64 --set epochs=1
    python bench/bench_rnn.py --set steps=3 epochs=1        # a quick look
    python bench/bench_rnn.py --lm                          # char LM: 3 seeds x 30 epochs
    python bench/bench_rnn.py --lm --set seeds=1 epochs=2   # a quick look

PyTorch is optional: a contender that is not installed is listed as such.
"""
import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import _harness
import _torch_util
from _harness import Workload

SHAPES = [(65, 128, 50, 32), (65, 256, 100, 64)]  # n_features, hidden, seq_len, batch
LR = 0.01
MOMENTUM = 0.9
TEXT = "/usr/share/common-licenses/GPL-3"
# Adam step of the char LM, both libraries. Short runs on GPL-3 (hidden 128,
# batch 32, 20 mini-batches an epoch): 0.001 still learns slowly after 20
# epochs; 0.01 is best at 20 epochs but overfits by 50 (held-out bpc back up
# from 3.1 to 3.5); 0.003 keeps improving to about 40 epochs.
LM_OPTIONS = {"text": TEXT, "seq_len": 50, "batch": 32, "hidden": 128, "lr": 0.003,
              "epochs": 30, "seeds": 3}


def forward_macs(options):
    """Multiply-adds of one sequence's time step forward: the input, recurrent
    and output weights (n_features classes, as the timing's targets)."""
    F, H, C = options["n_features"], options["hidden"], options["n_features"]
    return F * H + H * H + H * C


def flop_per_step(options):
    """Training FLOP of one mini-batch: per sequence and time step, 2 * (forward
    + weight gradient) MACs of the input, recurrent and output weights, plus the
    deltas through the recurrent and output weights (the input needs none)."""
    H, C = options["hidden"], options["n_features"]
    delta = H * H + H * C
    return 2 * (2 * forward_macs(options) + delta) * options["batch"] * options["seq_len"]


def one_hot(indices, n):
    return np.eye(n, dtype=np.float32)[indices]


def _sequences(options):
    """The same random one-hot sequences and targets in every process:
    ``steps`` mini-batches' worth, (n_seq, seq_len, F) and (n_seq, seq_len)."""
    F, T, B = options["n_features"], options["seq_len"], options["batch"]
    rng = np.random.default_rng(0)
    n_seq = B * options["steps"]
    X = one_hot(rng.integers(0, F, (n_seq, T)), F).astype(options.get("dtype", "float32"))
    return X, rng.integers(0, F, (n_seq, T))


def fastbp_rnn(hidden, batch, solver, lr, epochs, n_threads, seed=0):
    from fastbp import RNNClassifier

    return RNNClassifier(
        hidden_size=hidden, nonlinearity="tanh", output="sequence", solver=solver,
        momentum=MOMENTUM, nesterovs_momentum=False, batch_size=batch,
        learning_rate_init=lr, alpha=0.0, max_iter=epochs, shuffle=True, tol=0,
        n_iter_no_change=10**9, n_jobs=n_threads, random_state=seed)


def fit_quietly(est, X, y):
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def fastbp_report(options):
    return {"blas": _harness.blas_report(), "kernels": _harness.fastbp_kernel_path(options)}


def torch_rnn(torch, n_features, hidden, n_classes, seed):
    """nn.RNN + nn.Linear computing the same function as fastbp's RNN."""
    from torch import nn

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.RNN(n_features, hidden, nonlinearity="tanh", batch_first=True)
            self.out = nn.Linear(hidden, n_classes)
            # fastbp has one hidden bias; nn.RNN has two (b_ih + b_hh), whose sum
            # would take twice the step. b_hh stays 0 and frozen so that both
            # libraries train the same function with the same updates. The rest
            # keeps PyTorch's init, U(±1/sqrt(hidden)), which fastbp copies.
            with torch.no_grad():
                self.rnn.bias_hh_l0.zero_()
            self.rnn.bias_hh_l0.requires_grad_(False)

        def forward(self, x):
            return self.out(self.rnn(x)[0])

    torch.manual_seed(seed)
    return Model()


class TorchTrainer:
    """The PyTorch counterpart of a fastbp fit: shuffled mini-batches, mean
    cross-entropy over every step, one optimizer step per batch."""

    def __init__(self, torch, n_features, hidden, n_classes, batch, solver, lr, seed=0,
                 adam="fastbp"):
        self.torch, self.batch, self.n_classes = torch, batch, n_classes
        self.model = torch_rnn(torch, n_features, hidden, n_classes, seed)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if solver == "sgd":
            self.opt = torch.optim.SGD(params, lr=lr, momentum=MOMENTUM)
        else:
            self.opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        # fastbp's Adam is scikit-learn's: it folds the bias corrections into
        # the step, which puts eps / sqrt(1 - beta_2**t) where torch has eps
        # (32x larger at t = 1). That changes the first hundreds of steps of
        # parameters with small gradients (rare one-hot inputs), so adam="fastbp"
        # sets that eps before every step: the same update rule, to float32
        # rounding. adam="torch" keeps torch.optim.Adam as it is.
        self.sklearn_eps = solver == "adam" and adam == "fastbp"
        self.t = 0

    def epochs(self, X, y, n):
        """Train n epochs on tensors X (n_seq, T, F), y (n_seq, T); return the
        last epoch's mean training loss."""
        torch = self.torch
        for _ in range(n):
            perm = torch.randperm(len(X))
            total = 0.0
            for start in range(0, len(X), self.batch):
                idx = perm[start:start + self.batch]
                self.opt.zero_grad(set_to_none=True)
                self.t += 1
                if self.sklearn_eps:
                    self.opt.param_groups[0]["eps"] = 1e-8 / math.sqrt(1 - 0.999**self.t)
                logits = self.model(X[idx])
                loss = self.loss_fn(logits.reshape(-1, self.n_classes), y[idx].reshape(-1))
                loss.backward()
                self.opt.step()
                total += loss.detach() * len(idx)  # no .item(): no sync inside the loop
        return float(total) / len(X)

    def log_proba(self, X):
        with self.torch.no_grad():
            return self.torch.log_softmax(self.model(X), dim=-1).numpy()


# ---------------------------------------------------------------- timing
def _timing(options):
    epochs = options.get("epochs", 3)
    return epochs, epochs * options["steps"], options.get("warmup_steps", 5) * options["batch"]


def run_fastbp(options, n_threads):
    report = fastbp_report(options)  # first: it may force the kernels' path
    X, y = _sequences(options)
    epochs, n_steps, warm = _timing(options)

    def estimator(max_iter):
        return fastbp_rnn(options["hidden"], options["batch"], "sgd", options.get("lr", LR),
                          max_iter, n_threads)

    fit_quietly(estimator(1), X[:warm], y[:warm])
    est = estimator(epochs)
    tic = time.perf_counter()
    fit_quietly(est, X, y)
    seconds = (time.perf_counter() - tic) / n_steps
    return {"seconds": seconds, "loss": float(est.loss_), **report}


def run_torch(options, n_threads):
    torch = _torch_util.import_torch(n_threads)
    X, y = _sequences(options)
    epochs, n_steps, warm = _timing(options)
    F = options["n_features"]
    trainer = TorchTrainer(torch, F, options["hidden"], F, options["batch"], "sgd",
                           options.get("lr", LR))
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    trainer.model.to(Xt.dtype)  # float64 workloads train in float64 (before the optimizer's state)
    initial = _torch_util.snapshot(trainer.model)
    trainer.epochs(Xt[:warm], yt[:warm], 1)
    _torch_util.reset_in_place(torch, trainer.model, trainer.opt, initial)
    tic = time.perf_counter()
    loss = trainer.epochs(Xt, yt, epochs)
    seconds = (time.perf_counter() - tic) / n_steps
    return {"seconds": seconds, "loss": loss, "blas": _torch_util.backend_report(torch)}


WORKLOADS = [
    Workload(name=f"{F}-{H}-{T}-{B}{suffix}", unit="ms/step", flop=flop_per_step, dtype=dtype,
             contenders={"fastbp": run_fastbp, "torch": run_torch},
             options={"n_features": F, "hidden": H, "seq_len": T, "batch": B, "steps": 20,
                      "epochs": 3, "warmup_steps": 5, "lr": LR})
    for (F, H, T, B), dtype, suffix in ((SHAPES[0], "float32", ""), (SHAPES[1], "float32", ""),
                                        (SHAPES[0], "float64", "-float64"))
]


# --------------------------------------------------------------- char LM
def char_sequences(codes, T, offset):
    """Non-overlapping windows of T steps from ``offset``: (inputs, next chars)."""
    n = (len(codes) - offset - 1) // T
    start = offset + T * np.arange(n)[:, None] + np.arange(T)
    return codes[start], codes[start + 1]


def load_text(path, T, seed=0):
    path = Path(path)
    if not path.exists():
        raise SystemExit(f"{path} not found: --set text=FILE (any plain-text file); on "
                         "Debian/Ubuntu the GPL-3 text comes with base-files.")
    text = path.read_text(encoding="utf-8", errors="replace")
    vocab = sorted(set(text))
    codes = np.searchsorted(np.array(vocab), np.array(list(text)))
    split = int(0.9 * len(codes))
    # a random first offset, so that windows do not start where the file does
    offset = int(np.random.default_rng(seed).integers(T))
    return text, vocab, char_sequences(codes[:split], T, offset), char_sequences(
        codes[split:], T, 0)


def lm_data(options):
    """The same corpus in every process: one-hot inputs, targets and the mask of
    the held-out positions that both models can score."""
    text, vocab, (Xc, yc), (Xc_held, yc_held) = load_text(options["text"], options["seq_len"])
    V = len(vocab)
    # Both models predict the classes seen as training targets (fastbp's
    # classes_); held-out positions whose next char never is one are left out
    # of both bpc (GPL-3: '`', which only occurs in the last 10%).
    classes = np.unique(yc)
    mask = np.isin(yc_held, classes)
    return {"n_chars": len(text), "vocabulary": V, "classes": classes,
            "X": one_hot(Xc, V), "y": yc, "y_index": np.searchsorted(classes, yc),
            "X_held": one_hot(Xc_held, V),
            "y_held": np.searchsorted(classes, yc_held).clip(max=len(classes) - 1),
            "mask": mask}


def bits_per_char(log_proba, targets, mask):
    """Mean -log2 p(target) over the positions where mask is true."""
    picked = np.take_along_axis(log_proba, targets[..., None], axis=-1)[..., 0]
    return float(-picked[mask].mean() / math.log(2))


def lm_fastbp(options, n_threads):
    report = fastbp_report(options)
    d = lm_data(options)
    runs = []
    for seed in range(options["seeds"]):
        est = fastbp_rnn(options["hidden"], options["batch"], "adam", options["lr"],
                         options["epochs"], n_threads, seed=seed)
        tic = time.perf_counter()
        fit_quietly(est, d["X"], d["y"])
        seconds = time.perf_counter() - tic
        assert np.array_equal(est.classes_, d["classes"])
        runs.append({"seed": seed, "train_s": seconds, "train_bpc": est.loss_ / math.log(2),
                     "bpc": bits_per_char(est.predict_log_proba(d["X_held"]), d["y_held"],
                                          d["mask"])})
    return _lm_result(d, runs) | report


def _lm_torch(options, n_threads, adam):
    torch = _torch_util.import_torch(n_threads)
    d = lm_data(options)
    Xt, yt = torch.from_numpy(d["X"]), torch.from_numpy(d["y_index"])
    Xt_held = torch.from_numpy(d["X_held"])
    runs = []
    for seed in range(options["seeds"]):
        trainer = TorchTrainer(torch, d["vocabulary"], options["hidden"], len(d["classes"]),
                               options["batch"], "adam", options["lr"], seed=seed, adam=adam)
        tic = time.perf_counter()
        loss = trainer.epochs(Xt, yt, options["epochs"])
        seconds = time.perf_counter() - tic
        runs.append({"seed": seed, "train_s": seconds, "train_bpc": loss / math.log(2),
                     "bpc": bits_per_char(trainer.log_proba(Xt_held), d["y_held"], d["mask"])})
    return _lm_result(d, runs) | {"blas": _torch_util.backend_report(torch)}


def _lm_result(d, runs):
    bpc = np.array([r["bpc"] for r in runs])
    return {"seconds": float(np.mean([r["train_s"] for r in runs])), "bpc": float(bpc.mean()),
            "bpc_std": float(bpc.std(ddof=1)) if len(bpc) > 1 else None,
            "train_bpc": float(np.mean([r["train_bpc"] for r in runs])), "runs": runs,
            "n_chars": d["n_chars"], "vocabulary": d["vocabulary"],
            "n_classes": len(d["classes"]), "n_train": len(d["X"]),
            "n_held": len(d["X_held"]), "held_out_left_out": int((~d["mask"]).sum())}


CHAR_LM = Workload(name="char-lm", unit="s/run", flop=0, dtype="float32", options=LM_OPTIONS,
                   contenders={"fastbp": lm_fastbp,
                               "torch": lambda o, n: _lm_torch(o, n, adam="fastbp"),
                               "torch-adam": lambda o, n: _lm_torch(o, n, adam="torch")})
LM_ADAM = {"fastbp": "sklearn", "torch": "sklearn", "torch-adam": "torch"}


def lm_main():
    """The --lm mode: each library once, in a process of its own on all cores."""
    parser = argparse.ArgumentParser(description="Char LM: " + __doc__.splitlines()[0])
    parser.add_argument("--lm", action="store_true", required=True)
    parser.add_argument("--contenders", nargs="+", default=list(CHAR_LM.contenders),
                        choices=list(CHAR_LM.contenders))
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help=f"override an option (defaults: {LM_OPTIONS})")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--json", default=_harness.results_path("bench_rnn_lm.json"))
    args = parser.parse_args()
    options = {**LM_OPTIONS, **_harness.parse_set(args.set)}
    n_threads = len(_harness.usable_cpus())
    env = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpu": _harness.cpu_model(),
           "instruction set": _harness.instruction_set(), "threads": n_threads}
    print("\n".join(f"{k:>16}: {v}" for k, v in env.items()), flush=True)
    script = Path(sys.argv[0]).resolve()
    results = {}
    for contender in args.contenders:
        r = _harness.run_in_process(script, CHAR_LM.name, contender, n_threads, options,
                                    args.timeout)
        results[contender] = r
        shown = (f"held-out bpc {r['bpc']:.4f}, {r['seconds']:.1f} s per run" if "bpc" in r
                 else r.get("unavailable") or r.get("error"))
        print(f"  {contender}: {shown}", flush=True)
    done = {c: r for c, r in results.items() if "bpc" in r}
    if done:
        d = next(iter(done.values()))
        print(f"\n{options['text']}: {d['n_chars']} chars, vocabulary {d['vocabulary']} "
              f"({d['n_classes']} seen as training targets), {d['n_train']} training and "
              f"{d['n_held']} held-out sequences of {options['seq_len']} steps "
              f"({d['held_out_left_out']} held-out positions left out); hidden "
              f"{options['hidden']}, batch {options['batch']}, Adam lr {options['lr']}, "
              f"{options['epochs']} epochs, {options['seeds']} seed(s), {n_threads} threads\n")
        ref = done.get("torch")
        head = ["contender", "Adam rule", "held-out bpc", "std", "vs torch", "train bpc",
                "s per run"]
        lines = [head] + [[c, LM_ADAM[c], f"{r['bpc']:.4f}",
                           "-" if r["bpc_std"] is None else f"{r['bpc_std']:.4f}",
                           f"{r['bpc'] / ref['bpc'] - 1:+.2%}" if ref else "-",
                           f"{r['train_bpc']:.4f}", f"{r['seconds']:.1f}"]
                          for c, r in done.items()]
        widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
        for line in lines:
            print("  " + "  ".join(c.rjust(w) if i else c.ljust(w)
                                   for i, (c, w) in enumerate(zip(line, widths))))
        print(f"  mean over the seeds; uniform over the classes: "
              f"{math.log2(d['n_classes']):.3f} bpc; vs torch = bpc / torch's bpc - 1 "
              f"(target: |fastbp's| <= 2%); Adam rule sklearn = fastbp's update, torch = "
              f"torch.optim.Adam's; train bpc = last epoch's mean training loss")
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"environment": env, "options": options, "results": results},
                               indent=2, default=str))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    if "--lm" in sys.argv[1:]:
        lm_main()
    else:
        _harness.main(WORKLOADS, __doc__.splitlines()[0], _harness.results_path("bench_rnn.json"),
                      workers=[CHAR_LM])
