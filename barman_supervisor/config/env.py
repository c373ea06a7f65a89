"""The environment reader: typed reads driven by the table of variables.

Each read names a variable of ``variables.py``; its kind, default, bounds and choices come from
there, and a name outside the table (or read with the wrong kind or scope) is refused, so no
variable is read that the table and its documentation do not show.

Every problem in the input is a ``ConfigError`` whose message is one line naming the variable
that applies and the fix. Per-server variables take an optional ``__<SERVER>`` suffix (server
name upper-cased, ``-`` and ``.`` as ``_``): ``PG_HOST__REPORTS=db2`` overrides ``PG_HOST`` for
the server ``reports`` only. A secret ``NAME`` may instead be given as ``NAME_FILE``, the path of
a file holding it (Docker secrets).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from string import Template

from barman_supervisor.config.checks import plaintext_host, usable_url
from barman_supervisor.config.model import Secret
from barman_supervisor.config.variables import Kind, Variable, variable
from barman_supervisor.errors import ConfigError

_DURATION = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[smhd])?$", re.ASCII)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[kKmMgG])?i?[bB]?$", re.ASCII)
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
# Sizes are byte counts for disk and lag comparisons; anything above an exabyte is a typo.
MAX_SIZE = 2**60
_WHOLE_NUMBER = re.compile(r"^[0-9]+$", re.ASCII)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class Env:
    """Typed reads of the environment that fail with the variable's name and the fix."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        # Variables read with a per-server override: an override for an unknown server is an
        # error (a typo in the suffix would otherwise be ignored silently).
        self.per_server: set[str] = set()

    def raw(self, name: str, server: str | None = None) -> tuple[str, str | None]:
        """The variable that applies (per-server override first) and its value."""
        _entry(name, server)
        if server is not None:
            self.per_server.add(name)
            scoped = f"{name}__{server_suffix(server)}"
            if scoped in self._environ:
                return scoped, _decodable(scoped, self._environ[scoped])
        value = self._environ.get(name)
        return name, None if value is None else _decodable(name, value)

    def name_of(self, name: str, server: str | None = None) -> str:
        """The variable an error about ``name`` names: ``NAME__<SERVER>`` when that is set."""
        return self.raw(name, server)[0]

    def unknown_overrides(self, servers: tuple[str, ...]) -> list[str]:
        """Per-server variables whose ``__<SERVER>`` suffix names no configured server."""
        known = {server_suffix(server) for server in servers}
        unknown = []
        for name in sorted(self._environ):
            base, separator, suffix = name.partition("__")
            if separator and base in self.per_server and suffix not in known:
                unknown.append(name)
        return unknown

    def text(self, name: str, server: str | None = None, **fill: str) -> str:
        """One line of text; the default's ``$NAME`` parts are filled from ``fill``."""
        entry = _entry(name, server, "text", "path", "schedule")
        var, value = self.raw(name, server)
        return _single_line(var, value, Template(entry.default).substitute(fill))

    def seconds(self, name: str, server: str | None = None) -> float:
        """A duration: plain seconds, or a number with s, m, h or d (``90``, ``15m``, ``36h``)."""
        entry = _entry(name, server, "seconds")
        default = _duration(entry.default)
        var, value = self.raw(name, server)
        if value is None or value.strip() == "":
            # A whole default stays a whole number, as a log line or /status has always shown it.
            return int(default) if default.is_integer() else default
        try:
            number = _duration(value)
        except ValueError:
            raise ConfigError(
                f"{var}: {value!r} is not a duration; use seconds or a number with s/m/h/d, "
                f"e.g. {var}={default:g}"
            ) from None
        low, high = entry.minimum or 0, entry.maximum
        if not math.isfinite(number) or number < low or (high is not None and number > high):
            bounds = f"between {low:g} and {high:g}" if high is not None else f">= {low:g}"
            raise ConfigError(f"{var}: {value!r} is out of range; use {bounds} seconds")
        return number

    def integer(self, name: str, server: str | None = None) -> int:
        entry = _entry(name, server, "integer")
        default = int(entry.default)
        low, high = int(entry.minimum or 0), int(entry.maximum or 0)
        var, value = self.raw(name, server)
        if value is None or value.strip() == "":
            return default
        if not _WHOLE_NUMBER.match(value.strip()):
            raise ConfigError(f"{var}: {value!r} is not a whole number; set e.g. {var}={default}")
        number = int(value.strip())
        if not low <= number <= high:
            raise ConfigError(f"{var}: {number} is out of range; use {low}-{high}")
        return number

    def size(self, name: str, server: str | None = None) -> int:
        """Bytes, or a number with k, M or G (binary multiples): ``268435456``, ``256M``."""
        entry = _entry(name, server, "size")
        var, value = self.raw(name, server)
        if value is None or value.strip() == "":
            return int(_size(entry.default))
        try:
            number = _size(value)
        except ValueError:
            raise ConfigError(
                f"{var}: {value!r} is not a size; use bytes or e.g. 256M, 2G"
            ) from None
        if not number <= MAX_SIZE:  # also inf and nan
            raise ConfigError(f"{var}: {value!r} is too large; use at most 1024P, e.g. 256M")
        return int(number)

    def factor(self, name: str) -> float:
        """A multiplier such as 1.2, within the table's bounds."""
        entry = _entry(name, None, "factor")
        var, value = self.raw(name)
        text = _single_line(var, value, entry.default)
        try:
            number = float(text)
        except ValueError:
            raise ConfigError(
                f"{var}: {text!r} is not a number; set e.g. {var}={entry.default}"
            ) from None
        low, high = entry.minimum or 0, entry.maximum or math.inf
        if not low <= number <= high:  # also nan
            raise ConfigError(f"{var}: {text} is out of range; use {low:g}-{high:g}")
        return number

    def boolean(self, name: str, server: str | None = None) -> bool:
        entry = _entry(name, server, "boolean")
        var, value = self.raw(name, server)
        if value is None or value.strip() == "":
            return entry.default in _TRUE
        if value.strip().lower() in _TRUE:
            return True
        if value.strip().lower() in _FALSE:
            return False
        raise ConfigError(f"{var}: {value!r} is not a boolean; use true or false")

    def choice(self, name: str, server: str | None = None) -> str:
        """One of the table's choices (upper- or lower-cased first where the table says so)."""
        entry = _entry(name, server, "choice")
        var, value = self.raw(name, server)
        if value is None or value.strip() == "":
            return entry.default
        picked = value.strip()
        picked = {"upper": picked.upper(), "lower": picked.lower()}.get(entry.fold, picked)
        if picked not in entry.choices:
            named = ", ".join(choice for choice in entry.choices if choice)
            raise ConfigError(f"{var}: {value!r} is not one of {named}")
        return picked

    def url(self, name: str, server: str | None = None) -> Secret | None:
        """A URL that may carry a token, so it is kept like a password (``NAME_FILE`` too)."""
        _entry(name, server, "secret_url")
        secret = self.secret(name, server)
        if secret is not None and not usable_url(secret.reveal()):
            raise ConfigError(
                f"{self.name_of(name, server)}: not a usable http(s) URL (scheme, host, numeric "
                "port); use e.g. https://hooks.example/alert"
            )
        allow_http = self.boolean("ALERT_WEBHOOK_ALLOW_HTTP")
        host = plaintext_host(secret.reveal()) if secret is not None else None
        if host is not None and not allow_http:
            raise ConfigError(
                f"{self.name_of(name, server)}: http:// would send the body and any credentials "
                f"to {host} in plaintext; use https://, or set ALERT_WEBHOOK_ALLOW_HTTP=true"
            )
        return secret

    def secret(
        self, name: str, server: str | None = None, *, needed_for: str = ""
    ) -> Secret | None:
        """``NAME`` or the contents of the file named by ``NAME_FILE`` (Docker secrets).

        A per-server pair (``NAME__S``, ``NAME_FILE__S``) replaces the global pair as a whole.
        An empty file reads as unset (compose mounts empty files for what is off), unless
        ``needed_for`` names the setting that needs it: then it is refused, so a key never
        written is not mistaken for "use boto3's own credentials".
        """
        _entry(name, server, "secret", "secret_url")
        suffix = f"__{server_suffix(server)}" if server is not None else ""
        if server is not None:
            self.per_server |= {name, f"{name}_FILE"}
        if not any(f"{n}{suffix}" in self._environ for n in (name, f"{name}_FILE")):
            suffix = ""
        var, file_var = f"{name}{suffix}", f"{name}_FILE{suffix}"
        value, path = self._environ.get(var), self._environ.get(file_var)
        if value and path:
            raise ConfigError(f"{var} and {file_var} are both set; keep only one of them")
        if path:
            value = _read_secret_file(file_var, _decodable(file_var, path))
            var = file_var
            if not value and needed_for:
                raise ConfigError(
                    f"{file_var}: {path!r} is empty and {needed_for} is set; write the "
                    f"secret into it, or unset {needed_for}"
                )
        if not value:
            return None
        _decodable(var, value)
        if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in value):
            raise ConfigError(
                f"{var}: the password must be a single line without control characters"
            )
        return Secret(value)


