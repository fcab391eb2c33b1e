"""Training curves: loss and accuracy per epoch, from a run's ``metrics.json``/``metrics.csv``.

The run directory is what ``cnnkit.train.fit`` writes: one row per epoch with ``epoch``,
``train_loss``, ``train_accuracy``, ``test_loss``, ``test_accuracy``, ... Any column whose name
contains "loss" goes in the loss panel, any containing "acc" in the accuracy panel.
"""
import csv
import json
import math
import os

import numpy as np
from matplotlib.ticker import MaxNLocator

from ._figure import finish, new_figure

__all__ = ["plot_curves", "read_metrics"]


def _float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _columns(rows, source):
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"{source}: expected a list of per-epoch rows (objects)")
    names = list(dict.fromkeys(key for row in rows for key in row))
    return {name: np.array([_float(row.get(name)) for row in rows]) for name in names}


def read_metrics(path) -> dict:
    """Columns of a run's metrics: {name: float ndarray of shape (epochs,)}, NaN where missing.

    ``path`` is a run directory (``metrics.json`` is preferred, else ``metrics.csv``) or one of
    those files. Raises FileNotFoundError or ValueError naming the file.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        candidates = [os.path.join(path, f) for f in ("metrics.json", "metrics.csv")]
        found = [c for c in candidates if os.path.isfile(c)]
        if not found:
            raise FileNotFoundError(f"{path}: no metrics.json or metrics.csv in this run directory")
        path = found[0]
    elif not os.path.isfile(path):
        raise FileNotFoundError(f"no such run directory or metrics file: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            if path.endswith(".json"):
                data = json.load(f)
                if isinstance(data, dict) and isinstance(data.get("rows"), list):
                    data = data["rows"]
                elif isinstance(data, dict):  # {column: [values]}
                    data = [dict(zip(data, values)) for values in zip(*data.values())]
                return _columns(data, path)
            return _columns(list(csv.DictReader(f)), path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as err:
        raise ValueError(f"{path}: cannot read metrics ({err})") from err


def _batch_positions(batch_losses) -> np.ndarray:
    """x of each batch row: epoch − 1 + (batch + 1) / (batches in that epoch), so a batch's
    loss sits inside its epoch and the last batch at the epoch's own x."""
    epochs, batches = batch_losses[:, 0], batch_losses[:, 1]
    per_epoch = {e: batches[epochs == e].max() + 1 for e in np.unique(epochs)}
    return epochs - 1 + (batches + 1) / np.array([per_epoch[e] for e in epochs])


def plot_curves(metrics: dict, path=None, title: str = "training curves", batch_losses=None):
    """Loss (left) and accuracy in % (right) against the epoch; returns the Figure.

    metrics : {column: array (epochs,)}, as ``read_metrics`` returns
    batch_losses : optional (N, 3) rows (epoch, batch, loss), as
        ``cnnkit.train.batch_losses.read_batch_losses`` returns: drawn as a thin line of the
        training loss per batch. A panel of one epoch without batch losses shows labelled bars.
    """
    if not metrics:
        raise ValueError("metrics: no rows")
    n = len(next(iter(metrics.values())))
    epoch = metrics.get("epoch", np.arange(1, n + 1))
    panels = [("loss", [k for k in metrics if "loss" in k.lower()]),
              ("accuracy (%)", [k for k in metrics if "acc" in k.lower()])]
    panels = [(label, keys) for label, keys in panels if keys]
    if not panels:
        raise ValueError(f"metrics: found no loss or accuracy columns in {sorted(metrics)}")
    has_batches = batch_losses is not None and len(batch_losses) > 0
    figure = new_figure(5 * len(panels), 3.6)
    figure.suptitle(title)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, (label, keys) in zip(axes, panels):
        per_batch = has_batches and label == "loss"
        if per_batch:
            ax.plot(_batch_positions(batch_losses), batch_losses[:, 2], lw=0.8, alpha=0.6,
                    color="tab:grey", label="train loss per batch")
        for key in keys:
            values = metrics[key]
            if "acc" in key.lower() and np.nanmax(np.abs(values), initial=0) <= 1:
                values = 100 * values  # stored as fractions in [0, 1]
            if n == 1 and not per_batch:  # one epoch has no curve: a labelled bar per column
                bar = ax.bar(key, values[0], label=key)
                ax.bar_label(bar, fmt="%.4g", fontsize=8)
            else:
                ax.plot(epoch, values, marker="o", markersize=4 if n > 1 else 6, label=key)
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
        if n == 1 and not per_batch:
            ax.set_xlabel(f"after epoch {int(epoch[0]) if np.isfinite(epoch[0]) else 1} "
                          "(one epoch: no curve yet)")
            ax.tick_params(axis="x", labelsize=7)
            continue
        ax.set_xlabel("epoch" + (" (batches inside)" if per_batch else ""))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    return finish(figure, path)
