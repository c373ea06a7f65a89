"""The image's lock file (``docker/barman/requirements.lock``, ``make lock``) and pyproject.toml.

The Dockerfile installs the lock alone (``pip install --require-hashes --no-deps``), so a
dependency added to pyproject.toml without ``make lock`` would be missing from the image; this
says so before an image is built. The installed image itself is checked against the lock in
``tests/container/test_stack.py``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCK_FILE = REPO_ROOT / "docker" / "barman" / "requirements.lock"
LOCK_INPUT = REPO_ROOT / "docker" / "barman" / "requirements.in"
# One requirement of the lock: "name==version \" and its hash lines.
_ENTRY = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) \\\n((?:    --hash=sha256:[0-9a-f]{64}.*\n)+)", re.M
)


def _locked() -> dict[str, tuple[str, int]]:
    """Locked name -> (version, number of hashes)."""
    text = LOCK_FILE.read_text(encoding="utf-8")
    return {canonicalize_name(m[1]): (m[2], m[3].count("--hash=")) for m in _ENTRY.finditer(text)}


def _wanted() -> list[Requirement]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = [*project["dependencies"], *project["optional-dependencies"]["barman"]]
    extra = LOCK_INPUT.read_text(encoding="utf-8").splitlines()
    lines += [line for line in extra if line.strip() and not line.startswith("#")]
    return [Requirement(line) for line in lines]


def test_every_requirement_is_locked_at_a_version_it_accepts() -> None:
    locked = _locked()
    assert locked, f"no requirement found in {LOCK_FILE}"
    for requirement in _wanted():
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement}: not in the lock file; run make lock"
        version, _ = locked[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{requirement}: locked at {version}; run make lock"
        )


def test_every_locked_file_has_a_hash_and_barman_is_pinned() -> None:
    text = LOCK_FILE.read_text(encoding="utf-8")
    locked = _locked()
    assert len(locked) == len(re.findall(r"^[A-Za-z0-9].*==", text, re.M)), "an entry lacks hashes"
    assert all(hashes > 0 for _, hashes in locked.values())
    assert locked["barman"][0].startswith("3.20.")
    for name in ("boto3", "lz4", "zstandard", "psycopg2", "setuptools"):
        assert name in locked, f"{name}: barman's extras and the build backend are locked"
