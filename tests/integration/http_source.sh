#!/usr/bin/env bash
# http(s) sources: files of 1 byte, 10 MiB + 1 and 100 MiB served by nginx
# go to the Graph fake and to s3rver byte for byte (also through a redirect);
# a source that changes mid-upload (pinned by ETag, or by Last-Modified when
# the ETag is weak) fails the job "source changed during upload" with
# nothing past the chunks done at the target; 503s at plan time and in the
# middle of an upload are retried and resumed; a source that ignores Range
# is refused at plan with no PUT at all; a 404/401 fails the job at once;
# source headers and presigned query strings never
# reach logs, events, status or errors; peak memory does not depend on the
# chunk size; and the SSRF policy refuses loopback addresses (also behind a
# redirect) unless CRU_ALLOW_NETS opens them, with the refused server seeing
# no request. Everything stays on 127.0.0.0/8.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/servers/nginx.sh"
. "$ROOT/tests/servers/s3rver.sh"

WWW=$T_DIR/www
MiB=$((1024 * 1024))
SRC_TOKEN="src-token-7f3a9c1e5b"  # the source's bearer token: must never leak
BAD_TOKEN="wrong-token-d41d8cd9"  # a wrong one, for the 401 case
SIG="SECRETSIG"                   # a presigned URL's signature: ditto

make_file "$WWW/one.bin" 1
make_file "$WWW/ten.bin" $((10 * MiB + 1))
make_file "$WWW/big.bin" $((100 * MiB))
make_file "$WWW/small.bin" 700000
make_file "$WWW/change.bin" $((16 * MiB))

start_redis
start_graph_fake
start_s3rver bkt
start_nginx "$WWW" 'location /norange/ { alias '"$WWW"'/; max_ranges 0; }'

