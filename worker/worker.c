/*
 * worker.c — the worker loop: N slots (threads), each with its own Redis
 * connection and HTTP client, reading p:chunks through the consumer group
 * "workers", plus the main thread's housekeeping (promoting due retries,
 * heartbeats, signals).
 *
 * A message is {job, op=plan|abort} or {job, chunk=N}, with optional
 * attempt (retries so far), resume=1 (ask the target what it holds before
 * sending) and from (the first byte the target lacks, when not the chunk's
 * start). A slot loads the job hash, does the work, then records the effect
 * and acknowledges the message in one FCALL of common/cru.lua.
 *
 * Delivery is at least once, the effect once:
 *   - while a chunk is in flight the slot renews its lease every third of
 *     CRU_LEASE_MS (from libcurl's progress callback); a message idle past
 *     the lease is taken over by any slot (cru_claim, XAUTOCLAIM), and one
 *     delivered more than CRU_MAX_DELIVERIES times is dead-lettered;
 *   - a sequential target is asked what it holds before a chunk is re-sent
 *     (after a retry or a takeover), so bytes are never sent twice out of
 *     order and a chunk already there is just marked done;
 *   - transient failures wait in p:delayed (exponential backoff with full
 *     jitter, or Retry-After), not in a sleeping slot;
 *   - a result that cannot be recorded because Redis is away is retried
 *     until Redis returns.
 * Anything wrong with a message or a job fails that job (or dead-letters a
 * message that names no job); it never stops the worker.
 *
 * The loop knows neither protocols (worker/target_*.c) nor sources
 * (common/source.c).
 */
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "http.h"
#include "job.h"
#include "log.h"
#include "metrics.h"
#include "netcheck.h"
#include "redisq.h"
#include "source.h"
#include "source_http.h"
#include "target.h"

#define WORKER_BLOCK_MS "1000"
/* Each slot looks for messages of lost workers every tenth of the lease,
 * at most once a second. */
#define WORKER_CLAIM_EVERY_S 1.0
#define WORKER_HOUSEKEEP_EVERY_S 1.0

struct msg {
    const char *id;          /* stream entry id */
    const char *job;
    const char *op;          /* "plan", "abort", "enqueue", "finalize", or NULL */
    const char *chunk;       /* decimal index, or NULL */
    long long attempt;       /* transient failures so far */
    long long from;          /* -1, or the first byte the target lacks */
    int resume;              /* ask the target before sending */
    long long deliveries;    /* > 1 when taken over from a lost worker */
    long long start;         /* op=enqueue: the first chunk of the batch */
};

struct slot {
    int index;
    const struct config *cfg;
    struct redisq q;
    struct target_ctx tctx;
    char consumer[300];
    char stream[128];
    pthread_t thread;
    const char *lease_msg;   /* message in flight, or NULL */
    double lease_renewed;
    int lease_lost;
    char claim_cursor[64];
    double last_claim;
    unsigned rng;
    redisReply *prefetch;    /* {outcome, msgid, fields, job hash} handed back
                              * by cru_plan / cru_chunk_done: the next message */
    const char *xfer_job;    /* the chunk in flight, for progress events */
    long long xfer_chunk;
    double xfer_start, xfer_reported;
};

static struct netcheck worker_net;    /* where http sources may connect */
static atomic_int worker_stopping;    /* take no new messages */
static atomic_int worker_hard_stop;   /* grace over: abort transfers */
static atomic_int worker_live_slots;
static atomic_int worker_busy_slots;

static double worker_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long worker_wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void worker_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Connects the slot when it is not; returns 0 when connected. */
static int slot_connect(struct slot *s)
{
    if (s->q.c)
        return 0;
    /* the library too: a Redis restarted without persistence lost it */
    if (redisq_connect(&s->q, s->cfg) < 0 || redisq_load_library(&s->q) < 0 ||
        redisq_ensure_group(&s->q) < 0) {
        redisq_close(&s->q);
        return -1;
    }
    return 0;
}

/*
 * Runs an FCALL that records the effect of work already done. A lost
 * connection is retried with backoff until Redis answers (or the grace
 * period is over: the message then stays pending and is redelivered, and
 * the effect recorded then, idempotently). Returns the reply (caller
 * frees) or NULL.
 */
static redisReply *slot_record(struct slot *s, const char *fn, int argc, const char **argv,
                               const char *job, long long chunk)
{
    long backoff = 100;
    for (;;) {
        if (slot_connect(s) == 0) {
            redisReply *r = redisq_fcall(&s->q, fn, argc, argv);
            if (r && r->type != REDIS_REPLY_ERROR)
                return r;
            if (r) {
                log_error(job, chunk, "%s: %s", fn, r->str);
                freeReplyObject(r);
                return NULL;
            }
        }
        if (atomic_load(&worker_hard_stop)) {
            log_error(job, chunk, "%s: %s; giving up at shutdown (the message will be redelivered)",
                      fn, s->q.err);
            return NULL;
        }
        log_warn(job, chunk, "%s: %s; retrying in %ld ms", fn, s->q.err, backoff);
        worker_sleep_ms(backoff);
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    }
}

