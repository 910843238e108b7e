/*
 * sink.c: a small, fast HTTP/1.1 upload sink for the benchmarks (make bench).
 *
 * The benchmarks measure how fast a cru worker pushes bytes. If they uploaded
 * to the Python fake, or to anything that stores, hashes or parses the data,
 * they would mostly measure that server. This sink costs a fixed, small amount
 * per byte: it counts each body and throws it away, mostly inside the kernel
 * (recv with MSG_TRUNC, no copy), otherwise through one reused 256 KiB buffer
 * per connection, so loopback throughput is bounded by the client (the
 * worker) and the kernel, not by the server. It answers just enough of the
 * OneDrive/Graph upload-session protocol for a worker to finish an upload.
 *
 *   sink [--port N] [--host ADDR]
 *
 *   --port N     TCP port; 0 (the default) picks a free one
 *   --host ADDR  numeric IPv4/IPv6 address to bind (default 127.0.0.1)
 *
 * Once listening it prints "PORT <n>" on stdout (flushed), then serves until
 * SIGTERM or SIGINT, and exits 0.
 *
 * One detached thread per connection, blocking sockets, HTTP/1.1 keep-alive
 * and pipelining. Bodies may be Content-Length or chunked; "Expect:
 * 100-continue" is honoured. Answers:
 *
 *   PUT/POST with Content-Range: bytes a-b/T (body must be b-a+1 bytes)
 *       b+1 <  T  202 {"expirationDateTime":...,"nextExpectedRanges":["<b+1>-"]}
 *       b+1 == T  201 {"id":"SINK","name":"sink.bin","size":T,"file":{...}}
 *       malformed, or wrong body length: 400 JSON error
 *   PUT/POST without Content-Range  201 {"id":"SINK","size":<bytes received>}
 *   GET /_stats      200 {"requests":N,"bytes":N}  (requests other than
 *                    GET /_stats itself, and body bytes received, since start)
 *   GET/HEAD other   200 {"nextExpectedRanges":["0-"]}
 *   DELETE           204
 *   other methods    405
 *   unparsable       400 and close; headers over 16 KiB: 431 and close
 *
 * Build: cc -O2 -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -pthread \
 *            -o build/bench/sink tests/bench/sink.c
 */

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE     (256 * 1024) /* per-connection receive buffer */
#define MAX_HEADER   (16 * 1024)  /* request line + headers + blank line */
#define MAX_LINE     4096         /* chunk-size and trailer lines */
#define IDLE_SECONDS 300          /* a silent connection is dropped after this */

static atomic_ullong g_requests;
static atomic_ullong g_bytes;

/* One client connection and its buffered, not yet consumed input
 * buf[pos, len). */
struct conn {
    int fd;
    char *buf;
    size_t pos, len;
};

/* What the handler needs from the request head; copied out of the buffer
 * because reading the body reuses it. */
enum method { M_OTHER, M_GET, M_HEAD, M_PUT, M_POST, M_DELETE };

struct req {
    enum method method;
    int is_stats;      /* target path is /_stats */
    int http10;
    int keep_alive;
    int chunked;
    int expect_continue;
    int has_length;
    uint64_t length;
    int has_range;     /* a Content-Range header was present */
    int range_ok;      /* ...and parsed as bytes a-b/T with a <= b < T */
    uint64_t ra, rb, rtotal;
};

/* Read more input after buf[len), making room first. Returns 1 when bytes
 * arrived, 0 on EOF, error or idle timeout. */
static int conn_fill(struct conn *c)
{
    if (c->pos == c->len) {
        c->pos = c->len = 0;
    } else if (c->len == BUF_SIZE) {
        memmove(c->buf, c->buf + c->pos, c->len - c->pos);
        c->len -= c->pos;
        c->pos = 0;
    }
    for (;;) {
        ssize_t n = read(c->fd, c->buf + c->len, BUF_SIZE - c->len);
        if (n > 0) {
            c->len += (size_t)n;
            return 1;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return 0;
    }
}

/* Send all of p[0, n). Returns 0, or -1 if the peer is gone. */
static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    default:  return "Unknown";
    }
}

