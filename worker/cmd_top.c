/*
 * cmd_top.c — `cru top`: a live terminal view of the queue, refreshed every
 * second: workers (from their heartbeats, dead ones flagged after 10 s),
 * queue length, pending, delayed, dead, jobs by state, throughput, and the
 * jobs that are running or queued (newest first, as many as the terminal
 * has rows) with progress bars, percent, rate and ETA.
 *
 * Plain ANSI escapes, no curses: each frame is built in memory and written
 * with one write() (home, lines each cleared to their end, clear below). The
 * terminal is put in non-canonical, no-echo mode so a single `q` quits; it is
 * restored on exit, SIGINT and SIGTERM. `--once` prints one frame without
 * escapes and exits (for scripts).
 *
 * Everything comes from the contract: FCALL_RO cru_stats, the sorted set
 * <prefix>:jobs and the public fields of <prefix>:job:<id> (never spec or
 * session). Rates are computed here from bytes_done deltas between frames.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"

#define TOP_WORKER_DEAD_MS 10000 /* the same rule as cru stats */
#define TOP_SCAN_MAX 5000        /* job ids looked at per frame, newest first */
#define TOP_SCAN_BATCH 250
#define TOP_MAX_COLS 512
#define TOP_RATE_WINDOW 8 /* frames of history for the total throughput */

/* ------------------------------------------------------------ small buffers */

struct top_buf {
    char *p;
    size_t len, cap;
    int oom;
};

static void buf_add(struct top_buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_str(struct top_buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

/* ------------------------------------------------------------ state */

struct top_job {
    char id[132];
    char state[12];
    long long size, done, created_ms;
    double t0;        /* when this view first saw the job running */
    long long b0;     /* bytes_done then */
    long long live;   /* bytes_done including a chunk in flight (events) */
    double ev_rate;   /* the worker's rate from the newest progress event */
    long long ev_ms;  /* that event's time */
    double rate;      /* bytes/s shown, 0 when unknown */
};

struct top_frame_ctx {
    /* the previous frame's running jobs, sorted by id, for the deltas */
    struct top_job *prev;
    size_t nprev;
    /* total bytes moved since start, sampled per frame */
    long long moved;
    double hist_t[TOP_RATE_WINDOW];
    long long hist_b[TOP_RATE_WINDOW];
    int nhist;
    char ev_last[64]; /* the newest cru:events id read so far */
};

static volatile sig_atomic_t top_stop, top_winch;
static struct termios top_saved_tio;
static int top_tio_saved;

static void top_on_signal(int sig)
{
    if (sig == SIGWINCH)
        top_winch = 1;
    else
        top_stop = 1;
}

static void top_restore_terminal(void)
{
    if (top_tio_saved) {
        tcsetattr(STDIN_FILENO, TCSANOW, &top_saved_tio);
        top_tio_saved = 0;
    }
}

static double top_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long top_num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? (long long)v->valuedouble : 0;
}

static int top_cmp_id(const void *a, const void *b)
{
    return strcmp(((const struct top_job *)a)->id, ((const struct top_job *)b)->id);
}

/* "12s", "3m05s", "2h10m", "-" */
static void top_eta(double secs, char *out, size_t len)
{
    if (!(secs >= 0) || secs > 99 * 3600.0) {
        snprintf(out, len, "-");
        return;
    }
    long long s = (long long)(secs + 0.5);
    if (s < 60)
        snprintf(out, len, "%llds", s);
    else if (s < 3600)
        snprintf(out, len, "%lldm%02llds", s / 60, s % 60);
    else
        snprintf(out, len, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
}

static void top_rate(double r, char *out, size_t len)
{
    if (r <= 0) {
        snprintf(out, len, "-");
        return;
    }
    char b[32];
    cli_bytes((long long)r, b, sizeof b);
    snprintf(out, len, "%.24s/s", b);
}

/* ------------------------------------------------------------ redis reads */

static const char *top_elem(const redisReply *r, size_t i)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements)
        return "";
    const redisReply *e = r->element[i];
    return e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS ? e->str : "";
}

