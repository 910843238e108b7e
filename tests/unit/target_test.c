/* target_test.c — what drivers share: fragment ends for sequential
 * targets, status classification, the driver table. */
#include "target.h"
#include "unit.h"

#define KiB 1024LL
#define MiB (1024 * KiB)

int main(void)
{
    const long long q = 320 * KiB, size = 100 * MiB;
    CHECK("fragment: a whole chunk", target_fragment_end(0, 10 * MiB, size, q, 60 * MiB) == 10 * MiB);
    CHECK("fragment: resume inside runs to the next multiple",
          target_fragment_end(500000, 10 * MiB, size, q, 60 * MiB) ==
              500000 + 31 * q); /* 10 MiB - 500000 is 30.5 fragments: 31 */
    CHECK("fragment: the last one may be short",
          target_fragment_end(99 * MiB + 7, size, size, q, 60 * MiB) == size);
    CHECK("fragment: never past the size",
          target_fragment_end(size - 10, size - 5, size, q, 0) == size);
    CHECK("fragment: capped at max", target_fragment_end(0, 90 * MiB, size, q, 60 * MiB) == 60 * MiB);
    CHECK("fragment: Google quantum, no cap",
          target_fragment_end(1, 8 * MiB, size, 256 * KiB, 0) == 1 + 32 * 256 * KiB);
    CHECK("status: 503 retries", target_status_rc(503) == TARGET_RETRY);
    CHECK("status: 429 retries", target_status_rc(429) == TARGET_RETRY);
    CHECK("status: no answer retries", target_status_rc(0) == TARGET_RETRY);
    CHECK("status: 404 is final", target_status_rc(404) == TARGET_FATAL);
    CHECK("status: 400 is final", target_status_rc(400) == TARGET_FATAL);
    static const char *const types[] = {"graph", "gdrive", "gcs", "s3", "azure", "tus"};
    for (size_t i = 0; i < 6; i++) {
        char name[64];
        snprintf(name, sizeof name, "driver table: %s", types[i]);
        CHECK(name, target_find(types[i]) != NULL);
    }
    CHECK("driver table: unknown", target_find("dropbox") == NULL);
    CHECK("s3 and azure are parallel", target_find("s3")->parallel && target_find("azure")->parallel);
    CHECK("graph is sequential with a status query",
          !target_find("graph")->parallel && target_find("graph")->query);
    return unit_exit();
}