/* Send one response, head and JSON body in a single send(). A 204 carries
 * neither body nor Content-Length (RFC 9110 forbids it there); HEAD gets the
 * headers of the body it does not get. Returns 0, or -1 if the peer is gone. */
static int respond(struct conn *c, int status, const char *json, int head_only,
                   int keep_alive)
{
    char out[2048];
    int n;
    const char *conn_hdr = keep_alive ? "" : "Connection: close\r\n";

    if (status == 204) {
        n = snprintf(out, sizeof out, "HTTP/1.1 204 No Content\r\n%s\r\n", conn_hdr);
    } else {
        size_t blen = strlen(json);
        n = snprintf(out, sizeof out,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %zu\r\n"
                     "%s\r\n%s",
                     status, reason(status), blen, conn_hdr, head_only ? "" : json);
    }
    if (n < 0 || (size_t)n >= sizeof out)
        return -1;
    return send_all(c->fd, out, (size_t)n);
}

/* A Graph-style JSON error body. */
static int respond_error(struct conn *c, int status, const char *code, const char *msg,
                         int keep_alive)
{
    char body[512];
    snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, msg);
    return respond(c, status, body, 0, keep_alive);
}

/* Consume and count n body bytes. Returns 0, or -1 if the input ends first.
 * Bytes already buffered are skipped; the rest are dropped with
 * recv(MSG_TRUNC), which on TCP discards them in the kernel without copying
 * to user space (a kernel that copied them anyway would just fill buf). */
static int discard(struct conn *c, uint64_t n, uint64_t *count)
{
    while (n > 0) {
        size_t avail = c->len - c->pos;
        if (avail > 0) {
            if ((uint64_t)avail > n)
                avail = (size_t)n;
            c->pos += avail;
        } else {
            ssize_t got = recv(c->fd, c->buf, n > BUF_SIZE ? BUF_SIZE : (size_t)n, MSG_TRUNC);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0)
                return -1;
            avail = (size_t)got;
        }
        n -= avail;
        *count += avail;
        atomic_fetch_add_explicit(&g_bytes, avail, memory_order_relaxed);
    }
    return 0;
}

/* Next input line without its CR LF, valid until the next read. Returns NULL
 * on EOF (*bad = 0) or on a line longer than MAX_LINE (*bad = 1). */
static const char *read_line(struct conn *c, size_t *llen, int *bad)
{
    size_t scanned = 0;
    *bad = 0;
    for (;;) {
        char *nl = memchr(c->buf + c->pos + scanned, '\n', c->len - c->pos - scanned);
        if (nl) {
            const char *s = c->buf + c->pos;
            size_t l = (size_t)(nl - s);
            c->pos += l + 1;
            if (l > 0 && s[l - 1] == '\r')
                l--;
            *llen = l;
            return s;
        }
        scanned = c->len - c->pos;
        if (scanned > MAX_LINE) {
            *bad = 1;
            return NULL;
        }
        if (!conn_fill(c))
            return NULL;
    }
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Consume a chunked body, counting the data bytes. Returns 0, -1 when the
 * input ends, -2 when the framing is malformed. */
static int discard_chunked(struct conn *c, uint64_t *count)
{
    size_t l;
    int bad;
    const char *line;

    for (;;) {
        if (!(line = read_line(c, &l, &bad)))
            return bad ? -2 : -1;
        uint64_t size = 0;
        size_t i = 0;
        for (; i < l && hexval(line[i]) >= 0; i++) {
            if (size > (UINT64_MAX >> 4))
                return -2;
            size = (size << 4) | (uint64_t)hexval(line[i]);
        }
        if (i == 0)
            return -2;
        while (i < l && (line[i] == ' ' || line[i] == '\t'))
            i++;
        if (i < l && line[i] != ';')    /* only chunk extensions may follow */
            return -2;
        if (size == 0)
            break;
        if (discard(c, size, count) < 0)
            return -1;
        if (!(line = read_line(c, &l, &bad)))
            return bad ? -2 : -1;
        if (l != 0)                      /* data must end with CR LF */
            return -2;
    }
    /* Trailer fields, up to the blank line. */
    for (int n = 0;; n++) {
        if (!(line = read_line(c, &l, &bad)))
            return bad ? -2 : -1;
        if (l == 0)
            return 0;
        if (n > 100)
            return -2;
    }
}

/* Parse a whole decimal number s[0, n) without overflow. */
static int parse_u64(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Parse "bytes a-b/T" (a <= b < T) from v[0, n). */
static int parse_range(const char *v, size_t n, struct req *r)
{
    const char *e = v + n, *dash, *slash;
    if (n < 6 || strncasecmp(v, "bytes", 5) != 0 || (v[5] != ' ' && v[5] != '='))
        return -1;
    v += 6;
    while (v < e && *v == ' ')
        v++;
    if (!(dash = memchr(v, '-', (size_t)(e - v))) ||
        !(slash = memchr(dash, '/', (size_t)(e - dash))))
        return -1;
    if (parse_u64(v, (size_t)(dash - v), &r->ra) ||
        parse_u64(dash + 1, (size_t)(slash - dash - 1), &r->rb) ||
        parse_u64(slash + 1, (size_t)(e - slash - 1), &r->rtotal))
        return -1;
    if (r->ra > r->rb || r->rb >= r->rtotal)
        return -1;
    return 0;
}

/* Is token tok one of the comma-separated tokens in v[0, n)? */
static int has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    const char *e = v + n;
    while (v < e) {
        while (v < e && (*v == ' ' || *v == '\t' || *v == ','))
            v++;
        const char *s = v;
        while (v < e && *v != ',')
            v++;
        const char *t = v;
        while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - s) == tl && strncasecmp(s, tok, tl) == 0)
            return 1;
    }
    return 0;
}

