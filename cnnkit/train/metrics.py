"""Classification metrics and the per-epoch metrics log of a training run.

``MetricsLog`` keeps one row (a flat dict) per epoch and rewrites ``metrics.csv`` and
``metrics.json`` in the run directory after every epoch, each atomically, so a run killed at any
moment leaves both files complete and readable (by a spreadsheet, pandas, or ``cnnkit plot``).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os

import numpy as np

from ..io import atomic_write_text

__all__ = ["MetricsLog", "RunningMean", "accuracy", "confusion_matrix", "correct_count"]


def _labels_and_scores(scores, labels):
    scores = np.asarray(getattr(scores, "data", scores))
    labels = np.asarray(getattr(labels, "data", labels))
    if scores.ndim != 2 or labels.shape != scores.shape[:1]:
        raise ValueError(f"expected scores of shape (N, classes) and labels of shape (N,), got "
                         f"{scores.shape} and {labels.shape}")
    return scores, labels


def correct_count(scores, labels, k: int = 1) -> int:
    """How many rows of ``scores`` (N, classes) have their label among the top ``k`` scores."""
    scores, labels = _labels_and_scores(scores, labels)
    if k == 1:
        return int(np.count_nonzero(scores.argmax(axis=1) == labels))
    top_k = np.argpartition(-scores, kth=min(k, scores.shape[1]) - 1, axis=1)[:, :k]
    return int(np.count_nonzero((top_k == labels[:, None]).any(axis=1)))


def accuracy(scores, labels, k: int = 1) -> float:
    """Top-``k`` accuracy in [0, 1] of scores (N, classes), ndarray or Tensor, vs labels (N,)."""
    scores, labels = _labels_and_scores(scores, labels)
    return correct_count(scores, labels, k) / len(labels) if len(labels) else math.nan


def confusion_matrix(predicted, labels, num_classes: int) -> np.ndarray:
    """Counts ``m[true, predicted]``, shape (num_classes, num_classes), int64 (via bincount)."""
    predicted, labels = np.asarray(predicted).ravel(), np.asarray(labels).ravel()
    if predicted.shape != labels.shape:
        raise ValueError(f"predicted and labels must have the same length, got "
                         f"{predicted.shape} and {labels.shape}")
    flat = labels.astype(np.int64) * num_classes + predicted.astype(np.int64)
    return np.bincount(flat, minlength=num_classes ** 2).reshape(num_classes, num_classes)


class RunningMean:
    """Sample-weighted running mean: ``update(value, n)`` adds ``n`` samples whose mean is value."""

    def __init__(self):
        self.total, self.count = 0.0, 0

    def update(self, value: float, n: int = 1) -> None:
        self.total += float(value) * n
        self.count += n

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan


class MetricsLog:
    """Per-epoch rows written to ``<out_dir>/metrics.csv`` and ``<out_dir>/metrics.json``.

    Parameters
    ----------
    out_dir : directory of the run, or None to keep the rows in memory only
    rows : rows to start from (a resumed run passes those saved in its checkpoint, which is
        what the files said at that epoch even if a later, unsaved epoch had appended more)
    """

    def __init__(self, out_dir=None, rows=()):
        self.out_dir = None if out_dir is None else os.fspath(out_dir)
        self.rows = [dict(row) for row in rows]

    def append(self, row: dict) -> None:
        self.rows.append(dict(row))
        self.write()

    def write(self) -> None:
        if self.out_dir is None:
            return
        os.makedirs(self.out_dir, exist_ok=True)
        atomic_write_text(os.path.join(self.out_dir, "metrics.json"),
                          json.dumps(self.rows, indent=1) + "\n")
        columns = list(dict.fromkeys(key for row in self.rows for key in row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(os.path.join(self.out_dir, "metrics.csv"), buffer.getvalue())
