/*
 * target_graph.c — Microsoft Graph upload sessions (SharePoint, OneDrive).
 *
 * Two ways in (README "Job spec"):
 *   - upload_url: a session the app created; the worker holds no token;
 *   - drive_id | site_id | me, with path and token: the worker calls
 *     createUploadSession itself (+ conflict: fail|replace|rename).
 * Then each chunk is one PUT of a fragment to the upload URL:
 *   Content-Range: bytes a-b/TOTAL, Content-Length = b-a+1,
 * answered 202 {nextExpectedRanges} until the last, which gets 200/201 with
 * the driveItem. Facts from the Graph docs (driveitem-createuploadsession,
 * resources/uploadsession), summarised in shared/PROTOCOLS.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checksum.h"
#include "log.h"
#include "target.h"

#define GRAPH_API_DEFAULT "https://graph.microsoft.com/v1.0"
/* Graph: fragments are multiples of 320 KiB (but the last), at most 60 MiB. */
#define GRAPH_FRAGMENT 327680LL
#define GRAPH_MAX_FRAGMENT (60LL * 1024 * 1024)

/* Writes the target's own error text ("code: message") into ctx->err after
 * what. Graph errors are {"error": {"code": …, "message": …}}. */
static enum target_rc graph_fail(struct target_ctx *ctx, const char *what)
{
    struct http_resp *r = &ctx->http->resp;
    if (r->status == 0) {
        snprintf(ctx->err, sizeof ctx->err, "graph: %s: %s", what, r->err);
        return TARGET_RETRY;
    }
    char detail[512] = "";
    cJSON *j = cJSON_Parse(r->body);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const char *code = job_json_str(e, "code"), *msg = job_json_str(e, "message");
    if (code || msg)
        snprintf(detail, sizeof detail, ": %s%s%s", code ? code : "",
                 code && msg ? ": " : "", msg ? msg : "");
    else if (r->len)
        snprintf(detail, sizeof detail, ": %.200s", r->body);
    cJSON_Delete(j);
    for (char *p = detail; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    snprintf(ctx->err, sizeof ctx->err, "graph: %s: HTTP %ld%s", what, r->status, detail);
    return target_status_rc(r->status);
}

/* Keeps what a dashboard wants from the final driveItem. */
static enum target_rc graph_take_result(struct target_ctx *ctx)
{
    cJSON *item = cJSON_Parse(ctx->http->resp.body);
    if (!cJSON_IsObject(item)) {
        cJSON_Delete(item);
        snprintf(ctx->err, sizeof ctx->err,
                 "graph: upload completed (HTTP %ld) but the answer is not a driveItem JSON",
                 ctx->http->resp.status);
        return TARGET_FATAL;
    }
    cJSON *out = cJSON_CreateObject();
    static const char *const keep[] = {"id", "name", "size", "webUrl"};
    for (size_t i = 0; i < 4; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(item, keep[i]);
        if (v)
            cJSON_AddItemToObject(out, keep[i], cJSON_Duplicate(v, 1));
    }
    const cJSON *file = cJSON_GetObjectItemCaseSensitive(item, "file");
    const cJSON *hashes = cJSON_GetObjectItemCaseSensitive(file, "hashes");
    const char *qx = job_json_str(hashes, "quickXorHash");
    if (qx)
        cJSON_AddStringToObject(out, "quickXorHash", qx);
    free(ctx->result);
    ctx->result = cJSON_PrintUnformatted(out);
    cJSON_Delete(out);
    cJSON_Delete(item);
    return ctx->result ? TARGET_OK : TARGET_FATAL;
}

/* Builds "{api}/drives/{id}/root:/{path}{suffix}" (or /sites/{id}/drive,
 * /me/drive) for the spec's drive fields; suffix is e.g.
 * ":/createUploadSession", or "" for the item itself. */
static int graph_item_url(const cJSON *t, const char *suffix, char *out, size_t outlen)
{
    const char *api = job_json_str(t, "api");
    const char *drive = job_json_str(t, "drive_id"), *site = job_json_str(t, "site_id");
    const char *path = job_json_str(t, "path");
    char id_esc[512], path_esc[4096], base[700];
    if (!path || http_escape_path(path, 1, path_esc, sizeof path_esc) < 0)
        return -1;
    if (drive) {
        if (http_escape_path(drive, 0, id_esc, sizeof id_esc) < 0)
            return -1;
        snprintf(base, sizeof base, "/drives/%s", id_esc);
    } else if (site) {
        if (http_escape_path(site, 0, id_esc, sizeof id_esc) < 0)
            return -1;
        snprintf(base, sizeof base, "/sites/%s/drive", id_esc);
    } else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "me"))) {
        snprintf(base, sizeof base, "/me/drive");
    } else {
        return -1;
    }
    size_t alen = strlen(api ? api : GRAPH_API_DEFAULT);
    if (api && alen && api[alen - 1] == '/')
        alen--;
    int n = snprintf(out, outlen, "%.*s%s/root:/%s%s", (int)alen,
                     api ? api : GRAPH_API_DEFAULT, base, path_esc, suffix);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* An empty file: the simple upload (PUT …:/content) with the token. */
