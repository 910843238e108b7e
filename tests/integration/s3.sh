#!/usr/bin/env bash
# S3 multipart against s3rver: files of 0 and 1 byte (single PutObject), 10
# MiB + 1 (8 MiB parts) and 50 MiB in 5 MiB parts through two workers, read
# back byte for byte; cancel aborts the multipart upload; no credentials is
# a clear error; and 200 parts through 4 workers, some SIGKILLed, complete
# exactly once.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/servers/s3rver.sh"

start_redis
start_s3rver bkt
export CRU_LEASE_MS=1500 CRU_RETRY_BASE_MS=100
start_workers 2 --concurrency 2
SRC=$CRU_SOURCE_ROOT
: >"$SRC/empty.bin"
make_file "$SRC/one.bin" 1
make_file "$SRC/ten.bin" $((10 * 1024 * 1024 + 1))
make_file "$SRC/fifty.bin" $((50 * 1024 * 1024))

check_object() { # NAME ID FILE KEY
    local name=$1 id=$2 file=$3 key=$4
    assert_eq "$name: done" done "$(wait_job "$id" 120)" || {
        echo "error: $(rcli --raw HGET "cru:job:$id" error)" >&2
        return
    }
    s3_curl "bkt/$key" -o "$T_DIR/got.bin"
    assert_file_same "$name: object equals the source" "$file" "$T_DIR/got.bin"
    read -r bd sz cd ch < <(rcli --raw HMGET "cru:job:$id" bytes_done size chunks_done chunks | tr '\n' ' ')
    assert_eq "$name: bytes_done == size, chunks_done == chunks" "$sz $ch" "$bd $cd"
}

id0=$("$CRU" submit "$SRC/empty.bin" --target "$(s3_target bkt e/empty.bin)")
id1=$("$CRU" submit "$SRC/one.bin" --target "$(s3_target bkt o/one.bin)")
id2=$("$CRU" submit "$SRC/ten.bin" --target "$(s3_target bkt "t/ten file.bin")")
id3=$("$CRU" submit "$SRC/fifty.bin" --target "$(s3_target bkt f/fifty.bin)" --chunk-size 5M)
check_object "empty file" "$id0" "$SRC/empty.bin" e/empty.bin
check_object "1 byte" "$id1" "$SRC/one.bin" o/one.bin
check_object "10 MiB + 1" "$id2" "$SRC/ten.bin" "t/ten%20file.bin"
check_object "50 MiB in 5 MiB parts" "$id3" "$SRC/fifty.bin" f/fifty.bin
assert_eq "50 MiB: 10 parts" 10 "$(rcli --raw HGET "cru:job:$id3" chunks)"
"$CRU" status "$id3" --json >"$T_DIR/s.json"
case "$(json_get "$T_DIR/s.json" result.etag)" in
*-10*|\"*\") pass "50 MiB: result has the object's ETag" ;;
*) fail "50 MiB: result has the object's ETag" "$(json_get "$T_DIR/s.json" result)" ;;
esac

# A part whose ETag is not its MD5 (damaged on the way) is sent again.
"$T_PY" -u "$ROOT/tests/fakes/etag_proxy.py" --upstream "$S3_ENDPOINT" >"$T_DIR/proxy.out" 2>"$T_DIR/proxy.log" &
T_PIDS+=("$!")
for _ in $(seq 50); do grep -q PORT "$T_DIR/proxy.out" && break; sleep 0.1; done
proxy="http://127.0.0.1:$(awk '/PORT/ {print $2}' "$T_DIR/proxy.out")"
target="{\"type\":\"s3\",\"endpoint\":\"$proxy\",\"region\":\"us-east-1\",\"bucket\":\"bkt\",\"key\":\"m/md5.bin\",\"path_style\":true}"
id=$("$CRU" submit "$SRC/fifty.bin" --target "$target" --chunk-size 5M)
check_object "part with a wrong ETag" "$id" "$SRC/fifty.bin" m/md5.bin
assert_eq "wrong ETag: the part was sent again (one retry)" 1 "$(rcli --raw HGET "cru:job:$id" retries)"
assert_contains "wrong ETag: says why" "$(rcli --raw HGET "cru:job:$id" last_error)" "is not the MD5 of the bytes sent"

