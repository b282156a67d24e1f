"""Vanilla RNN training speed and a character language model: fastbp vs PyTorch CPU.

Timing: synchronous seq2seq (a softmax cross-entropy target at every step),
float32, one-hot inputs of 65 features, 65 classes, tanh, SGD with momentum
0.9 (no Nesterov), alpha = 0. For each shape (n_features, hidden, steps,
batch) and thread count, fastbp's ``RNNClassifier(output='sequence')`` and
PyTorch's ``nn.RNN`` + ``nn.Linear`` train on the same random sequences for
the same number of mini-batches; the table gives milliseconds per training
step (forward + BPTT + update, batch packing and fit setup included) and the
ratio PyTorch time / fastbp time (target >= 2). A 1-epoch warm-up fit runs
first and is reported separately: its ms/step includes the one-time costs.

Char LM: a plain-text file (default: the GPL-3 text Debian ships), one-hot
characters in, next character out, 90% train / 10% held out, cut into
sequences of ``--lm-seq-len`` steps. fastbp and PyTorch train the same model
(same init distribution, batch, epochs, Adam) with ``--lm-seeds`` seeds each;
PyTorch runs twice, with fastbp's (scikit-learn's) Adam update rule and with
torch.optim.Adam's. The table gives the mean held-out bits per character and
training time (target: fastbp within 2% of PyTorch with the same rule).

    python bench/bench_rnn.py                    # timing (2 shapes x 1, all threads) + char LM
    python bench/bench_rnn.py --parts lm --lm-seeds 5
    python bench/bench_rnn.py --quick            # smoke test, < 1 min, numbers meaningless

Needs PyTorch (CPU).
"""
import argparse
import math
import os
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning

import fastbp
from _common import environment, print_environment, print_table, timed, write_json

SHAPES = ["65,128,50,32", "65,256,100,64"]  # n_features, hidden, steps, batch
TIMING_LR = 0.01
TEXT = "/usr/share/common-licenses/GPL-3"
# Adam step of the char LM, both libraries. Short runs on GPL-3 (hidden 128,
# batch 32, 20 mini-batches an epoch): 0.001 still learns slowly after 20
# epochs; 0.01 is best at 20 epochs but overfits by 50 (held-out bpc back up
# from 3.1 to 3.5); 0.003 keeps improving to about 40 epochs.
LM_LR = 0.003


def torch_rnn(n_features, hidden, n_classes, seed):
    """nn.RNN + nn.Linear computing the same function as fastbp's RNN."""
    import torch
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

    def __init__(self, n_features, hidden, n_classes, batch, solver, lr, n_threads, seed=0,
                 adam="fastbp"):
        import torch

        torch.set_num_threads(n_threads)
        self.torch, self.batch, self.n_classes = torch, batch, n_classes
        self.model = torch_rnn(n_features, hidden, n_classes, seed)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if solver == "sgd":
            self.opt = torch.optim.SGD(params, lr=lr, momentum=0.9)
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


def fastbp_rnn(hidden, batch, solver, lr, epochs, n_threads, seed=0):
    return fastbp.RNNClassifier(
        hidden_size=hidden, nonlinearity="tanh", output="sequence", solver=solver,
        momentum=0.9, nesterovs_momentum=False, batch_size=batch, learning_rate_init=lr,
        alpha=0.0, max_iter=epochs, shuffle=True, tol=0, n_iter_no_change=10**9,
        n_jobs=n_threads, random_state=seed)


