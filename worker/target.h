/*
 * target.h — the driver table. A driver is one file that knows one upload
 * protocol: how to open a session, send a chunk from a source, and read
 * the final answer. Nothing outside a driver knows its headers; the worker
 * loop knows only messages and progress.
 */
#ifndef CRU_TARGET_H
#define CRU_TARGET_H

#include <curl/curl.h>

#include "http.h"
#include "job.h"
#include "source.h"

enum target_rc {
    TARGET_OK = 0,
    TARGET_FATAL = -1,   /* permanent: fail the job with ctx->err */
    TARGET_RETRY = -2,   /* transient: connection errors, 429, 5xx */
};

/* Per-slot state handed to every driver call; the slot owns it. */
struct target_ctx {
    struct http_client *http;
    char err[1024];      /* why the call failed, never with a secret in it */
    char *session;       /* set by plan (malloc'd): what later chunks need */
    char *result;        /* set when the upload completed (malloc'd JSON) */
    long long next;      /* sequential targets: the first byte the target lacks */
    char *part;          /* parallel targets: what finalize needs of the chunk
                          * just sent (S3 ETag, Azure block id), malloc'd */
    long long chunk_size; /* set by plan to change the job's chunk size (0: keep) */
    char note[256];      /* set by plan: a remark for the job (e.g. why the
                          * chunk size was raised) */
};

struct target_driver {
    const char *type;
    int parallel;        /* chunks may go in any order (S3, Azure) */
    /*
     * Opens the upload session for a source of size bytes, storing what
     * chunks need in ctx->session. An upload that needs no chunks (an empty
     * file) may complete here, setting ctx->result. A driver whose target
     * limits the number of parts may raise the chunk size (ctx->chunk_size,
     * saying why in ctx->note).
     */
    enum target_rc (*plan)(struct target_ctx *ctx, const struct job *job,
                           long long size);
    /*
     * Sends bytes [from, end) of src as (part of) chunk n; end is a chunk
     * boundary or the file size. A sequential driver may send a little past
     * end when its fragment rules need it, and sets ctx->next to the first
     * byte the target still lacks afterwards, and ctx->result when the
     * upload completed. A parallel driver sends the whole chunk and sets
     * ctx->part.
     */
    enum target_rc (*send)(struct target_ctx *ctx, const struct job *job,
                           struct source *src, long long n, long long from, long long end);
    /*
     * Sequential targets: asks what the target holds; sets ctx->next. When
     * the session is gone because the upload completed (its worker was lost
     * before recording the answer), a driver that can verify the stored
     * item against src sets ctx->result and ctx->next = size instead.
     */
    enum target_rc (*query)(struct target_ctx *ctx, const struct job *job,
                            struct source *src);
    /*
     * Parallel targets: commits the upload from the chunks' parts (in chunk
     * order, nparts == job->chunks) and sets ctx->result. Must be safe to
     * run again after it succeeded (a redelivered finalize).
     */
    enum target_rc (*finalize)(struct target_ctx *ctx, const struct job *job,
                               char *const *parts, long long nparts);
    /* Aborts the target session of a cancelled job (job->session). */
    enum target_rc (*abort)(struct target_ctx *ctx, const struct job *job);
};

/* Returns the driver for type, or NULL. */
const struct target_driver *target_find(const char *type);

/* Every driver, NULL-terminated: generated from worker/target_*.c by
 * scripts/drivers.sh (a driver is a file defining
 * "const struct target_driver target_NAME = {"). */
extern const struct target_driver *const target_drivers[];

/*
 * Sequential targets whose fragments must be multiples of quantum (Graph
 * 320 KiB, Google 256 KiB) but the last: the end of the fragment that
 * sends [next, end) of a size-byte upload. A resume from inside a chunk
 * runs past end to the next multiple (the following chunk starts where the
 * target then says); max, when not 0, caps a fragment (a multiple of
 * quantum).
 */
long long target_fragment_end(long long next, long long end, long long size,
                              long long quantum, long long max);

/* Classifies an HTTP status the way every driver does: no answer, 408,
 * 429, 500, 502, 503 and 504 are worth a retry, anything else is final. */
enum target_rc target_status_rc(long status);

#endif
