"""Training: the ``fit`` loop, checkpoints (safetensors) and metrics."""
from .checkpoint import (
                         Checkpoint,
                         load_checkpoint,
                         load_model,
                         restore_training_state,
                         save_checkpoint,
                         save_model,
)
from .metrics import MetricsLog, RunningMean, accuracy, confusion_matrix, correct_count
from .run_lock import RunLockedError, run_lock
from .trainer import CHECKPOINT_FILE, MODEL_FILE, evaluate, fit, train_one_epoch

__all__ = [
                         "CHECKPOINT_FILE",
                         "MODEL_FILE",
                         "Checkpoint",
                         "MetricsLog",
                         "RunLockedError",
                         "RunningMean",
                         "accuracy",
                         "confusion_matrix",
                         "correct_count",
                         "evaluate",
                         "fit",
                         "load_checkpoint",
                         "load_model",
                         "restore_training_state",
                         "run_lock",
                         "save_checkpoint",
                         "save_model",
                         "train_one_epoch",
]
