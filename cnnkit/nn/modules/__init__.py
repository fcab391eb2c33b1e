"""The layers: one family per file, each a thin owner of parameters around cnnkit.functional."""
from . import activation, conv, dropout, flatten, linear, loss, normalization, pooling
from .activation import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .dropout import *  # noqa: F401,F403
from .flatten import *  # noqa: F401,F403
from .linear import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403

__all__ = [name for family in (activation, conv, dropout, flatten, linear, loss, normalization,
                               pooling) for name in family.__all__]