static enum target_rc graph_put_empty(struct target_ctx *ctx, const cJSON *t)
{
    const char *token = job_json_str(t, "token");
    const char *conflict = job_json_str(t, "conflict");
    char url[8192], suffix[128] = ":/content";
    if (conflict)
        snprintf(suffix, sizeof suffix, ":/content?@microsoft.graph.conflictBehavior=%s", conflict);
    if (!token || graph_item_url(t, suffix, url, sizeof url) < 0) {
        snprintf(ctx->err, sizeof ctx->err,
                 "graph: the source is empty (0 bytes) and an upload session needs at "
                 "least one byte; give drive_id/site_id/me, path and token instead of "
                 "upload_url so the worker can use the simple upload");
        return TARGET_FATAL;
    }
    struct curl_slist *h = http_header(NULL, "Authorization: Bearer %s", token);
    h = http_header(h, "Content-Type: application/octet-stream");
    struct http_req req = {.method = "PUT", .url = url, .headers = h, .stream = 1,
                           .src_len = 0};
    int rc = http_perform(ctx->http, &req);
    curl_slist_free_all(h);
    if (rc < 0 || (ctx->http->resp.status != 200 && ctx->http->resp.status != 201))
        return graph_fail(ctx, "simple upload of an empty file");
    return graph_take_result(ctx);
}

static enum target_rc graph_plan(struct target_ctx *ctx, const struct job *job,
                                 long long size)
{
    const cJSON *t = job->target;
    const char *upload_url = job_json_str(t, "upload_url");
    if (size == 0)
        return graph_put_empty(ctx, upload_url ? NULL : t);
    if (upload_url) {
        free(ctx->session);
        ctx->session = strdup(upload_url);
        return ctx->session ? TARGET_OK : TARGET_FATAL;
    }
    const char *token = job_json_str(t, "token");
    char url[8192];
    if (!token || graph_item_url(t, ":/createUploadSession", url, sizeof url) < 0) {
        snprintf(ctx->err, sizeof ctx->err,
                 "graph: target needs upload_url, or drive_id/site_id/me with path and token");
        return TARGET_FATAL;
    }
    const char *conflict = job_json_str(t, "conflict");
    char body[256] = "{}";
    if (conflict)
        snprintf(body, sizeof body,
                 "{\"item\":{\"@microsoft.graph.conflictBehavior\":\"%s\"}}", conflict);
    struct curl_slist *h = http_header(NULL, "Authorization: Bearer %s", token);
    h = http_header(h, "Content-Type: application/json");
    struct http_req req = {.method = "POST", .url = url, .headers = h,
                           .body = body, .body_len = strlen(body)};
    int rc = http_perform(ctx->http, &req);
    curl_slist_free_all(h);
    if (rc < 0 || ctx->http->resp.status != 200)
        return graph_fail(ctx, "createUploadSession");
    cJSON *j = cJSON_Parse(ctx->http->resp.body);
    const char *u = job_json_str(j, "uploadUrl");
    if (u && (strncmp(u, "https://", 8) == 0 || strncmp(u, "http://", 7) == 0)) {
        free(ctx->session);
        ctx->session = strdup(u);
    } else {
        snprintf(ctx->err, sizeof ctx->err,
                 "graph: createUploadSession answered 200 without an uploadUrl");
    }
    cJSON_Delete(j);
    return ctx->session ? TARGET_OK : TARGET_FATAL;
}

