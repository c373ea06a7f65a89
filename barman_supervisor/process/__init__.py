"""Running programs, and the duties of PID 1.

Lives here: ``runner`` (the one place that runs subprocesses, with the ``PATH`` helper),
``pid1`` (signals recorded by handlers, orphans reaped), ``proctable`` (the /proc reader and its
short-lived shared scan), ``forkserver`` (Barman commands forked from one warm process) and
``forkserver_main`` (the script that process runs).

May import: ``errors``, ``log``, ``retry``, ``config``.
"""
