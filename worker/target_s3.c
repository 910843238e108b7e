/*
 * target_s3.c — Amazon S3 multipart upload, and S3-compatible stores.
 *
 * Spec: {"type": "s3", "region", "bucket", "key", "endpoint"?, "path_style"?}.
 * Credentials come only from the worker's environment (AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN); libcurl signs every request
 * (SigV4, CURLOPT_AWS_SIGV4) over "x-amz-content-sha256: UNSIGNED-PAYLOAD",
 * so a part is streamed without hashing it first. No hand-written HMAC.
 *
 * Parallel: plan runs CreateMultipartUpload (the UploadId is the session);
 * any worker uploads any part (PUT ?partNumber=N&uploadId=ID, its ETag kept
 * as the chunk's part); the one finalize step runs CompleteMultipartUpload
 * with the ETags in order. A file of at most one chunk is a single PUT.
 * Facts from docs.aws.amazon.com/AmazonS3/latest/API (UploadPart,
 * CompleteMultipartUpload), summarised in shared/PROTOCOLS.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "checksum.h"
#include "log.h"
#include "target.h"

/* S3: at most 10,000 parts per upload, each at least 5 MiB (but the last). */
#define S3_MAX_PARTS 10000LL
#define MiB (1024LL * 1024)

/* Percent-encodes a key for the URL path the way SigV4 canonicalises it:
 * everything but unreserved characters and "/". */
static int s3_escape_key(const char *key, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        int keep = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                   (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' ||
                   *p == '~' || *p == '/';
        if (o + (keep ? 1 : 3) >= outlen)
            return -1;
        if (keep) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
    return 0;
}

/* The object URL, then "?query" when query is not empty. */
static int s3_url(const struct job *job, const char *query, char *out, size_t outlen)
{
    const cJSON *t = job->target;
    const char *endpoint = job_json_str(t, "endpoint"), *region = job_json_str(t, "region");
    const char *bucket = job_json_str(t, "bucket"), *key = job_json_str(t, "key");
    int path_style = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "path_style"));
    char key_esc[4096], base[1024];
    if (!region || !bucket || !key || s3_escape_key(key, key_esc, sizeof key_esc) < 0)
        return -1;
    if (endpoint) {
        size_t n = strlen(endpoint);
        while (n && endpoint[n - 1] == '/')
            n--;
        snprintf(base, sizeof base, "%.*s", (int)n, endpoint);
    } else {
        snprintf(base, sizeof base, "https://s3.%.100s.amazonaws.com", region);
    }
    int n;
    if (path_style) {
        n = snprintf(out, outlen, "%s/%s/%s%s%s", base, bucket, key_esc, *query ? "?" : "", query);
    } else {
        /* virtual-hosted style: the bucket goes in front of the host */
        const char *host = strstr(base, "://");
        host = host ? host + 3 : base;
        n = snprintf(out, outlen, "%.*s%s.%s/%s%s%s", (int)(host - base), base, bucket, host,
                     key_esc, *query ? "?" : "", query);
    }
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* Credentials from the environment; returns 0, or -1 with ctx->err set. */
static int s3_credentials(struct target_ctx *ctx, char *userpwd, size_t len,
                          const char **token)
{
    const char *id = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");
    *token = getenv("AWS_SESSION_TOKEN");
    if (!id || !*id || !secret || !*secret) {
        snprintf(ctx->err, sizeof ctx->err,
                 "s3: no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the "
                 "worker's environment");
        return -1;
    }
    snprintf(userpwd, len, "%s:%s", id, secret);
    return 0;
}

/* Copies the text of the first <tag>…</tag> in xml into out; 0 or -1. */
static int s3_xml_text(const char *xml, const char *tag, char *out, size_t outlen)
{
    char open[64], close[64];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *a = strstr(xml, open);
    const char *b = a ? strstr(a, close) : NULL;
    if (!a || !b)
        return -1;
    a += strlen(open);
    snprintf(out, outlen, "%.*s", (int)(b - a), a);
    return 0;
}

