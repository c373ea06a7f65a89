"""What the daemon asks PostgreSQL directly: is it there, can Barman work with it, is the slot busy.

Connections use the same ``.pgpass`` as Barman (``passfile=``), so the daemon never holds a
conninfo string with a password in it.

The probe (every HEALTH_INTERVAL, for every server) and the restore points of start-up share one
kept connection per server: a new connection per query (a fork on the server, a SCRAM exchange
here) was half of an idle daemon's CPU. What runs once (facts, the replication connection, a new
slot) opens its own. A kept connection stays logged in when the password changes or pg_hba.conf
stops admitting Barman, so the probe also proves, once per HEALTH_INTERVAL, that a new login
works (``login_problem``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from barman_supervisor.config import ServerSettings
from barman_supervisor.postgres.claim import (
    CLAIM_QUERY,
    LOCK_HOLDER,
    Claim,
    holder_text,
    lock_parts,
)
from barman_supervisor.postgres.tls import tls_refusal, uses_tls_settings
from barman_supervisor.postgres.wal import DEFAULT_SEGMENT_SIZE, timeline_of

_SETTINGS = (
    "wal_level",
    "max_wal_senders",
    "max_replication_slots",
    "archive_mode",
    "archive_command",
    "server_version_num",
)


@dataclass(frozen=True)
class ServerFacts:
    """What start-up learned about a server; plain data for the decisions below."""

    version_num: int
    wal_level: str
    max_wal_senders: int
    max_replication_slots: int
    archive_mode: str
    archive_command: str
    archive_library: str
    in_recovery: bool
    user: str = ""
    missing_privileges: tuple[str, ...] = ()
    wal_segment_size: int = DEFAULT_SEGMENT_SIZE
    # Function grants are per database: the refusal names the one that was checked.
    database: str = ""
    # Incremental backups need it "on" (PostgreSQL >= 17); empty on older servers.
    summarize_wal: str = ""


@dataclass(frozen=True)
class Identity:
    """IDENTIFY_SYSTEM over a replication connection: what Barman's streaming will see."""

    system_id: str
    timeline: int


@dataclass(frozen=True)
class SlotState:
    exists: bool
    active: bool
    active_pid: int | None = None
    wal_status: str | None = None
    lag_bytes: int | None = None
    # NULL until a receiver first used a slot created without reserving WAL (pg_receivewal's)
    restart_lsn: str | None = None
    current_lsn: str | None = None
    # Bytes the primary may still write before the slot's WAL is at risk; NULL (None) unless
    # max_slot_wal_keep_size is set. ``wal_status``: reserved, extended, unreserved (the next
    # checkpoint may remove WAL the slot holds) or lost (it did; the slot cannot stream again).
    safe_wal_size: int | None = None


Row = tuple[Any, ...]

# Reasons that say the server takes no connection at all right now (a restart, a shutdown):
# PostgreSQL is unreachable, which has its own condition and grace, not a refused login.
_SERVER_UNAVAILABLE = (
    "the database system is",
    "Connection refused",
    "timeout expired",
    "server closed the connection unexpectedly",
)


# What pg_stat_activity shows for the daemon's sessions (a sharded replica adds its shard).
APPLICATION_NAME = "barman_supervisor"