static int name_is(const char *name, size_t n, const char *want)
{
    return strlen(want) == n && strncasecmp(name, want, n) == 0;
}

/* Parse the request head h[0, n) (ending in CR LF CR LF) into *r.
 * Returns 0, or -1 if it is malformed. */
static int parse_head(const char *h, size_t n, struct req *r)
{
    const char *e = h + n, *eol, *sp1, *sp2;

    memset(r, 0, sizeof *r);
    if (!(eol = memmem(h, n, "\r\n", 2)))
        return -1;
    if (!(sp1 = memchr(h, ' ', (size_t)(eol - h))) ||
        !(sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1))))
        return -1;

    size_t ml = (size_t)(sp1 - h);
    r->method = ml == 3 && !memcmp(h, "GET", 3)    ? M_GET
              : ml == 4 && !memcmp(h, "HEAD", 4)   ? M_HEAD
              : ml == 3 && !memcmp(h, "PUT", 3)    ? M_PUT
              : ml == 4 && !memcmp(h, "POST", 4)   ? M_POST
              : ml == 6 && !memcmp(h, "DELETE", 6) ? M_DELETE
              : M_OTHER;
    if (ml == 0)
        return -1;

    const char *t = sp1 + 1;
    size_t tl = (size_t)(sp2 - t);
    const char *q = memchr(t, '?', tl);
    if (tl == 0)
        return -1;
    r->is_stats = (size_t)((q ? q : sp2) - t) == 7 && !memcmp(t, "/_stats", 7);

    size_t vl = (size_t)(eol - sp2 - 1);
    if (vl == 8 && !memcmp(sp2 + 1, "HTTP/1.1", 8))
        r->http10 = 0;
    else if (vl == 8 && !memcmp(sp2 + 1, "HTTP/1.0", 8))
        r->http10 = 1;
    else
        return -1;
    r->keep_alive = !r->http10;

    int te_seen = 0;
    for (const char *p = eol + 2; p < e; p = eol + 2) {
        eol = memmem(p, (size_t)(e - p), "\r\n", 2);
        if (!eol)
            return -1;
        if (eol == p)       /* the blank line */
            break;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon || colon == p || *p == ' ' || *p == '\t')
            return -1;      /* no name, or obsolete line folding */
        for (const char *k = p; k < colon; k++)
            if (*k == ' ' || *k == '\t')
                return -1;
        const char *v = colon + 1, *ve = eol;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        size_t nl = (size_t)(colon - p), len = (size_t)(ve - v);

        if (name_is(p, nl, "content-length")) {
            uint64_t cl;
            if (parse_u64(v, len, &cl) || (r->has_length && cl != r->length))
                return -1;
            r->has_length = 1;
            r->length = cl;
        } else if (name_is(p, nl, "transfer-encoding")) {
            te_seen = 1;
            /* chunked must be the last coding; anything else has no length */
            if (len < 7 || strncasecmp(ve - 7, "chunked", 7) != 0)
                return -1;
            r->chunked = 1;
        } else if (name_is(p, nl, "connection")) {
            if (has_token(v, len, "close"))
                r->keep_alive = 0;
            else if (has_token(v, len, "keep-alive"))
                r->keep_alive = 1;
        } else if (name_is(p, nl, "expect")) {
            if (len == 12 && strncasecmp(v, "100-continue", 12) == 0)
                r->expect_continue = 1;
        } else if (name_is(p, nl, "content-range")) {
            r->has_range = 1;
            r->range_ok = parse_range(v, len, r) == 0;
        }
    }
    if (te_seen && r->has_length)
        return -1;          /* ambiguous framing */
    return 0;
}