/*
 * Reads the running and queued jobs, newest first: ids from <prefix>:jobs in
 * batches, their fields in one pipeline per batch. Stops after `want` jobs
 * (the number running + queued according to cru_stats) or TOP_SCAN_MAX ids.
 * Returns the number found (in *out, caller frees), or -1 with q->err set.
 */
static long top_scan(struct redisq *q, long long want, struct top_job **out)
{
    char jobs_key[128];
    redisq_key(q, jobs_key, sizeof jobs_key, "jobs");
    struct top_job *v = NULL;
    size_t n = 0, cap = 0;
    *out = NULL;
    for (long long start = 0; start < TOP_SCAN_MAX && (long long)n < want;
         start += TOP_SCAN_BATCH) {
        redisReply *ids = redisq_cmdf(q, "ZREVRANGE %s %lld %lld", jobs_key, start,
                                      start + TOP_SCAN_BATCH - 1);
        if (!ids || ids->type != REDIS_REPLY_ARRAY) {
            if (ids)
                freeReplyObject(ids);
            free(v);
            return -1;
        }
        size_t k = ids->elements;
        for (size_t i = 0; i < k; i++) {
            char jk[256];
            redisq_key(q, jk, sizeof jk, "job:%.200s", top_elem(ids, i));
            const char *argv[] = {"HMGET", jk, "state", "size", "bytes_done", "created_ms"};
            redisAppendCommandArgv(q->c, 6, argv, NULL);
        }
        int broken = 0;
        for (size_t i = 0; i < k; i++) {
            redisReply *h = NULL;
            if (broken || redisGetReply(q->c, (void **)&h) != REDIS_OK || !h) {
                broken = 1;
                continue;
            }
            const char *state = top_elem(h, 0);
            if ((strcmp(state, "running") == 0 || strcmp(state, "queued") == 0) &&
                (long long)n < want) {
                if (n == cap) {
                    cap = cap ? cap * 2 : 64;
                    struct top_job *nv = realloc(v, cap * sizeof *v);
                    if (!nv) {
                        freeReplyObject(h);
                        broken = 2;
                        continue;
                    }
                    v = nv;
                }
                struct top_job *j = &v[n++];
                memset(j, 0, sizeof *j);
                snprintf(j->id, sizeof j->id, "%.128s", top_elem(ids, i));
                snprintf(j->state, sizeof j->state, "%.11s", state);
                const char *sz = top_elem(h, 1);
                j->size = *sz ? atoll(sz) : -1;
                j->done = atoll(top_elem(h, 2));
                j->created_ms = atoll(top_elem(h, 3));
            }
            freeReplyObject(h);
        }
        freeReplyObject(ids);
        if (broken) {
            snprintf(q->err, sizeof q->err, "%s",
                     broken == 2 ? "out of memory"
                                 : (q->c && q->c->errstr[0] ? q->c->errstr : "connection lost"));
            redisq_close(q);
            free(v);
            return -1;
        }
        if (k < TOP_SCAN_BATCH)
            break;
    }
    *out = v;
    return (long)n;
}

static int top_cmp_ptr(const void *a, const void *b)
{
    return strcmp((*(struct top_job *const *)a)->id, (*(struct top_job *const *)b)->id);
}

/*
 * Reads the events appended since the last frame (the newest 500 on the
 * first frame) and takes from them, per listed job, bytes_done including a
 * chunk in flight (workers send a progress event about once a second while
 * sending) and the worker's own rate. Best effort: a failure leaves the
 * values from the job hashes.
 */