class Postgres:
    """Connections to one server: one kept for the frequent one-row queries, short-lived ones
    for the rest.

    Kept long: every query of the daemon on a server is here, beside the kept connection's
    lock and its claim (which must be asked again on each new kept connection).
    """

    def __init__(
        self,
        server: ServerSettings,
        passfile: Path,
        connect_timeout: int,
        application_name: str = APPLICATION_NAME,
    ) -> None:
        self.server = server
        self._application_name = application_name
        self._passfile = passfile
        self._timeout = connect_timeout
        self._kept: psycopg.Connection[Row] | None = None
        self._kept_lock = threading.Lock()
        # Sharded: the advisory lock the kept connection holds while this replica owns the
        # server (None: not sharded, no lock), and whether the current kept connection got it.
        self._claim_key: int | None = None
        self._claimed = False

    def _connect(self, replication: bool = False) -> psycopg.Connection[Row]:
        base = self.server.streaming_conninfo if replication else self.server.conninfo
        extra: dict[str, str] = {
            "passfile": str(self._passfile),
            "connect_timeout": str(self._timeout),
            "application_name": self._application_name,
        }
        if replication:
            extra |= {"replication": "true", "dbname": "replication"}
        return psycopg.connect(make_conninfo(base, **extra), autocommit=True)

    def _row(self, query: str, params: tuple[object, ...]) -> Row | None:
        """One row over the kept connection. A connection PostgreSQL closed meanwhile (a
        restart, ``idle_session_timeout``) tells nothing about the server now, so a failure on it is
        followed by one attempt on a fresh connection; that attempt's error is the answer."""
        with self._kept_lock:
            if self._kept is not None:
                try:
                    return self._kept.execute(query, params).fetchone()
                except psycopg.OperationalError:
                    self._drop_kept()
            self._keep_new()
            assert self._kept is not None
            try:
                return self._kept.execute(query, params).fetchone()
            except psycopg.Error:
                self._drop_kept()
                raise

    def _keep_new(self) -> None:
        """A new kept connection; sharded, it asks for the claim at once, so that a reconnect
        (a restart of PostgreSQL, a failover to another host) never leaves the claim unknown."""
        self._kept = self._connect()
        self._claimed = False
        if self._claim_key is not None:
            self._try_claim()

    def _try_claim(self) -> None:
        assert self._kept is not None and self._claim_key is not None
        row = self._kept.execute(CLAIM_QUERY, (self._claim_key,)).fetchone()
        self._claimed = bool(row and row[-1])

    def _drop_kept(self) -> None:
        if self._kept is not None:
            self._kept.close()
            self._kept = None
        self._claimed = False

    def claim(self, key: int) -> Claim:
        """Take (or confirm) the session advisory lock ``key`` on the kept connection: while a
        replica holds it, no other replica protects this server. Held until the connection
        ends (the daemon stops, or PostgreSQL drops the session: then the next query asks
        again). Not held: who holds it, from ``pg_locks`` and ``pg_stat_activity``."""
        with self._kept_lock:
            self._claim_key = key
            try:
                if self._kept is None:
                    self._keep_new()
                elif not self._claimed:
                    self._try_claim()
                if self._claimed:
                    return Claim(True, None)
                assert self._kept is not None
                row = self._kept.execute(LOCK_HOLDER, lock_parts(key)).fetchone()
            except psycopg.OperationalError:
                self._drop_kept()
                raise
        return Claim(False, holder_text(row))

    @property
    def claimed(self) -> bool:
        """Whether the kept connection holds the claim, as of its last query."""
        with self._kept_lock:
            return self._claimed

    def close(self) -> None:
        """At shutdown, so PostgreSQL sees the session end rather than the socket drop."""
        with self._kept_lock:
            self._drop_kept()

    def login_problem(self) -> str | None:
        """Why a new login fails now, for Barman's role and then for the streaming role's
        replication connection; None when both succeed. The kept connection answers the
        queries, but only a new login proves that Barman's next command can connect.

        Measured on 2 cores against PostgreSQL 15 (``scram-sha-256``), one login and close
        costs about 4 ms of the daemon's CPU (mostly SCRAM's key derivation) and 4-6 ms of the
        server's (a backend forked and initialised), a normal and a replication login alike;
        libpq's blocking connect saves well under 1 ms of it and holds the GIL meanwhile (the
        HTTP server would stall for up to PG_CONNECT_TIMEOUT), so psycopg's connect is used.
        """
        for replication in (False, True):
            try:
                self._connect(replication=replication).close()
            except psycopg.OperationalError as exc:
                return login_failure(str(exc), replication)
        return None

    def tls_refusal(self) -> str | None:
        """Why this server's TLS settings can never connect (a CA that did not sign the
        server's certificate, another host name, a client file libpq refuses), as one line; None
        when they do, or when the server does not answer (start-up waits for it as always).

        At start, before anything is written: the TLS handshake comes before the login, so
        the password file need not exist yet. Both connections are tried: a mounted Barman
        file may give the streaming one other TLS keywords."""
        if not uses_tls_settings(self.server):
            return None
        for replication in (False, True):
            try:
                self._connect(replication=replication).close()
            except psycopg.OperationalError as exc:
                refusal = tls_refusal(self.server, str(exc))
                if refusal is not None or server_unavailable(str(exc)):
                    return refusal
        return None

    def facts(self) -> ServerFacts:
        """Settings that decide whether Barman can work."""
        with self._connect() as conn:
            values = {
                name: str(conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0])  # type: ignore[index]
                for name in _SETTINGS
            }
            library = conn.execute(
                "SELECT coalesce(current_setting('archive_library', true), '')"
            ).fetchone()
            in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            user = conn.execute("SELECT current_user").fetchone()
            segment = conn.execute(
                "SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'"
            ).fetchone()
            database = conn.execute("SELECT current_database()").fetchone()
            summarize = conn.execute(
                "SELECT coalesce(current_setting('summarize_wal', true), '')"
            ).fetchone()
            missing = tuple(
                f"{kind} {name}"
                for kind, name in required_privileges(int(values["server_version_num"]))
                if not _granted(conn, kind, name)
            )
        assert library is not None and in_recovery is not None and user is not None
        assert segment is not None and database is not None and summarize is not None
        return ServerFacts(
            version_num=int(values["server_version_num"]),
            wal_level=values["wal_level"],
            max_wal_senders=int(values["max_wal_senders"]),
            max_replication_slots=int(values["max_replication_slots"]),
            archive_mode=values["archive_mode"],
            archive_command=values["archive_command"],
            archive_library=str(library[0]),
            in_recovery=bool(in_recovery[0]),
            user=str(user[0]),
            missing_privileges=missing,
            wal_segment_size=int(str(segment[0])),
            database=str(database[0]),
            summarize_wal=str(summarize[0]),
        )

    def identify(self) -> Identity:
        """Proves the streaming user may open a replication connection (pg_hba, REPLICATION)."""
        with self._connect(replication=True) as repl:
            system = repl.execute("IDENTIFY_SYSTEM").fetchone()
        assert system is not None
        return Identity(system_id=_text(system[0]), timeline=int(_text(system[1])))

    def identity(self) -> Identity:
        """The identity for the check that runs every minute, over the kept connection: a
        replication connection each time is a walsender fork and a SCRAM exchange per server per
        minute. On a primary the current WAL file's name carries the timeline it writes on now
        (a checkpoint's timeline lags a promotion); a standby has no current WAL position, so it
        is asked over a replication connection as at start-up. A conninfo that reaches another
        cluster than the streaming one shows here as a changed system identifier, which it is
        for Barman."""
        row = self._row(
            "SELECT system_identifier::text, CASE WHEN pg_is_in_recovery() THEN NULL"
            " ELSE pg_walfile_name(pg_current_wal_lsn()) END FROM pg_control_system()",
            (),
        )
        assert row is not None
        system_id, wal_file = row
        if wal_file is None:
            return self.identify()
        return Identity(system_id=str(system_id), timeline=timeline_of(str(wal_file)))

    def primary(self) -> tuple[str, int] | None:
        """The host and port the kept connection reached (no query: None before the first):
        with several hosts in ``PG_HOST``, the one that answered as the primary
        (``target_session_attrs=read-write``)."""
        with self._kept_lock:
            if self._kept is None:
                return None
            return self._kept.info.host, int(self._kept.info.port)

    def reconnect(self) -> None:
        """Drop the kept connection: after a promotion it may still reach the old primary (a
        multi-host list keeps the first that answered), and the next query must find the new."""
        with self._kept_lock:
            self._drop_kept()

    def timeline_history(self, timeline: int) -> str:
        """The history file of ``timeline`` (its ancestors and where each ended), as the
        server's walsender gives it to a standby: no file access privilege needed."""
        with self._connect(replication=True) as repl:
            row = repl.execute(f"TIMELINE_HISTORY {int(timeline)}").fetchone()
        assert row is not None
        content = row[1]
        return bytes(content).decode() if isinstance(content, bytes | memoryview) else str(content)

    def create_slot(self, name: str) -> bool:
        """The physical slot Barman streams from, made over the streaming user's replication
        connection; False when it exists already. It reserves WAL from now on, where the slot
        ``pg_receivewal --create-slot`` makes reserves none until first used; and it costs no
        Barman process (fifty servers starting pay fifty of them otherwise)."""
        if self.slot(name).exists:
            return False
        statement = sql.SQL("CREATE_REPLICATION_SLOT {} PHYSICAL RESERVE_WAL").format(
            sql.Identifier(name)
        )
        with self._connect(replication=True) as repl:
            try:
                repl.execute(statement)
            except psycopg.errors.DuplicateObject:
                return False  # made meanwhile, e.g. by ``barman cron`` (create_slot = auto)
        return True

    def slot(self, name: str) -> SlotState:
        row = self._row(
            "SELECT active, active_pid, wal_status,"
            " pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint, restart_lsn::text,"
            " pg_current_wal_lsn()::text, safe_wal_size"
            " FROM pg_replication_slots WHERE slot_name = %s",
            (name,),
        )
        if row is None:
            return SlotState(exists=False, active=False)
        active, pid, wal_status, lag, restart_lsn, current_lsn, safe = row
        return SlotState(
            exists=True,
            active=bool(active),
            active_pid=int(str(pid)) if pid is not None else None,
            wal_status=str(wal_status) if wal_status is not None else None,
            lag_bytes=int(str(lag)) if lag is not None else None,
            restart_lsn=str(restart_lsn) if restart_lsn is not None else None,
            current_lsn=str(current_lsn) if current_lsn is not None else None,
            safe_wal_size=int(str(safe)) if safe is not None else None,
        )

    def databases_size(self) -> int:
        """The size of every database this role may connect to, together: what a full backup
        copies (WAL aside), over the kept connection. A database closed to the role is left
        out rather than failing the query (``pg_database_size`` needs CONNECT)."""
        row = self._row(
            "SELECT coalesce(sum(pg_database_size(oid)), 0)::bigint FROM pg_database"
            " WHERE datallowconn AND has_database_privilege(oid, 'CONNECT')",
            (),
        )
        assert row is not None
        return int(str(row[0]))

    def commit_marker(self) -> None:
        """Commits a transaction that has an XID, which writes a commit record with the current
        time: a point-in-time recovery to any earlier time then has a record to stop at."""
        with self._connect() as conn:
            conn.execute("SELECT txid_current()")

    def create_restore_point(self, label: str) -> None:
        """Writes a WAL record, which lets a pending WAL switch complete on an idle primary."""
        self._row("SELECT pg_create_restore_point(%s)::text", (label,))


