/*
 * source_http.c — http(s) sources: cloud to cloud.
 *
 * A chunk is one ranged GET whose body streams into the target's PUT as it
 * arrives. One curl multi handle drives both transfers with a fixed ring
 * buffer between them: the GET pauses when the buffer is full, the PUT
 * when it is empty, and each wakes the other. Memory is the buffer and
 * libcurl's own, whatever the chunk size; nothing touches the disk.
 *
 * Version pinning: plan time records the size and a validator (a strong
 * ETag, else Last-Modified). Every ranged GET carries If-Range with it; a
 * source that answers 200 (the whole body: it changed, or ignores Range),
 * 412, or a Content-Range other than the one asked for fails the job
 * "source changed during upload" before a byte of it reaches the target.
 *
 * Safety: only http and https, also for redirects (at most 5); every
 * connection's address is checked against the SSRF policy (netcheck.h) in
 * libcurl's open-socket callback, after DNS, for every hop; TLS is always
 * verified (CRU_CA_BUNDLE names the CA file); the URL's query string and
 * the source's headers never appear in an error.
 */
#include "source_http.h"

#include <ctype.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "netcheck.h"

#define PIPE_BUFFER (1024 * 1024)      /* between the GET and the PUT */
#define GET_BUFFER (256 * 1024)        /* libcurl's receive buffer */

struct pipe_get {
    struct http_client *c;
    struct source *s;
    long status;
    char content_range[128];
    char etag[256];
    char last_modified[128];
    char deny[300];        /* set when the address check refused a connection */
};

/* The URL without userinfo or query, for messages. */
static void sh_redact(const struct source *s, char *out, size_t len)
{
    log_redact_url(s->url, 0, out, len);
}

static size_t sh_on_header(char *line, size_t size, size_t nitems, void *arg)
{
    struct pipe_get *g = arg;
    size_t len = size * nitems;
    if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* a new response (a redirect hop): forget the last one's headers */
        g->content_range[0] = g->etag[0] = g->last_modified[0] = '\0';
        return len;
    }
    static const struct { const char *name; size_t off, cap; } want[] = {
        {"Content-Range", offsetof(struct pipe_get, content_range), 128},
        {"ETag", offsetof(struct pipe_get, etag), 256},
        {"Last-Modified", offsetof(struct pipe_get, last_modified), 128},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        size_t n = strlen(want[i].name);
        if (len > n && strncasecmp(line, want[i].name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1, *end = line + len;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            while (end > v && isspace((unsigned char)end[-1]))
                end--;
            snprintf((char *)g + want[i].off, want[i].cap, "%.*s", (int)(end - v), v);
        }
    }
    return len;
}

/* libcurl's open-socket callback: the SSRF check on the real address. */
static curl_socket_t sh_open_socket(void *arg, curlsocktype purpose,
                                    struct curl_sockaddr *addr)
{
    struct pipe_get *g = arg;
    (void)purpose;
    if (g->s->net && !netcheck_allowed(g->s->net, &addr->addr, g->deny, sizeof g->deny))
        return CURL_SOCKET_BAD;
    return socket(addr->family, addr->socktype, addr->protocol);
}

/* Options every source GET shares. */
static void sh_setup_get(CURL *h, struct pipe_get *g, struct curl_slist *headers)
{
    const char *ca = getenv("CRU_CA_BUNDLE");
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, g->s->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 120L);
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, (long)GET_BUFFER);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (ca && *ca)
        curl_easy_setopt(h, CURLOPT_CAINFO, ca);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, sh_on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, g);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, sh_open_socket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, g);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "cru/0.1");
}

/* Sets the client's source error; fatal says whether a retry can help. */
static void sh_error(struct http_client *c, int fatal, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sh_error(struct http_client *c, int fatal, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->source_err, sizeof c->source_err, fmt, ap);
    va_end(ap);
    c->source_fatal = fatal;
}

/* Classifies a source's HTTP status: transient ones are worth a retry. */
static int sh_fatal_status(long status)
{
    return !(status == 0 || status == 408 || status == 429 || status >= 500);
}

static CURL *sh_get_handle(struct http_client *c)
{
    if (!c->get)
        c->get = curl_easy_init();
    return c->get;
}

static size_t sh_discard(char *d, size_t size, size_t n, void *arg)
{
    (void)d, (void)arg;
    return size * n;
}

