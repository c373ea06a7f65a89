#!/usr/bin/env bash
# Entrypoint of the test stand-in for the official postgres image: a reduced
# copy of its contract (see the Dockerfile). Not for production use.
set -Eeuo pipefail

# file_env VAR [DEFAULT]: VAR may come from VAR or from the file named by VAR_FILE.
file_env() {
    local var=$1 fileVar="${1}_FILE" def=${2:-}
    if [ -n "${!var:-}" ] && [ -n "${!fileVar:-}" ]; then
        echo >&2 "error: both $var and $fileVar are set (but are exclusive)"
        exit 1
    fi
    local val=$def
    if [ -n "${!var:-}" ]; then
        val=${!var}
    elif [ -n "${!fileVar:-}" ]; then
        val=$(<"${!fileVar}")
    fi
    export "$var"="$val"
    unset "$fileVar"
}

# `docker run IMAGE -c foo=bar` means `postgres -c foo=bar`, as in the official image.
if [ "${1:0:1}" = '-' ]; then
    set -- postgres "$@"
fi

if [ "$1" != postgres ]; then
    exec "$@"
fi

# As root: fix ownership of the data directory, then re-run this script as postgres.
if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA"
    chmod 00700 "$PGDATA"
    chown -R postgres:postgres "$PGDATA"
    mkdir -p /var/run/postgresql
    chown postgres:postgres /var/run/postgresql
    chmod 03775 /var/run/postgresql
    exec gosu postgres "${BASH_SOURCE[0]}" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    file_env POSTGRES_PASSWORD
    file_env POSTGRES_USER postgres
    file_env POSTGRES_DB "$POSTGRES_USER"
    file_env POSTGRES_INITDB_ARGS
    : "${POSTGRES_HOST_AUTH_METHOD:=}"
    if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
        echo >&2 "error: database is uninitialized and superuser password is not specified."
        echo >&2 "       set POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE), or POSTGRES_HOST_AUTH_METHOD=trust"
        exit 1
    fi

    echo "initdb: creating cluster in $PGDATA"
    # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a word list on purpose
    initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
        $POSTGRES_INITDB_ARGS >/dev/null

    # Same rule the official image appends: password auth from any host.
    auth=${POSTGRES_HOST_AUTH_METHOD:-$(postgres -C password_encryption -D "$PGDATA")}
    printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"

    # Temporary server on the Unix socket only, for the init scripts. Like the official image it
    # gets the container's postgres arguments (e.g. -c config_file=..., hence that file's
    # pg_hba.conf), then no TCP listener.
    temp_args=("${@:2}" -c "listen_addresses=" -p "${PGPORT:-5432}")
    PGUSER=$POSTGRES_USER pg_ctl -D "$PGDATA" -w -o "$(printf '%q ' "${temp_args[@]}")" start >/dev/null

    psql_init=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
    if [ "$POSTGRES_DB" != postgres ]; then
        "${psql_init[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
    fi
    export PGPASSWORD="$POSTGRES_PASSWORD"  # for init scripts, as upstream does
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh)
                # Executable scripts run, others are sourced (upstream behaviour).
                # shellcheck disable=SC1090
                if [ -x "$f" ]; then echo "running $f"; "$f"; else echo "sourcing $f"; . "$f"; fi ;;
            *.sql)    echo "running $f"; "${psql_init[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
            *.sql.gz) echo "running $f"; gunzip -c "$f" | "${psql_init[@]}" --dbname "$POSTGRES_DB" ;;
            *)        if [ -e "$f" ]; then echo "ignoring $f"; fi ;;
        esac
    done
    unset PGPASSWORD

    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    echo "PostgreSQL init process complete; ready for start up."
fi

exec "$@"
