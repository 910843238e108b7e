#!/usr/bin/env bash
# Google resumable uploads (Drive v3 "gdrive", Cloud Storage "gcs") against
# the strict fake tests/fakes/google_fake.py:
#   1. files of 0 B, 1 B, 256 KiB, 10 MiB + 1 and 50 MiB (5 MiB chunks) for
#      both targets, in both modes (a session_url the test initiates with
#      curl; token + fields, the worker initiates): done, byte-exact,
#      bytes_done == size, result fields (size, md5, crc32c), no token on
#      session PUTs;
#   2. the 256 KiB rule at submit; 403 rateLimitExceeded is retried, a 400
#      fails with Google's message; an expired session fails clearly;
#   3. faults: 20 jobs of 3-30 MiB while the fake hits 10% of chunk PUTs
#      with 503/429/partial 500/dropped connections;
#   4. chaos: 3 workers, one SIGKILLed every 1-2 s, 16 jobs of 5-24 MiB.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

: "${GOOGLE_TOKEN:=google-test-token}"

# start_google_fake: the fake on a free port; exports GOOGLE_PORT,
# GOOGLE_URL (http://127.0.0.1:PORT), GOOGLE_STORE (its files/ directory).
start_google_fake() {
    local pid deadline line out=$T_DIR/google.out
    mkdir -p "$T_DIR/google"
    : >"$out"
    "$T_PY" -u "$ROOT/tests/fakes/google_fake.py" --port 0 --store "$T_DIR/google" \
        --token "$GOOGLE_TOKEN" </dev/null >"$out" 2>"$T_DIR/google.log" &
    pid=$!
    T_PIDS+=("$pid")
    deadline=$(($(_t_now_ms) + 10000))
    while [ "$(_t_now_ms)" -lt "$deadline" ]; do
        line=$(grep -m1 -E '^PORT [0-9]+' "$out" 2>/dev/null) || line=
        if [ -n "$line" ]; then
            GOOGLE_PORT=${line#PORT }
            GOOGLE_URL="http://127.0.0.1:$GOOGLE_PORT"
            GOOGLE_STORE="$T_DIR/google/files"
            export GOOGLE_PORT GOOGLE_URL GOOGLE_STORE
            return 0
        fi
        _t_alive "$pid" || break
        sleep 0.05
    done
    echo "google.sh: google_fake.py did not start" >&2
    tail -n 30 "$T_DIR/google.log" >&2 2>/dev/null || true
    return 1
}

# google_session KIND NAME SIZE: initiate a session with curl (as an app
# would) and print its URI.
google_session() {
    local kind=$1 name=$2 size=$3 enc hdrs
    if [ "$kind" = gdrive ]; then
        hdrs=$(curl -sS -D - -o /dev/null -X POST -H "Authorization: Bearer $GOOGLE_TOKEN" \
            -H 'Content-Type: application/json; charset=UTF-8' \
            -H "X-Upload-Content-Length: $size" \
            -d "{\"name\":\"$name\"}" \
            "$GOOGLE_URL/upload/drive/v3/files?uploadType=resumable") || return 1
    else
        enc=$("$T_PY" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$name")
        hdrs=$(curl -sS -D - -o /dev/null -X POST -H "Authorization: Bearer $GOOGLE_TOKEN" \
            -H "X-Upload-Content-Length: $size" -d '' \
            "$GOOGLE_URL/upload/storage/v1/b/bkt/o?uploadType=resumable&name=$enc") || return 1
    fi
    printf '%s' "$hdrs" | tr -d '\r' | awk 'tolower($1) == "location:" {print $2}'
}

# google_target KIND MODE NAME SIZE: the target JSON for a job.
google_target() {
    local kind=$1 mode=$2 name=$3 size=$4 url
    if [ "$mode" = url ]; then
        url=$(google_session "$kind" "$name" "$size") || return 1
        [ -n "$url" ] || return 1
        echo "{\"type\":\"$kind\",\"session_url\":\"$url\"}"
    elif [ "$kind" = gdrive ]; then
        echo "{\"type\":\"gdrive\",\"api\":\"$GOOGLE_URL/upload/drive/v3\",\"token\":\"$GOOGLE_TOKEN\",\"name\":\"$name\",\"parents\":[\"folder1\"],\"mime_type\":\"application/x-test\"}"
    else
        echo "{\"type\":\"gcs\",\"api\":\"$GOOGLE_URL/upload/storage/v1\",\"token\":\"$GOOGLE_TOKEN\",\"bucket\":\"bkt\",\"name\":\"$name\"}"
    fi
}

# stored KIND NAME: where the fake keeps the finished file.
stored() {
    if [ "$1" = gdrive ]; then echo "$GOOGLE_STORE/drive/$2"; else echo "$GOOGLE_STORE/gcs/bkt/$2"; fi
}

stat_of() { curl -s "$GOOGLE_URL/_stats" | "$T_PY" -c 'import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."): v = v[k]
print(json.dumps(v) if isinstance(v, dict) else v)' "$1"; }

crc32c_b64() {
    "$T_PY" -c 'import sys; sys.path.insert(0, sys.argv[1]); import google_fake
print(google_fake.crc32c_file_b64(sys.argv[2]))' "$ROOT/tests/fakes" "$1"
}

# phase SECONDS: the jobs checked from now on must all end within SECONDS
# (one budget for the phase, so lost workers cannot cost 120 s per job).
phase() { PHASE_END=$(($(_t_now_ms) + $1 * 1000)); }
phase_left() {
    local left=$(((PHASE_END - $(_t_now_ms)) / 1000))
    [ "$left" -ge 1 ] && echo "$left" || echo 1
}

# check_done NAME ID SRC STORED KIND: state, bytes, counters, result fields.
check_done() {
    local name=$1 id=$2 src=$3 dst=$4 kind=$5 state size bd sz cd ch md5 b64
    state=$(wait_job "$id" "$(phase_left)")
    if [ "$state" != done ]; then
        fail "$name: done" "state '$state': $(rcli --raw HGET "cru:job:$id" error)"
        return 1
    fi
    size=$(stat -c %s "$src")
    read -r bd sz cd ch < <(rcli --raw HMGET "cru:job:$id" bytes_done size chunks_done chunks | tr '\n' ' ')
    if [ ! -f "$dst" ] || [ "$(sha "$src")" != "$(sha "$dst")" ]; then
        fail "$name: byte-exact" "$dst differs from $src"
        return 1
    fi
    if [ "$bd $sz $cd" != "$size $size $ch" ]; then
        fail "$name: counted once" "bytes_done $bd size $sz (file $size) chunks $cd/$ch"
        return 1
    fi
    "$CRU" status "$id" --json >"$T_DIR/status.json"
    md5=$(md5sum <"$src" | cut -c1-32)
    local want got
    if [ "$kind" = gdrive ]; then
        want="$size $md5 $(basename "$dst")"
        got="$(json_get "$T_DIR/status.json" result.size) $(json_get "$T_DIR/status.json" result.md5Checksum) $(json_get "$T_DIR/status.json" result.name)"
        [ -n "$(json_get "$T_DIR/status.json" result.id)" ] || got="$got (no id)"
    else
        b64=$("$T_PY" -c 'import base64, sys; print(base64.b64encode(bytes.fromhex(sys.argv[1])).decode())' "$md5")
        want="$size $b64 $(crc32c_b64 "$src") bkt"
        got="$(json_get "$T_DIR/status.json" result.size) $(json_get "$T_DIR/status.json" result.md5Hash) $(json_get "$T_DIR/status.json" result.crc32c) $(json_get "$T_DIR/status.json" result.bucket)"
    fi
    if [ "$want" != "$got" ]; then
        fail "$name: result" "expected '$want', got '$got' ($(json_get "$T_DIR/status.json" result))"
        return 1
    fi
    return 0
}

T0=$(_t_now_ms)
start_redis
start_google_fake
"$T_PY" "$ROOT/tests/fakes/google_fake.py" --selftest >"$T_DIR/selftest.out" 2>&1
check "google_fake CRC32C selftest" grep -q "selftest PASSED" "$T_DIR/selftest.out"
export CRU_RETRY_BASE_MS=100 CRU_RETRY_CAP_MS=1000 CRU_MAX_ATTEMPTS=20 CRU_LEASE_MS=3000 \
    CRU_MAX_DELIVERIES=20
start_workers 2 --concurrency 3
SRC=$CRU_SOURCE_ROOT

# ------------------------------------------------------------ 1. end to end
: >"$SRC/empty.bin"
make_file "$SRC/one.bin" 1
make_file "$SRC/quantum.bin" 262144
make_file "$SRC/ten.bin" $((10 * 1024 * 1024 + 1))
make_file "$SRC/big.bin" $((50 * 1024 * 1024))

declare -a NAMES=() IDS=() SRCS=() DSTS=() KINDS=()
for kind in gdrive gcs; do
    for mode in url tok; do
        for f in empty one quantum ten big; do
            name="$mode-$f.bin"
            [ "$kind" = gcs ] && [ "$mode" = tok ] && name="dir/$mode $f.bin" # "/" and " " in object names
            size=$(stat -c %s "$SRC/$f.bin")
            if ! target=$(google_target "$kind" "$mode" "$name" "$size"); then
                fail "$kind-$mode-$f: initiate with curl" "no session URI"
                continue
            fi
            args=("$SRC/$f.bin" --target "$target" --id "$kind-$mode-$f")
            [ "$f" = big ] && args+=(--chunk-size 5M)
            [ "$f" = ten ] && [ "$mode" = tok ] && args+=(--chunk-size 1280K)
            if ! id=$("$CRU" submit "${args[@]}" 2>"$T_DIR/submit.err"); then
                fail "submit $kind-$mode-$f" "$(cat "$T_DIR/submit.err")"
                continue
            fi
            NAMES+=("$kind-$mode-$f") IDS+=("$id") SRCS+=("$SRC/$f.bin")
            DSTS+=("$(stored "$kind" "$name")") KINDS+=("$kind")
        done
    done
done
phase 60
ok=0
for i in "${!IDS[@]}"; do
    check_done "${NAMES[i]}" "${IDS[i]}" "${SRCS[i]}" "${DSTS[i]}" "${KINDS[i]}" && ok=$((ok + 1))
done
assert_eq "20 uploads (2 targets x 2 modes x 5 sizes) done, byte-exact, counted once, result right" \
    20 "$ok"
assert_eq "50 MiB in 5 MiB chunks: 10 chunks" 10 "$(rcli --raw HGET cru:job:gcs-tok-big chunks)"
assert_eq "no Authorization header on session PUTs" 0 "$(stat_of session_auth_seen)"
assert_eq "mime_type and parents reach Drive" "application/x-test" \
    "$("$CRU" status gdrive-tok-one --json | "$T_PY" -c 'import json,sys; print(json.load(sys.stdin)["result"]["mimeType"])')"
echo "google.sh: end to end done after $(( ($(_t_now_ms) - T0) / 1000 )) s" >&2

# ------------------------------------------------------------ 2. rules and errors
if out=$("$CRU" submit "$SRC/one.bin" --target "$(google_target gcs tok x.bin 1)" \
    --chunk-size 300000 2>&1); then
    fail "chunk_size 300000 refused at submit" "accepted: $out"
else
    assert_contains "chunk_size 300000 refused at submit" "$out" "262144"
fi
out=$(rcli FCALL cru_submit 0 "{\"source\":\"$SRC/one.bin\",\"target\":$(google_target gdrive tok y.bin 1),\"chunk_size\":300000}" 2>&1)
assert_contains "FCALL cru_submit refuses chunk_size 300000 for gdrive" "$out" "256 KiB"

# 403 rateLimitExceeded: back off and retry
curl -s -X POST "$GOOGLE_URL/_fail?count=2&status=403" >/dev/null
id=$("$CRU" submit "$SRC/ten.bin" --target "$(google_target gdrive tok rl.bin 0)" --id rl)
phase 30
check_done "403 rateLimitExceeded retried" "$id" "$SRC/ten.bin" "$(stored gdrive rl.bin)" gdrive &&
    pass "403 rateLimitExceeded retried, then done"
retries=$(rcli --raw HGET cru:job:rl retries)
if [ "${retries:-0}" -ge 2 ]; then pass "rate limit counted as retries ($retries)"; else
    fail "rate limit counted as retries" "retries '$retries'"; fi

# a plain 400 is final, with Google's message
curl -s -X POST "$GOOGLE_URL/_fail?count=1&status=400" >/dev/null
id=$("$CRU" submit "$SRC/ten.bin" --target "$(google_target gcs tok bad.bin 0)" --id bad400)
assert_eq "400 fails the job" failed "$(wait_job "$id" 30)"
assert_contains "400: Google's reason and message in the error" \
    "$(rcli --raw HGET cru:job:bad400 error)" "HTTP 400: badRequest: injected fault"

# an expired session
url=$(google_session gcs expired.bin 262144)
curl -s -X POST "$GOOGLE_URL/_expire" >/dev/null
id=$("$CRU" submit "$SRC/quantum.bin" --target "{\"type\":\"gcs\",\"session_url\":\"$url\"}" --id expired)
assert_eq "expired session: failed" failed "$(wait_job "$id" 30)"
err=$(rcli --raw HGET cru:job:expired error)
assert_contains "expired session: clear message" "$err" "session is gone (expired after about a week, or cancelled): submit again"
case "$err" in *"$url"* | *session/*) fail "no session URI in the error" "$err" ;; *) pass "no session URI in the error" ;; esac

# cancel a gcs job: the worker DELETEs the session (Cloud Storage answers 499)
make_file "$SRC/slow.bin" $((40 * 1024 * 1024))
curl -s -X POST "$GOOGLE_URL/_fail?count=1000&status=503&retry_after=1" >/dev/null
id=$("$CRU" submit "$SRC/slow.bin" --target "$(google_target gcs tok cancel.bin 0)" --id cancelme)
for _ in $(seq 1 50); do
    [ "$(rcli --raw HGET cru:job:cancelme chunks)" != "" ] && break
    sleep 0.1
done
deleted0=$(stat_of sessions_deleted)
"$CRU" cancel "$id" >/dev/null 2>&1
curl -s -X POST "$GOOGLE_URL/_fail?count=0&status=503" >/dev/null
for _ in $(seq 1 50); do
    [ "$(stat_of sessions_deleted)" -gt "$deleted0" ] && break
    sleep 0.1
done
assert_eq "cancel: job cancelled" cancelled "$(rcli --raw HGET cru:job:cancelme state)"
assert_eq "cancel: the gcs session was DELETEd (499)" $((deleted0 + 1)) "$(stat_of sessions_deleted)"
echo "google.sh: rules and errors done after $(( ($(_t_now_ms) - T0) / 1000 )) s" >&2

# ------------------------------------------------------------ 3. faults
curl -s -X POST "$GOOGLE_URL/_chaos?rate=0.1&retry_after=1&seed=7" >/dev/null
chaos0=$(stat_of chaos_total)
declare -a FIDS=() FSRC=() FDST=() FKIND=()
for i in $(seq 1 20); do
    size=$(( (3 + (i * 7919) % 28) * 1024 * 1024 + i * 4099 ))
    make_file "$SRC/f$i.bin" "$size"
    kind=gdrive
    [ $((i % 2)) = 0 ] && kind=gcs
    mode=tok
    [ $((i % 4)) -ge 2 ] && mode=url
    target=$(google_target "$kind" "$mode" "f$i.bin" "$size")
    FIDS+=("$("$CRU" submit "$SRC/f$i.bin" --target "$target" --chunk-size 2M --id "f$i")")
    FSRC+=("$SRC/f$i.bin") FDST+=("$(stored "$kind" "f$i.bin")") FKIND+=("$kind")
done
phase 90
ok=0
for i in "${!FIDS[@]}"; do
    check_done "${FIDS[i]}" "${FIDS[i]}" "${FSRC[i]}" "${FDST[i]}" "${FKIND[i]}" && ok=$((ok + 1))
done
assert_eq "faults: 20 jobs done, byte-exact, counted once" 20 "$ok"
faults=$(($(stat_of chaos_total) - chaos0))
retries=0
for id in "${FIDS[@]}"; do retries=$((retries + $(rcli --raw HGET "cru:job:$id" retries))); done
echo "google.sh: faults: $faults injected ($(stat_of chaos)), $retries retries recorded, $(stat_of overlap_bytes_skipped) overlapping bytes skipped" >&2
if [ "$faults" -ge 10 ]; then pass "faults injected ($faults)"; else fail "faults injected" "$faults"; fi
if [ "$retries" -ge 1 ]; then pass "retries recorded ($retries)"; else fail "retries recorded" "$retries"; fi
curl -s -X POST "$GOOGLE_URL/_chaos?rate=0" >/dev/null
assert_eq "faults: nothing pending" 0 "$(rcli XPENDING cru:chunks workers | head -1)"
assert_eq "faults: nothing delayed" 0 "$(rcli ZCARD cru:delayed)"
echo "google.sh: faults done after $(( ($(_t_now_ms) - T0) / 1000 )) s" >&2

# ------------------------------------------------------------ 4. chaos
stop_workers
export CRU_LEASE_MS=1500
start_workers 3 --concurrency 2 --rate-limit 4M
declare -a CIDS=() CSRC=() CDST=() CKIND=()
for i in $(seq 1 16); do
    size=$(( (5 + (i * 104729) % 20) * 1024 * 1024 + i * 977 ))
    make_file "$SRC/c$i.bin" "$size"
    kind=gdrive
    [ $((i % 2)) = 0 ] && kind=gcs
    mode=tok
    [ $((i % 4)) -ge 2 ] && mode=url
    target=$(google_target "$kind" "$mode" "c$i.bin" "$size")
    CIDS+=("$("$CRU" submit "$SRC/c$i.bin" --target "$target" --chunk-size 5M --id "c$i")")
    CSRC+=("$SRC/c$i.bin") CDST+=("$(stored "$kind" "c$i.bin")") CKIND+=("$kind")
done
kill_until_ended 90 "--concurrency 2 --rate-limit 4M" "${CIDS[@]}"
kills=$KILLS
phase 30
ok=0
for i in "${!CIDS[@]}"; do
    check_done "${CIDS[i]}" "${CIDS[i]}" "${CSRC[i]}" "${CDST[i]}" "${CKIND[i]}" && ok=$((ok + 1))
done
assert_eq "chaos: 16 jobs done, byte-exact, counted once" 16 "$ok"
takeovers=$(cat "$T_DIR"/worker-*.log | grep -c "took over message" || true)
resumed=$(cat "$T_DIR"/worker-*.log | grep -c "resuming: the target holds" || true)
echo "google.sh: chaos: $kills workers killed, $takeovers messages taken over, $resumed resumes from a status query" >&2
if [ "$kills" -ge 5 ]; then pass "chaos: workers killed ($kills)"; else fail "chaos: workers killed" "$kills"; fi
if [ "$takeovers" -ge 1 ]; then pass "chaos: messages taken over ($takeovers)"; else fail "chaos: messages taken over" 0; fi
assert_eq "chaos: nothing pending" 0 "$(rcli XPENDING cru:chunks workers | head -1)"
assert_eq "chaos: nothing delayed" 0 "$(rcli ZCARD cru:delayed)"
assert_eq "nothing dead" 0 "$(rcli ZCARD cru:dead)"
assert_eq "still no Authorization header on session PUTs" 0 "$(stat_of session_auth_seen)"

stop_workers
for i in "${!WORKER_RC[@]}"; do
    [ "${WORKER_RC[i]}" = 137 ] && continue # killed by the chaos loop
    [ "${WORKER_RC[i]}" = 0 ] || fail "worker $i exits 0 on SIGTERM" "status ${WORKER_RC[i]}"
done
echo "google.sh: all done after $(( ($(_t_now_ms) - T0) / 1000 )) s" >&2
if [ "$T_FAILS" -gt 0 ]; then
    echo "----- last 40 lines of google.log -----" >&2
    tail -n 40 "$T_DIR/google.log" >&2
fi
