"""docs/configuration.md, rendered from the table of variables so that the two never differ.

``python -m barman_supervisor.config.reference > docs/configuration.md`` (``make docs``); a unit
test fails while the committed file differs from what this renders.
"""

from __future__ import annotations

import sys

from barman_supervisor.config.children import CHILD_ENV_NAMES, CHILD_ENV_PREFIXES
from barman_supervisor.config.variables import GROUPS, VARIABLES, Kind, Variable

COMMAND = "make docs"
_KINDS: dict[Kind, str] = {
    "text": "text",
    "path": "path",
    "schedule": "crontab",
    "seconds": "duration",
    "integer": "whole number",
    "size": "size",
    "factor": "number",
    "boolean": "boolean",
    "choice": "one of",
    "secret": "secret",
    "secret_url": "secret URL",
}
_INTRO = f"""\
# Configuration reference

<!-- Generated from barman_supervisor/config/variables.py by `{COMMAND}`; edit the table, not
this file. -->

Everything is an environment variable, read once at start. A bad value stops the start with one
line naming the variable and the fix, exit code 2, and nothing changed on disk:

```
barman-supervisor: error: PG_PORT: 'abc' is not a whole number; set e.g. PG_PORT=5432
```

`barman-supervisor check-config` validates the environment and prints what would run.

## Secrets: `NAME_FILE`

Every variable marked *secret* below may instead be given as `NAME_FILE`: the path of a file that
holds it (a Docker secret), read at start without its trailing newline. Setting both `NAME` and
`NAME_FILE` is refused. A secret never appears in a log line, an error or `/status`.

## Per server: `NAME__<SERVER>`

Variables of scope *per server* take an optional `__<SERVER>` suffix (the server name
upper-cased, `-` and `.` as `_`) that overrides the plain variable for that server only: with
`BARMAN_SERVERS=main,reports`, `PG_HOST=db1 PG_HOST__REPORTS=db2` sends `main` to db1 and
`reports` to db2, and `BACKUP_SCHEDULE__REPORTS="30 4 * * 0"` gives `reports` its own backup
time. For a secret, the pair `NAME__<SERVER>` / `NAME_FILE__<SERVER>` replaces the plain pair as
a whole. An override whose suffix names no configured server is refused.

## Values

- *duration*: plain seconds or a number with a unit: `90`, `15m`, `36h`, `7d`;
- *size*: bytes or a number with `k`, `M` or `G` (binary multiples): `268435456`, `256M`;
- *boolean*: `true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0`;
- *crontab*: 5 fields (or `@daily` and the like) in `TZ`; one that never fires, such as
  `0 3 31 2 *`, is refused;
- *path*: at most 255 bytes per name and 4096 in all;
- an empty value is the same as an unset one: the default applies.

A default written `$NAME/...` follows the value of `NAME`.
"""


def render() -> str:
    """The whole of docs/configuration.md."""
    sections = [_INTRO, *(_section(group) for group in GROUPS), _children()]
    return "\n".join(sections)


def _section(group: str) -> str:
    rows = [
        f"## {group}",
        "",
        "| variable | scope | type | default | bounds or choices | secret | meaning |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *(_row(variable) for variable in VARIABLES.values() if variable.group == group),
    ]
    return "\n".join(rows) + "\n"


def _row(variable: Variable) -> str:
    cells = (
        f"`{variable.name}`",
        "per server" if variable.scope == "server" else "global",
        _KINDS[variable.kind],
        _default(variable),
        _limits(variable),
        f"yes (or `{variable.name}_FILE`)" if variable.secret else "",
        variable.meaning,
    )
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _default(variable: Variable) -> str:
    if variable.default and variable.unset:
        return f"`{variable.default}` ({variable.unset})"
    if variable.default:
        return f"`{variable.default}`"
    return variable.unset or "empty"


def _limits(variable: Variable) -> str:
    if variable.choices:
        return ", ".join(f"`{choice}`" if choice else "empty" for choice in variable.choices)
    unit = " s" if variable.kind == "seconds" else ""
    low, high = variable.minimum, variable.maximum
    if low is not None and high is not None:
        return f"{low:g}-{high:g}{unit}"
    if low is not None:
        return f"≥ {low:g}{unit}"
    return ""


def _children() -> str:
    names = ", ".join(f"`{name}`" for name in sorted(CHILD_ENV_NAMES))
    prefixes = ", ".join(f"`{prefix}*`" for prefix in CHILD_ENV_PREFIXES)
    return f"""\
## What Barman and the PostgreSQL tools inherit

Barman and the PostgreSQL tools it starts inherit only these variables from the daemon's
environment: {names}, and {prefixes}; plus `PGPASSFILE` pointing at `BARMAN_PGPASS_FILE`.
Never a password, `PGPASSWORD`, `DEADMAN_URL` or `ALERT_WEBHOOK_URL` (a child's environment is
readable in `/proc/PID/environ`).
"""


if __name__ == "__main__":
    sys.stdout.write(render())
