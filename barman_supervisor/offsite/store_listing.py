"""What the store holds for a server, in one JSON object: ``backups_list`` as
``barman-cloud-backup-list --format json`` prints it, and ``wal_names``, the WAL files'
names (compression suffixes dropped), which no ``barman-cloud-*`` program lists. Both through
Barman's own cloud catalogue, in one process: one client, one import.

A script, never imported by the daemon: it runs under Barman's interpreter (the ``#!`` of
``barman-cloud-backup-list``), forked from the fork server when there is one (no import of
Barman and boto3 per listing) or as its own process, with the arguments of
``barman-cloud-backup-list`` (``cloud_options``, the URL, the server) and the keys in its
environment only. It uses the standard library and Barman, nothing of this package.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from contextlib import closing


def main() -> None:
    cli = importlib.import_module("barman.clients.cloud_backup_list")
    cloud = importlib.import_module("barman.cloud")
    providers = importlib.import_module("barman.cloud_providers")
    config = cli.parse_arguments(sys.argv[1:])
    with closing(providers.get_cloud_interface(config)) as interface:
        catalog = cloud.CloudBackupCatalog(interface, config.server_name)
        backups = catalog.get_backup_list()
        listing = {
            "backups_list": [backups[backup_id].to_json() for backup_id in sorted(backups)],
            "wal_names": sorted(catalog.get_wal_paths()),
        }
        print(json.dumps(listing))


if __name__ == "__main__":
    # Started by path, Python puts this file's directory first on sys.path, where this
    # package's modules would shadow Barman's imports of the same names.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != here]
    main()
