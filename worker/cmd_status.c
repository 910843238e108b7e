/*
 * cmd_status.c — the read-only views of jobs: `cru status`, `cru watch`
 * and `cru jobs`. They read the job hash fields of the contract and never
 * print the spec or the session (they hold secrets).
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"

/* The job hash fields dashboards may rely on (README "Redis fields"). */
static const char *const status_fields[] = {
    "id", "state", "target", "source", "size", "chunk_size", "chunks", "chunks_done",
    "bytes_done", "created_ms", "updated_ms", "finished_ms", "error", "result", "meta",
};
#define STATUS_NFIELDS (sizeof status_fields / sizeof status_fields[0])
static const char *const status_numeric[] = {
    "size", "chunk_size", "chunks", "chunks_done", "bytes_done",
    "created_ms", "updated_ms", "finished_ms",
};

/* Reads the job hash; returns the HGETALL reply, or NULL after printing
 * why (exit code in *rc). */
static redisReply *status_fetch(struct redisq *q, const char *cmd, const char *id, int *rc)
{
    char key[256];
    redisq_key(q, key, sizeof key, "job:%s", id);
    const char *argv[] = {"HGETALL", key};
    redisReply *r = redisq_cmd(q, 2, argv);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        fprintf(stderr, "cru %s: %s\n", cmd, q->err);
        *rc = CLI_RUNTIME;
    } else if (r->elements == 0) {
        fprintf(stderr, "cru %s: no job '%s' (prefix %s)\n", cmd, id, q->cfg->prefix);
        *rc = CLI_USAGE;
    } else {
        return r;
    }
    if (r)
        freeReplyObject(r);
    return NULL;
}

static long long status_num(const redisReply *h, const char *f)
{
    const char *v = redisq_field(h, f);
    return v && *v ? atoll(v) : -1;
}

static void status_print_json(const redisReply *h)
{
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; i < STATUS_NFIELDS; i++) {
        const char *f = status_fields[i], *v = redisq_field(h, f);
        int numeric = 0;
        for (size_t k = 0; k < sizeof status_numeric / sizeof *status_numeric; k++)
            numeric |= strcmp(f, status_numeric[k]) == 0;
        if (!v || !*v) {
            cJSON_AddNullToObject(o, f);
        } else if (numeric) {
            cJSON_AddNumberToObject(o, f, (double)atoll(v));
        } else if (strcmp(f, "result") == 0 || strcmp(f, "meta") == 0) {
            cJSON *j = cJSON_Parse(v);
            if (j)
                cJSON_AddItemToObject(o, f, j);
            else
                cJSON_AddStringToObject(o, f, v);
        } else {
            cJSON_AddStringToObject(o, f, v);
        }
    }
    char *s = cJSON_Print(o);
    if (s)
        printf("%s\n", s);
    free(s);
    cJSON_Delete(o);
}

static void status_print_text(const redisReply *h)
{
    char done[32], size[32], t1[64], t2[64];
    long long sz = status_num(h, "size"), bd = status_num(h, "bytes_done");
    cli_bytes(bd < 0 ? 0 : bd, done, sizeof done);
    cli_bytes(sz, size, sizeof size);
    printf("job       %s\n", redisq_field(h, "id"));
    printf("state     %s\n", redisq_field(h, "state"));
    printf("target    %s\n", redisq_field(h, "target"));
    printf("source    %s\n", redisq_field(h, "source"));
    if (sz >= 0)
        printf("progress  %s / %s (%.1f%%), chunk %lld of %lld\n", done, size,
               sz > 0 ? 100.0 * (double)bd / (double)sz : 100.0,
               status_num(h, "chunks_done"), status_num(h, "chunks"));
    else
        printf("progress  not planned yet\n");
    cli_time(redisq_field(h, "created_ms"), t1, sizeof t1);
    cli_time(redisq_field(h, "finished_ms"), t2, sizeof t2);
    printf("created   %s\n", t1);
    printf("finished  %s\n", t2);
    const char *e = redisq_field(h, "error"), *r = redisq_field(h, "result"),
               *m = redisq_field(h, "meta");
    if (e && *e)
        printf("error     %s\n", e);
    if (r && *r)
        printf("result    %s\n", r);
    if (m && *m)
        printf("meta      %s\n", m);
}

