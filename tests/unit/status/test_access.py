"""Logins against bcrypt hashes: who gets in, and a verdict kept so bcrypt runs once per header."""

from __future__ import annotations

import bcrypt
import pytest

from barman_supervisor.status.access import CACHED_LOGINS, Logins, basic_credentials
from tests.support.webconfig import PASSWORD, TEST_COST, USER, basic


def logins() -> Logins:
    return Logins({USER: bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(TEST_COST))})


def test_without_users_everyone_is_in() -> None:
    assert Logins({}).cached(None) is True and not Logins({}).required


def test_without_a_header_nobody_is_in() -> None:
    assert logins().cached(None) is False


@pytest.mark.parametrize(
    ("header", "verdict"),
    [
        (basic(), True),
        (basic(password="wrong"), False),
        (basic(user="alice"), False),
        ("Bearer " + PASSWORD, False),
        ("Basic not-base64!", False),
    ],
)
def test_the_header_is_checked_against_the_hash(header: str, verdict: bool) -> None:
    checker = logins()

    assert checker.cached(header) is None  # not seen: bcrypt must decide
    assert checker.verify(header) is verdict
    assert checker.cached(header) is verdict  # kept: no second bcrypt


def test_kept_verdicts_are_bounded() -> None:
    checker = logins()
    headers = [basic(password=f"guess-{n}") for n in range(CACHED_LOGINS + 1)]
    for header in headers:
        checker.verify(header)

    assert checker.cached(headers[0]) is None
    assert checker.cached(headers[-1]) is False


def test_basic_credentials_split_at_the_first_colon() -> None:
    assert basic_credentials(basic(password="a:b")) == (USER, "a:b")
    assert basic_credentials("basic " + basic()[6:]) == (USER, PASSWORD)
