"""PostgreSQL: the kept connection, its programs, and every WAL computation.

Lives here: ``connection`` (facts, identity and slots read over one kept connection per server),
``programs`` (which major's binaries to run, and as which system user), ``wal`` (WAL names, LSNs,
segments, timelines and history files: the one WAL module).

May import: ``errors``, ``log``, ``retry``, ``config``, ``process``.
"""
