/*
 * config.c — environment and flag parsing shared by all subcommands.
 */
#include "config.h"
#include "log.h"

#include <ctype.h>
#include <stddef.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int config_parse_size(const char *s, long long min, long long max, long long *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno)
        return -1;
    long long mul = 1;
    if (*end == 'K' || *end == 'k')
        mul = 1024, end++;
    else if (*end == 'M' || *end == 'm')
        mul = 1024 * 1024, end++;
    else if (*end == 'G' || *end == 'g')
        mul = 1024LL * 1024 * 1024, end++;
    if (*end != '\0' || v > max / mul)
        return -1;
    v *= mul;
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Percent-decodes src (len bytes) into dst of dstlen; returns -1 on bad
 * escapes, overflow or an embedded NUL. */
static int config_unescape(const char *src, size_t len, char *dst, size_t dstlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            if (i + 2 >= len || !isxdigit((unsigned char)src[i + 1]) ||
                !isxdigit((unsigned char)src[i + 2]))
                return -1;
            char hex[3] = {src[i + 1], src[i + 2], 0};
            c = (char)strtol(hex, NULL, 16);
            if (c == '\0')
                return -1;
            i += 2;
        }
        if (o + 1 >= dstlen)
            return -1;
        dst[o++] = c;
    }
    dst[o] = '\0';
    return 0;
}

int config_parse_redis_url(const char *url, struct redis_addr *a,
                           char *err, size_t errlen)
{
    memset(a, 0, sizeof *a);
    if (strncmp(url, "unix://", 7) == 0) {
        const char *path = url + 7;
        size_t plen = strcspn(path, "?");
        if (plen == 0 || path[0] != '/') {
            snprintf(err, errlen, "redis URL: unix:// needs an absolute socket path");
            return -1;
        }
        if (config_unescape(path, plen, a->unix_path, sizeof a->unix_path) < 0) {
            snprintf(err, errlen, "redis URL: bad socket path");
            return -1;
        }
        if (path[plen] == '?') {
            const char *q = path + plen + 1;
            char *end;
            if (strncmp(q, "db=", 3) != 0 || !isdigit((unsigned char)q[3]) ||
                (a->db = (int)strtol(q + 3, &end, 10), *end != '\0')) {
                snprintf(err, errlen, "redis URL: the only query allowed is ?db=N");
                return -1;
            }
        }
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "redis URL: must start with redis:// or unix:// "
                 "(rediss:// needs TLS, which this hiredis lacks)");
        return -1;
    }
    const char *p = url + 8;
    const char *auth_end = p + strcspn(p, "/?#");
    const char *at = NULL;
    for (const char *q = p; q < auth_end; q++)
        if (*q == '@')
            at = q;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *user_end = colon ? colon : at;
        if (config_unescape(p, (size_t)(user_end - p), a->user, sizeof a->user) < 0 ||
            (colon && config_unescape(colon + 1, (size_t)(at - colon - 1), a->pass,
                                      sizeof a->pass) < 0)) {
            snprintf(err, errlen, "redis URL: bad user or password");
            return -1;
        }
        p = at + 1;
    }
    const char *host_end;
    if (*p == '[') {
        host_end = memchr(p, ']', (size_t)(auth_end - p));
        if (!host_end) {
            snprintf(err, errlen, "redis URL: unclosed [ in host");
            return -1;
        }
        snprintf(a->host, sizeof a->host, "%.*s", (int)(host_end - p - 1), p + 1);
        host_end++;
    } else {
        host_end = p + strcspn(p, ":/?#");
        if (host_end > auth_end)
            host_end = auth_end;
        if ((size_t)(host_end - p) >= sizeof a->host) {
            snprintf(err, errlen, "redis URL: host too long");
            return -1;
        }
        snprintf(a->host, sizeof a->host, "%.*s", (int)(host_end - p), p);
    }
    if (a->host[0] == '\0')
        snprintf(a->host, sizeof a->host, "127.0.0.1");
    a->port = 6379;
    if (*host_end == ':') {
        char *end;
        long port = strtol(host_end + 1, &end, 10);
        if (end == host_end + 1 || end != auth_end || port < 1 || port > 65535) {
            snprintf(err, errlen, "redis URL: port must be 1-65535");
            return -1;
        }
        a->port = (int)port;
    } else if (host_end != auth_end) {
        snprintf(err, errlen, "redis URL: unexpected text after host");
        return -1;
    }
    if (*auth_end == '/' && auth_end[1] != '\0') {
        char *end;
        long db = strtol(auth_end + 1, &end, 10);
        if (!isdigit((unsigned char)auth_end[1]) || *end != '\0' || db < 0 || db > 100000) {
            snprintf(err, errlen, "redis URL: database must be a number, as in redis://host:6379/0");
            return -1;
        }
        a->db = (int)db;
    } else if (*auth_end == '?' || *auth_end == '#') {
        snprintf(err, errlen, "redis URL: query strings are not supported");
        return -1;
    }
    return 0;
}

