/*
 * http.h — one HTTP exchange over a reused libcurl easy handle.
 *
 * A worker slot owns one CURL handle and one struct http_resp and passes
 * them to every request, so connections are kept alive between chunks and
 * nothing is allocated per chunk. A request body is either a small buffer
 * (JSON) or a byte range of a source, streamed through libcurl's read
 * callback with pread: the chunk is never held in memory.
 */
#ifndef CRU_HTTP_H
#define CRU_HTTP_H

#include <curl/curl.h>
#include <stddef.h>

#include "source.h"

#define HTTP_BODY_MAX 65536

struct http_req {
    const char *method;             /* "GET", "PUT", "POST", "DELETE" */
    const char *url;
    struct curl_slist *headers;     /* caller's; may be NULL */
    const char *body;               /* small in-memory body, or NULL */
    size_t body_len;
    struct source *src;             /* or a streamed byte range of a source */
    long long src_off, src_len;
    int stream;                     /* 1: the body is the source range (may be empty) */
    const char *aws_sigv4;          /* libcurl signs the request: "aws:amz:REGION:s3" */
    const char *userpwd;            /* "access:secret" for aws_sigv4 */
    /* sees every byte of a streamed body once, in order, as it is sent
     * (a driver hashes a part on the way: S3's ETag is its MD5) */
    void (*on_body)(void *arg, const void *data, size_t n);
    void *on_body_arg;
};

struct http_resp {
    long status;                    /* 0 when no response arrived */
    char body[HTTP_BODY_MAX + 1];   /* NUL-terminated, truncated at HTTP_BODY_MAX */
    size_t len;
    int truncated;
    char location[2048];
    char retry_after[64];
    char range[128];                /* Range: (Google 308) */
    char etag[256];
    long long content_length;       /* of the response (HEAD), -1 if unknown */
    char err[CURL_ERROR_SIZE + 256]; /* transport failure, when status is 0 */
    long long sent;                 /* body bytes handed to libcurl */
};

/*
 * One per worker slot (or CLI command): the reused handle, the last
 * response, and an optional tick called about once a second while a
 * transfer runs (the worker renews its lease there); a non-zero return
 * from tick aborts the transfer.
 */
struct http_client {
    CURL *curl;
    struct http_resp resp;
    int (*tick)(void *arg);
    void *tick_arg;
    long long max_send_speed;   /* bytes/s, 0 for no limit */
    /* http(s) sources (common/source_http.c): the GET handle, the multi
     * handle that drives GET and PUT together, the buffer between them */
    CURL *get;
    CURLM *multi;
    char *pipe_buf;
    char source_err[480];       /* the source's failure, when it was the source */
    int source_fatal;           /* …and a retry cannot help (4xx, changed) */
};

/* Allocates a client; returns NULL when out of memory. */
struct http_client *http_client_new(void);
void http_client_free(struct http_client *c);

/*
 * Performs req. Returns 0 when a response arrived (any status: read
 * c->resp.status), or -1 when the exchange failed or was aborted by tick
 * (c->resp.err says why, without the URL's secrets).
 */
int http_perform(struct http_client *c, const struct http_req *req);

/* Parses a Retry-After value (delay-seconds or an HTTP date) into
 * milliseconds from now; -1 when absent or unreadable. */
long long http_retry_after_ms(const char *value);

/* Appends a printf-formatted header; returns the new list (NULL on OOM,
 * after freeing the old one). */
struct curl_slist *http_header(struct curl_slist *list, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Percent-encodes s for a URL path: unreserved characters, "/" (when
 * keep_slash) and "," stay; returns -1 if out is too small. */
int http_escape_path(const char *s, int keep_slash, char *out, size_t outlen);

#endif
