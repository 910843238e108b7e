#!/usr/bin/env python3
"""google_fake.py - a strict fake of Google resumable uploads.

Stands in for Google Drive v3 and the Cloud Storage JSON API in cru's
integration tests.  Python 3 standard library only.  It follows
developers.google.com/drive/api/guides/manage-uploads#resumable and
cloud.google.com/storage/docs/performing-resumable-uploads (summarised in
shared/PROTOCOLS.md, "Google resumable uploads") and is stricter than the
real service wherever the docs say a client must do something.  The HTTP
plumbing, test hooks and command line below are shared with graph_fake.py
and live in fakebase.py (next to this file).

Command line
------------
    google_fake.py --port P --store DIR --token TOKEN [--host 127.0.0.1]
                   [--idle-timeout SECONDS]
    google_fake.py --selftest

--port 0 picks a free port.  Once bound, the fake prints ``PORT <n>`` on
stdout (one line, flushed) and writes ``<n>`` to DIR/port.  Completed
uploads are stored as DIR/files/drive/<name> (Drive) and
DIR/files/gcs/<bucket>/<object name> (Cloud Storage; "/" in an object name
makes directories); sessions keep their bytes in DIR/sessions/<id>.part
until the last byte arrives.  Every request is logged to stderr as one line
``google_fake: METHOD /path STATUS``.

Initiating a session (needs ``Authorization: Bearer <TOKEN>``, else 401)
-----------------------------------------------------------------------
* Drive: POST /upload/drive/v3/files?uploadType=resumable
  - body: JSON file metadata (object; ``name`` a string without "/" or
    NUL, not "." or ".."; default "Untitled"; ``parents`` a list of
    strings; ``mimeType`` a string), ``Content-Type: application/json``
    (charset allowed) whenever there is a body -> 400 otherwise;
  - optional ``X-Upload-Content-Length`` (digits: the total every
    Content-Range must then name) and ``X-Upload-Content-Type``;
  - query parameters allowed: uploadType (must be resumable), fields,
    supportsAllDrives, plus Google's standard ones (alt, prettyPrint,
    quotaUser, key); anything else -> 400 (catches typos).
* Cloud Storage: POST /upload/storage/v1/b/{bucket}/o?uploadType=resumable&name={object}
  - ``name`` required (percent-decoded; no NUL, no empty / "." / ".."
    segment, at most 1024 bytes) unless the JSON body carries it; an
    optional JSON body (object metadata) as for Drive;
  - optional X-Upload-Content-Length / X-Upload-Content-Type;
  - query parameters: uploadType, name, fields, ifGenerationMatch,
    predefinedAcl, projection, userProject, alt, prettyPrint, quotaUser.
* Both need ``Content-Length`` (411, as Google's front end answers a POST
  without one) and answer 200 with an empty body and
  ``Location: http://HOST:P/session/<id>``.

The session URI (``/session/<id>``)
----------------------------------
The session URI authorizes the upload: PUTs need no token.  An
Authorization header is tolerated (Drive clients send one) but counted in
/_stats ``session_auth_seen`` so tests can check none was sent.
* PUT with ``Content-Length`` (411 when absent; chunked bodies 400) and
  ``Content-Range`` (400 when absent or malformed), one of
    ``bytes a-b/TOTAL``, ``bytes a-b/*``   a chunk (b inclusive, a <= b,
                                           b < TOTAL; length b-a+1 must
                                           equal Content-Length)
    ``bytes */TOTAL``, ``bytes */*``       a status query (Content-Length 0)
  - TOTAL must equal X-Upload-Content-Length / the TOTAL of earlier
    requests -> 400;
  - a chunk that is not the last (b+1 != TOTAL, or TOTAL "*") must be a
    multiple of 262144 bytes (256 KiB) long -> 400 (Google itself only
    refuses non-final chunks under 256 KiB and "recommends" multiples; the
    fake holds clients to the documented rule);
  - a > bytes held -> 400 (a gap);
  - a < bytes held (the client resends what the server persisted, e.g.
    after a lost answer): the bytes already held are skipped unread-into
    the file and the rest is appended; a chunk wholly held is drained and
    answered with the current state.  Google's guides tell clients to go
    on from the Range of the last answer; they do not describe a refusal
    of overlapping bytes, and Google's own client libraries resend from
    their last confirmed offset, so the fake accepts the overlap rather
    than answering an error the docs never mention;
  - the body is streamed to disk in 1 MiB blocks; when the client sends
    fewer bytes than announced, what arrived is kept (the next Range ends
    inside the chunk) and nothing is answered (the connection is gone);
  - answers: 308 (Resume Incomplete) with ``Range: bytes=0-N`` (N = bytes
    held - 1) and no Range header at all while nothing is held, until the
    last byte lands: then the file is moved into place and the answer is
    200 with the resource -- Drive ``{"kind": "drive#file", "id", "name",
    "mimeType", "size", "md5Checksum", "parents"}``, Cloud Storage
    ``{"kind": "storage#object", "id", "name", "bucket", "generation",
    "contentType", "size", "md5Hash", "crc32c", ...}`` (size as a string,
    md5Hash and crc32c base64 of the big-endian digest, as Google writes
    them).
  - a status query on a complete session, or any PUT to it, answers 200
    with the same resource again (the session is kept after completion);
    ``bytes */TOTAL`` when all TOTAL bytes are held (TOTAL = 0: an empty
    file) completes the upload.
  - unknown, expired (/_expire) or cancelled sessions -> 404.
* DELETE -> 499 (Cloud Storage's answer to a cancelled upload) and the
  session is dropped; later requests get 404.
* Requests to one session are serialised (a second PUT waits for the
  first), except status queries, which read the current offset.

Errors are Google-style JSON ``{"error": {"code": N, "message": ...,
"errors": [{"domain": "global", "reason": ..., "message": ...}]}}``.
Unknown paths -> 404, a wrong method -> 405.  Every answer carries
Content-Length (HTTP/1.1 keep-alive).

Test hooks (no authentication)
------------------------------
* GET  /_stats    -> JSON: ``requests`` {"POST initiate": n, "PUT put": n,
  "PUT status": n, "DELETE delete": n, ...} and the same per kind at top
  level (``initiate``, ``put``, ``status``, ``delete``, ``other``),
  ``session_auth_seen``, ``sessions_open``, ``sessions_created``,
  ``sessions_completed``, ``sessions_deleted``, ``overlap_bytes_skipped``,
  ``faults_injected``, ``faults_pending``, ``bytes_received``, ``chaos``
  {"503": n, "429": n, "partial500": n, "drop": n}, ``chaos_total`` and
  ``chaos_settings``.
* GET  /_sessions -> JSON list of open sessions ``{"id", "kind" ("drive" |
  "gcs"), "name", "bucket", "next", "total", "complete"}``.
* POST /_fail?count=N&status=S[&retry_after=SEC][&kind=K][&keep=BYTES]
  The next N requests of kind K (``put``: chunk PUTs, the default;
  ``initiate``; ``status``) that pass validation are answered with status
  S (with ``Retry-After: SEC`` when given; S = 403 carries reason
  rateLimitExceeded), storing nothing -- for ``put``, ``keep=BYTES``
  first stores that many bytes of the chunk.  count=0 clears.
* POST /_chaos?rate=R[&modes=503,429,partial500,drop][&retry_after=SEC][&seed=N]
  Each validated chunk PUT is hit with probability R by one fault from
  ``modes``: 503 / 429 (nothing stored, body drained), partial500 (a
  random prefix 0 < k < length stored, then 500), drop (a prefix
  0 <= k < length stored, then the connection is shut without an answer).
  rate=0 turns chaos off.
* POST /_expire   -> every open session expires (404 from now on).
"""

