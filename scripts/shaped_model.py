"""A text model directory with another's architecture and tokenizer and random weights.

    python scripts/shaped_model.py SOURCE_DIR OUT_DIR [--seed N]

SOURCE_DIR holds ``config.json`` and the tokenizer (its weights are not read, and may be
absent); OUT_DIR gets every file of it but the weights, and a ``model.safetensors`` of random
tensors of the shapes ``config.json`` names. For speed measurements on a machine that cannot
fetch the weights (the GPU machine reaches no registry): time depends on the shapes, not the
values. Not for accuracy.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.unit.models.bert_dirs import random_weights  # noqa: E402
from warmgate.models.text.bert_config import BertConfig  # noqa: E402

WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.onnx", "model.onnx.data")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    shutil.copytree(args.source, args.out, ignore=shutil.ignore_patterns(*WEIGHTS), dirs_exist_ok=True)
    weights = random_weights(BertConfig.from_file(args.source / "config.json"), args.seed)
    save_file({k: v.contiguous() for k, v in weights.items()}, str(args.out / "model.safetensors"))
    print(f"{args.out}: {sum(v.numel() for v in weights.values()):,} random parameters")


if __name__ == "__main__":
    main()
