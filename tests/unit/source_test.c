/* source_test.c — file sources: URL forms, confinement under the root
 * (.., symlinks out, symlinks in), reads at offsets. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "source.h"
#include "unit.h"

static char root[256], outside[256];

static void put(const char *path, const char *data)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ssize_t w = write(fd, data, strlen(data));
    (void)w;
    close(fd);
}

static void open_case(const char *name, const char *url, const char *want_err_part)
{
    struct source s;
    int rc = source_open(&s, root, url);
    if (!want_err_part)
        CHECK(name, rc == 0);
    else if (rc == 0 || !strstr(s.err, want_err_part)) {
        printf("FAIL %s: want an error with \"%s\", got rc=%d \"%s\"\n", name, want_err_part,
               rc, s.err);
        unit_failed = 1;
    } else {
        printf("PASS %s\n", name);
    }
    source_close(&s);
}

int main(void)
{
    char tmpl[] = "/tmp/cru-source-test.XXXXXX";
    char *base = mkdtemp(tmpl);
    char p[512], url[600];
    snprintf(root, sizeof root, "%s/root", base);
    snprintf(outside, sizeof outside, "%s/outside", base);
    mkdir(root, 0755);
    mkdir(outside, 0755);
    snprintf(p, sizeof p, "%s/sub", root);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/sub/a file.txt", root);
    put(p, "hello, world");
    snprintf(p, sizeof p, "%s/secret.txt", outside);
    put(p, "secret");
    snprintf(p, sizeof p, "%s/escape", root);
    if (symlink("../outside/secret.txt", p) < 0)
        perror("symlink");
    snprintf(p, sizeof p, "%s/escape-dir", root);
    if (symlink(outside, p) < 0)
        perror("symlink");
    snprintf(p, sizeof p, "%s/inside-link", root);
    if (symlink("sub/a file.txt", p) < 0)
        perror("symlink");

    snprintf(url, sizeof url, "%s/sub/a file.txt", root);
    open_case("source: plain path under root", url, NULL);
    snprintf(url, sizeof url, "file://%s/sub/a%%20file.txt", root);
    open_case("source: file URL, percent-decoded", url, NULL);

    struct source s;
    char buf[16] = "";
    if (source_open(&s, root, url) == 0) {
        CHECK("source: size", s.size == 12);
        CHECK("source: pread at offset", source_read(&s, 7, buf, 5) == 5 &&
                                             memcmp(buf, "world", 5) == 0);
        CHECK("source: read past end gives 0", source_read(&s, 12, buf, 5) == 0);
        CHECK("source: version recorded", s.version[0] != '\0');
    }
    source_close(&s);

    snprintf(url, sizeof url, "%s/secret.txt", outside);
    open_case("source: outside the root refused", url, "is outside the source root");
    snprintf(url, sizeof url, "%s/../outside/secret.txt", root);
    open_case("source: .. out of the root refused", url, "escapes the source root");
    snprintf(url, sizeof url, "%s/escape", root);
    open_case("source: symlink out of the root refused", url, "escapes the source root");
    snprintf(url, sizeof url, "%s/escape-dir/secret.txt", root);
    open_case("source: symlinked directory out of the root refused", url,
              "escapes the source root");
    snprintf(url, sizeof url, "%s/inside-link", root);
    open_case("source: symlink inside the root allowed", url, NULL);
    snprintf(url, sizeof url, "%s/sub", root);
    open_case("source: directory refused", url, "not a regular file");
    snprintf(url, sizeof url, "%s/missing.bin", root);
    open_case("source: missing file", url, "No such file or directory");
    snprintf(url, sizeof url, "%sx/sub/a file.txt", root);
    open_case("source: sibling with the root as prefix refused", url, "outside the source root");
    open_case("source: relative path refused", "sub/a file.txt", "not an http(s) URL");
    open_case("source: gopher refused", "gopher://example.com/x", "not an http(s) URL");
    open_case("source: file://host refused", "file://host/etc/passwd", "not an http(s) URL");
    CHECK("source: http URL opens as an http source (no I/O yet)",
          source_open(&s, "", "https://example.com/x") == 0 && s.kind == SOURCE_HTTP);
    source_close(&s);
    snprintf(url, sizeof url, "file:///etc/passwd");
    open_case("source: file:///etc/passwd outside the root", url, "outside the source root");
    CHECK("source: no root, refused",
          source_open(&s, "", "/etc/hostname") < 0 && strstr(s.err, "CRU_SOURCE_ROOT"));
    source_close(&s);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0)
        perror("rm");
    return unit_exit();
}
