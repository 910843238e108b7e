/*
 * target_tus.c — tus 1.0 resumable uploads (tus.io/protocols/resumable-upload).
 *
 * Two ways in (common/cru.lua check_tus):
 *   - endpoint: the worker creates the upload (creation extension):
 *     POST {endpoint} with Upload-Length and Upload-Metadata → 201 Location;
 *   - upload_url: an upload the app created; the worker checks it (HEAD).
 * Then each chunk is one PATCH {upload} with Upload-Offset and the bytes,
 * answered 204 with the new Upload-Offset; a status query is HEAD {upload}.
 * A cancelled job's upload is terminated (DELETE). Every request carries
 * Tus-Resumable: 1.0.0 and the spec's headers (e.g. Authorization), which
 * never reach a log line or an error. tus is sequential: the server takes
 * bytes only at its current offset (else 409). Facts in shared/PROTOCOLS.md.
 *
 * Response headers (Upload-Offset, Upload-Length) are read back from the
 * easy handle with libcurl's header API (curl_easy_header, 7.84+) right
 * after the exchange, before the handle is reused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checksum.h"
#include "log.h"
#include "target.h"

#define TUS_VERSION "1.0.0"
/* rounds of PATCH / 409-query per send before giving up */
#define TUS_MAX_ROUNDS 64
#define TUS_MD "Upload-Metadata: "

/* Writes "tus: what: HTTP n: <the server's text>" into ctx->err and
 * classifies the status; without an answer, the transport error. */
static enum target_rc tus_fail(struct target_ctx *ctx, const char *what)
{
    struct http_resp *r = &ctx->http->resp;
    if (r->status == 0) {
        snprintf(ctx->err, sizeof ctx->err, "tus: %s: %s", what, r->err);
        return TARGET_RETRY;
    }
    char detail[256] = "";
    if (r->len)
        snprintf(detail, sizeof detail, ": %.200s", r->body);
    for (char *p = detail; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    size_t dl = strlen(detail);
    while (dl > 2 && detail[dl - 1] == ' ')
        detail[--dl] = '\0';
    snprintf(ctx->err, sizeof ctx->err, "tus: %s: HTTP %ld%s", what, r->status, detail);
    return target_status_rc(r->status);
}

/* A number response header of the last exchange (Upload-Offset,
 * Upload-Length), or -1 when absent or not a non-negative integer. */
static long long tus_header_num(struct target_ctx *ctx, const char *name)
{
    struct curl_header *h;
    if (curl_easy_header(ctx->http->curl, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK)
        return -1;
    const char *v = h->value;
    if (*v < '0' || *v > '9')
        return -1;
    char *end;
    long long n = strtoll(v, &end, 10);
    while (*end == ' ' || *end == '\t')
        end++;
    return *end == '\0' ? n : -1;
}

/* 1 if s is an HTTP token (a header name): RFC 9110 tchar. */
static int tus_is_token(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || strchr("!#$%&'*+-.^_`|~", *s)))
            return 0;
    return 1;
}

/*
 * Starts a request's header list: Tus-Resumable and the spec's headers.
 * Returns the list (the caller frees it), or NULL with ctx->err set. Only
 * header names reach the error: values may be secrets.
 */
static struct curl_slist *tus_headers(struct target_ctx *ctx, const struct job *job)
{
    struct curl_slist *h = http_header(NULL, "Tus-Resumable: " TUS_VERSION);
    const cJSON *extra = cJSON_GetObjectItemCaseSensitive(job->target, "headers");
    const cJSON *e;
    cJSON_ArrayForEach(e, extra) {
        if (!h)
            break;
        if (!cJSON_IsString(e) || !e->string || !tus_is_token(e->string) ||
            strpbrk(e->valuestring, "\r\n")) {
            snprintf(ctx->err, sizeof ctx->err,
                     "tus: target.headers.%.100s: not a valid header",
                     e->string ? e->string : "?");
            curl_slist_free_all(h);
            return NULL;
        }
        h = http_header(h, "%s: %s", e->string, e->valuestring);
    }
    if (!h && !ctx->err[0])
        snprintf(ctx->err, sizeof ctx->err, "tus: out of memory building headers");
    return h;
}

/* One exchange with the common headers plus extra (may be NULL; freed
 * here). Returns http_perform's result, or -2 when the headers could not
 * be built (ctx->err says why). */
static int tus_perform(struct target_ctx *ctx, const struct job *job, struct http_req *req,
                       struct curl_slist *extra)
{
    ctx->err[0] = '\0';
    struct curl_slist *h = tus_headers(ctx, job);
    if (!h) {
        curl_slist_free_all(extra);
        return -2;
    }
    for (struct curl_slist *s = extra; s && h; s = s->next)
        h = curl_slist_append(h, s->data);
    curl_slist_free_all(extra);
    if (!h) {
        snprintf(ctx->err, sizeof ctx->err, "tus: out of memory building headers");
        return -2;
    }
    req->headers = h;
    int rc = http_perform(ctx->http, req);
    curl_slist_free_all(h);
    req->headers = NULL;
    return rc;
}

