"""Markdown from ``bench/results/latest.json``: the full tables (``latest.md``) and the short
"Performance" section for the README (``performance.md``, also printed).

``python -m bench.report [latest.json]`` regenerates both without re-running anything, so
the wording can change without paying for another 15-minute run.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_LABELS = {
    "daemon_60": "daemon, default intervals",
    "daemon_5": "daemon, BARMAN_CRON_INTERVAL=5",
    "baseline": "baseline, system cron each minute",
}
# A one-minute load average under one core's worth at the start means nothing else was running on
# the machine; the load at the end includes the bench's own last scenario.
QUIET_LOAD = 1.0
HTTP_PATHS = ("/healthz", "/readyz")


def get(data: Any, *keys: str | int) -> Any:
    """``data[k1][k2]...`` or None when any step is missing: results may be partial."""
    for key in keys:
        if isinstance(data, dict) and key in data:
            data = data[key]
        else:
            return None
    return data


def num(value: Any, digits: int = 2, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:.{digits}f}{unit}"


def spread(stats: Any, digits: int = 2, unit: str = "") -> str:
    """'median / p95 (n)' from a summary."""
    if not get(stats, "n"):
        return "n/a"
    return f"{num(stats['median'], digits)} / {num(stats['p95'], digits)}{unit} (n={stats['n']})"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def quietness(load_at_start: Any) -> str:
    """Whether the run started on a quiet machine, judged from the one-minute load average."""
    if not load_at_start:
        return "load unknown"
    return "quiet" if load_at_start[0] < QUIET_LOAD else "not quiet: other work was running"


def machine_line(results: dict[str, Any]) -> str:
    m = results.get("meta", {})
    return (
        f"{m.get('nproc')} cores ({m.get('cpu')}), {m.get('memory_gb')} GB RAM, "
        f"kernel {m.get('kernel')}, {m.get('os')}, {m.get('postgresql')}, {m.get('barman')}, "
        f"Python {m.get('python')}, barman-supervisor {m.get('barman_supervisor')} "
        f"({m.get('commit')}); load average {m.get('loadavg_at_start')} at start "
        f"({quietness(m.get('loadavg_at_start'))}), {m.get('loadavg_at_end')} at end (the "
        f"bench's own work included); whole run "
        f"{num(m.get('runtime_s'), 0)} s"
    )


def error_of(section: Any) -> str | None:
    return str(section["error"]) if isinstance(section, dict) and "error" in section else None


# Sections -------------------------------------------------------------------------------------
def protect_section(r: Any) -> str:
    milestones = (
        "slot_created",
        "streaming_running",
        "first_wal_archived",
        "check_ok",
        "backup_done",
    )
    rows = [
        [
            name.replace("_", " "),
            num(get(r, "daemon", "milestones_s", name)),
            num(get(r, "baseline", "milestones_s", name)),
            num(get(r, "baseline_over_daemon", name), 1, "x"),
        ]
        for name in milestones
    ]
    return "\n".join(
        [
            table(
                ["from PostgreSQL ready to", "daemon (s)", "baseline (s)", "baseline / daemon"],
                rows,
            ),
            "",
            f"Baseline: first cron tick {num(get(r, 'baseline', 'cron_wait_s'))} s after "
            "PostgreSQL was ready (uniform in 0-60 s: it depends on when in the minute "
            "PostgreSQL came up); "
            f"`switch-wal` run {get(r, 'baseline', 'switch_wal_attempts')} time(s), `check` "
            f"{get(r, 'baseline', 'check_attempts')} time(s); `backup --wait` took "
            f"{num(get(r, 'baseline', 'backup_command_s'))} s (spread checkpoint, the default). "
            f"The daemon noticed PostgreSQL {num(get(r, 'daemon', 'noticed_postgres_s'))} s after "
            "it was ready (retry back-off) and used an immediate checkpoint.",
        ]
    )


def freshness_section(r: Any) -> str:
    rows = [
        [
            TARGET_LABELS.get(name, name),
            spread(get(t, "commit_to_partial_ms")),
            spread(get(t, "switch_to_streaming_s"), 3),
            spread(get(t, "switch_to_wals_s"), 1),
            str(get(t, "switches_not_archived")),
        ]
        for name, t in (get(r, "targets") or {}).items()
    ]
    headers = [
        "set-up",
        "commit -> streaming/*.partial, ms (median / p95)",
        "pg_switch_wal() -> complete in streaming/, s",
        "pg_switch_wal() -> wals/, s",
        "not archived in time",
    ]
    return "\n".join(
        [
            table(headers, rows),
            "",
            f"{get(r, 'switch_samples')} switches {get(r, 'switch_period_s')} s apart, at every "
            "phase of the cron cycles; a writer committed every 0.2 s. Completed segments move "
            "to `wals/` only when `archive-wal` runs: every WAL_ARCHIVE_INTERVAL when WAL waits, "
            "and on `barman cron` (every 5 s in the second row); that interval bounds the delay "
            "(uniform in 0..interval), streaming itself is not affected by it.",
        ]
    )


def backup_section(r: Any) -> str:
    rows = []
    for key, s in (r or {}).items():
        if not isinstance(s, dict):
            continue
        rows.append(
            [
                key.replace("scale_", "pgbench -s "),
                num(s.get("cluster_mb"), 0),
                spread(get(s, "seconds", "daemon")),
                spread(get(s, "seconds", "barman")),
                spread(get(s, "seconds", "pg_basebackup")),
                num(s.get("daemon_over_barman"), 2, "x"),
                num(s.get("daemon_over_pg_basebackup"), 2, "x"),
            ]
        )
    headers = [
        "data",
        "cluster MB",
        "daemon, s",
        "barman backup, s",
        "pg_basebackup, s",
        "daemon / barman",
        "daemon / pg_basebackup",
    ]
    return table(headers, rows) + (
        "\n\nWall time (median / p95). All with an immediate checkpoint, each after a CHECKPOINT; "
        "`pg_basebackup -X none -c fast` as Barman runs it; rounds alternate the order."
    )


def footprint_section(r: Any) -> str:
    rows = [
        [
            TARGET_LABELS.get(name, name),
            str(d.get("cron_cycles")),
            num(d.get("daemon_cpu_pct"), 2, " %"),
            num(d.get("tree_cpu_pct"), 2, " %"),
            num(d.get("tree_cpu_per_cycle_s"), 3),
            num(get(d, "daemon_rss_mb", "max"), 1),
            num(get(d, "tree_rss_mb", "max"), 1),
        ]
        for name, d in (get(r, "daemons") or {}).items()
    ]
    headers = [
        "daemon",
        "cron cycles",
        "daemon CPU",
        "daemon + children CPU",
        "CPU s / cycle (all)",
        "daemon RSS max MB",
        "with children MB",
    ]
    tree, alone = get(r, "model", "tree") or {}, get(r, "model", "daemon") or {}
    return "\n".join(
        [
            table(headers, rows),
            "",
            f"Idle window {num(get(r, 'window_s'), 0)} s, no writes, no backup. Split into a fixed "
            f"part and a per-cycle part: the daemon with its children uses "
            f"{num(tree.get('base_cpu_pct'), 3)} % CPU plus "
            f"{num(tree.get('per_cycle_cpu_s'), 3)} CPU s per `barman cron` cycle, i.e. "
            f"{num(tree.get('per_hour_at_60s_cpu_s'), 0)} CPU s per hour if `barman cron` ran "
            "every minute (the daemon process alone: "
            f"{num(alone.get('per_hour_at_60s_cpu_s'), 0)} CPU s per hour); the default cron "
            "interval is longer, so this is an upper bound. "
            "PostgreSQL's walsenders are not counted; the scale scenario below measures idle CPU "
            "with every interval at its default.",
        ]
    )


def scale_section(r: Any) -> str:
    rows = []
    for s in (r or {}).values():
        if not isinstance(s, dict) or "servers" not in s:
            continue
        idle = s.get("idle") or {}
        shared = s.get("shared_backup_minute") or {}
        rows.append(
            [
                str(s.get("servers")),
                f"{s.get('servers_ready')} in {num(s.get('startup_all_ready_s'), 0)} s",
                str(s.get("first_backups_done")),
                str(s.get("ready_after_idle", "n/a")),
                f"{num(idle.get('tree_cpu_s_per_min'), 2)} ({num(idle.get('window_s'), 0)} s)",
                num(idle.get("daemon_cpu_s_per_min"), 2),
                num(get(s, "memory_idle", "rss_mb"), 0),
                num(get(s, "memory_idle", "pss_mb"), 0),
                num(s.get("shutdown_s"), 0),
                num(shared.get("restart_all_ready_s"), 0),
                f"{num(get(shared, 'start_delay_s', 'median'), 0)} / "
                f"{num(get(shared, 'start_delay_s', 'max'), 0)}",
                f"{shared.get('backups_done')} in {num(shared.get('all_done_s'), 0)} s",
                "/".join(str(x) for x in s.get("loadavg_before") or []),
            ]
        )
    headers = [
        "servers",
        "ready",
        "first backups DONE",
        "ready after idle",
        "idle CPU s/min, tree (window)",
        "daemon",
        "RSS MB",
        "PSS MB",
        "shutdown s",
        "restart: ready s",
        "shared minute: start delay median / max s",
        "shared minute: DONE",
        "load average at start",
    ]
    return table(headers, rows) + (
        "\n\nEach server its own PostgreSQL cluster (copies of one template), default "
        f"intervals, a start-up backup of a ~{num(get(r, 'database', 'cluster_mb'), 0)} MB "
        "cluster for every server. Ready: every server's start-up through (first backup "
        "included), from the daemon's start. Idle: CPU of the daemon and every child over the "
        "window after that (a window of 600 s or more includes one `barman cron`). Shared "
        "minute: the daemon restarted with one daily schedule due for all servers at the same "
        "minute; BACKUP_CONCURRENCY at its default. Ready after idle: servers `/readyz` "
        "called ready at the end of the idle window."
        + "".join(
            f" The {s['servers']}-server row was measured apart: {s['measured_apart']}."
            for s in (r or {}).values()
            if isinstance(s, dict) and s.get("measured_apart")
        )
    )


def health_section(r: Any) -> str:
    if not get(r, "available"):
        return f"Not available: {get(r, 'reason') or error_of(r) or 'not measured'}."
    rows = [
        [
            phase,
            path,
            spread(get(r, phase, path, "latency_ms")),
            json.dumps(get(r, phase, path, "statuses")),
        ]
        for phase in ("during_backup", "idle")
        for path in ("/healthz", "/readyz")
    ]
    by_clients = get(r, "readyz_during_backup_by_clients") or {}
    rows += [
        [
            f"during a backup by hand, {clients} clients",
            "/readyz",
            spread(get(measured, "/readyz", "latency_ms")),
            json.dumps(get(measured, "/readyz", "statuses")),
        ]
        for clients, measured in by_clients.items()
    ]
    return table(["when", "path", "latency ms (median / p95)", "statuses"], rows) + (
        f"\n\n{get(r, 'workers')} concurrent clients unless said; p99 is in latest.json."
    )


def drill_section(r: Any) -> str:
    steps = get(r, "drill_steps_median_s") or {}
    rows = [
        [
            "restore drill: recover + start + query (`restore_s`)",
            spread(get(r, "drill_restore_s")),
        ],
        ["restore drill, whole (with verify, stop, clean-up)", spread(get(r, "drill_total_s"))],
        ["`cp -a` of the same backup's data directory", spread(get(r, "copy_s"))],
        ["drill / cp -a (medians)", num(get(r, "ratio_drill_to_copy"), 2, "x")],
    ]
    step_text = ", ".join(
        f"{name.removesuffix('_s')} {num(value)}" for name, value in steps.items()
    )
    return "\n".join(
        [
            table(["", "seconds (median / p95)"], rows),
            "",
            f"pgbench -s {get(r, 'pgbench_scale')}, backup {num(get(r, 'backup_mb'), 0)} MB, "
            f"{get(r, 'rows')} rows counted by the drill's query. Median per step, s: "
            f"{step_text or 'n/a'}. Drill and copy alternate so that a drift in machine load "
            "favours neither; both write to the same scratch disk.",
        ]
    )


def offsite_section(r: Any) -> str:
    up, lag, restore = get(r, "upload") or {}, get(r, "wal_lag_1_per_s") or {}, get(r, "restore")
    rows = [
        ["daemon's copy of the backup (`offsite_backup_copied`)", num(get(up, "daemon_copy_s"))],
        ["barman-cloud-backup by hand, same backup", spread(get(up, "barman_cloud_backup_s"))],
        ["boto3 `upload_file` of the same bytes (one tar)", spread(get(up, "boto3_upload_file_s"))],
        [
            "throughput barman-cloud / boto3 (medians; target >= 0.8)",
            num(get(up, "throughput_ratio"), 2, "x"),
        ],
        *(
            [
                f"barman-cloud-backup --{name} (OFFSITE_COMPRESSION={name}), same backup",
                f"{num(get(c, 'seconds'))} ({num(get(c, 'store_mb'), 0)} MB in the store)",
            ]
            for name, c in (get(up, "compressed") or {}).items()
        ),
        ["1 WAL segment/s: switch -> local archive", spread(get(lag, "switch_to_local_s"))],
        ["1 WAL segment/s: switch -> in the bucket", spread(get(lag, "switch_to_store_s"))],
        ["restore from the local volume (`restore`)", num(get(restore, "local_s"))],
        ["restore from the bucket alone (`restore-offsite`)", num(get(restore, "from_store_s"))],
    ]
    return "\n".join(
        [
            table(["", "seconds (median / p95)"], rows),
            "",
            f"Backup {num(get(up, 'backup_mb'), 0)} MB to moto_server on 127.0.0.1 (in memory, "
            f"same cores); {get(lag, 'copied')}/{get(lag, 'segments')} segments copied."
            + (f" Measured apart: {r['measured_apart']}." if get(r, "measured_apart") else ""),
        ]
    )


def http_section(results: Any) -> str:
    """Scenario 9 (bench/http.py): the table of latest.md's section and of http.md."""
    if not isinstance(results, dict) or "after" not in results:
        return f"Not available: {error_of(results) or 'not measured'}."
    rows = []
    for variant in ("before", "after", "after_tls"):
        measured = results.get(variant)
        if not isinstance(measured, dict):
            continue
        for path in HTTP_PATHS:
            latency = measured[path]["latency_ms"]
            rows.append(
                f"| {variant} | {path} | {latency['median']} | {latency['p99']} | "
                f"{latency['max']} | {json.dumps(measured[path]['statuses'])} | "
                f"{measured['loadavg_at_start']} |"
            )
    return "\n".join(
        [
            f"{results['idle_connections']} idle connections and {results['trickling_clients']} "
            f"clients trickling a byte a second, {results['window_s']} s of probes one at a time "
            f"(no answer in {results['probe_timeout_s']} s: status 0). Target: p99 under "
            f"{results['target_p99_ms']} ms.",
            "",
            "| variant | path | median ms | p99 ms | max ms | statuses | load average at start |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *rows,
        ]
    )


