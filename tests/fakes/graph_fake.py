#!/usr/bin/env python3
"""graph_fake.py - a strict fake of Microsoft Graph upload sessions.

Used by cru's integration tests in place of SharePoint / OneDrive.  Python 3.11
standard library only.  It follows "Graph docs: driveitem-createuploadsession"
(Upload large files with an upload session) and the simple-upload
("driveitem-put-content") API, and is deliberately stricter than the real
service wherever the docs say a client MUST do something.  The HTTP
plumbing, test hooks and command line below are shared with google_fake.py
and live in fakebase.py (next to this file).

Command line
------------
    graph_fake.py --port P --store DIR --token TOKEN [--host 127.0.0.1]
                  [--idle-timeout SECONDS]
    graph_fake.py --selftest

--port 0 picks a free port.  Once bound, the fake prints ``PORT <n>`` on
stdout (one line, flushed) and writes ``<n>`` to DIR/port.  Completed uploads
are stored as DIR/files/<drive-key>/<path>, with drive-key ``drive-<id>``,
``me`` or ``site-<id>``; upload sessions keep their bytes in
DIR/sessions/<sid>.part until the last fragment arrives.  Every request is
logged to stderr as one line: ``graph_fake: METHOD /path STATUS``.
--idle-timeout (default 30 s) is the socket timeout: a client that stalls that
long mid-body loses the connection and the fake keeps the bytes that arrived.

Graph API surface ({base} is any prefix such as /v1.0, or empty)
---------------------------------------------------------------
* POST {base}/drives/{drive-id}/root:/{path}:/createUploadSession
  POST {base}/me/drive/root:/{path}:/createUploadSession
  POST {base}/sites/{site-id}/drive/root:/{path}:/createUploadSession
  POST {base}/drives/{drive-id}/items/{parent-id}:/{name}:/createUploadSession
      (stored as <drive-key>/<parent-id>/<name>; the items form is also
      accepted after /me/drive and /sites/{id}/drive)
  - needs ``Authorization: Bearer <TOKEN>`` -> else 401
    InvalidAuthenticationToken;
  - path segments are percent-decoded; empty, ``.``/``..`` segments, an
    encoded ``/`` and characters SharePoint forbids (" * : < > ? \\ | and
    control characters) -> 400;
  - optional JSON body ``{"item": {"@microsoft.graph.conflictBehavior":
    "fail|replace|rename", "name": ..., "fileSize": ...}}``; invalid JSON,
    an unknown conflictBehavior, a ``name`` that is not the path's last
    segment, or ``deferCommit: true`` -> 400.  ``fileSize``, when given,
    must later equal the Content-Range total;
  - conflictBehavior defaults to "replace" when absent (the docs only
    spell out a default for PUT, which is replace; the fake uses that
    for sessions too so clients that send no body still work);
  - "fail" and the target already exists -> 409 nameAlreadyExists;
  - answers 200 ``{"uploadUrl": "http://HOST:P/upload/<sid>?tempauth=<t>",
    "expirationDateTime": "<now+1h>", "nextExpectedRanges": ["0-"]}``.

* PUT <uploadUrl>  (fragment upload)
  - no ``Authorization`` header allowed (the URL is pre-authenticated;
    the docs warn an Authorization header may cause 401) -> 401;
  - unknown/expired/finished session, wrong or missing tempauth -> 404
    itemNotFound;
  - ``Content-Length`` required; ``Content-Range: bytes a-b/TOTAL``
    required and well formed (b inclusive, a <= b < TOTAL, TOTAL > 0);
    Content-Length must equal b-a+1; all -> 400 otherwise;
  - Content-Length > 60 MiB (62914560) -> 413;
  - TOTAL must not change between fragments (nor differ from fileSize) -> 400;
  - a < next expected offset -> 416 invalidRange; a > next -> 400;
  - a non-final fragment (b+1 < TOTAL) must be a multiple of 320 KiB
    (327680 bytes) long -> 400;
  - the body is streamed to disk in 1 MiB blocks; if the client sends
    fewer bytes than announced, what arrived is kept, so the next expected
    offset may then lie inside the fragment;
  - non-final -> 202 ``{"expirationDateTime", "nextExpectedRanges":
    ["<b+1>-"]}``; final -> file moved into place, 201 driveItem
    ``{"id", "name", "size", "webUrl", "file": {"hashes":
    {"quickXorHash"}}, ...}``.  With conflictBehavior "fail" and the target
    now existing the final fragment gets 409 nameAlreadyExists and the
    session is dropped.  "rename" stores as "name 1.ext", "name 2.ext"...
    Once completed the session is gone (404).
  - Fragments of one session are serialised (a second concurrent PUT waits).
* GET <uploadUrl>    -> 200 ``{"expirationDateTime", "nextExpectedRanges":
  ["<next>-"]}``.
* DELETE <uploadUrl> -> 204; the session and its part file are dropped.
  GET and DELETE also refuse an Authorization header with 401.
* GET {base}/drives/{id}/root:/{path} (also /me/drive/..., /sites/{id}/drive/...)
  with the bearer token: the stored file's driveItem (size, quickXorHash
  computed from its bytes), 404 itemNotFound when there is none.
* PUT {base}/drives/{id}/root:/{path}:/content (also /me/drive/...,
  /sites/{id}/drive/..., and the items/{parent-id}:/{name}: form): simple
  upload.  Bearer token required (401), Content-Length required (411),
  body at most 4 MiB (4194304) -> 413 beyond; optional query parameter
  ``@microsoft.graph.conflictBehavior`` (default replace; fail -> 409).
  Answers 201 with the same driveItem JSON (size may be 0).

Errors are Graph-style JSON ``{"error": {"code": ..., "message": ...}}``.
Unknown paths -> 404, a known path with the wrong method -> 405 (HEAD too).
Every response carries Content-Length (HTTP/1.1 keep-alive).  When a request
is answered before its body was read, the body is drained first (up to
128 MiB; beyond that, or with chunked bodies, the fake answers with
``Connection: close`` and closes).

QuickXorHash
------------
160-bit register, byte i XORed in at bit (11*i) mod 160 (wrapping), register
bytes little-endian, file length as 8 little-endian bytes XORed into the last
8 of the 20 bytes, base64.  Computed incrementally as fragments arrive.
``--selftest`` checks the fast implementation against rclone's published test
vectors and a bit-by-bit reference on random inputs, and times 100 MiB.

Test hooks (no authentication, not counted as Graph requests)
-------------------------------------------------------------
* GET  /_stats   -> JSON: ``requests`` {"POST create": n, "PUT put": n,
  "GET status": n, "DELETE delete": n, "PUT simple": n, ...}, the same per
  kind at top level (``create``, ``put``, ``status``, ``delete``,
  ``simple``, ``other``), ``put_auth_refused`` (upload-URL PUTs refused for
  carrying Authorization), ``upload_url_auth_refused`` (GET/DELETE ditto),
  ``sessions_open``, ``sessions_created``, ``sessions_completed``,
  ``sessions_deleted`` (upload URLs cancelled with DELETE -> 204),
  ``faults_injected`` (/_fail faults only), ``faults_pending``,
  ``bytes_received``, ``chaos`` {"503": n, "429": n, "partial500": n,
  "drop": n} (faults injected by /_chaos), ``chaos_total`` (their sum) and
  ``chaos_settings`` (the current /_chaos rate, modes, retry_after, seed).
* GET  /_sessions -> JSON list of the open upload sessions, each
  ``{"id", "drive_key", "path", "next", "total"}`` (path is the stored
  path below drive_key joined with "/", next the next expected offset,
  total the Content-Range total, else fileSize, else null).
* POST /_fail?count=N&status=S[&retry_after=SEC][&kind=K][&keep=BYTES]
  The next N requests of kind K (default ``put``: upload-URL PUTs; also
  ``create``, ``simple``, ``status``) that pass authentication and request
  validation are answered with status S (and ``Retry-After: SEC`` when
  given), storing nothing.  For ``put``, ``keep=BYTES`` first stores that
  many bytes of the fragment (a server that kept part of a fragment before
  failing; nextExpectedRanges then starts inside it).  A new /_fail for the
  same kind replaces the pending one; count=0 clears it.
* POST /_chaos?rate=R[&modes=M,M...][&retry_after=SEC][&seed=N]
  From now on each upload-URL PUT that passes authentication and
  validation (where a /_fail ``put`` fault would fire; pending /_fail
  faults go first) is hit, with probability R (0..1), by one fault chosen
  uniformly from ``modes`` (comma-separated; default all of
  ``503,429,partial500,drop``):
    503 / 429   answer 503 serviceNotAvailable / 429 activityLimitReached
                (with ``Retry-After: SEC`` when retry_after was given),
                storing nothing; the body is drained first.
    partial500  store a random prefix of k bytes, 0 < k < length (k = 0
                for a 1-byte fragment), exactly as a normal fragment would
                (running hash and next expected offset advance, so
                nextExpectedRanges then starts inside the fragment), drain
                the rest unstored, answer 500 generalException (no
                Retry-After).
    drop        store a random prefix of k bytes, 0 <= k < length, then
                shut the socket down without any response: the client sees
                an empty reply, EOF, EPIPE or a connection reset.
  The dice come from one random.Random(seed) (seed optional; a new /_chaos
  call re-seeds).  rate=0 turns chaos off.  Answers the new settings.
* POST /_expire  -> expires every open session (their URLs answer 404).
"""

