/*
 * worker.h — `cru worker`: the chunk-processing loop.
 */
#ifndef CRU_WORKER_H
#define CRU_WORKER_H

#include "config.h"

/* Runs cfg->concurrency slots until SIGTERM/SIGINT; returns the exit code. */
int worker_run(const struct config *cfg);

#endif
