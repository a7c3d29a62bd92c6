"""The local fleet end to end: real HAProxy, real ``warmgate serve`` processes, real signals.

What each test proves is in its name; docs/fleet.md says it at more length.
"""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import StartFleet
from tests.e2e.haproxy import requires_haproxy
from warmgate.autoscaling.model import ReplicaPhase, ScalingConfig
from warmgate.autoscaling.pool import MemberState, PoolConfig, WarmPool
from warmgate.autoscaling.sizing import BurstSizing
from warmgate.fleet.control import Background, ControlLoop
from warmgate.fleet.cpu_quota import CpuQuota, CpuQuotaUnavailable, find_cpu_root
from warmgate.fleet.fleet import Fleet, ReplicaInfo, Role
from warmgate.fleet.probe import parse_metrics
from warmgate.fleet.replica import ReplicaSpec

pytestmark = [
    pytest.mark.e2e,
    requires_haproxy,
]

MakeFleet = Callable[..., Fleet]


def _npy(rows: int, width: int) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ones((rows, width), np.float32))
    return buf.getvalue()


LINEAR_BODY = _npy(1, 4)
SLOW_BODY = _npy(4, 384)


@pytest.fixture
def make_fleet(start_fleet: StartFleet) -> MakeFleet:
    """Start fleets of ``model_dir`` replicas served with ``args``."""

    def make(model_dir: Path, *args: str, drain_delay_s: float = 0.5) -> Fleet:
        return start_fleet(ReplicaSpec(model_dir, args, drain_delay_s=drain_delay_s))

    return make


class Traffic:
    """Client threads posting to the fleet's frontend until stopped; every status is kept."""

    def __init__(self, url: str, body: bytes, workers: int = 2) -> None:
        self.url = url + "/invocations"
        self.body = body
        self.statuses: list[int] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]

    def __enter__(self) -> Traffic:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    @property
    def sent(self) -> int:
        return len(self.statuses) + len(self.errors)

    def _run(self) -> None:
        headers = {"Content-Type": "application/x-npy"}
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                try:
                    self.statuses.append(
                        client.post(self.url, content=self.body, headers=headers).status_code
                    )
                except httpx.HTTPError as exc:
                    self.errors.append(exc)


