/*
 * config.h — settings shared by every subcommand, from the environment
 * first and then flags (flags win).
 *
 *   CRU_REDIS_URL    redis://[user:pass@]host:port[/db] or unix:///path[?db=N]
 *   CRU_PREFIX       key prefix (default "cru"; "{cru}" for Redis Cluster)
 *   CRU_CONCURRENCY  worker slots per process (default 4)
 *   CRU_SOURCE_ROOT  directory that file sources must lie under (no default:
 *                    without it a worker refuses file sources)
 *   CRU_LOG_LEVEL    debug|info|warn|error (default info)
 *   CRU_LEASE_MS     a chunk in flight is renewed every third of this; a
 *                    message idle longer is taken over (default 60000)
 *   CRU_MAX_DELIVERIES  deliveries before a message is dead-lettered (5)
 *   CRU_MAX_ATTEMPTS transient failures before a job fails (default 10)
 *   CRU_RETRY_BASE_MS, CRU_RETRY_CAP_MS  backoff base and cap (1000, 300000)
 *   CRU_GRACE_MS     on SIGTERM, how long in-flight chunks may take (25000)
 *   CRU_RATE_LIMIT   bytes per second per slot when sending, 0 = no limit
 *   CRU_METRICS_ADDR HOST:PORT for the worker's /metrics and /healthz
 *   CRU_ALLOW_PRIVATE=1, CRU_ALLOW_NETS=cidr,…  addresses http(s) sources
 *                    may use beyond public ones (netcheck.h)
 */
#ifndef CRU_CONFIG_H
#define CRU_CONFIG_H

#include <limits.h>
#include <stddef.h>

#define CONFIG_DEFAULT_REDIS_URL "redis://127.0.0.1:6379/0"
#define CONFIG_MAX_CONCURRENCY 256

struct redis_addr {
    char host[256];       /* empty for a unix socket */
    int port;
    char unix_path[PATH_MAX];
    char user[128];       /* ACL user, may be empty */
    char pass[256];       /* may be empty */
    int db;
};

struct config {
    char redis_url[1024];
    struct redis_addr redis;
    char prefix[64];
    int concurrency;
    char source_root[PATH_MAX];
    int log_level;
    long long lease_ms;
    long long max_deliveries;
    long long max_attempts;
    long long retry_base_ms;
    long long retry_cap_ms;
    long long grace_ms;
    long long rate_limit;
    char metrics_addr[128];
    int allow_private;
    char allow_nets[1024];
};

/* Parses a Redis URL; returns 0, or -1 with a message in err. */
int config_parse_redis_url(const char *url, struct redis_addr *addr,
                           char *err, size_t errlen);

/* Fills cfg with defaults overridden by the environment; returns 0, or -1
 * with a message naming the variable in err. */
int config_load_env(struct config *cfg, char *err, size_t errlen);

/*
 * Applies one setting by its flag name ("redis", "prefix", "concurrency",
 * "source-root", "log-level", "lease-ms", "max-deliveries", "max-attempts",
 * "retry-base-ms", "retry-cap-ms", "grace-ms", "rate-limit", "metrics-addr") to cfg. Returns 0, or -1 with
 * a message naming the flag in err.
 */
int config_set(struct config *cfg, const char *name, const char *value,
               char *err, size_t errlen);

/* Parses a decimal integer in [min, max] with an optional K/M/G (KiB, MiB,
 * GiB) suffix; returns 0 or -1. */
int config_parse_size(const char *s, long long min, long long max, long long *out);

#endif
