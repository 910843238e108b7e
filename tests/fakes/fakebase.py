"""fakebase.py - what cru's strict upload-protocol fakes have in common.

graph_fake.py (Microsoft Graph upload sessions) and google_fake.py (Google
resumable uploads) differ in their protocols but share their test
machinery, which lives here.  Python 3 standard library only; each fake puts
its own directory on sys.path and imports this module, so it still runs as
``python3 tests/fakes/<name>.py`` from any directory.

* FakeApp - the server state both fakes keep under one lock: the store
  directories (DIR/files, DIR/sessions, stale ``*.part`` files removed at
  start), the session table, request counts per "METHOD kind", named
  counters, the /_fail faults (count-based: status, retry_after, keep) and
  the /_chaos faults (probabilistic 503 / 429 / partial500 / drop drawn
  from one seeded random.Random), and the /_stats document built from them.
* FakeHandler - a BaseHTTPRequestHandler for HTTP/1.1 keep-alive: one log
  line per request (``<name>: METHOD /path STATUS``), Content-Length
  parsing, streaming bodies to a sink in IO_BLOCK blocks (keeping what
  arrived when the client stalls or goes away), draining an unread body
  before answering (or answering ``Connection: close`` when it cannot),
  JSON answers, the test hook endpoints (/_stats, /_sessions, /_fail,
  /_chaos, /_expire) and applying /_fail and /_chaos faults to a request.
* serve() - the shared command line (--port --store --token --host
  --idle-timeout --selftest) and server loop: prints ``PORT <n>``, writes
  DIR/port, exits 0 on SIGTERM.

A fake subclasses FakeApp and FakeHandler, sets the class attributes that
name its protocol's error codes and messages, implements error_body(),
open_sessions_locked(), list_sessions() and _route_protocol(), and calls
serve() from its main().  Errors are raised as BadRequest anywhere below a
request and answered by FakeHandler._dispatch().
"""

import argparse
import json
import os
import random
import re
import secrets
import signal
import socket
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KiB = 1024
MiB = 1024 * KiB
IO_BLOCK = 1 * MiB                     # body read / disk write / hash block
MAX_JSON_BODY = 1 * MiB                # JSON request bodies and hook bodies
CHAOS_MODES = ("503", "429", "partial500", "drop")
HOOK_PATHS = ("/_stats", "/_sessions", "/_fail", "/_chaos", "/_expire")
GET_HOOKS = ("/_stats", "/_sessions")  # the others are POST


class BadRequest(Exception):
    """An error answer: HTTP status plus the protocol's error code.

    code None means the handler's default for the status (see
    FakeHandler.default_code).
    """

    def __init__(self, message, status=400, code=None):
        super().__init__(message)
        self.status = status
        self.code = code


# --------------------------------------------------------------------------
# Server state
# --------------------------------------------------------------------------

