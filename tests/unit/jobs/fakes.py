"""Stand-ins for the job handlers' collaborators: plain data in, every call recorded.

They replace Barman's command line and PostgreSQL's answers only in these unit tests of the
orchestration; the integration tests run the real ones.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from barman_supervisor.barman.commands import Barman, Outcome
from barman_supervisor.barman.home import BarmanHome
from barman_supervisor.config import Secret, ServerSettings, Settings, load_settings
from barman_supervisor.postgres.claim import Claim
from barman_supervisor.postgres.connection import Identity, Postgres, ServerFacts, SlotState
from barman_supervisor.process.proctable import ProcInfo
from barman_supervisor.process.runner import Completed
from barman_supervisor.status.alerts import Notifier

FACTS = ServerFacts(
    version_num=150010,
    wal_level="replica",
    max_wal_senders=10,
    max_replication_slots=10,
    archive_mode="off",
    archive_command="",
    archive_library="",
    in_recovery=False,
    user="barman",
)
IDENTITY = Identity(system_id="7300000000000000001", timeline=1)
ACTIVE_SLOT = SlotState(exists=True, active=True, active_pid=4242, lag_bytes=0)


def settings_for(environ: dict[str, str], tmp_path: Path, **extra: str) -> Settings:
    """Settings from the unit environment, with a PG_BIN_DIR holding a pg_verifybackup (never
    run: the fake Barman answers verify-backup) so that verification has a tool to name."""
    tools = tmp_path / "pgbin"
    tools.mkdir(exist_ok=True)
    for program in ("pg_verifybackup", "postgres"):
        (tools / program).write_text("#!/bin/sh\nexit 0\n")
        (tools / program).chmod(0o755)
    settings = load_settings({**environ, "PG_BIN_DIR": str(tools), **extra})
    settings.barman_home.mkdir(parents=True, exist_ok=True)
    return settings


@dataclass
class Answer:
    returncode: int = 0
    data: Any = None
    stderr: str = ""
    stdout: str = ""


class FakeHome(BarmanHome):
    """Barman's files under the test's home, but the one write is recorded, not done, and no
    WAL has a file time (no receiving or archiving is seen)."""

    def __init__(self, root: Path, marked_failed: list[str]) -> None:
        super().__init__(root)
        self.marked_failed = marked_failed

    def mark_failed(self, server: str, backup_id: str, reason: str) -> bool:
        self.marked_failed.append(backup_id)
        return True

    def wal_times(self, server: str) -> tuple[float | None, float | None]:
        return None, None


@dataclass
class FakeBarman(Barman):
    """Each subcommand answers from ``answers`` (the last answer repeats); ``hold`` makes a
    subcommand wait on an event, to test what happens while it runs."""

    settings: Settings
    answers: dict[str, list[Answer]] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    hold: dict[str, threading.Event] = field(default_factory=dict)
    receive_wal_running: bool = False
    effects: dict[str, Callable[[], None]] = field(default_factory=dict)
    marked_failed: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._settings = self.settings
        self.home = FakeHome(self.settings.barman_home, self.marked_failed)

    def answer(self, command: str, *answers: Answer) -> None:
        self.answers[command] = list(answers)

    def commands(self) -> list[str]:
        return [call[0] for call in self.calls]

    def run(
        self,
        *args: str,
        kind: str,
        server: str | None,
        timeout: float | None = None,
        during_shutdown: bool = False,
        on_message: Callable[[str, str], None] | None = None,
        tools_dir: Path | None = None,
    ) -> Outcome:
        assert server is None or server in args or args == ("cron",), "it names its server"
        self.calls.append(args)
        if args[0] in self.hold:
            self.hold[args[0]].wait(10)
        if args[0] in self.effects:
            self.effects[args[0]]()  # what the command does to Barman's files
        queue = self.answers.get(args[0]) or [Answer()]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        completed = Completed(args, answer.returncode, answer.stdout, answer.stderr, 0.25)
        return Outcome(completed, answer.data, ())

    def processes(self, command: str, server: str) -> list[ProcInfo]:
        running = self.receive_wal_running and command == "receive-wal"
        return [ProcInfo(4243, 1, "S", ("barman", command, server))] if running else []

    def start_receive_wal(self, server: str) -> bool:
        return False  # no fork server: ``barman cron`` starts streaming


class FakePostgres(Postgres):
    """PostgreSQL's answers as data; ``down`` makes every call fail as a refused connection."""

    def __init__(self, server: ServerSettings) -> None:
        super().__init__(server, Path("/nonexistent"), 1)
        self.facts_answer = FACTS
        self.identity_answer = IDENTITY
        self.slot_state = ACTIVE_SLOT
        self.down = False
        self.replication_refused = False
        self.login_refused: str | None = None
        self.slots_created: list[str] = []
        # The new timeline's history file after a promotion; None: the server cannot say.
        self.history_answer: str | None = None
        self.primary_answer = ("db2", 5432)
        # Sharded: the claim's answers in turn (the last one repeats), and the keys asked.
        self.claim_answers: list[Claim] = [Claim(True, None)]
        self.claim_keys: list[int] = []

    def claim(self, key: int) -> Claim:
        self._refuse()
        self.claim_keys.append(key)
        if len(self.claim_answers) > 1:
            return self.claim_answers.pop(0)
        return self.claim_answers[0]

    def _refuse(self) -> None:
        if self.down:
            raise psycopg.OperationalError("connection refused")

    def facts(self) -> ServerFacts:
        self._refuse()
        return self.facts_answer

    def identify(self) -> Identity:
        self._refuse()
        if self.replication_refused:
            raise psycopg.OperationalError("no pg_hba.conf entry for replication connection")
        return self.identity_answer

    def identity(self) -> Identity:
        self._refuse()
        return self.identity_answer

    def slot(self, name: str) -> SlotState:
        self._refuse()
        return self.slot_state

    def create_slot(self, name: str) -> bool:
        self._refuse()
        if name in self.slots_created:
            return False
        self.slots_created.append(name)
        return True

    def create_restore_point(self, label: str) -> None:
        self._refuse()

    def timeline_history(self, timeline: int) -> str:
        self._refuse()
        if self.history_answer is None:
            raise psycopg.OperationalError(f"could not read timeline history of {timeline}")
        return self.history_answer

    def primary(self) -> tuple[str, int] | None:
        return self.primary_answer

    def reconnect(self) -> None:
        """Nothing kept to drop."""

    def login_problem(self) -> str | None:
        """A new login: ``login_refused`` is its failure (as ``login_failure`` words it)."""
        self._refuse()
        return self.login_refused