/* The consumer name to pass to cru_plan / cru_chunk_done: "" once the
 * worker is stopping, so no new message is handed to it. */
static const char *slot_next_consumer(const struct slot *s)
{
    return atomic_load(&worker_stopping) ? "" : s->consumer;
}

/* Keeps the next message a recording call handed back ({outcome, msgid,
 * fields, hash}); returns the outcome string. Frees r otherwise. */
static const char *slot_keep_next(struct slot *s, redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_STRING) {
        if (r)
            freeReplyObject(r);
        return NULL;
    }
    if (r->elements == 4 && r->element[1]->type == REDIS_REPLY_STRING &&
        r->element[2]->type == REDIS_REPLY_ARRAY && r->element[3]->type == REDIS_REPLY_ARRAY) {
        if (s->prefetch)
            freeReplyObject(s->prefetch);
        s->prefetch = r;
        return r->element[0]->str;
    }
    static const char *const known[] = {"ok", "skip", "next", "done"};
    const char *outcome = "?";
    for (size_t i = 0; i < 4; i++)
        if (strcmp(r->element[0]->str, known[i]) == 0)
            outcome = known[i];
    freeReplyObject(r);
    return outcome;
}

static void slot_call(struct slot *s, const char *fn, int argc, const char **argv,
                      const char *job, long long chunk)
{
    redisReply *r = slot_record(s, fn, argc, argv, job, chunk);
    if (r)
        freeReplyObject(r);
}

static void slot_fail(struct slot *s, const char *job, long long chunk,
                      const struct msg *m, const char *error)
{
    const char *argv[] = {job, m->id, error};
    redisReply *r = slot_record(s, "cru_fail", 3, argv, job, chunk);
    if (r && r->type == REDIS_REPLY_STRING && strcmp(r->str, "ok") == 0) {
        metrics_chunk(METRICS_FAILED, 0, 0);
        log_warn(job, chunk, "job failed: %s", error);
    } else if (r) {
        log_debug(job, chunk, "the job had ended already; not failed again (%s)", error);
    }
    if (r)
        freeReplyObject(r);
}

/* A message that cannot be processed: dead-letter it (and fail its job,
 * when it names one that exists). */
static void slot_dead(struct slot *s, const struct msg *m, const char *job,
                      const char *reason)
{
    metrics_chunk(METRICS_DEAD, 0, 0);
    log_warn(job, -1, "dead-lettering message %s: %s", m->id, reason);
    const char *argv[] = {m->id, job ? job : "", m->chunk ? m->chunk : "", reason};
    slot_call(s, "cru_dead", 4, argv, job, -1);
}

/* Gives a message back: marks it idle for a whole lease, so any worker
 * takes it over at once (cru_claim) instead of after the lease. */
static void slot_release(struct slot *s, const char *msgid)
{
    char idle[32];
    snprintf(idle, sizeof idle, "%lld", s->cfg->lease_ms);
    const char *argv[] = {s->consumer, msgid, idle};
    slot_call(s, "cru_renew", 3, argv, NULL, -1);
}

/* libcurl's progress tick (about once a second, and during stalls):
 * renews the lease, and aborts the transfer when the lease is lost or the
 * grace period is over. */
static int slot_tick(void *arg)
{
    struct slot *s = arg;
    if (atomic_load(&worker_hard_stop))
        return 1;
    double now = worker_now();
    if (s->xfer_job && now - s->xfer_reported >= 1.0 && s->q.c) {
        /* a progress event about once a second while a chunk is in flight */
        s->xfer_reported = now;
        char chunk[32], sent[32], rate[32];
        long long bytes = s->tctx.http->resp.sent;
        snprintf(chunk, sizeof chunk, "%lld", s->xfer_chunk);
        snprintf(sent, sizeof sent, "%lld", bytes);
        snprintf(rate, sizeof rate, "%.0f", (double)bytes / (now - s->xfer_start));
        const char *argv[] = {s->xfer_job, chunk, sent, rate, s->lease_msg ? s->lease_msg : ""};
        redisReply *r = redisq_fcall(&s->q, "cru_progress", 5, argv);
        if (r && r->type == REDIS_REPLY_INTEGER && r->integer < 0) {
            log_info(s->xfer_job, s->xfer_chunk,
                     "the job has ended (cancelled?): stopping this transfer");
            s->lease_lost = 1;
        }
        if (r)
            freeReplyObject(r);
        if (s->lease_lost)
            return 1;
    }
    if (!s->lease_msg || now - s->lease_renewed < (double)s->cfg->lease_ms / 3000.0)
        return 0;
    s->lease_renewed = now;
    if (slot_connect(s) < 0)
        return 0; /* Redis away: keep uploading; the effect is recorded later */
    const char *argv[] = {s->consumer, s->lease_msg, "", s->xfer_job ? s->xfer_job : ""};
    redisReply *r = redisq_fcall(&s->q, "cru_renew", 4, argv);
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
        log_warn(NULL, -1, "lease on message %s lost to another worker; stopping this transfer",
                 s->lease_msg);
        s->lease_lost = 1;
    } else if (r && r->type == REDIS_REPLY_INTEGER && r->integer < 0) {
        log_info(s->xfer_job, s->xfer_chunk, "the job has ended (cancelled?): stopping this transfer");
        s->lease_lost = 1;
    }
    if (r)
        freeReplyObject(r);
    return s->lease_lost;
}