int source_http_probe(struct http_client *c, struct source *s)
{
    char where[600];
    sh_redact(s, where, sizeof where);
    c->source_err[0] = '\0';
    c->source_fatal = 0;
    CURL *h = sh_get_handle(c);
    if (!h) {
        sh_error(c, 0, "source: out of memory");
        return -1;
    }
    struct pipe_get g = {.c = c, .s = s};
    sh_setup_get(h, &g, s->headers);
    /* a one-byte range proves Range support and gives the size */
    curl_easy_setopt(h, CURLOPT_RANGE, "0-0");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sh_discard);
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    if (g.deny[0]) {
        sh_error(c, 1, "source %s: %s", where, g.deny);
        return -1;
    }
    if (rc != CURLE_OK) {
        sh_error(c, rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_TOO_MANY_REDIRECTS,
                 "source %s: %s", where, errbuf[0] ? errbuf : curl_easy_strerror(rc));
        return -1;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &g.status);
    long long size = -1;
    if (g.status == 206) {
        long long a, b;
        if (sscanf(g.content_range, "bytes %lld-%lld/%lld", &a, &b, &size) != 3)
            size = -1;
    } else if (g.status == 416) {
        if (sscanf(g.content_range, "bytes */%lld", &size) != 1)
            size = -1;
    } else if (g.status == 200) {
        sh_error(c, 1, "source %s answered 200 to a range request: it does not honour Range, "
                       "so it cannot be uploaded in chunks", where);
        return -1;
    } else {
        sh_error(c, sh_fatal_status(g.status), "source %s: HTTP %ld", where, g.status);
        return -1;
    }
    if (size < 0) {
        sh_error(c, 1, "source %s: HTTP %ld without a usable Content-Range (\"%.60s\")", where,
                 g.status, g.content_range);
        return -1;
    }
    s->size = size;
    /* If-Range needs a strong ETag; a weak one falls back to the date */
    if (g.etag[0] == '"')
        snprintf(s->version, sizeof s->version, "%lld etag %s", size, g.etag);
    else if (g.last_modified[0])
        snprintf(s->version, sizeof s->version, "%lld lm %s", size, g.last_modified);
    else
        snprintf(s->version, sizeof s->version, "%lld none", size);
    return 0;
}

int source_http_pin(struct source *s, const char *version)
{
    long long size;
    int n = 0;
    if (!version || sscanf(version, "%lld %n", &size, &n) != 1 || n == 0)
        return -1;
    s->size = size;
    snprintf(s->version, sizeof s->version, "%s", version);
    return 0;
}

/* ---------------------------------------------------------------- pipe */

struct pipe {
    struct pipe_get g;
    const struct http_req *req;
    CURL *get, *put;
    char *buf;              /* ring of PIPE_BUFFER bytes */
    size_t head, len;
    long long off, want, got;
    int get_paused, put_paused, get_done, checked, failed;
    struct http_resp *resp;
    char where[600];
};

static size_t pipe_on_get(char *data, size_t size, size_t nmemb, void *arg)
{
    struct pipe *p = arg;
    size_t n = size * nmemb;
    if (!p->checked) {
        /* before any byte moves on: is this exactly the range we pinned? */
        long status = 0;
        long long a = -1, b = -1, total = -1;
        curl_easy_getinfo(p->get, CURLINFO_RESPONSE_CODE, &status);
        sscanf(p->g.content_range, "bytes %lld-%lld/%lld", &a, &b, &total);
        if (status == 200) {
            sh_error(p->g.c, 1, "source changed during upload (source %s answered 200 to a "
                                "pinned range request)", p->where);
        } else if (status != 206) {
            sh_error(p->g.c, sh_fatal_status(status), "source %s: HTTP %ld", p->where, status);
        } else if (a != p->off || b != p->off + p->want - 1 || total != p->g.s->size) {
            sh_error(p->g.c, 1, "source changed during upload (asked for bytes %lld-%lld/%lld, "
                                "got Content-Range \"%.60s\")", p->off, p->off + p->want - 1,
                     p->g.s->size, p->g.content_range);
        } else {
            p->checked = 1;
        }
        if (!p->checked) {
            p->failed = 1;
            return 0;
        }
    }
    if (p->got + (long long)n > p->want) {
        sh_error(p->g.c, 1, "source %s sent more than the range asked for", p->where);
        p->failed = 1;
        return 0;
    }
    if (n > PIPE_BUFFER - p->len) {
        p->get_paused = 1;
        return CURL_WRITEFUNC_PAUSE; /* libcurl keeps it and offers it again */
    }
    size_t tail = (p->head + p->len) % PIPE_BUFFER;
    size_t first = n < PIPE_BUFFER - tail ? n : PIPE_BUFFER - tail;
    memcpy(p->buf + tail, data, first);
    memcpy(p->buf, data + first, n - first);
    p->len += n;
    p->got += (long long)n;
    if (p->put_paused) {
        p->put_paused = 0;
        curl_easy_pause(p->put, CURLPAUSE_CONT);
    }
    return n;
}