import base64
import hashlib
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
from fakebase import (MAX_JSON_BODY, BadRequest, FakeApp,  # noqa: E402
                      FakeHandler, KiB, MiB, serve)

QUANTUM = 256 * KiB                    # non-final chunks: multiple of this
DRAIN_LIMIT = 256 * MiB                # unread bodies up to this are drained
DRIVE_PARAMS = {"uploadType", "fields", "supportsAllDrives", "alt",
                "prettyPrint", "quotaUser", "key",
                "supportsTeamDrives", "keepRevisionForever",
                "useContentAsIndexableText", "ignoreDefaultVisibility",
                "includePermissionsForView", "includeLabels", "ocrLanguage"}
GCS_PARAMS = {"uploadType", "name", "fields", "ifGenerationMatch",
              "ifGenerationNotMatch", "ifMetagenerationMatch",
              "ifMetagenerationNotMatch", "predefinedAcl", "projection",
              "userProject", "kmsKeyName", "contentEncoding", "alt",
              "prettyPrint", "quotaUser", "key"}
REASONS = {400: "badRequest", 401: "authError", 403: "rateLimitExceeded",
           404: "notFound", 405: "methodNotAllowed", 411: "lengthRequired",
           429: "rateLimitExceeded", 500: "backendError", 502: "badGateway",
           503: "backendError", 504: "gatewayTimeout"}


