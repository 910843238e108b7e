/*
 * unit.h — the tiny harness of the C unit tests: each CHECK prints
 * "PASS name" or "FAIL name: why" (the protocol tests/run.sh counts), and
 * unit_exit() returns non-zero when any check failed.
 */
#ifndef CRU_UNIT_H
#define CRU_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_failed;

#define CHECK(name, cond)                                                     \
    do {                                                                      \
        if (cond)                                                             \
            printf("PASS %s\n", name);                                        \
        else {                                                                \
            printf("FAIL %s: %s (%s:%d)\n", name, #cond, __FILE__, __LINE__); \
            unit_failed = 1;                                                  \
        }                                                                     \
    } while (0)

#define CHECK_STR(name, want, got)                                                   \
    do {                                                                             \
        const char *w_ = (want), *g_ = (got);                                        \
        if (g_ && strcmp(w_, g_) == 0)                                               \
            printf("PASS %s\n", name);                                               \
        else {                                                                       \
            printf("FAIL %s: want \"%s\", got \"%s\" (%s:%d)\n", name, w_,           \
                   g_ ? g_ : "(null)", __FILE__, __LINE__);                          \
            unit_failed = 1;                                                         \
        }                                                                            \
    } while (0)

#define unit_exit() (unit_failed ? 1 : 0)

#endif