/* Serve one request. Returns 1 to keep the connection, 0 to close it. */
static int serve_one(struct conn *c)
{
    size_t head_len;
    struct req r;

    /* Find the end of the head, skipping blank lines between requests. */
    for (;;) {
        while (c->pos < c->len && (c->buf[c->pos] == '\r' || c->buf[c->pos] == '\n'))
            c->pos++;
        size_t avail = c->len - c->pos;
        size_t look = avail < MAX_HEADER ? avail : MAX_HEADER;
        const char *end = memmem(c->buf + c->pos, look, "\r\n\r\n", 4);
        if (end) {
            head_len = (size_t)(end - (c->buf + c->pos)) + 4;
            break;
        }
        if (avail >= MAX_HEADER) {
            respond_error(c, 431, "requestHeadersTooLarge", "request head over 16 KiB", 0);
            return 0;
        }
        if (!conn_fill(c))
            return 0;
    }
    if (parse_head(c->buf + c->pos, head_len, &r) < 0) {
        respond_error(c, 400, "invalidRequest", "malformed request", 0);
        return 0;
    }
    c->pos += head_len;

    int has_body = r.chunked || (r.has_length && r.length > 0);
    if (r.expect_continue && !r.http10 && has_body &&
        send_all(c->fd, "HTTP/1.1 100 Continue\r\n\r\n", 25) < 0)
        return 0;

    uint64_t got = 0;
    if (r.chunked) {
        int rc = discard_chunked(c, &got);
        if (rc == -2) {
            respond_error(c, 400, "invalidRequest", "malformed chunked body", 0);
            return 0;
        }
        if (rc < 0)
            return 0;
    } else if (r.has_length && discard(c, r.length, &got) < 0) {
        return 0;
    }

    if (!(r.method == M_GET && r.is_stats))
        atomic_fetch_add_explicit(&g_requests, 1, memory_order_relaxed);

    char body[512];
    int status = 200, rc;
    switch (r.method) {
    case M_PUT:
    case M_POST:
        if (r.has_range && !r.range_ok) {
            status = 400;
            snprintf(body, sizeof body, "{\"error\":{\"code\":\"invalidRange\","
                     "\"message\":\"malformed Content-Range\"}}");
        } else if (r.has_range && got != r.rb - r.ra + 1) {
            status = 400;
            snprintf(body, sizeof body, "{\"error\":{\"code\":\"invalidRange\","
                     "\"message\":\"body is %" PRIu64 " bytes, Content-Range says %" PRIu64 "\"}}",
                     got, r.rb - r.ra + 1);
        } else if (r.has_range && r.rb + 1 < r.rtotal) {
            status = 202;
            snprintf(body, sizeof body, "{\"expirationDateTime\":\"2030-01-01T00:00:00Z\","
                     "\"nextExpectedRanges\":[\"%" PRIu64 "-\"]}", r.rb + 1);
        } else if (r.has_range) {
            status = 201;
            snprintf(body, sizeof body, "{\"id\":\"SINK\",\"name\":\"sink.bin\",\"size\":%" PRIu64
                     ",\"file\":{\"hashes\":{\"quickXorHash\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}}}",
                     r.rtotal);
        } else {
            status = 201;
            snprintf(body, sizeof body, "{\"id\":\"SINK\",\"size\":%" PRIu64 "}", got);
        }
        break;
    case M_GET:
    case M_HEAD:
        if (r.is_stats)
            snprintf(body, sizeof body, "{\"requests\":%llu,\"bytes\":%llu}",
                     atomic_load(&g_requests), atomic_load(&g_bytes));
        else
            snprintf(body, sizeof body, "{\"nextExpectedRanges\":[\"0-\"]}");
        break;
    case M_DELETE:
        status = 204;
        body[0] = '\0';
        break;
    default:
        status = 405;
        snprintf(body, sizeof body, "{\"error\":{\"code\":\"notSupported\","
                 "\"message\":\"method not allowed\"}}");
        break;
    }
    rc = respond(c, status, body, r.method == M_HEAD, r.keep_alive);
    return rc == 0 && r.keep_alive;
}

