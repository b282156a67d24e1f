"""Pictures of a fitted model: the learning curve and LeNet's kernels.

matplotlib is an optional dependency: ``pip install fastbp[plot]``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numbers

import numpy as np
from sklearn.utils.validation import check_is_fitted

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["loss_curve", "filters"]

_MISSING = (
    "fastbp.plot needs matplotlib, which is not installed. Install it with "
    "`pip install fastbp[plot]` (or `pip install matplotlib`)."
)


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(_MISSING) from exc
    return plt


def loss_curve(est: Any, ax: Axes | None = None) -> Axes:
    """Plot the training loss and, when recorded, the validation loss and
    score by epoch.

    Parameters
    ----------
    est : fitted fastbp estimator
        Reads ``loss_curve_`` and, when there was a validation set (early
        stopping, or ``X_val`` given to fit), ``validation_loss_curve_`` and
        ``validation_scores_``.
    ax : matplotlib Axes, default=None
        Where to draw the loss; a new figure when None. The validation score
        goes on a twin y-axis on the right.

    Returns
    -------
    ax : matplotlib Axes
        The axes of the loss; the twin axes, when drawn, is ``ax.right_ax``.
    """
    plt = _pyplot()
    check_is_fitted(est, "loss_curve_")
    losses = np.asarray(est.loss_curve_, dtype=float)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    epochs = np.arange(1, losses.size + 1)
    (loss_line,) = ax.plot(epochs, losses, color="C0", label="training loss")
    ax.set_xlabel("epoch" if getattr(est, "solver", "") != "lbfgs" else "L-BFGS iteration")
    ax.set_ylabel("training loss")
    ax.set_title(f"{type(est).__name__}: learning curve")
    lines = [loss_line]
    val_losses = getattr(est, "validation_loss_curve_", None)
    if val_losses:
        (val_line,) = ax.plot(np.arange(1, len(val_losses) + 1), val_losses, color="C0",
                              linestyle="--", label="validation loss")
        ax.set_ylabel("loss")
        lines.append(val_line)
    scores = getattr(est, "validation_scores_", None)
    if scores:
        right = ax.twinx()
        (score_line,) = right.plot(np.arange(1, len(scores) + 1), scores, color="C1",
                                   label="validation score")
        right.set_ylabel("validation score")
        setattr(ax, "right_ax", right)  # pandas' name for a secondary y-axis
        lines.append(score_line)
    ax.legend(lines, [str(line.get_label()) for line in lines], loc="center right")
    ax.grid(True, alpha=0.3)
    return ax


def filters(est: Any, layer: str = "C1", *, max_maps: int = 16,
            cmap: str = "RdBu_r") -> Figure:
    """Draw a LeNet-5 layer's 5x5 kernels as a grid of images.

    Parameters
    ----------
    est : fitted LeNet5Classifier
    layer : {'C1', 'C3', 'C5'}, default='C1'
        C1 has 6 kernels (one per output map); C3 and C5 draw one row per
        output map and one column per input map. Unconnected C3 pairs (all
        zero) are left blank.
    max_maps : int, default=16
        Draw at most this many output maps (rows) of C3 and C5.
    cmap : str, default='RdBu_r'
        A diverging colormap centred on zero: red positive, blue negative.

    Returns
    -------
    fig : matplotlib Figure
    """
    if (not isinstance(max_maps, numbers.Integral) or isinstance(max_maps, bool)
            or max_maps < 1):
        raise ValueError(f"max_maps must be an int >= 1; got {max_maps!r}.")
    plt = _pyplot()
    check_is_fitted(est, "_network")
    key = f"{layer}.weight"
    params = est.parameters_
    if layer not in ("C1", "C3", "C5") or key not in params:
        raise ValueError(f"layer must be 'C1', 'C3' or 'C5' of a LeNet5Classifier; "
                         f"got {layer!r} for a {type(est).__name__}.")
    weight = np.asarray(params[key], dtype=float)  # (out_maps, in_maps, 5, 5)
    if layer == "C1":  # one row of six kernels reads better than a column
        weight = weight.transpose(1, 0, 2, 3)
    else:
        weight = weight[:max_maps]
    rows, cols = weight.shape[:2]
    limit = float(np.abs(weight).max()) or 1.0
    size = 0.55 if cols > 6 else 1.1
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size + 0.9, rows * size + 0.5),
                             squeeze=False)
    image = None
    for i in range(rows):
        for j in range(cols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            kernel = weight[i, j]
            if not kernel.any():
                ax.set_axis_off()
                continue
            image = ax.imshow(kernel, cmap=cmap, vmin=-limit, vmax=limit,
                              interpolation="nearest")
    if layer == "C1":
        for j in range(cols):
            axes[0, j].set_title(f"map {j}", fontsize=8)
    else:
        for j in range(cols):
            axes[0, j].set_title(f"in {j}", fontsize=6)
    what = "" if layer == "C1" else ": a row per output map, a column per input map"
    fig.suptitle(f"{layer} kernels (5x5){what}", fontsize=10 if layer == "C1" else 8)
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8)
    return fig
