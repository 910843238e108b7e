#!/usr/bin/env bash
# Prometheus metrics: a worker with --metrics-addr serves /metrics and
# /healthz; after known work (3 jobs done, one retry after a 503, one job
# failed) the numbers scraped match what the test did. Progress events
# arrive at least once per chunk, and about once a second inside a slow
# chunk, with a rate.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

start_redis
start_graph_fake
mport=$(free_port)
export CRU_RETRY_BASE_MS=50
start_workers 1 --concurrency 2 --metrics-addr "127.0.0.1:$mport"
SRC=$CRU_SOURCE_ROOT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$mport/healthz" >/dev/null && break; sleep 0.1; done
assert_eq "/healthz answers ok" ok "$(curl -s "http://127.0.0.1:$mport/healthz")"

make_file "$SRC/a.bin" 1000000
make_file "$SRC/b.bin" 700000
make_file "$SRC/c.bin" 2000000
total=$((1000000 + 700000 + 2000000))
curl -s -X POST "http://127.0.0.1:$GRAPH_PORT/_fail?count=1&status=503" >/dev/null
ids=()
for f in a b c; do
    url=$(graph_create_session d "$f.bin")
    ids+=("$("$CRU" submit "$SRC/$f.bin" --chunk-size 320K --target "{\"type\":\"graph\",\"upload_url\":\"$url\"}")")
done
for id in "${ids[@]}"; do assert_eq "job $id done" done "$(wait_job "$id" 60)"; done
chunks=0
for id in "${ids[@]}"; do chunks=$((chunks + $(rcli --raw HGET "cru:job:$id" chunks))); done
bad=$("$CRU" submit "$SRC/missing.bin" --target '{"type":"graph","upload_url":"http://127.0.0.1:1/x"}')
assert_eq "a failing job fails" failed "$(wait_job "$bad" 30)"

m=$(curl -s "http://127.0.0.1:$mport/metrics")
metric() { printf '%s\n' "$m" | awk -v k="$1" '$1 == k { print $2 }'; }
assert_eq "bytes uploaded" "$total" "$(metric cru_bytes_uploaded_total)"
assert_eq "chunks done" "$chunks" "$(metric 'cru_chunks_total{outcome="done"}')"
assert_eq "retries after the 503" 1 "$(metric 'cru_retries_total{reason="http_503"}')"
assert_eq "chunks failed" 1 "$(metric 'cru_chunks_total{outcome="failed"}')"
assert_eq "duration histogram counts every chunk" "$chunks" "$(metric cru_chunk_duration_seconds_count)"
assert_eq "jobs done (from Redis)" 3 "$(metric 'cru_jobs{state="done"}')"
assert_eq "jobs failed (from Redis)" 1 "$(metric 'cru_jobs{state="failed"}')"
assert_eq "queue empty" 0 "$(metric cru_queue_length)"
assert_eq "live workers" 1 "$(metric cru_workers_live)"
assert_eq "slots" 2 "$(metric cru_slots)"
assert_contains "text format: TYPE lines" "$m" "# TYPE cru_chunk_duration_seconds histogram"
assert_eq "unknown path 404" 404 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$mport/nope")"

# Progress inside a slow chunk: a 3 MiB chunk at 1 MiB/s gives events with
# "sending" about once a second, each with a rate.
stop_workers
start_workers 1 --concurrency 1 --rate-limit 1M
make_file "$SRC/slow.bin" $((3200 * 1024 + 5))
url=$(graph_create_session d slow.bin)
id=$("$CRU" submit "$SRC/slow.bin" --chunk-size 3200K --target "{\"type\":\"graph\",\"upload_url\":\"$url\"}")
assert_eq "slow job done" done "$(wait_job "$id" 60)"
read -r inflight rated < <(rcli --json XRANGE cru:events - + | "$T_PY" -c '
import json, sys
ev = [dict(zip(f[::2], f[1::2])) for _, f in json.load(sys.stdin)]
mine = [e for e in ev if e.get("job") == sys.argv[1]]
inflight = [e for e in mine if "sending" in e]
print(len(inflight), sum(1 for e in inflight if float(e.get("rate") or 0) > 0))' "$id")
if [ "$inflight" -ge 2 ] && [ "$inflight" -le 6 ]; then pass "progress events inside a 3 s chunk ($inflight)"; else
    fail "progress events inside a 3 s chunk" "$inflight"; fi
assert_eq "each progress event has a rate" "$inflight" "$rated"
assert_eq "chunk events" 2 "$(chunk_events "$id")"