/* Reads the first start offset of nextExpectedRanges ("26-" or "26-99"),
 * or -1 when the answer has none. */
static long long graph_next_expected(const char *body)
{
    cJSON *j = cJSON_Parse(body);
    const cJSON *ranges = cJSON_GetObjectItemCaseSensitive(j, "nextExpectedRanges");
    const cJSON *first = cJSON_IsArray(ranges) ? cJSON_GetArrayItem(ranges, 0) : NULL;
    long long start = -1;
    if (cJSON_IsString(first)) {
        char *end;
        start = strtoll(first->valuestring, &end, 10);
        if (end == first->valuestring || *end != '-')
            start = -1;
    }
    cJSON_Delete(j);
    return start;
}

/*
 * The upload session is gone (404). If the worker that sent the last
 * fragment was lost before it recorded Graph's answer, the file is
 * complete at the target: with a token, look the item up by path and take
 * it as the result when its size and QuickXorHash match the source.
 */
static enum target_rc graph_recover(struct target_ctx *ctx, const struct job *job,
                                    struct source *src)
{
    const cJSON *t = job->target;
    const char *token = job_json_str(t, "token");
    char url[8192], what[] = "upload session status: HTTP 404, session gone";
    if (!token || graph_item_url(t, "", url, sizeof url) < 0) {
        snprintf(ctx->err, sizeof ctx->err,
                 "graph: %s (expired, cancelled, or completed while its worker was lost; "
                 "with only an upload_url the worker cannot check the item)", what);
        return TARGET_FATAL;
    }
    struct curl_slist *h = http_header(NULL, "Authorization: Bearer %s", token);
    struct http_req req = {.method = "GET", .url = url, .headers = h};
    int rc = http_perform(ctx->http, &req);
    curl_slist_free_all(h);
    long status = ctx->http->resp.status;
    if (rc < 0 || (status != 200 && status != 404))
        return graph_fail(ctx, "looking up the item after the session was gone");
    cJSON *item = status == 200 ? cJSON_Parse(ctx->http->resp.body) : NULL;
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(item, "size");
    const cJSON *hashes = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(item, "file"), "hashes");
    const char *remote = job_json_str(hashes, "quickXorHash");
    char local[QXH_B64_LEN] = "";
    int match = cJSON_IsNumber(size) && (long long)size->valuedouble == job->size && remote &&
                qxh_source(src, local) == 0 && strcmp(local, remote) == 0;
    cJSON_Delete(item);
    if (!match) {
        snprintf(ctx->err, sizeof ctx->err,
                 "graph: %s, and the item at the target path %s (the session expired or "
                 "was cancelled: submit the job again)",
                 what, status == 404 ? "does not exist" : "does not match the source");
        return TARGET_FATAL;
    }
    log_info(job->id, -1, "upload session gone but the item matches the source "
             "(size and QuickXorHash): the upload had completed");
    ctx->next = job->size;
    return graph_take_result(ctx);
}

/* GET on the upload URL: the first byte the session still lacks. */
static enum target_rc graph_query(struct target_ctx *ctx, const struct job *job,
                                  struct source *src)
{
    if (!job->session) {
        snprintf(ctx->err, sizeof ctx->err, "graph: job has no upload session");
        return TARGET_FATAL;
    }
    struct http_req req = {.method = "GET", .url = job->session};
    int rc = http_perform(ctx->http, &req);
    if (rc == 0 && ctx->http->resp.status == 404)
        return graph_recover(ctx, job, src);
    if (rc < 0 || ctx->http->resp.status != 200)
        return graph_fail(ctx, "upload session status");
    ctx->next = graph_next_expected(ctx->http->resp.body);
    if (ctx->next < 0) {
        snprintf(ctx->err, sizeof ctx->err,
                 "graph: upload session status: HTTP 200 without nextExpectedRanges");
        return TARGET_FATAL;
    }
    return TARGET_OK;
}

