#!/usr/bin/env bash
# Operations and failure handling, end to end against the strict Graph fake:
# a source modified mid-upload, cru cancel / cru retry, resume from inside a
# chunk, Retry-After, graceful shutdown (long and short grace), malformed
# stream entries dead-lettered, the delivery limit, and cru stats agreeing
# with what happened.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

start_redis
start_graph_fake
export CRU_RETRY_BASE_MS=100
SRC=$T_DIR/src
export CRU_SOURCE_ROOT=$SRC
mkdir -p "$SRC"
FAKE="http://127.0.0.1:$GRAPH_PORT"

# ---------------------------------------------------------------- helpers

fake_get() { curl -sS "$FAKE$1"; }
fake_post() { curl -sS -X POST "$FAKE$1" >/dev/null; }

# reset_faults: no pending /_fail fault of any kind, no chaos.
reset_faults() {
    local k
    for k in put create simple status; do fake_post "/_fail?count=0&status=500&kind=$k"; done
    fake_post "/_chaos?rate=0"
}

# fake_stat NAME: a top-level number of GET /_stats.
fake_stat() {
    fake_get /_stats | "$T_PY" -c 'import json, sys
print(json.load(sys.stdin).get(sys.argv[1], 0))' "$1"
}

# session_next PATH: "next" of the open upload session stored at PATH
# (drive_key/path), or "none" when there is no such session.
session_next() {
    fake_get /_sessions | "$T_PY" -c 'import json, sys
for s in json.load(sys.stdin):
    if s["drive_key"] + "/" + s["path"] == sys.argv[1]:
        print(s["next"]); break
else:
    print("none")' "$1"
}

# poll TIMEOUT_S CMD...: run CMD every 0.05 s until it succeeds; 1 on timeout.
poll() {
    local deadline=$(($(_t_now_ms) + $1 * 1000))
    shift
    until "$@"; do
        [ "$(_t_now_ms)" -lt "$deadline" ] || return 1
        sleep 0.05
    done
}

jf() { rcli --raw HGET "cru:job:$1" "$2"; }
# field_ge ID FIELD N: the job's FIELD is a number >= N.
field_ge() { local v; v=$(jf "$1" "$2"); [ -n "$v" ] && [ "$v" -ge "$3" ]; }
# next_between PATH LO HI: the fake's session at PATH has LO <= next < HI.
next_between() { local n; n=$(session_next "$1"); [ "$n" != none ] && [ "$n" -ge "$2" ] && [ "$n" -lt "$3" ]; }
no_session() { [ "$(session_next "$1")" = none ]; }
pending() { rcli XPENDING cru:chunks workers | head -1; }
# drained: nothing in the stream, nothing pending, nothing delayed.
drained() {
    [ "$(rcli XLEN cru:chunks)" = 0 ] && [ "$(pending)" = 0 ] && [ "$(rcli ZCARD cru:delayed)" = 0 ]
}
alive() { kill -0 "$1" 2>/dev/null; }

# url_target DRIVE PATH: a target JSON with an upload session made on the fake.
url_target() {
    local url
    url=$(graph_create_session "$1" "$2") || return 1
    printf '{"type":"graph","upload_url":"%s"}' "$url"
}
path_target() {
    printf '{"type":"graph","api":"%s","drive_id":"%s","path":"%s","token":"%s"}' \
        "$GRAPH_API" "$1" "$2" "$GRAPH_TOKEN"
}

# submit ID SOURCE TARGET [CHUNK]: cru submit; prints the job id.
submit() {
    local args=("$2" --target "$3" --id "$1")
    [ -z "${4:-}" ] || args+=(--chunk-size "$4")
    "$CRU" submit "${args[@]}" 2>"$T_DIR/submit.err" || {
        echo "submit $1 failed: $(cat "$T_DIR/submit.err")" >&2
        return 1
    }
}

