"""``barman-supervisor``: the command line. Bad input ends here as one line and exit code 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

from barman_supervisor import __version__
from barman_supervisor import log as logging_setup
from barman_supervisor.config.settings import Settings, load_settings, probe_address
from barman_supervisor.errors import ConfigError
from barman_supervisor.restore import local as restore
from barman_supervisor.restore import store as offsite_restore

EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="barman-supervisor",
        description="Run Barman unattended: WAL streaming, scheduled backups, retention, health.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run the daemon (the container's PID 1)")
    commands.add_parser("check-config", help="validate the settings and print what would run")
    probe = commands.add_parser(
        "healthcheck", help="exit 0 when the daemon says every server is protected (/readyz)"
    )
    probe.add_argument(
        "--live", action="store_true", help="ask /healthz instead: is the daemon itself alive"
    )
    probe.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    restore_parser = commands.add_parser(
        "restore", help="restore a backup into an empty directory (barman recover, with care)"
    )
    restore.add_arguments(restore_parser)
    offsite_parser = commands.add_parser(
        "restore-offsite",
        help="restore a backup from the off-site S3 store alone (OFFSITE_URL) into an empty "
        "directory: for a new host after the Barman volume is lost",
    )
    offsite_restore.add_arguments(offsite_parser)
    return parser


def _fail(message: str) -> int:
    print(f"barman-supervisor: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _run(settings: Settings) -> int:
    from barman_supervisor.daemon.core import Daemon  # noqa: PLC0415 - keeps check-config light

    logging_setup.configure(settings.log_level, settings.log_format)
    try:
        return Daemon(settings).run()
    except ConfigError as exc:
        logging_setup.get_logger().error("bad_input", reason=str(exc))
        return _fail(str(exc))


def _check_config(settings: Settings) -> int:
    print(f"config mode: {settings.config_mode} ({settings.barman_config_file})")
    for server in settings.servers:
        print(
            f"server {server.name}: {server.host}:{server.port} slot={server.slot_name} "
            f"backups='{server.backup_schedule}' ({settings.timezone}) "
            f"retention='{server.retention_policy}'"
        )
        if server.offsite is not None:
            keys = "from AWS_* settings" if server.offsite.access_key_id else "boto3's own chain"
            print(
                f"  off-site {server.offsite.url} endpoint={server.offsite.endpoint_url or 'AWS'} "
                f"retention='{server.offsite.retention_policy}' keys: {keys}"
            )
    return 0


def _healthcheck(live: bool, timeout: float) -> int:
    """For Docker's HEALTHCHECK, with no curl in the image: 0 healthy, 1 not, 2 bad input."""
    try:
        host, port = probe_address(os.environ)
    except ConfigError as exc:
        return _fail(str(exc))
    path = "/healthz" if live else "/readyz"
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            document = json.load(response)
    except urllib.error.HTTPError as exc:
        document = json.load(exc)
    except (OSError, ValueError) as exc:
        print(f"unhealthy: no answer from {url} ({exc})")
        return 1
    if document.get("alive", document.get("ready")):
        print("alive" if live else "ready")
        return 0
    if live:
        print("not alive: " + "; ".join(document.get("problems", [])))
    else:
        print(
            "not ready: "
            + "; ".join(
                f"{server}: {problem['condition']}: {problem['reason']}"
                for server, problems in document.get("servers", {}).items()
                for problem in problems
            )
        )
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "healthcheck":
        return _healthcheck(args.live, args.timeout)
    try:
        settings = load_settings(os.environ)
    except ConfigError as exc:
        return _fail(str(exc))
    if args.command == "check-config":
        return _check_config(settings)
    if args.command == "restore":
        return restore.main(args, settings)
    if args.command == "restore-offsite":
        return offsite_restore.main(args, settings)
    return _run(settings)
