"""``python -m cnnkit``: the command line (see ``cnnkit.cli``)."""
import sys

from .cli import main

sys.exit(main())