/* Fails with S3's own <Error><Code>/<Message>, or the transport error. */
static enum target_rc s3_fail(struct target_ctx *ctx, const char *what)
{
    const struct http_resp *r = &ctx->http->resp;
    if (r->status == 0) {
        snprintf(ctx->err, sizeof ctx->err, "s3: %s: %s", what, r->err);
        return TARGET_RETRY;
    }
    char code[128] = "", msg[300] = "";
    s3_xml_text(r->body, "Code", code, sizeof code);
    s3_xml_text(r->body, "Message", msg, sizeof msg);
    snprintf(ctx->err, sizeof ctx->err, "s3: %s: HTTP %ld%s%s%s%s", what, r->status,
             code[0] ? ": " : "", code, msg[0] ? ": " : "", msg);
    /* S3 asks for a slower pace with 503 SlowDown, and 500 InternalError
     * is worth another try; target_status_rc covers both. */
    return target_status_rc(r->status);
}

static void s3_hash_body(void *arg, const void *data, size_t n)
{
    md5_update(arg, data, n);
}

/*
 * One request, signed by libcurl for the job's region. body may be NULL;
 * src streams [off, off+len). Returns 0 when an answer arrived, -1 when
 * none did, -2 when there are no credentials (ctx->err says so). Takes
 * ownership of extra.
 */
static int s3_request(struct target_ctx *ctx, const struct job *job, const char *method,
                      const char *url, struct curl_slist *extra, const char *body,
                      size_t body_len, struct source *src, long long off, long long len,
                      struct md5 *md5)
{
    char userpwd[512], sigv4[160];
    const char *token;
    if (s3_credentials(ctx, userpwd, sizeof userpwd, &token) < 0) {
        curl_slist_free_all(extra);
        return -2;
    }
    snprintf(sigv4, sizeof sigv4, "aws:amz:%.64s:s3", job_json_str(job->target, "region"));
    struct curl_slist *h = extra;
    h = http_header(h, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    if (token && *token)
        h = http_header(h, "x-amz-security-token: %s", token);
    struct http_req req = {.method = method, .url = url, .headers = h, .body = body,
                           .body_len = body_len, .src = src, .src_off = off, .src_len = len,
                           .stream = src != NULL || (strcmp(method, "PUT") == 0 && !body),
                           .aws_sigv4 = sigv4, .userpwd = userpwd,
                           .on_body = md5 ? s3_hash_body : NULL, .on_body_arg = md5};
    int rc = http_perform(ctx->http, &req);
    curl_slist_free_all(h);
    return rc;
}

static enum target_rc s3_result(struct target_ctx *ctx, const struct job *job, const char *etag)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "bucket", job_json_str(job->target, "bucket"));
    cJSON_AddStringToObject(o, "key", job_json_str(job->target, "key"));
    cJSON_AddStringToObject(o, "etag", etag);
    cJSON_AddNumberToObject(o, "size", (double)job->size);
    free(ctx->result);
    ctx->result = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return ctx->result ? TARGET_OK : TARGET_FATAL;
}