/*
 * Sends [from, end) as fragments: PUT upload URL with Content-Range. Graph
 * rules: each fragment but the last is a multiple of 320 KiB and at most
 * 60 MiB, and fragments go in order. A resume from inside a chunk (the
 * server kept part of a fragment) therefore sends a little past end, so the
 * fragment length stays a multiple of 320 KiB; ctx->next tells the worker
 * where the next chunk starts. 416 (bytes already there) is answered by a
 * status query and the send goes on from what the server holds.
 */
static enum target_rc graph_send(struct target_ctx *ctx, const struct job *job,
                                 struct source *src, long long n, long long from, long long end)
{
    (void)n;
    if (!job->session) {
        snprintf(ctx->err, sizeof ctx->err, "graph: job has no upload session");
        return TARGET_FATAL;
    }
    long long size = job->size, next = from;
    for (int round = 0; next < end; round++) {
        long long got,
            stop = target_fragment_end(next, end, size, GRAPH_FRAGMENT, GRAPH_MAX_FRAGMENT);
        if (round > 64) {
            snprintf(ctx->err, sizeof ctx->err,
                     "graph: the server keeps refusing bytes from %lld", next);
            return TARGET_FATAL;
        }
        char what[128];
        snprintf(what, sizeof what, "PUT bytes %lld-%lld/%lld", next, stop - 1, size);
        /* Graph: the upload URL is pre-authenticated; an Authorization
         * header on it may be refused with 401, so none is sent. */
        struct curl_slist *h = http_header(NULL, "Content-Range: bytes %lld-%lld/%lld",
                                           next, stop - 1, size);
        struct http_req req = {.method = "PUT", .url = job->session, .headers = h,
                               .src = src, .src_off = next, .src_len = stop - next,
                               .stream = 1};
        int rc = http_perform(ctx->http, &req);
        curl_slist_free_all(h);
        long status = ctx->http->resp.status;
        if (rc < 0)
            return graph_fail(ctx, what);
        if (status == 200 || status == 201) {
            if (stop != size) {
                snprintf(ctx->err, sizeof ctx->err,
                         "graph: %s: HTTP %ld: upload completed before the last fragment",
                         what, status);
                return TARGET_FATAL;
            }
            ctx->next = size;
            return graph_take_result(ctx);
        }
        if (status == 416) {
            /* Graph: bytes the server already has; ask what it lacks */
            enum target_rc qrc = graph_query(ctx, job, src);
            if (qrc != TARGET_OK)
                return qrc;
            if (ctx->result)
                return TARGET_OK; /* it had completed meanwhile */
            got = ctx->next;
        } else if (status == 202) {
            got = graph_next_expected(ctx->http->resp.body);
        } else {
            return graph_fail(ctx, what);
        }
        if (got < 0 || got > size) {
            snprintf(ctx->err, sizeof ctx->err,
                     "graph: %s: HTTP %ld without a usable nextExpectedRanges", what, status);
            return TARGET_FATAL;
        }
        if (got == size) {
            snprintf(ctx->err, sizeof ctx->err,
                     "graph: %s: the server holds every byte but did not return the item", what);
            return TARGET_FATAL;
        }
        next = got;
    }
    ctx->next = next;
    return TARGET_OK;
}

static enum target_rc graph_abort(struct target_ctx *ctx, const struct job *job)
{
    /* the session the worker opened, or the one the app gave */
    const char *url = job->session ? job->session : job_json_str(job->target, "upload_url");
    if (!url)
        return TARGET_OK;
    struct http_req req = {.method = "DELETE", .url = url};
    if (http_perform(ctx->http, &req) < 0)
        return graph_fail(ctx, "DELETE upload session");
    long status = ctx->http->resp.status;
    /* 404: already gone (expired, completed, or deleted before) */
    if (status == 204 || status == 200 || status == 404)
        return TARGET_OK;
    return graph_fail(ctx, "DELETE upload session");
}

const struct target_driver target_graph = {
    .type = "graph",
    .parallel = 0,
    .plan = graph_plan,
    .send = graph_send,
    .query = graph_query,
    .abort = graph_abort,
};
