"""Recovery point (issue 27): a completed WAL segment is archived and copied off-site at once,
not at the next interval. With WAL_ARCHIVE_INTERVAL and OFFSITE_INTERVAL at their maximum (an
hour), a ``pg_switch_wal()`` reaches ``wals/`` and the store (a real S3 API server) within
seconds, and neither interval job ran in between: the WAL watcher started both.

Barman archives a completed segment only once the next ``.partial`` exists, i.e. once the
primary wrote WAL after the switch: the test commits a transaction after it, as a server in use
does.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.support.daemon import READY
from tests.support.offsite import Offsite, offsite_daemon
from tests.support.poll import wait_until

pytestmark = pytest.mark.integration
HOUR = "3600"
# Generous bounds on what takes about a second: only a hung watcher fails them.
REACH_TIMEOUT_S = 20
# A scheduled run an hour away cannot have run during the test.
FAR_AWAY = timedelta(minutes=50)


@pytest.fixture(scope="module")
def offsite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Offsite]:
    with offsite_daemon(
        tmp_path_factory.mktemp("rpo"),
        WAL_ARCHIVE_INTERVAL=HOUR,
        OFFSITE_INTERVAL=HOUR,
        HEALTH_INTERVAL="1",
    ) as offsite:
        offsite.daemon.wait_for(READY.event, READY.timeout, **READY.fields)
        yield offsite


def test_a_switched_segment_reaches_wals_and_the_store_without_an_interval_job(
    offsite: Offsite,
) -> None:
    daemon = offsite.daemon
    segment = offsite.pg.sql("SELECT pg_walfile_name(pg_switch_wal())")
    offsite.pg.sql("SELECT txid_current()")
    archived = daemon.home / "pg" / "wals" / segment[:16] / segment
    wait_until(archived.exists, timeout=REACH_TIMEOUT_S, what=f"{segment} in wals/")
    wait_until(
        lambda: segment in offsite.store_wal(),
        timeout=REACH_TIMEOUT_S,
        what=f"{segment} in the bucket",
    )
    assert not daemon.find("job_started", job="archive_wal", trigger="interval")
    assert daemon.find("job_started", job="archive_wal", trigger="segment")
    assert daemon.find("wal_watch_started", server="pg")
    code, status = offsite.probe.json("/status")
    assert code in (200, 503), code
    next_runs = status["servers"]["pg"]["next_runs"]
    for job in ("archive", "offsite-wal"):
        when = datetime.fromisoformat(next_runs[job])
        assert when - datetime.now(when.tzinfo) > FAR_AWAY, (job, when)
    assert not list(Path(daemon.home / "pg" / "streaming").glob(f"{segment}*"))
    # The recovery point is visible: the newest WAL's age in wals/ and in the store.
    ages = wait_until(
        lambda: recovery_points(offsite),
        timeout=REACH_TIMEOUT_S,
        what="wal_newest_age_seconds for wals/ and the store",
    )
    assert set(ages) == {"local", "offsite"}, ages
    assert all(0 <= age < FAR_AWAY.total_seconds() for age in ages.values()), ages


def recovery_points(offsite: Offsite) -> dict[str, float] | None:
    metrics = offsite.probe.get("/metrics")[1]
    ages = {
        where: float(line.rsplit(" ", 1)[1])
        for where in ("local", "offsite")
        for line in metrics.splitlines()
        if line.startswith(
            f'barman_supervisor_wal_newest_age_seconds{{server="pg",where="{where}"}}'
        )
    }
    return ages if len(ages) == 2 else None
