"""Convolution explained in numbers: each idea of docs/concepts.md, printed and checked.

    conv_steps     one layer's output, product by product (the CS231n figure)   explain_conv
    backprop       gradients of a 1-D convolution are convolutions               explain_backprop
    params         fully connected vs convolution: weights, connections, sharing explain_params
    conv_matrix    a convolution is a (doubly block Toeplitz) matrix             explain_matrix

Every explanation recomputes its numbers with cnnkit's own ops and marks the check ✓ / ✗.
The command line prints them: ``cnnkit explain conv|backprop|params|matrix``.
"""
from .backprop import backprop_1d, explain_backprop, input_gradient_terms
from .conv_matrix import conv_matrix, explain_matrix, toeplitz_blocks
from .conv_steps import conv_steps, explain_conv, make_example, output_size_formula
from .params import compare_params, explain_params, parse_shape, tap_usage

__all__ = ["backprop_1d", "compare_params", "conv_matrix", "conv_steps", "explain_backprop",
           "explain_conv", "explain_matrix", "explain_params", "input_gradient_terms",
           "make_example", "output_size_formula", "parse_shape", "tap_usage", "toeplitz_blocks"]
