"""The training loss of every batch, kept beside a run's per-epoch metrics (``batch_losses.csv``).

Epoch means hide what happens inside an epoch; a run of one epoch has no curve at all. The
``cnnkit train`` command records each training batch's loss (this rank's, under MPI) through
``BatchLossLog.loss_fn`` and writes the file after every epoch's checkpoint; on resume, rows of
epochs after the checkpoint are dropped, so the file never runs ahead of the run.

File: CSV with columns ``epoch`` (1-based), ``batch`` (0-based within the epoch), ``loss``.
"""
from __future__ import annotations

import csv
import io
import math
import os

import numpy as np

from .. import functional as F
from ..io import atomic_write_text
from ..tensor import is_grad_enabled

__all__ = ["BATCH_LOSS_FILE", "BatchLossLog", "read_batch_losses"]

BATCH_LOSS_FILE = "batch_losses.csv"


def read_batch_losses(run_dir) -> np.ndarray | None:
    """(N, 3) float array of (epoch, batch, loss) rows, or None when the run has no such file.

    Raises ValueError naming the file for rows that are not three finite-or-NaN numbers."""
    path = os.path.join(os.fspath(run_dir), BATCH_LOSS_FILE)
    if not os.path.isfile(path):
        return None
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        for number, row in enumerate(csv.DictReader(f), start=2):
            try:
                rows.append((int(row["epoch"]), int(row["batch"]), float(row["loss"])))
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"{path}: line {number} is not epoch,batch,loss") from None
    return np.array(rows, dtype=np.float64).reshape(-1, 3)


class BatchLossLog:
    """Collects training batch losses and rewrites ``out_dir/batch_losses.csv`` per epoch.

    start_epoch : epochs already done (a resume); their rows are kept, later ones dropped.
    """

    def __init__(self, out_dir, start_epoch: int = 0, base_loss=F.cross_entropy):
        self.path = os.path.join(os.fspath(out_dir), BATCH_LOSS_FILE)
        self.base_loss = base_loss
        try:
            kept = read_batch_losses(out_dir)
        except ValueError:
            kept = None  # a damaged file is replaced, not trusted
        self.rows = [] if kept is None else [
            (int(e), int(b), float(v)) for e, b, v in kept if e <= start_epoch]
        self.current = []

    def loss_fn(self, scores, labels):
        """The base loss; training batches (autograd on) are recorded, evaluation ones not."""
        loss = self.base_loss(scores, labels)
        if is_grad_enabled():
            self.current.append(float(loss.item()))
        return loss

    def callback(self, epoch: int, row=None) -> None:
        """After epoch ``epoch``: file this epoch's batch losses and rewrite the file."""
        self.rows += [(epoch, batch, loss) for batch, loss in enumerate(self.current)]
        self.current = []
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["epoch", "batch", "loss"])
        writer.writerows((e, b, "nan" if math.isnan(v) else repr(v)) for e, b, v in self.rows)
        atomic_write_text(self.path, text.getvalue())
