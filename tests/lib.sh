# shellcheck shell=bash disable=SC2034  # globals are read by the tests
# tests/lib.sh - helpers for cru integration tests (tests/integration/NAME.sh).
#
# Usage, at the top of a test:
#     #!/usr/bin/env bash
#     set -euo pipefail
#     . "$(dirname "$0")/../lib.sh"
#
# Protocol: every check prints exactly one line on stdout, "PASS <name>" or
# "FAIL <name>: <why>". Anything else a test wants to say goes to stderr.
# Sourcing this file creates $T_DIR and installs an EXIT/INT/TERM trap that
# kills every process started through these helpers and removes $T_DIR
# (kept when KEEP=1). It never touches system services.

# ---------------------------------------------------------------- globals

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export ROOT
T_NAME=$(basename "${0%.sh}")
T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cru-test-${T_NAME}.XXXXXX")
export T_DIR
: "${CRU:=$ROOT/bin/cru}"
: "${GRAPH_TOKEN:=test-token}"
: "${CRU_PREFIX:=cru}"
export CRU GRAPH_TOKEN

T_PIDS=()          # every background process we started (killed on exit)
T_WORKER_PIDS=()   # worker pids, index = worker number (1-based)
WORKER_RC=()       # exit statuses filled in by stop_workers, same indexing
T_WORKER_N=0       # number of workers started so far (log file numbering)
T_FAILS=0          # FAIL lines printed so far
T_PASSES=0         # PASS lines printed so far
T_CLEANED=0
T_PY=/usr/bin/python3

# ---------------------------------------------------------------- cleanup

_t_alive() { kill -0 "$1" 2>/dev/null; }

