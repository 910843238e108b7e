"""A Flask app that hands large uploads to cru, as a web app would.

It talks to cru through the Redis contract alone (README "Using cru from
your app"): one FCALL to enqueue, FCALL_RO cru_status to report progress.
The request returns at once; the workers upload in the background.

    POST /uploads          {"path": "<file under the upload dir>",
                            "upload_url": "<Graph upload session>",
                            "chunk_size": n (optional)}
                           -> 202 {"job": id} | 400 {"error": why}
    GET  /uploads/<id>     -> 200 {"job", "state", "bytes_done", "size",
                                   "percent", "error"} | 404

Environment: CRU_REDIS_URL (default redis://localhost:6379/0) and
CRU_SOURCE_ROOT, the directory the app writes uploads to, as the workers
see it (default /srv/uploads).

Runs with Debian 12's python3-flask and python3-redis.
"""
import json
import os

import redis
from flask import Flask, jsonify, request

app = Flask(__name__)
r = redis.Redis.from_url(os.environ.get("CRU_REDIS_URL", "redis://localhost:6379/0"),
                         decode_responses=True)
UPLOAD_DIR = os.environ.get("CRU_SOURCE_ROOT", "/srv/uploads")


@app.post("/uploads")
def create_upload():
    body = request.get_json(silent=True) or {}
    path, upload_url = body.get("path"), body.get("upload_url")
    if not isinstance(path, str) or not isinstance(upload_url, str):
        return jsonify(error="path and upload_url are required"), 400
    if path.startswith("/") or ".." in path.split("/"):
        return jsonify(error="path must lie under the upload directory"), 400
    spec = {"source": os.path.join(UPLOAD_DIR, path),
            "target": {"type": "graph", "upload_url": upload_url},
            "meta": {"app": "flask"}}
    if "chunk_size" in body:
        spec["chunk_size"] = body["chunk_size"]
    try:
        job_id = r.fcall("cru_submit", 0, json.dumps(spec))
    except redis.ResponseError as e:  # "invalid spec: <field>: <why>"
        return jsonify(error=str(e)), 400
    return jsonify(job=job_id), 202


@app.get("/uploads/<job_id>")
def progress(job_id):
    try:
        job = json.loads(r.fcall_ro("cru_status", 0, job_id))
    except redis.ResponseError:  # "no such job: <id>"
        return jsonify(error="no such upload"), 404
    size, done = job["size"], job["bytes_done"] or 0
    percent = round(100.0 * done / size, 1) if size else (100.0 if size == 0 else 0.0)
    return jsonify(job=job_id, state=job["state"], bytes_done=done, size=size,
                   percent=percent, error=job["error"])


if __name__ == "__main__":
    app.run(port=int(os.environ.get("PORT", "5000")))