/* Parses "cmd [common options] [extra] ID"; returns the id or NULL. */
static const char *status_args(int argc, char **argv, struct config *cfg, const char *cmd,
                               const char *usage, int *json, int *rc)
{
    static const struct option opts[] = {
        {"json", no_argument, 0, 'j'},
        CLI_COMMON_OPTIONS,
        {0, 0, 0, 0},
    };
    int c;
    *rc = CLI_USAGE;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'j' && json)
            *json = 1;
        else if (c == 'j' || cli_common_option(cfg, c, cmd, usage, rc) < 0) {
            if (c == 'j')
                fprintf(stderr, "cru %s: unknown option --json\n", cmd);
            return NULL;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "cru %s: needs one job ID (see cru %s --help)\n", cmd, cmd);
        return NULL;
    }
    return argv[optind];
}

int cmd_status(int argc, char **argv, struct config *cfg)
{
    static const char usage[] =
        "usage: cru status ID [--json]\n\n"
        "Shows a job: state, progress, error, result. --json prints the job hash\n"
        "fields as one JSON object (numbers as numbers, result and meta as JSON).\n\n"
        "options:\n  --json            machine-readable output\n" CLI_COMMON_HELP;
    int json = 0, rc;
    const char *id = status_args(argc, argv, cfg, "status", usage, &json, &rc);
    if (!id)
        return rc;
    struct redisq q;
    if (cli_connect(&q, cfg, "status") < 0)
        return CLI_RUNTIME;
    redisReply *h = status_fetch(&q, "status", id, &rc);
    if (h) {
        if (json)
            status_print_json(h);
        else
            status_print_text(h);
        freeReplyObject(h);
        rc = CLI_OK;
    }
    redisq_close(&q);
    return rc;
}

static double status_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One progress line: bar, bytes, percent, rate, ETA. */
static void watch_draw(const redisReply *h, double rate, int tty)
{
    long long size = status_num(h, "size"), done = status_num(h, "bytes_done");
    const char *state = redisq_field(h, "state");
    char d[32], s[32], r[32], eta[32] = "-";
    double frac = size > 0 ? (double)done / (double)size : (size == 0 ? 1.0 : 0.0);
    int fill = (int)(frac * 30);
    char bar[31];
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    cli_bytes(done < 0 ? 0 : done, d, sizeof d);
    cli_bytes(size < 0 ? 0 : size, s, sizeof s);
    cli_bytes((long long)rate, r, sizeof r);
    if (rate > 0 && size > done)
        snprintf(eta, sizeof eta, "%.0fs", (double)(size - done) / rate);
    printf("%s[%s] %s / %s %5.1f%% %s/s ETA %s %-9s%s", tty ? "\r" : "", bar, d,
           size < 0 ? "?" : s, 100.0 * frac, r, eta, state ? state : "?", tty ? "" : "\n");
    fflush(stdout);
}

int cmd_watch(int argc, char **argv, struct config *cfg)
{
    static const char usage[] =
        "usage: cru watch ID\n\n"
        "Shows a live progress bar (bytes, percent, rate, ETA) until the job ends.\n"
        "Exit status: 0 done, 1 failed or cancelled, 2 no such job, 3 Redis error.\n\n"
        "options:\n" CLI_COMMON_HELP;
    int rc;
    const char *id = status_args(argc, argv, cfg, "watch", usage, NULL, &rc);
    if (!id)
        return rc;
    struct redisq q;
    if (cli_connect(&q, cfg, "watch") < 0)
        return CLI_RUNTIME;
    int tty = isatty(STDOUT_FILENO);
    double t0 = status_now(), last_draw = 0, rate = 0;
    long long b0 = -1;
    for (;;) {
        redisReply *h = status_fetch(&q, "watch", id, &rc);
        if (!h)
            break;
        const char *state = redisq_field(h, "state");
        long long done = status_num(h, "bytes_done");
        double now = status_now();
        if (b0 < 0 || done < b0) {
            b0 = done;
            t0 = now;
        } else if (now > t0) {
            rate = (double)(done - b0) / (now - t0);
        }
        int ended = state && (strcmp(state, "done") == 0 || strcmp(state, "failed") == 0 ||
                              strcmp(state, "cancelled") == 0);
        if (tty || ended || now - last_draw >= 1.0) {
            watch_draw(h, rate, tty);
            last_draw = now;
        }
        if (ended) {
            if (tty)
                printf("\n");
            const char *e = redisq_field(h, "error");
            if (strcmp(state, "done") != 0 && e && *e)
                fprintf(stderr, "cru watch: job %s %s: %s\n", id, state, e);
            rc = strcmp(state, "done") == 0 ? CLI_OK : CLI_JOB_FAILED;
            freeReplyObject(h);
            break;
        }
        freeReplyObject(h);
        usleep(200 * 1000);
    }
    redisq_close(&q);
    return rc;
}

