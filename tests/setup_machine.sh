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

# The libraries Qt needs to run the desktop client's tests offscreen, and Xvfb for its
# screenshot script (tests/desktop/screenshot.py).
qt_libs=(libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libglib2.0-0 fonts-dejavu-core
    xvfb xauth libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0
    libxcb-xinerama0 libxcb-randr0 libxcb-render-util0 libxcb-image0)
missing_qt=()
for package in "${qt_libs[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" ||
        missing_qt+=("$package")
done
if ((${#missing_qt[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup_machine: Qt needs ${missing_qt[*]}; install them (Debian packages)" >&2
        exit 1
    fi
    echo "setup_machine: installing ${missing_qt[*]} (Qt offscreen, Xvfb)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing_qt[@]}" >/dev/null
fi
