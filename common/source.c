/*
 * source.c — file sources confined to a root directory.
 *
 * Confinement uses openat2(RESOLVE_BENEATH), which lets the kernel refuse
 * any resolution that leaves the root, through ".." or a symlink, at open
 * time (no check-then-open race). Kernels without openat2 (before 5.6) get
 * an equivalent walk: one component at a time with O_NOFOLLOW, refusing
 * every symlink.
 */
#include "source.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

int source_file_path(const char *url, char *out, size_t outlen)
{
    const char *p;
    if (strncmp(url, "file://", 7) == 0)
        p = url + 7;
    else if (url[0] == '/')
        p = url;
    else
        return -1;
    if (p[0] != '/')
        return -1;
    size_t o = 0;
    for (; *p; p++) {
        char c = *p;
        if (c == '%' && url[0] != '/') {
            unsigned v;
            if (sscanf(p + 1, "%2x", &v) != 1 || v == 0 ||
                !p[1] || !p[2])
                return -1;
            c = (char)v;
            p += 2;
        }
        if (o + 1 >= outlen)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* Component-by-component walk for kernels without openat2: no symlinks at
 * all, no "..". */
static int source_walk(int rootfd, const char *rel)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", rel) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int dir = dup(rootfd);
    char *save = NULL;
    char *comp = strtok_r(buf, "/", &save);
    while (comp && dir >= 0) {
        char *next = strtok_r(NULL, "/", &save);
        if (strcmp(comp, "..") == 0) {
            close(dir);
            errno = EXDEV;
            return -1;
        }
        int flags = next ? O_PATH | O_DIRECTORY : O_RDONLY;
        int fd = strcmp(comp, ".") == 0 && next ? dup(dir)
               : openat(dir, comp, flags | O_NOFOLLOW | O_CLOEXEC);
        int saved = errno;
        close(dir);
        errno = saved;
        if (fd < 0)
            return -1;
        if (!next)
            return fd;
        dir = fd;
        comp = next;
    }
    if (dir >= 0)
        close(dir);
    errno = EISDIR;
    return -1;
}

int source_open(struct source *s, const char *root, const char *url)
{
    char path[4096];
    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->size = -1;
    if (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0) {
        s->kind = SOURCE_HTTP;
        s->url = url;
        return 0;
    }
    if (source_file_path(url, path, sizeof path) < 0) {
        snprintf(s->err, sizeof s->err,
                 "source: not an http(s) URL, a file path or a file:// URL");
        return -1;
    }
    if (!root || !*root) {
        snprintf(s->err, sizeof s->err,
                 "source: file sources are disabled on this worker (set CRU_SOURCE_ROOT)");
        return -1;
    }
    size_t rlen = strcmp(root, "/") == 0 ? 0 : strlen(root);
    if (strncmp(path, root, rlen) != 0 || path[rlen] != '/') {
        snprintf(s->err, sizeof s->err, "source: %.300s is outside the source root %.150s",
                 path, root);
        return -1;
    }
    const char *rel = path + rlen;
    while (*rel == '/')
        rel++;

    int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) {
        snprintf(s->err, sizeof s->err, "source root %.300s: %.100s", root, strerror(errno));
        return -1;
    }
    struct open_how how = {
        .flags = O_RDONLY | O_CLOEXEC,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    int fd = (int)syscall(SYS_openat2, rootfd, rel, &how, sizeof how);
    if (fd < 0 && (errno == ENOSYS || errno == EPERM))
        fd = source_walk(rootfd, rel);
    int saved = errno;
    close(rootfd);
    if (fd < 0) {
        if (saved == EXDEV || saved == ELOOP)
            snprintf(s->err, sizeof s->err,
                     "source: %.300s escapes the source root %.150s (through a symlink or ..)",
                     path, root);
        else
            snprintf(s->err, sizeof s->err, "source: %.300s: %.100s", path, strerror(saved));
        return -1;
    }
    s->fd = fd;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        snprintf(s->err, sizeof s->err, "source: %.300s: %.100s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(s->err, sizeof s->err, "source: %.300s is not a regular file", path);
        return -1;
    }
    s->size = (long long)st.st_size;
    snprintf(s->version, sizeof s->version, "%lld.%09ld:%lld",
             (long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec, s->size);
    return 0;
}

ssize_t source_read(struct source *s, long long off, void *buf, size_t len)
{
    if (s->kind != SOURCE_FILE) {
        snprintf(s->err, sizeof s->err, "source: not a file");
        return -1;
    }
    ssize_t n;
    do
        n = pread(s->fd, buf, len, (off_t)off);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        snprintf(s->err, sizeof s->err, "source: read at %lld: %s", off, strerror(errno));
    return n;
}

void source_close(struct source *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    curl_slist_free_all(s->headers);
    s->headers = NULL;
}
