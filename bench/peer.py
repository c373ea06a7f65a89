"""Scenario 9, the peer: full backup and restore beside pgBackRest on one cluster (issue 27).

``python -m bench.peer`` runs it alone (``--cluster DIR`` keeps the loaded cluster for the next
run); ``make bench`` runs it last, phase ``peer``, on a cluster of its own (Debian's
``pgbackrest`` is installed by ``make bench``). The same PostgreSQL 15 cluster (pgbench -s 50,
about 750 MB), the same disk, per compression (``none``, ``zstd``):

* pgBackRest (Debian's package): a local repository, ``process-max`` = cores,
  ``start-fast``; ``backup --type=full`` and ``restore`` into an empty directory;
* the daemon: a fresh daemon's first backup (``BACKUP_ON_START``, ``BACKUP_COMPRESSION``; the
  ``backup_finished`` event's ``duration_s``), then ``barman-supervisor restore pg DEST`` of it,
  timed whole as the person typing it waits for it (its plan included), the daemon stopped.

Neither restore starts PostgreSQL: both end with the files in place (pgBackRest's copy fetches
its WAL at start-up through ``restore_command``; the daemon's holds the WAL it needs already).
Rounds alternate which side goes first, so a drift in machine load favours neither; the
one-minute load average is recorded with every number, the machine being shared.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.backups import load
from bench.common import ratio, start_daemon, stop_daemon, summary
from bench.report import peer_section
from tests.support.paths import REPO, SUPERVISOR
from tests.support.postgres import Cluster

COMPRESSIONS = ("none", "zstd")
SIDES = ("pgbackrest", "daemon")
STANZA = "bench"
# pgBackRest spells zstd "zst".
PGBACKREST_COMPRESS_TYPE = {"none": "none", "zstd": "zst"}
SCALE = 50
COMMAND_TIMEOUT = 1800
BACKUP_ROUNDS = 2
RESTORE_ROUNDS = 3
RESULTS = REPO / "bench" / "results"
POSTGRES_USER = "postgres"


def _load1() -> float:
    return round(os.getloadavg()[0], 2)


def _du_mb(path: Path) -> float:
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    return round(size / 2**20, 1)


def _as_postgres(argv: list[str]) -> list[str]:
    """pgBackRest runs as the cluster's owner, as its documentation sets it up."""
    return ["runuser", "-u", POSTGRES_USER, "--", *argv] if os.geteuid() == 0 else argv


def _timed(argv: list[str], **kwargs: Any) -> float:
    started = time.monotonic()
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False, **kwargs
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} -> {done.returncode}: {done.stderr or done.stdout}")
    return round(time.monotonic() - started, 3)


def _empty_dir(path: Path) -> Path:
    """A new empty directory the cluster's owner can write (pgBackRest restores as it)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    if os.geteuid() == 0:
        shutil.chown(path, POSTGRES_USER, POSTGRES_USER)
    return path


class PgBackRest:
    """One stanza with a local repository per compression, on the bench's cluster."""

    def __init__(self, root: Path, pg: Cluster) -> None:
        self.root = _empty_dir(root / "pgbackrest")
        self.config = self.root / "pgbackrest.conf"
        self.config.write_text(
            "[global]\n"
            f"process-max={os.cpu_count() or 1}\n"
            "start-fast=y\n"
            # archive_mode is off on the bench's cluster (Barman streams): no WAL check.
            "archive-check=n\n"
            f"lock-path={self.root}/lock\n"
            f"log-path={self.root}/log\n"
            "log-level-console=warn\n"
            "log-level-file=off\n"
            f"[{STANZA}]\n"
            f"pg1-path={pg.datadir}\n"
            f"pg1-port={pg.port}\n"
            f"pg1-socket-path={pg.base}\n"
            f"pg1-user={POSTGRES_USER}\n"
        )
        for compression in COMPRESSIONS:
            self._run(compression, "stanza-create")

    def repo(self, compression: str) -> Path:
        return self.root / f"repo-{compression}"

    def _run(self, compression: str, *args: str) -> float:
        argv = [
            "pgbackrest",
            f"--config={self.config}",
            f"--stanza={STANZA}",
            f"--repo1-path={self.repo(compression)}",
            *args,
        ]
        return _timed(_as_postgres(argv))

    def backup(self, compression: str) -> float:
        return self._run(
            compression,
            "backup",
            "--type=full",
            f"--compress-type={PGBACKREST_COMPRESS_TYPE[compression]}",
        )

    def restore(self, compression: str, destination: Path) -> float:
        return self._run(compression, "restore", f"--pg1-path={_empty_dir(destination)}")

    def expire_all_but_newest(self, compression: str) -> None:
        self._run(compression, "expire", "--repo1-retention-full=1")


class DaemonSide:
    """The daemon's backups, one fresh daemon each; the newest one's home is restored from."""

    def __init__(self, root: Path, pg: Cluster) -> None:
        self.root = root
        self.pg = pg
        self.env: dict[str, dict[str, str]] = {}
        self.homes: dict[str, Path] = {}

    def backup(self, compression: str, tag: str) -> float:
        slot = f"bench_peer_{compression}_{tag}"
        name = f"peer-{compression}-{tag}"
        bench = start_daemon(
            self.root, name, self.pg, [slot], BARMAN_SLOT_NAME=slot, BACKUP_COMPRESSION=compression
        )
        try:
            finished = bench.wait("backup_finished", COMMAND_TIMEOUT)
        finally:
            stop_daemon(bench, self.pg)
        if not finished.get("ok"):
            raise RuntimeError(f"daemon backup failed: {finished.get('reason')}")
        old = self.homes.get(compression)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self.homes[compression] = bench.daemon.workdir
        self.env[compression] = bench.daemon.env
        return float(finished["duration_s"])

    def restore(self, compression: str, destination: Path) -> float:
        """``barman-supervisor restore`` as a person runs it, with the daemon stopped."""
        shutil.rmtree(destination, ignore_errors=True)
        return _timed([SUPERVISOR, "restore", "pg", str(destination)], env=self.env[compression])

    def backup_mb(self, compression: str) -> float:
        return _du_mb(self.homes[compression] / "barman" / "pg" / "base")


