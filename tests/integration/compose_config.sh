#!/usr/bin/env bash
# compose.yaml and the Dockerfile are valid (no Docker engine runs here, so
# the image is not built): docker-compose parses the file, the worker
# service scales (no container_name, no fixed host port), and Redis keeps an
# append-only file on a volume.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

cd "$ROOT" || exit 1
if out=$(docker-compose -f compose.yaml config 2>&1); then pass "docker-compose config"; else
    fail "docker-compose config" "$out"; fi
assert_contains "redis appendonly" "$out" "appendonly"
assert_contains "redis data volume" "$out" "/data"
assert_contains "worker configured by environment" "$out" "CRU_REDIS_URL"
case "$out" in *container_name*) fail "worker scalable" "container_name set" ;;
*) pass "worker scalable (no container_name)" ;; esac
grep -q '^FROM debian:12-slim AS build' Dockerfile && pass "Dockerfile: build stage on Debian 12 slim" ||
    fail "Dockerfile: build stage"
[ "$(grep -c '^FROM ' Dockerfile)" -ge 2 ] && pass "Dockerfile: multi-stage" || fail "Dockerfile: multi-stage"
