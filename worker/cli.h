/*
 * cli.h — what the subcommands share: the common flags (--redis, --prefix,
 * --log-level, --help), connecting, and human-readable numbers.
 */
#ifndef CRU_CLI_H
#define CRU_CLI_H

#include <getopt.h>
#include <stddef.h>

#include "config.h"
#include "redisq.h"

/* Exit codes: 0 ok, 1 the job failed (watch), 2 usage or refused input,
 * 3 Redis unreachable or another runtime failure. */
enum { CLI_OK = 0, CLI_JOB_FAILED = 1, CLI_USAGE = 2, CLI_RUNTIME = 3 };

#define CLI_COMMON_OPTIONS                      \
    {"redis", required_argument, 0, 'R'},       \
    {"prefix", required_argument, 0, 'P'},      \
    {"log-level", required_argument, 0, 'L'},   \
    {"help", no_argument, 0, 'h'}

#define CLI_COMMON_HELP                                                          \
    "  --redis URL       redis://[user:pass@]host:port[/db] or unix:///path\n"   \
    "                    (env CRU_REDIS_URL, default redis://127.0.0.1:6379/0)\n" \
    "  --prefix P        key prefix (env CRU_PREFIX, default cru)\n"             \
    "  --log-level L     debug|info|warn|error (env CRU_LOG_LEVEL)\n"            \
    "  -h, --help        this text\n"

/*
 * Handles a common option returned by getopt_long. Returns 1 when handled,
 * 0 when opt is not a common option, or -1 after printing an error (or the
 * help, for -h: then *exit_code is CLI_OK).
 */
int cli_common_option(struct config *cfg, int opt, const char *cmd,
                      const char *usage, int *exit_code);

/* Connects to Redis; prints the error and returns -1 on failure. */
int cli_connect(struct redisq *q, const struct config *cfg, const char *cmd);

/* "10.0 MiB" */
void cli_bytes(long long n, char *out, size_t outlen);

/* "2026-11-25 07:33:29" (UTC) from milliseconds; "-" for 0 or garbage. */
void cli_time(const char *ms, char *out, size_t outlen);

#endif
