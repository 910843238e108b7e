#!/usr/bin/python3
"""bench.py — cru's benchmark (make bench): throughput as ratios against a
reference run in the same invocation, peak memory, queue overhead.

Starts its own redis-server and the C upload sink (tests/bench/sink.c, which
answers like a Graph upload URL: 202 with nextExpectedRanges, 201 at the last
range), then measures, each figure the median of RUNS runs (min and max
printed too):

  stream ratio     1 GiB, one job, 60 MiB chunks, one worker slot -> sink,
                   divided by `curl -T` of the same file to the same sink
  parallel ratio   4 jobs of 1 GiB, one worker process with --concurrency 4,
                   divided by 4 concurrent `curl -T`
  peak RSS         VmHWM of that worker, with 60 MiB and with 4 MiB chunks
  small jobs/s     5,000 jobs of 4 KiB, one worker process, concurrency 8,
                   divided by BullMQ (tests/bench/bullmq_bench.mjs) doing the
                   same 4 KiB PUT per job with concurrency 8, same Redis/sink
  round trips      Redis commands the workers send per chunk, counted with
                   MONITOR in an extra run (INFO commandstats would also
                   count the calls functions make inside Redis, which are
                   not round trips)
  scaling          16 jobs of 64 MiB: one worker process vs two of the same
                   concurrency
  http source      the 1 GiB file served by a local nginx (config written
                   into the temp dir), one job, 60 MiB chunks, one slot with
                   CRU_ALLOW_NETS=127.0.0.0/8 -> sink, divided by
                   `curl -s SRC | curl -sS -T - SINK`; peak RSS of a fresh
                   one-slot worker with 60 MiB and 7680 KiB chunks

Standard library only. Usage: bench.py CRU_BINARY SINK_BINARY [--runs N]
"""

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MiB = 1024 * 1024
GiB = 1024 * MiB
# "4 MiB" chunks: Graph wants multiples of 320 KiB; 13 x 320 KiB = 4160 KiB
SMALL_CHUNK = 13 * 327680
# "8 MiB" chunks for the http source: 24 x 320 KiB = 7680 KiB
HTTP_SMALL_CHUNK = 24 * 327680
NGINX = "/usr/sbin/nginx"


# ------------------------------------------------------------------ redis

