"""Argument helpers shared by the layers: PyTorch's ``_single/_pair/_triple`` and checks."""
import numbers

__all__ = ["ntuple", "check_positive_int"]


def ntuple(value, n: int, name: str, minimum: int = 0) -> tuple:
    """``3`` -> ``(3,)*n``; a sequence of ``n`` ints -> tuple; anything else -> ValueError."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,) * n
    if len(items) != n or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                  for v in items):
        raise ValueError(f"{name} must be an int or a sequence of {n} ints, got {value!r}")
    if any(v < minimum for v in items):
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return tuple(int(v) for v in items)


def check_positive_int(value, name: str) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be a positive int, got {value!r}")  # torch: TypeError too
    if value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)
