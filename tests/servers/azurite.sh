# shellcheck shell=bash
# tests/servers/azurite.sh - Azurite (Microsoft's official Azure Storage
# emulator, npm package "azurite") for integration tests of the azure
# target. Source it after tests/lib.sh:
#
#     . "$(dirname "$0")/../lib.sh"
#     . "$ROOT/tests/servers/azurite.sh"
#     start_azurite
#     url=$(azure_sas_url mycontainer path/to/blob.bin)
#
# Requests are authorised with an account SAS signed by the well-known
# development account devstoreaccount1 and its published key (the same for
# every Azurite installation; it protects nothing).

AZURITE_ACCOUNT=devstoreaccount1
AZURITE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

# start_azurite: azurite-blob on a free loopback port, data in
# $T_DIR/azurite; exports AZURITE_PORT, AZURITE_PID and
# AZURITE_URL=http://127.0.0.1:PORT/devstoreaccount1. Its output goes to
# $T_DIR/azurite.log.
start_azurite() {
    local bin=$ROOT/tests/servers/node_modules/.bin/azurite-blob attempt port pid deadline
    if [ ! -x "$bin" ]; then
        echo "azurite.sh: $bin missing (cd tests/servers && npm ci)" >&2
        return 1
    fi
    mkdir -p "$T_DIR/azurite"
    for attempt in 1 2 3; do
        port=$(free_port)
        "$bin" --blobHost 127.0.0.1 --blobPort "$port" --location "$T_DIR/azurite" \
            --skipApiVersionCheck --disableTelemetry --silent \
            </dev/null >>"$T_DIR/azurite.log" 2>&1 &
        pid=$!
        T_PIDS+=("$pid")
        deadline=$(($(_t_now_ms) + 20000))
        while _t_alive "$pid" && [ "$(_t_now_ms)" -lt "$deadline" ]; do
            # any HTTP answer (400 for a request without a resource) will do
            if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/$AZURITE_ACCOUNT"; then
                AZURITE_PORT=$port
                AZURITE_PID=$pid
                AZURITE_URL="http://127.0.0.1:$port/$AZURITE_ACCOUNT"
                export AZURITE_PORT AZURITE_PID AZURITE_URL
                return 0
            fi
            sleep 0.1
        done
        _t_kill "$pid"
        _t_forget "$pid"
        echo "azurite.sh: azurite-blob on port $port did not start (attempt $attempt)" >&2
        tail -n 20 "$T_DIR/azurite.log" >&2 2>/dev/null || true
    done
    echo "azurite.sh: could not start azurite-blob" >&2
    return 1
}

# azure_sas: print an account SAS query (no leading "?") for the blob
# service: sv=2021-08-06, ss=b, srt=sco, sp=rwdlac, valid for a day. The
# signature is HMAC-SHA256, under the base64-decoded account key, of
# account, permissions, services, resource types, start, expiry, IP,
# protocol, version and encryption scope, one per line with a trailing
# newline (the account SAS string-to-sign of versions 2020-12-06 and later).
azure_sas() {
    "$T_PY" - "$AZURITE_ACCOUNT" "$AZURITE_KEY" <<'PY'
import base64, datetime, hashlib, hmac, sys, urllib.parse
account, key = sys.argv[1], sys.argv[2]
expiry = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
f = {"sv": "2021-08-06", "ss": "b", "srt": "sco", "sp": "rwdlac", "se": expiry, "spr": "https,http"}
to_sign = "\n".join([account, f["sp"], f["ss"], f["srt"], "", f["se"], "", f["spr"], f["sv"], "", ""])
f["sig"] = base64.b64encode(hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()).decode()
print(urllib.parse.urlencode(f, quote_via=urllib.parse.quote, safe=""))
PY
}

# azure_sas_url CONTAINER BLOB: create CONTAINER if needed and print the
# URL of BLOB in it, carrying an account SAS.
azure_sas_url() {
    local container=$1 blob=$2 sas code enc
    sas=$(azure_sas) || return 1
    code=$(curl -s -o "$T_DIR/azurite-container.out" -w '%{http_code}' -X PUT \
        -H 'x-ms-version: 2021-08-06' -H 'Content-Length: 0' \
        "$AZURITE_URL/$container?restype=container&$sas") || code=000
    # 201 created, 409 ContainerAlreadyExists
    if [ "$code" != 201 ] && [ "$code" != 409 ]; then
        echo "azurite.sh: creating container $container: HTTP $code $(cat "$T_DIR/azurite-container.out")" >&2
        return 1
    fi
    enc=$("$T_PY" -c 'import sys, urllib.parse
print(urllib.parse.quote(sys.argv[1], safe="/"))' "$blob") || return 1
    echo "$AZURITE_URL/$container/$enc?$sas"
}

# azure_get URL [OUT]: download the blob at URL (with its SAS) to OUT (or
# stdout); fails on any status but 200.
azure_get() {
    local url=$1 out=${2:-/dev/stdout}
    curl -sS --fail -H 'x-ms-version: 2021-08-06' -o "$out" "$url"
}

# azure_status URL: print the HTTP status of a GET on the blob (404 when no
# blob was committed).
azure_status() {
    curl -s -o /dev/null -w '%{http_code}' -H 'x-ms-version: 2021-08-06' "$1"
}

# azure_block_list URL: print the blob's block list XML (committed and
# uncommitted blocks: Get Block List with blocklisttype=all).
azure_block_list() {
    curl -sS -H 'x-ms-version: 2021-08-06' "$1&comp=blocklist&blocklisttype=all"
}
