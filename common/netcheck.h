/*
 * netcheck.h — which addresses a worker may connect to for an http(s)
 * source. A job's URL must not turn a worker into a way into the machine
 * or its private network (SSRF): by default loopback, link-local (cloud
 * metadata at 169.254.169.254 included), private, unique-local, multicast
 * and reserved addresses are refused. The check runs on the address a
 * connection is actually opened to (libcurl's open-socket callback), after
 * DNS resolution, for every redirect too, so DNS rebinding cannot get
 * around it.
 *
 * CRU_ALLOW_PRIVATE=1 opens every address; CRU_ALLOW_NETS=cidr,… opens
 * only the networks listed (tests use 127.0.0.0/8).
 */
#ifndef CRU_NETCHECK_H
#define CRU_NETCHECK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define NETCHECK_MAX_NETS 32

struct netcheck {
    int allow_private;
    int nnets;
    struct {
        uint8_t addr[16];    /* IPv4 as ::ffff:a.b.c.d */
        int prefix;          /* in bits of the 128 */
    } nets[NETCHECK_MAX_NETS];
};

/* Builds a policy; cidrs is "10.0.0.0/8,fd00::/8" or NULL. Returns 0, or
 * -1 with a message naming the bad entry. */
int netcheck_init(struct netcheck *nc, int allow_private, const char *cidrs,
                  char *err, size_t errlen);

/* Returns 1 when sa may be connected to; else 0 with why set (e.g.
 * "127.0.0.1 is a loopback address"). */
int netcheck_allowed(const struct netcheck *nc, const struct sockaddr *sa,
                     char *why, size_t whylen);

#endif
