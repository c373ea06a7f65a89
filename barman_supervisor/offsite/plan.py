"""Off-site copies (issue 14): what is owed to the S3 store, how far behind it is, and why.

Pure decisions over plain data; ``offsite_copy`` runs the ``barman-cloud-*`` programs.

The daemon, not Barman's hooks, drives the copies. A retry hook (``post_backup_retry_script``,
``pre_archive_retry_script``) retries inside the Barman command for ever: while the store is
down ``barman backup`` never returns (the daemon's backup job and its lock stay held) and
``archive-wal`` stops moving WAL into the local archive, so local protection suffers from an
off-site outage and nothing tells the probes how far behind the copy is. The daemon's own job
copies what the local catalogue has and the store lacks, oldest first, backs off on failure,
and exposes the backlog to ``/readyz``, ``/status`` and ``/metrics``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from barman_supervisor.barman.records import Backup, BackupInfo, BackupStatus
from barman_supervisor.config import Offsite, ServerSettings
from barman_supervisor.postgres.wal import DEFAULT_SEGMENT_SIZE, is_wal_name, parse_lsn, reaches

CLOUD_PROVIDER = "aws-s3"
# What the fork server imports once when a store is configured: the clients the copier and a
# restore run, and the provider's module (boto3 with it). Measured: a listing forked from a
# server that imported these costs 0.15 s of CPU, started as its own process 0.43 s.
CLOUD_MODULES = (
    "barman.clients.cloud_walarchive",
    "barman.clients.cloud_backup",
    "barman.clients.cloud_backup_list",
    "barman.clients.cloud_backup_delete",
    "barman.clients.cloud_restore",
    "barman.clients.cloud_walrestore",
    "barman.cloud_providers.aws_s3",
)
# The kinds of backup the copy cannot take, by their backup.info keys.
_UNCOPYABLE = {
    "parent_backup_id": "it is a block-level incremental backup, which barman-cloud-restore "
    "cannot combine",
    "compression": "Barman compressed it (backup_compression); barman-cloud-backup copies only "
    "plain backups",
}


# The two copy jobs; each has its own last error.
CopyKind = Literal["backup", "wal"]


@dataclass
class OffsiteRecord:
    """What the copy jobs know about one server's store, as ``/status``, ``/readyz`` and
    ``/metrics`` read it (published to the State as a plain dict by ``as_dict``)."""

    url: str
    store_backups: list[str] = field(default_factory=list)
    backups_owed: list[str] = field(default_factory=list)
    # Uncopyable backups that matter (refusals_that_matter): backup id -> why.
    refused_backups: dict[str, str] = field(default_factory=dict)
    oldest_owed_backup: str | None = None
    oldest_owed_backup_end: float | None = None
    newest_copied_backup: str | None = None
    newest_copied_backup_end: float | None = None
    wal_owed: int = 0
    oldest_owed_wal: str | None = None
    oldest_owed_wal_at: float | None = None
    wal_copied: str | None = None
    wal_copied_at: float | None = None
    # When the newest WAL in the store was written (its file time in wals/): the recovery point.
    newest_wal_at: float | None = None
    wal_files_copied: int = 0
    bytes_copied: int = 0
    failures: int = 0
    backup_error: str | None = None
    wal_error: str | None = None
    last_ok_at: float | None = None
    last_error_at: float | None = None
    retention_at: float | None = None
    retention_hold: str | None = None
    # Holes in the store's WAL (offsite.holes.WalHole as dicts) and the segments they miss.
    wal_holes: list[dict[str, Any]] = field(default_factory=list)
    wal_missing: int = 0

    @property
    def last_error(self) -> str | None:
        """Both jobs' current errors in one line; None when both last succeeded."""
        return "; ".join(e for e in (self.backup_error, self.wal_error) if e) or None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "last_error": self.last_error}


def forkserver_preload(servers: Iterable[ServerSettings]) -> tuple[str, ...]:
    """``CLOUD_MODULES`` when any server has a store, else nothing: the fork server of a
    daemon with no store stays as small as before."""
    return CLOUD_MODULES if any(server.offsite is not None for server in servers) else ()


def cloud_program(barman_bin: str, name: str) -> str:
    """``barman-cloud-*`` installed beside ``barman`` (same virtualenv), else from PATH."""
    sibling = Path(barman_bin).parent / name
    return str(sibling) if Path(barman_bin).is_absolute() and sibling.is_file() else name


# The store's listing (backups and WAL names): a script run under Barman's interpreter.
STORE_LISTING_SCRIPT = Path(__file__).with_name("store_listing.py")


def cloud_python(barman_bin: str) -> str:
    """The Python that runs Barman's cloud programs (their ``#!`` line), for
    ``STORE_LISTING_SCRIPT``; the daemon's own when that cannot be read (one virtualenv)."""
    try:
        with Path(cloud_program(barman_bin, "barman-cloud-backup-list")).open("rb") as program:
            first = program.readline().decode(errors="replace").strip()
    except OSError:
        first = ""
    return first[2:].split()[0] if first.startswith("#!/") else sys.executable


