"""Barman, driven through its command line and read from its files.

Lives here: ``commands`` (``barman -f json`` calls and the records they return),
``config_files`` (the configuration Barman reads, rendered from the settings), ``chains``
(incremental chains), ``compression``, ``verify`` (``pg_verifybackup`` of a backup) and
``logtail`` (Barman's log file followed into ours).

May import: ``errors``, ``log``, ``retry``, ``config``, ``process``, ``postgres``.
"""
