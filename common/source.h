/*
 * source.h — where a chunk's bytes come from, as a stream: no chunk is
 * copied to disk or held whole in memory.
 *
 *   file   reads at an offset (pread) straight into the request body. File
 *          sources must lie under the worker's source root
 *          (CRU_SOURCE_ROOT); a path that escapes it through ".." or a
 *          symlink is refused.
 *   http   a ranged GET whose body is piped into the target's PUT through
 *          a fixed buffer (common/source_http.c), pinned to the version
 *          seen at plan time, to addresses the SSRF policy allows.
 */
#ifndef CRU_SOURCE_H
#define CRU_SOURCE_H

#include <stddef.h>
#include <sys/types.h>

struct curl_slist;
struct netcheck;

enum source_kind { SOURCE_FILE, SOURCE_HTTP };

struct source {
    enum source_kind kind;
    int fd;
    long long size;
    char version[512];    /* changes when the source does: file mtime and
                           * size; http "SIZE etag|lm|none VALIDATOR" */
    char err[512];        /* why the last call failed (no secrets) */
    /* http sources */
    const char *url;              /* not owned */
    struct curl_slist *headers;   /* owned: the spec's source headers */
    const struct netcheck *net;   /* not owned: where it may connect */
};

/*
 * Opens url: "file:///abs/path" or "/abs/path" under root (a canonical
 * absolute directory, or "" when file sources are disabled), or an
 * "http(s)://" URL (no I/O yet: see source_http_probe). Returns 0, or -1
 * with s->err set. Close with source_close either way.
 */
int source_open(struct source *s, const char *root, const char *url);

/* Reads up to len bytes at off; returns the count (0 at end of file), or -1
 * with s->err set. */
ssize_t source_read(struct source *s, long long off, void *buf, size_t len);

void source_close(struct source *s);

/* Writes the file path of a file source URL into out (percent-decoded).
 * Returns 0, or -1 if url is not a file source. */
int source_file_path(const char *url, char *out, size_t outlen);

#endif
