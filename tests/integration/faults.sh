#!/usr/bin/env bash
# A flaky target: 20 jobs of 3-30 MiB while the Graph fake answers 10% of
# fragments with 503 or 429 (+ Retry-After), keeps part of a fragment and
# answers 500, or drops the connection mid-body. Every job must end done,
# byte-exact, each chunk counted once (bytes_done == size).
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

start_redis
start_graph_fake
export CRU_RETRY_BASE_MS=100 CRU_RETRY_CAP_MS=1000 CRU_MAX_ATTEMPTS=20 CRU_LEASE_MS=3000
start_workers 2 --concurrency 3
SRC=$CRU_SOURCE_ROOT
curl -s -X POST "http://127.0.0.1:$GRAPH_PORT/_chaos?rate=0.1&retry_after=1&seed=7" >/dev/null

declare -a IDS=() FILES=() STORED=()
for i in $(seq 1 20); do
    size=$(( (3 + (i * 7919) % 28) * 1024 * 1024 + i * 4099 ))
    make_file "$SRC/f$i.bin" "$size"
    if [ $((i % 2)) = 0 ]; then
        url=$(graph_create_session d1 "f$i.bin")
        target="{\"type\":\"graph\",\"upload_url\":\"$url\"}"
        STORED+=("drive-d1/f$i.bin")
    else
        target="{\"type\":\"graph\",\"api\":\"$GRAPH_API\",\"drive_id\":\"d2\",\"path\":\"f$i.bin\",\"token\":\"$GRAPH_TOKEN\"}"
        STORED+=("drive-d2/f$i.bin")
    fi
    IDS+=("$("$CRU" submit "$SRC/f$i.bin" --target "$target" --chunk-size 1920K --id "f$i")")
    FILES+=("$SRC/f$i.bin")
done

specs=()
for i in "${!IDS[@]}"; do specs+=("${IDS[i]}:${FILES[i]}:$GRAPH_STORE/${STORED[i]}"); done
exact=$(count_exact 240 "${specs[@]}")
assert_eq "20 jobs done, byte-exact, each chunk counted once" 20 "$exact"
stats=$(curl -s "http://127.0.0.1:$GRAPH_PORT/_stats")
faults=$(printf '%s' "$stats" | "$T_PY" -c 'import json,sys; print(json.load(sys.stdin)["chaos_total"])')
retries=0
for id in "${IDS[@]}"; do retries=$((retries + $(rcli --raw HGET "cru:job:$id" retries))); done
echo "faults injected: $faults ($(printf '%s' "$stats" | "$T_PY" -c 'import json,sys; print(json.load(sys.stdin)["chaos"])')), retries recorded: $retries" >&2
if [ "$faults" -ge 10 ]; then pass "faults were injected ($faults)"; else fail "faults were injected" "$faults"; fi
if [ "$retries" -ge 1 ]; then pass "retries recorded ($retries)"; else fail "retries recorded" "$retries"; fi
assert_eq "nothing pending" 0 "$(rcli XPENDING cru:chunks workers | head -1)"
assert_eq "nothing delayed" 0 "$(rcli ZCARD cru:delayed)"
assert_eq "nothing dead" 0 "$(rcli ZCARD cru:dead)"
