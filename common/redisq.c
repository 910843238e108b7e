/*
 * redisq.c — hiredis connection handling and the FCALL helpers.
 */
#include "redisq.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* A command blocks at most this long (XREADGROUP BLOCK uses less). */
#define REDISQ_TIMEOUT_S 30

static void redisq_set_err_from_ctx(struct redisq *q, const char *what)
{
    const struct redis_addr *a = &q->cfg->redis;
    if (a->unix_path[0])
        snprintf(q->err, sizeof q->err, "redis %s (unix:%.200s): %.200s", what,
                 a->unix_path, q->c ? q->c->errstr : "out of memory");
    else
        snprintf(q->err, sizeof q->err, "redis %s (%.200s:%d): %.200s", what, a->host,
                 a->port, q->c ? q->c->errstr : "out of memory");
}

int redisq_connect(struct redisq *q, const struct config *cfg)
{
    const struct redis_addr *a = &cfg->redis;
    struct timeval tv = {5, 0};
    q->cfg = cfg;
    q->err[0] = '\0';
    q->c = a->unix_path[0] ? redisConnectUnixWithTimeout(a->unix_path, tv)
                           : redisConnectWithTimeout(a->host, a->port, tv);
    if (!q->c || q->c->err) {
        redisq_set_err_from_ctx(q, "connect");
        redisq_close(q);
        return -1;
    }
    struct timeval cmd_tv = {REDISQ_TIMEOUT_S, 0};
    redisSetTimeout(q->c, cmd_tv);

    redisReply *r = NULL;
    if (a->pass[0]) {
        r = a->user[0] ? redisCommand(q->c, "AUTH %s %s", a->user, a->pass)
                       : redisCommand(q->c, "AUTH %s", a->pass);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            snprintf(q->err, sizeof q->err, "redis AUTH: %s",
                     r ? r->str : q->c->errstr);
            goto fail;
        }
        freeReplyObject(r);
    }
    if (a->db) {
        r = redisCommand(q->c, "SELECT %d", a->db);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            snprintf(q->err, sizeof q->err, "redis SELECT %d: %s", a->db,
                     r ? r->str : q->c->errstr);
            goto fail;
        }
        freeReplyObject(r);
    }
    return 0;
fail:
    if (r)
        freeReplyObject(r);
    redisq_close(q);
    return -1;
}

void redisq_close(struct redisq *q)
{
    if (q->c)
        redisFree(q->c);
    q->c = NULL;
}

static redisReply *redisq_check(struct redisq *q, redisReply *r)
{
    if (!r) {
        redisq_set_err_from_ctx(q, "connection lost");
        redisq_close(q);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR)
        snprintf(q->err, sizeof q->err, "%s", r->str);
    return r;
}

redisReply *redisq_cmd(struct redisq *q, int argc, const char **argv)
{
    if (!q->c) {
        snprintf(q->err, sizeof q->err, "redis: not connected");
        return NULL;
    }
    return redisq_check(q, redisCommandArgv(q->c, argc, argv, NULL));
}

redisReply *redisq_cmdf(struct redisq *q, const char *fmt, ...)
{
    if (!q->c) {
        snprintf(q->err, sizeof q->err, "redis: not connected");
        return NULL;
    }
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(q->c, fmt, ap);
    va_end(ap);
    return redisq_check(q, r);
}

redisReply *redisq_fcall(struct redisq *q, const char *fn, int argc, const char **argv)
{
    const char *full[32];
    if (argc + 4 > 32) {
        snprintf(q->err, sizeof q->err, "redisq_fcall: too many arguments");
        return NULL;
    }
    full[0] = "FCALL";
    full[1] = fn;
    full[2] = "1";
    full[3] = q->cfg->prefix;
    for (int i = 0; i < argc; i++)
        full[4 + i] = argv[i];
    return redisq_cmd(q, argc + 4, full);
}

int redisq_load_library(struct redisq *q)
{
    const char *argv[] = {"FUNCTION", "LOAD", "REPLACE", cru_lua_source};
    redisReply *r = redisq_cmd(q, 4, argv);
    if (!r)
        return -1;
    int rc = r->type == REDIS_REPLY_ERROR ? -1 : 0;
    if (rc < 0)
        snprintf(q->err, sizeof q->err, "loading the cru function library: %s%s",
                 r->str, strstr(r->str, "unknown command")
                             ? " (cru needs Redis 7 or later, or Valkey)" : "");
    freeReplyObject(r);
    return rc;
}

int redisq_ensure_group(struct redisq *q)
{
    char key[128];
    redisq_key(q, key, sizeof key, "chunks");
    const char *argv[] = {"XGROUP", "CREATE", key, REDISQ_GROUP, "0", "MKSTREAM"};
    redisReply *r = redisq_cmd(q, 6, argv);
    if (!r)
        return -1;
    int rc = 0;
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0)
        rc = -1;
    freeReplyObject(r);
    return rc;
}

void redisq_key(const struct redisq *q, char *buf, size_t len, const char *fmt, ...)
{
    int n = snprintf(buf, len, "%s:", q->cfg->prefix);
    if (n < 0 || (size_t)n >= len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, len - (size_t)n, fmt, ap);
    va_end(ap);
}

const char *redisq_field(const redisReply *arr, const char *field)
{
    if (!arr || arr->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < arr->elements; i += 2) {
        const redisReply *k = arr->element[i], *v = arr->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
            strcmp(k->str, field) == 0)
            return v->str;
    }
    return NULL;
}