static void top_events(struct redisq *q, struct top_frame_ctx *cx, struct top_job *cur,
                       size_t ncur)
{
    char key[128];
    redisq_key(q, key, sizeof key, "events");
    redisReply *r;
    int first = cx->ev_last[0] == '\0';
    if (first) {
        r = redisq_cmdf(q, "XREVRANGE %s + - COUNT 500", key);
    } else {
        char from[80];
        snprintf(from, sizeof from, "(%.60s", cx->ev_last);
        r = redisq_cmdf(q, "XRANGE %s %s + COUNT 5000", key, from);
    }
    if (!r)
        return;
    if (r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return;
    }
    struct top_job **idx = ncur ? malloc(ncur * sizeof *idx) : NULL;
    if (idx) {
        for (size_t i = 0; i < ncur; i++)
            idx[i] = &cur[i];
        qsort(idx, ncur, sizeof *idx, top_cmp_ptr);
    }
    for (size_t k = 0; k < r->elements; k++) {
        /* oldest first: XREVRANGE lists the newest first */
        const redisReply *e = r->element[first ? r->elements - 1 - k : k];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING)
            continue;
        const char *eid = e->element[0]->str;
        if (!first || k == r->elements - 1)
            snprintf(cx->ev_last, sizeof cx->ev_last, "%.60s", eid);
        const char *job = redisq_field(e->element[1], "job");
        const char *state = redisq_field(e->element[1], "state");
        if (!idx || !job || !state || strcmp(state, "running") != 0)
            continue;
        struct top_job key_job, *kp = &key_job;
        snprintf(key_job.id, sizeof key_job.id, "%.128s", job);
        struct top_job **hit = bsearch(&kp, idx, ncur, sizeof *idx, top_cmp_ptr);
        if (!hit)
            continue;
        struct top_job *j = *hit;
        const char *bd = redisq_field(e->element[1], "bytes_done");
        long long b = bd ? atoll(bd) : 0;
        if (b > j->live && (j->size < 0 || b <= j->size))
            j->live = b;
        const char *rate = redisq_field(e->element[1], "rate");
        if (rate && *rate && atof(rate) > 0) {
            j->ev_rate = atof(rate);
            j->ev_ms = atoll(eid);
        }
    }
    if (first && r->elements == 0)
        snprintf(cx->ev_last, sizeof cx->ev_last, "0-0");
    free(idx);
    freeReplyObject(r);
}

/*
 * Progress accounting between frames. Per job: bytes_done from the hash or,
 * newer, from its progress events; the rate the worker reported in the last
 * 5 s, else the rate since this view first saw the job running, else its
 * average since it was created. In total: every increase of a job seen in
 * two frames, including jobs that ended in between (their final bytes_done
 * is read once more), averaged over the last frames.
 */
static void top_account(struct redisq *q, struct top_frame_ctx *cx, struct top_job *cur,
                        size_t ncur, double now, long long now_ms)
{
    char *seen = cx->nprev ? calloc(cx->nprev, 1) : NULL;
    struct top_job **match = ncur ? calloc(ncur, sizeof *match) : NULL;
    for (size_t i = 0; i < ncur; i++) {
        struct top_job *j = &cur[i];
        struct top_job *p =
            cx->nprev ? bsearch(j, cx->prev, cx->nprev, sizeof *j, top_cmp_id) : NULL;
        j->live = j->done;
        j->t0 = now;
        j->b0 = j->done;
        if (!p)
            continue;
        if (match)
            match[i] = p;
        if (seen)
            seen[p - cx->prev] = 1;
        if (p->live > j->live && strcmp(j->state, "running") == 0)
            j->live = p->live;
        j->ev_rate = p->ev_rate;
        j->ev_ms = p->ev_ms;
        if (strcmp(p->state, "running") == 0 || strcmp(j->state, "running") != 0) {
            j->t0 = p->t0; /* else it just started: measure from here */
            j->b0 = p->b0;
        }
    }
    if (q->c)
        top_events(q, cx, cur, ncur);
    for (size_t i = 0; i < ncur; i++) {
        struct top_job *j = &cur[i];
        if (match && match[i] && j->live > match[i]->live)
            cx->moved += j->live - match[i]->live;
        if (strcmp(j->state, "running") != 0)
            j->rate = 0;
        else if (j->ev_rate > 0 && now_ms - j->ev_ms <= 5000)
            j->rate = j->ev_rate;
        else if (j->live > j->b0 && now - j->t0 >= 0.5)
            j->rate = (double)(j->live - j->b0) / (now - j->t0);
        else if (j->live > 0 && j->created_ms > 0 && now_ms > j->created_ms)
            j->rate = (double)j->live * 1000.0 / (double)(now_ms - j->created_ms);
        else
            j->rate = 0;
    }
    free(match);
    /* jobs of the last frame that are no longer listed: count their last bytes */
    if (q->c && seen) {
        size_t asked = 0;
        for (size_t i = 0; i < cx->nprev; i++) {
            if (seen[i])
                continue;
            char jk[256];
            redisq_key(q, jk, sizeof jk, "job:%.200s", cx->prev[i].id);
            const char *argv[] = {"HGET", jk, "bytes_done"};
            redisAppendCommandArgv(q->c, 3, argv, NULL);
            asked++;
        }
        for (size_t i = 0; i < cx->nprev && asked; i++) {
            if (seen[i])
                continue;
            asked--;
            redisReply *r = NULL;
            if (redisGetReply(q->c, (void **)&r) != REDIS_OK || !r) {
                redisq_close(q);
                break;
            }
            if (r->type == REDIS_REPLY_STRING && atoll(r->str) > cx->prev[i].live)
                cx->moved += atoll(r->str) - cx->prev[i].live;
            freeReplyObject(r);
        }
    }
    free(seen);
    /* the next frame compares against this one */
    free(cx->prev);
    cx->prev = NULL;
    cx->nprev = 0;
    if (ncur) {
        cx->prev = malloc(ncur * sizeof *cur);
        if (cx->prev) {
            memcpy(cx->prev, cur, ncur * sizeof *cur);
            cx->nprev = ncur;
            qsort(cx->prev, ncur, sizeof *cur, top_cmp_id);
        }
    }
    if (cx->nhist == TOP_RATE_WINDOW) {
        memmove(cx->hist_t, cx->hist_t + 1, (TOP_RATE_WINDOW - 1) * sizeof cx->hist_t[0]);
        memmove(cx->hist_b, cx->hist_b + 1, (TOP_RATE_WINDOW - 1) * sizeof cx->hist_b[0]);
        cx->nhist--;
    }
    cx->hist_t[cx->nhist] = now;
    cx->hist_b[cx->nhist] = cx->moved;
    cx->nhist++;
}

