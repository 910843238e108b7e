#!/usr/bin/env bash
# cru_submit refuses every spec of tests/specs/bad_specs.tsv with exactly
# its message, stores nothing for them, accepts the good ones, and is
# idempotent on id. Also checks that `cru submit` passes the message on.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

start_redis
"$CRU" init >/dev/null || fail "cru init"
U='{"type":"graph","upload_url":"https://up.example/s1?tempauth=x"}'
S='"/srv/uploads/a.bin"'

while IFS=$'\t' read -r want spec; do
    case "$want" in '#'* | '') continue ;; esac
    spec=${spec//@U@/$U}
    spec=${spec//@S@/$S}
    got=$(rcli FCALL cru_submit 0 "$spec" 2>&1)
    assert_eq "refused: $want" "ERR invalid spec: $want" "$got"
done <"$ROOT/tests/specs/bad_specs.tsv"
assert_eq "refused specs store no job" 0 "$(rcli ZCARD cru:jobs)"
assert_eq "refused specs enqueue nothing" 0 "$(rcli XLEN cru:chunks)"
got=$(rcli FCALL cru_submit 0 2>&1)
assert_eq "refused: no spec argument" "ERR invalid spec: spec: missing" "$got"

# Good specs: every accepted form.
for spec in \
    "{\"source\":$S,\"target\":$U}" \
    "{\"source\":\"file:///srv/uploads/a.bin\",\"target\":$U,\"chunk_size\":62914560,\"meta\":{\"user\":42}}" \
    "{\"source\":{\"url\":\"/srv/a.bin\",\"size\":10},\"target\":{\"type\":\"graph\",\"me\":true,\"path\":\"Docs/a.bin\",\"token\":\"t\",\"conflict\":\"rename\"}}" \
    "{\"source\":$S,\"target\":{\"type\":\"graph\",\"site_id\":\"contoso.sharepoint.com,1,2\",\"path\":\"a\",\"token\":\"t\",\"api\":\"https://graph.microsoft.us/v1.0\"}}"; do
    id=$(rcli --raw FCALL cru_submit 0 "$spec")
    assert_eq "accepted: $spec" queued "$(rcli --raw HGET "cru:job:$id" state)"
done

# Idempotency: the same id returns the same job, no second message.
jobs=$(rcli ZCARD cru:jobs)
id1=$(rcli --raw FCALL cru_submit 0 "{\"id\":\"inv-42\",\"source\":$S,\"target\":$U}")
len=$(rcli XLEN cru:chunks)
id2=$(rcli --raw FCALL cru_submit 0 "{\"id\":\"inv-42\",\"source\":$S,\"target\":$U}")
assert_eq "idempotent: same id back" "inv-42 inv-42" "$id1 $id2"
assert_eq "idempotent: no second message" "$len" "$(rcli XLEN cru:chunks)"
assert_eq "idempotent: one job" $((jobs + 1)) "$(rcli ZCARD cru:jobs)"

# The job hash carries the contract fields, and no secret outside spec.
rcli --raw HGET cru:job:inv-42 source | grep -qx /srv/uploads/a.bin && pass "job source recorded" ||
    fail "job source recorded"
for f in state size chunk_size chunks chunks_done bytes_done created_ms updated_ms finished_ms error result meta target source; do
    [ "$(rcli HEXISTS cru:job:inv-42 $f)" = 1 ] || fail "job hash has $f"
done
pass "job hash has every contract field"
assert_eq "default graph chunk size" 10485760 "$(rcli --raw HGET cru:job:inv-42 chunk_size)"

# A prefix passed as the one key keeps jobs apart.
id=$(rcli --raw FCALL cru_submit 1 other "{\"source\":$S,\"target\":$U}")
assert_eq "prefix as key" queued "$(rcli --raw HGET "other:job:$id" state)"

# cru submit passes the function's message on, with exit status 2.
out=$("$CRU" submit /srv/a.bin --target '{"type":"graph"}' 2>&1)
rc=$?
assert_eq "cru submit: exit 2 on refusal" 2 "$rc"
assert_eq "cru submit: message" "cru submit: invalid spec: target: graph needs upload_url, or one of drive_id, site_id, me with path and token" "$out"
out=$("$CRU" submit /srv/a.bin --target '{nope' 2>&1)
assert_eq "cru submit: bad --target JSON" "cru submit: --target: not valid JSON" "$out"
out=$("$CRU" submit /srv/a.bin --target "$U" --chunk-size 10Q 2>&1)
assert_eq "cru submit: bad --chunk-size" "cru submit: --chunk-size: a positive number of bytes (K/M/G suffixes)" "$out"
id=$("$CRU" submit /srv/a.bin --target "$U" --chunk-size 640K --meta '{"k":"v"}' --id cli-1)
assert_eq "cru submit: prints the id" cli-1 "$id"
assert_eq "cru submit: chunk size" 655360 "$(rcli --raw HGET cru:job:cli-1 chunk_size)"
assert_eq "cru submit: meta" '{"k":"v"}' "$(rcli --raw HGET cru:job:cli-1 meta)"
