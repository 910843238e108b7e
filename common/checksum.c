/*
 * checksum.c — QuickXorHash and base64.
 */
#include "checksum.h"

#include <stdio.h>
#include <string.h>

void qxh_init(struct qxh *q)
{
    memset(q, 0, sizeof *q);
}

void qxh_update(struct qxh *q, const void *data, size_t n)
{
    const uint8_t *p = data;
    unsigned shift = q->shift;
    for (size_t i = 0; i < n; i++) {
        unsigned idx = shift >> 3, bit = shift & 7;
        unsigned v = (unsigned)p[i] << bit;
        q->reg[idx] ^= (uint8_t)v;
        if (bit)
            q->reg[idx == 19 ? 0 : idx + 1] ^= (uint8_t)(v >> 8);
        shift += 11;
        if (shift >= 160)
            shift -= 160;
    }
    q->shift = shift;
    q->len += n;
}

void qxh_final(struct qxh *q, char out[QXH_B64_LEN])
{
    uint8_t r[20];
    memcpy(r, q->reg, sizeof r);
    for (int i = 0; i < 8; i++)
        r[12 + i] ^= (uint8_t)(q->len >> (8 * i));
    checksum_base64(r, sizeof r, out);
}

int qxh_source(struct source *src, char out[QXH_B64_LEN])
{
    uint8_t buf[65536];
    struct qxh q;
    qxh_init(&q);
    for (long long off = 0; off < src->size;) {
        ssize_t n = source_read(src, off, buf, sizeof buf);
        if (n <= 0) {
            if (n == 0)
                snprintf(src->err, sizeof src->err, "source: shorter than its recorded size");
            return -1;
        }
        qxh_update(&q, buf, (size_t)n);
        off += n;
    }
    qxh_final(&q, out);
    return 0;
}

void checksum_base64(const uint8_t *in, size_t n, char *out)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
}
