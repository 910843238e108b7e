#!/usr/bin/python3
"""etag_proxy.py — a fault proxy in front of a real S3 server (s3rver) for
one test: it forwards every request unchanged, except that the answer to
the first UploadPart gets a wrong ETag (a valid-looking MD5 that is not the
part's), as a part damaged in transit would. The worker must notice and send
that part again.

    etag_proxy.py --upstream http://127.0.0.1:P  -> prints "PORT n"
    GET /_stats -> {"rewritten": n, "parts": n}
"""
import argparse
import http.client
import json
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BOGUS = '"0123456789abcdef0123456789abcdef"'


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    lock = threading.Lock()
    stats = {"rewritten": 0, "parts": 0}

    def log_message(self, fmt, *args):
        sys.stderr.write("etag_proxy: " + fmt % args + "\n")

    def _forward(self):
        if self.path == "/_stats":
            body = json.dumps(self.stats).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        up = urllib.parse.urlsplit(self.server.upstream)
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "expect"}
        conn.request(self.command, self.path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        rewrite = False
        if self.command == "PUT" and "partNumber" in query and r.status == 200:
            with self.lock:
                self.stats["parts"] += 1
                rewrite = self.stats["rewritten"] == 0
                self.stats["rewritten"] += rewrite
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() in ("transfer-encoding", "connection", "content-length"):
                continue
            self.send_header(k, BOGUS if rewrite and k.lower() == "etag" else v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Proxy)
    srv.upstream = args.upstream
    print("PORT %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
