#!/usr/bin/env bash
# The image with podman on a machine that reaches no image registry (the tests' machines):
#   docker/podman.sh install   podman, runc, debootstrap, podman-compose, aardvark-dns (root, apt-get)
#   docker/podman.sh base      the base image from Debian's packages, built once and cached
#   docker/podman.sh postgres  a PostgreSQL image on that base (compose.yaml's test image)
#   docker/podman.sh image     the SealGate image on that base
# Every podman call reads the project's settings (docker/containers.conf) via CONTAINERS_CONF.
set -euo pipefail
here=$(cd -- "$(dirname -- "$0")" && pwd -P)
root=$(cd -- "$here/.." && pwd -P)
export CONTAINERS_CONF="$here/containers.conf"

BASE=${SEALGATE_TEST_BASE:-localhost/sealgate-base:bookworm}
PG_IMAGE=${SEALGATE_TEST_POSTGRES:-localhost/sealgate-postgres:bookworm}
IMAGE=${SEALGATE_IMAGE:-localhost/sealgate:test}
MIRROR=${SEALGATE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${SEALGATE_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sealgate-image}

install() {
    local missing=()
    for tool in podman runc debootstrap podman-compose; do
        command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
    done
    # compose.yaml's services find each other by name: podman's DNS for its networks
    [ -x /usr/lib/podman/aardvark-dns ] || missing+=(aardvark-dns)
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "podman.sh: missing ${missing[*]}; as root: apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

base() {
    podman image exists "$BASE" && return 0
    install
    mkdir -p "$CACHE"
    local rootfs="$CACHE/rootfs"
    rm -rf "$rootfs"
    echo "podman.sh: building $BASE with debootstrap (a few minutes, once)" >&2
    debootstrap --variant=minbase --include=python3,python3-venv,tini,libsodium23 bookworm "$rootfs" "$MIRROR" \
        >"$CACHE/debootstrap.log" 2>&1 || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" -c . | podman import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$BASE" >/dev/null
    rm -rf "$rootfs"
}

postgres() {
    podman image exists "$PG_IMAGE" && return 0
    base
    # Debian's mirror over plain http (apt checks the signatures); no host certificates
    # mounted: the ssl-cert package writes into /etc/ssl/certs
    podman build --format docker --network host \
        --build-arg "BASE=$BASE" -t "$PG_IMAGE" -f "$root/tests/image/postgres.Dockerfile" "$root/tests/image"
}

image() {
    base
    make -C "$root" --no-print-directory image ENGINE=podman BASE="$BASE" IMAGE="$IMAGE" \
        IMAGE_BUILD_FLAGS="--network host -v /etc/ssl/certs:/etc/ssl/certs:ro ${SEALGATE_IMAGE_BUILD_FLAGS:-}"
    # the images earlier builds left untagged (the venv stage's, unlabelled, stays as cache)
    podman image prune -f --filter label=org.opencontainers.image.title=SealGate >/dev/null
}

case "${1:-}" in
    install | base | postgres | image) "$1" ;;
    *) echo "usage: $0 install|base|postgres|image" >&2; exit 2 ;;
esac
