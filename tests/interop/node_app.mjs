// A Node app (plain node:http, node-redis v4) that hands large uploads to
// cru through the Redis contract alone (README "Using cru from your app"),
// and a test that drives it against a real Redis and real cru workers.
//
//   POST   /uploads       {"path", "upload_url", "chunk_size"?}
//                         -> 202 {"job"} | 400 {"error"}     (FCALL cru_submit)
//   GET    /uploads/<id>  -> 200 progress | 404               (FCALL_RO cru_status)
//   DELETE /uploads/<id>  -> 200 {"job", "state": "cancelled"} | 409 | 404
//                                                             (FCALL cru_cancel)
//
// The test (run as `node node_app.mjs`) uploads one file to the end, and
// cancels another while a rate-limited worker is sending it. It waits on the
// cru:events stream (blocking XREAD), never in a sleep loop.
//
// Environment (tests/integration/interop.sh sets it):
//   CRU_REDIS_URL     Redis of the "done" scenario (its workers are fast)
//   CANCEL_REDIS_URL  Redis of the cancel scenario (one worker, --rate-limit 1M)
//   CRU_SOURCE_ROOT   the workers' source root (the app's upload directory)
//   UPLOAD_PATH, UPLOAD_URL        the file to upload and its Graph session
//   CANCEL_PATH, CANCEL_UPLOAD_URL the file to cancel (~8 MiB) and its session
//   JOB_TIMEOUT       seconds to wait for a job (default 120)
// Prints "PASS name" / "FAIL name: why" lines on stdout; exits 1 on failure.
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { createClient, ErrorReply } from "redis";

const TERMINAL = new Set(["done", "failed", "cancelled"]);

// ------------------------------------------------------------------ the app

function readBody(req) {
  return new Promise((resolve, reject) => {
    let data = "";
    req.setEncoding("utf8");
    req.on("data", (c) => { data += c; });
    req.on("end", () => resolve(data));
    req.on("error", reject);
  });
}

export function uploadsHandler(redis, uploadDir) {
  return async (req, res) => {
    const send = (code, obj) => {
      res.writeHead(code, { "content-type": "application/json" });
      res.end(JSON.stringify(obj));
    };
    try {
      const m = new URL(req.url, "http://app").pathname.match(/^\/uploads(?:\/([A-Za-z0-9._-]{1,128}))?$/);
      if (!m) return send(404, { error: "not found" });
      const id = m[1];
      if (req.method === "POST" && !id) {
        let body;
        try { body = JSON.parse(await readBody(req)); } catch { return send(400, { error: "JSON body expected" }); }
        if (typeof body?.path !== "string" || typeof body?.upload_url !== "string")
          return send(400, { error: "path and upload_url are required" });
        if (path.isAbsolute(body.path) || body.path.split("/").includes(".."))
          return send(400, { error: "path must lie under the upload directory" });
        const spec = {
          source: path.join(uploadDir, body.path),
          target: { type: "graph", upload_url: body.upload_url },
          meta: { app: "node" },
        };
        if (body.chunk_size !== undefined) spec.chunk_size = body.chunk_size;
        const job = await redis.sendCommand(["FCALL", "cru_submit", "0", JSON.stringify(spec)]);
        return send(202, { job });
      }
      if (req.method === "GET" && id) {
        const j = JSON.parse(await redis.sendCommand(["FCALL_RO", "cru_status", "0", id]));
        const done = j.bytes_done ?? 0;
        return send(200, {
          job: id, state: j.state, bytes_done: done, size: j.size,
          percent: j.size ? Math.round((1000 * done) / j.size) / 10 : j.size === 0 ? 100 : 0,
          error: j.error,
        });
      }
      if (req.method === "DELETE" && id) {
        await redis.sendCommand(["FCALL", "cru_cancel", "0", id]);
        return send(200, { job: id, state: "cancelled" });
      }
      return send(405, { error: "method not allowed" });
    } catch (e) {
      if (e instanceof ErrorReply) {
        // "ERR invalid spec: <field>: <why>", "ERR no such job: <id>",
        // "ERR job <id> has already ended (done)"
        const msg = e.message.replace(/^ERR /, "");
        return send(msg.startsWith("no such job") ? 404 : msg.startsWith("invalid spec") ? 400 : 409,
          { error: msg });
      }
      return send(500, { error: String(e) });
    }
  };
}

