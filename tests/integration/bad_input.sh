#!/usr/bin/env bash
# Every bad input fails its job with a clear error (or drops a message that
# names no job), and the worker keeps running: garbage stream entries,
# unknown jobs, chunk indexes out of range, broken job hashes, sources
# outside the root, empty files, targets that refuse or answer garbage.
# Secrets never reach logs, events or cru status.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

start_redis
start_graph_fake
# transient failures retried quickly, and only 3 times
export CRU_MAX_ATTEMPTS=3 CRU_RETRY_BASE_MS=50
start_workers 1 --concurrency 2
SRC=$CRU_SOURCE_ROOT
make_file "$SRC/ok.bin" 700000
make_file "$T_DIR/outside.bin" 1000
ln -s "$T_DIR/outside.bin" "$SRC/link-out.bin"
: >"$SRC/empty.bin"
T_PATH="\"api\":\"$GRAPH_API\",\"drive_id\":\"d\",\"token\":\"$GRAPH_TOKEN\""

# expect_failed NAME ID ERROR-PART
expect_failed() {
    local state err
    state=$(wait_job "$2" 30)
    err=$(rcli --raw HGET "cru:job:$2" error)
    assert_eq "$1: job failed" failed "$state" && assert_contains "$1: error says why" "$err" "$3"
}

submit() { "$CRU" submit "$@" 2>&1; }

# Garbage messages: no job id, a bad id, an unknown job. Dropped, acked.
rcli XADD cru:chunks '*' foo bar >/dev/null
rcli XADD cru:chunks '*' job '../../etc' chunk 0 >/dev/null
rcli XADD cru:chunks '*' job no-such-job chunk 0 >/dev/null

# A broken job hash.
rcli HSET cru:job:broken state queued chunk_size 327680 spec '{bad json' >/dev/null
rcli XADD cru:chunks '*' job broken op plan >/dev/null
expect_failed "broken job hash" broken "job hash: spec is not a JSON object"

# Source problems.
id=$(submit "$T_DIR/outside.bin" --target "{\"type\":\"graph\",\"path\":\"o.bin\",$T_PATH}")
expect_failed "source outside the root" "$id" "is outside the source root"
id=$(submit "$SRC/link-out.bin" --target "{\"type\":\"graph\",\"path\":\"l.bin\",$T_PATH}")
expect_failed "source symlinked out of the root" "$id" "escapes the source root"
id=$(submit "$SRC/missing.bin" --target "{\"type\":\"graph\",\"path\":\"m.bin\",$T_PATH}")
expect_failed "missing source" "$id" "No such file or directory"

# Empty files: simple upload with a token; refused with only an upload URL.
id=$(submit "$SRC/empty.bin" --target "{\"type\":\"graph\",\"path\":\"e/empty.bin\",$T_PATH}")
assert_eq "empty file, path mode: done" done "$(wait_job "$id" 30)"
[ -f "$GRAPH_STORE/drive-d/e/empty.bin" ] && [ ! -s "$GRAPH_STORE/drive-d/e/empty.bin" ] &&
    pass "empty file stored empty" || fail "empty file stored empty"
assert_eq "empty file: bytes_done/size/chunks" "0 0 0" \
    "$(rcli --raw HMGET "cru:job:$id" bytes_done size chunks | tr '\n' ' ' | sed 's/ $//')"
url=$(graph_create_session d e/empty2.bin)
id=$(submit "$SRC/empty.bin" --target "{\"type\":\"graph\",\"upload_url\":\"$url\"}")
expect_failed "empty file, upload_url mode" "$id" "an upload session needs at least one byte"

