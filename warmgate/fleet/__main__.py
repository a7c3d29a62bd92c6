"""``python -m warmgate.fleet ARGS``: the same as ``warmgate fleet ARGS``."""

from __future__ import annotations

import sys

from warmgate.fleet.cli import main

if __name__ == "__main__":
    sys.exit(main())
