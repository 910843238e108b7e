/*
 * netcheck.c — the address policy for http(s) sources.
 *
 * Addresses are compared as 16-byte IPv6 (IPv4 mapped to ::ffff:a.b.c.d),
 * so one table serves both families; IPv6 forms that embed an IPv4 address
 * (mapped, NAT64 64:ff9b::/96, 6to4 2002::/16) are judged by that address.
 */
#include "netcheck.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *cidr, *what;
} netcheck_denied[] = {
    {"0.0.0.0/8", "a 'this network' address"},
    {"10.0.0.0/8", "a private address"},
    {"100.64.0.0/10", "a carrier-grade NAT address"},
    {"127.0.0.0/8", "a loopback address"},
    {"169.254.0.0/16", "a link-local address (cloud metadata lives here)"},
    {"172.16.0.0/12", "a private address"},
    {"192.0.0.0/24", "an IETF protocol address"},
    {"192.0.2.0/24", "a documentation address"},
    {"192.168.0.0/16", "a private address"},
    {"198.18.0.0/15", "a benchmarking address"},
    {"198.51.100.0/24", "a documentation address"},
    {"203.0.113.0/24", "a documentation address"},
    {"224.0.0.0/4", "a multicast address"},
    {"240.0.0.0/4", "a reserved address"},
    {"::/128", "the unspecified address"},
    {"::1/128", "a loopback address"},
    {"::/96", "an IPv4-compatible address"},
    {"100::/64", "a discard address"},
    {"2001:db8::/32", "a documentation address"},
    {"fc00::/7", "a unique-local address"},
    {"fe80::/10", "a link-local address"},
    {"fec0::/10", "a site-local address"},
    {"ff00::/8", "a multicast address"},
};

/* Parses "a.b.c.d/n" or "x::y/n" into a 16-byte address and a prefix of
 * the 128 bits. Returns 0 or -1. */
static int netcheck_parse(const char *cidr, uint8_t addr[16], int *prefix)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s", cidr);
    char *slash = strchr(buf, '/');
    int bits = -1;
    if (slash) {
        char *end;
        *slash = '\0';
        long v = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || *end)
            return -1;
        bits = (int)v;
    }
    struct in_addr v4;
    if (inet_pton(AF_INET, buf, &v4) == 1) {
        if (bits < 0)
            bits = 32;
        if (bits > 32)
            return -1;
        memset(addr, 0, 10);
        addr[10] = addr[11] = 0xff;
        memcpy(addr + 12, &v4, 4);
        *prefix = 96 + bits;
        return 0;
    }
    if (inet_pton(AF_INET6, buf, addr) == 1) {
        if (bits < 0)
            bits = 128;
        if (bits > 128)
            return -1;
        *prefix = bits;
        return 0;
    }
    return -1;
}

static int netcheck_match(const uint8_t a[16], const uint8_t net[16], int prefix)
{
    int full = prefix / 8, rest = prefix % 8;
    if (memcmp(a, net, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == (net[full] & mask);
}

int netcheck_init(struct netcheck *nc, int allow_private, const char *cidrs, char *err,
                  size_t errlen)
{
    memset(nc, 0, sizeof *nc);
    nc->allow_private = allow_private;
    if (!cidrs || !*cidrs)
        return 0;
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", cidrs);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        if (nc->nnets == NETCHECK_MAX_NETS) {
            snprintf(err, errlen, "CRU_ALLOW_NETS: at most %d networks", NETCHECK_MAX_NETS);
            return -1;
        }
        if (netcheck_parse(tok, nc->nets[nc->nnets].addr, &nc->nets[nc->nnets].prefix) < 0) {
            snprintf(err, errlen, "CRU_ALLOW_NETS: \"%.64s\" is not an address or CIDR", tok);
            return -1;
        }
        nc->nnets++;
    }
    return 0;
}

/* The IPv4 address an IPv6 address stands for, if it embeds one. */
static int netcheck_embedded_v4(const uint8_t a[16], uint8_t out[16])
{
    static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b};
    memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    if (memcmp(a, nat64, 12) == 0) {
        memcpy(out + 12, a + 12, 4);
        return 1;
    }
    if (a[0] == 0x20 && a[1] == 0x02) { /* 6to4: 2002:AABB:CCDD::/48 */
        memcpy(out + 12, a + 2, 4);
        return 1;
    }
    return 0;
}

int netcheck_allowed(const struct netcheck *nc, const struct sockaddr *sa, char *why,
                     size_t whylen)
{
    uint8_t a[16];
    char text[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        memset(a, 0, 10);
        a[10] = a[11] = 0xff;
        memcpy(a + 12, &s4->sin_addr, 4);
        inet_ntop(AF_INET, &s4->sin_addr, text, sizeof text);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        memcpy(a, &s6->sin6_addr, 16);
        inet_ntop(AF_INET6, &s6->sin6_addr, text, sizeof text);
    } else {
        snprintf(why, whylen, "address not allowed: not an IP address");
        return 0;
    }
    if (nc->allow_private)
        return 1;
    for (int i = 0; i < nc->nnets; i++)
        if (netcheck_match(a, nc->nets[i].addr, nc->nets[i].prefix))
            return 1;
    uint8_t v4[16];
    int embedded = netcheck_embedded_v4(a, v4);
    for (size_t i = 0; i < sizeof netcheck_denied / sizeof netcheck_denied[0]; i++) {
        uint8_t net[16];
        int prefix;
        netcheck_parse(netcheck_denied[i].cidr, net, &prefix);
        if (netcheck_match(a, net, prefix) || (embedded && netcheck_match(v4, net, prefix))) {
            snprintf(why, whylen,
                     "address not allowed: %s is %s (set CRU_ALLOW_PRIVATE=1 or CRU_ALLOW_NETS "
                     "on the worker to allow it)", text, netcheck_denied[i].what);
            return 0;
        }
    }
    return 1;
}
