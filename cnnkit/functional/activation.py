"""Activation functions: relu, leaky_relu, elu, gelu, sigmoid, tanh, softmax, log_softmax.

Each takes ``input : Tensor of any shape`` and returns a Tensor of the same shape and dtype
(float32 stays float32). Each backward is the closed-form derivative, written beside the forward.
Where the derivative is undefined (relu at 0, NaN inputs) the choice copies PyTorch's, so that
PyTorch can serve as the oracle.
"""
import math
import warnings

import numpy as np

from .. import tuning
from ..kernels import erf_numba, softmax_numba, threads
from ..tensor import Tensor, as_tensor
from .half import computes_float16_in_float32

__all__ = ["relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "softmax", "log_softmax",
           "erf"]


@computes_float16_in_float32
def relu(input) -> Tensor:  # noqa: A002 - PyTorch's argument name
    """max(x, 0). d/dx = 1 where x > 0, else 0 (0 at x = 0; NaN passes the gradient, as PyTorch)."""
    x = as_tensor(input)
    if x.data.size >= tuning.value("compiled_min_size") and x.dtype.kind == "f":
        return _compiled_relu(x)
    out = np.maximum(x.data, 0)  # np.maximum propagates NaN, as torch.relu does
    # Backward reads the output, as PyTorch's threshold_backward does (out ≤ 0 ⟺ x ≤ 0, and a
    # NaN passes either way), so the input can be freed once the next layer has it.
    # A multiply by the mask is ~9× faster than np.where with a broadcast zero; but inf · 0 is
    # NaN, and PyTorch gives 0 where x <= 0 whatever the gradient, so non-finite ones go by where.
    def backward(g):
        passes = ~(out <= 0)
        if np.isfinite(g).all():
            return (g * passes,)
        return (np.where(passes, g, np.zeros((), g.dtype)),)
    return Tensor._make(out, (x,), backward, "relu")


def _compiled_relu(x):
    """``relu`` through ``kernels.relu_numba`` (same rule, one parallel pass each way)."""
    from ..kernels import relu_numba
    data = np.require(x.data, requirements="C")  # not ascontiguousarray: keeps 0-d
    out = np.empty_like(data)
    relu_numba.forward(data.reshape(-1), out.reshape(-1))

    def backward(g):
        g = np.ascontiguousarray(g, dtype=out.dtype)
        dx = np.empty_like(out)
        relu_numba.backward(out.reshape(-1), g.reshape(-1), dx.reshape(-1))
        return (dx,)
    return Tensor._make(out, (x,), backward, "relu")


def _compiled(x):
    """Whether an elementwise activation of x runs compiled: floats from
    ``compiled_min_size`` elements on (ReLU's crossover, which ``cnnkit tune`` measures)."""
    return x.data.size >= tuning.value("compiled_min_size") and x.dtype.kind == "f"


def leaky_relu(input, negative_slope: float = 0.01) -> Tensor:  # noqa: A002
    """x if x > 0 else negative_slope·x.  d/dx = 1 or negative_slope."""
    x = as_tensor(input)
    slope = float(negative_slope)
    if _compiled(x):
        return _compiled_leaky_relu(x, slope)
    out = np.where(x.data > 0, x.data, x.data * slope)
    return Tensor._make(out, (x,), lambda g: (np.where(x.data > 0, g, g * slope),), "leaky_relu")


def _compiled_leaky_relu(x, slope):
    """``leaky_relu`` by ``kernels.activation_numba``: the same rule, with no branch per
    element (``np.where``'s, which real activations make unpredictable)."""
    from ..kernels import activation_numba
    data = np.require(x.data, requirements="C")  # not ascontiguousarray: keeps 0-d
    slope = data.dtype.type(slope)  # the product in x's dtype, as NumPy's path and PyTorch's
    return _by_loops(x, data, "leaky_relu", activation_numba.leaky_forward,
                     activation_numba.leaky_backward, slope)


