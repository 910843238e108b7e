#!/usr/bin/env bash
# Chaos: three worker processes, and every 1-2 s one of them is killed
# with SIGKILL (mid-chunk, mid-FCALL, wherever it is) and a new one started,
# while 30 jobs of 5-40 MiB upload. Leases expire, other workers take the
# messages over and resume from what the target holds. Every job must end
# done and byte-exact with bytes_done == size, and nothing stay pending.
# Jobs give drive_id/path/token: when a worker is killed after Graph took
# the last fragment but before it recorded the answer, the session is gone
# and the next worker verifies the item (size, QuickXorHash) by path. (With
# only an upload_url there is no token to look it up: that job fails with a
# message saying so — README "Delivery, failure and resume".)
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

start_redis
start_graph_fake
export CRU_LEASE_MS=1500 CRU_RETRY_BASE_MS=100 CRU_RETRY_CAP_MS=1000 CRU_MAX_DELIVERIES=20
# a modest send rate keeps chunks in flight long enough to be killed mid-way
start_workers 3 --concurrency 2 --rate-limit 8M
SRC=$CRU_SOURCE_ROOT

declare -a IDS=() FILES=() STORED=()
for i in $(seq 1 30); do
    size=$(( (5 + (i * 104729) % 36) * 1024 * 1024 + i * 977 ))
    make_file "$SRC/c$i.bin" "$size"
    target="{\"type\":\"graph\",\"api\":\"$GRAPH_API\",\"drive_id\":\"d2\",\"path\":\"c$i.bin\",\"token\":\"$GRAPH_TOKEN\",\"conflict\":\"replace\"}"
    STORED+=("drive-d2/c$i.bin")
    IDS+=("$("$CRU" submit "$SRC/c$i.bin" --target "$target" --chunk-size 5M --id "c$i")")
    FILES+=("$SRC/c$i.bin")
done

kill_until_ended 240 "--concurrency 2 --rate-limit 8M" "${IDS[@]}"
kills=$KILLS
echo "chaos: $kills workers killed" >&2
if [ "$kills" -ge 5 ]; then pass "workers were killed ($kills)"; else fail "workers were killed" "$kills"; fi

specs=()
for i in "${!IDS[@]}"; do specs+=("${IDS[i]}:${FILES[i]}:$GRAPH_STORE/${STORED[i]}"); done
exact=$(count_exact 60 "${specs[@]}")
assert_eq "30 jobs done, byte-exact, each chunk counted once" 30 "$exact"
assert_eq "nothing pending" 0 "$(rcli XPENDING cru:chunks workers | head -1)"
assert_eq "stream empty" 0 "$(rcli XLEN cru:chunks)"
assert_eq "nothing delayed" 0 "$(rcli ZCARD cru:delayed)"
assert_eq "nothing dead" 0 "$(rcli ZCARD cru:dead)"
takeovers=$(cat "$T_DIR"/worker-*.log | grep -c "took over message" || true)
recovered=$(cat "$T_DIR"/worker-*.log | grep -c "the upload had completed" || true)
echo "chaos: $takeovers messages taken over from killed workers, $recovered completed uploads recovered by path" >&2
if [ "$takeovers" -ge 1 ]; then pass "messages taken over ($takeovers)"; else fail "messages taken over" 0; fi
