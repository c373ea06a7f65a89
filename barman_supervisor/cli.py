"""``barman-supervisor``: the command line, and the one place that turns bad input into words.

Every subcommand speaks one way. What it was asked for (a plan, a report, "ready") goes to
stdout. Bad input - a ``ConfigError`` raised anywhere below, or arguments argparse rejects -
ends here as one line ``barman-supervisor: error: <what and the fix>`` on stderr and exit code 2,
before anything is written. Log lines follow ``LOG_FORMAT``: the daemon's go to stdout (the
container's log stream); every other command's go to stderr, its stdout being the result.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import NoReturn

from barman_supervisor import __version__
from barman_supervisor import log as logging_setup
from barman_supervisor.config import Settings, load_settings, probe_address
from barman_supervisor.errors import ConfigError
from barman_supervisor.log import MASKER
from barman_supervisor.restore import common as restore_common
from barman_supervisor.restore import local as restore
from barman_supervisor.restore import store as offsite_restore

PROG = "barman-supervisor"
EXIT_BAD_INPUT = 2
# A command a person runs logs what needs their attention (Barman's warnings), not every step:
# LOG_LEVEL applies when it asks for less than this.
COMMAND_LOG_LEVEL = "WARNING"


class _Parser(argparse.ArgumentParser):
    """argparse, except that a bad argument is refused like any other bad input: one line."""

    def error(self, message: str) -> NoReturn:
        raise SystemExit(_fail(f"{message}; see {self.prog} --help"))


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
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
    restore_common.add_arguments(restore_parser)
    offsite_parser = commands.add_parser(
        "restore-offsite",
        help="restore a backup from the off-site S3 store alone (OFFSITE_URL) into an empty "
        "directory: for a new host after the Barman volume is lost",
    )
    offsite_restore.add_arguments(offsite_parser)
    return parser


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _configure_logging(settings: Settings, command: str) -> None:
    """``LOG_FORMAT`` for every command; the daemon at ``LOG_LEVEL`` on stdout, any other
    command on stderr at ``COMMAND_LOG_LEVEL`` or above. Secrets are masked from the first line."""
    if command == "run":
        logging_setup.configure(settings.log_level, settings.log_format)
    else:
        levels = logging.getLevelNamesMapping()
        quietest = max(settings.log_level, COMMAND_LOG_LEVEL, key=levels.__getitem__)
        logging_setup.configure(quietest, settings.log_format, stream=sys.stderr)
    MASKER.register(secret.reveal() for secret in settings.secrets)


def _run(_args: argparse.Namespace, settings: Settings) -> int:
    from barman_supervisor.daemon.core import Daemon  # noqa: PLC0415 - keeps check-config light

    try:
        return Daemon(settings).run()
    except ConfigError as exc:
        logging_setup.get_logger().error("bad_input", reason=str(exc))
        raise


def _check_config(_args: argparse.Namespace, settings: Settings) -> int:
    print(f"config mode: {settings.config_mode} ({settings.barman_config_file})")
    for server in settings.servers:
        print(
            f"server {server.name}: {server.host}:{server.port} slot={server.slot_name} "
            f"backups='{server.backup_schedule}' ({settings.timezone}) "
            f"retention='{server.retention_policy}'"
        )
        if server.tls:
            print("  tls " + " ".join(f"{key}={value}" for key, value in server.tls.items()))
        if server.offsite is not None:
            keys = "from AWS_* settings" if server.offsite.access_key_id else "boto3's own chain"
            print(
                f"  off-site {server.offsite.url} endpoint={server.offsite.endpoint_url or 'AWS'} "
                f"retention='{server.offsite.retention_policy}' keys: {keys}"
            )
    return 0


def _healthcheck(address: tuple[str, int, bool], live: bool, timeout: float) -> int:
    """For Docker's HEALTHCHECK, with no curl in the image: 0 healthy, 1 not, 2 bad input.

    Over HTTPS when the web configuration serves TLS. The certificate is not checked: the probe
    talks to its own machine (the loopback, or the address the daemon is bound to), and the
    certificate names the public name.
    """
    host, port, tls = address
    path = "/healthz" if live else "/readyz"
    where = f"{'[' + host + ']' if ':' in host else host}:{port}{path}"
    url = f"https://{where}" if tls else f"http://{where}"
    context = _own_machine_tls() if tls else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:  # noqa: S310 - an http(s) URL built above
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


def _own_machine_tls() -> ssl.SSLContext:
    """TLS without a certificate check, for the daemon on this machine only."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# The subcommands that need the settings; each raises ConfigError on bad input.
COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "run": _run,
    "check-config": _check_config,
    "restore": restore.main,
    "restore-offsite": offsite_restore.main,
}


# Commands that need no replica's catalogue: from any replica of a sharded set, any server.
UNSHARDED_COMMANDS = frozenset({"restore-offsite"})


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    """Exit code 0 done, 1 failed (or unhealthy), 2 bad input."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "healthcheck":
            # Only the HTTP settings: a probe never fails on a setting it does not need.
            return _healthcheck(probe_address(environ), args.live, args.timeout)
        settings = load_settings(environ, sharded=args.command not in UNSHARDED_COMMANDS)
        _configure_logging(settings, args.command)
        return COMMANDS[args.command](args, settings)
    except ConfigError as exc:
        return _fail(str(exc))
