/*
 * log.h — one logfmt line per event on stderr, and the redaction that keeps
 * secrets (tokens, upload URLs, presigned queries) out of every line.
 *
 *   ts=2026-11-25T07:33:29.123Z level=info job=abc chunk=3 msg="chunk done"
 *
 * Any URL that reaches a log line, an event, an error on a job or `cru
 * status` must first go through log_redact_url().
 */
#ifndef CRU_LOG_H
#define CRU_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Parses "debug|info|warn|error"; returns -1 for anything else. */
int log_level_parse(const char *s);
void log_set_level(enum log_level level);

/* job may be NULL and chunk < 0 when the line is not about a chunk. */
void log_write(enum log_level level, const char *job, long long chunk,
               const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define log_debug(job, chunk, ...) log_write(LOG_DEBUG, job, chunk, __VA_ARGS__)
#define log_info(job, chunk, ...)  log_write(LOG_INFO, job, chunk, __VA_ARGS__)
#define log_warn(job, chunk, ...)  log_write(LOG_WARN, job, chunk, __VA_ARGS__)
#define log_error(job, chunk, ...) log_write(LOG_ERROR, job, chunk, __VA_ARGS__)

/*
 * Writes a loggable form of url into out (always NUL-terminated):
 * userinfo is dropped, a query string becomes "?…", and with whole_path
 * set the path becomes "/…" too (for URLs whose path is itself the secret,
 * such as Graph and Google upload URLs). Strings that are not URLs (plain
 * paths) are copied unchanged.
 */
void log_redact_url(const char *url, int whole_path, char *out, size_t outlen);

#endif
