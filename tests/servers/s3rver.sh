# shellcheck shell=bash
# tests/servers/s3rver.sh — s3rver (npm) for the S3 tests; source after
# tests/lib.sh. s3rver checks the protocol flow, not signatures (any secret
# passes): see shared/PROTOCOLS.md.

# start_s3rver BUCKET...: s3rver on a free port with the buckets created;
# exports S3_ENDPOINT and the credentials s3rver expects.
start_s3rver() {
    local port pid deadline args=()
    port=$(free_port)
    for b in "$@"; do args+=(--configure-bucket "$b"); done
    mkdir -p "$T_DIR/s3rver"
    "$ROOT/tests/servers/node_modules/.bin/s3rver" -d "$T_DIR/s3rver" -a 127.0.0.1 -p "$port" \
        "${args[@]}" </dev/null >"$T_DIR/s3rver.log" 2>&1 &
    pid=$!
    T_PIDS+=("$pid")
    deadline=$(($(_t_now_ms) + 15000))
    until grep -q "listening" "$T_DIR/s3rver.log" 2>/dev/null; do
        if ! _t_alive "$pid" || [ "$(_t_now_ms)" -gt "$deadline" ]; then
            echo "s3rver.sh: s3rver did not start" >&2
            cat "$T_DIR/s3rver.log" >&2
            return 1
        fi
        sleep 0.05
    done
    S3_ENDPOINT="http://127.0.0.1:$port"
    AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
    export S3_ENDPOINT AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
}

# s3_curl PATH [CURL ARGS...]: a signed request to s3rver (path-style).
s3_curl() {
    local path=$1
    shift
    curl -sS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
        -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@" "$S3_ENDPOINT/$path"
}

# s3_target BUCKET KEY: the target JSON for cru.
s3_target() {
    printf '{"type":"s3","endpoint":"%s","region":"us-east-1","bucket":"%s","key":"%s","path_style":true}' \
        "$S3_ENDPOINT" "$1" "$2"
}
