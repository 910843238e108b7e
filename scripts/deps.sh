#!/usr/bin/env bash
# Install the Debian 12 packages cru needs to build and test.
# Fast no-op when everything is already installed. Extra package names may be
# passed as arguments; they are appended to the default list.
set -euo pipefail

pkgs=(build-essential pkg-config libhiredis-dev libcurl4-openssl-dev
      libcjson-dev redis-server redis-tools python3 curl docker-compose
      ca-certificates "$@")

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "deps: all present"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing packages: ${missing[*]}" >&2
    echo "deps: not running as root; install them with:" >&2
    echo "  sudo $0 $*" >&2
    echo "  (or: sudo apt-get install -y ${missing[*]})" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update </dev/null
apt-get install -y --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" </dev/null
echo "deps: installed ${missing[*]}"
