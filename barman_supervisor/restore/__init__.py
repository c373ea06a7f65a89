"""Restores: from Barman's catalogue, from the off-site store, to a point in time.

Lives here: ``common`` (what both commands share: target arguments, the destination's check,
the steps printed at the end), ``local`` (the ``restore`` command: ``barman recover`` into a
directory), ``store`` (the ``restore-offsite`` command: from the bucket with
``barman-cloud-restore``; the drill restores from the store through it) and ``pitr`` (what a
target time can reach).

May import: everything below it, ``offsite`` included.
"""
