/*
 * target_azure.c — Azure Blob Storage block blobs, through a blob URL that
 * carries a SAS (the worker holds no account key).
 *
 * A parallel target: there is no session to open. Each chunk n is one Put
 * Block (PUT {blob_url}&comp=block&blockid=ID, body = the chunk), in any
 * order and side by side; finalize commits them with one Put Block List
 * (PUT {blob_url}&comp=blocklist, an XML list of the ids in file order).
 * An empty file is one Put Blob. Facts from the Azure docs (put-block,
 * put-block-list, put-blob), summarised in shared/PROTOCOLS.md.
 *
 * Block ids are derived from the chunk index alone (base64 of the index as
 * 10 zero-padded decimal digits), so a re-sent chunk reuses its id and
 * simply replaces the uncommitted block.
 *
 * The SAS is a secret: every URL that reaches ctx->err goes through
 * log_redact_url, and Azure's error text is reduced to its Code and
 * Message (never the AuthenticationErrorDetail, which echoes signed fields).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checksum.h"
#include "log.h"
#include "target.h"

/* Azure: a recent service version; 2019-12-12 and later allow blocks of
 * 4000 MiB. The SAS carries its own sv for authorization. */
#define AZURE_VERSION "2021-08-06"
/* Azure: a block blob has at most 50,000 committed blocks. */
#define AZURE_MAX_BLOCKS 50000LL
#define AZURE_MAX_BLOCK (4000LL * 1024 * 1024)
#define AZURE_MIB (1024LL * 1024)
/* Azure: block ids are base64 of at most 64 bytes, all of one length per
 * blob: 10 decimal digits → 16 base64 characters. */
#define AZURE_ID_DIGITS 10
#define AZURE_ID_LEN 16
#define AZURE_URL_MAX 8192

static const char AZURE_XML_HEAD[] = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>";
static const char AZURE_XML_TAIL[] = "</BlockList>";

/* Copies the text of the first <tag>…</tag> in xml into out (spaces for
 * line breaks); returns 0, or -1 when there is none. Azure's error bodies
 * are small and flat, so no parser is needed. */
static int azure_xml_text(const char *xml, const char *tag, char *out, size_t outlen)
{
    char open[32], close[32];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *a = strstr(xml, open);
    if (!a)
        return -1;
    a += strlen(open);
    const char *b = strstr(a, close);
    if (!b)
        return -1;
    snprintf(out, outlen, "%.*s", (int)(b - a), a);
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return 0;
}

/* Writes "azure: what (url without its SAS): HTTP status: Code: Message"
 * into ctx->err and says whether the failure is worth a retry. Azure errors
 * are <Error><Code>…</Code><Message>…</Message></Error>. */
static enum target_rc azure_fail(struct target_ctx *ctx, const char *what, const char *url)
{
    struct http_resp *r = &ctx->http->resp;
    char where[512];
    log_redact_url(url, 0, where, sizeof where);
    if (r->status == 0) {
        snprintf(ctx->err, sizeof ctx->err, "azure: %s (%.300s): %.400s", what, where, r->err);
        return TARGET_RETRY;
    }
    char code[128] = "", msg[400] = "", detail[560] = "";
    int has_code = azure_xml_text(r->body, "Code", code, sizeof code) == 0;
    int has_msg = azure_xml_text(r->body, "Message", msg, sizeof msg) == 0;
    if (has_code || has_msg)
        snprintf(detail, sizeof detail, ": %s%s%s", code, has_code && has_msg ? ": " : "", msg);
    snprintf(ctx->err, sizeof ctx->err, "azure: %s (%.300s): HTTP %ld%s", what, where,
             r->status, detail);
    return target_status_rc(r->status);
}

/* Builds "{blob_url}&{query}" into out: the blob URL already carries the
 * SAS query. Returns 0, or -1 when it does not fit. */
