/*
 * job.c — job hash loading and chunk arithmetic.
 */
#include "job.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redisq.h"

int job_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n < 1 || n > JOB_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

long long job_chunk_count(long long size, long long cs)
{
    if (size <= 0 || cs <= 0)
        return 0;
    return size / cs + (size % cs != 0);
}

int job_chunk_range(long long size, long long cs, long long n,
                    long long *off, long long *len)
{
    if (n < 0 || n >= job_chunk_count(size, cs))
        return -1;
    *off = n * cs;
    *len = size - *off < cs ? size - *off : cs;
    return 0;
}

const char *job_json_str(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Parses a counter field: empty or absent gives dflt; garbage gives -2. */
static long long job_num(const redisReply *hash, const char *field, long long dflt)
{
    const char *s = redisq_field(hash, field);
    if (!s || !*s)
        return dflt;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < 0)
        return -2;
    return v;
}

static char *job_strdup_field(const redisReply *hash, const char *field)
{
    const char *s = redisq_field(hash, field);
    return s && *s ? strdup(s) : NULL;
}

int job_load(struct job *job, const char *id, const redisReply *hash,
             char *err, size_t errlen)
{
    memset(job, 0, sizeof *job);
    snprintf(job->id, sizeof job->id, "%s", id);
    if (!hash || hash->type != REDIS_REPLY_ARRAY || hash->elements == 0) {
        snprintf(err, errlen, "no such job");
        return -1;
    }
    const char *state = redisq_field(hash, "state");
    snprintf(job->state, sizeof job->state, "%s", state ? state : "");
    static const char *const counters[] = {"size", "chunk_size", "chunks",
                                           "chunks_done", "bytes_done"};
    long long *dst[] = {&job->size, &job->chunk_size, &job->chunks,
                        &job->chunks_done, &job->bytes_done};
    long long dflt[] = {-1, -1, -1, 0, 0};
    for (int i = 0; i < 5; i++) {
        *dst[i] = job_num(hash, counters[i], dflt[i]);
        if (*dst[i] == -2) {
            snprintf(err, errlen, "job hash: field %s is not a number", counters[i]);
            return -1;
        }
    }
    if (job->chunk_size <= 0) {
        snprintf(err, errlen, "job hash: chunk_size missing");
        return -1;
    }
    job->session = job_strdup_field(hash, "session");
    job->source_version = job_strdup_field(hash, "source_version");

    const char *raw = redisq_field(hash, "spec");
    if (!raw) {
        snprintf(err, errlen, "job hash: spec missing");
        return -1;
    }
    job->spec = cJSON_Parse(raw);
    if (!cJSON_IsObject(job->spec)) {
        snprintf(err, errlen, "job hash: spec is not a JSON object");
        return -1;
    }
    job->source = cJSON_GetObjectItemCaseSensitive(job->spec, "source");
    job->source_url = cJSON_IsString(job->source) ? job->source->valuestring
                                                  : job_json_str(job->source, "url");
    if (!job->source_url) {
        snprintf(err, errlen, "spec: source missing");
        return -1;
    }
    job->target = cJSON_GetObjectItemCaseSensitive(job->spec, "target");
    job->target_type = job_json_str(job->target, "type");
    if (!job->target_type) {
        snprintf(err, errlen, "spec: target.type missing");
        return -1;
    }
    return 0;
}

void job_free(struct job *job)
{
    cJSON_Delete(job->spec);
    free(job->session);
    free(job->source_version);
    job->spec = NULL;
    job->session = job->source_version = NULL;
}
