/*
 * cmd_worker.c — `cru init` and `cru worker`.
 */
#include <stdio.h>

#include "cli.h"
#include "cmd.h"
#include "worker.h"

int cmd_init(int argc, char **argv, struct config *cfg)
{
    static const char usage[] =
        "usage: cru init [options]\n\n"
        "Loads (or upgrades) the cru function library into Redis and creates the\n"
        "queue, so apps can FCALL cru_submit before any worker has started.\n\n"
        "options:\n" CLI_COMMON_HELP;
    static const struct option opts[] = {CLI_COMMON_OPTIONS, {0, 0, 0, 0}};
    int c, rc = CLI_OK;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1)
        if (cli_common_option(cfg, c, "init", usage, &rc) < 0)
            return rc;
    if (optind < argc) {
        fprintf(stderr, "cru init: unexpected argument '%s'\n", argv[optind]);
        return CLI_USAGE;
    }
    struct redisq q;
    if (cli_connect(&q, cfg, "init") < 0)
        return CLI_RUNTIME;
    if (redisq_load_library(&q) < 0 || redisq_ensure_group(&q) < 0) {
        fprintf(stderr, "cru init: %s\n", q.err);
        redisq_close(&q);
        return CLI_RUNTIME;
    }
    redisq_close(&q);
    printf("cru: function library loaded, queue %s:chunks ready\n", cfg->prefix);
    return CLI_OK;
}

int cmd_worker(int argc, char **argv, struct config *cfg)
{
    static const char usage[] =
        "usage: cru worker [options]\n\n"
        "Uploads chunks from the queue until SIGTERM or SIGINT (finishes the\n"
        "chunks in flight, then exits 0; a second signal exits at once).\n\n"
        "options:\n"
        "  -c, --concurrency N   chunk slots (threads) in this process\n"
        "                        (env CRU_CONCURRENCY, default 4)\n"
        "  --source-root DIR     file sources must lie under DIR (env CRU_SOURCE_ROOT;\n"
        "                        unset: file sources are refused)\n"
        "  --lease-ms MS         lease on a chunk in flight, renewed every third; an\n"
        "                        idle message is taken over after it (CRU_LEASE_MS, 60000)\n"
        "  --max-deliveries N    dead-letter a message delivered more often (5)\n"
        "  --max-attempts N      fail a job after N transient failures (10)\n"
        "  --retry-base-ms MS    backoff base (1000); --retry-cap-ms MS: cap (300000)\n"
        "  --grace-ms MS         on SIGTERM, time for chunks in flight (25000)\n"
        "  --rate-limit BYTES    per slot, bytes/s sent (K/M suffixes; CRU_RATE_LIMIT, 0: none)\n"
        "  --metrics-addr H:P    serve Prometheus /metrics and /healthz there\n"
        "                        (CRU_METRICS_ADDR, e.g. 127.0.0.1:9464; off by default)\n" CLI_COMMON_HELP;
    static const struct option opts[] = {
        {"concurrency", required_argument, 0, 'c'},
        {"source-root", required_argument, 0, 'S'},
        {"lease-ms", required_argument, 0, 1},
        {"max-deliveries", required_argument, 0, 1},
        {"max-attempts", required_argument, 0, 1},
        {"retry-base-ms", required_argument, 0, 1},
        {"retry-cap-ms", required_argument, 0, 1},
        {"grace-ms", required_argument, 0, 1},
        {"rate-limit", required_argument, 0, 1},
        {"metrics-addr", required_argument, 0, 1},
        CLI_COMMON_OPTIONS,
        {0, 0, 0, 0},
    };
    int c, rc = CLI_OK, idx = 0;
    char err[512];
    while ((c = getopt_long(argc, argv, "c:h", opts, &idx)) != -1) {
        if (c == 'c' || c == 'S' || c == 1) {
            const char *name = c == 'c' ? "concurrency" : c == 'S' ? "source-root" : opts[idx].name;
            if (config_set(cfg, name, optarg, err, sizeof err) < 0) {
                fprintf(stderr, "cru worker: %s\n", err);
                return CLI_USAGE;
            }
        } else if (cli_common_option(cfg, c, "worker", usage, &rc) < 0) {
            return rc;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "cru worker: unexpected argument '%s'\n", argv[optind]);
        return CLI_USAGE;
    }
    return worker_run(cfg) == 0 ? CLI_OK : CLI_RUNTIME;
}
