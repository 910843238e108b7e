/*
 * target.c — the driver table and what drivers share.
 */
#include "target.h"

#include <string.h>

const struct target_driver *target_find(const char *type)
{
    for (size_t i = 0; target_drivers[i]; i++)
        if (strcmp(target_drivers[i]->type, type) == 0)
            return target_drivers[i];
    return NULL;
}

enum target_rc target_status_rc(long status)
{
    if (status == 0 || status == 408 || status == 429 || status == 500 ||
        status == 502 || status == 503 || status == 504)
        return TARGET_RETRY;
    return TARGET_FATAL;
}

long long target_fragment_end(long long next, long long end, long long size,
                              long long quantum, long long max)
{
    long long stop = end;
    if (stop < size && (stop - next) % quantum)
        stop = next + ((stop - next) / quantum + 1) * quantum;
    if (max > 0 && stop - next > max)
        stop = next + max;
    return stop > size ? size : stop;
}
