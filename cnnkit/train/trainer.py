"""The training loop: ``fit`` trains for some epochs, evaluating, logging and checkpointing each.

One epoch, written out (``train_one_epoch``)::

    for images, labels in train_loader:          # (B, C, H, W) float32, (B,) int64
        loss = cross_entropy(model(images), labels)
        optimizer.zero_grad(); loss.backward(); optimizer.step()
        scheduler.step()                         # every batch: schedules are in steps

After each epoch ``fit`` evaluates on the test set, appends a row to ``metrics.csv``/``.json``,
and writes ``checkpoint.safetensors`` (everything to resume) and ``model.safetensors`` (weights +
config, for ``cnnkit evaluate``/``predict``) into ``out_dir``, all atomically.

Resuming is exact: the checkpoint holds the weights, BN statistics, optimizer buffers, scheduler
position, the DataLoader's RNG (shuffling + augmentation) and the global ``cnnkit.random`` state
(dropout), so a run stopped after epoch k and resumed gives the same bits as one never stopped.
"""
from __future__ import annotations

import os
import time

import numpy as np
from tqdm.auto import tqdm

from .. import functional as F
from ..tensor import no_grad, tensor
from .checkpoint import load_checkpoint, restore_training_state, save_checkpoint, save_model
from .compile_note import compiling_shown
from .metrics import MetricsLog, RunningMean, correct_count
from .run_lock import run_lock

__all__ = ["CHECKPOINT_FILE", "MODEL_FILE", "evaluate", "fit", "train_one_epoch"]

CHECKPOINT_FILE = "checkpoint.safetensors"
MODEL_FILE = "model.safetensors"


def _as_batch(batch):
    images, labels = batch[0], batch[1]
    return tensor(np.asarray(images)), np.asarray(labels)


def train_one_epoch(model, loader, optimizer, scheduler=None, loss_fn=F.cross_entropy,
                    progress: bool = False, description: str = "train",
                    data_parallel=None) -> dict:
    """One pass over ``loader``, updating ``model``; returns mean loss, accuracy and speed.

    ``data_parallel`` (``cnnkit.distributed.DataParallel``, with a loader of this rank's shards)
    averages the gradients over the ranks before each step; the metrics are then the ranks'.

    Returns
    -------
    dict with ``train_loss``, ``train_accuracy`` (in [0, 1]), ``images_per_second``,
    ``train_seconds``.
    """
    model.train()
    loss_mean, correct, seen = RunningMean(), 0, 0
    start = time.perf_counter()
    # disable=None: tqdm shows the bar on a terminal only, so logs are not flooded with it.
    bar = tqdm(loader, desc=description, leave=False, disable=None if progress else True,
               unit="batch", dynamic_ncols=True, mininterval=0.5)
    with compiling_shown(bar, description) as note:  # a fresh install's first steps
        for batch in bar:
            images, labels = _as_batch(batch)
            scores = model(images)
            loss = loss_fn(scores, labels)
            optimizer.zero_grad()
            loss.backward()
            if data_parallel is not None:
                data_parallel.average_gradients(len(labels))
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            n = len(labels)
            loss_mean.update(loss.item(), n)
            correct += correct_count(scores.data, labels)
            seen += n
            speed = seen / max(time.perf_counter() - start, 1e-9)
            note.step_done()
            # A dict keeps this order (tqdm sorts keyword arguments).
            bar.set_postfix({"loss": f"{loss_mean.mean:.4f}",
                             "acc": f"{100 * correct / seen:.2f}%", "img/s": f"{speed:.0f}"},
                            refresh=False)
    bar.close()
    seconds = time.perf_counter() - start
    if data_parallel is not None:
        loss_mean.total, loss_mean.count, correct, seen = data_parallel.sum_over_ranks(
            loss_mean.total, loss_mean.count, correct, seen)
        seconds = data_parallel.max_over_ranks(seconds)
    return {"train_loss": loss_mean.mean, "train_accuracy": correct / seen if seen else np.nan,
            "images_per_second": seen / seconds if seconds > 0 else np.nan,
            "train_seconds": seconds}


