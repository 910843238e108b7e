# shellcheck shell=bash disable=SC2034  # globals are read by the tests
# tests/servers/tus.sh - a real tus server (@tus/server + @tus/file-store,
# tests/servers/tus_server.mjs) for integration tests. Source it after
# tests/lib.sh:
#     . "$ROOT/tests/servers/tus.sh"
#     start_tus [--require-auth TOKEN] [--relative-location]
# Several servers may run at once; each call sets the variables anew.

# start_tus [ARGS...]: start tus_server.mjs on a free port (--port 0), storing in a new
# directory under $T_DIR; waits for its PORT line. Exports TUS_PORT,
# TUS_PID, TUS_DIR and TUS_ENDPOINT=http://127.0.0.1:PORT/files/; the pid is
# in T_PIDS (killed on exit). Its output goes to $T_DIR/tus-N.log.
TUS_N=0
start_tus() {
    local pid deadline line out
    TUS_N=$((TUS_N + 1))
    out=$T_DIR/tus-$TUS_N.log
    TUS_DIR=$T_DIR/tus-$TUS_N
    mkdir -p "$TUS_DIR"
    (cd "$ROOT/tests/servers" && exec node tus_server.mjs "$TUS_DIR" --port 0 "$@") \
        </dev/null >"$out" 2>&1 &
    pid=$!
    T_PIDS+=("$pid")
    deadline=$(($(_t_now_ms) + 15000))
    while [ "$(_t_now_ms)" -lt "$deadline" ]; do
        line=$(grep -m1 -E '^PORT [0-9]+' "$out" 2>/dev/null) || line=
        if [ -n "$line" ]; then
            TUS_PORT=${line#PORT }
            TUS_PID=$pid
            TUS_ENDPOINT="http://127.0.0.1:$TUS_PORT/files/"
            export TUS_PORT TUS_PID TUS_DIR TUS_ENDPOINT
            return 0
        fi
        if ! _t_alive "$pid"; then
            echo "tus.sh: tus_server.mjs exited before printing PORT" >&2
            tail -n 30 "$out" >&2
            return 1
        fi
        sleep 0.05
    done
    echo "tus.sh: tus_server.mjs printed no PORT line within 15 s" >&2
    tail -n 30 "$out" >&2
    return 1
}

