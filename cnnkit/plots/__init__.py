"""Pictures of what a CNN does, drawn with matplotlib (Agg, off-screen), saved as PNG atomically.

    plot_filters(model_or_weight)         first-layer kernels as a grid
    plot_features(model, image)           feature maps, layer by layer
    plot_curves(read_metrics(run_dir))    loss and accuracy per epoch
    plot_confusion(matrix, class_names)   confusion matrix on a test set
    plot_receptive_field(model, shape)    how stacking layers widens what one output sees

Each takes objects and arrays (no files needed) and returns the matplotlib Figure; pass
``path=`` to also write a PNG. The command line: ``cnnkit plot filters|features|curves|
confusion|receptive-field``.
"""
from ._figure import save_figure
from .confusion import confusion_matrix, plot_confusion, predict_labels
from .curves import plot_curves, read_metrics
from .features import feature_maps, plot_features
from .filters import first_conv_weight, plot_filters
from .receptive_field import format_receptive_fields, plot_receptive_field, receptive_fields

__all__ = ["confusion_matrix", "feature_maps", "first_conv_weight", "format_receptive_fields",
           "plot_confusion", "plot_curves", "plot_features", "plot_filters",
           "plot_receptive_field", "predict_labels", "read_metrics", "receptive_fields",
           "save_figure"]