# start_http_source NAME [ARGS...]: tests/fakes/http_source.py serving $WWW;
# sets HS_PORT; the server's stderr goes to $T_DIR/hs-NAME.log.
start_http_source() {
    local name=$1 out=$T_DIR/hs-$1.out pid deadline line
    shift
    "$T_PY" -u "$ROOT/tests/fakes/http_source.py" --dir "$WWW" "$@" \
        </dev/null >"$out" 2>"$T_DIR/hs-$name.log" &
    pid=$!
    T_PIDS+=("$pid")
    deadline=$(($(_t_now_ms) + 10000))
    while [ "$(_t_now_ms)" -lt "$deadline" ] && _t_alive "$pid"; do
        line=$(grep -m1 -E '^PORT [0-9]+' "$out" 2>/dev/null) || line=
        if [ -n "$line" ]; then
            HS_PORT=${line#PORT }
            return 0
        fi
        sleep 0.05
    done
    echo "http_source.sh: http_source.py $name did not start" >&2
    cat "$T_DIR/hs-$name.log" >&2
    return 1
}

# hs_stat HOST:PORT FIELD: a field of that http_source.py's /_stats.
hs_stat() {
    curl -s "http://$1/_stats" | "$T_PY" -c 'import json, sys
print(json.load(sys.stdin)[sys.argv[1]])' "$2"
}

# graph_puts: upload-URL PUTs the Graph fake has seen.
graph_puts() {
    curl -s "http://127.0.0.1:$GRAPH_PORT/_stats" | "$T_PY" -c 'import json, sys
print(json.load(sys.stdin)["put"])'
}

# session_next PATH: the Graph fake's next expected offset for the open
# session of drive d1 at PATH ("" when there is none).
session_next() {
    curl -s "http://127.0.0.1:$GRAPH_PORT/_sessions" | "$T_PY" -c 'import json, sys
for s in json.load(sys.stdin):
    if s["drive_key"] == "drive-d1" and s["path"] == sys.argv[1]:
        print(s["next"])' "$1"
}

# graph_target PATH: an upload session on drive d1, as the target JSON.
graph_target() {
    printf '{"type":"graph","upload_url":"%s"}' "$(graph_create_session d1 "$1")"
}

# submit_url URL TARGET [--chunk-size N]: cru submit; prints the id.
submit_url() {
    local url=$1 target=$2
    shift 2
    "$CRU" submit "$url" --target "$target" "$@" 2>&1
}

# submit_spec JSON: FCALL cru_submit; prints the reply (id or error).
submit_spec() {
    rcli --raw FCALL cru_submit 0 "$1" 2>&1
}

# expect_failed NAME ID ERROR-PART
expect_failed() {
    local state err
    state=$(wait_job "$2" 30)
    err=$(rcli --raw HGET "cru:job:$2" error)
    echo "$1: error: $err" >&2
    assert_eq "$1: job failed" failed "$state" && assert_contains "$1: error says why" "$err" "$3"
}

# expect_done NAME ID FILE STORED: done, and STORED is byte-exact FILE.
expect_done() {
    local state
    state=$(wait_job "$2" 120)
    assert_eq "$1: done" "done" "$state" || {
        echo "$1: error: $(rcli --raw HGET "cru:job:$2" error)" >&2
        return
    }
    assert_file_same "$1: bytes at the target" "$3" "$4"
    read -r bd cd ch < <(rcli --raw HMGET "cru:job:$2" bytes_done chunks_done chunks | tr '\n' ' ')
    assert_eq "$1: bytes_done == size, chunks_done == chunks" "$(stat -c %s "$3") $ch" "$bd $cd"
}

ALL_IDS=()
t0=$(_t_now_ms)

# ------------------------------------------------------------ byte-exact
export CRU_ALLOW_NETS=127.0.0.0/8 CRU_RETRY_BASE_MS=50 CRU_MAX_ATTEMPTS=5 CRU_LOG_LEVEL=debug
start_workers 2 --concurrency 2

start_http_source flaky
FLAKY=127.0.0.1:$HS_PORT
start_http_source auth --require-header "Authorization: Bearer $SRC_TOKEN"
AUTH=127.0.0.1:$HS_PORT

declare -a G_NAMES=() G_IDS=() G_FILES=() G_STORED=()
for f in one ten big; do
    id=$(submit_url "$NGINX_URL/$f.bin" "$(graph_target "http/$f.bin")")
    G_NAMES+=("nginx -> graph, $f.bin") G_IDS+=("$id") G_FILES+=("$WWW/$f.bin") G_STORED+=("$GRAPH_STORE/drive-d1/http/$f.bin")
    id=$(submit_url "$NGINX_URL/$f.bin" "$(s3_target bkt "http/$f.bin")" --chunk-size 5M)
    G_NAMES+=("nginx -> s3, $f.bin") G_IDS+=("$id") G_FILES+=("$WWW/$f.bin") G_STORED+=("s3:http/$f.bin")
done
# through nginx's 302 (the redirect server points at the file server)
id=$(submit_url "$NGINX_REDIRECT_URL/ten.bin" "$(graph_target "http/redirected.bin")")
G_NAMES+=("nginx 302 -> graph") G_IDS+=("$id") G_FILES+=("$WWW/ten.bin") G_STORED+=("$GRAPH_STORE/drive-d1/http/redirected.bin")
# 503 twice, then 206: retried
curl -s "http://$FLAKY/_fail?count=2&status=503"
id=$(submit_url "http://$FLAKY/ten.bin" "$(graph_target "http/flaky.bin")")
FLAKY_ID=$id
G_NAMES+=("503 twice then 206") G_IDS+=("$id") G_FILES+=("$WWW/ten.bin") G_STORED+=("$GRAPH_STORE/drive-d1/http/flaky.bin")
# a source that wants a bearer token, behind a presigned-looking URL
spec=$(printf '{"source":{"url":"http://%s/ten.bin?X-Amz-Signature=%s&X-Amz-Credential=AKIA","headers":{"Authorization":"Bearer %s"}},"target":%s,"chunk_size":983040}' \
    "$AUTH" "$SIG" "$SRC_TOKEN" "$(graph_target "http/auth.bin")")
id=$(submit_spec "$spec")
G_NAMES+=("Authorization header + signed URL") G_IDS+=("$id") G_FILES+=("$WWW/ten.bin") G_STORED+=("$GRAPH_STORE/drive-d1/http/auth.bin")
ALL_IDS+=("${G_IDS[@]}")

for i in "${!G_IDS[@]}"; do
    stored=${G_STORED[i]}
    if [ "${stored#s3:}" != "$stored" ]; then
        wait_job "${G_IDS[i]}" 120 >/dev/null
        s3_curl "bkt/${stored#s3:}" -o "$T_DIR/s3-got.bin"
        stored=$T_DIR/s3-got.bin
    fi
    expect_done "${G_NAMES[i]}" "${G_IDS[i]}" "${G_FILES[i]}" "$stored"
done
rm -f "$T_DIR/s3-got.bin"
assert_eq "503 twice: two retries recorded" 2 "$(rcli --raw HGET "cru:job:$FLAKY_ID" retries)"
assert_eq "503 twice: the source answered 503 twice" 2 "$(hs_stat "$FLAKY" failed)"
if grep -q 'bytes=0-0' "$NGINX_ACCESS_LOG" && grep -q 'bytes=[1-9][0-9]*-' "$NGINX_ACCESS_LOG"; then
    pass "nginx saw the one-byte probe and ranged chunk GETs"
else
    fail "nginx saw the one-byte probe and ranged chunk GETs" "$(head -5 "$NGINX_ACCESS_LOG")"
fi
echo "byte-exact part: $(($(_t_now_ms) - t0)) ms" >&2

# ------------------------------------------------------------ refused / failing sources
puts0=$(graph_puts)
start_http_source norange --no-range
NORANGE=127.0.0.1:$HS_PORT
id1=$(submit_url "http://$NORANGE/ten.bin" "$(graph_target "http/norange1.bin")")
id2=$(submit_url "$NGINX_URL/norange/ten.bin" "$(graph_target "http/norange2.bin")")
id3=$(submit_url "$NGINX_URL/missing.bin?X-Amz-Signature=$SIG" "$(graph_target "http/missing.bin")")
spec=$(printf '{"source":{"url":"http://%s/ten.bin","headers":{"Authorization":"Bearer %s"}},"target":%s}' \
    "$AUTH" "$BAD_TOKEN" "$(graph_target "http/unauth.bin")")
id4=$(submit_spec "$spec")
ALL_IDS+=("$id1" "$id2" "$id3" "$id4")
expect_failed "no Range (http_source.py --no-range)" "$id1" "does not honour Range"
expect_failed "no Range (nginx max_ranges 0)" "$id2" "does not honour Range"
assert_eq "no Range: failed at plan (no chunk planned)" "" "$(rcli --raw HGET "cru:job:$id1" chunks)"
expect_failed "source 404" "$id3" "HTTP 404"
assert_contains "source 404: names the URL without its query" \
    "$(rcli --raw HGET "cru:job:$id3" error)" "source $NGINX_URL/missing.bin?…: HTTP 404"
expect_failed "source 401 (wrong token)" "$id4" "HTTP 401"
assert_eq "failing sources: not one PUT reached the target" "$puts0" "$(graph_puts)"
assert_eq "404: failed at once (no retry)" 0 "$(rcli --raw HGET "cru:job:$id3" retries)"

# file sources stay confined; other schemes and ".." are refused at submit
mkdir -p "$CRU_SOURCE_ROOT"
ln -sf /etc/passwd "$CRU_SOURCE_ROOT/escape.bin"
id=$(submit_url "file:///etc/passwd" "$(graph_target "f/passwd.bin")")
ALL_IDS+=("$id")
expect_failed "file:///etc/passwd" "$id" "source root"
id=$(submit_url "$CRU_SOURCE_ROOT/escape.bin" "$(graph_target "f/escape.bin")")
ALL_IDS+=("$id")
expect_failed "symlink out of the root" "$id" "escapes"
out=$(submit_url "gopher://127.0.0.1:70/1" '{"type":"graph","upload_url":"http://127.0.0.1:1/u"}')
assert_contains "gopher:// refused at submit" "$out" "invalid spec: source"
out=$(submit_spec '{"source":{"url":"gopher://127.0.0.1:70/1"},"target":{"type":"graph","upload_url":"http://127.0.0.1:1/u"}}')
assert_contains "gopher:// (object form) refused at submit" "$out" "invalid spec: source"
out=$(submit_url "$CRU_SOURCE_ROOT/../../etc/passwd" '{"type":"graph","upload_url":"http://127.0.0.1:1/u"}')
assert_contains "'..' refused at submit" "$out" '".." components'
stop_workers

# ------------------------------------------------------------ source changed
# slow slots; the file is replaced (same size, new content and mtime) after
# two chunks: the next GET's If-Range no longer matches. Meanwhile another
# job's source answers 503 twice in the middle of the upload: retried,
# resumed, byte-exact.
# A third job's source sends only a weak ETag: pinned by Last-Modified.
cp "$WWW/change.bin" "$WWW/change-lm.bin"
start_http_source weak --etag weak
WEAK=127.0.0.1:$HS_PORT
start_workers 1 --concurrency 3 --rate-limit 2M
id=$(submit_url "$NGINX_URL/change.bin" "$(graph_target "http/change.bin")" --chunk-size 960K)
mid=$(submit_url "http://$FLAKY/ten.bin?X-Amz-Signature=$SIG" "$(graph_target "http/midflaky.bin")" --chunk-size 960K)
lmid=$(submit_url "http://$WEAK/change-lm.bin" "$(graph_target "http/change-lm.bin")" --chunk-size 960K)
ALL_IDS+=("$id" "$mid" "$lmid")
for _ in $(seq 200); do
    [ "$(rcli --raw HGET "cru:job:$mid" chunks_done)" -ge 1 ] 2>/dev/null && break
    sleep 0.02
done
curl -s "http://$FLAKY/_fail?count=2&status=503"
for _ in $(seq 200); do
    cd_=$(rcli --raw HGET "cru:job:$id" chunks_done)
    [ "${cd_:-0}" -ge 2 ] && break
    sleep 0.05
done
make_file "$T_DIR/change.new" $((16 * MiB))
touch -d '2001-01-01 00:00:00' "$T_DIR/change.new"
cp "$T_DIR/change.new" "$T_DIR/change-lm.new"
touch -d '2001-01-01 00:00:00' "$T_DIR/change-lm.new"
mv -f "$T_DIR/change.new" "$WWW/change.bin"
mv -f "$T_DIR/change-lm.new" "$WWW/change-lm.bin"
echo "source changed after $cd_ chunks done" >&2
expect_failed "source changed between chunks" "$id" "source changed during upload"
done_chunks=$(rcli --raw HGET "cru:job:$id" chunks_done)
next=$(session_next http/change.bin)
echo "source changed: chunks_done $done_chunks, Graph session next=$next" >&2
if [ -n "$next" ] && [ "$next" -le $((done_chunks * 983040)) ]; then
    pass "source changed: the target holds nothing past the chunks done ($next <= $done_chunks x 960 KiB)"
else
    fail "source changed: the target holds nothing past the chunks done" "next=$next chunks_done=$done_chunks"
fi
expect_failed "source changed, pinned by Last-Modified (weak ETag)" "$lmid" "source changed during upload"
expect_done "503 twice mid-upload" "$mid" "$WWW/ten.bin" "$GRAPH_STORE/drive-d1/http/midflaky.bin"
assert_eq "503 twice mid-upload: two retries, after chunk 0" "2 yes" \
    "$(rcli --raw HGET "cru:job:$mid" retries) $([ "$(hs_stat "$FLAKY" failed)" = 4 ] && echo yes)"
stop_workers

# ------------------------------------------------------------ peak memory
declare -A HWM=()
# an ASan build's quarantine keeps freed memory: per-request allocations
# would then grow with the number of chunks, which is not what is measured
ASAN_SAVED=${ASAN_OPTIONS-}
if ldd "$CRU" 2>/dev/null | grep -q libasan; then
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0:thread_local_quarantine_size_kb=0"
fi
for cs in 60M 3840K; do
    start_workers 1 --concurrency 1
    id=$(submit_url "$NGINX_URL/big.bin" "$(graph_target "http/rss-$cs.bin")" --chunk-size "$cs")
    ALL_IDS+=("$id")
    expect_done "peak RSS run, $cs chunks" "$id" "$WWW/big.bin" "$GRAPH_STORE/drive-d1/http/rss-$cs.bin"
    HWM[$cs]=$(vmhwm "$(worker_pid "$T_WORKER_N")")
    stop_workers
done
export ASAN_OPTIONS=$ASAN_SAVED
echo "peak RSS (VmHWM), 100 MiB http -> graph: 60 MiB chunks ${HWM[60M]} kB, 3840 KiB chunks ${HWM[3840K]} kB" >&2
d=$((HWM[60M] - HWM[3840K]))
d=${d#-}
if [ "$d" -le 4096 ]; then
    pass "peak RSS within 4 MiB: 60M ${HWM[60M]} kB vs 3840K ${HWM[3840K]} kB"
else
    fail "peak RSS within 4 MiB" "60M ${HWM[60M]} kB vs 3840K ${HWM[3840K]} kB"
fi

# ------------------------------------------------------------ SSRF
unset CRU_ALLOW_NETS
start_http_source victim --host 127.0.0.1
VICTIM=127.0.0.1:$HS_PORT
start_http_source hop --host 127.0.0.2
HOP=127.0.0.2:$HS_PORT
start_workers 1 --concurrency 2
n0=$(nginx_requests)
id1=$(submit_url "$NGINX_URL/one.bin" "$(graph_target "s/nginx.bin")")
id2=$(submit_url "http://$VICTIM/one.bin" "$(graph_target "s/victim.bin")")
id3=$(submit_url "http://localhost:${VICTIM#*:}/one.bin" "$(graph_target "s/localhost.bin")")
ALL_IDS+=("$id1" "$id2" "$id3")
expect_failed "no CRU_ALLOW_NETS: nginx on 127.0.0.1" "$id1" "address not allowed"
expect_failed "no CRU_ALLOW_NETS: 127.0.0.1" "$id2" "address not allowed"
expect_failed "no CRU_ALLOW_NETS: localhost" "$id3" "address not allowed"
assert_eq "no CRU_ALLOW_NETS: nginx saw no request" "$n0" "$(nginx_requests)"
assert_eq "no CRU_ALLOW_NETS: the source saw no request" 0 "$(hs_stat "$VICTIM" requests)"
stop_workers

export CRU_ALLOW_NETS=127.0.0.2/32
start_workers 1 --concurrency 2
id1=$(submit_url "http://$HOP/redirect?to=http://$VICTIM/one.bin" "$(graph_target "s/redirect.bin")")
id2=$(submit_url "http://$HOP/small.bin" "$(graph_target "s/allowed.bin")")
id3=$(submit_url "http://$HOP/redirect?to=file:///etc/passwd" "$(graph_target "s/redirect-file.bin")")
ALL_IDS+=("$id1" "$id2" "$id3")
expect_failed "redirect from 127.0.0.2 to 127.0.0.1" "$id1" "address not allowed"
assert_eq "redirect: the 127.0.0.1 server saw no request" 0 "$(hs_stat "$VICTIM" requests)"
if [ "$(hs_stat "$HOP" requests)" -ge 1 ]; then pass "redirect: 127.0.0.2 was asked"; else
    fail "redirect: 127.0.0.2 was asked" "no request"; fi
expect_done "CRU_ALLOW_NETS=127.0.0.2/32: 127.0.0.2 allowed" "$id2" "$WWW/small.bin" "$GRAPH_STORE/drive-d1/s/allowed.bin"
expect_failed "redirect to file://" "$id3" 'Protocol "file" not supported'
stop_workers

# ------------------------------------------------------------ no secrets anywhere
for id in "${ALL_IDS[@]}"; do
    echo "== $id"
    "$CRU" status "$id" --json
    rcli --raw HMGET "cru:job:$id" error last_error source
done >"$T_DIR/status.txt" 2>&1
"$CRU" jobs --limit 100 >>"$T_DIR/status.txt" 2>&1
rcli --raw XRANGE cru:events - + >"$T_DIR/events.txt"
rcli --raw ZRANGE cru:dead 0 -1 >>"$T_DIR/events.txt"
for secret in "$SRC_TOKEN" "$BAD_TOKEN" "$SIG"; do
    where=$(grep -l -F -- "$secret" "$T_DIR"/worker-*.log "$T_DIR/status.txt" "$T_DIR/events.txt" 2>/dev/null)
    if [ -z "$where" ]; then pass "$secret: in no log, event, status or error"; else
        fail "$secret: in no log, event, status or error" "found in $(echo "$where" | xargs -n1 basename | tr '\n' ' ')"; fi
done
# the checks above looked at something
assert_contains "status output covers the signed-URL job" "$(cat "$T_DIR/status.txt")" "$AUTH/ten.bin"
if grep -q "HTTP 401" "$T_DIR/status.txt" "$T_DIR/events.txt"; then pass "the 401 error is in status/events"; else
    fail "the 401 error is in status/events"; fi
echo "http_source: $(($(_t_now_ms) - t0)) ms" >&2
# every worker exited 0 on SIGTERM (a sanitizer report at exit would not)
bad=
for i in "${!WORKER_RC[@]}"; do [ "${WORKER_RC[i]}" = 0 ] || bad+=" worker $i: ${WORKER_RC[i]}"; done
if [ -z "$bad" ]; then pass "all ${#WORKER_RC[@]} workers exited 0"; else fail "all workers exited 0" "$bad"; fi
if grep -l -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T_DIR"/worker-*.log >/dev/null 2>&1; then
    fail "no sanitizer reports in worker logs" "$(grep -h -m3 -E 'Sanitizer|runtime error:' "$T_DIR"/worker-*.log)"
else
    pass "no sanitizer reports in worker logs"
fi
