/*
 * cli.c — helpers shared by the subcommands.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int cli_common_option(struct config *cfg, int opt, const char *cmd,
                      const char *usage, int *exit_code)
{
    static const char *const names[] = {['R'] = "redis", ['P'] = "prefix",
                                        ['L'] = "log-level"};
    char err[512];
    switch (opt) {
    case 'h':
        fputs(usage, stdout);
        *exit_code = CLI_OK;
        return -1;
    case 'R':
    case 'P':
    case 'L':
        if (config_set(cfg, names[opt], optarg, err, sizeof err) < 0) {
            fprintf(stderr, "cru %s: %s\n", cmd, err);
            *exit_code = CLI_USAGE;
            return -1;
        }
        return 1;
    case '?':
        fprintf(stderr, "cru %s: see 'cru %s --help'\n", cmd, cmd);
        *exit_code = CLI_USAGE;
        return -1;
    default:
        return 0;
    }
}

int cli_connect(struct redisq *q, const struct config *cfg, const char *cmd)
{
    if (redisq_connect(q, cfg) < 0) {
        fprintf(stderr, "cru %s: %s\n", cmd, q->err);
        return -1;
    }
    return 0;
}

void cli_bytes(long long n, char *out, size_t outlen)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, outlen, "%lld B", n);
    else
        snprintf(out, outlen, "%.1f %s", v, units[u]);
}

void cli_time(const char *ms, char *out, size_t outlen)
{
    long long v = ms ? atoll(ms) : 0;
    if (v <= 0) {
        snprintf(out, outlen, "-");
        return;
    }
    time_t t = (time_t)(v / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, outlen, "%Y-%m-%d %H:%M:%S UTC", &tm);
}
