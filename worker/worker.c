/*
 * worker.c — the worker loop: N slots (threads), each with its own Redis
 * connection, curl handle and response buffer, reading p:chunks through the
 * consumer group "workers".
 *
 * A message is either {job, op=plan} or {job, chunk=N}. A slot loads the
 * job hash, does the work (plan: size the source and open the target's
 * session; chunk: stream the byte range to the target), then records the
 * effect and acknowledges the message in one FCALL. Anything wrong with a
 * message or a job fails that job with a clear error (or drops a message
 * that names no job); it never stops the worker.
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
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "job.h"
#include "log.h"
#include "redisq.h"
#include "source.h"
#include "target.h"

#define WORKER_BLOCK_MS "1000"

struct slot {
    int index;
    const struct config *cfg;
    struct redisq q;
    struct target_ctx tctx;
    char consumer[300];
    char stream[128];
    pthread_t thread;
};

static atomic_int worker_stopping;
static atomic_int worker_live_slots;

static void worker_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Runs an FCALL whose reply only matters for the log; returns 0 or -1. */
static int slot_fcall(struct slot *s, const char *fn, int argc, const char **argv,
                      const char *job, long long chunk)
{
    redisReply *r = redisq_fcall(&s->q, fn, argc, argv);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        log_error(job, chunk, "%s: %s", fn, s->q.err);
        if (r)
            freeReplyObject(r);
        return -1;
    }
    freeReplyObject(r);
    return 0;
}

static void slot_fail(struct slot *s, const char *job, long long chunk,
                      const char *msgid, const char *error)
{
    log_warn(job, chunk, "job failed: %s", error);
    const char *argv[] = {job, msgid, error};
    slot_fcall(s, "cru_fail", 3, argv, job, chunk);
}

static void slot_drop(struct slot *s, const char *msgid, const char *why)
{
    log_warn(NULL, -1, "dropping message %s: %s", msgid, why);
    const char *argv[] = {msgid};
    slot_fcall(s, "cru_ack", 1, argv, NULL, -1);
}

/* Opens the job's source, checking it is still the version that was
 * planned (when one was recorded). Returns 0, or -1 with err set. */
static int slot_open_source(struct slot *s, const struct job *job, struct source *src,
                            char *err, size_t errlen)
{
    if (source_open(src, s->cfg->source_root, job->source_url) < 0) {
        snprintf(err, errlen, "%s", src->err);
        return -1;
    }
    if (job->source_version && strcmp(job->source_version, src->version) != 0) {
        snprintf(err, errlen, "source changed during upload (size or mtime differ from plan time)");
        return -1;
    }
    return 0;
}

static void slot_plan(struct slot *s, struct job *job, const char *msgid,
                      const struct target_driver *drv)
{
    struct source src;
    char err[1024];
    if (slot_open_source(s, job, &src, err, sizeof err) < 0) {
        source_close(&src);
        slot_fail(s, job->id, -1, msgid, err);
        return;
    }
    long long chunks = job_chunk_count(src.size, job->chunk_size);
    source_close(&src);
    free(s->tctx.session);
    free(s->tctx.result);
    s->tctx.session = s->tctx.result = NULL;
    if (drv->plan(&s->tctx, job, src.size) != TARGET_OK) {
        slot_fail(s, job->id, -1, msgid, s->tctx.err);
        return;
    }
    char size_s[32], cs_s[32], chunks_s[32];
    snprintf(size_s, sizeof size_s, "%lld", src.size);
    snprintf(cs_s, sizeof cs_s, "%lld", job->chunk_size);
    snprintf(chunks_s, sizeof chunks_s, "%lld", chunks);
    const char *argv[] = {job->id, msgid, size_s, cs_s, chunks_s,
                          s->tctx.session ? s->tctx.session : "", src.version,
                          s->tctx.result ? s->tctx.result : ""};
    if (slot_fcall(s, "cru_plan", 8, argv, job->id, -1) == 0)
        log_info(job->id, -1, "planned: %lld bytes in %lld chunks of %lld", src.size,
                 chunks, job->chunk_size);
}

static void slot_chunk(struct slot *s, struct job *job, const char *msgid,
                       const struct target_driver *drv, long long n)
{
    long long off, len;
    char err[1024];
    if (job->chunks < 0 || job->size < 0) {
        slot_fail(s, job->id, n, msgid, "bad message: chunk before the job was planned");
        return;
    }
    if (job_chunk_range(job->size, job->chunk_size, n, &off, &len) < 0) {
        snprintf(err, sizeof err, "bad message: chunk %lld out of range (the job has %lld chunks)",
                 n, job->chunks);
        slot_fail(s, job->id, n, msgid, err);
        return;
    }
    struct source src;
    if (slot_open_source(s, job, &src, err, sizeof err) < 0) {
        source_close(&src);
        slot_fail(s, job->id, n, msgid, err);
        return;
    }
    free(s->tctx.result);
    s->tctx.result = NULL;
    enum target_rc rc = drv->send_chunk(&s->tctx, job, &src, n, off, len);
    source_close(&src);
    if (rc != TARGET_OK) {
        slot_fail(s, job->id, n, msgid, s->tctx.err);
        return;
    }
    char n_s[32], len_s[32];
    snprintf(n_s, sizeof n_s, "%lld", n);
    snprintf(len_s, sizeof len_s, "%lld", len);
    const char *argv[] = {job->id, msgid, n_s, len_s, s->tctx.result ? s->tctx.result : ""};
    if (slot_fcall(s, "cru_chunk_done", 5, argv, job->id, n) == 0)
        log_debug(job->id, n, "chunk done: %lld bytes at %lld", len, off);
}