def fit_quietly(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def one_hot(indices, n):
    return np.eye(n, dtype=np.float32)[indices]


# ---------------------------------------------------------------- timing
def parse_shape(text):
    n_features, hidden, steps, batch = (int(v) for v in text.split(","))
    return n_features, hidden, steps, batch


def timing_row(shape, n_threads, steps_per_epoch, epochs, seed=0):
    import torch

    n_features, hidden, T, B = shape
    n_classes = n_features
    rng = np.random.default_rng(seed)
    n_seq = B * steps_per_epoch
    X = one_hot(rng.integers(0, n_features, (n_seq, T)), n_features)
    y = rng.integers(0, n_classes, (n_seq, T))
    n_steps = epochs * steps_per_epoch
    row = {"hidden": hidden, "steps": T, "batch": B, "threads": n_threads}

    # fastbp: a 1-epoch warm-up fit (pays the one-time costs), then the timed fit.
    _, s, _ = timed(lambda: fit_quietly(
        fastbp_rnn(hidden, B, "sgd", TIMING_LR, 1, n_threads), X, y), memory=False)
    row["fastbp_warm_ms"] = 1e3 * s / steps_per_epoch
    est = fastbp_rnn(hidden, B, "sgd", TIMING_LR, epochs, n_threads)
    _, s, _ = timed(lambda: fit_quietly(est, X, y), memory=False)
    row["fastbp_ms"] = 1e3 * s / n_steps
    row["fastbp_loss"] = est.loss_

    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    warm = TorchTrainer(n_features, hidden, n_classes, B, "sgd", TIMING_LR, n_threads)
    _, s, _ = timed(lambda: warm.epochs(Xt, yt, 1), memory=False)
    row["torch_warm_ms"] = 1e3 * s / steps_per_epoch
    trainer = TorchTrainer(n_features, hidden, n_classes, B, "sgd", TIMING_LR, n_threads)
    row["torch_loss"], s, _ = timed(lambda: trainer.epochs(Xt, yt, epochs), memory=False)
    row["torch_ms"] = 1e3 * s / n_steps

    row["ratio"] = row["torch_ms"] / row["fastbp_ms"]
    return row


def run_timing(args):
    rows = []
    for text in args.shapes:
        for n_threads in args.threads:
            row = timing_row(parse_shape(text), n_threads, args.steps_per_epoch, args.epochs)
            rows.append(row)
            print(f"hidden={row['hidden']} steps={row['steps']} batch={row['batch']} "
                  f"threads={n_threads}: " + ", ".join(
                f"{k}={v:.3f}" for k, v in row.items() if isinstance(v, float)), flush=True)
    print(f"\nms per training step (forward + BPTT + SGD momentum update), one-hot "
          f"inputs, as many classes as features, "
          f"{args.epochs} epoch(s) x {args.steps_per_epoch} steps after a 1-epoch warm-up "
          f"(warm = that warm-up's ms/step); ratio = torch / fastbp (target >= 2)\n")
    print_table(rows, [
        ("hidden", "hidden", "d"), ("steps", "steps", "d"), ("batch", "batch", "d"),
        ("threads", "threads", "d"), ("fastbp_ms", "fastbp ms", ".2f"),
        ("torch_ms", "torch ms", ".2f"), ("ratio", "ratio", ".2f"),
        ("fastbp_warm_ms", "fastbp warm", ".2f"), ("torch_warm_ms", "torch warm", ".2f"),
        ("fastbp_loss", "loss fastbp", ".4f"), ("torch_loss", "loss torch", ".4f"),
    ])
    return rows


# --------------------------------------------------------------- char LM
def char_sequences(codes, T, offset):
    """Non-overlapping windows of T steps from ``offset``: (inputs, next chars)."""
    n = (len(codes) - offset - 1) // T
    start = offset + T * np.arange(n)[:, None] + np.arange(T)
    return codes[start], codes[start + 1]


def load_text(path, T, seed):
    path = Path(path)
    if not path.exists():
        raise SystemExit(f"{path} not found: pass --text FILE (any plain-text file); on "
                         "Debian/Ubuntu the GPL-3 text comes with base-files.")
    text = path.read_text(encoding="utf-8", errors="replace")
    vocab = sorted(set(text))
    codes = np.searchsorted(np.array(vocab), np.array(list(text)))
    split = int(0.9 * len(codes))
    # a random first offset, so that windows do not start where the file does
    offset = int(np.random.default_rng(seed).integers(T))
    train = char_sequences(codes[:split], T, offset)
    held = char_sequences(codes[split:], T, 0)
    return text, vocab, train, held


def bits_per_char(log_proba, targets, mask):
    """Mean -log2 p(target) over the positions where mask is true."""
    picked = np.take_along_axis(log_proba, targets[..., None], axis=-1)[..., 0]
    return float(-picked[mask].mean() / math.log(2))


def run_lm(args):
    import torch

    T, B, H = args.lm_seq_len, args.lm_batch, args.lm_hidden
    n_threads = max(args.threads)
    text, vocab, (Xc, yc), (Xc_held, yc_held) = load_text(args.text, T, seed=0)
    V = len(vocab)
    # Both models predict the classes seen as training targets (fastbp's
    # classes_); held-out positions whose next char never is one are left out
    # of both bpc (GPL-3: '`', which only occurs in the last 10%).
    classes = np.unique(yc)
    y_train = np.searchsorted(classes, yc)
    y_held = np.searchsorted(classes, yc_held).clip(max=len(classes) - 1)
    mask = np.isin(yc_held, classes)
    X, X_held = one_hot(Xc, V), one_hot(Xc_held, V)
    print(f"{args.text}: {len(text)} chars, vocabulary {V} ({len(classes)} seen as "
          f"training targets), {len(X)} training and {len(X_held)} held-out sequences "
          f"of {T} steps; {int((~mask).sum())} held-out positions left out; hidden {H}, "
          f"batch {B}, Adam lr {args.lm_lr}, {args.lm_epochs} epochs, {n_threads} threads\n")

    # Runs differ by seed (init and shuffling) by several % in bpc on a text
    # this small, so each library trains with several seeds and the table
    # compares means.
    Xt, yt, Xt_held = torch.from_numpy(X), torch.from_numpy(y_train), torch.from_numpy(X_held)
    runs = []
    for seed in range(args.lm_seeds):
        est = fastbp_rnn(H, B, "adam", args.lm_lr, args.lm_epochs, n_threads, seed=seed)
        _, seconds, _ = timed(lambda: fit_quietly(est, X, yc), memory=False)
        assert np.array_equal(est.classes_, classes)
        runs.append({"library": "fastbp", "adam_eps": "sklearn", "seed": seed,
                     "train_s": seconds, "train_bpc": est.loss_ / math.log(2),
                     "bpc": bits_per_char(est.predict_log_proba(X_held), y_held, mask)})
        for adam in ("fastbp", "torch"):
            trainer = TorchTrainer(V, H, len(classes), B, "adam", args.lm_lr, n_threads,
                                   seed=seed, adam=adam)
            loss, seconds, _ = timed(lambda: trainer.epochs(Xt, yt, args.lm_epochs),
                                     memory=False)
            runs.append({"library": "torch", "adam_eps": "sklearn" if adam == "fastbp" else
                         "torch", "seed": seed, "train_s": seconds,
                         "train_bpc": loss / math.log(2),
                         "bpc": bits_per_char(trainer.log_proba(Xt_held), y_held, mask)})
        for run in runs[-3:]:
            print(f"seed {seed} {run['library']} (Adam eps {run['adam_eps']}): " + ", ".join(
                f"{k}={run[k]:.4f}" for k in ("bpc", "train_bpc", "train_s")), flush=True)

    rows = []
    for library, adam_eps in (("fastbp", "sklearn"), ("torch", "sklearn"), ("torch", "torch")):
        mine = [r for r in runs if r["library"] == library and r["adam_eps"] == adam_eps]
        bpc = np.array([r["bpc"] for r in mine])
        rows.append({"library": library, "adam_eps": adam_eps, "bpc": bpc.mean(),
                     "bpc_std": bpc.std(ddof=1) if len(bpc) > 1 else None,
                     "train_bpc": np.mean([r["train_bpc"] for r in mine]),
                     "train_s": np.mean([r["train_s"] for r in mine])})
    for row in rows:
        row["vs_torch"] = row["bpc"] / rows[1]["bpc"] - 1.0
    print(f"\nheld-out bits per character, mean and std over {args.lm_seeds} seed(s) "
          f"(uniform over the classes: {math.log2(len(classes)):.3f}); vs torch = bpc / "
          f"bpc of the first torch row - 1 (target: |fastbp's| <= 2%); Adam eps sklearn = "
          f"fastbp's update rule, torch = torch.optim.Adam's; train bpc = last epoch's mean "
          f"training loss; train s = seconds per training run\n")
    print_table(rows, [
        ("library", "library", ""), ("adam_eps", "Adam eps", ""),
        ("bpc", "held-out bpc", ".4f"), ("bpc_std", "std", ".4f"),
        ("vs_torch", "vs torch", "+.2%"), ("train_bpc", "train bpc", ".4f"),
        ("train_s", "train s", ".1f"),
    ])
    return {"text": str(args.text), "n_chars": len(text), "vocabulary": V,
            "n_classes": len(classes), "held_out_left_out": int((~mask).sum()),
            "seq_len": T, "hidden": H, "batch": B, "lr": args.lm_lr,
            "epochs": args.lm_epochs, "seeds": args.lm_seeds, "threads": n_threads,
            "rows": rows, "runs": runs}


def main():
    all_threads = len(os.sched_getaffinity(0))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["timing", "lm"], choices=["timing", "lm"])
    parser.add_argument("--shapes", nargs="+", default=SHAPES,
                        help="n_features,hidden,steps,batch (default: %(default)s)")
    parser.add_argument("--threads", nargs="+", type=int, default=sorted({1, all_threads}))
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs")
    parser.add_argument("--steps-per-epoch", type=int, default=20,
                        help="mini-batches per epoch (n_sequences = batch x this)")
    parser.add_argument("--text", default=TEXT, help="plain-text file of the char LM")
    parser.add_argument("--lm-epochs", type=int, default=None, help="default 30, 2 with --quick")
    parser.add_argument("--lm-lr", type=float, default=LM_LR)
    parser.add_argument("--lm-seeds", type=int, default=None, help="default 3, 1 with --quick")
    parser.add_argument("--lm-hidden", type=int, default=128)
    parser.add_argument("--lm-batch", type=int, default=32)
    parser.add_argument("--lm-seq-len", type=int, default=50)
    parser.add_argument("--quick", action="store_true",
                        help="1 timed epoch of 2 steps, 2 LM epochs: checks the script runs")
    parser.add_argument("--json", default=None,
                        help="default bench/results/bench_rnn[_quick].json")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.steps_per_epoch = 1, 2
    if args.lm_epochs is None:
        args.lm_epochs = 2 if args.quick else 30
    if args.lm_seeds is None:
        args.lm_seeds = 1 if args.quick else 3
    json_path = args.json or f"bench/results/bench_rnn{'_quick' if args.quick else ''}.json"

    env = environment(args.threads)
    print_environment(env)
    payload = {"environment": env, "quick": args.quick}
    if "timing" in args.parts:
        payload.update(timing_rows=run_timing(args), epochs=args.epochs,
                       steps_per_epoch=args.steps_per_epoch, timing_lr=TIMING_LR)
    if "lm" in args.parts:
        payload["char_lm"] = run_lm(args)
    write_json(json_path, payload)


if __name__ == "__main__":
    main()