def evaluate(model, loader, loss_fn=F.cross_entropy, progress: bool = False) -> dict:
    """Mean loss and accuracy of ``model`` (in eval mode, no graph) over ``loader``.

    Returns ``{"loss": float, "accuracy": float in [0, 1], "count": int}``; the model's
    train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    loss_mean, correct, seen = RunningMean(), 0, 0
    bar = tqdm(loader, desc="eval", leave=False, disable=None if progress else True,
               unit="batch", dynamic_ncols=True, mininterval=0.5)
    try:
        # evaluation compiles kernels of its own on a fresh install (batch norm's statistics
        # kept, no graph), after the first epoch's training
        with no_grad(), compiling_shown(bar, "eval") as note:
            for batch in bar:
                images, labels = _as_batch(batch)
                scores = model(images)
                loss_mean.update(loss_fn(scores, labels).item(), len(labels))
                correct += correct_count(scores.data, labels)
                seen += len(labels)
                note.step_done()
    finally:
        bar.close()
        model.train(was_training)
    return {"loss": loss_mean.mean, "accuracy": correct / seen if seen else np.nan,
            "count": seen}


def fit(model, train_loader, test_loader, optimizer, scheduler=None, *, epochs: int,
        out_dir=None, config: dict | None = None, resume: bool = False,
        loss_fn=F.cross_entropy, progress: bool = True, log=print, callback=None,
        data_parallel=None) -> list:
    """Train ``model`` until ``epochs`` epochs are complete; returns the metrics rows.

    Parameters
    ----------
    model, optimizer, scheduler : the scheduler (or None) is stepped after every batch
    train_loader, test_loader : DataLoaders yielding (images, labels)
    epochs : the total number of epochs of the run (a resumed run continues up to it)
    out_dir : run directory for metrics and checkpoints, or None to write nothing; locked for
        the whole call (``run_lock``: a second run on it raises ``RunLockedError``)
    config : JSON-able dict saved with the weights (required with ``out_dir``); at least
        ``{"model": {"name": ..., "kwargs": {...}}}`` so the model can be rebuilt
    resume : continue from ``out_dir/checkpoint.safetensors``
    progress : show a tqdm bar (loss, accuracy, images/s) per epoch
    log : called with a one-line summary per epoch (None: silent)
    callback : called as ``callback(epoch, row)`` after each epoch's checkpoint is written
    data_parallel : a ``cnnkit.distributed.DataParallel`` to train on several ranks (the
        loaders then give this rank's shards); only its main rank logs and writes files

    Returns
    -------
    list of dict, one row per completed epoch (including those before a resume): ``epoch``,
    ``lr``, ``train_loss``, ``train_accuracy``, ``test_loss``, ``test_accuracy``,
    ``images_per_second``, ``epoch_seconds``, ``elapsed_seconds``.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"fit: epochs must be a positive int, got {epochs!r}")
    if out_dir is None and resume:
        raise ValueError("fit: resume=True needs out_dir (where the checkpoint is)")
    if out_dir is not None and config is None:
        raise ValueError("fit: config is required with out_dir (model files must be rebuildable)")
    if data_parallel is not None and data_parallel.model is not model:
        raise ValueError("fit: data_parallel must wrap the model being trained")
    main = data_parallel is None or data_parallel.is_main
    if out_dir is not None:
        out_dir = os.fspath(out_dir)
    run = (model, train_loader, test_loader, optimizer, scheduler, epochs, out_dir, config,
           resume, loss_fn, progress, log, callback, data_parallel, main)
    if out_dir is None or not main:  # only the main rank writes, so only it holds the lock
        return _fit(*run)
    with run_lock(out_dir):  # one run per directory; clears a killed run's temporary files
        return _fit(*run)


def _fit(model, train_loader, test_loader, optimizer, scheduler, epochs, out_dir, config, resume,
         loss_fn, progress, log, callback, data_parallel, main) -> list:
    history, start_epoch = [], 0
    if resume:
        path = os.path.join(out_dir, CHECKPOINT_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no checkpoint to resume from")
        checkpoint = load_checkpoint(path)
        restore_training_state(checkpoint, model, optimizer, scheduler, train_loader)
        history, start_epoch = list(checkpoint.history), checkpoint.epoch
    if data_parallel is not None:
        data_parallel.start()
    writes = out_dir is not None and main
    metrics = MetricsLog(out_dir if writes else None, history)
    if resume:
        metrics.write()  # the files may hold rows of an epoch that ended after the checkpoint
    elapsed = history[-1]["elapsed_seconds"] if history else 0.0

    for epoch in range(start_epoch + 1, epochs + 1):
        epoch_start = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train = train_one_epoch(model, train_loader, optimizer, scheduler, loss_fn,
                                progress and main, f"epoch {epoch}/{epochs}", data_parallel)
        if data_parallel is not None:
            data_parallel.average_buffers()
        test = evaluate(model, test_loader, loss_fn)
        if data_parallel is not None:
            test = data_parallel.reduce_evaluation(test)
        seconds = time.perf_counter() - epoch_start
        elapsed += seconds
        row = {"epoch": epoch, "lr": lr, **train, "test_loss": test["loss"],
               "test_accuracy": test["accuracy"], "epoch_seconds": seconds,
               "elapsed_seconds": elapsed}
        if writes:
            # Checkpoint first: the metrics files then never run ahead of what can be resumed.
            save_checkpoint(os.path.join(out_dir, CHECKPOINT_FILE), model, optimizer, scheduler,
                            epoch=epoch, config=config, train_loader=train_loader,
                            history=metrics.rows + [row])
            save_model(os.path.join(out_dir, MODEL_FILE), model, config)
        metrics.append(row)
        if log is not None and main:
            log(f"epoch {epoch}/{epochs}: train loss {row['train_loss']:.4f} "
                f"acc {100 * row['train_accuracy']:.2f}% | test loss {row['test_loss']:.4f} "
                f"acc {100 * row['test_accuracy']:.2f}% | {row['images_per_second']:.0f} img/s "
                f"| {seconds:.1f} s")
        if callback is not None:
            callback(epoch, row)
    return metrics.rows