def _measure(
    samples: dict[str, dict[str, list[dict[str, float]]]], side: str, what: str, seconds: float
) -> None:
    samples[side].setdefault(what, []).append({"s": seconds, "load1": _load1()})


def run(root: Path, pg: Cluster, rounds: int = RESTORE_ROUNDS) -> dict[str, object]:
    """Both sides, per compression: backups, then restores of the newest backup."""
    size = int(pg.sql("SELECT sum(pg_database_size(oid)) FROM pg_database"))
    peer = PgBackRest(root, pg)
    ours = DaemonSide(root, pg)
    target = root / "peer-restore"
    runs: dict[str, Any] = {}
    for compression in COMPRESSIONS:
        samples: dict[str, dict[str, list[dict[str, float]]]] = {side: {} for side in SIDES}
        for round_ in range(min(rounds, BACKUP_ROUNDS)):
            order = SIDES if round_ % 2 == 0 else tuple(reversed(SIDES))
            for side in order:
                pg.sql("CHECKPOINT")
                if side == "pgbackrest":
                    seconds = peer.backup(compression)
                else:
                    seconds = ours.backup(compression, f"r{round_}")
                _measure(samples, side, "backup", seconds)
        peer.expire_all_but_newest(compression)
        for round_ in range(rounds):
            order = SIDES if round_ % 2 == 0 else tuple(reversed(SIDES))
            for side in order:
                restore = peer.restore if side == "pgbackrest" else ours.restore
                _measure(samples, side, "restore", restore(compression, target))
                shutil.rmtree(target, ignore_errors=True)
        stored = {
            "pgbackrest": _du_mb(peer.repo(compression) / "backup"),
            "daemon": ours.backup_mb(compression),
        }
        runs[compression] = {**samples, "store_mb": stored}
    return {"cluster_mb": round(size / 2**20, 1), "cores": os.cpu_count(), **summarise(runs)}


def summarise(runs: dict[str, Any]) -> dict[str, Any]:
    """``peer → pgbackrest / daemon → backup_s / restore_s → compression`` (medians), the
    ratios daemon / pgBackRest, and every sample with its load average."""
    result: dict[str, Any] = {
        side: {"backup_s": {}, "restore_s": {}, "store_mb": {}} for side in SIDES
    }
    ratios: dict[str, dict[str, float | None]] = {}
    for compression, samples in runs.items():
        for side in SIDES:
            for what in ("backup", "restore"):
                values = [sample["s"] for sample in samples[side].get(what, [])]
                result[side][f"{what}_s"][compression] = summary(values, 3)["median"]
            result[side]["store_mb"][compression] = samples["store_mb"][side]
        ratios[compression] = {
            what: ratio(
                result["daemon"][f"{what}_s"][compression],
                result["pgbackrest"][f"{what}_s"][compression],
            )
            for what in ("backup", "restore")
        }
    return {
        **result,
        "daemon_over_pgbackrest": ratios,
        "runs": runs,
        "pgbackrest_version": _version(),
    }


def _version() -> str:
    done = subprocess.run(["pgbackrest", "version"], capture_output=True, text=True, check=False)
    return done.stdout.strip()


def reusable_cluster(base: Path, scale: int) -> Cluster:
    """The cluster in ``base``, made and loaded once (``pgbench -i -s scale``) and started."""
    conf = base / "data" / "postgresql.conf"
    if conf.exists():
        port = int(re.findall(r"^port = (\d+)", conf.read_text(), re.MULTILINE)[-1])
        pg = Cluster(base, port=port)
        if not pg.running():
            pg.start()
        return pg
    base.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(base, POSTGRES_USER, POSTGRES_USER)
    pg = Cluster(base).init()
    print(f"[peer] loading pgbench -s {scale} ...", file=sys.stderr, flush=True)
    print(f"[peer] {load(pg, scale)}", file=sys.stderr, flush=True)
    return pg


def measure(
    root: Path, scale: int = SCALE, rounds: int = RESTORE_ROUNDS, base: Path | None = None
) -> dict[str, Any]:
    """The scenario on a cluster of its own (``base``: kept and reused; default: in ``root``),
    stopped at the end; the load average before and after with the results."""
    pg = reusable_cluster(base or root / "peer-cluster", scale)
    try:
        results = {"loadavg_at_start": list(os.getloadavg()), **run(root, pg, rounds)}
    finally:
        pg.stop()
    results["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scale", type=int, default=SCALE, help="pgbench scale of the cluster")
    parser.add_argument("--rounds", type=int, default=RESTORE_ROUNDS, help="restores per side")
    parser.add_argument(
        "--cluster",
        type=Path,
        help="keep the loaded cluster in this directory and reuse it next time (stopped at "
        "the end, not deleted); default: a throwaway one",
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="output directory")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bs-peer-"))
    root.chmod(0o755)
    try:
        results = measure(root, args.scale, args.rounds, args.cluster)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "peer.json").write_text(json.dumps({"peer": results}, indent=2) + "\n")
    (args.results / "peer.md").write_text(
        "# Restore beside pgBackRest\n\n" + peer_section(results) + "\n"
    )
    print(peer_section(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
