/*
 * source.h — where a chunk's bytes come from. A source gives a byte range
 * of a file as reads at an offset (pread), so a worker streams a chunk
 * straight into the request body: no chunk is copied to disk or held whole
 * in memory.
 *
 * File sources must lie under the worker's source root (CRU_SOURCE_ROOT);
 * a path that escapes it through ".." or a symlink is refused.
 */
#ifndef CRU_SOURCE_H
#define CRU_SOURCE_H

#include <stddef.h>
#include <sys/types.h>

struct source {
    int fd;
    long long size;
    char version[64];     /* changes when the file does: mtime and size */
    char err[512];        /* why the last call failed */
};

/*
 * Opens url ("file:///abs/path" or "/abs/path") under root (a canonical
 * absolute directory, or "" when file sources are disabled). Returns 0, or
 * -1 with s->err set. Close with source_close either way.
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
