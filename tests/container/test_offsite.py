"""The off-site copy switched on in the compose stack through its settings alone: ``OFFSITE_*``
in the stack's ``.env`` and the two key files ``make up`` leaves empty in its secrets
directory, with the product compose file unchanged.

The store is a real S3 API server (moto_server, IAM checks on) on the host's 127.0.0.1, which
the containers reach under this engine's host networking. First the keys are left empty, as
``make up`` creates them: the daemon refuses in one line naming the empty file. Then the keys
are written into those files and barman restarted: a DONE backup and its WAL reach the bucket,
and ``/status`` says the copy is up to date.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.container.conftest import Stack
from tests.support.poll import wait_until
from tests.support.s3 import S3, s3_server

pytestmark = [pytest.mark.container, pytest.mark.timeout(900)]

PREFIX = "barman"
REFUSAL = (
    "barman-supervisor: error: AWS_ACCESS_KEY_ID_FILE: '/run/secrets/aws_access_key_id' is "
    "empty and OFFSITE_URL is set; write the secret into it, or unset OFFSITE_URL"
)
# Start (PostgreSQL healthy, first backup) and the next copy round, on 2 cores.
BACKUP_IN_STORE_S = 300


@pytest.fixture
def store(tmp_path: Path) -> Iterator[S3]:
    with s3_server(tmp_path) as s3:
        yield s3


@pytest.fixture
def offsite_stack(docker_client: Any, tmp_path: Path, store: S3) -> Iterator[Stack]:
    stack = Stack(
        docker_client,
        tmp_path,
        {
            "OFFSITE_URL": f"s3://{store.bucket}/{PREFIX}",
            "OFFSITE_ENDPOINT_URL": store.endpoint,
            "OFFSITE_REGION": "us-east-1",
            "OFFSITE_INTERVAL": "5",
            "OFFSITE_COMPRESSION": "gzip",
            "BACKUP_SCHEDULE": "0 3 * * 0",
            "BACKUP_INCREMENTAL_SCHEDULE": "",
            "BACKUP_IMMEDIATE_CHECKPOINT": "true",
            "BARMAN_CHECK_INTERVAL": "5",
            "HEALTH_INTERVAL": "2",
            "DRILL_SCHEDULE": "",
            "TZ": "UTC",
        },
    )
    try:
        stack.compose("up", "-d", "--no-build", "--pull", "never")
        yield stack
    finally:
        stack.down()


def _backups_in_store(store: S3) -> set[str]:
    return {key.split("/")[3] for key in store.keys(f"{PREFIX}/pg/base/")}


def test_offsite_is_switched_on_through_the_env_file_and_the_key_files(
    offsite_stack: Stack, store: S3
) -> None:
    environment = offsite_stack.container("barman").attrs["Config"]["Env"]
    assert f"OFFSITE_URL=s3://{store.bucket}/{PREFIX}" in environment
    keys_as_values = ("AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=")
    assert not [e for e in environment if e.startswith(keys_as_values)], environment

    # The key files as `make up` creates them, empty: refused, in one line, on every start.
    wait_until(
        lambda: REFUSAL in offsite_stack.logs(), 120, what="the empty key refused", interval=2
    )
    assert set(offsite_stack.logs()) == {REFUSAL}
    assert not store.keys(PREFIX)

    # Stopped first: a `restart` of a container the engine is about to restart (its policy
    # after each refusal) can be followed by the engine's own restart a moment later.
    offsite_stack.compose("stop", "barman")
    secrets = offsite_stack.workdir / "secrets"
    (secrets / "aws_access_key_id").write_text(store.key_id + "\n")
    (secrets / "aws_secret_access_key").write_text(store.secret + "\n")
    offsite_stack.compose("start", "barman")

    copied = wait_until(
        lambda: _backups_in_store(store),
        BACKUP_IN_STORE_S,
        what="a backup in the store",
        interval=2,
    )
    done = {b["backup_id"] for b in offsite_stack.backups() if b["status"] == "DONE"}
    assert copied <= done and copied, (copied, done)
    wal = store.keys(f"{PREFIX}/pg/wals/")
    assert wal and all(key.endswith(".gz") or key.endswith(".history") for key in wal), wal

    def up_to_date() -> dict[str, Any] | None:
        server = offsite_stack.server_status() or {}
        record: dict[str, Any] = server.get("offsite") or {}
        copied_newest = record.get("newest_copied_backup") in done and not record["backups_owed"]
        return record if copied_newest else None

    record = wait_until(up_to_date, 60, what="/status: the store holds the backup", interval=2)
    assert record["url"] == f"s3://{store.bucket}/{PREFIX}"
    assert record["last_error"] is None and record["bytes_copied"] > 0, record
    logs = "\n".join(offsite_stack.logs())
    assert store.secret not in logs and store.key_id not in logs
    assert logs.count('"event": "daemon_starting"') == 1, "one start once the keys were written"