# Targets that refuse or answer garbage.
id=$(submit "$SRC/ok.bin" --target "{\"type\":\"graph\",\"api\":\"$GRAPH_API\",\"me\":true,\"path\":\"x.bin\",\"token\":\"wrong-token\"}")
expect_failed "wrong token" "$id" "createUploadSession: HTTP 401: InvalidAuthenticationToken"
url=$(graph_create_session d expired.bin)
curl -s -X POST "http://127.0.0.1:$GRAPH_PORT/_expire" >/dev/null
id=$(submit "$SRC/ok.bin" --target "{\"type\":\"graph\",\"upload_url\":\"$url\"}")
expect_failed "expired session" "$id" "HTTP 404: itemNotFound"
junk_port=$(free_port)
mkdir -p "$T_DIR/www"
(cd "$T_DIR/www" && exec "$T_PY" -m http.server --bind 127.0.0.1 "$junk_port") >/dev/null 2>&1 &
T_PIDS+=("$!")
sleep 0.5
id=$(submit "$SRC/ok.bin" --target "{\"type\":\"graph\",\"api\":\"http://127.0.0.1:$junk_port\",\"me\":true,\"path\":\"x.bin\",\"token\":\"t\"}")
expect_failed "target that is not Graph" "$id" "createUploadSession: HTTP 501"
id=$(submit "$SRC/ok.bin" --target "{\"type\":\"graph\",\"upload_url\":\"http://127.0.0.1:$(free_port)/up/x\"}")
expect_failed "target not listening: retried, then failed" "$id" "gave up after 3 attempts: graph: upload session status: Failed to connect"
assert_eq "target not listening: 2 retries recorded" 2 "$(rcli --raw HGET "cru:job:$id" retries)"

# Chunk messages a job cannot take: out of range, not a number.
url=$(graph_create_session d ok.bin)
id=$(submit "$SRC/ok.bin" --target "{\"type\":\"graph\",\"upload_url\":\"$url\"}" --chunk-size 320K)
assert_eq "good job done" done "$(wait_job "$id" 30)"
rcli HSET "cru:job:late" state running size 10 chunk_size 327680 chunks 1 \
    spec "{\"source\":\"$SRC/ok.bin\",\"target\":{\"type\":\"graph\",\"upload_url\":\"$url\"}}" >/dev/null
rcli XADD cru:chunks '*' job late chunk 7 >/dev/null
expect_failed "chunk out of range" late "chunk 7 out of range (the job has 1 chunks)"
rcli HSET "cru:job:late2" state running size 10 chunk_size 327680 chunks 1 \
    spec "{\"source\":\"$SRC/ok.bin\",\"target\":{\"type\":\"graph\",\"upload_url\":\"$url\"}}" >/dev/null
rcli XADD cru:chunks '*' job late2 chunk -1 >/dev/null
expect_failed "chunk not an index" late2 'bad message: chunk is not an index'

# The worker survived all of it, acknowledged everything, and still works.
assert_eq "worker still running" 1 "$(kill -0 "$(worker_pid 1)" 2>/dev/null && echo 1)"
assert_eq "nothing left pending" 0 "$(rcli XPENDING cru:chunks workers | head -1)"
assert_eq "stream drained" 0 "$(rcli XLEN cru:chunks)"
url=$(graph_create_session d after.bin)
id=$(submit "$SRC/ok.bin" --target "{\"type\":\"graph\",\"upload_url\":\"$url\"}" --chunk-size 320K)
assert_eq "a good job after the bad ones" done "$(wait_job "$id" 30)"
assert_file_same "its bytes" "$SRC/ok.bin" "$GRAPH_STORE/drive-d/after.bin"

# No secret anywhere an operator or dashboard looks.
tempauth=${url##*tempauth=}
leaks=$(cat "$T_DIR"/worker-*.log; rcli --raw XRANGE cru:events - +;
    for j in $(rcli --raw ZRANGE cru:jobs 0 -1); do "$CRU" status "$j"; "$CRU" status "$j" --json; done)
case "$leaks" in *"$GRAPH_TOKEN"* | *"$tempauth"* | *wrong-token*) fail "no secrets in logs, events, status" ;;
*) pass "no secrets in logs, events, status" ;; esac
