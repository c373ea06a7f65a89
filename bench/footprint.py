"""Scenario 4, the daemon's footprint while idle: no writes, no backup, only ``barman cron``.

Two daemons are measured over the same window: one with BARMAN_CRON_INTERVAL=5 (many cycles)
and one with the default intervals (few or no cycles in the window). CPU = base x seconds +
per-cycle x cycles, with the cycles counted from each daemon's log; the two runs give two
equations, so the idle base (the daemon's own loop) and the cost of one cron cycle come apart,
and the cost per hour at a cycle a minute follows without waiting an hour.
"""

from __future__ import annotations

import time
from contextlib import ExitStack

from bench.common import BenchDaemon, event_time
from bench.procs import TreeSampler, footprint

Split = dict[str, float | None]


def cron_cycles(bench: BenchDaemon, start: float, end: float) -> int:
    return sum(
        1 for e in bench.events.find("job_finished", job="cron") if start <= event_time(e) <= end
    )


def split_base_and_cycle(
    first: tuple[float, float, int], second: tuple[float, float, int]
) -> Split:
    """Solve cpu = base*seconds + per_cycle*cycles from two (cpu, seconds, cycles) runs."""
    (cpu1, sec1, n1), (cpu2, sec2, n2) = first, second
    det = sec1 * n2 - sec2 * n1
    if abs(det) < 1e-9:
        return {"base_cpu_pct": None, "per_cycle_cpu_s": None, "per_hour_at_60s_cpu_s": None}
    base = (cpu1 * n2 - cpu2 * n1) / det
    per_cycle = (sec1 * cpu2 - sec2 * cpu1) / det
    return {
        "base_cpu_pct": round(100 * base, 3),
        "per_cycle_cpu_s": round(per_cycle, 4),
        "per_hour_at_60s_cpu_s": round(base * 3600 + per_cycle * 60, 1),
    }


def measure(daemons: dict[str, BenchDaemon], seconds: float) -> dict[str, object]:
    """``daemons``: name -> daemon. All sampled over one window."""
    samplers = {name: TreeSampler(bench.pid) for name, bench in daemons.items()}
    with ExitStack() as stack:
        for sampler in samplers.values():
            stack.enter_context(sampler)
        start = time.time()
        time.sleep(seconds)
        end = time.time()
    per_daemon: dict[str, dict[str, object]] = {}
    runs: dict[str, dict[str, tuple[float, float, int]]] = {"daemon": {}, "tree": {}}
    for name, bench in daemons.items():
        stats = footprint(samplers[name].samples)
        cycles = cron_cycles(bench, start, end)
        window = float(stats.get("seconds") or 0)  # type: ignore[arg-type]
        for scope in ("daemon", "tree"):
            cpu = float(stats.get(f"{scope}_cpu_s") or 0)  # type: ignore[arg-type]
            runs[scope][name] = (cpu, window, cycles)
        per_daemon[name] = {
            **stats,
            "cron_cycles": cycles,
            "tree_cpu_per_cycle_s": round(runs["tree"][name][0] / cycles, 4) if cycles else None,
        }
    names = list(daemons)
    model = (
        {
            scope: split_base_and_cycle(runs[scope][names[0]], runs[scope][names[1]])
            for scope in runs
        }
        if len(names) == 2
        else {}
    )
    return {"window_s": round(end - start, 1), "daemons": per_daemon, "model": model}
