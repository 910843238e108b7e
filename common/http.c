/*
 * http.c — HTTP exchanges over libcurl for the target drivers.
 */
#include "http.h"
#include "source_http.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

/* libcurl's upload buffer: larger means fewer read callbacks and syscalls
 * per chunk. Memory per slot stays constant whatever the chunk size. */
#define HTTP_UPLOAD_BUFFER (512 * 1024)

struct http_upload {
    struct source *src;
    long long off, left;
    struct http_resp *resp;
    int short_read;
    const struct http_req *req;
};

static size_t http_on_read(char *buf, size_t size, size_t nitems, void *userdata)
{
    struct http_upload *u = userdata;
    size_t want = size * nitems;
    if ((long long)want > u->left)
        want = (size_t)u->left;
    if (want == 0)
        return 0;
    ssize_t n = source_read(u->src, u->off, buf, want);
    if (n <= 0) {
        /* the file shrank or failed under us: never send a short body */
        u->short_read = 1;
        snprintf(u->resp->err, sizeof u->resp->err, "%s",
                 n < 0 ? u->src->err : "source: file shorter than planned (changed during upload?)");
        return CURL_READFUNC_ABORT;
    }
    if (u->req->on_body)
        u->req->on_body(u->req->on_body_arg, buf, (size_t)n);
    u->off += n;
    u->left -= n;
    u->resp->sent += n;
    return (size_t)n;
}

static size_t http_on_write(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct http_resp *r = userdata;
    size_t n = size * nmemb;
    size_t room = HTTP_BODY_MAX - r->len;
    if (n > room) {
        r->truncated = 1;
        n = room;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return size * nmemb;
}

/* Copies the value of header line "Name: value\r\n" into dst if it is name. */
static void http_grab(const char *line, size_t len, const char *name,
                      char *dst, size_t dstlen)
{
    size_t nlen = strlen(name);
    if (len <= nlen || strncasecmp(line, name, nlen) != 0 || line[nlen] != ':')
        return;
    const char *v = line + nlen + 1;
    const char *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && isspace((unsigned char)end[-1]))
        end--;
    snprintf(dst, dstlen, "%.*s", (int)(end - v), v);
}

static size_t http_on_header(char *line, size_t size, size_t nitems, void *userdata)
{
    struct http_resp *r = userdata;
    size_t len = size * nitems;
    if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* a new response (e.g. after 100 Continue): forget the old headers */
        r->location[0] = r->retry_after[0] = r->range[0] = r->etag[0] = '\0';
        return len;
    }
    http_grab(line, len, "Location", r->location, sizeof r->location);
    http_grab(line, len, "Retry-After", r->retry_after, sizeof r->retry_after);
    http_grab(line, len, "Range", r->range, sizeof r->range);
    http_grab(line, len, "ETag", r->etag, sizeof r->etag);
    return len;
}

struct http_client *http_client_new(void)
{
    struct http_client *c = calloc(1, sizeof *c);
    if (c && !(c->curl = curl_easy_init())) {
        free(c);
        c = NULL;
    }
    return c;
}

void http_client_free(struct http_client *c)
{
    if (!c)
        return;
    curl_easy_cleanup(c->curl);
    if (c->get)
        curl_easy_cleanup(c->get);
    if (c->multi)
        curl_multi_cleanup(c->multi);
    free(c->pipe_buf);
    free(c);
}

static int http_on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
                            curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    struct http_client *c = arg;
    return c->tick(c->tick_arg);
}

long long http_retry_after_ms(const char *v)
{
    if (!v || !*v)
        return -1;
    if (isdigit((unsigned char)*v)) {
        char *end;
        long long s = strtoll(v, &end, 10);
        return *end == '\0' && s >= 0 ? s * 1000 : -1;
    }
    time_t when = curl_getdate(v, NULL);
    if (when < 0)
        return -1;
    long long ms = ((long long)when - (long long)time(NULL)) * 1000;
    return ms < 0 ? 0 : ms;
}

int http_perform(struct http_client *c, const struct http_req *req)
{
    CURL *h = c->curl;
    struct http_resp *resp = &c->resp;
    char errbuf[CURL_ERROR_SIZE] = "";
    struct http_upload up = {req->src, req->src_off, req->src_len, resp, 0, req};
    resp->status = 0;
    resp->len = 0;
    resp->body[0] = '\0';
    resp->truncated = 0;
    resp->err[0] = '\0';
    resp->sent = 0;
    c->source_err[0] = '\0';
    c->source_fatal = 0;
    resp->location[0] = resp->retry_after[0] = resp->range[0] = resp->etag[0] = '\0';

    /* reset drops per-request options but keeps live connections */
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, req->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
    /* a transfer that moves under 1 byte/s for 2 minutes is dead */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 120L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, http_on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, http_on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "cru/0.1");
    if (c->tick) {
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, http_on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
    }

    /* libcurl adds "Expect: 100-continue" to large bodies and may wait for
     * a server that ignores it: send an empty Expect to turn it off. */
    struct curl_slist *own = NULL, *hdrs = req->headers;
    if (req->stream || req->body) {
        own = curl_slist_append(NULL, "Expect:");
        for (struct curl_slist *s = req->headers; s && own; s = s->next)
            own = curl_slist_append(own, s->data);
        hdrs = own;
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    if (req->aws_sigv4) {
        curl_easy_setopt(h, CURLOPT_AWS_SIGV4, req->aws_sigv4);
        curl_easy_setopt(h, CURLOPT_USERPWD, req->userpwd);
    }

    if (req->stream) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, http_on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, &up);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->src_len);
        curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, (long)HTTP_UPLOAD_BUFFER);
        if (c->max_send_speed > 0)
            curl_easy_setopt(h, CURLOPT_MAX_SEND_SPEED_LARGE, (curl_off_t)c->max_send_speed);
        if (strcmp(req->method, "PUT") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
    } else if (req->body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        if (strcmp(req->method, "POST") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
    } else if (strcmp(req->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
        if (strcmp(req->method, "HEAD") == 0)
            curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    }

    CURLcode rc;
    int source_failed = 0;
    if (req->stream && req->src && req->src->kind == SOURCE_HTTP && req->src_len > 0) {
        /* cloud to cloud: the body comes from a ranged GET, piped */
        int prc = source_http_pipe(c, h, req);
        if (prc < 0 && !c->source_err[0])
            snprintf(c->source_err, sizeof c->source_err, "source: out of memory");
        source_failed = prc < 0;
        rc = prc < 0 ? CURLE_ABORTED_BY_CALLBACK : (CURLcode)prc;
        if (source_failed)
            snprintf(resp->err, sizeof resp->err, "%s", c->source_err);
    } else {
        rc = curl_easy_perform(h);
    }
    curl_slist_free_all(own);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    if (rc != CURLE_OK) {
        if (!up.short_read && !source_failed)
            snprintf(resp->err, sizeof resp->err, "%s",
                     errbuf[0] ? errbuf : curl_easy_strerror(rc));
        resp->status = 0;
        return -1;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    curl_off_t cl = -1;
    curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
    resp->content_length = (long long)cl;
    return 0;
}

struct curl_slist *http_header(struct curl_slist *list, const char *fmt, ...)
{
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    struct curl_slist *n = curl_slist_append(list, line);
    if (!n)
        curl_slist_free_all(list);
    return n;
}

int http_escape_path(const char *s, int keep_slash, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
            c == ',' || (keep_slash && c == '/')) {
            if (o + 1 >= outlen)
                return -1;
            out[o++] = (char)c;
        } else {
            if (o + 3 >= outlen)
                return -1;
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return 0;
}