def failover_section(r: Any) -> str:
    rows = [
        [name.replace("_", " "), spread(stats)]
        for name, stats in (get(r, "milestones_s") or {}).items()
    ]
    header = ["from the promoted standby accepting writes to", "seconds (median / p95)"]
    return "\n".join(
        [
            table(header, rows),
            "",
            f"Default intervals; {len(get(r, 'samples') or [])} failover(s) of a primary and its "
            "streaming standby (both in a multi-host PG_HOST), the old primary rewound and "
            "rejoined between two. Protected = WAL of the new timeline archived and /readyz "
            f"green; target <= {get(r, 'target_s')} s: "
            f"{'met' if get(r, 'within_target') else 'NOT met'}. Load average at the end "
            f"{get(r, 'load_average')}.",
        ]
    )


def peer_section(r: Any) -> str:
    """Backup and restore beside pgBackRest, per compression: ``python -m bench.peer`` (run alone;
    not a phase of ``make bench``)."""
    rows = [
        [
            f"{what} ({compression})",
            num(get(r, "daemon", f"{what}_s", compression)),
            num(get(r, "pgbackrest", f"{what}_s", compression)),
            num(get(r, "daemon_over_pgbackrest", compression, what), 2, "x"),
            "/".join(
                num(sample.get("load1"), 1)
                for sample in get(r, "runs", compression, "daemon", what) or []
            ),
        ]
        for compression in ("none", "zstd")
        for what in ("backup", "restore")
    ]
    headers = ["full", "daemon, s", "pgBackRest, s", "daemon / pgBackRest", "load1 per run"]
    stores = ", ".join(
        f"{compression}: daemon {num(get(r, 'daemon', 'store_mb', compression), 0)} MB, "
        f"pgBackRest {num(get(r, 'pgbackrest', 'store_mb', compression), 0)} MB"
        for compression in ("none", "zstd")
    )
    return table(headers, rows) + (
        f"\n\nMedians. {get(r, 'pgbackrest_version')}, local repository, process-max = "
        f"{get(r, 'cores')}, start-fast; the daemon's first backup (BACKUP_COMPRESSION) and "
        "`barman-supervisor restore` timed whole (plan included). Same cluster of "
        f"{num(get(r, 'cluster_mb'), 0)} MB, same disk; rounds alternate the order. Stored: "
        f"{stores}. Targets: daemon / pgBackRest <= 1.0 for backup and restore."
    )


