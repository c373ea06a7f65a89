#!/usr/bin/env bash
# Build the test base images without any container registry (none is reachable
# here):
#   barman-supervisor-test/trixie:base   Debian trixie minbase + ca-certificates,
#                                        built by mmdebstrap and `docker import`ed.
#                                        Stand-in for debian:trixie-slim.
#   barman-supervisor-test/postgres:17   PostgreSQL 17 from trixie with an
#                                        entrypoint that mimics the official
#                                        postgres:17 image (see postgres-standin/).
#
# The base image trusts this machine's CA bundle (which holds the certificate of
# the TLS-intercepting proxy), so pip and apt inside test builds work. The
# product Dockerfile stays free of it.
#
# The trixie base is skipped when it already exists (FORCE=1 rebuilds it). The
# PostgreSQL stand-in is always built: BuildKit's cache makes an unchanged
# rebuild take a second, and edits to postgres-standin/ are picked up.
# Needs a running engine (engine.sh) and mmdebstrap.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BASE_TAG=${BASE_TAG:-barman-supervisor-test/trixie:base}
PG_TAG=${PG_TAG:-barman-supervisor-test/postgres:17}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
HOST_CA=${HOST_CA:-/etc/ssl/certs/ca-certificates.crt}
FORCE=${FORCE:-0}

log() { printf '[base_image] %s\n' "$*" >&2; }
die() { printf '[base_image] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (mmdebstrap in root mode)"
command -v mmdebstrap >/dev/null || die "mmdebstrap missing: run engine.sh first"
[ -r "$HOST_CA" ] || die "CA bundle $HOST_CA not readable"

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# --- trixie base ---------------------------------------------------------------
if [ "$FORCE" = 1 ] || ! image_exists "$BASE_TAG"; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    log "mmdebstrap trixie -> $BASE_TAG"
    # Same content as the official Debian images' apt.conf.d/docker-clean.
    cat >"$tmp/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    start=$(date +%s)
    # Like the official slim images: no docs/man pages/translations, and
    # docker-clean (apt deletes downloaded .debs, so layers don't carry them).
    # The host CA bundle goes in as one extra local certificate so that later
    # `update-ca-certificates` runs (package triggers) keep it; update-ca-
    # certificates warns that it holds more than one certificate: harmless.
    # The last hook drops apt's package caches (83 MB): with docker-clean in
    # place, mmdebstrap's own cleanup no longer finds them.
    # shellcheck disable=SC2016  # "$1" in hooks is the rootfs, set by mmdebstrap
    timeout 900 mmdebstrap --quiet --variant=minbase --include=ca-certificates \
        --aptopt='Acquire::Languages "none"' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --customize-hook="upload $tmp/docker-clean /etc/apt/apt.conf.d/docker-clean" \
        --customize-hook="upload $HOST_CA /usr/local/share/ca-certificates/build-host-ca-bundle.crt" \
        --customize-hook='chroot "$1" update-ca-certificates >/dev/null' \
        --customize-hook='rm -f "$1"/var/cache/apt/*.bin' \
        trixie "$tmp/rootfs.tar" \
        "deb $MIRROR trixie main" \
        "deb $MIRROR trixie-updates main" \
        "deb $SECURITY_MIRROR trixie-security main"
    # `docker import` keeps no config: give it the same CMD/ENV as debian:trixie-slim.
    docker import \
        --change 'CMD ["bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        "$tmp/rootfs.tar" "$BASE_TAG" >/dev/null
    rm -rf "$tmp"
    trap - EXIT
    log "$BASE_TAG built in $(( $(date +%s) - start ))s," \
        "$(docker image inspect -f '{{.Size}}' "$BASE_TAG" | awk '{printf "%.0f MB", $1/1e6}')"
else
    log "$BASE_TAG exists, skipped"
fi

# --- PostgreSQL 17 stand-in -----------------------------------------------------
start=$(date +%s)
build_log=$(mktemp)
# --network host: the engine runs without a bridge (see engine.sh).
timeout 900 docker buildx build --network host --load --progress plain \
    --build-arg "BASE_IMAGE=$BASE_TAG" \
    -t "$PG_TAG" "$HERE/postgres-standin" >"$build_log" 2>&1 \
    || { tail -n 40 "$build_log" >&2; die "building $PG_TAG failed (log: $build_log)"; }
rm -f "$build_log"
log "$PG_TAG ready in $(( $(date +%s) - start ))s," \
    "$(docker image inspect -f '{{.Size}}' "$PG_TAG" | awk '{printf "%.0f MB", $1/1e6}')"
