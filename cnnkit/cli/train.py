"""``cnnkit train``: train a model on a data set, with checkpoints, metrics and exact resume.

Every option defaults to None here so that a resumed run can tell "not given" (use the saved
value) from "given" (must agree with the saved value, except --epochs).

--epochs may grow on resume. A schedule without a length (none) simply runs longer; a schedule
built for the run's length (onecycle, cosine, step) keeps that length (``schedule_epochs`` in the
saved settings) and the epochs beyond it train at the schedule's final learning rate: the cycle
has ended, and restarting or stretching it would undo the annealing already done.
"""
from __future__ import annotations

import contextlib
import os

from .common import (
    DEFAULT_DATASET,
    CommandError,
    UsageError,
    add_data_root_argument,
    add_max_pixels_argument,
    build_model,
    channel_stats,
    dataset_classes,
    int_in,
    limited,
    load_datasets,
    one_line,
    positive_int,
    real_in,
    sample_shape,
    seed_int,
)
from .words import count

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "step", "cosine", "onecycle")
LENGTH_DEPENDENT = ("step", "cosine", "onecycle")  # built for a number of steps
ONECYCLE_FINAL = (" (lr/250,000 for onecycle: the weights barely change; a new run with more "
                  "--epochs trains further)")
# Chosen to reach >= 92.5 % test accuracy on Fashion-MNIST with vgg_small in 10 epochs (about
# 93 %). No augmentation by default: in so short a run random crops and flips slow convergence
# more than they curb overfitting (the same recipe reached 91.9 % with them, 93.2 % without);
# --augment pays off in longer runs.
DEFAULTS = {"model": "vgg_small", "dataset": DEFAULT_DATASET, "epochs": 10, "batch_size": 128,
            "optimizer": "adamw", "scheduler": "onecycle", "seed": 0, "augment": False,
            "limit_train": None, "limit_test": None, "image_size": None}
DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 3e-3}
DEFAULT_WEIGHT_DECAY = {"sgd": 5e-4, "adam": 0.0, "adamw": 0.05}
# Settings whose change on resume would silently change the run (epochs is handled apart).
_FIXED_ON_RESUME = ("model", "dataset", "batch_size", "lr", "optimizer", "weight_decay",
                    "scheduler", "seed", "augment", "limit_train", "limit_test", "image_size")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model (default: vgg_small on Fashion-MNIST)",
        description="Train a CNN, evaluating on the test set after every epoch. The run "
                    "directory gets metrics.csv/json, checkpoint.safetensors (to --resume) and "
                    "model.safetensors (for evaluate/predict).")
    parser.add_argument("--model", help=f"model name (default {DEFAULTS['model']}; see "
                                        "'cnnkit summary --list')")
    parser.add_argument("--dataset", help="fashion-mnist (default), mnist, digits, or a folder "
                                          "of class folders (with train/ and test/, or split "
                                          "80/20)")
    add_data_root_argument(parser)
    parser.add_argument("--epochs", type=positive_int,
                        help=f"total epochs (default {DEFAULTS['epochs']}); with --resume it may "
                             "grow: onecycle/cosine/step schedules then keep their length and "
                             "the extra epochs use the schedule's final learning rate")
    parser.add_argument("--batch-size", type=positive_int,
                        help=f"training batch size (default {DEFAULTS['batch_size']})")
    parser.add_argument("--lr", type=real_in(0.0, inclusive=False),
                        help="learning rate, the peak one for onecycle (default: sgd "
                             f"{DEFAULT_LR['sgd']}, adam {DEFAULT_LR['adam']}, adamw "
                             f"{DEFAULT_LR['adamw']})")
    parser.add_argument("--optimizer", choices=OPTIMIZERS,
                        help=f"default {DEFAULTS['optimizer']}; sgd uses Nesterov momentum 0.9")
    parser.add_argument("--weight-decay", type=real_in(0.0, inclusive=True),
                        help="default: sgd 5e-4 (L2), adam 0, adamw 0.05 (decoupled)")
    parser.add_argument("--scheduler", choices=SCHEDULERS,
                        help=f"learning-rate schedule, stepped every batch (default "
                             f"{DEFAULTS['scheduler']}; step divides the lr by 10 after 1/3 "
                             "and 2/3 of the run)")
    parser.add_argument("--seed", type=seed_int, help="seed of initialisation, shuffling, "
                                                 "augmentation and dropout (default 0)")
    parser.add_argument("--augment", action="store_const", const=True,
                        help="random crops (and mirror images, except for digits); helps "
                             "longer runs")
    parser.add_argument("--limit-train", type=positive_int, metavar="N",
                        help="train on a random subset of N images (quick runs)")
    parser.add_argument("--limit-test", type=positive_int, metavar="N",
                        help="evaluate on a random subset of N test images")
    parser.add_argument("--image-size", type=int_in(1, 4096), metavar="PIXELS",
                        help="resize folder images to PIXELS×PIXELS")
    add_max_pixels_argument(parser)
    parser.add_argument("--out", metavar="DIR",
                        help="run directory (default runs/<model>_<dataset>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its checkpoint, exactly")
    parser.add_argument("--overwrite", action="store_true",
                        help="start afresh even if --out already holds a run")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bar")
    parser.add_argument("--sync-bn", action="store_true",
                        help="under mpiexec: batch-norm statistics over the global batch of "
                             "all ranks (--batch-size is per rank)")
    parser.set_defaults(run=run)


