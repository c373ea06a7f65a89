#!/bin/sh
# A small CA and a server certificate for the compose stack's PostgreSQL, so that Barman and the
# daemon connect over TLS with PG_SSLMODE=verify-full (docs/security.md). `make up` runs it; safe to
# run again: what exists and is valid is kept, a server certificate close to its end (or not signed
# by the CA beside it) is issued anew, and `docker compose restart postgres` then loads it.
#
#   compose/make-certs.sh DIR      (DIR: the secrets directory, compose/secrets by default)
#
# Files, all in DIR:
#   postgres_ca.crt       the CA certificate: the barman service's PG_SSLROOTCERT        0644
#   postgres_ca.key       the CA's private key: never mounted in a container            0600
#   postgres_server.crt   the server certificate, for the names the stack reaches it by 0644
#   postgres_server.key   its private key, copied at each start of the postgres service
#                         to where only the server's user reads it (PostgreSQL refuses
#                         a key others can read)                                       0600
#
# Names in the server certificate: "postgres" (the compose service, PG_HOST), localhost, 127.0.0.1
# and ::1 (the container tests' host networking). A server reached by another name needs a
# certificate of its own for verify-full: issue one with your own CA and write it over these files.
set -eu

DIR=${1:-compose/secrets}
CA_DAYS=3650
SERVER_DAYS=825
# Issued anew when it ends within this many seconds (30 days).
RENEW_BEFORE=2592000
SERVER_NAMES="DNS:postgres,DNS:localhost,IP:127.0.0.1,IP:::1"

command -v openssl >/dev/null || {
    echo "make-certs.sh: openssl is needed (apt-get install openssl)" >&2
    exit 1
}
install -d -m 0700 "$DIR"
ca_crt=$DIR/postgres_ca.crt ca_key=$DIR/postgres_ca.key
srv_crt=$DIR/postgres_server.crt srv_key=$DIR/postgres_server.key
work=$(mktemp -d "$DIR/.make-certs.XXXXXX")
trap 'rm -rf "$work"' EXIT
umask 077

valid() {  # certificate $1 exists and stays valid for RENEW_BEFORE seconds more
    [ -s "$1" ] && openssl x509 -in "$1" -noout -checkend "$RENEW_BEFORE" >/dev/null 2>&1
}

# P-256 keys: small and fast, and every libpq and PostgreSQL build with OpenSSL takes them.
new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

if ! valid "$ca_crt" || [ ! -s "$ca_key" ]; then
    new_key "$work/ca.key"
    openssl req -x509 -new -key "$work/ca.key" -days "$CA_DAYS" -sha256 \
        -subj "/CN=barman-supervisor stack CA $(date -u +%Y-%m-%d)" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$work/ca.crt"
    chmod 0644 "$work/ca.crt"
    mv "$work/ca.key" "$ca_key"
    mv "$work/ca.crt" "$ca_crt"
    rm -f "$srv_crt"  # signed by the CA just replaced
    echo "created $ca_crt (and $ca_key)"
fi

if ! valid "$srv_crt" || [ ! -s "$srv_key" ] \
    || ! openssl verify -CAfile "$ca_crt" "$srv_crt" >/dev/null 2>&1; then
    new_key "$work/server.key"
    printf '%s\n' "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" \
        "subjectAltName=$SERVER_NAMES" >"$work/ext"
    openssl req -new -key "$work/server.key" -subj "/CN=postgres" -out "$work/server.csr"
    openssl x509 -req -in "$work/server.csr" -CA "$ca_crt" -CAkey "$ca_key" -sha256 \
        -set_serial "0x$(openssl rand -hex 16)" -days "$SERVER_DAYS" -extfile "$work/ext" \
        -out "$work/server.crt" 2>/dev/null
    chmod 0644 "$work/server.crt"
    mv "$work/server.key" "$srv_key"
    mv "$work/server.crt" "$srv_crt"
    echo "created $srv_crt (and $srv_key), valid $SERVER_DAYS days"
fi
