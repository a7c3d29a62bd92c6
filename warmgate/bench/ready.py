"""Time to READY against one pass over the bucket plan, measured in one run on one machine.

The numerator is the replica's own start-up, seen from outside: process start → first ``/ping``
200 (:attr:`warmgate.bench.served.Server.ready_s`), with its loading and warming phases read
from its log. The denominator is raw in-process ONNX Runtime (``session.run`` only, the
replica's intra-op threads, the same arena policy) running every bucket the replica reports
once at steady speed (:func:`warmgate.bench.raw.steady_pass`), timed right after the replica
is READY, on the same machine state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import httpx

from warmgate.bench.raw import open_raw, steady_pass
from warmgate.bench.served import Server, WarmedShape
from warmgate.models.base import Bucket


@dataclass(frozen=True)
class ReadyFigures:
    ready_s: float  # process start → first /ping 200
    loading_s: float
    warming_s: float
    pass_s: float  # one pass over the plan at steady speed (nan when not measured)
    buckets: int
    raw: str  # what ran the pass: "2 intra-op threads", "cuda"
    warmup: str  # the replica's warmup, summarised from its log
    shapes: tuple[WarmedShape, ...] = ()  # every warmed shape, from its log
    raw_s: dict[str, float] | None = None  # one raw steady run of each bucket, by label

    @property
    def warming_ratio(self) -> float:
        return self.warming_s / self.pass_s

    @property
    def ready_ratio(self) -> float:
        return self.ready_s / self.pass_s

    def line(self) -> str:
        return (
            f"Time to READY: {self.ready_s:.2f} s from process start (loading {self.loading_s:.2f} s, "
            f"warming {self.warming_s:.2f} s); one pass over the {self.buckets} buckets at steady "
            f"speed ({self.raw}): {self.pass_s:.2f} s → warming ÷ pass "
            f"**{self.warming_ratio:.2f}**, READY ÷ pass **{self.ready_ratio:.2f}**"
        )


def bucket_from_label(label: str) -> Bucket:
    m = re.fullmatch(r"b(\d+)(?:xs(\d+))?", label)
    if m is None:
        raise ValueError(f"not a bucket label: {label!r}")
    return Bucket(int(m.group(1)), int(m.group(2) or 0))


def plan(server: Server, model_name: str, cores: int) -> tuple[list[Bucket], int]:
    """The bucket plan the replica reports in its model metadata, and the intra-op threads of
    all its instances together: the raw pass runs one session on every core the replica uses."""
    meta = httpx.get(f"{server.url}/v2/models/{model_name}", timeout=10).json()
    threads = (int(meta.get("intra_op_threads") or 0) or cores) * int(meta.get("instances") or 1)
    return [bucket_from_label(label) for label in meta["buckets"]], threads


def ready_figures(
    server: Server, model_dir: Path, cores: int, device: str = "cpu", with_pass: bool = True
) -> ReadyFigures:
    """The replica's READY figures and, with ``with_pass``, one raw pass over its plan (on
    ``device``: :func:`warmgate.bench.raw.open_raw`)."""
    buckets, threads = plan(server, model_dir.name, cores)
    one_pass = float("nan")
    raw_s: dict[str, float] | None = None
    if with_pass:
        # The replica runs its keep-warm from READY to its first request (`serve --keep-warm-s`):
        # one request ends it, so the pass does not share the cores with it.
        httpx.post(f"{server.url}/invocations", json={"inputs": "hello"}, timeout=60).raise_for_status()
        raw = open_raw(model_dir, device, threads)
        raw_s = {b.label(): s for b, s in steady_pass(raw, buckets).items()}
        one_pass = sum(raw_s.values())
        del raw
    return ReadyFigures(
        ready_s=server.ready_s,
        loading_s=server.phase_seconds("loading", "warming") or 0.0,
        warming_s=server.phase_seconds("warming", "ready") or 0.0,
        pass_s=one_pass,
        buckets=len(buckets),
        raw=f"{threads} intra-op threads" if device == "cpu" else device,
        warmup=server.warmup_summary(),
        shapes=tuple(server.warmup_shapes()),
        raw_s=raw_s,
    )


def costliest(figures: ReadyFigures, count: int = 10) -> str:
    """A markdown table of the shapes that cost warmup most, each against the pass's raw run of
    its bucket."""
    rows = ["| shape | runs | settled | ran | first | steady | raw run of its bucket | ÷ pass |"]
    rows.append("| --- | ---: | --- | --- | ---: | ---: | ---: | ---: |")
    raw = figures.raw_s or {}
    for shape in sorted(figures.shapes, key=lambda s: -s.seconds)[:count]:
        bucket = raw.get(shape.bucket)
        raw_run = f"{bucket * 1e3:.0f} ms ({shape.bucket})" if bucket else "-"
        rows.append(
            f"| {shape.name} | {shape.runs} | {shape.settled} | {shape.ran} | {shape.first_s * 1e3:.0f} ms "
            f"| {shape.steady_s * 1e3:.0f} ms | {raw_run} | {shape.seconds / figures.pass_s:.3f} |"
        )
    return "\n".join(rows)
