"""The daemon's exceptions: one root, so a caller can tell the daemon's own failures from bugs.

Shutdown is a type (``Interrupted``), never a phrase to look for in a reason string.
"""

from __future__ import annotations


class SupervisorError(Exception):
    """Root of every exception the daemon raises on purpose."""


class ConfigError(SupervisorError):
    """Bad input: the message is one line naming the variable or file and the fix (exit 2)."""


class StartupFailed(SupervisorError):
    """A server can never be protected as configured; a person must change something."""


class Interrupted(SupervisorError):
    """The daemon is stopping: whatever was waiting or about to start gives up."""

    def __init__(self, what: str = "") -> None:
        super().__init__("interrupted by shutdown")
        self.what = what


class RunnerClosed(Interrupted):
    """A command was refused because the daemon's shutdown closed the runner."""


class HeldElsewhere(SupervisorError):
    """Sharded: another replica's session holds the claim on a server (the message: who)."""


class DrillFailed(SupervisorError):
    """A restore drill step failed; the message is the reason the drill result carries."""


class CopyFailed(SupervisorError):
    """One ``barman-cloud-*`` step of the off-site copy failed; the message is the one line to
    show."""


def first_line(error: BaseException) -> str:
    """An exception's first line (psycopg's messages run to several), or its type's name."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
