"""The metrics of prometheus-barman-exporter, served from the daemon's state.

Public Grafana dashboards (grafana.com 13910, 13918) and many alert rules read the names that
exporter (github.com/ahes/prometheus-barman-exporter, 1.0.x) serves, with no prefix. They are
served here with its names, labels and meaning, computed from what the daemon already knows
(no Barman command runs for a scrape), so those dashboards work unchanged. Where the exporter's
meaning is odd it is kept, and said: ``barman_last_backup`` is a backup's *start* (the exporter
reads the backup ID), ``barman_backups_total`` counts DONE and FAILED backups only.
docs/metrics.md lists them beside the daemon's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric

from barman_supervisor.barman.records import Backup, BackupStatus
from barman_supervisor.status.state import ServerState

# What Barman's `status` calls the first and last backup (its DEFAULT_STATUS_FILTER): the files
# are copied, the backup may still wait for its WAL.
_STATUS_COUNTED = (BackupStatus.DONE, BackupStatus.WAITING_FOR_WALS)
# What the exporter's `barman_backups_total` adds up: DONE and FAILED, nothing in between.
_TOTAL_COUNTED = (BackupStatus.DONE, BackupStatus.FAILED)


@dataclass(frozen=True)
class _Family:
    name: str
    doc: str
    labels: tuple[str, ...] = ("server",)


# The exporter's families, its help texts, in its order.
_FAMILIES = (
    _Family("barman_backup_size", "Size of available backups", ("server", "number")),
    _Family("barman_backup_wal_size", "WAL size of available backups", ("server", "number")),
    _Family("barman_backups_total", "Total number of backups"),
    _Family("barman_backups_failed", "Number of failed backups"),
    _Family("barman_last_backup", "Last successful backup timestamp"),
    _Family("barman_last_backup_copy_time", "Last successful backup copy time"),
    _Family("barman_first_backup", "First successful backup timestamp"),
    _Family("barman_up", "Barman status checks", ("server", "check")),
    _Family("barman_metrics_update", "Barman metrics update timestamp"),
)


def exporter_families(servers: Mapping[str, ServerState]) -> list[Metric]:
    """Every exporter family, filled for each server (a family with no sample is still named,
    as the exporter does)."""
    families = {
        family.name: GaugeMetricFamily(family.name, family.doc, labels=list(family.labels))
        for family in _FAMILIES
    }
    for name, server in servers.items():
        _add_backups(families, name, server.backups)
        for check in server.checks:
            families["barman_up"].add_metric([name, check.name], int(check.ok))
        if server.checks_at is not None:
            families["barman_metrics_update"].add_metric([name], server.checks_at)
    return list(families.values())


def _add_backups(
    families: Mapping[str, GaugeMetricFamily], name: str, backups: list[Backup]
) -> None:
    """Newest first, as ``list-backups`` prints them: ``number="1"`` is the newest DONE backup.

    The first and last backup are their start times, as the exporter parses them from the
    backup ID (the local time the backup started); here they are true Unix times."""
    done = sorted(
        (b for b in backups if b.status == BackupStatus.DONE), key=Backup.order_key, reverse=True
    )
    for number, backup in enumerate(done, 1):
        if backup.size_bytes is not None:
            families["barman_backup_size"].add_metric([name, str(number)], backup.size_bytes)
        if backup.wal_size_bytes is not None:
            families["barman_backup_wal_size"].add_metric(
                [name, str(number)], backup.wal_size_bytes
            )
    statuses = [b.status for b in backups]
    total = sum(statuses.count(status) for status in _TOTAL_COUNTED)
    families["barman_backups_total"].add_metric([name], total)
    families["barman_backups_failed"].add_metric([name], statuses.count(BackupStatus.FAILED))
    # The exporter's 0 for a server with no DONE backup is kept: dashboards plot it.
    copy_time = done[0].copy_time_s if done else 0.0
    if copy_time is not None:
        families["barman_last_backup_copy_time"].add_metric([name], copy_time)
    started = sorted(
        moment
        for b in backups
        if b.status in _STATUS_COUNTED and (moment := b.known_time) is not None
    )
    if started:
        families["barman_first_backup"].add_metric([name], started[0])
        families["barman_last_backup"].add_metric([name], started[-1])
