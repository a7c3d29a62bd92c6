"""Gate for GPU tests: skip where no CUDA device exists, but fail loudly where one is visible and
the tests still cannot use it (torch missing, a CPU-only build of torch, a driver torch cannot use).
A skip there would hide a broken GPU image behind a green run."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import pytest


def cuda_visible() -> bool:
    """A CUDA device is visible to this process: the NVIDIA driver lists one and it is not hidden."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    return (gpus.is_dir() and any(gpus.iterdir())) or Path("/dev/nvidia0").exists()


def require_cuda_torch() -> ModuleType:
    """torch with a usable CUDA device; skips the module when none is visible, errors otherwise."""
    visible = cuda_visible()
    try:
        import torch
    except ImportError:
        if visible:
            pytest.fail("a CUDA device is visible but torch is not installed", pytrace=False)
        pytest.skip("needs torch and a CUDA device", allow_module_level=True)
    if torch.cuda.is_available():
        return torch
    if visible:
        build = (
            "a CPU-only build"
            if torch.version.cuda is None
            else f"built for CUDA {torch.version.cuda} but cannot use the device (driver mismatch?)"
        )
        pytest.fail(
            f"a CUDA device is visible but torch {torch.__version__} is {build}; install a CUDA build",
            pytrace=False,
        )
    pytest.skip("needs a CUDA device", allow_module_level=True)
