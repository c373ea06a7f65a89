#!/bin/sh
# Dockerfile helper, run before every apt-get update of the image's stages. With DEBIAN_SNAPSHOT
# set to a moment of snapshot.debian.org (e.g. 20261204T000000Z), apt reads the stage's Debian
# suite as the archive was then, so that a rebuild gets the same packages (docs/security.md,
# Dependencies); empty, the base image's sources are left as they are.
set -eu
[ -n "${DEBIAN_SNAPSHOT:-}" ] || exit 0
# sid's os-release names the next release (VERSION_CODENAME); debian_version says "<next>/sid".
case $(cat /etc/debian_version) in
*/sid) suite=sid ;;
*) suite=$(. /etc/os-release && echo "$VERSION_CODENAME") ;;
esac
archive=http://snapshot.debian.org/archive
rm -f /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources
{
    echo "deb [check-valid-until=no] $archive/debian/$DEBIAN_SNAPSHOT/ $suite main"
    if [ "$suite" != sid ]; then
        echo "deb [check-valid-until=no] $archive/debian/$DEBIAN_SNAPSHOT/ $suite-updates main"
        echo "deb [check-valid-until=no] $archive/debian-security/$DEBIAN_SNAPSHOT/ $suite-security main"
    fi
} >/etc/apt/sources.list
echo "apt-snapshot.sh: Debian $suite as of $DEBIAN_SNAPSHOT"
