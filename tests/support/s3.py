"""A real S3 API server for the off-site tests: ``moto_server`` on 127.0.0.1 with its IAM
checks on (a wrong key is refused as by AWS), behind a TCP relay the tests can cut to play an
outage of the store without losing what it holds (moto keeps everything in memory)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from tests.support.paths import VENV_BIN
from tests.support.poll import wait_until
from tests.support.ports import free_port

# Unauthenticated calls moto allows before it checks every request: user, policy, key.
_SETUP_CALLS = 3
_RELAY_CHUNK = 65536


class Relay:
    """127.0.0.1:port → target; ``cut()`` refuses new connections and drops open ones."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self._target = target_port
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def up(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._target))
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(_RELAY_CHUNK):
                sink.sendall(data)
        for conn in (source, sink):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


@dataclass
class S3:
    endpoint: str
    bucket: str
    key_id: str
    secret: str
    relay: Relay
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
    relay = Relay(port)
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
