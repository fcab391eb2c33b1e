"""``cnnkit.nn.functional`` *is* ``cnnkit.functional``: one module object under both names, so
``import cnnkit.nn.functional as F`` works as in PyTorch and there is one namespace to extend."""
import sys

from .. import functional as _functional

sys.modules[__name__] = _functional