/* Full-jitter exponential backoff: uniform in [0, min(cap, base·2^(n-1))]. */
static long long slot_backoff_ms(struct slot *s, long long attempt)
{
    long long ceiling = s->cfg->retry_base_ms;
    for (long long i = 1; i < attempt && ceiling < s->cfg->retry_cap_ms; i++)
        ceiling *= 2;
    if (ceiling > s->cfg->retry_cap_ms)
        ceiling = s->cfg->retry_cap_ms;
    return (long long)((double)rand_r(&s->rng) / RAND_MAX * (double)ceiling);
}

/*
 * After a transient failure: park the message for a retry, or fail the job
 * when the attempts are used up. After an aborted transfer (lease lost, or
 * shutdown) nothing is recorded: the message belongs to whoever takes it.
 */
static void slot_retry(struct slot *s, const struct job *job, const struct msg *m,
                       long long chunk, long long from)
{
    if (s->lease_lost)
        return;
    if (atomic_load(&worker_hard_stop)) {
        slot_release(s, m->id);
        log_info(job->id, chunk, "shutting down: transfer aborted, message released");
        return;
    }
    long long attempt = m->attempt + 1;
    metrics_retry(s->tctx.http->resp.status);
    if (attempt >= s->cfg->max_attempts) {
        char err[1200];
        snprintf(err, sizeof err, "gave up after %lld attempts: %s", attempt, s->tctx.err);
        slot_fail(s, job->id, chunk, m, err);
        return;
    }
    const struct http_resp *r = &s->tctx.http->resp;
    long long delay = r->status ? http_retry_after_ms(r->retry_after) : -1;
    if (delay < 0)
        delay = slot_backoff_ms(s, attempt);
    else if (delay > 86400000)
        delay = 86400000;
    char value[32], att[32], del[32], fr[32] = "";
    snprintf(value, sizeof value, "%lld", chunk);
    snprintf(att, sizeof att, "%lld", attempt);
    snprintf(del, sizeof del, "%lld", delay);
    if (from >= 0)
        snprintf(fr, sizeof fr, "%lld", from);
    metrics_chunk(METRICS_RETRY, 0, 0);
    log_warn(job->id, chunk, "attempt %lld failed, retrying in %lld ms: %s", attempt, delay,
             s->tctx.err);
    const char *argv[] = {job->id, m->id, chunk < 0 ? "op" : "chunk",
                          chunk < 0 ? m->op : value, att, del, s->tctx.err, fr};
    slot_call(s, "cru_retry_later", 8, argv, job->id, chunk);
}

static void slot_outcome(struct slot *s, const struct job *job, const struct msg *m,
                         enum target_rc rc, long long chunk, long long from)
{
    if (s->tctx.http->source_fatal && !s->lease_lost) {
        /* the source refused for good (4xx, changed): no retry helps */
        slot_fail(s, job->id, chunk, m, s->tctx.http->source_err);
        return;
    }
    if (rc == TARGET_RETRY || s->lease_lost)
        slot_retry(s, job, m, chunk, from);
    else
        slot_fail(s, job->id, chunk, m, s->tctx.err);
}

