"""The reader is driven by the table: it reads only declared variables, each with its declared
kind and scope, and every declared variable is read. So the table is complete by construction:
a variable the code reads but the table lacks fails its first read (and every test with it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from barman_supervisor.config import VARIABLES, load_settings
from barman_supervisor.config import env as env_module
from barman_supervisor.config.env import Env
from barman_supervisor.config.variables import Variable, variable
from barman_supervisor.errors import ConfigError

# Every read the table declares, by kind; a server-wide entry is read for the server "pg".
READERS: dict[str, Callable[[Env, Variable], object]] = {
    "text": lambda env, v: env.text(v.name, _server(v), BARMAN_HOME="/h", RETENTION_POLICY="R"),
    "path": lambda env, v: env.text(v.name, _server(v), BARMAN_HOME="/h"),
    "schedule": lambda env, v: env.text(v.name, _server(v)),
    "seconds": lambda env, v: env.seconds(v.name, _server(v)),
    "integer": lambda env, v: env.integer(v.name, _server(v)),
    "size": lambda env, v: env.size(v.name, _server(v)),
    "factor": lambda env, v: env.factor(v.name),
    "boolean": lambda env, v: env.boolean(v.name, _server(v)),
    "choice": lambda env, v: env.choice(v.name, _server(v)),
    "secret": lambda env, v: env.secret(v.name, _server(v)),
    "secret_url": lambda env, v: env.url(v.name, _server(v)),
}


def _server(variable: Variable) -> str | None:
    return "pg" if variable.scope == "server" else None


def test_a_name_outside_the_table_is_never_read() -> None:
    with pytest.raises(LookupError, match="NOT_DECLARED is not in the table"):
        Env({"NOT_DECLARED": "1"}).text("NOT_DECLARED")


def test_a_variable_is_read_only_as_its_kind_and_scope() -> None:
    env = Env({})
    with pytest.raises(TypeError, match="MINIMUM_REDUNDANCY is declared as 'integer'"):
        env.text("MINIMUM_REDUNDANCY", "pg")
    with pytest.raises(TypeError, match="MINIMUM_REDUNDANCY is a server variable"):
        env.integer("MINIMUM_REDUNDANCY")
    with pytest.raises(TypeError, match="HTTP_PORT is a global variable"):
        env.integer("HTTP_PORT", "pg")


@pytest.mark.parametrize("variable", VARIABLES.values(), ids=list(VARIABLES))
def test_each_default_reads_as_its_kind_within_its_bounds(variable: Variable) -> None:
    value = READERS[variable.kind](Env({}), variable)

    if variable.choices:
        assert value in variable.choices
    if isinstance(value, int | float) and not isinstance(value, bool):
        assert variable.minimum is None or value >= variable.minimum
        assert variable.maximum is None or value <= variable.maximum
    assert variable.meaning and variable.group
    assert variable.default or variable.unset or variable.kind in ("text", "schedule")


BOUNDED = [v for v in VARIABLES.values() if v.maximum is not None]


@pytest.mark.parametrize("variable", BOUNDED, ids=[v.name for v in BOUNDED])
def test_each_bound_is_enforced_with_the_variable_named(variable: Variable) -> None:
    assert variable.maximum is not None
    too_big = str(int(variable.maximum) + 1)
    name = variable.name if variable.scope == "global" else f"{variable.name}__PG"

    with pytest.raises(ConfigError, match=f"^{name}: .* out of range"):
        READERS[variable.kind](Env({name: too_big}), variable)


def test_every_declared_variable_is_read(
    environ: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With every feature on, the start reads each entry of the table: none is left over."""
    read: set[str] = set()

    def recording(name: str) -> Variable:
        read.add(name)
        return variable(name)

    monkeypatch.setattr(env_module, "variable", recording)
    load_settings(
        {
            **environ,
            "OFFSITE_URL": "s3://bucket/prefix",
            "AWS_ACCESS_KEY_ID": "id",
            "AWS_SECRET_ACCESS_KEY": "key",
            "DRILL_SCHEDULE": "0 5 * * 6",
        }
    )
    load_settings({**environ, "BACKUP_INCREMENTAL_SCHEDULE": "0 3 * * 1-6"})

    assert read == set(VARIABLES)


def test_a_default_may_follow_another_value() -> None:
    env = Env({})

    assert env.text("DRILL_SCRATCH_DIR", BARMAN_HOME="/srv/barman") == "/srv/barman/drill"
    assert env.text("OFFSITE_RETENTION_POLICY", "pg", RETENTION_POLICY="REDUNDANCY 2") == (
        "REDUNDANCY 2"
    )
