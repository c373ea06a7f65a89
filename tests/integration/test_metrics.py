"""A real scrape of a daemon protecting a real PostgreSQL: prometheus-barman-exporter's names
agree with what Barman itself says, and the ages and limits are there with sane values.

One daemon, through its start-up (first backup DONE), scraped once; the scrape is compared with
Barman's own ``list-backups`` and ``show-backup`` for the same daemon's configuration.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.daemon import Daemon, running_daemon
from tests.support.poll import wait_until
from tests.support.postgres import cluster

pytestmark = pytest.mark.integration

BACKUP_MAX_AGE_S = 3 * 3600
WAL_MAX_AGE_S = 3600
DISK_MIN_FREE_MIB = 64
# Checks `barman check` always has for a streaming server, named as the exporter names them
# (Barman's JSON keys).
EXPECTED_CHECKS = {"postgresql", "wal_level", "replication_slot", "receive_wal_running"}

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Scrape:
    """``/metrics`` parsed: each sample's value by name, then by its labels (sorted pairs)."""

    samples: dict[str, dict[Labels, float]]
    # Taken before the daemon started and after the scrape: every moment served lies between.
    started: float
    scraped: float

    def value(self, name: str, **labels: str) -> float:
        return self.samples[name][tuple(sorted({"server": "pg", **labels}.items()))]

    def served(self, name: str) -> bool:
        return bool(self.samples.get(name))


def parse(text: str) -> dict[str, dict[Labels, float]]:
    samples: dict[str, dict[Labels, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, Scrape]]:
    with cluster() as pg:
        pg.init()
        pg.sql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
        started = time.time()
        with running_daemon(
            tmp_path_factory.mktemp("metrics"),
            pg,
            HEALTH_INTERVAL="1",
            BACKUP_MAX_AGE=f"{BACKUP_MAX_AGE_S}s",
            WAL_MAX_AGE=f"{WAL_MAX_AGE_S}s",
            DISK_MIN_FREE=f"{DISK_MIN_FREE_MIB}M",
        ) as daemon:
            # Protected: checked, streaming, the backup listed; then one scrape.
            wait_until(lambda: daemon.probe.get("/readyz")[0] == 200, 120, what="/readyz 200")
            code, text = daemon.probe.get("/metrics")
            assert code == 200, text
            yield daemon, Scrape(parse(text), started, time.time())


def done_backup(daemon: Daemon) -> dict[str, Any]:
    (backup,) = [b for b in daemon.backups() if b["status"] == "DONE"]
    return backup


def test_exporter_names_agree_with_barman(scraped: tuple[Daemon, Scrape]) -> None:
    daemon, scrape = scraped
    backup = done_backup(daemon)
    shown = daemon.barman("show-backup", "pg", backup["backup_id"])["pg"]
    copy_time = shown["base_backup_information"]["copy_time_seconds"]
    end = float(backup["end_time_timestamp"])

    assert scrape.value("barman_backup_size", number="1") == backup["size_bytes"]
    assert scrape.value("barman_backup_wal_size", number="1") == backup["wal_size_bytes"]
    assert len(scrape.samples["barman_backup_size"]) == 1
    assert scrape.value("barman_backups_total") == 1
    assert scrape.value("barman_backups_failed") == 0
    assert scrape.value("barman_last_backup_copy_time") == pytest.approx(copy_time)
    assert copy_time > 0
    # The backup's start: after the daemon started, before the backup ended (which
    # list-backups gives in whole seconds).
    assert scrape.started <= scrape.value("barman_last_backup") < end + 1
    assert scrape.value("barman_first_backup") == scrape.value("barman_last_backup")


def test_barman_up_is_each_barman_check(scraped: tuple[Daemon, Scrape]) -> None:
    _daemon, scrape = scraped
    up = {dict(labels)["check"]: value for labels, value in scrape.samples["barman_up"].items()}
    own = {
        dict(labels)["check"]: value
        for labels, value in scrape.samples["barman_supervisor_check_ok"].items()
    }

    assert up == own
    assert set(up) >= EXPECTED_CHECKS
    assert all(value == 1 for value in up.values()), up
    assert scrape.started <= scrape.value("barman_metrics_update") <= scrape.scraped


def test_backup_ages_are_since_the_backup_ended(scraped: tuple[Daemon, Scrape]) -> None:
    daemon, scrape = scraped
    end = float(done_backup(daemon)["end_time_timestamp"])
    age = scrape.value("barman_supervisor_last_backup_age_seconds")

    assert 0 <= age <= scrape.scraped - end
    assert scrape.value("barman_supervisor_last_full_backup_age_seconds") == age
    assert scrape.value("barman_supervisor_last_backup_timestamp_seconds") == end
    # PostgreSQL 15 takes no incremental backup, and drills and the off-site copy are off.
    for absent in (
        "barman_supervisor_last_incremental_backup_age_seconds",
        "barman_supervisor_last_drill_age_seconds",
        "barman_supervisor_offsite_last_backup_age_seconds",
    ):
        assert not scrape.served(absent), absent


def test_the_daemons_limits_are_its_settings(scraped: tuple[Daemon, Scrape]) -> None:
    _daemon, scrape = scraped

    assert scrape.value("barman_supervisor_backup_max_age_seconds") == BACKUP_MAX_AGE_S
    assert scrape.value("barman_supervisor_wal_max_age_seconds") == WAL_MAX_AGE_S
    assert scrape.value("barman_supervisor_disk_min_free_bytes") == DISK_MIN_FREE_MIB << 20
    assert scrape.value("barman_supervisor_wal_max_lag_bytes") > 0
    assert scrape.value("barman_supervisor_disk_free_bytes") > DISK_MIN_FREE_MIB << 20
    assert not scrape.served("barman_supervisor_offsite_backup_max_delay_seconds")
    assert scrape.value("barman_supervisor_ready") == 1
