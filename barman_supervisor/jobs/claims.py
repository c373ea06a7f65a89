"""A sharded replica's claim on each server it owns: what keeps two replicas from protecting one
server at the same moment.

Which replica owns a server is decided by ``config/shard`` (rendezvous hashing: every replica
alone, the same way). The claim covers the moments replicas disagree: during a rolling change of
``SHARD_COUNT`` a replica already on the new count and one still on the old both believe they
own a moved server. The claim is a session advisory lock (``pg_try_advisory_lock``, key from the
slot name) taken on the kept connection to that server's PostgreSQL: no service of our own, and
PostgreSQL releases it when the session ends, however the replica ended (a stop, a crash, a
killed pod). The replica that asks second waits in phase ``handover``, asking again every
``HANDOVER_POLL`` seconds, and starts the server's slot, streaming and backups only once it
holds the claim. Streaming has PostgreSQL's own guard besides: a replication slot has one active
consumer, so a second ``pg_receivewal`` is refused even without the claim.

Once held, the claim is asked again on every new kept connection (a restart of PostgreSQL, a
failover to another host: the new primary's lock is taken at once), and every per-server job
runs only while it is held; the monitor's probe (every ``HEALTH_INTERVAL``) reconnects a dropped
session, so a claim lost with its session is noticed within that interval.

May import: ``config``, ``postgres``, ``status``, ``retry``, ``log``, ``errors``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from threading import Event

import psycopg

from barman_supervisor import retry
from barman_supervisor.config import ServerSettings, Settings
from barman_supervisor.config.shard import advisory_lock_key
from barman_supervisor.errors import HeldElsewhere
from barman_supervisor.log import get_logger
from barman_supervisor.postgres.claim import Claim
from barman_supervisor.postgres.connection import Postgres
from barman_supervisor.status.health import HANDOVER
from barman_supervisor.status.state import State

_log = get_logger(__name__)
# How often a replica waiting for a server asks for its claim again: a query on a kept
# connection, and at most this long added to a handover.
HANDOVER_POLL = 1.0


class Claims:
    def __init__(
        self,
        settings: Settings,
        state: State,
        postgres: Mapping[str, Postgres],
        stop: Event,
    ) -> None:
        self._sharded = settings.shard is not None
        self._state = state
        self._postgres = postgres
        self._stop = stop
        # Servers whose start-up took the claim: only those have one to lose.
        self._acquired: set[str] = set()

    def acquire(self, server: ServerSettings) -> None:
        """Wait (phase ``handover``) until this replica holds the claim, or the daemon stops
        (``Interrupted``). Unsharded: at once, nothing asked."""
        if not self._sharded:
            return
        started = time.monotonic()
        policy = retry.every(self._stop, HANDOVER_POLL, retry_on=(HeldElsewhere, psycopg.Error))
        policy(lambda: self._wait_turn(server))
        self._acquired.add(server.name)
        _log.info(
            "claim_held",
            server=server.name,
            waited_s=round(time.monotonic() - started, 3),
            key=advisory_lock_key(server.slot_name),
        )

    def _ask(self, server: ServerSettings) -> tuple[Claim, bool]:
        """The claim asked for, recorded; and whether that changed what ``/status`` said."""
        claim = self._postgres[server.name].claim(advisory_lock_key(server.slot_name))
        return claim, self._state.record_claim(server.name, claim.held, claim.holder)

    def _wait_turn(self, server: ServerSettings) -> None:
        claim, changed = self._ask(server)
        if claim.held:
            return
        if changed:
            self._state.set_phase(server.name, HANDOVER)
            _log.warning(
                "claim_waiting",
                server=server.name,
                holder=claim.holder,
                why="another replica protects this server until it lets go",
            )
        raise HeldElsewhere(claim.holder)

    def held(self, server: ServerSettings) -> bool:
        """Whether a job may act on this server now: the claim asked again (no query while the
        kept connection holds it). A claim lost is logged once, and the server's jobs wait for
        it to come back. Unsharded: always; before its start-up took it: never (no query:
        the start-up is asking)."""
        if not self._sharded:
            return True
        if server.name not in self._acquired:
            return False
        try:
            claim, changed = self._ask(server)
        except psycopg.Error:
            return False
        if changed and not claim.held:
            _log.error(
                "claim_lost",
                server=server.name,
                holder=claim.holder,
                action="this replica's jobs for the server wait until it holds it again",
            )
        return claim.held
