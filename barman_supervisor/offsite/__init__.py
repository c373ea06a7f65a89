"""Off-site copies to an object store with ``barman-cloud-*``.

Lives here: ``plan`` (pure decisions: what to copy, what the store holds, what to keep),
``holes`` (pure: the segments missing from the store's WAL),
``hold`` (the ledger of what reached the store, and the hold it puts on local retention),
``copier`` (the side effects: the programs run and the state written) and ``store_listing`` (a
script run under Barman's interpreter, never imported: the store's backups and WAL names).

May import: everything below it: ``errors``, ``log``, ``retry``, ``config``, ``process``,
``postgres``, ``barman``, ``status``.
"""
