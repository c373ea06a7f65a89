#!/bin/sh
# Creates the two roles Barman needs, with the least privilege that works, and sets their
# passwords from secret files. Safe to run again: roles are created once, grants and passwords
# are re-applied. Runs from the official image's /docker-entrypoint-initdb.d on first start;
# run it by hand (same environment) after restoring a cluster or changing a password.
#
#   BARMAN_DB_USER (barman)                  backups and checks: no superuser, no REPLICATION
#   BARMAN_DB_PASSWORD_FILE                  file holding that role's password
#   BARMAN_STREAMING_USER (streaming_barman) WAL streaming and pg_basebackup: REPLICATION only
#   BARMAN_STREAMING_PASSWORD_FILE           file holding that role's password
set -eu

: "${BARMAN_DB_PASSWORD_FILE:?set BARMAN_DB_PASSWORD_FILE to the file with the barman role password}"
: "${BARMAN_STREAMING_PASSWORD_FILE:?set BARMAN_STREAMING_PASSWORD_FILE to the file with the streaming role password}"
for file in "$BARMAN_DB_PASSWORD_FILE" "$BARMAN_STREAMING_PASSWORD_FILE"; do
    [ -s "$file" ] || { echo "10-barman-roles.sh: $file is missing or empty" >&2; exit 1; }
done
export BARMAN_DB_PASSWORD_FILE BARMAN_STREAMING_PASSWORD_FILE

# Passwords are read inside psql (backticks), so they never appear on a command line.
psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet \
    --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-${POSTGRES_USER:-postgres}}" \
    -v barman_user="${BARMAN_DB_USER:-barman}" \
    -v streaming_user="${BARMAN_STREAMING_USER:-streaming_barman}" <<'SQL'
\set barman_password `cat "$BARMAN_DB_PASSWORD_FILE"`
\set streaming_password `cat "$BARMAN_STREAMING_PASSWORD_FILE"`
SET password_encryption = 'scram-sha-256';
SET client_min_messages = warning;

SELECT format('CREATE ROLE %I LOGIN', :'barman_user')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'barman_user') \gexec
SELECT format('CREATE ROLE %I LOGIN REPLICATION', :'streaming_user')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'streaming_user') \gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'barman_user', :'barman_password') \gexec
SELECT format('ALTER ROLE %I LOGIN REPLICATION PASSWORD %L', :'streaming_user', :'streaming_password') \gexec

-- barman check reads settings and statistics.
SELECT format('GRANT pg_read_all_settings, pg_read_all_stats TO %I', :'barman_user') \gexec
-- WAL switch (first segment, switch-wal) and restore points (which complete a switch at once).
SELECT format('GRANT EXECUTE ON FUNCTION pg_switch_wal() TO %I', :'barman_user') \gexec
SELECT format('GRANT EXECUTE ON FUNCTION pg_create_restore_point(text) TO %I', :'barman_user') \gexec
-- Concurrent backup API: renamed in PostgreSQL 15, and switch-wal --force needs pg_checkpoint.
SELECT format('GRANT EXECUTE ON FUNCTION pg_backup_start(text, boolean) TO %I', :'barman_user'),
       format('GRANT EXECUTE ON FUNCTION pg_backup_stop(boolean) TO %I', :'barman_user'),
       format('GRANT pg_checkpoint TO %I', :'barman_user')
WHERE current_setting('server_version_num')::int >= 150000 \gexec
SELECT format('GRANT EXECUTE ON FUNCTION pg_start_backup(text, boolean, boolean) TO %I', :'barman_user'),
       format('GRANT EXECUTE ON FUNCTION pg_stop_backup() TO %I', :'barman_user'),
       format('GRANT EXECUTE ON FUNCTION pg_stop_backup(boolean, boolean) TO %I', :'barman_user')
WHERE current_setting('server_version_num')::int < 150000 \gexec

-- Incremental backups (PostgreSQL 17+, BACKUP_INCREMENTAL_SCHEDULE) build on WAL summaries that
-- exist only from when summarize_wal is on: turn it on from the start (older majors lack it).
SELECT 'ALTER SYSTEM SET summarize_wal = on'
WHERE current_setting('server_version_num')::int >= 170000 \gexec
SELECT pg_reload_conf() \g /dev/null
SQL
echo "10-barman-roles.sh: roles ${BARMAN_DB_USER:-barman} and ${BARMAN_STREAMING_USER:-streaming_barman} are ready"
