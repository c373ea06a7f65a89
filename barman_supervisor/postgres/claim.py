"""A sharded replica's claim on a server, as PostgreSQL shows it: the session advisory lock and
who holds it. Plain data and the query; ``connection.Postgres.claim`` takes the lock on its kept
connection (``jobs/claims`` says why and when).

May import: nothing of the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Row = tuple[Any, ...]
# The claim lives as long as the session that took it. A replica whose node vanished sends no
# FIN: PostgreSQL would hold its claim until TCP keepalive notices, after two hours by the
# operating system's default, and the replica restarted elsewhere would wait as long. These
# (settable by any role, for its own session) make PostgreSQL notice within about a minute:
# 30 s idle, then 3 probes 10 s apart.
CLAIM_SESSION_SETTINGS = (
    ("tcp_keepalives_idle", "30"),
    ("tcp_keepalives_interval", "10"),
    ("tcp_keepalives_count", "3"),
)
# One round trip: the session's keepalive settings, then the lock (its answer is the last column).
CLAIM_QUERY = (
    "SELECT "
    + ", ".join(f"set_config('{name}', '{value}', false)" for name, value in CLAIM_SESSION_SETTINGS)
    + ", pg_try_advisory_lock(%s)"
)


@dataclass(frozen=True)
class Claim:
    """A replica's claim on a server: held, or who holds it (``pg_stat_activity``)."""

    held: bool
    holder: str | None


# Who holds an advisory lock: a bigint key shows in pg_locks as classid (high 32 bits) and
# objid (low 32 bits), with objsubid 1.
LOCK_HOLDER = (
    "SELECT a.pid, coalesce(a.client_addr::text, 'local'), a.application_name, a.backend_start"
    " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
    " AND l.classid = %s::oid AND l.objid = %s::oid"
)
HALF_BITS = 32


def lock_parts(key: int) -> tuple[int, int]:
    unsigned = key & ((1 << 2 * HALF_BITS) - 1)
    return unsigned >> HALF_BITS, unsigned & ((1 << HALF_BITS) - 1)


def holder_text(row: Row | None) -> str | None:
    if row is None:
        return None  # released between the two queries: the next try takes it
    pid, address, application, since = row
    return f"backend {pid} from {address} ({application}) since {since:%Y-%m-%dT%H:%M:%S%z}"