static int azure_url(const char *blob_url, const char *query, char *out, size_t outlen)
{
    size_t len = strlen(blob_url);
    const char *sep = len && (blob_url[len - 1] == '?' || blob_url[len - 1] == '&') ? "" : "&";
    int n = snprintf(out, outlen, "%s%s%s", blob_url, sep, query);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* The spec's blob URL, or NULL with ctx->err set. cru_submit checked it. */
static const char *azure_blob_url(struct target_ctx *ctx, const struct job *job)
{
    const char *url = job_json_str(job->target, "blob_url");
    if (!url || !strchr(url, '?')) {
        snprintf(ctx->err, sizeof ctx->err,
                 "azure: target needs blob_url with a SAS (a query string with sig=...)");
        return NULL;
    }
    if (strlen(url) > AZURE_URL_MAX - 128) {
        snprintf(ctx->err, sizeof ctx->err, "azure: blob_url is longer than %d bytes",
                 AZURE_URL_MAX - 128);
        return NULL;
    }
    return url;
}

/* Block id of chunk n: base64 of n as AZURE_ID_DIGITS zero-padded digits,
 * so every id of a blob has the same length. out holds AZURE_ID_LEN + 1. */
static void azure_block_id(long long n, char out[AZURE_ID_LEN + 1])
{
    char digits[AZURE_ID_DIGITS + 1];
    /* n < 50,000 + 1 in practice; the modulo only bounds the width */
    snprintf(digits, sizeof digits, "%0*llu", AZURE_ID_DIGITS,
             (unsigned long long)n % 10000000000ULL);
    checksum_base64((const uint8_t *)digits, AZURE_ID_DIGITS, out);
}

/* Keeps the answer's ETag, and the size, as the job's result. */
static enum target_rc azure_take_result(struct target_ctx *ctx, long long size,
                                        long long blocks)
{
    cJSON *out = cJSON_CreateObject();
    if (ctx->http->resp.etag[0])
        cJSON_AddStringToObject(out, "etag", ctx->http->resp.etag);
    cJSON_AddNumberToObject(out, "size", (double)size);
    cJSON_AddNumberToObject(out, "blocks", (double)blocks);
    free(ctx->result);
    ctx->result = cJSON_PrintUnformatted(out);
    cJSON_Delete(out);
    if (!ctx->result) {
        snprintf(ctx->err, sizeof ctx->err, "azure: out of memory building the result");
        return TARGET_FATAL;
    }
    return TARGET_OK;
}

/* An empty file: one Put Blob with no body (a block list of nothing would
 * do too, but Put Blob is the documented way to create a blob whole). */
static enum target_rc azure_put_empty(struct target_ctx *ctx, const char *blob_url)
{
    struct curl_slist *h = http_header(NULL, "x-ms-version: " AZURE_VERSION);
    h = http_header(h, "x-ms-blob-type: BlockBlob");
    struct http_req req = {.method = "PUT", .url = blob_url, .headers = h, .stream = 1,
                           .src_len = 0};
    int rc = http_perform(ctx->http, &req);
    curl_slist_free_all(h);
    if (rc < 0 || ctx->http->resp.status != 201)
        return azure_fail(ctx, "Put Blob of an empty file", blob_url);
    return azure_take_result(ctx, 0, 0);
}

/* No session: only the block count rule, and the empty file sent whole. */
static enum target_rc azure_plan(struct target_ctx *ctx, const struct job *job,
                                 long long size)
{
    const char *blob_url = azure_blob_url(ctx, job);
    if (!blob_url)
        return TARGET_FATAL;
    free(ctx->session);
    ctx->session = NULL;
    if (size == 0)
        return azure_put_empty(ctx, blob_url);
    if (job_chunk_count(size, job->chunk_size) <= AZURE_MAX_BLOCKS)
        return TARGET_OK;
    /* Azure: at most 50,000 blocks; the smallest whole number of MiB that fits */
    long long cs = (size + AZURE_MAX_BLOCKS - 1) / AZURE_MAX_BLOCKS;
    cs = (cs + AZURE_MIB - 1) / AZURE_MIB * AZURE_MIB;
    if (cs > AZURE_MAX_BLOCK) {
        snprintf(ctx->err, sizeof ctx->err,
                 "azure: the source (%lld bytes) is larger than a block blob can be "
                 "(50,000 blocks of at most 4000 MiB)", size);
        return TARGET_FATAL;
    }
    ctx->chunk_size = cs;
    snprintf(ctx->note, sizeof ctx->note,
             "chunk size raised to %lld bytes: Azure allows at most 50,000 blocks", cs);
    return TARGET_OK;
}

/* Put Block: the whole chunk [from, end) under chunk n's id. A retry
 * re-sends it under the same id, which replaces the uncommitted block. */
static enum target_rc azure_send(struct target_ctx *ctx, const struct job *job,
                                 struct source *src, long long n, long long from, long long end)
{
    const char *blob_url = azure_blob_url(ctx, job);
    if (!blob_url)
        return TARGET_FATAL;
    char id[AZURE_ID_LEN + 1], id_esc[3 * AZURE_ID_LEN + 1], query[128], url[AZURE_URL_MAX];
    azure_block_id(n, id);
    /* Azure: the base64 id must be URL-encoded (+, / and =) */
    http_escape_path(id, 0, id_esc, sizeof id_esc);
    snprintf(query, sizeof query, "comp=block&blockid=%s", id_esc);
    azure_url(blob_url, query, url, sizeof url);
    char what[64];
    snprintf(what, sizeof what, "Put Block %lld", n);
    struct curl_slist *h = http_header(NULL, "x-ms-version: " AZURE_VERSION);
    struct http_req req = {.method = "PUT", .url = url, .headers = h, .src = src,
                           .src_off = from, .src_len = end - from, .stream = 1};
    int rc = http_perform(ctx->http, &req);
    curl_slist_free_all(h);
    if (rc < 0 || ctx->http->resp.status != 201)
        return azure_fail(ctx, what, url);
    free(ctx->part);
    ctx->part = strdup(id);
    if (!ctx->part) {
        snprintf(ctx->err, sizeof ctx->err, "azure: out of memory");
        return TARGET_RETRY;
    }
    return TARGET_OK;
}

/* A part must be a block id this driver sent: AZURE_ID_LEN base64
 * characters (which also keeps it safe to put in XML). */
static int azure_part_valid(const char *part)
{
    if (!part || strlen(part) != AZURE_ID_LEN)
        return 0;
    for (const char *p = part; *p; p++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", *p))
            return 0;
    return 1;
}

/*
 * Put Block List: commits the parts in chunk order. <Latest> takes the
 * uncommitted block when there is one, else the committed one, so running
 * this again after it succeeded commits the same blocks again (Azure
 * accepts it; the ETag changes, the content does not).
 */
static enum target_rc azure_finalize(struct target_ctx *ctx, const struct job *job,
                                     char *const *parts, long long nparts)
{
    const char *blob_url = azure_blob_url(ctx, job);
    if (!blob_url)
        return TARGET_FATAL;
    for (long long i = 0; i < nparts; i++)
        if (!azure_part_valid(parts[i])) {
            snprintf(ctx->err, sizeof ctx->err,
                     "azure: part of chunk %lld is not a block id this driver sent", i);
            return TARGET_FATAL;
        }
    /* 50,000 ids make about 1.6 MB of XML: built once, in one buffer */
    static const char open[] = "<Latest>", close[] = "</Latest>";
    size_t each = sizeof open - 1 + AZURE_ID_LEN + sizeof close - 1;
    size_t cap = sizeof AZURE_XML_HEAD + sizeof AZURE_XML_TAIL + (size_t)nparts * each;
    char *body = malloc(cap);
    if (!body) {
        snprintf(ctx->err, sizeof ctx->err, "azure: out of memory for a list of %lld blocks",
                 nparts);
        return TARGET_RETRY;
    }
    size_t len = 0;
    memcpy(body, AZURE_XML_HEAD, sizeof AZURE_XML_HEAD - 1);
    len += sizeof AZURE_XML_HEAD - 1;
    for (long long i = 0; i < nparts; i++) {
        memcpy(body + len, open, sizeof open - 1);
        len += sizeof open - 1;
        memcpy(body + len, parts[i], AZURE_ID_LEN);
        len += AZURE_ID_LEN;
        memcpy(body + len, close, sizeof close - 1);
        len += sizeof close - 1;
    }
    memcpy(body + len, AZURE_XML_TAIL, sizeof AZURE_XML_TAIL - 1);
    len += sizeof AZURE_XML_TAIL - 1;

    char url[AZURE_URL_MAX];
    azure_url(blob_url, "comp=blocklist", url, sizeof url);
    struct curl_slist *h = http_header(NULL, "x-ms-version: " AZURE_VERSION);
    h = http_header(h, "Content-Type: application/xml");
    struct http_req req = {.method = "PUT", .url = url, .headers = h, .body = body,
                           .body_len = len};
    int rc = http_perform(ctx->http, &req);
    curl_slist_free_all(h);
    free(body);
    if (rc < 0 || ctx->http->resp.status != 201) {
        char what[64];
        snprintf(what, sizeof what, "Put Block List of %lld blocks", nparts);
        return azure_fail(ctx, what, url);
    }
    /* The answer's Content-MD5 is that of the block list we sent, not of
     * the blob (put-block-list docs), so it is not kept. */
    return azure_take_result(ctx, job->size, nparts);
}

/* Nothing to delete: Azure has no call that discards uncommitted blocks
 * (deleting the blob would also destroy a committed blob the app may still
 * want), and it discards them by itself after about a week. A blob
 * committed before the cancel stays as it was. */
static enum target_rc azure_abort(struct target_ctx *ctx, const struct job *job)
{
    (void)ctx, (void)job;
    return TARGET_OK;
}

const struct target_driver target_azure = {
    .type = "azure",
    .parallel = 1,
    .plan = azure_plan,
    .send = azure_send,
    .finalize = azure_finalize,
    .abort = azure_abort,
};