def _resolve(args, saved):
    """The run's settings: saved ones (on resume) or defaults, overridden by given options."""
    given = {key: getattr(args, key) for key in list(DEFAULTS) + ["lr", "weight_decay"]
             if getattr(args, key, None) is not None}
    if saved is None:
        settings = dict(DEFAULTS, **given)
        settings.setdefault("lr", DEFAULT_LR[settings["optimizer"]])
        settings.setdefault("weight_decay", DEFAULT_WEIGHT_DECAY[settings["optimizer"]])
        return settings
    settings = dict(saved)
    for key in _FIXED_ON_RESUME:
        if key in given and given[key] != saved.get(key):
            raise UsageError(f"--{key.replace('_', '-')} {given[key]} differs from the run being "
                             f"resumed ({saved.get(key)}); drop it, or start a new run")
    if "epochs" in given and given["epochs"] != saved["epochs"]:
        length = schedule_epochs(saved)
        if saved["scheduler"] in LENGTH_DEPENDENT and given["epochs"] < length:
            raise UsageError(f"--epochs {given['epochs']}: the {saved['scheduler']} schedule of "
                             f"the run being resumed lasts {count(length, 'epoch')}; --epochs "
                             "can only extend it")
        settings["epochs"] = given["epochs"]
        if saved["scheduler"] in LENGTH_DEPENDENT:
            settings["schedule_epochs"] = length
    return settings


def schedule_epochs(settings) -> int:
    """The epochs the learning-rate schedule was built for (``epochs`` unless a resume
    extended the run); refuses a saved value that is not an int in 1..epochs."""
    length = settings.get("schedule_epochs", settings["epochs"])
    if isinstance(length, bool) or not isinstance(length, int) or \
            not 1 <= length <= settings["epochs"]:
        raise CommandError(f"saved setting schedule_epochs: expected an integer in 1.."
                           f"{settings['epochs']}, got {length!r}")
    return length


def _check(settings) -> None:
    """Given options were range-checked by argparse, saved ones by ``train.schema``; the
    choices are checked here for both."""
    for key, choices in (("optimizer", OPTIMIZERS), ("scheduler", SCHEDULERS)):
        if settings[key] not in choices:
            raise UsageError(f"--{key} must be one of {', '.join(choices)}, got "
                             f"{settings[key]!r}")