int config_set(struct config *cfg, const char *name, const char *value,
               char *err, size_t errlen)
{
    if (strcmp(name, "redis") == 0) {
        if (snprintf(cfg->redis_url, sizeof cfg->redis_url, "%s", value) >=
            (int)sizeof cfg->redis_url) {
            snprintf(err, errlen, "--redis: URL too long");
            return -1;
        }
        return config_parse_redis_url(value, &cfg->redis, err, errlen);
    }
    if (strcmp(name, "prefix") == 0) {
        size_t len = strlen(value);
        if (len == 0 || len >= sizeof cfg->prefix || strpbrk(value, " \t\r\n")) {
            snprintf(err, errlen, "--prefix: 1-%zu characters, no spaces",
                     sizeof cfg->prefix - 1);
            return -1;
        }
        memcpy(cfg->prefix, value, len + 1);
        return 0;
    }
    if (strcmp(name, "concurrency") == 0) {
        long long n;
        if (config_parse_size(value, 1, CONFIG_MAX_CONCURRENCY, &n) < 0) {
            snprintf(err, errlen, "--concurrency: a number from 1 to %d",
                     CONFIG_MAX_CONCURRENCY);
            return -1;
        }
        cfg->concurrency = (int)n;
        return 0;
    }
    if (strcmp(name, "source-root") == 0) {
        if (value[0] != '/' ) {
            snprintf(err, errlen, "--source-root: must be an absolute directory");
            return -1;
        }
        if (!realpath(value, cfg->source_root)) {
            snprintf(err, errlen, "--source-root: %s: %s", value, strerror(errno));
            return -1;
        }
        return 0;
    }
    if (strcmp(name, "log-level") == 0) {
        int level = log_level_parse(value);
        if (level < 0) {
            snprintf(err, errlen, "--log-level: one of debug, info, warn, error");
            return -1;
        }
        cfg->log_level = level;
        log_set_level((enum log_level)level);
        return 0;
    }
    if (strcmp(name, "allow-private") == 0) {
        if (strcmp(value, "0") != 0 && strcmp(value, "1") != 0) {
            snprintf(err, errlen, "--allow-private: 0 or 1");
            return -1;
        }
        cfg->allow_private = value[0] == '1';
        return 0;
    }
    if (strcmp(name, "allow-nets") == 0) {
        if (strlen(value) >= sizeof cfg->allow_nets) {
            snprintf(err, errlen, "--allow-nets: too long");
            return -1;
        }
        snprintf(cfg->allow_nets, sizeof cfg->allow_nets, "%s", value);
        return 0;
    }
    if (strcmp(name, "metrics-addr") == 0) {
        if (strlen(value) >= sizeof cfg->metrics_addr || !strchr(value, ':')) {
            snprintf(err, errlen, "--metrics-addr: HOST:PORT, as 127.0.0.1:9464");
            return -1;
        }
        snprintf(cfg->metrics_addr, sizeof cfg->metrics_addr, "%s", value);
        return 0;
    }
    static const struct { const char *name; size_t off; long long min, max; } nums[] = {
        {"lease-ms", offsetof(struct config, lease_ms), 100, 86400000},
        {"max-deliveries", offsetof(struct config, max_deliveries), 1, 1000},
        {"max-attempts", offsetof(struct config, max_attempts), 1, 1000},
        {"retry-base-ms", offsetof(struct config, retry_base_ms), 1, 3600000},
        {"retry-cap-ms", offsetof(struct config, retry_cap_ms), 1, 86400000},
        {"grace-ms", offsetof(struct config, grace_ms), 0, 3600000},
        {"rate-limit", offsetof(struct config, rate_limit), 0, 1LL << 40},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        if (strcmp(name, nums[i].name) != 0)
            continue;
        long long v;
        if (config_parse_size(value, nums[i].min, nums[i].max, &v) < 0) {
            snprintf(err, errlen, "--%s: a number from %lld to %lld", name, nums[i].min,
                     nums[i].max);
            return -1;
        }
        *(long long *)((char *)cfg + nums[i].off) = v;
        return 0;
    }
    snprintf(err, errlen, "unknown setting %s", name);
    return -1;
}

int config_load_env(struct config *cfg, char *err, size_t errlen)
{
    static const struct { const char *env, *name; } vars[] = {
        {"CRU_REDIS_URL", "redis"},         {"CRU_PREFIX", "prefix"},
        {"CRU_CONCURRENCY", "concurrency"}, {"CRU_SOURCE_ROOT", "source-root"},
        {"CRU_LOG_LEVEL", "log-level"},     {"CRU_LEASE_MS", "lease-ms"},
        {"CRU_MAX_DELIVERIES", "max-deliveries"}, {"CRU_MAX_ATTEMPTS", "max-attempts"},
        {"CRU_RETRY_BASE_MS", "retry-base-ms"}, {"CRU_RETRY_CAP_MS", "retry-cap-ms"},
        {"CRU_GRACE_MS", "grace-ms"},       {"CRU_RATE_LIMIT", "rate-limit"},
        {"CRU_METRICS_ADDR", "metrics-addr"}, {"CRU_ALLOW_PRIVATE", "allow-private"},
        {"CRU_ALLOW_NETS", "allow-nets"},
    };
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->prefix, sizeof cfg->prefix, "cru");
    cfg->concurrency = 4;
    cfg->log_level = LOG_INFO;
    cfg->lease_ms = 60000;
    cfg->max_deliveries = 5;
    cfg->max_attempts = 10;
    cfg->retry_base_ms = 1000;
    cfg->retry_cap_ms = 300000;
    cfg->grace_ms = 25000;
    snprintf(cfg->redis_url, sizeof cfg->redis_url, "%s", CONFIG_DEFAULT_REDIS_URL);
    config_parse_redis_url(cfg->redis_url, &cfg->redis, err, errlen);
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i].env);
        if (!v || !*v)
            continue;
        char sub[512];
        if (config_set(cfg, vars[i].name, v, sub, sizeof sub) < 0) {
            /* name the variable, not the flag */
            const char *why = strchr(sub, ':');
            snprintf(err, errlen, "%s%s", vars[i].env, why ? why : sub);
            return -1;
        }
    }
    return 0;
}
