"""What compressed base backups need from the server and the host (issue 13), decided without
either: the refusals name the variable and the fix."""

from __future__ import annotations

import pytest

from barman_supervisor.barman.compression import compression_problems, unverifiable
from barman_supervisor.config import BackupPolicy

PG14, PG15, PG18 = 140011, 150014, 180001


def everything(_: str) -> bool:
    return True


def policy(compression: str, location: str = "client") -> BackupPolicy:
    return BackupPolicy(compression=compression, compression_location=location)


def test_no_compression_needs_nothing() -> None:
    assert compression_problems(BackupPolicy(), PG14, lambda _: False) == []


@pytest.mark.parametrize("compression", ["gzip", "lz4", "zstd"])
@pytest.mark.parametrize("location", ["client", "server"])
def test_every_compression_works_from_postgresql_15_with_its_program(
    compression: str, location: str
) -> None:
    assert compression_problems(policy(compression, location), PG15, everything) == []
    assert compression_problems(policy(compression, location), PG18, everything) == []


@pytest.mark.parametrize("compression", ["lz4", "zstd"])
def test_lz4_and_zstd_on_postgresql_14_are_refused(compression: str) -> None:
    assert compression_problems(policy(compression), PG14, everything) == [
        f"BACKUP_COMPRESSION={compression} needs PostgreSQL 15 or newer and the server is 14; "
        "set BACKUP_COMPRESSION=gzip (or none)"
    ]


def test_gzip_on_the_client_works_on_postgresql_14_and_on_the_server_does_not() -> None:
    assert compression_problems(policy("gzip"), PG14, everything) == []
    assert compression_problems(policy("gzip", "server"), PG14, everything) == [
        "BACKUP_COMPRESSION_LOCATION=server needs PostgreSQL 15 or newer and the server is 14; "
        "set BACKUP_COMPRESSION_LOCATION=client"
    ]


@pytest.mark.parametrize(("compression", "program"), [("zstd", "zstd"), ("lz4", "lz4")])
def test_a_missing_program_is_refused_naming_it(compression: str, program: str) -> None:
    problems = compression_problems(policy(compression), PG18, lambda name: name != program)
    assert problems == [
        f"BACKUP_COMPRESSION={compression}: Barman reads compressed backups with tar and "
        f"{program}, and {program} is not on PATH; install {program} beside Barman or set "
        "BACKUP_COMPRESSION=none"
    ]


def test_a_missing_tar_is_refused_too() -> None:
    (problem,) = compression_problems(policy("gzip"), PG18, lambda name: name != "tar")
    assert "and tar is not on PATH; install tar beside Barman" in problem


def test_barmans_refusal_to_verify_a_tar_backup_leaves_it_unverified_with_the_fix() -> None:
    refusal = (
        "Verification of tar format backups requires pg_verifybackup from Postgres 18 or "
        "newer (found 15.14)"
    )
    reason = unverifiable([("info", "Calling pg_verifybackup"), ("error", refusal)])
    assert reason.startswith(f"not verified: {refusal}; install postgresql-client-18")
    assert "DRILL_SCHEDULE" in reason


def test_any_other_verification_error_is_not_a_skip() -> None:
    damaged = ("error", 'verify backup failure on directory "/x"')
    assert unverifiable([damaged]) == ""
    assert unverifiable([("info", "Verification of tar format backups requires x")]) == ""
