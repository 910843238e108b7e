#!/usr/bin/env bash
# tus 1.0 end to end against a real server (@tus/server + @tus/file-store):
# files of 0 bytes, 1 byte, 10 MiB + 1 and 50 MiB (5 MiB chunks) created
# through the endpoint, upload_urls the app created (fixed, deferred and
# zero length), a relative Location, metadata, auth through the spec's
# headers, a resume from inside a chunk after a worker is killed mid-PATCH,
# an upload the app began (409, then on from the server's offset), and cru
# cancel terminating the upload. Each upload must arrive byte for
# byte, counted once; the bearer token must never reach a log line.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/servers/tus.sh"

TOKEN="tus-secret-$RANDOM$RANDOM"
start_redis
start_tus
A_END=$TUS_ENDPOINT A_DIR=$TUS_DIR
start_tus --relative-location
R_END=$TUS_ENDPOINT R_DIR=$TUS_DIR
start_tus --require-auth "$TOKEN"
Z_END=$TUS_ENDPOINT Z_DIR=$TUS_DIR
export CRU_RETRY_BASE_MS=100
start_workers 2 --concurrency 2
SRC=$CRU_SOURCE_ROOT
MiB=$((1024 * 1024))

make_file "$SRC/one.bin" 1
make_file "$SRC/ten.bin" $((10 * MiB + 1))
make_file "$SRC/big.bin" $((50 * MiB))
make_file "$SRC/small.bin" 300000
: >"$SRC/empty.bin"

# ---------------------------------------------------------------- helpers

jf() { rcli --raw HGET "cru:job:$1" "$2"; }
has_session() { [ -n "$(jf "$1" session)" ]; }

# poll TIMEOUT_S CMD...: run CMD every 0.05 s until it succeeds; 1 on timeout.
poll() {
    local deadline=$(($(_t_now_ms) + $1 * 1000))
    shift
    until "$@"; do
        [ "$(_t_now_ms)" -lt "$deadline" ] || return 1
        sleep 0.05
    done
}

# tus_create ENDPOINT HEADER...: create an upload as an app would; prints
# its URL.
tus_create() {
    local end=$1 hdr=() h
    shift
    for h in "$@"; do hdr+=(-H "$h"); done
    curl -sS -o /dev/null -D - -X POST -H 'Tus-Resumable: 1.0.0' "${hdr[@]}" "$end" |
        tr -d '\r' | awk 'tolower($1) == "location:" {print $2}'
}

# head_status URL [HEADER...]: the HTTP status of a tus HEAD on URL.
head_status() {
    local url=$1 hdr=() h
    shift
    for h in "$@"; do hdr+=(-H "$h"); done
    curl -sS -o /dev/null -w '%{http_code}' -I -H 'Tus-Resumable: 1.0.0' "${hdr[@]}" "$url"
}

# stored_size FILE: bytes on disk (0 when absent).
stored_size() { stat -c %s -- "$1" 2>/dev/null || echo 0; }
size_ge() { [ "$(stored_size "$1")" -ge "$2" ]; }

declare -a NAMES=() IDS=() SRCS=() DIRS=()
# submit NAME SOURCE CHUNK TARGET_JSON DIR: a job expected to end done, its
# upload stored in DIR.
submit() {
    local name=$1 src=$2 cs=$3 target=$4 dir=$5 id
    local args=("$SRC/$src" --target "$target" --id "$name")
    [ "$cs" = - ] || args+=(--chunk-size "$cs")
    if ! id=$("$CRU" submit "${args[@]}" 2>"$T_DIR/submit.err"); then
        fail "submit $name" "$(cat "$T_DIR/submit.err")"
        return
    fi
    NAMES+=("$name") IDS+=("$id") SRCS+=("$SRC/$src") DIRS+=("$dir")
}

# check_done ID SRC DIR [TIMEOUT]: done, byte-exact in DIR, counted once.
check_done() {
    local id=$1 src=$2 dir=$3 state size url stored bd sz cd ch
    state=$(wait_job "$id" "${4:-180}")
    if [ "$state" != "done" ]; then
        fail "$id: state done" "state '$state': $(jf "$id" error)"
        return 1
    fi
    pass "$id: state done"
    size=$(stat -c %s -- "$src")
    url=$(jf "$id" session)
    stored="$dir/${url##*/}"
    assert_file_same "$id: bytes at the target" "$src" "$stored"
    read -r bd sz cd ch < <(rcli --raw HMGET "cru:job:$id" bytes_done size chunks_done chunks | tr '\n' ' ')
    assert_eq "$id: bytes_done == size" "$size $size" "$bd $sz"
    assert_eq "$id: chunks_done == chunks" "$ch" "$cd"
    "$CRU" status "$id" --json >"$T_DIR/status.json"
    assert_eq "$id: result.size" "$size" "$(json_get "$T_DIR/status.json" result.size)"
    local shown
    shown=$(json_get "$T_DIR/status.json" result.upload_url)
    case "$shown" in
        http://127.0.0.1:*/…) pass "$id: result.upload_url redacted ($shown)" ;;
        *) fail "$id: result.upload_url redacted" "'$shown'" ;;
    esac
}

