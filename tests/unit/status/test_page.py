"""The page at ``/`` renders the ``/status`` document for people: what it shows, that foreign
text is escaped and masked as in ``/status``, and that it needs no script."""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markupsafe import escape

from barman_supervisor.barman.commands import Check
from barman_supervisor.barman.records import Backup
from barman_supervisor.config.shard import Shard, ownership, shard_status
from barman_supervisor.log import MASKER
from barman_supervisor.postgres.connection import Identity
from barman_supervisor.status import page
from barman_supervisor.status.state import BackupSummary, DrillResult, FailoverRecord, State
from tests.unit.status.test_http import probes, protected_state, streaming

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def escaped(text: str) -> str:
    """Text as the page's template engine writes it."""
    return str(escape(text))


def rendered(state: State) -> str:
    _, document = probes(state).status()
    return page.render(document)


class _Tags(HTMLParser):
    """Every start tag and its attributes, as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(text: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(text)
    return parser.tags


def test_every_server_with_its_readiness_problem_and_what_to_do() -> None:
    state = protected_state()
    streaming(state, "reports", running=False)

    text = rendered(state)

    assert re.search(r'id="server-pg".*?class="badge">READY<', text, re.S)
    assert re.search(r'id="server-reports".*?class="badge">NOT READY<', text, re.S)
    assert "barman receive-wal is not running" in text
    assert escaped(page.WHAT_TO_DO["streaming"]) in text
    assert "<title>1/2 ready" in text


def test_newest_backup_age_type_and_next_runs_come_from_the_document() -> None:
    state = protected_state()
    now = time.time()
    state.record_backups(
        "pg",
        [
            Backup("I1", "DONE", now - 7200, 50, begin_time=now - 7300, parent_id="F"),
            Backup("F", "DONE", now - 90000, 1000, begin_time=now - 90100),
        ],
    )

    _, document = probes(state).status()
    text = page.render(document)

    assert '<span class="backup-age">2.0 h old</span> · incremental, chain of 2' in text
    # The test's scheduler has one run for pg, long past: due now, at its time in UTC.
    assert "<li>backup due now" in text and "(2026-11-24 03:00 UTC)" in text


def test_only_the_runs_people_plan_around_are_listed_in_a_fixed_order() -> None:
    _, document = probes(protected_state()).status()
    document["servers"]["pg"]["next_runs"] = {
        "monitor": "2026-11-24T00:00:10+00:00",
        "drill": "2026-11-24T05:00:00+00:00",
        "backup": "2026-11-24T03:00:00+00:00",
    }
    document["now"] = "2026-11-24T00:00:00Z"

    runs = re.findall(r"<li>(\S+) in ([^<]+) <", page.render(document))

    assert runs == [("backup", "3.0 h"), ("drill", "5.0 h")]


def test_drill_offsite_and_verification_are_shown_with_their_results() -> None:
    state = protected_state()
    now = time.time()
    state.record_drill(
        "pg", DrillResult(False, "restored cluster did not start", "pg", now - 3 * 3600, 40.0)
    )
    state.record_offsite(
        "pg",
        {"url": "s3://b/p", "wal_owed": 3, "oldest_owed_wal_at": now - 600, "backups_owed": []},
    )

    _, document = probes(state).status()
    backups = document["servers"]["pg"]["backups"]
    backups["verification"] = {backups["newest"]["id"]: {"verdict": "verified"}}
    text = page.render(document)

    assert '<span class="bad">failed:</span> restored cluster did not start' in text
    assert "3.0 h ago" in text
    assert '<span class="good">verified</span>' in text
    assert "WAL 10 min behind (3 files owed) · 0 backups owed" in text
    assert "off (no OFFSITE_URL)" in text  # reports has no store


def test_foreign_text_is_escaped_and_never_becomes_markup() -> None:
    state = protected_state()
    state.record_checks("pg", [Check("postgresql", False, HOSTILE)])
    state.postgres_unreachable("reports", HOSTILE)
    state.record_backup(
        "pg", BackupSummary(False, "schedule", None, None, None, 1.0, reason=HOSTILE)
    )

    text = rendered(state)

    assert HOSTILE not in text
    assert escaped(HOSTILE) in text
    assert not [tag for tag, _ in tags(text) if tag in {"script", "img", "iframe", "object"}]
    assert not [attrs for _, attrs in tags(text) if any(k.startswith("on") for k in attrs)]


def test_strangers_text_is_masked_exactly_as_status_masks_it() -> None:
    secret = "Xk3v9-qLm2"
    MASKER.register([secret])
    try:
        state = protected_state()
        state.postgres_unreachable("pg", f"password authentication failed: {secret}")
        state.record_checks("reports", [Check("postgresql", False, f"password={secret} host=db")])
        _, document = probes(state).status()
        text = page.render(document)
    finally:
        MASKER.register([])

    assert secret not in text
    assert escaped(document["servers"]["pg"]["postgres"]["error"]) in text
    hint = document["servers"]["reports"]["checks"]["results"]["postgresql"]["hint"]
    assert "***" in hint and escaped(hint) in text


def test_the_page_refreshes_itself_fits_a_phone_and_runs_no_script() -> None:
    found = tags(rendered(protected_state()))
    metas = [attrs for tag, attrs in found if tag == "meta"]

    assert {"http-equiv": "refresh", "content": str(page.REFRESH_S)} in metas
    assert {"name": "viewport", "content": "width=device-width, initial-scale=1"} in metas
    assert "script" not in {tag for tag, _ in found}
    assert "script-src" not in page.CONTENT_SECURITY_POLICY  # default-src 'none' covers it


@pytest.mark.parametrize(
    ("count", "text"),
    [(None, "—"), (0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (5 * 1024**3, "5.0 GiB")],
)
def test_sizes_in_binary_units(count: int | None, text: str) -> None:
    assert page.size(count) == text


def test_the_newest_backups_own_verdict_wins_over_the_last_verification() -> None:
    last = {"backup_id": "B1", "ok": True, "reason": ""}
    verdicts = {"B1": {"verdict": "failed", "reason": "checksum mismatch"}}

    def state(**backups: object) -> dict[str, str]:
        return page.newest_verification({"newest": {"id": "B1"}, **backups})

    assert state(last_verification=last) == {"state": "verified", "reason": ""}
    assert state(last_verification={**last, "backup_id": "B0"})["state"] == "unknown"
    skipped = {**last, "skipped": True, "reason": "needs pg_verifybackup 18"}
    assert state(last_verification=skipped) == {
        "state": "skipped",
        "reason": "needs pg_verifybackup 18",
    }
    assert state(last_verification=last, verification=verdicts) == {
        "state": "failed",
        "reason": "checksum mismatch",
    }
    assert page.newest_verification({"newest": None, "last_verification": None}) == {
        "state": "unknown",
        "reason": "",
    }


@pytest.mark.parametrize(
    ("number", "text"), [(150018, "15.18"), (180001, "18.1"), (90624, "9.6.24")]
)
def test_postgresql_versions_as_people_write_them(number: int, text: str) -> None:
    assert page.pg_version(number) == text


def test_many_servers_are_listed_at_the_top_each_linking_to_its_card() -> None:
    state = protected_state()
    streaming(state, "reports", running=False)

    links = [attrs for tag, attrs in tags(rendered(state)) if tag == "a" and "class" in attrs]

    assert links == [
        {"href": "#server-pg", "class": "ready"},
        {"href": "#server-reports", "class": "unready"},
    ]


def test_every_condition_of_the_health_model_has_what_to_do() -> None:
    """The conditions docs/operations.md lists (its health model table) each have advice."""
    text = (Path(__file__).parents[3] / "docs" / "operations.md").read_text()
    table = text.split("| condition | goes red when |", 1)[1].split("\n\n", 1)[0]
    conditions = set(re.findall(r"^\| `([a-z_]+)` \|", table, re.M))

    assert {"postgres", "streaming", "backup", "offsite"} <= conditions
    assert conditions <= set(page.WHAT_TO_DO)


def test_a_sharded_replica_names_its_shard_and_the_servers_another_replica_holds() -> None:
    names = ["pg1", "pg2", "pg3"]
    shard = Shard(0, 2, "from POD_NAME barman-0")
    owners = ownership(names, shard)
    mine = [entry.server for entry in owners if entry.mine]
    others = [entry for entry in owners if not entry.mine]
    assert mine and others, "the test needs servers on both shards"
    state = State(mine)
    state.set_shard(shard_status(shard, owners))
    holder = "backend 4242 from 10.0.0.7/32 (barman_supervisor shard 1 of 2) since <then>"
    state.set_phase(mine[0], "handover")
    state.record_claim(mine[0], False, holder)
    html = rendered(state)
    assert "Shard 0 of 2" in html and escaped("(from POD_NAME barman-0)") in html
    for entry in others:
        assert escaped(f"{entry.server} → shard {entry.owner}") in html
    assert "HELD ELSEWHERE" in html and escaped(holder) in html
    assert f"0 of {len(mine)} servers ready" in html or f"0 of {len(mine)} server ready" in html


def test_a_followed_failover_and_the_primary_are_shown() -> None:
    state = protected_state()
    name = next(iter(state.servers()))
    lost = ("0/5000060", "0/50000D8", "/b/pg/wals-old-timeline")
    record = FailoverRecord(1, 2, "0/5000060", ("db2", 5432), time.time() - 300, lost)
    state.record_failover(name, record, Identity("7400000000000000001", 2))
    state.record_primary(name, ("db2", 5432))
    html = rendered(state)
    assert "primary db2:5432" in html
    assert escaped("timeline 1 → 2 at") in html and "new primary db2:5432" in html
    assert "exists only on the old timeline" in html and "/b/pg/wals-old-timeline" in html