def _transforms(dataset_name, shape, augment, normalize):
    from ..data import transforms as T
    height, width = shape[1:]
    norm = T.Normalize(normalize["mean"], normalize["std"])
    if not augment:
        return norm, norm
    if dataset_name in ("mnist", "digits"):    # digits are not mirror-symmetric: crops only
        steps = [T.RandomCrop((height, width), padding=2 if height >= 16 else 1)]
    else:                                      # clothes and photos: crops and mirror images
        steps = [T.RandomCrop((height, width), padding=max(1, height // 14)),
                 T.RandomHorizontalFlip()]
    return T.Compose(steps + [norm]), norm


def _build_optimizer(settings, params):
    from .. import optim
    name, lr, wd = settings["optimizer"], settings["lr"], settings["weight_decay"]
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=wd)
    return (optim.Adam if name == "adam" else optim.AdamW)(params, lr=lr, weight_decay=wd)


def _build_scheduler(settings, optimizer, steps_per_epoch):
    """The run's schedule over ``schedule_epochs(settings)`` epochs, holding its final lr after
    that (an extended resume, and the one step taken after the last batch)."""
    if settings["scheduler"] == "none":
        return None
    total_steps = schedule_epochs(settings) * steps_per_epoch
    scheduler = _schedule(settings, optimizer, total_steps)
    lrs_at = scheduler._lrs_at

    def held_lrs_at(step):
        # Past the end the lr (the value of the last step, total_steps - 1) stays: OneCycleLR
        # would extrapolate its cosine upwards and then refuse, StepLR would keep dividing.
        if step >= total_steps:
            return [group["lr"] for group in optimizer.param_groups]
        return lrs_at(step)
    scheduler._lrs_at = held_lrs_at  # on the instance: checkpoints still name the class
    return scheduler


def _schedule(settings, optimizer, total_steps):
    from ..optim import lr_scheduler
    name = settings["scheduler"]
    if name == "step":
        return lr_scheduler.StepLR(optimizer, step_size=max(1, -(-total_steps // 3)), gamma=0.1)
    if name == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    return lr_scheduler.OneCycleLR(optimizer, max_lr=settings["lr"], total_steps=total_steps)


def run(args) -> int:
    from .. import distributed
    try:
        comm = distributed.init()
    except (RuntimeError, ValueError) as err:
        raise CommandError(one_line(err)) from err
    with distributed.abort_on_error(comm, one_line):
        return _locked_run(args, comm)


def _locked_run(args, comm) -> int:
    """Resolve the settings, then train with the run directory locked (by the main rank,
    the one that writes it)."""
    from .. import models
    from ..train import CHECKPOINT_FILE, RunLockedError, load_checkpoint, run_lock
    from ..train.schema import check_train_settings

    saved, done = None, 0
    out = args.out
    if args.resume:
        if out is None:
            raise UsageError("--resume needs --out DIR, the run to continue")
        path = os.path.join(out, CHECKPOINT_FILE)
        if not os.path.isfile(path):
            raise CommandError(f"nothing to resume: {path} does not exist")
        try:
            checkpoint = load_checkpoint(path)
        except ValueError as err:
            raise CommandError(one_line(err)) from err
        saved, done = checkpoint.config.get("train"), checkpoint.epoch
        if saved is None:
            raise CommandError(f"{path}: not written by cnnkit train (its config has no "
                               "'train' settings); start a new run")
        try:
            check_train_settings(saved, path)
        except ValueError as err:
            raise CommandError(one_line(err)) from err
    settings = _resolve(args, saved)
    _check(settings)
    if saved is not None and settings["epochs"] < done:
        raise UsageError(f"--epochs {settings['epochs']}: the run being resumed has already "
                         f"done {count(done, 'epoch')}")
    # batch_size is per rank on the ranks the run started on (distributed/launch.py).
    settings.setdefault("world_size", comm.world_size if saved is None else 1)
    if settings["model"] not in models.names():
        raise UsageError(f"unknown model {settings['model']!r}; available: "
                         f"{', '.join(models.names())}")
    if not models.is_image_model(settings["model"]):
        raise UsageError(f"{settings['model']} takes 1-D signals; the command line trains image "
                         "models (use cnnkit.train.fit from Python for signals)")
    dataset_name = settings["dataset"]
    if out is None:
        dataset_label = os.path.basename(dataset_name.rstrip("/"))
        out = os.path.join("runs", f"{settings['model']}_{dataset_label}")
    with contextlib.ExitStack() as stack:
        lock = None
        if comm.is_main:
            try:
                lock = stack.enter_context(run_lock(out))
            except RunLockedError as err:
                raise CommandError(one_line(err)) from err
            except OSError as err:  # checked before any work: --out is not a writable directory
                raise UsageError(f"--out {out}: cannot write there ({err.strerror})") from err
        return _train(args, settings, out, lock, comm, done)


def _train(args, settings, out, lock, comm, done) -> int:
    """The run, in the directory ``out`` (locked by the main rank: ``lock``), ``done`` epochs
    of it already in its checkpoint."""
    import cnnkit

    from ..data import DataLoader, ShardedLoader
    from ..distributed.launch import (data_parallel_model, drop_final_batch, evaluation_shard,
                                      per_rank_batch)
    from ..train import CHECKPOINT_FILE, MODEL_FILE, fit
    from ..train.batch_losses import BatchLossLog

    if lock is not None and (lock.stale_pid is not None or lock.removed):
        who = f" (pid {lock.stale_pid})" if lock.stale_pid is not None else ""
        print(f"note: the last run in {out}{who} stopped abruptly; removed "
              f"{count(len(lock.removed), 'unfinished temporary file')}", flush=True)
    dataset_name = settings["dataset"]
    existing = os.path.exists(os.path.join(out, CHECKPOINT_FILE))
    if existing and not args.resume and not args.overwrite:
        raise CommandError(f"{out} already holds a run; pass --resume to continue it, "
                           "--overwrite to start again, or another --out")

    train_set, test_set = load_datasets(dataset_name, args.data_root, settings["image_size"],
                                        max_pixels=args.max_pixels,
                                        split_seed=settings["seed"])
    classes = dataset_classes(train_set)
    train_set = limited(train_set, settings["limit_train"], settings["seed"])
    test_set = limited(test_set, settings["limit_test"], settings["seed"])
    shape = sample_shape(train_set)
    if len(shape) != 3:
        raise CommandError(f"expected images of shape (C, H, W), the data set gives {shape}")
    mean, std = channel_stats(train_set, seed=settings["seed"])
    normalize = {"mean": mean, "std": std}
    train_transform, test_transform = _transforms(dataset_name, shape, settings["augment"],
                                                  normalize)
    world = comm.world_size
    # A final batch leaving a rank one image would make batch norm fail (no variance).
    try:
        batch_size = per_rank_batch(settings["batch_size"], settings["world_size"], world)
        drop_last = drop_final_batch(len(train_set), batch_size * world,
                                     settings["world_size"], world)
    except ValueError as err:
        raise UsageError(f"cannot train this run on {world} ranks: {err}") from err
    if world == 1:
        train_loader = DataLoader(train_set, batch_size, shuffle=True, drop_last=drop_last,
                                  seed=settings["seed"], transform=train_transform)
    else:
        train_loader = ShardedLoader(train_set, batch_size, shuffle=True, drop_last=drop_last,
                                     seed=settings["seed"], transform=train_transform,
                                     rank=comm.rank, world_size=world)
    test_loader = DataLoader(evaluation_shard(test_set, comm.rank, world), 500,
                             transform=test_transform)
    if len(train_loader) == 0:
        raise UsageError(f"--batch-size {batch_size} leaves no batch of {len(train_set)} images")

    cnnkit.manual_seed(settings["seed"])
    kwargs = {"in_channels": shape[0], "num_classes": len(classes),
              "input_size": list(shape[1:])}
    model = build_model(settings["model"], **kwargs)
    data_parallel = None
    if world > 1:
        model, data_parallel = data_parallel_model(
            model, comm, (len(train_set), len(test_set), *mean, *std), args.sync_bn)
    optimizer = _build_optimizer(settings, model.parameters())
    scheduler = _build_scheduler(settings, optimizer, len(train_loader))
    config = {"model": {"name": settings["model"], "kwargs": kwargs},
              "dataset": dataset_name, "input_shape": list(shape), "classes": classes,
              "normalize": normalize, "train": settings}

    what = "resuming" if args.resume else "training"
    if comm.is_main and scheduler is not None and settings["epochs"] > schedule_epochs(settings):
        print(f"note: the {settings['scheduler']} schedule lasts "
              f"{count(schedule_epochs(settings), 'epoch')}; epochs after it keep its final "
              f"learning rate{ONECYCLE_FINAL if settings['scheduler'] == 'onecycle' else ''}",
              flush=True)
    ranks = f" × {world} ranks" if world > 1 else ""
    if comm.is_main:
        print(f"{what} {settings['model']} on {dataset_name} ({len(train_set)} train / "
              f"{len(test_set)} test images of {'×'.join(map(str, shape))}, {len(classes)} "
              f"classes): {settings['optimizer']} lr {settings['lr']:g}, {settings['scheduler']} "
              f"schedule, batch {batch_size}{ranks}, {count(settings['epochs'], 'epoch')}, seed "
              f"{settings['seed']} -> {out}", flush=True)
    batch_losses = BatchLossLog(out, done)
    try:
        history = fit(model, train_loader, test_loader, optimizer, scheduler,
                      epochs=settings["epochs"], out_dir=out, config=config,
                      resume=args.resume, progress=args.progress,
                      log=lambda line: print(line, flush=True), data_parallel=data_parallel,
                      loss_fn=batch_losses.loss_fn,
                      callback=batch_losses.callback if comm.is_main else None)
    except KeyboardInterrupt:
        raise CommandError(f"interrupted; continue with: cnnkit train --out {out} --resume")
    except ValueError as err:  # e.g. a checkpoint that does not fit
        raise CommandError(one_line(err)) from err
    if not history:
        raise CommandError("no epoch was run")
    if not comm.is_main:
        return 0
    last = history[-1]
    seconds = last["elapsed_seconds"]  # training + evaluation, summed over resumed sessions
    print(f"model saved to {os.path.join(out, MODEL_FILE)}")
    print(f"test accuracy: {100 * last['test_accuracy']:.2f}% ({count(last['epoch'], 'epoch')}, "
          f"{seconds:.1f} s)")
    return 0
