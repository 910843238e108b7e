/*
 * metrics.h — a worker process's Prometheus metrics, served on
 * `cru worker --metrics-addr HOST:PORT` at /metrics (text format 0.0.4),
 * with /healthz. Counters are process-wide atomics the slots bump; queue
 * and job gauges are read from Redis (cru_stats) at scrape time.
 */
#ifndef CRU_METRICS_H
#define CRU_METRICS_H

#include <stddef.h>

#include "config.h"

enum metrics_outcome { METRICS_DONE, METRICS_RETRY, METRICS_FAILED, METRICS_DEAD,
                       METRICS_NOUTCOMES };

/* Starts the HTTP server thread on addr ("127.0.0.1:9464", "[::1]:9464",
 * ":9464" for all addresses). Returns 0, or -1 with err set. */
int metrics_start(const struct config *cfg, const char *addr, int slots,
                  char *err, size_t errlen);
void metrics_stop(void);

/* A chunk's outcome, its bytes (counted when done) and how long it took. */
void metrics_chunk(enum metrics_outcome outcome, long long bytes, double seconds);

/* A retry, by reason: the HTTP status (408, 429, 5xx), or 0 for a
 * transport error (connect, timeout, reset). */
void metrics_retry(long status);

/* Slots busy right now (for the slots gauge). */
void metrics_busy(int busy);

#endif
