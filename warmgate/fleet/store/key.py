"""What a standby must match to be promoted: model digest, version, device and options.

A :class:`MatchKey` is compared as a whole, by its canonical JSON form: a standby warmed for
another model digest, version, device or option set never matches, so a rollout can never
promote a stale standby. Option values are strings and compared exactly (``"1"`` is not
``"1.0"``): render them once, the same way, wherever keys are built.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from warmgate.errors import ConfigError


@dataclass(frozen=True)
class MatchKey:
    """The matching criteria of a pool member. Build one with :meth:`of`."""

    model_digest: str
    version: str
    device: str
    options: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for name in ("model_digest", "version", "device"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ConfigError(f"a pool match key needs a non-empty {name}, got {value!r}")
        names = [name for name, _ in self.options]
        if names != sorted(set(names)):
            raise ConfigError(
                f"match key options must be sorted with unique names, got {names}; use MatchKey.of()"
            )
        for name, value in self.options:
            if not isinstance(name, str) or not isinstance(value, str):
                raise ConfigError(f"match key option {name!r}={value!r}: names and values must be strings")

    @classmethod
    def of(
        cls, model_digest: str, version: str, device: str, options: Mapping[str, str] | None = None
    ) -> MatchKey:
        """The key for these criteria; ``options`` in any order."""
        return cls(model_digest, version, device, tuple(sorted((options or {}).items())))

    @classmethod
    def from_json(cls, text: str) -> MatchKey:
        """The inverse of :meth:`canonical`."""
        raw = json.loads(text)
        return cls.of(raw["model_digest"], raw["version"], raw["device"], raw["options"])

    def canonical(self) -> str:
        """One JSON text per key: sorted names, no whitespace."""
        return json.dumps(
            {
                "model_digest": self.model_digest,
                "version": self.version,
                "device": self.device,
                "options": dict(self.options),
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    @property
    def digest(self) -> str:
        """SHA-256 of :meth:`canonical`: the stores' indexed column."""
        return hashlib.sha256(self.canonical().encode()).hexdigest()

    def __str__(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in self.options)
        return f"{self.model_digest[:12]}@{self.version}/{self.device}" + (f"[{opts}]" if opts else "")
