/*
 * redisq.h — the Redis side of cru: one synchronous hiredis connection per
 * thread, the `cru` function library (common/cru.lua, compiled in), and the
 * key names of the contract (prefix:chunks, prefix:job:<id>, …).
 *
 * Every state change goes through a function of the library (FCALL), so the
 * web app, the CLI and the workers share one implementation of it.
 */
#ifndef CRU_REDISQ_H
#define CRU_REDISQ_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "config.h"

#define REDISQ_GROUP "workers"

struct redisq {
    redisContext *c;
    const struct config *cfg;
    char err[512];          /* the last failure, human-readable */
};

/* Connects, authenticates and selects the database. Returns 0, or -1 with
 * q->err set. q->c is NULL after a failure. */
int redisq_connect(struct redisq *q, const struct config *cfg);
void redisq_close(struct redisq *q);

/* Loads (or upgrades) the function library: FUNCTION LOAD REPLACE. */
int redisq_load_library(struct redisq *q);

/* Creates the stream and its consumer group when missing. */
int redisq_ensure_group(struct redisq *q);

/*
 * Runs a command given as NUL-terminated strings. Returns the reply (caller
 * frees with freeReplyObject), or NULL when the connection failed (q->err
 * set; the caller should reconnect). An error reply is returned as a reply
 * of type REDIS_REPLY_ERROR, and also copied to q->err.
 */
redisReply *redisq_cmd(struct redisq *q, int argc, const char **argv);
redisReply *redisq_cmdf(struct redisq *q, const char *fmt, ...);

/* FCALL fn 1 <prefix> args…; same ownership as redisq_cmd. */
redisReply *redisq_fcall(struct redisq *q, const char *fn, int argc, const char **argv);

/* Writes "<prefix>:<name>" into buf; name is printf-formatted. */
void redisq_key(const struct redisq *q, char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Looks up field in a flat [field, value, …] array reply (HGETALL, stream
 * entry); returns the value string or NULL. */
const char *redisq_field(const redisReply *arr, const char *field);

/* The embedded Lua source of the function library. */
extern const char cru_lua_source[];

#endif