# _t_kill PID... : TERM, wait up to 5 s in total, then KILL; reap children.
_t_kill() {
    local p i
    [ "$#" -gt 0 ] || return 0
    for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
    for ((i = 0; i < 50; i++)); do
        local any=0
        for p in "$@"; do
            if _t_alive "$p"; then
                # a zombie child still answers kill -0; reap it if it is ours
                if [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" = Z ]; then
                    wait "$p" 2>/dev/null || true
                else
                    any=1
                fi
            fi
        done
        [ "$any" -eq 1 ] || break
        sleep 0.1
    done
    for p in "$@"; do
        if _t_alive "$p"; then
            echo "lib.sh: pid $p ignored SIGTERM for 5 s, sending SIGKILL" >&2
            kill -KILL "$p" 2>/dev/null || true
        fi
        wait "$p" 2>/dev/null || true
    done
}

_t_cleanup() {
    local rc=$1
    [ "$T_CLEANED" -eq 0 ] || return 0
    T_CLEANED=1
    set +e
    if [ "$rc" -ne 0 ] && [ "$T_FAILS" -eq 0 ]; then
        echo "lib.sh: $T_NAME exited with status $rc before any FAIL line" >&2
        dump_logs
    fi
    _t_kill "${T_PIDS[@]}"
    T_PIDS=()
    if [ "${KEEP:-0}" = 1 ]; then
        echo "lib.sh: KEEP=1, test files kept in $T_DIR" >&2
    else
        rm -rf -- "$T_DIR"
    fi
}

_t_on_exit() {
    local rc=$?
    _t_cleanup "$rc"
    if [ "$rc" -eq 0 ] && [ "$T_FAILS" -gt 0 ]; then rc=1; fi
    exit "$rc"
}

_t_on_signal() {
    local sig=$1 code=$2
    echo "lib.sh: $T_NAME got SIG$sig, cleaning up" >&2
    _t_cleanup "$code"
    trap - EXIT
    exit "$code"
}

trap _t_on_exit EXIT
trap '_t_on_signal INT 130' INT
trap '_t_on_signal TERM 143' TERM

# ---------------------------------------------------------------- utilities

# free_port: print a currently free TCP port on 127.0.0.1.
free_port() {
    "$T_PY" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# _t_now_ms: wall clock in milliseconds.
_t_now_ms() {
    local t=${EPOCHREALTIME//[.,]/}
    echo $((t / 1000))
}

# make_file PATH SIZE: SIZE bytes of random data (head -c suffixes such as
# 64K, 10M also work: K=1024, M=1024^2, KB=1000, MB=1000^2).
make_file() {
    mkdir -p -- "$(dirname -- "$1")"
    head -c "$2" /dev/urandom >"$1"
}

# sha FILE: print the sha256 hex digest of FILE.
sha() {
    local out
    out=$(sha256sum -- "$1") || return 1
    echo "${out%% *}"
}

# vmhwm PID: print the peak resident set size (VmHWM, kB) of PID.
vmhwm() {
    awk '/^VmHWM:/ {print $2}' "/proc/$1/status"
}

# ---------------------------------------------------------------- reporting

# dump_logs: last 30 lines of every worker log and of the graph fake, stderr.
dump_logs() {
    local f any=0
    for f in "$T_DIR"/worker-*.log "$T_DIR"/graph.log "$T_DIR"/graph.out; do
        [ -s "$f" ] || continue
        any=1
        echo "----- last 30 lines of $(basename "$f") -----" >&2
        tail -n 30 -- "$f" >&2
    done
    [ "$any" -eq 0 ] || echo "----- end of logs -----" >&2
}

# pass NAME
pass() {
    T_PASSES=$((T_PASSES + 1))
    echo "PASS $1"
}

# fail NAME [WHY]: prints FAIL, dumps logs to stderr, returns 1.
fail() {
    T_FAILS=$((T_FAILS + 1))
    echo "FAIL $1: ${2:-failed}"
    dump_logs
    return 1
}

# check NAME CMD...: PASS if CMD succeeds, else FAIL.
check() {
    local name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name" "command failed: $*"; fi
}

# assert_eq NAME EXPECTED ACTUAL
assert_eq() {
    if [ "$2" = "$3" ]; then
        pass "$1"
    else
        fail "$1" "expected '$2', got '$3'"
    fi
}

# assert_contains NAME HAYSTACK NEEDLE
assert_contains() {
    case "$2" in
        *"$3"*) pass "$1" ;;
        *) fail "$1" "'$3' not found in '$(printf '%s' "$2" | head -c 300)'" ;;
    esac
}

# assert_file_same NAME A B: files have identical sha256.
assert_file_same() {
    local a b
    if [ ! -f "$2" ]; then fail "$1" "missing file $2"; return; fi
    if [ ! -f "$3" ]; then fail "$1" "missing file $3"; return; fi
    a=$(sha "$2")
    b=$(sha "$3")
    if [ "$a" = "$b" ]; then
        pass "$1"
    else
        fail "$1" "content differs: $2 ($(stat -c %s -- "$2") bytes, $a) vs $3 ($(stat -c %s -- "$3") bytes, $b)"
    fi
}

# ---------------------------------------------------------------- redis

# rcli ARGS...: redis-cli against the test's redis.
rcli() {
    redis-cli -p "$REDIS_PORT" "$@"
}

# start_redis [PORT]: private redis-server on a free port (or PORT);
# exports REDIS_PORT and CRU_REDIS_URL. REDIS_AOF=yes turns on the
# append-only file (in $T_DIR), so stop_redis + start_redis keeps the data.
start_redis() {
    local attempt port pid deadline
    for attempt in 1 2 3; do
        port=${1:-$(free_port)}
        redis-server --port "$port" --bind 127.0.0.1 --save '' \
            --appendonly "${REDIS_AOF:-no}" --dir "$T_DIR" --daemonize no \
            --logfile "$T_DIR/redis.log" </dev/null >/dev/null 2>&1 &
        pid=$!
        T_PIDS+=("$pid")
        deadline=$(($(_t_now_ms) + 10000))
        while _t_alive "$pid" && [ "$(_t_now_ms)" -lt "$deadline" ]; do
            if [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ]; then
                REDIS_PORT=$port
                REDIS_PID=$pid
                CRU_REDIS_URL="redis://127.0.0.1:$port/0"
                export REDIS_PORT REDIS_PID CRU_REDIS_URL
                return 0
            fi
            sleep 0.05
        done
        _t_kill "$pid"
        echo "lib.sh: redis-server on port $port did not start (attempt $attempt)" >&2
        tail -n 20 "$T_DIR/redis.log" >&2 2>/dev/null || true
    done
    echo "lib.sh: could not start redis-server" >&2
    return 1
}

# stop_redis: SIGTERM the test's redis-server (it writes its AOF) and wait.
stop_redis() {
    _t_kill "$REDIS_PID"
    _t_forget "$REDIS_PID"
}

# submit_job JSON: FCALL cru_submit 0 JSON; prints the reply.
submit_job() {
    rcli FCALL "${CRU_PREFIX}_submit" 0 "$1"
}

# wait_job ID [TIMEOUT_S]: poll HGET cru:job:ID state every 0.1 s until
# done|failed|cancelled; prints that state. On timeout prints the last state
# seen (possibly empty) and returns 1.
wait_job() {
    local id=$1 timeout=${2:-120} state deadline
    deadline=$(($(_t_now_ms) + timeout * 1000))
    while :; do
        state=$(rcli HGET "${CRU_PREFIX}:job:$id" state 2>/dev/null) || state=
        case "$state" in
            done | failed | cancelled)
                echo "$state"
                return 0
                ;;
        esac
        if [ "$(_t_now_ms)" -ge "$deadline" ]; then
            echo "lib.sh: wait_job $id: timeout after ${timeout}s, state='$state'" >&2
            echo "$state"
            return 1
        fi
        sleep 0.1
    done
}

