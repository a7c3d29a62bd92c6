"""``python -m warmgate.autoscaling simulate|render ...``."""

from __future__ import annotations

import sys

from warmgate.autoscaling.cli import main

if __name__ == "__main__":
    sys.exit(main())