/* Parses a non-negative decimal (no sign, no overflow); -1 if it is not. */
static long long worker_parse_num(const char *s)
{
    if (!s || !*s || strlen(s) > 17)
        return -1;
    long long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

/*
 * Opens the job's source. A file must still be the version that was
 * planned (size and mtime); an http source is pinned to it (If-Range on
 * every GET) and checked by the server. At plan time (no version yet) an
 * http source is probed for its size and version. Returns 0, or -1 with
 * err set; *retry says whether trying again later may help.
 */
static int slot_open_source(struct slot *s, const struct job *job, struct source *src,
                            char *err, size_t errlen, int *retry)
{
    *retry = 0;
    if (source_open(src, s->cfg->source_root, job->source_url) < 0) {
        snprintf(err, errlen, "%s", src->err);
        return -1;
    }
    if (src->kind == SOURCE_HTTP) {
        src->net = &worker_net;
        const cJSON *h, *headers = cJSON_GetObjectItemCaseSensitive(job->source, "headers");
        cJSON_ArrayForEach(h, headers)
        {
            if (cJSON_IsString(h) && h->string)
                src->headers = http_header(src->headers, "%s: %s", h->string, h->valuestring);
        }
        if (job->source_version) {
            if (source_http_pin(src, job->source_version) == 0)
                return 0;
            snprintf(err, errlen, "job hash: source_version is not an http source's");
            return -1;
        }
        if (source_http_probe(s->tctx.http, src) < 0) {
            snprintf(err, errlen, "%s", s->tctx.http->source_err);
            *retry = !s->tctx.http->source_fatal;
            return -1;
        }
        return 0;
    }
    if (job->source_version && strcmp(job->source_version, src->version) != 0) {
        snprintf(err, errlen, "source changed during upload (size or mtime differ from plan time)");
        return -1;
    }
    return 0;
}

static void slot_plan(struct slot *s, struct job *job, const struct msg *m,
                      const struct target_driver *drv)
{
    struct source src;
    char err[1024];
    int retry;
    if (slot_open_source(s, job, &src, err, sizeof err, &retry) < 0) {
        source_close(&src);
        if (retry) {
            snprintf(s->tctx.err, sizeof s->tctx.err, "%s", err);
            s->tctx.http->resp.status = 0; /* the source's failure, not the target's */
            slot_retry(s, job, m, -1, -1);
        } else {
            slot_fail(s, job->id, -1, m, err);
        }
        return;
    }
    long long size = src.size;
    source_close(&src);
    free(s->tctx.session);
    free(s->tctx.result);
    s->tctx.session = s->tctx.result = NULL;
    s->tctx.chunk_size = 0;
    s->tctx.note[0] = '\0';
    enum target_rc rc = drv->plan(&s->tctx, job, size);
    if (rc != TARGET_OK) {
        slot_outcome(s, job, m, rc, -1, -1);
        return;
    }
    long long cs = s->tctx.chunk_size > 0 ? s->tctx.chunk_size : job->chunk_size;
    long long chunks = job_chunk_count(size, cs);
    char size_s[32], cs_s[32], chunks_s[32];
    snprintf(size_s, sizeof size_s, "%lld", size);
    snprintf(cs_s, sizeof cs_s, "%lld", cs);
    snprintf(chunks_s, sizeof chunks_s, "%lld", chunks);
    const char *argv[] = {job->id, m->id, size_s, cs_s, chunks_s,
                          s->tctx.session ? s->tctx.session : "", src.version,
                          s->tctx.result ? s->tctx.result : "", slot_next_consumer(s),
                          drv->parallel ? "1" : "", s->tctx.note};
    const char *outcome = slot_keep_next(s, slot_record(s, "cru_plan", 11, argv, job->id, -1));
    if (outcome && strcmp(outcome, "ok") == 0)
        log_info(job->id, -1, "planned: %lld bytes in %lld chunks of %lld%s%s", size, chunks,
                 cs, s->tctx.note[0] ? "; " : "", s->tctx.note);
    else if (outcome)
        log_info(job->id, -1, "plan not recorded (%s): the job ended or was planned meanwhile",
                 outcome);
}

/* Records chunk n done; next is the first byte the target lacks. */
static void slot_chunk_done(struct slot *s, const struct job *job, const struct msg *m,
                            long long n, long long len, long long end, long long next)
{
    double secs = worker_now() - s->xfer_start;
    metrics_chunk(METRICS_DONE, len, secs);
    char n_s[32], len_s[32], next_s[32] = "", rate[32];
    snprintf(rate, sizeof rate, "%.0f", secs > 0 ? (double)len / secs : 0.0);
    snprintf(n_s, sizeof n_s, "%lld", n);
    snprintf(len_s, sizeof len_s, "%lld", len);
    if (next >= 0 && next != end)
        snprintf(next_s, sizeof next_s, "%lld", next);
    const char *argv[] = {job->id, m->id, n_s, len_s, s->tctx.result ? s->tctx.result : "",
                          next_s, slot_next_consumer(s), s->tctx.part ? s->tctx.part : "",
                          rate};
    slot_keep_next(s, slot_record(s, "cru_chunk_done", 9, argv, job->id, n));
    log_debug(job->id, n, "chunk done: %lld bytes", len);
}

static void slot_chunk(struct slot *s, struct job *job, const struct msg *m,
                       const struct target_driver *drv, long long n)
{
    long long off, len;
    char err[1024];
    if (job->chunks < 0 || job->size < 0) {
        slot_dead(s, m, job->id, "bad message: chunk before the job was planned");
        return;
    }
    if (job_chunk_range(job->size, job->chunk_size, n, &off, &len) < 0) {
        snprintf(err, sizeof err, "bad message: chunk %lld out of range (the job has %lld chunks)",
                 n, job->chunks);
        slot_dead(s, m, job->id, err);
        return;
    }
    struct source src;
    int retry;
    if (slot_open_source(s, job, &src, err, sizeof err, &retry) < 0) {
        source_close(&src);
        slot_fail(s, job->id, n, m, err);
        return;
    }
    s->xfer_start = worker_now();
    free(s->tctx.result);
    free(s->tctx.part);
    s->tctx.result = s->tctx.part = NULL;
    long long end = off + len, from = m->from >= 0 && !drv->parallel ? m->from : off;
    enum target_rc rc = TARGET_OK;
    if (!drv->parallel && (m->resume || m->deliveries > 1)) {
        /* a retry or a takeover: the target may hold part of this chunk */
        rc = drv->query(&s->tctx, job, &src);
        if (rc == TARGET_OK) {
            from = s->tctx.next;
            log_info(job->id, n, "resuming: the target holds bytes up to %lld", from);
        }
    }
    if (rc == TARGET_OK && from >= end) {
        s->tctx.next = from; /* already there: just count it */
    } else if (rc == TARGET_OK) {
        s->xfer_job = job->id;
        s->xfer_chunk = n;
        s->xfer_reported = s->xfer_start;
        rc = drv->send(&s->tctx, job, &src, n, from, end);
        s->xfer_job = NULL;
    }
    source_close(&src);
    if (rc != TARGET_OK)
        slot_outcome(s, job, m, rc, n, -1);
    else
        slot_chunk_done(s, job, m, n, len, end, s->tctx.next);
}

/* op=enqueue: the next batch of a parallel job's chunks. */
static void slot_enqueue(struct slot *s, const struct job *job, const struct msg *m)
{
    char start[32];
    snprintf(start, sizeof start, "%lld", m->start);
    const char *argv[] = {job->id, m->id, start, slot_next_consumer(s)};
    slot_keep_next(s, slot_record(s, "cru_enqueue", 4, argv, job->id, -1));
}

/* op=finalize: commit a parallel job from its parts, in chunk order. */
static void slot_finalize(struct slot *s, struct job *job, const struct msg *m,
                          const struct target_driver *drv)
{
    char key[256];
    redisq_key(&s->q, key, sizeof key, "job:%s:parts", job->id);
    const char *hget[] = {"HGETALL", key};
    redisReply *h = redisq_cmd(&s->q, 2, hget);
    if (!h || h->type != REDIS_REPLY_ARRAY) {
        log_error(job->id, -1, "reading parts: %s", s->q.err);
        if (h)
            freeReplyObject(h);
        return; /* stays pending: redelivered */
    }
    char **parts = calloc((size_t)(job->chunks > 0 ? job->chunks : 1), sizeof *parts);
    long long have = 0;
    for (size_t i = 0; parts && i + 1 < h->elements; i += 2) {
        long long n = worker_parse_num(h->element[i]->str);
        if (n >= 0 && n < job->chunks && !parts[n]) {
            parts[n] = h->element[i + 1]->str;
            have++;
        }
    }
    free(s->tctx.result);
    s->tctx.result = NULL;
    if (!parts || have != job->chunks) {
        char err[256];
        snprintf(err, sizeof err, "finalize: %lld of %lld parts recorded", have, job->chunks);
        slot_dead(s, m, job->id, err);
    } else {
        enum target_rc rc = drv->finalize(&s->tctx, job, parts, job->chunks);
        if (rc != TARGET_OK) {
            slot_outcome(s, job, m, rc, -1, -1);
        } else {
            const char *argv[] = {job->id, m->id, s->tctx.result ? s->tctx.result : "",
                                  slot_next_consumer(s)};
            slot_keep_next(s, slot_record(s, "cru_finalized", 4, argv, job->id, -1));
            log_info(job->id, -1, "finalized from %lld parts", job->chunks);
        }
    }
    free(parts);
    freeReplyObject(h);
}

static void slot_abort(struct slot *s, struct job *job, const struct msg *m,
                       const struct target_driver *drv)
{
    if (drv->abort(&s->tctx, job) == TARGET_OK)
        log_info(job->id, -1, "cancelled: target session aborted");
    else
        log_warn(job->id, -1, "cancelled, but aborting the target session failed: %s",
                 s->tctx.err);
    const char *argv[] = {m->id};
    slot_call(s, "cru_ack", 1, argv, job->id, -1);
}

/* Fills m from a stream entry's fields; returns a reason when they are
 * garbage, else NULL. */
static const char *worker_parse_msg(struct msg *m, const redisReply *fields)
{
    m->job = redisq_field(fields, "job");
    m->op = redisq_field(fields, "op");
    m->chunk = redisq_field(fields, "chunk");
    const char *attempt = redisq_field(fields, "attempt");
    const char *from = redisq_field(fields, "from");
    const char *resume = redisq_field(fields, "resume");
    const char *start = redisq_field(fields, "start");
    m->start = start ? worker_parse_num(start) : 0;
    m->attempt = attempt ? worker_parse_num(attempt) : 0;
    m->from = from ? worker_parse_num(from) : -1;
    m->resume = resume && strcmp(resume, "1") == 0;
    if (!m->job || !job_id_valid(m->job))
        return "bad message: no valid job id";
    if ((m->op != NULL) == (m->chunk != NULL))
        return "bad message: needs exactly one of \"chunk\" and \"op\"";
    if (m->op && strcmp(m->op, "plan") != 0 && strcmp(m->op, "abort") != 0 &&
        strcmp(m->op, "enqueue") != 0 && strcmp(m->op, "finalize") != 0)
        return "bad message: unknown op";
    if (m->start < 0)
        return "bad message: start is not a chunk index";
    if (m->chunk && worker_parse_num(m->chunk) < 0)
        return "bad message: chunk is not an index";
    if (m->attempt < 0 || (from && m->from < 0) || (resume && !m->resume))
        return "bad message: attempt, from or resume is garbage";
    return NULL;
}

/* Handles one message; hash is its job's HGETALL when the caller has it
 * already (handed back with the message), else NULL. */
static void slot_handle(struct slot *s, struct msg *m, const redisReply *fields,
                        const redisReply *prefetched)
{
    const char *bad = worker_parse_msg(m, fields);
    if (bad) {
        const char *job = m->job && job_id_valid(m->job) ? m->job : NULL;
        slot_dead(s, m, job, bad);
        return;
    }
    redisReply *fetched = NULL;
    const redisReply *hash = prefetched;
    if (!hash) {
        char key[256];
        redisq_key(&s->q, key, sizeof key, "job:%s", m->job);
        const char *argv[] = {"HGETALL", key};
        hash = fetched = redisq_cmd(&s->q, 2, argv);
        if (!hash) {
            log_error(m->job, -1, "%s", s->q.err);
            return; /* stays pending; delivered again after the lease */
        }
    }
    struct job job;
    char err[512];
    if (hash->type != REDIS_REPLY_ARRAY || hash->elements == 0) {
        slot_dead(s, m, NULL, "bad message: the job it names does not exist");
        goto out;
    }
    if (job_load(&job, m->job, hash, err, sizeof err) < 0) {
        slot_dead(s, m, m->job, err);
        goto out_job;
    }
    const struct target_driver *drv = target_find(job.target_type);
    int live = strcmp(job.state, "queued") == 0 || strcmp(job.state, "running") == 0;
    if (!drv) {
        snprintf(err, sizeof err, "target.type: unknown type \"%.64s\"", job.target_type);
        slot_dead(s, m, m->job, err);
    } else if (m->op && strcmp(m->op, "abort") == 0) {
        slot_abort(s, &job, m, drv);
    } else if (!live) {
        const char *ack[] = {m->id};
        slot_call(s, "cru_ack", 1, ack, m->job, -1); /* the job has ended */
    } else if (m->op && strcmp(m->op, "plan") == 0) {
        slot_plan(s, &job, m, drv);
    } else if (m->op && strcmp(m->op, "enqueue") == 0) {
        slot_enqueue(s, &job, m);
    } else if (m->op) {
        if (!drv->finalize)
            slot_dead(s, m, m->job, "bad message: finalize for a sequential target");
        else
            slot_finalize(s, &job, m, drv);
    } else {
        slot_chunk(s, &job, m, drv, worker_parse_num(m->chunk));
    }
out_job:
    job_free(&job);
out:
    if (fetched)
        freeReplyObject(fetched);
}

static void slot_process(struct slot *s, struct msg *m, const redisReply *fields,
                         const redisReply *hash)
{
    atomic_fetch_add(&worker_busy_slots, 1);
    s->lease_msg = m->id;
    s->lease_renewed = worker_now();
    s->lease_lost = 0;
    slot_handle(s, m, fields, hash);
    s->lease_msg = NULL;
    atomic_fetch_sub(&worker_busy_slots, 1);
}

/* Takes over one message whose worker was lost, if any; returns 1 when it
 * handled one. */
static int slot_claim(struct slot *s)
{
    char idle[32], maxd[32];
    snprintf(idle, sizeof idle, "%lld", s->cfg->lease_ms);
    snprintf(maxd, sizeof maxd, "%lld", s->cfg->max_deliveries);
    const char *argv[] = {s->consumer, idle, maxd, s->claim_cursor};
    redisReply *r = redisq_fcall(&s->q, "cru_claim", 4, argv);
    if (!r)
        return 0;
    int handled = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_STRING) {
        snprintf(s->claim_cursor, sizeof s->claim_cursor, "%s", r->element[0]->str);
        if (r->elements == 4 && r->element[1]->type == REDIS_REPLY_STRING &&
            r->element[1]->len == 0 && r->element[3]->type == REDIS_REPLY_STRING) {
            log_warn(NULL, -1, "dead-lettered a message delivered %lld times: %s",
                     r->element[2]->integer, r->element[3]->str);
        } else if (r->elements >= 3 && r->element[1]->type == REDIS_REPLY_STRING) {
            /* {cursor, msgid, deliveries, field, value, …}: view the tail
             * as a flat field list */
            redisReply fields = {.type = REDIS_REPLY_ARRAY, .elements = r->elements - 3,
                                 .element = r->element + 3};
            struct msg m = {.id = r->element[1]->str, .deliveries = r->element[2]->integer};
            log_info(NULL, -1, "took over message %s (delivery %lld)", m.id, m.deliveries);
            slot_process(s, &m, &fields, NULL);
            handled = 1;
        }
    } else if (r->type == REDIS_REPLY_ERROR) {
        log_error(NULL, -1, "cru_claim: %s", r->str);
    }
    freeReplyObject(r);
    return handled;
}

