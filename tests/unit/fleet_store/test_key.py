"""Match keys: one canonical form, exact comparison, clear errors."""

from __future__ import annotations

import pytest

from warmgate.errors import ConfigError
from warmgate.fleet.store import MatchKey


def test_option_order_does_not_change_the_key() -> None:
    one = MatchKey.of("sha256:aa", "v1", "cpu", {"seq": "256", "batch": "32"})
    two = MatchKey.of("sha256:aa", "v1", "cpu", {"batch": "32", "seq": "256"})
    assert one == two
    assert one.digest == two.digest
    assert one.canonical() == (
        '{"device":"cpu","model_digest":"sha256:aa","options":{"batch":"32","seq":"256"},"version":"v1"}'
    )


@pytest.mark.parametrize(
    "other",
    [
        MatchKey.of("sha256:ab", "v1", "cpu", {"batch": "32"}),
        MatchKey.of("sha256:aa", "v2", "cpu", {"batch": "32"}),
        MatchKey.of("sha256:aa", "v1", "cuda:0", {"batch": "32"}),
        MatchKey.of("sha256:aa", "v1", "cpu", {"batch": "32.0"}),  # values compare as text
        MatchKey.of("sha256:aa", "v1", "cpu"),
    ],
)
def test_every_criterion_is_part_of_the_key(other: MatchKey) -> None:
    key = MatchKey.of("sha256:aa", "v1", "cpu", {"batch": "32"})
    assert other != key
    assert other.digest != key.digest


def test_the_canonical_form_round_trips() -> None:
    key = MatchKey.of("sha256:aa", "v1", "cpu", {"batch": "32", "graphs": "on"})
    assert MatchKey.from_json(key.canonical()) == key


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: MatchKey.of("", "v1", "cpu"), "non-empty model_digest"),
        (lambda: MatchKey.of("sha256:aa", "", "cpu"), "non-empty version"),
        (lambda: MatchKey.of("sha256:aa", "v1", "cpu", {"batch": 32}), "must be strings"),  # type: ignore[dict-item]
        (lambda: MatchKey("sha256:aa", "v1", "cpu", (("z", "1"), ("a", "2"))), "sorted"),
    ],
)
def test_malformed_keys_are_refused_with_the_reason(build: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build()  # type: ignore[operator]