def store_listing_argv(barman_bin: str, offsite: Offsite, server: str) -> list[str]:
    """The command that lists what the store holds (no secret on it: the keys go in its
    environment, ``cloud_env``)."""
    script = [cloud_python(barman_bin), str(STORE_LISTING_SCRIPT)]
    return [*script, *cloud_options(offsite), offsite.url, server]


@dataclass(frozen=True)
class StoreListing:
    """What the store holds for a server: its backups and the names of its WAL files."""

    backups: list[StoreBackup]
    wal_names: list[str]


def parse_store_listing(stdout: str) -> StoreListing | None:
    """``STORE_LISTING_SCRIPT``'s output; None when it is not such a listing."""
    try:
        document = json.loads(stdout or "null")
    except json.JSONDecodeError:
        return None
    if not isinstance(document, dict):
        return None
    names, rows = document.get("wal_names"), document.get("backups_list")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return None
    if not isinstance(rows, list):
        return None
    return StoreListing(_store_backups(rows), names)


def cloud_options(offsite: Offsite) -> list[str]:
    """Options every ``barman-cloud-*`` program takes: provider and endpoint (no secret)."""
    options = ["--cloud-provider", CLOUD_PROVIDER]
    if offsite.endpoint_url:
        options += ["--endpoint-url", offsite.endpoint_url]
    return options


def upload_options(offsite: Offsite) -> list[str]:
    """Options of the two uploaders (backup and WAL): server-side encryption (with a customer
    KMS key when one is set), and compression on the way (``--lz4`` …). The restore side needs
    neither: S3 decrypts for a reader the key's policy admits, barman-cloud-restore reads the
    compression from the store's backup.info, barman-cloud-wal-restore from the name's suffix."""
    options = ["-e", offsite.encryption] if offsite.encryption else []
    if offsite.sse_kms_key_id:
        options += ["--sse-kms-key-id", offsite.sse_kms_key_id]
    if offsite.compression:
        options.append(f"--{offsite.compression}")
    return options


def cloud_env(offsite: Offsite) -> dict[str, str]:
    """The only place the keys go: the environment of one ``barman-cloud-*`` child."""
    env = {}
    for name, secret in (
        ("AWS_ACCESS_KEY_ID", offsite.access_key_id),
        ("AWS_SECRET_ACCESS_KEY", offsite.secret_access_key),
        ("AWS_SESSION_TOKEN", offsite.session_token),
    ):
        if secret is not None:
            env[name] = secret.reveal()
    if offsite.region:
        env["AWS_DEFAULT_REGION"] = offsite.region
    return env


@dataclass(frozen=True)
class StoreBackup:
    """A backup in the store as ``barman-cloud-backup-list --format json`` shows it: its
    backup.info, of which a restore needs the timeline and WAL range."""

    backup_id: str
    status: str
    end_time: float | None = None
    timeline: int | None = None
    begin_wal: str | None = None
    end_wal: str | None = None
    end_lsn: int | None = None
    segment_size: int = DEFAULT_SEGMENT_SIZE
    # PostgreSQL's version (e.g. 150005) and the base backup's size, for the drill.
    version: int | None = None
    size_bytes: int | None = None


def parse_store_backups(stdout: str) -> list[StoreBackup]:
    """``barman-cloud-backup-list --format json``; empty on output that is not a listing."""
    try:
        document = json.loads(stdout or "{}")
    except json.JSONDecodeError:
        return []
    rows = document.get("backups_list", []) if isinstance(document, dict) else []
    return _store_backups(rows if isinstance(rows, list) else [])


def _store_backups(rows: list[Any]) -> list[StoreBackup]:
    return [_store_backup(row) for row in rows if isinstance(row, dict) and row.get("backup_id")]


def _store_backup(row: Mapping[str, Any]) -> StoreBackup:
    begin, end = str(row.get("begin_wal")), str(row.get("end_wal"))
    return StoreBackup(
        str(row.get("backup_id")),
        str(row.get("status")),
        _iso_time(row),
        timeline=_integer(row.get("timeline")),
        begin_wal=begin if is_wal_name(begin) else None,
        end_wal=end if is_wal_name(end) else None,
        end_lsn=parse_lsn(str(row.get("end_xlog"))),
        segment_size=int(row.get("xlog_segment_size") or DEFAULT_SEGMENT_SIZE),
        version=_integer(row.get("version")),
        size_bytes=_integer(row.get("size")),
    )


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _iso_time(row: Mapping[str, Any]) -> float | None:
    try:
        return datetime.fromisoformat(str(row.get("end_time_iso"))).timestamp()
    except ValueError:
        return None