/* Handles one message: one whose worker was lost (checked every
 * claim interval), else the one the last recording call handed back, else
 * a new one from the stream (blocking up to WORKER_BLOCK_MS). */
static void slot_step(struct slot *s)
{
    double now = worker_now();
    double every = (double)s->cfg->lease_ms / 10000.0;
    if (now - s->last_claim >= (every > WORKER_CLAIM_EVERY_S ? every : WORKER_CLAIM_EVERY_S)) {
        s->last_claim = now;
        if (slot_claim(s) || !s->q.c)
            return;
    }
    if (s->prefetch) {
        redisReply *r = s->prefetch;
        s->prefetch = NULL;
        struct msg m = {.id = r->element[1]->str, .deliveries = 1};
        if (atomic_load(&worker_stopping))
            slot_release(s, m.id);
        else
            slot_process(s, &m, r->element[2], r->element[3]);
        freeReplyObject(r);
        return;
    }
    const char *argv[] = {"XREADGROUP", "GROUP", REDISQ_GROUP, s->consumer, "COUNT", "1",
                          "BLOCK", WORKER_BLOCK_MS, "STREAMS", s->stream, ">"};
    redisReply *r = redisq_cmd(&s->q, 11, argv);
    if (!r)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        log_error(NULL, -1, "XREADGROUP: %s", r->str);
        if (strncmp(r->str, "NOGROUP", 7) == 0)
            redisq_ensure_group(&s->q);
        else
            worker_sleep_ms(1000);
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
        const redisReply *stream = r->element[0];
        const redisReply *entries = stream->elements == 2 ? stream->element[1] : NULL;
        for (size_t i = 0; entries && i < entries->elements; i++) {
            const redisReply *e = entries->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
                e->element[0]->type != REDIS_REPLY_STRING)
                continue;
            struct msg m = {.id = e->element[0]->str, .deliveries = 1};
            if (atomic_load(&worker_stopping))
                slot_release(s, m.id); /* arrived after SIGTERM: not ours to do */
            else
                slot_process(s, &m, e->element[1], NULL);
        }
    }
    freeReplyObject(r);
}