def rpo_section(r: Any) -> str:
    """Scenario 11: the recovery point, pg_switch_wal() -> wals/ -> the bucket."""
    burst = get(r, "burst") or {}
    rows = [
        [f"{phase}: switch -> {leg}", num(get(data, leg, "p50_s")), num(get(data, leg, "p95_s"))]
        for phase, data in (("1 segment/s", r), (f"burst of {get(burst, 'segments')}", burst))
        for leg in ("wals", "bucket")
    ]
    return table(["", "p50, s", "p95, s"], rows) + (
        f"\n\nDefault settings except the store (moto_server on 127.0.0.1). Burst drained: "
        f"{get(burst, 'drained')} in {num(get(burst, 'drain_s'), 1)} s "
        f"({get(burst, 'in_wals')} in wals/, {get(burst, 'in_bucket')} in the bucket); "
        f"{get(r, 'archive_runs')} archive-wal runs; load1 {num(get(r, 'load1_before'), 1)} -> "
        f"{num(get(r, 'load1_after'), 1)}. Targets: wals/ p50 <= 1 s, p95 <= 2 s; bucket "
        "p50 <= 3 s, p95 <= 6 s."
    )


SECTIONS = (
    ("protect", "1. Time to protected", protect_section),
    ("freshness", "2. WAL freshness", freshness_section),
    ("backup_cost", "3. Backup cost", backup_section),
    ("footprint", "4. Idle footprint", footprint_section),
    ("scale", "5. Scale", scale_section),
    ("health", "6. Health endpoint under load", health_section),
    ("drill", "7. Restore drill", drill_section),
    ("offsite", "8. Off-site copy (S3)", offsite_section),
    ("http", "9. HTTP port under idle and slow clients", http_section),
    ("failover", "10. Failover followed", failover_section),
    ("rpo", "11. Recovery point", rpo_section),
    ("peer", "12. Backup and restore beside pgBackRest", peer_section),
)