# Cancel a running multipart job: no multipart upload left behind.
stop_workers
start_workers 1 --concurrency 2 --rate-limit 4M
id=$("$CRU" submit "$SRC/fifty.bin" --target "$(s3_target bkt c/cancelled.bin)" --chunk-size 5M)
for _ in $(seq 100); do
    [ "$(rcli --raw HGET "cru:job:$id" state)" = running ] && break
    sleep 0.1
done
sleep 1
out=$("$CRU" cancel "$id")
assert_contains "cancel: accepted" "$out" "cancelled"
for _ in $(seq 100); do
    [ "$(s3_curl "bkt?uploads" | grep -c "<Upload>")" = 0 ] && break
    sleep 0.1
done
assert_eq "cancel: no multipart upload left (ListMultipartUploads)" 0 "$(s3_curl "bkt?uploads" | grep -c "<Upload>")"
assert_eq "cancel: state" cancelled "$(rcli --raw HGET "cru:job:$id" state)"
code=$(s3_curl "bkt/c/cancelled.bin" -o /dev/null -w '%{http_code}')
assert_eq "cancel: no object" 404 "$code"

# No credentials: a clear error on the job.
stop_workers
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
start_workers 1 --concurrency 1
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
id=$("$CRU" submit "$SRC/one.bin" --target "$(s3_target bkt n/nocreds.bin)")
assert_eq "no credentials: failed" failed "$(wait_job "$id" 30)"
assert_contains "no credentials: says so" "$(rcli --raw HGET "cru:job:$id" error)" "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
stop_workers

# 200 parts, 4 workers, SIGKILLs while parts upload: one finalize, once.
# (Kills stop before the last part: a worker killed in the middle of
# CompleteMultipartUpload would, by design, have it sent again.)
make_file "$SRC/big.bin" $((200 * 5 * 1024 * 1024 - 12345))
start_workers 4 --concurrency 2 --rate-limit 20M
id=$("$CRU" submit "$SRC/big.bin" --target "$(s3_target bkt p/parallel.bin)" --chunk-size 5M)
kills=0
parts_done() { local n; n=$(rcli --raw HGET "cru:job:$id" chunks_done); echo "${n:-0}"; }
while [ "$(parts_done)" -lt 199 ] && [ $kills -lt 40 ]; do
    sleep "0.$((5 + RANDOM % 5))"
    [ "$(rcli --raw HGET "cru:job:$id" state)" = failed ] && break
    [ "$(parts_done)" -lt 199 ] || break
    victims=("${!T_WORKER_PIDS[@]}")
    kill_worker "${victims[RANDOM % ${#victims[@]}]}" KILL
    kills=$((kills + 1))
    start_workers 1 --concurrency 2 --rate-limit 20M
done
echo "parallel: $kills workers killed while parts uploaded" >&2
assert_eq "200 parts: done" done "$(wait_job "$id" 180)"
if [ "$kills" -ge 3 ]; then pass "200 parts: workers were killed ($kills)"; else fail "200 parts: workers were killed" "$kills"; fi
assert_eq "200 parts: 200 chunks" 200 "$(rcli --raw HGET "cru:job:$id" chunks)"
completes=$(grep -c 'Stored object "p/parallel.bin"' "$T_DIR/s3rver.log")
assert_eq "200 parts: exactly one CompleteMultipartUpload" 1 "$completes"
s3_curl "bkt/p/parallel.bin" -o "$T_DIR/big.got"
assert_file_same "200 parts: object equals the source" "$SRC/big.bin" "$T_DIR/big.got"
rm -f "$T_DIR/big.got"
assert_eq "nothing pending" 0 "$(rcli XPENDING cru:chunks workers | head -1)"
if grep -q "S3RVER" "$T_DIR"/worker-*.log; then fail "no credentials in logs"; else
    pass "no credentials in logs"; fi
