/*
 * checksum.h — content hashes the targets report, computed on our side to
 * verify what they hold.
 *
 * QuickXorHash (OneDrive, SharePoint): a 160-bit register; byte i is XORed
 * in at bit (11·i) mod 160 (bit p is bit p%8 of register byte p/8, wrapping
 * from the last byte to the first); at the end the length, as 8
 * little-endian bytes, is XORed into the last 8 register bytes; the result
 * is the base64 of the 20 bytes.
 *
 * MD5: S3 reports a part's MD5 as its ETag; the worker hashes each part
 * while it streams and compares.
 */
#ifndef CRU_CHECKSUM_H
#define CRU_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

#include "source.h"

struct qxh {
    uint8_t reg[20];
    unsigned shift;      /* bit position of the next byte */
    uint64_t len;
};

#define QXH_B64_LEN 29   /* 28 characters and a NUL */

void qxh_init(struct qxh *q);
void qxh_update(struct qxh *q, const void *data, size_t n);
void qxh_final(struct qxh *q, char out[QXH_B64_LEN]);

/* QuickXorHash of the whole source; returns 0, or -1 with src->err set. */
int qxh_source(struct source *src, char out[QXH_B64_LEN]);

/* MD5 (RFC 1321), for S3: a part's ETag is the hex MD5 of its bytes. */
struct md5 {
    uint32_t h[4];
    uint64_t len;
    uint8_t buf[64];
};

void md5_init(struct md5 *m);
void md5_update(struct md5 *m, const void *data, size_t n);
/* Writes 32 lowercase hex digits and a NUL. */
void md5_final_hex(struct md5 *m, char out[33]);

/* Standard base64 with padding; out must hold 4*((n+2)/3)+1 bytes. */
void checksum_base64(const uint8_t *in, size_t n, char *out);

#endif