def render_latest(results: dict[str, Any]) -> str:
    parts = ["# Benchmark results", "", machine_line(results)]
    for key, title, render in SECTIONS:
        section = results.get(key)
        body = f"Failed: {error_of(section)}" if error_of(section) else render(section)
        parts += ["", f"## {title}", "", body]
    return "\n".join(parts) + "\n"


def scale_rows(scale: Any) -> list[list[str]]:
    """One headline row per server count of the scale scenario."""
    rows: list[list[str]] = []
    for s in (scale or {}).values():
        if isinstance(s, dict) and "servers" in s:
            rows.append(
                [
                    f"{s['servers']} server{'' if s['servers'] == 1 else 's'} on one daemon",
                    f"{s.get('servers_ready')}/{s['servers']} ready in "
                    f"{num(s.get('startup_all_ready_s'), 0)} s"
                    + (
                        f", {s['ready_after_idle']} still ready after the idle window"
                        if "ready_after_idle" in s
                        else ""
                    )
                    + "; idle "
                    f"{num(get(s, 'idle', 'tree_cpu_s_per_min'), 1)} CPU s/min; PSS "
                    f"{num(get(s, 'memory_idle', 'pss_mb'), 0)} MB",
                    "",
                ]
            )
    return rows


def health_rows(health: Any) -> list[list[str]]:
    """Headline rows of the health endpoints' latency during a backup."""
    rows: list[list[str]] = []
    for clients, measured in (get(health, "readyz_during_backup_by_clients") or {}).items():
        rows.append(
            [
                f"/readyz p50 / p99 during a backup, {clients} clients",
                f"{num(get(measured, '/readyz', 'latency_ms', 'median'), 1)} / "
                f"{num(get(measured, '/readyz', 'latency_ms', 'p99'), 1)} ms",
                "",
            ]
        )
    rows.append(
        [
            "/healthz p50 / p99 during a backup",
            (
                f"{num(get(health, 'during_backup', '/healthz', 'latency_ms', 'median'), 1)} / "
                f"{num(get(health, 'during_backup', '/healthz', 'latency_ms', 'p99'), 1)} ms"
                if get(health, "available")
                else "not available (no HTTP server yet)"
            ),
            "",
        ]
    )
    return rows