static double top_throughput(const struct top_frame_ctx *cx)
{
    if (cx->nhist < 2)
        return -1;
    double dt = cx->hist_t[cx->nhist - 1] - cx->hist_t[0];
    return dt > 0 ? (double)(cx->hist_b[cx->nhist - 1] - cx->hist_b[0]) / dt : -1;
}

/* ------------------------------------------------------------ drawing */

struct top_screen {
    struct top_buf out;
    int cols, rows, lines, ansi;
};

/* Adds one line, cut to the width; reverse video for headers (ansi only). */
static void top_line(struct top_screen *s, int reverse, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void top_line(struct top_screen *s, int reverse, const char *fmt, ...)
{
    if (s->lines >= s->rows - (s->ansi ? 1 : 0))
        return; /* keep the last row free: no scrolling */
    char line[TOP_MAX_COLS + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    size_t n = strlen(line), w = (size_t)s->cols;
    if (n > w)
        n = w;
    if (s->ansi && reverse) {
        buf_str(&s->out, "\033[7m");
        buf_add(&s->out, line, n);
        for (size_t i = n; i < w; i++)
            buf_add(&s->out, " ", 1);
        buf_str(&s->out, "\033[0m");
    } else {
        while (n > 0 && line[n - 1] == ' ' && !s->ansi)
            n--;
        buf_add(&s->out, line, n);
    }
    buf_str(&s->out, s->ansi ? "\033[K\n" : "\n");
    s->lines++;
}

static void top_size(int *cols, int *rows)
{
    struct winsize ws;
    *cols = 80;
    *rows = 24;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
        *cols = ws.ws_col;
        *rows = ws.ws_row;
    }
    if (*cols > TOP_MAX_COLS)
        *cols = TOP_MAX_COLS;
    if (*cols < 20)
        *cols = 20;
    if (*rows < 5)
        *rows = 5;
}

static void top_workers(struct top_screen *s, const cJSON *st, long long now_ms, int max_lines)
{
    const cJSON *ws = cJSON_GetObjectItemCaseSensitive(st, "workers"), *w;
    int live = 0, dead = 0, total = 0;
    long long slots = 0, busy = 0;
    cJSON_ArrayForEach(w, ws)
    {
        total++;
        if (now_ms - top_num(w, "last_seen_ms") <= TOP_WORKER_DEAD_MS) {
            live++;
            slots += top_num(w, "slots");
            busy += top_num(w, "busy");
        } else {
            dead++;
        }
    }
    top_line(s, 1, " WORKERS  %d live, %d dead   slots %lld, busy %lld", live, dead, slots, busy);
    if (total == 0) {
        top_line(s, 0, "  (no worker has a heartbeat: start one with `cru worker`)");
        return;
    }
    int shown = 0, idw = 8;
    cJSON_ArrayForEach(w, ws)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(w, "id");
        int l = cJSON_IsString(id) ? (int)strlen(id->valuestring) : 1;
        idw = l > idw ? l : idw;
    }
    if (idw > 48)
        idw = 48;
    cJSON_ArrayForEach(w, ws)
    {
        if (shown == max_lines - 1 && total > max_lines) {
            top_line(s, 0, "  ... and %d more", total - shown);
            break;
        }
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(w, "id");
        long long seen = now_ms - top_num(w, "last_seen_ms");
        long long up = (now_ms - top_num(w, "started_ms")) / 1000;
        char upbuf[32];
        top_eta((double)up, upbuf, sizeof upbuf);
        top_line(s, 0, "  %-*.*s  slots %3lld  busy %3lld  up %-7s last seen %5.1fs ago%s", idw,
                 idw, cJSON_IsString(id) ? id->valuestring : "?", top_num(w, "slots"),
                 top_num(w, "busy"), upbuf, (double)seen / 1000.0,
                 seen > TOP_WORKER_DEAD_MS ? "  DEAD" : "");
        shown++;
    }
}

