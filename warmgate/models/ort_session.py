"""Opening an ONNX Runtime session: providers chosen explicitly and verified after start,
intra-op threads that never spin (spinning steals the event loop's core, DESIGN §8), a CPU
memory arena policy, and an on-disk cache of the optimised graph.

* **Arena** (:class:`Arena`). ORT's CPU arena keeps the peak of the largest shape it ever ran:
  after warming a 16 × 256 bucket the MiniLM server held about 670 MB (DESIGN §8). ``shrink``
  keeps the arena but hands its free chunks back after every run
  (``memory.enable_memory_arena_shrinkage``); ``off`` allocates straight from malloc;
  ``same`` grows the arena only by what is asked (``arena_extend_strategy`` 1) instead of
  doubling. ``docs/benchmarks.md`` has what each costs (``scripts/bench_memory.py``).
* **Graph cache** (:class:`GraphCache`). The first start writes the optimised graph
  (``session.optimized_model_filepath``, its weights beside it as external data) under a key
  of the model's SHA-256 (graph and ``model.onnx.data``), the ORT version,
  the providers, the optimisation level and the CPU architecture; a later start with the same
  key loads that graph with optimisation off. A changed model has another key, so a stale graph
  is never used. Off unless a directory is configured: for MiniLM on CPU the optimisation takes
  about 0.04 s of a 0.25 s session open and hashing the 90 MB model 0.07 s, so the cache only
  pays for graphs whose optimisation is slow (``scripts/bench_memory.py cache``).

Both ONNX backends (any ``model.onnx``, and the text encoder) open their sessions here.
onnxruntime is imported inside the functions, so the torch path never needs it.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import os
import platform
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warmgate.config import Arena, Device
from warmgate.errors import ModelLoadError
from warmgate.models.malloc import return_freed_memory

log = logging.getLogger("warmgate.models.ort")

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
# onnxruntime's own exception classes (they derive from Exception only).
_ORT_ERRORS = (
    "Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoSuchFile", "NoModel",
    "NotImplemented", "RuntimeException", "EPFail",
)  # fmt: skip


class OptLevel(enum.Enum):
    DISABLE = "disable"
    BASIC = "basic"
    EXTENDED = "extended"
    ALL = "all"


@dataclass(frozen=True)
class OrtSettings:
    """How sessions are opened. ``threads`` 0: one intra-op thread per core."""

    threads: int = 0
    arena: Arena = Arena.SHRINK
    opt_level: OptLevel = OptLevel.ALL
    cache_dir: Path | None = None  # graph cache; None: no cache
    spinning: bool = False  # intra-op threads busy-wait between work (ORT's default; not ours)
    prepacking: bool = True  # False: session.disable_prepacking (no pre-packed weight copies)
    # session.set_denormal_as_zero: FTZ/DAZ on the threads ORT runs on, including the one that
    # opens the session (it stays set there). Serve turns it on (config); off by default here.
    denormal_as_zero: bool = False
    # Runs of the one session at once, each on its own calling thread with ``threads`` intra-op
    # threads (Triton's instance count, sharing the weights); CPU only, 1 on CUDA.
    instances: int = 1


def graph_cache_dir(setting: str) -> Path | None:
    """The configured graph cache directory; ``""`` or ``off``: no cache (the default: for
    MiniLM on CPU, hashing the model costs more than the optimisation it saves)."""
    if setting.strip().lower() in ("", "off"):
        return None
    return Path(setting).expanduser()


def cpu_count() -> int:
    """Cores this process may run on (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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


class Session:
    """An ``InferenceSession`` with the run options its arena policy needs, and what it knows
    about where its graph came from (``graph_cache``: ``hit``, ``miss`` or ``off``)."""

    def __init__(
        self, session: Any, run_options: Any, graph_cache: str, settings: OrtSettings = OrtSettings()
    ) -> None:
        self.inner = session
        self._run_options = run_options
        self.graph_cache = graph_cache
        self._instances = max(1, settings.instances)

    @property
    def instances(self) -> int:
        """How many ``run`` calls may go at once: the configured instances on the CPU provider
        (``run`` is thread-safe there), 1 on CUDA (one stream, and CUDA graphs replay one at a time)."""
        return self._instances if self.get_providers()[0] == CPU else 1

    def run(self, names: Sequence[str], feed: dict[str, Any]) -> list[Any]:
        result: list[Any] = self.inner.run(list(names), feed, self._run_options)
        return result

    def get_inputs(self) -> Any:
        return self.inner.get_inputs()

    def get_outputs(self) -> Any:
        return self.inner.get_outputs()

    def get_providers(self) -> list[str]:
        return list(self.inner.get_providers())


class GraphCache:
    """Optimised graphs on disk, one file per (model bytes, ORT version, providers, level, arch)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @staticmethod
    def key(model: Path, ort_version: str, providers: Sequence[str], level: OptLevel) -> str:
        """Covers the graph and its weights in ``<model>.data`` (the external data file
        ``warmgate export-onnx`` writes), so new weights under an unchanged graph miss."""
        digest = hashlib.sha256()
        for part in (model, model.with_name(f"{model.name}.data")):
            if part == model or part.is_file():
                with part.open("rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        digest.update(block)
        facts = "|".join([ort_version, ",".join(providers), level.value, platform.machine()])
        digest.update(facts.encode())
        return digest.hexdigest()[:32]

    def path_for(self, model: Path, key: str) -> Path:
        return self.directory / f"{model.stem}-{key}.onnx"

    def writable_tmp(self, final: Path) -> Path | None:
        """A temporary directory beside ``final`` for ORT to write the graph and its weights
        into, or None (with a warning) when the cache directory cannot be written: a read-only
        image still serves, uncached."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=self.directory))
        except OSError as exc:
            log.warning("graph cache %s is not writable (%s); optimising without it", self.directory, exc)
            return None

    @staticmethod
    def publish(staged: Path, final: Path) -> None:
        """Move a written entry into place: its weights file first, the graph last (atomic
        renames: another replica never reads a half-written entry)."""
        weights = staged.with_name(weights_name(final))
        if weights.is_file():
            weights.replace(final.with_name(weights.name))
        staged.replace(final)


def weights_name(graph: Path) -> str:
    """The weights file beside a cached graph: ORT writes the optimised graph's initializers
    there (external data, memory-mapped again on a hit) instead of into the graph. Without it
    ORT would point the cached graph at the model's own ``model.onnx.data`` by a path relative
    to the cache, which a hit cannot find."""
    return f"{graph.name}.data"


def open_session(path: Path, device: Device | str, settings: OrtSettings | int = OrtSettings()) -> Session:
    """A session over ``path`` whose first provider is the one asked for. An ``int`` for
    ``settings`` is the intra-op thread count with every other setting at its default."""
    import onnxruntime as ort

    if isinstance(settings, int):
        settings = OrtSettings(threads=settings)
    if not path.is_file():
        raise ModelLoadError(f"{path} does not exist")
    providers = choose_providers(device, ort.get_available_providers())
    if settings.arena in (Arena.SHRINK, Arena.OFF):
        return_freed_memory()  # else what the arena hands back stays in malloc's heaps
    options = _session_options(ort, settings)
    source, graph_cache, tmp, final = path, "off", None, None
    if settings.cache_dir is not None and settings.opt_level is not OptLevel.DISABLE:
        cache = GraphCache(settings.cache_dir)
        final = cache.path_for(path, GraphCache.key(path, ort.__version__, providers, settings.opt_level))
        if final.is_file():
            source, graph_cache = final, "hit"
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        else:
            tmp = cache.writable_tmp(final)
            if tmp is not None:
                options.optimized_model_filepath = str(tmp / final.name)
                options.add_session_config_entry(
                    "session.optimized_model_external_initializers_file_name", weights_name(final)
                )
                options.add_session_config_entry(
                    "session.optimized_model_external_initializers_min_size_in_bytes", "1024"
                )
                graph_cache = "miss"
    errors = tuple(getattr(ort.capi.onnxruntime_pybind11_state, n) for n in _ORT_ERRORS)
    try:
        session = ort.InferenceSession(str(source), sess_options=options, providers=providers)
    except (*errors, RuntimeError, ValueError, OSError) as exc:
        raise ModelLoadError(f"onnxruntime cannot load {source}: {exc}") from exc
    finally:
        if tmp is not None and final is not None:
            staged = tmp / final.name
            if staged.is_file() and staged.stat().st_size:
                GraphCache.publish(staged, final)
            shutil.rmtree(tmp, ignore_errors=True)
    if graph_cache != "off":
        log.info("%s: optimised graph cache %s (%s)", path.name, graph_cache, final)
    active = list(session.get_providers())
    if not active or active[0] != providers[0]:
        raise ModelLoadError(f"{path}: asked onnxruntime for {providers[0]} but the session runs on {active}")
    if active[0] == CUDA:
        log.info(
            "%s: onnxruntime CUDA graphs are not enabled: they need fixed input shapes and pre-bound "
            "buffers, and this model's axes are dynamic",
            path.name,
        )
    return Session(session, _run_options(ort, settings), graph_cache, settings)


def _session_options(ort: Any, settings: OrtSettings) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.threads or cpu_count()
    options.inter_op_num_threads = 1
    spin = "1" if settings.spinning else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", spin)
    options.add_session_config_entry("session.inter_op.allow_spinning", spin)
    levels = {
        OptLevel.DISABLE: ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        OptLevel.BASIC: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        OptLevel.EXTENDED: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        OptLevel.ALL: ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    options.graph_optimization_level = levels[settings.opt_level]
    if not settings.prepacking:
        options.add_session_config_entry("session.disable_prepacking", "1")
    if settings.denormal_as_zero:
        # Masked attention over padding underflows to denormals, which x86 handles in microcode:
        # a padded 8 x 256 batch of MiniLM ran 1.34x its unpadded time, 1.17x with this.
        options.add_session_config_entry("session.set_denormal_as_zero", "1")
    if settings.arena is Arena.OFF:
        options.enable_cpu_mem_arena = False
    elif settings.arena is Arena.SAME:
        # The CPU provider takes an arena config only through a process-wide allocator that the
        # session opts into. max_mem 0 (no limit), strategy 1 = kSameAsRequested, defaults else.
        info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, 1, -1, -1))
        options.add_session_config_entry("session.use_env_allocators", "1")
    return options


def _run_options(ort: Any, settings: OrtSettings) -> Any:
    run_options = ort.RunOptions()
    if settings.arena is Arena.SHRINK:
        run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return run_options
