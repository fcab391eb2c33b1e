"""The confusion matrix: how often images of each true class get each predicted class.

m[t, p] = number of test images of class t predicted as p; the diagonal holds the correct ones.
"""
import numpy as np

from ..tensor import Tensor, no_grad
from ..train.metrics import confusion_matrix
from ._figure import finish, new_figure

__all__ = ["confusion_matrix", "plot_confusion", "predict_labels"]


def predict_labels(model, images, batch_size: int = 256) -> np.ndarray:
    """Predicted classes, (N,) int64: argmax of ``model``'s scores for images (N, C, H, W).

    Runs in batches, in eval mode (the model's mode is restored afterwards)."""
    images = np.asarray(images)
    if images.ndim < 3 or images.dtype.kind != "f":
        raise ValueError(f"images: expected a float array (N, C, ...), got {images.dtype} "
                         f"{images.shape}")
    weight = next(iter(model.parameters()), None)
    dtype = weight.dtype if weight is not None else images.dtype
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            predictions = [model(Tensor(images[start:start + batch_size].astype(dtype)))
                           .data.argmax(axis=1) for start in range(0, len(images), batch_size)]
    finally:
        model.train(was_training)
    return np.concatenate(predictions).astype(np.int64) if predictions else np.zeros(0, np.int64)


def plot_confusion(matrix, class_names=None, path=None, normalize: bool = False,
                   title: str = "confusion matrix"):
    """Heat map of ``matrix`` (classes, classes) with counts (or row fractions) in the cells.

    Rows are true classes, columns predicted ones; the title states the accuracy
    (trace / total). Returns the Figure (and writes a PNG if ``path`` is given).
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"matrix: expected a square (classes, classes) array, got {matrix.shape}")
    n = matrix.shape[0]
    names = [str(i) for i in range(n)] if class_names is None else [str(c) for c in class_names]
    if len(names) != n:
        raise ValueError(f"class_names: expected {n} names, got {len(names)}")
    total = matrix.sum()
    accuracy = np.trace(matrix) / total if total else float("nan")
    shown = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1) if normalize else matrix
    size = max(4.0, 0.55 * n + 2)
    figure = new_figure(size + 1, size)
    ax = figure.subplots()
    image = ax.imshow(shown, cmap="Blues")
    figure.colorbar(image, ax=ax, shrink=0.8)
    ax.set_xticks(range(n), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title} — accuracy {100 * accuracy:.2f}% of {int(total)}")
    if n <= 20:
        threshold = shown.max() / 2 if shown.size else 0
        for (i, j), v in np.ndenumerate(shown):
            ax.text(j, i, f"{v:.2f}" if normalize else f"{int(v)}", ha="center", va="center",
                    fontsize=7, color="white" if v > threshold else "black")
    return finish(figure, path)
