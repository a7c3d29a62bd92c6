"""Regenerate the comparison tables and the spike plot of docs/autoscaling.md.

Run from the repository root: ``python scripts/simulate_compare.py``. Each table is one
``python -m warmgate.autoscaling simulate ...`` invocation (``warmgate simulate ...`` once the
main CLI wires the command), printed with the command above it. Deterministic: same seed,
same numbers.
"""

from __future__ import annotations

import sys
from pathlib import Path

from warmgate.autoscaling.cli import main as autoscaling_main

ROOT = Path(__file__).resolve().parent.parent
AZURE = ROOT / "tests" / "fixtures" / "azure-llm-conv-2023.csv.gz"
LLM_REPLICA = [
    "--service-s", "4", "--concurrency", "16", "--queue-depth", "16", "--target", "2.5",
    "--latency-budget", "20", "--provision-s", "60", "--load-s", "45", "--warmup-s", "30",
]  # fmt: skip

RUNS = [
    ["simulate", "--trace", "spike", "--compare", "--plot", "docs/img/autoscaling-spike.png"],
    ["simulate", "--trace", "failure-storm", "--compare"],
    ["simulate", "--csv", str(AZURE), "--compare"],
    ["simulate", "--csv", str(AZURE), "--compare", *LLM_REPLICA],
]


def run() -> int:
    for argv in RUNS:
        shown = " ".join(a.replace(str(ROOT) + "/", "") for a in argv)
        print(f"\n$ python -m warmgate.autoscaling {shown}", flush=True)
        code = autoscaling_main(argv)
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(run())
