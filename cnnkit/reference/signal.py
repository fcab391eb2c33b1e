"""True convolution and cross-correlation of two N-d arrays, as ``scipy.signal``.

    true convolution   (f * g)[i] = Σ_u f[u] · g[i − u]        (g is flipped, then slid)
    cross-correlation  (f ⋆ g)[t] = Σ_v f[v + t − (m − 1)] · conj(g[v])   (g slid, not flipped)

so f ⋆ g = f * flip(conj(g)). CNN layers compute the correlation; the input-gradient formula
(docs/concepts.md §13) is a true convolution (of dL/dz with the kernel). Both sums run over all
indices where both factors exist, giving the 'full' result of length n + m − 1 per axis
(n = len f, m = len g);
the other modes cut a piece out of it, like scipy:

* ``'full'``:  all n + m − 1 positions.
* ``'valid'``: only positions where one array lies entirely inside the other: |n − m| + 1 per
  axis. One array must be at least as large as the other along *every* axis.
* ``'same'``:  the centred n positions (the shape of the first input). The crop starts at
  ``(m − 1) // 2``, so for an even kernel the extra cell is taken on the right.
"""
import numpy as np

from ._args import positions

MODES = ("full", "valid", "same")


def _check(x, k, mode):
    for name, a in (("x", x), ("k", k)):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name}: expected a numpy ndarray, got {type(a).__name__}")
    if x.ndim != k.ndim:
        raise ValueError(f"k: expected as many dims as x ({x.ndim}), got {k.ndim}")
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    if mode == "valid" and not (all(n >= m for n, m in zip(x.shape, k.shape))
                                or all(n <= m for n, m in zip(x.shape, k.shape))):
        raise ValueError(f"mode: 'valid' needs one input at least as large as the other in "
                         f"every dimension, got shapes {x.shape} and {k.shape}")


def _centred(full, shape):
    """The centred block of ``full`` with the given shape (scipy's ``_centered``)."""
    start = [(f - s) // 2 for f, s in zip(full.shape, shape)]
    return full[tuple(slice(a, a + s) for a, s in zip(start, shape))]


def _crop(full, x_shape, k_shape, mode):
    if mode == "full":
        return full
    if mode == "same":
        return _centred(full, x_shape)
    return _centred(full, tuple(abs(n - m) + 1 for n, m in zip(x_shape, k_shape)))


def true_convolve(x, k, mode="full"):
    """``(x * k)[i] = Σ_u x[u] · k[i − u]``, as ``scipy.signal.convolve(x, k, mode)``.

    Parameters
    ----------
    x : ndarray of shape (n_1, ..., n_D)
    k : ndarray of shape (m_1, ..., m_D)
    mode : {'full', 'valid', 'same'}  (module docstring)

    Returns
    -------
    y : ndarray of shape (n + m − 1) for 'full', (|n − m| + 1) for 'valid', x.shape for 'same'
    """
    _check(x, k, mode)
    full_shape = tuple(n + m - 1 for n, m in zip(x.shape, k.shape))
    full = np.zeros(full_shape, dtype=np.result_type(x, k))
    for i in positions(full_shape):
        total = 0
        for u in positions(x.shape):
            v = tuple(i_j - u_j for i_j, u_j in zip(i, u))  # the flipped, shifted kernel index
            if all(0 <= v_j < m for v_j, m in zip(v, k.shape)):
                total += x[u] * k[v]
        full[i] = total
    return _crop(full, x.shape, k.shape, mode)


def correlate(x, k, mode="full"):
    """``(x ⋆ k)[t] = Σ_v x[v + t − (m − 1)] · conj(k[v])``, as ``scipy.signal.correlate``.

    ``t − (m − 1)`` is the lag: at t = 0 only the last kernel cell overlaps x[0]; at
    t = m − 1 the kernel starts at x[0], which is the first output a CNN layer computes.

    Parameters
    ----------
    x : ndarray of shape (n_1, ..., n_D)
    k : ndarray of shape (m_1, ..., m_D)
    mode : {'full', 'valid', 'same'}

    Returns
    -------
    y : ndarray, shapes as in :func:`true_convolve`
    """
    _check(x, k, mode)
    full_shape = tuple(n + m - 1 for n, m in zip(x.shape, k.shape))
    full = np.zeros(full_shape, dtype=np.result_type(x, k))
    k_conj = np.conj(k) if np.iscomplexobj(k) else k  # (kept symbolic for object arrays)
    for t in positions(full_shape):
        total = 0
        for v in positions(k.shape):
            u = tuple(v_j + t_j - (m - 1) for v_j, t_j, m in zip(v, t, k.shape))
            if all(0 <= u_j < n for u_j, n in zip(u, x.shape)):
                total += x[u] * k_conj[v]
        full[t] = total
    return _crop(full, x.shape, k.shape, mode)
