#!/bin/sh
# PostgreSQL programs of one major for the image, with the libraries they link (Dockerfile helper).
#
#   pg-programs.sh collect MAJOR   in a stage of the Debian suite that has the major: installs
#                                  postgresql-MAJOR (no cluster), drops the JIT (LLVM, ~150 MB,
#                                  unused by restore drills), then writes
#                                  /pg/MAJOR/packages (Debian packages of the linked libraries)
#                                  and /pg/MAJOR/libs/ (a copy of each linked library, by soname,
#                                  the C library excepted: a newer one runs older programs).
#   pg-programs.sh link MAJOR      in the final image, for a major from an older Debian suite:
#                                  the copied libraries whose soname the final image lacks (e.g.
#                                  an older ICU) go to /usr/lib/postgresql/MAJOR/lib/compat,
#                                  registered with ld.so; the others are the final image's own.
set -eu

action=$1 major=$2
root=/usr/lib/postgresql/$major
out=/pg/$major

linked() {
    for file in "$root"/bin/* "$root"/lib/*.so; do
        ldd "$file" 2>/dev/null | awk '$3 ~ /^\// {print $1, $3}'
    done | sort -u
}

case $action in
collect)
    export DEBIAN_FRONTEND=noninteractive
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/no-cluster.conf
    apt-get update
    apt-get install -y --no-install-recommends "postgresql-$major"
    rm -rf "$root"/lib/llvmjit* "$root"/lib/bitcode
    mkdir -p "$out/libs"
    linked | while read -r soname path; do
        package=$(dpkg -S "$(realpath "$path")" 2>/dev/null | cut -d: -f1 | head -n1)
        case $package in libc6 | postgresql-*) continue ;; esac
        echo "$package" >>"$out/packages.all"
        cp -L "$path" "$out/libs/$soname"
    done
    sort -u "$out/packages.all" >"$out/packages"
    rm "$out/packages.all"
    cat "$out/packages"
    ;;
link)
    compat=$root/lib/compat
    mkdir -p "$compat"
    for library in "$out"/libs/*; do
        soname=$(basename "$library")
        ldconfig -p | grep -q "^[[:space:]]*$soname " || cp "$library" "$compat/$soname"
    done
    echo "$compat" >"/etc/ld.so.conf.d/postgresql-$major-compat.conf"
    ldconfig
    echo "PostgreSQL $major: own copies of $(ls "$compat" | tr '\n' ' ')"
    # Every program and module of this major finds every library it links.
    if linked_missing=$(for file in "$root"/bin/* "$root"/lib/*.so; do ldd "$file"; done 2>/dev/null \
        | grep 'not found'); then
        echo "PostgreSQL $major: missing libraries: $linked_missing" >&2
        exit 1
    fi
    ;;
*)
    echo "usage: pg-programs.sh collect|link MAJOR" >&2
    exit 2
    ;;
esac
