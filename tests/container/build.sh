#!/usr/bin/env bash
# Build the product image docker/barman/Dockerfile for the container tests:
# engine (engine.sh) -> local base images (base_image.sh) -> product image on
# top of the local sid base (PostgreSQL 17 drill programs from the trixie one), with this machine's CA bundle as the optional
# BuildKit secret `cacert` (pip goes through a TLS-intercepting proxy here).
#
# Env: IMAGE    tag to build (default barman-supervisor:test)
#      CONTEXT  build context (default: the repository root)
#      CA_FILE  CA bundle for the secret (default /etc/ssl/certs/ca-certificates.crt;
#               empty: build without the secret)
#      NO_CACHE=1  cold build (--no-cache)
#      BUILD_TIMEOUT  seconds before the build is abandoned (default 1200)
# Prints the build time and the image size; the full build log goes to
# $BUILD_LOG (default /tmp/barman-supervisor-build.log).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$HERE/../.." && pwd)
IMAGE=${IMAGE:-barman-supervisor:test}
CONTEXT=${CONTEXT:-$REPO_ROOT}
CA_FILE=${CA_FILE-/etc/ssl/certs/ca-certificates.crt}
BASE_TAG=${BASE_TAG:-barman-supervisor-test/sid:base}
DRILL_BASE_TAG=${DRILL_BASE_TAG:-barman-supervisor-test/trixie:base}
BUILD_LOG=${BUILD_LOG:-/tmp/barman-supervisor-build.log}

log() { printf '[build] %s\n' "$*" >&2; }
die() { printf '[build] ERROR: %s\n' "$*" >&2; exit 1; }

"$HERE/engine.sh"
"$HERE/base_image.sh"

[ -f "$CONTEXT/pyproject.toml" ] || die "no pyproject.toml in build context $CONTEXT"

args=(--network host          # no bridge on this engine: RUN steps use the host's network
      --load                  # put the result in the engine's image store
      --progress plain
      -f "$REPO_ROOT/docker/barman/Dockerfile"
      --build-arg "BASE_IMAGE=$BASE_TAG"
      --build-arg "DRILL_BASE_IMAGE=$DRILL_BASE_TAG"
      -t "$IMAGE")
if [ -n "$CA_FILE" ]; then
    [ -r "$CA_FILE" ] || die "CA_FILE $CA_FILE not readable"
    args+=(--secret "id=cacert,src=$CA_FILE")
fi
if [ "${NO_CACHE:-0}" = 1 ]; then args+=(--no-cache); fi

log "building $IMAGE from $CONTEXT (log: $BUILD_LOG)"
start=$(date +%s)
timeout "${BUILD_TIMEOUT:-1200}" docker buildx build "${args[@]}" "$CONTEXT" >"$BUILD_LOG" 2>&1 \
    || { tail -n 40 "$BUILD_LOG" >&2; die "build failed (log: $BUILD_LOG)"; }
elapsed=$(( $(date +%s) - start ))

size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
log "built $IMAGE in ${elapsed}s; size $(( size / 1000000 )) MB"
