"""One atomic write: the new text or the old one, synced with its directory, no leftovers."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from barman_supervisor.files import write_atomically


def test_the_text_replaces_the_file_and_nothing_else_is_left(tmp_path: Path) -> None:
    target = tmp_path / "backup.info"
    target.write_text("status=STARTED\n")

    write_atomically(target, "status=FAILED\nerror=été\n")

    assert target.read_text(encoding="utf-8") == "status=FAILED\nerror=été\n"
    assert [p.name for p in tmp_path.iterdir()] == ["backup.info"]


def test_a_mode_is_set_exactly_whatever_the_umask(tmp_path: Path) -> None:
    target = tmp_path / ".pgpass"
    previous = os.umask(0o077)
    try:
        write_atomically(target, "secret\n", 0o644)
        write_atomically(tmp_path / "private", "x", 0o600)
        write_atomically(tmp_path / "default", "x")
    finally:
        os.umask(previous)

    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "private").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "default").stat().st_mode) == 0o600  # 0o666 less the umask


def test_the_file_and_then_its_directory_are_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(descriptor: int) -> None:
        synced.append("directory" if stat.S_ISDIR(os.fstat(descriptor).st_mode) else "file")
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)

    write_atomically(tmp_path / "ledger.json", "{}")

    assert synced == ["file", "directory"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "ledger.json"
    target.write_text("old")

    with pytest.raises(UnicodeEncodeError):
        write_atomically(target, "\udc80 cannot be encoded")

    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["ledger.json"]


def test_a_failed_rename_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    (target / "inside").mkdir(parents=True)

    with pytest.raises(OSError):
        write_atomically(target, "text")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