def server_suffix(server: str) -> str:
    """The ``__<SERVER>`` suffix of per-server variables for this server."""
    return re.sub(r"[-.]", "_", server).upper()


def _entry(name: str, server: str | None, *kinds: Kind) -> Variable:
    """The table's entry for ``name``, refusing a read the table does not declare."""
    entry = variable(name)
    if kinds and entry.kind not in kinds:
        raise TypeError(f"{name} is declared as {entry.kind!r}, not read as {' or '.join(kinds)}")
    if (server is None) != (entry.scope == "global"):
        way = "without" if entry.scope == "global" else "with"
        raise TypeError(f"{name} is a {entry.scope} variable: read it {way} a server")
    return entry


def _single_line(var: str, value: str | None, default: str) -> str:
    if value is None or value.strip() == "":
        return default
    if "\n" in value or "\r" in value:
        raise ConfigError(f"{var}: must be a single line")
    return value.strip()


def _duration(text: str) -> float:
    match = _DURATION.match(text.strip().lower())
    if match is None:
        raise ValueError(text)
    return float(match["number"]) * _UNITS[match["unit"] or "s"]


def _size(text: str) -> float:
    match = _SIZE.match(text.strip())
    if match is None:
        raise ValueError(text)
    return float(match["number"]) * _SIZE_UNITS[(match["unit"] or "").upper()]


def _decodable(var: str, value: str) -> str:
    """An environment value that was not valid UTF-8 (Python keeps the bytes as surrogates)
    cannot be written to a file or passed on; say so instead of failing later."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{var}: not valid UTF-8; set it again in UTF-8") from None
    return value


def _read_secret_file(var: str, path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{var}: {path!r} is not UTF-8 text; write the secret as UTF-8") from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            f"{var}: cannot read {path!r} ({reason}); mount the secret file there"
        ) from None
    return text.rstrip("\r\n")
