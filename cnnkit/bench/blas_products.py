"""A layer's three matrix products run by NumPy's BLAS, operands laid out beforehand: the rate an
im2col library would reach if im2col, col2im and every layout were free. The bench's "BLAS %
of peak" column (BENCHMARKS.md, "Against the targets"): a per-layer ceiling beside the square
sgemm's, since a thin product (pw1x1's 64 × 256 weights) runs well below a square one.

Per group (G groups, K' = K/G outputs, T = C/G · prod(kernel) terms, P = N · prod(out)):

    forward         W (K', T)  @ cols (T, P)  -> y (K', P)
    input gradient  Wᵀ (T, K') @ dy (K', P)   -> cols of dx (T, P), before col2im
    weight gradient dy (K', P) @ colsᵀ (P, T) -> dw (K', T)

each K′·T·P multiply-adds, 2·K′·T·P FLOPs: as many as the layer's pass.
"""
import numpy as np


class LayerProducts:
    """The operands and results of one layer's three products, G groups stacked."""

    def __init__(self, groups, out_per_group, terms, positions, seed=0):
        rng = np.random.default_rng(seed)

        def operand(*shape):
            return rng.standard_normal((groups,) + shape, dtype=np.float32)
        self.w, self.w_t = operand(out_per_group, terms), operand(terms, out_per_group)
        self.cols, self.cols_t = operand(terms, positions), operand(positions, terms)
        self.dy = operand(out_per_group, positions)
        self.y, self.dcols = np.empty_like(self.dy), np.empty_like(self.cols)
        self.dw = np.empty((groups, out_per_group, terms), np.float32)

    def forward(self):
        np.matmul(self.w, self.cols, out=self.y)

    def all_three(self):
        self.forward()
        np.matmul(self.w_t, self.dy, out=self.dcols)
        np.matmul(self.dy, self.cols_t, out=self.dw)
