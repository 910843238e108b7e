/*
 * cmd_submit.c — `cru submit SOURCE --target JSON`: builds the job spec
 * and hands it to FCALL cru_submit, the same call a web app makes.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"

/* A relative path is made absolute against the current directory: the spec
 * needs absolute paths (the worker resolves them under its source root). */
static cJSON *submit_source(const char *arg)
{
    if (arg[0] == '/' || strstr(arg, "://"))
        return cJSON_CreateString(arg);
    char abs[4096];
    if (!realpath(arg, abs)) {
        fprintf(stderr, "cru submit: %s: not found (give an absolute path or file:// URL "
                        "if the file exists only where the workers run)\n", arg);
        return NULL;
    }
    return cJSON_CreateString(abs);
}

int cmd_submit(int argc, char **argv, struct config *cfg)
{
    static const char usage[] =
        "usage: cru submit SOURCE --target JSON [options]\n\n"
        "Submits an upload job and prints its id. SOURCE is an absolute path or a\n"
        "file:// URL as the workers see it (a relative path is made absolute).\n\n"
        "options:\n"
        "  -t, --target JSON     where to upload, e.g. '{\"type\":\"graph\",\"upload_url\":\"https://…\"}'\n"
        "                        or '{\"type\":\"graph\",\"drive_id\":\"…\",\"path\":\"dir/f.bin\",\"token\":\"…\"}'\n"
        "  --chunk-size N        bytes per chunk (K/M suffixes; graph: multiple of 320K,\n"
        "                        at most 60M; default 10M)\n"
        "  --id ID               idempotency key: submitting it again returns the same job\n"
        "  --meta JSON           an object echoed back on the job for dashboards\n" CLI_COMMON_HELP;
    static const struct option opts[] = {
        {"target", required_argument, 0, 't'},
        {"chunk-size", required_argument, 0, 'C'},
        {"id", required_argument, 0, 'I'},
        {"meta", required_argument, 0, 'M'},
        CLI_COMMON_OPTIONS,
        {0, 0, 0, 0},
    };
    const char *target = NULL, *chunk_size = NULL, *id = NULL, *meta = NULL;
    int c, rc = CLI_OK;
    while ((c = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
        switch (c) {
        case 't': target = optarg; break;
        case 'C': chunk_size = optarg; break;
        case 'I': id = optarg; break;
        case 'M': meta = optarg; break;
        default:
            if (cli_common_option(cfg, c, "submit", usage, &rc) < 0)
                return rc;
        }
    }
    if (optind != argc - 1 || !target) {
        fprintf(stderr, "cru submit: needs one SOURCE and --target JSON (see cru submit --help)\n");
        return CLI_USAGE;
    }

    cJSON *spec = cJSON_CreateObject();
    cJSON *src = submit_source(argv[optind]);
    cJSON *tj = cJSON_Parse(target);
    cJSON *mj = meta ? cJSON_Parse(meta) : NULL;
    long long cs = 0;
    rc = CLI_USAGE;
    if (!src)
        goto out;
    if (!tj) {
        fprintf(stderr, "cru submit: --target: not valid JSON\n");
        goto out;
    }
    if (meta && !mj) {
        fprintf(stderr, "cru submit: --meta: not valid JSON\n");
        goto out;
    }
    if (chunk_size && config_parse_size(chunk_size, 1, 1LL << 40, &cs) < 0) {
        fprintf(stderr, "cru submit: --chunk-size: a positive number of bytes (K/M/G suffixes)\n");
        goto out;
    }
    if (id)
        cJSON_AddStringToObject(spec, "id", id);
    cJSON_AddItemToObject(spec, "source", src);
    src = NULL;
    cJSON_AddItemToObject(spec, "target", tj);
    tj = NULL;
    if (cs)
        cJSON_AddNumberToObject(spec, "chunk_size", (double)cs);
    if (mj) {
        cJSON_AddItemToObject(spec, "meta", mj);
        mj = NULL;
    }
    char *json = cJSON_PrintUnformatted(spec);
    struct redisq q;
    rc = CLI_RUNTIME;
    if (json && cli_connect(&q, cfg, "submit") == 0) {
        if (redisq_load_library(&q) < 0) {
            fprintf(stderr, "cru submit: %s\n", q.err);
        } else {
            const char *args[] = {json};
            redisReply *r = redisq_fcall(&q, "cru_submit", 1, args);
            if (!r) {
                fprintf(stderr, "cru submit: %s\n", q.err);
            } else if (r->type == REDIS_REPLY_ERROR) {
                const char *msg = strncmp(r->str, "ERR ", 4) == 0 ? r->str + 4 : r->str;
                fprintf(stderr, "cru submit: %s\n", msg);
                rc = CLI_USAGE;
            } else if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) {
                printf("%s\n", r->str);
                rc = CLI_OK;
            }
            if (r)
                freeReplyObject(r);
        }
        redisq_close(&q);
    }
    free(json);
out:
    cJSON_Delete(spec);
    cJSON_Delete(src);
    cJSON_Delete(tj);
    cJSON_Delete(mj);
    return rc;
}