/* Parses a chunk index: decimal digits only, no sign, no overflow. */
static long long worker_parse_index(const char *s)
{
    if (!s || !*s || strlen(s) > 15)
        return -1;
    long long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

static void slot_handle(struct slot *s, const char *msgid, const redisReply *fields)
{
    const char *id = redisq_field(fields, "job");
    const char *op = redisq_field(fields, "op");
    const char *chunk = redisq_field(fields, "chunk");
    if (!id || !job_id_valid(id)) {
        slot_drop(s, msgid, "no valid job id in the message");
        return;
    }
    char key[256];
    redisq_key(&s->q, key, sizeof key, "job:%s", id);
    const char *argv[] = {"HGETALL", key};
    redisReply *hash = redisq_cmd(&s->q, 2, argv);
    if (!hash) {
        log_error(id, -1, "%s", s->q.err);
        return; /* the message stays pending and is delivered again */
    }
    struct job job;
    char err[512];
    if (hash->type != REDIS_REPLY_ARRAY || hash->elements == 0) {
        slot_drop(s, msgid, "the job it names does not exist");
        goto out;
    }
    if (job_load(&job, id, hash, err, sizeof err) < 0) {
        slot_fail(s, id, -1, msgid, err);
        goto out_job;
    }
    if (strcmp(job.state, "queued") != 0 && strcmp(job.state, "running") != 0) {
        slot_drop(s, msgid, "the job has ended");
        goto out_job;
    }
    const struct target_driver *drv = target_find(job.target_type);
    if (!drv) {
        snprintf(err, sizeof err, "target.type: unknown type \"%.64s\"", job.target_type);
        slot_fail(s, id, -1, msgid, err);
        goto out_job;
    }
    if (op && strcmp(op, "plan") == 0) {
        slot_plan(s, &job, msgid, drv);
    } else if (chunk && !op) {
        long long n = worker_parse_index(chunk);
        if (n < 0) {
            snprintf(err, sizeof err, "bad message: chunk \"%.32s\" is not an index", chunk);
            slot_fail(s, id, -1, msgid, err);
        } else {
            slot_chunk(s, &job, msgid, drv, n);
        }
    } else {
        slot_fail(s, id, -1, msgid, "bad message: needs \"chunk\" or \"op\":\"plan\"");
    }
out_job:
    job_free(&job);
out:
    freeReplyObject(hash);
}

/* Reads one message (blocking up to WORKER_BLOCK_MS) and handles it. */
static void slot_step(struct slot *s)
{
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
            if (e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
                e->element[0]->type == REDIS_REPLY_STRING)
                slot_handle(s, e->element[0]->str, e->element[1]);
        }
    }
    freeReplyObject(r);
}

static void *slot_run(void *arg)
{
    struct slot *s = arg;
    long backoff = 100;
    while (!atomic_load(&worker_stopping)) {
        if (!s->q.c) {
            if (redisq_connect(&s->q, s->cfg) < 0 || redisq_ensure_group(&s->q) < 0) {
                log_error(NULL, -1, "slot %d: %s; retrying in %ld ms", s->index, s->q.err,
                          backoff);
                redisq_close(&s->q);
                worker_sleep_ms(backoff);
                backoff = backoff * 2 > 10000 ? 10000 : backoff * 2;
                continue;
            }
            backoff = 100;
        }
        slot_step(s);
    }
    atomic_fetch_sub(&worker_live_slots, 1);
    return NULL;
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
    redisq_close(&q);
    if (!cfg->source_root[0])
        log_warn(NULL, -1, "CRU_SOURCE_ROOT is not set: file sources will be refused");

    /* Signals go to this thread only (sigtimedwait below). */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    char host[128] = "host";
    gethostname(host, sizeof host - 1);
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
        snprintf(s->consumer, sizeof s->consumer, "%s-%d-%d", host, (int)getpid(), i);
        redisq_key(&q, s->stream, sizeof s->stream, "chunks");
        s->tctx.curl = http_handle_new();
        s->tctx.resp = malloc(sizeof *s->tctx.resp);
        if (!s->tctx.curl || !s->tctx.resp ||
            pthread_create(&s->thread, NULL, slot_run, s) != 0) {
            log_error(NULL, -1, "cannot start slot %d", i);
            atomic_store(&worker_stopping, 1);
            atomic_fetch_sub(&worker_live_slots, cfg->concurrency - i);
            break;
        }
        started++;
    }
    log_info(NULL, -1, "worker started: %d slots, prefix %s", started, cfg->prefix);

    while (atomic_load(&worker_live_slots) > 0) {
        struct timespec tick = {0, 200 * 1000000L};
        int sig = sigtimedwait(&sigs, NULL, &tick);
        if (sig < 0)
            continue;
        if (atomic_exchange(&worker_stopping, 1)) {
            log_warn(NULL, -1, "second signal: exiting now");
            _exit(1);
        }
        log_info(NULL, -1, "signal %d: finishing in-flight chunks, then exiting", sig);
    }
    for (int i = 0; i < cfg->concurrency; i++) {
        struct slot *s = &slots[i];
        if (i < started)
            pthread_join(s->thread, NULL);
        redisq_close(&s->q);
        if (s->tctx.curl)
            curl_easy_cleanup(s->tctx.curl);
        free(s->tctx.resp);
        free(s->tctx.session);
        free(s->tctx.result);
    }
    free(slots);
    log_info(NULL, -1, "worker stopped");
    return 0;
}