static void *slot_run(void *arg)
{
    struct slot *s = arg;
    long backoff = 100;
    while (!atomic_load(&worker_stopping)) {
        if (slot_connect(s) < 0) {
            log_error(NULL, -1, "slot %d: %s; retrying in %ld ms", s->index, s->q.err, backoff);
            worker_sleep_ms(backoff);
            backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
            continue;
        }
        backoff = 100;
        slot_step(s);
    }
    if (s->prefetch) {
        /* handed to us just before the stop: give it back */
        slot_release(s, s->prefetch->element[1]->str);
        freeReplyObject(s->prefetch);
        s->prefetch = NULL;
    }
    atomic_fetch_sub(&worker_live_slots, 1);
    return NULL;
}

/* The main thread's chores, about once a second: promote due retries,
 * heartbeat. Failures are logged and tried again next time. */
static void worker_housekeep(struct redisq *q, const struct config *cfg, const char *wid,
                             const char *host, long long started_ms)
{
    if (!q->c && redisq_connect(q, cfg) < 0)
        return;
    const char *none[] = {"100"};
    redisReply *r = redisq_fcall(q, "cru_promote", 1, none);
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer > 0)
        log_debug(NULL, -1, "promoted %lld due retries", r->integer);
    if (r)
        freeReplyObject(r);
    char hb[512];
    snprintf(hb, sizeof hb,
             "{\"host\":\"%s\",\"pid\":%d,\"version\":\"%s\",\"slots\":%d,\"busy\":%d,"
             "\"started_ms\":%lld,\"last_seen_ms\":%lld}",
             host, (int)getpid(), CRU_VERSION, cfg->concurrency,
             atomic_load(&worker_busy_slots), started_ms, worker_wall_ms());
    const char *argv[] = {wid, hb};
    r = q->c ? redisq_fcall(q, "cru_heartbeat", 2, argv) : NULL;
    if (r)
        freeReplyObject(r);
}

