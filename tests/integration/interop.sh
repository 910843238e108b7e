#!/usr/bin/env bash
# Interop: three small apps in the style of their frameworks — Flask
# (tests/interop/flask_app.py, driven by test_flask.py through Flask's test
# client), a Rails-style job (rails_job.rb, redis-rb) and a node:http app
# (node_app.mjs, node-redis v4) — enqueue uploads through the Redis contract
# alone (FCALL cru_submit 0 '<spec>'), wait on cru:events with a blocking
# XREAD, read progress and check the final state; the Node app also cancels a
# job while a rate-limited worker sends it. Their PASS/FAIL lines are passed
# through; this script then checks the bytes that reached the Graph fake.
#
# The cancel scenario runs against database 1 of the same redis-server, whose
# only worker is limited to 1 MiB/s, so the fast workers of database 0 cannot
# finish that job before it is cancelled.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

INTEROP=$ROOT/tests/interop

# ---------------------------------------------------------------- deps
if ! bash "$ROOT/scripts/deps.sh" python3-flask python3-redis ruby ruby-redis >"$T_DIR/deps.log" 2>&1; then
    fail "dependencies installed" "$(tail -n 5 "$T_DIR/deps.log")"
    exit 1
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    bash "$ROOT/scripts/deps.sh" nodejs npm >>"$T_DIR/deps.log" 2>&1
fi
if [ ! -d "$INTEROP/node_modules" ] ||
    [ ! "$INTEROP/node_modules/.package-lock.json" -nt "$INTEROP/package-lock.json" ]; then
    if ! (cd "$INTEROP" && npm ci --no-audit --no-fund) >>"$T_DIR/deps.log" 2>&1; then
        fail "npm ci in tests/interop" "$(tail -n 5 "$T_DIR/deps.log")"
        exit 1
    fi
fi

# ---------------------------------------------------------------- servers
start_redis
start_graph_fake
start_workers 2 --concurrency 2
SLOW_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/1"
start_workers 1 --redis "$SLOW_REDIS_URL" --rate-limit 1M
SRC=$CRU_SOURCE_ROOT

# The library is loaded by the workers at start; wait until one is up so an
# app's first FCALL does not race it.
for _ in $(seq 100); do
    [ -n "$(rcli HKEYS cru:workers 2>/dev/null)" ] &&
        [ -n "$(rcli -n 1 HKEYS cru:workers 2>/dev/null)" ] && break
    sleep 0.1
done

make_file "$SRC/flask/report.bin" $((3 * 1024 * 1024 + 17))
make_file "$SRC/rails/q3 report.pdf" $((2 * 1024 * 1024 + 5))
make_file "$SRC/node/video.mp4" $((4 * 1024 * 1024 + 3))
make_file "$SRC/node/cancel.bin" $((8 * 1024 * 1024))

# run_app NAME CMD...: runs an app with a 180 s limit, passes its PASS/FAIL
# lines through (and counts them), fails NAME if it exits non-zero without
# saying why.
run_app() {
    local name=$1 rc=0 out=$T_DIR/$1.out np nf
    shift
    timeout -k 5 180 "$@" >"$out" 2>"$T_DIR/$name.err" || rc=$?
    cat "$out"
    np=$(grep -c '^PASS ' "$out")
    nf=$(grep -c '^FAIL ' "$out")
    T_PASSES=$((T_PASSES + np))
    T_FAILS=$((T_FAILS + nf))
    if [ "$rc" -ne 0 ] && [ "$nf" -eq 0 ]; then
        fail "$name app" "exit status $rc: $(tail -n 5 "$T_DIR/$name.err")"
    elif [ "$np" -eq 0 ] && [ "$nf" -eq 0 ]; then
        fail "$name app" "printed no PASS/FAIL line: $(tail -n 5 "$T_DIR/$name.err")"
    fi
    [ "$nf" -eq 0 ] || sed 's/^/  /' "$T_DIR/$name.err" >&2
}

# ---------------------------------------------------------------- Flask
url=$(graph_create_session dflask "uploads/report.bin")
UPLOAD_PATH=flask/report.bin UPLOAD_URL=$url \
    run_app flask /usr/bin/python3 "$INTEROP/test_flask.py"
assert_file_same "flask: bytes at the target" "$SRC/flask/report.bin" "$GRAPH_STORE/drive-dflask/uploads/report.bin"

# ---------------------------------------------------------------- Rails
url=$(graph_create_session drails "Reports/q3 report.pdf")
UPLOAD_PATH="rails/q3 report.pdf" UPLOAD_URL=$url \
    run_app rails ruby "$INTEROP/rails_job.rb"
assert_file_same "rails: bytes at the target" "$SRC/rails/q3 report.pdf" "$GRAPH_STORE/drive-drails/Reports/q3 report.pdf"

# ---------------------------------------------------------------- Node
url=$(graph_create_session dnode "media/video.mp4")
cancel_url=$(graph_create_session dnode "media/cancel.bin")
UPLOAD_PATH=node/video.mp4 UPLOAD_URL=$url \
    CANCEL_REDIS_URL=$SLOW_REDIS_URL CANCEL_PATH=node/cancel.bin CANCEL_UPLOAD_URL=$cancel_url \
    run_app node node "$INTEROP/node_app.mjs"
assert_file_same "node: bytes at the target" "$SRC/node/video.mp4" "$GRAPH_STORE/drive-dnode/media/video.mp4"

# The cancelled upload never lands, and a worker aborts its session (DELETE
# on the upload URL: the fake answers 404 for it afterwards).
code=
for _ in $(seq 150); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$cancel_url")
    [ "$code" = 404 ] && break
    sleep 0.1
done
assert_eq "node cancel: the upload session was aborted (GET upload URL -> 404)" 404 "$code"
if [ -e "$GRAPH_STORE/drive-dnode/media/cancel.bin" ]; then
    fail "node cancel: nothing at the target" "the cancelled file was stored"
else
    pass "node cancel: nothing at the target"
fi
stats=$(curl -s "http://127.0.0.1:$GRAPH_PORT/_stats")
assert_contains "no Authorization on upload URL PUTs" "$stats" '"put_auth_refused": 0'

stop_workers
for i in 1 2 3; do assert_eq "worker $i exits 0 on SIGTERM" 0 "${WORKER_RC[i]}"; done
