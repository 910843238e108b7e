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
    CURL *curl;
    struct http_resp *resp;
    char err[1024];      /* why the call failed, never with a secret in it */
    char *session;       /* set by plan (malloc'd): what later chunks need */
    char *result;        /* set when the upload completed (malloc'd JSON) */
};

struct target_driver {
    const char *type;
    int parallel;        /* chunks may go in any order (S3, Azure) */
    /*
     * Opens the upload session for a source of size bytes, storing what
     * chunks need in ctx->session. An upload that needs no chunks (an empty
     * file) may complete here, setting ctx->result.
     */
    enum target_rc (*plan)(struct target_ctx *ctx, const struct job *job,
                           long long size);
    /* Sends bytes [off, off+len) of src as chunk n; after the last chunk,
     * sets ctx->result to the target's answer (JSON). */
    enum target_rc (*send_chunk)(struct target_ctx *ctx, const struct job *job,
                                 struct source *src, long long n,
                                 long long off, long long len);
};

/* Returns the driver for type, or NULL. */
const struct target_driver *target_find(const char *type);

extern const struct target_driver target_graph;

/* Classifies an HTTP status the way every driver does: 408, 429 and 5xx
 * are worth a retry, anything else is final. */
enum target_rc target_status_rc(long status);

#endif