class RecordingNotifier(Notifier):
    """Pings and posts recorded instead of sent."""

    def __init__(self) -> None:
        super().__init__(timeout=1.0)
        self.pings: list[str] = []
        self.posts: list[Mapping[str, Any]] = []

    def ping(self, url: Secret, suffix: str, what: str) -> None:
        self.pings.append(suffix)

    def post(self, url: Secret, payload: Mapping[str, Any], what: str) -> None:
        self.posts.append(payload)


def backup_list(*rows: tuple[str, str], server: str = "pg") -> Answer:
    """``list-backups`` JSON, newest first, from (backup_id, status) pairs."""
    return Answer(
        data={
            server: [
                {"backup_id": backup_id, "status": status, "end_time_timestamp": "1795478625"}
                for backup_id, status in rows
            ]
        }
    )


def show(backup_id: str, server: str = "pg", version_num: int = 150010) -> Answer:
    return Answer(
        data={
            server: {
                "backup_id": backup_id,
                "status": "DONE",
                "postgresql_version": version_num,
                "base_backup_information": {"backup_size_bytes": 1000},
            }
        }
    )


def write_archived_wal(settings: Settings, server: str) -> None:
    """Barman's WAL archive with one segment in it (its ``xlog.db``)."""
    xlogdb = settings.barman_home / server / "wals" / f"{server}-xlog.db"
    xlogdb.parent.mkdir(parents=True, exist_ok=True)
    xlogdb.write_text("000000010000000000000002\t16777216\t0\tNone\n")


def write_backup_info(
    settings: Settings,
    server: str,
    backup_id: str,
    begin_time: str = "2026-11-30 03:00:00+00:00",
    version_num: int = 150010,
) -> None:
    """A ``backup.info`` as Barman leaves it, for what the daemon reads from Barman's files."""
    info = settings.barman_home / server / "base" / backup_id / "backup.info"
    info.parent.mkdir(parents=True, exist_ok=True)
    info.write_text(f"backup_id={backup_id}\nbegin_time={begin_time}\nversion={version_num}\n")


def write_nightly_backup_infos(settings: Settings, server: str, *days: int) -> None:
    """``backup.info`` of backups that began at 03:00 on these days of November 2026 (IDs
    ``202611DDT030000``): times that order them, as Barman's own do."""
    for day in days:
        write_backup_info(settings, server, f"202611{day}T030000", f"2026-11-{day} 03:00:00+00:00")