/* Connection thread: serve requests until the client closes or errs. */
static void *conn_main(void *arg)
{
    struct conn c = { .fd = (int)(intptr_t)arg };
    c.buf = malloc(BUF_SIZE);
    if (c.buf) {
        while (serve_one(&c))
            ;
        free(c.buf);
    }
    close(c.fd);
    return NULL;
}

/* Wait for SIGTERM or SIGINT (blocked in every thread) and exit 0 at once;
 * connection threads hold nothing that needs cleaning up. */
static void *signal_main(void *arg)
{
    sigset_t *set = arg;
    int sig;
    while (sigwait(set, &sig) != 0)
        ;
    _exit(0);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: sink [--port N] [--host ADDR]\n"
               "  HTTP/1.1 upload sink for benchmarks; prints \"PORT <n>\" once listening.\n"
               "  --port N     port to listen on, 0 (default) picks a free one\n"
               "  --host ADDR  numeric address to bind (default 127.0.0.1)\n");
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *port = "0";

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc) {
            port = argv[++i];
        } else if (!strncmp(argv[i], "--port=", 7)) {
            port = argv[i] + 7;
        } else if (!strcmp(argv[i], "--host") && i + 1 < argc) {
            host = argv[++i];
        } else if (!strncmp(argv[i], "--host=", 7)) {
            host = argv[i] + 7;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    char *end;
    long pn = strtol(port, &end, 10);
    if (*port == '\0' || *end != '\0' || pn < 0 || pn > 65535) {
        fprintf(stderr, "sink: bad port '%s'\n", port);
        return 2;
    }

    static sigset_t set;
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);   /* inherited by every thread */

    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV };
    struct addrinfo *ai;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) {
        fprintf(stderr, "sink: %s: %s\n", host, gai_strerror(gai));
        return 1;
    }
    int lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(lfd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(lfd, 1024) < 0) {
        fprintf(stderr, "sink: listen on %s port %s: %s\n", host, port, strerror(errno));
        return 1;
    }
    freeaddrinfo(ai);

    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(lfd, (struct sockaddr *)&ss, &sl) < 0) {
        perror("sink: getsockname");
        return 1;
    }
    unsigned bound = ntohs(ss.ss_family == AF_INET6
                           ? ((struct sockaddr_in6 *)&ss)->sin6_port
                           : ((struct sockaddr_in *)&ss)->sin_port);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);

    pthread_t tid;
    if (pthread_create(&tid, &attr, signal_main, &set) != 0) {
        fprintf(stderr, "sink: cannot start the signal thread\n");
        return 1;
    }

    printf("PORT %u\n", bound);
    fflush(stdout);

    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                struct timespec ts = { 0, 10 * 1000 * 1000 };
                nanosleep(&ts, NULL);   /* out of resources: let threads finish */
                continue;
            }
            perror("sink: accept");
            return 1;
        }
        struct timeval tv = { .tv_sec = IDLE_SECONDS };
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (pthread_create(&tid, &attr, conn_main, (void *)(intptr_t)fd) != 0)
            close(fd);
    }
}
