"""Restore drill: prove, on a schedule, that the newest backup really restores and holds data.

A backup nobody has restored is a hope. The drill does what a person would do in an incident,
in a scratch directory, and measures it:

1. pick the newest DONE backup that has not failed verification or a drill (``barman/verdicts``)
   and refuse (with the numbers) when the scratch disk is too small;
2. ``barman verify-backup`` — a file damaged after the copy can restore "fine" and read as empty;
3. ``barman recover`` (plain, no ``--get-wal``: Barman copies the base backup and every archived
   WAL after it into the scratch copy, so the temporary server needs neither SSH nor Barman's
   configuration; ``--get-wal`` writes ``restore_command = barman get-wal …``, which has to run
   as the Barman user with its configuration and was slower: 2.0 s against 1.6 s for 38 MB);
4. start a temporary PostgreSQL of the backup's major version on it: unix socket in the scratch
   directory only (``listen_addresses = ''``), its own trust-only ``hba_file``, ``archive_mode``
   off and no external pid file, so it can never be reached from outside, archive into the real
   archive or touch the real server's files. ``recovery.signal`` with ``restore_command = false``
   makes it an archive recovery from the WAL in ``pg_wal``: PostgreSQL then tracks the newest
   replayed commit and promotes itself at the end of the WAL;
5. once it accepts connections and is out of recovery, run the verification query in every
   database (default: ``count(*)`` over every user table, so every heap is actually read);
6. stop it and delete the scratch directory — also when a step fails, times out, or the daemon
   is asked to stop (``stop`` event): nothing of a drill survives it.

With ``DRILL_SOURCE=offsite`` steps 1-3 take the off-site store instead: the plan of
``restore-offsite``, ``barman-cloud-restore`` and ``barman-cloud-wal-restore`` (no
``verify-backup``: it reads Barman's local copy); steps 4-6 are the same.

Modules: ``plan`` (settings, result and the pure decisions), ``source`` (where the backup comes
from: local or the store), ``cluster`` (scratch directories and the temporary server), ``drill``
(the steps in order).

Everything returned is plain data (``DrillResult.as_dict()``) for the state, ``/status``,
``/metrics`` and alerts; ``backup_fault`` says whether a failure is the backup's, so that the
jobs record it as the backup's verdict. The drill never raises for a failed step; the reason
says what failed.

May import: everything below it, ``restore`` included; ``status`` for its records.
"""

from barman_supervisor.barman.records import newest_done
from barman_supervisor.drill.drill import run_drill
from barman_supervisor.drill.plan import (
    DEFAULT_QUERY,
    DrillConfig,
    restored_age,
    server_options,
    space_problem,
    unreachable_ancestor,
)
from barman_supervisor.status.state import DrillResult

__all__ = [
    "DEFAULT_QUERY",
    "DrillConfig",
    "DrillResult",
    "newest_done",
    "restored_age",
    "run_drill",
    "server_options",
    "space_problem",
    "unreachable_ancestor",
]
