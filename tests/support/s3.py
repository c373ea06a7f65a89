"""A real S3 API server for the off-site tests: ``moto_server`` on 127.0.0.1 with its IAM
checks on (a wrong key is refused as by AWS), behind a TCP relay the tests can cut to play an
outage of the store without losing what it holds (moto keeps everything in memory)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from tests.support.forwarder import Forwarder
from tests.support.paths import VENV_BIN
from tests.support.poll import wait_until
from tests.support.ports import free_port

# Unauthenticated calls moto allows before it checks every request: user, policy, key.
_SETUP_CALLS = 3


@dataclass
class S3:
    endpoint: str
    bucket: str
    key_id: str
    secret: str
    relay: Forwarder
    client: Any = field(repr=False)

    def objects(self, prefix: str = "") -> dict[str, int]:
        """Key -> size in bytes of every object under ``prefix``."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        return {item["Key"]: item["Size"] for page in pages for item in page.get("Contents", [])}

    def keys(self, prefix: str = "") -> list[str]:
        return list(self.objects(prefix))


@contextmanager
def s3_server(workdir: Path) -> Iterator[S3]:
    port = free_port()
    log = (workdir / "moto.log").open("wb")
    process = subprocess.Popen(
        [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(_SETUP_CALLS)},
    )
    relay = Forwarder(port)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(port), timeout=60, what="moto_server")
        setup = {
            "endpoint_url": url,
            "aws_access_key_id": "setup",
            "aws_secret_access_key": "setup",
            "region_name": "us-east-1",
        }
        iam = boto3.client("iam", **setup)
        iam.create_user(UserName="barman")
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        }
        iam.put_user_policy(UserName="barman", PolicyName="all", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="barman")["AccessKey"]
        client = boto3.client(
            "s3",
            endpoint_url=url,
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
            region_name="us-east-1",
        )
        client.create_bucket(Bucket="offsite")
        relay.up()
        yield S3(
            f"http://127.0.0.1:{relay.port}",
            "offsite",
            key["AccessKeyId"],
            key["SecretAccessKey"],
            relay,
            client,
        )
    finally:
        relay.cut()
        process.terminate()
        process.wait(30)
        log.close()


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
