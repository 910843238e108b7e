# shellcheck shell=bash
# tests/servers/nginx.sh — nginx (Debian's nginx-light) as an http(s) source
# for the tests; source after tests/lib.sh. Installs nginx-light through
# scripts/deps.sh when /usr/sbin/nginx is missing. nginx runs in the
# foreground as root from a config written into $T_DIR (pid, logs and temp
# paths there too), bound to 127.0.0.1 only; its pid goes to T_PIDS.

T_NGINX_N=0

# start_nginx ROOTDIR [EXTRA_SERVER_DIRECTIVES]: serve ROOTDIR on a free port
# of 127.0.0.1 from tests/servers/nginx.conf.in; EXTRA is pasted into the
# file server's server block (e.g. 'max_ranges 0;' or a location). Exports
# NGINX_URL (http://127.0.0.1:PORT), NGINX_REDIRECT_URL (a second server
# that answers every request with a 302 to the same path on NGINX_URL),
# NGINX_PID, NGINX_DIR and NGINX_ACCESS_LOG (one line per request:
# addr "request" status bytes "range").
start_nginx() {
    local root=$1 extra=${2:-} attempt dir port rport pid deadline
    if [ ! -x /usr/sbin/nginx ]; then
        bash "$ROOT/scripts/deps.sh" nginx-light >&2 || {
            echo "nginx.sh: could not install nginx-light" >&2
            return 1
        }
    fi
    mkdir -p "$root"
    root=$(cd "$root" && pwd)
    for attempt in 1 2 3; do
        T_NGINX_N=$((T_NGINX_N + 1))
        dir=$T_DIR/nginx-$T_NGINX_N
        mkdir -p "$dir"
        port=$(free_port)
        rport=$(free_port)
        [ "$port" != "$rport" ] || rport=$(free_port)
        "$T_PY" - "$ROOT/tests/servers/nginx.conf.in" "$dir/nginx.conf" "$dir" "$root" \
            "$port" "$rport" "$extra" <<'PY' || return 1
import sys
src, dst, d, root, port, rport, extra = sys.argv[1:8]
text = open(src).read()
for k, v in (("@DIR@", d), ("@ROOT@", root), ("@PORT@", port),
             ("@REDIRECT_PORT@", rport), ("@EXTRA@", extra)):
    text = text.replace(k, v)
open(dst, "w").write(text)
PY
        /usr/sbin/nginx -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" \
            -g 'daemon off;' </dev/null >"$dir/nginx.out" 2>&1 &
        pid=$!
        T_PIDS+=("$pid")
        deadline=$(($(_t_now_ms) + 10000))
        while _t_alive "$pid" && [ "$(_t_now_ms)" -lt "$deadline" ]; do
            if curl -s -o /dev/null "http://127.0.0.1:$port/" &&
                curl -s -o /dev/null "http://127.0.0.1:$rport/"; then
                : >"$dir/access.log" # forget the readiness probes
                NGINX_URL="http://127.0.0.1:$port"
                NGINX_REDIRECT_URL="http://127.0.0.1:$rport"
                NGINX_PID=$pid NGINX_DIR=$dir NGINX_ACCESS_LOG=$dir/access.log
                export NGINX_URL NGINX_REDIRECT_URL NGINX_PID NGINX_DIR NGINX_ACCESS_LOG
                return 0
            fi
            sleep 0.05
        done
        _t_kill "$pid"
        _t_forget "$pid"
        echo "nginx.sh: nginx on port $port did not start (attempt $attempt)" >&2
        cat "$dir/nginx.out" "$dir/error.log" >&2 2>/dev/null || true
    done
    echo "nginx.sh: could not start nginx" >&2
    return 1
}

# nginx_requests: lines in the current nginx's access log (requests served).
nginx_requests() {
    local n
    n=$(wc -l <"$NGINX_ACCESS_LOG" 2>/dev/null) || n=0
    echo "$n"
}
