"""Replay a trace against a real local fleet and through the simulator; print both.

``python scripts/fleet_replay.py --model-dir DIR --body BODY.npy [--trace spike]``; see
``warmgate/fleet/replay.py`` and docs/autoscaling.md.
"""

from __future__ import annotations

import sys

from warmgate.fleet.replay import main

if __name__ == "__main__":
    sys.exit(main())