// ------------------------------------------------------------------ the test

let failures = 0;
function check(name, ok, why = "failed") {
  if (ok) console.log(`PASS node: ${name}`);
  else { failures++; console.log(`FAIL node: ${name}: ${why}`); }
  return ok;
}

async function lastEventId(redis) {
  const last = await redis.sendCommand(["XREVRANGE", "cru:events", "+", "-", "COUNT", "1"]);
  return last.length ? last[0][0] : "0-0";
}

// Blocks on cru:events (a connection of its own: XREAD BLOCK holds it) and
// calls onEvent(fields) for each event of the job until it returns true or
// timeoutMs passes; returns the last event passed, or null on timeout.
async function follow(reader, jobId, after, timeoutMs, onEvent) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) return null;
    const reply = await reader.sendCommand(["XREAD", "COUNT", "100", "BLOCK",
      String(Math.max(1, Math.min(left, 5000))), "STREAMS", "cru:events", after]);
    for (const [, entries] of reply ?? []) {
      for (const [eid, flat] of entries) {
        after = eid;
        const f = {};
        for (let i = 0; i < flat.length; i += 2) f[flat[i]] = flat[i + 1];
        if (f.job !== jobId) continue;
        if (await onEvent(f, eid)) return { ...f, _id: eid };
      }
    }
  }
}

async function withApp(redisUrl, uploadDir, fn) {
  const redis = await createClient({ url: redisUrl }).connect();
  const reader = await redis.duplicate().connect();
  const server = http.createServer(uploadsHandler(redis, uploadDir));
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const base = `http://127.0.0.1:${server.address().port}`;
  try {
    return await fn({ redis, reader, base });
  } finally {
    server.close();
    await reader.quit();
    await redis.quit();
  }
}

