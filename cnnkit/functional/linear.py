"""The affine map y = x Wᵀ + b (``torch.nn.functional.linear``), one op with its own backward."""
import numpy as np

from ..tensor import Tensor, as_tensor

__all__ = ["linear"]


def linear(input, weight, bias=None) -> Tensor:  # noqa: A002 - PyTorch's argument name
    """y = x Wᵀ + b.

    Parameters
    ----------
    input : Tensor of shape (..., in_features)
    weight : Tensor of shape (out_features, in_features)
    bias : Tensor of shape (out_features,) or None

    Returns
    -------
    Tensor of shape (..., out_features)

    Backward, with the leading dims flattened into rows (X: (M, in), G: (M, out)):
    dL/dX = G W,  dL/dW = Gᵀ X,  dL/db = Σ_rows G.
    """
    x, w = as_tensor(input), as_tensor(weight)
    if w.ndim != 2:
        raise ValueError(f"linear: weight must have shape (out_features, in_features), "
                         f"got shape {w.shape}")
    if x.ndim < 1 or x.shape[-1] != w.shape[1]:
        raise ValueError(f"linear: input must have shape (..., {w.shape[1]}) to match weight "
                         f"{w.shape}, got shape {x.shape}")
    b = None if bias is None else as_tensor(bias)
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(f"linear: bias must have shape ({w.shape[0]},), got shape {b.shape}")

    out = x.data @ w.data.T
    if b is not None:
        out = out + b.data

    def backward(g):
        rows_g = g.reshape(-1, w.shape[0])
        # astype: with mixed dtypes each gradient still matches its own parameter's dtype.
        dx = (g @ w.data).astype(x.dtype, copy=False) if x.requires_grad else None
        dw = (rows_g.T @ x.data.reshape(-1, w.shape[1])).astype(w.dtype, copy=False) \
            if w.requires_grad else None
        db = rows_g.sum(axis=0).astype(b.dtype, copy=False) \
            if b is not None and b.requires_grad else None
        return (dx, dw, db) if b is not None else (dx, dw)
    parents = (x, w, b) if b is not None else (x, w)
    return Tensor._make(np.asarray(out), parents, backward, "linear")
