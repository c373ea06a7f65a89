"""No hole in the off-site WAL (issue 24 item 2), against a real S3 API server (moto_server),
real PostgreSQL 15 and real Barman with ``REDUNDANCY 1``:

* the store cut off while WAL is written and two more backups are taken (retention would then
  keep only the newest backup and the WAL after its start) → nothing the store lacks is
  deleted locally: the backup held and every WAL file after its start stay;
* WAL objects deleted from the bucket by hand → the hole is named with its range in /readyz
  (condition offsite), /status and /metrics, and ``restore-offsite`` to the newest point
  refuses in one line naming it, with nothing written.

The tests of this module run in order and share one daemon.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from barman_supervisor.barman.home import BarmanHome
from barman_supervisor.postgres.wal import is_segment_name, segment_number
from tests.support.offsite import Offsite, offsite_daemon, uncompressed_name
from tests.support.poll import wait_until

pytestmark = pytest.mark.integration
SEGMENT_SIZE = 16 * 1024 * 1024
# WAL segments written while the store is cut off.
OUTAGE_SEGMENTS = 4


@pytest.fixture(scope="module")
def offsite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Offsite]:
    with offsite_daemon(
        tmp_path_factory.mktemp("offsite-holes"),
        BARMAN_CRON_INTERVAL="2",
        BACKUP_IMMEDIATE_CHECKPOINT="true",
        HEALTH_INTERVAL="1",
        BARMAN_CHECK_INTERVAL="5",
        OFFSITE_INTERVAL="5",
        OFFSITE_WAL_MAX_LAG="3600",
        RETENTION_POLICY="REDUNDANCY 1",
    ) as offsite:
        yield offsite


def write_and_switch(offsite: Offsite) -> str:
    offsite.pg.sql("INSERT INTO rows SELECT 1")
    return offsite.switch_and_archive()


def take_backup(offsite: Offsite) -> None:
    taken = offsite.daemon.barman_command(
        "backup", "pg", "--immediate-checkpoint", "--wait", "--wait-timeout", "120"
    )
    assert taken.returncode == 0, taken.stderr


def local_backups(offsite: Offsite) -> dict[str, str]:
    """Backup id -> its first WAL segment, for the DONE backups Barman lists."""
    home = BarmanHome(offsite.daemon.home)
    return {
        b["backup_id"]: home.backup_info("pg", b["backup_id"]).begin_wal or ""
        for b in offsite.daemon.backups()
        if b.get("status") == "DONE"
    }


def local_segments(offsite: Offsite) -> set[str]:
    return {name for name in offsite.local_wal() if is_segment_name(name)}


def test_nothing_the_store_lacks_is_deleted_while_it_is_cut_off(offsite: Offsite) -> None:
    first = offsite.daemon.wait_for("offsite_backup_copied", timeout=240)["backup_id"]
    offsite.pg.sql("CREATE TABLE rows (n int)")
    offsite.s3.relay.cut()
    try:
        written = [write_and_switch(offsite) for _ in range(OUTAGE_SEGMENTS)]
        before = local_backups(offsite)
        take_backup(offsite)
        take_backup(offsite)
        after = local_backups(offsite)
        newer = sorted(set(after) - set(before))
        assert len(newer) == 2, after
        # REDUNDANCY 1: Barman's cron deletes the middle backup (neither held nor the newest)
        # and, without the hold, every WAL file before the newest backup's start.
        wait_until(
            lambda: newer[0] not in local_backups(offsite),
            timeout=180,
            what=f"retention deleted {newer[0]}",
        )
        assert first in local_backups(offsite), "the backup the store needs was deleted"
        kept = offsite.daemon.barman_command("keep", "--status", "pg", first)
        assert "full" in kept.stdout, kept.stdout
        newest_begin = after[newer[1]]
        owed = {s for s in written if s < newest_begin}
        assert owed, (written, newest_begin)  # retention would have deleted these
        missing = set(written) - local_segments(offsite)
        assert not missing, f"deleted before reaching the store: {sorted(missing)}"
        assert not set(written) & offsite.store_wal()
        print(
            f"outage: {len(written)} WAL written, {len(owed)} before the newest backup's start "
            f"{newest_begin}, all {len(written)} kept; {newer[0]} deleted, {first} held"
        )
    finally:
        offsite.s3.relay.up()
    wait_until(lambda: set(written) <= offsite.store_wal(), timeout=240, what="backlog drained")


def test_a_hole_in_the_store_is_named_and_restore_offsite_refuses(
    offsite: Offsite, tmp_path: Path
) -> None:
    tail = [write_and_switch(offsite) for _ in range(4)]
    wait_until(lambda: set(tail) <= offsite.store_wal(), timeout=120, what="new WAL in the store")
    segments = sorted(s for s in offsite.store_wal() if is_segment_name(s))
    first_gone, last_gone = segments[-3], segments[-2]
    assert segment_number(last_gone, SEGMENT_SIZE) == segment_number(first_gone, SEGMENT_SIZE) + 1
    for key in offsite.store_wal_keys():
        if uncompressed_name(key.rsplit("/", 1)[1]) in (first_gone, last_gone):
            offsite.s3.client.delete_object(Bucket=offsite.s3.bucket, Key=key)
    named = f"WAL segments {first_gone} to {last_gone} (2) are missing from the store"

    def hole_reason() -> str | None:
        code, document = offsite.probe.json("/readyz")
        reasons = [p["reason"] for p in document["servers"]["pg"] if p["condition"] == "offsite"]
        return next((r for r in reasons if named in r), None) if code == 503 else None

    reason = wait_until(hole_reason, timeout=90, what="/readyz red naming the hole")
    status = offsite.offsite_status()
    assert status["wal_missing"] == 2
    assert status["wal_holes"] == [
        {"first_missing": first_gone, "last_missing": last_gone, "count": 2, "reason": named}
    ]
    metrics = offsite.probe.get("/metrics")[1]
    assert 'barman_supervisor_offsite_wal_missing_segments{server="pg"} 2.0' in metrics
    assert offsite.daemon.find("offsite_wal_hole")
    wait_until(
        lambda: [
            e
            for e in offsite.daemon.find("alert", state="failing")
            if any(named in p for p in e.get("problems", []))
        ],
        timeout=30,
        what="an alert naming the hole",
    )

    destination = tmp_path / "restored"
    refused = offsite.restore_offsite(destination)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    # One error line (the other stderr lines are the command's WARNING log of the programs it
    # ran: the probe for a next timeline's history file finds none).
    errors = [line for line in refused.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and named in errors[0], refused.stderr
    assert errors[0].startswith("barman-supervisor: error: "), refused.stderr
    assert refused.stdout == ""
    assert not destination.exists() or not any(destination.iterdir())
    print(f"hole: {reason!r}; restore-offsite: {errors[0]!r}; stderr: {refused.stderr!r}")
