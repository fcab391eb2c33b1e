"""The global random generator that weight initialisation and dropout draw from.

``cnnkit.manual_seed(0)`` makes every later ``Conv2d(...)`` initialisation and dropout mask
reproducible, as ``torch.manual_seed`` does. (The *values* differ from PyTorch's: NumPy's PCG64 is
not PyTorch's Mersenne Twister. Tests that compare with PyTorch copy the weights across.)

``default_generator`` is one ``numpy.random.Generator`` object for the life of the process;
``manual_seed`` reseeds it in place, so code that grabbed a reference keeps working.
"""
import numpy as np

__all__ = ["default_generator", "manual_seed", "seed", "initial_seed", "get_rng_state",
           "set_rng_state", "resolve_generator"]

default_generator = np.random.Generator(np.random.PCG64())
_initial_seed = None


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the global generator with the non-negative integer ``seed``; returns it."""
    global _initial_seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative int, got {seed!r}")
    default_generator.bit_generator.state = np.random.PCG64(int(seed)).state
    _initial_seed = int(seed)
    return default_generator


def seed() -> int:
    """Reseed the global generator from OS entropy; returns the seed used."""
    new_seed = int(np.random.SeedSequence().entropy % (2 ** 63))
    manual_seed(new_seed)
    return new_seed


def initial_seed():
    """The seed last given to ``manual_seed``/``seed`` (None if the generator was never seeded)."""
    return _initial_seed


def get_rng_state() -> dict:
    """A snapshot of the global generator's state (a plain dict; restore with ``set_rng_state``)."""
    return default_generator.bit_generator.state


def set_rng_state(state: dict) -> None:
    default_generator.bit_generator.state = state


def resolve_generator(generator=None) -> np.random.Generator:
    """``None`` -> the global generator; an int -> a fresh generator seeded with it; a Generator
    -> itself. Lets functions take an optional ``generator``/``rng`` argument."""
    if generator is None:
        return default_generator
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        return np.random.default_rng(int(generator))
    raise TypeError(f"generator: expected None, an int seed or a numpy.random.Generator, "
                    f"got {type(generator).__name__}")
