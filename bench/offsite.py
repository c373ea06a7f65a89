"""Scenario: the off-site copy (issue 14) against moto_server on 127.0.0.1.

* upload: the daemon's copy of a backup (``barman-cloud-backup`` on the finished local backup,
  the ``offsite_backup_copied`` event's duration) versus a plain boto3 ``upload_file`` of the same
  bytes (the backup's ``data`` directory as one uncompressed tar) to the same endpoint; then the
  same tool once with each OFFSITE_COMPRESSION (time, and the bytes the store holds).
* WAL lag at 1 segment/s: for each forced switch, the time until the segment is in the bucket
  (and, for the split, until it is in Barman's local archive).
* restore: ``restore-offsite`` (base backup and WAL from the bucket) versus ``restore`` (Barman's
  ``recover`` from the local volume) of the same newest backup.

moto keeps objects in memory and answers from the same 2 cores as everything else: the figures
compare the two sides on one machine, not a real store.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from barman_supervisor.config import OFFSITE_COMPRESSIONS
from bench.backups import load
from bench.common import BenchDaemon, ratio, start_daemon, stop_daemon, summary
from tests.support.paths import SUPERVISOR, VENV_BIN
from tests.support.postgres import Cluster, cluster
from tests.support.s3 import S3, s3_server

PREFIX = "bench"
SLOT = "bench_offsite"


def _env(s3: S3, workdir: Path) -> dict[str, str]:
    secret = workdir / "aws_secret"
    secret.write_text(s3.secret)
    return {
        "BARMAN_SLOT_NAME": SLOT,
        "BARMAN_CRON_INTERVAL": "1",
        "BACKUP_IMMEDIATE_CHECKPOINT": "true",
        "OFFSITE_URL": f"s3://{s3.bucket}/{PREFIX}",
        "OFFSITE_ENDPOINT_URL": s3.endpoint,
        "OFFSITE_REGION": "us-east-1",
        "OFFSITE_INTERVAL": "5",
        "AWS_ACCESS_KEY_ID": s3.key_id,
        "AWS_SECRET_ACCESS_KEY_FILE": str(secret),
    }


def upload(bench: BenchDaemon, s3: S3, workdir: Path, rounds: int) -> dict[str, Any]:
    """The daemon's own copy once, then ``rounds`` alternating pairs of the same tool run by
    hand and boto3's ``upload_file`` (the machine is shared: alternation spreads its load)."""
    copied = bench.wait("offsite_backup_copied", 1800)
    backup_id = str(copied["backup_id"])
    data = bench.home / "pg" / "base" / backup_id / "data"
    archive = workdir / "data.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(data, arcname=".")
    size_mb = archive.stat().st_size / 2**20
    tool, plain = [], []
    for number in range(rounds):
        tool.append(tool_alone(bench, s3, backup_id, f"alone{number}"))
        started = time.monotonic()
        s3.client.upload_file(str(archive), s3.bucket, f"plain{number}/data.tar")
        plain.append(time.monotonic() - started)
        delete_under(s3, f"alone{number}/", f"plain{number}/")
    archive.unlink()
    compressed = {}
    for compression in filter(None, OFFSITE_COMPRESSIONS):
        seconds = tool_alone(bench, s3, backup_id, compression, f"--{compression}")
        stored = sum(s3.objects(f"{compression}/").values()) / 2**20
        compressed[compression] = {"seconds": round(seconds, 2), "store_mb": round(stored, 1)}
        delete_under(s3, f"{compression}/")
    daemon_s = float(copied["duration_s"])
    tool_s, plain_s = summary(tool, 2), summary(plain, 2)
    return {
        "backup_mb": round(size_mb, 1),
        "daemon_copy_s": round(daemon_s, 2),
        "barman_cloud_backup_s": tool_s,
        "boto3_upload_file_s": plain_s,
        "daemon_mb_s": round(size_mb / daemon_s, 1),
        "barman_cloud_backup_mb_s": round(size_mb / float(tool_s["median"] or 1), 1),
        "boto3_mb_s": round(size_mb / float(plain_s["median"] or 1), 1),
        "throughput_ratio": ratio(plain_s["median"], tool_s["median"]),
        "compressed": compressed,
    }


def delete_under(s3: S3, *prefixes: str) -> None:
    for prefix in prefixes:
        for key in s3.keys(prefix):
            s3.client.delete_object(Bucket=s3.bucket, Key=key)