def _until(predicate: Callable[[], bool], what: str, fleet: Fleet, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for: {what}\n{_describe(fleet)}")
        time.sleep(0.05)


def _describe(fleet: Fleet) -> str:
    """The fleet's books, HAProxy's view and the tail of every log: what a failure needs."""
    lines = [f"replica {r}" for r in fleet.replicas()]
    lines += [f"haproxy {s}" for s in fleet.backend().servers if not s.address.endswith(":1")]
    for log in sorted(fleet.workdir.glob("**/*.log")):
        lines += [f"--- {log.name}", log.read_text(errors="replace")[-1500:]]
    return "\n".join(lines)


def _ready(fleet: Fleet, rid: str) -> bool:
    fleet.refresh(time.monotonic())
    return any(r.replica_id == rid and r.phase is ReplicaPhase.READY for r in fleet.replicas())


def _invocations(url: str) -> int:
    return parse_metrics(httpx.get(url + "/metrics", timeout=5).text).invocations


def _keep_warm_runs(url: str) -> float:
    text = httpx.get(url + "/metrics", timeout=5).text
    return next(
        float(ln.split()[1]) for ln in text.splitlines() if ln.startswith("warmgate_keep_warm_runs_total ")
    )


def _info(fleet: Fleet, rid: str) -> ReplicaInfo:
    return next(r for r in fleet.replicas() if r.replica_id == rid)


def test_haproxy_never_routes_to_a_replica_before_it_is_ready(slow_dir: Path, make_fleet: MakeFleet) -> None:
    fleet = make_fleet(slow_dir)
    first = fleet.launch(Role.SERVING, time.monotonic())
    _until(
        lambda: [r.replica_id for r in fleet.in_rotation()] == [first], "the first replica in rotation", fleet
    )
    with Traffic(fleet.url, SLOW_BODY) as traffic:
        _until(lambda: traffic.sent > 0, "traffic through HAProxy", fleet)
        # A long multi-shape warmup: 8 buckets, every shape run 16 times.
        args = ("--max-batch", "128", "--warmup-max-runs", "16", "--warmup-tolerance", "0")
        second = fleet.launch(Role.SERVING, time.monotonic(), args=args)
        info = _info(fleet, second)
        url = f"http://127.0.0.1:{info.port}"
        samples: list[tuple[bool, int, int]] = []  # (HAProxy routes to it, /invocations count, /ping status)
        sent_while_warming = 0
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            routed = fleet.backend().server(info.slot).in_rotation  # read in this order: a later 200
            try:  # on /ping cannot excuse an earlier request
                count = _invocations(url)
                ping = httpx.get(url + "/ping", timeout=5).status_code
            except httpx.TransportError:
                continue  # not listening yet
            samples.append((routed, count, ping))
            if ping != 200:
                sent_while_warming = traffic.sent
            elif count > 0:
                break
            time.sleep(0.02)
    warming = [s for s in samples if s[2] != 200]
    assert len(warming) >= 3, f"the second replica was barely warming ({len(warming)} samples)"
    assert sent_while_warming > 0
    assert [s for s in samples if (s[0] or s[1] > 0) and s[2] != 200] == []
    assert samples[-1][1] > 0, "once READY, HAProxy routes to the second replica too"
    assert traffic.errors == []
    assert set(traffic.statuses) == {200}


def test_sigterm_on_a_replica_loses_no_request(slow_dir: Path, make_fleet: MakeFleet) -> None:
    fleet = make_fleet(slow_dir, drain_delay_s=1.0)
    leaving, staying = (fleet.launch(Role.SERVING, time.monotonic()) for _ in range(2))
    _until(lambda: len(fleet.in_rotation()) == 2, "two replicas in rotation", fleet)
    leaving_url = f"http://127.0.0.1:{_info(fleet, leaving).port}"
    with Traffic(fleet.url, SLOW_BODY, workers=3) as traffic:
        _until(lambda: _invocations(leaving_url) > 0, "traffic on the replica about to leave", fleet)
        process = fleet.process(leaving)
        os.kill(process.pid, signal.SIGTERM)  # from outside, as an orchestrator would
        sent_at_sigterm = traffic.sent
        exit_code = process.wait(30)
        _until(lambda: traffic.sent > sent_at_sigterm + 20, "traffic after the replica left", fleet)
    assert exit_code == 0
    assert traffic.errors == []
    assert traffic.statuses.count(200) == len(traffic.statuses) > 20
    assert [r.replica_id for r in fleet.in_rotation()] == [staying]


def test_control_loop_replaces_a_killed_replica_to_keep_two_hot(
    linear_dir: Path, make_fleet: MakeFleet
) -> None:
    fleet = make_fleet(linear_dir)
    loop = ControlLoop(fleet, ScalingConfig(min_hot=2, max_replicas=3), tick_s=0.1)
    background = Background(loop).start()
    try:
        _until(lambda: len(fleet.in_rotation()) == 2, "the floor of two hot replicas", fleet)
        victim = fleet.in_rotation()[0]
        os.kill(victim.pid, signal.SIGKILL)

        def replaced() -> bool:
            rotation = fleet.in_rotation()  # HAProxy's view now; phases as of the loop's last probe
            return (
                len(rotation) == 2
                and victim.replica_id not in {r.replica_id for r in rotation}
                and all(r.phase is ReplicaPhase.READY for r in rotation)
            )

        _until(replaced, "a READY replacement in rotation", fleet)
        assert victim.replica_id not in {r.replica_id for r in fleet.replicas()}
        with httpx.Client(timeout=10) as client:
            statuses = {
                client.post(
                    fleet.url + "/invocations",
                    content=LINEAR_BODY,
                    headers={"Content-Type": "application/x-npy"},
                ).status_code
                for _ in range(10)
            }
        assert statuses == {200}
    finally:
        background.stop()


def test_a_claim_promotes_a_ready_standby_without_a_cold_start(
    linear_dir: Path, make_fleet: MakeFleet
) -> None:
    fleet = make_fleet(linear_dir)
    pool = WarmPool(PoolConfig(target_size=1, max_size=1), id_prefix="standby")
    loop = ControlLoop(fleet, ScalingConfig(min_hot=2, max_replicas=3), pool, tick_s=0.1)
    background = Background(loop).start()
    try:

        def standbys() -> list[ReplicaInfo]:
            return [r for r in fleet.replicas() if r.role is Role.STANDBY and r.phase is ReplicaPhase.READY]

        _until(
            lambda: len(fleet.in_rotation()) == 2 and len(standbys()) == 1, "two hot and one standby", fleet
        )
        standby = standbys()[0]
        assert fleet.backend().server(standby.slot).status == "MAINT"  # parked out of rotation
        with Traffic(fleet.url, LINEAR_BODY) as traffic:
            _until(lambda: traffic.sent > 20, "traffic", fleet)
        assert _invocations(f"http://127.0.0.1:{standby.port}") == 0
        assert _keep_warm_runs(f"http://127.0.0.1:{standby.port}") == 0  # parked: no CPU spent on it

        victim = fleet.in_rotation()[0]
        os.kill(victim.pid, signal.SIGKILL)
        _until(
            lambda: standby.replica_id in {r.replica_id for r in fleet.in_rotation()},
            "the standby promoted into rotation",
            fleet,
        )
        promoted = _info(fleet, standby.replica_id)
        assert (promoted.pid, promoted.started_at) == (standby.pid, standby.started_at)  # same process
        cold = [r for r in fleet.replicas() if r.role is Role.SERVING and r.started_at > standby.started_at]
        assert cold == [], "the floor was restored by the claim alone, not a cold start"
        # The claim started its keep-warm (until the first request).
        assert "keep-warm re-armed" in (fleet.workdir / "logs" / f"{standby.replica_id}.log").read_text()
        _until(lambda: len(fleet.in_rotation()) == 2, "two hot again", fleet)
        _until(
            lambda: len(standbys()) == 1 and standbys()[0].replica_id != standby.replica_id,
            "a new standby",
            fleet,
        )
        with Traffic(fleet.url, LINEAR_BODY) as traffic:
            _until(
                lambda: _invocations(f"http://127.0.0.1:{standby.port}") > 0,
                "traffic on the promoted one",
                fleet,
            )
        assert set(traffic.statuses) == {200}
    finally:
        background.stop()


def test_policy_scale_in_drains_through_haproxy_without_loss(linear_dir: Path, make_fleet: MakeFleet) -> None:
    fleet = make_fleet(linear_dir)
    for _ in range(3):
        fleet.launch(Role.SERVING, time.monotonic())
    _until(lambda: len(fleet.in_rotation()) == 3, "three replicas in rotation", fleet)
    quick = ScalingConfig(
        min_hot=2, max_replicas=3, metric_window_s=1.0, panic_window_s=0.5, scale_in_window_s=1.0
    )
    loop = ControlLoop(fleet, quick, tick_s=0.1)
    with Traffic(fleet.url, LINEAR_BODY, workers=1) as traffic:
        drained: list[str] = []
        deadline = time.monotonic() + 30.0
        while not drained:
            assert time.monotonic() < deadline, f"no scale-in within 30 s\n{_describe(fleet)}"
            drained += loop.tick().drained
            assert traffic.errors == [] and len(drained) <= 1
            time.sleep(0.1)  # the control loop's period, not a synchronisation
        process = fleet.process(drained[0])
        exit_code = process.wait(30)
        _until(lambda: len(fleet.in_rotation()) == 2, "two left in rotation", fleet)
        for _ in range(10):  # the floor holds: no further scale-in below min_hot
            assert loop.tick().drained == ()
            time.sleep(0.1)
    assert exit_code == 0
    assert traffic.errors == []
    assert set(traffic.statuses) == {200}
    assert drained[0] not in {r.replica_id for r in fleet.replicas()}


def _samples(loop: ControlLoop) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the fleet's registry, read back from its Prometheus text."""
    text = generate_latest(loop.metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_fleet_metrics_time_the_claim_and_the_claimed_replicas_first_request(
    linear_dir: Path, make_fleet: MakeFleet
) -> None:
    fleet = make_fleet(linear_dir)
    pool = WarmPool(PoolConfig(target_size=1, max_size=1), id_prefix="standby")
    loop = ControlLoop(fleet, ScalingConfig(min_hot=2, max_replicas=3), pool, tick_s=0.1)
    background = Background(loop).start()
    try:
        _until(
            lambda: (
                _samples(loop).get(("warmgate_pool_members", (("state", "ready"),))) == 1
                and len(fleet.in_rotation()) == 2
            ),
            "two hot and one READY standby in the metrics",
            fleet,
        )
        with Traffic(fleet.url, LINEAR_BODY, workers=2) as traffic:
            _until(lambda: traffic.sent > 20, "traffic", fleet)
            os.kill(fleet.in_rotation()[0].pid, signal.SIGKILL)
            _until(
                lambda: _samples(loop).get(("warmgate_pool_claim_to_first_request_seconds_count", ())) == 1,
                "the claimed standby's first request, in the metrics",
                fleet,
            )
        samples = _samples(loop)
        assert samples[("warmgate_pool_claim_seconds_count", ())] == 1
        first = samples[("warmgate_pool_claim_to_first_request_seconds_sum", ())]
        assert 0 < first < 1.0, f"claim to first request took {first:.3f} s (goal < 1 s)"
        assert samples[("warmgate_replica_start_to_ready_seconds_count", ())] >= 3  # 2 serving + standby
        assert samples[("warmgate_fleet_replicas", (("phase", "ready"), ("role", "serving")))] >= 2
        # SIGKILL loses what was in flight on the victim (one request per client at most), no more
        assert set(traffic.statuses) <= {200, 502} and traffic.statuses.count(502) <= 2
    finally:
        background.stop()


@pytest.fixture
def cpu_quota() -> Iterator[CpuQuota]:
    """Slim standbys' CPU quota under a cgroup of this test's own (skipped where none is writable)."""
    try:
        root = find_cpu_root(f"warmgate-test-{os.getpid()}-{time.monotonic_ns()}")
    except CpuQuotaUnavailable as exc:
        pytest.skip(f"slim standbys need a writable cgroup CPU controller: {exc}")
    quota = CpuQuota(root, cores=0.1)
    yield quota
    if root.exists():  # the fleet closes it; a test that failed first may leave it
        quota.close()


def _held(quota: CpuQuota, rid: str, pid: int) -> bool:
    procs = quota.root / rid / "cgroup.procs"
    return quota.limit_of(rid) == 0.1 and procs.exists() and str(pid) in procs.read_text().split()


def test_a_replica_scaled_in_waits_as_a_slim_standby_and_a_claim_takes_it_back_at_full_speed(
    linear_dir: Path, cpu_quota: CpuQuota, start_fleet: StartFleet
) -> None:
    # cpu_quota before start_fleet: the fleet (and its processes) is torn down first
    fleet = start_fleet(ReplicaSpec(linear_dir, (), drain_delay_s=0.5), slim=cpu_quota)
    for _ in range(3):
        fleet.launch(Role.SERVING, time.monotonic())
    _until(lambda: len(fleet.in_rotation()) == 3, "three replicas in rotation", fleet)
    first = {r.replica_id: r.pid for r in fleet.replicas()}
    # The pool keeps 3 - (replicas in rotation) standbys: none now, one once the fleet is at two.
    pool = WarmPool(PoolConfig(target_size=0, max_size=1, max_prepared=3, reuse_on_scale_in=True))
    quick = ScalingConfig(
        min_hot=2, max_replicas=3, metric_window_s=1.0, panic_window_s=0.5, scale_in_window_s=1.0
    )
    loop = ControlLoop(fleet, quick, pool, tick_s=0.1)
    reused: tuple[str, ...] = ()
    deadline = time.monotonic() + 30.0
    while not reused:
        assert time.monotonic() < deadline, f"no scale-in within 30 s\n{_describe(fleet)}"
        tick = loop.tick()
        assert tick.drained == () and tick.cold_started == ()
        reused = tick.reused
        time.sleep(0.1)  # the control loop's period, not a synchronisation
    (rid,) = reused
    # Out of rotation, its process alive: the pool's standby once its phase is seen READY, and
    # held to the quota from then on. Nothing was launched to fill the pool.
    assert _info(fleet, rid).role is Role.STANDBY
    assert fleet.backend().server(_info(fleet, rid).slot).status == "MAINT"

    def held() -> bool:
        loop.tick()
        return pool.get(rid).state is MemberState.READY and _held(cpu_quota, rid, first[rid])

    _until(held, "the reused replica READY in the pool and held to 0.1 cores", fleet)
    assert {r.replica_id: r.pid for r in fleet.replicas()} == first
    # A serving replica dies: the claim takes the slim standby back, released from its quota
    victim = next(r for r in fleet.in_rotation() if r.replica_id != rid)
    os.kill(victim.pid, signal.SIGKILL)
    background = Background(loop).start()
    try:
        back = "the standby back in rotation"
        _until(lambda: rid in {r.replica_id for r in fleet.in_rotation()}, back, fleet)
        assert cpu_quota.limit_of(rid) is None
        assert _info(fleet, rid).pid == first[rid]  # the same process: no cold start
        with Traffic(fleet.url, LINEAR_BODY) as traffic:
            url = f"http://127.0.0.1:{_info(fleet, rid).port}"
            _until(lambda: _invocations(url) > 0, "traffic on it", fleet)
        assert set(traffic.statuses) == {200}
    finally:
        background.stop()


def test_a_burst_sized_pool_keeps_no_standby_until_it_sees_a_jump_then_parks_them(
    linear_dir: Path, make_fleet: MakeFleet
) -> None:
    """The default strategy of the simulator on the real fleet: the pool's size comes from the
    jumps the policy measures (`ScalingConfig.burst`), not from a fixed target."""
    fleet = make_fleet(linear_dir)
    pool = WarmPool(PoolConfig(target_size=0, max_size=2), id_prefix="standby")
    sizing = BurstSizing(replica_capacity=5.0, horizon_s=2.0)
    scaling = ScalingConfig(
        min_hot=2,
        max_replicas=2,
        metric_window_s=1.0,
        panic_window_s=0.5,
        scale_in_window_s=60.0,
        burst=sizing,
    )
    loop = ControlLoop(fleet, scaling, pool, tick_s=0.1)
    for _ in range(2):
        fleet.launch(Role.SERVING, time.monotonic())
    _until(lambda: len(fleet.in_rotation()) == 2, "two replicas in rotation", fleet)

    def standbys() -> list[ReplicaInfo]:
        return [r for r in fleet.replicas() if r.role is Role.STANDBY]

    background = Background(loop).start()
    try:
        quiet_until = time.monotonic() + 2.0  # quiet traffic: no jump, no standby
        while time.monotonic() < quiet_until:
            assert standbys() == []
            time.sleep(0.1)
        with Traffic(fleet.url, LINEAR_BODY, workers=4) as traffic:  # hundreds a second: a jump
            _until(lambda: len(standbys()) == 2, "standbys sized for the jump", fleet)
        _until(
            lambda: sum(1 for r in standbys() if r.phase is ReplicaPhase.READY) == 2,
            "the standbys READY",
            fleet,
        )
        assert set(traffic.statuses) == {200}
        assert all(_invocations(f"http://127.0.0.1:{r.port}") == 0 for r in standbys())  # parked
    finally:
        background.stop()