def _by_loops(x, data, name, forward, backward_pass, *parameters):
    """The op ``name`` of x by two compiled elementwise loops, ``forward(x, *parameters,
    out)`` and ``backward_pass(x, grad, *parameters, dx)``, on data (x's contiguous array)."""
    out = np.empty_like(data)
    forward(data.reshape(-1), *parameters, out.reshape(-1))

    def backward(g):
        g = np.ascontiguousarray(g, dtype=data.dtype)
        dx = np.empty_like(data)
        backward_pass(data.reshape(-1), g.reshape(-1), *parameters, dx.reshape(-1))
        return (dx,)
    return Tensor._make(out, (x,), backward, name)


def elu(input, alpha: float = 1.0) -> Tensor:  # noqa: A002
    """x if x > 0 else α(eˣ − 1).  d/dx = 1 or α·eˣ.  (expm1 keeps small negative x exact.)

    Both as sums whose other term is exactly zero, not ``np.where`` (which tests each element
    with a branch, unpredictable on activations: 15.3 ms against 1.6 for PyTorch's layer on
    32 × 64 × 32 × 32): max(x, 0) + α·expm1(min(x, 0)), and the slope is [x > 0 or NaN] +
    [x ≤ 0]·α·e^min(x, 0). Large arrays run a piece per thread (``threads.elementwise``),
    except float32 ones, which take one compiled pass each way in float64 (``_vector_float32``).
    """
    x = as_tensor(input)
    alpha = float(alpha)
    data = np.require(x.data, _float_dtype(x), "C")  # not ascontiguousarray: keeps 0-d
    if _vector_float32(data):
        return _compiled_elu(x, data, alpha)

    def forward(x, out):
        np.minimum(x, 0, out=out)
        np.expm1(out, out=out)
        out *= alpha
        out += np.maximum(x, 0)
    out = _in_pieces(forward, data)

    def backward(g):
        def slope_times_g(x, g, dx):
            below = x <= 0  # NaN is not, and passes its gradient, as PyTorch
            np.fmin(x, 0, out=dx)  # fmin: a NaN's term is then 0·α·1, not NaN
            np.exp(dx, out=dx)
            dx *= alpha
            dx *= below
            dx += ~below
            dx *= g
        return (_in_pieces(slope_times_g, data, np.require(g, data.dtype, "C")),)
    return Tensor._make(out, (x,), backward, "elu")


def _vector_float32(data):
    """Whether ELU, sigmoid, tanh's backward pass, softmax, log-softmax and the losses built
    on them (and the squared error) run compiled: float32 arrays from ``compiled_min_size``
    values on, by ``kernels.activation_numba``'s vector loops, in float64 but for sigmoid's
    forward pass, and by ``kernels.softmax_numba``'s and ``loss_numba``'s, in float32
    (float64 arrays keep NumPy's exp and expm1, exact to their last bits, which the loops'
    e^a, within 3 units, is not)."""
    return data.dtype == np.float32 and data.size >= tuning.value("compiled_min_size")


def _compiled_elu(x, data, alpha):
    """``elu`` by its two vector loops (``kernels.activation_numba``)."""
    from ..kernels import activation_numba
    return _by_loops(x, data, "elu", activation_numba.elu_vector_forward,
                     activation_numba.elu_vector_backward, alpha)


def _backward_from_output(kernel, out, g):
    """dx by ``kernels.activation_numba``'s ``kernel`` (``sigmoid_backward``,
    ``tanh_backward``) from the forward's float32 output: one pass."""
    from ..kernels import activation_numba
    dx = np.empty_like(out)
    getattr(activation_numba, kernel)(out.reshape(-1), np.require(g, out.dtype, "C").reshape(-1),
                                      dx.reshape(-1))
    return dx


def _in_pieces(passes, *operands):
    """A new array shaped as the operands (contiguous, of one shape), written by
    ``passes(*operands, out)``, which works elementwise: a piece per thread for large
    arrays (``threads.elementwise``)."""
    out = np.empty_like(operands[0])
    threads.elementwise(passes, *(a.reshape(-1) for a in operands), out.reshape(-1))
    return out