/* The job's result: where the upload went (redacted: the upload URL may be
 * a capability) and its size. */
static enum target_rc tus_take_result(struct target_ctx *ctx, const char *url, long long size)
{
    char shown[512];
    log_redact_url(url, 1, shown, sizeof shown);
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "upload_url", shown);
    cJSON_AddNumberToObject(out, "size", (double)size);
    free(ctx->result);
    ctx->result = cJSON_PrintUnformatted(out);
    cJSON_Delete(out);
    if (!ctx->result) {
        snprintf(ctx->err, sizeof ctx->err, "tus: out of memory");
        return TARGET_FATAL;
    }
    return TARGET_OK;
}

/* Appends ",key base64(value)" (no comma first, bare key for an empty
 * value) at line + o; returns the new length. line has the room. */
static size_t tus_metadata_pair(char *line, size_t o, const char *key, const char *value)
{
    o += (size_t)sprintf(line + o, "%s%s", o == sizeof TUS_MD - 1 ? "" : ",", key);
    if (*value) {
        line[o++] = ' ';
        checksum_base64((const uint8_t *)value, strlen(value), line + o);
        o += strlen(line + o);
    }
    return o;
}

/*
 * Builds "Upload-Metadata: k base64(v),…" from the spec's metadata, adding
 * filename = the source's basename unless given. Returns a malloc'd header
 * line (the caller frees it), "" (static) when there is nothing to send, or
 * NULL with ctx->err set. tus: keys are non-empty, without spaces and
 * commas; an empty value is sent as the bare key.
 */
static char *tus_metadata(struct target_ctx *ctx, const struct job *job)
{
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(job->target, "metadata");
    char path[4096], *base = NULL;
    if (!cJSON_GetObjectItemCaseSensitive(md, "filename") && job->source_url &&
        source_file_path(job->source_url, path, sizeof path) == 0) {
        base = strrchr(path, '/');
        base = base ? base + 1 : path;
        if (!*base)
            base = NULL;
    }
    size_t cap = sizeof TUS_MD + (base ? 32 + 4 * strlen(base) / 3 : 0);
    const cJSON *e;
    cJSON_ArrayForEach(e, md) {
        if (!cJSON_IsString(e) || !e->string || !*e->string ||
            strpbrk(e->string, " ,\t\r\n")) {
            snprintf(ctx->err, sizeof ctx->err,
                     "tus: target.metadata.%.100s: keys must be non-empty, without spaces "
                     "or commas, and values strings", e->string ? e->string : "?");
            return NULL;
        }
        cap += strlen(e->string) + 4 * (strlen(e->valuestring) + 2) / 3 + 8;
    }
    if (!base && !cJSON_GetArraySize(md))
        return "";
    char *line = malloc(cap);
    if (!line) {
        snprintf(ctx->err, sizeof ctx->err, "tus: out of memory");
        return NULL;
    }
    size_t o = (size_t)sprintf(line, TUS_MD);
    cJSON_ArrayForEach(e, md)
        o = tus_metadata_pair(line, o, e->string, e->valuestring);
    if (base)
        tus_metadata_pair(line, o, "filename", base);
    return line;
}

/* Resolves location (absolute, or relative to endpoint) into a malloc'd
 * absolute http(s) URL in ctx->session. */
static enum target_rc tus_resolve(struct target_ctx *ctx, const char *endpoint,
                                  const char *location)
{
    CURLU *u = curl_url();
    char *abs = NULL, *scheme = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, endpoint, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_URL, location, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0))
        curl_url_get(u, CURLUPART_URL, &abs, 0);
    curl_free(scheme);
    curl_url_cleanup(u);
    free(ctx->session);
    ctx->session = abs ? strdup(abs) : NULL;
    curl_free(abs);
    if (!ctx->session) {
        snprintf(ctx->err, sizeof ctx->err,
                 "tus: creation answered 201 with a Location that is not an http(s) URL");
        return TARGET_FATAL;
    }
    return TARGET_OK;
}

