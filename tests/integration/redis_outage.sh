#!/usr/bin/env bash
# Redis goes away for 3 s in the middle of a run and comes back (with its
# append-only file): workers never exit, reconnect with backoff, record the
# chunks that finished meanwhile, and every job ends done and byte-exact.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

REDIS_AOF=yes start_redis
start_graph_fake
export CRU_LEASE_MS=3000 CRU_RETRY_BASE_MS=100
start_workers 2 --concurrency 2 --rate-limit 6M
SRC=$CRU_SOURCE_ROOT
declare -a IDS=() FILES=()
for i in $(seq 1 8); do
    make_file "$SRC/r$i.bin" $(( (4 + i) * 1024 * 1024 + i ))
    IDS+=("$("$CRU" submit "$SRC/r$i.bin" --chunk-size 960K --id "r$i" \
        --target "{\"type\":\"graph\",\"api\":\"$GRAPH_API\",\"drive_id\":\"d\",\"path\":\"r$i.bin\",\"token\":\"$GRAPH_TOKEN\"}")")
    FILES+=("$SRC/r$i.bin")
done
sleep 2
done_before=$(rcli --raw HGET cru:job:r8 chunks_done)
port=$REDIS_PORT
stop_redis
echo "redis stopped with r8 at chunk $done_before" >&2
sleep 3
REDIS_AOF=yes start_redis "$port"
echo "redis back on $port" >&2

for i in "${!IDS[@]}"; do
    id=${IDS[i]}
    assert_eq "$id: done after the outage" done "$(wait_job "$id" 120)" || continue
    assert_file_same "$id: byte-exact" "${FILES[i]}" "$GRAPH_STORE/drive-d/r$((i + 1)).bin"
    read -r bd sz < <(rcli --raw HMGET "cru:job:$id" bytes_done size | tr '\n' ' ')
    assert_eq "$id: bytes_done == size" "$sz" "$bd"
done
for i in 1 2; do
    if kill -0 "$(worker_pid $i)" 2>/dev/null; then pass "worker $i survived the outage"; else
        fail "worker $i survived the outage"; fi
done
if grep -q "retrying in" "$T_DIR"/worker-*.log; then pass "workers retried Redis with backoff"; else
    fail "workers retried Redis with backoff"; fi
assert_eq "nothing pending" 0 "$(rcli XPENDING cru:chunks workers | head -1)"
stop_workers
for i in 1 2; do assert_eq "worker $i exits 0" 0 "${WORKER_RC[i]}"; done