int cmd_jobs(int argc, char **argv, struct config *cfg)
{
    static const char usage[] =
        "usage: cru jobs [--state S] [--limit N]\n\n"
        "Lists jobs, newest first.\n\n"
        "options:\n"
        "  --state S         only jobs in state S (queued|running|done|failed|cancelled)\n"
        "  --limit N         at most N jobs (default 50)\n" CLI_COMMON_HELP;
    static const struct option opts[] = {
        {"state", required_argument, 0, 's'},
        {"limit", required_argument, 0, 'n'},
        CLI_COMMON_OPTIONS,
        {0, 0, 0, 0},
    };
    static const char *const states[] = {"queued", "running", "done", "failed", "cancelled"};
    const char *want = NULL;
    long long limit = 50;
    int c, rc = CLI_OK;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 's') {
            want = optarg;
            int ok = 0;
            for (size_t i = 0; i < 5; i++)
                ok |= strcmp(want, states[i]) == 0;
            if (!ok) {
                fprintf(stderr, "cru jobs: --state: one of queued, running, done, failed, cancelled\n");
                return CLI_USAGE;
            }
        } else if (c == 'n') {
            if (config_parse_size(optarg, 1, 1000000, &limit) < 0) {
                fprintf(stderr, "cru jobs: --limit: a number from 1 to 1000000\n");
                return CLI_USAGE;
            }
        } else if (cli_common_option(cfg, c, "jobs", usage, &rc) < 0) {
            return rc;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "cru jobs: unexpected argument '%s'\n", argv[optind]);
        return CLI_USAGE;
    }
    struct redisq q;
    if (cli_connect(&q, cfg, "jobs") < 0)
        return CLI_RUNTIME;
    char key[128];
    redisq_key(&q, key, sizeof key, "jobs");
    printf("%-32s %-9s %8s %12s  %-6s %s\n", "ID", "STATE", "PROGRESS", "SIZE", "TARGET",
           "CREATED");
    long long shown = 0;
    rc = CLI_OK;
    for (long long start = 0; shown < limit; start += 500) {
        redisReply *ids = redisq_cmdf(&q, "ZREVRANGE %s %lld %lld", key, start, start + 499);
        if (!ids || ids->type != REDIS_REPLY_ARRAY) {
            fprintf(stderr, "cru jobs: %s\n", q.err);
            rc = CLI_RUNTIME;
            if (ids)
                freeReplyObject(ids);
            break;
        }
        for (size_t i = 0; i < ids->elements && shown < limit; i++) {
            char jk[256];
            redisq_key(&q, jk, sizeof jk, "job:%s", ids->element[i]->str);
            redisReply *h = redisq_cmdf(&q, "HMGET %s state size bytes_done target created_ms",
                                        jk);
            if (h && h->type == REDIS_REPLY_ARRAY && h->elements == 5 &&
                h->element[0]->type == REDIS_REPLY_STRING &&
                (!want || strcmp(want, h->element[0]->str) == 0)) {
                const char *v[5];
                for (int k = 0; k < 5; k++)
                    v[k] = h->element[k]->type == REDIS_REPLY_STRING ? h->element[k]->str : "";
                long long size = *v[1] ? atoll(v[1]) : -1, done = atoll(v[2]);
                char pct[16] = "-", sz[32] = "-", t[64];
                if (size > 0)
                    snprintf(pct, sizeof pct, "%.1f%%", 100.0 * (double)done / (double)size);
                else if (size == 0)
                    snprintf(pct, sizeof pct, "100.0%%");
                if (size >= 0)
                    cli_bytes(size, sz, sizeof sz);
                cli_time(v[4], t, sizeof t);
                printf("%-32s %-9s %8s %12s  %-6s %s\n", ids->element[i]->str, v[0], pct, sz,
                       v[3], t);
                shown++;
            }
            if (h)
                freeReplyObject(h);
        }
        size_t n = ids->elements;
        freeReplyObject(ids);
        if (n < 500)
            break;
    }
    redisq_close(&q);
    return rc;
}
