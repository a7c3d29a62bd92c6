"""One frozen configuration object, built from (highest first): command-line flags, environment
(``SAGEMAKER_*``, ``WARMGATE_*``), the model directory's ``warmgate.toml``, defaults.

Every option is declared once in :data:`OPTIONS`; the CLI's ``--help``, the environment lookup and
the TOML lookup are all derived from that table.
"""

from __future__ import annotations

import argparse
import enum
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from warmgate.errors import ConfigError
from warmgate.models.buckets import BucketPlan, powers_of_two

DEFAULT_MODEL_DIR = Path("/opt/ml/model")


class Backend(enum.Enum):
    AUTO = "auto"
    ONNX = "onnx"
    TORCH = "torch"


class Device(enum.Enum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class Arena(enum.Enum):
    """ONNX Runtime's CPU memory arena (see ``warmgate.models.ort_session``)."""

    DEFAULT = "default"  # ORT's own: an arena that doubles and keeps its peak
    SAME = "same"  # grow by what is asked (kSameAsRequested), keep the peak
    SHRINK = "shrink"  # arena, its free chunks handed back after every run
    OFF = "off"  # no CPU arena: malloc per run


class Oversize(enum.Enum):
    """What happens to a request larger than every bucket."""

    EAGER = "eager"  # run it unpadded, count it
    REJECT = "reject"  # 413


class LogFormat(enum.Enum):
    TEXT = "text"
    JSON = "json"


@dataclass(frozen=True)
class Config:
    model_dir: Path = DEFAULT_MODEL_DIR
    model_uri: str = ""
    model_name: str = ""
    host: str = "0.0.0.0"
    port: int = 8080
    backend: Backend = Backend.AUTO
    device: Device = Device.AUTO
    program: str = "inference.py"
    timeout_s: float = 60.0
    max_payload_mb: float = 6.0
    max_batch: int = 32
    batch_sizes: tuple[int, ...] = ()
    seq_lens: tuple[int, ...] = ()
    batch_delay_ms: float = 2.0
    batch_regroup: bool = True
    max_queue: int = 256
    oversize: Oversize = Oversize.EAGER
    drain_delay_s: float = 5.0
    warmup: bool = True
    warmup_set: str = ""
    warmup_timeout_s: float = 600.0
    warmup_max_runs: int = 8
    warmup_tolerance: float = 0.10
    exit_on_failure: bool = False
    watchdog_s: float = 30.0
    stall_fail_s: float = 600.0
    degrade_after: int = 3
    canary_interval_s: float = 1.0
    keep_warm_s: float = 30.0
    keep_warm_at_ready: bool = True
    threads: int = 0
    instances: int = 0
    inference_niceness: int = 19
    inference_idle: bool = False
    inference_slice_us: int = 100
    gc_freeze: bool = True
    ort_arena: Arena = Arena.SHRINK
    ort_prepacking: bool = True
    ort_denormal_as_zero: bool = True
    graph_cache: str = ""
    record_shapes: bool = False
    log_format: LogFormat = LogFormat.TEXT
    fetch_default: bool = True

    @property
    def max_payload_bytes(self) -> int:
        return int(self.max_payload_mb * 1024 * 1024)

    def bucket_plan(self, default_seq_lens: tuple[int, ...] = ()) -> BucketPlan:
        """Batch buckets (explicit, else powers of two up to ``max_batch``) × sequence buckets."""
        batch = self.batch_sizes or powers_of_two(self.max_batch)
        return BucketPlan(batch, self.seq_lens or default_seq_lens)

    @property
    def inference_threads(self) -> int:
        """Intra-op threads: as configured, else one per core. They never spin and run at the
        inference thread's lower priority (the session is created on that thread, and a thread
        inherits its creator's nice level), so the event loop still runs first. Measured on 2
        cores (``scripts/bench_ab.py``, docs/benchmarks.md): with the default max batch of 32,
        every core served 0.77x raw with /ping p99 2.1 ms, where cores - 1 served 0.55x."""
        return self.threads or max(1, os.cpu_count() or 1)

    @property
    def ort_instances(self) -> int:
        """ONNX Runtime on CPU: batches run at once on one session, as configured, else two where
        there are two cores or more. Measured on 2 cores (docs/benchmarks.md, "Model
        instances"): two one-thread instances served 0.88-0.92 x raw one-session throughput at
        32 clients where one two-thread instance served 0.79-0.83 x, 0.68-0.72 x at 8 clients
        against 0.61-0.62 x, with p50 at half saturation 29 ms against 34-35 ms; the price is
        /ping p99 at saturation about 1 ms higher."""
        return self.instances or min(2, max(1, os.cpu_count() or 1))

    @property
    def ort_threads(self) -> int:
        """Intra-op threads of each ONNX Runtime instance: as configured, else the cores shared
        out between the instances."""
        return self.threads or max(1, (os.cpu_count() or 1) // self.ort_instances)


@dataclass(frozen=True)
class Option:
    """One configuration field: where it is read from and how it is documented."""

    field: str
    env: tuple[str, ...]
    toml: str  # "section.key" in warmgate.toml, "" when not settable there
    help: str


OPTIONS: tuple[Option, ...] = (
    Option(
        "model_dir",
        ("WARMGATE_MODEL_DIR", "SM_MODEL_DIR"),
        "",
        "model directory (model.onnx, model.safetensors + config.json, or code/inference.py); "
        "when it does not exist the built-in default model (all-MiniLM-L6-v2) is fetched",
    ),
    Option(
        "model_uri",
        ("WARMGATE_MODEL_URI",),
        "",
        "where to fetch the model from during LOADING, instead of the model directory: "
        "s3://BUCKET/KEY/model.tar.gz (needs warmgate[s3]), file:// or a path to a model.tar.gz "
        "(unpacked under $WARMGATE_CACHE) or to a directory",
    ),
    Option(
        "model_name",
        ("WARMGATE_MODEL_NAME",),
        "model.name",
        "name used by /v2/models/{name} (default: the model directory's name)",
    ),
    Option("host", ("WARMGATE_HOST",), "", "address to bind"),
    Option("port", ("SAGEMAKER_BIND_TO_PORT", "WARMGATE_PORT"), "", "port to bind"),
    Option(
        "backend",
        ("WARMGATE_BACKEND",),
        "model.backend",
        "auto (ONNX when model.onnx is present, else torch), onnx or torch",
    ),
    Option("device", ("WARMGATE_DEVICE",), "model.device", "auto, cpu or cuda"),
    Option("program", ("SAGEMAKER_PROGRAM",), "", "user handler file inside code/"),
    Option(
        "timeout_s",
        ("SAGEMAKER_MODEL_SERVER_TIMEOUT", "WARMGATE_TIMEOUT"),
        "limits.timeout_s",
        "seconds a request may take before it gets 504",
    ),
    Option(
        "max_payload_mb",
        ("SAGEMAKER_MAX_PAYLOAD_IN_MB",),
        "limits.max_payload_mb",
        "largest request body in MiB (413 beyond)",
    ),
    Option(
        "max_batch",
        ("WARMGATE_MAX_BATCH",),
        "batching.max_batch",
        "largest batch (rows) the batcher forms and the largest batch bucket",
    ),
    Option(
        "batch_sizes",
        ("WARMGATE_BATCH_SIZES",),
        "buckets.batch_sizes",
        "batch buckets, comma-separated (default: powers of two up to max_batch)",
    ),
    Option(
        "seq_lens",
        ("WARMGATE_SEQ_LENS",),
        "buckets.seq_lens",
        "sequence-length buckets for text models, comma-separated (default 16,32,64,128,256)",
    ),
    Option(
        "batch_delay_ms",
        ("WARMGATE_BATCH_DELAY_MS",),
        "batching.max_delay_ms",
        "longest a request waits for others to share its batch",
    ),
    Option(
        "batch_regroup",
        ("WARMGATE_BATCH_REGROUP",),
        "batching.regroup",
        "right after a batch, a queue holding fewer rows waits up to a quarter of that "
        "run (at most 20 ms) for batch-mates, so a saturated backend runs full batches",
    ),
    Option(
        "max_queue",
        ("WARMGATE_MAX_QUEUE",),
        "limits.max_queue",
        "requests admitted at once (queued + running); beyond it 503 + Retry-After",
    ),
    Option(
        "oversize",
        ("WARMGATE_OVERSIZE",),
        "buckets.oversize",
        "a request larger than every bucket: eager (run unpadded, counted) or reject (413)",
    ),
    Option(
        "drain_delay_s",
        ("WARMGATE_DRAIN_DELAY",),
        "lifecycle.drain_delay_s",
        "after SIGTERM, seconds to keep serving with /ping at 503 before closing the listener",
    ),
    Option("warmup", ("WARMGATE_WARMUP",), "warmup.enabled", "run the warmup before READY"),
    Option(
        "warmup_set",
        ("WARMGATE_WARMUP_SET",),
        "warmup.set",
        "prompt set (.jsonl) to drive during warmup, in addition to the model dir's warmup/*.jsonl",
    ),
    Option(
        "warmup_timeout_s",
        ("WARMGATE_WARMUP_TIMEOUT",),
        "warmup.timeout_s",
        "warmup deadline in seconds; past it the replica is FAILED",
    ),
    Option(
        "warmup_max_runs",
        ("WARMGATE_WARMUP_MAX_RUNS",),
        "warmup.max_runs",
        "most runs of one shape while waiting for its latency to converge",
    ),
    Option(
        "warmup_tolerance",
        ("WARMGATE_WARMUP_TOLERANCE",),
        "warmup.tolerance",
        "a shape has settled when its last two runs agree within this fraction, or its latest run "
        "lands within it of the latency predicted from the shapes already warmed",
    ),
    Option(
        "exit_on_failure",
        ("WARMGATE_EXIT_ON_FAILURE",),
        "lifecycle.exit_on_failure",
        "exit non-zero when load or warmup fails (so the orchestrator restarts the replica)",
    ),
    Option(
        "watchdog_s",
        ("WARMGATE_WATCHDOG_S",),
        "lifecycle.watchdog_s",
        "/ping turns 503 (DEGRADED) while one inference call has run longer than this",
    ),
    Option(
        "stall_fail_s",
        ("WARMGATE_STALL_FAIL_S",),
        "lifecycle.stall_fail_s",
        "one inference call running this long is beyond recovery: FAILED, /livez 503",
    ),
    Option(
        "degrade_after",
        ("WARMGATE_DEGRADE_AFTER",),
        "lifecycle.degrade_after",
        "this many batches in a row failing with a server-side error make /ping 503 (DEGRADED)",
    ),
    Option(
        "canary_interval_s",
        ("WARMGATE_CANARY_INTERVAL_S",),
        "lifecycle.canary_interval_s",
        "while DEGRADED by failures, seconds between canary batches that test for recovery",
    ),
    Option(
        "keep_warm_s",
        ("WARMGATE_KEEP_WARM_S",),
        "lifecycle.keep_warm_s",
        "from READY until the first request, or at most this many seconds, run the last warmup "
        "request every 5 ms so the model's memory stays in CPU caches a shared host evicts within "
        "milliseconds of idleness (the first request then runs at steady speed); 0: off",
    ),
    Option(
        "keep_warm_at_ready",
        ("WARMGATE_KEEP_WARM_AT_READY",),
        "lifecycle.keep_warm_at_ready",
        "start the keep-warm at READY; off for a replica that takes no traffic until a controller "
        "re-arms it (POST /warmgate/keep-warm), as `warmgate fleet` does for its standbys",
    ),
    Option(
        "threads",
        ("WARMGATE_THREADS",),
        "model.threads",
        "intra-op threads for the backend (0: one per core; ONNX Runtime on CPU: of each "
        "instance, 0: the cores shared out between them)",
    ),
    Option(
        "instances",
        ("WARMGATE_INSTANCES",),
        "model.instances",
        "ONNX Runtime on CPU: batches run at once on one session, each on its own inference "
        "thread with `threads` intra-op threads (by default the cores shared out between them); "
        '0: 2 where there are 2 cores or more (docs/benchmarks.md, "Model instances")',
    ),
    Option(
        "inference_niceness",
        ("WARMGATE_INFERENCE_NICENESS",),
        "model.niceness",
        "how much lower the inference thread's (and the backend's intra-op threads') CPU "
        "priority is than the event loop's, as a nice increment 0-19 (Linux)",
    ),
    Option(
        "inference_idle",
        ("WARMGATE_INFERENCE_IDLE",),
        "model.inference_idle",
        "run the inference thread (and the backend's intra-op threads) in the SCHED_IDLE class "
        "instead of niced: any other runnable thread, the event loop first, preempts it at once (Linux)",
    ),
    Option(
        "inference_slice_us",
        ("WARMGATE_INFERENCE_SLICE_US",),
        "model.inference_slice_us",
        "the CPU time slice of the inference threads (and the backend's intra-op threads) in "
        "microseconds (Linux 6.12+, 100-100000): the shorter it is, the sooner the event loop "
        "preempts them when a request or /ping arrives; 0 keeps the kernel's default",
    ),
    Option(
        "gc_freeze",
        ("WARMGATE_GC_FREEZE",),
        "lifecycle.gc_freeze",
        "at READY, collect once and freeze what start-up left (gc.freeze), so the garbage "
        "collector's full passes under load stop walking it (20-40 ms event-loop pauses)",
    ),
    Option(
        "ort_arena",
        ("WARMGATE_ORT_ARENA",),
        "model.ort_arena",
        "ONNX Runtime CPU arena: shrink (free chunks returned after each run), off, same, default",
    ),
    Option(
        "ort_prepacking",
        ("WARMGATE_ORT_PREPACKING",),
        "model.ort_prepacking",
        "let ONNX Runtime keep pre-packed copies of constant weights for its kernels "
        "(off: session.disable_prepacking, about 30 MB less for MiniLM)",
    ),
    Option(
        "ort_denormal_as_zero",
        ("WARMGATE_ORT_DENORMAL_AS_ZERO",),
        "model.ort_denormal_as_zero",
        "ONNX Runtime's threads flush denormal floats to zero (session.set_denormal_as_zero): "
        "padded rows' masked attention underflows into denormals, which x86 computes slowly",
    ),
    Option(
        "graph_cache",
        ("WARMGATE_GRAPH_CACHE",),
        "model.graph_cache",
        "directory to cache ONNX Runtime's optimised graphs in, keyed by model hash, ORT version "
        "and providers (empty: no cache)",
    ),
    Option(
        "record_shapes",
        ("WARMGATE_RECORD",),
        "warmup.record",
        "sample request shapes (never content) for `warmgate record`",
    ),
    Option("log_format", ("WARMGATE_LOG_FORMAT",), "", "text or json"),
    Option(
        "fetch_default",
        ("WARMGATE_FETCH_DEFAULT",),
        "",
        "fetch the default model when the model directory does not exist",
    ),
)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _field_types() -> dict[str, Any]:
    defaults = Config()
    return {f.name: type(getattr(defaults, f.name)) for f in fields(Config)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per option, named after its field (``--max-batch``), each defaulting to None so an
    unset flag falls through to the environment and ``warmgate.toml``."""
    defaults = Config()
    types = _field_types()
    for opt in OPTIONS:
        default = getattr(defaults, opt.field)
        where = ", ".join(f"${e}" for e in opt.env) + (f", toml {opt.toml}" if opt.toml else "")
        shown = default.value if isinstance(default, enum.Enum) else default
        help_text = f"{opt.help} [{where}] (default: {shown!s})"
        flag = "--" + opt.field.replace("_", "-")
        if types[opt.field] is bool:
            action = argparse.BooleanOptionalAction
            parser.add_argument(flag, dest=opt.field, default=None, action=action, help=help_text)
        else:
            parser.add_argument(flag, dest=opt.field, default=None, metavar="VALUE", help=help_text)


def parse_value(name: str, raw: Any) -> Any:
    """Convert a raw value (string from env/CLI, or a TOML value) to ``Config.<name>``'s type."""
    kind = _field_types()[name]
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(f"expected true/false, got {raw!r}")
        if kind is tuple:
            items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
            return tuple(int(str(x).strip()) for x in items if str(x).strip())
        if kind is Path:
            return Path(str(raw))
        if issubclass(kind, enum.Enum):
            return kind(str(raw).lower())
        return kind(raw)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"invalid value for {name}: {raw!r} ({exc})") from exc


def _from_toml(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "warmgate.toml"
    if not path.is_file():
        return {}
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    out: dict[str, Any] = {}
    known = {opt.toml for opt in OPTIONS if opt.toml}
    for section, table in doc.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: top-level key {section!r} must be a table")
        for key in table:
            if f"{section}.{key}" not in known:
                raise ConfigError(f"{path}: unknown setting [{section}] {key}; known: {sorted(known)}")
    for opt in OPTIONS:
        if not opt.toml:
            continue
        section, key = opt.toml.split(".")
        if key in doc.get(section, {}):
            out[opt.field] = parse_value(opt.field, doc[section][key])
    return out


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for opt in OPTIONS:
        for name in opt.env:
            if name in env:
                out[opt.field] = parse_value(opt.field, env[name])
                break
    return out


def load_config(
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    model_dir_exists: Callable[[Path], bool] = Path.is_dir,
) -> Config:
    """Build the config: ``overrides`` (CLI) > ``env`` > ``warmgate.toml`` > defaults."""
    env_values = _from_env(os.environ if env is None else env)
    cli = {k: parse_value(k, v) for k, v in (overrides or {}).items() if v is not None}
    model_dir = cli.get("model_dir", env_values.get("model_dir", DEFAULT_MODEL_DIR))
    toml_values = _from_toml(model_dir) if model_dir_exists(model_dir) else {}
    config = replace(Config(), **{**toml_values, **env_values, **cli})
    _validate(config)
    return config


def _validate(config: Config) -> None:
    positive = (
        "timeout_s",
        "max_payload_mb",
        "max_batch",
        "max_queue",
        "warmup_timeout_s",
        "warmup_max_runs",
        "watchdog_s",
        "stall_fail_s",
        "degrade_after",
        "canary_interval_s",
    )
    for name in positive:
        if getattr(config, name) <= 0:
            raise ConfigError(f"{name} must be > 0, got {getattr(config, name)}")
    for name in ("batch_delay_ms", "drain_delay_s", "threads", "instances", "keep_warm_s"):
        if getattr(config, name) < 0:
            raise ConfigError(f"{name} must be >= 0, got {getattr(config, name)}")
    if not 0 <= config.inference_niceness <= 19:
        raise ConfigError(f"inference_niceness must be 0..19, got {config.inference_niceness}")
    if config.inference_slice_us and not 100 <= config.inference_slice_us <= 100_000:
        raise ConfigError(f"inference_slice_us must be 0 or 100..100000, got {config.inference_slice_us}")
    if not 0 < config.port < 65536:
        raise ConfigError(f"port must be 1..65535, got {config.port}")
