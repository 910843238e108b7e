/* job_test.c — chunk arithmetic, ids, and loading broken job hashes. */
#include <stdlib.h>

#include "job.h"
#include "unit.h"

#define MiB (1024LL * 1024)

static void test_chunks(void)
{
    long long off, len;
    CHECK("chunks: 0 bytes -> 0 chunks", job_chunk_count(0, 10 * MiB) == 0);
    CHECK("chunks: 1 byte -> 1 chunk", job_chunk_count(1, 10 * MiB) == 1);
    CHECK("chunks: exactly one chunk", job_chunk_count(327680, 327680) == 1);
    CHECK("chunks: exact multiple", job_chunk_count(30 * MiB, 10 * MiB) == 3);
    CHECK("chunks: one byte over", job_chunk_count(30 * MiB + 1, 10 * MiB) == 4);
    CHECK("chunks: one byte under", job_chunk_count(30 * MiB - 1, 10 * MiB) == 3);
    CHECK("chunks: 100 MiB in 60 MiB", job_chunk_count(100 * MiB, 60 * MiB) == 2);
    CHECK("chunks: bad chunk size", job_chunk_count(100, 0) == 0);
    CHECK("range: first", job_chunk_range(30 * MiB + 1, 10 * MiB, 0, &off, &len) == 0 &&
                              off == 0 && len == 10 * MiB);
    CHECK("range: last is the one byte over",
          job_chunk_range(30 * MiB + 1, 10 * MiB, 3, &off, &len) == 0 && off == 30 * MiB &&
              len == 1);
    CHECK("range: exact multiple, last full",
          job_chunk_range(30 * MiB, 10 * MiB, 2, &off, &len) == 0 && off == 20 * MiB &&
              len == 10 * MiB);
    CHECK("range: index == chunks refused", job_chunk_range(30 * MiB, 10 * MiB, 3, &off, &len) < 0);
    CHECK("range: negative refused", job_chunk_range(30 * MiB, 10 * MiB, -1, &off, &len) < 0);
    CHECK("range: empty file has none", job_chunk_range(0, 10 * MiB, 0, &off, &len) < 0);
    CHECK("range: 1 byte", job_chunk_range(1, 10 * MiB, 0, &off, &len) == 0 && off == 0 && len == 1);
}

static void test_ids(void)
{
    char long_id[130];
    memset(long_id, 'a', 129);
    long_id[129] = '\0';
    CHECK("id: plain", job_id_valid("report-2026.v1_final"));
    CHECK("id: empty refused", !job_id_valid(""));
    CHECK("id: slash refused", !job_id_valid("a/b"));
    CHECK("id: space refused", !job_id_valid("a b"));
    CHECK("id: 129 chars refused", !job_id_valid(long_id));
    long_id[128] = '\0';
    CHECK("id: 128 chars ok", job_id_valid(long_id));
}

/* Builds an HGETALL-shaped reply from field/value pairs. */
static redisReply *hash_of(const char **kv, size_t n)
{
    redisReply *r = calloc(1, sizeof *r);
    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = calloc(n, sizeof *r->element);
    for (size_t i = 0; i < n; i++) {
        redisReply *e = calloc(1, sizeof *e);
        e->type = REDIS_REPLY_STRING;
        e->str = (char *)kv[i];
        e->len = strlen(kv[i]);
        r->element[i] = e;
    }
    return r;
}

static void hash_free(redisReply *r)
{
    for (size_t i = 0; i < r->elements; i++)
        free(r->element[i]);
    free(r->element);
    free(r);
}

static void load_case(const char *name, const char **kv, size_t n, const char *want_err)
{
    struct job job;
    char err[256] = "";
    redisReply *h = hash_of(kv, n);
    int rc = job_load(&job, "j1", h, err, sizeof err);
    if (want_err)
        CHECK_STR(name, want_err, rc < 0 ? err : "(loaded)");
    else
        CHECK(name, rc == 0);
    job_free(&job);
    hash_free(h);
}

static void test_load(void)
{
    const char *good[] = {"state", "queued", "chunk_size", "327680", "size", "",
                          "spec", "{\"source\":\"/a\",\"target\":{\"type\":\"graph\"}}"};
    load_case("load: good hash", good, 8, NULL);
    load_case("load: empty hash", good, 0, "no such job");
    const char *nan[] = {"state", "queued", "chunk_size", "lots", "spec", "{}"};
    load_case("load: garbage counter", nan, 6, "job hash: field chunk_size is not a number");
    const char *nospec[] = {"state", "queued", "chunk_size", "327680"};
    load_case("load: spec missing", nospec, 4, "job hash: spec missing");
    const char *badspec[] = {"state", "queued", "chunk_size", "327680", "spec", "{not json"};
    load_case("load: spec not JSON", badspec, 6, "job hash: spec is not a JSON object");
    const char *nosrc[] = {"state", "queued", "chunk_size", "327680", "spec",
                           "{\"target\":{\"type\":\"graph\"}}"};
    load_case("load: spec without source", nosrc, 6, "spec: source missing");
    const char *notype[] = {"state", "queued", "chunk_size", "327680", "spec",
                            "{\"source\":{\"url\":\"/a\"},\"target\":{}}"};
    load_case("load: spec without target.type", notype, 6, "spec: target.type missing");
    const char *nocs[] = {"state", "queued", "spec", "{}"};
    load_case("load: chunk_size missing", nocs, 4, "job hash: chunk_size missing");
}

int main(void)
{
    test_chunks();
    test_ids();
    test_load();
    return unit_exit();
}