# ---------------------------------------------------------------- 1. uploads
echo "--- 1. uploads through the endpoint, upload_urls, relative Location" >&2
MD='"metadata":{"owner":"alice","empty":"","note":"a, b ü"}'
submit a-one one.bin - "{\"type\":\"tus\",\"endpoint\":\"$A_END\",$MD}" "$A_DIR"
submit a-ten ten.bin - "{\"type\":\"tus\",\"endpoint\":\"$A_END\"}" "$A_DIR"
submit a-big big.bin 5M "{\"type\":\"tus\",\"endpoint\":\"$A_END\",\"metadata\":{\"filename\":\"given.bin\"}}" "$A_DIR"
submit a-empty empty.bin - "{\"type\":\"tus\",\"endpoint\":\"$A_END\"}" "$A_DIR"
submit r-ten ten.bin 4M "{\"type\":\"tus\",\"endpoint\":\"$R_END\"}" "$R_DIR"
url=$(tus_create "$A_END" "Upload-Length: $((10 * MiB + 1))")
submit u-ten ten.bin 3M "{\"type\":\"tus\",\"upload_url\":\"$url\"}" "$A_DIR"
url=$(tus_create "$A_END" "Upload-Defer-Length: 1")
submit u-deferred small.bin 100000 "{\"type\":\"tus\",\"upload_url\":\"$url\"}" "$A_DIR"
url=$(tus_create "$A_END" "Upload-Length: 0")
submit u-empty empty.bin - "{\"type\":\"tus\",\"upload_url\":\"$url\"}" "$A_DIR"
# an upload the app already began (1000 bytes): chunk 0 meets a 409
url=$(tus_create "$A_END" "Upload-Length: 300000")
head -c 1000 "$SRC/small.bin" | curl -sS -o /dev/null -X PATCH -H 'Tus-Resumable: 1.0.0' \
    -H 'Upload-Offset: 0' -H 'Content-Type: application/offset+octet-stream' --data-binary @- "$url"
submit u-begun small.bin 100000 "{\"type\":\"tus\",\"upload_url\":\"$url\"}" "$A_DIR"
submit z-ten ten.bin - "{\"type\":\"tus\",\"endpoint\":\"$Z_END\",\"headers\":{\"Authorization\":\"Bearer $TOKEN\",\"X-Trace\":\"t1\"}}" "$Z_DIR"
"$CRU" submit "$SRC/one.bin" --id z-noauth --target "{\"type\":\"tus\",\"endpoint\":\"$Z_END\"}" >/dev/null
url=$(tus_create "$A_END" "Upload-Length: 5")
"$CRU" submit "$SRC/one.bin" --id u-wrong --target "{\"type\":\"tus\",\"upload_url\":\"$url\"}" >/dev/null

for i in "${!IDS[@]}"; do
    check_done "${IDS[i]}" "${SRCS[i]}" "${DIRS[i]}"
done
assert_eq "a-big: 10 chunks of 5 MiB" "10 5242880" "$(jf a-big chunks) $(jf a-big chunk_size)"
assert_eq "a-ten: 2 chunks of 8 MiB (the tus default)" "2 8388608" "$(jf a-ten chunks) $(jf a-ten chunk_size)"
r_url=$(jf r-ten session)
case "$r_url" in
    "${R_END}"?*) pass "relative Location resolved against the endpoint" ;;
    *) fail "relative Location resolved against the endpoint" "session '$r_url'" ;;
esac

assert_contains "409: the send went on from the server's offset" \
    "$(cat "$T_DIR"/worker-*.log)" "offset conflict at 0: the server holds 1000"

# Metadata: the file store's info file DIR/<id>.json.
info() { echo "$A_DIR/$(basename "$(jf "$1" session)").json"; }
assert_eq "metadata: filename defaults to the source's basename" one.bin "$(json_get "$(info a-one)" metadata.filename)"
assert_eq "metadata: owner" alice "$(json_get "$(info a-one)" metadata.owner)"
assert_eq "metadata: a value with a comma, a space and UTF-8" "a, b ü" "$(json_get "$(info a-one)" metadata.note)"
assert_eq "metadata: an empty value is a bare key" "" "$(json_get "$(info a-one)" metadata.empty)"
has_empty=$("$T_PY" -c 'import json,sys; print("empty" in json.load(open(sys.argv[1]))["metadata"])' "$(info a-one)")
assert_eq "metadata: the bare key arrives" True "$has_empty"
assert_eq "metadata: a given filename wins" given.bin "$(json_get "$(info a-big)" metadata.filename)"
assert_eq "deferred upload_url: length declared" 300000 "$(json_get "$A_DIR/$(basename "$(jf u-deferred session)").json" size)"