/* Creation: POST {endpoint} → 201 Location; an empty file completes here. */
static enum target_rc tus_create(struct target_ctx *ctx, const struct job *job,
                                 const char *endpoint, long long size)
{
    char *md = tus_metadata(ctx, job);
    if (!md)
        return TARGET_FATAL;
    /* tus creation: no body; drop libcurl's form Content-Type */
    struct curl_slist *x = http_header(NULL, "Upload-Length: %lld", size);
    x = x ? curl_slist_append(x, "Content-Type:") : NULL;
    if (x && *md)
        x = curl_slist_append(x, md);
    if (*md)
        free(md);
    if (!x) {
        snprintf(ctx->err, sizeof ctx->err, "tus: out of memory");
        return TARGET_FATAL;
    }
    struct http_req req = {.method = "POST", .url = endpoint, .body = "", .body_len = 0};
    int rc = tus_perform(ctx, job, &req, x);
    if (rc == -2)
        return TARGET_FATAL;
    if (rc < 0 || ctx->http->resp.status != 201)
        return tus_fail(ctx, "creation (POST endpoint)");
    if (!ctx->http->resp.location[0]) {
        snprintf(ctx->err, sizeof ctx->err, "tus: creation answered 201 without a Location");
        return TARGET_FATAL;
    }
    enum target_rc trc = tus_resolve(ctx, endpoint, ctx->http->resp.location);
    if (trc == TARGET_OK && size == 0)
        trc = tus_take_result(ctx, ctx->session, 0); /* Upload-Length 0: complete */
    return trc;
}

/*
 * HEAD {url}: the server's offset into *offset and its length into *length
 * (-1 when deferred). 404/410: the upload is gone (expired or terminated).
 */
static enum target_rc tus_head(struct target_ctx *ctx, const struct job *job, const char *url,
                               long long *offset, long long *length)
{
    struct http_req req = {.method = "HEAD", .url = url};
    int rc = tus_perform(ctx, job, &req, NULL);
    if (rc == -2)
        return TARGET_FATAL;
    long status = ctx->http->resp.status;
    if (rc == 0 && (status == 404 || status == 410)) {
        snprintf(ctx->err, sizeof ctx->err,
                 "tus: upload status (HEAD): HTTP %ld, upload gone (expired or terminated)",
                 status);
        return TARGET_FATAL;
    }
    if (rc < 0 || (status != 200 && status != 204))
        return tus_fail(ctx, "upload status (HEAD)");
    *offset = tus_header_num(ctx, "Upload-Offset");
    *length = tus_header_num(ctx, "Upload-Length");
    if (*offset < 0) {
        snprintf(ctx->err, sizeof ctx->err,
                 "tus: upload status (HEAD): HTTP %ld without a usable Upload-Offset", status);
        return TARGET_FATAL;
    }
    return TARGET_OK;
}

/*
 * An upload the app created: it must exist and be for this many bytes. One
 * created with Upload-Defer-Length gets its length now (tus: in a PATCH,
 * here one with no bytes). An empty file is then complete.
 */
static enum target_rc tus_adopt(struct target_ctx *ctx, const struct job *job,
                                const char *url, long long size)
{
    long long offset, length;
    enum target_rc trc = tus_head(ctx, job, url, &offset, &length);
    if (trc != TARGET_OK)
        return trc;
    if (length >= 0 && length != size) {
        snprintf(ctx->err, sizeof ctx->err,
                 "tus: the upload_url is for %lld bytes but the source has %lld", length, size);
        return TARGET_FATAL;
    }
    if (length < 0) {
        struct curl_slist *x = http_header(NULL, "Upload-Offset: %lld", offset);
        x = x ? http_header(x, "Upload-Length: %lld", size) : NULL;
        x = x ? curl_slist_append(x, "Content-Type: application/offset+octet-stream") : NULL;
        struct http_req req = {.method = "PATCH", .url = url, .stream = 1, .src_len = 0};
        int rc = x ? tus_perform(ctx, job, &req, x) : -2;
        if (rc == -2) {
            if (!ctx->err[0])
                snprintf(ctx->err, sizeof ctx->err, "tus: out of memory");
            return TARGET_FATAL;
        }
        if (rc < 0 || (ctx->http->resp.status != 204 && ctx->http->resp.status != 200))
            return tus_fail(ctx, "declaring the deferred Upload-Length (PATCH)");
    }
    free(ctx->session);
    ctx->session = strdup(url);
    if (!ctx->session) {
        snprintf(ctx->err, sizeof ctx->err, "tus: out of memory");
        return TARGET_FATAL;
    }
    return size == 0 ? tus_take_result(ctx, url, 0) : TARGET_OK;
}

static enum target_rc tus_plan(struct target_ctx *ctx, const struct job *job, long long size)
{
    const char *upload_url = job_json_str(job->target, "upload_url");
    const char *endpoint = job_json_str(job->target, "endpoint");
    if (upload_url)
        return tus_adopt(ctx, job, upload_url, size);
    if (endpoint)
        return tus_create(ctx, job, endpoint, size);
    snprintf(ctx->err, sizeof ctx->err, "tus: target needs endpoint or upload_url");
    return TARGET_FATAL;
}

/* HEAD on the upload: the server's offset becomes ctx->next; at the size
 * the upload is complete (its last PATCH answer may have been lost). */
