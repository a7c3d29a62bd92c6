"""The records a :class:`~warmgate.fleet.store.protocol.PoolStore` hands back, and its errors.

The member states, the legal moves between them and the reaper's rule are the pure warm
pool's (:mod:`warmgate.autoscaling.pool`); a store adds who owns a member and what it matches.
"""

from __future__ import annotations

from dataclasses import dataclass

from warmgate.autoscaling.pool import Member, MemberState
from warmgate.errors import WarmgateError
from warmgate.fleet.store.key import MatchKey


@dataclass(frozen=True)
class StoredMember:
    """One member's books: the pool's :class:`Member`, its match key and its owner.

    ``owner`` is the controller that registered the member or, once CLAIMED, the one that
    claimed it: the controller whose replica process it is, and which stops it when reaped.
    ``reuses`` counts the times it went back to READY after a claim (:meth:`release`).
    """

    member: Member
    key: MatchKey
    owner: str
    reuses: int = 0

    @property
    def member_id(self) -> str:
        return self.member.member_id

    @property
    def state(self) -> MemberState:
        return self.member.state


@dataclass(frozen=True)
class Lease:
    """A controller's right to act on the pool until ``expires_at`` (renew with a heartbeat)."""

    controller_id: str
    expires_at: float


@dataclass(frozen=True)
class StoreReapReport:
    """What one reaper step did.

    ``errored`` and ``recycled`` name the members it moved to ERRORED / DRAINING (any owner's);
    ``removed`` are the terminal members it deleted from the books: the reaping controller's
    own, and those whose owner holds no live lease. The caller stops the processes behind the
    ``removed`` members it owns. ``expired_leases`` are the controllers it declared dead.
    """

    errored: tuple[str, ...] = ()
    recycled: tuple[str, ...] = ()
    removed: tuple[StoredMember, ...] = ()
    expired_leases: tuple[str, ...] = ()


class LeaseExpired(WarmgateError):
    """The controller holds no live lease: its members are (or will be) reaped by others.

    A controller that sees this must stop what it runs and :meth:`join` again under a new id.
    """

    code = "lease_expired"


class PoolDraining(WarmgateError):
    """The pool for this key is draining: it takes no new members until it is activated."""

    code = "pool_draining"


class PoolArchived(PoolDraining):
    """The pool for this key is archived: it takes no members and hands none out until it is
    activated again."""

    code = "pool_archived"


class PoolNotEmpty(WarmgateError):
    """The pool still has members: drain it and let the controllers reap them first."""

    code = "pool_not_empty"


class UnknownPool(WarmgateError):
    """No pool on the books matches this key (or key-id prefix)."""

    code = "unknown_pool"


class StoreUnavailable(WarmgateError):
    """The pool store cannot be opened: the server is unreachable, or the file's folder is
    missing or not writable. The message names the store (without credentials)."""

    code = "store_unavailable"


class SchemaVersionError(WarmgateError):
    """The store's schema is missing, older or newer than this warmgate's; the message says
    which command fixes it."""

    code = "schema_version"


class DuplicateMember(WarmgateError):
    """A member with this id is already on the books."""

    code = "duplicate_member"