# Auth: without the header the server's 401 fails the job with its text.
state=$(wait_job z-noauth 60)
assert_eq "no Authorization: job failed" failed "$state"
err=$(jf z-noauth error)
assert_contains "no Authorization: error has the status" "$err" "HTTP 401"
assert_contains "no Authorization: error has the server's text" "$err" "Unauthorized"
state=$(wait_job u-wrong 60)
assert_eq "upload_url for another size: job failed" failed "$state"
assert_contains "upload_url for another size: says why" "$(jf u-wrong error)" "is for 5 bytes but the source has 1"

stop_workers
for i in 1 2; do assert_eq "worker $i exits 0 on SIGTERM" 0 "${WORKER_RC[i]}"; done

# ------------------------------------------------ 2. resume inside a chunk
echo "--- 2. resume from inside a chunk after SIGKILL" >&2
make_file "$SRC/res.bin" $((20 * MiB + 12345))
start_workers 1 --rate-limit 2M
W1=$T_WORKER_N
"$CRU" submit "$SRC/res.bin" --id res --chunk-size 8M --target "{\"type\":\"tus\",\"endpoint\":\"$A_END\"}" >/dev/null
# kill between 2 and 6 MiB into chunk 0
poll 15 has_session res || true
res_file="$A_DIR/$(basename "$(jf res session)")"
if poll 20 size_ge "$res_file" $((2 * MiB)); then
    kill_worker "$W1" KILL
    killed_at=$(stored_size "$res_file")
    echo "worker killed with $killed_at bytes stored" >&2
    if [ "$killed_at" -lt $((8 * MiB)) ]; then pass "killed mid-chunk ($killed_at bytes stored)"; else
        fail "killed mid-chunk" "$killed_at bytes stored"; fi
else
    fail "upload under way before the kill" "stored $(stored_size "$res_file") bytes"
fi
start_workers 1 --lease-ms 1500
W2=$T_WORKER_N
check_done res "$SRC/res.bin" "$A_DIR" 120
kept=$(grep -o 'resuming: the target holds bytes up to [0-9]*' "$T_DIR/worker-$W2.log" | head -1 | grep -o '[0-9]*$')
if [ -n "$kept" ] && [ "$kept" -gt 0 ] && [ $((kept % (8 * MiB))) -ne 0 ]; then
    pass "resumed from inside the chunk (byte $kept)"
else
    fail "resumed from inside the chunk" "kept='$kept'"
fi
assert_eq "res: counted once" "$(jf res size)" "$(jf res bytes_done)"
stop_workers

# ---------------------------------------------------------------- 3. cancel
echo "--- 3. cru cancel terminates the upload" >&2
start_workers 1 --rate-limit 2M
"$CRU" submit "$SRC/res.bin" --id can --chunk-size 8M --target "{\"type\":\"tus\",\"endpoint\":\"$Z_END\",\"headers\":{\"Authorization\":\"Bearer $TOKEN\"}}" >/dev/null
poll 15 has_session can || true
can_url=$(jf can session)
can_file="$Z_DIR/$(basename "$can_url")"
if poll 20 size_ge "$can_file" $((MiB)); then pass "cancel: upload under way"; else
    fail "cancel: upload under way" "stored $(stored_size "$can_file") bytes"; fi
"$CRU" cancel can >"$T_DIR/cancel.out" 2>&1
assert_eq "cancel: state cancelled" cancelled "$(wait_job can 30)"
assert_eq "cancel: error stays 'cancelled'" cancelled "$(jf can error)"
z_gone() { case "$(head_status "$can_url" "Authorization: Bearer $TOKEN")" in 404 | 410) return 0 ;; esac; return 1; }
if poll 15 z_gone; then pass "cancel: upload terminated (HEAD answers $(head_status "$can_url" "Authorization: Bearer $TOKEN"))"; else
    fail "cancel: upload terminated" "HEAD answers $(head_status "$can_url" "Authorization: Bearer $TOKEN")"; fi
if [ ! -e "$can_file" ]; then pass "cancel: nothing left in the store"; else
    fail "cancel: nothing left in the store" "$(stored_size "$can_file") bytes in $can_file"; fi
stop_workers

# ---------------------------------------------------------------- secrets
if grep -rF -- "$TOKEN" "$T_DIR"/worker-*.log >/dev/null; then
    fail "the bearer token never reaches a worker log" "found in $(grep -lF -- "$TOKEN" "$T_DIR"/worker-*.log)"
else
    pass "the bearer token never reaches a worker log"
fi
if rcli --raw HMGET cru:job:z-noauth error result | grep -qF -- "$TOKEN"; then
    fail "the bearer token never reaches a job's error"
else
    pass "the bearer token never reaches a job's error"
fi
