#!/usr/bin/env bash
# Machine-level test prerequisites that pip cannot install. Idempotent and quiet when all is
# present; says what it installs. Tests that still cannot run fail or say why in the summary.
set -euo pipefail

need=()
command -v useradd >/dev/null || need+=(passwd)
command -v curl >/dev/null || need+=(curl)

if ((${#need[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup_machine: missing ${need[*]}; run as root or install them" >&2
        exit 1
    fi
    echo "setup_machine: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# PostgreSQL for the storage, limits and db_query tests (the tests start their own cluster).
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup_machine: PostgreSQL is missing; install Debian's postgresql" >&2
        exit 1
    fi
    echo "setup_machine: installing postgresql"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

# Headless Chromium for the status page and login form tests.
if ! command -v chromium >/dev/null; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup_machine: chromium is missing; install Debian's chromium" >&2
        exit 1
    fi
    echo "setup_machine: installing chromium"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