# ---------------------------------------------------------------- graph fake

# start_graph_fake: tests/fakes/graph_fake.py on a free port; exports
# GRAPH_PORT, GRAPH_API, GRAPH_STORE, GRAPH_PID.
start_graph_fake() {
    local pid deadline line out=$T_DIR/graph.out
    mkdir -p "$T_DIR/graph"
    : >"$out"
    "$T_PY" -u "$ROOT/tests/fakes/graph_fake.py" --port 0 \
        --store "$T_DIR/graph" --token "$GRAPH_TOKEN" \
        </dev/null >"$out" 2>"$T_DIR/graph.log" &
    pid=$!
    T_PIDS+=("$pid")
    deadline=$(($(_t_now_ms) + 10000))
    while [ "$(_t_now_ms)" -lt "$deadline" ]; do
        line=$(grep -m1 -E '^PORT [0-9]+' "$out" 2>/dev/null) || line=
        if [ -n "$line" ]; then
            GRAPH_PORT=${line#PORT }
            GRAPH_PID=$pid
            GRAPH_API="http://127.0.0.1:$GRAPH_PORT/v1.0"
            GRAPH_STORE="$T_DIR/graph/files"
            export GRAPH_PORT GRAPH_PID GRAPH_API GRAPH_STORE
            return 0
        fi
        if ! _t_alive "$pid"; then
            echo "lib.sh: graph_fake.py exited before printing PORT" >&2
            tail -n 30 "$T_DIR/graph.log" >&2 2>/dev/null || true
            return 1
        fi
        sleep 0.05
    done
    echo "lib.sh: graph_fake.py printed no PORT line within 10 s" >&2
    tail -n 30 "$T_DIR/graph.log" >&2 2>/dev/null || true
    return 1
}

# graph_create_session DRIVE PATH: create an upload session on the fake and
# print its uploadUrl.
graph_create_session() {
    local drive=$1 path=$2 enc body
    enc=$("$T_PY" -c 'import sys, urllib.parse
print(urllib.parse.quote(sys.argv[1].lstrip("/"), safe="/"))' "$path") || return 1
    body=$(curl -sS --fail-with-body -X POST \
        -H "Authorization: Bearer $GRAPH_TOKEN" \
        -H 'Content-Type: application/json' \
        -d '{"item":{"@microsoft.graph.conflictBehavior":"replace"}}' \
        "$GRAPH_API/drives/$drive/root:/$enc:/createUploadSession") || {
        echo "lib.sh: createUploadSession failed: $body" >&2
        return 1
    }
    printf '%s' "$body" | "$T_PY" -c 'import sys, json
print(json.load(sys.stdin)["uploadUrl"])'
}

# ---------------------------------------------------------------- workers

# start_workers N [ARGS...]: start N "$CRU worker ARGS..." in the background,
# stdout+stderr to $T_DIR/worker-<i>.log (i counts up across calls). Worker i
# has pid ${T_WORKER_PIDS[i]}. Exports CRU_SOURCE_ROOT (default $T_DIR/src).
start_workers() {
    local n=$1 i pid
    shift
    if [ ! -x "$CRU" ]; then
        echo "lib.sh: CRU=$CRU is not an executable (run make first)" >&2
        return 1
    fi
    : "${CRU_SOURCE_ROOT:=$T_DIR/src}"
    export CRU_SOURCE_ROOT
    mkdir -p "$CRU_SOURCE_ROOT"
    for ((i = 0; i < n; i++)); do
        T_WORKER_N=$((T_WORKER_N + 1))
        "$CRU" worker "$@" </dev/null >>"$T_DIR/worker-$T_WORKER_N.log" 2>&1 &
        pid=$!
        T_PIDS+=("$pid")
        T_WORKER_PIDS[T_WORKER_N]=$pid
    done
}

# worker_pid I: pid of worker I (1-based).
worker_pid() {
    echo "${T_WORKER_PIDS[$1]}"
}

# kill_worker I [SIGNAL]: send SIGNAL (default KILL) to worker I and reap it;
# its exit status goes to WORKER_RC[I].
kill_worker() {
    local i=$1 sig=${2:-KILL} pid rc=0
    pid=${T_WORKER_PIDS[$i]:-}
    [ -n "$pid" ] || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || rc=$?
    WORKER_RC[i]=$rc
    unset 'T_WORKER_PIDS[i]'
    _t_forget "$pid"
}

_t_forget() {
    local p keep=()
    for p in "${T_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    T_PIDS=("${keep[@]}")
}

# stop_workers [TIMEOUT_S]: SIGTERM every running worker, wait for them to
# exit (SIGKILL after TIMEOUT_S, default 30). Exit statuses land in
# WORKER_RC[i] (143 = died of SIGTERM, 137 = had to be killed).
stop_workers() {
    local timeout=${1:-30} i pid rc deadline
    for i in "${!T_WORKER_PIDS[@]}"; do
        kill -TERM "${T_WORKER_PIDS[i]}" 2>/dev/null || true
    done
    deadline=$(($(_t_now_ms) + timeout * 1000))
    for i in "${!T_WORKER_PIDS[@]}"; do
        pid=${T_WORKER_PIDS[i]}
        while _t_alive "$pid" && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] &&
            [ "$(_t_now_ms)" -lt "$deadline" ]; do
            sleep 0.05
        done
        if _t_alive "$pid" && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
            echo "lib.sh: worker $i (pid $pid) still running ${timeout}s after SIGTERM, killing" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rc=0
        wait "$pid" 2>/dev/null || rc=$?
        WORKER_RC[i]=$rc
        unset 'T_WORKER_PIDS[i]'
        _t_forget "$pid"
    done
}

# ---------------------------------------------------------------- json

# json_get FILE PATH: print the value at dotted PATH (a.b.c) of the JSON in
# FILE ("" for null or missing; objects and arrays as compact JSON).
json_get() {
    "$T_PY" - "$1" "$2" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v.get(k) if isinstance(v, dict) else None
if v is None:
    print("")
elif isinstance(v, (dict, list)):
    print(json.dumps(v, separators=(",", ":")))
else:
    print(v)
PY
}

# quickxor FILE: the OneDrive QuickXorHash (base64) of FILE, computed by the
# fake's implementation (checked against rclone's vectors by --selftest).
quickxor() {
    "$T_PY" -c 'import sys; sys.path.insert(0, sys.argv[1]); import graph_fake
print(graph_fake.quickxorhash_b64(open(sys.argv[2], "rb").read()))' "$ROOT/tests/fakes" "$1"
}

# chunk_events ID: how many events on cru:events name chunk progress of job ID.
chunk_events() {
    rcli --json XRANGE "${CRU_PREFIX}:events" - + | "$T_PY" -c '
import json, sys
n = 0
for _id, f in json.load(sys.stdin):
    d = dict(zip(f[::2], f[1::2]))
    n += d.get("job") == sys.argv[1] and "chunk" in d
print(n)' "$1"
}

# count_exact TIMEOUT ID:SOURCE:STORED...: waits for each job; one FAIL line
# for each that did not end done, byte-exact (sha256 of SOURCE and STORED)
# and counted once (bytes_done == size, chunks_done == chunks). Prints how
# many were exact.
count_exact() {
    local timeout=$1 spec id src stored state bd sz cd ch exact=0
    shift
    for spec in "$@"; do
        IFS=: read -r id src stored <<<"$spec"
        state=$(wait_job "$id" "$timeout")
        if [ "$state" != done ]; then
            fail "$id: done" "state $state: $(rcli --raw HGET "cru:job:$id" error)" >&2
            continue
        fi
        read -r bd sz cd ch < <(rcli --raw HMGET "cru:job:$id" bytes_done size chunks_done chunks | tr '\n' ' ')
        if [ "$(sha "$src")" = "$(sha "$stored")" ] && [ "$bd" = "$sz" ] && [ "$cd" = "$ch" ]; then
            exact=$((exact + 1))
        else
            fail "$id: byte-exact, counted once" "bytes_done $bd size $sz chunks $cd/$ch" >&2
        fi
    done
    echo "$exact"
}

# kill_until_ended TIMEOUT_S "WORKER ARGS" ID...: chaos. Every 1-2 s,
# SIGKILL a random worker and start a new one with WORKER ARGS, until every
# job ID has ended (done, failed, cancelled) or TIMEOUT_S passed. Sets KILLS.
kill_until_ended() {
    local timeout=$1 args=$2 deadline id s ended victims
    shift 2
    KILLS=0
    deadline=$(($(date +%s) + timeout))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        ended=1
        for id in "$@"; do
            s=$(rcli --raw HGET "$CRU_PREFIX:job:$id" state)
            case "$s" in done | failed | cancelled) ;; *) ended=0 && break ;; esac
        done
        [ "$ended" = 1 ] && return 0
        sleep "1.$((RANDOM % 10))"
        victims=("${!T_WORKER_PIDS[@]}")
        kill_worker "${victims[RANDOM % ${#victims[@]}]}" KILL
        KILLS=$((KILLS + 1))
        # shellcheck disable=SC2086 # the worker arguments are words
        start_workers 1 $args
    done
}