class FakeApp:
    """State shared by all handler threads; self.lock guards every field.

    Subclasses set request_kinds (the kinds /_stats sums at top level, in
    order), pass their counter names (which must include sessions_created
    and faults_injected) to __init__, and implement
    open_sessions_locked() and list_sessions().  Sessions are objects with
    at least sid, part_path and dead.
    """

    request_kinds = ("other",)

    def __init__(self, store, token, host, counter_names):
        self.store = os.path.abspath(store)
        self.files_dir = os.path.join(self.store, "files")
        self.sessions_dir = os.path.join(self.store, "sessions")
        os.makedirs(self.files_dir, exist_ok=True)
        os.makedirs(self.sessions_dir, exist_ok=True)
        for name in os.listdir(self.sessions_dir):  # stale parts of a prior run
            if name.endswith(".part"):
                os.unlink(os.path.join(self.sessions_dir, name))
        self.token = token
        self.host = "127.0.0.1" if host in ("", "0.0.0.0") else host
        self.port = None                # set by serve() once bound
        self.lock = threading.Lock()
        self.sessions = {}              # sid -> session
        self.faults = {}                # kind -> dict(count, status, ...)
        self.requests = {}              # "METHOD kind" -> n
        self.counters = {name: 0 for name in counter_names}
        # /_chaos: probabilistic faults on chunk / fragment PUTs
        self.chaos = {"rate": 0.0, "modes": list(CHAOS_MODES),
                      "retry_after": None, "seed": None}
        self.chaos_rng = random.Random()
        self.chaos_counts = {m: 0 for m in CHAOS_MODES}

    def base_url(self):
        """http://HOST:PORT as clients reach this server (IPv6 bracketed)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- bookkeeping --------------------------------------------------------
    def count_request(self, method, kind):
        with self.lock:
            key = f"{method} {kind}"
            self.requests[key] = self.requests.get(key, 0) + 1

    def bump(self, name, n=1):
        with self.lock:
            self.counters[name] += n

    def open_sessions_locked(self):
        """The sessions_open figure of /_stats (called with self.lock held)."""
        raise NotImplementedError

    def list_sessions(self):
        """The JSON list GET /_sessions answers."""
        raise NotImplementedError

    def stats(self):
        """The JSON document GET /_stats answers."""
        with self.lock:
            out = {"requests": dict(self.requests)}
            for kind in self.request_kinds:
                out[kind] = sum(v for k, v in self.requests.items()
                                if k.split(" ", 1)[1] == kind)
            out.update(self.counters)
            out["sessions_open"] = self.open_sessions_locked()
            out["faults_pending"] = {k: dict(v) for k, v in self.faults.items()}
            out["chaos"] = dict(self.chaos_counts)
            out["chaos_total"] = sum(self.chaos_counts.values())
            out["chaos_settings"] = {k: (list(v) if isinstance(v, list)
                                         else v)
                                     for k, v in self.chaos.items()}
            return out

    # -- /_fail -------------------------------------------------------------
    def set_fault(self, kind, fault):
        """Arm (count > 0) or clear (count 0) the fault for kind."""
        with self.lock:
            if fault["count"] > 0:
                self.faults[kind] = fault
            else:
                self.faults.pop(kind, None)

    def take_fault(self, kind):
        """Consume one pending fault of kind: a copy of it, or None."""
        with self.lock:
            f = self.faults.get(kind)
            if not f:
                return None
            f["count"] -= 1
            if f["count"] <= 0:
                del self.faults[kind]
            self.counters["faults_injected"] += 1
            return dict(f)

    # -- /_chaos ------------------------------------------------------------
    def set_chaos(self, rate, modes, retry_after, seed):
        """New chaos settings; re-seeds the dice.  Returns the settings."""
        with self.lock:
            self.chaos = {"rate": rate, "modes": list(modes),
                          "retry_after": retry_after, "seed": seed}
            self.chaos_rng = random.Random(seed)
            return dict(self.chaos)

    def take_chaos(self, n):
        """Roll the dice for one PUT of n body bytes.

        Returns None, or (mode, keep, retry_after): keep is how many bytes of
        the body to store first (partial500: 0 < keep < n, or 0 when
        n == 1; drop: 0 <= keep < n; 503/429: 0).
        """
        with self.lock:
            c = self.chaos
            if c["rate"] <= 0 or not c["modes"]:
                return None
            rng = self.chaos_rng
            if rng.random() >= c["rate"]:
                return None
            mode = rng.choice(c["modes"])
            keep = 0
            if mode == "partial500" and n >= 2:
                keep = rng.randint(1, n - 1)
            elif mode == "drop" and n >= 1:
                keep = rng.randint(0, n - 1)
            self.chaos_counts[mode] += 1
            return mode, keep, c["retry_after"]

    # -- sessions -----------------------------------------------------------
    def new_part_file(self, sid_bytes):
        """A fresh session id and its empty part file: (sid, part_path)."""
        sid = secrets.token_urlsafe(sid_bytes)
        part = os.path.join(self.sessions_dir, sid + ".part")
        open(part, "wb").close()
        return sid, part

    def add_session(self, sess):
        with self.lock:
            self.sessions[sess.sid] = sess
            self.counters["sessions_created"] += 1

    def _drop(self, sess):
        """Forget sess and delete its part file (self.lock held)."""
        sess.dead = True
        self.sessions.pop(sess.sid, None)
        try:
            os.unlink(sess.part_path)
        except FileNotFoundError:
            pass

    def drop(self, sess):
        with self.lock:
            self._drop(sess)

    def expire_all(self):
        """POST /_expire: drop every session; returns how many there were."""
        with self.lock:
            sessions = list(self.sessions.values())
            for s in sessions:
                self._drop(s)
            return len(sessions)


# --------------------------------------------------------------------------
# HTTP handler
# --------------------------------------------------------------------------

class FakeHandler(BaseHTTPRequestHandler):
    """Request plumbing shared by the fakes.

    Subclasses set the class attributes below and implement error_body()
    and _route_protocol(); they answer with _json(), _send() and _error()
    or by raising BadRequest.
    """

    protocol_version = "HTTP/1.1"
    timeout = 30                        # overwritten from --idle-timeout

    log_name = "fake"                   # prefix of every stderr line
    content_type = "application/json"   # of every answer with a body
    send_body_on_head = False           # write the body of a HEAD answer too
    drain_limit = 128 * MiB             # unread bodies up to this are drained
    too_large_code = "tooLarge"         # code of a 413 for a big JSON body
    # _check_bearer(): 401 messages and code
    auth_missing_message = "missing credentials"
    auth_invalid_message = "invalid credentials"
    auth_error_code = "unauthenticated"
    # /_fail and /_chaos answers: code for a status, else the default
    fault_codes = {}
    fault_code_default = "injectedFault"
    fault_kinds = ("put",)              # kind= values /_fail accepts
    max_fault_keep = 1 << 40            # largest keep= /_fail accepts
    chaos_500_message = ("chaos: internal error after storing {keep} of {n} "
                         "bytes")
    chaos_modes_in_errors = False       # list the known modes in the 400

    @property
    def app(self):
        return self.server.app

    # -- protocol specifics (overridden) ------------------------------------
    def default_code(self, status):
        """The error code of a BadRequest raised without one."""
        return "invalidRequest"

    def error_body(self, status, message, code):
        """The JSON object of an error answer."""
        raise NotImplementedError

    def _route_protocol(self, method, path, query):
        """Answer a request that is not a test hook."""
        raise NotImplementedError

    # -- logging ------------------------------------------------------------
    def _log_path(self):
        return urllib.parse.urlsplit(getattr(self, "path", "") or "").path

    def log_request(self, code="-", size="-"):
        code = getattr(code, "value", code)
        sys.stderr.write(f"{self.log_name}: {self.command} {self._log_path()} "
                         f"{code}\n")
        sys.stderr.flush()

    def log_message(self, fmt, *args):
        sys.stderr.write(f"{self.log_name}: " + (fmt % args) + "\n")
        sys.stderr.flush()

    # -- body handling ------------------------------------------------------
    def _content_length(self):
        """Content-Length as int; None when absent; -1 when malformed."""
        vals = self.headers.get_all("Content-Length") or []
        if not vals:
            return None
        if len(set(v.strip() for v in vals)) != 1:
            return -1
        v = vals[0].strip()
        return int(v) if v.isdigit() else -1

    def _chunked(self):
        return "Transfer-Encoding" in self.headers

    def _stream_body(self, n, sink):
        """Read n body bytes, giving them to sink() in blocks <= IO_BLOCK.

        Returns (bytes_received, complete).  On EOF / timeout / reset the
        bytes that did arrive are still handed to sink(), and the connection
        is marked for closing.
        """
        self._body_done = True
        got = 0
        buf = bytearray()
        complete = True
        try:
            while got + len(buf) < n:
                want = min(IO_BLOCK - len(buf), n - got - len(buf))
                chunk = self.rfile.read1(want)
                if not chunk:
                    complete = False
                    break
                buf += chunk
                if len(buf) >= IO_BLOCK:
                    sink(bytes(buf))
                    got += len(buf)
                    buf.clear()
        except OSError:             # includes TimeoutError, ConnectionReset
            complete = False
        if buf:
            sink(bytes(buf))
            got += len(buf)
        if not complete:
            self.close_connection = True
        return got, complete

    def _keep_then_drain(self, n, keep, sink):
        """Give the first min(keep, n) of n body bytes to sink, drop the rest."""
        keep = min(keep, n)
        _got, complete = self._stream_body(keep, sink)
        if complete:
            self._stream_body(n - keep, lambda _chunk: None)

    def _read_small_body(self, limit, required=False):
        """Whole body (bytes) for small JSON requests; BadRequest if too big.

        required: a missing Content-Length is a 411 rather than no body.
        """
        if self._chunked():
            self.close_connection = True
            raise BadRequest("chunked request bodies are not supported", 411,
                             "lengthRequired")
        n = self._content_length()
        if n is None:
            self._body_done = True
            if required:
                raise BadRequest("Content-Length is required", 411,
                                 "lengthRequired")
            return b""
        if n < 0:
            self.close_connection = True
            raise BadRequest("malformed Content-Length")
        if n > limit:
            raise BadRequest("request body too large", 413,
                             self.too_large_code)
        parts = []
        _got, complete = self._stream_body(n, parts.append)
        if not complete:
            raise ConnectionAbortedError("client sent a short body")
        return b"".join(parts)

    def _finish_body(self):
        """Before answering: drain an unread body, or mark for close."""
        if self._body_done:
            return
        self._body_done = True
        if self._chunked():
            self.close_connection = True
            return
        n = self._content_length()
        if n is None or n == 0:
            return
        if n < 0 or n > self.drain_limit:
            self.close_connection = True
            return
        self._stream_body(n, lambda _chunk: None)

    # -- responses ----------------------------------------------------------
    def _send(self, status, body=b"", headers=None):
        """Answer with body (Content-Type only when there is one)."""
        self._finish_body()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        if body:
            self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body and (self.command != "HEAD" or self.send_body_on_head):
            self.wfile.write(body)
        self.wfile.flush()
        self._responded = True

    def _json(self, status, obj, headers=None):
        self._send(status, json.dumps(obj).encode(), headers)

    def _error(self, status, message, code=None, headers=None):
        """A protocol-style JSON error (code None: default_code(status))."""
        if code is None:
            code = self.default_code(status)
        self._json(status, self.error_body(status, message, code), headers)

    def _protocol_error_body(self, code, message):
        """JSON object for send_error(); defaults to an ordinary error."""
        return self.error_body(code, message, self.default_code(code))

    def send_error(self, code, message=None, explain=None):
        # protocol-level errors from BaseHTTPRequestHandler: JSON, then close
        code = int(code)
        self.close_connection = True
        self._body_done = True
        if not getattr(self, "command", None):
            self.command = ""
        self.log_message("protocol error %d: %s", code, message)
        self._json(code, self._protocol_error_body(code, message or str(code)))

    def _drop_connection(self):
        """Abort the connection without answering (chaos mode "drop")."""
        self.close_connection = True
        self._responded = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- dispatch -----------------------------------------------------------
    def _dispatch(self):
        self._body_done = False
        self._responded = False
        method = self.command
        split = urllib.parse.urlsplit(self.path)
        path = split.path
        query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        try:
            self._route(method, path, query)
        except BadRequest as e:
            self._error(e.status, str(e), e.code)
        except (ConnectionError, TimeoutError) as e:
            self.close_connection = True
            if not self._responded:
                self.log_message("%s %s - client gone (%s)", method, path,
                                 type(e).__name__)

    def _route(self, method, path, query):
        if path in HOOK_PATHS:
            want = "GET" if path in GET_HOOKS else "POST"
            if method != want:
                return self._not_allowed(want)
            return self._hook(path, query)
        return self._route_protocol(method, path, query)

    def _not_allowed(self, allow):
        self._error(405, f"{self.command} not allowed here",
                    "methodNotAllowed", {"Allow": allow})

    def _check_bearer(self):
        auth = self.headers.get("Authorization")
        if auth != f"Bearer {self.app.token}":
            raise BadRequest(self.auth_missing_message if auth is None
                             else self.auth_invalid_message,
                             401, self.auth_error_code)

    # -- applying faults ----------------------------------------------------
    def fault_code(self, status):
        return self.fault_codes.get(status, self.fault_code_default)

    def _maybe_fault(self, kind, keep_fn=None):
        """Answer a pending /_fail fault of kind, if any; True if answered.

        keep_fn(keep) stores the first keep bytes of the body and drains
        the rest (for ``put``).
        """
        f = self.app.take_fault(kind)
        if f is None:
            return False
        headers = {}
        if f.get("retry_after") is not None:
            headers["Retry-After"] = f["retry_after"]
        if keep_fn is not None:
            keep_fn(f.get("keep", 0))
        status = f["status"]
        self._error(status, f"injected fault (status {status})",
                    self.fault_code(status), headers)
        return True

    def _chaos_fault(self, n, sink, log_kept):
        """/_chaos for one validated PUT of n body bytes (session locked).

        sink stores body bytes as a normal PUT would; log_kept(mode, got)
        logs how much of the body a partial500 / drop stored.  Returns None
        (no fault: store the body normally), "answered" (an error was sent,
        or the client vanished mid-body), or "drop" (a prefix was stored;
        the caller shuts the connection with _drop_connection()).
        """
        c = self.app.take_chaos(n)
        if c is None:
            return None
        mode, keep, retry_after = c
        headers = {}
        if retry_after is not None and mode in ("503", "429"):
            headers["Retry-After"] = retry_after
        if mode in ("503", "429"):
            self._keep_then_drain(n, 0, sink)   # drains, storing nothing
            status = int(mode)
            self._error(status, f"chaos: injected {status}",
                        self.fault_code(status), headers)
            return "answered"
        got, complete = self._stream_body(keep, sink)
        log_kept(mode, got)
        if mode == "drop":
            return "drop"
        if not complete:            # client gone mid-prefix: nobody to answer
            return "answered"
        _rest, complete = self._stream_body(n - keep, lambda _chunk: None)
        if not complete:
            return "answered"
        self._error(500, self.chaos_500_message.format(keep=keep, n=n),
                    self.fault_code(500), headers)
        return "answered"

    def _receive_body(self, n, sink, log_kept):
        """Receive the n body bytes of a validated chunk / fragment PUT.

        A pending /_fail ``put`` fault or a /_chaos fault may take the
        request instead (see _maybe_fault and _chaos_fault; log_kept as
        there).  Returns (got, complete) when the body went to sink as
        usual, else None: the request is over (answered, client gone, or
        the connection dropped without an answer).
        """
        if self._maybe_fault("put", lambda keep: self._keep_then_drain(
                n, keep, sink)):
            return None
        chaos = self._chaos_fault(n, sink, log_kept)
        if chaos == "drop":
            self._drop_connection()
        if chaos is not None:
            return None
        return self._stream_body(n, sink)

    # -- test hooks ---------------------------------------------------------
    def _hook(self, path, query):
        self._read_small_body(MAX_JSON_BODY)
        if path == "/_stats":
            return self._json(200, self.app.stats())
        if path == "/_sessions":
            return self._json(200, self.app.list_sessions())
        if path == "/_expire":
            return self._json(200, {"expired": self.app.expire_all()})
        if path == "/_chaos":
            return self._chaos_hook(query)
        return self._fail_hook(query)

    def _fail_hook(self, query):
        def num(name, default, lo, hi):
            vals = query.get(name)
            if not vals:
                if default is None:
                    raise BadRequest(f"{name} is required")
                return default
            if not vals[0].isdigit() or not lo <= int(vals[0]) <= hi:
                raise BadRequest(f"{name} must be an integer in [{lo}, {hi}]")
            return int(vals[0])

        kinds = self.fault_kinds
        kind = query.get("kind", ["put"])[0]
        if kind not in kinds:
            raise BadRequest("kind must be " + ", ".join(kinds[:-1])
                             + " or " + kinds[-1])
        fault = {"count": num("count", 1, 0, 1 << 30),
                 "status": num("status", None, 200, 599),
                 "retry_after": query.get("retry_after", [None])[0],
                 "keep": num("keep", 0, 0, self.max_fault_keep)}
        self.app.set_fault(kind, fault)
        self._json(200, {"kind": kind, **fault})

    def _chaos_hook(self, query):
        def one(name):
            vals = query.get(name)
            if vals and len(vals) != 1:
                raise BadRequest(f"{name} given more than once")
            return vals[0] if vals else None

        raw = one("rate")
        if raw is None:
            raise BadRequest("rate is required (0..1; 0 turns chaos off)")
        try:
            rate = float(raw)
        except ValueError:
            rate = -1.0
        if not 0.0 <= rate <= 1.0:      # also rejects nan
            raise BadRequest("rate must be a number in [0, 1]")
        raw = one("modes")
        modes = list(CHAOS_MODES)
        if raw is not None:
            modes = []
            for m in raw.split(","):
                m = m.strip()
                if m not in CHAOS_MODES:
                    raise BadRequest(
                        f"unknown chaos mode {m!r}"
                        + ("; known: " + ",".join(CHAOS_MODES)
                           if self.chaos_modes_in_errors else ""))
                if m not in modes:
                    modes.append(m)
        retry_after = one("retry_after")
        if retry_after is not None and not retry_after.isdigit():
            raise BadRequest("retry_after must be an integer >= 0")
        seed = one("seed")
        if seed is not None:
            if not re.fullmatch(r"-?[0-9]+", seed):
                raise BadRequest("seed must be an integer")
            seed = int(seed)
        self._json(200, self.app.set_chaos(rate, modes, retry_after, seed))

    # -- HTTP methods -------------------------------------------------------
    do_GET = do_PUT = do_POST = do_DELETE = _dispatch

    def do_HEAD(self):
        self._body_done = False
        self._responded = False
        self._error(405, "HEAD is not supported", "methodNotAllowed")

    do_PATCH = do_OPTIONS = do_HEAD


# --------------------------------------------------------------------------
# Command line and server loop
# --------------------------------------------------------------------------

class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def serve(app_factory, handler_class, description, selftest, selftest_help,
          argv=None):
    """main() of a fake: parse the command line, then run the server.

    app_factory(store, token, host) builds the FakeApp; selftest() runs
    for --selftest and returns the exit status.  Prints ``PORT <n>`` once
    bound, writes <n> to STORE/port, serves until SIGTERM / ^C; returns 0.
    """
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--port", type=int)
    ap.add_argument("--store")
    ap.add_argument("--token")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--idle-timeout", type=float, default=30.0)
    ap.add_argument("--selftest", action="store_true", help=selftest_help)
    args = ap.parse_args(argv)
    if args.selftest:
        return selftest()
    if args.port is None or not args.store or not args.token:
        ap.error("--port, --store and --token are required")

    app = app_factory(args.store, args.token, args.host)
    handler_class.timeout = args.idle_timeout
    httpd = Server((args.host, args.port), handler_class)
    httpd.app = app
    app.port = httpd.server_address[1]
    with open(os.path.join(app.store, "port"), "w") as f:
        f.write(f"{app.port}\n")
    print(f"PORT {app.port}", flush=True)
    sys.stderr.write(f"{handler_class.log_name}: listening on "
                     f"{args.host}:{app.port}, store {app.store}\n")
    sys.stderr.flush()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0
