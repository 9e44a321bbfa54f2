#!/bin/sh
# The image's entrypoint: settle where things live, then become the supervisor.
#
# As a Hugging Face Space runs the image (uid 1000, no root, secrets as environment
# variables, SPACE_HOST set, an optional persistent volume at /data):
# - the runtime directory (sockets, and the databases unless told otherwise) is
#   $HUB_RUNTIME_DIR, else $SEALGATE_LOCAL_DIR (the image: /var/lib/sealgate, a local
#   filesystem owned by uid 1000);
# - when HUB_RUNTIME_DIR and HUB_DATA_DIR are not set and $SEALGATE_PERSISTENT_DIR (the
#   image: /data, a Space's persistent volume) is a writable directory, the databases go to
#   $SEALGATE_PERSISTENT_DIR/sealgate (HUB_DATA_DIR) and survive restarts;
# - the secrets stay in this environment: the supervisor hands them to the guardian and
#   builds the sandbox's environment from an allowlist of names (SPACE_HOST is one of them).
# Run as root (plain `docker run`), the supervisor drops to two service users instead.
set -eu

here=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd -P)
persistent="${SEALGATE_PERSISTENT_DIR:-/data}"

if [ -z "${HUB_RUNTIME_DIR:-}" ]; then
    HUB_RUNTIME_DIR="${SEALGATE_LOCAL_DIR:-/var/lib/sealgate}"
    if [ -z "${HUB_DATA_DIR:-}" ] && [ -d "$persistent" ] && [ -w "$persistent" ]; then
        HUB_DATA_DIR="$persistent/sealgate"
        export HUB_DATA_DIR
        echo "entrypoint: databases under $HUB_DATA_DIR (persistent), sockets under $HUB_RUNTIME_DIR" >&2
    fi
    export HUB_RUNTIME_DIR
fi

# Isolated (-I), as the supervisor starts its children: no user site, no PYTHON* variables.
exec "${SEALGATE_PYTHON:-python}" -I "$here/supervisor.py"