def offsite_rows(offsite: Any) -> list[list[str]]:
    """Headline rows of the off-site copy: upload, compressed uploads, restore."""
    rows: list[list[str]] = []
    up, restore = get(offsite, "upload"), get(offsite, "restore")
    if up:
        rows.append(
            [
                f"off-site copy of a {num(get(up, 'backup_mb'), 0)} MB backup to S3 on 127.0.0.1",
                f"{num(get(up, 'daemon_copy_s'), 1)} s (barman-cloud-backup, "
                f"{num(get(up, 'throughput_ratio'), 2)}x boto3 `upload_file`)",
                f"boto3 `upload_file` {num(get(up, 'boto3_upload_file_s', 'median'), 1)} s",
            ]
        )
    compressed = get(up, "compressed") or {}
    if compressed:
        rows.append(
            [
                "the same copy compressed on the way (OFFSITE_COMPRESSION)",
                "; ".join(
                    f"{name} {num(get(c, 'seconds'), 1)} s, {num(get(c, 'store_mb'), 0)} MB stored"
                    for name, c in compressed.items()
                ),
                f"{num(get(up, 'backup_mb'), 0)} MB uncompressed",
            ]
        )
    if restore:
        rows.append(
            [
                "restore from the bucket alone vs from the local volume",
                f"{num(get(restore, 'from_store_s'), 1)} s",
                f"local {num(get(restore, 'local_s'), 1)} s",
            ]
        )
    return rows