def choose_store_backup(
    backups: Iterable[StoreBackup],
    target_time: datetime | None,
    timeline: int,
    ancestors: dict[int, int],
) -> StoreBackup | None:
    """The newest DONE backup in the store that ended before the target (or at all) and can be
    recovered onto ``timeline`` (``ancestors``: its history): after a promotion, a backup of
    the old timeline taken after the switch point leads elsewhere."""
    usable = [
        b
        for b in backups
        if b.status == BackupStatus.DONE
        and b.end_time is not None
        and (target_time is None or b.end_time < target_time.timestamp())
        and b.begin_wal is not None
        and b.timeline is not None
        and b.end_lsn is not None
        and reaches(b.timeline, b.end_lsn, timeline, ancestors)
    ]
    return max(usable, key=lambda b: b.end_time or 0.0, default=None)


def backups_owed(local: Iterable[Backup], in_store: set[str]) -> list[Backup]:
    """Local DONE backups the store lacks, oldest first.

    Only backups newer than the newest one already copied: an older one the store lacks was
    removed there by its retention, or predates the off-site copy, and copying it again would
    only be deleted again. With nothing copied yet, only the newest DONE backup is owed.
    """
    done = sorted(
        (b for b in local if b.status == BackupStatus.DONE and b.end_time is not None),
        key=lambda b: b.end_time or 0.0,
    )
    copied = [b for b in done if b.backup_id in in_store]
    if not copied:
        return done[-1:]
    newest_copied = copied[-1].end_time or 0.0
    return [b for b in done if b.backup_id not in in_store and (b.end_time or 0) > newest_copied]


@dataclass(frozen=True)
class LocalBackup:
    """A local DONE backup as the protection decision needs it (from its backup.info)."""

    backup_id: str
    begin_wal: str
    end_time: float


def backup_to_protect(
    local: Iterable[LocalBackup],
    owed_backups: Iterable[str],
    oldest_owed_wal: str | None,
) -> str | None:
    """The local backup to hold with ``barman keep --target full``, whether the store is behind
    or not.

    Barman's retention (in ``barman cron``) never deletes a keep:full backup nor any WAL after
    its start, so keeping the oldest backup the store still needs (an owed backup, or the
    newest one that starts at or before the oldest owed WAL file) keeps everything owed. With
    nothing owed, the newest backup is held: WAL archived after this round and before the next
    one is owed too, and comes after its start (releasing the hold would let retention delete
    it once a newer backup is done, before any round saw it). None with no local backup.
    """
    backups = sorted(local, key=lambda b: b.end_time)
    if not backups:
        return None
    owed = set(owed_backups)
    candidates = [b for b in backups if b.backup_id in owed][:1]
    if oldest_owed_wal is not None:
        covering = [b for b in backups if b.begin_wal <= oldest_owed_wal]
        candidates += covering[-1:] or backups[:1]
    return (
        min(candidates, key=lambda b: b.end_time).backup_id if candidates else backups[-1].backup_id
    )


def refusals_that_matter(
    local: Iterable[Backup], in_store: set[str], refused: Mapping[str, str]
) -> dict[str, str]:
    """Uncopyable backups newer than the newest backup in the store: until a newer full backup
    is copied, the store cannot restore the newest point."""
    ends = {b.backup_id: b.end_time or 0.0 for b in local}
    newest_copied = max((ends[i] for i in in_store if i in ends), default=float("-inf"))
    return {i: reason for i, reason in refused.items() if ends.get(i, 0.0) > newest_copied}


def wal_owed(names: Iterable[str], watermark: str | None) -> list[str]:
    """WAL files of the local archive after the newest one copied, in archive order.

    WAL names sort in the order PostgreSQL wrote them (timeline, then position; a history file
    before its timeline's segments, a backup label after its segment), so one name remembers
    everything that was copied.
    """
    return sorted(n for n in names if is_wal_name(n) and (watermark is None or n > watermark))


def contiguous_prefix(batch: Sequence[str], succeeded: Collection[str]) -> list[str]:
    """The files of a batch copied (or fetched) in parallel that can be counted as done: those
    before the first failure. The watermark never skips a gap; a later file that succeeded is
    copied again next round (an upload of the same name overwrites it)."""
    prefix = []
    for name in batch:
        if name not in succeeded:
            break
        prefix.append(name)
    return prefix


def uncopyable_reason(backup_info: BackupInfo) -> str | None:
    """Why barman-cloud-backup cannot copy this backup (from its backup.info), or None."""
    for key, reason in _UNCOPYABLE.items():
        if backup_info.get(key) is not None:
            return reason
    return None


def first_error_line(stderr: str, fallback: str) -> str:
    """The line of a ``barman-cloud-*`` failure worth showing: its last ERROR, else the last."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line]
    picked = (errors or lines or [fallback])[-1]
    return picked.split("ERROR:", 1)[-1].strip()[:300]


def connectivity_refusal(variable: str, url: str, detail: str) -> str:
    """The one line printed at start when the store cannot be used."""
    return (
        f"{variable}: the off-site store {url} is not usable ({detail}); check the bucket name, "
        "OFFSITE_ENDPOINT_URL and the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY keys"
    )
