"""Argument checks shared by the model builders."""
import numbers


def check_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return int(value)


def image_size(value) -> tuple:
    """``input_size`` as (H, W): an int means a square image."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"input_size: expected an int or (height, width), got {value!r}")
    return check_int(value[0], "input_size[0]"), check_int(value[1], "input_size[1]")


def check_widths(widths, name: str = "widths") -> tuple:
    if isinstance(widths, numbers.Integral) or not hasattr(widths, "__len__") or not widths:
        raise ValueError(f"{name}: expected a non-empty sequence of channel counts, got {widths!r}")
    return tuple(check_int(w, f"{name}[{i}]") for i, w in enumerate(widths))
