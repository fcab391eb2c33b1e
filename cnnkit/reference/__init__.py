"""Reference implementations: the formulas of docs/concepts.md as plain loops on ndarrays.

These are written to be *read*, and to serve as the test oracle for the fast kernels on small
shapes: every output cell is computed by an explicit loop over its indices, with the formula in
the docstring. They are slow on purpose; never call them on a library path.

Layout is PyTorch's: batch first, then channels, then 1, 2 or 3 (or more) spatial dims,
``x : (N, C, *spatial)``; conv weights ``(K, C / groups, *kernel_size)``.

================================  ======================================================
``conv_output_size``              floor((n + 2p − d(k−1) − 1) / s) + 1
``conv_forward``/``conv2d_forward`` z[n,k,i] = b[k] + Σ_c Σ_a w[k,c,a] · x[n,c,i·s + a·d]
``conv_backward_input``           (1) dL/dx[c,t] = Σ_k Σ_a dL/dz[k,(t − a·d)/s] · w[k,c,a]
``conv_backward_weight``          (2) dL/dw[k,c,a] = Σ_n Σ_i dL/dz[n,k,i] · x[n,c,i·s + a·d]
``conv_backward_bias``            dL/db[k] = Σ_n Σ_i dL/dz[n,k,i]
``conv_transpose_forward``        y[i·s + a·d − p] += x[i] · w[a]   (the scatter of (1))
``true_convolve``/``correlate``   scipy.signal semantics, modes 'full', 'valid', 'same'
``pad_input``                     zeros / reflect / replicate / circular
``max_pool``/``avg_pool``         torch semantics incl. ceil_mode and count_include_pad
``adaptive_*_pool``               windows [floor(i·n/m), ceil((i+1)·n/m))
================================  ======================================================
"""
from .adaptive_pooling import (
                               adaptive_avg_pool,
                               adaptive_avg_pool_backward,
                               adaptive_max_pool,
                               adaptive_window,
)
from .conv import conv2d_forward, conv_forward, conv_output_size
from .conv_backward import conv_backward_bias, conv_backward_input, conv_backward_weight
from .conv_transpose import conv_transpose_forward, conv_transpose_output_size
from .padding import pad_input
from .pooling import avg_pool, avg_pool_backward, max_pool, max_pool_backward, pool_output_size
from .signal import correlate, true_convolve

__all__ = [
    "adaptive_avg_pool", "adaptive_avg_pool_backward", "adaptive_max_pool", "adaptive_window",
    "avg_pool", "avg_pool_backward", "conv2d_forward", "conv_backward_bias",
    "conv_backward_input", "conv_backward_weight", "conv_forward", "conv_output_size",
    "conv_transpose_forward", "conv_transpose_output_size", "correlate", "max_pool",
    "max_pool_backward", "pad_input", "pool_output_size", "true_convolve",
]
