#!/usr/bin/env node
// tests/bench/bullmq_bench.mjs - BullMQ reference side of the cru benchmark.
//
//   node bullmq_bench.mjs --redis-port P --sink http://127.0.0.1:S/upload \
//        --dir DIR [--jobs 5000] [--concurrency 8]
//
// DIR must hold f0.bin .. f<jobs-1>.bin (4096 bytes each). All jobs are
// enqueued first (queue.addBulk, batches of 1000) on a fresh queue name; then
// a Worker with the given concurrency reads each file and PUTs it to
// <sink>/<job.id> over a keep-alive http.Agent. Wall time is measured from
// worker start until every job has completed or failed. Prints exactly one
// JSON line on stdout:
//   {"jobs":N,"seconds":S,"jobs_per_s":R,"failed":F}
// Exit 0 if no job failed, 1 otherwise (2 on usage or setup errors).
// Diagnostics go to stderr.

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Queue, Worker } from 'bullmq';

const FILE_SIZE = 4096;
const BATCH = 1000;

function usage(msg) {
  if (msg) process.stderr.write(`bullmq_bench: ${msg}\n`);
  process.stderr.write(
    'usage: node bullmq_bench.mjs --redis-port P --sink URL --dir DIR ' +
      '[--jobs N] [--concurrency C]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { jobs: 5000, concurrency: 8 };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i];
    const val = argv[i + 1];
    if (val === undefined) usage(`missing value for ${key}`);
    switch (key) {
      case '--redis-port': opts.redisPort = Number(val); break;
      case '--sink': opts.sink = val.replace(/\/+$/, ''); break;
      case '--dir': opts.dir = val; break;
      case '--jobs': opts.jobs = Number(val); break;
      case '--concurrency': opts.concurrency = Number(val); break;
      default: usage(`unknown option ${key}`);
    }
    i++;
  }
  if (!Number.isInteger(opts.redisPort) || opts.redisPort <= 0) usage('bad --redis-port');
  if (!opts.sink) usage('--sink is required');
  if (!opts.dir) usage('--dir is required');
  if (!Number.isInteger(opts.jobs) || opts.jobs <= 0) usage('bad --jobs');
  if (!Number.isInteger(opts.concurrency) || opts.concurrency <= 0) usage('bad --concurrency');
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const sinkUrl = new URL(opts.sink);
if (sinkUrl.protocol !== 'http:') usage('--sink must be an http:// URL');

const connection = { host: '127.0.0.1', port: opts.redisPort, maxRetriesPerRequest: null };
const queueName = `bench-${process.pid}-${Date.now()}`;
const agent = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency });

// PUT body to <sink>/<id>; resolves on 2xx, rejects otherwise.
function put(id, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      agent,
      protocol: sinkUrl.protocol,
      hostname: sinkUrl.hostname,
      port: sinkUrl.port,
      path: `${sinkUrl.pathname.replace(/\/+$/, '')}/${encodeURIComponent(id)}`,
      method: 'PUT',
      headers: {
        'Content-Type': 'application/octet-stream',
        'Content-Range': `bytes 0-${body.length - 1}/${body.length}`,
        'Content-Length': body.length,
      },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        if (res.statusCode >= 200 && res.statusCode < 300) {
          resolve(res.statusCode);
        } else {
          const text = Buffer.concat(chunks).toString('utf8').slice(0, 200);
          reject(new Error(`sink answered ${res.statusCode}: ${text}`));
        }
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function main() {
  // Check the inputs before touching Redis.
  for (const i of [0, opts.jobs - 1]) {
    const p = path.join(opts.dir, `f${i}.bin`);
    const st = fs.statSync(p, { throwIfNoEntry: false });
    if (!st) throw new Error(`missing input file ${p}`);
    if (st.size !== FILE_SIZE) throw new Error(`${p} is ${st.size} bytes, want ${FILE_SIZE}`);
  }

  const queue = new Queue(queueName, { connection });
  queue.on('error', (err) => process.stderr.write(`bullmq_bench: queue error: ${err.message}\n`));

  // Enqueue everything first.
  const jobOpts = { removeOnComplete: true, removeOnFail: false };
  for (let start = 0; start < opts.jobs; start += BATCH) {
    const batch = [];
    for (let i = start; i < Math.min(start + BATCH, opts.jobs); i++) {
      batch.push({
        name: 'upload',
        data: { path: path.join(opts.dir, `f${i}.bin`), size: FILE_SIZE },
        opts: jobOpts,
      });
    }
    await queue.addBulk(batch);
  }
  const waiting = await queue.getWaitingCount();
  if (waiting !== opts.jobs) throw new Error(`enqueued ${waiting} jobs, want ${opts.jobs}`);

  let completed = 0;
  let failed = 0;
  let t0 = 0n;
  let worker;
  const done = new Promise((resolve) => {
    const check = () => { if (completed + failed >= opts.jobs) resolve(process.hrtime.bigint()); };
    t0 = process.hrtime.bigint();
    worker = new Worker(queueName, async (job) => {
      const body = await fs.promises.readFile(job.data.path);
      if (body.length !== job.data.size) {
        throw new Error(`${job.data.path}: read ${body.length} bytes, want ${job.data.size}`);
      }
      await put(job.id, body);
    }, { connection, concurrency: opts.concurrency });
    worker.on('completed', () => { completed++; check(); });
    worker.on('failed', (job, err) => {
      // 'failed' also fires for retries; with the default attempts (1) every
      // failure is final.
      failed++;
      if (failed <= 5) {
        process.stderr.write(`bullmq_bench: job ${job ? job.id : '?'} failed: ${err.message}\n`);
      }
      check();
    });
    worker.on('error', (err) => process.stderr.write(`bullmq_bench: worker error: ${err.message}\n`));
  });
  const t1 = await done;

  const seconds = Number(t1 - t0) / 1e9;
  await worker.close();
  if (failed === 0) {
    // Leave nothing behind in Redis. Failed jobs are kept (removeOnFail:
    // false) for inspection; the queue name is on stderr then.
    await queue.obliterate({ force: true }).catch((err) =>
      process.stderr.write(`bullmq_bench: obliterate: ${err.message}\n`));
  } else {
    process.stderr.write(`bullmq_bench: ${failed} failed jobs kept in queue ${queueName}\n`);
  }
  await queue.close();
  agent.destroy();

  process.stdout.write(JSON.stringify({
    jobs: opts.jobs,
    seconds: Number(seconds.toFixed(3)),
    jobs_per_s: Number((completed / seconds).toFixed(1)),
    failed,
  }) + '\n');
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => { process.exitCode = code; },
  (err) => {
    process.stderr.write(`bullmq_bench: ${err.stack || err}\n`);
    process.exit(2);
  },
);
