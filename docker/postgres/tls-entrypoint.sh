#!/bin/sh
# Entrypoint of the compose stack's postgres service, in front of the image's own
# (docker-entrypoint.sh, which it then runs with the same arguments).
#
# PostgreSQL refuses a private key that anyone but its owner can read (or, owned by root, its
# group); the key comes in as a compose secret, which keeps the host file's owner and mode (the
# person who ran `make up`, 0600), so the server's user (postgres, uid 999) could not read it.
# As root, before the server starts: copy it to a directory of the container's own, owned by
# postgres, mode 0600. postgresql.conf's ssl_key_file names the copy.
set -eu

KEY_SECRET=/run/secrets/postgres_server_key
KEY_DIR=/run/postgresql-tls

if [ ! -s "$KEY_SECRET" ]; then
    echo "tls-entrypoint.sh: $KEY_SECRET is missing or empty: run make up (compose/make-certs.sh)" >&2
    exit 1
fi
install -d -o postgres -g postgres -m 0700 "$KEY_DIR"
install -o postgres -g postgres -m 0600 "$KEY_SECRET" "$KEY_DIR/server.key"
exec docker-entrypoint.sh "$@"