def login_failure(message: str, replication: bool) -> str:
    """A failed login as ``/readyz`` names it: which login, the server's reason without libpq's
    prefix, and what to look at."""
    # libpq says 'connection to server at "h", port p failed: FATAL:  <the server's reason>'
    # (psycopg puts "connection failed: " in front), or libpq's own reason after "failed: ".
    line = next((text.strip() for text in message.splitlines() if text.strip()), "")
    server_reason = line.partition("FATAL:")[2]
    reason = (server_reason or line.rpartition(" failed: ")[2]).strip()
    kind, variable = (
        ("new replication login", "PG_STREAMING_PASSWORD")
        if replication
        else ("new login", "PG_PASSWORD")
    )
    return (
        f"{kind} refused: {reason or 'no reason given'}; Barman's next command fails the same "
        f"way (check {variable}, the role's grants and pg_hba.conf)"
    )


def server_unavailable(problem: str) -> bool:
    """Whether a failed login says the server takes no connection at all (it restarts or shuts
    down) rather than that it refuses this login."""
    return any(marker in problem for marker in _SERVER_UNAVAILABLE)


def required_privileges(version_num: int) -> list[tuple[str, str]]:
    """What the backup role needs when it is not a superuser, by PostgreSQL version.

    PostgreSQL 15 renamed the backup functions and moved CHECKPOINT behind pg_checkpoint.
    """
    if version_num >= 150000:
        functions = ["pg_backup_start(text, boolean)", "pg_backup_stop(boolean)"]
        roles = ["pg_checkpoint"]
    else:
        functions = ["pg_start_backup(text, boolean, boolean)", "pg_stop_backup(boolean, boolean)"]
        roles = []
    functions += ["pg_switch_wal()", "pg_create_restore_point(text)"]
    roles.append("pg_read_all_settings")
    return [("EXECUTE on", name) for name in functions] + [("membership in", r) for r in roles]


