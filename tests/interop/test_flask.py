"""Drives tests/interop/flask_app.py with Flask's test client against a real
Redis and real cru workers: enqueue through POST /uploads, wait on the
cru:events stream (blocking XREAD, no polling), read progress through
GET /uploads/<id>, check the final state.

Environment (tests/integration/interop.sh sets it):
  CRU_REDIS_URL    the Redis the workers use
  CRU_SOURCE_ROOT  the workers' source root (the app's upload directory)
  UPLOAD_PATH      the file to upload, relative to CRU_SOURCE_ROOT
  UPLOAD_URL       a fresh Graph upload session for it
  JOB_TIMEOUT      seconds to wait for the job (default 120)

Prints "PASS name" / "FAIL name: why" lines on stdout (tests/run.sh's
protocol); exits 1 when anything failed.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flask_app  # noqa: E402

TERMINAL = ("done", "failed", "cancelled")
failures = 0


def check(name, ok, why=""):
    global failures
    if ok:
        print(f"PASS flask: {name}", flush=True)
    else:
        failures += 1
        print(f"FAIL flask: {name}: {why or 'failed'}", flush=True)
    return ok


def last_event_id(r):
    """The newest entry of cru:events, to read only what comes after it."""
    last = r.xrevrange("cru:events", "+", "-", count=1)
    return last[0][0] if last else "0-0"


def wait_events(r, job_id, after, timeout, on_event=None):
    """Blocks on cru:events until job_id reaches a final state. Returns the
    job's events (dicts) and the final state, or None on timeout."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return seen, None
        reply = r.xread({"cru:events": after}, count=100, block=max(1, int(min(left, 5) * 1000)))
        for _stream, entries in reply or []:
            for eid, fields in entries:
                after = eid
                if fields.get("job") != job_id:
                    continue
                seen.append(fields)
                if on_event:
                    on_event(fields)
                if fields.get("state") in TERMINAL:
                    return seen, fields["state"]


def main():
    path, url = os.environ["UPLOAD_PATH"], os.environ["UPLOAD_URL"]
    timeout = float(os.environ.get("JOB_TIMEOUT", "120"))
    size = os.stat(os.path.join(flask_app.UPLOAD_DIR, path)).st_size
    r = flask_app.r
    client = flask_app.app.test_client()

    # A refused spec is a 400 with the function's message.
    resp = client.post("/uploads", json={"path": path, "upload_url": url, "chunk_size": 1000})
    check("refused spec -> 400 with the reason",
          resp.status_code == 400 and "invalid spec: chunk_size" in resp.get_json()["error"],
          f"{resp.status_code} {resp.get_data(as_text=True)[:200]}")

    after = last_event_id(r)
    resp = client.post("/uploads", json={"path": path, "upload_url": url, "chunk_size": 655360})
    body = resp.get_json(silent=True) or {}
    if not check("POST /uploads -> 202 {job}", resp.status_code == 202 and body.get("job"),
                 f"{resp.status_code} {resp.get_data(as_text=True)[:200]}"):
        return
    job_id = body["job"]
    print(f"flask: job {job_id}", file=sys.stderr)

    # On the first chunk event, ask the app for progress while the job runs.
    mid = {}

    def on_event(ev):
        if "chunk" in ev and not mid:
            mid.update(client.get(f"/uploads/{job_id}").get_json())

    events, state = wait_events(r, job_id, after, timeout, on_event)
    check("the job's events end in done", state == "done",
          f"final state {state!r} after {len(events)} events; last {events[-1:]}")
    chunk_events = [e for e in events if "chunk" in e]
    progress = [int(e["bytes_done"]) for e in chunk_events]
    check("one progress event per chunk, bytes_done rising to size",
          events and len(chunk_events) == int(events[-1]["chunks"] or -1)
          and progress == sorted(progress) and progress[-1:] == [size],
          f"chunks={events[-1]['chunks'] if events else '?'} progress={progress}")
    check("GET /uploads/<id> while running reports progress",
          mid.get("state") in ("running", "done") and 0 < mid.get("bytes_done", 0) <= size
          and mid.get("size") == size, f"{mid}")

    resp = client.get(f"/uploads/{job_id}")
    p = resp.get_json(silent=True) or {}
    check("GET /uploads/<id> -> done, bytes_done == size, 100%",
          resp.status_code == 200 and p.get("state") == "done" and p.get("bytes_done") == size
          and p.get("size") == size and p.get("percent") == 100.0 and p.get("error") is None,
          json.dumps(p))
    resp = client.get("/uploads/no-such-job")
    check("GET /uploads/<unknown> -> 404", resp.status_code == 404, str(resp.status_code))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a crash is a failure with its reason, not a traceback only
        check("app ran", False, f"{type(e).__name__}: {e}")
        raise
    sys.exit(1 if failures else 0)
