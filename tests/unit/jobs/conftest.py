"""A server's collaborators for the handler tests: settings, state, stop event, fakes."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from barman_supervisor.config import ServerSettings, Settings
from barman_supervisor.jobs.failover import Failover
from barman_supervisor.jobs.recorder import JobRecorder
from barman_supervisor.jobs.streaming import Streaming
from barman_supervisor.status.state import State
from tests.unit.jobs.fakes import FakeBarman, FakePostgres, RecordingNotifier, settings_for


@dataclass
class World:
    settings: Settings
    server: ServerSettings
    state: State
    stop: threading.Event
    barman: FakeBarman
    postgres: FakePostgres
    notifier: RecordingNotifier
    recorder: JobRecorder
    owed: list[str]
    # Servers whose barman check the failover handler asked again.
    rechecked: list[str]
    # What the failover handler's wait for streaming answers.
    streaming_confirmed: bool = True

    def backup_owed(self, server: ServerSettings) -> None:
        self.owed.append(server.name)

    def recheck(self, server: ServerSettings) -> None:
        self.rechecked.append(server.name)

    def streaming(self) -> Streaming:
        """The streaming handler over this world's fakes, following promotions with
        ``failover()``."""
        return Streaming(
            self.settings,
            self.barman,
            self.state,
            {self.server.name: self.postgres},
            self.recorder,
            self.stop,
            on_wal_gap=self.backup_owed,
            failover=self.failover(),
        )

    def failover(self) -> Failover:
        """The failover handler over this world's fakes; a backup it owes lands in ``owed``."""
        return Failover(
            self.settings,
            self.barman,
            self.state,
            {self.server.name: self.postgres},
            self.notifier,
            on_backup_owed=self.backup_owed,
            confirm_streaming=lambda server: self.streaming_confirmed,
            recheck=self.recheck,
        )


def make_world(environ: dict[str, str], tmp_path: Path, **extra: str) -> World:
    settings = settings_for(environ, tmp_path, **extra)
    state = State([server.name for server in settings.servers])
    stop = threading.Event()
    return World(
        settings=settings,
        server=settings.servers[0],
        state=state,
        stop=stop,
        barman=FakeBarman(settings),
        postgres=FakePostgres(settings.servers[0]),
        notifier=RecordingNotifier(),
        recorder=JobRecorder(state, stop),
        owed=[],
        rechecked=[],
    )


@pytest.fixture
def world(environ: dict[str, str], tmp_path: Path) -> World:
    return make_world(environ, tmp_path, DEADMAN_URL="http://127.0.0.1:9/ping/abc")
