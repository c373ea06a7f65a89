"""The WAL watcher: which events announce a server, and a real inotify watch on a directory
that appears late, renames, a new .partial and a stop."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from inotify_simple import flags

from barman_supervisor.jobs import walwatch
from barman_supervisor.jobs.walwatch import WalWatcher, wal_event
from tests.support.poll import wait_until

SEGMENT = "000000010000000000000003"
WAIT_S = 10


@pytest.mark.parametrize(
    ("name", "mask", "announced"),
    [
        (SEGMENT, flags.MOVED_TO, True),
        (SEGMENT, flags.CLOSE_WRITE, True),
        ("00000002.history", flags.MOVED_TO, True),
        (f"{SEGMENT}.partial", flags.CREATE, True),
        (f"{SEGMENT}.partial", flags.CLOSE_WRITE, False),
        (f"{SEGMENT}.partial", flags.MOVED_TO, False),
        ("00000002.history.tmp", flags.CLOSE_WRITE, False),
        ("00000002.history.tmp", flags.CREATE, False),
        (SEGMENT, flags.CREATE, False),
        (".hidden", flags.MOVED_TO, False),
        ("", flags.Q_OVERFLOW, False),
        ("subdir", flags.CREATE | flags.ISDIR, False),
    ],
)
def test_only_completed_files_and_new_partials_count(name: str, mask: int, announced: bool) -> None:
    assert wal_event(name, mask) is announced


def test_a_late_directory_is_watched_and_a_rename_announces_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(walwatch, "MISSING_RETRY", 0.1)
    streaming = tmp_path / "pg" / "streaming"
    announced: list[str] = []
    stop = threading.Event()
    watcher = WalWatcher({"pg": streaming}, announced.append, stop)
    watcher.start()
    try:
        streaming.mkdir(parents=True)
        wait_until(lambda: watcher.watched == {"pg"}, timeout=WAIT_S, what="the watch")
        wait_until(lambda: announced == ["pg"], timeout=WAIT_S, what="the first announcement")
        (streaming / f"{SEGMENT}.partial").write_bytes(b"x")
        wait_until(lambda: len(announced) == 2, timeout=WAIT_S, what="a new .partial announced")
        (streaming / f"{SEGMENT}.partial").rename(streaming / SEGMENT)
        wait_until(lambda: len(announced) == 3, timeout=WAIT_S, what="a rename announced")
    finally:
        watcher.close()
    assert not watcher._thread or not watcher._thread.is_alive()


def test_the_stop_event_ends_the_thread(tmp_path: Path) -> None:
    stop = threading.Event()
    watcher = WalWatcher({"pg": tmp_path}, lambda _server: None, stop)
    watcher.start()
    stop.set()
    assert watcher._thread is not None
    watcher._thread.join(WAIT_S)
    assert not watcher._thread.is_alive()