class Redis:
    """A minimal RESP client: enough for FCALL, HGET, INFO, FLUSHALL."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            self.buf += self.sock.recv(65536)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(65536)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data.decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RuntimeError("bad reply %r" % line)

    @staticmethod
    def _encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        return b"".join(out)

    def cmd(self, *args):
        self.sock.sendall(self._encode(args))
        return self._reply()

    def pipeline(self, commands):
        """Sends many commands at once; returns their replies."""
        self.sock.sendall(b"".join(self._encode(c) for c in commands))
        return [self._reply() for _ in commands]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ------------------------------------------------------------------ helpers

class Bench:
    def __init__(self, cru, sink, runs):
        self.cru, self.sink_bin, self.runs = cru, sink, runs
        self.tmp = tempfile.mkdtemp(prefix="cru-bench-")
        self.procs = []
        self.rows = []

    def start(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p in self.procs:
            self.procs.remove(p)

    def close(self):
        for p in list(self.procs):
            self.stop(p)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def setup(self):
        self.redis_port = free_port()
        self.start(["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--dir", self.tmp,
                    "--logfile", os.path.join(self.tmp, "redis.log")])
        for _ in range(200):
            try:
                self.r = Redis(self.redis_port)
                self.r.cmd("PING")
                break
            except OSError:
                time.sleep(0.05)
        sink = self.start([self.sink_bin, "--port", "0"], stdout=subprocess.PIPE, text=True)
        line = sink.stdout.readline()
        self.sink_url = "http://127.0.0.1:%s" % line.split()[1]
        self.env = dict(os.environ, CRU_REDIS_URL="redis://127.0.0.1:%d/0" % self.redis_port,
                        CRU_SOURCE_ROOT=self.tmp, CRU_LOG_LEVEL="warn")
        subprocess.run([self.cru, "init"], env=self.env, check=True, stdout=subprocess.DEVNULL)

        say("writing test data in %s" % self.tmp)
        self.big = os.path.join(self.tmp, "big.bin")
        self.mid = os.path.join(self.tmp, "mid.bin")
        write_random(self.big, GiB)
        write_random(self.mid, 64 * MiB)
        self.small_dir = os.path.join(self.tmp, "small")
        os.mkdir(self.small_dir)
        block = os.urandom(4096)
        for i in range(5000):
            with open(os.path.join(self.small_dir, "f%d.bin" % i), "wb") as f:
                f.write(block)

    def worker(self, concurrency, env=None):
        log = open(os.path.join(self.tmp, "worker.log"), "a")
        p = self.start([self.cru, "worker", "--concurrency", str(concurrency)],
                       env=env or self.env, stderr=log, stdout=log)
        time.sleep(0.3)
        return p

    def submit(self, specs):
        replies = self.r.pipeline([("FCALL", "cru_submit", "0", json.dumps(s)) for s in specs])
        return replies

    def done_count(self):
        return int(self.r.cmd("HGET", "cru:states", "done") or 0)

    def wait_done(self, target, poll=0.002):
        """Waits until target jobs are done in all."""
        while True:
            if self.done_count() >= target:
                return
            if int(self.r.cmd("HGET", "cru:states", "failed") or 0):
                raise RuntimeError("a benchmark job failed: see %s/worker.log" % self.tmp)
            time.sleep(poll)

    def spec(self, path, chunk, n):
        return {"source": path, "chunk_size": chunk,
                "target": {"type": "graph", "upload_url": "%s/upload/%d" % (self.sink_url, n)}}

    def run_jobs(self, specs):
        """Submits specs to running workers; returns the seconds until all
        are done."""
        base = self.done_count()
        t0 = time.monotonic()
        self.submit(specs)
        self.wait_done(base + len(specs))
        return time.monotonic() - t0

    def curl(self, n, path):
        t0 = time.monotonic()
        ps = [subprocess.Popen(["curl", "-sS", "-o", "/dev/null", "-T", path,
                                "%s/up/%d" % (self.sink_url, i)]) for i in range(n)]
        for p in ps:
            if p.wait() != 0:
                raise RuntimeError("curl failed")
        return time.monotonic() - t0

    def round_trips(self, specs, chunks):
        """Runs specs once more while MONITOR counts the commands the
        workers send (not the calls functions make inside Redis, which
        INFO commandstats would also count, nor the benchmark's own);
        returns them per chunk."""
        mon = socket.create_connection(("127.0.0.1", self.redis_port))
        mon.sendall(Redis._encode(["MONITOR"]))
        mon.settimeout(0.2)
        mine = "%s:%d" % self.r.sock.getsockname()
        buf, count = b"", 0
        base = self.done_count()
        self.submit(specs)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                data = mon.recv(1 << 20)
            except socket.timeout:
                data = b""
            buf += data
            *lines, buf = buf.split(b"\r\n")
            for line in lines:
                if line.startswith(b"+") and b"[" in line:
                    who = line.split(b"[", 1)[1].split(b"]", 1)[0].decode()
                    if not who.endswith(" lua") and not who.endswith(mine):
                        count += 1
            if not data and self.done_count() >= base + len(specs):
                break
        mon.close()
        return count / chunks

    def row(self, figure, how, values, goal, fmt="%.2f", ok=None):
        med = statistics.median(values)
        line = (figure, how, fmt % med, fmt % min(values), fmt % max(values), goal,
                "" if ok is None else ("yes" if ok(med) else "NO"))
        self.rows.append(line)
        say("%s: median %s (min %s, max %s)" % (figure, line[2], line[3], line[4]))

    # ------------------------------------------------------------ figures

    def stream(self):
        say("stream: 1 GiB, 60 MiB chunks, one slot vs curl -T")
        w = self.worker(1)
        ratios, rates, rts = [], [], []
        for i in range(self.runs):
            tc = self.curl(1, self.big)
            tw = self.run_jobs([self.spec(self.big, 60 * MiB, i)])
            rts.append(self.round_trips([self.spec(self.big, 60 * MiB, 100 + i)],
                                        (GiB + 60 * MiB - 1) // (60 * MiB)))
            ratios.append(tc / tw)
            rates.append(GiB / tw / MiB)
            say("  curl %.2fs (%.0f MiB/s), worker %.2fs (%.0f MiB/s)" %
                (tc, GiB / tc / MiB, tw, GiB / tw / MiB))
        self.stop(w)
        self.row("stream ratio", "1 GiB, 60 MiB chunks, 1 slot / curl -T", ratios, ">= 0.90",
                 ok=lambda v: v >= 0.90)
        self.row("stream MiB/s", "the worker's rate in those runs", rates, "-", fmt="%.0f")
        self.row("round trips per chunk", "60 MiB chunks, 1 slot (MONITOR)", rts, "<= 2.5",
                 ok=lambda v: v <= 2.5)

    def parallel(self):
        say("parallel: 4 jobs of 1 GiB, --concurrency 4 vs 4 concurrent curl -T")
        ratios, hwm60, hwm4, rts = [], [], [], []
        for i in range(self.runs):
            tc = self.curl(4, self.big)
            w = self.worker(4)
            tw = self.run_jobs([self.spec(self.big, 60 * MiB, 4 * i + k) for k in range(4)])
            hwm60.append(vmhwm(w.pid))
            self.stop(w)
            w = self.worker(4)
            t4 = self.run_jobs([self.spec(self.big, SMALL_CHUNK, 4 * i + k) for k in range(4)])
            hwm4.append(vmhwm(w.pid))
            rts.append(self.round_trips(
                [self.spec(self.big, SMALL_CHUNK, 100 + 4 * i + k) for k in range(4)],
                4 * ((GiB + SMALL_CHUNK - 1) // SMALL_CHUNK)))
            self.stop(w)
            ratios.append(tc / tw)
            say("  4x curl %.2fs, worker 60 MiB chunks %.2fs, 4 MiB chunks %.2fs; "
                "VmHWM %d / %d kB" % (tc, tw, t4, hwm60[-1], hwm4[-1]))
            say("  worker with 4 MiB chunks: %.2f of 4 x curl" % (tc / t4))
        self.row("parallel ratio", "4 x 1 GiB, --concurrency 4 / 4 x curl -T", ratios,
                 ">= 0.90", ok=lambda v: v >= 0.90)
        self.row("peak RSS, 60 MiB chunks", "VmHWM of that worker, MiB",
                 [h / 1024 for h in hwm60], "<= 24", ok=lambda v: v <= 24)
        self.row("peak RSS, 4 MiB chunks", "VmHWM, same jobs in 4160 KiB chunks, MiB",
                 [h / 1024 for h in hwm4],
                 "<= 24", ok=lambda v: v <= 24)
        diff = [abs(a - b) / 1024 for a, b in zip(hwm60, hwm4)]
        self.row("peak RSS difference", "abs(60 MiB - 4 MiB chunks), MiB", diff, "<= 2",
                 ok=lambda v: v <= 2)
        self.row("round trips per chunk", "4160 KiB chunks, 4 slots (MONITOR)", rts, "<= 2.5",
                 ok=lambda v: v <= 2.5)

    def small(self):
        say("small jobs: 5,000 x 4 KiB, concurrency 8, cru vs BullMQ")
        ratios, rates, bull = [], [], []
        files = [os.path.join(self.small_dir, "f%d.bin" % i) for i in range(5000)]
        for i in range(self.runs):
            base = self.done_count()
            self.submit([self.spec(f, 10 * MiB, n) for n, f in enumerate(files)])
            w = self.worker(8)
            t0 = time.monotonic()
            self.wait_done(base + 5000, poll=0.01)
            tw = time.monotonic() - t0
            self.stop(w)
            out = subprocess.run(
                ["node", os.path.join(ROOT, "tests/bench/bullmq_bench.mjs"),
                 "--redis-port", str(self.redis_port), "--sink", self.sink_url + "/upload",
                 "--dir", self.small_dir, "--jobs", "5000", "--concurrency", "8"],
                check=True, stdout=subprocess.PIPE, text=True).stdout
            b = json.loads(out.strip().splitlines()[-1])["jobs_per_s"]
            rates.append(5000 / tw)
            bull.append(b)
            ratios.append(5000 / tw / b)
            say("  cru %.0f jobs/s, BullMQ %.0f jobs/s" % (5000 / tw, b))
        self.row("small jobs/s ratio", "5,000 x 4 KiB, concurrency 8 / BullMQ", ratios,
                 ">= 1.5", ok=lambda v: v >= 1.5)
        self.row("small jobs/s, cru", "jobs per second", rates, "-", fmt="%.0f")
        self.row("small jobs/s, BullMQ", "jobs per second", bull, "-", fmt="%.0f")

    def scaling(self):
        say("scaling: 16 jobs of 64 MiB, 1 worker process vs 2 (concurrency 4 each)")
        one, two = [], []
        specs = lambda i: [self.spec(self.mid, 10 * MiB, 16 * i + k) for k in range(16)]
        for i in range(self.runs):
            w = self.worker(4)
            t1 = self.run_jobs(specs(i))
            self.stop(w)
            ws = [self.worker(4), self.worker(4)]
            t2 = self.run_jobs(specs(i))
            for w in ws:
                self.stop(w)
            one.append(1024 / t1)
            two.append(1024 / t2)
            say("  1 process %.2fs, 2 processes %.2fs" % (t1, t2))
        self.row("scaling, 1 process", "16 x 64 MiB, MiB/s", one, "reported", fmt="%.0f")
        self.row("scaling, 2 processes", "same jobs, MiB/s", two, "reported", fmt="%.0f")
        self.row("scaling ratio", "2 processes / 1", [b / a for a, b in zip(one, two)],
                 "reported")

    def start_nginx(self):
        """nginx serving the temp dir on a free port of 127.0.0.1, from a
        config written there (pid, logs, temp paths inside it too)."""
        d = os.path.join(self.tmp, "nginx")
        os.mkdir(d)
        port = free_port()
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""%(user)s
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 64; }
http {
    default_type application/octet-stream;
    client_body_temp_path %(d)s/client_body;
    proxy_temp_path %(d)s/proxy;
    fastcgi_temp_path %(d)s/fastcgi;
    uwsgi_temp_path %(d)s/uwsgi;
    scgi_temp_path %(d)s/scgi;
    access_log off;
    sendfile on;
    keepalive_requests 10000;
    server {
        listen 127.0.0.1:%(port)d;
        root %(root)s;
    }
}
""" % {"user": "user root;" if os.geteuid() == 0 else "", "d": d, "port": port,
       "root": self.tmp})
        p = self.start([NGINX, "-p", d + "/", "-c", conf, "-e", os.path.join(d, "error.log"),
                        "-g", "daemon off;"], stdin=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                if p.poll() is not None:
                    break
                time.sleep(0.05)
        else:
            raise RuntimeError("nginx did not start: see %s/error.log" % d)
        if p.poll() is not None:
            raise RuntimeError("nginx exited: see %s/error.log" % d)
        return p, "http://127.0.0.1:%d" % port

    def curl_pipe(self, url):
        """`curl -s SRC | curl -sS -T - SINK`: the reference for a source
        that is itself an http URL."""
        t0 = time.monotonic()
        get = subprocess.Popen(["curl", "-s", url], stdout=subprocess.PIPE)
        put = subprocess.Popen(["curl", "-sS", "-o", "/dev/null", "-T", "-",
                                "%s/up/pipe" % self.sink_url], stdin=get.stdout)
        get.stdout.close()
        if put.wait() != 0 or get.wait() != 0:
            raise RuntimeError("curl | curl failed")
        return time.monotonic() - t0

    def http_source(self):
        say("http source: 1 GiB from nginx, 60 MiB chunks, one slot vs curl | curl -T -")
        if not os.access(NGINX, os.X_OK):
            raise RuntimeError("%s missing: apt-get install nginx-light (make bench does)" % NGINX)
        ng, base = self.start_nginx()
        url = base + "/" + os.path.basename(self.big)
        env = dict(self.env, CRU_ALLOW_NETS="127.0.0.0/8")
        ratios, rates, hwm60, hwm8 = [], [], [], []
        for i in range(self.runs):
            tc = self.curl_pipe(url)
            w = self.worker(1, env)
            tw = self.run_jobs([self.spec(url, 60 * MiB, 200 + i)])
            hwm60.append(vmhwm(w.pid))
            self.stop(w)
            w = self.worker(1, env)
            t8 = self.run_jobs([self.spec(url, HTTP_SMALL_CHUNK, 300 + i)])
            hwm8.append(vmhwm(w.pid))
            self.stop(w)
            ratios.append(tc / tw)
            rates.append(GiB / tw / MiB)
            say("  curl | curl %.2fs (%.0f MiB/s), worker 60 MiB chunks %.2fs (%.0f MiB/s), "
                "7680 KiB chunks %.2fs; VmHWM %d / %d kB" %
                (tc, GiB / tc / MiB, tw, GiB / tw / MiB, t8, hwm60[-1], hwm8[-1]))
        self.stop(ng)
        self.row("http source ratio", "1 GiB from nginx, 60 MiB chunks, 1 slot / curl \\| curl -T -",
                 ratios, "reported")
        self.row("http source MiB/s", "the worker's rate in those runs", rates, "-", fmt="%.0f")
        self.row("http source peak RSS, 60 MiB chunks", "VmHWM of a fresh 1-slot worker, MiB",
                 [h / 1024 for h in hwm60], "<= 24", ok=lambda v: v <= 24)
        self.row("http source peak RSS, 8 MiB chunks", "same, 7680 KiB chunks, MiB",
                 [h / 1024 for h in hwm8], "<= 24", ok=lambda v: v <= 24)
        self.row("http source peak RSS difference", "abs(60 MiB - 8 MiB chunks), MiB",
                 [abs(a - b) / 1024 for a, b in zip(hwm60, hwm8)], "<= 2",
                 ok=lambda v: v <= 2)

    def table(self):
        print()
        print("| figure | how | median | min | max | goal | met |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for r in self.rows:
            print("| %s |" % " | ".join(r))
        print()
        print("(%d runs each; %d cores; %s)" % (self.runs, os.cpu_count(),
                                             subprocess.run(["curl", "--version"],
                                                            stdout=subprocess.PIPE,
                                                            text=True).stdout.split("\n")[0]))


def write_random(path, size):
    block = os.urandom(8 * MiB)
    with open(path, "wb") as f:
        for _ in range(size // len(block)):
            f.write(block)
            block = block[1:] + block[:1]  # no two blocks alike


def vmhwm(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def say(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def main():
    args = sys.argv[1:]
    runs = 3
    if "--runs" in args:
        i = args.index("--runs")
        runs = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    b = Bench(os.path.abspath(args[0]), os.path.abspath(args[1]), runs)
    t0 = time.monotonic()
    try:
        b.setup()
        b.stream()
        b.parallel()
        b.small()
        b.scaling()
        b.http_source()
        b.table()
    finally:
        b.close()
    say("finished in %.0f s" % (time.monotonic() - t0))


if __name__ == "__main__":
    main()
