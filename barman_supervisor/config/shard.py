"""Which servers one replica of a sharded set owns: rendezvous hashing, with no coordinator.

Every replica is configured with the full server list and learns its place in the set from its
stable identity: an explicit shard index and count, or the ordinal at the end of a StatefulSet
pod name (``barman-2`` is shard 2). Each server goes to the shard with the highest weight
``blake2b(server, shard)`` (rendezvous, or highest-random-weight, hashing): every replica
computes the same answer alone, and going from n to n+1 shards moves only the servers whose
new highest weight is the new shard, about 1/(n+1) of them, and nothing else.

The weight is a real hash (blake2b), never Python's ``hash()``, which is salted per process:
two replicas, or one replica across restarts, must agree.

Pure functions over plain data; the reader of the environment and the locks that make a
mistaken overlap harmless (the replication slot's single consumer, a session advisory lock)
live at the edges.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from barman_supervisor.errors import ConfigError

# Eight bytes of digest: a weight in 0..2**64-1, ties between shards as unlikely as a collision.
WEIGHT_BYTES = 8
# A StatefulSet names its pods <set>-<ordinal>.
POD_ORDINAL = re.compile(r"-([0-9]+)$")
# pg_try_advisory_lock takes a signed 64-bit key.
LOCK_KEY_BITS = 64
# Keeps the advisory-lock keys of this project apart from any other user's keys on the server.
LOCK_KEY_PREFIX = b"barman-supervisor:"
# The full server list, configured the same on every replica.
Servers = list[str] | tuple[str, ...]


@dataclass(frozen=True)
class Shard:
    """This replica's place in the set: shard ``index`` of ``count``, and where that came from."""

    index: int
    count: int
    source: str

    def application_name(self, base: str) -> str:
        """The daemon's PostgreSQL sessions name the replica: the holder of a claim is then
        told apart in ``pg_stat_activity`` (and in the ``/status`` of a replica waiting)."""
        return f"{base} shard {self.index} of {self.count}"

    def describe(self) -> str:
        """What /status says about the shard, e.g. ``shard 1 of 3 (from POD_NAME barman-1)``."""
        return f"shard {self.index} of {self.count} ({self.source})"


@dataclass(frozen=True)
class Ownership:
    """One server's owner and why: what /status shows for every server on every replica."""

    server: str
    owner: int
    mine: bool
    reason: str


def weight(server: str, index: int) -> int:
    """The rendezvous weight of ``server`` on shard ``index``: the same on every host and run."""
    digest = hashlib.blake2b(f"{server}\0{index}".encode(), digest_size=WEIGHT_BYTES).digest()
    return int.from_bytes(digest, "big")


def owner(server: str, count: int) -> int:
    """The shard (0..count-1) that owns ``server``: the one with the highest weight."""
    if count < 1:
        raise ValueError(f"a set has at least one shard, not {count}")
    return max(range(count), key=lambda index: weight(server, index))


def ownership(servers: Servers, shard: Shard) -> tuple[Ownership, ...]:
    """Every configured server with its owner and the reason, in the configured order."""
    decided = []
    for server in servers:
        shard_owner = owner(server, shard.count)
        mine = shard_owner == shard.index
        reason = (
            f"rendezvous hash (blake2b) of {server!r} is highest on shard {shard_owner} "
            f"of {shard.count}"
        )
        decided.append(Ownership(server, shard_owner, mine, reason))
    return tuple(decided)


def owned(servers: Servers, shard: Shard) -> tuple[str, ...]:
    """The servers this replica protects, in the configured order."""
    return tuple(entry.server for entry in ownership(servers, shard) if entry.mine)


def moved(servers: Servers, before: int, after: int) -> dict[str, tuple[int, int]]:
    """The servers whose owner changes when the set goes from ``before`` to ``after`` shards."""
    changes = {}
    for server in servers:
        old, new = owner(server, before), owner(server, after)
        if old != new:
            changes[server] = (old, new)
    return changes


def shard_status(shard: Shard, owners: tuple[Ownership, ...]) -> dict[str, object]:
    """What ``/status`` says about sharding: this replica's shard and every configured server's
    owner and why (a server another replica owns is listed, so one replica's page answers
    "who protects X")."""
    return {
        "index": shard.index,
        "count": shard.count,
        "source": shard.source,
        "owns": [entry.server for entry in owners if entry.mine],
        "servers": {
            entry.server: {"owner": entry.owner, "mine": entry.mine, "reason": entry.reason}
            for entry in owners
        },
    }


def advisory_lock_key(slot: str) -> int:
    """The ``pg_try_advisory_lock`` key of a server's slot: signed 64-bit, stable everywhere.

    Held by the owner on its kept connection while it protects the server, so that a replica
    that still believes it owns the server (an old shard count during a rolling update) finds
    the lock taken and waits, instead of streaming or backing up alongside the new owner.
    """
    digest = hashlib.blake2b(LOCK_KEY_PREFIX + slot.encode(), digest_size=LOCK_KEY_BITS // 8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def shard_from(index_text: str, count_text: str, pod_name: str) -> Shard | None:
    """This replica's shard from ``SHARD_INDEX``/``SHARD_COUNT`` or a StatefulSet pod name.

    ``SHARD_COUNT`` unset (empty) means no sharding: ``None``, the replica owns every server.
    With a count, ``SHARD_INDEX`` wins when set, else the ordinal ending ``POD_NAME``. Read
    once at start: a StatefulSet scale-up restarts nothing, so the operator changes
    ``SHARD_COUNT`` and the set rolls, every replica starting with the new count.
    """
    if not count_text:
        if index_text:
            raise ConfigError(
                "SHARD_INDEX: set without SHARD_COUNT; set SHARD_COUNT to the number of "
                "replicas, or unset SHARD_INDEX"
            )
        return None
    count = _whole(count_text, "SHARD_COUNT")
    if count < 1:
        raise ConfigError(
            f"SHARD_COUNT: {count} replicas cannot share the servers; set it to the number of "
            "replicas (1 or more)"
        )
    if index_text:
        index, source = _whole(index_text, "SHARD_INDEX"), f"from SHARD_INDEX {index_text}"
    else:
        match = POD_ORDINAL.search(pod_name)
        if match is None:
            raise ConfigError(
                f"POD_NAME: {pod_name!r} does not end in -<ordinal>; set SHARD_INDEX, or run "
                "in a StatefulSet with POD_NAME from the downward API (metadata.name)"
            )
        index, source = int(match.group(1)), f"from POD_NAME {pod_name}"
    if index >= count:
        raise ConfigError(
            f"SHARD_COUNT: {count} leaves no shard {index} ({source}); raise SHARD_COUNT to the "
            "number of replicas"
        )
    return Shard(index, count, source)


def _whole(text: str, name: str) -> int:
    """``text`` as a whole number, or the one-line error naming ``name``."""
    if not (text.isascii() and text.isdigit()):
        raise ConfigError(f"{name}: {text!r} is not a whole number; set e.g. {name}=3")
    return int(text)
