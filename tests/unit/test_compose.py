"""The compose stack's files (``compose/``, ``make up``) against the table of variables.

Every setting a person may want in the stack reaches the barman service from ``compose/.env``
(or, for a secret, from a file in ``compose/secrets/``), is documented in ``.env.example``, and
an empty value there means the daemon's own default. What compose itself fixes, or what makes no
sense in this stack, is listed below with the reason. ``docker compose config`` of the same
file (with the monitoring profile) runs in ``tests/container/test_stack.py``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from barman_supervisor.config import load_settings
from barman_supervisor.config.variables import VARIABLES
from tests.container.conftest import MAKE_CERTS, TLS_FILES
from tests.container.conftest import OPTIONAL_SECRET_NAMES as OPTIONAL_SECRETS
from tests.container.conftest import SECRET_NAMES as PASSWORDS

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "compose" / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / "compose" / ".env.example"
# What the stack fixes itself, or leaves to the image, and why.
NOT_FROM_ENV_FILE = {
    "SHARD_COUNT": "compose runs one replica; sharding is for several (deploy/kubernetes)",
    "SHARD_INDEX": "compose runs one replica; sharding is for several (deploy/kubernetes)",
    "POD_NAME": "a StatefulSet's pod name (deploy/kubernetes); compose has none",
    "PG_HOST": "the postgres service",
    "PG_PORT": "the postgres service's port",
    "PG_USER": "the role docker/postgres/initdb.d creates",
    "PG_DATABASE": "the default, postgres, which initdb.d grants on",
    "PG_STREAMING_USER": "the role docker/postgres/initdb.d creates",
    "PG_SSLROOTCERT": "the stack's CA (compose/make-certs.sh), mounted as a secret",
    "PG_SSLCERT": "the stack's roles log in with SCRAM passwords, not client certificates",
    "PG_SSLKEY": "the stack's roles log in with SCRAM passwords, not client certificates",
    "BARMAN_SLOT_NAME": "one server per stack: the default slot",
    "BARMAN_CONFIG_MODE": "rendered: mounting Barman files is for stacks of one's own",
    "BARMAN_CONFIG_FILE": "the image's path",
    "BARMAN_CONFIG_DIR": "the image's path",
    "BARMAN_HOME": "the image's volume",
    "BARMAN_USER": "the image's user",
    "BARMAN_LOG_FILE": "under the volume",
    "BARMAN_BIN": "the image's Barman",
    "BARMAN_PGPASS_FILE": "under the volume",
    "BARMAN_FORKSERVER": "always on in the image",
    "BACKUP_CONCURRENCY": "one PostgreSQL per stack",
    "STARTUP_CONCURRENCY": "one PostgreSQL per stack",
    "HTTP_BIND": "every address of the container; the host publishes loopback (HTTP_PUBLISH)",
    "DRILL_SCRATCH_DIR": "under the volume",
    "PG_BIN_DIR": "the image's PostgreSQL programs",
    "LOG_FORMAT": "json, for docker logs",
    "AWS_SESSION_TOKEN": "temporary credentials expire; a long-running stack needs keys",
    "HTTP_WEB_CONFIG_FILE": "the file and its certificate need mounts: an override of one's own",
}
_REFERENCE = re.compile(r"(?<!\$)\$\{(?P<name>[A-Z0-9_]+)(?P<op>:?-)(?P<default>[^}]*)\}")


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return document


def _barman_environment() -> dict[str, str]:
    return {str(k): str(v) for k, v in _compose()["services"]["barman"]["environment"].items()}


def _variable_of(name: str) -> str:
    """The table's variable a name of the environment sets: ``NAME_FILE`` sets secret ``NAME``."""
    base = name.removesuffix("_FILE")
    return base if base != name and base in VARIABLES and VARIABLES[base].secret else name