async function call(method, url, body) {
  const res = await fetch(url, {
    method, headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

const env = (k) => {
  if (!process.env[k]) throw new Error(`${k} is not set`);
  return process.env[k];
};

async function uploadToTheEnd(uploadDir, timeoutMs) {
  const rel = env("UPLOAD_PATH");
  const size = fs.statSync(path.join(uploadDir, rel)).size;
  await withApp(env("CRU_REDIS_URL"), uploadDir, async ({ redis, reader, base }) => {
    const bad = await call("POST", `${base}/uploads`, { path: rel, upload_url: env("UPLOAD_URL"), chunk_size: 1000 });
    check("refused spec -> 400 with the reason",
      bad.status === 400 && bad.body.error?.startsWith("invalid spec: chunk_size"), JSON.stringify(bad));

    const after = await lastEventId(redis);
    const r = await call("POST", `${base}/uploads`, { path: rel, upload_url: env("UPLOAD_URL"), chunk_size: 3 * 327680 });
    if (!check("POST /uploads -> 202 {job}", r.status === 202 && r.body.job, JSON.stringify(r))) return;
    const jobId = r.body.job;
    console.error(`node: job ${jobId}`);
    const progress = [];
    let mid = null;
    const last = await follow(reader, jobId, after, timeoutMs, async (f) => {
      if (f.chunk !== undefined) {
        progress.push(Number(f.bytes_done));
        if (!mid) mid = (await call("GET", `${base}/uploads/${jobId}`)).body;
      }
      return TERMINAL.has(f.state);
    });
    check("the job's events end in done", last?.state === "done", `last event ${JSON.stringify(last)}`);
    check("one progress event per chunk, bytes_done rising to size",
      last && progress.length === Number(last.chunks) && progress.every((b, i) => i === 0 || b >= progress[i - 1]) &&
        progress.at(-1) === size, `chunks=${last?.chunks} progress=${progress}`);
    check("GET /uploads/<id> while running reports progress",
      mid && ["running", "done"].includes(mid.state) && mid.bytes_done > 0 && mid.bytes_done <= size && mid.size === size,
      JSON.stringify(mid));
    const g = await call("GET", `${base}/uploads/${jobId}`);
    check("GET /uploads/<id> -> done, bytes_done == size, 100%",
      g.status === 200 && g.body.state === "done" && g.body.bytes_done === size && g.body.size === size &&
        g.body.percent === 100 && g.body.error === null, JSON.stringify(g));
    const gone = await call("DELETE", `${base}/uploads/${jobId}`);
    check("DELETE of a finished upload -> 409", gone.status === 409 && /already ended/.test(gone.body.error),
      JSON.stringify(gone));
    const unknown = await call("GET", `${base}/uploads/no-such-job`);
    check("GET /uploads/<unknown> -> 404", unknown.status === 404, JSON.stringify(unknown));
  });
}

async function cancelWhileRunning(uploadDir, timeoutMs) {
  const rel = env("CANCEL_PATH");
  const size = fs.statSync(path.join(uploadDir, rel)).size;
  await withApp(env("CANCEL_REDIS_URL"), uploadDir, async ({ redis, reader, base }) => {
    const after = await lastEventId(redis);
    const r = await call("POST", `${base}/uploads`,
      { path: rel, upload_url: env("CANCEL_UPLOAD_URL"), chunk_size: 4 * 327680 });
    if (!check("cancel: POST /uploads -> 202 {job}", r.status === 202 && r.body.job, JSON.stringify(r))) return;
    const jobId = r.body.job;
    console.error(`node: cancel job ${jobId}`);
    // Wait for the first chunk (the worker sends 1 MiB/s): the job is running.
    const first = await follow(reader, jobId, after, timeoutMs,
      async (f) => TERMINAL.has(f.state) || f.chunk !== undefined);
    if (!check("cancel: the job is running, first chunk done",
      first?.state === "running" && Number(first.bytes_done) > 0 && Number(first.bytes_done) < size,
      `event ${JSON.stringify(first)}`)) return;

    const d = await call("DELETE", `${base}/uploads/${jobId}`);
    check("cancel: DELETE /uploads/<id> -> 200", d.status === 200 && d.body.state === "cancelled", JSON.stringify(d));
    const c = await follow(reader, jobId, first._id, 10000, async (f) => TERMINAL.has(f.state));
    check("cancel: a cancelled event follows", c?.state === "cancelled", `event ${JSON.stringify(c)}`);
    // The chunk in flight may finish, but the job must not move again: no
    // event of it other than "cancelled" for the next 3 s (blocking XREAD).
    const moved = c && await follow(reader, jobId, c._id, 3000, async (f) => f.state !== "cancelled");
    check("cancel: no progress after the cancel", !moved, `event ${JSON.stringify(moved)}`);
    const g = await call("GET", `${base}/uploads/${jobId}`);
    check("cancel: GET /uploads/<id> -> cancelled, bytes_done < size",
      g.status === 200 && g.body.state === "cancelled" && g.body.error === "cancelled" && g.body.bytes_done < size,
      JSON.stringify(g));
    const again = await call("DELETE", `${base}/uploads/${jobId}`);
    check("cancel: a second DELETE -> 409", again.status === 409, JSON.stringify(again));
  });
}

try {
  const uploadDir = process.env.CRU_SOURCE_ROOT ?? "/srv/uploads";
  const timeoutMs = 1000 * Number(process.env.JOB_TIMEOUT ?? 120);
  await uploadToTheEnd(uploadDir, timeoutMs);
  await cancelWhileRunning(uploadDir, timeoutMs);
} catch (e) {
  check("app ran", false, `${e?.name}: ${e?.message}`);
}
process.exit(failures ? 1 : 0);