# -- erf without scipy: Cephes' rational approximations (ndtr.c), ~1e-15 relative in float64 --
# (the coefficients live with the compiled loop, ``kernels.erf_numba``)
def _polynomial(x, coefficients, monic=False):
    """Horner's rule; ``monic`` adds a leading coefficient 1 (Cephes' ``p1evl``)."""
    result = x + coefficients[0] if monic else np.full_like(x, coefficients[0])
    for c in coefficients[1:]:
        result = result * x + c
    return result


def _erfc_large(z):
    """erfc(z) for z >= 1 (float64): e^(−z²)·P(z)/Q(z), two fits split at z = 8."""
    beyond = z > erf_numba.ERFC_ZERO_BEYOND  # the value underflows to 0
    z = np.minimum(z, erf_numba.ERFC_ZERO_BEYOND)  # keeps inf (and overflow) out of the ratios
    near = _polynomial(z, erf_numba.ERFC_P) / _polynomial(z, erf_numba.ERFC_Q, monic=True)
    far = _polynomial(z, erf_numba.ERFC_R) / _polynomial(z, erf_numba.ERFC_S, monic=True)
    return np.where(beyond, 0.0, np.exp(-z * z) * np.where(z < 8, near, far))


def _erf_small(z):
    """erf(z) for |z| < 1 (float64): z·T(z²)/U(z²)."""
    z2 = z * z
    return z * _polynomial(z2, erf_numba.ERF_T) / _polynomial(z2, erf_numba.ERF_U, monic=True)


def _erfc(z):
    """erfc(z) = 1 − erf(z) for any float64 array, accurate in the tails (no 1 − 1 cancellation)."""
    magnitude = np.abs(z)
    large = _erfc_large(np.maximum(magnitude, 1.0))
    small = 1.0 - _erf_small(np.minimum(magnitude, 1.0) * np.sign(z))
    tail = np.where(z > 0, large, 2.0 - large)
    return np.where(magnitude < 1, small, tail)


def _float_dtype(x: Tensor):
    """The output dtype of a float function: the input's, or float32 for ints (as PyTorch)."""
    return x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)


def erf(input) -> Tensor:  # noqa: A002
    """The error function erf(x) = 2/√π ∫₀ˣ e^(−t²) dt;  d/dx = 2/√π · e^(−x²).

    ``input`` : Tensor of any shape; computed in float64, returned in the input's float dtype
    (float32 and float64 arrays from ``compiled_min_size`` values on by one compiled pass each
    way, ``kernels.erf_numba``).
    """
    x = as_tensor(input)
    if _compiled(x) and x.dtype in (np.float32, np.float64):
        return Tensor._make(erf_numba.erf(x.data), (x,),
                            lambda g: (erf_numba.erf_backward(x.data, g.astype(x.dtype, copy=False)),),
                            "erf")
    x64 = x.data.astype(np.float64)
    out = np.where(np.abs(x64) < 1, _erf_small(np.clip(x64, -1, 1)), 1.0 - _erfc(x64))

    def backward(g):
        return ((g * (2 / math.sqrt(math.pi)) * np.exp(-x64 * x64)).astype(x.dtype),)
    return Tensor._make(out.astype(_float_dtype(x)), (x,), backward, "erf")