static void top_jobs(struct top_screen *s, const struct top_job *jobs, size_t n,
                     long long active)
{
    int idw = 6;
    for (size_t i = 0; i < n; i++) {
        int l = (int)strlen(jobs[i].id);
        if (l > idw)
            idw = l;
    }
    if (idw > 32)
        idw = 32;
    /* id state [bar] pct done/size rate eta */
    int fixed = idw + 1 + 8 + 1 + 2 + 1 + 6 + 1 + 22 + 1 + 12 + 1 + 7;
    int sizes = 1, bar = s->cols - 1 - fixed; /* the last column stays free */
    if (bar < 10) {
        sizes = 0;
        bar += 22;
    }
    if (bar < 10)
        bar = 10;
    if (bar > 60)
        bar = 60;
    top_line(s, 1, " %-*s %-8s %-*s %6s %*s %12s %7s", idw - 1, "JOB", "STATE", bar + 2,
             "PROGRESS", "%", sizes ? 22 : 0, sizes ? "DONE / SIZE " : "", "RATE", "ETA");
    if (n == 0) {
        top_line(s, 0, "  (no job running or queued)");
        return;
    }
    size_t room = (size_t)(s->rows - (s->ansi ? 1 : 0) - s->lines);
    for (size_t i = 0; i < n; i++) {
        const struct top_job *j = &jobs[i];
        if (i + 1 == room && n > room) {
            top_line(s, 0, "  ... and %lld more running or queued", active - (long long)i);
            break;
        }
        double frac = j->size > 0 ? (double)j->live / (double)j->size : (j->size == 0 ? 1 : 0);
        if (frac > 1)
            frac = 1;
        char barbuf[64], done[32], size[32], ds[48], rate[32], eta[32], pct[16];
        int fill = (int)(frac * bar + 0.5);
        for (int k = 0; k < bar; k++)
            barbuf[k] = k < fill ? '#' : '.';
        barbuf[bar] = '\0';
        cli_bytes(j->live, done, sizeof done);
        if (j->size >= 0) {
            cli_bytes(j->size, size, sizeof size);
            snprintf(pct, sizeof pct, "%5.1f%%", 100.0 * frac);
        } else {
            snprintf(size, sizeof size, "?");
            snprintf(pct, sizeof pct, "-");
        }
        snprintf(ds, sizeof ds, "%.20s / %.20s", done, size);
        top_rate(j->rate, rate, sizeof rate);
        if (j->rate > 0 && j->size > j->live)
            top_eta((double)(j->size - j->live) / j->rate, eta, sizeof eta);
        else
            snprintf(eta, sizeof eta, "-");
        top_line(s, 0, "%-*.*s %-8s [%s] %6s %*s %12s %7s", idw, idw, j->id, j->state, barbuf,
                 pct, sizes ? 22 : 0, sizes ? ds : "", rate, eta);
    }
}

