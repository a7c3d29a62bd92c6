"""``python -m warmgate`` is ``warmgate``."""

import sys

from warmgate.cli import main

sys.exit(main())