def _documented() -> set[str]:
    """Names set (maybe to nothing) in .env.example."""
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    return {line.split("=", 1)[0] for line in lines if re.match(r"^[A-Z][A-Z0-9_]*=", line)}


def test_every_setting_reaches_the_barman_service_or_says_why_not() -> None:
    environment = _barman_environment()
    for name, entry in VARIABLES.items():
        if entry.secret:
            assert name not in environment, f"{name}: a secret goes in as {name}_FILE"
            value = environment.get(f"{name}_FILE", "")
            configurable = value.startswith("/run/secrets/")
        else:
            value = environment.get(name, "")
            configurable = any(m["name"] == name for m in _REFERENCE.finditer(value))
        assert configurable != (name in NOT_FROM_ENV_FILE), (
            f"{name}: pass it to the barman service from compose/.env (or compose/secrets/), "
            "or say in NOT_FROM_ENV_FILE why not, not both"
        )
    unknown = {name for name in environment if _variable_of(name) not in VARIABLES}
    assert not unknown, f"the barman service sets variables the daemon does not read: {unknown}"


def test_every_variable_compose_takes_from_the_env_file_is_documented_there() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    taken = {match["name"] for match in _REFERENCE.finditer(text)}
    missing = taken - _documented() - {"COMPOSE_PROJECT_NAME"}
    assert not missing, f"compose/.env.example does not document {sorted(missing)}"


def test_an_empty_value_in_the_env_file_is_the_daemons_default(
    environ: dict[str, str], tmp_path: Path
) -> None:
    """Each ``NAME: ${NAME:-}`` of the barman service, set empty, changes no setting; nor does
    each secret's ``NAME_FILE`` naming an empty file (what ``make up`` creates)."""
    baseline = load_settings(environ)
    blank = tmp_path / "empty"
    blank.write_text("")
    checked = []
    for name, value in _barman_environment().items():
        reference = _REFERENCE.fullmatch(value)
        if reference is not None and reference["op"] == ":-" and reference["default"] == "":
            assert load_settings({**environ, name: ""}) == baseline, name
            checked.append(name)
        elif Path(value).name in OPTIONAL_SECRETS:
            assert load_settings({**environ, name: str(blank)}) == baseline, name
            checked.append(name)
    assert {"OFFSITE_URL", "DRILL_SOURCE", "AWS_ACCESS_KEY_ID_FILE", "DEADMAN_URL_FILE"} <= set(
        checked
    )