# expect_done NAME ID SOURCE STORED [TIMEOUT]: done, byte-exact, counters full.
expect_done() {
    local name=$1 id=$2 src=$3 stored=$4 state bd sz cd ch
    state=$(wait_job "$id" "${5:-20}")
    assert_eq "$name: job done" done "$state" || return 1
    assert_file_same "$name: bytes at the target" "$src" "$GRAPH_STORE/$stored"
    read -r bd sz cd ch < <(rcli --raw HMGET "cru:job:$id" bytes_done size chunks_done chunks | tr '\n' ' ')
    assert_eq "$name: bytes_done == size == file size" "$(stat -c %s "$src") $sz" "$bd $bd"
    assert_eq "$name: chunks_done == chunks" "$ch" "$cd"
}

# expect_failed NAME ID ERROR-PART [TIMEOUT]
expect_failed() {
    local state
    state=$(wait_job "$2" "${4:-20}")
    assert_eq "$1: job failed" failed "$state" &&
        assert_contains "$1: error" "$(jf "$2" error)" "$3"
}

# run_cli OUTVAR RCVAR ARGS...: run $CRU with stdout+stderr captured.
run_cli() {
    local __o __r=0
    __o=$("$CRU" "${@:3}" 2>&1) || __r=$?
    printf -v "$1" '%s' "$__o"
    printf -v "$2" '%s' "$__r"
}

# Worker W1: plain, for scenarios 1, 4, 5 and 8.
start_workers 1 --concurrency 4
W1=$T_WORKER_N

# ------------------------------------------- 1. source modified mid-upload
echo "--- 1. source changed during upload" >&2
reset_faults
make_file "$SRC/s1a.bin" 700000
make_file "$SRC/s1b.bin" 700000
fake_post "/_fail?count=2&status=503&retry_after=2"
submit s1-append "$SRC/s1a.bin" "$(url_target d s1/a.bin)" 320K >/dev/null
submit s1-touch "$SRC/s1b.bin" "$(url_target d s1/b.bin)" 320K >/dev/null
if poll 10 field_ge s1-append retries 1 && poll 10 field_ge s1-touch retries 1; then
    pass "1: first PUTs answered 503, jobs wait in cru:delayed"
else
    fail "1: first PUTs answered 503, jobs wait in cru:delayed" \
        "retries: $(jf s1-append retries) $(jf s1-touch retries)"
fi
head -c 1000 /dev/urandom >>"$SRC/s1a.bin"          # size changes
touch -d '2001-02-03 04:05:06' "$SRC/s1b.bin"       # only the mtime changes
expect_failed "1: appended source" s1-append "source changed during upload"
expect_failed "1: touched source" s1-touch "source changed during upload"
reset_faults

# ------------------------------------------- 4. resume inside a chunk
echo "--- 4. resume inside a chunk" >&2
make_file "$SRC/s4.bin" $((1024 * 1024 + 12345))
fake_post "/_fail?count=1&status=500&keep=100000"
submit s4 "$SRC/s4.bin" "$(url_target d s4.bin)" 320K >/dev/null
expect_done "4: fragment partly kept then 500" s4 "$SRC/s4.bin" drive-d/s4.bin
r=$(jf s4 retries)
if [ -n "$r" ] && [ "$r" -ge 1 ]; then pass "4: retries >= 1 ($r)"; else fail "4: retries >= 1" "retries='$r'"; fi
assert_contains "4: worker resumed from the byte the fake kept" \
    "$(grep s4 "$T_DIR/worker-$W1.log")" "resuming: the target holds bytes up to 100000"