def tool_alone(bench: BenchDaemon, s3: S3, backup_id: str, prefix: str, *options: str) -> float:
    """barman-cloud-backup on the same backup into another prefix, as the daemon runs it."""
    home = bench.home / "pg"
    env = {
        **bench.daemon.env,
        "AWS_ACCESS_KEY_ID": s3.key_id,
        "AWS_SECRET_ACCESS_KEY": s3.secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "BARMAN_HOOK": "backup_retry_script",
        "BARMAN_PHASE": "post",
        "BARMAN_BACKUP_DIR": str(home / "base" / backup_id),
        "BARMAN_BACKUP_ID": backup_id,
        "BARMAN_BACKUP_INFO_PATH": str(home / "meta" / f"{backup_id}-backup.info"),
        "BARMAN_STATUS": "DONE",
    }
    started = time.monotonic()
    subprocess.run(
        [
            str(VENV_BIN / "barman-cloud-backup"),
            *("--cloud-provider", "aws-s3", "--endpoint-url", s3.endpoint),
            *options,
            f"s3://{s3.bucket}/{prefix}",
            "pg",
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=1800,
    )
    return time.monotonic() - started


def wal_lag(pg: Cluster, bench: BenchDaemon, s3: S3, segments: int) -> dict[str, Any]:
    """One forced switch per second; then wait (bounded) until each is local and off-site."""
    switched: dict[str, float] = {}
    for _ in range(segments):
        pg.sql("INSERT INTO pgbench_history (tid, bid, aid, delta) VALUES (1, 1, 1, 1)")
        name = pg.sql("SELECT pg_walfile_name(pg_switch_wal())")
        switched[name] = time.time()
        time.sleep(1.0)
    local: dict[str, float] = {}
    remote: dict[str, float] = {}
    wals = bench.home / "pg" / "wals"
    deadline = time.monotonic() + 300
    while len(remote) < len(switched) and time.monotonic() < deadline:
        now = time.time()
        for name in switched:
            if name not in local and (wals / name[:16] / name).exists():
                local[name] = now
        in_store = {key.rsplit("/", 1)[1] for key in s3.keys(f"{PREFIX}/pg/wals/")}
        for name in switched:
            if name in in_store and name not in remote:
                remote[name] = now
        time.sleep(0.2)
    return {
        "segments": segments,
        "copied": len(remote),
        "switch_to_local_s": summary([local[n] - switched[n] for n in local], 2),
        "switch_to_store_s": summary([remote[n] - switched[n] for n in remote], 2),
    }


def restores(bench: BenchDaemon, root: Path) -> dict[str, Any]:
    timings = {}
    for command in ("restore", "restore-offsite"):
        destination = Path(tempfile.mkdtemp(prefix="bs-bench-restore-", dir=root)) / "data"
        started = time.monotonic()
        done = subprocess.run(
            [SUPERVISOR, command, "pg", str(destination)],
            capture_output=True,
            text=True,
            timeout=1800,
            env=bench.daemon.env,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{command} failed: {done.stdout[-500:]} {done.stderr[-500:]}")
        timings[command] = round(time.monotonic() - started, 2)
        shutil.rmtree(destination.parent, ignore_errors=True)
    return {
        "local_s": timings["restore"],
        "from_store_s": timings["restore-offsite"],
        "ratio": ratio(timings["restore-offsite"], timings["restore"]),
    }


def run(root: Path, scale: int = 10, segments: int = 30, rounds: int = 3) -> dict[str, Any]:
    workdir = root / "offsite"
    workdir.mkdir(parents=True, exist_ok=True)
    with s3_server(workdir) as s3, cluster() as pg:
        pg.init()
        loaded = load(pg, scale)
        bench = start_daemon(root, "offsite-daemon", pg, [SLOT], **_env(s3, workdir))
        try:
            result: dict[str, Any] = {
                "cluster": loaded,
                "upload": upload(bench, s3, workdir, rounds),
            }
            # Ends once every switched segment is in the bucket (bounded).
            result["wal_lag_1_per_s"] = wal_lag(pg, bench, s3, segments)
            bench.daemon.stop()
            result["restore"] = restores(bench, root)
            return result
        finally:
            stop_daemon(bench, pg)


if __name__ == "__main__":
    bench_root = Path(tempfile.mkdtemp(prefix="bs-bench-offsite-"))
    bench_root.chmod(0o755)
    quick = "--quick" in sys.argv
    try:
        sizes = (1, 5, 1) if quick else (10, 30, 3)
        print(json.dumps(run(bench_root, *sizes), indent=2))
    finally:
        shutil.rmtree(bench_root, ignore_errors=True)
