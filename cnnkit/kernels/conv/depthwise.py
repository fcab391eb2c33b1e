"""Depthwise convolution (groups == input channels): a direct sum over kernel offsets.

Each input channel g feeds its own m = K / C output channels. A matrix product per channel
would be a 1×(k·k) by (k·k)×P product — far too thin for BLAS — so instead each of the k·k
kernel taps is one broadcast multiply-add over the whole batch:

    y[n, g·m + j, i] = Σ_a w[g·m + j, 0, a] · x[n, g, i·s + a·d]
"""
import numpy as np

from ..im2col import offset_views

_SPATIAL_LETTERS = "xyzuvw"


def _by_group(array, groups):
    """(N, G·m, *s) -> (N, G, m, *s): output channel g·m + j belongs to input channel g."""
    return array.reshape(array.shape[:1] + (groups, array.shape[1] // groups) + array.shape[2:])


def _tap(w, offset, groups, n_spatial):
    """Kernel tap ``w[:, 0, *offset]`` shaped (G, m, 1, ..., 1) to broadcast over positions."""
    return w[(slice(None), 0) + offset].reshape((groups, -1) + (1,) * n_spatial)


def forward(xp, w, stride, dilation, out):
    """xp (N, C, *spatial) padded, w (K, 1, *kernel) -> y (N, K, *out)."""
    n, groups, kernel = xp.shape[0], xp.shape[1], w.shape[2:]
    y = np.zeros((n, groups, w.shape[0] // groups) + tuple(out), dtype=np.result_type(xp, w))
    for offset, view in offset_views(xp, kernel, stride, dilation, out):
        y += _tap(w, offset, groups, len(out)) * view[:, :, None]
    return y.reshape((n, w.shape[0]) + tuple(out))


def backward_input(dy, w, spatial, stride, dilation, groups):
    """dL/dx: each tap sends w·dy back to the positions it read."""
    dy_g = _by_group(dy, groups)
    dxp = np.zeros((dy.shape[0], groups) + tuple(spatial), dtype=np.result_type(dy, w))
    out = dy.shape[2:]
    for offset, view in offset_views(dxp, w.shape[2:], stride, dilation, out):
        view += (_tap(w, offset, groups, len(out)) * dy_g).sum(axis=2)
    return dxp


def backward_weight(xp, dy, kernel, stride, dilation):
    """dL/dw[g·m + j, 0, a] = Σ_n Σ_i dy[n, g·m + j, i] · x[n, g, i·s + a·d]."""
    groups = xp.shape[1]
    out = dy.shape[2:]
    dy_g = _by_group(dy, groups)
    positions = _SPATIAL_LETTERS[:len(out)]
    dw = np.empty((dy.shape[1], 1) + tuple(kernel), dtype=np.result_type(xp, dy))
    for offset, view in offset_views(xp, kernel, stride, dilation, out):
        dw[(slice(None), 0) + offset] = np.einsum(
            f"ngj{positions},ng{positions}->gj", dy_g, view).reshape(-1)
    return dw
