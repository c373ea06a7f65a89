"""Secret masking, repeat suppression and the JSON shape of stdlib log records."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from barman_supervisor.log import MASKER, RepeatFilter, SecretMasker, configure

WAITING = "No xlog segments found from streaming for pg (attempt 17)"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def masker() -> SecretMasker:
    masker = SecretMasker()
    masker.register(["hunter2", "hunter2-long", ""])
    return masker


# SecretMasker ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("login with hunter2 failed", "login with *** failed"),
        ("hunter2-long", "***"),
        ("host=db password=abc user=x", "host=db password=*** user=x"),
        ("PASSWORD = 'a b\\' c' host=db", "PASSWORD = *** host=db"),
        ("nothing secret here", "nothing secret here"),
    ],
)
def test_mask_text(masker: SecretMasker, text: str, masked: str) -> None:
    assert masker.mask(text) == masked


def test_mask_event_values_at_any_depth(masker: SecretMasker) -> None:
    event = {
        "event": "command_output",
        "line": "pw hunter2",
        "context": {"conninfo": "host=db password=zzz", "attempts": 3},
        "argv": ["psql", "password=yyy", ("hunter2",)],
        "count": 7,
    }

    result = masker(None, "info", event)

    assert result == {
        "event": "command_output",
        "line": "pw ***",
        "context": {"conninfo": "host=db password=***", "attempts": 3},
        "argv": ["psql", "password=***", ["***"]],
        "count": 7,
    }


def test_register_replaces_the_known_secrets(masker: SecretMasker) -> None:
    masker.register(["other"])

    assert masker.mask("hunter2 other") == "hunter2 ***"


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


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
    MASKER.register([])


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
    MASKER.register(["hunter2"])

    logging.getLogger("x").info("dropped below the level")
    logging.getLogger("x").error("connect host=db password=%s", "hunter2")

    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["event"] == "connect host=db password=***"
    assert "hunter2" not in stream.getvalue()
