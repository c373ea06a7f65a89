"""Settings: one declared table of environment variables, read once at start.

Lives here:
- ``variables``: THE table, one entry per variable (name, scope, kind, default, bounds or
  choices, secret or not, meaning); every other module takes its defaults and limits from it;
- ``env``: the reader of the environment, driven by the table (``*_FILE`` secrets,
  ``NAME__<SERVER>`` overrides, the one-line errors of bad input); it refuses a name not in the
  table; nothing else in the package reads ``os.environ``;
- ``model``: the frozen settings it builds (``Settings``, ``ServerSettings``, ``Secret``, ...);
- ``checks``: checks of single values the table cannot express (names, paths, URLs, schedules);
- ``servers`` and ``offsite``: one server's settings, and its off-site store;
- ``mounted``: Barman configuration files a person mounted (which pick the mode);
- ``children``: the allow-list of what Barman and the PostgreSQL tools inherit;
- ``web``: who may reach the HTTP port (the web configuration file: TLS, basic-auth users; the
  Host allow-list);
- ``load``: ``load_settings``, which assembles it all, and ``probe_address``;
- ``reference``: renders docs/configuration.md from the table
  (``python -m barman_supervisor.config.reference``).

May import: ``errors``, ``crontab``, ``log``.
"""

from barman_supervisor.config.checks import usable_url
from barman_supervisor.config.children import child_environment
from barman_supervisor.config.env import server_suffix
from barman_supervisor.config.load import load_settings, probe_address
from barman_supervisor.config.model import (
    BackupPolicy,
    Offsite,
    Secret,
    ServerSettings,
    Settings,
    TlsServer,
    WebAccess,
    conninfo_addresses,
)
from barman_supervisor.config.mounted import RENDERED_MARKER, foreign_config_files
from barman_supervisor.config.offsite import offsite_refusal
from barman_supervisor.config.variables import (
    DRILL_LOCAL,
    DRILL_OFFSITE,
    OFFSITE_COMPRESSIONS,
    VARIABLES,
    Variable,
)
from barman_supervisor.config.web import host_allowed, server_context

__all__ = [
    "DRILL_LOCAL",
    "DRILL_OFFSITE",
    "OFFSITE_COMPRESSIONS",
    "RENDERED_MARKER",
    "VARIABLES",
    "BackupPolicy",
    "Offsite",
    "Secret",
    "ServerSettings",
    "Settings",
    "TlsServer",
    "Variable",
    "WebAccess",
    "child_environment",
    "conninfo_addresses",
    "foreign_config_files",
    "host_allowed",
    "load_settings",
    "offsite_refusal",
    "probe_address",
    "server_context",
    "server_suffix",
    "usable_url",
]
