"""Barman, driven through its command line and read from its files.

Lives here: ``commands`` (``barman -f json`` calls and what their output says), ``records``
(backups and their statuses as plain data, the one ``backup.info`` reader), ``home`` (Barman's
files and directories under BARMAN_HOME, read without a command), ``config_files`` (the
configuration Barman reads, rendered from the settings), ``chains`` (incremental chains),
``compression``, ``space`` (room on a disk before a backup, a restore or a drill), ``verify``
(``pg_verifybackup`` of a backup) and ``logtail`` (Barman's log file followed into ours).

May import: ``errors``, ``files``, ``log``, ``retry``, ``config``, ``process``, ``postgres``.
"""
