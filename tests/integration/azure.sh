#!/usr/bin/env bash
# End to end against Azurite (the official Azure Storage emulator): files of
# 1 byte, 10 MiB + 1 (default 8 MiB blocks and 1 MiB blocks), 50 MiB in
# 5 MiB blocks, an empty file, and one whose 50,001 one-byte chunks exceed
# Azure's 50,000 blocks go through Redis and two worker processes as Put
# Block + Put Block List, and must arrive byte for byte, with the committed
# block list in order and the job's counters right. Then: a redelivered
# finalize commits again without harm, a wrong SAS signature fails the job
# with Azure's error code, a cancelled job commits nothing, and no worker
# log ever shows a SAS signature.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/servers/azurite.sh"

start_redis || exit 1
start_azurite || exit 1
start_workers 2 --concurrency 2
SRC=$CRU_SOURCE_ROOT
CONTAINER=cru-test

make_file "$SRC/one.bin" 1
make_file "$SRC/ten.bin" $((10 * 1024 * 1024 + 1))
make_file "$SRC/big.bin" $((50 * 1024 * 1024))
make_file "$SRC/many.bin" 50001
: >"$SRC/empty.bin"

# azure_check_blocks URL CHUNKS SIZE: prints "ok" when the committed block
# list is exactly the ids of chunks 0..CHUNKS-1 in ascending order (base64
# of the 10-digit index), their sizes add up to SIZE, and no uncommitted
# block is left; else what is wrong.
azure_check_blocks() {
    azure_block_list "$1" | "$T_PY" -c '
import base64, sys, xml.etree.ElementTree as ET
chunks, size = int(sys.argv[1]), int(sys.argv[2])
try:
    root = ET.fromstring(sys.stdin.read())
except ET.ParseError as e:
    print("block list is not XML: %s" % e); sys.exit()
committed = root.findall("CommittedBlocks/Block")
names = [base64.b64decode(b.findtext("Name")).decode() for b in committed]
total = sum(int(b.findtext("Size")) for b in committed)
uncommitted = len(root.findall("UncommittedBlocks/Block"))
want = ["%010d" % i for i in range(chunks)]
if names != want:
    print("committed ids %s, want %s" % (names[:5], want[:5]))
elif total != size:
    print("committed blocks hold %d bytes, want %d" % (total, size))
elif uncommitted:
    print("%d uncommitted blocks left" % uncommitted)
else:
    print("ok")' "$2" "$3"
}

declare -a NAMES=() IDS=() SRCS=() URLS=()
# submit NAME SOURCE CHUNK_SIZE|- : a job uploading SOURCE to blob NAME.
submit() {
    local name=$1 src=$2 cs=$3 url id
    if ! url=$(azure_sas_url "$CONTAINER" "up/$name.bin"); then
        fail "$name: SAS URL" "azure_sas_url failed"
        return
    fi
    local args=("$SRC/$src" --target "{\"type\":\"azure\",\"blob_url\":\"$url\"}" --id "$name")
    [ "$cs" = - ] || args+=(--chunk-size "$cs")
    if ! id=$("$CRU" submit "${args[@]}" 2>"$T_DIR/submit.err"); then
        fail "submit $name" "$(cat "$T_DIR/submit.err")"
        return
    fi
    NAMES+=("$name") IDS+=("$id") SRCS+=("$SRC/$src") URLS+=("$url")
}

submit one one.bin -
submit ten ten.bin -
submit ten-1m ten.bin 1M
submit big big.bin 5M
submit empty empty.bin -
submit many many.bin 1

