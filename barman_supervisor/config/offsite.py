"""A server's off-site store (``OFFSITE_*``, ``AWS_*``) and the Barman settings it cannot copy."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping

from barman_supervisor.config.checks import RETENTION
from barman_supervisor.config.env import Env
from barman_supervisor.config.model import Offsite
from barman_supervisor.errors import ConfigError

# s3://bucket[/prefix]: bucket names as S3 allows them (3-63 of a-z 0-9 . -).
OFFSITE_URL = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?$")
_ENDPOINT_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")
# The one encryption that takes a customer key (barman-cloud's --sse-kms-key-id needs it).
KMS_ENCRYPTION = "aws:kms"


def read_offsite(
    env: Env, server: str, retention: str, barman_options: Mapping[str, str]
) -> Offsite | None:
    """OFFSITE_* for one server; None while OFFSITE_URL is empty (no off-site copy)."""
    url_var = env.name_of("OFFSITE_URL", server)
    url = env.text("OFFSITE_URL", server)
    if not url:
        return None
    if not OFFSITE_URL.match(url):
        raise ConfigError(
            f"{url_var}: {url!r} is not an S3 URL; use s3://BUCKET/PREFIX (bucket: 3-63 of "
            "a-z 0-9 . -)"
        )
    refusal = offsite_refusal(barman_options)
    if refusal is not None:
        raise ConfigError(f"{url_var}: {refusal}")
    endpoint = _endpoint(env, server)
    policy_var = env.name_of("OFFSITE_RETENTION_POLICY", server)
    policy = env.text("OFFSITE_RETENTION_POLICY", server, RETENTION_POLICY=retention).upper()
    if policy and not RETENTION.match(policy):
        raise ConfigError(
            f"{policy_var}: {policy!r} is not a retention policy; use e.g. 'REDUNDANCY 3' or "
            "'RECOVERY WINDOW OF 30 DAYS'"
        )
    access_key = env.secret("AWS_ACCESS_KEY_ID", server, needed_for=url_var)
    secret_key = env.secret("AWS_SECRET_ACCESS_KEY", server, needed_for=url_var)
    if (access_key is None) != (secret_key is None):
        missing = "AWS_SECRET_ACCESS_KEY" if secret_key is None else "AWS_ACCESS_KEY_ID"
        raise ConfigError(
            f"{missing}: the off-site store needs both AWS_ACCESS_KEY_ID and "
            f"AWS_SECRET_ACCESS_KEY (or their _FILE variants); set {missing} or {missing}_FILE"
        )
    encryption, kms_key_id = _encryption(env, server)
    return Offsite(
        url=url.rstrip("/"),
        endpoint_url=endpoint,
        region=env.text("OFFSITE_REGION", server),
        encryption=encryption,
        sse_kms_key_id=kms_key_id,
        compression=env.choice("OFFSITE_COMPRESSION", server),
        retention_policy=policy,
        backup_max_delay=env.seconds("OFFSITE_BACKUP_MAX_DELAY", server),
        wal_max_lag=env.seconds("OFFSITE_WAL_MAX_LAG", server),
        access_key_id=access_key,
        secret_access_key=secret_key,
        session_token=env.secret("AWS_SESSION_TOKEN", server),
    )


def _endpoint(env: Env, server: str) -> str:
    """OFFSITE_ENDPOINT_URL: an http(s) URL without credentials in it (they would reach the
    barman-cloud command lines, ``ps`` and the logs; the key files exist for them)."""
    endpoint_var = env.name_of("OFFSITE_ENDPOINT_URL", server)
    endpoint = env.text("OFFSITE_ENDPOINT_URL", server)
    if endpoint and not _ENDPOINT_URL.match(endpoint):
        raise ConfigError(
            f"{endpoint_var}: {endpoint!r} is not an http(s) URL; use e.g. https://s3.example.com"
        )
    if "@" in urllib.parse.urlsplit(endpoint).netloc:
        # The value is not repeated: it holds the credentials.
        raise ConfigError(
            f"{endpoint_var}: credentials in the URL (user:password@) end up on the "
            "barman-cloud command lines (ps) and in logs; remove them and use the key files: "
            "AWS_ACCESS_KEY_ID_FILE and AWS_SECRET_ACCESS_KEY_FILE"
        )
    return endpoint


def _encryption(env: Env, server: str) -> tuple[str, str]:
    """OFFSITE_ENCRYPTION and OFFSITE_SSE_KMS_KEY_ID, which barman-cloud takes only with
    aws:kms."""
    encryption = env.choice("OFFSITE_ENCRYPTION", server)
    kms_key_id = env.text("OFFSITE_SSE_KMS_KEY_ID", server)
    if kms_key_id and encryption != KMS_ENCRYPTION:
        kms_var = env.name_of("OFFSITE_SSE_KMS_KEY_ID", server)
        raise ConfigError(
            f"{kms_var}: a KMS key encrypts only with {KMS_ENCRYPTION}; set "
            f"{env.name_of('OFFSITE_ENCRYPTION', server)}={KMS_ENCRYPTION} or unset {kms_var}"
        )
    return encryption, kms_key_id


def offsite_refusal(barman_options: Mapping[str, str]) -> str | None:
    """Barman settings whose backups or WAL ``barman-cloud-*`` cannot copy off-site.

    barman-cloud-backup, run on a Barman backup, uploads its ``data`` directory: a backup
    Barman compressed into tar files (``backup_compression``) has none, and a backup or WAL
    directory already in the cloud (``basebackups_directory = s3://``) needs no copy. WAL that
    Barman compressed would reach the store compressed under the plain segment name, which
    barman-cloud-wal-restore then hands to PostgreSQL as is.
    """
    options = {key.lower(): value.strip() for key, value in barman_options.items()}
    if options.get("backup_compression"):
        return (
            "backup_compression is set in the Barman configuration; barman-cloud-backup cannot "
            "copy compressed backups: remove backup_compression or OFFSITE_URL"
        )
    if options.get("compression"):
        return (
            "compression (WAL) is set in the Barman configuration; off-site WAL must be stored "
            "uncompressed by Barman: remove compression or OFFSITE_URL"
        )
    for key in ("basebackups_directory", "wals_directory"):
        if "://" in options.get(key, ""):
            return f"{key} is already a cloud URL; unset OFFSITE_URL for this server"
    return None
