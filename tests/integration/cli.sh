#!/usr/bin/env bash
# The command line: --help everywhere, exit codes, Redis URLs (password,
# ACL user, unix socket, database), status/watch/jobs on real jobs.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

for c in init worker submit status watch jobs; do
    out=$("$CRU" "$c" --help 2>&1)
    rc=$?
    assert_eq "cru $c --help exits 0" 0 "$rc"
    assert_contains "cru $c --help shows usage" "$out" "usage: cru $c"
done
out=$("$CRU" --help)
assert_contains "cru --help lists commands" "$out" "submit"
"$CRU" frobnicate >/dev/null 2>&1
assert_eq "unknown command exits 2" 2 "$?"
"$CRU" status >/dev/null 2>&1
assert_eq "status without ID exits 2" 2 "$?"
out=$("$CRU" worker --concurrency 0 2>&1)
assert_eq "worker --concurrency 0 refused" "cru worker: --concurrency: a number from 1 to 256" "$out"
out=$(CRU_REDIS_URL=http://x "$CRU" jobs 2>&1)
assert_contains "bad CRU_REDIS_URL names the variable" "$out" "CRU_REDIS_URL: must start with redis://"
out=$("$CRU" jobs --redis "redis://127.0.0.1:$(free_port)" 2>&1)
rc=$?
assert_eq "Redis unreachable exits 3" 3 "$rc"
assert_contains "Redis unreachable says so" "$out" "Connection refused"

# A password-protected Redis with an ACL user, on TCP and a unix socket.
port=$(free_port)
sock=$T_DIR/redis.sock
redis-server --port "$port" --bind 127.0.0.1 --unixsocket "$sock" --save '' --appendonly no \
    --requirepass adminpw --dir "$T_DIR" --daemonize no >"$T_DIR/redis-auth.log" 2>&1 &
T_PIDS+=("$!")
for _ in $(seq 50); do redis-cli -s "$sock" -a adminpw --no-auth-warning ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -s "$sock" -a adminpw --no-auth-warning ACL SETUSER app on '>app pw' '~*' '&*' '+@all' >/dev/null
out=$("$CRU" init --redis "redis://:adminpw@127.0.0.1:$port/0" 2>&1)
assert_contains "init with a password" "$out" "function library loaded"
out=$("$CRU" init --redis "redis://app:app%20pw@127.0.0.1:$port/3" 2>&1)
assert_contains "init with an ACL user, database 3" "$out" "function library loaded"
out=$("$CRU" jobs --redis "redis://:wrong@127.0.0.1:$port" 2>&1)
assert_contains "wrong password refused" "$out" "redis AUTH"
id=$("$CRU" submit /srv/a.bin --redis "redis://app:app%20pw@127.0.0.1:$port/3" \
    --target '{"type":"graph","upload_url":"https://x/y"}' --id on-db3)
assert_eq "submit into database 3" on-db3 "$id"
got=$(redis-cli -s "$sock" -a adminpw --no-auth-warning -n 3 HGET cru:job:on-db3 state)
assert_eq "job landed in database 3" queued "$got"
out=$(CRU_REDIS_URL="unix://$sock?db=3" "$CRU" status on-db3 --redis "unix://$sock?db=3" 2>&1)
assert_contains "unix socket without password refused" "$out" "NOAUTH"

# status, watch and jobs against real jobs.
start_redis
start_graph_fake
start_workers 1 --concurrency 1
make_file "$CRU_SOURCE_ROOT/a.bin" 1000000
url=$(graph_create_session d a.bin)
id=$("$CRU" submit "$CRU_SOURCE_ROOT/a.bin" --target "{\"type\":\"graph\",\"upload_url\":\"$url\"}" --chunk-size 320K --id good)
"$CRU" watch "$id" >"$T_DIR/watch.out" 2>&1
assert_eq "watch exits 0 when done" 0 "$?"
assert_contains "watch shows the bar at 100%" "$(tail -1 "$T_DIR/watch.out")" "100.0%"
out=$("$CRU" status good)
assert_contains "status: state" "$out" "state     done"
assert_contains "status: progress" "$out" "chunk 4 of 4"
"$CRU" status good --json >"$T_DIR/s.json"
assert_eq "status --json: bytes_done is a number" 1000000 "$(json_get "$T_DIR/s.json" bytes_done)"
assert_eq "status --json: result is JSON" a.bin "$(json_get "$T_DIR/s.json" result.name)"
case "$(cat "$T_DIR/s.json")" in *tempauth*|*spec*|*session*) fail "status --json hides spec and session" ;;
*) pass "status --json hides spec and session" ;; esac
id=$("$CRU" submit "$CRU_SOURCE_ROOT/missing.bin" --target "{\"type\":\"graph\",\"upload_url\":\"$url\"}" --id bad)
"$CRU" watch bad >/dev/null 2>"$T_DIR/watch.err"
assert_eq "watch exits 1 when failed" 1 "$?"
assert_contains "watch prints the error" "$(cat "$T_DIR/watch.err")" "No such file or directory"
"$CRU" watch nope >/dev/null 2>&1
assert_eq "watch exits 2 for an unknown job" 2 "$?"
out=$("$CRU" jobs)
assert_contains "jobs lists done" "$out" "good"
assert_contains "jobs lists failed" "$out" "bad"
out=$("$CRU" jobs --state failed)
case "$out" in *good*) fail "jobs --state failed filters" ;; *bad*) pass "jobs --state failed filters" ;;
*) fail "jobs --state failed filters" "$out" ;; esac
"$CRU" jobs --state bogus >/dev/null 2>&1
assert_eq "jobs --state bogus refused" 2 "$?"
