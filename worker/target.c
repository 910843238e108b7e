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