int worker_run(const struct config *cfg)
{
    struct redisq q;
    if (redisq_connect(&q, cfg) < 0 || redisq_load_library(&q) < 0 ||
        redisq_ensure_group(&q) < 0) {
        log_error(NULL, -1, "%s", q.err);
        redisq_close(&q);
        return 1;
    }
    if (!cfg->source_root[0])
        log_warn(NULL, -1, "CRU_SOURCE_ROOT is not set: file sources will be refused");
    char merr[256];
    if (netcheck_init(&worker_net, cfg->allow_private, cfg->allow_nets, merr, sizeof merr) < 0) {
        log_error(NULL, -1, "%s", merr);
        redisq_close(&q);
        return 1;
    }
    if (cfg->metrics_addr[0] &&
        metrics_start(cfg, cfg->metrics_addr, cfg->concurrency, merr, sizeof merr) < 0) {
        log_error(NULL, -1, "%s", merr);
        redisq_close(&q);
        return 1;
    }

    /* Signals go to this thread only (sigtimedwait below). */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    char host[128] = "host", wid[200];
    gethostname(host, sizeof host - 1);
    for (char *p = host; *p; p++)
        if (*p == '"' || *p == '\\')
            *p = '_';
    snprintf(wid, sizeof wid, "%s-%d", host, (int)getpid());
    long long started_ms = worker_wall_ms();
    struct slot *slots = calloc((size_t)cfg->concurrency, sizeof *slots);
    if (!slots)
        return 1;
    atomic_store(&worker_live_slots, cfg->concurrency);
    int started = 0;
    for (int i = 0; i < cfg->concurrency; i++) {
        struct slot *s = &slots[i];
        s->index = i;
        s->cfg = cfg;
        s->q.cfg = cfg;
        s->rng = (unsigned)(getpid() * 7919 + i * 104729 + started_ms);
        snprintf(s->consumer, sizeof s->consumer, "%s-%d", wid, i);
        snprintf(s->claim_cursor, sizeof s->claim_cursor, "0-0");
        redisq_key(&q, s->stream, sizeof s->stream, "chunks");
        s->tctx.http = http_client_new();
        if (s->tctx.http) {
            s->tctx.http->tick = slot_tick;
            s->tctx.http->tick_arg = s;
            s->tctx.http->max_send_speed = cfg->rate_limit;
        }
        if (!s->tctx.http || pthread_create(&s->thread, NULL, slot_run, s) != 0) {
            log_error(NULL, -1, "cannot start slot %d", i);
            atomic_store(&worker_stopping, 1);
            atomic_fetch_sub(&worker_live_slots, cfg->concurrency - i);
            break;
        }
        started++;
    }
    log_info(NULL, -1, "worker %s started: %d slots, prefix %s, lease %lld ms", wid, started,
             cfg->prefix, cfg->lease_ms);

    double last_chores = 0, deadline = 0;
    while (atomic_load(&worker_live_slots) > 0) {
        double now = worker_now();
        if (!atomic_load(&worker_stopping) && now - last_chores >= WORKER_HOUSEKEEP_EVERY_S) {
            last_chores = now;
            worker_housekeep(&q, cfg, wid, host, started_ms);
            metrics_busy(atomic_load(&worker_busy_slots));
        }
        if (deadline > 0 && now >= deadline && !atomic_exchange(&worker_hard_stop, 1))
            log_warn(NULL, -1, "grace period over: aborting transfers in flight");
        struct timespec tick = {0, 100 * 1000000L};
        int sig = sigtimedwait(&sigs, NULL, &tick);
        if (sig < 0)
            continue;
        if (atomic_exchange(&worker_stopping, 1)) {
            log_warn(NULL, -1, "second signal: exiting now");
            _exit(1);
        }
        deadline = worker_now() + (double)cfg->grace_ms / 1000.0;
        log_info(NULL, -1, "signal %d: taking no new messages; %d in flight, grace %lld ms", sig,
                 atomic_load(&worker_busy_slots), cfg->grace_ms);
    }
    for (int i = 0; i < cfg->concurrency; i++) {
        struct slot *s = &slots[i];
        if (i < started)
            pthread_join(s->thread, NULL);
        redisq_close(&s->q);
        http_client_free(s->tctx.http);
        free(s->tctx.session);
        free(s->tctx.result);
        free(s->tctx.part);
    }
    free(slots);
    metrics_stop();
    if (q.c || redisq_connect(&q, cfg) == 0) {
        const char *argv[] = {wid};
        redisReply *r = redisq_fcall(&q, "cru_heartbeat", 1, argv);
        if (r)
            freeReplyObject(r);
    }
    redisq_close(&q);
    log_info(NULL, -1, "worker stopped");
    return 0;
}
