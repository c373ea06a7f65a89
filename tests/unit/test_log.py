"""Secret masking, repeat suppression and the JSON shape of stdlib log records."""

from __future__ import annotations

import io
import json
import logging
import threading

import pytest

from barman_supervisor.log import MASKER, RepeatFilter, SecretMasker, configure, maskable_literal

WAITING = "No xlog segments found from streaming for pg (attempt 17)"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def masker() -> SecretMasker:
    masker = SecretMasker()
    masker.register(["Hunter2-x", "Hunter2-xlong", "", "barman", "true"])
    return masker


# SecretMasker ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "maskable"),
    [
        ("Hunter2-x", True),
        ("k3v9qlmz", True),
        ("Q9dW2mXbT7pLr4sZ8vNc1yHq5fJk0aGe", True),
        ("barman", False),
        ("postgres", False),
        ("password", False),
        ("12345678", False),
        ("true", False),
        ("2", False),
        ('"', False),
        ("two words1", False),
    ],
)
def test_only_secrets_that_cannot_be_ordinary_words_are_masked_literally(
    secret: str, maskable: bool
) -> None:
    assert maskable_literal(secret) is maskable


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("login with Hunter2-x failed", "login with *** failed"),
        ("Hunter2-xlong", "***"),
        ("host=db password=abc user=x", "host=db password=*** user=x"),
        ("PASSWORD = 'a b\\' c' host=db", "PASSWORD = *** host=db"),
        ('password="a b" host=db', "password=*** host=db"),
        ("PGPASSWORD=s3 pg_receivewal", "PGPASSWORD=*** pg_receivewal"),
        ("aws_secret_access_key=AbC/dEf+1", "aws_secret_access_key=***"),
        (
            "POST https://ops:hunter@hooks.example:8443/x",
            "POST https://ops:***@hooks.example:8443/x",
        ),
        ("http://hooks.example:8080/x", "http://hooks.example:8080/x"),
        ("Authorization: Bearer eyJhbGc.x-y", "Authorization: Bearer ***"),
        (
            "headers={'authorization': 'Basic YWxpY2U6cHc='}",
            "headers={'authorization': 'Basic ***'}",
        ),
        ("key AKIAIOSFODNN7EXAMPLE denied", "key *** denied"),
        ("api_key=abc123 host=s3", "api_key=*** host=s3"),
        ("barman is true: nothing secret here", "barman is true: nothing secret here"),
    ],
)
def test_mask_text(masker: SecretMasker, text: str, masked: str) -> None:
    assert masker.mask(text) == masked


def test_only_foreign_fields_are_masked_and_keys_never(masker: SecretMasker) -> None:
    event = {
        "event": "barman_log",
        "command": "barman -c /etc/barman.conf cron",
        "line": "pw Hunter2-x",
        "message": "connect password=zzz",
        "error": {"barman": "host=db password=zzz", "attempts": 3, "argv": ["Hunter2-x"]},
        "hint": "remove password= from the conninfo",
        "timestamp": "2026-11-23T02:22:22Z",
        "count": 7,
    }

    result = masker(None, "info", dict(event))

    assert result == {
        **event,
        "line": "pw ***",
        "message": "connect password=***",
        "error": {"barman": "host=db password=***", "attempts": 3, "argv": ["***"]},
    }


def test_register_replaces_the_known_secrets(masker: SecretMasker) -> None:
    masker.register(["Other-s3cret"])

    assert masker.mask("Hunter2-x Other-s3cret") == "Hunter2-x ***"


# RepeatFilter ---------------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def repeats(clock: FakeClock) -> RepeatFilter:
    return RepeatFilter(burst=3, window=60.0, clock=clock)


def test_first_burst_admitted_then_suppressed(repeats: RepeatFilter) -> None:
    results = [repeats.admit(WAITING) for _ in range(5)]

    assert results == [(True, 0), (True, 0), (True, 0), (False, 0), (False, 0)]


def test_lines_differing_only_in_numbers_are_one_kind(repeats: RepeatFilter) -> None:
    for attempt in range(3):
        repeats.admit(f"No xlog segments found from streaming for pg (attempt {attempt})")

    assert repeats.admit("No xlog segments found from streaming for pg (attempt 99)") == (False, 0)
    assert repeats.admit("a different line") == (True, 0)
    assert RepeatFilter.kind("pid 4242 at 12:30") == "pid # at #:#"


def test_after_the_window_the_next_line_reports_the_held_back_count(
    repeats: RepeatFilter, clock: FakeClock
) -> None:
    for _ in range(5):
        repeats.admit(WAITING)
    clock.now += 59.9
    assert repeats.admit(WAITING) == (False, 0)

    clock.now += 0.1

    assert repeats.admit(WAITING) == (True, 3)
    assert repeats.admit(WAITING) == (True, 0)


def test_expired_reports_held_back_kinds_once_and_forgets_all(
    repeats: RepeatFilter, clock: FakeClock
) -> None:
    for _ in range(5):
        repeats.admit(WAITING)
    repeats.admit("quiet line")
    assert repeats.expired() == []

    clock.now += 60

    assert repeats.expired() == [(RepeatFilter.kind(WAITING), 2)]
    assert repeats.expired() == []
    # Forgotten: a new window starts with a fresh burst.
    assert [repeats.admit(WAITING) for _ in range(4)] == [(True, 0)] * 3 + [(False, 0)]


# configure() ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("restore_logging")
def test_stdlib_record_comes_out_as_one_json_line() -> None:
    stream = io.StringIO()
    configure(fmt="json", stream=stream)

    logging.getLogger("x").warning("hi")

    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "hi"
    assert record["level"] == "warning"
    assert record["logger"] == "x"
    assert record["timestamp"].endswith(("Z", "+00:00"))


@pytest.mark.usefixtures("restore_logging")
def test_configured_output_is_masked_and_filtered_by_level() -> None:
    stream = io.StringIO()
    configure(level="WARNING", fmt="json", stream=stream)
    MASKER.register(["Hunter2-x"])

    logging.getLogger("x").info("dropped below the level")
    logging.getLogger("x").error("connect host=db password=%s", "Hunter2-x")
    logging.getLogger("psycopg").error("failed for Hunter2-x")

    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0])["event"] == "connect host=db password=***"
    assert json.loads(lines[1])["event"] == "failed for ***"
    assert "Hunter2-x" not in stream.getvalue()


@pytest.mark.usefixtures("restore_logging")
def test_a_crashing_thread_logs_one_masked_event() -> None:
    stream = io.StringIO()
    configure(fmt="json", stream=stream)
    MASKER.register(["Hunter2-x"])

    def crash() -> None:
        raise ValueError("nonnumeric port: 'Hunter2-x@hooks.example'")

    thread = threading.Thread(target=crash, name="notifier")
    thread.start()
    thread.join()

    record = json.loads(stream.getvalue().splitlines()[-1])
    assert record["event"] == "thread_crashed" and record["thread"] == "notifier"
    assert "ValueError" in record["exception"]
    assert "Hunter2-x" not in stream.getvalue()
