"""The shape of one convolution call, computed once and handed to every decision and pass."""
import dataclasses
import functools
import math

import numpy as np


def output_spatial(spatial, kernel, stride, dilation):
    """out = floor((padded_in − d·(k−1) − 1)/s) + 1 per dim (padding is already applied)."""
    return tuple((n - d * (k - 1) - 1) // s + 1
                 for n, k, s, d in zip(spatial, kernel, stride, dilation))


@dataclasses.dataclass(frozen=True)
class ConvGeometry:
    """A convolution y (N, K, *out) = x (N, C, *padded) ⋆ w (K, C/G, *kernel).

    ``padded`` is the padded input's spatial shape; ``pads`` ((lo, hi) per dim, or None) the
    zero padding inside it whose gradient is not wanted. They are left out of equality and
    hashing: the autotune table keys by the geometry alone (one padding's measurement stands
    for the others of the same padded shape), while the heuristic, some of whose rules read
    the padding (a stride-1 input gradient leaves it out of dx), keeps its answers per
    ``pad_widths`` too (``registry.heuristic``).
    """
    batch: int
    in_channels: int
    out_channels: int
    groups: int
    kernel: tuple
    stride: tuple
    dilation: tuple
    padded: tuple
    out: tuple
    dtype: np.dtype
    pads: tuple = dataclasses.field(default=None, compare=False)

    @classmethod
    def of(cls, x_shape, w_shape, stride, dilation, groups=1, dtype=np.float32, pads=None,
           out=None):
        """From the padded input's shape (N, C, *padded) and the weight's (K, C/G, *kernel);
        ``out`` defaults to the forward output's spatial shape. Geometries are immutable, so
        one is made per distinct set of arguments and handed out again (building it cost a
        small layer's call 5 µs per pass)."""
        key = (cls, tuple(x_shape), tuple(w_shape), tuple(stride), tuple(dilation), groups,
               dtype, pads, None if out is None else tuple(out))
        try:
            return _shared(*key)
        except TypeError:  # an unhashable argument (pads as lists): built each time
            return _build(*key)

    @property
    def pad_widths(self):
        """The zero padding as (lo, hi) per spatial dim: ``pads``, or zeros when the input
        came padded already."""
        return self.pads or ((0, 0),) * len(self.kernel)

    def per_group(self):
        """The convolution of one group: C/G input and K/G output channels, groups 1 (made
        once per geometry)."""
        one = self.__dict__.get("_one_group")
        if one is None:
            one = dataclasses.replace(self, in_channels=self.in_channels // self.groups,
                                      out_channels=self.out_channels // self.groups, groups=1)
            object.__setattr__(self, "_one_group", one)
        return one

    @property
    def taps(self):
        """prod(kernel): multiply-adds per output and input channel."""
        return math.prod(self.kernel)

    @property
    def unit_stride(self):
        return all(s == 1 for s in self.stride)

    @property
    def unit_dilation(self):
        return all(d == 1 for d in self.dilation)

    @property
    def is_float32(self):
        return self.dtype == np.float32

    def stride_one(self, pass_name):
        """What every stride-1-only algorithm needs: images, stride 1 and, for the gradients,
        the exact stride-1 geometry (``exact``)."""
        return self.batch > 0 and self.unit_stride and (pass_name == "forward" or self.exact)

    @property
    def exact(self):
        """The stride-1 geometry holds exactly: every padded input cell is reached by an output
        (a transposed conv's output padding may leave unreached trailing cells) and the output
        is not empty. The stride-1-only algorithms' backward passes need it."""
        ones = (1,) * len(self.kernel)
        return output_spatial(self.padded, self.kernel, ones, self.dilation) == self.out and \
            math.prod(self.out) > 0


def _build(cls, x_shape, w_shape, stride, dilation, groups, dtype, pads, out):
    _check(x_shape, w_shape, stride, dilation, groups, pads, out)
    kernel = tuple(int(k) for k in w_shape[2:])
    stride, dilation = tuple(int(s) for s in stride), tuple(int(d) for d in dilation)
    padded = tuple(int(n) for n in x_shape[2:])
    out = output_spatial(padded, kernel, stride, dilation) if out is None else out
    return cls(batch=int(x_shape[0]), in_channels=int(x_shape[1]),
               out_channels=int(w_shape[0]), groups=int(groups), kernel=kernel,
               stride=stride, dilation=dilation, padded=padded,
               out=tuple(int(o) for o in out), dtype=np.dtype(dtype),
               pads=None if pads is None else tuple(tuple(p) for p in pads))


def _check(x_shape, w_shape, stride, dilation, groups, pads, out):
    """ValueError, naming the argument, unless the shapes make one convolution: the compiled
    kernels index memory by these numbers and check nothing themselves. Run once per distinct
    geometry (``_shared`` keeps the ones that pass)."""
    dims = len(x_shape) - 2
    if dims < 1:
        raise ValueError(f"x must be (N, C, *spatial) with at least one spatial dim, got shape "
                         f"{tuple(x_shape)}")
    if len(w_shape) != dims + 2:
        raise ValueError(f"w must be {dims + 2}-D (K, C/groups, *kernel) like x, got shape "
                         f"{tuple(w_shape)}")
    if not _positive_ints([groups]):
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    channels, (k, per_group) = x_shape[1], w_shape[:2]
    if channels != per_group * groups or k % groups:
        raise ValueError(f"w {tuple(w_shape)} does not fit x's {channels} channels in "
                         f"{groups} group(s): w.shape[1] must be C/groups and groups divide K")
    for name, values in (("stride", stride), ("dilation", dilation)):
        if len(values) != dims or not _positive_ints(values):
            raise ValueError(f"{name} must be {dims} positive ints, got {tuple(values)!r}")
    if pads is not None and (len(pads) != dims or not all(
            len(pair) == 2 and _positive_ints([pair[0] + 1, pair[1] + 1]) for pair in pads)):
        raise ValueError(f"pads must be {dims} (lo, hi) pairs of ints ≥ 0, got {pads!r}")
    formula = output_spatial(x_shape[2:], w_shape[2:], stride, dilation)
    if min(x_shape) < 0 or min(w_shape) < 0 or min(formula) < 0:
        raise ValueError(f"the kernel {tuple(w_shape[2:])} at dilation {tuple(dilation)} is "
                         f"larger than the padded input {tuple(x_shape[2:])}")
    if out is not None and (len(out) != dims or not all(0 <= o <= f for o, f in zip(out, formula))):
        # fewer outputs than the formula's: a transposed convolution's output padding leaves
        # trailing input cells that no output reaches (``exact``)
        raise ValueError(f"dy's spatial shape {tuple(out)} does not fit a padded input "
                         f"{tuple(x_shape[2:])}: it may have at most floor((padded − d·(k−1) − "
                         f"1)/s) + 1 = {formula} positions per dim")


def _positive_ints(values):
    return all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
               for v in values)


_shared = functools.lru_cache(maxsize=4096)(_build)
