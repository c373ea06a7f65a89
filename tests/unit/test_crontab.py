"""Crontab expressions must fire when cron(8) would fire them."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest

from barman_supervisor.crontab import CrontabError, cron_days_of_week, parse_crontab

UTC = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
WEDNESDAY = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
MON, TUE, WED, THU, FRI, SAT, SUN = range(7)  # datetime.weekday()


def fire_times(
    expression: str, count: int = 14, timezone: tzinfo = UTC, start: datetime = WEDNESDAY
) -> list[datetime]:
    """The next ``count`` fire times of the expression after ``start``."""
    trigger = parse_crontab(expression, timezone)
    times: list[datetime] = []
    moment = start
    for _ in range(count):
        fire = trigger.get_next_fire_time(None, moment)
        assert fire is not None
        times.append(fire)
        moment = fire + timedelta(seconds=1)
    return times


@pytest.mark.parametrize("expression", ["0 3 * * 0", "0 3 * * 7", "0 3 * * sun", "0 3 * * SUN"])
def test_sunday_is_0_and_7_like_cron(expression: str) -> None:
    first = fire_times(expression, count=1)[0]

    assert first.weekday() == SUN
    assert first == datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


DAY_OF_WEEK_CASES = [
    ("1-5", {MON, TUE, WED, THU, FRI}),
    ("mon-fri", {MON, TUE, WED, THU, FRI}),
    ("5-7", {FRI, SAT, SUN}),
    ("fri-sun", {FRI, SAT, SUN}),
    ("0-2", {SUN, MON, TUE}),
    ("sat-sun", {SAT, SUN}),
    ("0-7", {MON, TUE, WED, THU, FRI, SAT, SUN}),
    ("*/2", {SUN, TUE, THU, SAT}),
    ("1-5/2", {MON, WED, FRI}),
    ("1,3,5", {MON, WED, FRI}),
    ("mon,wed,7", {MON, WED, SUN}),
    ("sat,1-2", {SAT, MON, TUE}),
    ("6", {SAT}),
    ("7-7", {SUN}),
]


@pytest.mark.parametrize(
    ("day_of_week", "weekdays"), DAY_OF_WEEK_CASES, ids=[case[0] for case in DAY_OF_WEEK_CASES]
)
def test_day_of_week_field(day_of_week: str, weekdays: set[int]) -> None:
    times = fire_times(f"30 4 * * {day_of_week}", count=21)

    assert {moment.weekday() for moment in times} == weekdays
    assert {(moment.hour, moment.minute) for moment in times} == {(4, 30)}


def test_day_of_week_is_translated_to_apscheduler_names() -> None:
    assert cron_days_of_week("0-2") == "sun,mon,tue"
    assert set(cron_days_of_week("5-7").split(",")) == {"fri", "sat", "sun"}
    assert cron_days_of_week("*") == "*"


def test_daily_macro_fires_every_midnight() -> None:
    times = fire_times("@daily", count=7)

    assert [moment.date() - times[0].date() for moment in times] == [
        timedelta(days=n) for n in range(7)
    ]
    assert {(moment.hour, moment.minute) for moment in times} == {(0, 0)}


@pytest.mark.parametrize("expression", ["@weekly", "@WEEKLY", " @weekly "])
def test_weekly_macro_fires_sunday_midnight(expression: str) -> None:
    times = fire_times(expression, count=3)

    assert {moment.weekday() for moment in times} == {SUN}
    assert {(moment.hour, moment.minute) for moment in times} == {(0, 0)}


def test_hourly_and_minute_lists() -> None:
    assert [moment.hour for moment in fire_times("@hourly", count=3)] == [12, 13, 14]
    assert [moment.minute for moment in fire_times("0,15,45 13 * * *", count=3)] == [0, 15, 45]


def test_day_of_month_and_day_of_week_fire_when_either_matches() -> None:
    """Vixie cron: '0 3 1 * 1' runs on the 1st of the month *and* on every Monday."""
    times = fire_times("0 3 1 * 1", count=10)

    assert all(moment.day == 1 or moment.weekday() == MON for moment in times)
    assert any(moment.day == 1 and moment.weekday() != MON for moment in times)
    assert any(moment.day != 1 and moment.weekday() == MON for moment in times)


def test_day_of_month_alone_restricts_to_that_day() -> None:
    assert {moment.day for moment in fire_times("0 3 15 * *", count=4)} == {15}


def test_starred_day_of_month_with_day_of_week_needs_both() -> None:
    """Vixie cron sets DOM_STAR for any field *starting* with '*' ('*/2' included); then the
    day must match both fields: '0 3 */2 * 1' is Mondays that are odd days of the month."""
    times = fire_times("0 3 */2 * 1", count=6)

    assert all(moment.weekday() == MON and moment.day % 2 == 1 for moment in times)


@pytest.mark.parametrize(
    "expression",
    [
        "0 3 * *",
        "0 3 * * * *",
        "61 * * * *",
        "* 24 * * *",
        "* * 32 * *",
        "* * * 13 *",
        "* * * * 8",
        "* * * * 5-2",
        "* * * * mon-xyz",
        "* * * * */0",
        "x * * * *",
        "garbage",
        "",
        "@reboot",
    ],
)
def test_invalid_expressions_raise_crontab_error(expression: str) -> None:
    with pytest.raises(CrontabError):
        parse_crontab(expression, UTC)


def test_crontab_error_is_a_value_error() -> None:
    assert issubclass(CrontabError, ValueError)


@pytest.mark.parametrize(
    ("start", "utc_hour"),
    [
        (WEDNESDAY, 2),  # CET, UTC+1
        (datetime(2026, 7, 15, 12, 0, tzinfo=UTC), 1),  # CEST, UTC+2
    ],
)
def test_time_zone_is_honoured(start: datetime, utc_hour: int) -> None:
    fire = fire_times("0 3 * * *", count=1, timezone=BERLIN, start=start)[0]

    assert (fire.astimezone(BERLIN).hour, fire.astimezone(BERLIN).minute) == (3, 0)
    assert fire.astimezone(UTC).hour == utc_hour


def test_time_zone_applies_to_day_of_week_too() -> None:
    """Sunday 00:30 in Berlin is Saturday 23:30 UTC: the day is judged in the local zone."""
    fire = fire_times("30 0 * * 0", count=1, timezone=BERLIN)[0]

    assert fire.astimezone(BERLIN).weekday() == SUN
    assert fire.astimezone(UTC) == datetime(2026, 11, 21, 23, 30, tzinfo=UTC)
