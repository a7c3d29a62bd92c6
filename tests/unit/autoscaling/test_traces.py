"""Synthetic traces are seeded and shaped as named; CSV loaders read both formats."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from warmgate.autoscaling.traces import (
    TraceKind,
    failure_storm,
    load_azure_llm_csv,
    load_counts_csv,
    load_csv,
    spike,
    spike_rate,
    steady,
    synthetic,
)
from warmgate.errors import ConfigError

AZURE = Path(__file__).resolve().parents[2] / "fixtures" / "azure-llm-conv-2023.csv.gz"


def test_spike_rate_rises_tenfold_in_thirty_seconds() -> None:
    rate = spike_rate(2.0, 10.0, at_s=100.0, ramp_s=30.0, hold_s=60.0, decay_s=50.0)
    assert rate(99.0) == 2.0
    assert rate(115.0) == pytest.approx(11.0)  # half way up: 2 x (1 + 9 x 0.5)
    assert rate(130.0) == pytest.approx(20.0)
    assert rate(189.0) == pytest.approx(20.0)
    assert rate(240.0) == pytest.approx(2.0 * (1 + 9 * 0.36787944), rel=1e-6)  # one tau


def test_spike_trace_counts_follow_the_rate() -> None:
    t = spike(random.Random(1), at_s=600.0, hold_s=600.0, decay_s=600.0, duration_s=1200.0)
    before = sum(1 for a in t.arrivals if a < 600.0)
    plateau = sum(1 for a in t.arrivals if 630.0 <= a < 1200.0)
    # expected 1200 and 11400; Poisson noise is a few percent
    assert 1050 < before < 1350
    assert 10800 < plateau < 12000


def test_same_seed_same_trace() -> None:
    assert steady(random.Random(7), duration_s=100.0) == steady(random.Random(7), duration_s=100.0)
    assert steady(random.Random(7), duration_s=100.0) != steady(random.Random(8), duration_s=100.0)


def test_failure_storm_has_its_crashes_inside_the_storm() -> None:
    t = failure_storm(random.Random(2), storm_at_s=500.0, crashes=3, storm_s=20.0)
    assert len(t.crashes) == 3
    assert all(500.0 <= c <= 520.0 for c in t.crashes)


@pytest.mark.parametrize("kind", list(TraceKind))
def test_every_kind_builds_sorted_arrivals(kind: TraceKind) -> None:
    t = synthetic(kind, random.Random(0))
    assert list(t.arrivals) == sorted(t.arrivals)
    assert all(0.0 <= a < t.duration_s for a in t.arrivals)


def test_counts_csv(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("timestamp,requests\n100,3\n110,2\n")
    t = load_counts_csv(path, random.Random(0))
    # 3 arrivals in [0, 10), 2 in [10, 20): the last interval is as long as the one before
    assert t.duration_s == 20.0
    assert sum(1 for a in t.arrivals if a < 10) == 3
    assert sum(1 for a in t.arrivals if 10 <= a < 20) == 2


def test_counts_csv_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("timestamp,requests\n0,1\n1,lots\n")
    with pytest.raises(ConfigError, match=r"bad\.csv:3"):
        load_counts_csv(path, random.Random(0))


def test_azure_format(tmp_path: Path) -> None:
    path = tmp_path / "azure.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:47.5000000,80,10\n"
        "2023-11-16 18:15:46.0000000,800,100\n"
    )
    t = load_csv(path, random.Random(0))  # told apart by its header
    # sorted by time: 0.0 and 1.5 s. Work = context / 8 + generated: 200 and 20, mean 110
    assert t.arrivals == pytest.approx((0.0, 1.5))
    assert t.sizes == pytest.approx((200 / 110, 20 / 110))
    assert load_azure_llm_csv(path, time_scale=0.5).arrivals == pytest.approx((0.0, 0.75))


def test_the_real_azure_trace_loads_from_its_compressed_fixture() -> None:
    t = load_azure_llm_csv(AZURE)
    assert len(t.arrivals) == 19366  # README: 19,366 requests
    assert 5.0 < t.mean_rate < 6.0  # README: mean 5.5 requests/s
    assert sum(t.sizes) / len(t.sizes) == pytest.approx(1.0)