# --------------------------------------------------------------------------
# CRC32C (Castagnoli), fast enough in pure Python
# --------------------------------------------------------------------------
#
# CRC-32C is reflected: bit 0 of the first byte is the highest coefficient.
# Reversing the bits of every byte (bytes.translate) and reading the buffer
# big-endian gives the message polynomial M(x) as one int; the CRC is then
# reflect32(((M x^32) + (I x^n)) mod P) ^ 0xFFFFFFFF with I = 0xFFFFFFFF
# (the initial register) and n the bit length.  M mod P is computed by
# halving: M = H x^k + L  =>  M = H (x^k mod P) + L (mod P), where the
# carry-less product by a 32-bit constant is at most 32 shifts and XORs of
# a big int -- all in C, so a 50 MiB file takes about a second.

CRC32C_POLY = 0x11EDC6F41              # x^32 + 0x1EDC6F41 (normal form)
_REV8 = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def _clmul(a, b):
    """Carry-less product of a (any size) and b (small)."""
    r = 0
    j = 0
    while b:
        if b & 1:
            r ^= a << j
        b >>= 1
        j += 1
    return r


def _mod_small(a, p=CRC32C_POLY):
    """a mod p for a of at most a few hundred bits (bitwise long division)."""
    dp = p.bit_length() - 1
    while a.bit_length() > dp:
        a ^= p << (a.bit_length() - 1 - dp)
    return a


def _xpow_mod(k, p=CRC32C_POLY):
    """x^k mod p by square-and-multiply."""
    result, base = 1, 2  # 1 and x
    while k:
        if k & 1:
            result = _mod_small(_clmul(result, base), p)
        base = _mod_small(_clmul(base, base), p)
        k >>= 1
    return result


def _polymod(a, p=CRC32C_POLY):
    while a.bit_length() > 256:
        k = a.bit_length() // 2
        h = a >> k
        a = _clmul(h, _xpow_mod(k, p)) ^ (a & ((1 << k) - 1))
    return _mod_small(a, p)


def crc32c(data):
    """CRC-32C of data (bytes-like) as an int."""
    n = len(data) * 8
    if n == 0:
        return 0
    m = int.from_bytes(bytes(data).translate(_REV8), "big")
    r = _polymod((m << 32) ^ (0xFFFFFFFF << n))
    r = int(f"{r:032b}"[::-1], 2)
    return r ^ 0xFFFFFFFF