def gelu(input, approximate: str = "none") -> Tensor:  # noqa: A002
    """x·Φ(x), Φ the standard normal CDF.

    ``approximate='none'``:  Φ(x) = ½·erfc(−x/√2);  d/dx = Φ(x) + x·φ(x),  φ(x) = e^(−x²/2)/√(2π).
    ``approximate='tanh'``:  ½x(1 + tanh u),  u = √(2/π)(x + 0.044715x³);
        d/dx = ½(1 + tanh u) + ½x(1 − tanh²u)·√(2/π)(1 + 3·0.044715x²).
    Computed in float64 and returned in the input's dtype, but for large float32 arrays of
    the exact form, computed in float32 within 7 units of the last place, the left tail
    included (``kernels.activation_numba``). At ±inf the limits are returned (gelu(inf) = inf,
    gelu(−inf) = 0, slopes 1 and 0) where PyTorch gives NaN.
    """
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    x = as_tensor(input)
    if _compiled(x):
        return _compiled_gelu(x, approximate == "tanh")
    x64 = x.data.astype(np.float64)
    # Beyond |x| = 40 both forms equal max(x, 0) to double precision and the correction terms
    # underflow to 0; clipping keeps 0·inf out of them.
    clipped = np.clip(x64, -40.0, 40.0)
    if approximate == "none":
        cdf = 0.5 * _erfc(-x64 / math.sqrt(2.0))

        def slope():
            pdf = np.exp(-0.5 * clipped * clipped) / math.sqrt(2 * math.pi)
            return cdf + clipped * pdf
    else:
        k = math.sqrt(2 / math.pi)
        t = np.tanh(k * (clipped + 0.044715 * clipped ** 3))
        cdf = 0.5 * (1 + t)

        def slope():
            du_dx = k * (1 + 3 * 0.044715 * clipped * clipped)
            return cdf + 0.5 * clipped * (1 - t * t) * du_dx
    infinite = np.isinf(x64)
    out = np.where(infinite, np.maximum(x64, 0), np.where(infinite, 0, x64) * cdf)

    def backward(g):
        return ((g * slope()).astype(x.dtype),)
    return Tensor._make(out.astype(_float_dtype(x)), (x,), backward, "gelu")


def _compiled_gelu(x, tanh_form):
    """``gelu`` by ``kernels.activation_numba``: float32 by vector loops (the exact form in
    float32, the tanh form in float64), float64 by libm's erfc and tanh per element (exact to
    its last bits)."""
    from ..kernels import activation_numba as loops
    data = np.require(x.data, requirements="C")  # not ascontiguousarray: keeps 0-d
    if data.dtype == np.float32:
        return _by_loops(x, data, "gelu", loops.gelu_vector_forward, loops.gelu_vector_backward,
                         tanh_form)
    return _by_loops(x, data, "gelu", loops.gelu_forward, loops.gelu_backward, tanh_form)


def sigmoid(input) -> Tensor:  # noqa: A002
    """σ(x) = 1/(1 + e^(−x)).  d/dx = σ(1 − σ).

    Large float32 arrays (``_vector_float32``) take one compiled pass each way
    (``kernels.activation_numba.sigmoid_vector_forward``, float32 arithmetic within 2 units of
    the last place, the left tail's subnormals included). Others take four NumPy passes, in
    place after the first, in the input's dtype: for x below about −88 (float32; −709 in
    float64) e^(−x) overflows to inf, and 1/inf is the limit, 0; large arrays a piece per
    thread (``threads.elementwise``). Picking between two forms with ``np.where`` cost a
    branch per element, unpredictable on activations (11.5 ms against 0.6 for PyTorch's
    layer on 32 × 64 × 32 × 32).
    """
    x = as_tensor(input)
    data = np.require(x.data, _float_dtype(x), "C")  # not ascontiguousarray: keeps 0-d

    def forward(x, out):
        np.negative(x, out=out)
        with np.errstate(over="ignore"):
            np.exp(out, out=out)
        out += 1
        np.reciprocal(out, out=out)
    if _vector_float32(data):
        from ..kernels import activation_numba
        out = np.empty_like(data)
        activation_numba.sigmoid_vector_forward(data.reshape(-1), out.reshape(-1))
    else:
        out = _in_pieces(forward, data)

    def backward(g):
        if _vector_float32(out):
            return (_backward_from_output("sigmoid_backward", out, g),)

        def slope_times_g(out, g, dx):
            np.subtract(1, out, out=dx)
            dx *= out
            dx *= g
        return (_in_pieces(slope_times_g, out, np.require(g, out.dtype, "C")),)
    return Tensor._make(out, (x,), backward, "sigmoid")


