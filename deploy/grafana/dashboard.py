"""The Grafana dashboard of barman-supervisor, built in code with grafana-foundation-sdk.

    .venv/bin/python deploy/grafana/dashboard.py      # writes deploy/grafana/barman-supervisor.json

The JSON is checked in, so Grafana (the compose profile ``monitoring``, or an import by hand)
needs no Python; ``tests/unit/deploy/test_grafana_dashboard.py`` fails while it differs from what
this module builds, and ``tests/integration/test_dashboard.py`` reads a real daemon's
``/metrics`` and fails on any query naming a metric the daemon does not serve.

Built in code rather than written as JSON: a panel is a few lines saying what it shows, the
SDK's typed builders catch a misspelt option that Grafana would ignore silently, and every
query is a plain string here for the tests to read.

Each panel puts a value beside the limit the daemon itself applies (``*_max_*``, ``*_min_*``
gauges carry each server's ``BACKUP_MAX_AGE``, ``WAL_MAX_LAG``, ``DISK_MIN_FREE``, ...), so the
dashboard turns red when ``/readyz`` does, with no threshold copied into it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

OUTPUT = Path(__file__).resolve().parent / "barman-supervisor.json"
UID = "barman-supervisor"
# Panels query the data source picked in the `datasource` variable: the provisioned one in the
# compose profile, any Prometheus when the JSON is imported elsewhere.
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
# Every query is limited to the servers picked in the `server` variable.
SERVERS = 'server=~"$server"'
# Grid units (Grafana's grid is 24 wide).
STAT_WIDTH, STAT_HEIGHT = 4, 4
GRAPH_WIDTH, GRAPH_HEIGHT = 12, 8
REFRESH = "1m"
GREEN, ORANGE, RED = "green", "orange", "red"
# A ratio of a value to its limit turns orange at this share of the limit, red at the limit.
NEAR_LIMIT = 0.8


def metric(name: str, *matchers: str) -> str:
    """``barman_supervisor_<name>`` for the picked servers (and any further label matchers)."""
    return f"barman_supervisor_{name}{{{', '.join((SERVERS, *matchers))}}}"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = "{{server}}"


@dataclass(frozen=True)
class Panel:
    """What one panel shows: its queries, unit and how values are coloured or named."""

    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "none"
    # 1/0 gauges: what each value is called, and its colour.
    states: tuple[tuple[str, str, str], ...] = ()
    # Colour steps above a base of green: (from value, colour).
    steps: tuple[tuple[float, str], ...] = ()
    # Series drawn as a dashed red line: the limits (regex on the legend).
    limits: str = ""
    # A small stat of the first row (its newest value) rather than a graph over time.
    small: bool = False


PROTECTED = (("1", "protected", GREEN), ("0", "NOT protected", RED))
YES_NO = (("1", "yes", GREEN), ("0", "no", RED))
PASSED = (("1", "passed", GREEN), ("0", "FAILED", RED))
TO_LIMIT = ((NEAR_LIMIT, ORANGE), (1.0, RED))
FAILED = 'result="failure"'


def _at_a_glance() -> tuple[Panel, ...]:
    return (
        Panel(
            "Protected",
            "/readyz for each server: every condition met (barman_supervisor_ready).",
            (Query(metric("ready")),),
            states=PROTECTED,
            small=True,
        ),
        Panel(
            "Newest backup / limit",
            "Age of the newest DONE backup over BACKUP_MAX_AGE (the /readyz limit); 100 % is red.",
            (Query(f"{metric('last_backup_age_seconds')} / {metric('backup_max_age_seconds')}"),),
            unit="percentunit",
            steps=TO_LIMIT,
            small=True,
        ),
        Panel(
            "WAL streaming",
            "barman receive-wal runs and the replication slot is active.",
            (
                Query(
                    f"min by (server) ({metric('receive_wal_running')} * "
                    f"{metric('replication_slot_active')})"
                ),
            ),
            states=YES_NO,
            small=True,
        ),
        Panel(
            "Last drill",
            "Result of the last restore drill (DRILL_SCHEDULE).",
            (Query(metric("last_drill_success")),),
            states=PASSED,
            small=True,
        ),
        Panel(
            "Off-site copy",
            "The last off-site copy round succeeded (OFFSITE_URL).",
            (Query(metric("offsite_last_copy_success")),),
            states=YES_NO,
            small=True,
        ),
        Panel(
            "Daemon up for",
            "Time since barman-supervisor started.",
            (Query("time() - barman_supervisor_start_time_seconds", "uptime"),),
            unit="s",
            small=True,
        ),
    )


def _backups() -> tuple[Panel, ...]:
    return (
        Panel(
            "Backup age per kind, and the limit",
            "Newest DONE backup of each kind; /readyz turns red when the newest of any kind is "
            "older than the limit (BACKUP_MAX_AGE, else 1.5 x the longest schedule gap).",
            (
                Query(metric("last_full_backup_age_seconds"), "{{server}} full"),
                Query(metric("last_incremental_backup_age_seconds"), "{{server}} incremental"),
                Query(metric("backup_max_age_seconds"), "{{server}} limit"),
            ),
            unit="s",
            limits=".* limit",
        ),
        Panel(
            "Backups in the catalogue",
            "Barman's backups of each server by status.",
            (Query(metric("backups"), "{{server}} {{status}}"),),
        ),
        Panel(
            "Newest backup: size and chain",
            "Size of the newest DONE backup, and of the chain a restore of it combines.",
            (
                Query(metric("last_backup_size_bytes"), "{{server}} backup"),
                Query(metric("last_backup_chain_size_bytes"), "{{server}} chain"),
            ),
            unit="bytes",
        ),
        Panel(
            "Newest backup: verified, chain length",
            "1 when pg_verifybackup accepted the newest backup; backups its restore combines.",
            (
                Query(metric("last_backup_verified"), "{{server}} verified"),
                Query(metric("last_backup_chain_length"), "{{server}} chain length"),
            ),
        ),
    )


def _wal() -> tuple[Panel, ...]:
    return (
        Panel(
            "WAL not yet received, and WAL_MAX_LAG",
            "WAL the primary holds for the slot that Barman has not received.",
            (
                Query(metric("wal_lag_bytes"), "{{server}} lag"),
                Query(metric("wal_max_lag_bytes"), "{{server}} limit"),
            ),
            unit="bytes",
            limits=".* limit",
        ),
        Panel(
            "WAL age: received, archived, WAL_MAX_AGE",
            "Age of the newest WAL Barman received and archived (an idle primary writes none).",
            (
                Query(metric("wal_last_received_age_seconds"), "{{server}} received"),
                Query(metric("wal_last_archived_age_seconds"), "{{server}} archived"),
                Query(metric("wal_max_age_seconds"), "{{server}} limit"),
            ),
            unit="s",
            limits=".* limit",
        ),
        Panel(
            "Streaming",
            "PostgreSQL answers, barman receive-wal runs, the slot is active.",
            (
                Query(metric("postgres_up"), "{{server}} postgres"),
                Query(metric("receive_wal_running"), "{{server}} receive-wal"),
                Query(metric("replication_slot_active"), "{{server}} slot"),
            ),
        ),
        Panel(
            "Disk free on the Barman volume, and DISK_MIN_FREE",
            "",
            (
                Query(metric("disk_free_bytes"), "{{server}} free"),
                Query(metric("disk_min_free_bytes"), "{{server}} limit"),
            ),
            unit="bytes",
            limits=".* limit",
        ),
    )


def _offsite() -> tuple[Panel, ...]:
    return (
        Panel(
            "Off-site: newest copied backup behind the newest local one",
            "0 when the store has the newest DONE backup; the limit is OFFSITE_BACKUP_MAX_DELAY.",
            (
                Query(
                    f"{metric('offsite_last_backup_age_seconds')} - "
                    f"{metric('last_backup_age_seconds')}",
                    "{{server}} behind",
                ),
                Query(metric("offsite_backup_max_delay_seconds"), "{{server}} limit"),
            ),
            unit="s",
            limits=".* limit",
        ),
        Panel(
            "Off-site: oldest WAL waiting, and OFFSITE_WAL_MAX_LAG",
            "",
            (
                Query(metric("offsite_wal_lag_seconds"), "{{server}} waiting"),
                Query(metric("offsite_wal_max_lag_seconds"), "{{server}} limit"),
            ),
            unit="s",
            limits=".* limit",
        ),
        Panel(
            "Off-site: owed to the store",
            "DONE backups and WAL files not yet copied.",
            (
                Query(metric("offsite_backups_owed"), "{{server}} backups"),
                Query(metric("offsite_wal_files_owed"), "{{server}} WAL files"),
            ),
        ),
        Panel(
            "Off-site: bytes copied, failed rounds",
            "",
            (
                Query(
                    f"rate({metric('offsite_copied_bytes_total')}[$__rate_interval])",
                    "{{server}} bytes/s",
                ),
                Query(
                    f"increase({metric('offsite_failures_total')}[$__rate_interval])",
                    "{{server}} failed rounds",
                ),
            ),
            unit="Bps",
        ),
    )


def _drills_and_checks() -> tuple[Panel, ...]:
    return (
        Panel(
            "Restore drills: age and time taken",
            "Since the last drill started, how long its restore took, and how old the newest "
            "data in the restored copy was.",
            (
                Query(metric("last_drill_age_seconds"), "{{server}} since last drill"),
                Query(metric("last_drill_restore_seconds"), "{{server}} restore took"),
                Query(metric("last_drill_restored_age_seconds"), "{{server}} data age"),
            ),
            unit="s",
        ),
        Panel(
            "barman check",
            "Each check of `barman check`: 1 OK, 0 failed.",
            (Query(metric("check_ok"), "{{server}} {{check}}"),),
            states=(("1", "OK", GREEN), ("0", "FAILED", RED)),
        ),
        Panel(
            "Failed jobs",
            "Job runs that failed, per job.",
            (
                Query(
                    f"increase({metric('job_runs_total', FAILED)}[$__rate_interval])",
                    "{{server}} {{job}}",
                ),
            ),
        ),
        Panel(
            "Job durations",
            "Wall time of each job's last run.",
            (Query(metric("job_last_duration_seconds"), "{{server}} {{job}}"),),
            unit="s",
        ),
    )


ROWS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    ("At a glance", _at_a_glance()),
    ("Backups", _backups()),
    ("WAL, streaming and disk", _wal()),
    ("Off-site copy", _offsite()),
    ("Restore drills, checks and jobs", _drills_and_checks()),
)


def _targets(panel: Panel) -> list[prometheus.Dataquery]:
    return [
        prometheus.Dataquery()
        .expr(query.expr)
        .legend_format(query.legend)
        .ref_id(chr(ord("A") + index))
        .datasource(DATASOURCE)
        for index, query in enumerate(panel.queries)
    ]


def _thresholds(panel: Panel) -> dash.ThresholdsConfig:
    steps = [model.Threshold(value=None, color=GREEN)]
    steps += [model.Threshold(value=value, color=colour) for value, colour in panel.steps]
    return dash.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(steps)


def _mappings(panel: Panel) -> list[model.ValueMapping]:
    if not panel.states:
        return []
    options = {
        value: model.ValueMappingResult(text=text, color=colour, index=index)
        for index, (value, text, colour) in enumerate(panel.states)
    }
    return [model.ValueMap(options=options)]


def _limit_style() -> list[model.DynamicConfigValue]:
    return [
        model.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": RED}),
        model.DynamicConfigValue(
            id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}
        ),
        model.DynamicConfigValue(id_val="custom.fillOpacity", value=0),
    ]


def _stat() -> stat.Panel:
    return (
        stat.Panel()
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
        .no_value("none")
    )


def _timeseries(panel: Panel) -> timeseries.Panel:
    built = (
        timeseries.Panel()
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull"])
        )
    )
    if panel.states:
        built = built.draw_style(common.GraphDrawStyle.LINE).line_interpolation(
            common.LineInterpolation.STEP_AFTER
        )
    if panel.limits:
        built = built.override_by_regexp(panel.limits, _limit_style())
    return built


def build_panel(panel: Panel) -> stat.Panel | timeseries.Panel:
    built = _stat() if panel.small else _timeseries(panel)
    built = (
        built.title(panel.title)
        .description(panel.description)
        .datasource(DATASOURCE)
        .targets(_targets(panel))  # type: ignore[arg-type]
        .unit(panel.unit)
        .thresholds(_thresholds(panel))
        .span(STAT_WIDTH if panel.small else GRAPH_WIDTH)
        .height(STAT_HEIGHT if panel.small else GRAPH_HEIGHT)
    )
    mappings = _mappings(panel)
    return built.mappings(mappings) if mappings else built


def _variables() -> list[dash.DatasourceVariable | dash.QueryVariable]:
    return [
        dash.DatasourceVariable("datasource").label("Prometheus").type("prometheus"),
        dash.QueryVariable("server")
        .label("Server")
        .datasource(DATASOURCE)
        .query("label_values(barman_supervisor_ready, server)")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True),
    ]


def build() -> model.Dashboard:
    board = (
        dash.Dashboard("barman-supervisor")
        .uid(UID)
        .description(
            "Backups, WAL, off-site copies, restore drills and disk of each server "
            "barman-supervisor protects, beside the limits it applies itself."
        )
        .tags(["barman", "postgresql", "backup"])
        .refresh(REFRESH)
        .time("now-24h", "now")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .editable()
    )
    for variable in _variables():
        board = board.with_variable(variable)
    # Ids in reading order, rows included: Grafana keys a panel's links and state by its id.
    ids = iter(range(1, 1 + sum(1 + len(panels) for _, panels in ROWS)))
    for title, panels in ROWS:
        board = board.with_row(dash.Row(title).id(next(ids)))
        for panel in panels:
            board = board.with_panel(build_panel(panel).id(next(ids)))
    return board.build()


def render() -> str:
    """The dashboard as Grafana reads it: sorted keys, so a change shows as a small diff."""
    return json.dumps(build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def expressions(document: dict[str, object]) -> list[str]:
    """Every PromQL expression of a dashboard document: each panel target's ``expr``."""
    panels = document.get("panels") or []
    assert isinstance(panels, list)
    return [
        str(target["expr"])
        for panel in panels
        for target in panel.get("targets") or []
        if "expr" in target
    ]


if __name__ == "__main__":
    OUTPUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUTPUT}")
