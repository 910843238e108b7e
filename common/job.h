/*
 * job.h — the job as a worker sees it: the hash p:job:<id> read back from
 * Redis, its spec parsed with cJSON, and the chunk arithmetic.
 *
 * The spec was validated by cru_submit (common/cru.lua) when it entered
 * Redis; job_load checks again what the worker relies on, so a hash edited
 * by hand fails the job with a clear message instead of crashing a worker.
 */
#ifndef CRU_JOB_H
#define CRU_JOB_H

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <stddef.h>

#define JOB_ID_MAX 128

struct job {
    char id[JOB_ID_MAX + 1];
    char state[16];
    long long size;          /* -1 until planned */
    long long chunk_size;
    long long chunks;        /* -1 until planned */
    long long chunks_done;
    long long bytes_done;
    cJSON *spec;             /* owned; freed by job_free */
    const cJSON *source;     /* in spec: string or {"url", …} */
    const char *source_url;  /* in spec */
    const cJSON *target;     /* in spec */
    const char *target_type; /* in spec */
    char *session;           /* owned: the target's session (e.g. upload URL), or NULL */
    char *source_version;    /* owned: recorded at plan time, or NULL */
};

/* Returns 1 if id matches [A-Za-z0-9._-]{1,128}. */
int job_id_valid(const char *id);

/*
 * Fills job from an HGETALL reply. Returns 0; -1 with a message in err when
 * the hash is missing or broken (the message names the field). The job must
 * be released with job_free either way.
 */
int job_load(struct job *job, const char *id, const redisReply *hash,
             char *err, size_t errlen);
void job_free(struct job *job);

/* Number of chunks for size bytes in chunks of cs bytes (0 for size 0). */
long long job_chunk_count(long long size, long long cs);

/* Byte range of chunk n: offset and length. Returns -1 if n is out of range. */
int job_chunk_range(long long size, long long cs, long long n,
                    long long *off, long long *len);

/* Returns the string member name of obj, or NULL. */
const char *job_json_str(const cJSON *obj, const char *name);

#endif
