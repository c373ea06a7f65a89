"""CPU and memory of a process and of everything it started, read from /proc.

Barman's short-lived children (``barman cron``, ``archive-wal``) live for well under the sampling
interval, so their CPU is never seen "live". It is not lost: the daemon is a child subreaper and
reaps them, and the kernel adds a reaped child's CPU to its parent's ``cutime``/``cstime``.
Tree CPU = the root's own + reaped children's + every live descendant's own and reaped.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import Summary, summary

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1024 * 1024


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    cpu_s: float  # utime + stime
    reaped_cpu_s: float  # cutime + cstime: children it waited for
    rss_bytes: int


def read_proc(pid: int) -> Proc | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state) of proc(5)
    return Proc(
        pid=pid,
        ppid=int(fields[1]),
        cpu_s=(int(fields[11]) + int(fields[12])) / _TICK,
        reaped_cpu_s=(int(fields[13]) + int(fields[14])) / _TICK,
        rss_bytes=int(fields[21]) * _PAGE,
    )


def descendants(root: int) -> list[Proc]:
    """Every live process below ``root`` (not ``root`` itself)."""
    procs = [
        p
        for p in (read_proc(int(e.name)) for e in Path("/proc").iterdir() if e.name.isdigit())
        if p
    ]
    children: dict[int, list[Proc]] = {}
    for proc in procs:
        children.setdefault(proc.ppid, []).append(proc)
    found, queue = [], list(children.get(root, []))
    while queue:
        proc = queue.pop()
        found.append(proc)
        queue.extend(children.get(proc.pid, []))
    return found


@dataclass(frozen=True)
class TreeSample:
    at: float
    self_cpu_s: float
    self_rss: int
    tree_cpu_s: float
    tree_rss: int
    processes: int


def sample_tree(root: int) -> TreeSample | None:
    me = read_proc(root)
    if me is None:
        return None
    below = descendants(root)
    return TreeSample(
        at=time.time(),
        self_cpu_s=me.cpu_s,
        self_rss=me.rss_bytes,
        tree_cpu_s=me.cpu_s + me.reaped_cpu_s + sum(p.cpu_s + p.reaped_cpu_s for p in below),
        tree_rss=me.rss_bytes + sum(p.rss_bytes for p in below),
        processes=1 + len(below),
    )


class TreeSampler:
    """Samples one process tree every ``interval`` seconds in a background thread."""

    def __init__(self, root: int, interval: float = 1.0) -> None:
        self.root = root
        self.interval = interval
        self.samples: list[TreeSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"sampler-{root}", daemon=True)

    def _loop(self) -> None:
        while True:
            sample = sample_tree(self.root)
            if sample is not None:
                self.samples.append(sample)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        final = sample_tree(self.root)
        if final is not None:
            self.samples.append(final)

    def between(self, start: float, end: float) -> list[TreeSample]:
        return [s for s in self.samples if start <= s.at <= end]


def footprint(samples: list[TreeSample]) -> dict[str, float | int | Summary | None]:
    """CPU used between the first and last sample, and the RSS seen, daemon alone and tree."""
    if len(samples) < 2:
        return {"seconds": 0.0}
    first, last = samples[0], samples[-1]
    seconds = last.at - first.at
    self_cpu = last.self_cpu_s - first.self_cpu_s
    tree_cpu = last.tree_cpu_s - first.tree_cpu_s
    return {
        "seconds": round(seconds, 2),
        "daemon_cpu_s": round(self_cpu, 3),
        "tree_cpu_s": round(tree_cpu, 3),
        "daemon_cpu_pct": round(100 * self_cpu / seconds, 3),
        "tree_cpu_pct": round(100 * tree_cpu / seconds, 3),
        "daemon_rss_mb": summary(s.self_rss / MB for s in samples),
        "tree_rss_mb": summary(s.tree_rss / MB for s in samples),
        "processes_max": max(s.processes for s in samples),
    }


def memory_kb(pid: int) -> dict[str, int]:
    """``Rss`` and ``Pss`` (shared pages divided among the processes sharing them) in kB, from
    ``/proc/PID/smaps_rollup``; empty when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return {}
    found = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            found[key] = int(rest.split()[0])
    return found


def command_name(pid: int) -> str:
    """A short label for a process: Barman's subcommand, else the program's name."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "?"
    program = Path(argv[0]).name if argv and argv[0] else "?"
    if program != "barman" and not any(Path(a).name == "barman" for a in argv[:2]):
        return program
    return f"barman {barman_subcommand(argv[1:])}"


def barman_subcommand(args: list[str]) -> str:
    """The subcommand of ``barman [-c FILE] [-f FMT] [-q] SUBCOMMAND …``."""
    skip_next = False
    for arg in args:
        if skip_next:
            skip_next = False
        elif arg in ("-c", "--config", "-f", "--format"):
            skip_next = True
        elif Path(arg).name == "barman" or arg.startswith("-"):
            continue
        else:
            return arg
    return "?"


def tree_memory(root: int) -> dict[str, object]:
    """RSS and PSS of a process and all its descendants, totals and per kind of process."""
    pids = [root, *(p.pid for p in descendants(root))]
    by_kind: dict[str, dict[str, float]] = {}
    total = {"rss_mb": 0.0, "pss_mb": 0.0}
    for pid in pids:
        mem = memory_kb(pid)
        if not mem:
            continue
        kind = "daemon" if pid == root else command_name(pid)
        entry = by_kind.setdefault(kind, {"count": 0, "rss_mb": 0.0, "pss_mb": 0.0})
        entry["count"] += 1
        for key, field in (("Rss", "rss_mb"), ("Pss", "pss_mb")):
            entry[field] += mem.get(key, 0) / 1024
            total[field] += mem.get(key, 0) / 1024
    return {
        "processes": len(pids),
        **{k: round(v, 1) for k, v in total.items()},
        "by_kind": {k: {f: round(v, 1) for f, v in e.items()} for k, e in sorted(by_kind.items())},
    }
