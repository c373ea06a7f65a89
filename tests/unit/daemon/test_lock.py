"""One daemon per Barman home and configuration: flock, the holder's PID, no stale locks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from barman_supervisor.daemon.lock import (
    AlreadyRunning,
    InstanceLock,
    config_lock_path,
    lock_holder,
)
from barman_supervisor.errors import ConfigError
from tests.support.poll import wait_until

# Seconds the kernel may take to free the lock of a killed holder.
LOCK_FREED_S = 10

LOCKS = """\
1: POSIX  ADVISORY  WRITE 15272 fe:00:2152843 0 EOF
2: FLOCK  ADVISORY  WRITE 8253 fe:00:1507360 0 EOF
2: -> FLOCK  ADVISORY  WRITE 9999 fe:01:77 0 EOF
3: FLOCK  ADVISORY  WRITE 4242 fe:01:77 0 EOF
"""


def test_lock_holder_reads_proc_locks() -> None:
    device = os.makedev(0xFE, 0x01)

    assert lock_holder(device, 77, LOCKS) == 4242
    assert lock_holder(os.makedev(0xFE, 0x00), 77, LOCKS) is None
    assert lock_holder(os.makedev(0xFE, 0x00), 2152843, LOCKS) is None  # POSIX, not FLOCK


def test_config_lock_path_is_keyed_to_the_absolute_config_path(tmp_path: Path) -> None:
    one = config_lock_path(Path("/etc/barman.conf"), tmp_path)
    assert one == config_lock_path(Path("/etc/barman.conf"), tmp_path)
    assert one != config_lock_path(Path("/etc/other.conf"), tmp_path)
    assert one.parent == tmp_path


def test_a_second_lock_is_refused_naming_the_holder(tmp_path: Path) -> None:
    first, second = InstanceLock(), InstanceLock()
    first.acquire(tmp_path, "Barman home", directory=True)
    try:
        with pytest.raises(AlreadyRunning) as refused:
            second.acquire(tmp_path, "Barman home", directory=True)
    finally:
        first.release()

    message = str(refused.value)
    assert f"PID {os.getpid()}" in message and str(tmp_path) in message
    assert "\n" not in message
    second.acquire(tmp_path, "Barman home", directory=True)
    second.release()


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path: Path) -> None:
    lock_file = tmp_path / "x.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT); "
            # Holds the lock until killed: the sleep is the holder's life, not a wait.
            "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(600)",
            str(lock_file),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    lock = InstanceLock()
    with pytest.raises(AlreadyRunning, match=f"PID {holder.pid}"):
        lock.acquire(lock_file, "configuration lock")

    holder.kill()
    holder.wait()

    def acquired() -> bool:
        try:
            lock.acquire(lock_file, "configuration lock")
        except AlreadyRunning:
            return False
        return True

    wait_until(acquired, LOCK_FREED_S, what="the killed holder's lock to be free")
    lock.release()


def test_an_unopenable_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot open to lock"):
        InstanceLock().acquire(tmp_path / "missing", "Barman home", directory=True)


def test_the_config_lock_names_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "barman.conf"
    first, second = InstanceLock(), InstanceLock()
    first.hold_config(config)
    try:
        with pytest.raises(AlreadyRunning, match=f"^BARMAN_CONFIG_FILE {config} is in use"):
            second.hold_config(config)
    finally:
        first.release()
    assert second.hold_home(tmp_path / "missing") is False
    assert second.hold_home(tmp_path) is True and second.hold_home(tmp_path) is True
    second.release()