static enum target_rc s3_plan(struct target_ctx *ctx, const struct job *job, long long size)
{
    char url[8192];
    if (s3_url(job, "", url, sizeof url) < 0) {
        snprintf(ctx->err, sizeof ctx->err, "s3: target needs region, bucket and key");
        return TARGET_FATAL;
    }
    long long cs = job->chunk_size;
    if (size > cs * S3_MAX_PARTS) {
        /* S3: at most 10,000 parts: raise the part size, in whole MiB */
        cs = (size + S3_MAX_PARTS - 1) / S3_MAX_PARTS;
        cs = (cs + MiB - 1) / MiB * MiB;
    }
    if (size == 0) {
        /* an empty object: one PUT, no multipart upload */
        int rc = s3_request(ctx, job, "PUT", url, NULL, NULL, 0, NULL, 0, 0, NULL);
        if (rc == -2)
            return TARGET_FATAL;
        if (rc < 0 || ctx->http->resp.status != 200)
            return s3_fail(ctx, "PutObject (empty)");
        char etag[256];
        snprintf(etag, sizeof etag, "%s", ctx->http->resp.etag);
        return s3_result(ctx, &(struct job){.target = job->target, .size = 0}, etag);
    }
    if (size > cs) {
        char curl[8300];
        snprintf(curl, sizeof curl, "%s?uploads", url);
        int rc = s3_request(ctx, job, "POST", curl, NULL, "", 0, NULL, 0, 0, NULL);
        if (rc == -2)
            return TARGET_FATAL;
        if (rc < 0 || ctx->http->resp.status != 200)
            return s3_fail(ctx, "CreateMultipartUpload");
        char id[1024];
        if (s3_xml_text(ctx->http->resp.body, "UploadId", id, sizeof id) < 0 || !id[0]) {
            snprintf(ctx->err, sizeof ctx->err,
                     "s3: CreateMultipartUpload answered 200 without an UploadId");
            return TARGET_FATAL;
        }
        ctx->session = strdup(id);
    }
    /* else: one chunk, a single PutObject (no session) */
    if (cs != job->chunk_size) {
        ctx->chunk_size = cs;
        snprintf(ctx->note, sizeof ctx->note,
                 "chunk size raised to %lld bytes: S3 allows at most 10,000 parts", cs);
    }
    return TARGET_OK;
}

static enum target_rc s3_send(struct target_ctx *ctx, const struct job *job,
                              struct source *src, long long n, long long from, long long end)
{
    char url[8192], query[1400], what[64];
    if (job->session)
        snprintf(query, sizeof query, "partNumber=%lld&uploadId=%.1200s", n + 1, job->session);
    else
        query[0] = '\0';
    if (s3_url(job, query, url, sizeof url) < 0) {
        snprintf(ctx->err, sizeof ctx->err, "s3: target needs region, bucket and key");
        return TARGET_FATAL;
    }
    snprintf(what, sizeof what, job->session ? "UploadPart %lld" : "PutObject", n + 1);
    struct md5 md5;
    md5_init(&md5);
    int rc = s3_request(ctx, job, "PUT", url, NULL, NULL, 0, src, from, end - from, &md5);
    if (rc == -2)
        return TARGET_FATAL;
    if (rc < 0 || ctx->http->resp.status != 200)
        return s3_fail(ctx, what);
    const char *etag = ctx->http->resp.etag;
    if (!etag[0]) {
        snprintf(ctx->err, sizeof ctx->err, "s3: %s answered 200 without an ETag", what);
        return TARGET_FATAL;
    }
    /* S3: an unencrypted (or SSE-S3) part's ETag is the hex MD5 of its
     * bytes. One that is an MD5 and differs means the part arrived
     * damaged: send it again (a part number re-uploaded replaces it). */
    char local[33];
    md5_final_hex(&md5, local);
    size_t elen = strlen(etag);
    const char *hex = etag[0] == '"' ? etag + 1 : etag;
    size_t hlen = etag[0] == '"' && elen >= 2 ? elen - 2 : elen;
    if (hlen == 32 && strspn(hex, "0123456789abcdefABCDEF") >= 32 &&
        strncasecmp(hex, local, 32) != 0) {
        snprintf(ctx->err, sizeof ctx->err,
                 "s3: %s: the ETag %.40s is not the MD5 of the bytes sent (%s)", what, etag, local);
        return TARGET_RETRY;
    }
    free(ctx->part);
    ctx->part = strdup(ctx->http->resp.etag);
    return ctx->part ? TARGET_OK : TARGET_FATAL;
}

/* After CompleteMultipartUpload answered 404 NoSuchUpload: it may have
 * completed already (a redelivered finalize). HEAD the object: the right
 * size means it did. */
