"""``python -m warmgate.warmup replay|record ...``: the warmup commands without the full CLI."""

from __future__ import annotations

import sys

from warmgate.warmup.cli import main

if __name__ == "__main__":
    sys.exit(main())