/* Builds one frame into s->out. Returns 0, or -1 with q->err set (the frame
 * then says what failed). */
static int top_frame(struct redisq *q, const struct config *cfg, struct top_frame_ctx *cx,
                     struct top_screen *s)
{
    char where[320], hhmmss[32];
    if (cfg->redis.unix_path[0])
        snprintf(where, sizeof where, "unix:%.200s db %d", cfg->redis.unix_path, cfg->redis.db);
    else
        snprintf(where, sizeof where, "%.200s:%d/%d", cfg->redis.host, cfg->redis.port,
                 cfg->redis.db);
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(hhmmss, sizeof hhmmss, "%H:%M:%S", &tm);
    top_line(s, 1, " cru top   %s   prefix %.60s   %s%s", where, cfg->prefix, hhmmss,
             s->ansi ? "   (q quits)" : "");

    int rc = -1;
    cJSON *st = NULL;
    struct top_job *jobs = NULL;
    redisReply *r = NULL;
    if (!q->c && redisq_connect(q, cfg) < 0)
        goto out;
    const char *argv[] = {"FCALL_RO", "cru_stats", "1", cfg->prefix};
    r = redisq_cmd(q, 4, argv);
    if (r && r->type == REDIS_REPLY_ERROR && strstr(r->str, "Function not found")) {
        /* Redis lost its functions (restart without persistence, FLUSHALL) */
        freeReplyObject(r);
        r = redisq_load_library(q) == 0 ? redisq_cmd(q, 4, argv) : NULL;
    }
    if (!r)
        goto out;
    if (r->type != REDIS_REPLY_STRING || !(st = cJSON_Parse(r->str))) {
        if (r->type != REDIS_REPLY_ERROR)
            snprintf(q->err, sizeof q->err, "cru_stats: unexpected reply");
        goto out;
    }
    long long now_ms = top_num(st, "now_ms");
    const cJSON *ss = cJSON_GetObjectItemCaseSensitive(st, "states");
    long long active = top_num(ss, "running") + top_num(ss, "queued");
    long n = top_scan(q, active, &jobs);
    if (n < 0)
        goto out;
    top_account(q, cx, jobs, (size_t)n, top_now(), now_ms);

    top_line(s, 0, "queue %lld   pending %lld   delayed %lld   dead %lld", top_num(st, "stream"),
             top_num(st, "pending"), top_num(st, "delayed"), top_num(st, "dead"));
    top_line(s, 0, "jobs %lld   queued %lld   running %lld   done %lld   failed %lld   cancelled %lld",
             top_num(st, "jobs"), top_num(ss, "queued"), top_num(ss, "running"),
             top_num(ss, "done"), top_num(ss, "failed"), top_num(ss, "cancelled"));
    char tp[32] = "-";
    double thr = top_throughput(cx);
    if (thr >= 0)
        top_rate(thr > 0 ? thr : 0, tp, sizeof tp);
    if (thr == 0)
        snprintf(tp, sizeof tp, "0 B/s");
    top_line(s, 0, "throughput %s", tp);
    top_line(s, 0, "%s", "");
    int wmax = (s->rows - 10) / 3;
    top_workers(s, st, now_ms, wmax < 1 ? 1 : wmax);
    top_line(s, 0, "%s", "");
    top_jobs(s, jobs, (size_t)n, active);
    rc = 0;
out:
    if (rc < 0) {
        top_line(s, 0, "%s", "");
        top_line(s, 0, "error: %.300s", q->err);
        top_line(s, 0, "%s", s->ansi ? "(retrying every refresh)" : "");
    }
    free(jobs);
    cJSON_Delete(st);
    if (r)
        freeReplyObject(r);
    return rc;
}

