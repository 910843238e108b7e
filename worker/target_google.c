/*
 * target_google.c — Google resumable uploads: Drive v3 (gdrive) and the
 * Cloud Storage JSON API (gcs). One protocol, two ways to open a session.
 *
 * Two ways in (common/cru.lua, check_google):
 *   - session_url: a session the app initiated; the worker holds no token;
 *   - token + fields: the worker initiates the session itself —
 *       Drive: POST {api}/files?uploadType=resumable with JSON metadata
 *              (name, parents, mimeType) and X-Upload-Content-Length;
 *       GCS:   POST {api}/b/{bucket}/o?uploadType=resumable&name={object};
 *     both answered 200 with the session URI in Location.
 * Then each chunk is one PUT to the session URI with
 *   Content-Range: bytes a-b/TOTAL, Content-Length = b-a+1,
 * answered 308 ("Resume Incomplete", not a redirect) with Range: bytes=0-N
 * (what is persisted; none at all when nothing is) until the last, which
 * gets 200/201 with the file (Drive) or object (GCS) resource. A status
 * query is an empty PUT with Content-Range: bytes *\/TOTAL. Facts from
 * developers.google.com/drive/api/guides/manage-uploads#resumable and
 * cloud.google.com/storage/docs/performing-resumable-uploads, summarised in
 * shared/PROTOCOLS.md ("Google resumable uploads").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "target.h"

#define GDRIVE_API_DEFAULT "https://www.googleapis.com/upload/drive/v3"
#define GCS_API_DEFAULT "https://storage.googleapis.com/upload/storage/v1"
/* Google: every chunk but the last is a multiple of 256 KiB. */
#define GOOGLE_QUANTUM 262144LL

#define GOOGLE_GONE_MSG "the Google upload session is gone (expired after about a week, " \
                        "or cancelled): submit again"

static int google_is_gcs(const struct job *job)
{
    const char *type = job_json_str(job->target, "type");
    return type && strcmp(type, "gcs") == 0;
}

static const char *google_label(const struct job *job)
{
    return google_is_gcs(job) ? "gcs" : "gdrive";
}

/*
 * Writes "label: what: HTTP n: reason: message" into ctx->err from Google's
 * error body {"error": {"code", "message", "errors": [{"reason", …}]}} and
 * classifies the status: no answer, 408, 429 and 5xx are retried, and so is
 * a 403 whose reason is rateLimitExceeded or userRateLimitExceeded (Google:
 * "back off"); anything else is final.
 */