static enum target_rc tus_query(struct target_ctx *ctx, const struct job *job,
                                struct source *src)
{
    (void)src;
    if (!job->session) {
        snprintf(ctx->err, sizeof ctx->err, "tus: job has no upload URL");
        return TARGET_FATAL;
    }
    long long offset, length;
    enum target_rc trc = tus_head(ctx, job, job->session, &offset, &length);
    if (trc != TARGET_OK)
        return trc;
    if ((length >= 0 && length != job->size) || offset > job->size) {
        snprintf(ctx->err, sizeof ctx->err,
                 "tus: upload status (HEAD): the server holds %lld of %lld bytes, but the "
                 "source has %lld", offset, length, job->size);
        return TARGET_FATAL;
    }
    ctx->next = offset;
    if (offset == job->size)
        return tus_take_result(ctx, job->session, job->size);
    return TARGET_OK;
}

/*
 * PATCH bytes [next, end) at Upload-Offset next until the server holds end.
 * tus: the offset must be the server's, else 409: then ask (HEAD) and go on
 * from what it holds — inside this chunk, or before it if it lost bytes.
 * A 204 may report less than was sent (the server kept part): send the rest.
 */
static enum target_rc tus_send(struct target_ctx *ctx, const struct job *job,
                               struct source *src, long long n, long long from, long long end)
{
    (void)n;
    if (!job->session) {
        snprintf(ctx->err, sizeof ctx->err, "tus: job has no upload URL");
        return TARGET_FATAL;
    }
    long long size = job->size, next = from;
    for (int round = 0; next < end; round++) {
        if (round >= TUS_MAX_ROUNDS) {
            snprintf(ctx->err, sizeof ctx->err,
                     "tus: the server keeps refusing bytes from %lld", next);
            return TARGET_FATAL;
        }
        char what[128];
        snprintf(what, sizeof what, "PATCH bytes %lld-%lld of %lld", next, end - 1, size);
        struct curl_slist *x = http_header(NULL, "Upload-Offset: %lld", next);
        x = x ? curl_slist_append(x, "Content-Type: application/offset+octet-stream") : NULL;
        if (!x) {
            snprintf(ctx->err, sizeof ctx->err, "tus: out of memory");
            return TARGET_FATAL;
        }
        struct http_req req = {.method = "PATCH", .url = job->session, .src = src,
                               .src_off = next, .src_len = end - next, .stream = 1};
        int rc = tus_perform(ctx, job, &req, x);
        if (rc == -2)
            return TARGET_FATAL;
        long status = ctx->http->resp.status;
        if (rc < 0)
            return tus_fail(ctx, what);
        long long got;
        if (status == 204 || status == 200) {
            got = tus_header_num(ctx, "Upload-Offset");
            if (got < next || got > size) {
                snprintf(ctx->err, sizeof ctx->err,
                         "tus: %s: HTTP %ld without a usable Upload-Offset", what, status);
                return TARGET_FATAL;
            }
        } else if (status == 409) {
            /* tus: Upload-Offset is not the server's: ask where it is */
            enum target_rc qrc = tus_query(ctx, job, src);
            if (qrc != TARGET_OK)
                return qrc;
            if (ctx->result)
                return TARGET_OK; /* it had completed meanwhile */
            got = ctx->next;
            log_info(job->id, n, "tus: offset conflict at %lld: the server holds %lld", next,
                     got);
        } else if (status == 404 || status == 410) {
            snprintf(ctx->err, sizeof ctx->err,
                     "tus: %s: HTTP %ld, upload gone (expired or terminated)", what, status);
            return TARGET_FATAL;
        } else {
            return tus_fail(ctx, what);
        }
        next = got;
    }
    ctx->next = next;
    if (next == size)
        return tus_take_result(ctx, job->session, size);
    return TARGET_OK;
}

/* Termination: DELETE {upload}; an upload already gone is fine. */
static enum target_rc tus_abort(struct target_ctx *ctx, const struct job *job)
{
    /* the upload the worker created, or the one the app gave */
    const char *url = job->session ? job->session : job_json_str(job->target, "upload_url");
    if (!url)
        return TARGET_OK;
    struct http_req req = {.method = "DELETE", .url = url};
    int rc = tus_perform(ctx, job, &req, NULL);
    if (rc == -2)
        return TARGET_FATAL;
    long status = ctx->http->resp.status;
    if (rc == 0 && (status == 204 || status == 200 || status == 404 || status == 410))
        return TARGET_OK;
    return tus_fail(ctx, "termination (DELETE upload)");
}

const struct target_driver target_tus = {
    .type = "tus",
    .parallel = 0,
    .plan = tus_plan,
    .send = tus_send,
    .query = tus_query,
    .abort = tus_abort,
};
