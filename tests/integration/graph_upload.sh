#!/usr/bin/env bash
# End to end: files of 1 byte, 320 KiB, 10 MiB + 1 and 100 MiB go through
# Redis and two worker processes to the strict Graph fake, in both Graph
# modes (upload_url given by the app; drive_id/me/site_id + path + token),
# and must arrive byte for byte, with the job's counters and events right.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

start_redis
start_graph_fake
start_workers 2 --concurrency 2
SRC=$CRU_SOURCE_ROOT

make_file "$SRC/one.bin" 1
make_file "$SRC/frag.bin" 327680
make_file "$SRC/ten.bin" $((10 * 1024 * 1024 + 1))
make_file "$SRC/big.bin" $((100 * 1024 * 1024))

# name source chunk_size target_json stored_path
declare -a NAMES=() IDS=() SRCS=() STORED=()
submit() {
    local name=$1 src=$2 cs=$3 target=$4 stored=$5 id
    local args=("$SRC/$src" --target "$target" --id "$name")
    [ "$cs" = - ] || args+=(--chunk-size "$cs")
    if ! id=$("$CRU" submit "${args[@]}" 2>"$T_DIR/submit.err"); then
        fail "submit $name" "$(cat "$T_DIR/submit.err")"
        return
    fi
    NAMES+=("$name") IDS+=("$id") SRCS+=("$SRC/$src") STORED+=("$stored")
}

for f in one frag ten big; do
    url=$(graph_create_session d1 "url/$f.bin")
    cs=-
    [ $f = big ] && cs=60M
    submit "url-$f" $f.bin $cs "{\"type\":\"graph\",\"upload_url\":\"$url\"}" "drive-d1/url/$f.bin"
done
submit path-one one.bin - "{\"type\":\"graph\",\"api\":\"$GRAPH_API\",\"drive_id\":\"d2\",\"path\":\"p/one.bin\",\"token\":\"$GRAPH_TOKEN\"}" drive-d2/p/one.bin
submit path-frag frag.bin 320K "{\"type\":\"graph\",\"api\":\"$GRAPH_API\",\"me\":true,\"path\":\"p/frag.bin\",\"token\":\"$GRAPH_TOKEN\",\"conflict\":\"replace\"}" me/p/frag.bin
submit path-ten ten.bin 960K "{\"type\":\"graph\",\"api\":\"$GRAPH_API\",\"site_id\":\"s1\",\"path\":\"p/ten file.bin\",\"token\":\"$GRAPH_TOKEN\"}" "site-s1/p/ten file.bin"
submit path-big big.bin 60M "{\"type\":\"graph\",\"api\":\"$GRAPH_API\",\"drive_id\":\"d2\",\"path\":\"p/big.bin\",\"token\":\"$GRAPH_TOKEN\"}" drive-d2/p/big.bin

for i in "${!IDS[@]}"; do
    id=${IDS[i]} name=${NAMES[i]}
    state=$(wait_job "$id" 180)
    assert_eq "$name: state" done "$state" || continue
    size=$(stat -c %s "${SRCS[i]}")
    assert_file_same "$name: bytes at the target" "${SRCS[i]}" "$GRAPH_STORE/${STORED[i]}"
    read -r bd sz cd ch < <(rcli --raw HMGET "cru:job:$id" bytes_done size chunks_done chunks | tr '\n' ' ')
    assert_eq "$name: bytes_done == size" "$size $size" "$bd $sz"
    assert_eq "$name: chunks_done == chunks" "$ch" "$cd"
    assert_eq "$name: one progress event per chunk" "$ch" "$(chunk_events "$id")"
    "$CRU" status "$id" --json >"$T_DIR/status.json"
    assert_eq "$name: result.size" "$size" "$(json_get "$T_DIR/status.json" result.size)"
    qx=$(json_get "$T_DIR/status.json" result.quickXorHash)
    assert_eq "$name: result.quickXorHash" "$(quickxor "${SRCS[i]}")" "$qx"
done

# 60 MiB chunks must not cost 60 MiB of memory.
for i in 1 2; do
    kb=$(vmhwm "$(worker_pid $i)")
    echo "worker $i VmHWM ${kb} kB after 100 MiB uploads with 60 MiB chunks" >&2
    if [ "$kb" -lt $((32 * 1024)) ]; then pass "worker $i peak memory ${kb} kB < 32 MiB"; else
        fail "worker $i peak memory" "${kb} kB"; fi
done

# No PUT to an upload URL carried Authorization.
stats=$(curl -s "http://127.0.0.1:$GRAPH_PORT/_stats")
assert_contains "no Authorization on upload URL PUTs" "$stats" '"put_auth_refused": 0'

stop_workers
for i in 1 2; do assert_eq "worker $i exits 0 on SIGTERM" 0 "${WORKER_RC[i]}"; done
