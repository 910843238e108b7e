/* config_test.c — Redis URL parsing, sizes, and log redaction. */
#include "config.h"
#include "http.h"
#include "log.h"
#include "unit.h"

static void url_ok(const char *url, const char *host, int port, const char *user,
                   const char *pass, int db, const char *sock)
{
    struct redis_addr a;
    char err[256] = "", name[300];
    int rc = config_parse_redis_url(url, &a, err, sizeof err);
    snprintf(name, sizeof name, "redis url: %s", url);
    CHECK(name, rc == 0 && strcmp(a.host, host) == 0 && a.port == port &&
                    strcmp(a.user, user) == 0 && strcmp(a.pass, pass) == 0 && a.db == db &&
                    strcmp(a.unix_path, sock) == 0);
}

static void url_bad(const char *url, const char *want)
{
    struct redis_addr a;
    char err[256] = "", name[300];
    int rc = config_parse_redis_url(url, &a, err, sizeof err);
    snprintf(name, sizeof name, "redis url refused: %s", url);
    CHECK_STR(name, want, rc < 0 ? err : "(accepted)");
}

static void redact(const char *url, int whole, const char *want)
{
    char out[512], name[600];
    log_redact_url(url, whole, out, sizeof out);
    snprintf(name, sizeof name, "redact%s: %s", whole ? " whole path" : "", url);
    CHECK_STR(name, want, out);
}

int main(void)
{
    url_ok("redis://127.0.0.1:6380/2", "127.0.0.1", 6380, "", "", 2, "");
    url_ok("redis://localhost", "localhost", 6379, "", "", 0, "");
    url_ok("redis://:s3cret@host:1/0", "host", 1, "", "s3cret", 0, "");
    url_ok("redis://app:p%40ss@host:7000/15", "host", 7000, "app", "p@ss", 15, "");
    url_ok("redis://[::1]:6379", "::1", 6379, "", "", 0, "");
    url_ok("unix:///run/redis.sock", "", 0, "", "", 0, "/run/redis.sock");
    url_ok("unix:///run/redis.sock?db=3", "", 0, "", "", 3, "/run/redis.sock");
    url_bad("http://host", "redis URL: must start with redis:// or unix:// (rediss:// needs TLS, which this hiredis lacks)");
    url_bad("redis://host:0", "redis URL: port must be 1-65535");
    url_bad("redis://host:99999", "redis URL: port must be 1-65535");
    url_bad("redis://host:abc", "redis URL: port must be 1-65535");
    url_bad("redis://host/x", "redis URL: database must be a number, as in redis://host:6379/0");
    url_bad("unix://relative.sock", "redis URL: unix:// needs an absolute socket path");
    url_bad("redis://u:p%zz@host", "redis URL: bad user or password");

    long long v;
    CHECK("size: 10M", config_parse_size("10M", 1, 1LL << 40, &v) == 0 && v == 10485760);
    CHECK("size: 320K", config_parse_size("320K", 1, 1LL << 40, &v) == 0 && v == 327680);
    CHECK("size: plain", config_parse_size("4096", 1, 1LL << 40, &v) == 0 && v == 4096);
    CHECK("size: junk refused", config_parse_size("10MB", 1, 1LL << 40, &v) < 0);
    CHECK("size: negative refused", config_parse_size("-1", 1, 1LL << 40, &v) < 0);
    CHECK("size: over max refused", config_parse_size("2G", 1, 1LL << 30, &v) < 0);
    CHECK("size: empty refused", config_parse_size("", 1, 10, &v) < 0);

    CHECK("retry-after: seconds", http_retry_after_ms("5") == 5000);
    CHECK("retry-after: zero", http_retry_after_ms("0") == 0);
    CHECK("retry-after: absent", http_retry_after_ms("") == -1 && http_retry_after_ms(NULL) == -1);
    CHECK("retry-after: garbage", http_retry_after_ms("soon") == -1);
    CHECK("retry-after: negative", http_retry_after_ms("-3") == -1);
    CHECK("retry-after: HTTP date in the past", http_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT") == 0);
    long long far = http_retry_after_ms("Fri, 01 Jan 2100 00:00:00 GMT");
    CHECK("retry-after: HTTP date in the future", far > 1000LL * 3600 * 24 * 365);

    redact("https://host.example/up/abc?tempauth=SECRET", 0, "https://host.example/up/abc?…");
    redact("https://user:pw@host.example:8443/a/b", 0, "https://host.example:8443/a/b");
    redact("https://my.sharepoint.com/up/SECRETPATH?tempauth=x", 1, "https://my.sharepoint.com/…");
    redact("/srv/uploads/a.bin", 0, "/srv/uploads/a.bin");
    redact("file:///srv/uploads/a.bin", 1, "file:///srv/uploads/a.bin");
    redact("redis://:pw@host:6379/0", 0, "redis://host:6379/0");
    return unit_exit();
}