for i in "${!IDS[@]}"; do
    id=${IDS[i]} name=${NAMES[i]} url=${URLS[i]}
    state=$(wait_job "$id" 180)
    assert_eq "$name: state" "done" "$state" || continue
    size=$(stat -c %s "${SRCS[i]}")
    rm -f "$T_DIR/got.bin"
    azure_get "$url" "$T_DIR/got.bin" || echo "azure_get $name failed" >&2
    assert_file_same "$name: blob equals the source" "${SRCS[i]}" "$T_DIR/got.bin"
    read -r bd sz cd ch < <(rcli --raw HMGET "cru:job:$id" bytes_done size chunks_done chunks | tr '\n' ' ')
    assert_eq "$name: bytes_done == size" "$size $size" "$bd $sz"
    assert_eq "$name: chunks_done == chunks" "$ch" "$cd"
    assert_eq "$name: one progress event per chunk" "$ch" "$(chunk_events "$id")"
    "$CRU" status "$id" --json >"$T_DIR/status.json"
    assert_eq "$name: result.size" "$size" "$(json_get "$T_DIR/status.json" result.size)"
    etag=$(json_get "$T_DIR/status.json" result.etag)
    if [ -n "$etag" ]; then pass "$name: result.etag"; else fail "$name: result.etag" "missing"; fi
    if [ "$size" -gt 0 ]; then
        assert_eq "$name: committed block list" ok "$(azure_check_blocks "$url" "$ch" "$size")"
    else
        assert_eq "$name: no chunks for an empty file" 0 "$ch"
    fi
done

# The expected block counts: Azure's default 8 MiB, the 1 MiB and 5 MiB
# given, and 50,001 one-byte chunks raised to one 1 MiB block.
for pair in one:1 ten:2 ten-1m:11 big:10 many:1; do
    assert_eq "${pair%%:*}: chunks" "${pair#*:}" "$(rcli --raw HGET "cru:job:${pair%%:*}" chunks)"
done
assert_eq "many: chunk size raised to 1 MiB" 1048576 "$(rcli --raw HGET cru:job:many chunk_size)"
assert_contains "many: note says why" "$(rcli --raw HGET cru:job:many note)" "at most 50,000 blocks"

# A finalize redelivered after it succeeded (its worker lost before
# recording the answer) must commit again without harm: put the done job
# back to running and queue op=finalize by hand.
etag1=$(rcli --raw HGET cru:job:big result | "$T_PY" -c 'import json,sys; print(json.load(sys.stdin)["etag"])')
{
    echo MULTI
    echo "HSET cru:job:big state running"
    echo "HINCRBY cru:states done -1"
    echo "HINCRBY cru:states running 1"
    echo "XADD cru:chunks * job big op finalize"
    echo EXEC
} | rcli >/dev/null
assert_eq "big: finalize again: state" "done" "$(wait_job big 60)"
etag2=$(rcli --raw HGET cru:job:big result | "$T_PY" -c 'import json,sys; print(json.load(sys.stdin)["etag"])')
echo "big: etag after the first commit $etag1, after the second $etag2" >&2
if [ -n "$etag2" ] && [ "$etag1" != "$etag2" ]; then
    pass "big: finalize again: committed again (new ETag)"
else
    fail "big: finalize again: committed again (new ETag)" "etags $etag1 / $etag2"
fi
rm -f "$T_DIR/got.bin"
azure_get "${URLS[3]}" "$T_DIR/got.bin" || echo "azure_get big failed" >&2
assert_file_same "big: finalize again: blob unchanged" "$SRC/big.bin" "$T_DIR/got.bin"
assert_eq "big: finalize again: block list" ok \
    "$(azure_check_blocks "${URLS[3]}" 10 $((50 * 1024 * 1024)))"

# A wrong SAS signature: Azure refuses it (403) and the job fails at once
# with Azure's own error code, without the SAS in the error.
good=$(azure_sas_url "$CONTAINER" up/badsig.bin)
bad="${good%%sig=*}sig=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA%3D"
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'x-ms-version: 2021-08-06' \
    -H 'x-ms-blob-type: BlockBlob' --data-binary x "$bad")
assert_eq "wrong SAS: Azurite refuses it" 403 "$code"
"$CRU" submit "$SRC/ten.bin" --id badsig --chunk-size 1M \
    --target "{\"type\":\"azure\",\"blob_url\":\"$bad\"}" >/dev/null 2>"$T_DIR/submit.err" ||
    fail "submit badsig" "$(cat "$T_DIR/submit.err")"
assert_eq "wrong SAS: state" failed "$(wait_job badsig 60)"
err=$(rcli --raw HGET cru:job:badsig error)
echo "wrong SAS: error: $err" >&2
case "$err" in
    *AuthenticationFailed* | *AuthorizationFailure*) pass "wrong SAS: error has Azure's code" ;;
    *) fail "wrong SAS: error has Azure's code" "$err" ;;
