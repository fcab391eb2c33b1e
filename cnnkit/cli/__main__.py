"""``python -m cnnkit.cli``."""
import sys

from . import main

sys.exit(main())
