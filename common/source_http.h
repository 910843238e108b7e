/*
 * source_http.h — http(s) sources (see source_http.c): learning the size
 * and version at plan time, and piping a ranged GET into a PUT.
 */
#ifndef CRU_SOURCE_HTTP_H
#define CRU_SOURCE_HTTP_H

#include <curl/curl.h>

#include "http.h"
#include "source.h"

/*
 * Plan time: a ranged GET of one byte learns the size and a validator
 * (strong ETag, else Last-Modified) into s->size and s->version. Returns 0,
 * or -1 with c->source_err set (c->source_fatal when a retry cannot help:
 * 4xx, no Range support, an address not allowed).
 */
int source_http_probe(struct http_client *c, struct source *s);

/* Chunk time: takes size and validator from the version recorded at plan
 * time. Returns 0, or -1 when version is not one of ours. */
int source_http_pin(struct source *s, const char *version);

/*
 * Runs put (a PUT set up by http_perform, not yet started) with its body
 * read from a ranged GET of req->src [src_off, src_off+src_len). Returns
 * 0 or a CURLcode of the PUT; -1 when the source failed (c->source_err,
 * c->source_fatal, and c->resp.err say why).
 */
int source_http_pipe(struct http_client *c, CURL *put, const struct http_req *req);

#endif
