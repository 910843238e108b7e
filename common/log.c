/*
 * log.c — logfmt lines on stderr. Each line is built in one buffer and
 * written with one write(2), so lines from worker threads never interleave.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum log_level log_min = LOG_INFO;
static const char *log_names[] = {"debug", "info", "warn", "error"};

int log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, log_names[i]) == 0)
            return i;
    return -1;
}

void log_set_level(enum log_level level)
{
    log_min = level;
}

/* Appends s as a logfmt value: quoted, with quotes, backslashes and control
 * characters escaped. Returns the new length (clamped to cap - 1). */
static size_t log_append_quoted(char *buf, size_t len, size_t cap, const char *s)
{
    if (len + 1 < cap)
        buf[len++] = '"';
    for (; *s && len + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[len++] = '\\';
            buf[len++] = (char)c;
        } else if (c == '\n') {
            buf[len++] = '\\';
            buf[len++] = 'n';
        } else if (c < 0x20) {
            buf[len++] = ' ';
        } else {
            buf[len++] = (char)c;
        }
    }
    if (len + 1 < cap)
        buf[len++] = '"';
    buf[len] = '\0';
    return len;
}

void log_write(enum log_level level, const char *job, long long chunk,
               const char *fmt, ...)
{
    if (level < log_min)
        return;
    char msg[2048], line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(line, sizeof line, "ts=%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof line - n, ".%03ldZ level=%s",
                          (long)(tv.tv_usec / 1000), log_names[level]);
    if (job)
        n += (size_t)snprintf(line + n, sizeof line - n, " job=%s", job);
    if (chunk >= 0)
        n += (size_t)snprintf(line + n, sizeof line - n, " chunk=%lld", chunk);
    n += (size_t)snprintf(line + n, sizeof line - n, " msg=");
    n = log_append_quoted(line, n, sizeof line - 1, msg);
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

void log_redact_url(const char *url, int whole_path, char *out, size_t outlen)
{
    if (outlen == 0)
        return;
    const char *scheme_end = strstr(url, "://");
    if (!scheme_end || strncmp(url, "file://", 7) == 0) {
        snprintf(out, outlen, "%s", url);
        return;
    }
    const char *auth = scheme_end + 3;
    const char *auth_end = auth + strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', (size_t)(auth_end - auth));
    const char *host = at ? at + 1 : auth;
    const char *path = auth_end;
    size_t path_len = strcspn(path, "?#");
    int has_query = path[path_len] == '?';

    int n;
    if (whole_path)
        n = snprintf(out, outlen, "%.*s%.*s/…", (int)(auth - url), url,
                     (int)(auth_end - host), host);
    else
        n = snprintf(out, outlen, "%.*s%.*s%.*s%s", (int)(auth - url), url,
                     (int)(auth_end - host), host, (int)path_len, path,
                     has_query ? "?…" : "");
    (void)n;
}
