"""A sharded replica's claim on a server, as PostgreSQL shows it: the session advisory lock and
who holds it. Plain data and the query; ``connection.Postgres.claim`` takes the lock on its kept
connection (``jobs/claims`` says why and when).

May import: nothing of the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Row = tuple[Any, ...]


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