static enum target_rc s3_confirm(struct target_ctx *ctx, const struct job *job, const char *url)
{
    int rc = s3_request(ctx, job, "HEAD", url, NULL, NULL, 0, NULL, 0, 0, NULL);
    if (rc < 0 || ctx->http->resp.status != 200 || ctx->http->resp.content_length != job->size) {
        snprintf(ctx->err, sizeof ctx->err,
                 "s3: CompleteMultipartUpload: NoSuchUpload, and the object is %s",
                 rc == 0 && ctx->http->resp.status == 200 ? "not the right size" : "missing");
        return TARGET_FATAL;
    }
    log_info(job->id, -1, "s3: the upload had completed already (object of the right size)");
    char etag[256];
    snprintf(etag, sizeof etag, "%s", ctx->http->resp.etag);
    return s3_result(ctx, job, etag);
}

static enum target_rc s3_finalize(struct target_ctx *ctx, const struct job *job,
                                  char *const *parts, long long nparts)
{
    if (!job->session) /* a single PutObject: its ETag is the object's */
        return s3_result(ctx, job, nparts > 0 ? parts[0] : "");
    char url[8192], query[1300];
    snprintf(query, sizeof query, "uploadId=%.1200s", job->session);
    if (s3_url(job, query, url, sizeof url) < 0) {
        snprintf(ctx->err, sizeof ctx->err, "s3: target needs region, bucket and key");
        return TARGET_FATAL;
    }
    size_t cap = 64 + (size_t)nparts * 320, len = 0;
    char *xml = malloc(cap);
    if (!xml)
        return TARGET_FATAL;
    len += (size_t)snprintf(xml + len, cap - len, "<CompleteMultipartUpload>");
    for (long long i = 0; i < nparts; i++)
        len += (size_t)snprintf(xml + len, cap - len,
                                "<Part><PartNumber>%lld</PartNumber><ETag>%.256s</ETag></Part>",
                                i + 1, parts[i]);
    len += (size_t)snprintf(xml + len, cap - len, "</CompleteMultipartUpload>");
    struct curl_slist *h = http_header(NULL, "Content-Type: application/xml");
    int rc = s3_request(ctx, job, "POST", url, h, xml, len, NULL, 0, 0, NULL);
    free(xml);
    if (rc == -2)
        return TARGET_FATAL;
    long status = ctx->http->resp.status;
    if (rc == 0 && status == 404 && strstr(ctx->http->resp.body, "NoSuchUpload")) {
        char obj[8192];
        s3_url(job, "", obj, sizeof obj);
        return s3_confirm(ctx, job, obj);
    }
    /* S3: Complete can answer 200 with an <Error> body (it failed late) */
    if (rc < 0 || status != 200 || strstr(ctx->http->resp.body, "<Error>"))
        return s3_fail(ctx, "CompleteMultipartUpload");
    char etag[256] = "";
    if (s3_xml_text(ctx->http->resp.body, "ETag", etag, sizeof etag) < 0)
        snprintf(etag, sizeof etag, "%s", ctx->http->resp.etag);
    /* the XML escapes the ETag's quotes */
    for (char *q; (q = strstr(etag, "&quot;"));)
        memmove(q + 1, q + 6, strlen(q + 6) + 1), *q = '"';
    return s3_result(ctx, job, etag);
}

static enum target_rc s3_abort(struct target_ctx *ctx, const struct job *job)
{
    if (!job->session)
        return TARGET_OK;
    char url[8192], query[1300];
    snprintf(query, sizeof query, "uploadId=%.1200s", job->session);
    if (s3_url(job, query, url, sizeof url) < 0)
        return TARGET_OK;
    int rc = s3_request(ctx, job, "DELETE", url, NULL, NULL, 0, NULL, 0, 0, NULL);
    if (rc == -2)
        return TARGET_FATAL;
    long status = ctx->http->resp.status;
    if (rc == 0 && (status == 204 || status == 200 || status == 404))
        return TARGET_OK;
    return s3_fail(ctx, "AbortMultipartUpload");
}

const struct target_driver target_s3 = {
    .type = "s3",
    .parallel = 1,
    .plan = s3_plan,
    .send = s3_send,
    .finalize = s3_finalize,
    .abort = s3_abort,
};
