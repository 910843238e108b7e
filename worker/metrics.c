/*
 * metrics.c — Prometheus text exposition for a worker process.
 *
 * A small HTTP/1.0-style server of our own (one thread, one request per
 * connection, GET only): the endpoint is scraped every few seconds, so a
 * library would add a dependency for nothing. Counters are atomics bumped
 * by the slots; gauges for the queue and jobs come from FCALL_RO cru_stats
 * on the server thread's own Redis connection.
 */
#include "metrics.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "redisq.h"

static const char *const metrics_outcome_names[] = {"done", "retry", "failed", "dead"};
/* retry reasons: HTTP statuses worth a retry, and transport errors */
static const long metrics_reason_status[] = {0, 408, 429, 500, 502, 503, 504};
#define METRICS_NREASONS (sizeof metrics_reason_status / sizeof metrics_reason_status[0])
static const double metrics_buckets[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
#define METRICS_NBUCKETS (sizeof metrics_buckets / sizeof metrics_buckets[0])

static atomic_llong m_bytes;
static atomic_llong m_chunks[METRICS_NOUTCOMES];
static atomic_llong m_retries[METRICS_NREASONS + 1]; /* + other */
static atomic_llong m_hist[METRICS_NBUCKETS + 1];    /* + +Inf */
static atomic_llong m_hist_sum_us;
static atomic_int m_busy;
static int m_slots;

static int m_fd = -1;
static atomic_int m_stop;
static pthread_t m_thread;
static const struct config *m_cfg;

void metrics_chunk(enum metrics_outcome outcome, long long bytes, double seconds)
{
    atomic_fetch_add(&m_chunks[outcome], 1);
    if (outcome != METRICS_DONE)
        return;
    atomic_fetch_add(&m_bytes, bytes);
    size_t b = 0;
    while (b < METRICS_NBUCKETS && seconds > metrics_buckets[b])
        b++;
    atomic_fetch_add(&m_hist[b], 1);
    atomic_fetch_add(&m_hist_sum_us, (long long)(seconds * 1e6));
}

void metrics_retry(long status)
{
    size_t i = 0;
    while (i < METRICS_NREASONS && metrics_reason_status[i] != status)
        i++;
    atomic_fetch_add(&m_retries[i], 1);
}

void metrics_busy(int busy)
{
    atomic_store(&m_busy, busy);
}

/* A growing text buffer for one exposition. */
struct mbuf {
    char *p;
    size_t len, cap;
};

static void mb_printf(struct mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mb_printf(struct mbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return;
        b->p = p;
        b->cap = cap;
    }
}

static void mb_head(struct mbuf *b, const char *name, const char *type, const char *help)
{
    mb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static double mb_num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* Queue and job gauges from Redis; returns 0, or -1 when Redis is away. */
static int metrics_redis(struct redisq *q, struct mbuf *b)
{
    if (!q->c && redisq_connect(q, m_cfg) < 0)
        return -1;
    const char *argv[] = {"FCALL_RO", "cru_stats", "1", m_cfg->prefix};
    redisReply *r = redisq_cmd(q, 4, argv);
    cJSON *st = r && r->type == REDIS_REPLY_STRING ? cJSON_Parse(r->str) : NULL;
    if (r)
        freeReplyObject(r);
    if (!st)
        return -1;
    static const struct { const char *field, *name, *help; } gauges[] = {
        {"stream", "cru_queue_length", "Messages in the chunk stream."},
        {"pending", "cru_queue_pending", "Messages delivered to a worker and not yet acknowledged."},
        {"delayed", "cru_queue_delayed", "Messages waiting for a retry."},
        {"dead", "cru_queue_dead", "Dead-lettered messages."},
    };
    for (size_t i = 0; i < sizeof gauges / sizeof gauges[0]; i++) {
        mb_head(b, gauges[i].name, "gauge", gauges[i].help);
        mb_printf(b, "%s %.0f\n", gauges[i].name, mb_num(st, gauges[i].field));
    }
    static const char *const states[] = {"queued", "running", "done", "failed", "cancelled"};
    const cJSON *ss = cJSON_GetObjectItemCaseSensitive(st, "states");
    mb_head(b, "cru_jobs", "gauge", "Jobs by state.");
    for (size_t i = 0; i < 5; i++)
        mb_printf(b, "cru_jobs{state=\"%s\"} %.0f\n", states[i], mb_num(ss, states[i]));
    long long now = (long long)mb_num(st, "now_ms"), live = 0;
    const cJSON *w;
    cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(st, "workers"))
        live += now - (long long)mb_num(w, "last_seen_ms") <= 10000;
    mb_head(b, "cru_workers_live", "gauge", "Workers with a heartbeat in the last 10 s.");
    mb_printf(b, "cru_workers_live %lld\n", live);
    cJSON_Delete(st);
    return 0;
}

static void metrics_render(struct redisq *q, struct mbuf *b)
{
    mb_head(b, "cru_bytes_uploaded_total", "counter", "Bytes of chunks this worker uploaded.");
    mb_printf(b, "cru_bytes_uploaded_total %lld\n", atomic_load(&m_bytes));
    mb_head(b, "cru_chunks_total", "counter", "Chunks this worker handled, by outcome.");
    for (int i = 0; i < METRICS_NOUTCOMES; i++)
        mb_printf(b, "cru_chunks_total{outcome=\"%s\"} %lld\n", metrics_outcome_names[i],
                  atomic_load(&m_chunks[i]));
    mb_head(b, "cru_retries_total", "counter", "Transient failures retried, by reason.");
    for (size_t i = 0; i <= METRICS_NREASONS; i++) {
        if (i < METRICS_NREASONS && metrics_reason_status[i])
            mb_printf(b, "cru_retries_total{reason=\"http_%ld\"} %lld\n",
                      metrics_reason_status[i], atomic_load(&m_retries[i]));
        else
            mb_printf(b, "cru_retries_total{reason=\"%s\"} %lld\n",
                      i < METRICS_NREASONS ? "transport" : "other", atomic_load(&m_retries[i]));
    }
    mb_head(b, "cru_chunk_duration_seconds", "histogram", "Time to upload a chunk.");
    long long cum = 0;
    for (size_t i = 0; i < METRICS_NBUCKETS; i++) {
        cum += atomic_load(&m_hist[i]);
        mb_printf(b, "cru_chunk_duration_seconds_bucket{le=\"%g\"} %lld\n", metrics_buckets[i],
                  cum);
    }
    cum += atomic_load(&m_hist[METRICS_NBUCKETS]);
    mb_printf(b, "cru_chunk_duration_seconds_bucket{le=\"+Inf\"} %lld\n", cum);
    mb_printf(b, "cru_chunk_duration_seconds_sum %.6f\n",
              (double)atomic_load(&m_hist_sum_us) / 1e6);
    mb_printf(b, "cru_chunk_duration_seconds_count %lld\n", cum);
    mb_head(b, "cru_slots", "gauge", "Chunk slots of this worker.");
    mb_printf(b, "cru_slots %d\n", m_slots);
    mb_head(b, "cru_slots_busy", "gauge", "Slots working on a message.");
    mb_printf(b, "cru_slots_busy %d\n", atomic_load(&m_busy));
    int up = metrics_redis(q, b) == 0;
    mb_head(b, "cru_redis_up", "gauge", "Whether the last Redis query worked.");
    mb_printf(b, "cru_redis_up %d\n", up);
}

static void metrics_reply(int fd, const char *status, const char *type, const char *body,
                          size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n", status, type, len);
    if (send(fd, head, (size_t)n, MSG_NOSIGNAL) < 0)
        return;
    while (len > 0) {
        ssize_t w = send(fd, body, len, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        body += w;
        len -= (size_t)w;
    }
}

static void metrics_serve(int fd, struct redisq *q)
{
    char req[4096];
    size_t got = 0;
    struct pollfd p = {fd, POLLIN, 0};
    while (got < sizeof req - 1 && poll(&p, 1, 2000) > 0) {
        ssize_t n = recv(fd, req + got, sizeof req - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
            break;
    }
    req[got] = '\0';
    char method[8] = "", path[256] = "";
    if (sscanf(req, "%7s %255s", method, path) != 2) {
        metrics_reply(fd, "400 Bad Request", "text/plain", "bad request\n", 12);
        return;
    }
    char *qm = strchr(path, '?');
    if (qm)
        *qm = '\0';
    if (strcmp(method, "GET") != 0) {
        metrics_reply(fd, "405 Method Not Allowed", "text/plain", "GET only\n", 9);
    } else if (strcmp(path, "/metrics") == 0) {
        struct mbuf b = {malloc(8192), 0, 8192};
        if (!b.p)
            return;
        metrics_render(q, &b);
        metrics_reply(fd, "200 OK", "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
        free(b.p);
    } else if (strcmp(path, "/healthz") == 0) {
        /* healthy: Redis answers */
        int ok = (q->c || redisq_connect(q, m_cfg) == 0);
        if (ok) {
            redisReply *r = redisq_cmdf(q, "PING");
            ok = r && r->type != REDIS_REPLY_ERROR;
            if (r)
                freeReplyObject(r);
        }
        if (ok)
            metrics_reply(fd, "200 OK", "text/plain", "ok\n", 3);
        else
            metrics_reply(fd, "503 Service Unavailable", "text/plain", "redis unreachable\n", 18);
    } else {
        metrics_reply(fd, "404 Not Found", "text/plain", "not found: try /metrics\n", 24);
    }
}

static void *metrics_run(void *arg)
{
    (void)arg;
    struct redisq q = {.cfg = m_cfg};
    while (!atomic_load(&m_stop)) {
        struct pollfd p = {m_fd, POLLIN, 0};
        if (poll(&p, 1, 300) <= 0)
            continue;
        int fd = accept(m_fd, NULL, NULL);
        if (fd < 0)
            continue;
        metrics_serve(fd, &q);
        close(fd);
    }
    redisq_close(&q);
    return NULL;
}

int metrics_start(const struct config *cfg, const char *addr, int slots, char *err,
                  size_t errlen)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon || !colon[1]) {
        snprintf(err, errlen, "--metrics-addr: HOST:PORT, as 127.0.0.1:9464");
        return -1;
    }
    const char *h = addr;
    size_t hlen = (size_t)(colon - addr);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']')
        h++, hlen -= 2;
    snprintf(host, sizeof host, "%.*s", (int)hlen, h);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *res;
    int rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "--metrics-addr %s: %s", addr, gai_strerror(rc));
        return -1;
    }
    m_fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, 0);
    int one = 1;
    if (m_fd >= 0)
        setsockopt(m_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (m_fd < 0 || bind(m_fd, res->ai_addr, res->ai_addrlen) < 0 || listen(m_fd, 16) < 0) {
        snprintf(err, errlen, "--metrics-addr %s: %s", addr, strerror(errno));
        freeaddrinfo(res);
        if (m_fd >= 0)
            close(m_fd);
        m_fd = -1;
        return -1;
    }
    freeaddrinfo(res);
    m_cfg = cfg;
    m_slots = slots;
    if (pthread_create(&m_thread, NULL, metrics_run, NULL) != 0) {
        snprintf(err, errlen, "--metrics-addr: cannot start the server thread");
        close(m_fd);
        m_fd = -1;
        return -1;
    }
    log_info(NULL, -1, "metrics on http://%s/metrics", addr);
    return 0;
}

void metrics_stop(void)
{
    if (m_fd < 0)
        return;
    atomic_store(&m_stop, 1);
    pthread_join(m_thread, NULL);
    close(m_fd);
    m_fd = -1;
}
