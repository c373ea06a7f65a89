"""Rendezvous sharding: deterministic, balanced, minimal movement, and the shard's identity."""

from __future__ import annotations

import subprocess
import sys

import pytest

from barman_supervisor.config.shard import (
    Shard,
    advisory_lock_key,
    moved,
    owned,
    owner,
    ownership,
    shard_from,
)
from barman_supervisor.errors import ConfigError

SERVERS = tuple(f"pg{number:03d}" for number in range(1000))


def test_owner_is_the_same_in_another_python_process() -> None:
    """Python's hash() is salted per process; the owner must not be."""
    here = [owner(server, 3) for server in SERVERS[:50]]
    code = (
        "from barman_supervisor.config.shard import owner;"
        "print([owner(f'pg{n:03d}', 3) for n in range(50)])"
    )
    there = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        env={"PYTHONHASHSEED": "12345"},
    ).stdout
    assert there.strip() == str(here)


def test_servers_are_balanced_across_shards() -> None:
    counts = [0, 0, 0, 0]
    for server in SERVERS:
        counts[owner(server, 4)] += 1
    assert all(200 <= count <= 300 for count in counts), counts


def test_three_to_four_moves_only_to_the_new_shard_about_a_quarter() -> None:
    changes = moved(SERVERS, 3, 4)
    assert all(new == 3 for _old, new in changes.values())
    assert 200 <= len(changes) <= 300, len(changes)


def test_every_server_has_exactly_one_owner() -> None:
    shards = [Shard(index, 3, "test") for index in range(3)]
    claimed = [server for shard in shards for server in owned(SERVERS, shard)]
    assert sorted(claimed) == sorted(SERVERS)


def test_ownership_says_why() -> None:
    entry = ownership(["pg1"], Shard(0, 1, "test"))[0]
    assert entry.mine and entry.owner == 0
    assert "shard 0 of 1" in entry.reason


def test_lock_keys_are_signed_64_bit_and_distinct() -> None:
    keys = {advisory_lock_key(f"barman_{server}") for server in SERVERS}
    assert len(keys) == len(SERVERS)
    assert all(-(2**63) <= key < 2**63 for key in keys)
    assert advisory_lock_key("barman_pg1") == advisory_lock_key("barman_pg1")


@pytest.mark.parametrize(
    ("index", "count", "pod", "expected"),
    [
        ("", "", "barman-2", None),
        ("1", "3", "", Shard(1, 3, "from SHARD_INDEX 1")),
        ("", "3", "barman-supervisor-2", Shard(2, 3, "from POD_NAME barman-supervisor-2")),
        ("0", "4", "barman-3", Shard(0, 4, "from SHARD_INDEX 0")),
    ],
)
def test_shard_from_identity(index: str, count: str, pod: str, expected: Shard | None) -> None:
    assert shard_from(index, count, pod) == expected


@pytest.mark.parametrize(
    ("index", "count", "pod", "names"),
    [
        ("1", "", "", "SHARD_INDEX"),
        ("", "0", "", "SHARD_COUNT"),
        ("", "three", "", "SHARD_COUNT"),
        ("", "3", "barman", "POD_NAME"),
        ("x", "3", "", "SHARD_INDEX"),
        ("", "3", "barman-3", "SHARD_COUNT: 3 leaves no shard 3"),
    ],
)
def test_bad_identity_is_one_line_naming_the_variable(
    index: str, count: str, pod: str, names: str
) -> None:
    with pytest.raises(ConfigError, match=names) as raised:
        shard_from(index, count, pod)
    assert "\n" not in str(raised.value)