def tanh(input) -> Tensor:  # noqa: A002
    """tanh(x);  d/dx = 1 − tanh²(x). NumPy's tanh, a piece per thread when large
    (``threads.elementwise``); the backward of a large float32 array in one compiled pass
    (``_vector_float32``)."""
    x = as_tensor(input)
    data = np.require(x.data, _float_dtype(x), "C")  # not ascontiguousarray: keeps 0-d
    out = _in_pieces(lambda x, out: np.tanh(x, out=out), data)

    def backward(g):
        if _vector_float32(out):
            return (_backward_from_output("tanh_backward", out, g),)

        def slope_times_g(out, g, dx):
            np.multiply(out, out, out=dx)
            np.subtract(1, dx, out=dx)
            dx *= g
        return (_in_pieces(slope_times_g, out, np.require(g, out.dtype, "C")),)
    return Tensor._make(out, (x,), backward, "tanh")


def _softmax_dim(name, dim, ndim):
    """Check ``dim``; ``None`` picks PyTorch's legacy implicit dim (with its warning)."""
    if dim is None:
        warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the "
                      f"call to include dim=X as an argument.", stacklevel=3)
        dim = 0 if ndim in (0, 1, 3) else 1
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{name}: dim must be an int, got {type(dim).__name__}")
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise ValueError(f"{name}: dim {dim} is out of range for a tensor with {ndim} dims")
    return int(dim) % max(ndim, 1)


def softmax(input, dim=None) -> Tensor:  # noqa: A002
    """softmax(x)ᵢ = e^(xᵢ − m)/Σⱼ e^(xⱼ − m) along ``dim`` (m = max, so no overflow).

    Backward: dL/dx = s ⊙ (g − Σ(g ⊙ s)) along ``dim``.
    """
    x = as_tensor(input)
    axis = _softmax_dim("softmax", dim, x.ndim)
    if x.ndim == 0:
        return Tensor._make(np.ones_like(x.data), (x,), lambda g: (np.zeros_like(g),), "softmax")
    if _vector_float32(x.data):
        out = softmax_numba.softmax(x.data, axis)
        return Tensor._make(out, (x,), lambda g: (softmax_numba.softmax_backward(out, g, axis),),
                            "softmax")
    with np.errstate(invalid="ignore"):  # inf − inf = NaN, silently as in PyTorch
        shifted = x.data - x.data.max(axis=axis, keepdims=True)
        e = np.exp(shifted)
        out = e / e.sum(axis=axis, keepdims=True)

    def backward(g):
        return (out * (g - (g * out).sum(axis=axis, keepdims=True)),)
    return Tensor._make(out, (x,), backward, "softmax")


def log_softmax(input, dim=None) -> Tensor:  # noqa: A002
    """log softmax(x) = (x − m) − log Σ e^(x − m) along ``dim``.

    Backward: dL/dx = g − softmax(x)·Σ g along ``dim``.
    """
    x = as_tensor(input)
    axis = _softmax_dim("log_softmax", dim, x.ndim)
    if x.ndim == 0:
        return Tensor._make(np.zeros_like(x.data), (x,), lambda g: (np.zeros_like(g),),
                            "log_softmax")
    out = _log_softmax_array(x.data, axis)

    def backward(g):
        if _vector_float32(out):
            return (softmax_numba.softmax_backward(out, g, axis, log=True),)
        return (g - np.exp(out) * g.sum(axis=axis, keepdims=True),)
    return Tensor._make(out, (x,), backward, "log_softmax")


def _log_softmax_array(x: np.ndarray, axis: int) -> np.ndarray:
    """The forward of ``log_softmax`` on a plain array (shared with the losses)."""
    if _vector_float32(x):
        return softmax_numba.softmax(x, axis, log=True)
    with np.errstate(invalid="ignore", divide="ignore"):  # inf − inf = NaN, as in PyTorch
        shifted = x - x.max(axis=axis, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
