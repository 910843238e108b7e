/*
 * main.c — the `cru` binary: subcommand dispatch.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "log.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv, struct config *cfg);
    const char *summary;
} commands[] = {
    {"init", cmd_init, "load (or upgrade) the Redis function library"},
    {"worker", cmd_worker, "run a worker: upload chunks from the queue"},
    {"submit", cmd_submit, "submit an upload job, print its id"},
    {"status", cmd_status, "show a job (--json for machines)"},
    {"watch", cmd_watch, "live progress bar until the job ends"},
    {"jobs", cmd_jobs, "list jobs, newest first (--state S)"},
    {"cancel", cmd_cancel, "cancel a job and abort its target session"},
    {"retry", cmd_retry, "requeue a failed job from where it stopped"},
    {"stats", cmd_stats, "queue, delayed, dead, workers, jobs by state"},
    {"top", cmd_top, "live view: workers, queue, throughput, running jobs"},
};

static void usage(FILE *f)
{
    fprintf(f, "cru — cloud resumable upload: upload large files to SharePoint/OneDrive\n"
               "through Redis and stateless workers.\n\n"
               "usage: cru COMMAND [options]   (cru COMMAND --help for its options)\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nenvironment: CRU_REDIS_URL, CRU_PREFIX, CRU_CONCURRENCY, CRU_SOURCE_ROOT,\n"
               "CRU_LOG_LEVEL, CRU_LEASE_MS, CRU_MAX_DELIVERIES, CRU_MAX_ATTEMPTS,\n"
               "CRU_RETRY_BASE_MS, CRU_RETRY_CAP_MS, CRU_GRACE_MS (flags win over the environment).\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("cru %s\n", CRU_VERSION);
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) != 0)
            continue;
        struct config cfg;
        char err[512];
        if (config_load_env(&cfg, err, sizeof err) < 0) {
            fprintf(stderr, "cru: %s\n", err);
            return CLI_USAGE;
        }
        log_set_level((enum log_level)cfg.log_level);
        curl_global_init(CURL_GLOBAL_DEFAULT);
        int rc = commands[i].run(argc - 1, argv + 1, &cfg);
        curl_global_cleanup();
        return rc;
    }
    fprintf(stderr, "cru: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return CLI_USAGE;
}
