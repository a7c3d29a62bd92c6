"""Opening an ONNX Runtime session: providers chosen explicitly and verified after start,
intra-op threads that never spin (spinning steals the event loop's core, DESIGN §8).

Both ONNX backends (any ``model.onnx``, and the text encoder) open their sessions here.
onnxruntime is imported inside the functions, so the torch path never needs it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from warmgate.config import Device
from warmgate.errors import ModelLoadError

log = logging.getLogger("warmgate.models.ort")

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
# onnxruntime's own exception classes (they derive from Exception only).
_ORT_ERRORS = (
    "Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoSuchFile", "NoModel",
    "NotImplemented", "RuntimeException", "EPFail",
)  # fmt: skip


def choose_providers(device: Device | str, available: Sequence[str]) -> list[str]:
    """CUDA first when wanted and present, CPU always last; ``cuda`` without the CUDA provider
    is a :class:`ModelLoadError`."""
    wanted = Device(device.value if isinstance(device, Device) else device)
    if wanted is Device.CUDA and CUDA not in available:
        raise ModelLoadError(
            f"device 'cuda' was requested but onnxruntime offers only {', '.join(available)}; "
            "install onnxruntime-gpu"
        )
    if wanted in (Device.CUDA, Device.AUTO) and CUDA in available:
        return [CUDA, CPU]
    return [CPU]


def open_session(path: Path, device: Device | str, threads: int) -> Any:
    """An ``InferenceSession`` over ``path`` whose first provider is the one asked for."""
    import onnxruntime as ort

    if not path.is_file():
        raise ModelLoadError(f"{path} does not exist")
    providers = choose_providers(device, ort.get_available_providers())
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    errors = tuple(getattr(ort.capi.onnxruntime_pybind11_state, n) for n in _ORT_ERRORS)
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except (*errors, RuntimeError, ValueError, OSError) as exc:
        raise ModelLoadError(f"onnxruntime cannot load {path}: {exc}") from exc
    active = list(session.get_providers())
    if not active or active[0] != providers[0]:
        raise ModelLoadError(f"{path}: asked onnxruntime for {providers[0]} but the session runs on {active}")
    if active[0] == CUDA:
        log.info(
            "%s: onnxruntime CUDA graphs are not enabled: they need fixed input shapes and pre-bound "
            "buffers, and this model's axes are dynamic",
            path.name,
        )
    return session