def test_make_up_creates_every_secret_file_compose_mounts(tmp_path: Path) -> None:
    """Random passwords, empty optional secrets: 0644 (both containers read them as uid 999)
    in a 0700 directory; the TLS certificates 0644, their keys 0600. ``make up`` depends on all
    of them."""
    secrets_dir = tmp_path / "secrets"
    mounted = {Path(s["file"]).name for s in _compose()["secrets"].values()}
    tls = set(TLS_FILES.values())
    assert mounted == set(PASSWORDS) | set(OPTIONAL_SECRETS) | tls
    targets = [str(secrets_dir / name) for name in sorted(mounted)]
    make = ["make", "-s", "-C", str(REPO_ROOT), f"SECRETS_DIR={secrets_dir}"]
    subprocess.run([*make, *targets], check=True, capture_output=True, timeout=60)
    assert secrets_dir.stat().st_mode & 0o777 == 0o700
    for name in mounted | {"postgres_ca.key"}:
        path = secrets_dir / name
        assert path.stat().st_mode & 0o777 == (0o600 if name.endswith(".key") else 0o644), name
        if name in tls | {"postgres_ca.key"}:
            continue
        size = len(path.read_text(encoding="utf-8"))
        assert (size >= 32) if name in PASSWORDS else (size == 0), name
    # Made again, nothing changes: a key a person wrote is never emptied.
    (secrets_dir / "aws_access_key_id").write_text("AKIAEXAMPLE")
    subprocess.run([*make, *targets], check=True, capture_output=True, timeout=60)
    assert (secrets_dir / "aws_access_key_id").read_text() == "AKIAEXAMPLE"
    for directory, made in ((secrets_dir, False), (tmp_path / "fresh", True)):
        plan = subprocess.run(
            [*make[:-1], f"SECRETS_DIR={directory}", "-n", "up"],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        for name in mounted - tls:
            assert (f"created {directory / name}" in plan) == made, (directory, name)
        # Every time: it keeps what is valid and renews a certificate close to its end.
        assert f"compose/make-certs.sh {directory}" in plan


def _openssl(*argv: str) -> str:
    return subprocess.run(
        ["openssl", *argv], check=True, capture_output=True, text=True, timeout=30
    ).stdout


def test_make_certs_issues_a_server_certificate_for_the_stacks_names_once(tmp_path: Path) -> None:
    """What verify-full checks: signed by the CA beside it, for the name PG_HOST gives
    (postgres; 127.0.0.1 under the tests' host networking); made again, nothing changes; a new
    CA gets a new server certificate."""
    subprocess.run([str(MAKE_CERTS), str(tmp_path)], check=True, capture_output=True, timeout=60)
    ca, server = tmp_path / "postgres_ca.crt", tmp_path / "postgres_server.crt"
    assert "OK" in _openssl("verify", "-CAfile", str(ca), str(server))
    text = _openssl("x509", "-in", str(server), "-noout", "-text")
    assert "DNS:postgres" in text and "IP Address:127.0.0.1" in text, text
    assert "TLS Web Server Authentication" in text and "CA:FALSE" in text, text
    assert "CA:TRUE" in _openssl("x509", "-in", str(ca), "-noout", "-text")
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    again = subprocess.run(
        [str(MAKE_CERTS), str(tmp_path)], check=True, capture_output=True, text=True, timeout=60
    )
    assert again.stdout == "" and before == {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    (tmp_path / "postgres_ca.key").unlink()
    subprocess.run([str(MAKE_CERTS), str(tmp_path)], check=True, capture_output=True, timeout=60)
    assert server.read_bytes() != before["postgres_server.crt"]
    assert "OK" in _openssl("verify", "-CAfile", str(ca), str(server))


def test_the_barman_service_is_locked_down() -> None:
    """No capability, no privilege gained through setuid, a read-only root with tmpfs only where
    the daemon writes (its volumes aside); nothing secret in the environment of either service."""
    services = _compose()["services"]
    barman = services["barman"]
    assert barman["cap_drop"] == ["ALL"] and "cap_add" not in barman
    assert barman["security_opt"] == ["no-new-privileges:true"]
    assert barman["read_only"] is True and not barman.get("privileged")
    tmpfs = {entry.split(":", 1)[0]: entry.split(":", 1)[1] for entry in barman["tmpfs"]}
    assert set(tmpfs) == {"/etc/barman", "/tmp"}
    assert "uid=999" in tmpfs["/etc/barman"], "the daemon renders Barman's files there as uid 999"
    for name, service in services.items():
        for variable in service.get("environment", {}):
            if any(word in variable for word in ("PASSWORD", "SECRET", "TOKEN")):
                assert variable.endswith("_FILE"), f"{name}: {variable} is a secret: use a file"
    postgres = services["postgres"]
    assert {"postgres_server_cert", "postgres_server_key"} <= set(postgres["secrets"])
    assert (
        "postgres_ca_cert" in barman["secrets"] and "postgres_server_key" not in barman["secrets"]
    )


def test_drill_schedule_is_daily_unless_the_env_file_empties_it() -> None:
    """``${DRILL_SCHEDULE-...}``: absent is the stack's daily drill, present and empty is off."""
    reference = _REFERENCE.fullmatch(_barman_environment()["DRILL_SCHEDULE"])
    assert reference is not None
    assert (reference["op"], reference["default"]) == ("-", "30 4 * * *")
