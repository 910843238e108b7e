#!/usr/bin/env bash
# cru top, smoke test: a worker limited to 1 MiB/s keeps a 10 MiB job
# running; `cru top` runs on a pseudo-terminal (util-linux script), draws a
# few frames, quits on `q` with status 0 and leaves the terminal as it found
# it; the screen shows the job, its progress bar and the worker. `cru top
# --once` prints one plain frame for scripts.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

start_redis
start_graph_fake
start_workers 1 --concurrency 2 --rate-limit 1M
SRC=$CRU_SOURCE_ROOT
make_file "$SRC/top.bin" $((10 * 1024 * 1024))

url=$(graph_create_session dtop "top.bin")
id=$(submit_job "{\"id\":\"top-job-1\",\"source\":\"$SRC/top.bin\",\"target\":{\"type\":\"graph\",\"upload_url\":\"$url\"},\"chunk_size\":1310720}")
assert_eq "job submitted" top-job-1 "$id"

# running, and the worker's heartbeat is in
state= wid=
for _ in $(seq 100); do
    state=$(rcli HGET cru:job:top-job-1 state)
    wid=$(rcli HKEYS cru:workers | head -n 1)
    [ "$state" = running ] && [ -n "$wid" ] && break
    sleep 0.1
done
assert_eq "job running under the rate limit" running "$state"

strip() { sed -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\r//g' "$@"; }

# ------------------------------------------------------------ --once
rc=0
"$CRU" top --once >"$T_DIR/once.txt" 2>"$T_DIR/once.err" || rc=$?
assert_eq "top --once exits 0" 0 "$rc"
once=$(cat "$T_DIR/once.txt")
assert_contains "top --once shows the job id" "$once" "top-job-1"
assert_contains "top --once shows the worker" "$once" "$wid"
assert_contains "top --once shows jobs by state" "$once" "running 1"
if grep -q $'\x1b' "$T_DIR/once.txt"; then
    fail "top --once prints no escapes" "$(od -c "$T_DIR/once.txt" | head -n 3)"
else
    pass "top --once prints no escapes"
fi

# ------------------------------------------------------------ live, on a pty
# stdin of script: wait for 2-3 frames (500 ms apart), then q; keep the pipe
# open a little so script does not see end of input before top quits.
rc=0
{
    sleep 1.6
    printf q
    sleep 3
} | timeout -k 2 20 script -qfec "stty cols 120 rows 30; $CRU top --interval 500; echo; stty -a" \
    /dev/null >"$T_DIR/top.raw" 2>"$T_DIR/top.err" || rc=$?
assert_eq "top quits on q with status 0" 0 "$rc"
screen=$(strip "$T_DIR/top.raw")
frames=$(grep -c 'cru top ' <<<"$screen")
if [ "$frames" -ge 2 ] && [ "$frames" -le 6 ]; then pass "top drew $frames frames"; else
    fail "top drew 2-6 frames" "$frames frames"; fi
assert_contains "top shows the job id" "$screen" "top-job-1"
assert_contains "top shows the worker" "$screen" "$wid"
if grep -Eq 'top-job-1 +running +\[#*\.*\] +[0-9.]+%' <<<"$screen"; then
    pass "top shows a progress bar with percent for the job"
else
    fail "top shows a progress bar with percent for the job" "$(grep top-job-1 <<<"$screen" | tail -n 1)"
fi
assert_contains "top uses reverse video for the header" "$(cat "$T_DIR/top.raw")" $'\x1b[7m cru top'
assert_contains "top clears to the end of the screen" "$(cat "$T_DIR/top.raw")" $'\x1b[J'
# the terminal settings after top: canonical mode and echo are back on
tio=$(sed -n '/^speed /,$p' <<<"$screen" | tr '\n' ' ')
if grep -Eq '(^| )icanon ' <<<"$tio" && grep -Eq '(^| )echo ' <<<"$tio"; then
    pass "terminal restored (icanon, echo)"
else
    fail "terminal restored (icanon, echo)" "stty -a after top: $tio"
fi
grep -q $'\x1b\[?25h' "$T_DIR/top.raw" && pass "cursor shown again" || fail "cursor shown again" "no ESC[?25h"

# SIGTERM restores the terminal too
rc=0
{ sleep 5; } | timeout -k 2 20 script -qfec "stty cols 100 rows 20; ( sleep 1.2; kill -TERM \$\$ ) & exec $CRU top --interval 300" \
    /dev/null >"$T_DIR/term.raw" 2>&1 || rc=$?
assert_eq "top exits 0 on SIGTERM" 0 "$rc"
grep -q $'\x1b\[?25h' "$T_DIR/term.raw" && pass "SIGTERM: cursor shown again" || fail "SIGTERM: cursor shown again" "no ESC[?25h"

# ------------------------------------------------------------ usage
rc=0
"$CRU" top --help >"$T_DIR/help.txt" 2>&1 || rc=$?
assert_eq "top --help exits 0" 0 "$rc"
assert_contains "top --help names --once" "$(cat "$T_DIR/help.txt")" "--once"
rc=0
"$CRU" top --interval 5 >/dev/null 2>&1 || rc=$?
assert_eq "top --interval 5 is a usage error" 2 "$rc"
rc=0
"$CRU" top --once --redis "redis://127.0.0.1:$(free_port)/0" >/dev/null 2>&1 || rc=$?
assert_eq "top --once without Redis exits 3" 3 "$rc"

# done: cancel the job so the worker stops at once
rcli FCALL cru_cancel 0 top-job-1 >/dev/null
stop_workers
assert_eq "worker exits 0 on SIGTERM" 0 "${WORKER_RC[1]}"
