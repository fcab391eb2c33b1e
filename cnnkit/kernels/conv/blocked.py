"""Narrow groups in dense blocks: a grouped layer whose groups have fewer output channels than
one vector has lanes, run on the implicit GEMM as G/q products of q groups each, with the q
groups' kernels on the diagonal of one block of weights and zeros off it:

    W_b = diag(w_{bq}, w_{bq+1}, ..., w_{bq+q-1})      (q·K/G outputs, q·C/G input channels)

(q = ``implicit.lane_groups``: as many groups as one vector holds the outputs of). Each product
computes q times the multiply-adds the groups need, but on every lane of the tile, where a
group's own product idles all but K/G of them (a quarter of AVX-512's for ResNeXt's groups of
4 channels), and one launch replaces q. The zeros off the diagonal meet the other groups'
values, so x (forward) and dy (input gradient) must be finite (``registry.NEEDS_FINITE``). The
weight gradient keeps only the diagonal blocks, which are exact whatever the data: the
implicit GEMM computes it that way itself.

It wins the input gradient at stride 2 and above, where the implicit GEMM runs each narrow
group's phases apart (2 threads, 128 → 128 channels, 3 × 3 at stride 2 on 16 28 × 28 maps,
per group against blocked, before any finiteness check: AVX-512, 32 groups of 4, 5.01 against
2.97 ms, 16 groups of 8 5.01 against 3.04; AVX2, 32 groups, 4.96 against 3.44). Its forward
pass gained less than the check of x costs (one pass over it): 32 groups 2.15 against 1.52 ms
before the check, 2.19 against 2.12 with it, and 16 groups 1.80 against 2.19, so the implicit
GEMM keeps the forward pass, but for 3-D depthwise layers (``wins``). At stride 1 the planar
kernel runs all the groups in one launch already and the two take the same time (AVX-512,
input gradient 3.47 against 3.49 ms).
"""
import dataclasses

import numpy as np

from . import depthwise, implicit


def applies(geometry, pass_name):
    """float32 groups that share a block (``implicit.lane_groups`` > 1), where the implicit
    GEMM applies to the blocks; the forward pass and input gradient only."""
    g = geometry
    return pass_name != "weight" and g.is_float32 and g.groups > 1 and \
        implicit.lane_groups(g) > 1 and implicit.applies(blocks(g), pass_name)


def wins(geometry, pass_name):
    """Strided input gradients (see the module docstring), but not of depthwise layers, whose
    blocks would hold one nonzero in q: ``depthwise`` computes only their terms, strided or
    not (2 threads, 96 channels of 56 × 56 at stride 2, 3 × 3, 16 images: 1.8–2.1 ms against
    5.2–5.9 on AVX-512), except where its sums would be NumPy's (``depthwise.sums_on_numpy``:
    3-D layers), whose forward and input passes the blocks take unless the FFT would
    (``implicit.fft_beats``) or ``lanes``, asked first, does (``lanes.wins``). The blocks then
    hold one nonzero in q, and still ran 4.4–17 times as fast as NumPy's sums (3 × 3 × 3 to
    7 × 7 × 7 kernels, AVX-512 and AVX2)."""
    g = geometry
    if depthwise.sums_on_numpy(g):
        return not implicit.fft_beats(g, pass_name)
    return pass_name == "input" and not g.unit_stride and g.in_channels != g.groups


def blocks(g):
    """The geometry of the blocked layer: G/q groups of q·C/G input and q·K/G output channels."""
    return dataclasses.replace(g, groups=g.groups // implicit.lane_groups(g))


def block_weights(w, g):
    """w (K, C/G, *kernel) -> (K, q·C/G, *kernel): group j's kernel in columns
    (j mod q)·C/G on of its own rows, zeros elsewhere."""
    together = implicit.lane_groups(g)
    k_group, c_group = g.out_channels // g.groups, w.shape[1]
    blocked = np.zeros((w.shape[0], together * c_group) + w.shape[2:], w.dtype)
    for j in range(g.groups):
        rows, first = slice(j * k_group, (j + 1) * k_group), j % together * c_group
        blocked[rows, first:first + c_group] = w[rows]
    return blocked


def forward_from(source, w, g, bias=None):
    return implicit.forward_from(source, block_weights(w, g), blocks(g), bias)


def forward_pass(xp, w, g):
    return implicit.forward_pass(xp, block_weights(w, g), blocks(g))


def input_pass(dy, w, g):
    # dy finite: the dispatcher checked it for the blocks' zeros (``registry.NEEDS_FINITE``)
    return implicit.input_pass(dy, block_weights(w, g), blocks(g), dy_finite=True)