def headline_rows(results: dict[str, Any]) -> list[list[str]]:
    """The few numbers a README reader needs, each with its comparison."""
    p, f = results.get("protect"), get(results, "freshness", "targets") or {}
    rows = [
        [
            "PostgreSQL ready -> first backup DONE",
            num(get(p, "daemon", "milestones_s", "backup_done"), 1, " s"),
            num(get(p, "baseline", "milestones_s", "backup_done"), 1, " s")
            + " (cron + manual steps)",
        ],
        [
            "commit -> in Barman's streaming/*.partial (median)",
            num(get(f, "daemon_60", "commit_to_partial_ms", "median"), 1, " ms"),
            num(get(f, "baseline", "commit_to_partial_ms", "median"), 1, " ms"),
        ],
        [
            "pg_switch_wal() -> in wals/ (median / p95)",
            f"{num(get(f, 'daemon_60', 'switch_to_wals_s', 'median'), 1)} / "
            f"{num(get(f, 'daemon_60', 'switch_to_wals_s', 'p95'), 1)} s "
            f"({num(get(f, 'daemon_5', 'switch_to_wals_s', 'median'), 1)} s with interval 5)",
            f"{num(get(f, 'baseline', 'switch_to_wals_s', 'median'), 1)} / "
            f"{num(get(f, 'baseline', 'switch_to_wals_s', 'p95'), 1)} s",
        ],
    ]
    for s in (results.get("backup_cost") or {}).values():
        if isinstance(s, dict) and "seconds" in s:
            rows.append(
                [
                    f"full backup, {num(s.get('cluster_mb'), 0)} MB cluster",
                    f"{num(get(s, 'seconds', 'daemon', 'median'), 1, ' s')} "
                    f"({num(s.get('daemon_over_pg_basebackup'), 2, 'x')} pg_basebackup)",
                    f"barman backup {num(get(s, 'seconds', 'barman', 'median'), 1, ' s')}, "
                    f"pg_basebackup {num(get(s, 'seconds', 'pg_basebackup', 'median'), 1, ' s')}",
                ]
            )
    d = results.get("drill")
    if get(d, "drill_restore_s", "n"):
        rows.append(
            [
                "restore drill (recover + start + query) vs cp -a, "
                f"{num(get(d, 'backup_mb'), 0)} MB",
                f"{num(get(d, 'drill_restore_s', 'median'), 1, ' s')} "
                f"({num(get(d, 'ratio_drill_to_copy'), 1, 'x')} cp -a)",
                f"cp -a {num(get(d, 'copy_s', 'median'), 1, ' s')} (files only, not proven)",
            ]
        )
    tree = get(results, "footprint", "model", "tree") or {}
    d60 = get(results, "footprint", "daemons", "daemon_60") or {}
    rows.append(
        [
            "idle daemon, `barman cron` every 60 s: CPU per hour, RSS",
            f"{num(tree.get('per_hour_at_60s_cpu_s'), 0)} CPU s/h with children; daemon RSS "
            f"{num(get(d60, 'daemon_rss_mb', 'max'), 0)} MB, "
            f"{num(get(d60, 'tree_rss_mb', 'max'), 0)} MB with streaming",
            "cron: same Barman processes, no resident daemon",
        ]
    )
    rows += scale_rows(results.get("scale")) + health_rows(results.get("health"))
    rows += offsite_rows(results.get("offsite"))
    failover = get(results, "failover", "milestones_s")
    if get(failover, "protected", "n"):
        rows.append(
            [
                "failover: promoted standby accepting writes -> protected again (median / max)",
                f"{num(get(failover, 'protected', 'median'), 1)} / "
                f"{num(get(failover, 'protected', 'max'), 1)} s, default intervals",
                "before issue 23: unprotected until a person acts",
            ]
        )
    return rows


def render_performance(results: dict[str, Any]) -> str:
    return "\n".join(
        [
            "## Performance",
            "",
            "Measured by `make bench` against PostgreSQL 15 on 127.0.0.1: "
            f"{machine_line(results)}. "
            "Baseline: the same Barman driven by a `barman cron` every minute (system cron) and "
            "the manual commands of Barman's documentation. Full tables: "
            "`bench/results/latest.md`.",
            "",
            table(["", "barman-supervisor", "baseline"], headline_rows(results)),
            "",
        ]
    )


def write_reports(results: dict[str, Any], directory: Path) -> str:
    """Write latest.md and performance.md; return the Performance section."""
    section = render_performance(results)
    (directory / "latest.md").write_text(render_latest(results))
    (directory / "performance.md").write_text(section)
    return section


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    source = Path(args[0]) if args else RESULTS / "latest.json"
    results = json.loads(source.read_text())
    print(write_reports(results, source.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