static enum target_rc google_fail(struct target_ctx *ctx, const struct job *job,
                                  const char *what)
{
    struct http_resp *r = &ctx->http->resp;
    const char *label = google_label(job);
    if (r->status == 0) {
        snprintf(ctx->err, sizeof ctx->err, "%s: %s: %s", label, what, r->err);
        return TARGET_RETRY;
    }
    char detail[512] = "";
    cJSON *j = cJSON_Parse(r->body);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const char *msg = job_json_str(e, "message");
    const cJSON *errs = cJSON_GetObjectItemCaseSensitive(e, "errors");
    const char *reason = job_json_str(cJSON_IsArray(errs) ? cJSON_GetArrayItem(errs, 0) : NULL,
                                      "reason");
    if (reason || msg)
        snprintf(detail, sizeof detail, ": %.100s%s%.300s", reason ? reason : "",
                 reason && msg ? ": " : "", msg ? msg : "");
    else if (r->len)
        snprintf(detail, sizeof detail, ": %.200s", r->body);
    cJSON_Delete(j);
    for (char *p = detail; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    snprintf(ctx->err, sizeof ctx->err, "%s: %s: HTTP %ld%s", label, what, r->status, detail);
    if (r->status == 403 && (strstr(r->body, "rateLimitExceeded") ||
                             strstr(r->body, "userRateLimitExceeded")))
        return TARGET_RETRY;
    return target_status_rc(r->status);
}

/* The session answered 404 or 410: it expired, or was cancelled. */
static enum target_rc google_gone(struct target_ctx *ctx, const struct job *job,
                                  const char *what)
{
    snprintf(ctx->err, sizeof ctx->err, "%s: %s: HTTP %ld: " GOOGLE_GONE_MSG,
             google_label(job), what, ctx->http->resp.status);
    return TARGET_FATAL;
}

/*
 * Keeps what a dashboard wants from the final resource — Drive: id, name,
 * mimeType, size, md5Checksum; GCS: name, bucket, size, md5Hash, crc32c —
 * with size as a number (Google writes int64 values as strings), and
 * checks the size against the source when the resource carries one.
 */
static enum target_rc google_take_result(struct target_ctx *ctx, const struct job *job,
                                         long long size)
{
    static const char *const drive_keep[] = {"id", "name", "mimeType", "size", "md5Checksum"};
    static const char *const gcs_keep[] = {"name", "bucket", "size", "md5Hash", "crc32c"};
    const char *const *keep = google_is_gcs(job) ? gcs_keep : drive_keep;
    cJSON *res = cJSON_Parse(ctx->http->resp.body);
    if (!cJSON_IsObject(res)) {
        cJSON_Delete(res);
        snprintf(ctx->err, sizeof ctx->err,
                 "%s: upload completed (HTTP %ld) but the answer is not a resource JSON",
                 google_label(job), ctx->http->resp.status);
        return TARGET_FATAL;
    }
    cJSON *out = cJSON_CreateObject();
    long long got = -1;
    for (size_t i = 0; i < 5; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(res, keep[i]);
        if (!v)
            continue;
        if (strcmp(keep[i], "size") == 0) {
            char *end = NULL;
            if (cJSON_IsString(v))
                got = strtoll(v->valuestring, &end, 10);
            else if (cJSON_IsNumber(v))
                got = (long long)v->valuedouble;
            if ((end && (end == v->valuestring || *end)) || got < 0) {
                got = -2;
                continue;
            }
            cJSON_AddNumberToObject(out, "size", (double)got);
        } else {
            cJSON_AddItemToObject(out, keep[i], cJSON_Duplicate(v, 1));
        }
    }
    free(ctx->result);
    ctx->result = NULL;
    if (got != -1 && got != size) {
        snprintf(ctx->err, sizeof ctx->err,
                 "%s: upload completed but the target reports %lld bytes, the source has %lld",
                 google_label(job), got, size);
    } else {
        ctx->result = cJSON_PrintUnformatted(out);
        if (!ctx->result)
            snprintf(ctx->err, sizeof ctx->err, "%s: out of memory", google_label(job));
    }
    cJSON_Delete(out);
    cJSON_Delete(res);
    return ctx->result ? TARGET_OK : TARGET_FATAL;
}

/* Reads a 308's Range ("bytes=0-N"): N+1 bytes persisted. No header means
 * nothing is (Google); -1 when the header cannot be read. */
static long long google_range_next(const char *range)
{
    if (!range[0])
        return 0;
    if (strncmp(range, "bytes=0-", 8) != 0)
        return -1;
    char *end;
    long long last = strtoll(range + 8, &end, 10);
    if (end == range + 8 || *end || last < 0)
        return -1;
    return last + 1;
}

/* Copies api (or the default) into out without a trailing slash. */
static void google_api(const struct job *job, char *out, size_t outlen)
{
    const char *api = job_json_str(job->target, "api");
    if (!api)
        api = google_is_gcs(job) ? GCS_API_DEFAULT : GDRIVE_API_DEFAULT;
    size_t n = strlen(api);
    if (n && api[n - 1] == '/')
        n--;
    snprintf(out, outlen, "%.*s", (int)(n < 2000 ? n : 2000), api);
}

/*
 * Opens a session with the spec's token: Drive with JSON metadata, GCS with
 * the object name in the query. Google answers 200 with the session URI in
 * Location, stored in ctx->session.
 */
static enum target_rc google_initiate(struct target_ctx *ctx, const struct job *job,
                                      long long size)
{
    const cJSON *t = job->target;
    const char *token = job_json_str(t, "token"), *name = job_json_str(t, "name");
    const char *label = google_label(job);
    char api[2048], url[8192], esc[4096];
    if (!token || !name) {
        snprintf(ctx->err, sizeof ctx->err,
                 "%s: target needs session_url, or token and name to initiate a session", label);
        return TARGET_FATAL;
    }
    google_api(job, api, sizeof api);
    struct curl_slist *h = http_header(NULL, "Authorization: Bearer %s", token);
    h = http_header(h, "X-Upload-Content-Length: %lld", size);
    char *body = NULL;
    enum target_rc ret = TARGET_FATAL;
    if (google_is_gcs(job)) {
        const char *bucket = job_json_str(t, "bucket");
        char bucket_esc[512];
        if (!bucket || http_escape_path(bucket, 0, bucket_esc, sizeof bucket_esc) < 0 ||
            http_escape_path(name, 0, esc, sizeof esc) < 0) {
            snprintf(ctx->err, sizeof ctx->err, "%s: bucket or object name missing or too long",
                     label);
            goto out;
        }
        snprintf(url, sizeof url, "%s/b/%s/o?uploadType=resumable&name=%s", api, bucket_esc, esc);
        /* no metadata: an empty body, Content-Length 0 (curl's form
         * Content-Type suppressed) */
        h = http_header(h, "Content-Type:");
        body = strdup("");
    } else {
        /* Drive: supportsAllDrives lets parents name a shared-drive folder;
         * fields asks the final answer for size and md5Checksum too. */
        snprintf(url, sizeof url, "%s/files?uploadType=resumable&supportsAllDrives=true"
                 "&fields=id,name,mimeType,size,md5Checksum", api);
        const char *mime = job_json_str(t, "mime_type");
        cJSON *meta = cJSON_CreateObject();
        cJSON_AddStringToObject(meta, "name", name);
        const cJSON *parents = cJSON_GetObjectItemCaseSensitive(t, "parents");
        if (cJSON_IsArray(parents))
            cJSON_AddItemToObject(meta, "parents", cJSON_Duplicate(parents, 1));
        if (mime) {
            cJSON_AddStringToObject(meta, "mimeType", mime);
            h = http_header(h, "X-Upload-Content-Type: %s", mime);
        }
        body = cJSON_PrintUnformatted(meta);
        cJSON_Delete(meta);
        h = http_header(h, "Content-Type: application/json; charset=UTF-8");
    }
    if (!h || !body) {
        snprintf(ctx->err, sizeof ctx->err, "%s: out of memory", label);
        goto out;
    }
    struct http_req req = {.method = "POST", .url = url, .headers = h,
                           .body = body, .body_len = strlen(body)};
    int rc = http_perform(ctx->http, &req);
    long status = ctx->http->resp.status;
    if (rc < 0 || (status != 200 && status != 201)) {
        ret = google_fail(ctx, job, "initiating the resumable upload");
        goto out;
    }
    const char *loc = ctx->http->resp.location;
    if (strncmp(loc, "https://", 8) != 0 && strncmp(loc, "http://", 7) != 0) {
        snprintf(ctx->err, sizeof ctx->err,
                 "%s: initiating the resumable upload: HTTP %ld without a session URI in Location",
                 label, status);
        goto out;
    }
    free(ctx->session);
    ctx->session = strdup(loc);
    ret = ctx->session ? TARGET_OK : TARGET_FATAL;
out:
    curl_slist_free_all(h);
    free(body);
    return ret;
}

/*
 * Reads the answer to a PUT on the session (a chunk or a status query):
 * 200/201 → complete: ctx->result, *next = total; 308 "Resume Incomplete"
 * (not a redirect: http.c follows none) → *next from its Range, the first
 * byte not persisted (0 without a Range); 404/410 → the session is gone;
 * anything else fails or retries by status.
 */
static enum target_rc google_answer(struct target_ctx *ctx, const struct job *job,
                                    const char *what, int rc, long long total,
                                    long long *next)
{
    long status = ctx->http->resp.status;
    if (rc < 0)
        return google_fail(ctx, job, what);
    if (status == 200 || status == 201) {
        *next = total;
        return google_take_result(ctx, job, total);
    }
    if (status == 404 || status == 410)
        return google_gone(ctx, job, what);
    if (status != 308)
        return google_fail(ctx, job, what);
    *next = google_range_next(ctx->http->resp.range);
    if (*next < 0 || *next > total) {
        snprintf(ctx->err, sizeof ctx->err, "%s: %s: HTTP 308 with an unusable Range '%.60s'",
                 google_label(job), what, ctx->http->resp.range);
        return TARGET_FATAL;
    }
    return TARGET_OK;
}

/*
 * The status query: an empty PUT with Content-Range: bytes *\/TOTAL.
 * 308 → ctx->next from Range; 200/201 → the upload is complete (also how
 * an empty file is finished): ctx->result and ctx->next = TOTAL.
 */
static enum target_rc google_status(struct target_ctx *ctx, const struct job *job,
                                    const char *session, long long total)
{
    const char *what = total ? "upload status query" : "finishing an empty upload";
    struct curl_slist *h = http_header(NULL, "Content-Range: bytes */%lld", total);
    if (!h) {
        snprintf(ctx->err, sizeof ctx->err, "%s: out of memory", google_label(job));
        return TARGET_FATAL;
    }
    /* stream of 0 bytes: curl sends Content-Length: 0 */
    struct http_req req = {.method = "PUT", .url = session, .headers = h,
                           .stream = 1, .src_len = 0};
    int rc = http_perform(ctx->http, &req);
    curl_slist_free_all(h);
    return google_answer(ctx, job, what, rc, total, &ctx->next);
}

static enum target_rc google_plan(struct target_ctx *ctx, const struct job *job,
                                  long long size)
{
    const char *session_url = job_json_str(job->target, "session_url");
    enum target_rc rc;
    if (session_url) {
        free(ctx->session);
        ctx->session = strdup(session_url);
        rc = ctx->session ? TARGET_OK : TARGET_FATAL;
    } else {
        rc = google_initiate(ctx, job, size);
    }
    /* Google: an empty file is finished by an empty PUT, bytes *\/0 */
    if (rc == TARGET_OK && size == 0)
        rc = google_status(ctx, job, ctx->session, 0);
    return rc;
}

static enum target_rc google_query(struct target_ctx *ctx, const struct job *job,
                                   struct source *src)
{
    (void)src;
    if (!job->session) {
        snprintf(ctx->err, sizeof ctx->err, "%s: job has no upload session", google_label(job));
        return TARGET_FATAL;
    }
    return google_status(ctx, job, job->session, job->size);
}

/*
 * Sends [from, end) as one PUT, more when the server persists only part of
 * it: a 308's Range says where to go on, possibly inside what was just
 * sent (Google: "do not assume that the server received all bytes sent").
 * Every PUT but the last must be a multiple of 256 KiB, so a resume from
 * inside a chunk sends up to the next multiple past end; ctx->next tells
 * the worker where the next chunk starts.
 */
static enum target_rc google_send(struct target_ctx *ctx, const struct job *job,
                                  struct source *src, long long n, long long from, long long end)
{
    (void)n;
    const char *label = google_label(job);
    if (!job->session) {
        snprintf(ctx->err, sizeof ctx->err, "%s: job has no upload session", label);
        return TARGET_FATAL;
    }
    long long size = job->size, next = from;
    for (int round = 0; next < end; round++) {
        long long stop = target_fragment_end(next, end, size, GOOGLE_QUANTUM, 0);
        if (round > 64) {
            snprintf(ctx->err, sizeof ctx->err,
                     "%s: the server keeps persisting nothing from byte %lld", label, next);
            return TARGET_FATAL;
        }
        char what[128];
        snprintf(what, sizeof what, "PUT bytes %lld-%lld/%lld", next, stop - 1, size);
        /* The session URI authorizes the upload (Cloud Storage says so; the
         * Drive guide sends no token on these PUTs either): no
         * Authorization header, so a worker given only a session_url needs
         * no token. */
        struct curl_slist *h = http_header(NULL, "Content-Range: bytes %lld-%lld/%lld",
                                           next, stop - 1, size);
        if (!h) {
            snprintf(ctx->err, sizeof ctx->err, "%s: out of memory", label);
            return TARGET_FATAL;
        }
        struct http_req req = {.method = "PUT", .url = job->session, .headers = h,
                               .src = src, .src_off = next, .src_len = stop - next,
                               .stream = 1};
        int rc = http_perform(ctx->http, &req);
        curl_slist_free_all(h);
        long long got;
        enum target_rc arc = google_answer(ctx, job, what, rc, size, &got);
        if (arc != TARGET_OK)
            return arc;
        if (ctx->result) {
            if (stop != size) {
                snprintf(ctx->err, sizeof ctx->err,
                         "%s: %s: upload completed before the last byte", label, what);
                return TARGET_FATAL;
            }
            ctx->next = size;
            return TARGET_OK;
        }
        if (got == size) {
            /* every byte is there but no resource came back: ask again */
            enum target_rc qrc = google_status(ctx, job, job->session, size);
            if (qrc != TARGET_OK)
                return qrc;
            if (ctx->result)
                return TARGET_OK;
            snprintf(ctx->err, sizeof ctx->err,
                     "%s: %s: the server holds every byte but did not return the resource",
                     label, what);
            return TARGET_FATAL;
        }
        if (got < stop)
            log_info(job->id, n, "%s: the server persisted bytes up to %lld only; going on "
                     "from there", what, got);
        next = got;
    }
    ctx->next = next;
    return TARGET_OK;
}

/* Cloud Storage: DELETE on the session URI cancels it and answers 499. */
static enum target_rc gcs_abort(struct target_ctx *ctx, const struct job *job)
{
    const char *url = job->session ? job->session : job_json_str(job->target, "session_url");
    if (!url)
        return TARGET_OK;
    struct curl_slist *h = http_header(NULL, "Content-Length: 0");
    struct http_req req = {.method = "DELETE", .url = url, .headers = h};
    int rc = http_perform(ctx->http, &req);
    curl_slist_free_all(h);
    if (rc < 0)
        return google_fail(ctx, job, "DELETE upload session");
    long status = ctx->http->resp.status;
    /* 499: cancelled; 404/410: already gone (expired, completed, cancelled) */
    if (status == 499 || status == 204 || status == 200 || status == 404 || status == 410)
        return TARGET_OK;
    return google_fail(ctx, job, "DELETE upload session");
}

static enum target_rc gdrive_abort(struct target_ctx *ctx, const struct job *job)
{
    /* Drive documents no way to cancel a resumable session: it expires on
     * its own (about a week), and the file exists only once the last byte
     * lands, so there is nothing to undo. */
    (void)ctx, (void)job;
    return TARGET_OK;
}

const struct target_driver target_gdrive = {
    .type = "gdrive",
    .parallel = 0,
    .plan = google_plan,
    .send = google_send,
    .query = google_query,
    .abort = gdrive_abort,
};

const struct target_driver target_gcs = {
    .type = "gcs",
    .parallel = 0,
    .plan = google_plan,
    .send = google_send,
    .query = google_query,
    .abort = gcs_abort,
};
