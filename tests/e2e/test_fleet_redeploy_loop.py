"""The redeploy inside the control loop: what the policy starts while a new model warms is
the new model's, held out of rotation until the switch. Real HAProxy and replicas, the
loop ticked by the test; plus the pure pieces (what the policy counts, what HAProxy shows)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tests.e2e.conftest import StartFleet
from tests.e2e.haproxy import requires_haproxy
from tests.e2e.test_fleet_redeploy import NEW, OLD, marked, point
from warmgate.autoscaling.model import Decision, ReplicaPhase, ScalingConfig, ScalingMode
from warmgate.fleet.control import ControlLoop
from warmgate.fleet.fleet import Fleet, ReplicaInfo, Role
from warmgate.fleet.haproxy_config import HaproxySettings
from warmgate.fleet.match import fleet_match_key
from warmgate.fleet.probe import Load
from warmgate.fleet.redeploy import Redeploy, checked_up, staged_surplus
from warmgate.fleet.replica import ReplicaSpec
from warmgate.fleet.runtime_api import BackendStat, ServerStat
from warmgate.fleet.store import MatchKey


def _tick_until(loop: ControlLoop, condition: Callable[[], bool], what: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            seen = loop.fleet.replicas()
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}: {seen}")
        loop.tick()
        time.sleep(0.05)


def _start_one() -> Decision:
    return Decision(
        target=2, start=1, drain=(), replace=(), mode=ScalingMode.STABLE, hot=1, warming=0, reason="test"
    )


def _in_rotation(fleet: Fleet) -> set[str]:
    return {r.replica_id for r in fleet.in_rotation()}


@pytest.mark.e2e
@requires_haproxy
def test_a_scale_out_during_a_redeploy_starts_the_new_model_held_out_of_rotation_until_the_switch(
    tmp_path: Path, start_fleet: StartFleet
) -> None:
    old, new = marked(tmp_path / "old", OLD), marked(tmp_path / "new", NEW)
    current = tmp_path / "current"
    current.symlink_to(old)
    spec = ReplicaSpec(Path(current.resolve()), drain_delay_s=0.0)
    fleet = start_fleet(spec)
    scaling = ScalingConfig(min_hot=1, max_replicas=3, scale_in_window_s=600.0)
    loop = ControlLoop(fleet, scaling, clock=time.time)
    redeploy = Redeploy(
        fleet,
        fleet_match_key(spec),
        None,
        model_dir=current,
        floor=1,
        registry=CollectorRegistry(),
        clock=time.time,
        timeout_s=120.0,
    )
    loop.redeploy = redeploy
    try:
        first = fleet.launch(Role.SERVING, time.time())
        _tick_until(loop, lambda: _in_rotation(fleet) == {first}, "the first replica in rotation")

        point(current, new)
        redeploy.request()
        _tick_until(loop, lambda: redeploy.staged is not None, "the new model staged")
        assert redeploy.staged == fleet_match_key(ReplicaSpec(new))

        # The policy scales out mid-redeploy: the replica it starts serves the new model and
        # is held out of rotation like the redeploy's own, while the old one keeps serving.
        done = loop.apply(_start_one(), time.time())
        (started,) = done.cold_started
        infos = {r.replica_id: r for r in fleet.replicas()}
        assert infos[started].role is Role.STAGED
        assert infos[started].generation == fleet.generation != fleet.live_generation
        assert fleet.process(started).log_path.exists()
        staged = {r.replica_id for r in fleet.replicas() if r.role is Role.STAGED}
        assert started in staged and len(staged) == 2  # the redeploy's one, and the policy's
        assert _in_rotation(fleet) == {first}

        def no_staged_in_rotation() -> bool:
            assert _in_rotation(fleet) & staged == set() or redeploy.staged is None
            return redeploy.staged is None

        _tick_until(loop, no_staged_in_rotation, "the switch")
        _tick_until(loop, lambda: _in_rotation(fleet) == staged, "the new replicas alone in rotation")

        # They idled since READY: the switch re-armed their keep-warm, or, for one still warming
        # at the switch (the policy's, staged late), the first probe that saw it READY did.
        def rearmed() -> bool:
            return all("keep-warm re-armed" in fleet.process(rid).log_path.read_text() for rid in staged)

        _tick_until(loop, rearmed, "every staged replica's keep-warm re-armed", timeout_s=10.0)
        assert {r.replica_id for r in fleet.replicas() if r.role is Role.SERVING} >= staged
        live = fleet.live_generation
        assert all(r.generation == live for r in fleet.replicas() if r.replica_id in staged)
        _tick_until(loop, lambda: first not in {r.replica_id for r in fleet.replicas()}, "the old one gone")
        assert fleet.process(started).exit_code() is None
    finally:
        redeploy.close()


def _info(rid: str, role: Role, phase: ReplicaPhase, started_at: float, slot: str = "s1") -> ReplicaInfo:
    return ReplicaInfo(rid, role, phase, 1, 20001, slot, Load(), started_at)


def test_the_policy_counts_only_staged_replicas_beyond_one_per_live_replica_and_as_warming() -> None:
    live = [_info(f"r{n}", Role.SERVING, ReplicaPhase.READY, 0.0) for n in range(2)]
    draining = _info("r9", Role.SERVING, ReplicaPhase.DRAINING, 0.0)
    staged = [_info(f"n{n}", Role.STAGED, ReplicaPhase.READY, float(n)) for n in range(3)]
    failed = _info("n9", Role.STAGED, ReplicaPhase.FAILED, 9.0)
    surplus = staged_surplus([*live, draining, *reversed(staged), failed])
    assert [(r.replica_id, r.phase) for r in surplus] == [("n2", ReplicaPhase.WARMING)]
    assert staged_surplus([*live, *staged[:2]]) == []


def test_a_held_replica_counts_as_checked_only_when_haproxy_shows_it_drain_with_a_passing_check() -> None:
    info = _info("n1", Role.STAGED, ReplicaPhase.READY, 0.0)

    def backend(status: str, check: str, port: int = 20001) -> BackendStat:
        return BackendStat((ServerStat("s1", status, f"127.0.0.1:{port}", check, 0, 0),), 0)

    assert checked_up(info, backend("DRAIN", "L7OK"))
    assert not checked_up(info, backend("DOWN", "L7STS"))
    assert not checked_up(info, backend("DOWN", "INI"))
    assert not checked_up(info, backend("DRAIN", "L7OK", port=20002))  # the slot's previous holder
    assert not checked_up(info, backend("UP", "L7OK"))  # in rotation: not held


def _unstarted_fleet(model_dir: Path, workdir: Path) -> Fleet:
    """A fleet that is never started: the redeploy paths here launch nothing."""
    return Fleet(ReplicaSpec(model_dir), HaproxySettings(port=8080, socket=workdir / "h.sock"), workdir)


def _unstarted_redeploy(
    served: Path, current: Path, workdir: Path
) -> tuple[Fleet, CollectorRegistry, MatchKey, Redeploy]:
    """An unstarted fleet serving ``served``, and its redeploy watching ``current``."""
    fleet = _unstarted_fleet(served, workdir)
    registry = CollectorRegistry()
    key = fleet_match_key(ReplicaSpec(served))
    redeploy = Redeploy(fleet, key, None, model_dir=current, floor=2, registry=registry, clock=time.time)
    return fleet, registry, key, redeploy


def _step_until_counted(redeploy: Redeploy, registry: CollectorRegistry, outcome: str) -> None:
    deadline = time.monotonic() + 30.0
    while registry.get_sample_value("warmgate_fleet_redeploys_total", {"outcome": outcome}) != 1.0:
        assert time.monotonic() < deadline, f"no {outcome} redeploy counted"
        redeploy.step(time.time())
        time.sleep(0.01)


def test_a_reload_of_a_directory_that_is_gone_counts_a_failure_and_keeps_the_served_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = marked(tmp_path / "old", OLD)
    current = tmp_path / "current"
    current.symlink_to(tmp_path / "nowhere")
    fleet, registry, key, redeploy = _unstarted_redeploy(old, current, tmp_path)
    try:
        redeploy.request()
        with caplog.at_level("ERROR", logger="warmgate.fleet"):
            _step_until_counted(redeploy, registry, "failed")
        assert "is not a directory" in caplog.text and "still serving" in caplog.text
        assert (redeploy.served, redeploy.staged, fleet.staging) == (key, None, False)
        labels = {"model_digest": key.model_digest, "match_key": key.digest}
        assert registry.get_sample_value("warmgate_fleet_model_info", labels) == 1.0
    finally:
        redeploy.close()
        fleet.close()


def test_a_reload_that_finds_the_same_model_changes_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = marked(tmp_path / "old", OLD)
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "model.onnx").write_bytes((old / "model.onnx").read_bytes())  # same bytes elsewhere
    current = tmp_path / "current"
    current.symlink_to(copy)
    fleet, registry, key, redeploy = _unstarted_redeploy(old, current, tmp_path)
    try:
        redeploy.request()
        deadline = time.monotonic() + 30.0
        with caplog.at_level("INFO", logger="warmgate.fleet"):
            while "the model is unchanged" not in caplog.text:
                assert time.monotonic() < deadline, caplog.text
                redeploy.step(time.time())
                time.sleep(0.01)
        assert (redeploy.served, redeploy.staged, fleet.staging) == (key, None, False)
        for outcome in ("switched", "failed", "cancelled"):
            assert registry.get_sample_value("warmgate_fleet_redeploys_total", {"outcome": outcome}) == 0.0
    finally:
        redeploy.close()
        fleet.close()
