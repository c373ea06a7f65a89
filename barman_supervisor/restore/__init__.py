"""Restores: from Barman's catalogue, from the off-site store, to a point in time.

Lives here: ``local`` (the ``restore`` command: ``barman recover`` into a directory),
``store`` (the ``restore-offsite`` command: from the bucket with ``barman-cloud-restore``) and
``pitr`` (what a target time can reach).

May import: everything below it, ``offsite`` included.
"""