def crc32c_slow(data):
    """Bitwise reference (used by --selftest)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def crc32c_file_b64(path):
    with open(path, "rb") as f:
        v = crc32c(f.read())
    return base64.b64encode(v.to_bytes(4, "big")).decode("ascii")


def selftest():
    ok = True

    def check(what, got, want):
        nonlocal ok
        ok = ok and got == want
        print(f"{'ok  ' if got == want else 'FAIL'} {what}: {got:#x} want {want:#x}")

    # RFC 3720 (iSCSI) B.4 and the usual check value
    check("crc32c('123456789')", crc32c(b"123456789"), 0xE3069283)
    check("crc32c(32 zero bytes)", crc32c(bytes(32)), 0x8A9136AA)
    check("crc32c(32 0xff bytes)", crc32c(b"\xff" * 32), 0x62A8AB43)
    check("crc32c(0..31)", crc32c(bytes(range(32))), 0x46DD794E)
    rng = random.Random(5)
    for size in (0, 1, 3, 31, 32, 33, 255, 1000, 4099, 70000):
        data = rng.randbytes(size)
        check(f"random len={size}", crc32c(data), crc32c_slow(data))
    data = rng.randbytes(50 * MiB)
    t0 = time.monotonic()
    crc32c(data)
    dt = time.monotonic() - t0
    fast = dt < 10
    ok = ok and fast
    print(f"{'ok  ' if fast else 'FAIL'} 50 MiB in {dt:.2f}s")
    print("selftest", "PASSED" if ok else "FAILED")
    return 0 if ok else 1


# --------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------

def check_object_name(name, what, allow_slash):
    if not isinstance(name, str) or not name:
        raise BadRequest(f"{what}: missing or not a string", 400, "required")
    if "\x00" in name or len(name.encode()) > 1024:
        raise BadRequest(f"{what}: invalid name", 400, "invalid")
    segs = name.split("/") if allow_slash else [name]
    if not allow_slash and "/" in name:
        raise BadRequest(f"{what}: '/' not allowed in the fake's Drive names",
                         400, "invalid")
    for s in segs:
        if s in ("", ".", ".."):
            raise BadRequest(f"{what}: empty, '.' or '..' segment", 400,
                             "invalid")
    return segs


class Session:
    def __init__(self, sid, kind, name, bucket, segs, total, meta, part):
        self.sid = sid
        self.kind = kind                # "drive" | "gcs"
        self.name = name
        self.bucket = bucket
        self.segs = segs                # stored path below files/
        self.total = total              # None until known
        self.meta = meta                # dict: mimeType, parents, contentType
        self.part_path = part
        self.next = 0                   # bytes held
        self.md5 = hashlib.md5()
        self.resource = None            # set when complete
        self.lock = threading.Lock()    # serialises PUTs
        self.dead = False


class FakeGoogle(FakeApp):
    """All server state; self.lock guards every field."""

    request_kinds = ("initiate", "put", "status", "delete", "other")

    def __init__(self, store, token, host):
        super().__init__(store, token, host, (
            "session_auth_seen", "sessions_created", "sessions_completed",
            "sessions_deleted", "faults_injected", "bytes_received",
            "overlap_bytes_skipped"))
        self.generation = int(time.time() * 1e6)

    def open_sessions_locked(self):
        return sum(1 for s in self.sessions.values() if s.resource is None)

    def list_sessions(self):
        with self.lock:
            return [{"id": s.sid, "kind": s.kind, "name": s.name,
                     "bucket": s.bucket, "next": s.next, "total": s.total,
                     "complete": s.resource is not None}
                    for s in self.sessions.values()]

    def new_session(self, kind, name, bucket, segs, total, meta):
        sid, part = self.new_part_file(32)
        sess = Session(sid, kind, name, bucket, segs, total, meta, part)
        self.add_session(sess)
        return sess

    def lookup(self, sid):
        with self.lock:
            s = self.sessions.get(sid)
            return None if s is None or s.dead else s

    def session_url(self, sess):
        return f"{self.base_url()}/session/{sess.sid}"

    def complete(self, sess):
        """Move the part file into place; sets and returns sess.resource."""
        target = os.path.join(self.files_dir, *sess.segs)
        crc = crc32c_file_b64(sess.part_path) if sess.kind == "gcs" else None
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(sess.part_path, target)
        size = str(sess.next)
        md5 = sess.md5.digest()
        if sess.kind == "drive":
            res = {"kind": "drive#file",
                   "id": "1" + secrets.token_urlsafe(24).replace("-", "x"),
                   "name": sess.name,
                   "mimeType": sess.meta.get("mimeType")
                   or "application/octet-stream",
                   "parents": sess.meta.get("parents") or ["root"],
                   "size": size, "md5Checksum": md5.hex()}
        else:
            with self.lock:
                self.generation += 1
                gen = str(self.generation)
            res = {"kind": "storage#object",
                   "id": f"{sess.bucket}/{sess.name}/{gen}",
                   "name": sess.name, "bucket": sess.bucket,
                   "generation": gen, "metageneration": "1",
                   "contentType": sess.meta.get("contentType")
                   or "application/octet-stream",
                   "storageClass": "STANDARD", "size": size,
                   "md5Hash": base64.b64encode(md5).decode("ascii"),
                   "crc32c": crc,
                   "etag": base64.b64encode(secrets.token_bytes(6)).decode()}
        sess.resource = res
        self.bump("sessions_completed")
        return res


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------

CONTENT_RANGE_RE = re.compile(r"^bytes (?:(\d+)-(\d+)|(\*))/(\d+|\*)$")
DRIVE_INIT = "/upload/drive/v3/files"
GCS_INIT_RE = re.compile(r"^/upload/storage/v1/b/([^/]+)/o$")
SESSION_RE = re.compile(r"^/session/([A-Za-z0-9_-]+)$")


class Handler(FakeHandler):
    server_version = "google_fake/1.0"
    log_name = "google_fake"
    content_type = "application/json; charset=UTF-8"
    send_body_on_head = True            # as this fake always did
    drain_limit = DRAIN_LIMIT
    too_large_code = "tooLarge"
    auth_missing_message = ("Request is missing required authentication "
                            "credential.")
    auth_invalid_message = "Invalid Credentials"
    auth_error_code = "authError"
    fault_codes = REASONS
    fault_code_default = "injected"
    fault_kinds = ("put", "initiate", "status")
    max_fault_keep = 1 << 40
    chaos_500_message = ("chaos: backend error after storing {keep} of {n} "
                         "bytes")

    # -- errors: {"error": {"code", "message", "errors": [...]}} ---------
    def default_code(self, status):
        return REASONS.get(status, "invalid")

    def error_body(self, status, message, code):
        return {"error": {
            "code": status, "message": message,
            "errors": [{"domain": "global", "reason": code,
                        "message": message}]}}

    # -- answers ---------------------------------------------------------
    def _answer_state(self, sess):
        """308 with Range (none while nothing is held), or 200 + resource."""
        if sess.resource is not None:
            return self._json(200, sess.resource)
        headers = {"X-GUploader-UploadID": sess.sid[:16]}
        if sess.next > 0:
            headers["Range"] = f"bytes=0-{sess.next - 1}"
        self._send(308, b"", headers)

    # -- dispatch --------------------------------------------------------
    def _route_protocol(self, method, path, query):
        m = SESSION_RE.match(path)
        if m:
            if method not in ("PUT", "DELETE"):
                self.app.count_request(method, "other")
                return self._not_allowed("PUT, DELETE")
            return self._session(method, m.group(1))
        gm = GCS_INIT_RE.match(path)
        if path == DRIVE_INIT or gm:
            self.app.count_request(method, "initiate" if method == "POST"
                                   else "other")
            if method != "POST":
                return self._not_allowed("POST")
            return self._initiate(query, gm)
        self.app.count_request(method, "other")
        raise BadRequest(f"no resource at {path}", 404)

    # -- initiate --------------------------------------------------------
    def _initiate(self, query, gcs_match):
        self._check_bearer()
        allowed = GCS_PARAMS if gcs_match else DRIVE_PARAMS
        for k, v in query.items():
            if k not in allowed:
                raise BadRequest(f"unknown query parameter {k!r}")
            if len(v) != 1:
                raise BadRequest(f"query parameter {k!r} given twice")
        if query.get("uploadType") != ["resumable"]:
            raise BadRequest("uploadType must be resumable", 400, "invalid")
        raw = self._read_small_body(MAX_JSON_BODY, required=True)
        meta = {}
        if raw:
            ctype = self.headers.get("Content-Type", "")
            if ctype.split(";")[0].strip().lower() != "application/json":
                raise BadRequest(f"metadata must be sent as application/json, "
                                 f"not {ctype!r}", 400, "parseError")
            try:
                meta = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise BadRequest("Parse Error: metadata is not valid JSON",
                                 400, "parseError") from None
            if not isinstance(meta, dict):
                raise BadRequest("metadata must be a JSON object", 400,
                                 "parseError")
        total = None
        xlen = self.headers.get("X-Upload-Content-Length")
        if xlen is not None:
            if not xlen.strip().isdigit():
                raise BadRequest("X-Upload-Content-Length must be digits")
            total = int(xlen)
        xtype = self.headers.get("X-Upload-Content-Type")
        if gcs_match:
            bucket = urllib.parse.unquote(gcs_match.group(1))
            if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]", bucket):
                raise BadRequest(f"invalid bucket name {bucket!r}", 400,
                                 "invalid")
            name = query.get("name", [meta.get("name")])[0]
            if "name" in query and "name" in meta and meta["name"] != name:
                raise BadRequest("object name differs between the query and "
                                 "the metadata")
            segs = check_object_name(name, "object name", True)
            m = {"contentType": meta.get("contentType") or xtype}
            sess = self.app.new_session("gcs", name, bucket,
                                        ["gcs", bucket] + segs, total, m)
        else:
            name = meta.get("name", "Untitled")
            check_object_name(name, "name", False)
            parents = meta.get("parents")
            if parents is not None and (not isinstance(parents, list) or not
                                        all(isinstance(p, str) and p
                                            for p in parents)):
                raise BadRequest("parents must be a list of folder ids")
            mime = meta.get("mimeType")
            if mime is not None and not isinstance(mime, str):
                raise BadRequest("mimeType must be a string")
            m = {"mimeType": mime or xtype, "parents": parents}
            sess = self.app.new_session("drive", name, None, ["drive", name],
                                        total, m)
        if self._maybe_fault("initiate"):
            self.app.drop(sess)
            return
        self._send(200, b"", {"Location": self.app.session_url(sess)})

    # -- session ---------------------------------------------------------
    def _session(self, method, sid):
        if "Authorization" in self.headers:
            self.app.bump("session_auth_seen")
        sess = self.app.lookup(sid)
        if method == "DELETE":
            self.app.count_request(method, "delete")
            if sess is None:
                raise BadRequest("upload session not found", 404)
            self.app.drop(sess)
            self.app.bump("sessions_deleted")
            return self._error(499, "Client Closed Request: the upload was "
                               "cancelled", "cancelled")
        if self._chunked():
            self.close_connection = True
            self.app.count_request(method, "put")
            raise BadRequest("chunked bodies are not allowed; send "
                             "Content-Length")
        n = self._content_length()
        cr = self.headers.get("Content-Range")
        m = CONTENT_RANGE_RE.match(cr.strip()) if cr is not None else None
        query = m is not None and m.group(3) == "*"
        self.app.count_request(method, "status" if query else "put")
        if sess is None:
            raise BadRequest("upload session not found (unknown, expired or "
                             "cancelled)", 404)
        if n is None:
            raise BadRequest("Content-Length is required", 411)
        if n < 0:
            self.close_connection = True
            raise BadRequest("malformed Content-Length")
        if cr is None:
            raise BadRequest("Content-Range is required on a session PUT")
        if m is None:
            raise BadRequest(f"malformed Content-Range {cr!r}; expected "
                             "'bytes a-b/TOTAL', 'bytes a-b/*' or "
                             "'bytes */TOTAL'")
        total = None if m.group(4) == "*" else int(m.group(4))
        if query:
            if n != 0:
                raise BadRequest("a status query (bytes */TOTAL) must have "
                                 "Content-Length: 0")
            return self._status(sess, total)
        a, b = int(m.group(1)), int(m.group(2))
        if a > b or (total is not None and b >= total):
            raise BadRequest(f"invalid range {a}-{b}/{m.group(4)}")
        if n != b - a + 1:
            raise BadRequest(f"Content-Length {n} does not match "
                             f"Content-Range {a}-{b} ({b - a + 1} bytes)")
        if not sess.lock.acquire(timeout=self.timeout + 5):
            raise BadRequest("another request holds this session", 503)
        try:
            return self._put_locked(sess, a, b, total, n)
        finally:
            sess.lock.release()

    def _check_total(self, sess, total):
        if total is not None and sess.total is not None and total != sess.total:
            raise BadRequest(f"total size {total} differs from the session's "
                             f"{sess.total}")

    def _status(self, sess, total):
        """A status query reads the current offset without waiting for a
        PUT in flight; completing (all TOTAL bytes held, e.g. an empty
        file) takes the session lock."""
        if self._maybe_fault("status"):
            return
        if sess.resource is None:
            self._check_total(sess, total)
            if total is not None and sess.next == total:
                with sess.lock:
                    if sess.dead:
                        raise BadRequest("upload session not found", 404)
                    if sess.resource is None and sess.next == total:
                        sess.total = total
                        self.app.complete(sess)
        return self._answer_state(sess)

    def _put_locked(self, sess, a, b, total, n):
        if sess.dead:
            raise BadRequest("upload session not found", 404)
        if sess.resource is not None:
            return self._answer_state(sess)   # complete: the resource again
        self._check_total(sess, total)
        final = total is not None and b + 1 == total
        if not final and n % QUANTUM:
            raise BadRequest(f"Invalid request. A chunk that is not the last "
                             f"must be a multiple of {QUANTUM} bytes (256 KiB);"
                             f" this one has {n}")
        if a > sess.next:
            raise BadRequest(f"Invalid request. The chunk starts at {a} but "
                             f"only {sess.next} bytes are persisted")
        if total is not None:
            sess.total = total
        skip = sess.next - a            # bytes of this chunk already held
        if skip:
            self.app.bump("overlap_bytes_skipped", min(skip, n))
        with open(sess.part_path, "ab") as part:
            seen = [0]

            def sink(chunk):
                # drop the part of the chunk the session already holds
                start = seen[0]
                seen[0] += len(chunk)
                if start < skip:
                    chunk = chunk[skip - start:]
                if chunk:
                    part.write(chunk)
                    sess.md5.update(chunk)
                    sess.next += len(chunk)
                    self.app.bump("bytes_received", len(chunk))

            def log_kept(mode, got):
                self.log_message("PUT /session/%s - chaos %s: kept %d of %d "
                                 "bytes, %d held", sess.sid[:8], mode, got, n,
                                 sess.next)

            received = self._receive_body(n, sink, log_kept)
        if received is None:
            return      # a fault answered, or the connection was dropped
        got, complete = received
        if not complete:
            self.log_message("PUT /session/%s - short body: %d of %d bytes, "
                             "%d held", sess.sid[:8], got, n, sess.next)
            return
        if final and sess.next == total:
            self.app.complete(sess)
        return self._answer_state(sess)


def main(argv=None):
    return serve(FakeGoogle, Handler, __doc__.split("\n")[0], selftest,
                 "check CRC32C and exit 0/1", argv)


if __name__ == "__main__":
    sys.exit(main())