esac
assert_contains "wrong SAS: error has the status" "$err" "HTTP 403"
case "$err" in
    *sig=*) fail "wrong SAS: no SAS in the error" "$err" ;;
    *) pass "wrong SAS: no SAS in the error" ;;
esac
assert_eq "wrong SAS: no retries" 0 "$(rcli --raw HGET cru:job:badsig retries)"

# A cancelled parallel job commits nothing. Slow workers (1 MiB/s per slot,
# 2 MiB blocks) so it is cancelled with blocks done and blocks to go.
stop_workers
for i in 1 2; do assert_eq "worker $i exits 0 on SIGTERM" 0 "${WORKER_RC[i]}"; done
make_file "$SRC/slow.bin" $((20 * 1024 * 1024))
cancel_url=$(azure_sas_url "$CONTAINER" up/cancel.bin)
"$CRU" submit "$SRC/slow.bin" --id cancel --chunk-size 2M \
    --target "{\"type\":\"azure\",\"blob_url\":\"$cancel_url\"}" >/dev/null 2>"$T_DIR/submit.err" ||
    fail "submit cancel" "$(cat "$T_DIR/submit.err")"
start_workers 2 --concurrency 2 --rate-limit 1M
deadline=$(($(_t_now_ms) + 30000))
while [ "$(rcli --raw HGET cru:job:cancel chunks_done)" -lt 1 ] 2>/dev/null ||
    [ -z "$(rcli --raw HGET cru:job:cancel chunks_done)" ]; do
    [ "$(_t_now_ms)" -lt "$deadline" ] || break
    sleep 0.1
done
done_before=$(rcli --raw HGET cru:job:cancel chunks_done)
"$CRU" cancel cancel >/dev/null 2>"$T_DIR/cancel.err" || fail "cru cancel" "$(cat "$T_DIR/cancel.err")"
echo "cancel: cancelled after $done_before of 10 chunks" >&2
if [ "${done_before:-0}" -gt 0 ] && [ "$done_before" -lt 10 ]; then
    pass "cancel: cancelled in the middle"
else
    fail "cancel: cancelled in the middle" "chunks_done=$done_before"
fi
# let the blocks in flight end and the queued messages be acknowledged
deadline=$(($(_t_now_ms) + 30000))
while :; do
    pending=$(rcli --raw XPENDING cru:chunks workers | head -n1)
    lag=$(rcli --raw XINFO GROUPS cru:chunks | awk 'p {print; exit} /^lag$/ {p=1}')
    [ "$pending" = 0 ] && [ "${lag:-0}" = 0 ] && break
    [ "$(_t_now_ms)" -lt "$deadline" ] || break
    sleep 0.2
done
assert_eq "cancel: queue drained" "0 0" "$pending ${lag:-0}"
assert_eq "cancel: state" cancelled "$(rcli --raw HGET cru:job:cancel state)"
assert_eq "cancel: no blob committed" 404 "$(azure_status "$cancel_url")"
committed=$(azure_block_list "$cancel_url" | "$T_PY" -c '
import sys, xml.etree.ElementTree as ET
text = sys.stdin.read()
try:
    print(len(ET.fromstring(text).findall("CommittedBlocks/Block")))
except Exception:
    print("no block list: " + text[:200])')
assert_eq "cancel: no committed blocks" 0 "$committed"
stop_workers

# The SAS (its sig= field) never reaches a log line or an event.
if rcli --raw XRANGE cru:events - + | grep -q 'sig='; then
    fail "no SAS in the events" "$(rcli --raw XRANGE cru:events - + | grep -m1 'sig=' | head -c 400)"
else
    pass "no SAS in the events"
fi
if grep -l 'sig=' "$T_DIR"/worker-*.log >/dev/null 2>&1; then
    fail "no SAS in the worker logs" "$(grep -h -m3 'sig=' "$T_DIR"/worker-*.log | head -c 400)"
else
    pass "no SAS in the worker logs"
fi
