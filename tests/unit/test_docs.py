"""The documentation stays a true map of the tree.

``docs/development.md`` has a layout map (one row per subpackage and per module of
``barman_supervisor/``) and the layers in import order; a module added, moved or deleted without
its row, or a layer changed in ``test_layout`` without the page, fails here with the names to fix.
Every relative link of the README and of ``docs/`` must lead to a file (and to a heading of it,
when the link names one), so moving a page or renaming a section cannot strand a reader.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.unit.test_layout import LAYERS

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "barman_supervisor"
DOCS = ROOT / "docs"
DEVELOPMENT = DOCS / "development.md"
MAP_HEADING = "## Layout map"
LAYERS_HEADING = "## Layers"

_FENCE = re.compile(r"^\s*```")
_MAP_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|")
_LAYER_ITEM = re.compile(r"^\d+\.\s+(.*)$")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


def _prose(path: Path) -> list[str]:
    """The lines of a Markdown file outside fenced code blocks."""
    lines: list[str] = []
    fenced = False
    for line in path.read_text().splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def _section(path: Path, heading: str) -> list[str]:
    """The lines under ``heading`` up to the next heading of the same level."""
    lines = _prose(path)
    assert heading in lines, f"{path.relative_to(ROOT)} has no '{heading}' section"
    start = lines.index(heading) + 1
    level = heading.partition(" ")[0] + " "
    end = next((i for i in range(start, len(lines)) if lines[i].startswith(level)), len(lines))
    return lines[start:end]


def _package_units() -> set[str]:
    """Every module of the package by its path (``barman/commands.py``), and every subpackage
    by its directory (``barman/``, whose ``__init__.py`` is the subpackage's front)."""
    units: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if relative.name == "__init__.py" and len(relative.parts) > 1:
            units.add(f"{relative.parent.as_posix()}/")
        else:
            units.add(relative.as_posix())
    return units


def _mapped_units() -> list[str]:
    return [
        m.group(1) for line in _section(DEVELOPMENT, MAP_HEADING) if (m := _MAP_ROW.match(line))
    ]


def test_the_layout_map_names_every_module_and_subpackage() -> None:
    mapped = _mapped_units()
    present = _package_units()
    missing = sorted(present - set(mapped))
    gone = sorted(set(mapped) - present)
    twice = sorted({unit for unit in mapped if mapped.count(unit) > 1})
    problems = []
    if missing:
        problems.append(f"add a row for: {', '.join(missing)}")
    if gone:
        problems.append(f"remove the rows of what no longer exists: {', '.join(gone)}")
    if twice:
        problems.append(f"keep one row each for: {', '.join(twice)}")
    assert not problems, (
        f"the layout map ('{MAP_HEADING}' in docs/development.md) is out of date; "
        + "; ".join(problems)
    )


def test_the_layers_on_the_page_are_the_tested_layers() -> None:
    listed = [
        set(re.findall(r"`([^`]+)`", m.group(1)))
        for line in _section(DEVELOPMENT, LAYERS_HEADING)
        if (m := _LAYER_ITEM.match(line))
    ]
    assert listed == LAYERS, (
        f"'{LAYERS_HEADING}' in docs/development.md lists {listed}, "
        f"tests/unit/test_layout.py tests {LAYERS}; make them the same"
    )


def _documents() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(m.group(1)) for line in _prose(path) if (m := _HEADING.match(line))}


def _broken_links(document: Path) -> list[str]:
    broken: list[str] = []
    for line in _prose(document):
        for target in _LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue  # http:, https:, mailto: …: not a file of this repository
            file_part, _, anchor = target.partition("#")
            linked = (document.parent / file_part).resolve() if file_part else document
            if not linked.exists():
                broken.append(f"{target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append(f"{target} (no heading '#{anchor}' in {linked.name})")
    return broken


def test_every_relative_link_leads_to_a_file_and_heading() -> None:
    broken = {
        str(document.relative_to(ROOT)): links
        for document in _documents()
        if (links := _broken_links(document))
    }
    assert not broken, f"broken links: {broken}"
