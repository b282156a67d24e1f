"""Make the README's pictures: docs/loss_curve.png and docs/filters.png.

Both come from quick fits on scikit-learn's embedded digits (no download):
an MLP with early stopping for the learning curve, and LeNet-5 on the digits
upscaled from 8x8 to 32x32 for the C1 kernels. Needs ``pip install
fastbp[plot]``; takes about half a minute on 2 cores.

    python tools/make_figures.py [--out docs]
"""
import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from fastbp import LeNet5Classifier, MLPClassifier
from fastbp.plot import filters, loss_curve


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "docs"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    X, y = load_digits(return_X_y=True)
    warnings.simplefilter("ignore", ConvergenceWarning)

    tic = time.perf_counter()
    mlp = MLPClassifier(hidden_layer_sizes=(64,), solver="sgd", momentum=0.9,
                        learning_rate_init=0.02, max_iter=60, early_stopping=True,
                        n_iter_no_change=60, random_state=0).fit(X / 16.0, y)
    ax = loss_curve(mlp)
    ax.set_title("MLPClassifier(64) on the digits: loss and validation accuracy")
    ax.figure.tight_layout()
    ax.figure.savefig(out / "loss_curve.png", dpi=80)
    plt.close(ax.figure)
    print(f"loss_curve.png: {mlp.n_iter_} epochs, best validation accuracy "
          f"{mlp.best_validation_score_:.3f} ({time.perf_counter() - tic:.1f} s)")

    tic = time.perf_counter()
    images = np.kron(X.reshape(-1, 8, 8) / 16.0, np.ones((4, 4)))  # 8x8 -> 32x32
    net = LeNet5Classifier(activation="tanh", solver="sgd", momentum=0.9,
                           learning_rate_init=0.05, batch_size=32, max_iter=8,
                           random_state=0).fit(images[:1500], y[:1500])
    accuracy = net.score(images[1500:], y[1500:])
    fig = filters(net, "C1")
    fig.suptitle(f"LeNet-5 C1 kernels after {net.n_iter_} epochs on the digits "
                 f"(test accuracy {accuracy:.2f})", fontsize=9)
    fig.savefig(out / "filters.png", dpi=110)
    plt.close(fig)
    print(f"filters.png: test accuracy {accuracy:.3f} ({time.perf_counter() - tic:.1f} s)")


if __name__ == "__main__":
    main()
