"""One alert per state change: the tracker's transitions, and delivery that never blocks."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest

from barman_supervisor.config import Secret
from barman_supervisor.log import MASKER
from barman_supervisor.status.alerts import (
    AlertTracker,
    Notifier,
    alert_payload,
    backup_alert_payload,
    same_origin,
    split_credentials,
)
from barman_supervisor.status.health import Problem
from tests.support.webhook import Request, webhook_receiver

DOWN = [Problem("postgres", "PostgreSQL unreachable"), Problem("streaming", "slot not active")]


def test_an_outage_is_one_failure_and_one_recovery() -> None:
    tracker = AlertTracker({})
    changes = [
        tracker.observe("pg", [], 0),
        tracker.observe("pg", DOWN, 10),
        tracker.observe("pg", DOWN, 20),
        tracker.observe("pg", DOWN[:1], 30),
        tracker.observe("pg", [], 40),
        tracker.observe("pg", [], 50),
    ]

    states = [(c.state, c.since) for c in changes if c is not None]
    assert states == [("failing", 10), ("recovered", 40)]


def test_a_problem_alerts_only_after_its_delay() -> None:
    tracker = AlertTracker({"streaming": 300})
    blip = [Problem("streaming", "slot not active")]

    assert tracker.observe("pg", blip, 0) is None
    assert tracker.observe("pg", blip, 299) is None
    change = tracker.observe("pg", blip, 300)
    assert change is not None and change.state == "failing" and change.since == 0


def test_a_blip_shorter_than_the_delay_never_alerts() -> None:
    tracker = AlertTracker({"streaming": 300})

    assert tracker.observe("pg", [Problem("streaming", "x")], 0) is None
    assert tracker.observe("pg", [], 10) is None
    assert tracker.observe("pg", [Problem("streaming", "x")], 200) is None
    assert tracker.observe("pg", [Problem("streaming", "x")], 400) is None


def test_servers_are_tracked_apart() -> None:
    tracker = AlertTracker({})

    assert tracker.observe("a", DOWN, 0) is not None
    assert tracker.observe("b", [], 0) is None
    recovered = tracker.observe("a", [], 10)
    assert recovered is not None and recovered.server == "a" and recovered.state == "recovered"


def test_payload_says_what_and_why() -> None:
    change = AlertTracker({}).observe("pg", DOWN, 1_800_000_000)
    assert change is not None

    payload = alert_payload(change, 1_800_000_060, "barman-1")

    assert payload["server"] == "pg" and payload["state"] == "failing"
    assert payload["summary"] == "pg: PostgreSQL unreachable; slot not active"
    assert payload["problems"][0] == {"condition": "postgres", "reason": "PostgreSQL unreachable"}
    assert payload["since"].startswith("2027-01-15T08:00:00")


Received = list[Request]


@pytest.fixture
def receiver() -> Iterator[tuple[str, Received]]:
    with webhook_receiver() as webhook:
        yield webhook.base_url, webhook.requests


def test_notifier_posts_json_and_pings(receiver: tuple[str, Received]) -> None:
    url, received = receiver
    notifier = Notifier(timeout=2)
    notifier.start()

    notifier.post(Secret(f"{url}/hook"), {"state": "failing"}, what="alert")
    notifier.ping(Secret(f"{url}/ping/abc"), "/start", what="deadman")
    notifier.close(timeout=10)

    assert received == [("POST", "/hook", {"state": "failing"}), ("GET", "/ping/abc/start", None)]
    assert notifier.delivered == 2


def test_a_failing_receiver_is_retried_then_given_up(
    receiver: tuple[str, Received],
) -> None:
    url, received = receiver
    notifier = Notifier(timeout=2, attempts=3)
    notifier.start()

    notifier.post(Secret(f"{url}/broken"), {"state": "failing"}, what="alert")
    notifier.close(timeout=30)

    assert len(received) == 3
    assert (notifier.delivered, notifier.failed) == (0, 1)


def test_userinfo_becomes_basic_auth_and_leaves_the_url() -> None:
    url, headers = split_credentials("https://ops:p%40ss:w@hooks.example:8443/alert?x=1")

    assert url == "https://hooks.example:8443/alert?x=1"
    assert headers == {"Authorization": "Basic " + base64.b64encode(b"ops:p@ss:w").decode()}
    assert split_credentials("http://[::1]:80/x") == ("http://[::1]:80/x", {})
    assert split_credentials("http://u:pw@[::1]/x")[0] == "http://[::1]/x"


def test_webhook_with_a_password_is_delivered_and_never_printed(
    receiver: tuple[str, Received], capsys: pytest.CaptureFixture[str]
) -> None:
    url, received = receiver
    notifier = Notifier(timeout=2)
    notifier.start()

    notifier.post(Secret(url.replace("http://", "http://ops:Pw-9secret@") + "/hook"), {}, "alert")
    notifier.close(timeout=10)

    assert received == [("POST", "/hook", {})] and notifier.delivered == 1
    assert "Pw-9secret" not in "".join(capsys.readouterr())


def test_the_notifier_thread_survives_any_delivery_error(receiver: tuple[str, Received]) -> None:
    """A port urllib cannot parse raised ValueError (with the password in it) and killed the
    thread: later alerts were never sent."""
    url, received = receiver
    notifier = Notifier(timeout=2, attempts=1)
    notifier.start()

    notifier.post(Secret("http://h:abc/x"), {}, what="bad url")
    notifier.post(Secret("http://[::1/x"), {}, what="bad host")
    notifier.post(Secret(f"{url}/hook"), {"state": "failing"}, what="alert")
    notifier.close(timeout=10)

    assert (notifier.delivered, notifier.failed) == (1, 2)
    assert received == [("POST", "/hook", {"state": "failing"})]


def test_a_backup_found_unusable_is_one_alert_naming_it_and_why() -> None:
    body = backup_alert_payload(
        "pg", "20261201T030000", "verification", "checksum mismatch", 0, "h"
    )
    assert body == {
        "source": "barman-supervisor",
        "host": "h",
        "server": "pg",
        "state": "backup_unusable",
        "backup_id": "20261201T030000",
        "summary": "pg: backup 20261201T030000 failed verification: checksum mismatch; restore, "
        "drills and retention no longer count on it",
        "problems": [{"condition": "verification", "reason": "checksum mismatch"}],
        "since": "1970-01-01T00:00:00+00:00",
        "at": "1970-01-01T00:00:00+00:00",
    }
    drill = backup_alert_payload("pg", "B", "drill", "query failed", 0, "h")
    assert drill["summary"].startswith("pg: backup B failed a restore drill: query failed")


# Credentials never follow a redirect elsewhere; the body is masked ---------------------------


@pytest.mark.parametrize(
    ("url", "other", "same"),
    [
        ("https://hooks.example/a", "https://hooks.example:443/b?x", True),
        ("http://127.0.0.1:80/a", "http://127.0.0.1/b", True),
        ("https://hooks.example/a", "https://evil.example/a", False),
        ("https://hooks.example/a", "http://hooks.example/a", False),
        ("https://hooks.example/a", "https://hooks.example:8443/a", False),
    ],
)
def test_only_the_same_scheme_host_and_port_is_the_same_origin(
    url: str, other: str, same: bool
) -> None:
    assert same_origin(url, other) is same


def with_credentials(url: str) -> str:
    return url.replace("://", "://ops:Pw-9x@")


def test_a_redirect_to_another_origin_is_refused_and_gets_nothing() -> None:
    """urllib copies headers given to the request to wherever a redirect points: the Basic
    credentials of the URL would reach the other host."""
    with webhook_receiver() as hook, webhook_receiver() as other:
        hook.redirect_to = other.base_url
        notifier = Notifier(timeout=2, attempts=1)
        notifier.start()

        notifier.post(Secret(with_credentials(hook.base_url) + "/redirect/x"), {}, "a")
        notifier.close(timeout=10)

        assert hook.authorizations[0] is not None
        assert other.requests == []
        assert (notifier.delivered, notifier.failed) == (0, 1)


def test_a_redirect_to_the_same_origin_keeps_the_credentials() -> None:
    with webhook_receiver() as hook:
        hook.redirect_to = hook.base_url
        notifier = Notifier(timeout=2, attempts=1)
        notifier.start()

        notifier.post(Secret(with_credentials(hook.base_url) + "/redirect/x"), {}, "a")
        notifier.close(timeout=10)

        assert [path for _method, path, _body in hook.requests] == ["/redirect/x", "/x"]
        expected = "Basic " + base64.b64encode(b"ops:Pw-9x").decode()
        assert hook.authorizations == [expected, expected]
        assert notifier.delivered == 1


def test_the_posted_body_is_masked_like_the_logs(
    receiver: tuple[str, Received], restore_logging: None
) -> None:
    url, received = receiver
    MASKER.register(["Pg-Pw-4242"])
    notifier = Notifier(timeout=2)
    notifier.start()

    reason = 'FATAL: password "Pg-Pw-4242" rejected; see postgresql://u:Other-pw@db/x'
    notifier.post(Secret(f"{url}/hook"), {"problems": [{"reason": reason}]}, what="alert")
    notifier.close(timeout=10)

    body = json.dumps(received[0][2])
    assert "Pg-Pw-4242" not in body and "Other-pw" not in body
    assert "***" in body
