"""The live processes, read from /proc: what a test started, and what it must not leave behind."""

from __future__ import annotations

from pathlib import Path

# (pid, ppid, state, cmdline)
Proc = tuple[int, int, str, str]


def process_table() -> list[Proc]:
    """(pid, ppid, state, cmdline) for every process."""
    table = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        table.append((int(entry.name), int(ppid), state, cmdline.strip()))
    return table


def processes_using(marker: str) -> list[Proc]:
    """Live processes whose command line mentions ``marker`` (a test's own path or slot)."""
    return [proc for proc in process_table() if marker in proc[3] and proc[2] != "Z"]
