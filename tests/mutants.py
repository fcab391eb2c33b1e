"""Deliberately broken kernels, for the tests that show a comparison can fail."""


def negate_weight_gradient(monkeypatch):
    """Make ``cnnkit.functional.conv``'s weight gradient come out with the wrong sign."""
    import cnnkit.functional.conv as conv_module
    original = conv_module.conv_backward_weight

    def negated(*args, **kwargs):
        result = original(*args, **kwargs)  # dw, or (dw, db) when the bias is wanted too
        return (-result[0], result[1]) if isinstance(result, tuple) else -result
    monkeypatch.setattr(conv_module, "conv_backward_weight", negated)