static void top_write(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDOUT_FILENO, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* Waits up to ms for a key; returns 1 to quit. *keys is cleared when stdin
 * reaches its end (then only the clock and signals wake us). */
static int top_wait(int ms, int *keys)
{
    struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
    double end = top_now() + ms / 1000.0;
    while (!top_stop && !top_winch) {
        int left = (int)((end - top_now()) * 1000.0);
        if (left <= 0)
            return 0;
        int k = poll(&pfd, *keys ? 1 : 0, left);
        if (k < 0 && errno != EINTR)
            return 0;
        if (k > 0) {
            char c[64];
            ssize_t got = read(STDIN_FILENO, c, sizeof c);
            if (got <= 0) {
                *keys = 0;
                continue;
            }
            for (ssize_t i = 0; i < got; i++)
                if (c[i] == 'q' || c[i] == 'Q')
                    return 1;
        }
    }
    return top_stop;
}

int cmd_top(int argc, char **argv, struct config *cfg)
{
    static const char usage[] =
        "usage: cru top [--interval MS] [--once]\n\n"
        "A live view of the queue, refreshed every second: workers (dead ones\n"
        "flagged after 10 s without a heartbeat), queue length, pending, delayed,\n"
        "dead, jobs by state, throughput, and the running and queued jobs, newest\n"
        "first, with progress, rate and ETA. q quits.\n\n"
        "options:\n"
        "  --interval MS     refresh period in milliseconds (100..60000, default 1000)\n"
        "  --once            print one frame without escapes and exit (for scripts)\n"
        CLI_COMMON_HELP;
    static const struct option opts[] = {
        {"interval", required_argument, 0, 'i'},
        {"once", no_argument, 0, 'o'},
        CLI_COMMON_OPTIONS,
        {0, 0, 0, 0},
    };
    long long interval = 1000;
    int c, rc = CLI_OK, once = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'i') {
            if (config_parse_size(optarg, 100, 60000, &interval) < 0) {
                fprintf(stderr, "cru top: --interval: milliseconds from 100 to 60000\n");
                return CLI_USAGE;
            }
        } else if (c == 'o') {
            once = 1;
        } else if (cli_common_option(cfg, c, "top", usage, &rc) < 0) {
            return rc;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "cru top: unexpected argument '%s'\n", argv[optind]);
        return CLI_USAGE;
    }

    struct redisq q;
    if (cli_connect(&q, cfg, "top") < 0)
        return CLI_RUNTIME;
    if (redisq_load_library(&q) < 0) {
        fprintf(stderr, "cru top: %s\n", q.err);
        redisq_close(&q);
        return CLI_RUNTIME;
    }
    struct top_frame_ctx cx;
    memset(&cx, 0, sizeof cx);
    struct top_screen s;
    memset(&s, 0, sizeof s);

    if (once) {
        top_size(&s.cols, &s.rows);
        rc = top_frame(&q, cfg, &cx, &s) < 0 ? CLI_RUNTIME : CLI_OK;
        if (s.out.p)
            top_write(s.out.p, s.out.len);
        if (rc != CLI_OK)
            fprintf(stderr, "cru top: %s\n", q.err);
        free(s.out.p);
        free(cx.prev);
        redisq_close(&q);
        return rc;
    }

    int ansi = isatty(STDOUT_FILENO), keys = 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = top_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND; /* a second ^C ends us even if something hangs */
    struct sigaction old_int, old_term, old_winch;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sa.sa_flags = 0;
    sigaction(SIGWINCH, &sa, &old_winch);
    if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &top_saved_tio) == 0) {
        struct termios raw = top_saved_tio;
        raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        raw.c_cc[VMIN] = 1;
        raw.c_cc[VTIME] = 0;
        if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0)
            top_tio_saved = 1;
    }
    if (ansi)
        top_write("\033[?25l\033[2J", 10); /* hide the cursor, clear */

    int first = 1;
    while (!top_stop) {
        top_winch = 0;
        s.out.len = 0;
        s.lines = 0;
        s.ansi = ansi;
        top_size(&s.cols, &s.rows);
        if (ansi)
            buf_str(&s.out, "\033[H");
        else if (!first)
            buf_str(&s.out, "\n");
        top_frame(&q, cfg, &cx, &s);
        if (ansi)
            buf_str(&s.out, "\033[J");
        if (s.out.p)
            top_write(s.out.p, s.out.len);
        first = 0;
        if (top_wait((int)interval, &keys))
            break;
    }

    if (ansi)
        top_write("\033[?25h", 6); /* the cursor back, below the last frame */
    top_restore_terminal();
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGWINCH, &old_winch, NULL);
    free(s.out.p);
    free(cx.prev);
    redisq_close(&q);
    return CLI_OK;
}
