#!/usr/bin/env bash
# Build the test base images without any container registry (none is reachable
# here):
#   barman-supervisor-test/<suite>:base   Debian <suite> minbase + ca-certificates,
#                                         built by mmdebstrap and `docker import`ed,
#                                         for sid, trixie and bookworm. Stand-ins for
#                                         debian:<suite>-slim.
#   barman-supervisor-test/postgres:<major>
#                                         PostgreSQL <major> from Debian with an
#                                         entrypoint that mimics the official
#                                         postgres:<major> image (see postgres-standin/):
#                                         18 from sid, 17 from trixie, 15 from bookworm.
#
# The base images trust this machine's CA bundle (which holds the certificate of
# the TLS-intercepting proxy), so pip and apt inside test builds work. The
# product Dockerfile stays free of it.
#
# A base is skipped when it already exists (FORCE=1 rebuilds them). The
# PostgreSQL stand-ins are always built: BuildKit's cache makes an unchanged
# rebuild take a second, and edits to postgres-standin/ are picked up.
# Needs a running engine (engine.sh) and mmdebstrap.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
HOST_CA=${HOST_CA:-/etc/ssl/certs/ca-certificates.crt}
FORCE=${FORCE:-0}
# PostgreSQL major of each stand-in and the Debian suite that carries it.
STANDINS=${STANDINS:-"18:sid 17:trixie 15:bookworm"}

log() { printf '[base_image] %s\n' "$*" >&2; }
die() { printf '[base_image] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (mmdebstrap in root mode)"
command -v mmdebstrap >/dev/null || die "mmdebstrap missing: run engine.sh first"
[ -r "$HOST_CA" ] || die "CA bundle $HOST_CA not readable"

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
base_tag() { echo "barman-supervisor-test/$1:base"; }

# apt sources of a suite: sid has no -updates and no security archive.
sources() {
    if [ "$1" = sid ]; then
        echo "deb $MIRROR sid main"
    else
        echo "deb $MIRROR $1 main"
        echo "deb $MIRROR $1-updates main"
        echo "deb $SECURITY_MIRROR $1-security main"
    fi
}

# sid's Release file is valid for a week only, and the archive this machine reaches may be a
# snapshot older than that: accept it in the sid base (test images only; stable suites carry no
# expiry).
valid_until() {
    if [ "$1" = sid ]; then echo 'Acquire::Check-Valid-Until "false"'; else echo 'Acquire::Check-Valid-Until "true"'; fi
}

# --- base images -----------------------------------------------------------------
build_base() {
    local suite=$1 tag tmp start mirrors
    tag=$(base_tag "$suite")
    if [ "$FORCE" != 1 ] && image_exists "$tag"; then
        log "$tag exists, skipped"
        return
    fi
    tmp=$(mktemp -d)
    mapfile -t mirrors < <(sources "$suite")
    log "mmdebstrap $suite -> $tag"
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
        --aptopt="$(valid_until "$suite")" \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --customize-hook="upload $tmp/docker-clean /etc/apt/apt.conf.d/docker-clean" \
        --customize-hook="upload $HOST_CA /usr/local/share/ca-certificates/build-host-ca-bundle.crt" \
        --customize-hook='chroot "$1" update-ca-certificates >/dev/null' \
        --customize-hook='rm -f "$1"/var/cache/apt/*.bin' \
        "$suite" "$tmp/rootfs.tar" "${mirrors[@]}"
    # `docker import` keeps no config: give it the same CMD/ENV as debian:<suite>-slim.
    docker import \
        --change 'CMD ["bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        "$tmp/rootfs.tar" "$tag" >/dev/null
    rm -rf "$tmp"
    log "$tag built in $(( $(date +%s) - start ))s," \
        "$(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')"
}

for suite in sid trixie; do build_base "$suite"; done

# --- PostgreSQL stand-ins ------------------------------------------------------------
for standin in $STANDINS; do
    major=${standin%%:*} suite=${standin#*:}
    build_base "$suite"
    tag=barman-supervisor-test/postgres:$major
    layout=()
    if [ "$major" -ge 18 ]; then
        layout=(--build-arg "PGDATA=/var/lib/postgresql/$major/docker"
                --build-arg PG_VOLUME=/var/lib/postgresql)
    fi
    start=$(date +%s)
    build_log=$(mktemp)
    # --network host: the engine runs without a bridge (see engine.sh).
    timeout 900 docker buildx build --network host --load --progress plain \
        --build-arg "BASE_IMAGE=$(base_tag "$suite")" --build-arg "PG_MAJOR=$major" \
        "${layout[@]}" \
        -t "$tag" "$HERE/postgres-standin" >"$build_log" 2>&1 \
        || { tail -n 40 "$build_log" >&2; die "building $tag failed (log: $build_log)"; }
    rm -f "$build_log"
    log "$tag ready in $(( $(date +%s) - start ))s," \
        "$(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')"
done
