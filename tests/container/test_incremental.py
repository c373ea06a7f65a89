"""Incremental backups end to end on PostgreSQL 18 (issue 13): the product compose file with a
full at start and an incremental every minute, each DONE on its chosen parent after writes, and a
point-in-time ``barman-supervisor restore`` of the newest incremental (Barman combines the chain
with ``pg_combinebackup`` in its staging area) that starts and holds exactly the committed rows; a
restore drill of an incremental; and, once no backup is left to build on, a full from the
incremental schedule.

Twice: uncompressed backups with gzip WAL, and zstd backups compressed on the server with gzip
WAL, whose chain Barman decompresses (tar + zstd, in the image since issue 13) before combining it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest

from tests.container.conftest import Stack
from tests.container.test_majors import PITR_PORT, PITR_SOCKET, RESTORE_DIR, _count_at_target
from tests.support.poll import wait_until

pytestmark = [pytest.mark.container, pytest.mark.timeout(900)]

MAJOR = 18
INCREMENTALS = 2
# A delete refused because a Barman command of the daemon holds the lock is asked again this
# long (each of those commands takes seconds).
DELETE_TIMEOUT_S = 120
ROWS_PER_STEP, ROWS_AFTER_TARGET = 100, 7


@pytest.fixture(
    params=[("none", "client", "gzip"), ("zstd", "server", "gzip")],
    ids=lambda p: f"backup-{p[0]}-{p[1]}-wal-{p[2]}",
)
def incremental_stack(
    request: pytest.FixtureRequest, docker_client: Any, tmp_path: Any
) -> Iterator[Stack]:
    backup_compression, location, wal_compression = request.param
    stack = Stack(
        docker_client,
        tmp_path,
        {
            "BACKUP_SCHEDULE": "0 3 * * 0",
            "BACKUP_INCREMENTAL_SCHEDULE": "* * * * *",
            "BACKUP_CHAIN_MAX": "6",
            "BACKUP_COMPRESSION": backup_compression,
            **({"BACKUP_COMPRESSION_LOCATION": location} if backup_compression != "none" else {}),
            "WAL_COMPRESSION": wal_compression,
            "BACKUP_IMMEDIATE_CHECKPOINT": "true",
            "BARMAN_CRON_INTERVAL": "2",
            "BARMAN_CHECK_INTERVAL": "5",
            "DRILL_SCHEDULE": "* * * * *",
            # The test ends by deleting every backup by hand, below Barman's floor of one.
            "MINIMUM_REDUNDANCY": "0",
            "TZ": "UTC",
        },
        major=MAJOR,
    )
    try:
        stack.compose("up", "-d", "--no-build", "--pull", "never")
        yield stack
    finally:
        stack.down()


def _done(stack: Stack) -> list[dict[str, Any]] | None:
    """DONE backups oldest first, or None while the daemon does not answer yet."""
    try:
        stack.status()
    except OSError:
        return None
    return [b for b in reversed(stack.backups()) if b.get("status") == "DONE"]


def _more_done_than(stack: Stack, count: int) -> list[dict[str, Any]] | None:
    done = _done(stack)
    return done if done is not None and len(done) > count else None


def _newest_in_status(stack: Stack, backup_id: str) -> dict[str, Any] | None:
    """The daemon lists backups again after verifying a new one: a moment after Barman."""
    server = stack.server_status()
    newest: dict[str, Any] | None = server["backups"]["newest"] if server else None
    return newest if newest and newest["id"] == backup_id else None


def test_incrementals_chain_on_the_newest_backup_and_restore_to_a_point_in_time(
    incremental_stack: Stack,
) -> None:
    stack = incremental_stack
    done = wait_until(
        lambda: _more_done_than(stack, 0), 300, what="the first (full) backup", interval=2
    )
    assert done[0]["backup_type"] == "full", done
    stack.psql("CREATE TABLE pitr (step int, id int)")
    for step in range(1, INCREMENTALS + 1):
        stack.psql(f"INSERT INTO pitr SELECT {step}, g FROM generate_series(1, {ROWS_PER_STEP}) g")
        done = wait_until(
            functools.partial(_more_done_than, stack, len(done)),
            180,
            what=f"incremental {step}",
            interval=2,
        )
    ids = [b["backup_id"] for b in done]
    assert [b["backup_type"] for b in done] == ["full"] + ["incremental"] * INCREMENTALS, done
    newest = wait_until(
        functools.partial(_newest_in_status, stack, ids[-1]),
        60,
        what="/status showing the newest incremental",
        interval=1,
    )
    assert newest["id"] == ids[-1] and newest["type"] == "incremental", newest
    assert newest["parent"] == ids[-2], newest
    assert newest["chain_length"] == INCREMENTALS + 1 and newest["chain_broken"] is None, newest
    assert newest["chain_size_bytes"] > 0
    for backup_id, parent in zip(ids[1:], ids, strict=False):
        info = stack.exec("barman", "cat", f"/var/lib/barman/pg/meta/{backup_id}-backup.info")
        assert f"parent_backup_id={parent}\n" in info, info

    # The target lies after the newest incremental, between two commits.
    committed = INCREMENTALS * ROWS_PER_STEP
    target = stack.psql("SELECT clock_timestamp()")
    stack.psql(f"INSERT INTO pitr SELECT 0, g FROM generate_series(1, {ROWS_AFTER_TARGET}) g")
    stack.switch_and_archive_wal()
    data = f"{RESTORE_DIR}/data"
    printed = stack.exec(
        "barman", "barman-supervisor", "restore", "pg", data, "--target-time", target, timeout=600
    )
    assert ids[-1] in printed, printed
    pg_ctl = f"/usr/lib/postgresql/{MAJOR}/bin/pg_ctl"
    options = f"-c listen_addresses='' -c unix_socket_directories={PITR_SOCKET} -p {PITR_PORT}"
    stack.exec("barman", "mkdir", "-p", PITR_SOCKET)
    stack.exec("barman", pg_ctl, "-D", data, "-l", f"{RESTORE_DIR}/log", "-o", options, "start")
    try:
        count = wait_until(
            lambda: _count_at_target(stack), 120, what="recovery paused at the target", interval=1
        )
        log = stack.exec_status("barman", "cat", f"{RESTORE_DIR}/log")[1]
        assert count == committed, log[-3000:]
    finally:
        stack.exec("barman", pg_ctl, "-D", data, "-m", "immediate", "stop")
        stack.exec("barman", "rm", "-rf", RESTORE_DIR, PITR_SOCKET)

    # The restore drill (every minute) restores an incremental and queries it.
    drill = wait_until(
        functools.partial(_drill_of, stack, set(ids[1:])),
        240,
        what="a passing drill of an incremental backup",
        interval=2,
    )
    assert drill["rows"] is not None and drill["databases"] >= 1, drill

    # With no backup left to build on (newest first, each one deleted), the incremental
    # schedule takes a full (an incremental that was already running when its parent went
    # counts as a broken chain: the one after it is the full).
    # The daemon holds the newest verified backup (here the chain's full) with `barman keep`, and
    # Barman refuses to delete a kept backup: a person releases the keep first, in the same
    # breath (docs/backups.md); releasing a backup with no keep changes nothing.
    for backup_id in reversed(ids):
        release_and_delete = f"barman keep --release pg {backup_id} && barman delete pg {backup_id}"
        # Barman refuses a delete while another of its commands holds the server's lock (the
        # daemon's archive-wal or check at that moment): asked again until it is free.
        wait_until(
            functools.partial(_succeeds, stack, release_and_delete),
            DELETE_TIMEOUT_S,
            what=f"backup {backup_id} released and deleted",
            interval=2,
        )
    full = wait_until(
        functools.partial(_new_full, stack, set(ids)),
        240,
        what="a full from the incremental schedule",
        interval=2,
    )
    assert full["backup_id"] not in ids, full


def _new_full(stack: Stack, old: set[str]) -> dict[str, Any] | None:
    fulls = [
        b for b in _done(stack) or [] if b["backup_type"] == "full" and b["backup_id"] not in old
    ]
    return fulls[-1] if fulls else None


def _drill_of(stack: Stack, backup_ids: set[str]) -> dict[str, Any] | None:
    """The last drill, once it passed on one of these backups."""
    server = stack.server_status()
    drill: dict[str, Any] | None = server["drill"] if server else None
    return drill if drill and drill["ok"] is True and drill["backup_id"] in backup_ids else None


def _succeeds(stack: Stack, command: str) -> bool:
    return stack.exec_status("barman", "sh", "-c", command, timeout=300)[0] == 0