static size_t pipe_on_put(char *out, size_t size, size_t nitems, void *arg)
{
    struct pipe *p = arg;
    size_t n = size * nitems;
    if (p->failed)
        return CURL_READFUNC_ABORT;
    if (p->len == 0) {
        if (p->get_done) {
            if (!p->failed && p->got < p->want)
                sh_error(p->g.c, 0, "source %s ended after %lld of %lld bytes", p->where,
                         p->got, p->want);
            p->failed = 1;
            return CURL_READFUNC_ABORT;
        }
        p->put_paused = 1;
        return CURL_READFUNC_PAUSE;
    }
    if (n > p->len)
        n = p->len;
    size_t first = n < PIPE_BUFFER - p->head ? n : PIPE_BUFFER - p->head;
    memcpy(out, p->buf + p->head, first);
    memcpy(out + first, p->buf, n - first);
    if (p->req->on_body)
        p->req->on_body(p->req->on_body_arg, out, n);
    p->head = (p->head + n) % PIPE_BUFFER;
    p->len -= n;
    p->resp->sent += (long long)n;
    if (p->get_paused) {
        p->get_paused = 0;
        curl_easy_pause(p->get, CURLPAUSE_CONT);
    }
    return n;
}

int source_http_pipe(struct http_client *c, CURL *put, const struct http_req *req)
{
    struct source *s = req->src;
    if (!c->pipe_buf && !(c->pipe_buf = malloc(PIPE_BUFFER)))
        return -1;
    if (!c->multi && !(c->multi = curl_multi_init()))
        return -1;
    CURL *get = sh_get_handle(c);
    if (!get)
        return -1;
    struct pipe p = {.g = {.c = c, .s = s}, .req = req, .get = get, .put = put, .buf = c->pipe_buf,
                     .off = req->src_off, .want = req->src_len, .resp = &c->resp};
    sh_redact(s, p.where, sizeof p.where);

    /* the GET: exactly this range of the version seen at plan time */
    char range[64], validator[480] = "", kind[8] = "";
    snprintf(range, sizeof range, "%lld-%lld", p.off, p.off + p.want - 1);
    int vn = 0;
    long long vsize;
    sscanf(s->version, "%lld %7s %n", &vsize, kind, &vn);
    struct curl_slist *hdrs = NULL;
    for (struct curl_slist *h = s->headers; h; h = h->next)
        hdrs = curl_slist_append(hdrs, h->data);
    if (vn > 0 && (strcmp(kind, "etag") == 0 || strcmp(kind, "lm") == 0)) {
        snprintf(validator, sizeof validator, "If-Range: %s", s->version + vn);
        hdrs = curl_slist_append(hdrs, validator);
    }
    sh_setup_get(get, &p.g, hdrs);
    curl_easy_setopt(get, CURLOPT_RANGE, range);
    curl_easy_setopt(get, CURLOPT_WRITEFUNCTION, pipe_on_get);
    curl_easy_setopt(get, CURLOPT_WRITEDATA, &p);
    char get_err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(get, CURLOPT_ERRORBUFFER, get_err);

    /* the PUT reads from the pipe instead of the file */
    curl_easy_setopt(put, CURLOPT_READFUNCTION, pipe_on_put);
    curl_easy_setopt(put, CURLOPT_READDATA, &p);

    CURLM *m = c->multi;
    curl_multi_add_handle(m, get);
    curl_multi_add_handle(m, put);
    CURLcode put_rc = CURLE_OK, get_rc = CURLE_OK;
    int running = 1, put_done = 0;
    while (running && !put_done) {
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            if (msg->easy_handle == get) {
                p.get_done = 1;
                get_rc = msg->data.result;
                if (get_rc != CURLE_OK)
                    p.failed = 1;
                if (p.put_paused) {
                    /* let the PUT see the end (or the failure) */
                    p.put_paused = 0;
                    curl_easy_pause(put, CURLPAUSE_CONT);
                }
            } else if (msg->easy_handle == put) {
                put_done = 1;
                put_rc = msg->data.result;
            }
        }
        if (running && !put_done)
            curl_multi_poll(m, NULL, 0, 1000, NULL);
    }
    curl_multi_remove_handle(m, get);
    curl_multi_remove_handle(m, put);
    curl_easy_setopt(get, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(hdrs);

    if (p.g.deny[0])
        sh_error(c, 1, "source %s: %s", p.where, p.g.deny);
    else if (get_rc != CURLE_OK && !c->source_err[0])
        sh_error(c, get_rc == CURLE_UNSUPPORTED_PROTOCOL || get_rc == CURLE_TOO_MANY_REDIRECTS,
                 "source %s: %s", p.where, get_err[0] ? get_err : curl_easy_strerror(get_rc));
    if (c->source_err[0]) {
        snprintf(c->resp.err, sizeof c->resp.err, "%s", c->source_err);
        return -1;
    }
    return put_rc == CURLE_OK ? 0 : (int)put_rc;
}
