/*
 * cmd_ops.c — operator commands: `cru cancel`, `cru retry`, `cru stats`.
 * Each is one call of the function library, the same an app would make.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"

/* A heartbeat older than this marks a worker dead in cru stats. */
#define OPS_WORKER_DEAD_MS 10000

/* Parses "[common options] ID" for cancel and retry. */
static const char *ops_id_arg(int argc, char **argv, struct config *cfg, const char *cmd,
                              const char *usage, int *rc)
{
    static const struct option opts[] = {CLI_COMMON_OPTIONS, {0, 0, 0, 0}};
    int c;
    *rc = CLI_USAGE;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1)
        if (cli_common_option(cfg, c, cmd, usage, rc) < 0)
            return NULL;
    if (optind != argc - 1) {
        fprintf(stderr, "cru %s: needs one job ID (see cru %s --help)\n", cmd, cmd);
        return NULL;
    }
    return argv[optind];
}

/* Calls fn with the job id; prints msg on success, the error otherwise. */
static int ops_call(struct config *cfg, const char *cmd, const char *fn, const char *id,
                    const char *msg)
{
    struct redisq q;
    if (cli_connect(&q, cfg, cmd) < 0)
        return CLI_RUNTIME;
    int rc = CLI_RUNTIME;
    if (redisq_load_library(&q) < 0) {
        fprintf(stderr, "cru %s: %s\n", cmd, q.err);
    } else {
        const char *argv[] = {id};
        redisReply *r = redisq_fcall(&q, fn, 1, argv);
        if (!r) {
            fprintf(stderr, "cru %s: %s\n", cmd, q.err);
        } else if (r->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "cru %s: %s\n", cmd, strncmp(r->str, "ERR ", 4) ? r->str : r->str + 4);
            rc = CLI_USAGE;
        } else {
            printf("%s %s\n", id, r->type == REDIS_REPLY_STRING ? r->str : msg);
            rc = CLI_OK;
        }
        if (r)
            freeReplyObject(r);
    }
    redisq_close(&q);
    return rc;
}

int cmd_cancel(int argc, char **argv, struct config *cfg)
{
    static const char usage[] =
        "usage: cru cancel ID\n\n"
        "Cancels a job that has not ended: no further chunks are sent, and a worker\n"
        "aborts the target's upload session (Graph: DELETE on the upload URL).\n\n"
        "options:\n" CLI_COMMON_HELP;
    int rc;
    const char *id = ops_id_arg(argc, argv, cfg, "cancel", usage, &rc);
    return id ? ops_call(cfg, "cancel", "cru_cancel", id, "cancelled") : rc;
}

int cmd_retry(int argc, char **argv, struct config *cfg)
{
    static const char usage[] =
        "usage: cru retry ID\n\n"
        "Requeues a failed job from where it stopped: the worker asks the target\n"
        "what it holds and sends only the rest.\n\n"
        "options:\n" CLI_COMMON_HELP;
    int rc;
    const char *id = ops_id_arg(argc, argv, cfg, "retry", usage, &rc);
    return id ? ops_call(cfg, "retry", "cru_retry", id, "requeued") : rc;
}

static long long ops_num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? (long long)v->valuedouble : 0;
}

/* Marks each worker "live": true|false from its last heartbeat. */
static void ops_mark_workers(cJSON *st)
{
    long long now = ops_num(st, "now_ms");
    const cJSON *ws = cJSON_GetObjectItemCaseSensitive(st, "workers");
    const cJSON *w;
    cJSON_ArrayForEach(w, ws)
    {
        if (cJSON_IsObject(w))
            cJSON_AddBoolToObject((cJSON *)w, "live",
                                  now - ops_num(w, "last_seen_ms") <= OPS_WORKER_DEAD_MS);
    }
}

static void ops_print_stats(const cJSON *st)
{
    static const char *const states[] = {"queued", "running", "done", "failed", "cancelled"};
    const cJSON *ss = cJSON_GetObjectItemCaseSensitive(st, "states");
    printf("queue    length %lld, pending %lld, delayed %lld, dead %lld\n",
           ops_num(st, "stream"), ops_num(st, "pending"), ops_num(st, "delayed"),
           ops_num(st, "dead"));
    printf("jobs     %lld:", ops_num(st, "jobs"));
    for (int i = 0; i < 5; i++)
        printf(" %s %lld%s", states[i], ops_num(ss, states[i]), i < 4 ? "," : "\n");
    const cJSON *ws = cJSON_GetObjectItemCaseSensitive(st, "workers"), *w;
    int live = 0, dead = 0;
    cJSON_ArrayForEach(w, ws)
    {
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(w, "live")))
            live++;
        else
            dead++;
    }
    printf("workers  %d live, %d dead\n", live, dead);
    long long now = ops_num(st, "now_ms");
    cJSON_ArrayForEach(w, ws)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(w, "id");
        long long seen = now - ops_num(w, "last_seen_ms");
        printf("  %-32s slots %lld busy %lld  up %llds  last seen %.1fs ago%s\n",
               cJSON_IsString(id) ? id->valuestring : "?", ops_num(w, "slots"),
               ops_num(w, "busy"), (now - ops_num(w, "started_ms")) / 1000,
               (double)seen / 1000.0,
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(w, "live")) ? "" : "  DEAD");
    }
}

int cmd_stats(int argc, char **argv, struct config *cfg)
{
    static const char usage[] =
        "usage: cru stats [--json]\n\n"
        "Queue length, messages in flight (pending), waiting for a retry (delayed)\n"
        "and dead-lettered; jobs by state; workers and their heartbeats (a worker\n"
        "not seen for 10 s is marked dead).\n\n"
        "options:\n  --json            machine-readable output\n" CLI_COMMON_HELP;
    static const struct option opts[] = {
        {"json", no_argument, 0, 'j'},
        CLI_COMMON_OPTIONS,
        {0, 0, 0, 0},
    };
    int c, rc = CLI_OK, json = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'j')
            json = 1;
        else if (cli_common_option(cfg, c, "stats", usage, &rc) < 0)
            return rc;
    }
    if (optind < argc) {
        fprintf(stderr, "cru stats: unexpected argument '%s'\n", argv[optind]);
        return CLI_USAGE;
    }
    struct redisq q;
    if (cli_connect(&q, cfg, "stats") < 0)
        return CLI_RUNTIME;
    rc = CLI_RUNTIME;
    if (redisq_load_library(&q) < 0) {
        fprintf(stderr, "cru stats: %s\n", q.err);
    } else {
        const char *argv0[] = {"FCALL_RO", "cru_stats", "1", cfg->prefix};
        redisReply *r = redisq_cmd(&q, 4, argv0);
        cJSON *st = r && r->type == REDIS_REPLY_STRING ? cJSON_Parse(r->str) : NULL;
        if (!st) {
            fprintf(stderr, "cru stats: %s\n", r ? q.err : q.err);
        } else {
            ops_mark_workers(st);
            if (json) {
                char *s = cJSON_Print(st);
                printf("%s\n", s ? s : "{}");
                free(s);
            } else {
                ops_print_stats(st);
            }
            rc = CLI_OK;
        }
        cJSON_Delete(st);
        if (r)
            freeReplyObject(r);
    }
    redisq_close(&q);
    return rc;
}
