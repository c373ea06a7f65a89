"""docs/configuration.md is what the table renders: a variable changed in the table and not in
the page (or edited in the page by hand) fails here with the command that regenerates it."""

from __future__ import annotations

from pathlib import Path

from barman_supervisor.config import VARIABLES
from barman_supervisor.config.reference import COMMAND, render

PAGE = Path(__file__).parents[3] / "docs" / "configuration.md"


def test_the_committed_page_is_what_the_table_renders() -> None:
    assert PAGE.read_text() == render(), f"docs/configuration.md is stale: run `{COMMAND}`"


def test_the_page_has_a_row_per_variable_and_says_which_are_secrets() -> None:
    page = render()

    for name, variable in VARIABLES.items():
        assert f"| `{name}` |" in page
        assert (f"`{name}_FILE`" in page) == variable.secret