def _granted(conn: psycopg.Connection[Row], kind: str, name: str) -> bool:
    query = (
        "SELECT has_function_privilege(%s, 'EXECUTE')"
        if kind == "EXECUTE on"
        else "SELECT pg_has_role(%s, 'MEMBER')"
    )
    row = conn.execute(query, (name,)).fetchone()
    return bool(row and row[0])


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def preflight_problems(facts: ServerFacts) -> list[str]:
    """Reasons Barman cannot protect this server as configured; empty when it can."""
    problems: list[str] = []
    if facts.wal_level not in ("replica", "logical"):
        problems.append(
            f"wal_level is {facts.wal_level}; set wal_level = replica in postgresql.conf "
            "and restart"
        )
    if facts.max_wal_senders < 2:
        problems.append(
            f"max_wal_senders is {facts.max_wal_senders}; Barman needs 2 (streaming and backup), "
            "set max_wal_senders >= 2 and restart"
        )
    if facts.max_replication_slots < 1:
        problems.append("max_replication_slots is 0; set max_replication_slots >= 1 and restart")
    if (
        facts.archive_mode in ("on", "always")
        and not facts.archive_command.strip()
        and not facts.archive_library.strip()
    ):
        problems.append(
            f"archive_mode is {facts.archive_mode} with an empty archive_command, which makes "
            "every backup hang in pg_backup_stop; set archive_mode = off (Barman streams WAL) "
            "or a real archive_command"
        )
    if facts.version_num < 100000:
        problems.append(
            f"PostgreSQL {facts.version_num // 10000} is not supported by Barman 3; upgrade to 10+"
        )
    if facts.missing_privileges:
        problems.append(
            f"role {facts.user} lacks {', '.join(facts.missing_privileges)} in database "
            f"{facts.database or '(unknown)'}; grant them while connected to that database "
            "(function grants are per database; docker/postgres/initdb.d/10-barman-roles.sh does "
            "it) or use a superuser"
        )
    if facts.in_recovery:
        problems.append(
            "the server is a standby; point the daemon at the primary (backups from a standby "
            "are not configured)"
        )
    return problems
