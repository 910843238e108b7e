/* netcheck_test.c — the SSRF address policy on a table of addresses,
 * without opening any connection. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "netcheck.h"
#include "unit.h"

static int allowed(const struct netcheck *nc, const char *ip, char *why, size_t len)
{
    struct sockaddr_storage ss = {0};
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        inet_pton(AF_INET6, ip, &s6->sin6_addr);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        inet_pton(AF_INET, ip, &s4->sin_addr);
    }
    return netcheck_allowed(nc, (struct sockaddr *)&ss, why, len);
}

int main(void)
{
    static const struct { const char *ip; int ok; const char *what; } table[] = {
        {"169.254.169.254", 0, "link-local"},   {"127.0.0.1", 0, "loopback"},
        {"127.10.20.30", 0, "loopback"},        {"10.1.2.3", 0, "private"},
        {"172.16.0.1", 0, "private"},           {"172.31.255.255", 0, "private"},
        {"172.32.0.1", 1, NULL},                {"192.168.1.1", 0, "private"},
        {"100.64.0.1", 0, "carrier-grade"},     {"0.0.0.0", 0, "this network"},
        {"224.0.0.1", 0, "multicast"},          {"255.255.255.255", 0, "reserved"},
        {"8.8.8.8", 1, NULL},                   {"93.184.216.34", 1, NULL},
        {"::1", 0, "loopback"},                 {"::", 0, "unspecified"},
        {"fc00::1", 0, "unique-local"},         {"fd12:3456::1", 0, "unique-local"},
        {"fe80::1", 0, "link-local"},           {"ff02::1", 0, "multicast"},
        {"::ffff:127.0.0.1", 0, "loopback"},    {"::ffff:169.254.169.254", 0, "link-local"},
        {"::ffff:10.0.0.1", 0, "private"},      {"::ffff:8.8.8.8", 1, NULL},
        {"64:ff9b::a00:1", 0, "private"},       {"2002:c0a8:0101::1", 0, "private"},
        {"2001:4860:4860::8888", 1, NULL},      {"2001:db8::1", 0, "documentation"},
    };
    struct netcheck nc;
    char err[256], why[256], name[300];
    CHECK("policy: default", netcheck_init(&nc, 0, NULL, err, sizeof err) == 0);
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        why[0] = '\0';
        int ok = allowed(&nc, table[i].ip, why, sizeof why);
        snprintf(name, sizeof name, "address %s %s", table[i].ip,
                 table[i].ok ? "allowed" : "refused");
        CHECK(name, ok == table[i].ok && (table[i].ok || (strstr(why, "address not allowed") &&
                                                          strstr(why, table[i].what))));
    }
    CHECK("policy: CRU_ALLOW_NETS", netcheck_init(&nc, 0, "127.0.0.0/8, fd00::/8", err, sizeof err) == 0);
    CHECK("allow nets: 127.0.0.1 allowed", allowed(&nc, "127.0.0.1", why, sizeof why));
    CHECK("allow nets: fd00::5 allowed", allowed(&nc, "fd00::5", why, sizeof why));
    CHECK("allow nets: 10.0.0.1 still refused", !allowed(&nc, "10.0.0.1", why, sizeof why));
    CHECK("allow nets: metadata still refused", !allowed(&nc, "169.254.169.254", why, sizeof why));
    CHECK("policy: CRU_ALLOW_PRIVATE", netcheck_init(&nc, 1, NULL, err, sizeof err) == 0);
    CHECK("allow private: loopback allowed", allowed(&nc, "127.0.0.1", why, sizeof why));
    CHECK("policy: bad CIDR refused", netcheck_init(&nc, 0, "10.0.0.0/33", err, sizeof err) < 0 &&
                                          strstr(err, "10.0.0.0/33"));
    CHECK("policy: garbage refused", netcheck_init(&nc, 0, "localhost", err, sizeof err) < 0);
    return unit_exit();
}