# The resumed PUTs overshoot each chunk's end (fragments stay multiples of
# 320 KiB), so the last PUT may complete the file while handling the chunk
# before the last: the last chunk then gets no event of its own. The final
# event must still show everything done.
echo "4: $(chunk_events s4) chunk events for $(jf s4 chunks) chunks" >&2
last=$(rcli --json XRANGE cru:events - + | "$T_PY" -c '
import json, sys
last = None
for _id, f in json.load(sys.stdin):
    d = dict(zip(f[::2], f[1::2]))
    if d.get("job") == sys.argv[1]:
        last = d
print(last["state"], last["chunks_done"], last["chunks"], last["bytes_done"], last["size"])' s4)
read -r c4 s4size <<<"$(rcli --raw HMGET cru:job:s4 chunks size | tr '
' ' ')"
assert_eq "4: last event: done, every chunk and byte" "done $c4 $c4 $s4size $s4size" "$last"
reset_faults

# ------------------------------------------- 5. 503 with Retry-After
echo "--- 5. Retry-After honoured" >&2
make_file "$SRC/s5.bin" 100000
fake_post "/_fail?count=1&status=503&retry_after=2"
t0=$(_t_now_ms)
submit s5 "$SRC/s5.bin" "$(url_target d s5.bin)" >/dev/null
expect_done "5: 503 + Retry-After: 2" s5 "$SRC/s5.bin" drive-d/s5.bin
t1=$(_t_now_ms)
gap=$(rcli --json XRANGE cru:events - + | "$T_PY" -c '
import json, sys
t_retry = None
for eid, f in json.load(sys.stdin):
    d = dict(zip(f[::2], f[1::2]))
    if d.get("job") != sys.argv[1]:
        continue
    ms = int(eid.split("-")[0])
    if "retry" in d and t_retry is None:
        t_retry = ms
    elif "chunk" in d and t_retry is not None:
        print(ms - t_retry); break
else:
    print(-1)' s5)
echo "5: retry event -> chunk event: ${gap} ms; whole job $((t1 - t0)) ms" >&2
if [ "$gap" -ge 1800 ]; then pass "5: retried after >= 1.8 s (${gap} ms)"; else
    fail "5: retried after >= 1.8 s" "gap between retry event and chunk event: ${gap} ms"; fi
assert_eq "5: retries == 1" 1 "$(jf s5 retries)"
assert_contains "5: last_error names the 503" "$(jf s5 last_error)" "HTTP 503"
reset_faults

# ------------------------------------------- 8. malformed stream entries
echo "--- 8. 30 malformed stream entries" >&2
make_file "$SRC/s8x.bin" 200000
# a real, planned, running job (its only chunk waits in cru:delayed) for the
# out-of-range message
fake_post "/_fail?count=1&status=503&retry_after=2"
submit s8-live "$SRC/s8x.bin" "$(url_target d s8x.bin)" >/dev/null
poll 10 field_ge s8-live retries 1 || echo "s8-live did not reach the retry" >&2
# job hashes a worker cannot use (already ended, so no state counter moves)
rcli HSET cru:job:s8-badspec state done chunk_size 327680 spec '{bad json' >/dev/null
rcli HSET cru:job:s8-ftp state done chunk_size 327680 \
    spec '{"source":"/x","target":{"type":"ftp"}}' >/dev/null
rcli HSET cru:job:s8-nocs state done spec '{"source":"/x","target":{"type":"graph"}}' >/dev/null
dead0=$(rcli ZCARD cru:dead)
long_id=$(printf 'x%.0s' {1..129})
: >"$T_DIR/s8.expect"
# bad EXPECTED-REASON FIELD VALUE...: XADD, remember the id and the reason.
bad() {
    local want=$1 id
    shift
    id=$(rcli XADD cru:chunks '*' "$@") || id=
    printf '%s\t%s\n' "$id" "$want" >>"$T_DIR/s8.expect"
}
NOJOB="no valid job id"
ONE='needs exactly one of "chunk" and "op"'
NOIDX="chunk is not an index"
GARB="attempt, from or resume is garbage"
bad "$NOJOB" foo bar
bad "$NOJOB" chunk 0
bad "$NOJOB" job '' chunk 0
bad "$NOJOB" job '../../etc/passwd' chunk 0
bad "$NOJOB" job 'a b' chunk 0
bad "$NOJOB" job 'x/y' op plan
bad "$NOJOB" job "$long_id" chunk 0
bad "$NOJOB" job 'semi;colon' op plan
bad "$NOJOB" job 'ünï' chunk 0
bad "$ONE" job ghost-a
bad "$ONE" job ghost-a chunk 0 op plan
bad "unknown op" job ghost-a op bogus
bad "unknown op" job ghost-a op ''
bad "unknown op" job ghost-a op PLAN
bad "$NOIDX" job ghost-a chunk abc
bad "$NOIDX" job ghost-a chunk -1
bad "$NOIDX" job ghost-a chunk ''
bad "$NOIDX" job ghost-a chunk 1.5
bad "$NOIDX" job ghost-a chunk 123456789012345678
bad "$GARB" job ghost-a chunk 0 attempt xyz
bad "$GARB" job ghost-a chunk 0 attempt -3
bad "$GARB" job ghost-a chunk 0 resume 2
bad "$GARB" job ghost-a chunk 0 resume yes
bad "$GARB" job ghost-a chunk 0 from abc
bad "the job it names does not exist" job no-such-job-1 chunk 0
bad "the job it names does not exist" job no-such-job-2 op abort
bad "chunk 7 out of range (the job has 1 chunks)" job s8-live chunk 7
bad "spec is not a JSON object" job s8-badspec op plan
bad 'unknown type "ftp"' job s8-ftp op plan
bad "chunk_size missing" job s8-nocs chunk 0
assert_eq "8: 30 entries added" 30 "$(wc -l <"$T_DIR/s8.expect")"
poll 15 drained
assert_eq "8: stream drained (XLEN)" 0 "$(rcli XLEN cru:chunks)"
assert_eq "8: nothing pending (XPENDING)" 0 "$(pending)"
assert_eq "8: cru:dead grew by 30" 30 $(($(rcli ZCARD cru:dead) - dead0))
rcli --json ZRANGE cru:dead 0 -1 >"$T_DIR/dead.json"
why=$("$T_PY" - "$T_DIR/dead.json" "$T_DIR/s8.expect" <<'PY'
import json, sys
dead = {}
bad = []
for m in json.load(open(sys.argv[1])):
    d = json.loads(m)
    if not isinstance(d.get("reason"), str) or not d["reason"]:
        bad.append("empty reason: " + m)
    dead[d.get("msg")] = d.get("reason") or ""
for line in open(sys.argv[2]):
    mid, want = line.rstrip("\n").split("\t", 1)
    if mid not in dead:
        bad.append(f"{mid}: not in cru:dead")
    elif want not in dead[mid]:
        bad.append(f"{mid}: reason {dead[mid]!r} lacks {want!r}")
print("; ".join(bad))
PY
)
if [ -z "$why" ]; then pass "8: every dead letter has its reason"; else fail "8: every dead letter has its reason" "$why"; fi
assert_eq "8: out-of-range message failed its job" failed "$(jf s8-live state)"
assert_contains "8: ... with the reason" "$(jf s8-live error)" "chunk 7 out of range"
if alive "$(worker_pid "$W1")"; then pass "8: worker still running"; else fail "8: worker still running"; fi
make_file "$SRC/s8ok.bin" 800000
submit s8-ok "$SRC/s8ok.bin" "$(url_target d s8ok.bin)" 320K >/dev/null
expect_done "8: a good job afterwards" s8-ok "$SRC/s8ok.bin" drive-d/s8ok.bin
reset_faults
stop_workers 10
assert_eq "W1 exits 0 on SIGTERM" 0 "${WORKER_RC[W1]}"

# ------------------------------------------- 2. cru cancel
echo "--- 2. cru cancel" >&2
start_workers 1 --concurrency 2 --rate-limit 2M
W2=$T_WORKER_N
make_file "$SRC/s2.bin" $((20 * 1024 * 1024))
submit s2 "$SRC/s2.bin" "$(path_target ops cancel/big.bin)" 5M >/dev/null
deleted0=$(fake_stat sessions_deleted)
# cancel in the middle of chunk 0 (bytes 1..4 MiB of its 5 MiB)
if poll 15 next_between drive-ops/cancel/big.bin $((1024 * 1024)) $((4 * 1024 * 1024)); then
    pass "2: job running, bytes flowing"
else
    fail "2: job running, bytes flowing" "state $(jf s2 state), session next $(session_next drive-ops/cancel/big.bin)"
fi
run_cli out rc cancel s2
puts0=$(fake_stat put)
assert_eq "2: cru cancel exits 0" 0 "$rc"
assert_contains "2: cru cancel says so" "$out" "s2 cancelled"
assert_eq "2: state cancelled" cancelled "$(jf s2 state)"
assert_eq "2: error 'cancelled'" cancelled "$(jf s2 error)"
if poll 10 no_session drive-ops/cancel/big.bin; then pass "2: upload session deleted at the fake"; else
    fail "2: upload session deleted at the fake" "still open, next=$(session_next drive-ops/cancel/big.bin)"; fi
assert_eq "2: sessions_deleted + 1" $((deleted0 + 1)) "$(fake_stat sessions_deleted)"
# the chunk in flight finishes (its message is then acknowledged); nothing after
poll 10 drained || echo "2: queue not drained: XLEN $(rcli XLEN cru:chunks) pending $(pending)" >&2
assert_eq "2: queue drained after the chunk in flight" "0 0" "$(rcli XLEN cru:chunks) $(pending)"
assert_eq "2: no PUT started after the cancel" "$puts0" "$(fake_stat put)"
assert_eq "2: still cancelled" cancelled "$(jf s2 state)"
if [ ! -e "$GRAPH_STORE/drive-ops/cancel/big.bin" ]; then pass "2: nothing stored at the target"; else
    fail "2: nothing stored at the target"; fi
assert_contains "2: worker log" "$(cat "$T_DIR/worker-$W2.log")" "cancelled: target session aborted"
run_cli out rc cancel s2
assert_eq "2: cancel again exits 2" 2 "$rc"
assert_contains "2: cancel again: has already ended" "$out" "has already ended"
run_cli out rc cancel no-such
assert_eq "2: cancel no-such exits 2" 2 "$rc"
assert_contains "2: cancel no-such: no such job" "$out" "no such job"

# ------------------------------------------- 3. cru retry
echo "--- 3. cru retry" >&2
reset_faults
make_file "$SRC/s3.bin" $((3 * 1024 * 1024))
submit s3 "$SRC/s3.bin" "$(url_target d s3.bin)" 320K >/dev/null
if poll 15 field_ge s3 chunks_done 1; then
    fake_post "/_fail?count=1&status=400"
else
    fail "3: first chunk done" "chunks_done='$(jf s3 chunks_done)' state=$(jf s3 state)"
fi
expect_failed "3: 400 on a later chunk" s3 "HTTP 400"
cd3=$(jf s3 chunks_done)
if [ "$cd3" -ge 1 ] && [ "$cd3" -lt "$(jf s3 chunks)" ]; then pass "3: failed after $cd3 chunks"; else
    fail "3: failed after some chunks" "chunks_done=$cd3 of $(jf s3 chunks)"; fi
run_cli out rc retry s3
assert_eq "3: cru retry exits 0" 0 "$rc"
assert_contains "3: cru retry says so" "$out" "s3 requeued"
expect_done "3: retried job" s3 "$SRC/s3.bin" drive-d/s3.bin
assert_eq "3: error cleared" "" "$(jf s3 error)"
run_cli out rc retry s3
assert_eq "3: retry of a done job exits 2" 2 "$rc"
assert_contains "3: retry of a done job: why" "$out" "only failed jobs can be retried"
run_cli out rc retry no-such
assert_eq "3: retry no-such exits 2" 2 "$rc"
reset_faults
stop_workers 10
assert_eq "W2 exits 0 on SIGTERM" 0 "${WORKER_RC[W2]}"

# ------------------------------------------- 6. SIGTERM, enough grace
echo "--- 6. SIGTERM mid-chunk, grace 20 s" >&2
make_file "$SRC/s6.bin" $((30 * 1024 * 1024))
start_workers 1 --concurrency 1 --rate-limit 10M --grace-ms 20000
A=$T_WORKER_N
submit s6 "$SRC/s6.bin" "$(url_target d s6.bin)" 15M >/dev/null
poll 15 next_between drive-d/s6.bin 1 $((10 * 1024 * 1024)) ||
    fail "6: bytes flowing" "session next $(session_next drive-d/s6.bin)"
t0=$(_t_now_ms)
stop_workers 25
dt=$(($(_t_now_ms) - t0))
echo "6: worker A exited ${dt} ms after SIGTERM" >&2
assert_eq "6: A exits 0" 0 "${WORKER_RC[A]}"
if [ "$dt" -lt 20000 ]; then pass "6: A exits within the grace (${dt} ms)"; else fail "6: A exits within the grace" "${dt} ms"; fi
assert_eq "6: A finished the chunk in flight (chunks_done)" 1 "$(jf s6 chunks_done)"
assert_eq "6: A took no new message (chunk 1 queued)" "1 0" "$(rcli XLEN cru:chunks) $(pending)"
if grep -q "grace period over" "$T_DIR/worker-$A.log"; then fail "6: no abort in A's log" "$(grep 'grace period' "$T_DIR/worker-$A.log")"; else pass "6: no abort in A's log"; fi
start_workers 1 --concurrency 1
B=$T_WORKER_N
expect_done "6: B completes" s6 "$SRC/s6.bin" drive-d/s6.bin
stop_workers 10
assert_eq "6: B exits 0" 0 "${WORKER_RC[B]}"

# ------------------------------------------- 7. SIGTERM, short grace
echo "--- 7. SIGTERM mid-chunk, grace 0.5 s" >&2
reset_faults
make_file "$SRC/s7.bin" $((20 * 1024 * 1024))
start_workers 1 --concurrency 1 --rate-limit 4M --grace-ms 500
A=$T_WORKER_N
recv0=$(fake_stat bytes_received)
submit s7 "$SRC/s7.bin" "$(url_target d s7.bin)" 20M >/dev/null
poll 15 next_between drive-d/s7.bin 1 $((10 * 1024 * 1024)) ||
    fail "7: bytes flowing" "session next $(session_next drive-d/s7.bin)"
t0=$(_t_now_ms)
stop_workers 10
dt=$(($(_t_now_ms) - t0))
echo "7: worker A exited ${dt} ms after SIGTERM" >&2
assert_eq "7: A exits 0" 0 "${WORKER_RC[A]}"
if [ "$dt" -lt 2500 ]; then pass "7: A exits within ~2 s (${dt} ms)"; else fail "7: A exits within ~2 s" "${dt} ms"; fi
assert_contains "7: A released the message" "$(cat "$T_DIR/worker-$A.log")" "transfer aborted, message released"
assert_eq "7: chunk not done by A" 0 "$(jf s7 chunks_done)"
start_workers 1 --concurrency 1 --lease-ms 2000
B=$T_WORKER_N
expect_done "7: B completes" s7 "$SRC/s7.bin" drive-d/s7.bin
kept=$(grep -o 'resuming: the target holds bytes up to [0-9]*' "$T_DIR/worker-$B.log" | head -1 | grep -o '[0-9]*$')
if [ -n "$kept" ] && [ "$kept" -gt 0 ] && [ "$kept" -lt $((20 * 1024 * 1024)) ]; then
    pass "7: B resumed from inside the chunk (byte $kept)"
else
    fail "7: B resumed from inside the chunk" "kept='$kept'"
fi
assert_eq "7: every byte stored exactly once" $((20 * 1024 * 1024)) $(($(fake_stat bytes_received) - recv0))
stop_workers 10
assert_eq "7: B exits 0" 0 "${WORKER_RC[B]}"

# ------------------------------------------- 9. max deliveries
echo "--- 9. delivery limit" >&2
reset_faults
make_file "$SRC/s9.bin" 100000
assert_eq "9: queue empty before" "0 0" "$(rcli XLEN cru:chunks) $(pending)"
dead0=$(rcli ZCARD cru:dead)
submit s9 "$SRC/s9.bin" "$(url_target d s9.bin)" >/dev/null
msg=$(rcli --raw XREADGROUP GROUP workers ghost COUNT 1 STREAMS cru:chunks '>' | sed -n 2p)
rcli XCLAIM cru:chunks workers ghost 0 "$msg" RETRYCOUNT 6 JUSTID >/dev/null
assert_eq "9: plan message held by ghost, 6 deliveries" "ghost 6" \
    "$(rcli --raw XPENDING cru:chunks workers - + 10 | sed -n '2p;4p' | tr '\n' ' ' | sed 's/ $//')"
start_workers 1 --lease-ms 300 --max-deliveries 5 --concurrency 2
W9=$T_WORKER_N
expect_failed "9: lost too often" s9 "worker lost" 10
assert_contains "9: error names the op" "$(jf s9 error)" "times on op plan"
assert_eq "9: cru:dead gained one entry" 1 $(($(rcli ZCARD cru:dead) - dead0))
assert_contains "9: dead entry names the job" "$(rcli --raw ZRANGE cru:dead -1 -1)" '"job":"s9"'
poll 5 drained
assert_eq "9: nothing pending" 0 "$(pending)"

# ------------------------------------------- 10. cru stats
echo "--- 10. cru stats" >&2
pid=$(worker_pid "$W9")
# wait for a heartbeat of the new worker
has_hb() { rcli --raw HKEYS cru:workers | grep -q -- "-$pid\$"; }
poll 5 has_hb || echo "10: no heartbeat from pid $pid" >&2
run_cli out rc stats
assert_eq "10: cru stats exits 0" 0 "$rc"
dead=$(rcli ZCARD cru:dead)
assert_contains "10: queue line" "$out" "queue    length 0, pending 0, delayed 0, dead $dead"
assert_contains "10: workers line" "$out" "workers  1 live, 0 dead"
assert_contains "10: worker id is host-pid" "$out" "-$pid "
"$CRU" stats --json >"$T_DIR/stats.json" 2>&1
assert_eq "10: --json queue" "0 0 0 $dead" "$(for k in stream pending delayed dead; do json_get "$T_DIR/stats.json" $k; done | tr '\n' ' ' | sed 's/ $//')"
assert_eq "10: --json jobs" "$(rcli ZCARD cru:jobs)" "$(json_get "$T_DIR/stats.json" jobs)"
w=$("$T_PY" -c 'import json, sys
ws = json.load(open(sys.argv[1]))["workers"]
print(len(ws), ws[0]["pid"], ws[0]["live"], ws[0]["id"].endswith("-%d" % ws[0]["pid"]))' "$T_DIR/stats.json" 2>&1)
assert_eq "10: --json workers: one, live, pid-based id" "1 $pid True True" "$w"
# jobs by state: what the test did, and what the job hashes say
for s in done failed cancelled queued running; do
    n=$(json_get "$T_DIR/stats.json" "states.$s")
    eval "st_$s=\${n:-0}"
done
expect="done 6, failed 4, cancelled 1, queued 0, running 0"
assert_eq "10: states by scenario" "$expect" \
    "done $st_done, failed $st_failed, cancelled $st_cancelled, queued $st_queued, running $st_running"
tally=$(for j in $(rcli --raw ZRANGE cru:jobs 0 -1); do jf "$j" state; done | sort | uniq -c |
    awk '{printf "%s %s, ", $2, $1}')
echo "10: job hashes by state: $tally" >&2
actual=""
for s in cancelled done failed queued running; do
    n=$(eval echo "\$st_$s")
    [ "$n" = 0 ] || actual+="$s $n, "
done
assert_eq "10: states match the job hashes" "$tally" "$actual"
assert_contains "10: text jobs line" "$out" "done $st_done, failed $st_failed, cancelled $st_cancelled"

stop_workers 10
assert_eq "W9 exits 0 on SIGTERM" 0 "${WORKER_RC[W9]}"
assert_eq "heartbeats removed on exit" 0 "$(rcli HLEN cru:workers)"
