#!/usr/bin/env bash
# tests/run.sh - run cru's tests and count PASS/FAIL lines.
#
#   tests/run.sh              every $UNIT_DIR/*_test, then tests/integration/*.sh
#   tests/run.sh NAME...      only the named tests; NAME may be a path, an
#                             integration script name (with or without .sh)
#                             or a unit test program name in $UNIT_DIR
#
# Environment: UNIT_DIR (default build/tests), TEST_TIMEOUT (seconds per test
# file, default 300), plus whatever the tests read (CRU, KEEP, ...).
# BUILDS="label:unit_dir:cru_binary:[tests] ..." runs the suite once per
# build (make test: the normal build, then the ASan+UBSan one) and sums the
# counts; tests, when given, is a comma-separated list of integration tests
# to run for that build (all unit tests always run).
#
# Each test prints "PASS name" / "FAIL name: why" on stdout. A file that times
# out, exits non-zero without printing any FAIL line, or prints neither PASS
# nor FAIL lines counts as one extra failure named after the file.
# Last line of output: "N passed, M failed". Exit 1 if M > 0 or nothing ran.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
UNIT_DIR=${UNIT_DIR:-$ROOT/build/tests}
case "$UNIT_DIR" in /*) ;; *) UNIT_DIR=$PWD/$UNIT_DIR ;; esac
TEST_TIMEOUT=${TEST_TIMEOUT:-300}
export ROOT TEST_TIMEOUT

passed=0
failed=0
ran=0
cur_pid=
OUT=$(mktemp "${TMPDIR:-/tmp}/cru-run.XXXXXX")

# shellcheck disable=SC2317  # invoked from the trap
on_exit() {
    # a test still running (runner interrupted): kill its process group
    if [ -n "$cur_pid" ]; then
        kill -TERM -- "-$cur_pid" 2>/dev/null || true
        sleep 0.5
        kill -KILL -- "-$cur_pid" 2>/dev/null || true
    fi
    rm -f -- "$OUT"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# run_suite [LABEL]: the selected tests against $UNIT_DIR and $CRU.
run_suite() {
    local label=${1:+ [$1]} tests=() a f t name cmd rc np nf t0
    if [ "${#ARGS[@]}" -eq 0 ]; then
        if [ -d "$UNIT_DIR" ]; then
            for f in "$UNIT_DIR"/*_test; do
                [ -f "$f" ] && [ -x "$f" ] && tests+=("$f")
            done
        else
            echo "run.sh: note: no unit test directory $UNIT_DIR" >&2
        fi
        for f in "$ROOT"/tests/integration/*.sh; do
            [ -f "$f" ] || continue
            if [ -n "${ONLY:-}" ]; then
                case ",$ONLY," in *",$(basename "$f" .sh),"*) ;; *) continue ;; esac
            fi
            tests+=("$f")
        done
    else
        for a in "${ARGS[@]}"; do
            if [ -f "$a" ]; then
                case "$a" in /*) tests+=("$a") ;; *) tests+=("$PWD/$a") ;; esac
            elif [ -f "$ROOT/tests/integration/$a" ]; then
                tests+=("$ROOT/tests/integration/$a")
            elif [ -f "$ROOT/tests/integration/$a.sh" ]; then
                tests+=("$ROOT/tests/integration/$a.sh")
            elif [ -x "$UNIT_DIR/$a" ]; then
                tests+=("$UNIT_DIR/$a")
            else
                echo "FAIL $a: no such test"
                failed=$((failed + 1))
            fi
        done
    fi

    for t in "${tests[@]}"; do
        name=$(basename "$t")
        case "$t" in
            *.sh) cmd=(bash "$t") ;;
            *) cmd=("$t") ;;
        esac
        echo "=== $name$label"
        t0=$SECONDS
        : >"$OUT"
        # timeout puts the test in its own process group (pgid = its pid), so
        # the whole group can be cleaned up afterwards.
        timeout -k 10 "$TEST_TIMEOUT" "${cmd[@]}" </dev/null >"$OUT" &
        cur_pid=$!
        # show stdout live; tail exits once the test has finished
        tail -s 0.1 -n +1 -f --pid="$cur_pid" -- "$OUT" || true
        rc=0
        wait "$cur_pid" || rc=$?
        # anything the test left behind in its process group
        kill -KILL -- "-$cur_pid" 2>/dev/null || true
        cur_pid=
        ran=$((ran + 1))
        echo "--- $name$label: $((SECONDS - t0)) s"

        np=$(grep -c '^PASS ' "$OUT" || true)
        nf=$(grep -c '^FAIL ' "$OUT" || true)
        passed=$((passed + np))
        failed=$((failed + nf))
        if [ "$rc" -eq 124 ]; then
            echo "FAIL $name: timed out after ${TEST_TIMEOUT}s"
            failed=$((failed + 1))
        elif [ "$rc" -eq 137 ]; then
            echo "FAIL $name: killed (SIGKILL, or no exit ${TEST_TIMEOUT}s+10s after timeout)"
            failed=$((failed + 1))
        elif [ "$rc" -ne 0 ] && [ "$nf" -eq 0 ]; then
            echo "FAIL $name: exited with status $rc"
            failed=$((failed + 1))
        elif [ "$np" -eq 0 ] && [ "$nf" -eq 0 ]; then
            echo "FAIL $name: printed no PASS line"
            failed=$((failed + 1))
        elif [ "$rc" -ne 0 ]; then
            echo "(exit status $rc)"
        fi
    done
}

ARGS=("$@")
if [ -n "${BUILDS:-}" ]; then
    for b in $BUILDS; do
        IFS=: read -r label UNIT_DIR CRU only <<<"$b"
        case "$UNIT_DIR" in /*) ;; *) UNIT_DIR=$PWD/$UNIT_DIR ;; esac
        case "$CRU" in /*) ;; *) CRU=$PWD/$CRU ;; esac
        export CRU
        ONLY=${only:-}
        run_suite "$label"
    done
else
    run_suite ""
fi

echo "$passed passed, $failed failed"
if [ "$failed" -gt 0 ] || [ "$ran" -eq 0 ]; then
    exit 1
fi
exit 0
