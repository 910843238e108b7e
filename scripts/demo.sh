#!/usr/bin/env bash
# demo.sh — cru end to end on this machine (make demo): its own redis-server
# on a free port, the Graph fake standing in for SharePoint/OneDrive, two
# workers; a generated 200 MiB file is submitted like a web app would, its
# progress shown live, and the bytes that arrived checked against the source.
# Everything it started is stopped when it ends.
set -uo pipefail
. "$(dirname "$0")/../tests/lib.sh"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

say "starting redis-server, the Graph fake and two workers (2 slots each)"
start_redis
start_graph_fake
start_workers 2 --concurrency 2
"$CRU" init >&2

say "generating a 200 MiB file in $CRU_SOURCE_ROOT"
make_file "$CRU_SOURCE_ROOT/report.bin" 200M

target="{\"type\":\"graph\",\"api\":\"$GRAPH_API\",\"drive_id\":\"demo\",\"path\":\"Reports/report.bin\",\"token\":\"$GRAPH_TOKEN\"}"
say "cru submit $CRU_SOURCE_ROOT/report.bin --target '{\"type\":\"graph\",\"drive_id\":\"demo\",\"path\":\"Reports/report.bin\",…}' --chunk-size 5M"
id=$("$CRU" submit "$CRU_SOURCE_ROOT/report.bin" --target "$target" --chunk-size 5M \
    --meta '{"requested_by":"demo"}') || exit 1
say "job $id queued; cru watch $id"
"$CRU" watch "$id"
rc=$?

say "cru status $id"
"$CRU" status "$id"
src_sha=$(sha "$CRU_SOURCE_ROOT/report.bin")
dst_sha=$(sha "$GRAPH_STORE/drive-demo/Reports/report.bin" 2>/dev/null || echo missing)
for i in 1 2; do
    echo "worker $i peak memory (VmHWM): $(vmhwm "$(worker_pid "$i")") kB" >&2
done
stop_workers
if [ "$rc" -eq 0 ] && [ "$src_sha" = "$dst_sha" ]; then
    say "verified: sha256 at the target equals the source ($src_sha)"
    exit 0
fi
say "FAILED: watch exit $rc, source $src_sha, target $dst_sha"
dump_logs
exit 1
