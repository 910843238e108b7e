#!/usr/bin/python3
"""http_source.py — a small http source server for cru's tests, for the
cases nginx cannot play. Standard library only.

Serves the files of --dir (GET and HEAD, HTTP/1.1 keep-alive) with the
Range semantics an http(s) source must have:

* ``Range: bytes=a-b`` (one range; ``a-``, ``-n`` too) -> 206 with
  ``Content-Range: bytes a-b/size``; unsatisfiable -> 416 with
  ``Content-Range: bytes */size``; several ranges -> 200 (allowed by RFC 9110);
* a strong ``ETag`` ("<mtime_ns hex>-<size hex>") and ``Last-Modified`` on
  every answer; ``If-Range`` with an ETag (strong comparison) or an HTTP date
  (exact match with Last-Modified) that does not match -> 200 with the whole
  file, as RFC 9110 says.

Options:

--dir DIR            the files (default: the current directory)
--host ADDR          bind address (default 127.0.0.1; 127.0.0.0/8 is all
                     loopback on Linux, so 127.0.0.2 is a second "host")
--port N             default 0: any free port; ``PORT n`` is printed on stdout
--no-range           ignore Range and If-Range: always 200 with the whole file
--etag strong|weak|none
                     the ETag sent: strong (default), weak (W/"...": never
                     matches an If-Range) or none (Last-Modified only)
--require-header 'Name: value'
                     answer 401 to any request without exactly that header
                     (may be repeated)

Hooks (not counted in /_stats, no header required):

GET /_fail?count=N&status=S  the next N file GETs are answered S (with a
                             short body); count=0 clears
GET /_stats                  JSON {"requests": n (file GETs/HEADs, redirects
                             included), "bytes": body bytes sent,
                             "statuses": {"206": n, ...}, "failed": n
                             (answered by /_fail), "unauthorized": n,
                             "ranges": [the Range header of the last 50
                             requests], "paths": [their paths, query cut]}
GET /redirect?to=URL         302 to URL (counted as a request)
"""

import argparse
import email.utils
import json
import os
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class State:
    def __init__(self, args):
        self.dir = os.path.abspath(args.dir)
        self.no_range = args.no_range
        self.etag = args.etag
        self.required = []
        for h in args.require_header or []:
            name, _, value = h.partition(":")
            self.required.append((name.strip(), value.strip()))
        self.lock = threading.Lock()
        self.fail_count = 0
        self.fail_status = 503
        self.requests = 0
        self.bytes = 0
        self.failed = 0
        self.unauthorized = 0
        self.statuses = {}
        self.ranges = []
        self.paths = []

    def count(self, path, rng):
        with self.lock:
            self.requests += 1
            self.ranges = (self.ranges + [rng])[-50:]
            self.paths = (self.paths + [path])[-50:]

    def status(self, code):
        with self.lock:
            self.statuses[str(code)] = self.statuses.get(str(code), 0) + 1

    def take_fail(self):
        with self.lock:
            if self.fail_count > 0:
                self.fail_count -= 1
                self.failed += 1
                return self.fail_status
            return None

    def stats(self):
        with self.lock:
            return {"requests": self.requests, "bytes": self.bytes,
                    "statuses": dict(self.statuses), "failed": self.failed,
                    "unauthorized": self.unauthorized, "ranges": list(self.ranges),
                    "paths": list(self.paths), "fail_pending": self.fail_count}


def parse_range(header, size):
    """(start, end) inclusive for one satisfiable byte range, "416" for an
    unsatisfiable one, None to answer 200 (absent, malformed, several)."""
    if not header or not header.startswith("bytes="):
        return None
    spec = header[6:].strip()
    if "," in spec or "-" not in spec:
        return None
    a, _, b = spec.partition("-")
    a, b = a.strip(), b.strip()
    try:
        if a == "":
            n = int(b)
            if n <= 0:
                return "416"
            return (max(0, size - n), size - 1) if size > 0 else "416"
        start = int(a)
        end = int(b) if b else size - 1
    except ValueError:
        return None
    if start < 0:
        return None
    if start >= size:
        return "416"
    if end < start:
        return None
    return (start, min(end, size - 1))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "http_source/1"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    @property
    def st(self):
        return self.server.state

    def _send(self, code, body=b"", headers=()):
        self.st.status(code)
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)
            with self.st.lock:
                self.st.bytes += len(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query)
        if u.path == "/_stats":
            body = json.dumps(self.st.stats()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if u.path == "/_fail":
            with self.st.lock:
                self.st.fail_count = int(q.get("count", ["1"])[0])
                self.st.fail_status = int(q.get("status", ["503"])[0])
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.st.count(u.path, self.headers.get("Range") or "")
        for name, value in self.st.required:
            if self.headers.get(name) != value:
                with self.st.lock:
                    self.st.unauthorized += 1
                self._send(401, b"unauthorized\n", [("WWW-Authenticate", "Bearer")])
                return
        if u.path == "/redirect":
            to = q.get("to", [""])[0]
            self._send(302, b"", [("Location", to)])
            return
        code = self.st.take_fail()
        if code is not None:
            self._send(code, b"injected failure\n", [("Retry-After", "0")])
            return
        rel = urllib.parse.unquote(u.path).lstrip("/")
        path = os.path.realpath(os.path.join(self.st.dir, rel))
        if not path.startswith(self.st.dir + os.sep) or not os.path.isfile(path):
            self._send(404, b"not found\n")
            return
        self.serve_file(path)

    def serve_file(self, path):
        with open(path, "rb") as f:
            stt = os.fstat(f.fileno())
            size = stt.st_size
            etag = '"%x-%x"' % (stt.st_mtime_ns, size)
            lm = email.utils.formatdate(stt.st_mtime, usegmt=True)
            rng = None
            if not self.st.no_range:
                rng = parse_range(self.headers.get("Range"), size)
                if_range = self.headers.get("If-Range")
                if rng is not None and if_range is not None:
                    if if_range.startswith('"') or if_range.startswith("W/"):
                        if self.st.etag != "strong" or if_range != etag:  # strong comparison
                            rng = None
                    elif if_range != lm:
                        rng = None
            common = [("Last-Modified", lm),
                      ("Accept-Ranges", "none" if self.st.no_range else "bytes"),
                      ("Content-Type", "application/octet-stream")]
            if self.st.etag == "strong":
                common.append(("ETag", etag))
            elif self.st.etag == "weak":
                common.append(("ETag", "W/" + etag))
            if rng == "416":
                self._send(416, b"", common + [("Content-Range", "bytes */%d" % size)])
                return
            if rng is None:
                code, start, length, extra = 200, 0, size, []
            else:
                start, end = rng
                code, length = 206, end - start + 1
                extra = [("Content-Range", "bytes %d-%d/%d" % (start, end, size))]
            self.st.status(code)
            self.send_response(code)
            for k, v in common + extra:
                self.send_header(k, v)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            if self.command == "HEAD":
                return
            f.seek(start)
            left = length
            try:
                while left > 0:
                    block = f.read(min(left, 256 * 1024))
                    if not block:
                        break
                    self.wfile.write(block)
                    left -= len(block)
                    with self.st.lock:
                        self.st.bytes += len(block)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default=".")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--no-range", action="store_true")
    ap.add_argument("--etag", choices=("strong", "weak", "none"), default="strong")
    ap.add_argument("--require-header", action="append")
    args = ap.parse_args()
    srv = Server((args.host, args.port), Handler)
    srv.state = State(args)
    print("PORT %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
