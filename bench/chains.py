"""``python -m bench.chains``: incremental and compressed backups measured (issue 13).

Incremental backups need PostgreSQL >= 17 and this host has 15, so the measurement runs inside
the product image (PostgreSQL 18 server and client programs, Barman 3.20.1, zstd/lz4/gzip):
a throwaway PostgreSQL 18 cluster in the container's own volume, a pgbench database of about
1 GB (``--scale``, fillfactor 90 so that an update stays in its block), Barman driven through its
CLI. Measured:

- a full backup per compression (none, gzip, lz4, zstd on the client; zstd on the server):
  time, size on disk, restore time;
- a chain: the uncompressed full, then incrementals each after an update of one row in every
  twentieth block of ``pgbench_accounts`` (about 5% of the database's blocks): time and size;
- restore (``barman recover``) of the newest backup of a chain of 6 (full + 5 incrementals,
  combined by pg_combinebackup) versus restore of the full alone.

The host side runs ``docker run`` (host network, the image's entrypoint replaced by this file)
and writes ``bench/results/chains.json`` and ``chains.md``. Run it under the machine's heavy-run
lock: ``flock /work/heavy.lock .venv/bin/python -m bench.chains``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

IMAGE = os.environ.get("IMAGE", "barman-supervisor:test")
PG = Path("/usr/lib/postgresql/18/bin")
WORK = Path("/var/lib/barman/bench")
COMPRESSIONS = [
    ("none", "client"),
    ("gzip", "client"),
    ("lz4", "client"),
    ("zstd", "client"),
    ("zstd", "server"),
]
CHAIN = 6
CHANGED_FRACTION = 0.05
FILLFACTOR = 90
COMMAND_TIMEOUT = 3600


def _loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def _run(*argv: str, timeout: float = COMMAND_TIMEOUT) -> tuple[float, str]:
    """Run a command; its wall time and stdout. A failure ends the bench with its output."""
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} -> {done.returncode}\n{done.stdout}\n{done.stderr}")
    return round(time.monotonic() - started, 2), done.stdout


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


class Inside:
    """The measurement, run inside the image as the barman user."""

    def __init__(self, port: int, scale: int) -> None:
        self.port, self.scale = port, scale
        self.data = WORK / "pg"
        self.config = WORK / "barman.conf"
        self.home = WORK / "home"

    def psql(self, sql: str) -> str:
        return _run(
            str(PG / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
            "-d", "postgres", "-AtXq", "-v", "ON_ERROR_STOP=1", "-c", sql,
        )[1].strip()  # fmt: skip

    def barman(self, *args: str) -> tuple[float, str]:
        return _run("barman", "-c", str(self.config), *args)

    def setup(self) -> dict[str, Any]:
        WORK.mkdir(parents=True, exist_ok=True)
        _run(str(PG / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                "unix_socket_directories = '/tmp'\nwal_level = replica\nsummarize_wal = on\n"
                "max_wal_senders = 20\nmax_replication_slots = 20\nmax_wal_size = 4GB\n"
                "fsync = off\n"
            )
        _run(str(PG / "pg_ctl"), "-D", str(self.data), "-l", str(WORK / "pg.log"), "-w", "start")
        took, _ = _run(
            str(PG / "pgbench"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
            "-i", "-q", "-s", str(self.scale), "-F", str(FILLFACTOR), "postgres",
        )  # fmt: skip
        self.psql("VACUUM ANALYZE")
        size = int(self.psql("SELECT pg_database_size('postgres')"))
        servers = []
        for compression, location in COMPRESSIONS:
            name = f"{compression}_{location}"
            extra = (
                f"backup_compression = {compression}\nbackup_compression_location = {location}\n"
                if compression != "none"
                else ""
            )
            conninfo = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
            servers.append(
                f"[{name}]\nconninfo = {conninfo}\nstreaming_conninfo = {conninfo}\n"
                "backup_method = postgres\nstreaming_archiver = on\narchiver = off\n"
                f"slot_name = {name}\ncreate_slot = auto\n{extra}"
            )
        self.config.write_text(
            f"[barman]\nbarman_user = barman\nbarman_home = {self.home}\n"
            f"log_file = {WORK}/barman.log\nstaging_path = {WORK}/staging\n"
            "staging_location = local\n\n" + "\n".join(servers)
        )
        self.home.mkdir()
        (WORK / "staging").mkdir()
        for compression, location in COMPRESSIONS:
            self.barman("receive-wal", "--create-slot", f"{compression}_{location}")
        self.barman("cron")
        self.barman("switch-wal", "--force", "--archive", "--archive-timeout", "120", "all")
        return {"pgbench_scale": self.scale, "pgbench_init_s": took, "database_bytes": size}

    def backup(self, server: str, *extra: str) -> dict[str, Any]:
        load = _loadavg()
        took, _ = self.barman("backup", "--immediate-checkpoint", "--wait", *extra, server)
        _, listed = self.barman("-f", "json", "list-backups", server)
        newest = max(json.loads(listed)[server], key=lambda b: str(b["backup_id"]))
        backup_id = newest["backup_id"]
        data = self.home / server / "base" / backup_id / "data"
        return {
            "backup_id": backup_id,
            "status": newest["status"],
            "time_s": took,
            "bytes_on_disk": _du(data),
            "load_before": load,
        }

    def restore(self, server: str, backup_id: str) -> dict[str, Any]:
        destination = WORK / "restored"
        load = _loadavg()
        took, _ = self.barman("recover", server, backup_id, str(destination))
        restored = _du(destination)
        shutil.rmtree(destination)
        return {"time_s": took, "restored_bytes": restored, "load_before": load}

    def change_blocks(self, round_number: int) -> None:
        """One row in every twentieth block of pgbench_accounts (a different twentieth each
        round): with fillfactor 90 the new version stays in its block (a HOT update, no index
        change), so about CHANGED_FRACTION of the database's blocks change."""
        every = round(1 / CHANGED_FRACTION)
        self.psql(
            "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE ctid = ANY (ARRAY("
            "SELECT format('(%s,1)', b)::tid FROM generate_series(0, "
            "pg_relation_size('pgbench_accounts') / current_setting('block_size')::int - 1) b "
            f"WHERE b % {every} = {round_number % every}))"
        )
        self.psql("CHECKPOINT")

    def measure(self) -> dict[str, Any]:
        result: dict[str, Any] = {"setup": self.setup(), "compression": {}, "chain": []}
        for compression, location in COMPRESSIONS:
            server = f"{compression}_{location}"
            backup = self.backup(server)
            backup["restore"] = self.restore(server, backup["backup_id"])
            result["compression"][server] = backup
            print(json.dumps({server: backup}), flush=True)
            if server != "none_client":
                # Keep the disk for the chain: only the uncompressed full is a parent.
                self.barman("delete", server, backup["backup_id"])
        full = result["compression"]["none_client"]
        parent = full["backup_id"]
        result["chain"].append({k: full[k] for k in ("backup_id", "time_s", "bytes_on_disk")})
        for round_number in range(1, CHAIN):
            self.change_blocks(round_number)
            step = self.backup("none_client", "--incremental", parent)
            result["chain"].append(step)
            print(json.dumps({"incremental": step}), flush=True)
            parent = step["backup_id"]
        result["restore_chain"] = self.restore("none_client", parent)
        result["restore_full"] = full["restore"]
        result["load_end"] = _loadavg()
        return result


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _table(result: dict[str, Any]) -> str:
    setup = result["setup"]
    mib = 1024 * 1024
    lines = [
        f"pgbench scale {setup['pgbench_scale']} (fillfactor {FILLFACTOR}), database "
        f"{setup['database_bytes'] / mib:.0f} MiB; PostgreSQL 18, Barman 3.20.1, in the image; "
        f"load average at the end {result['load_end']}",
        "",
        "| backup | time s | on disk MiB | vs none (size) | vs none (time) | restore s | load |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    none = result["compression"]["none_client"]
    for name, b in result["compression"].items():
        lines.append(
            f"| full, {name} | {b['time_s']} | {b['bytes_on_disk'] / mib:.0f} | "
            f"{none['bytes_on_disk'] / b['bytes_on_disk']:.2f}x smaller | "
            f"{b['time_s'] / none['time_s']:.2f}x | {b['restore']['time_s']} | "
            f"{b['load_before']} |"
        )
    for i, step in enumerate(result["chain"][1:], start=1):
        lines.append(
            f"| incremental {i} (~{CHANGED_FRACTION:.0%} of blocks changed) | {step['time_s']} | "
            f"{step['bytes_on_disk'] / mib:.1f} | "
            f"{step['bytes_on_disk'] / none['bytes_on_disk']:.1%} of the full | "
            f"{step['time_s'] / none['time_s']:.0%} of the full | | {step['load_before']} |"
        )
    chain, full = result["restore_chain"], result["restore_full"]
    lines += [
        "",
        f"Restore of the newest of a chain of {CHAIN} (pg_combinebackup): {chain['time_s']} s; "
        f"of the full alone: {full['time_s']} s ({chain['time_s'] / full['time_s']:.2f}x).",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--scale", type=int, default=64, help="pgbench scale (64: ~1 GB)")
    args = parser.parse_args()
    if args.inside:
        print("RESULT " + json.dumps(Inside(args.port, args.scale).measure()), flush=True)
        return 0
    here = Path(__file__).resolve()
    started = time.monotonic()
    done = subprocess.run(
        ["docker", "run", "--rm", "--network", "host", "-v", f"{here}:/bench/chains.py:ro",
         "--entrypoint", "/opt/barman-supervisor/bin/python3", IMAGE, "/bench/chains.py",
         "--inside", "--port", str(_free_port()), "--scale", str(args.scale)],
        capture_output=True, text=True, timeout=4 * COMMAND_TIMEOUT, check=False,
    )  # fmt: skip
    print(done.stdout[-4000:], done.stderr[-4000:], file=sys.stderr)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        return 1
    result = json.loads(lines[-1].removeprefix("RESULT "))
    result["wall_s"] = round(time.monotonic() - started, 1)
    results = here.parent / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "chains.json").write_text(json.dumps(result, indent=2) + "\n")
    table = _table(result)
    (results / "chains.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