import base64
import datetime
import json
import os
import random
import re
import secrets
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakebase import (IO_BLOCK, MAX_JSON_BODY, BadRequest,  # noqa: E402
                      FakeApp, FakeHandler, KiB, MiB, serve)

FRAGMENT_MULTIPLE = 320 * KiB          # non-final fragments: multiple of this
MAX_FRAGMENT = 60 * MiB                # 62914560
MAX_SIMPLE_UPLOAD = 4 * MiB            # 4194304
DRAIN_LIMIT = 128 * MiB                # unread bodies up to this are drained
SESSION_LIFETIME = 3600.0              # seconds

FORBIDDEN_NAME_CHARS = set('"*:<>?\\|')
CONFLICT_BEHAVIORS = ("fail", "replace", "rename")


# --------------------------------------------------------------------------
# QuickXorHash
# --------------------------------------------------------------------------

QX_WIDTH = 160
QX_MASK = (1 << QX_WIDTH) - 1
QX_SHIFT = 11
_QX_BLOCK = QX_WIDTH  # bytes: byte positions repeat every 160 bytes


def _fold160(mv):
    """XOR together all 160-byte blocks of mv (len a multiple of 160).

    Returns 160 bytes whose byte j is the XOR of mv[j], mv[j+160], ...
    Halving the buffer as big integers keeps the work in C: O(len) total.
    """
    acc = 0
    n = len(mv) // _QX_BLOCK
    while n > 1:
        if n & 1:
            n -= 1
            acc ^= int.from_bytes(mv[n * _QX_BLOCK:(n + 1) * _QX_BLOCK], "little")
        half = (n // 2) * _QX_BLOCK
        x = (int.from_bytes(mv[:half], "little")
             ^ int.from_bytes(mv[half:2 * half], "little"))
        mv = memoryview(x.to_bytes(half, "little"))
        n //= 2
    if n == 1:
        acc ^= int.from_bytes(mv[:_QX_BLOCK], "little")
    return acc.to_bytes(_QX_BLOCK, "little")


class QuickXorHash:
    """Incremental QuickXorHash; state is one 160-bit int plus the length."""

    __slots__ = ("state", "length")

    def __init__(self):
        self.state = 0
        self.length = 0

    def update(self, data):
        mv = memoryview(data).cast("B")
        n = len(mv)
        if n == 0:
            return
        off = self.length
        acc = 0
        aligned = n - n % _QX_BLOCK
        if aligned:
            # Byte j of every 160-byte block lands at the same bit offset,
            # so fold the blocks first and place the 160 folded bytes once.
            folded = _fold160(mv[:aligned])
            base = QX_SHIFT * off
            for j in range(_QX_BLOCK):
                b = folded[j]
                if b:
                    acc ^= b << ((base + QX_SHIFT * j) % QX_WIDTH)
        for j in range(aligned, n):
            b = mv[j]
            if b:
                acc ^= b << ((QX_SHIFT * (off + j)) % QX_WIDTH)
        # a byte placed at bit > 152 spills past bit 159: wrap it to bit 0
        self.state ^= (acc & QX_MASK) ^ (acc >> QX_WIDTH)
        self.length += n

    def digest(self):
        value = self.state ^ ((self.length & 0xFFFFFFFFFFFFFFFF) << (QX_WIDTH - 64))
        return value.to_bytes(QX_WIDTH // 8, "little")

    def b64digest(self):
        return base64.b64encode(self.digest()).decode("ascii")


def quickxorhash_b64(data):
    h = QuickXorHash()
    h.update(data)
    return h.b64digest()


def quickxorhash_slow_b64(data):
    """Bit-by-bit reference implementation (slow; used by --selftest)."""
    bits = [0] * QX_WIDTH
    for i, byte in enumerate(data):
        for k in range(8):
            if (byte >> k) & 1:
                bits[(QX_SHIFT * i + k) % QX_WIDTH] ^= 1
    out = bytearray(QX_WIDTH // 8)
    for p, bit in enumerate(bits):
        if bit:
            out[p // 8] |= 1 << (p % 8)
    for k, lb in enumerate(len(data).to_bytes(8, "little")):
        out[len(out) - 8 + k] ^= lb
    return base64.b64encode(bytes(out)).decode("ascii")


# A few of rclone's published vectors (backend/onedrive/quickxorhash):
# (base64 input, expected base64 hash).  The 111/222-byte ones cross the
# 160-byte period.
QX_VECTORS = [
    ("", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
    ("Sg==", "SgAAAAAAAAAAAAAAAQAAAAAAAAA="),
    ("tbQ=", "taAFAAAAAAAAAAAAAgAAAAAAAAA="),
    ("0pZP", "0rDEEwAAAAAAAAAAAwAAAAAAAAA="),
    ("2fuxhBJXtpWFe8dOfdGeHw==", "O9tHLAghgSvYohKFyMMxnNCHaHg="),
    ("T6LYJIfDh81JrAK309H2JMJTXis=", "zBTHrspn3mEcohlJdIUAbjGNaNg="),
    ("Mb7EGva2rEE5fENDL85P+BsapHEEjv2/siVhKjvAQe02feExVOQSkfmuYzU/kTF1MaKjPmKF/w+c"
     "bvwfdWL8aQ==", "n1anP5NfvD4XDYWIeRPW3ZkPv1Y="),
    ("jyibxJSzO6ZiZ0O1qe3tG/bvIAYssvukh9suIT5wEy1JBINVgPiqdsTW0cOpP0aUfP7mgqLfADkz"
     "I/m/GgCuVhr8oFLrOCoTx1/psBOWwhltCbhUx51Icm9aH8tY4Z3ccU+6BKpYQkLCy0B/A9Zc",
     "hZfLIilSITC6N3e3tQ/iSgEzkto="),
    ("PfxMcUd0vIW6VbHG/uj/Y0W6qEoKmyBD0nYebEKazKaKG+UaDqBEcmQjbfQeVnVLuodMoPp7P7TR"
     "1htX5n2VnkHh22xDyoJ8C/ZQKiSNqQfXvh83judf4RVr9exJCud8Uvgip6aVZTaPrJHVjQhMCp/d"
     "EnGvqg0oN5OVkM2qqAXvA0teKUDhgNM71sDBVBCGXxNOR2bpbD1iM4dnuT0ey4L+loXEHTL0fqMe"
     "UcEi2asgImnlNakwenDzz0x57aBwyq3AspCFGB1ncX4yYCr/OaCcS5OKi/00WH+wNQU3",
     "QX/YEpG0gDsmhEpCdWhsxDzsfVE="),
]


def selftest():
    ok = True

    def check(what, got, want):
        nonlocal ok
        if got != want:
            ok = False
            print(f"FAIL {what}: got {got} want {want}")
        else:
            print(f"ok   {what}")

    for b64in, want in QX_VECTORS:
        data = base64.b64decode(b64in)
        check(f"vector len={len(data)} fast", quickxorhash_b64(data), want)
        check(f"vector len={len(data)} slow", quickxorhash_slow_b64(data), want)

    rng = random.Random(1234)
    for size in (0, 1, 7, 159, 160, 161, 319, 320, 321, 1000, 4097, 100000):
        data = rng.randbytes(size)
        want = quickxorhash_slow_b64(data)
        check(f"random len={size} one-shot", quickxorhash_b64(data), want)
        # incremental with irregular chunk sizes, as fragments arrive
        h = QuickXorHash()
        pos = 0
        while pos < size:
            step = rng.choice((1, 3, 159, 160, 161, 500, 4096))
            h.update(data[pos:pos + step])
            pos += step
        check(f"random len={size} chunked", h.b64digest(), want)

    # speed: 100 MiB in 1 MiB blocks, like the upload path does
    block = rng.randbytes(IO_BLOCK)
    h = QuickXorHash()
    t0 = time.monotonic()
    for _ in range(100):
        h.update(block)
    dt = time.monotonic() - t0
    fast_enough = dt < 10.0
    ok = ok and fast_enough
    print(f"{'ok  ' if fast_enough else 'FAIL'} 100 MiB hashed in {dt:.2f}s")
    print("selftest", "PASSED" if ok else "FAILED")
    return 0 if ok else 1


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

def iso_utc(ts):
    d = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def decode_segment(raw, what):
    """Percent-decode one path segment and apply SharePoint's name rules."""
    try:
        seg = urllib.parse.unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise BadRequest(f"{what}: invalid percent-encoded UTF-8") from None
    if seg in ("", ".", ".."):
        raise BadRequest(f"{what}: empty, '.' or '..' segment not allowed")
    if "/" in seg:
        raise BadRequest(f"{what}: encoded '/' inside a segment")
    bad = [c for c in seg if c in FORBIDDEN_NAME_CHARS or ord(c) < 32]
    if bad:
        raise BadRequest(f"{what}: forbidden character {bad[0]!r} in {seg!r}")
    return seg


# {base}/{drive selector}/{root:/path: | items/{parent}:/{name}:}/{action}
GRAPH_RE = re.compile(
    r"^(?P<base>(?:/[^/:]+)*?)"
    r"/(?:drives/(?P<drive>[^/:]+)|me/drive|sites/(?P<site>[^/:]+)/drive)"
    r"/(?:root:/(?P<path>[^:]+)|items/(?P<parent>[^/:]+):/(?P<name>[^/:]+))"
    r":/(?P<action>[A-Za-z]+)$")
# GET {base}/{drive selector}/root:/{path}[:] -> the driveItem (metadata)
ITEM_RE = re.compile(
    r"^(?P<base>(?:/[^/:]+)*?)"
    r"/(?:drives/(?P<drive>[^/:]+)|me/drive|sites/(?P<site>[^/:]+)/drive)"
    r"/root:/(?P<path>[^:]+):?$")
UPLOAD_RE = re.compile(r"^/upload/(?P<sid>[A-Za-z0-9_-]+)$")
CONTENT_RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


def parse_target(m):
    """From a GRAPH_RE match: (drive_key, [segments]) or BadRequest."""
    if m.group("drive") is not None:
        drive_key = "drive-" + decode_segment(m.group("drive"), "drive id")
    elif m.group("site") is not None:
        drive_key = "site-" + decode_segment(m.group("site"), "site id")
    else:
        drive_key = "me"
    if m.group("path") is not None:
        segs = [decode_segment(s, "path") for s in m.group("path").split("/")]
    else:
        segs = [decode_segment(m.group("parent"), "parent id"),
                decode_segment(m.group("name"), "name")]
    return drive_key, segs


class Session:
    def __init__(self, sid, tempauth, drive_key, segs, conflict, file_size,
                 part_path):
        self.sid = sid
        self.tempauth = tempauth
        self.drive_key = drive_key
        self.segs = segs
        self.conflict = conflict
        self.file_size = file_size      # "fileSize" from the body, or None
        self.part_path = part_path
        self.total = None               # TOTAL from the first fragment
        self.next = 0                   # next expected byte offset
        self.hasher = QuickXorHash()
        self.expires = time.time() + SESSION_LIFETIME
        self.lock = threading.Lock()    # serialises fragments
        self.dead = False               # deleted / expired / completed


class FakeGraph(FakeApp):
    """All server state; self.lock guards every field."""

    request_kinds = ("create", "put", "status", "delete", "simple", "item",
                     "other")

    def __init__(self, store, token, host):
        super().__init__(store, token, host, (
            "put_auth_refused", "upload_url_auth_refused",
            "sessions_created", "sessions_completed",
            "faults_injected", "bytes_received", "sessions_deleted"))
        self.item_ids = {}              # stored path -> driveItem id

    # -- bookkeeping --------------------------------------------------------
    def open_sessions_locked(self):
        self._reap_expired()
        return len(self.sessions)

    def list_sessions(self):
        with self.lock:
            self._reap_expired()
            return [{"id": s.sid, "drive_key": s.drive_key,
                     "path": "/".join(s.segs), "next": s.next,
                     "total": s.total if s.total is not None
                     else s.file_size}
                    for s in self.sessions.values() if not s.dead]

    # -- sessions -----------------------------------------------------------
    def _reap_expired(self):
        now = time.time()
        for s in [s for s in self.sessions.values() if s.expires < now]:
            self._drop(s)

    def new_session(self, drive_key, segs, conflict, file_size):
        sid, part = self.new_part_file(24)
        sess = Session(sid, secrets.token_urlsafe(32), drive_key, segs,
                       conflict, file_size, part)
        self.add_session(sess)
        return sess

    def lookup(self, sid, tempauth):
        with self.lock:
            self._reap_expired()
            sess = self.sessions.get(sid)
            if sess is None or sess.dead:
                return None
            if tempauth is None or not secrets.compare_digest(
                    tempauth.encode(), sess.tempauth.encode()):
                return None
            return sess

    def upload_url(self, sess):
        return (f"{self.base_url()}/upload/{sess.sid}"
                f"?tempauth={sess.tempauth}")

    # -- stored files -------------------------------------------------------
    def target_path(self, drive_key, segs):
        return os.path.join(self.files_dir, drive_key, *segs)

    def exists(self, drive_key, segs):
        return os.path.lexists(self.target_path(drive_key, segs))

    def item(self, drive_key, segs):
        """The driveItem of a stored file (hash computed from its bytes)."""
        target = self.target_path(drive_key, segs)
        if not os.path.isfile(target):
            raise BadRequest("the item does not exist", 404, "itemNotFound")
        h = QuickXorHash()
        with open(target, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        rel = "/".join([drive_key] + list(segs))
        with self.lock:
            item_id = self.item_ids.setdefault(
                rel, "01" + base64.b32encode(secrets.token_bytes(20)).decode())
        st = os.stat(target)
        return {
            "id": item_id, "name": segs[-1], "size": st.st_size,
            "webUrl": f"{self.base_url()}/web/" + urllib.parse.quote(rel),
            "lastModifiedDateTime": iso_utc(st.st_mtime),
            "file": {"mimeType": "application/octet-stream",
                     "hashes": {"quickXorHash": h.b64digest()}},
        }

    def commit(self, src, drive_key, segs, conflict, size, qxh):
        """Move src into place honouring conflict; returns driveItem dict.

        Raises BadRequest(409) when the name is taken and conflict is fail.
        """
        with self.lock:
            segs = list(segs)
            target = self.target_path(drive_key, segs)
            if os.path.lexists(target):
                if conflict == "fail" or os.path.isdir(target):
                    raise BadRequest(f"an item named {segs[-1]!r} already "
                                     "exists", 409, "nameAlreadyExists")
                if conflict == "rename":
                    stem, ext = os.path.splitext(segs[-1])
                    n = 1
                    while os.path.lexists(self.target_path(
                            drive_key, segs[:-1] + [f"{stem} {n}{ext}"])):
                        n += 1
                    segs[-1] = f"{stem} {n}{ext}"
                    target = self.target_path(drive_key, segs)
            try:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.replace(src, target)
            except (NotADirectoryError, FileExistsError, IsADirectoryError):
                raise BadRequest("a parent of the target is a file", 409,
                                 "nameAlreadyExists") from None
            rel = "/".join([drive_key] + segs)
            item_id = self.item_ids.get(rel)
            if item_id is None:
                item_id = "01" + base64.b32encode(
                    secrets.token_bytes(20)).decode("ascii")
                self.item_ids[rel] = item_id
        now = iso_utc(time.time())
        return {
            "id": item_id,
            "name": segs[-1],
            "size": size,
            "webUrl": f"{self.base_url()}/web/" + urllib.parse.quote(rel),
            "createdDateTime": now,
            "lastModifiedDateTime": now,
            "file": {"mimeType": "application/octet-stream",
                     "hashes": {"quickXorHash": qxh}},
        }


FAULT_CODES = {400: "invalidRequest", 401: "unauthenticated",
               403: "accessDenied", 404: "itemNotFound", 409: "conflict",
               423: "resourceLocked", 429: "activityLimitReached",
               500: "generalException", 502: "badGateway",
               503: "serviceNotAvailable", 504: "gatewayTimeout",
               507: "insufficientStorage"}


# --------------------------------------------------------------------------
# HTTP handler
# --------------------------------------------------------------------------

class Handler(FakeHandler):
    server_version = "graph_fake/1.0"
    log_name = "graph_fake"
    drain_limit = DRAIN_LIMIT
    too_large_code = "requestEntityTooLarge"
    auth_missing_message = "Access token is empty."
    auth_invalid_message = "Invalid access token."
    auth_error_code = "InvalidAuthenticationToken"
    fault_codes = FAULT_CODES
    fault_code_default = "injectedFault"
    fault_kinds = ("put", "create", "simple", "status")
    max_fault_keep = MAX_FRAGMENT
    chaos_500_message = ("chaos: internal error after storing {keep} of {n} "
                         "bytes")
    chaos_modes_in_errors = True

    # -- errors: {"error": {"code", "message", "innerError"}} ---------------
    def error_body(self, status, message, code):
        return {"error": {
            "code": code, "message": message,
            "innerError": {"date": iso_utc(time.time()),
                           "request-id": secrets.token_hex(8)}}}

    def _protocol_error_body(self, code, message):
        # errors raised by BaseHTTPRequestHandler itself carry no innerError
        return {"error": {"code": "invalidRequest", "message": message}}

    # -- dispatch -----------------------------------------------------------
    def _route_protocol(self, method, path, query):
        m = UPLOAD_RE.match(path)
        if m:
            kind = {"PUT": "put", "GET": "status",
                    "DELETE": "delete"}.get(method, "other")
            self.app.count_request(method, kind)
            if kind == "other":
                return self._not_allowed("PUT, GET, DELETE")
            return self._upload_url(method, m.group("sid"), query)

        m = GRAPH_RE.match(path)
        if m and m.group("action") in ("createUploadSession", "content"):
            create = m.group("action") == "createUploadSession"
            want = "POST" if create else "PUT"
            kind = ("create" if create else "simple") if method == want \
                else "other"
            self.app.count_request(method, kind)
            if kind == "other":
                return self._not_allowed(want)
            self._check_bearer()
            drive_key, segs = parse_target(m)
            if create:
                return self._create_session(drive_key, segs)
            return self._simple_upload(drive_key, segs, query)

        m = ITEM_RE.match(path)
        if m and method == "GET":
            self.app.count_request(method, "item")
            self._check_bearer()
            drive_key, segs = parse_target(m)
            return self._json(200, self.app.item(drive_key, segs))

        self.app.count_request(method, "other")
        raise BadRequest(f"no resource at {path}", 404, "itemNotFound")

    # -- createUploadSession -----------------------------------------------
    def _create_session(self, drive_key, segs):
        raw = self._read_small_body(MAX_JSON_BODY)
        conflict = "replace"   # see module docstring: default when absent
        file_size = None
        if raw:
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise BadRequest("request body is not valid JSON") from None
            if not isinstance(body, dict):
                raise BadRequest("request body must be a JSON object")
            if body.get("deferCommit") not in (None, False):
                raise BadRequest("deferCommit is not supported by the fake")
            item = body.get("item", {})
            if not isinstance(item, dict):
                raise BadRequest("'item' must be an object")
            if "@microsoft.graph.conflictBehavior" in item:
                conflict = item["@microsoft.graph.conflictBehavior"]
                if conflict not in CONFLICT_BEHAVIORS:
                    raise BadRequest(
                        f"invalid conflictBehavior {conflict!r}")
            if "name" in item and item["name"] != segs[-1]:
                raise BadRequest(f"item.name {item['name']!r} does not match "
                                 f"the path name {segs[-1]!r}")
            if "fileSize" in item:
                file_size = item["fileSize"]
                if (not isinstance(file_size, int)
                        or isinstance(file_size, bool) or file_size < 0):
                    raise BadRequest("item.fileSize must be an integer >= 0")
        if conflict == "fail" and self.app.exists(drive_key, segs):
            raise BadRequest(f"an item named {segs[-1]!r} already exists",
                             409, "nameAlreadyExists")
        if self._maybe_fault("create"):
            return
        sess = self.app.new_session(drive_key, segs, conflict, file_size)
        self._json(200, {
            "uploadUrl": self.app.upload_url(sess),
            "expirationDateTime": iso_utc(sess.expires),
            "nextExpectedRanges": ["0-"],
        })

    # -- upload URL ---------------------------------------------------------
    def _upload_url(self, method, sid, query):
        if "Authorization" in self.headers:
            self.app.bump("put_auth_refused" if method == "PUT"
                          else "upload_url_auth_refused")
            raise BadRequest("the upload URL is pre-authenticated; do not "
                             "send an Authorization header", 401,
                             "unauthenticated")
        tempauth = query.get("tempauth", [None])
        sess = self.app.lookup(sid, tempauth[0] if len(tempauth) == 1
                               else None)
        if sess is None:
            raise BadRequest("upload session not found (unknown, expired, "
                             "cancelled or completed)", 404, "itemNotFound")
        if method == "GET":
            if self._maybe_fault("status"):
                return
            return self._json(200, {
                "expirationDateTime": iso_utc(sess.expires),
                "nextExpectedRanges": [f"{sess.next}-"],
            })
        if method == "DELETE":
            self.app.drop(sess)
            self.app.bump("sessions_deleted")
            return self._send(204)
        return self._put_fragment(sess)

    def _put_fragment(self, sess):
        if self._chunked():
            self.close_connection = True
            raise BadRequest("chunked bodies are not allowed; send "
                             "Content-Length")
        n = self._content_length()
        if n is None:
            raise BadRequest("Content-Length is required")
        if n < 0:
            self.close_connection = True
            raise BadRequest("malformed Content-Length")
        cr = self.headers.get("Content-Range")
        if cr is None:
            raise BadRequest("Content-Range is required")
        m = CONTENT_RANGE_RE.match(cr.strip())
        if not m:
            raise BadRequest(f"malformed Content-Range {cr!r}; expected "
                             "'bytes a-b/TOTAL'")
        a, b, total = (int(x) for x in m.groups())
        if n > MAX_FRAGMENT:
            raise BadRequest(f"fragment of {n} bytes exceeds 60 MiB", 413,
                             "requestEntityTooLarge")
        if total <= 0:
            raise BadRequest("total size must be > 0 (use simple upload "
                             "for empty files)")
        if a > b or b >= total:
            raise BadRequest(f"invalid range {a}-{b}/{total}")
        if n != b - a + 1:
            raise BadRequest(f"Content-Length {n} does not match "
                             f"Content-Range {a}-{b} ({b - a + 1} bytes)")

        if not sess.lock.acquire(timeout=self.timeout + 5):
            raise BadRequest("another request holds this session", 409,
                             "conflict")
        try:
            return self._put_locked(sess, a, b, total, n)
        finally:
            sess.lock.release()

    def _put_locked(self, sess, a, b, total, n):
        if sess.dead:
            raise BadRequest("upload session not found", 404, "itemNotFound")
        expected_total = sess.total if sess.total is not None \
            else sess.file_size
        if expected_total is not None and total != expected_total:
            raise BadRequest(f"total size {total} differs from the "
                             f"session's {expected_total}")
        if a < sess.next:
            raise BadRequest(f"bytes from {a} already received; next "
                             f"expected is {sess.next}", 416, "invalidRange")
        if a > sess.next:
            raise BadRequest(f"fragment starts at {a} but next expected is "
                             f"{sess.next} (out of order)")
        final = b + 1 == total
        if not final and n % FRAGMENT_MULTIPLE:
            raise BadRequest(f"non-final fragment of {n} bytes is not a "
                             f"multiple of {FRAGMENT_MULTIPLE} (320 KiB)")

        sess.total = total
        with open(sess.part_path, "ab") as part:
            def sink(chunk):
                part.write(chunk)
                sess.hasher.update(chunk)
                sess.next += len(chunk)
                self.app.bump("bytes_received", len(chunk))

            def log_kept(mode, got):
                self.log_message("PUT /upload/%s - chaos %s: kept %d of %d "
                                 "bytes, next expected %d", sess.sid, mode,
                                 got, n, sess.next)

            received = self._receive_body(n, sink, log_kept)
        if received is None:
            return      # a fault answered, or the connection was dropped
        got, complete = received
        if not complete:
            self.log_message("PUT /upload/%s - short body: %d of %d bytes "
                             "kept, next expected %d", sess.sid, got, n,
                             sess.next)
            return  # the connection is gone (or stalled): no answer
        sess.expires = time.time() + SESSION_LIFETIME
        if not final:
            return self._json(202, {
                "expirationDateTime": iso_utc(sess.expires),
                "nextExpectedRanges": [f"{sess.next}-"],
            })
        try:
            item = self.app.commit(sess.part_path, sess.drive_key, sess.segs,
                                   sess.conflict, total,
                                   sess.hasher.b64digest())
        except BadRequest:
            self.app.drop(sess)
            raise
        self.app.drop(sess)
        self.app.bump("sessions_completed")
        self._json(201, item)

    # -- simple upload ------------------------------------------------------
    def _simple_upload(self, drive_key, segs, query):
        conflict = query.get("@microsoft.graph.conflictBehavior", ["replace"])
        if len(conflict) != 1 or conflict[0] not in CONFLICT_BEHAVIORS:
            raise BadRequest(f"invalid conflictBehavior {conflict!r}")
        conflict = conflict[0]
        if self._chunked():
            self.close_connection = True
            raise BadRequest("Content-Length is required", 411,
                             "lengthRequired")
        n = self._content_length()
        if n is None:
            raise BadRequest("Content-Length is required", 411,
                             "lengthRequired")
        if n < 0:
            self.close_connection = True
            raise BadRequest("malformed Content-Length")
        if n > MAX_SIMPLE_UPLOAD:
            raise BadRequest(f"simple upload of {n} bytes exceeds 4 MiB; use "
                             "an upload session", 413,
                             "requestEntityTooLarge")
        if conflict == "fail" and self.app.exists(drive_key, segs):
            raise BadRequest(f"an item named {segs[-1]!r} already exists",
                             409, "nameAlreadyExists")
        if self._maybe_fault("simple"):
            return
        tmp = os.path.join(self.app.sessions_dir,
                           "simple-" + secrets.token_hex(8) + ".part")
        hasher = QuickXorHash()
        try:
            with open(tmp, "wb") as f:
                def sink(chunk):
                    f.write(chunk)
                    hasher.update(chunk)
                got, complete = self._stream_body(n, sink)
            if not complete:
                self.log_message("PUT %s - short body, nothing stored",
                                 self._log_path())
                return
            self.app.bump("bytes_received", got)
            item = self.app.commit(tmp, drive_key, segs, conflict, n,
                                   hasher.b64digest())
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self._json(201, item)


def main(argv=None):
    return serve(FakeGraph, Handler, __doc__.split("\n")[0], selftest,
                 "check QuickXorHash and exit 0/1", argv)


if __name__ == "__main__":
    sys.exit(main())
